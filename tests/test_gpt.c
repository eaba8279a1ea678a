/* test_gpt.c: the whole model: its gradient against finite differences for every positional
 * encoding kind, the loss at init, that the parameter groups cover every parameter once, and that
 * the memory a training run is sized at is what the model allocates. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/util.h"
#include "model/gpt.h"
#include "tests/posenc_test_helpers.h"
#include "tests/test.h"

enum { TB = 2, TT = 5 };
static const GPTConfig tiny = {.V = 13, .L = 2, .C = 8, .NH = 2, .max_T = 8};

static void make_batch(int32_t *tokens, int32_t *targets, uint64_t seed) {
    uint64_t rng = seed;
    for (int i = 0; i < TB * TT; i++) {
        tokens[i] = (int32_t)(tr_rng_u64(&rng) % (uint64_t)tiny.V);
        targets[i] = (int32_t)(tr_rng_u64(&rng) % (uint64_t)tiny.V);
    }
    targets[TB * TT - 1] = -1;   /* a position without a target, as in the last validation window */
}

static double loss_at(GPT *m, const int32_t *tokens, const int32_t *targets) {
    CHECK(gpt_forward(m, tokens, targets, TB, TT) == 0);
    return m->mean_loss;
}

/* Directional derivatives: for a random direction d restricted to [start, start+count), the
 * analytic g.d against (L(p + eps d) - L(p - eps d)) / 2 eps. */
static void check_direction(GPT *m, const float *grads, size_t start, size_t count, const int32_t *tokens,
                            const int32_t *targets, uint64_t seed, const char *what, const char *kind) {
    if (!count) return;
    float *d = xmalloc(count * sizeof *d);
    uint64_t rng = seed;
    double gd = 0, dd = 0;
    for (size_t i = 0; i < count; i++) {
        d[i] = tr_rng_normal(&rng);
        dd += (double)d[i] * d[i];
    }
    for (size_t i = 0; i < count; i++) { d[i] /= (float)sqrt(dd); gd += (double)grads[start + i] * d[i]; }
    float *p = m->params_memory + start;
    float *saved = xmalloc(count * sizeof *saved);
    memcpy(saved, p, count * sizeof *saved);
    const float eps = 1e-2f;
    for (size_t i = 0; i < count; i++) p[i] = saved[i] + eps * d[i];
    double lp = loss_at(m, tokens, targets);
    for (size_t i = 0; i < count; i++) p[i] = saved[i] - eps * d[i];
    double lm = loss_at(m, tokens, targets);
    memcpy(p, saved, count * sizeof *saved);
    double fd = (lp - lm) / (2.0 * eps);
    double err = fabs(fd - gd), scale = fmax(fabs(fd), fabs(gd));
    CHECKF(err <= 5e-4 + 5e-3 * scale, "%s, %s: analytic %.6g vs finite difference %.6g", kind, what, gd, fd);
    free(d);
    free(saved);
}

static void gradient_check(const char *options_json) {
    cJSON *options = cJSON_Parse(options_json);
    GPT m;
    CHECKF(gpt_build(&m, &tiny, options, 7) == 0, "%s: %s", options_json, tr_error());
    cJSON_Delete(options);
    if (test_current_failed) return;
    /* Larger weights than the 0.02 init, so every path (attention, posenc) carries signal. */
    uint64_t rng = 99;
    for (size_t i = 0; i < m.num_params; i++) m.params_memory[i] += 0.3f * tr_rng_normal(&rng);
    int32_t tokens[TB * TT], targets[TB * TT];
    make_batch(tokens, targets, 3);
    CHECK(gpt_forward(&m, tokens, targets, TB, TT) == 0);
    gpt_zero_grad(&m);
    gpt_backward(&m, tokens, 1.0f);
    float *grads = xmalloc(m.num_params * sizeof *grads);
    memcpy(grads, m.grads_memory, m.num_params * sizeof *grads);

    static const char *names[] = {"wte", "ln1w", "qkvw", "attprojw", "ln2w", "fcw", "fcprojw", "lnfw", "posenc"};
    size_t start = 0;
    for (int t = 0; t <= GPT_NUM_PARAM_TENSORS; t++) {
        for (int r = 0; r < 3; r++)
            check_direction(&m, grads, start, m.param_sizes[t], tokens, targets, 1000 + 10 * t + r, names[t],
                            m.posenc.kind->name);
        start += m.param_sizes[t];
    }
    free(grads);
    gpt_free(&m);
}

static void test_gradients_every_kind(void) {
    char sets[64][256];
    int n = posenc_test_option_sets(sets, 64);
    CHECK(n >= 8);
    for (int i = 0; i < n; i++) gradient_check(sets[i]);
}

/* Backward accumulates: two backward passes with loss_scale 0.5 equal one with 1. */
static void test_backward_accumulates(void) {
    cJSON *options = cJSON_Parse("{\"kind\": \"rope\"}");
    GPT m;
    CHECK(gpt_build(&m, &tiny, options, 1) == 0);
    cJSON_Delete(options);
    int32_t tokens[TB * TT], targets[TB * TT];
    make_batch(tokens, targets, 5);
    gpt_zero_grad(&m);
    gpt_forward(&m, tokens, targets, TB, TT);
    gpt_backward(&m, tokens, 1.0f);
    float *once = xmalloc(m.num_params * sizeof *once);
    memcpy(once, m.grads_memory, m.num_params * sizeof *once);
    gpt_zero_grad(&m);
    for (int k = 0; k < 2; k++) {
        gpt_forward(&m, tokens, targets, TB, TT);
        gpt_backward(&m, tokens, 0.5f);
    }
    double worst = 0;
    for (size_t i = 0; i < m.num_params; i++) worst = fmax(worst, fabs(m.grads_memory[i] - once[i]));
    CHECKF(worst < 1e-6, "max difference %g", worst);
    free(once);
    gpt_free(&m);
}

static void test_init_loss_and_groups(void) {
    cJSON *options = cJSON_Parse("{\"kind\": \"learned\"}");
    GPT m;
    CHECK(gpt_build(&m, &tiny, options, 1) == 0);
    cJSON_Delete(options);
    int32_t tokens[TB * TT], targets[TB * TT];
    make_batch(tokens, targets, 5);
    gpt_forward(&m, tokens, targets, TB, TT);
    /* Small init: the prediction is near uniform. */
    CHECKF(fabs(m.mean_loss - log((double)tiny.V)) < 0.05, "loss %f vs log V %f", m.mean_loss, log((double)tiny.V));
    ParamGroup *groups;
    int n = gpt_param_groups(&m, 0.1f, 1.0f, 0.0f, &groups);
    char *covered = xcalloc(m.num_params, 1);
    for (int g = 0; g < n; g++) {
        for (int r = 0; r < groups[g].n_ranges; r++)
            for (size_t i = 0; i < groups[g].ranges[r].count; i++) covered[groups[g].ranges[r].start + i]++;
        free(groups[g].ranges);
    }
    size_t bad = 0;
    for (size_t i = 0; i < m.num_params; i++) bad += covered[i] != 1;
    CHECKF(bad == 0, "%zu parameters not in exactly one group", bad);
    free(groups);
    free(covered);
    gpt_free(&m);
}

/* Generating token by token with the KV cache gives the same next-token distribution at every
 * position as the full forward over the whole sequence, for every kind. */
static void kv_cache_check(const char *options_json) {
    cJSON *options = cJSON_Parse(options_json);
    GPT m;
    CHECKF(gpt_build(&m, &tiny, options, 11) == 0, "%s: %s", options_json, tr_error());
    cJSON_Delete(options);
    uint64_t rng = 5;
    for (size_t i = 0; i < m.num_params; i++) m.params_memory[i] += 0.3f * tr_rng_normal(&rng);
    const int T = tiny.max_T;
    int32_t tokens[8];
    for (int t = 0; t < T; t++) tokens[t] = (int32_t)(tr_rng_u64(&rng) % (uint64_t)tiny.V);
    CHECK(gpt_forward(&m, tokens, NULL, 1, T) == 0);
    KVCache kv;
    gpt_kv_init(&kv, &m);
    double worst = 0;
    for (int round = 0; round < 2; round++) {   /* twice: reset must start a clean sequence */
        gpt_kv_reset(&kv, &m);
        for (int t = 0; t < T; t++) {
            const float *logits = gpt_step(&m, &kv, tokens[t]);
            CHECK(logits != NULL);
            if (!logits) break;
            float maxv = logits[0];
            for (int i = 1; i < tiny.V; i++) maxv = fmaxf(maxv, logits[i]);
            double sum = 0;
            for (int i = 0; i < tiny.V; i++) sum += exp(logits[i] - maxv);
            for (int i = 0; i < tiny.V; i++) {
                double p = exp(logits[i] - maxv) / sum;
                worst = fmax(worst, fabs(p - m.acts.probs[(size_t)t * tiny.V + i]));
            }
        }
    }
    CHECKF(worst < 2e-6, "%s: cached probabilities differ from the full forward by %g", options_json, worst);
    CHECK(gpt_step(&m, &kv, 0) == NULL && strstr(tr_error(), "full"));
    gpt_kv_free(&kv);
    gpt_free(&m);
}

static void test_kv_cache_equals_full_forward(void) {
    char sets[64][256];
    int n = posenc_test_option_sets(sets, 64);
    for (int i = 0; i < n; i++) kv_cache_check(sets[i]);
}

static void test_bad_inputs(void) {
    GPT m;
    cJSON *options = cJSON_Parse("{\"kind\": \"rope\"}");
    GPTConfig bad = tiny;
    bad.NH = 3;
    CHECK(gpt_build(&m, &bad, options, 1) == -1 && strstr(tr_error(), "divisible"));
    CHECK(gpt_build(&m, &tiny, options, 1) == 0);
    int32_t tokens[TB * TT] = {0}, targets[TB * TT] = {0};
    tokens[3] = tiny.V;
    CHECK(gpt_forward(&m, tokens, targets, TB, TT) == -1 && strstr(tr_error(), "vocabulary"));
    tokens[3] = 0;
    CHECK(gpt_forward(&m, tokens, targets, 1, tiny.max_T + 1) == -1 && strstr(tr_error(), "block_size"));
    gpt_free(&m);
    cJSON_Delete(options);
}

/* gpt_training_bytes against a count by hand, against what gpt_build, the forward and AdamW
 * allocate for every kind, and saturating instead of wrapping for an absurd width. */
static void test_training_bytes(void) {
    /* V 5, L 1, C 4, NH 2, (B, T) = (2, 3), no posenc; N = 6 positions. Parameters: wte 20,
     * ln1w 4, qkvw 48, attprojw 16, ln2w 4, fcw 64, fcprojw 64, lnfw 4 = 224, times 4 with the
     * gradients and AdamW's m and v = 896. Activations, each padded to whole 64-byte lines of 16
     * floats: encoded 24 -> 32, ln1 24 -> 32 + statistics 2 x (6 -> 16), qkv 72 -> 80, atty 32,
     * att 36 -> 48, res2 32, ln2 32 + 2 x 16, fch 96, fch_gelu 96, res3 32, lnf 32 + 2 x 16,
     * probs 30 -> 32 = 672; their gradients (no statistics, att or probs) 496. 2064 floats, then
     * targets and losses 6 * 8 bytes: 8256 + 48. */
    const GPTConfig hand = {.V = 5, .L = 1, .C = 4, .NH = 2, .max_T = 3};
    cJSON *none = cJSON_Parse("{\"kind\": \"none\"}");
    GPT m;
    CHECK(gpt_build(&m, &hand, none, 1) == 0);
    CHECKF(gpt_training_bytes(&hand, &m.posenc, 2, 3) == 8304, "%zu bytes, want 8304",
           gpt_training_bytes(&hand, &m.posenc, 2, 3));
    CHECK(gpt_training_bytes(&hand, NULL, 2, 3) == 8304);
    gpt_free(&m);
    cJSON_Delete(none);

    char sets[64][256];
    int n = posenc_test_option_sets(sets, 64);
    for (int i = 0; i < n; i++) {
        cJSON *options = cJSON_Parse(sets[i]);
        CHECKF(gpt_build(&m, &tiny, options, 3) == 0, "%s: %s", sets[i], tr_error());
        cJSON_Delete(options);
        int32_t tokens[TB * TT], targets[TB * TT];
        make_batch(tokens, targets, 9);
        CHECK(gpt_forward(&m, tokens, targets, TB, TT) == 0);
        ParamGroup *groups;
        int n_groups = gpt_param_groups(&m, 0.1f, 1.0f, 0.0f, &groups);
        AdamW opt;
        CHECK(adamw_init(&opt, m.num_params, groups, n_groups, 0.9f, 0.95f, 1e-8f, 1.0f, 0) == 0);
        size_t floats = 2 * m.num_params + 2 * opt.n_params + m.num_acts + m.num_grad_acts;
        size_t allocated = floats * sizeof(float) + (size_t)TB * TT * (sizeof *m.targets + sizeof *m.losses);
        size_t counted = gpt_training_bytes(&tiny, &m.posenc, TB, TT);
        CHECKF(counted == allocated, "%s: counted %zu bytes, allocated %zu", sets[i], counted, allocated);
        CHECKF(gpt_training_bytes(&tiny, NULL, TB, TT) <= counted, "%s: the lower bound is above the count", sets[i]);
        adamw_free(&opt);
        for (int g = 0; g < n_groups; g++) free(groups[g].ranges);
        free(groups);
        gpt_free(&m);
    }

    const GPTConfig absurd = {.V = 258, .L = 1, .C = 1 << 30, .NH = 1, .max_T = 1};
    CHECK(gpt_training_bytes(&absurd, NULL, 1, 1) == SIZE_MAX);   /* 12 C^2 floats alone pass 2^64 */
}

int main(void) {
    RUN(test_training_bytes);
    RUN(test_gradients_every_kind);
    RUN(test_backward_accumulates);
    RUN(test_kv_cache_equals_full_forward);
    RUN(test_init_loss_and_groups);
    RUN(test_bad_inputs);
    return test_summary();
}
