/* test_checkpoint.c: a checkpoint restores parameters, AdamW state and the run state exactly, and
 * every kind of bad file is refused with the file named, leaving the model untouched. */
#include <string.h>

#include "base/util.h"
#include "cli/checkpoint.h"
#include "tests/test.h"

enum { NP = 1000 };

static void setup(float *params, AdamW *opt, uint64_t seed) {
    uint64_t rng = seed;
    for (int i = 0; i < NP; i++) params[i] = tr_rng_normal(&rng);
    ParamRange range = {0, NP};
    ParamGroup group = {.name = "all", .lr_mult = 1.0f, .weight_decay = 0.1f, .ranges = &range, .n_ranges = 1};
    CHECK(adamw_init(opt, NP, &group, 1, 0.9f, 0.95f, 1e-8f, 1.0f, 0) == 0);
    float grads[NP];
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < NP; i++) grads[i] = tr_rng_normal(&rng);
        adamw_step(opt, params, grads, 1e-3f);
    }
}

/* A path in the scratch directory; a small pool, so several can be held at once. */
static const char *path_of(const char *name) {
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 512, "%s/%s", test_tmp_dir(), name);
    return path;
}

static void test_round_trip(void) {
    float params[NP], loaded[NP];
    AdamW opt, opt2;
    setup(params, &opt, 1);
    setup(loaded, &opt2, 2);   /* different contents, to be overwritten */
    CheckpointState st = {.config_hash = 0xABCDEF, .step = 42, .tokens_seen = 12345,
                          .loader = {.epoch = 3, .cursor = 19}};
    const char *path = path_of("ckpt.bin");
    CHECKF(checkpoint_save(path, &st, params, NP, &opt) == 0, "%s", tr_error());
    CheckpointState back;
    CHECKF(checkpoint_load(path, &back, 0xABCDEF, loaded, NP, &opt2) == 0, "%s", tr_error());
    CHECK(memcmp(params, loaded, sizeof params) == 0);
    CHECK(memcmp(opt.m, opt2.m, NP * sizeof(float)) == 0 && memcmp(opt.v, opt2.v, NP * sizeof(float)) == 0);
    CHECK(opt2.t == opt.t && opt.t == 3);
    CHECK(back.step == 42 && back.tokens_seen == 12345 && back.loader.epoch == 3 &&
          back.loader.cursor == 19);
    adamw_free(&opt);
    adamw_free(&opt2);
}

/* The config hash, step, tokens seen, both loader fields and the clock, each with a value of its
 * own above 2^32 (so a swapped, dropped or truncated field shows), read back by checkpoint_load
 * and found on disk at the offsets of the format in checkpoint.h, little-endian. */
static uint64_t le64_at(const char *bytes, size_t offset) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | (uint8_t)bytes[offset + (size_t)i];
    return v;
}

static void test_state_fields_on_disk(void) {
    float params[NP], loaded[NP];
    AdamW opt, opt2;
    setup(params, &opt, 3);
    setup(loaded, &opt2, 4);
    const CheckpointState st = {.config_hash = 0x1122334455667788ULL,
                                .step = 0x100000007ULL,
                                .tokens_seen = 0x2000000000bULL,
                                .loader = {.epoch = 0x30000000dULL, .cursor = 0x400000011ULL},
                                .elapsed_s = 12345.678,
                                .model_hash = 0x5000000000000013ULL,
                                .batch_hash = 0x6000000000000017ULL,
                                .tokenizer_hash = 0x700000000000001dULL};
    const char *path = path_of("ckpt_fields.bin");
    CHECKF(checkpoint_save(path, &st, params, NP, &opt) == 0, "%s", tr_error());
    CheckpointState back;
    memset(&back, 0xA5, sizeof back);
    CHECKF(checkpoint_load(path, &back, st.config_hash, loaded, NP, &opt2) == 0, "%s", tr_error());
    CHECK(back.config_hash == st.config_hash);
    CHECK(back.step == st.step);
    CHECK(back.tokens_seen == st.tokens_seen);
    CHECKF(back.loader.epoch == st.loader.epoch, "loader epoch %#llx", (unsigned long long)back.loader.epoch);
    CHECKF(back.loader.cursor == st.loader.cursor, "loader cursor %#llx", (unsigned long long)back.loader.cursor);
    CHECKF(back.elapsed_s == st.elapsed_s, "elapsed_s %.17g", back.elapsed_s);
    CHECK(back.model_hash == st.model_hash && back.batch_hash == st.batch_hash &&
          back.tokenizer_hash == st.tokenizer_hash);
    size_t len;
    char *bytes = tr_read_file(path, &len);
    CHECK(bytes && len == 128 + 3 * NP * sizeof(float) + 8);
    if (bytes && len >= 128) {
        uint64_t elapsed_bits;
        memcpy(&elapsed_bits, &st.elapsed_s, 8);
        CHECK(le64_at(bytes, 16) == st.config_hash && le64_at(bytes, 24) == NP);
        CHECK(le64_at(bytes, 32) == st.step && le64_at(bytes, 40) == st.tokens_seen && le64_at(bytes, 48) == opt.t);
        CHECK(le64_at(bytes, 64) == st.loader.epoch && le64_at(bytes, 72) == st.loader.cursor);
        CHECK(le64_at(bytes, 80) == elapsed_bits);
        CHECK(le64_at(bytes, 88) == st.model_hash && le64_at(bytes, 96) == st.batch_hash &&
              le64_at(bytes, 104) == st.tokenizer_hash);
    }
    free(bytes);
    adamw_free(&opt);
    adamw_free(&opt2);
}

static void expect_refused(const char *path, uint64_t hash, size_t n, int with_opt, const char *needle) {
    float params[NP], before[NP];
    AdamW opt;
    setup(params, &opt, 5);
    memcpy(before, params, sizeof params);
    CheckpointState st;
    CHECKF(checkpoint_load(path, &st, hash, params, n, with_opt ? &opt : NULL) == -1, "accepted (%s)", needle);
    CHECKF(strstr(tr_error(), needle) && strstr(tr_error(), path), "error '%s' lacks '%s'", tr_error(), needle);
    CHECK(memcmp(before, params, sizeof params) == 0);
    adamw_free(&opt);
}

static void test_refusals(void) {
    float params[NP];
    AdamW opt;
    setup(params, &opt, 1);
    CheckpointState st = {.config_hash = 99, .step = 1};
    const char *good = path_of("good.bin");
    CHECK(checkpoint_save(good, &st, params, NP, &opt) == 0);
    const char *model_only = path_of("model_only.bin");
    CHECK(checkpoint_save(model_only, &st, params, NP, NULL) == 0);
    adamw_free(&opt);

    expect_refused(good, 98, NP, 1, "config hash");
    expect_refused(good, 99, NP - 1, 1, "parameter count");
    expect_refused(model_only, 99, NP, 1, "no optimizer state");
    expect_refused(path_of("missing.bin"), 99, NP, 1, "cannot open");

    size_t len;
    char *bytes = tr_read_file(good, &len);
    CHECK(bytes != NULL);
    if (!bytes) return;
    const char *bad = path_of("bad.bin");
    test_write_file(bad, bytes, len / 2);
    expect_refused(bad, 99, NP, 1, "truncated");
    bytes[200] ^= 0x40;   /* a flipped bit inside the parameters */
    test_write_file(bad, bytes, len);
    expect_refused(bad, 99, NP, 1, "checksum");
    bytes[200] ^= 0x40;
    bytes[0] = 'X';
    test_write_file(bad, bytes, len);
    expect_refused(bad, 99, NP, 1, "magic");
    free(bytes);

    /* A model-only checkpoint is fine for sampling (no optimizer asked for). */
    float p2[NP];
    CheckpointState back;
    CHECK(checkpoint_load(model_only, &back, 99, p2, NP, NULL) == 0 && memcmp(p2, params, sizeof p2) == 0);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_state_fields_on_disk);
    RUN(test_refusals);
    return test_summary();
}
