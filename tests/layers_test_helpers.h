/* layers_test_helpers.h: what the layer tests share (tests/test_layers.c,
 * tests/test_layer_properties.c): a seeded uniform generator, float/double copies, normwise
 * errors, central finite differences, and every layer's forward written again in double precision,
 * independently of model/layers.c, as the reference both tests check against. */
#ifndef TINYROPE_LAYERS_TEST_HELPERS_H
#define TINYROPE_LAYERS_TEST_HELPERS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static inline void rng_seed(uint64_t seed) { rng_state = seed * 0x9e3779b97f4a7c15ULL + 1; }

/* uniform in [-1, 1) (splitmix64) */
static inline float rand_sym(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}

static inline float *random_floats(size_t n, float scale) {
    float *x = xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = scale * rand_sym();
    return x;
}

static inline double *to_double(const float *x, size_t n) {
    double *d = xmalloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static inline float *copy_floats(const float *x, size_t n) {
    float *y = xmalloc((n ? n : 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* max|got - want| / max|want| (want double) */
static inline double rel_err_d(const float *got, const double *want, size_t n) {
    double diff = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    return diff / scale;
}

static inline double rel_err(const float *got, const float *want, size_t n) {
    double diff = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)got[i] - (double)want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    return diff / scale;
}

static inline double dot_d(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Central differences of loss(ctx) with respect to each x[i] (x is what loss reads). */
typedef double (*LossFn)(void *ctx);
static inline void finite_differences(double *grad, double *x, size_t n, LossFn loss, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        double saved = x[i], h = 1e-5 * fmax(1.0, fabs(saved));
        x[i] = saved + h;
        double plus = loss(ctx);
        x[i] = saved - h;
        double minus = loss(ctx);
        x[i] = saved;
        grad[i] = (plus - minus) / (2 * h);
    }
}

/* Tolerance of a float backward against finite differences (normwise, see the top). */
#define GRAD_TOL 2e-6
/* Tolerance of a float forward against the double forward. */
#define FWD_TOL 1e-6

/* ---- double-precision forwards: the same formulas as layers.c, written independently ---- */

static inline void embedding_forward_d(double *out, const int32_t *tokens, const double *wte, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = wte[(size_t)tokens[n] * C + c];
}

static inline void layernorm_forward_d(double *out, double *mean, double *rstd, const double *inp,
                                const double *weight, int N, int C) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        double s = 1.0 / sqrt(v + 1e-5);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (x[c] - m) * s * weight[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = s;
    }
}

static inline void matmul_forward_d(double *out, const double *inp, const double *weight, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
            out[(size_t)n * OC + o] = s;
        }
}

/* att may be NULL. Reads only the first 3C columns of each qkv row. */
static inline void attention_forward_d(double *out, double *att, const double *qkv, int B, int T, int C, int NH,
                                int S) {
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    double *p = xmalloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * S + h * hs;
                double maxval = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * S + C + h * hs;
                    p[j] = 0;
                    for (int i = 0; i < hs; i++) p[j] += q[i] * k[i];
                    p[j] *= scale;
                    maxval = fmax(maxval, p[j]);
                }
                for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - maxval));
                for (int j = 0; j <= t; j++) p[j] /= sum;
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) {
                    o[i] = 0;
                    for (int j = 0; j <= t; j++) o[i] += p[j] * qkv[((size_t)b * T + j) * S + 2 * C + h * hs + i];
                }
                if (att)
                    for (int j = 0; j < T; j++) att[(((size_t)b * NH + h) * T + t) * T + j] = j <= t ? p[j] : 0;
            }
    free(p);
}

static inline double gelu_d(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2 / acos(-1.0)) * (x + 0.044715 * x * x * x)));
}

/* sum of -log softmax(logits)[target] over rows with a target; losses (N) may be NULL */
static inline double crossentropy_d(double *losses, const double *logits, const int32_t *targets, int N, int V) {
    double total = 0;
    for (int n = 0; n < N; n++) {
        const double *row = logits + (size_t)n * V;
        double maxval = row[0], sum = 0;
        for (int v = 1; v < V; v++) maxval = fmax(maxval, row[v]);
        for (int v = 0; v < V; v++) sum += exp(row[v] - maxval);
        double loss = targets[n] >= 0 ? log(sum) + maxval - row[targets[n]] : 0;
        if (losses) losses[n] = loss;
        total += loss;
    }
    return total;
}

#endif
