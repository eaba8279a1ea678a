/* test_config.c: run configuration: defaults, file values, --set overrides (posenc included),
 * one clear error per bad key, type or range, the size limit of config files, and the refusal of
 * a model that does not fit in memory. */
#define _POSIX_C_SOURCE 200809L
#include <glob.h>
#include <stdint.h>
#include <string.h>

#include "base/util.h"
#include "model/config.h"
#include "model/gpt.h"
#include "tests/test.h"

extern size_t config_memory_limit;   /* test hook in config.c: 0 = physical memory */

static const char *write_config(const char *name, const char *json) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmp_dir(), name);
    test_write_file(path, json, strlen(json));
    return path;
}

static void test_defaults_file_and_overrides(void) {
    RunConfig c;
    CHECKF(config_load(&c, NULL, NULL, 0) == 0, "%s", tr_error());
    CHECK(c.model.n_layer == 4 && c.optim.lr == 1e-3 && !strcmp(c.optim.schedule, "cosine"));
    CHECK(c.model.posenc && !strcmp(cJSON_GetObjectItem(c.model.posenc, "kind")->valuestring, "rope"));
    config_free(&c);

    const char *path = write_config("cfg1.json",
        "{\"model\": {\"n_layer\": 2, \"posenc\": {\"kind\": \"xpos\", \"variant\": \"author\"}},"
        " \"optim\": {\"lr\": 0.01}}");
    const char *sets[] = {"model.n_embd=64", "optim.schedule=constant", "model.posenc.kind=none", "train.batch_size=3"};
    CHECKF(config_load(&c, path, sets, 4) == 0, "%s", tr_error());
    CHECK(c.model.n_layer == 2 && c.model.n_embd == 64 && c.optim.lr == 0.01 && c.train.batch_size == 3);
    CHECK(!strcmp(c.optim.schedule, "constant"));
    CHECK(!strcmp(cJSON_GetObjectItem(c.model.posenc, "kind")->valuestring, "none"));
    /* The resolved JSON holds the defaults too, so a run records everything it used. */
    char *json = config_to_json(&c);
    CHECK(strstr(json, "\"warmup_steps\"") && strstr(json, "\"n_embd\":\t64"));
    free(json);
    config_free(&c);
}

static void expect_error(const char *json, const char *const *sets, int n_sets, const char *needle) {
    RunConfig c;
    const char *path = json ? write_config("bad.json", json) : NULL;
    int rc = config_load(&c, path, sets, n_sets);
    CHECKF(rc == -1, "accepted %s", json ? json : sets[0]);
    if (rc == 0) { config_free(&c); return; }
    CHECKF(strstr(tr_error(), needle) != NULL, "error '%s' does not mention '%s'", tr_error(), needle);
}

static void test_errors(void) {
    expect_error("{\"model\": {\"n_layers\": 2}}", NULL, 0, "model.n_layers");
    expect_error("{\"colour\": 1}", NULL, 0, "colour");
    expect_error("{\"model\": {\"n_layer\": \"two\"}}", NULL, 0, "model.n_layer must be a number");
    expect_error("{\"model\": {\"n_layer\": 2.5}}", NULL, 0, "integer");
    expect_error("{\"model\": {\"n_layer\": 0}}", NULL, 0, "outside");
    expect_error("{\"model\": 3}", NULL, 0, "must be an object");
    expect_error("{\"model\": {\"n_embd\": 100, \"n_head\": 3}}", NULL, 0, "divisible");
    expect_error("{\"optim\": {\"schedule\": \"linear\"}}", NULL, 0, "optim.schedule");
    expect_error("{\"optim\": {\"lr\": 1e-4, \"min_lr\": 1e-3}}", NULL, 0, "min_lr");
    expect_error("{\"optim\": {\"clip_per_group\": 1}}", NULL, 0, "true or false");
    expect_error("{\"model\": ", NULL, 0, "not a JSON object");
    const char *bad_set[] = {"model.n_layer"};
    expect_error(NULL, bad_set, 1, "key=value");
    const char *bad_key[] = {"model.depth=3"};
    expect_error(NULL, bad_key, 1, "model.depth");
    RunConfig c;
    CHECK(config_load(&c, "/nonexistent/config.json", NULL, 0) == -1 && strstr(tr_error(), "/nonexistent/config.json"));
}

/* "base": a file names its base (relative to its own directory) and only what differs; objects
 * merge key by key, the base's base is read too, and a missing or cyclic base is an error. */
static void test_base_files(void) {
    write_config("base0.json", "{\"seed\": 7, \"optim\": {\"lr\": 0.002, \"beta2\": 0.99}}");
    write_config("base1.json", "{\"base\": \"base0.json\", \"model\": {\"n_layer\": 3, \"posenc\": {\"kind\": \"hddrope\", \"chunk\": 4}}}");
    const char *path = write_config("child.json",
        "{\"base\": \"base1.json\", \"model\": {\"posenc\": {\"base_init\": \"zero\"}}, \"optim\": {\"lr\": 0.001}}");
    RunConfig c;
    CHECKF(config_load(&c, path, NULL, 0) == 0, "%s", tr_error());
    CHECK(c.seed == 7 && c.model.n_layer == 3 && c.optim.lr == 0.001 && c.optim.beta2 == 0.99);
    const cJSON *pe = c.model.posenc;
    CHECK(!strcmp(cJSON_GetObjectItem(pe, "kind")->valuestring, "hddrope"));
    CHECK(cJSON_GetObjectItem(pe, "chunk") && cJSON_GetObjectItem(pe, "chunk")->valueint == 4);
    CHECK(!strcmp(cJSON_GetObjectItem(pe, "base_init")->valuestring, "zero"));
    char *json = config_to_json(&c);
    CHECK(!strstr(json, "\"base\""));   /* the recorded config is the merged one */
    free(json);
    config_free(&c);

    expect_error("{\"base\": \"no-such-base.json\"}", NULL, 0, "no-such-base.json");
    expect_error("{\"base\": 3}", NULL, 0, "\"base\" must be");
    write_config("loop.json", "{\"base\": \"loop.json\"}");
    expect_error("{\"base\": \"loop.json\"}", NULL, 0, "cycle");
}

/* Reading stops at 1 MiB: a file of exactly 1 MiB is read, one byte more is refused, and so is
 * an endless base such as /dev/zero (whose stat size is 0), with the file and the limit named. */
static void test_file_size_limit(void) {
    const size_t limit = (size_t)1 << 20;
    char *text = xmalloc(limit + 2);   /* "{", spaces, "}" at byte limit - 1, then one more space */
    memset(text, ' ', limit + 1);
    text[0] = '{';
    text[limit - 1] = '}';
    text[limit + 1] = '\0';
    RunConfig c;
    CHECKF(config_load(&c, write_config("big.json", text), NULL, 0) == -1, "a config of 1 MiB + 1 byte was read");
    CHECKF(strstr(tr_error(), "big.json: larger than 1 MiB, the limit for a config file"), "%s", tr_error());
    text[limit] = '\0';
    CHECKF(config_load(&c, write_config("exact.json", text), NULL, 0) == 0, "a config of exactly 1 MiB: %s",
           tr_error());
    config_free(&c);
    free(text);
    expect_error("{\"base\": \"/dev/zero\"}", NULL, 0, "base: /dev/zero: larger than 1 MiB, the limit");
    expect_error("{\"base\": \"big.json\"}", NULL, 0, "big.json: larger than 1 MiB, the limit");
    expect_error("{\"base\": \"/\"}", NULL, 0, "base: /: is a directory");
}

/* config_load and then the training-memory check, as `run` and `config` do. */
static int load_for_training(RunConfig *c, const char *path, const char *const *sets, int n_sets) {
    if (config_load(c, path, sets, n_sets) != 0) return -1;
    if (config_check_training_memory(c, path ? path : "(defaults)") == 0) return 0;
    config_free(c);
    return -1;
}

/* Loads sets over the defaults under a memory limit (0: this machine's) and expects a refusal
 * that names key. */
static void expect_too_big(size_t limit, const char *const *sets, int n_sets, const char *key) {
    config_memory_limit = limit;
    RunConfig c;
    int rc = load_for_training(&c, NULL, sets, n_sets);
    config_memory_limit = 0;
    CHECKF(rc == -1, "%s: accepted", sets[0]);
    if (rc == 0) { config_free(&c); return; }
    char want[128];
    snprintf(want, sizeof want, "(defaults): %s: a model of ", key);
    CHECKF(strstr(tr_error(), want) && strstr(tr_error(), "does not fit in this machine's"),
           "error '%s' does not blame %s", tr_error(), key);
}

static void test_memory_refusals(void) {
    const char *wide[] = {"model.n_embd=65536"};
    expect_too_big(0, wide, 1, "model.n_embd");   /* 3.3 TB: no machine here has that */
    /* At the top of every range the count passes 2^64: it must saturate, not wrap to a size that fits. */
    const char *all[] = {"model.n_embd=65536", "model.n_layer=1024", "model.n_head=1024",
                         "model.block_size=65536", "train.batch_size=1048576", "tokenizer.vocab_size=1048576"};
    expect_too_big(0, all, 6, "train.batch_size");
    CHECKF(strstr(tr_error(), "a model of over 18.4 EB"), "%s", tr_error());
    const size_t gb = 1000000000;   /* the key to blame is the one that, lowered, saves the most */
    const char *batch[] = {"train.batch_size=100000"}, *block[] = {"model.block_size=8192"},
               *vocab[] = {"tokenizer.vocab_size=1000000", "train.batch_size=64"}, *deep[] = {"model.n_layer=1024"};
    expect_too_big(16 * gb, batch, 1, "train.batch_size");
    expect_too_big(16 * gb, block, 1, "model.block_size");
    expect_too_big(16 * gb, vocab, 2, "tokenizer.vocab_size");
    expect_too_big(16 * gb, deep, 1, "model.n_layer");
    expect_too_big(16 * gb, (const char *[]){"model.n_embd=65536"}, 1, "model.n_embd");
}

/* The refusal sits exactly at the bytes the model will allocate, its positional encoding
 * included (gpt_training_bytes, checked against gpt_build's own counts in test_gpt.c). */
static void test_memory_boundary(void) {
    const char *sets[] = {"model.posenc={\"kind\": \"hddrope\", \"chunk\": 4, \"dynamic\": true}",
                          "model.n_embd=64", "model.n_head=2", "model.block_size=32", "train.batch_size=3"};
    GPTConfig gc = {.V = 4096, .L = 4, .C = 64, .NH = 2, .max_T = 32};
    cJSON *options = cJSON_Parse("{\"kind\": \"hddrope\", \"chunk\": 4, \"dynamic\": true}");
    PosEnc pe;
    CHECKF(posenc_create(&pe, options, (ModelDims){.L = 4, .C = 64, .NH = 2, .hs = 32, .max_T = 32}) == 0, "%s",
           tr_error());
    size_t need = gpt_training_bytes(&gc, &pe, 3, 32);
    CHECK(need > gpt_training_bytes(&gc, NULL, 3, 32));   /* the encoding adds rows and activations */
    posenc_destroy(&pe);
    cJSON_Delete(options);
    RunConfig c;
    config_memory_limit = need;
    CHECKF(load_for_training(&c, NULL, sets, 5) == 0, "refused at exactly its size: %s", tr_error());
    config_free(&c);
    config_memory_limit = need - 1;
    CHECKF(load_for_training(&c, NULL, sets, 5) == -1, "accepted one byte short of its size");
    /* Reading the config alone (sample, eval) does not ask for the training memory. */
    CHECKF(config_load(&c, NULL, sets, 5) == 0, "config_load refused a config it only reads: %s", tr_error());
    config_free(&c);
    config_memory_limit = 0;
}

/* The shipped configs load and fit: the demo, the comparison and the state-tracking tasks on this
 * machine; the HDD-RoPE author's setup (27.5 GB with HDD-RoPE) in 32 GB. */
static void test_shipped_configs_fit(void) {
    const char *patterns[] = {"configs/demo.json", "configs/small/*.json", "configs/state/*.json",
                              "configs/author/*.json"};
    size_t n_checked = 0;
    for (int p = 0; p < 4; p++) {
        glob_t g;
        CHECKF(glob(patterns[p], 0, NULL, &g) == 0, "no %s", patterns[p]);
        config_memory_limit = p == 3 ? (size_t)32000000000u : 0;
        for (size_t i = 0; i < g.gl_pathc; i++, n_checked++) {
            RunConfig c;
            CHECKF(load_for_training(&c, g.gl_pathv[i], NULL, 0) == 0, "%s", tr_error());
            config_free(&c);
        }
        globfree(&g);
    }
    config_memory_limit = 0;
    CHECKF(n_checked >= 27, "only %zu shipped configs found", n_checked);
}

int main(void) {
    RUN(test_defaults_file_and_overrides);
    RUN(test_file_size_limit);
    RUN(test_memory_refusals);
    RUN(test_memory_boundary);
    RUN(test_shipped_configs_fit);
    RUN(test_base_files);
    RUN(test_errors);
    return test_summary();
}
