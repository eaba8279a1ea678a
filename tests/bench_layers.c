/* bench_layers.c: speed of the layers at GPT-2-small-like sizes, against the machine's sgemm peak.
 *
 *     make BUILD=build build/tests/bench_layers && OMP_NUM_THREADS=2 build/tests/bench_layers
 *
 * Prints, each the best of several runs:
 * - sgemm peak: one square 2048 sgemm (2 n^3 FLOPs), the yardstick for everything else;
 * - matmul_forward and matmul_backward at N = 2048 rows for the linear layers of C = 768
 *   (qkv, fc, proj) and C = 256, in GFLOP/s and % of the peak;
 * - attention forward + backward at (B=4, NH=16, T=512, hs=48) and (B=8, NH=8, T=256, hs=32).
 *   FLOPs are counted as the dense products would be, 4 B NH T^2 hs forward and 8 B NH T^2 hs
 *   backward (as one usually counts attention for a training step's FLOPs), although the causal
 *   mask lets the tiled kernel skip about half of them;
 * - the elementwise and row layers (gelu, layernorm, cross-entropy) at N = 2048, in ms, for the
 *   share of a step they take.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/util.h"
#include "model/layers.h"

static float *random_floats(size_t n, float scale) {
    float *x = xmalloc(n * sizeof(float));
    uint64_t s = 0x9e3779b97f4a7c15ULL ^ n;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = scale * ((float)(s >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
    }
    return x;
}

/* Best wall time of `runs` calls of fn(ctx), after one warm-up call. */
static double best_seconds(void (*fn)(void *), void *ctx, int runs) {
    fn(ctx);
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = tr_now_seconds();
        fn(ctx);
        double dt = tr_now_seconds() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

typedef struct {
    int N, C, OC, B, T, NH, S, V;
    float *a, *b, *c, *d, *e, *f;
    int32_t *tokens;
} Ctx;

static void run_sgemm(void *p) {
    Ctx *x = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, x->N, x->N, x->N, 1.0f, x->a, x->N, x->b, x->N, 0.0f,
                x->c, x->N);
}
static void run_matmul_forward(void *p) {
    Ctx *x = p;
    matmul_forward(x->c, x->a, x->b, x->N, x->C, x->OC);
}
static void run_matmul_backward(void *p) {
    Ctx *x = p;
    matmul_backward(x->d, x->e, x->f, x->a, x->b, x->N, x->C, x->OC);
}
static void run_attention_forward(void *p) {
    Ctx *x = p;
    attention_forward(x->c, x->b, x->a, x->B, x->T, x->C, x->NH, x->S, NULL);
}
static void run_attention_backward(void *p) {
    Ctx *x = p;
    attention_backward(x->d, x->e, x->a, x->b, x->B, x->T, x->C, x->NH, x->S, NULL, NULL);
}
static void run_gelu(void *p) {
    Ctx *x = p;
    long n = (long)x->N * x->C;
    gelu_forward(x->b, x->a, n);
    gelu_backward(x->c, x->a, x->b, n);
}
static void run_layernorm(void *p) {
    Ctx *x = p;
    layernorm_forward(x->b, x->e, x->f, x->a, x->d, x->N, x->C);
    layernorm_backward(x->c, x->d + x->C, x->b, x->a, x->d, x->e, x->f, x->N, x->C);
}
static void run_crossentropy(void *p) {
    Ctx *x = p;
    memcpy(x->b, x->a, (size_t)x->N * x->V * sizeof(float));
    crossentropy_forward(x->b, NULL, x->tokens, x->N, x->V);
    crossentropy_backward(x->b, x->b, x->tokens, x->N, x->V, 1.0f / x->N);
}

int main(void) {
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("threads %d\n", threads);

    // the yardstick
    Ctx sq = {.N = 2048};
    size_t nsq = (size_t)sq.N * sq.N;
    sq.a = random_floats(nsq, 1.0f), sq.b = random_floats(nsq, 1.0f), sq.c = xmalloc(nsq * sizeof(float));
    double t = best_seconds(run_sgemm, &sq, 10);
    double peak = 2.0 * sq.N * sq.N * sq.N / t / 1e9;
    printf("sgemm 2048^3                   %8.2f ms  %7.1f GFLOP/s (peak)\n", t * 1e3, peak);
    free(sq.a), free(sq.b), free(sq.c);

    // linear layers
    static const int shapes[][2] = {{768, 2304}, {768, 3072}, {3072, 768}, {256, 768}};
    for (int s = 0; s < 4; s++) {
        Ctx m = {.N = 2048, .C = shapes[s][0], .OC = shapes[s][1]};
        size_t ni = (size_t)m.N * m.C, nw = (size_t)m.OC * m.C, no = (size_t)m.N * m.OC;
        m.a = random_floats(ni, 1.0f), m.b = random_floats(nw, 0.05f), m.c = xmalloc(no * sizeof(float));
        m.d = xcalloc(ni, sizeof(float)), m.e = xcalloc(nw, sizeof(float)), m.f = random_floats(no, 1.0f);
        double flops = 2.0 * m.N * m.C * m.OC;
        double tf = best_seconds(run_matmul_forward, &m, 10), tb = best_seconds(run_matmul_backward, &m, 10);
        printf("matmul fwd N=2048 C=%4d OC=%4d %8.2f ms  %7.1f GFLOP/s  %5.1f%% of peak\n", m.C, m.OC, tf * 1e3,
               flops / tf / 1e9, 100 * flops / tf / 1e9 / peak);
        printf("matmul bwd N=2048 C=%4d OC=%4d %8.2f ms  %7.1f GFLOP/s  %5.1f%% of peak\n", m.C, m.OC, tb * 1e3,
               2 * flops / tb / 1e9, 100 * 2 * flops / tb / 1e9 / peak);
        free(m.a), free(m.b), free(m.c), free(m.d), free(m.e), free(m.f);
    }

    // attention
    static const int att_shapes[][4] = {{4, 16, 512, 48}, {8, 8, 256, 32}}; // B, NH, T, hs
    for (int s = 0; s < 2; s++) {
        Ctx a = {.B = att_shapes[s][0], .NH = att_shapes[s][1], .T = att_shapes[s][2]};
        int hs = att_shapes[s][3];
        a.C = a.NH * hs, a.S = 3 * a.C;
        size_t nqkv = (size_t)a.B * a.T * a.S, nout = (size_t)a.B * a.T * a.C;
        size_t natt = (size_t)a.B * a.NH * a.T * a.T;
        a.a = random_floats(nqkv, 1.0f), a.b = xmalloc(natt * sizeof(float)), a.c = xmalloc(nout * sizeof(float));
        a.d = xcalloc(nqkv, sizeof(float)), a.e = random_floats(nout, 1.0f);
        double dense = (double)a.B * a.NH * a.T * a.T * hs;
        double tf = best_seconds(run_attention_forward, &a, 5), tb = best_seconds(run_attention_backward, &a, 5);
        printf("attention B=%d NH=%2d T=%3d hs=%2d fwd %7.2f ms  bwd %7.2f ms  fwd+bwd %7.2f ms  %7.1f GFLOP/s "
               "(dense-equivalent)  %5.1f%% of peak\n",
               a.B, a.NH, a.T, hs, tf * 1e3, tb * 1e3, (tf + tb) * 1e3, 12 * dense / (tf + tb) / 1e9,
               100 * 12 * dense / (tf + tb) / 1e9 / peak);
        free(a.a), free(a.b), free(a.c), free(a.d), free(a.e);
    }

    // the rest, at N = 2048 rows
    {
        Ctx g = {.N = 2048, .C = 3072};
        size_t n = (size_t)g.N * g.C;
        g.a = random_floats(n, 3.0f), g.b = xmalloc(n * sizeof(float)), g.c = xcalloc(n, sizeof(float));
        printf("gelu fwd+bwd N=2048 x 3072      %8.2f ms\n", best_seconds(run_gelu, &g, 5) * 1e3);
        free(g.a), free(g.b), free(g.c);
    }
    {
        Ctx l = {.N = 2048, .C = 768};
        size_t n = (size_t)l.N * l.C;
        l.a = random_floats(n, 1.0f), l.b = xmalloc(n * sizeof(float)), l.c = xcalloc(n, sizeof(float));
        l.d = random_floats(2 * (size_t)l.C, 1.0f);       // the weight, then dweight
        l.e = xmalloc(l.N * sizeof(float)), l.f = xmalloc(l.N * sizeof(float));
        printf("layernorm fwd+bwd N=2048 C=768  %8.2f ms\n", best_seconds(run_layernorm, &l, 5) * 1e3);
        free(l.a), free(l.b), free(l.c), free(l.d), free(l.e), free(l.f);
    }
    {
        Ctx x = {.N = 2048, .V = 4096};
        size_t n = (size_t)x.N * x.V;
        x.a = random_floats(n, 5.0f), x.b = xmalloc(n * sizeof(float)), x.tokens = xmalloc(x.N * sizeof(int32_t));
        for (int i = 0; i < x.N; i++) x.tokens[i] = (i * 7919) % x.V;
        printf("crossentropy fwd+bwd N=2048 V=4096 %5.2f ms (includes a copy of the logits)\n",
               best_seconds(run_crossentropy, &x, 5) * 1e3);
        free(x.a), free(x.b), free(x.tokens);
    }
    return 0;
}
