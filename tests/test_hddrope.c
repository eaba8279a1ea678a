/* test_hddrope.c: tests for the HDD-RoPE kind (model/posenc_hddrope.c and its lane twin
 * model/hddrope_lanes.c, docs/hdd-rope.md): the fast kernels against the reference kernels and the
 * lanes against the scalar scan and their independence of lane-mates, the reduction to RoPE (c = 2, static,
 * base_init rope), the relative property (and that the wrong scan ordering breaks it),
 * orthogonality and norms, the backward against central finite differences of a double-precision
 * reference forward written here from docs/hdd-rope.md, cached generation against the full
 * forward, init, option errors, and the orthogonality drift of a long fp32 scan (printed).
 * The small-matrix maths has its own tests: tests/test_hddrope_matrix.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/util.h"
#include "model/posenc.h"
#include "model/posenc_hddrope.h"
#include "tests/hddrope_test_helpers.h"
#include "tests/posenc_test_helpers.h"
#include "tests/test.h"

/* ---------------------------------------------------------------------------------------------- */
/* helpers */

static void fill_normal(float *p, size_t n, float sigma, uint64_t seed) {
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) p[i] = sigma * tr_rng_normal(&rng);
}

static float *copy_floats(const float *src, size_t n) {
    float *dst = xmalloc(n * sizeof *dst);
    memcpy(dst, src, n * sizeof *dst);
    return dst;
}

static double dotf(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static int num_extra(const PosEnc *pe) { return pe->kind->num_extra(pe); }

/* max |X^T X - I| of a float c x c matrix */
static double orth_error(const float *X, int c) {
    double worst = 0;
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (int r = 0; r < c; r++) s += (double)X[r * c + i] * X[r * c + k];
            s -= (i == k);
            if (fabs(s) > worst) worst = fabs(s);
        }
    return worst;
}

/* The whole kind with its fast kernels (closed forms at c = 2 and 4, the fast general-c kernels,
 * copies with c a constant) against the same kind run through the reference kernels (series,
 * c a run-time value): rotated q and k, dqkv (including the generator columns) and d g_base. */
/* Runs one forward + backward of `json` through two kernel paths (select(0): the model's, select(1):
 * the one to compare with) on the same random qkv, generators (scale gen_scale) and gradients, and
 * checks the rotated q, k, dqkv and d g_base agree within tol (dqkv, d g_base relative to their
 * largest entry). Leaves select(0) in force. */
static void compare_kernel_paths(const char *json, void (*select)(int), int B, int T, int C, int NH,
                                 float gen_scale, double tol, uint64_t seed) {
    PosEnc pe;
    if (create_json(&pe, json, make_dims(C, NH, T)) != 0) {
        CHECKF(0, "%s: %s", json, tr_error());
        return;
    }
    const int S = 3 * C + num_extra(&pe);
    size_t np = pe.kind->num_params(&pe), n = (size_t)B * T * S, na = pe.kind->num_acts(&pe, B, T);
    float *params = xmalloc(np * sizeof *params), *raw = xmalloc(n * sizeof *raw);
    float *R = xmalloc(n * sizeof *R);
    fill_normal(params, np, gen_scale, seed);
    fill_normal(raw, n, 0.7f, seed + 100);
    fill_normal(R, n, 1.0f, seed + 200);
    for (size_t r = 0; r < (size_t)B * T; r++) /* the generator columns at gen_scale too */
        for (int e = 3 * C; e < S; e++) raw[r * S + e] *= gen_scale / 0.7f;
    float *qkv[2], *dqkv[2], *dparams[2], *acts = xmalloc(na * sizeof *acts);
    for (int path = 0; path < 2; path++) {
        select(path);
        qkv[path] = copy_floats(raw, n), dqkv[path] = copy_floats(R, n);
        dparams[path] = xcalloc(np, sizeof(float));
        pe.kind->qk_forward(&pe, 1, qkv[path], NULL, params, acts, NULL, B, T, 0);
        pe.kind->qk_backward(&pe, 1, dqkv[path], qkv[path], NULL, params, dparams[path], acts, B, T, 0);
    }
    select(0);
    double worst_q = 0, worst_dq = 0, worst_dp = 0, big_dq = 0, big_dp = 0;
    for (size_t i = 0; i < n; i++) big_dq = fmax(big_dq, fabs(dqkv[1][i]));
    for (size_t i = 0; i < np; i++) big_dp = fmax(big_dp, fabs(dparams[1][i]));
    for (size_t i = 0; i < n; i++) {
        worst_q = fmax(worst_q, fabs(qkv[0][i] - qkv[1][i]));
        worst_dq = fmax(worst_dq, fabs(dqkv[0][i] - dqkv[1][i]) / big_dq);
        if (!isfinite(qkv[0][i]) || !isfinite(dqkv[0][i])) worst_q = INFINITY;
    }
    for (size_t i = 0; i < np; i++) worst_dp = fmax(worst_dp, fabs(dparams[0][i] - dparams[1][i]) / big_dp);
    CHECKF(worst_q < tol, "%s C=%d NH=%d: rotated q, k differ between the paths by %g", json, C, NH, worst_q);
    CHECKF(worst_dq < tol, "%s C=%d NH=%d: dqkv differs between the paths by %g (relative)", json, C, NH, worst_dq);
    CHECKF(worst_dp < tol, "%s C=%d NH=%d: d g_base differs between the paths by %g (relative)", json, C, NH,
           worst_dp);
    CHECKF(big_dp > 0, "%s: no gradient reached g_base", json);
    for (int path = 0; path < 2; path++) free(qkv[path]), free(dqkv[path]), free(dparams[path]);
    free(params), free(raw), free(R), free(acts);
    posenc_destroy(&pe);
}

static void fast_or_reference(int path) { hddrope_use_reference_kernels(path); }
static void lanes_or_scalar(int path) { hddrope_use_lane_kernels(!path); }

static void test_fast_kernels_vs_reference_kernels(void) {
    const int chunks[] = {2, 4, 8, 16};
    const int B = 2, T = test_small() ? 6 : 12;
    for (int ci = 0; ci < 4; ci++)
        for (int dynamic = 0; dynamic < 2; dynamic++) {
            char json[160];
            snprintf(json, sizeof json, "{\"kind\": \"hddrope\", \"chunk\": %d, \"dynamic\": %s}", chunks[ci],
                     dynamic ? "true" : "false");
            /* the fast path (model/hddrope_lanes.c) computes in float: a few units of 6e-8 per step,
             * more for larger c (sums of c terms, about twenty products a step), over T steps */
            compare_kernel_paths(json, fast_or_reference, B, T, 32, 2, 0.6f, chunks[ci] >= 8 ? 3e-5 : 1e-5,
                                 700 + (uint64_t)ci);
        }
}

/* The lane kernels (16 chunks of the batch's rows in lanes, float) against the scalar path,
 * static, dynamic with the exponential and dynamic with Cayley, at generator scales 0.3 and 6
 * (angles of ~20 rad: the exponential squares, Cayley's I - A is far from I): every c the model
 * has a copy for (2, 3, 4, 8, 16) and run-time c (5, 6 a row at a time, 12 in tiles); rows of 2 to
 * 32 chunks, so that a group spans up to 8 rows, is full, or is partly filled; static generators
 * with the batch in several identical scans of 1 or 2 rows each (scan_rows: B = 4 and 8 at 8 and 4
 * chunks per row); and 9 batch rows sharing a static scan. */
static void test_lane_kernels_vs_scalar(void) {
    const int T = test_small() ? 6 : 12;
    const struct {
        int c, C, NH, B;
    } cases[] = {{2, 8, 2, 3},  {3, 48, 2, 2},  {4, 8, 2, 3},  {4, 40, 2, 2},  {4, 96, 2, 3},
                 {8, 16, 2, 3}, {8, 64, 2, 2},  {8, 96, 2, 3}, {8, 256, 2, 2}, {16, 64, 2, 3},
                 {16, 96, 3, 2}, {5, 40, 2, 3}, {6, 48, 2, 2}, {12, 48, 2, 2}, {8, 64, 2, 4}, {16, 64, 2, 8}};
    const char *setups[] = {"\"dynamic\": false", "\"dynamic\": true", "\"map\": \"cayley\""};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int setup = 0; setup < 3; setup++)
            for (int big = 0; big < 2; big++) {
                char json[120];
                snprintf(json, sizeof json, "{\"kind\": \"hddrope\", \"chunk\": %d, %s}", cases[i].c, setups[setup]);
                /* float products of c terms and a float map: a few ulps per step, over T steps, times
                 * the map's conditioning at large angles (Cayley's I - A at c = 16: ~10^3) */
                compare_kernel_paths(json, lanes_or_scalar, cases[i].B, T, cases[i].C, cases[i].NH, big ? 6.0f : 0.3f,
                                     big ? 3e-4 : 2e-5, 300 + (uint64_t)(i * 6 + setup * 2 + big));
            }
    compare_kernel_paths("{\"kind\": \"hddrope\", \"chunk\": 8, \"dynamic\": false}", lanes_or_scalar, 9, T, 64, 2,
                         0.3f, 2e-5, 399);
}

/* A chunk's bits in the lanes do not depend on the chunks beside it: each batch row run alone
 * (its chunks in lanes 0..5 of a group of their own) gives the bits it gets in a batch of 3 (where
 * the groups mix rows: 6 chunks per row, 16 per group), forward and backward. */
static void test_lanes_independent(void) {
    const int B = 3, T = 5, C = 48, NH = 2;
    PosEnc pe;
    if (create_json(&pe, "{\"kind\": \"hddrope\", \"chunk\": 8}", make_dims(C, NH, T)) != 0) {
        CHECKF(0, "%s", tr_error());
        return;
    }
    const int S = 3 * C + num_extra(&pe);
    const size_t np = pe.kind->num_params(&pe), per_row = (size_t)T * S;
    float *params = xmalloc(np * sizeof *params), *qkv = xmalloc(B * per_row * sizeof *qkv);
    float *dqkv = xmalloc(B * per_row * sizeof *dqkv);
    fill_normal(params, np, 0.5f, 61);
    fill_normal(qkv, B * per_row, 0.7f, 62);
    fill_normal(dqkv, B * per_row, 1.0f, 63);
    float *q_all = copy_floats(qkv, B * per_row), *dq_all = copy_floats(dqkv, B * per_row);
    float *acts = xmalloc(pe.kind->num_acts(&pe, B, T) * sizeof *acts);
    pe.kind->qk_forward(&pe, 1, q_all, NULL, params, acts, NULL, B, T, 0);
    pe.kind->qk_backward(&pe, 1, dq_all, q_all, NULL, params, NULL, acts, B, T, 0);
    int differ = 0;
    for (int b = 0; b < B; b++) {
        float *q1 = copy_floats(qkv + b * per_row, per_row), *dq1 = copy_floats(dqkv + b * per_row, per_row);
        pe.kind->qk_forward(&pe, 1, q1, NULL, params, acts, NULL, 1, T, 0);
        pe.kind->qk_backward(&pe, 1, dq1, q1, NULL, params, NULL, acts, 1, T, 0);
        differ += memcmp(q1, q_all + b * per_row, per_row * sizeof *q1) != 0;
        differ += memcmp(dq1, dq_all + b * per_row, per_row * sizeof *dq1) != 0;
        free(q1), free(dq1);
    }
    CHECKF(differ == 0, "%d of %d rows' rotated qkv or dqkv change with the batch around them", differ, 2 * B);
    free(params), free(qkv), free(dqkv), free(q_all), free(dq_all), free(acts);
    posenc_destroy(&pe);
}

/* ---------------------------------------------------------------------------------------------- */
/* c = 2, static, base_init rope = the rope kind */

static void test_chunk2_static_equals_rope(void) {
    const int B = 1, T = 16, C = 16, NH = 2, hs = C / NH, S = 3 * C;
    const char *jsons[] = {"{\"kind\": \"hddrope\", \"chunk\": 2, \"dynamic\": false}",
                           "{\"kind\": \"hddrope\", \"chunk\": 2, \"dynamic\": false, \"map\": \"cayley\"}"};
    for (int v = 0; v < 2; v++) {
        PosEnc hdd, rope;
        if (create_json(&hdd, jsons[v], make_dims(C, NH, T)) != 0 ||
            create_json(&rope, "{\"kind\": \"rope\"}", make_dims(C, NH, T)) != 0) {
            CHECKF(0, "%s", tr_error());
            return;
        }
        CHECK(num_extra(&hdd) == 0);
        size_t np = hdd.kind->num_params(&hdd);
        CHECK(np == 2u * NH * (hs / 2));
        float *params = xmalloc(np * sizeof *params);
        hdd.kind->init(&hdd, params, NULL, 0, 1);
        float *acts = xmalloc(hdd.kind->num_acts(&hdd, B, T) * sizeof *acts);
        size_t n = (size_t)B * T * S;
        float *raw = xmalloc(n * sizeof *raw);
        fill_normal(raw, n, 1.0f, 5 + v);
        float *a = copy_floats(raw, n), *r = copy_floats(raw, n);
        hdd.kind->qk_forward(&hdd, 1, a, NULL, params, acts, NULL, B, T, 0);
        rope.kind->qk_forward(&rope, 1, r, NULL, NULL, NULL, NULL, B, T, 0);
        double worst = 0, moved = 0;
        for (int h = 0; h < NH; h++)
            for (int tn = 0; tn < T; tn++)
                for (int tm = 0; tm < T; tm++) {
                    size_t qo = (size_t)tn * S + (size_t)h * hs, ko = (size_t)tm * S + C + (size_t)h * hs;
                    double norms = sqrt(dotf(raw + qo, raw + qo, hs) * dotf(raw + ko, raw + ko, hs));
                    double sh = dotf(a + qo, a + ko, hs), sr = dotf(r + qo, r + ko, hs);
                    double s0 = dotf(raw + qo, raw + ko, hs);
                    if (fabs(sh - sr) / norms > worst) worst = fabs(sh - sr) / norms;
                    if (fabs(sh - s0) / norms > moved) moved = fabs(sh - s0) / norms;
                }
        CHECKF(worst < 1e-5, "%s: scores differ from rope by %g (relative)", jsons[v], worst);
        CHECKF(moved > 0.1, "%s: scores did not move (%g): vacuous", jsons[v], moved);
        /* raw vectors: hddrope at t is rope at t + 1 */
        float *r1 = copy_floats(raw, n);
        rope.kind->qk_forward(&rope, 0, r1, NULL, NULL, NULL, NULL, B, T, 1);
        double vec = 0;
        for (size_t i = 0; i < n; i++) vec = fmax(vec, fabs(a[i] - r1[i]));
        CHECKF(vec < 1e-5, "%s: P_t q_t is not RoPE at position t+1: %g", jsons[v], vec);
        free(params), free(acts), free(raw), free(a), free(r), free(r1);
        posenc_destroy(&hdd);
        posenc_destroy(&rope);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* relative property */

/* Scores q~_t . k~_s (B = 1, one head of size hs = C) into sc[t*T + s]. */
static void scores_of(const float *qkv, int T, int C, int S, double *sc) {
    for (int t = 0; t < T; t++)
        for (int s = 0; s < T; s++) sc[t * T + s] = dotf(qkv + (size_t)t * S, qkv + (size_t)s * S + C, C);
}

/* The WRONG ordering, in double: P_t = M_t P_{t-1}, q~ = P q. One head, one chunk (c = C). */
static void wrong_order_forward(double *qkv, int T, int c, int S) {
    double P[MAXC * MAXC], M[MAXC * MAXC], A[MAXC * MAXC], tmp[MAXC * MAXC];
    for (int i = 0; i < c * c; i++) P[i] = (i % (c + 1) == 0);
    for (int t = 0; t < T; t++) {
        double *row = qkv + (size_t)t * S;
        skew(row + 3 * c, c, A);
        hddrope_expm(A, M, c);
        for (int i = 0; i < c; i++)
            for (int k = 0; k < c; k++) {
                double s = 0;
                for (int r = 0; r < c; r++) s += M[i * c + r] * P[r * c + k];
                tmp[i * c + k] = s;
            }
        memcpy(P, tmp, sizeof(double) * (size_t)(c * c));
        for (int which = 0; which < 2; which++) {
            double v[MAXC];
            for (int i = 0; i < c; i++) {
                double s = 0;
                for (int r = 0; r < c; r++) s += P[i * c + r] * row[which * c + r];
                v[i] = s;
            }
            memcpy(row + which * c, v, sizeof(double) * (size_t)c);
        }
    }
}

static void test_scores_are_relative(void) {
    const int T = 7;
    const int chunks[] = {3, 4};
    for (int ci = 0; ci < 2; ci++) {
        const int c = chunks[ci], C = c; /* NH = 1, one chunk */
        PosEnc pe;
        const char *json = c == 3 ? "{\"kind\": \"hddrope\", \"chunk\": 3}" : "{\"kind\": \"hddrope\", \"chunk\": 4}";
        if (create_json(&pe, json, make_dims(C, 1, T)) != 0) {
            CHECKF(0, "%s", tr_error());
            return;
        }
        const int E = num_extra(&pe), S = 3 * C + E;
        CHECK(E == c * (c - 1) / 2);
        size_t np = pe.kind->num_params(&pe), n = (size_t)T * S;
        float *params = xcalloc(np, sizeof *params);
        fill_normal(params, np, 0.3f, 3);
        float *acts = xmalloc(pe.kind->num_acts(&pe, 1, T) * sizeof *acts);
        float *raw = xmalloc(n * sizeof *raw);
        fill_normal(raw, n, 0.7f, 40 + c);
        float *perturbed = copy_floats(raw, n);
        for (int a = 0; a < E; a++) perturbed[1 * S + 3 * C + a] += 0.8f; /* W_g x at position 1 */
        float *x0 = copy_floats(raw, n), *x1 = copy_floats(perturbed, n);
        pe.kind->qk_forward(&pe, 0, x0, NULL, params, acts, NULL, 1, T, 0);
        pe.kind->qk_forward(&pe, 0, x1, NULL, params, acts, NULL, 1, T, 0);
        double s0[64], s1[64];
        scores_of(x0, T, C, S, s0);
        scores_of(x1, T, C, S, s1);
        double after = 0, before = 0;
        for (int t = 0; t < T; t++)
            for (int s = 0; s <= t; s++) {
                double d = fabs(s0[t * T + s] - s1[t * T + s]);
                if (s >= 1) after = fmax(after, d);
                else if (t >= 1) before = fmax(before, d);
            }
        CHECKF(after < 1e-5, "c %d: a score with s >= 1 moved by %g", c, after);
        CHECKF(before > 1e-2, "c %d: no score with s = 0 moved (%g)", c, before);

        /* the wrong ordering, with the same generators (g_base 0 here so the extra columns are g) */
        double *w0 = xmalloc(n * sizeof *w0), *w1 = xmalloc(n * sizeof *w1);
        for (size_t i = 0; i < n; i++) w0[i] = raw[i], w1[i] = perturbed[i];
        wrong_order_forward(w0, T, c, S);
        wrong_order_forward(w1, T, c, S);
        double wrong_after = 0;
        for (int t = 1; t < T; t++)
            for (int s = 1; s <= t; s++) {
                double a = 0, b = 0;
                for (int i = 0; i < c; i++)
                    a += w0[t * S + i] * w0[s * S + C + i], b += w1[t * S + i] * w1[s * S + C + i];
                wrong_after = fmax(wrong_after, fabs(a - b));
            }
        CHECKF(wrong_after > 1e-2, "c %d: the wrong ordering kept the scores (%g): the check is vacuous", c,
               wrong_after);
        free(w0), free(w1), free(params), free(acts), free(raw), free(perturbed), free(x0), free(x1);
        posenc_destroy(&pe);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* orthogonality, norms, columns left alone */

static void test_orthogonal_and_norm_preserving(void) {
    const int B = 2, T = 64, C = 24, NH = 2, hs = 12;
    const char *jsons[] = {"{\"kind\": \"hddrope\"}", "{\"kind\": \"hddrope\", \"chunk\": 3, \"map\": \"cayley\"}",
                           "{\"kind\": \"hddrope\", \"chunk\": 6, \"base_init\": \"zero\"}"};
    for (int v = 0; v < 3; v++) {
        PosEnc pe;
        if (create_json(&pe, jsons[v], make_dims(C, NH, T)) != 0) {
            CHECKF(0, "%s", tr_error());
            continue;
        }
        const int E = num_extra(&pe), S = 3 * C + E;
        size_t np = pe.kind->num_params(&pe), na = pe.kind->num_acts(&pe, B, T), n = (size_t)B * T * S;
        float *params = xmalloc(np * sizeof *params);
        pe.kind->init(&pe, params, NULL, 0, 1);
        float *acts = xmalloc(na * sizeof *acts);
        float *raw = xmalloc(n * sizeof *raw);
        fill_normal(raw, n, 0.5f, 70 + v);
        float *qkv = copy_floats(raw, n);
        pe.kind->qk_forward(&pe, 1, qkv, NULL, params, acts, NULL, B, T, 0);
        double norm_err = 0, orth = 0;
        int untouched = 1;
        for (size_t r = 0; r < (size_t)B * T; r++) {
            for (int w = 0; w < 2 * NH; w++) {
                const float *a = raw + r * S + (size_t)w * hs, *b = qkv + r * S + (size_t)w * hs;
                double n0 = sqrt(dotf(a, a, hs)), n1 = sqrt(dotf(b, b, hs));
                norm_err = fmax(norm_err, fabs(n1 - n0) / n0);
            }
            untouched &= memcmp(raw + r * S + 2 * C, qkv + r * S + 2 * C, (size_t)(C + E) * sizeof(float)) == 0;
        }
        /* layer 1's saved P at every position, and each step M_t = P_{t-1}^T P_t (the scan keeps
         * P orthogonal only if every M is) */
        const int c = v == 0 ? 4 : v == 1 ? 3 : 6, cc = c * c;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int j = 0; j < hs / c; j++) {
                    float prev[16 * 16], P[16 * 16], M[16 * 16];
                    for (int t = 0; t < T; t++) {
                        hddrope_saved_P(&pe, acts, 1, B, T, b, t, h, j, P);
                        orth = fmax(orth, orth_error(P, c));
                        if (t > 0) {
                            for (int i = 0; i < c; i++)
                                for (int k = 0; k < c; k++) {
                                    double sum = 0;
                                    for (int r = 0; r < c; r++) sum += (double)prev[r * c + i] * P[r * c + k];
                                    M[i * c + k] = (float)sum;
                                }
                            orth = fmax(orth, orth_error(M, c));
                        }
                        memcpy(prev, P, sizeof(float) * (size_t)cc);
                    }
                }
        CHECKF(norm_err < 1e-5, "%s: norms changed by %g", jsons[v], norm_err);
        /* float maps (model/hddrope_lanes.c): generators of this scale take the exponential through 2
         * squarings, each doubling its rounding error */
        CHECKF(orth < 3e-5, "%s: max |X^T X - I| of M, P = %g", jsons[v], orth);
        CHECKF(untouched, "%s: v or the extra columns changed", jsons[v]);
        CHECKF(memcmp(raw, qkv, (size_t)C * sizeof(float)) != 0, "%s: nothing rotated", jsons[v]);
        free(params), free(acts), free(raw), free(qkv);
        posenc_destroy(&pe);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* backward vs finite differences of a double reference forward */

typedef struct {
    int c, cayley, dynamic, NH, hs, C, S, m, nc, G, B, T;
} Spec;

/* Sum over t of R . (q~, k~) of chunk (b, h, j), from double inputs. */
static double ref_unit_loss(const Spec *sp, const double *qkv, const double *gbase, const float *R, int b, int h,
                            int j) {
    const int c = sp->c, m = sp->m;
    double P[MAXC * MAXC], M[MAXC * MAXC], A[MAXC * MAXC], tmp[MAXC * MAXC], g[MAXC * MAXC];
    for (int i = 0; i < c * c; i++) P[i] = (i % (c + 1) == 0);
    double loss = 0;
    for (int t = 0; t < sp->T; t++) {
        size_t row = ((size_t)b * sp->T + t) * sp->S;
        size_t index = ((size_t)h * sp->nc + j) * m;
        for (int a = 0; a < m; a++) g[a] = gbase[index + a] + (sp->dynamic ? qkv[row + 3 * sp->C + index + a] : 0);
        skew(g, c, A);
        if (sp->cayley) cayley_solve(A, M, c);
        else taylor_exp(A, M, c, 30);
        for (int i = 0; i < c; i++)
            for (int k = 0; k < c; k++) {
                double s = 0;
                for (int r = 0; r < c; r++) s += P[i * c + r] * M[r * c + k];
                tmp[i * c + k] = s;
            }
        memcpy(P, tmp, sizeof(double) * (size_t)(c * c));
        for (int which = 0; which < 2; which++) {
            size_t off = row + (size_t)which * sp->C + (size_t)h * sp->hs + (size_t)j * c;
            for (int i = 0; i < c; i++) {
                double s = 0;
                for (int r = 0; r < c; r++) s += P[i * c + r] * qkv[off + r];
                loss += R[off + i] * s;
            }
        }
    }
    return loss;
}

static void backward_check(int c, int cayley, int dynamic, int reortho, int hs) {
    Spec sp = {.c = c, .cayley = cayley, .dynamic = dynamic, .NH = 2};
    sp.hs = hs;
    sp.C = sp.NH * sp.hs;
    sp.B = test_small() ? 1 : 2;
    sp.T = test_small() ? 4 : 5;
    char json[200];
    snprintf(json, sizeof json,
             "{\"kind\": \"hddrope\", \"chunk\": %d, \"map\": \"%s\", \"dynamic\": %s, \"reorthonormalize\": %d}", c,
             cayley ? "cayley" : "expm", dynamic ? "true" : "false", reortho);
    PosEnc pe;
    if (create_json(&pe, json, make_dims(sp.C, sp.NH, sp.T)) != 0) {
        CHECKF(0, "%s: %s", json, tr_error());
        return;
    }
    sp.m = c * (c - 1) / 2, sp.nc = sp.hs / c, sp.G = sp.NH * sp.nc * sp.m;
    sp.S = 3 * sp.C + num_extra(&pe);
    CHECK(num_extra(&pe) == (dynamic ? sp.G : 0));
    const int l = 1, B = sp.B, T = sp.T, S = sp.S, C = sp.C;
    size_t np = pe.kind->num_params(&pe), n = (size_t)B * T * S;
    CHECK(np == 2u * sp.G);
    float *params = xmalloc(np * sizeof *params);
    fill_normal(params, np, 0.4f, 100 + c);
    float *acts = xmalloc(pe.kind->num_acts(&pe, B, T) * sizeof *acts);
    float *raw = xmalloc(n * sizeof *raw), *R = xmalloc(n * sizeof *R);
    fill_normal(raw, n, 0.5f, 200 + c);
    fill_normal(R, n, 1.0f, 300 + c);
    float *qkv = copy_floats(raw, n), *dqkv = copy_floats(R, n);
    float *dparams = xmalloc(np * sizeof *dparams);
    fill_normal(dparams, np, 1.0f, 400); /* accumulates onto what was there */
    float *dparams0 = copy_floats(dparams, np);
    pe.kind->qk_forward(&pe, l, qkv, NULL, params, acts, NULL, B, T, 0);
    pe.kind->qk_backward(&pe, l, dqkv, qkv, NULL, params, dparams, acts, B, T, 0);

    double *xd = xmalloc(n * sizeof *xd), gb[MAXC * MAXC * 4];
    for (size_t i = 0; i < n; i++) xd[i] = raw[i];
    for (int i = 0; i < sp.G; i++) gb[i] = params[(size_t)l * sp.G + i];
    const double eps = 1e-5;
    double worst = 0;
    int v_ok = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int col = 0; col < S; col++) {
                size_t i = ((size_t)b * T + t) * S + col;
                if (col >= 2 * C && col < 3 * C) { /* v: passes through */
                    v_ok &= dqkv[i] == R[i];
                    continue;
                }
                int h, j;
                if (col < 2 * C) h = (col % C) / sp.hs, j = (col % C % sp.hs) / c;
                else h = (col - 3 * C) / sp.m / sp.nc, j = (col - 3 * C) / sp.m % sp.nc;
                double keep = xd[i], L2[2];
                for (int side = 0; side < 2; side++) {
                    xd[i] = keep + (side ? -eps : eps);
                    L2[side] = ref_unit_loss(&sp, xd, gb, R, b, h, j);
                }
                xd[i] = keep;
                double fd = (L2[0] - L2[1]) / (2 * eps) + (col >= 3 * C ? R[i] : 0.0);
                worst = fmax(worst, fabs(dqkv[i] - fd) / (1 + fabs(fd)));
            }
    double worst_base = 0;
    for (int idx = 0; idx < sp.G; idx++) {
        int h = idx / sp.m / sp.nc, j = idx / sp.m % sp.nc;
        double keep = gb[idx], L2[2] = {0, 0};
        for (int side = 0; side < 2; side++) {
            gb[idx] = keep + (side ? -eps : eps);
            for (int b = 0; b < B; b++) L2[side] += ref_unit_loss(&sp, xd, gb, R, b, h, j);
        }
        gb[idx] = keep;
        double fd = (L2[0] - L2[1]) / (2 * eps);
        double got = (double)dparams[(size_t)l * sp.G + idx] - dparams0[(size_t)l * sp.G + idx];
        worst_base = fmax(worst_base, fabs(got - fd) / (1 + fabs(fd)));
    }
    CHECKF(worst < 2e-4, "%s: dqkv differs from finite differences by %g", json, worst);
    CHECKF(worst_base < 2e-4, "%s: d g_base differs from finite differences by %g", json, worst_base);
    CHECKF(v_ok, "%s: dv changed", json);
    CHECKF(memcmp(dparams, dparams0, (size_t)sp.G * sizeof(float)) == 0, "%s: layer 0's d g_base touched", json);
    free(params), free(acts), free(raw), free(R), free(qkv), free(dqkv), free(dparams), free(dparams0), free(xd);
    posenc_destroy(&pe);
}

static void test_backward_vs_finite_differences(void) {
    const int chunks[] = {2, 3, 4, 8};
    for (int ci = 0; ci < 4; ci++)
        for (int cayley = 0; cayley < 2; cayley++)
            for (int dynamic = 0; dynamic < 2; dynamic++)
                backward_check(chunks[ci], cayley, dynamic, 0, chunks[ci] == 3 ? 6 : 8);
    /* Newton-Schulz every 2 positions: the identity on orthogonal P, so the same gradient */
    backward_check(4, 0, 1, 2, 8);
    /* many chunks per head (hs = 20: 10 chunks of 2, 5 of 4), so that a chunk's generators, channels
     * or state read at a neighbour's offset shows */
    for (int dynamic = 0; dynamic < 2; dynamic++) {
        backward_check(2, 0, dynamic, 0, 20);
        backward_check(4, 0, dynamic, 0, 20);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* cached generation */

static void test_cached_step_equals_full_forward(void) {
    /* hs = 24: 6 chunks of 4, 3 of 8 per head */
    const int B = 2, C = 48, NH = 2, T = 12;
    /* (c = 8 expm: the step matrices in blocks of 8 positions, T = 12 ends in a part block) */
    const char *jsons[] = {"{\"kind\": \"hddrope\"}", "{\"kind\": \"hddrope\", \"map\": \"cayley\", \"chunk\": 8}",
                           "{\"kind\": \"hddrope\", \"reorthonormalize\": 3}", "{\"kind\": \"hddrope\", \"chunk\": 8}"};
    for (int v = 0; v < 4; v++) {
        PosEnc pe;
        if (create_json(&pe, jsons[v], make_dims(C, NH, T)) != 0) {
            CHECKF(0, "%s: %s", jsons[v], tr_error());
            continue;
        }
        const int S = 3 * C + num_extra(&pe);
        size_t np = pe.kind->num_params(&pe), n = (size_t)B * T * S;
        float *params = xmalloc(np * sizeof *params);
        pe.kind->init(&pe, params, NULL, 0, 1);
        float *acts = xmalloc(pe.kind->num_acts(&pe, B, T) * sizeof *acts);
        float *acts1 = xmalloc(pe.kind->num_acts(&pe, B, 1) * sizeof *acts1);
        float *state = xcalloc(pe.kind->num_state(&pe, B), sizeof *state);
        float *full = xmalloc(n * sizeof *full);
        fill_normal(full, n, 0.5f, 500 + v);
        float *orig = copy_floats(full, n);
        pe.kind->qk_forward(&pe, 1, full, NULL, params, acts, NULL, B, T, 0);
        float *step = xmalloc((size_t)B * S * sizeof *step);
        int mismatches = 0;
        for (int t = 0; t < T; t++) {
            for (int b = 0; b < B; b++)
                memcpy(step + (size_t)b * S, orig + ((size_t)b * T + t) * S, (size_t)S * sizeof *step);
            pe.kind->qk_forward(&pe, 1, step, NULL, params, acts1, state, B, 1, t);
            for (int b = 0; b < B; b++)
                mismatches +=
                    memcmp(step + (size_t)b * S, full + ((size_t)b * T + t) * S, (size_t)S * sizeof *step) != 0;
        }
        CHECKF(mismatches == 0, "%s: %d cached rows differ from the full forward", jsons[v], mismatches);
        /* layer 0's state is untouched (still zero) */
        size_t per_layer = pe.kind->num_state(&pe, B) / 2;
        int zero = 1;
        for (size_t i = 0; i < per_layer; i++) zero &= state[i] == 0.0f;
        CHECKF(zero, "%s: layer 0's state written", jsons[v]);
        free(params), free(acts), free(acts1), free(state), free(full), free(orig), free(step);
        posenc_destroy(&pe);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* init, sizes, options */

static void test_init_and_sizes(void) {
    const int C = 16, NH = 2, c = 4, nc = 2, m = 6, G = NH * nc * m;
    PosEnc pe;
    if (create_json(&pe, "{\"kind\": \"hddrope\"}", make_dims(C, NH, 8)) != 0) {
        CHECKF(0, "%s", tr_error());
        return;
    }
    CHECK(num_extra(&pe) == G);
    CHECK(pe.kind->num_params(&pe) == 2u * G);
    /* P only (the backward rebuilds M) */
    CHECK(pe.kind->num_acts(&pe, 3, 5) == 2u * 3 * 5 * NH * nc * c * c);
    CHECK(pe.kind->num_state(&pe, 3) == 2u * 3 * NH * nc * c * c);
    const size_t S = 3 * C + G, stride = S * C;
    float *w = xmalloc(2 * stride * sizeof *w), *params = xmalloc(2 * G * sizeof *params);
    fill_normal(w, 2 * stride, 1.0f, 9);
    float *w0 = copy_floats(w, 2 * stride);
    pe.kind->init(&pe, params, w + 3 * C * C, stride, 1);
    int extra_zero = 1, rest_kept = 1;
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < stride; i++) {
            if (i >= 3u * C * C) extra_zero &= w[l * stride + i] == 0.0f;
            else rest_kept &= w[l * stride + i] == w0[l * stride + i];
        }
    CHECK(extra_zero && rest_kept);
    /* g_base: theta_i = 10000^(-2i/hs) on plane (2i', 2i'+1) of its chunk, 0 on the coupling planes.
     * Lower-triangle order for c = 4: (1,0) (2,0) (2,1) (3,0) (3,1) (3,2): planes (1,0) = a 0, (3,2) = a 5. */
    int ok = 1;
    for (int l = 0; l < 2; l++)
        for (int h = 0; h < NH; h++)
            for (int j = 0; j < nc; j++)
                for (int a = 0; a < m; a++) {
                    float got = params[l * G + (h * nc + j) * m + a];
                    double want = 0;
                    if (a == 0) want = pow(10000.0, -2.0 * (2 * j) / 8);
                    if (a == 5) want = pow(10000.0, -2.0 * (2 * j + 1) / 8);
                    ok &= fabsf(got - (float)want) == 0.0f;
                }
    CHECK(ok);
    posenc_destroy(&pe);
    /* zero base, static: no extra rows, g_base 0 */
    CHECK(create_json(&pe, "{\"kind\": \"hddrope\", \"base_init\": \"zero\", \"dynamic\": false}",
                      make_dims(C, NH, 8)) == 0);
    CHECK(num_extra(&pe) == 0);
    pe.kind->init(&pe, params, NULL, 0, 1);
    int zero = 1;
    for (int i = 0; i < 2 * G; i++) zero &= params[i] == 0.0f;
    CHECK(zero);
    posenc_destroy(&pe);
    free(w), free(w0), free(params);
}

static void expect_error(const char *json, ModelDims d, const char *needle) {
    PosEnc pe;
    tr_clear_error();
    int rc = create_json(&pe, json, d);
    CHECKF(rc == -1, "%s: created, expected an error", json);
    if (rc == 0) {
        posenc_destroy(&pe);
        return;
    }
    CHECKF(pe.kind == NULL && pe.impl == NULL, "%s: pe not cleared", json);
    CHECKF(strstr(tr_error(), needle) != NULL, "%s: error \"%s\" lacks \"%s\"", json, tr_error(), needle);
}

static void test_option_errors(void) {
    ModelDims d = make_dims(16, 2, 8); /* hs = 8 */
    expect_error("{\"kind\": \"hddrope\", \"chunk\": 3}", d, "posenc.chunk: 3 does not divide the head size");
    expect_error("{\"kind\": \"hddrope\", \"chunk\": 1}", d, "posenc.chunk");
    expect_error("{\"kind\": \"hddrope\", \"chunk\": 0}", d, "posenc.chunk");
    expect_error("{\"kind\": \"hddrope\", \"chunk\": 2.5}", d, "posenc.chunk");
    expect_error("{\"kind\": \"hddrope\", \"chunk\": \"4\"}", d, "posenc.chunk: must be a number");
    expect_error("{\"kind\": \"hddrope\", \"map\": \"pade\"}", d, "posenc.map: unknown map \"pade\"");
    expect_error("{\"kind\": \"hddrope\", \"dynamic\": 1}", d, "posenc.dynamic");
    expect_error("{\"kind\": \"hddrope\", \"base_init\": \"random\"}", d, "posenc.base_init");
    expect_error("{\"kind\": \"hddrope\", \"reorthonormalize\": -1}", d, "posenc.reorthonormalize");
    expect_error("{\"kind\": \"hddrope\", \"foo\": 1}", d, "posenc.foo: unknown option for kind hddrope");
    expect_error("{\"kind\": \"hddrope\", \"chunk\": 32}", make_dims(64, 2, 8), "posenc.chunk");
    PosEnc pe;
    CHECKF(create_json(&pe, "{\"kind\": \"hddrope\", \"chunk\": 8, \"map\": \"cayley\", \"dynamic\": false, "
                            "\"base_init\": \"zero\", \"reorthonormalize\": 16}", d) == 0, "%s", tr_error());
    posenc_destroy(&pe);
}

/* ---------------------------------------------------------------------------------------------- */
/* orthogonality drift of a long fp32 scan (measured, printed) */

static double drift_at(const char *json, int T) {
    const int C = 4;
    PosEnc pe;
    if (create_json(&pe, json, make_dims(C, 1, T)) != 0) {
        CHECKF(0, "%s", tr_error());
        return INFINITY;
    }
    const int S = 3 * C + num_extra(&pe);
    size_t n = (size_t)T * S, na = pe.kind->num_acts(&pe, 1, T);
    float *qkv = xmalloc(n * sizeof *qkv), *acts = xmalloc(na * sizeof *acts);
    float *params = xcalloc(pe.kind->num_params(&pe), sizeof *params);
    fill_normal(qkv, n, 0.1f, 77); /* the generators W_g x ~ N(0, 0.1) */
    pe.kind->qk_forward(&pe, 1, qkv, NULL, params, acts, NULL, 1, T, 0);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        float P[16];
        hddrope_saved_P(&pe, acts, 1, 1, T, 0, t, 0, 0, P);
        worst = fmax(worst, orth_error(P, 4));
    }
    free(qkv), free(acts), free(params);
    posenc_destroy(&pe);
    return worst;
}

static void test_orthogonality_drift(void) {
    const int T = 4096;
    double plain = drift_at("{\"kind\": \"hddrope\"}", T);
    double fixed = drift_at("{\"kind\": \"hddrope\", \"reorthonormalize\": 64}", T);
    double cay = drift_at("{\"kind\": \"hddrope\", \"map\": \"cayley\"}", T);
    printf("  drift max|P^T P - I| over T = %d, c = 4, g ~ N(0, 0.1), fp32: expm %.3g, cayley %.3g, "
           "expm + Newton-Schulz every 64: %.3g\n", T, plain, cay, fixed);
    CHECKF(plain < 1e-4, "drift %g", plain);
    CHECKF(cay < 1e-4, "drift %g", cay);
    CHECKF(fixed < 1e-5 && fixed <= plain, "drift with re-orthonormalisation %g (without %g)", fixed, plain);
}

int main(void) {
    RUN(test_fast_kernels_vs_reference_kernels);
    RUN(test_lane_kernels_vs_scalar);
    RUN(test_lanes_independent);
    RUN(test_chunk2_static_equals_rope);
    RUN(test_scores_are_relative);
    RUN(test_orthogonal_and_norm_preserving);
    RUN(test_backward_vs_finite_differences);
    RUN(test_cached_step_equals_full_forward);
    RUN(test_init_and_sizes);
    RUN(test_option_errors);
    RUN(test_orthogonality_drift);
    return test_summary();
}
