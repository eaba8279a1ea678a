/* bench_posenc.c: the positional encoding's own cost, one layer's qk_forward + qk_backward, with
 * nothing else in the way (make bench-hdd prints it next to the whole training step).
 *
 *     bench_posenc [POSENC [B T C NH]]        (default: hddrope c = 4, the author's shape
 *                                               B=4 T=512 C=768 NH=16)
 * POSENC is a kind name or a posenc JSON object, as for bench_train. qkv (B,T,S) holds random
 * values (q, k of unit scale, generator columns of scale 0.1); each call gets a fresh copy, since
 * qk_forward rotates it in place; the saved activations are swept out of the cache before the
 * backward, as a training step's other layers do. Prints the best of several runs, in ms per
 * layer, and the same for all L = 4 layers of a step (x 4), to set against bench_train's step.
 *
 * For HDD-RoPE with dynamic generators it also prints the kind's FLOP floor and the rate the
 * measured time gives against this machine's sgemm peak (the best 2048^3 cblas_sgemm: the lane
 * kernels run in float). The floor counts, per chunk, position and layer, what
 * model/hddrope_lanes.c multiplies at s = 0 squarings, as docs/performance.md derives it:
 * the exponential, C (36 c^2 + 70 c) FLOPs per token and layer (18 c x c products: 3.5 for the
 * exponential in the forward and again in the backward, 8 in its reverse, the scan's 3, with the
 * products of symmetric and skew powers counted at half; the polynomial's blocks; q and k);
 * Cayley, C (18 c^2 + 16 c) (9 products: the elimination and W A twice, W^T dM W^T, the scan's 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/util.h"
#include "cli/args.h"
#include "model/posenc.h"
#include "tests/bench_helpers.h"

/* HDD-RoPE with dynamic generators: its chunk size, and whether its map is Cayley; else chunk 0. */
static int hdd_dynamic_chunk(const cJSON *json, int *cayley) {
    const cJSON *kind = cJSON_GetObjectItem(json, "kind"), *chunk = cJSON_GetObjectItem(json, "chunk");
    const cJSON *map = cJSON_GetObjectItem(json, "map"), *dynamic = cJSON_GetObjectItem(json, "dynamic");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "hddrope") != 0) return 0;
    if (cJSON_IsFalse(dynamic)) return 0;
    *cayley = cJSON_IsString(map) && strcmp(map->valuestring, "cayley") == 0;
    return cJSON_IsNumber(chunk) ? chunk->valueint : 4;
}

int main(int argc, char **argv) {
    const char *kind = argc > 1 ? argv[1] : "{\"kind\": \"hddrope\", \"chunk\": 4}";
    int B = 4, T = 512, C = 768, NH = 16;
    if (argc == 6) B = atoi(argv[2]), T = atoi(argv[3]), C = atoi(argv[4]), NH = atoi(argv[5]);
    else if (argc != 1 && argc != 2) tr_die("usage: bench_posenc [POSENC [B T C NH]]");
    char options[512];
    if (kind[0] == '{') snprintf(options, sizeof options, "%s", kind);
    else snprintf(options, sizeof options, "{\"kind\": \"%s\"}", kind);
    cJSON *json = cJSON_Parse(options);
    if (!json) tr_die("bench_posenc: bad posenc JSON: %s", kind);
    const int L = 4;
    PosEnc pe;
    if (posenc_create(&pe, json, (ModelDims){.L = L, .C = C, .NH = NH, .hs = C / NH, .max_T = T}) != 0)
        tr_die_with_error();
    int cayley = 0;
    const int hdd_chunk = hdd_dynamic_chunk(json, &cayley);
    cJSON_Delete(json);

    const long S = posenc_qkv_stride(&pe);
    const size_t N = (size_t)B * T, n_qkv = N * (size_t)S;
    const size_t n_params = pe.kind->num_params ? pe.kind->num_params(&pe) : 0;
    const size_t n_acts = pe.kind->num_acts ? pe.kind->num_acts(&pe, B, T) : 0;
    float *params = xcalloc(n_params + 1, sizeof(float)), *dparams = xcalloc(n_params + 1, sizeof(float));
    /* the activations on 64-byte lines, as the model allocates them (model/gpt.c) */
    float *acts = xaligned_alloc(64, (n_acts + 1) * sizeof(float)), *x = xcalloc(N * (size_t)C, sizeof(float));
    memset(acts, 0, (n_acts + 1) * sizeof(float));
    float *qkv0 = xmalloc(n_qkv * sizeof(float)), *qkv = xmalloc(n_qkv * sizeof(float));
    float *dqkv0 = xmalloc(n_qkv * sizeof(float)), *dqkv = xmalloc(n_qkv * sizeof(float));
    if (pe.kind->init) pe.kind->init(&pe, params, NULL, 0, 1);
    uint64_t rng = 7;
    for (size_t i = 0; i < n_qkv; i++) {
        const float scale = (long)(i % (size_t)S) < 3L * C ? 1.0f : 0.1f;
        qkv0[i] = scale * tr_rng_normal(&rng);
        dqkv0[i] = tr_rng_normal(&rng);
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    /* In a training step the other layers' work lies between a layer's forward and its backward:
     * by then its saved activations are out of the cache. Sweeping a buffer of twice the largest
     * last-level cache we expect (32 MiB) puts them there here too; qkv and dqkv are written just
     * before each call, as the QKV matmul and the attention backward leave them. */
    const size_t n_sweep = (size_t)64 << 20 >> 2;
    float *sweep = xcalloc(n_sweep, sizeof(float));
    double best_fwd = 1e30, best_bwd = 1e30, sink = 0;
    for (int r = 0; r < 6; r++) {
        memcpy(qkv, qkv0, n_qkv * sizeof(float));
        double t0 = tr_now_seconds();
        if (pe.kind->qk_forward) pe.kind->qk_forward(&pe, 0, qkv, x, params, acts, NULL, B, T, 0);
        double t1 = tr_now_seconds();
        for (size_t i = 0; i < n_sweep; i += 16) sweep[i] += 1.0f, sink += sweep[i];
        memcpy(dqkv, dqkv0, n_qkv * sizeof(float));
        double t2 = tr_now_seconds();
        if (pe.kind->qk_backward) pe.kind->qk_backward(&pe, 0, dqkv, qkv, x, params, dparams, acts, B, T, 0);
        double t3 = tr_now_seconds();
        if (r == 0) continue; /* warm-up: first touch of the buffers */
        if (t1 - t0 < best_fwd) best_fwd = t1 - t0;
        if (t3 - t2 < best_bwd) best_bwd = t3 - t2;
    }
    if (sink < 0) printf("(unreachable)\n"); /* (keeps the sweep) */
    free(sweep);
    printf("%s B=%d T=%d C=%d NH=%d, %d thread(s): forward %.2f ms, backward %.2f ms per layer; "
           "%d layers: %.1f ms per step\n", kind, B, T, C, NH, threads, best_fwd * 1e3, best_bwd * 1e3, L,
           L * (best_fwd + best_bwd) * 1e3);
    if (hdd_chunk > 0) {
        const double c = hdd_chunk, per_token = cayley ? 18 * c * c + 16 * c : 36 * c * c + 70 * c;
        const double floor_flops = (double)L * B * T * C * per_token;
        const double rate = floor_flops / (L * (best_fwd + best_bwd)) / 1e9, peak = gemm_peak_gflops(0, 3);
        printf("  FLOP floor %.2f GFLOP per step; at the measured time %.1f GFLOP/s = %.0f%% of the sgemm peak "
               "(%.1f GFLOP/s)\n", floor_flops / 1e9, rate, 100 * rate / peak, peak);
    }
    free(params), free(dparams), free(acts), free(x), free(qkv0), free(qkv), free(dqkv0), free(dqkv);
    posenc_destroy(&pe);
    return 0;
}
