/* test_config.c: run configuration: defaults, file values, --set overrides (posenc included),
 * and one clear error per bad key, type or range. */
#include <string.h>

#include "base/util.h"
#include "model/config.h"
#include "tests/test.h"

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

int main(void) {
    RUN(test_defaults_file_and_overrides);
    RUN(test_base_files);
    RUN(test_errors);
    return test_summary();
}
