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
 * POSENC is a kind name ("rope") or a posenc JSON object ('{"kind": "hddrope", "chunk": 4}').
 * A kind with extra QKV outputs (HDD-RoPE's generator W_g) adds 6 L C E FLOPs per token to the
 * count above; their share is printed.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../data/util.h"
#include "../model/gpt.h"
#include "../model/layers.h"
#include "../model/optim.h"

static double sgemm_peak_gflops(void) {
    const int n = 2048;
    float *a = xmalloc((size_t)n * n * sizeof *a), *b = xmalloc((size_t)n * n * sizeof *b),
          *c = xmalloc((size_t)n * n * sizeof *c);
    uint64_t rng = 1;
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = tr_rng_uniform(&rng); b[i] = tr_rng_uniform(&rng); }
    double best = 1e30;
    for (int r = 0; r < 6; r++) {
        double t0 = tr_now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = tr_now_seconds() - t0;
        if (r > 0 && dt < best) best = dt;   /* the first run warms up */
    }
    free(a); free(b); free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

static void bench_shape(const char *kind, int C, int L, int NH, int T, int V, int B, double peak) {
    GPTConfig cfg = {.V = V, .L = L, .C = C, .NH = NH, .max_T = T};
    char options[512];
    if (kind[0] == '{') snprintf(options, sizeof options, "%s", kind);
    else snprintf(options, sizeof options, "{\"kind\": \"%s\"}", kind);
    cJSON *pe = cJSON_Parse(options);
    if (!pe) tr_die("bench: bad posenc JSON: %s", kind);
    GPT m;
    if (gpt_build(&m, &cfg, pe, 1) != 0) tr_die_with_error();
    cJSON_Delete(pe);
    ParamGroup *groups;
    int n = gpt_param_groups(&m, 0.1f, 1.0f, 0.0f, &groups);
    AdamW opt;
    if (adamw_init(&opt, m.num_params, groups, n, 0.9f, 0.95f, 1e-8f, 1.0f, 0) != 0) tr_die_with_error();
    size_t N = (size_t)B * T;
    int32_t *tokens = xmalloc(N * sizeof *tokens), *targets = xmalloc(N * sizeof *targets);
    uint64_t rng = 3;
    for (size_t i = 0; i < N; i++) { tokens[i] = (int32_t)(tr_rng_u64(&rng) % V); targets[i] = (int32_t)(tr_rng_u64(&rng) % V); }

    const int warmup = 1, steps = 4;
    double fwd = 0, bwd = 0, upd = 0, fastest = 1e30;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) { layer_profile = (LayerProfile){.enabled = 1}; fwd = bwd = upd = 0; }
        double t0 = tr_now_seconds();
        gpt_forward(&m, tokens, targets, B, T);
        double t1 = tr_now_seconds();
        gpt_zero_grad(&m);
        gpt_backward(&m, tokens, 1.0f);
        double t2 = tr_now_seconds();
        adamw_step(&opt, m.params_memory, m.grads_memory, 1e-4f);
        double t3 = tr_now_seconds();
        fwd += t1 - t0; bwd += t2 - t1; upd += t3 - t2;
        if (s >= warmup && t3 - t0 < fastest) fastest = t3 - t0;
    }
    layer_profile.enabled = 0;
    double step_s = (fwd + bwd + upd) / steps;
    double tok_s = (double)N / step_s;
    double extra_flops = 6.0 * L * (double)C * (m.S - 3 * C);   /* the posenc's extra QKV outputs */
    double flops_per_token = 6.0 * (12.0 * L * (double)C * C + (double)C * V) + 6.0 * L * (double)T * C + extra_flops;
    double gflops = flops_per_token * tok_s / 1e9;
    double mm = layer_profile.matmul_s / steps, att = layer_profile.attention_s / steps,
           pos = layer_profile.posenc_s / steps;
    printf("%s C=%d L=%d NH=%d T=%d V=%d B=%d (%zu tokens/step, %zu params)\n", kind, C, L, NH, T, V, B, N,
           m.num_params);
    printf("  %.0f tokens/s, %.1f ms/step (fastest %.1f): forward %.1f, backward %.1f, optimizer %.1f ms | "
           "matmuls %.1f, attention %.1f, posenc %.1f, the rest %.1f ms\n", tok_s, step_s * 1e3, fastest * 1e3,
           fwd / steps * 1e3, bwd / steps * 1e3, upd / steps * 1e3, mm * 1e3, att * 1e3, pos * 1e3,
           (step_s - mm - att - pos) * 1e3);
    printf("  %.1f model GFLOP/s = %.0f%% of the sgemm peak (%.2f MFLOP/token", gflops, 100.0 * gflops / peak,
           flops_per_token / 1e6);
    if (extra_flops > 0) printf(", %.1f%% of them in the extra QKV outputs", 100.0 * extra_flops / flops_per_token);
    printf(")\n");
    for (int g = 0; g < n; g++) free(groups[g].ranges);
    free(groups);
    free(tokens); free(targets);
    adamw_free(&opt);
    gpt_free(&m);
}

int main(int argc, char **argv) {
    const char *kind = argc > 1 ? argv[1] : "rope";
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double peak = sgemm_peak_gflops();
    printf("sgemm peak (2048^3, %d thread(s)): %.1f GFLOP/s\n", threads, peak);
    if (argc == 8) {
        bench_shape(kind, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]), peak);
    } else {
        bench_shape(kind, 768, 4, 16, 512, 4096, 4, peak);
        bench_shape(kind, 256, 4, 8, 256, 4096, 8, peak);
    }
    return 0;
}
