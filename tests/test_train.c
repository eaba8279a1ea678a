/* test_train.c: training as a whole: a tiny model overfits one batch; `./train run` resumed from a
 * checkpoint writes the same log rows as an uninterrupted run; bad configs and foreign
 * checkpoints are refused with one error line. */
#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include "base/util.h"
#include "cli/checkpoint.h"
#include "model/gpt.h"
#include "model/optim.h"
#include "tests/cli_test_helpers.h"

/* Overfitting one batch: the model, the backward and AdamW together can drive the loss to ~0. */
static void test_overfit_one_batch(void) {
    GPTConfig cfg = {.V = 64, .L = 2, .C = 32, .NH = 2, .max_T = 16};
    const int B = 4, T = 16, steps = test_small() ? 150 : 300;
    cJSON *pe = cJSON_Parse("{\"kind\": \"rope\"}");
    GPT m;
    CHECK(gpt_build(&m, &cfg, pe, 42) == 0);
    cJSON_Delete(pe);
    ParamGroup *groups;
    int n = gpt_param_groups(&m, 0.0f, 1.0f, 0.0f, &groups);
    AdamW opt;
    CHECK(adamw_init(&opt, m.num_params, groups, n, 0.9f, 0.95f, 1e-8f, 1.0f, 0) == 0);
    for (int g = 0; g < n; g++) free(groups[g].ranges);
    free(groups);
    int32_t tokens[4 * 16], targets[4 * 16];
    uint64_t rng = 7;
    for (int i = 0; i < B * T; i++) tokens[i] = (int32_t)(tr_rng_u64(&rng) % 64);
    for (int i = 0; i < B * T; i++) targets[i] = (int32_t)(tr_rng_u64(&rng) % 64);
    float first = 0, loss = 0;
    for (int s = 0; s < steps; s++) {
        gpt_forward(&m, tokens, targets, B, T);
        if (s == 0) first = m.mean_loss;
        loss = m.mean_loss;
        gpt_zero_grad(&m);
        gpt_backward(&m, tokens, 1.0f);
        adamw_step(&opt, m.params_memory, m.grads_memory, 1e-2f);
    }
    CHECKF(fabsf(first - logf(64.0f)) < 0.1f, "initial loss %f, want about log 64 = %f", first, logf(64.0f));
    CHECKF(loss < 0.1f, "loss after %d steps on one batch: %f (want < 0.1)", steps, loss);
    adamw_free(&opt);
    gpt_free(&m);
}

#define TINY_RUN "run configs/demo.json --set model.n_layer=1 --set model.n_embd=32 --set model.n_head=2 " \
                 "--set model.block_size=32 --set train.batch_size=4 --set train.max_steps=12 "            \
                 "--set train.eval_every=4 --set train.eval_max_tokens=2000 --set optim.warmup_steps=2"

static void test_resume_equals_uninterrupted(void) {
    const char *tmp = test_tmp_dir();
    char a[600], b[600], args[2048];
    snprintf(a, sizeof a, "%s/run_a", tmp);
    snprintf(b, sizeof b, "%s/run_b", tmp);
    snprintf(args, sizeof args, "rm -rf %s %s", a, b);
    CHECK(system(args) == 0);
    const char *kinds[] = {"rope", "learned"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, TINY_RUN " --set model.posenc.kind=%s --set out_dir=%s", kinds[k], a);
        CHECKF(run_train(args) == 0, "uninterrupted run: %s", err_buf);
        snprintf(args, sizeof args, TINY_RUN " --set model.posenc.kind=%s --set out_dir=%s --stop-at 6", kinds[k], b);
        CHECKF(run_train(args) == 0, "interrupted run: %s", err_buf);
        snprintf(args, sizeof args, TINY_RUN " --set model.posenc.kind=%s --set out_dir=%s --resume", kinds[k], b);
        CHECKF(run_train(args) == 0, "resumed run: %s", err_buf);
        char *la = cli_log_without_timing(a), *lb = cli_log_without_timing(b);
        CHECKF(strlen(la) > 100 && !strcmp(la, lb), "%s: logs differ:\n%s\nvs\n%s", kinds[k], la, lb);
        free(la);
        free(lb);
        /* A checkpoint from another model configuration is refused. */
        snprintf(args, sizeof args, TINY_RUN " --set model.posenc.kind=%s --set out_dir=%s --set model.n_layer=2 --resume",
                 kinds[k], b);
        CHECKF(run_train(args) == 1 && strstr(err_buf, "checkpoint.bin") && strstr(err_buf, "another model"),
               "foreign checkpoint not refused: %s", err_buf);
        snprintf(args, sizeof args, "rm -rf %s %s", a, b);
        CHECK(system(args) == 0);
    }
}

/* The val loss column of log.csv: first and last rows; returns the row count. */
static int first_last_val_loss(const char *dir, double *first, double *last) {
    double v[256];
    int n = cli_log_column(dir, 3, v, 256);
    if (n > 0) *first = v[0], *last = v[n - 1];
    return n;
}

/* Every registered positional kind trains: the validation loss falls over a short run of the demo config. */
static void test_every_kind_learns(void) {
    for (int k = 0; posenc_kinds[k]; k++) {   /* every registered kind, in both test passes */
        const char *kind = posenc_kinds[k]->name;
        char dir[600], args[2048];
        snprintf(dir, sizeof dir, "%s/learn_%s", test_tmp_dir(), kind);
        snprintf(args, sizeof args, "rm -rf %s", dir);
        CHECK(system(args) == 0);
        snprintf(args, sizeof args, TINY_RUN " --set model.posenc.kind=%s --set out_dir=%s --set train.max_steps=%d",
                 kind, dir, 24);
        CHECKF(run_train(args) == 0, "%s: %s", kind, err_buf);
        double first = 0, last = 0;
        int rows = first_last_val_loss(dir, &first, &last);
        CHECKF(rows >= 2 && last < first - 0.05, "%s: val loss %f -> %f over %d evals", kind, first, last, rows);
    }
}

/* ./train sample: a story that starts with the prompt, the same for the same seed; a damaged
 * checkpoint is refused. */
static void test_sample_command(void) {
    char dir[600], args[2048];
    snprintf(dir, sizeof dir, "%s/sample_run", test_tmp_dir());
    snprintf(args, sizeof args, "rm -rf %s", dir);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, TINY_RUN " --set out_dir=%s", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    char first[8192] = "";
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "sample %s --prompt 'The dog' --tokens 20 --seed 5", dir);
        CHECKF(run_train(args) == 0, "sample: %s", err_buf);
        if (k == 0) snprintf(first, sizeof first, "%.8000s", out_buf);
    }
    CHECKF(!strncmp(first, "The dog", 7) && strlen(first) > 8 && !strcmp(first, out_buf),
           "stories: '%s' then '%s'", first, out_buf);
    snprintf(args, sizeof args, "sh -c 'printf X | dd of=%s/checkpoint.bin bs=1 seek=300 conv=notrunc 2>/dev/null'", dir);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, "sample %s --tokens 5", dir);
    CHECKF(run_train(args) == 1 && strstr(err_buf, "checkpoint.bin") && strstr(err_buf, "checksum"),
           "damaged checkpoint not refused: %s", err_buf);
}

/* A NaN in the weights (here planted in a checkpoint) stops the run with a message, and the
 * checkpoint on disk stays as it was. */
static void test_nan_stops_the_run(void) {
    char dir[600], args[2048], ckpt[700];
    snprintf(dir, sizeof dir, "%s/nan_run", test_tmp_dir());
    snprintf(args, sizeof args, "rm -rf %s", dir);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, TINY_RUN " --set out_dir=%s --stop-at 4", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", dir);
    /* Read the header fields we need to rewrite it: the config hash and the parameter count. */
    size_t len;
    uint8_t *bytes = (uint8_t *)tr_read_file(ckpt, &len);
    CHECK(bytes && len > 128);
    if (!bytes) return;
    uint64_t hash = 0, n_params = 0;
    for (int i = 7; i >= 0; i--) { hash = (hash << 8) | bytes[16 + i]; n_params = (n_params << 8) | bytes[24 + i]; }
    free(bytes);
    float *params = xmalloc(n_params * sizeof *params);
    ParamRange range = {0, n_params};
    ParamGroup group = {.name = "all", .lr_mult = 1, .ranges = &range, .n_ranges = 1};
    AdamW opt;
    CHECK(adamw_init(&opt, n_params, &group, 1, 0.9f, 0.95f, 1e-8f, 1.0f, 0) == 0);
    CheckpointState st;
    CHECKF(checkpoint_load(ckpt, &st, hash, params, n_params, &opt) == 0, "%s", tr_error());
    for (size_t i = 0; i < n_params; i++) params[i] = NAN;
    CHECK(checkpoint_save(ckpt, &st, params, n_params, &opt) == 0);
    char *before = tr_read_file(ckpt, &len);
    snprintf(args, sizeof args, TINY_RUN " --set out_dir=%s --resume", dir);
    CHECKF(run_train(args) == 1 && strstr(err_buf, "nan"), "a NaN loss did not stop the run: %s", err_buf);
    size_t len_after;
    char *after = tr_read_file(ckpt, &len_after);
    CHECK(after && len_after == len && memcmp(before, after, len) == 0);
    free(before);
    free(after);
    free(params);
    adamw_free(&opt);
}

/* Each is refused before any work: the run directory is never created. */
static void expect_refused(const char *sets, const char *needle) {
    char dir[600], args[2048];
    snprintf(dir, sizeof dir, "%s/refused_run", test_tmp_dir());
    snprintf(args, sizeof args, "rm -rf %s", dir);
    CHECK(system(args) == 0);
    /* A tiny model, and one step, so a config wrongly accepted costs little. */
    snprintf(args, sizeof args, "run configs/demo.json --set out_dir=%s --set model.n_embd=32 --set model.n_head=2 "
             "--set train.max_steps=1 %s", dir, sets);
    CHECKF(run_train(args) == 1 && strstr(err_buf, needle), "%s: '%s' lacks '%s'", sets, err_buf, needle);
    CHECKF(!tr_file_exists(dir), "%s: the run directory was created before the config was checked", sets);
}

static void test_bad_configs(void) {
    expect_refused("--set model.n_head=5", "divisible");
    expect_refused("--set model.posenc.kind=alibi", "alibi");
    expect_refused("--set model.posenc.base=-1", "posenc.base");
    expect_refused("--set train.batch_size=0", "train.batch_size");
    expect_refused("--set model.posenc.kind=xpos --set model.posenc.variant=author --set model.block_size=4096", "2048");
    expect_refused("--set model.n_embd=30 --set model.n_head=2 --set model.posenc.kind=rope", "hs");
    expect_refused("--set data=/nonexistent/spec.json", "/nonexistent/spec.json");
    CHECK(run_train("run /nonexistent/config.json") == 1 && strstr(err_buf, "/nonexistent/config.json"));
}

int main(void) {
    RUN(test_overfit_one_batch);
    RUN(test_resume_equals_uninterrupted);
    RUN(test_every_kind_learns);
    RUN(test_sample_command);
    RUN(test_nan_stops_the_run);
    RUN(test_bad_configs);
    return test_summary();
}
