/* test_bias.c: additive score biases (posenc.h's "bias": ALiBi) and attention's bias path
 * (model/layers.c).
 *
 * - ALiBi's slopes for 8 and 12 heads against the numbers written out from the paper's rule.
 * - With q = 0 every q.k score is 0, so ALiBi's attention row is exp(-m (t - j)) normalised:
 *   compared with that geometric series in closed form.
 * - Attention with a bias a (scores + a[t] - a[j]): the fast and reference forwards against a
 *   double forward written here; the backward's d qkv and d a against central differences of
 *   that double forward (sizes cross the attention tile of 64 rows); the blockwise mask too.
 * - Invariance: a constant added to a head's a changes nothing, and the head's d a sums to 0.
 * - Options: a bias with a q/k kind, and each wrong form of "bias" gets one error naming it.
 * The whole-model gradient and KV-cache checks (tests/test_gpt.c) cover every registered bias
 * through tests/posenc_test_helpers.h.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/layers.h"
#include "model/posenc.h"
#include "tests/layers_test_helpers.h"
#include "tests/posenc_test_helpers.h"
#include "tests/test.h"

/* ---- ALiBi ---- */

/* a (1, NH, 3) from the alibi bias at positions 5, 6, 7; slope[h] = a[h][0] - a[h][1]. */
static void alibi_slopes(int NH, double *slope) {
    PosEnc pe;
    CHECKF(create_json(&pe, "{\"kind\": \"none\", \"bias\": \"alibi\"}", make_dims(2 * NH, NH, 16)) == 0, "%s",
           tr_error());
    if (test_current_failed) return;
    float a[3 * 16];
    pe.bias->forward(&pe, 0, a, NULL, 1, 3, 5);
    for (int h = 0; h < NH; h++) {
        slope[h] = (double)a[h * 3] - (double)a[h * 3 + 1];
        CHECKF(fabs(a[h * 3] + 5 * slope[h]) < 1e-5, "head %d: a at position 5 is %g, not -5 m", h, a[h * 3]);
    }
    posenc_destroy(&pe);
}

static void test_alibi_slopes(void) {
    /* 8 heads: 2^-1 .. 2^-8. 12 heads: the 8 of 8 heads, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5
     * (the odd-numbered slopes of 16 heads, 2^(-h/2) for h = 1, 3, 5, 7). */
    const double want8[8] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625};
    const double want12[12] = {0.5,       0.25,      0.125,     0.0625,   0.03125,   0.015625,
                               0.0078125, 0.00390625, 0.70710678, 0.35355339, 0.17677670, 0.08838835};
    double got[12];
    alibi_slopes(8, got);
    for (int h = 0; h < 8; h++) CHECKF(fabs(got[h] - want8[h]) < 1e-6 * want8[h] + 1e-7, "8 heads, head %d: %g, want %g", h, got[h], want8[h]);
    alibi_slopes(12, got);
    for (int h = 0; h < 12; h++)
        CHECKF(fabs(got[h] - want12[h]) < 1e-6 * want12[h] + 1e-7, "12 heads, head %d: %g, want %g", h, got[h], want12[h]);
}

/* q = 0: row t of head h is exp(-m (t - j)) (1 - r) / (1 - r^(t+1)), r = exp(-m), j <= t. */
static void test_alibi_attention_rows(void) {
    enum { B = 1, T = 40, NH = 4, C = 8, S = 3 * C };
    PosEnc pe;
    CHECKF(create_json(&pe, "{\"kind\": \"none\", \"bias\": \"alibi\"}", make_dims(C, NH, T)) == 0, "%s", tr_error());
    if (test_current_failed) return;
    rng_seed(3);
    float *qkv = random_floats((size_t)B * T * S, 1.0f), a[B * NH * T], out[B * T * C];
    float *att = xmalloc(sizeof(float) * B * NH * T * T);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < C; i++) qkv[(size_t)t * S + i] = 0.0f; /* q = 0 */
    pe.bias->forward(&pe, 0, a, qkv, B, T, 0);
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, 0, a);
    double worst = 0;
    for (int h = 0; h < NH; h++) {
        const double m = pow(2.0, -8.0 * (h + 1) / NH), r = exp(-m);
        for (int t = 0; t < T; t++)
            for (int j = 0; j <= t; j++) {
                const double want = exp(-m * (t - j)) * (1 - r) / (1 - pow(r, t + 1));
                worst = fmax(worst, fabs(att[((size_t)h * T + t) * T + j] - want));
            }
    }
    CHECKF(worst < 1e-6, "ALiBi rows differ from the geometric weights by %g", worst);
    free(qkv);
    free(att);
    posenc_destroy(&pe);
}

/* ---- attention with a bias ---- */

/* Causal attention in double with scores q.k/sqrt(hs) + a[t] - a[j] over keys j in the window
 * [first(t), t] (first = 0, or the blockwise rule of layers.h for block > 0). */
static void biased_attention_d(double *out, const double *qkv, const double *a, int B, int T, int C, int NH, int S,
                               int block) {
    const int hs = C / NH;
    double *p = xmalloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const int first = block > 0 && block * (t / block - 1) > 0 ? block * (t / block - 1) : 0;
                const double *q = qkv + ((size_t)b * T + t) * S + h * hs, *ah = a + ((size_t)b * NH + h) * T;
                double maxval = -INFINITY, sum = 0;
                for (int j = first; j <= t; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * S + C + h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    p[j] = s / sqrt((double)hs) + ah[t] - ah[j];
                    maxval = fmax(maxval, p[j]);
                }
                for (int j = first; j <= t; j++) sum += (p[j] = exp(p[j] - maxval));
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) {
                    o[i] = 0;
                    for (int j = first; j <= t; j++) o[i] += p[j] / sum * qkv[((size_t)b * T + j) * S + 2 * C + h * hs + i];
                }
            }
    free(p);
}

typedef struct {
    int B, T, C, NH, S, block;
    double *qkv, *a, *R, *out;
} BiasCtx;

static double biased_loss(void *p) {
    BiasCtx *g = p;
    biased_attention_d(g->out, g->qkv, g->a, g->B, g->T, g->C, g->NH, g->S, g->block);
    return dot_d(g->out, g->R, (size_t)g->B * g->T * g->C);
}

/* fast (reference = 0) or reference attention with a random bias: forward against the double
 * forward, backward (d qkv, d a) against central differences; block: the BCA window. */
static void check_biased_attention(int reference, int block) {
    enum { B = 2, T = 70, NH = 2, C = 8, S = 3 * C + 2 };
    const size_t n_qkv = (size_t)B * T * S, n_a = (size_t)B * NH * T, n_out = (size_t)B * T * C;
    rng_seed(11 + (uint64_t)reference + 7 * (uint64_t)block);
    float *qkv = random_floats(n_qkv, 1.0f), *a = random_floats(n_a, 2.0f), *R = random_floats(n_out, 1.0f);
    float *out = xmalloc(n_out * sizeof(float)), *att = xmalloc(sizeof(float) * B * NH * T * T);
    float *dqkv = calloc(n_qkv, sizeof(float)), *da = calloc(n_a, sizeof(float));
    if (reference) attention_forward_blockwise_reference(out, att, qkv, B, T, C, NH, S, block, a);
    else attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, block, a);
    (reference ? attention_backward_reference : attention_backward)(dqkv, R, qkv, att, B, T, C, NH, S, da);

    BiasCtx g = {B, T, C, NH, S, block, to_double(qkv, n_qkv), to_double(a, n_a), to_double(R, n_out),
                 xmalloc(n_out * sizeof(double))};
    biased_attention_d(g.out, g.qkv, g.a, B, T, C, NH, S, block);
    const double fwd = rel_err_d(out, g.out, n_out);
    CHECKF(fwd < FWD_TOL * 4, "%s, block %d: forward differs from the double forward by %g",
           reference ? "reference" : "fast", block, fwd);
    double *fd_a = xmalloc(n_a * sizeof(double)), *fd_qkv = xmalloc(n_qkv * sizeof(double));
    finite_differences(fd_a, g.a, n_a, biased_loss, &g);
    finite_differences(fd_qkv, g.qkv, n_qkv, biased_loss, &g);
    for (size_t i = 0; i < n_qkv; i++)
        if (i % S >= 3 * C) fd_qkv[i] = 0; /* the extra columns: attention leaves them */
    const double ea = rel_err_d(da, fd_a, n_a), eq = rel_err_d(dqkv, fd_qkv, n_qkv);
    CHECKF(ea < GRAD_TOL * 20 && eq < GRAD_TOL * 20, "%s, block %d: d a off by %g, d qkv by %g",
           reference ? "reference" : "fast", block, ea, eq);
    free(qkv), free(a), free(R), free(out), free(att), free(dqkv), free(da);
    free(g.qkv), free(g.a), free(g.R), free(g.out), free(fd_a), free(fd_qkv);
}

static void test_biased_attention_vs_double(void) {
    for (int reference = 0; reference <= 1; reference++) {
        check_biased_attention(reference, 0);
        check_biased_attention(reference, 16);
    }
}

/* a[t] + k_h for a constant k_h per head gives the same output, and each head's d a sums to 0
 * (sum_t sum_j dS[t,j] counted once with + and once with -). */
static void test_bias_shift_invariance(void) {
    enum { B = 2, T = 67, NH = 3, C = 12, S = 3 * C };
    const size_t n_qkv = (size_t)B * T * S, n_a = (size_t)B * NH * T, n_out = (size_t)B * T * C;
    rng_seed(5);
    float *qkv = random_floats(n_qkv, 1.0f), *a = random_floats(n_a, 3.0f), *R = random_floats(n_out, 1.0f);
    float *out = xmalloc(n_out * sizeof(float)), *out2 = xmalloc(n_out * sizeof(float));
    float *att = xmalloc(sizeof(float) * B * NH * T * T), *dqkv = calloc(n_qkv, sizeof(float));
    float *da = calloc(n_a, sizeof(float));
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, 0, a);
    attention_backward(dqkv, R, qkv, att, B, T, C, NH, S, da);
    for (int bh = 0; bh < B * NH; bh++) {
        double sum = 0, size = 0;
        for (int t = 0; t < T; t++) sum += da[(size_t)bh * T + t], size += fabs(da[(size_t)bh * T + t]);
        CHECKF(size > 1e-3 && fabs(sum) < 1e-5 * size, "head %d: d a sums to %g (|d a| %g)", bh, sum, size);
        for (int t = 0; t < T; t++) a[(size_t)bh * T + t] += 0.75f * (float)(bh + 1);
    }
    attention_forward_blockwise(out2, att, qkv, B, T, C, NH, S, 0, a);
    CHECKF(rel_err(out2, out, n_out) < 1e-5, "shifted bias changes the output by %g", rel_err(out2, out, n_out));
    free(qkv), free(a), free(R), free(out), free(out2), free(att), free(dqkv), free(da);
}

/* ---- options ---- */

static void test_bias_options(void) {
    ModelDims d = make_dims(16, 4, 32);
    PosEnc pe;
    CHECKF(create_json(&pe, "{\"kind\": \"rope\", \"bias\": {\"kind\": \"alibi\"}}", d) == 0, "%s", tr_error());
    CHECK(pe.kind && !strcmp(pe.kind->name, "rope") && pe.bias && !strcmp(pe.bias->name, "alibi"));
    posenc_destroy(&pe);
    CHECK(create_json(&pe, "{\"kind\": \"rope\"}", d) == 0 && pe.bias == NULL);
    posenc_destroy(&pe);
    const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"kind\": \"none\", \"bias\": 3}", "posenc.bias: must be"},
        {"{\"kind\": \"none\", \"bias\": {}}", "posenc.bias: must be"},
        {"{\"kind\": \"none\", \"bias\": \"fog\"}", "posenc.bias: unknown bias \"fog\" (known: alibi"},
        {"{\"kind\": \"none\", \"bias\": {\"kind\": \"alibi\", \"slope\": 1}}", "posenc.bias.slope: unknown option"},
        {"{\"kind\": \"rope\", \"bias\": \"alibi\", \"base\": \"x\"}", "posenc.base"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(create_json(&pe, bad[i].json, d) == -1 && strstr(tr_error(), bad[i].want), "%s: got \"%s\"", bad[i].json,
               tr_error());
        CHECK(pe.kind == NULL && pe.bias == NULL && pe.bias_impl == NULL);
    }
}

int main(void) {
    RUN(test_alibi_slopes);
    RUN(test_alibi_attention_rows);
    RUN(test_biased_attention_vs_double);
    RUN(test_bias_shift_invariance);
    RUN(test_bias_options);
    return test_summary();
}
