/* bench_train.c: the training-step benchmark (make bench).
 *
 * 1. This machine's sgemm peak: the best of several 2048x2048x2048 cblas_sgemm runs.
 * 2. For each model shape: full training steps (forward, backward, AdamW) on random tokens,
 *    timed by phase, with the time in matmuls and attention from the layers' profiler.
 * Model FLOPs per token (llm.c's count: the weight matmuls at 2 FLOPs per multiply-add, x3 for
 * forward + backward, plus causal attention):
 *     6 * (12 L C^2 + C V) + 6 L T C
 * The fraction of peak = FLOPs/token * tokens/s / sgemm peak. Besides the mean over the timed
 * steps it prints the fastest step: on a shared machine the sgemm's speed varies from step to
 * step, and the fastest is the better estimate of what a step costs.
 *
 *   bench_train [POSENC] [C L NH T V B]   (no shape: the two shapes of the README table)
 *   bench_train --pair POSENC_A POSENC_B C L NH T V B [ROUNDS]
 * POSENC is a kind name ("rope") or a posenc JSON object ('{"kind": "hddrope", "chunk": 4}').
 * A kind with extra QKV outputs (HDD-RoPE's generator W_g) adds 6 L C E FLOPs per token to the
 * count above; their share is printed.
 *
 * --pair answers "what does B cost relative to A" on a machine whose speed drifts: both models
 * live in one process and their steps alternate (A, B, A, B, ...; ROUNDS pairs, default 10), so
 * a slow minute hits both. It prints each kind's median step, the ratio of the medians, and the
 * spread of the per-round ratios B/A (each from two adjacent steps).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/util.h"
#include "cli/args.h"
#include "model/gpt.h"
#include "model/layers.h"
#include "model/optim.h"
#include "tests/bench_helpers.h"

/* One model ready to train on random tokens: what a timed step needs. */
typedef struct {
    const char *kind;
    GPT model;
    AdamW opt;
    ParamGroup *groups;
    int n_groups, B, T;
    int32_t *tokens, *targets;   /* (B, T) */
    LayerProfile profile;        /* this bench's share of the layers' profiler (for --pair) */
} Bench;

static void bench_init(Bench *b, const char *kind, int C, int L, int NH, int T, int V, int B) {
    GPTConfig cfg = {.V = V, .L = L, .C = C, .NH = NH, .max_T = T};
    char options[512];
    if (kind[0] == '{') snprintf(options, sizeof options, "%s", kind);
    else snprintf(options, sizeof options, "{\"kind\": \"%s\"}", kind);
    cJSON *pe = cJSON_Parse(options);
    if (!pe) tr_die("bench: bad posenc JSON: %s", kind);
    memset(b, 0, sizeof *b);
    b->kind = kind; b->B = B; b->T = T;
    if (gpt_build(&b->model, &cfg, pe, 1) != 0) tr_die_with_error();
    cJSON_Delete(pe);
    b->n_groups = gpt_param_groups(&b->model, 0.1f, 1.0f, 0.0f, &b->groups);
    if (adamw_init(&b->opt, b->model.num_params, b->groups, b->n_groups, 0.9f, 0.95f, 1e-8f, 1.0f, 0) != 0)
        tr_die_with_error();
    size_t N = (size_t)B * T;
    b->tokens = xmalloc(N * sizeof *b->tokens); b->targets = xmalloc(N * sizeof *b->targets);
    uint64_t rng = 3;
    for (size_t i = 0; i < N; i++) {
        b->tokens[i] = (int32_t)(tr_rng_u64(&rng) % V); b->targets[i] = (int32_t)(tr_rng_u64(&rng) % V);
    }
}

/* One training step; adds its phases' seconds to phase[0..2] (forward, backward, optimizer) and
 * returns the whole step's. */
static double bench_step(Bench *b, double phase[3]) {
    double t0 = tr_now_seconds();
    gpt_forward(&b->model, b->tokens, b->targets, b->B, b->T);
    double t1 = tr_now_seconds();
    gpt_zero_grad(&b->model);
    gpt_backward(&b->model, b->tokens, 1.0f);
    double t2 = tr_now_seconds();
    adamw_step(&b->opt, b->model.params_memory, b->model.grads_memory, 1e-4f);
    double t3 = tr_now_seconds();
    phase[0] += t1 - t0; phase[1] += t2 - t1; phase[2] += t3 - t2;
    return t3 - t0;
}

static void bench_free(Bench *b) {
    for (int g = 0; g < b->n_groups; g++) free(b->groups[g].ranges);
    free(b->groups);
    free(b->tokens); free(b->targets);
    adamw_free(&b->opt);
    gpt_free(&b->model);
}

/* Model FLOPs per token (the header's count); *extra gets the posenc's extra QKV outputs' share. */
static double model_flops_per_token(const Bench *b, double *extra) {
    const GPTConfig *c = &b->model.config;
    double C = c->C, L = c->L;
    *extra = 6.0 * L * C * (b->model.S - 3 * c->C);
    return 6.0 * (12.0 * L * C * C + C * c->V) + 6.0 * L * (double)b->T * C + *extra;
}

static void bench_shape(const char *kind, int C, int L, int NH, int T, int V, int B, double peak) {
    Bench b;
    bench_init(&b, kind, C, L, NH, T, V, B);
    const int warmup = 1, steps = 4;
    double phase[3] = {0}, fastest = 1e30;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) { layer_profile = (LayerProfile){.enabled = 1}; phase[0] = phase[1] = phase[2] = 0; }
        double dt = bench_step(&b, phase);
        if (s >= warmup && dt < fastest) fastest = dt;
    }
    layer_profile.enabled = 0;
    size_t N = (size_t)B * T;
    double fwd = phase[0], bwd = phase[1], upd = phase[2];
    double step_s = (fwd + bwd + upd) / steps;
    double tok_s = (double)N / step_s;
    double extra_flops, flops_per_token = model_flops_per_token(&b, &extra_flops);
    double gflops = flops_per_token * tok_s / 1e9;
    double mm = layer_profile.matmul_s / steps, att = layer_profile.attention_s / steps,
           pos = layer_profile.posenc_s / steps;
    printf("%s C=%d L=%d NH=%d T=%d V=%d B=%d (%zu tokens/step, %zu params)\n", kind, C, L, NH, T, V, B, N,
           b.model.num_params);
    printf("  %.0f tokens/s, %.1f ms/step (fastest %.1f): forward %.1f, backward %.1f, optimizer %.1f ms | "
           "matmuls %.1f, attention %.1f, posenc %.1f, the rest %.1f ms\n", tok_s, step_s * 1e3, fastest * 1e3,
           fwd / steps * 1e3, bwd / steps * 1e3, upd / steps * 1e3, mm * 1e3, att * 1e3, pos * 1e3,
           (step_s - mm - att - pos) * 1e3);
    printf("  %.1f model GFLOP/s = %.0f%% of the sgemm peak (%.2f MFLOP/token", gflops, 100.0 * gflops / peak,
           flops_per_token / 1e6);
    if (extra_flops > 0) printf(", %.1f%% of them in the extra QKV outputs", 100.0 * extra_flops / flops_per_token);
    printf(")\n");
    bench_free(&b);
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {   /* sorts v */
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Steps of A and B alternated; the profiler's totals are swapped in and out so each kind keeps
 * its own matmul / attention / posenc split. */
static void bench_pair(const char *kind_a, const char *kind_b, int C, int L, int NH, int T, int V, int B,
                       int rounds) {
    Bench bench[2];
    bench_init(&bench[0], kind_a, C, L, NH, T, V, B);
    bench_init(&bench[1], kind_b, C, L, NH, T, V, B);
    double *step_s[2] = {xmalloc((size_t)rounds * sizeof(double)), xmalloc((size_t)rounds * sizeof(double))};
    double *ratio = xmalloc((size_t)rounds * sizeof *ratio);
    double phase[2][3] = {{0}};
    for (int r = -1; r < rounds; r++) {   /* round -1 warms both up */
        for (int k = 0; k < 2; k++) {
            layer_profile = bench[k].profile;
            layer_profile.enabled = r >= 0;
            double dt = bench_step(&bench[k], phase[k]);
            bench[k].profile = layer_profile;
            if (r >= 0) step_s[k][r] = dt;
            else phase[k][0] = phase[k][1] = phase[k][2] = 0;
        }
        if (r >= 0) ratio[r] = step_s[1][r] / step_s[0][r];
    }
    layer_profile.enabled = 0;
    printf("pair C=%d L=%d NH=%d T=%d V=%d B=%d, %d alternating rounds\n", C, L, NH, T, V, B, rounds);
    double med[2];
    for (int k = 0; k < 2; k++) {
        const LayerProfile *p = &bench[k].profile;
        double lo = 1e30, hi = 0;
        for (int r = 0; r < rounds; r++) { lo = fmin(lo, step_s[k][r]); hi = fmax(hi, step_s[k][r]); }
        med[k] = median(step_s[k], rounds);
        printf("  %s %s: median %.1f ms/step (%.1f-%.1f) | mean matmuls %.1f, attention %.1f, posenc %.1f ms\n",
               k ? "B" : "A", bench[k].kind, med[k] * 1e3, lo * 1e3, hi * 1e3, p->matmul_s / rounds * 1e3,
               p->attention_s / rounds * 1e3, p->posenc_s / rounds * 1e3);
    }
    double ratio_median = median(ratio, rounds);   /* sorted now: ratio[0] is the lowest */
    double extra[2], flops[2] = {model_flops_per_token(&bench[0], &extra[0]), model_flops_per_token(&bench[1], &extra[1])};
    printf("  B/A: ratio of medians %.3f; per-round ratios median %.3f, range %.3f-%.3f; model FLOPs %.3f\n",
           med[1] / med[0], ratio_median, ratio[0], ratio[rounds - 1], flops[1] / flops[0]);
    free(step_s[0]); free(step_s[1]); free(ratio);
    bench_free(&bench[0]); bench_free(&bench[1]);
}

int main(int argc, char **argv) {
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    if (argc > 1 && strcmp(argv[1], "--pair") == 0) {
        if (argc != 10 && argc != 11)
            tr_die("usage: bench_train --pair POSENC_A POSENC_B C L NH T V B [ROUNDS]");
        int rounds = argc == 11 ? atoi(argv[10]) : 10;
        if (rounds < 1) tr_die("bench_train: ROUNDS must be at least 1, not %s", argv[10]);
        printf("%d thread(s)\n", threads);
        bench_pair(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]), atoi(argv[8]),
                   atoi(argv[9]), rounds);
        return 0;
    }
    const char *kind = argc > 1 ? argv[1] : "rope";
    double peak = gemm_peak_gflops(0, 5);
    printf("sgemm peak (2048^3, %d thread(s)): %.1f GFLOP/s\n", threads, peak);
    if (argc == 8) {
        bench_shape(kind, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]), peak);
    } else {
        bench_shape(kind, 768, 4, 16, 512, 4096, 4, peak);
        bench_shape(kind, 256, 4, 8, 256, 4096, 8, peak);
    }
    return 0;
}
