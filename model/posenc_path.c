/* posenc_path.c: PaTH attention (Yang et al., "PaTH Attention: Position Encoding via Accumulating
 * Householder Transformations", NeurIPS 2025), the "path" kind: the scores come from running
 * products of data-dependent Householder-like matrices instead of q . k (posenc.h, scores_*;
 * docs/posenc.md §9).
 *
 * Maths, per layer, head h and position t (shape legend in layers.h):
 *     u_t = W_w x_t                 (hs)   the kind's first C extra QKV columns (NH heads of hs)
 *     w_t = u_t / n_t,  n_t = sqrt(|u_t|^2 + eps^2)      (unit length, up to eps = 1e-6)
 *     beta_t = 2 sigmoid(z_t),  z_t = W_beta x_t         the next NH extra columns; beta in (0, 2)
 *     H_t = I - beta_t w_t w_t^T    a reflection at beta = 2, a projection at 1, near I near 0
 *     s[i][j] = k_j^T H_{j+1} H_{j+2} ... H_i q_i / sqrt(hs)    (j <= i; the product is I at j = i)
 * and v is untouched. H_t is symmetric, so s[i][j] is also (H_i ... H_{j+1} k_j)^T q_i: key j is
 * carried forward through the transitions of every token after it, which is what makes the
 * encoding relative and data-dependent; with beta = 0 every H is I and PaTH is NoPE.
 *
 * Forward, per query i: r = q_i; for j = i, i-1, .., 0: s[i][j] = k_j . r / sqrt(hs), then
 * r <- H_j r = r - beta_j w_j (w_j . r). That is O(T^2 hs) per head, three multiply-adds per
 * channel and pair (i, j) against attention's one for q . k; the paper's blockwise form (a
 * compact WY representation of chunks of H, then matrix products) has the same order of work
 * and is faster on GPUs, where the sequential walk would starve; on a CPU core the walk is
 * vector work on hs channels with r in registers, which is why it is the choice here.
 *
 * Backward, per query i, undoing the walk (reverse mode): the walk is redone, keeping r_j (the r
 * that met key j: r_i = q_i, r_{j-1} = H_j r_j), then for j = 0 .. i with g = dL/dr_{j-1} (0 at
 * j = 0) and d = ds[i][j] / sqrt(hs):
 *     dL/dr_j = d k_j + H_j g                         (s[i][j] reads r_j; r_{j-1} = H_j r_j)
 *     dk_j += d r_j
 *     dbeta_j -= (w_j . r_j)(w_j . g),  dw_j -= beta_j ((w_j . r_j) g + (w_j . g) r_j)   (j >= 1)
 * and dq_i += dL/dr_i. Then through the gates: du_t = (dw_t - w_t (w_t . dw_t)) / n_t and
 * dz_t = dbeta_t beta_t (1 - beta_t / 2). H_0 is never used (no key lies before position 0).
 *
 * The walk above, one query at a time, is the reference (walk, and generation's scores_step):
 * its steps form a chain (each r needs the last), so one query keeps a core waiting on latency.
 * The training hooks run the fast twin, walk_lanes and backward_lanes: 16 consecutive queries
 * side by side in vector lanes, r as hs vectors of lanes, so a step is 3 hs vector multiply-adds
 * for 16 queries with no sums across lanes; a lane whose query lies before key j (i < j) neither
 * scores nor moves. The backward keeps the 16 walks' r_j (T, hs lanes) and sums dk, dw and
 * dbeta in lanes, across the head's query blocks, before one sum over lanes at the end.
 * tests/test_path.c (test_lanes_vs_reference) holds the twin to the reference.
 *
 * Saved for the backward (acts, per layer): w (B, T, NH, hs), beta (B, T, NH), 1/n (B, T, NH).
 * Generation keeps w and beta of every cached position in the state (L, max_T, NH, hs + 1) and
 * walks the cached keys with the same function as training, so a cached row has the same bits.
 *
 * Init: W_w and W_beta rows N(0, 0.02) like the model's other projections, so every beta starts
 * near 1. No options.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/posenc.h"

#define PATH_MAX_HS 1024 /* the walk's r lives on the stack */

/* 1: the training hooks run the reference walk instead of the lanes (tests/test_path.c declares
 * and sets it, to compare the two). */
static int path_reference;
void path_use_reference(int on) { path_reference = on; }
static const double path_eps = 1e-6;

typedef struct {
    int L, C, NH, hs, max_T;
} Path;

static int path_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", NULL};
    if (posenc_check_option_keys(options, "path", known) != 0) return -1;
    if (pe->dims.hs > PATH_MAX_HS) {
        tr_set_error("posenc.kind: path supports head sizes up to %d (hs = %d)", PATH_MAX_HS, pe->dims.hs);
        return -1;
    }
    Path *p = xmalloc(sizeof *p);
    *p = (Path){.L = pe->dims.L, .C = pe->dims.C, .NH = pe->dims.NH, .hs = pe->dims.hs, .max_T = pe->dims.max_T};
    pe->impl = p;
    return 0;
}

static int path_num_extra(const PosEnc *pe) { return pe->dims.C + pe->dims.NH; }
static size_t path_layer_acts(const PosEnc *pe, int B, int T) {
    return (size_t)B * (size_t)T * (size_t)(pe->dims.C + 2 * pe->dims.NH);
}
static size_t path_num_acts(const PosEnc *pe, int B, int T) { return (size_t)pe->dims.L * path_layer_acts(pe, B, T); }
static size_t path_num_state(const PosEnc *pe, int B) {
    return (size_t)pe->dims.L * (size_t)B * (size_t)pe->dims.max_T * (size_t)(pe->dims.C + pe->dims.NH);
}

static void path_init(const PosEnc *pe, float *params, float *extra_w, size_t extra_stride, uint64_t seed) {
    const Path *p = pe->impl;
    uint64_t rng = seed;
    for (int l = 0; l < p->L; l++)
        for (size_t i = 0; i < (size_t)(p->C + p->NH) * (size_t)p->C; i++)
            extra_w[(size_t)l * extra_stride + i] = 0.02f * tr_rng_normal(&rng);
}

/* The gates of one position: w (NH, hs), beta (NH), inv_norm (NH; NULL: not kept) from its qkv row. */
static void path_gates(const Path *p, const float *row, float *w, float *beta, float *inv_norm) {
    const float *u = row + 3 * p->C, *z = u + p->C;
    for (int h = 0; h < p->NH; h++) {
        double sq = path_eps * path_eps;
        for (int c = 0; c < p->hs; c++) sq += (double)u[h * p->hs + c] * u[h * p->hs + c];
        const double inv = 1.0 / sqrt(sq);
        for (int c = 0; c < p->hs; c++) w[h * p->hs + c] = (float)(u[h * p->hs + c] * inv);
        beta[h] = (float)(2.0 / (1.0 + exp(-(double)z[h])));
        if (inv_norm) inv_norm[h] = (float)inv;
    }
}

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

/* One query's walk: out[j] (out NULL: the backward, which only wants R) = scale k_j . (H_{j+1} .. H_i q) for j = i .. 0, with k_j = k + j k_stride,
 * w_j = w + j w_stride, beta_j = beta[j b_stride]; R (if not NULL) keeps each r_j at R + j hs.
 * Training and generation both call this, so a cached row repeats the full forward's bits. */
static void walk(const float *q, const float *k, long k_stride, const float *w, long w_stride, const float *beta,
                 long b_stride, int i, int hs, float scale, float *out, float *R) {
    float r[PATH_MAX_HS];
    memcpy(r, q, sizeof(float) * (size_t)hs);
    for (int j = i; j >= 0; j--) {
        if (R) memcpy(R + (size_t)j * hs, r, sizeof(float) * (size_t)hs);
        if (out) out[j] = scale * dot(k + j * k_stride, r, hs);
        if (j == 0) break;
        const float *wj = w + j * w_stride, c = beta[j * b_stride] * dot(wj, r, hs);
#pragma omp simd
        for (int e = 0; e < hs; e++) r[e] -= c * wj[e];
    }
}

/* ---- the fast twin: 16 queries in vector lanes ---- */

#define QL 16
#pragma GCC diagnostic ignored "-Wpsabi" /* lane vectors never cross a call boundary here */
typedef float lanes __attribute__((vector_size(QL * sizeof(float))));
typedef int32_t lanes_mask __attribute__((vector_size(QL * sizeof(int32_t))));
static const lanes_mask lane_index = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static inline lanes splat(float x) { return (lanes){0} + x; }
static inline lanes keep(lanes_mask m, lanes x) { return (lanes)((lanes_mask)x & m); } /* x where m, else 0 */
static inline float lanes_sum(lanes x) {
    float s = 0.0f;
    for (int v = 0; v < QL; v++) s += x[v];
    return s;
}

/* Queries i0 .. i1 - 1 (at most QL) of one head: rows (query i0's row of scores, row stride ld; NULL: none)
 * as walk gives them. q, k: rows of stride stride; w, beta as walk's. R (if not NULL): r_j of
 * each lane at R + j hs (lanes), for the backward. */
static void walk_lanes(const float *q, const float *k, long stride, const float *w, long w_stride, const float *beta,
                       long b_stride, int i0, int i1, int hs, float scale, float *rows, long ld, lanes *R) {
    lanes r[PATH_MAX_HS];
    const int n = i1 - i0;
    for (int c = 0; c < hs; c++) {
        r[c] = splat(0);
        for (int v = 0; v < n; v++) r[c][v] = q[(i0 + v) * stride + c];
    }
    for (int j = i1 - 1; j >= 0; j--) {
        const float *kj = k + j * stride, *wj = w + j * w_stride;
        lanes s0 = splat(0), s1 = splat(0), d0 = splat(0), d1 = splat(0); /* two partial sums each */
        int c = 0;
        if (rows) {
            for (; c + 1 < hs; c += 2) {
                s0 += kj[c] * r[c], s1 += kj[c + 1] * r[c + 1];
                d0 += wj[c] * r[c], d1 += wj[c + 1] * r[c + 1];
            }
            if (c < hs) s0 += kj[c] * r[c], d0 += wj[c] * r[c];
            const lanes sc = (s0 + s1) * scale;
            for (int v = j > i0 ? j - i0 : 0; v < n; v++) rows[v * ld + j] = sc[v]; /* lanes with i >= j */
        } else { /* the backward's pass: only the r_j */
            for (; c + 1 < hs; c += 2) d0 += wj[c] * r[c], d1 += wj[c + 1] * r[c + 1];
            if (c < hs) d0 += wj[c] * r[c];
        }
        if (R) memcpy(R + (size_t)j * hs, r, sizeof(lanes) * (size_t)hs);
        if (j == 0) break;
        lanes coef = beta[j * b_stride] * (d0 + d1);
        if (j > i0) coef = keep(lane_index >= j - i0, coef); /* queries before key j do not move */
        for (c = 0; c < hs; c++) r[c] -= coef * wj[c];
    }
}

/* The backward of walk_lanes for queries i0 .. i1 - 1 of one head, given their r_j in R:
 * ds: query i0's row of the scores' gradient (row stride ld); dq (stride stride) += dL/dq_i;
 * DK, DW (T, hs lanes) and DB (T lanes) += dL/dk_j, dL/dw_j, dL/dbeta_j, summed over lanes by
 * the caller. */
static void backward_lanes(const float *k, long stride, const float *w, long w_stride, const float *beta,
                           long b_stride, int i0, int i1, int hs, float scale, const float *ds, long ld, const lanes *R,
                           float *dq, lanes *DK, lanes *DW, lanes *DB) {
    lanes g[PATH_MAX_HS]; /* dL/dr_{j-1}, then dL/dr_j */
    const int n = i1 - i0;
    for (int j = 0; j < i1; j++) {
        const lanes_mask active = (lane_index >= (j > i0 ? j - i0 : 0)) & (lane_index < n); /* i0 + v >= j */
        lanes d = splat(0);
        for (int v = j > i0 ? j - i0 : 0; v < n; v++) d[v] = scale * ds[v * ld + j];
        const lanes *Rj = R + (size_t)j * hs;
        const float *kj = k + j * stride;
        lanes *dk = DK + (size_t)j * hs;
        for (int c = 0; c < hs; c++) dk[c] += d * Rj[c];
        if (j == 0) {
            for (int c = 0; c < hs; c++) g[c] = d * kj[c];
            continue;
        }
        const float *wj = w + j * w_stride, bj = beta[j * b_stride];
        lanes wr = splat(0), wg = splat(0);
        for (int c = 0; c < hs; c++) wr += wj[c] * Rj[c], wg += wj[c] * g[c];
        wr = keep(active, wr), wg = keep(active, wg); /* an inactive lane's g stays as it is */
        DB[j] -= wr * wg;
        lanes *dw = DW + (size_t)j * hs;
        const lanes bwg = bj * wg;
        for (int c = 0; c < hs; c++) {
            dw[c] -= bj * (wr * g[c] + wg * Rj[c]);
            g[c] += d * kj[c] - bwg * wj[c];
        }
    }
    for (int v = 0; v < n; v++)
        for (int c = 0; c < hs; c++) dq[(i0 + v) * stride + c] += g[c][v];
}

/* layer l's saved gates: w (B, T, NH, hs), beta (B, T, NH), inv_norm (B, T, NH) */
static void layer_gates(const PosEnc *pe, float *acts, int l, int B, int T, float **w, float **beta, float **inv_norm) {
    const size_t N = (size_t)B * (size_t)T;
    float *base = acts + (size_t)l * path_layer_acts(pe, B, T);
    *w = base;
    *beta = base + N * (size_t)pe->dims.C;
    *inv_norm = *beta + N * (size_t)pe->dims.NH;
}

static void path_scores_forward(const PosEnc *pe, int l, float *scores, const float *qkv, const float *params,
                                float *acts, int B, int T) {
    const Path *p = pe->impl;
    const int NH = p->NH, hs = p->hs, C = p->C;
    const long S = posenc_qkv_stride(pe);
    const float scale = 1.0f / sqrtf((float)hs);
    float *w, *beta, *inv_norm;
    layer_gates(pe, acts, l, B, T, &w, &beta, &inv_norm);
#pragma omp parallel for schedule(static)
    for (long n = 0; n < (long)B * T; n++) path_gates(p, qkv + n * S, w + n * C, beta + n * NH, inv_norm + n * NH);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * S + (size_t)h * hs;
            const float *wh = w + (size_t)b * T * C + (size_t)h * hs, *bh = beta + (size_t)b * T * NH + h;
            float *sh = scores + ((size_t)b * NH + h) * T * T;
            if (path_reference)
                for (int i = 0; i < T; i++)
                    walk(q + (size_t)i * S, q + C, S, wh, C, bh, NH, i, hs, scale, sh + (size_t)i * T, NULL);
            else
                for (int i0 = 0; i0 < T; i0 += QL)
                    walk_lanes(q, q + C, S, wh, C, bh, NH, i0, i0 + QL < T ? i0 + QL : T, hs, scale, sh + (size_t)i0 * T,
                               T, NULL);
        }
}

/* Through w_t = u_t / n_t and beta_t = 2 sigmoid(z_t) into the extra columns, for one (b, h):
 * dw (T rows of stride dw_stride), dbeta (T, stride db_stride). */
static void gates_backward(const Path *p, float *dqkv, const float *wh, const float *bh, const float *inv_norm_bh,
                           const float *dw, long dw_stride, const float *dbeta, long db_stride, long S, int b, int h,
                           int T) {
    const int C = p->C, NH = p->NH, hs = p->hs;
    for (int t = 0; t < T; t++) {
        const float *wt = wh + (size_t)t * C, *dwt = dw + (size_t)t * dw_stride;
        const float wdw = dot(wt, dwt, hs), inv = inv_norm_bh[(size_t)t * NH];
        float *du = dqkv + ((size_t)b * T + t) * S + 3 * C + (size_t)h * hs;
        for (int e = 0; e < hs; e++) du[e] += (dwt[e] - wt[e] * wdw) * inv;
        const float bt = bh[(size_t)t * NH];
        dqkv[((size_t)b * T + t) * S + 4 * C + h] += dbeta[(size_t)t * db_stride] * bt * (1.0f - 0.5f * bt);
    }
}

/* scores_backward with the lanes: per (b, h), each block of QL queries walks again keeping r_j,
 * then runs backward_lanes; dk, dw and dbeta are summed over lanes once per head. */
static void path_backward_lanes(const Path *p, const float *dscores, float *dqkv, const float *qkv, const float *w,
                                const float *beta, const float *inv_norm, long S, float scale, int B, int T) {
    const int NH = p->NH, hs = p->hs, C = p->C;
#pragma omp parallel
    {
        /* per thread: R, DK, DW (T, hs lanes each), DB (T lanes), and the summed dw (T, hs), dbeta (T) */
        lanes *R = xaligned_alloc(sizeof(lanes), sizeof(lanes) * (size_t)T * (size_t)(3 * hs + 1));
        lanes *DK = R + (size_t)T * hs, *DW = DK + (size_t)T * hs, *DB = DW + (size_t)T * hs;
        float *dw = xmalloc(sizeof(float) * (size_t)T * (size_t)(hs + 1)), *dbeta = dw + (size_t)T * hs;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *q = qkv + (size_t)b * T * S + (size_t)h * hs, *k = q + C;
                float *dq = dqkv + (size_t)b * T * S + (size_t)h * hs, *dk = dq + C;
                const float *wh = w + (size_t)b * T * C + (size_t)h * hs, *bh = beta + (size_t)b * T * NH + h;
                const float *ds = dscores + ((size_t)b * NH + h) * T * T;
                memset(DK, 0, sizeof(lanes) * (size_t)T * (size_t)(2 * hs + 1));
                for (int i0 = 0; i0 < T; i0 += QL) {
                    const int i1 = i0 + QL < T ? i0 + QL : T;
                    walk_lanes(q, k, S, wh, C, bh, NH, i0, i1, hs, scale, NULL, T, R);
                    backward_lanes(k, S, wh, C, bh, NH, i0, i1, hs, scale, ds + (size_t)i0 * T, T, R, dq, DK, DW, DB);
                }
                for (int j = 0; j < T; j++) {
                    for (int c = 0; c < hs; c++) {
                        dk[(size_t)j * S + c] += lanes_sum(DK[(size_t)j * hs + c]);
                        dw[(size_t)j * hs + c] = lanes_sum(DW[(size_t)j * hs + c]);
                    }
                    dbeta[j] = lanes_sum(DB[j]);
                }
                gates_backward(p, dqkv, wh, bh, inv_norm + (size_t)b * T * NH + h, dw, hs, dbeta, 1, S, b, h, T);
            }
        free(R);
        free(dw);
    }
}

static void path_scores_backward(const PosEnc *pe, int l, const float *dscores, float *dqkv, const float *qkv,
                                 const float *params, float *dparams, const float *acts, int B, int T) {
    const Path *p = pe->impl;
    const int NH = p->NH, hs = p->hs, C = p->C;
    const long S = posenc_qkv_stride(pe);
    const float scale = 1.0f / sqrtf((float)hs);
    float *w, *beta, *inv_norm;
    layer_gates(pe, (float *)acts, l, B, T, &w, &beta, &inv_norm);
    if (!path_reference) {
        path_backward_lanes(p, dscores, dqkv, qkv, w, beta, inv_norm, S, scale, B, T);
        return;
    }
#pragma omp parallel
    {
        /* per thread: the walk's r_j (T, hs), dL/dw (T, hs) and dL/dbeta (T) of one (b, h) */
        float *R = xmalloc(sizeof(float) * (size_t)T * (size_t)(2 * hs + 1)), *dw = R + (size_t)T * hs,
              *dbeta = dw + (size_t)T * hs;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *q = qkv + (size_t)b * T * S + (size_t)h * hs, *k = q + C;
                float *dq = dqkv + (size_t)b * T * S + (size_t)h * hs, *dk = dq + C;
                const float *wh = w + (size_t)b * T * C + (size_t)h * hs, *bh = beta + (size_t)b * T * NH + h;
                const float *ds = dscores + ((size_t)b * NH + h) * T * T;
                memset(dw, 0, sizeof(float) * (size_t)T * (size_t)(hs + 1));
                for (int i = 0; i < T; i++) {
                    walk(q + (size_t)i * S, k, S, wh, C, bh, NH, i, hs, scale, NULL, R);
                    float g[PATH_MAX_HS], next[PATH_MAX_HS]; /* g = dL/dr_{j-1}, next = dL/dr_j */
                    for (int j = 0; j <= i; j++) {
                        const float d = scale * ds[(size_t)i * T + j], *rj = R + (size_t)j * hs;
                        float *dkj = dk + (size_t)j * S;
#pragma omp simd
                        for (int e = 0; e < hs; e++) dkj[e] += d * rj[e];
                        if (j == 0) {
                            for (int e = 0; e < hs; e++) next[e] = d * k[e];
                        } else {
                            const float *wj = wh + (size_t)j * C, bj = bh[(size_t)j * NH];
                            const float wr = dot(wj, rj, hs), wg = dot(wj, g, hs);
                            dbeta[j] -= wr * wg;
                            float *dwj = dw + (size_t)j * hs;
                            const float *kj = k + (size_t)j * S;
#pragma omp simd
                            for (int e = 0; e < hs; e++) {
                                dwj[e] -= bj * (wr * g[e] + wg * rj[e]);
                                next[e] = d * kj[e] + g[e] - bj * wg * wj[e];
                            }
                        }
                        memcpy(g, next, sizeof(float) * (size_t)hs);
                    }
                    float *dqi = dq + (size_t)i * S;
                    for (int e = 0; e < hs; e++) dqi[e] += g[e];
                }
                gates_backward(p, dqkv, wh, bh, inv_norm + (size_t)b * T * NH + h, dw, hs, dbeta, 1, S, b, h, T);
            }
        free(R);
    }
}

static void path_scores_step(const PosEnc *pe, int l, float *scores, long row_stride, const float *qkv,
                             const float *k_cache, const float *params, float *state, int pos) {
    const Path *p = pe->impl;
    const int NH = p->NH, hs = p->hs, C = p->C;
    const float scale = 1.0f / sqrtf((float)hs);
    /* layer l's history: w (max_T, NH, hs), then beta (max_T, NH) */
    float *w = state + (size_t)l * (size_t)p->max_T * (size_t)(C + NH), *beta = w + (size_t)p->max_T * C;
    path_gates(p, qkv, w + (size_t)pos * C, beta + (size_t)pos * NH, NULL);
    for (int h = 0; h < NH; h++)
        walk(qkv + (size_t)h * hs, k_cache + (size_t)h * hs, C, w + (size_t)h * hs, C, beta + h, NH, pos, hs, scale,
             scores + (size_t)h * row_stride, NULL);
}

const PosEncKind posenc_path = {
    .name = "path",
    .summary = "PaTH: scores through running products of data-dependent Householder-like matrices",
    .configure = path_configure,
    .num_extra = path_num_extra,
    .num_acts = path_num_acts,
    .num_state = path_num_state,
    .init = path_init,
    .scores_forward = path_scores_forward,
    .scores_backward = path_scores_backward,
    .scores_step = path_scores_step,
    /* PaTH-FoX, the paper's strongest configuration: the tests cover it beside plain PaTH */
    .test_options = (const char *const[]){"{\"bias\": \"fox\"}", NULL},
};
