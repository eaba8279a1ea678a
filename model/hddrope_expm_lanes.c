/* hddrope_expm_lanes.c: the model's exponential of a c x c matrix and its adjoint for the chunk
 * sizes without a closed form (c >= 5): up to HDD_EXP_LANES matrices at once, matrix v in lane v of
 * vectors of doubles, so that every step of the computation is one instruction across matrices
 * (no shuffles inside a small matrix, no horizontal sums) and the matrix products run at the
 * machine's multiply-add rate. The references it must agree with are hddrope_expm (series) and
 * hddrope_expm_adjoint_block (block formula) in model/hddrope_matrix.c; tests/test_hddrope_matrix.c
 * compares them (test_expm_lanes_vs_references) and checks that a matrix's bits do not depend on
 * the lanes beside it (test_expm_lanes_independent).
 *
 * The computation, per lane (docs/hdd-rope.md §3; its backward §4):
 *     s = the fewest halvings with |A 2^-s| <= 1, |.| = min(infinity norm, Frobenius norm)
 *     X = A 2^-s (exact)
 *     T(X) = sum_{k <= 15} X^k / k!      (last term <= 1/15! = 7.6e-13 at |X| = 1)
 *           by Paterson-Stockmeyer: X^2, X^3, X^4, then Horner in X^4 over four blocks
 *           B_j = sum_{i < 4} X^i / (4j + i)!:  Q_3 = B_3, Q_j = B_j + X^4 Q_{j+1}, T = Q_0
 *     exp(A) = T^(2^s) by s squarings
 * Six products and s squarings. The degree and blocking are the same for every lane and only s is
 * a lane's own: a lane that needs fewer squarings than its neighbours keeps its value through the
 * extra ones (a select, not a product), so its result is bit for bit what it would be alone. That
 * is what lets the scan group any positions and chunks into lanes, and a cached generation step
 * (one position) reproduce the full forward's bits.
 *
 * The adjoint is the exact reverse mode of that computation (the gradient w.r.t. A of
 * <G_M, F(A)>, F what the forward computes): squarings E_{i+1} = E_i E_i give
 * dE_i = dE_{i+1} E_i^T + E_i^T dE_{i+1}; Horner steps give dB_j = dQ_j, d(X^4) += dQ_j Q_{j+1}^T,
 * dQ_{j+1} = (X^4)^T dQ_j; the powers X^k = X^(k-1) X give d(X^(k-1)) += d(X^k) X^T and
 * dX += (X^(k-1))^T d(X^k); last dA = dX 2^-s. It keeps the squarands of at most EXP_KEPT_SQUARINGS
 * squarings (|A| up to 2^16); a lane past that takes the series adjoint hddrope_expm_adjoint.
 */
#include "model/hddrope_matrix.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#define HDD_INLINE static inline __attribute__((always_inline))

/* Without AVX-512, GCC notes that these 64-byte vectors are passed differently: they never cross a
 * call here (every helper is inlined into the kernels), so the note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double vd __attribute__((vector_size(HDD_EXP_LANES * sizeof(double))));
typedef int64_t vm __attribute__((vector_size(HDD_EXP_LANES * sizeof(int64_t))));
_Static_assert(HDD_EXP_LANES == 8, "the helpers below are written for 8 lanes");

#define EXP_DEGREE 15        /* the Taylor degree at |X| <= 1 */
#define EXP_BLOCK 4          /* Paterson-Stockmeyer: powers X^1..X^4, blocks of 4 coefficients */
#define EXP_BLOCKS 4         /* (EXP_DEGREE + 1) / EXP_BLOCK */
#define EXP_KEPT_SQUARINGS 16 /* squarands the adjoint keeps (|A| <= 2^16) */

/* Work, in matrices of c x c lane vectors: X^1..X^4, the Horner values Q_1..Q_3, the kept
 * squarands, d(X^1)..d(X^4), four more (the running value, its gradient, two products), and the
 * plan (LanePlan, in the first vectors of its slot). */
enum { SLOT_POW = 0, SLOT_Q = 4, SLOT_SQ = 7, SLOT_DPOW = SLOT_SQ + EXP_KEPT_SQUARINGS, SLOT_CUR = SLOT_DPOW + 4,
       SLOT_DCUR, SLOT_T1, SLOT_T2, SLOT_PLAN, SLOTS };

size_t hddrope_expm_lanes_bytes(int c) { return (size_t)SLOTS * c * c * sizeof(vd); }

HDD_INLINE vd splat(double x) { return (vd){x, x, x, x, x, x, x, x}; }
HDD_INLINE vd pick(vm mask, vd yes, vd no) { return (vd)(((vm)yes & mask) | ((vm)no & ~mask)); }

/* acc + a b with one rounding where the machine has FMA; the same instruction for every lane */
HDD_INLINE vd fmadd(vd a, vd b, vd acc) {
#if defined(__AVX512F__)
    return (vd)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)acc);
#elif defined(__FMA__)
    __m256d a2[2], b2[2], c2[2];
    memcpy(a2, &a, sizeof a), memcpy(b2, &b, sizeof b), memcpy(c2, &acc, sizeof acc);
    c2[0] = _mm256_fmadd_pd(a2[0], b2[0], c2[0]);
    c2[1] = _mm256_fmadd_pd(a2[1], b2[1], c2[1]);
    memcpy(&acc, c2, sizeof acc);
    return acc;
#else
    return acc + a * b;
#endif
}

/* out(i, k) = sum_r X(i, r) Y(r, k), X(i, r) = x[i*xi + r*xr], Y(r, k) = y[r*yr + k*yk]: with the
 * strides, X Y, X Y^T and X^T Y are this one loop. Rows of out are accumulated in registers over
 * r in order, two at a time while two rows' accumulators fit the registers (c <= 8), so that each
 * load of Y serves two multiply-adds. out must not alias x or y. */
HDD_INLINE void lanes_product(const vd *restrict x, int xi, int xr, const vd *restrict y, int yr, int yk,
                              vd *restrict out, int c) {
    int i = 0;
    for (; c <= 8 && i + 2 <= c; i += 2) {
        vd acc0[8], acc1[8];
        for (int k = 0; k < c; k++) acc0[k] = splat(0.0), acc1[k] = splat(0.0);
        for (int r = 0; r < c; r++) {
            const vd x0 = x[i * xi + r * xr], x1 = x[(i + 1) * xi + r * xr];
            for (int k = 0; k < c; k++) {
                const vd yv = y[r * yr + k * yk];
                acc0[k] = fmadd(x0, yv, acc0[k]), acc1[k] = fmadd(x1, yv, acc1[k]);
            }
        }
        for (int k = 0; k < c; k++) out[i * c + k] = acc0[k], out[(i + 1) * c + k] = acc1[k];
    }
    for (; i < c; i++) {
        vd acc[HDD_MAX_C];
        for (int k = 0; k < c; k++) acc[k] = splat(0.0);
        for (int r = 0; r < c; r++) {
            const vd xv = x[i * xi + r * xr];
            for (int k = 0; k < c; k++) acc[k] = fmadd(xv, y[r * yr + k * yk], acc[k]);
        }
        for (int k = 0; k < c; k++) out[i * c + k] = acc[k];
    }
}
HDD_INLINE void mul_nn(const vd *x, const vd *y, vd *out, int c) { lanes_product(x, c, 1, y, c, 1, out, c); }
HDD_INLINE void mul_nt(const vd *x, const vd *y, vd *out, int c) { lanes_product(x, c, 1, y, 1, c, out, c); }
HDD_INLINE void mul_tn(const vd *x, const vd *y, vd *out, int c) { lanes_product(x, 1, c, y, c, 1, out, c); }

static const double inv_fact[EXP_DEGREE + 1] = {
    1.0,          1.0,           1.0 / 2,          1.0 / 6,           1.0 / 24,           1.0 / 120,
    1.0 / 720,    1.0 / 5040,    1.0 / 40320,      1.0 / 362880,      1.0 / 3628800,      1.0 / 39916800,
    1.0 / 479001600.0, 1.0 / 6227020800.0, 1.0 / 87178291200.0, 1.0 / 1307674368000.0};

/* The per-lane plan: the squarings s (as doubles, to compare with a step's index), 2^-s, and the
 * most squarings of any lane. */
typedef struct {
    vd squarings, scale;
    int most;
} LanePlan;
_Static_assert(sizeof(LanePlan) <= 4 * sizeof(vd), "the plan fits its slot (c >= 2)");

/* Lanes 0..n-1 of X from the n matrices A (n, c, c); the rest 0. */
HDD_INLINE void load_lanes(const double *A, int n, vd *X, int c) {
    const int cc = c * c;
    for (int e = 0; e < cc; e++) X[e] = splat(0.0);
    for (int v = 0; v < n; v++)
        for (int e = 0; e < cc; e++) X[e][v] = A[(size_t)v * cc + e];
}

HDD_INLINE void store_lanes(const vd *X, int n, double *A, int c) {
    const int cc = c * c;
    for (int v = 0; v < n; v++)
        for (int e = 0; e < cc; e++) A[(size_t)v * cc + e] = X[e][v];
}

/* s per lane from its norm, and X scaled in place. */
HDD_INLINE LanePlan plan_and_scale(vd *X, int c) {
    vd inf = splat(0.0), fro = splat(0.0);
    for (int i = 0; i < c; i++) {
        vd row = splat(0.0);
        for (int k = 0; k < c; k++) {
            const vd a = X[i * c + k];
            row += pick(a < 0, -a, a), fro = fmadd(a, a, fro);
        }
        inf = pick(row > inf, row, inf);
    }
    LanePlan p = {.most = 0};
    for (int v = 0; v < HDD_EXP_LANES; v++) {
        const double root = sqrt(fro[v]), norm = root < inf[v] ? root : inf[v];
        double scale = 1.0;
        int s = 0;
        while (norm * scale > 1.0 && s < 1100) scale *= 0.5, s++; /* (NaN: none; inf: 1100, then inf) */
        p.squarings[v] = s, p.scale[v] = scale;
        if (s > p.most) p.most = s;
    }
    for (int e = 0; e < c * c; e++) X[e] *= p.scale;
    return p;
}

/* B_j = sum_{i < 4} X^i / (4j + i)! from the powers */
HDD_INLINE void ps_block(const vd *pw, int j, vd *Bj, int c) {
    const int cc = c * c;
    const vd a1 = splat(inv_fact[EXP_BLOCK * j + 1]), a2 = splat(inv_fact[EXP_BLOCK * j + 2]),
             a3 = splat(inv_fact[EXP_BLOCK * j + 3]);
    for (int e = 0; e < cc; e++) Bj[e] = fmadd(a3, pw[3 * cc + e], fmadd(a2, pw[2 * cc + e], a1 * pw[1 * cc + e]));
    const vd a0 = splat(inv_fact[EXP_BLOCK * j]);
    for (int i = 0; i < c; i++) Bj[i * (c + 1)] += a0;
}

/* The forward: pw (slots 1..4 of the work: X^1..X^4; slot 0 unused), Q_1..Q_3 and the squarands
 * kept when keep is set; the result in the work's SLOT_CUR. */
HDD_INLINE LanePlan lanes_forward(const double *A, int n, vd *work, int keep, int c) {
    const int cc = c * c;
    vd *pw = work + (size_t)SLOT_POW * cc - cc; /* pw + k*cc = X^k, k = 1..4 */
    vd *Q = work + (size_t)SLOT_Q * cc - cc;    /* Q + j*cc = Q_j, j = 1..3 */
    vd *sq = work + (size_t)SLOT_SQ * cc, *cur = work + (size_t)SLOT_CUR * cc, *tmp = work + (size_t)SLOT_T1 * cc;
    load_lanes(A, n, pw + cc, c);
    const LanePlan p = plan_and_scale(pw + cc, c);
    for (int k = 2; k <= EXP_BLOCK; k++) mul_nn(pw + (size_t)(k - 1) * cc, pw + cc, pw + (size_t)k * cc, c);
    ps_block(pw, EXP_BLOCKS - 1, cur, c);
    for (int j = EXP_BLOCKS - 2; j >= 0; j--) {
        if (keep) memcpy(Q + (size_t)(j + 1) * cc, cur, sizeof(vd) * (size_t)cc);
        mul_nn(pw + (size_t)EXP_BLOCK * cc, cur, tmp, c);
        ps_block(pw, j, cur, c);
        for (int e = 0; e < cc; e++) cur[e] += tmp[e];
    }
    for (int k = 0; k < p.most; k++) {
        if (keep && k < EXP_KEPT_SQUARINGS) memcpy(sq + (size_t)k * cc, cur, sizeof(vd) * (size_t)cc);
        mul_nn(cur, cur, tmp, c);
        const vm squares = p.squarings > splat((double)k);
        for (int e = 0; e < cc; e++) cur[e] = pick(squares, tmp[e], cur[e]);
    }
    return p;
}

HDD_INLINE void expm_lanes_kernel(const double *A, double *E, int n, vd *work, int c) {
    lanes_forward(A, n, work, 0, c);
    store_lanes(work + (size_t)SLOT_CUR * c * c, n, E, c);
}

HDD_INLINE void expm_keep_lanes_kernel(const double *A, double *E, int n, vd *work, int c) {
    const LanePlan p = lanes_forward(A, n, work, 1, c);
    memcpy(work + (size_t)SLOT_PLAN * c * c, &p, sizeof p);
    if (E) store_lanes(work + (size_t)SLOT_CUR * c * c, n, E, c);
}

HDD_INLINE void expm_reverse_lanes_kernel(const double *A, const double *GM, double *GA, int n, vd *work, int c) {
    const int cc = c * c;
    LanePlan p;
    memcpy(&p, work + (size_t)SLOT_PLAN * cc, sizeof p);
    const vd *pw = work + (size_t)SLOT_POW * cc - cc, *Q = work + (size_t)SLOT_Q * cc - cc;
    const vd *sq = work + (size_t)SLOT_SQ * cc;
    vd *dpw = work + (size_t)SLOT_DPOW * cc - cc, *dcur = work + (size_t)SLOT_DCUR * cc;
    vd *t1 = work + (size_t)SLOT_T1 * cc, *t2 = work + (size_t)SLOT_T2 * cc;
    load_lanes(GM, n, dcur, c);
    for (int k = (p.most < EXP_KEPT_SQUARINGS ? p.most : EXP_KEPT_SQUARINGS) - 1; k >= 0; k--) {
        mul_nt(dcur, sq + (size_t)k * cc, t1, c);
        mul_tn(sq + (size_t)k * cc, dcur, t2, c);
        const vm squared = p.squarings > splat((double)k);
        for (int e = 0; e < cc; e++) dcur[e] = pick(squared, t1[e] + t2[e], dcur[e]);
    }
    memset(dpw + cc, 0, sizeof(vd) * (size_t)EXP_BLOCK * cc);
    for (int j = 0; j < EXP_BLOCKS; j++) {
        /* dcur = dQ_j: through B_j to the powers */
        for (int i = 1; i < EXP_BLOCK; i++) {
            const vd a = splat(inv_fact[EXP_BLOCK * j + i]);
            for (int e = 0; e < cc; e++) dpw[(size_t)i * cc + e] = fmadd(a, dcur[e], dpw[(size_t)i * cc + e]);
        }
        if (j == EXP_BLOCKS - 1) break;
        mul_nt(dcur, Q + (size_t)(j + 1) * cc, t1, c);
        for (int e = 0; e < cc; e++) dpw[(size_t)EXP_BLOCK * cc + e] += t1[e];
        mul_tn(pw + (size_t)EXP_BLOCK * cc, dcur, t2, c);
        memcpy(dcur, t2, sizeof(vd) * (size_t)cc);
    }
    for (int k = EXP_BLOCK; k >= 2; k--) {
        mul_nt(dpw + (size_t)k * cc, pw + cc, t1, c);
        mul_tn(pw + (size_t)(k - 1) * cc, dpw + (size_t)k * cc, t2, c);
        for (int e = 0; e < cc; e++) dpw[(size_t)(k - 1) * cc + e] += t1[e], dpw[cc + e] += t2[e];
    }
    for (int e = 0; e < cc; e++) dcur[e] = dpw[cc + e] * p.scale;
    store_lanes(dcur, n, GA, c);
    for (int v = 0; v < n; v++) /* past the kept squarands: the series adjoint */
        if (p.squarings[v] > EXP_KEPT_SQUARINGS)
            hddrope_expm_adjoint(A + (size_t)v * cc, GM + (size_t)v * cc, GA + (size_t)v * cc, c);
}

/* Copies with c a constant where the model runs (c = 8, 16: unrolled, registers for a row of a
 * product); the same operations in the same order as the run-time-c copy, so the same bits. */
void hddrope_expm_lanes(const double *A, double *E, int n, int c, void *work) {
    if (n < 1 || n > HDD_EXP_LANES || c < 2 || c > HDD_MAX_C) return;
    if (c == 8) expm_lanes_kernel(A, E, n, work, 8);
    else if (c == 16) expm_lanes_kernel(A, E, n, work, 16);
    else expm_lanes_kernel(A, E, n, work, c);
}

void hddrope_expm_lanes_keep(const double *A, double *E, int n, int c, void *work) {
    if (n < 1 || n > HDD_EXP_LANES || c < 2 || c > HDD_MAX_C) return;
    if (c == 8) expm_keep_lanes_kernel(A, E, n, work, 8);
    else if (c == 16) expm_keep_lanes_kernel(A, E, n, work, 16);
    else expm_keep_lanes_kernel(A, E, n, work, c);
}

void hddrope_expm_lanes_reverse(const double *A, const double *GM, double *GA, int n, int c, void *work) {
    if (n < 1 || n > HDD_EXP_LANES || c < 2 || c > HDD_MAX_C) return;
    if (c == 8) expm_reverse_lanes_kernel(A, GM, GA, n, work, 8);
    else if (c == 16) expm_reverse_lanes_kernel(A, GM, GA, n, work, 16);
    else expm_reverse_lanes_kernel(A, GM, GA, n, work, c);
}

void hddrope_expm_adjoint_lanes(const double *A, const double *GM, double *GA, double *E, int n, int c, void *work) {
    hddrope_expm_lanes_keep(A, E, n, c, work);
    hddrope_expm_lanes_reverse(A, GM, GA, n, c, work);
}
