/* test_path.c: the PaTH kind (model/posenc_path.c) against independent numbers.
 *
 * - Scores against an explicit double reference that builds every H_t = I - beta_t w_t w_t^T as a
 *   matrix and multiplies the products out, at small T with random gates.
 * - beta = 0 (every H = I): the scores are q . k / sqrt(hs), NoPE's.
 * - One fixed w with beta = 2: H is the reflection R = I - 2 w w^T, so s[i][j] is k_j . q_i when
 *   i - j is even and k_j^T R q_i when it is odd.
 * - scores_backward against central differences of the double reference, for q, k and the gate
 *   columns (u and z) at once.
 * - The fast twin (16 queries in lanes) against the reference walk, forward and backward, over
 *   several query blocks and a partial one (T = 37), for hs = 4 and an odd hs = 5.
 * - Attention with given scores (layers.h, scores_given): fast and reference agree; scores equal to
 *   q . k / sqrt(hs) give plain attention; the scores' gradient matches central differences of a
 *   double softmax-and-values forward, and dq, dk are left to the kind.
 * - An unknown option is refused with one error line.
 * The whole-model gradient and KV-cache checks (tests/test_gpt.c) cover "path" and PaTH-FoX
 * through the registry's test options.
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

enum { B = 2, T = 7, NH = 2, HS = 4, C = NH * HS };

/* s (B, NH, T, T) for j <= i from qkv (B, T, S) in double, with explicit matrices: w_t = u_t / n_t
 * (n_t = sqrt(|u_t|^2 + 1e-12)), beta_t = 2 sigmoid(z_t), P = H_{j+1} .. H_i multiplied out. */
static void reference_scores(double *s, const double *qkv, long S) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                double P[HS][HS];
                for (int r = 0; r < HS; r++)
                    for (int c = 0; c < HS; c++) P[r][c] = r == c;
                for (int j = i; j >= 0; j--) {
                    if (j < i) { /* P <- H_{j+1} P */
                        const double *row = qkv + ((size_t)b * T + j + 1) * S, *u = row + 3 * C + h * HS;
                        double n = 1e-12, w[HS], H[HS][HS], Q[HS][HS];
                        for (int c = 0; c < HS; c++) n += u[c] * u[c];
                        for (int c = 0; c < HS; c++) w[c] = u[c] / sqrt(n);
                        const double beta = 2.0 / (1.0 + exp(-row[4 * C + h]));
                        for (int r = 0; r < HS; r++)
                            for (int c = 0; c < HS; c++) H[r][c] = (r == c) - beta * w[r] * w[c];
                        for (int r = 0; r < HS; r++)
                            for (int c = 0; c < HS; c++) {
                                Q[r][c] = 0;
                                for (int m = 0; m < HS; m++) Q[r][c] += H[r][m] * P[m][c];
                            }
                        memcpy(P, Q, sizeof P);
                    }
                    const double *q = qkv + ((size_t)b * T + i) * S + h * HS, *k = qkv + ((size_t)b * T + j) * S + C + h * HS;
                    double v = 0;
                    for (int r = 0; r < HS; r++)
                        for (int c = 0; c < HS; c++) v += k[r] * P[r][c] * q[c];
                    s[(((size_t)b * NH + h) * T + i) * T + j] = v / sqrt((double)HS);
                }
            }
}

typedef struct {
    PosEnc pe;
    long S;
    float *qkv, *params, *acts, *scores;
} Setup;

static int setup(Setup *x, uint64_t seed) {
    memset(x, 0, sizeof *x);
    if (create_json(&x->pe, "{\"kind\": \"path\"}", make_dims(C, NH, 16)) != 0) {
        CHECKF(0, "%s", tr_error());
        return -1;
    }
    x->S = posenc_qkv_stride(&x->pe);
    CHECK(x->S == 3 * C + C + NH);
    rng_seed(seed);
    x->qkv = random_floats((size_t)B * T * x->S, 1.0f);
    x->acts = xmalloc(sizeof(float) * x->pe.kind->num_acts(&x->pe, B, T));
    x->scores = calloc((size_t)B * NH * T * T, sizeof(float));
    return 0;
}
static void teardown(Setup *x) {
    free(x->qkv), free(x->acts), free(x->scores);
    posenc_destroy(&x->pe);
}

/* max |s - want| over j <= i */
static double scores_gap(const float *s, const double *want) {
    double gap = 0;
    for (int bh = 0; bh < B * NH; bh++)
        for (int i = 0; i < T; i++)
            for (int j = 0; j <= i; j++) {
                const size_t at = ((size_t)bh * T + i) * T + j;
                gap = fmax(gap, fabs(s[at] - want[at]));
            }
    return gap;
}

static void test_scores_against_explicit_products(void) {
    Setup x;
    if (setup(&x, 1) != 0) return;
    for (int n = 0; n < B * T; n++) /* gates from strong projections to near-identities */
        for (int h = 0; h < NH; h++) x.qkv[(size_t)n * x.S + 4 * C + h] = 3.0f * rand_sym();
    x.pe.kind->scores_forward(&x.pe, 1, x.scores, x.qkv, NULL, x.acts, B, T);
    double *want = xmalloc(sizeof(double) * B * NH * T * T), *qkv = to_double(x.qkv, (size_t)B * T * x.S);
    reference_scores(want, qkv, x.S);
    const double gap = scores_gap(x.scores, want);
    CHECKF(gap < 2e-6, "PaTH scores differ from the explicit products by %g", gap);
    free(want), free(qkv);
    teardown(&x);
}

static void test_beta_zero_is_nope(void) {
    Setup x;
    if (setup(&x, 2) != 0) return;
    for (int n = 0; n < B * T; n++)
        for (int h = 0; h < NH; h++) x.qkv[(size_t)n * x.S + 4 * C + h] = -200.0f; /* beta = 2 sigmoid(-200) = 0 */
    x.pe.kind->scores_forward(&x.pe, 0, x.scores, x.qkv, NULL, x.acts, B, T);
    double *want = xmalloc(sizeof(double) * B * NH * T * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++)
                for (int j = 0; j <= i; j++) {
                    double v = 0;
                    for (int c = 0; c < HS; c++)
                        v += (double)x.qkv[((size_t)b * T + i) * x.S + h * HS + c] * x.qkv[((size_t)b * T + j) * x.S + C + h * HS + c];
                    want[(((size_t)b * NH + h) * T + i) * T + j] = v / sqrt((double)HS);
                }
    const double gap = scores_gap(x.scores, want);
    CHECKF(gap < 1e-6, "PaTH with beta = 0 differs from q . k / sqrt(hs) by %g", gap);
    free(want);
    teardown(&x);
}

static void test_fixed_reflection(void) {
    Setup x;
    if (setup(&x, 3) != 0) return;
    const double u[HS] = {0.3, -1.2, 0.5, 2.0};
    double norm = 0;
    for (int c = 0; c < HS; c++) norm += u[c] * u[c];
    for (int n = 0; n < B * T; n++)
        for (int h = 0; h < NH; h++) {
            for (int c = 0; c < HS; c++) x.qkv[(size_t)n * x.S + 3 * C + h * HS + c] = (float)u[c];
            x.qkv[(size_t)n * x.S + 4 * C + h] = 200.0f; /* beta = 2 */
        }
    x.pe.kind->scores_forward(&x.pe, 0, x.scores, x.qkv, NULL, x.acts, B, T);
    double *want = xmalloc(sizeof(double) * B * NH * T * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const float *q = x.qkv + ((size_t)b * T + i) * x.S + h * HS;
                double Rq[HS], wq = 0; /* R q = q - 2 w (w . q), w = u / |u| */
                for (int c = 0; c < HS; c++) wq += u[c] * q[c] / sqrt(norm);
                for (int c = 0; c < HS; c++) Rq[c] = q[c] - 2 * wq * u[c] / sqrt(norm);
                for (int j = 0; j <= i; j++) {
                    const float *k = x.qkv + ((size_t)b * T + j) * x.S + C + h * HS;
                    double v = 0;
                    for (int c = 0; c < HS; c++) v += k[c] * ((i - j) % 2 ? Rq[c] : q[c]);
                    want[(((size_t)b * NH + h) * T + i) * T + j] = v / sqrt((double)HS);
                }
            }
    const double gap = scores_gap(x.scores, want);
    CHECKF(gap < 2e-6, "PaTH with one reflection differs from R^(i-j) by %g", gap);
    free(want);
    teardown(&x);
}

typedef struct {
    double *qkv, *R, *s;
    long S;
} FdCtx;
static double fd_loss(void *p) {
    FdCtx *g = p;
    reference_scores(g->s, g->qkv, g->S);
    double total = 0;
    for (size_t at = 0; at < (size_t)B * NH * T * T; at++) total += g->R[at] * g->s[at];
    return total;
}

static void test_backward_vs_finite_differences(void) {
    Setup x;
    if (setup(&x, 4) != 0) return;
    const size_t n_qkv = (size_t)B * T * x.S, n_s = (size_t)B * NH * T * T;
    float *R = random_floats(n_s, 1.0f), *dqkv = calloc(n_qkv, sizeof(float));
    for (int bh = 0; bh < B * NH; bh++) /* the scores' gradient is 0 above the diagonal */
        for (int i = 0; i < T; i++)
            for (int j = i + 1; j < T; j++) R[((size_t)bh * T + i) * T + j] = 0.0f;
    x.pe.kind->scores_forward(&x.pe, 0, x.scores, x.qkv, NULL, x.acts, B, T);
    x.pe.kind->scores_backward(&x.pe, 0, R, dqkv, x.qkv, NULL, NULL, x.acts, B, T);
    FdCtx g = {to_double(x.qkv, n_qkv), to_double(R, n_s), xmalloc(n_s * sizeof(double)), x.S};
    double *fd = xmalloc(n_qkv * sizeof(double));
    finite_differences(fd, g.qkv, n_qkv, fd_loss, &g);
    for (size_t i = 0; i < n_qkv; i++)
        if (i % (size_t)x.S >= 2 * C && i % (size_t)x.S < 3 * C) CHECK(dqkv[i] == 0.0f); /* v: not PaTH's */
    const double err = rel_err_d(dqkv, fd, n_qkv);
    CHECKF(err < 2e-5, "PaTH backward differs from finite differences by %g (normwise)", err);
    free(R), free(dqkv), free(g.qkv), free(g.R), free(g.s), free(fd);
    teardown(&x);
}

/* model/posenc_path.c: 1 runs the reference walk in the training hooks */
void path_use_reference(int on);

static void lanes_vs_reference(int hs) {
    enum { LB = 2, LT = 37, LNH = 2 };
    const int LC = LNH * hs;
    PosEnc pe;
    CHECKF(create_json(&pe, "{\"kind\": \"path\"}", make_dims(LC, LNH, 64)) == 0, "%s", tr_error());
    if (test_current_failed) return;
    const long S = posenc_qkv_stride(&pe);
    const size_t n_qkv = (size_t)LB * LT * S, n_s = (size_t)LB * LNH * LT * LT;
    rng_seed(77 + (uint64_t)hs);
    float *qkv = random_floats(n_qkv, 1.0f), *dS = random_floats(n_s, 1.0f);
    for (size_t at = 0; at < n_s; at++)
        if (at % LT > (at / LT) % LT) dS[at] = 0.0f;
    float *acts = xmalloc(sizeof(float) * pe.kind->num_acts(&pe, LB, LT)), *s[2], *d[2];
    for (int ref = 0; ref < 2; ref++) {
        path_use_reference(ref);
        s[ref] = calloc(n_s, sizeof(float)), d[ref] = calloc(n_qkv, sizeof(float));
        pe.kind->scores_forward(&pe, 1, s[ref], qkv, NULL, acts, LB, LT);
        pe.kind->scores_backward(&pe, 1, dS, d[ref], qkv, NULL, NULL, acts, LB, LT);
    }
    path_use_reference(0);
    for (size_t at = 0; at < n_s; at++) /* above the diagonal: neither writes */
        if (at % LT > (at / LT) % LT) s[0][at] = s[1][at] = 0.0f;
    const double es = rel_err(s[0], s[1], n_s), ed = rel_err(d[0], d[1], n_qkv);
    CHECKF(es < 1e-6 && ed < 1e-5, "hs %d: lanes against the reference walk: scores %g, gradients %g", hs, es, ed);
    for (int ref = 0; ref < 2; ref++) free(s[ref]), free(d[ref]);
    free(qkv), free(dS), free(acts);
    posenc_destroy(&pe);
}

static void test_lanes_vs_reference(void) {
    lanes_vs_reference(4);
    lanes_vs_reference(5);
}

/* ---- attention with given scores ---- */

enum { AB = 2, AT = 70, ANH = 2, AC = 8, AS = 3 * AC };

typedef struct {
    double *s, *v, *R;
} GivenCtx;
/* sum of R * (softmax over j <= i of s[i][j]) . v, in double */
static double given_loss(void *p) {
    GivenCtx *g = p;
    const int hs = AC / ANH;
    double total = 0, w[AT];
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < ANH; h++)
            for (int i = 0; i < AT; i++) {
                const double *row = g->s + (((size_t)b * ANH + h) * AT + i) * AT;
                double m = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) m = fmax(m, row[j]);
                for (int j = 0; j <= i; j++) sum += (w[j] = exp(row[j] - m));
                for (int c = 0; c < hs; c++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) o += w[j] / sum * g->v[((size_t)b * AT + j) * AS + 2 * AC + h * hs + c];
                    total += o * g->R[((size_t)b * AT + i) * AC + h * hs + c];
                }
            }
    return total;
}

static void test_attention_with_given_scores(void) {
    const size_t n_qkv = (size_t)AB * AT * AS, n_s = (size_t)AB * ANH * AT * AT, n_out = (size_t)AB * AT * AC;
    rng_seed(9);
    float *qkv = random_floats(n_qkv, 1.0f), *S0 = random_floats(n_s, 2.0f), *R = random_floats(n_out, 1.0f);
    float *att[2], *out[2], *dqkv[2], *ds[2];
    for (int ref = 0; ref < 2; ref++) {
        att[ref] = copy_floats(S0, n_s), out[ref] = xmalloc(n_out * sizeof(float));
        dqkv[ref] = calloc(n_qkv, sizeof(float)), ds[ref] = xmalloc(n_s * sizeof(float));
        if (ref) attention_forward_blockwise_reference(out[ref], att[ref], qkv, AB, AT, AC, ANH, AS, 0, NULL, 1);
        else attention_forward_blockwise(out[ref], att[ref], qkv, AB, AT, AC, ANH, AS, 0, NULL, 1);
        (ref ? attention_backward_reference : attention_backward)(dqkv[ref], R, qkv, att[ref], AB, AT, AC, ANH, AS, NULL,
                                                                  ds[ref]);
    }
    CHECKF(rel_err(out[0], out[1], n_out) < 1e-5, "given scores: fast and reference outputs differ by %g",
           rel_err(out[0], out[1], n_out));
    CHECKF(rel_err(ds[0], ds[1], n_s) < 1e-5, "given scores: fast and reference dS differ by %g", rel_err(ds[0], ds[1], n_s));
    int qk_untouched = 1;
    for (size_t i = 0; i < n_qkv; i++) qk_untouched &= i % AS >= 2 * AC || (dqkv[0][i] == 0.0f && dqkv[1][i] == 0.0f);
    CHECKF(qk_untouched, "with dscores, attention_backward wrote dq or dk");
    GivenCtx g = {to_double(S0, n_s), to_double(qkv, n_qkv), to_double(R, n_out)};
    /* every 7th score (all would take seconds under the sanitizers), the diagonal's neighbours included */
    double worst = 0, size = 1e-30;
    for (size_t i = 0; i < n_s; i += 7) {
        double fd = 0;
        if (i % AT <= (i / AT) % AT) { /* j <= i: a score; above the diagonal the gradient is 0 */
            const double saved = g.s[i];
            g.s[i] = saved + 1e-5;
            const double plus = given_loss(&g);
            g.s[i] = saved - 1e-5;
            fd = (plus - given_loss(&g)) / 2e-5;
            g.s[i] = saved;
        }
        worst = fmax(worst, fabs(ds[0][i] - fd)), size = fmax(size, fabs(fd));
    }
    CHECKF(worst < 1e-5 * size, "dS differs from finite differences by %g (normwise)", worst / size);
    /* scores q . k / sqrt(hs), given, reproduce plain attention */
    const int hs = AC / ANH;
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < ANH; h++)
            for (int i = 0; i < AT; i++)
                for (int j = 0; j <= i; j++) {
                    double v = 0;
                    for (int c = 0; c < hs; c++)
                        v += (double)qkv[((size_t)b * AT + i) * AS + h * hs + c] * qkv[((size_t)b * AT + j) * AS + AC + h * hs + c];
                    att[0][(((size_t)b * ANH + h) * AT + i) * AT + j] = (float)(v / sqrt((double)hs));
                }
    attention_forward_blockwise(out[0], att[0], qkv, AB, AT, AC, ANH, AS, 0, NULL, 1);
    attention_forward_blockwise(out[1], att[1], qkv, AB, AT, AC, ANH, AS, 0, NULL, 0);
    CHECKF(rel_err(out[0], out[1], n_out) < 1e-5, "given q.k scores differ from plain attention by %g",
           rel_err(out[0], out[1], n_out));
    for (int ref = 0; ref < 2; ref++) free(att[ref]), free(out[ref]), free(dqkv[ref]), free(ds[ref]);
    free(qkv), free(S0), free(R), free(g.s), free(g.v), free(g.R);
}

static void test_bad_option(void) {
    PosEnc pe;
    CHECK(create_json(&pe, "{\"kind\": \"path\", \"beta\": 2}", make_dims(C, NH, 16)) == -1 &&
          strstr(tr_error(), "posenc.beta: unknown option for kind path"));
}

int main(void) {
    RUN(test_scores_against_explicit_products);
    RUN(test_beta_zero_is_nope);
    RUN(test_fixed_reflection);
    RUN(test_backward_vs_finite_differences);
    RUN(test_lanes_vs_reference);
    RUN(test_attention_with_given_scores);
    RUN(test_bad_option);
    return test_summary();
}
