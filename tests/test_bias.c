/* test_bias.c: additive score biases (posenc.h's "bias": ALiBi, FoX) and attention's bias path
 * (model/layers.c).
 *
 * - ALiBi's slopes for 8 and 12 heads against the numbers written out from the paper's rule.
 * - With q = 0 every q.k score is 0, so ALiBi's attention row is exp(-m (t - j)) normalised:
 *   compared with that geometric series in closed form.
 * - FoX: a against sums of log sigmoid computed here in double; two calls carrying the state
 *   equal one; its backward against central differences of that double formula; with every gate
 *   at 1 (a large gate bias) a model with FoX gives the probabilities of the same model without
 *   it, on NoPE and on RoPE, and with gates at 1/2 it does not.
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
#include "model/gpt.h"
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
    pe.bias->forward(&pe, 0, a, NULL, NULL, NULL, 1, 3, 5);
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
    pe.bias->forward(&pe, 0, a, qkv, NULL, NULL, B, T, 0);
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, 0, a, 0);
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
    if (reference) attention_forward_blockwise_reference(out, att, qkv, B, T, C, NH, S, block, a, 0);
    else attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, block, a, 0);
    (reference ? attention_backward_reference : attention_backward)(dqkv, R, qkv, att, B, T, C, NH, S, da, NULL);

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
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, 0, a, 0);
    attention_backward(dqkv, R, qkv, att, B, T, C, NH, S, da, NULL);
    for (int bh = 0; bh < B * NH; bh++) {
        double sum = 0, size = 0;
        for (int t = 0; t < T; t++) sum += da[(size_t)bh * T + t], size += fabs(da[(size_t)bh * T + t]);
        CHECKF(size > 1e-3 && fabs(sum) < 1e-5 * size, "head %d: d a sums to %g (|d a| %g)", bh, sum, size);
        for (int t = 0; t < T; t++) a[(size_t)bh * T + t] += 0.75f * (float)(bh + 1);
    }
    attention_forward_blockwise(out2, att, qkv, B, T, C, NH, S, 0, a, 0);
    CHECKF(rel_err(out2, out, n_out) < 1e-5, "shifted bias changes the output by %g", rel_err(out2, out, n_out));
    free(qkv), free(a), free(R), free(out), free(out2), free(att), free(dqkv), free(da);
}

/* A steep decaying bias (a FoX gate of 1/2 at every step) leaves no subnormal float in the
 * probabilities nor in the scores' gradient (layers.c flushes what lies below 2^-100), and the
 * output still matches the double forward. */
static void test_steep_bias_no_subnormals(void) {
    enum { B = 1, T = 200, NH = 2, C = 8, S = 3 * C };
    rng_seed(17);
    float *qkv = random_floats((size_t)B * T * S, 1.0f), *R = random_floats((size_t)B * T * C, 1e-3f);
    float a[B * NH * T], out[B * T * C];
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) a[h * T + t] = -0.693f * (float)(t + 1) * (float)(h + 1);
    float *att = xmalloc(sizeof(float) * B * NH * T * T), *ds = xmalloc(sizeof(float) * B * NH * T * T);
    float *dqkv = calloc((size_t)B * T * S, sizeof(float));
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, 0, a, 0);
    attention_backward(dqkv, R, qkv, att, B, T, C, NH, S, NULL, ds);
    long subnormal = 0, zeros = 0;
    for (size_t i = 0; i < (size_t)B * NH * T * T; i++) {
        subnormal += fpclassify(att[i]) == FP_SUBNORMAL || fpclassify(ds[i]) == FP_SUBNORMAL;
        zeros += att[i] == 0.0f;
    }
    CHECKF(subnormal == 0, "%ld subnormal probabilities or score gradients", subnormal);
    CHECK(zeros > (long)B * NH * T * (T - 1) / 2 + 1000); /* the far keys really are cut */
    double *qd = to_double(qkv, (size_t)B * T * S), *ad = to_double(a, (size_t)B * NH * T), *want = xmalloc(sizeof(double) * B * T * C);
    biased_attention_d(want, qd, ad, B, T, C, NH, S, 0);
    CHECKF(rel_err_d(out, want, (size_t)B * T * C) < 1e-5, "steep bias: output off by %g", rel_err_d(out, want, (size_t)B * T * C));
    free(qkv), free(R), free(att), free(ds), free(dqkv), free(qd), free(ad), free(want);
}

/* ---- FoX ---- */

enum { FB = 2, FT = 9, FNH = 3, FC = 6 };

/* Sum over (b, h, t) of R * a, a_t = sum_{s <= t} log sigmoid(z_s + b_f[h]), z = the fox columns
 * of qkv (at col, row stride S), in double. */
static double fox_loss_d(const double *qkv, const double *b_f, const double *R, long S, long col) {
    double total = 0;
    for (int b = 0; b < FB; b++)
        for (int h = 0; h < FNH; h++) {
            double a = 0;
            for (int t = 0; t < FT; t++) {
                const double z = qkv[((size_t)b * FT + t) * S + col + h] + b_f[h];
                a += -log(1 + exp(-z));
                total += R[((size_t)b * FNH + h) * FT + t] * a;
            }
        }
    return total;
}

typedef struct {
    double *qkv, *b_f, *R;
    long S, col;
} FoxCtx;
static double fox_ctx_loss(void *p) {
    FoxCtx *g = p;
    return fox_loss_d(g->qkv, g->b_f, g->R, g->S, g->col);
}

static void test_fox_values_state_and_backward(void) {
    PosEnc pe;
    ModelDims d = make_dims(FC, FNH, 32);
    CHECKF(create_json(&pe, "{\"kind\": \"rope\", \"bias\": {\"kind\": \"fox\", \"gate_bias\": 0.5}}", d) == 0, "%s",
           tr_error());
    if (test_current_failed) return;
    const long S = posenc_qkv_stride(&pe), col = posenc_bias_column(&pe);
    CHECK(S == 3 * FC + FNH && col == 3 * FC && posenc_bias_params(&pe) == (size_t)d.L * FNH);
    const size_t n_qkv = (size_t)FB * FT * S, n_a = (size_t)FB * FNH * FT;
    rng_seed(21);
    float *qkv = random_floats(n_qkv, 3.0f), *R = random_floats(n_a, 1.0f), params[2 * FNH], a[FB * FNH * FT];
    float *w = xmalloc(sizeof(float) * (size_t)d.L * (size_t)S * FC);
    pe.bias->init(&pe, params, w, (size_t)S * FC, 1);
    CHECK(params[0] == 0.5f && params[2 * FNH - 1] == 0.5f);
    params[FNH + 1] = -1.5f; /* layer 1, head 1 */
    const int l = 1;
    pe.bias->forward(&pe, l, a, qkv, params, NULL, FB, FT, 0);
    /* a against the running sums in double */
    double worst = 0;
    for (int b = 0; b < FB; b++)
        for (int h = 0; h < FNH; h++) {
            double sum = 0;
            for (int t = 0; t < FT; t++) {
                sum += -log(1 + exp(-((double)qkv[((size_t)b * FT + t) * S + col + h] + params[l * FNH + h])));
                worst = fmax(worst, fabs(a[((size_t)b * FNH + h) * FT + t] - sum));
            }
        }
    CHECKF(worst < 1e-5, "FoX a differs from the double running sum by %g", worst);
    /* positions 0..3 then 4..8 with the state (L, B, NH) carried equal one call */
    float state[2 * FB * FNH] = {0}, first[FB * FNH * 4], rest[FB * FNH * 5];
    float *qkv_rest = xmalloc(sizeof(float) * (size_t)FB * 5 * S), *qkv_first = xmalloc(sizeof(float) * (size_t)FB * 4 * S);
    for (int b = 0; b < FB; b++) {
        memcpy(qkv_first + (size_t)b * 4 * S, qkv + (size_t)b * FT * S, sizeof(float) * 4 * (size_t)S);
        memcpy(qkv_rest + (size_t)b * 5 * S, qkv + ((size_t)b * FT + 4) * S, sizeof(float) * 5 * (size_t)S);
    }
    pe.bias->forward(&pe, l, first, qkv_first, params, state, FB, 4, 0);
    pe.bias->forward(&pe, l, rest, qkv_rest, params, state, FB, 5, 4);
    int same = 1;
    for (int bh = 0; bh < FB * FNH; bh++)
        for (int t = 0; t < FT; t++)
            same &= a[(size_t)bh * FT + t] == (t < 4 ? first[bh * 4 + t] : rest[bh * 5 + t - 4]);
    CHECKF(same, "FoX over 4 + 5 positions with the state differs from one call over 9");
    /* backward: d qkv (the fox columns) and d b_f against central differences */
    float *dqkv = calloc(n_qkv, sizeof(float)), dparams[2 * FNH] = {0};
    pe.bias->backward(&pe, l, R, dqkv, qkv, params, dparams, FB, FT);
    double b_f[FNH];
    for (int h = 0; h < FNH; h++) b_f[h] = params[l * FNH + h];
    FoxCtx g = {to_double(qkv, n_qkv), b_f, to_double(R, n_a), S, col};
    double *fd = xmalloc(n_qkv * sizeof(double)), fd_b[FNH];
    finite_differences(fd, g.qkv, n_qkv, fox_ctx_loss, &g);
    finite_differences(fd_b, g.b_f, FNH, fox_ctx_loss, &g);
    const double eq = rel_err_d(dqkv, fd, n_qkv), eb = rel_err_d(dparams + l * FNH, fd_b, FNH);
    CHECKF(eq < 1e-6 && eb < 1e-6, "FoX backward: d qkv off by %g, d b_f by %g", eq, eb);
    int others = 1;
    for (int h = 0; h < FNH; h++) others &= dparams[h] == 0.0f; /* layer 0's b_f: untouched */
    CHECK(others);
    free(qkv), free(R), free(w), free(qkv_rest), free(qkv_first), free(dqkv), free(g.qkv), free(g.R), free(fd);
    posenc_destroy(&pe);
}

/* The largest |p - p'| between the probabilities of two models built from the same seed. */
static double probs_gap(const char *a_json, const char *b_json) {
    const GPTConfig cfg = {.V = 11, .L = 2, .C = 12, .NH = 3, .max_T = 16};
    GPT m[2];
    const char *json[2] = {a_json, b_json};
    int32_t tokens[2 * 16];
    for (int i = 0; i < 2 * 16; i++) tokens[i] = (int32_t)((i * 7 + 3) % cfg.V);
    for (int k = 0; k < 2; k++) {
        cJSON *o = cJSON_Parse(json[k]);
        const int rc = gpt_build(&m[k], &cfg, o, 5);
        cJSON_Delete(o);
        CHECKF(rc == 0, "%s: %s", json[k], tr_error());
        if (rc != 0) {
            if (k) gpt_free(&m[0]);
            return -1;
        }
        CHECK(gpt_forward(&m[k], tokens, NULL, 2, 16) == 0);
    }
    double gap = 0;
    for (size_t i = 0; i < (size_t)2 * 16 * cfg.V; i++) gap = fmax(gap, fabs(m[0].acts.probs[i] - m[1].acts.probs[i]));
    gpt_free(&m[0]);
    gpt_free(&m[1]);
    return gap;
}

static void test_fox_gates_at_one_change_nothing(void) {
    const char *base[] = {"none", "rope"};
    for (int i = 0; i < 2; i++) {
        char plain[64], open_gates[128], half_gates[128];
        snprintf(plain, sizeof plain, "{\"kind\": \"%s\"}", base[i]);
        snprintf(open_gates, sizeof open_gates, "{\"kind\": \"%s\", \"bias\": {\"kind\": \"fox\", \"gate_bias\": 30}}", base[i]);
        snprintf(half_gates, sizeof half_gates, "{\"kind\": \"%s\", \"bias\": \"fox\"}", base[i]);
        const double open_gap = probs_gap(plain, open_gates), half_gap = probs_gap(plain, half_gates);
        CHECKF(open_gap >= 0 && open_gap < 1e-6, "%s: FoX with f = 1 changes the probabilities by %g", base[i], open_gap);
        CHECKF(half_gap > 1e-4, "%s: FoX with f = 1/2 changes the probabilities by only %g", base[i], half_gap);
    }
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
        {"{\"kind\": \"none\", \"bias\": \"fog\"}", "posenc.bias: unknown bias \"fog\" (known: alibi, fox)"},
        {"{\"kind\": \"none\", \"bias\": {\"kind\": \"alibi\", \"slope\": 1}}", "posenc.bias.slope: unknown option"},
        {"{\"kind\": \"rope\", \"bias\": \"alibi\", \"base\": \"x\"}", "posenc.base"},
        {"{\"kind\": \"none\", \"bias\": {\"kind\": \"fox\", \"gate_bias\": \"high\"}}", "posenc.bias.gate_bias: must be"},
        {"{\"kind\": \"none\", \"bias\": {\"kind\": \"fox\", \"gate_bias\": 31}}", "posenc.bias.gate_bias: must be"},
        {"{\"kind\": \"none\", \"bias\": {\"kind\": \"fox\", \"gate\": 1}}", "posenc.bias.gate: unknown option"},
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
    RUN(test_steep_bias_no_subnormals);
    RUN(test_fox_values_state_and_backward);
    RUN(test_fox_gates_at_one_change_nothing);
    RUN(test_bias_options);
    return test_summary();
}
