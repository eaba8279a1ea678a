/* hddrope_lanes.c: the fast twin of HDD-RoPE's scan, for every chunk size and both maps (without
 * re-orthonormalisation): forward_unit and backward_unit of model/posenc_hddrope.c with 16 chunks
 * side by side in vector lanes of floats. tests/test_hddrope.c compares the two
 * (test_lane_kernels_vs_scalar, through hddrope_use_lane_kernels(0)) and checks that a chunk's bits
 * do not depend on the chunks beside it (test_lanes_independent, test_cached_step_equals_full_forward).
 *
 * Why lanes across heads and rows: a head has hs/c chunks (4 at c = 8, hs = 32), too few to fill a
 * vector, but chunk j of head h is chunk J = h n_c + j of its row (q's channels J c .. J c + c - 1,
 * its generators at J m), and the rows' chunks G = b NH n_c + J are independent scans that run the
 * same instructions. A parallel unit is a group of 16 consecutive G, so every c x c product below is
 * c^3 multiply-adds across 16 chunks, with no shuffles inside a matrix.
 *
 * Per position and lane, the steps of the scalar path (docs/hdd-rope.md §3 and §4):
 *   forward:  M_t = map(A_t), P_t = P_{t-1} M_t, q~ = P_t q, k~ = P_t k
 *   backward: dq = P_t^T dq~, G_t = dq~ q^T + dk~ k^T, B_t = G_t + B_{t+1} M_{t+1}^T,
 *             dM_t = P_{t-1}^T B_t, dA_t = the map's adjoint at A_t applied to dM_t
 * in float throughout (P, M, B and the map); only the sums over t of d g_base are in double. The
 * scalar path computes M in double and multiplies in double, rounding P to float at every step;
 * the two agree to a few float ulps per step, times the conditioning of the map (the tests'
 * tolerances).
 *
 * The exponential, per lane: s = the fewest halvings with |A 2^-s| <= 1, |.| = min(infinity norm,
 * Frobenius norm); X = A 2^-s (exact); T = sum_{k <= 11} X^k / k! (the first term left out is at
 * most 1/12! = 2.1e-9 at |X| = 1, below float's rounding) by Paterson-Stockmeyer: X^2, X^3, X^4,
 * then Horner in X^4 over three blocks B_j = sum_{i < 4} X^i / (4j + i)!: Q_2 = B_2,
 * Q_1 = B_1 + X^4 Q_2, T = B_0 + X^4 Q_1; exp(A) = T^(2^s) by s squarings. RoPE's init puts the
 * largest angle, 1, in chunk 0, so at init no lane squares. Only s is a lane's own: a lane that
 * needs fewer squarings than its neighbours keeps its value through the extra ones (a select, not
 * a product), so its bits do not depend on the other lanes, and a cached generation step (one
 * position of one row) reproduces the full forward. The adjoint is the exact reverse mode of these
 * steps: squarings E_{i+1} = E_i E_i give dE_i = dE_{i+1} E_i^T + E_i^T dE_{i+1}; Horner steps
 * dB_j = dQ_j, d(X^4) += dQ_j Q_{j+1}^T, dQ_{j+1} = (X^4)^T dQ_j; the powers, exp_reverse's comment;
 * dA = dX 2^-s. A lane past EXP_KEPT_SQUARINGS squarings (|A| > 2^16) takes the series adjoint
 * hddrope_expm_adjoint in double.
 * Cayley: cayley_forward's comment.
 *
 * Saved P of a layer: (T, groups, c^2 entries, lanes): group gi of position t at (t groups + gi)
 * 16 c^2 floats, entry e of lane v at e w + v, w = the group's live lanes (16, or fewer in a last,
 * partial group): scans NH n_c c^2 floats per position, as in the scalar layout
 * (hdd_lanes_saved_at says where an entry lies). Lanes past the batch's last chunk run on zero generators (M = I) and are
 * never loaded or stored. */
#include "model/posenc_hddrope.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#define HDD_INLINE static inline __attribute__((always_inline))

/* Without AVX-512, GCC notes that these 64-byte vectors are passed differently: they never cross
 * a call here (every helper is inlined into this file's units), so the note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vw __attribute__((vector_size(HDD_LANES * sizeof(float))));
typedef int32_t vwm __attribute__((vector_size(HDD_LANES * sizeof(int32_t))));
_Static_assert(HDD_LANES == 16, "the lane helpers below are written for 16 lanes (one AVX-512 register)");

HDD_INLINE vw splat(float x) { return (vw){0} + x; }
HDD_INLINE vw pick(vwm mask, vw yes, vw no) { return (vw)(((vwm)yes & mask) | ((vwm)no & ~mask)); }
HDD_INLINE vw sqrtv(vw x) {
#ifdef __AVX512F__
    return (vw)_mm512_sqrt_ps((__m512)x);
#else
    for (int v = 0; v < HDD_LANES; v++) x[v] = sqrtf(x[v]);
    return x;
#endif
}
HDD_INLINE vw identity_entry(int e, int c) { return splat(e % (c + 1) == 0 ? 1.0f : 0.0f); }

/* acc + a b, fused where the machine has FMA (every product below is made of these) */
HDD_INLINE vw fmadd(vw a, vw b, vw acc) {
#if defined(__AVX512F__)
    return (vw)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)acc);
#elif defined(__FMA__)
    __m256 a2[2], b2[2], c2[2];
    memcpy(a2, &a, sizeof a), memcpy(b2, &b, sizeof b), memcpy(c2, &acc, sizeof acc);
    c2[0] = _mm256_fmadd_ps(a2[0], b2[0], c2[0]);
    c2[1] = _mm256_fmadd_ps(a2[1], b2[1], c2[1]);
    memcpy(&acc, c2, sizeof acc);
    return acc;
#else
    return acc + a * b;
#endif
}

/* ---- loads and stores of lanes ---- */

#ifdef __AVX512F__
HDD_INLINE __mmask16 live_bits(int live) { return (__mmask16)((1u << live) - 1); }
#endif

/* p[index[v]] for the live lanes v, 0 in the others (masked-off lanes are not read) */
HDD_INLINE vw gather(const float *p, vwm index, int live) {
#ifdef __AVX512F__
    return (vw)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), live_bits(live), (__m512i)index, p, 4);
#else
    vw x = splat(0);
    for (int v = 0; v < live; v++) x[v] = p[index[v]];
    return x;
#endif
}
HDD_INLINE void scatter(float *p, vwm index, int live, vw x) {
#ifdef __AVX512F__
    _mm512_mask_i32scatter_ps(p, live_bits(live), (__m512i)index, (__m512)x, 4);
#else
    for (int v = 0; v < live; v++) p[index[v]] = x[v];
#endif
}
/* one saved entry: `live` consecutive floats. A whole aligned vector goes around the caches (the
 * saved P are read back only by the backward, long after: storing them through the caches would
 * first read every line in); forward_lanes fences these stores at its end. */
HDD_INLINE void save_entry(float *p, int live, vw x) {
#ifdef __AVX512F__
    if (live == HDD_LANES && (uintptr_t)p % 64 == 0) _mm512_stream_ps(p, (__m512)x);
    else _mm512_mask_storeu_ps(p, live_bits(live), (__m512)x);
#else
    if (live == HDD_LANES) memcpy(p, &x, sizeof x);
    else
        for (int v = 0; v < live; v++) p[v] = x[v];
#endif
}
HDD_INLINE vw load_entry(const float *p, int live) {
#ifdef __AVX512F__
    return (vw)_mm512_maskz_loadu_ps(live_bits(live), p);
#else
    vw x = splat(0);
    if (live == HDD_LANES) memcpy(&x, p, sizeof x);
    else
        for (int v = 0; v < live; v++) x[v] = p[v];
    return x;
#endif
}
HDD_INLINE void add_to_share(double *share, vw x) {
    for (int v = 0; v < HDD_LANES; v++) share[v] += (double)x[v];
}

/* ---- small products over lanes ---- */

/* out(i, k) = sum_r X(i, r) Y(r, k), X(i, r) = x[i*xi + r*xr], Y(r, k) = y[r*yr + k*yk]: with the
 * strides, X Y, X Y^T and X^T Y are this one loop; with add = 1, out += that instead, with -1,
 * out -= it. Each sum runs over r in order. For c a multiple of 4, out is made in 4 x 4 tiles held in registers, so that
 * each load of X or Y serves four multiply-adds (a 16 x 16 matrix of lanes is 16 KB: three of them
 * fill the L1 cache, and a load per multiply-add would bind the product to the loads); and where
 * the product is known to be symmetric (mirror = 1) or skew (mirror = -1), only the tiles on and
 * above the diagonal are computed and the others copied across. Other c: a row at a time, in full.
 * out must not alias x or y. */
HDD_INLINE void lanes_product(const vw *restrict x, int xi, int xr, const vw *restrict y, int yr, int yk,
                              vw *restrict out, int add, int mirror, int c) {
    if (c % 4 == 0) {
        for (int i0 = 0; i0 < c; i0 += 4)
            for (int k0 = mirror ? i0 : 0; k0 < c; k0 += 4) {
                vw acc[4][4];
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) acc[a][b] = add ? out[(i0 + a) * c + k0 + b] : splat(0);
                for (int r = 0; r < c; r++) {
                    vw xv[4], yv[4];
                    for (int a = 0; a < 4; a++) xv[a] = x[(i0 + a) * xi + r * xr], yv[a] = y[r * yr + (k0 + a) * yk];
                    if (add < 0)
                        for (int a = 0; a < 4; a++) xv[a] = -xv[a];
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) acc[a][b] = fmadd(xv[a], yv[b], acc[a][b]);
                }
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) out[(i0 + a) * c + k0 + b] = acc[a][b];
            }
        if (mirror)
            for (int i = 4; i < c; i++)
                for (int k = 0; k < i / 4 * 4; k++) out[i * c + k] = mirror > 0 ? out[k * c + i] : -out[k * c + i];
        return;
    }
    for (int i = 0; i < c; i++) {
        vw acc[HDD_MAX_C];
        for (int k = 0; k < c; k++) acc[k] = add ? out[i * c + k] : splat(0);
        for (int r = 0; r < c; r++) {
            const vw xv = add < 0 ? -x[i * xi + r * xr] : x[i * xi + r * xr];
            for (int k = 0; k < c; k++) acc[k] = fmadd(xv, y[r * yr + k * yk], acc[k]);
        }
        for (int k = 0; k < c; k++) out[i * c + k] = acc[k];
    }
}
/* out = X Y, X Y^T, X^T Y; the _add forms out +=, _sub out -= */
HDD_INLINE void mul_nn(const vw *x, const vw *y, vw *out, int c) { lanes_product(x, c, 1, y, c, 1, out, 0, 0, c); }
HDD_INLINE void mul_nt(const vw *x, const vw *y, vw *out, int c) { lanes_product(x, c, 1, y, 1, c, out, 0, 0, c); }
HDD_INLINE void mul_tn(const vw *x, const vw *y, vw *out, int c) { lanes_product(x, 1, c, y, c, 1, out, 0, 0, c); }
HDD_INLINE void mul_nn_add(const vw *x, const vw *y, vw *out, int c) { lanes_product(x, c, 1, y, c, 1, out, 1, 0, c); }
HDD_INLINE void mul_nn_sub(const vw *x, const vw *y, vw *out, int c) { lanes_product(x, c, 1, y, c, 1, out, -1, 0, c); }
HDD_INLINE void mul_nt_add(const vw *x, const vw *y, vw *out, int c) { lanes_product(x, c, 1, y, 1, c, out, 1, 0, c); }
HDD_INLINE void mul_tn_add(const vw *x, const vw *y, vw *out, int c) { lanes_product(x, 1, c, y, c, 1, out, 1, 0, c); }
/* X Y known to be symmetric (mirror 1) or skew (-1): the powers of a skew X */
HDD_INLINE void mul_nn_mirror(const vw *x, const vw *y, vw *out, int mirror, int c) {
    lanes_product(x, c, 1, y, c, 1, out, 0, mirror, c);
}

/* ---- the exponential and its adjoint ---- */

#define EXP_BLOCK 4           /* Paterson-Stockmeyer: powers X^1..X^4, blocks of 4 coefficients */
#define EXP_BLOCKS 3          /* (degree 11 + 1) / EXP_BLOCK */
#define EXP_KEPT_SQUARINGS 16 /* squarands the adjoint keeps (|A| <= 2^16) */
#define EXP_MAX_SQUARINGS 126 /* 2^-126: the smallest normal float; past it the result is inf or NaN anyway */

static const float inv_fact[EXP_BLOCK * EXP_BLOCKS] = {
    1.0f,          1.0f,           1.0f / 2,       1.0f / 6,        1.0f / 24,        1.0f / 120,
    1.0f / 720,    1.0f / 5040,    1.0f / 40320,   1.0f / 362880,   1.0f / 3628800,   1.0f / 39916800};

/* The exponential's work, in matrices of c x c lane vectors: X^1..X^4, the Horner values Q_1, Q_2,
 * the kept squarands, d(X^1)..d(X^4), the running value and its gradient, two products. */
enum { SLOT_POW = 0, SLOT_Q = SLOT_POW + EXP_BLOCK, SLOT_SQ = SLOT_Q + EXP_BLOCKS - 1,
       SLOT_DPOW = SLOT_SQ + EXP_KEPT_SQUARINGS, SLOT_CUR = SLOT_DPOW + EXP_BLOCK, SLOT_DCUR, SLOT_T1, SLOT_T2,
       EXP_SLOTS };
#define POW(work, k, cc) ((work) + (size_t)(SLOT_POW + (k)-1) * (cc))   /* X^k, k = 1..4 */
#define DPOW(work, k, cc) ((work) + (size_t)(SLOT_DPOW + (k)-1) * (cc)) /* d(X^k) */
#define QJ(work, j, cc) ((work) + (size_t)(SLOT_Q + (j)-1) * (cc))      /* Q_j, j = 1, 2 */
#define SLOT(work, s, cc) ((work) + (size_t)(s) * (cc))

/* Per lane: the squarings s (as floats, to compare with a squaring's index) and 2^-s; the most
 * squarings of any lane. */
typedef struct {
    vw squarings, scale;
    int most;
} Plan;

/* The three blocks B_j = sum_{i < 4} X^i / (4j + i)! in one pass: B_0 into T, B_1 into Q_1 and
 * B_2 into Q_2 (the Horner steps then add X^4 Q_{j+1} onto them). */
HDD_INLINE void ps_blocks(vw *work, vw *T, int c) {
    const int cc = c * c;
    const vw *x1 = POW(work, 1, cc), *x2 = POW(work, 2, cc), *x3 = POW(work, 3, cc);
    vw *out[EXP_BLOCKS] = {T, QJ(work, 1, cc), QJ(work, 2, cc)};
    for (int e = 0; e < cc; e++)
        for (int j = 0; j < EXP_BLOCKS; j++)
            out[j][e] = fmadd(splat(inv_fact[EXP_BLOCK * j + 3]), x3[e],
                              fmadd(splat(inv_fact[EXP_BLOCK * j + 2]), x2[e], inv_fact[EXP_BLOCK * j + 1] * x1[e]));
    for (int j = 0; j < EXP_BLOCKS; j++)
        for (int i = 0; i < c; i++) out[j][i * (c + 1)] += inv_fact[EXP_BLOCK * j];
}

/* exp of the matrices in POW(work, 1) (A on entry; scaled in place) into SLOT_CUR; with keep,
 * also the squarands exp_reverse needs (the powers and Q_1, Q_2 stay in their slots anyway). */
HDD_INLINE Plan exp_forward(vw *work, int keep, int c) {
    const int cc = c * c;
    vw *X = POW(work, 1, cc), *cur = SLOT(work, SLOT_CUR, cc), *tmp = SLOT(work, SLOT_T1, cc);
    vw inf = splat(0), fro = splat(0);
    for (int i = 0; i < c; i++) {
        vw row = splat(0);
        for (int k = 0; k < c; k++) {
            const vw a = X[i * c + k];
            row += pick(a < 0, -a, a), fro = fmadd(a, a, fro);
        }
        inf = pick(row > inf, row, inf);
    }
    /* s = the fewest halvings with norm 2^-s <= 1, from norm's exponent: norm = f 2^e, f in [1/2, 1),
     * is at most 2^e, and exactly 2^(e-1) when f = 1/2 (no mantissa bits); s <= EXP_MAX_SQUARINGS,
     * so that 2^-s is a normal float (a larger norm is past float's range anyway); NaN: 0. */
    const vw root = sqrtv(fro), norm = pick(root < inf, root, inf);
    const vwm bits = (vwm)norm, mantissa = bits & 0x7fffff, e = ((bits >> 23) & 0xff) - 126;
    vwm s = e + (mantissa == 0); /* (a true comparison is -1) */
    const vwm capped = s < EXP_MAX_SQUARINGS;
    s = (norm > 1.0f) & ((s & capped) | (EXP_MAX_SQUARINGS & ~capped));
    Plan p = {.squarings = __builtin_convertvector(s, vw), .scale = (vw)((127 - s) << 23), .most = 0};
    for (int v = 0; v < HDD_LANES; v++) p.most = s[v] > p.most ? s[v] : p.most;
    for (int e = 0; e < cc; e++) X[e] *= p.scale;
    /* X skew: X^2 and X^4 are symmetric, X^3 skew */
    mul_nn_mirror(X, X, POW(work, 2, cc), 1, c);
    mul_nn_mirror(POW(work, 2, cc), X, POW(work, 3, cc), -1, c);
    mul_nn_mirror(POW(work, 2, cc), POW(work, 2, cc), POW(work, 4, cc), 1, c);
    /* Horner: Q_2 = B_2, Q_1 = B_1 + X^4 Q_2, T = B_0 + X^4 Q_1 */
    ps_blocks(work, cur, c);
    mul_nn_add(POW(work, EXP_BLOCK, cc), QJ(work, 2, cc), QJ(work, 1, cc), c);
    mul_nn_add(POW(work, EXP_BLOCK, cc), QJ(work, 1, cc), cur, c);
    for (int k = 0; k < p.most; k++) {
        if (keep && k < EXP_KEPT_SQUARINGS) memcpy(SLOT(work, SLOT_SQ + k, cc), cur, sizeof(vw) * (size_t)cc);
        mul_nn(cur, cur, tmp, c);
        const vwm squares = p.squarings > (float)k;
        for (int e = 0; e < cc; e++) cur[e] = pick(squares, tmp[e], cur[e]);
    }
    return p;
}
_Static_assert(EXP_BLOCKS == 3 && EXP_BLOCK == 4, "exp_forward and exp_reverse are written for degree 11 in blocks of 4");

/* The adjoint after exp_forward(work, 1): dM (c x c lanes) in; returns d(X^1), of which
 * dA = d(X^1) 2^-s (lanes past the kept squarands are wrong; the caller redoes them). */
HDD_INLINE const vw *exp_reverse(vw *work, Plan p, const vw *dM, int c) {
    const int cc = c * c;
    vw *t1 = SLOT(work, SLOT_T1, cc), *t2 = SLOT(work, SLOT_T2, cc), *dcur = SLOT(work, SLOT_DCUR, cc);
    vw *d1 = DPOW(work, 1, cc), *d2 = DPOW(work, 2, cc), *d3 = DPOW(work, 3, cc), *d4 = DPOW(work, 4, cc);
    const vw *dq = dM; /* the gradient w.r.t. the value being undone */
    for (int k = (p.most < EXP_KEPT_SQUARINGS ? p.most : EXP_KEPT_SQUARINGS) - 1; k >= 0; k--) {
        const vw *sq = SLOT(work, SLOT_SQ + k, cc);
        mul_nt(dq, sq, t1, c);
        mul_tn_add(sq, dq, t1, c);
        const vwm squared = p.squarings > (float)k;
        for (int e = 0; e < cc; e++) dcur[e] = pick(squared, t1[e], dq[e]);
        dq = dcur;
    }
    /* dq_0 = dQ_0 (= dT), and down the Horner steps dq_{j+1} = (X^4)^T dq_j; d(X^4) = sum_j dq_j Q_{j+1}^T,
     * and through the blocks d(X^i) = sum_j dq_j / (4j + i)!, i = 1..3, in one pass at the end */
    const vw *X4 = POW(work, EXP_BLOCK, cc), *dq1 = t2, *dq2 = t1;
    mul_nt(dq, QJ(work, 1, cc), d4, c);
    mul_tn(X4, dq, t2, c);
    mul_nt_add(dq1, QJ(work, 2, cc), d4, c);
    mul_tn(X4, dq1, t1, c);
    for (int e = 0; e < cc; e++) {
        const vw g0 = dq[e], g1 = dq1[e], g2 = dq2[e];
        d1[e] = fmadd(splat(inv_fact[9]), g2, fmadd(splat(inv_fact[5]), g1, inv_fact[1] * g0));
        d2[e] = fmadd(splat(inv_fact[10]), g2, fmadd(splat(inv_fact[6]), g1, inv_fact[2] * g0));
        d3[e] = fmadd(splat(inv_fact[11]), g2, fmadd(splat(inv_fact[7]), g1, inv_fact[3] * g0));
    }
    /* The powers: X^4 = X^2 X^2, X^3 = X^2 X, X^2 = X X. X is skew, so X^2 and X^4 are symmetric and
     * X^3 skew for every A, and only the symmetric parts of d(X^2), d(X^4) and the skew part of
     * d(X^3) reach the generators (dg reads the skew part of dX): each step takes that part of its
     * gradient, which turns two products into one where the two terms are transposes.
     *   X^4: d(X^2) += d4 X^2 + X^2 d4 ~ (d4 + d4^T) X^2 (same symmetric part)
     *   X^3: d(X^2) += d3 X^T = -K X, dX += X^2 K, K = (d3 - d3^T)/2
     *   X^2: dX += d2 X^T + X^T d2 ~ -(d2 + d2^T) X (same skew part) */
    const vw *X = POW(work, 1, cc), *X2 = POW(work, 2, cc);
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) {
            t1[i * c + k] = d4[i * c + k] + d4[k * c + i];
            t2[i * c + k] = 0.5f * (d3[i * c + k] - d3[k * c + i]);
        }
    mul_nn_add(t1, X2, d2, c);
    mul_nn_add(X2, t2, d1, c);
    mul_nn_sub(t2, X, d2, c);
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) t1[i * c + k] = d2[i * c + k] + d2[k * c + i];
    mul_nn_sub(t1, X, d1, c);
    return d1;
}

/* ---- the Cayley map and its adjoint ---- */

/* M = (I - A)^-1 (I + A) = 2W - I, W = (I - A)^-1, of the matrices in POW(work, 1): W by
 * Gauss-Jordan elimination without pivoting into SLOT_Q, then M into SLOT_CUR. Without pivoting is safe
 * here: the symmetric part of I - A is I, and every Schur complement of the elimination keeps a
 * symmetric part >= I, so every pivot is >= 1. */
HDD_INLINE void cayley_forward(vw *work, int c) {
    const int cc = c * c;
    const vw *A = POW(work, 1, cc);
    vw *W = SLOT(work, SLOT_Q, cc), *M = SLOT(work, SLOT_CUR, cc);
    for (int e = 0; e < cc; e++) W[e] = identity_entry(e, c) - A[e];
    for (int p = 0; p < c; p++) {
        const vw inv = 1.0f / W[p * (c + 1)];
        W[p * (c + 1)] = splat(1.0f);
        for (int k = 0; k < c; k++) W[p * c + k] *= inv;
        for (int i = 0; i < c; i++) {
            if (i == p) continue;
            const vw f = W[i * c + p];
            W[i * c + p] = splat(0);
            for (int k = 0; k < c; k++) W[i * c + k] = fmadd(-f, W[p * c + k], W[i * c + k]);
        }
    }
    /* M = 2W - I = I + 2 W A (W - I = W (I - (I - A))): in float, 2W - I would subtract 1 from about
     * 2 on the diagonal and lose its last bits there */
    mul_nn(W, A, M, c);
    for (int e = 0; e < cc; e++) M[e] = identity_entry(e, c) + 2.0f * M[e];
}

/* After cayley_forward: W^T dM W^T into SLOT_DCUR, of which dA = 2 W^T dM W^T (from
 * dW = W dA W and M = 2W - I). */
HDD_INLINE const vw *cayley_reverse(vw *work, const vw *dM, int c) {
    const int cc = c * c;
    const vw *W = SLOT(work, SLOT_Q, cc);
    vw *t1 = SLOT(work, SLOT_T1, cc), *out = SLOT(work, SLOT_DCUR, cc);
    mul_tn(W, dM, t1, c);
    mul_nt(t1, W, out, c);
    return out;
}

/* ---- one unit: its group of chunks and its scratch ---- */

/* A unit's group: HDD_LANES consecutive chunks G = sb n_chunks + J over the scans sb (n_chunks =
 * NH n_c per row, J = h n_c + j), so that a group spans several scans where a row has fewer than
 * 16 chunks. Scan sb serves the `rows` batch rows from sb rows on. Per lane: its chunk J, the first
 * batch row of its scan, and the offsets, from the group's first row at the same position, of its
 * q channels and of its generator columns. */
typedef struct {
    int G0, live, b0, b[HDD_LANES];
    vwm J, qk, gen;
} Group;

static int row_chunks(const Hdd *d) { return d->NH * d->nc; }
int hdd_lanes_groups(const Hdd *d, int scans) { return (scans * row_chunks(d) + HDD_LANES - 1) / HDD_LANES; }
int hdd_lanes_fit(const Hdd *d, int B, int T, long S) {
    /* a group's lanes lie within the batch (dynamic: within 16 rows) */
    const int span = d->dynamic && B > HDD_LANES ? HDD_LANES : B;
    return (double)span * T * S < 2147483647.0;
}

static Group group_of(const Hdd *d, long u, int scans, int rows, int T, long S) {
    const int chunks = row_chunks(d), total = scans * chunks;
    Group g;
    memset(&g, 0, sizeof g);
    g.G0 = (int)u * HDD_LANES;
    g.live = total - g.G0 < HDD_LANES ? total - g.G0 : HDD_LANES;
    g.b0 = g.G0 / chunks * rows;
    for (int v = 0; v < HDD_LANES; v++) {
        const int G = g.G0 + (v < g.live ? v : 0), b = G / chunks * rows, J = G % chunks; /* dead lanes: lane 0's */
        const int32_t row = (int32_t)((long)(b - g.b0) * T * S); /* < 2^31: hdd_lanes_fit */
        g.J[v] = J, g.b[v] = b;
        g.qk[v] = row + J * d->c;
        g.gen[v] = row + 3 * d->C + J * d->m;
    }
    return g;
}

size_t hdd_lanes_saved_at(const Hdd *d, int scans, int t, int sb, int J, int e) {
    const int chunks = row_chunks(d), G = sb * chunks + J, gi = G / HDD_LANES;
    const int rest = scans * chunks - gi * HDD_LANES, live = rest < HDD_LANES ? rest : HDD_LANES;
    const size_t cc = (size_t)d->c * d->c;
    return (size_t)t * scans * chunks * cc + (size_t)gi * HDD_LANES * cc + (size_t)e * live + G % HDD_LANES;
}

typedef struct {
    vw *P, *next, *M, *Bt, *Bnext, *dM, *work, *base; /* P, next: forward P_t, P_{t+1}; backward P_t, P_{t-1} */
    double *share; /* backward: this unit's d g_base per (generator or, static, entry of dM; lane) */
} Lanes;

static int share_entries(const Hdd *d) { return d->m > d->c * d->c ? d->m : d->c * d->c; }

size_t hdd_lanes_scratch_bytes(const Hdd *d) {
    const size_t cc = (size_t)d->c * d->c;
    return sizeof(vw) * ((6 + EXP_SLOTS) * cc + (size_t)d->m) +
           sizeof(double) * HDD_LANES * (size_t)share_entries(d);
}

static Lanes carve(const Hdd *d, void *scratch) {
    const size_t cc = (size_t)d->c * d->c;
    vw *at = scratch;
    Lanes w;
    w.P = at, w.next = at + cc, w.M = at + 2 * cc, w.Bt = at + 3 * cc, w.Bnext = at + 4 * cc, w.dM = at + 5 * cc;
    w.work = at + 6 * cc, w.base = w.work + EXP_SLOTS * cc;
    w.share = (double *)(w.base + d->m);
    return w;
}

/* g_base of the group's chunks, and (static) their step matrices (I in dead lanes). */
static void lanes_setup(const Hdd *d, int l, const float *params, const float *M_static, const Group *g, Lanes *w) {
    const int cc = d->c * d->c;
    const float *base = params + (size_t)l * d->G;
    for (int a = 0; a < d->m; a++) w->base[a] = gather(base + a, g->J * d->m, g->live);
    if (M_static) {
        const vwm lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
        for (int e = 0; e < cc; e++)
            w->M[e] = pick(lane < g->live, gather(M_static + e, g->J * cc, g->live), identity_entry(e, d->c));
    }
}

/* A_t of the group into POW(work, 1): g = g_base + the extra columns; A = L - L^T. row0: the
 * group's first row at position t. */
HDD_INLINE void skew_from_row(const Hdd *d, const Lanes *w, const Group *g, const float *row0, int c) {
    vw *A = POW(w->work, 1, c * c);
    for (int i = 0; i < c; i++) A[i * (c + 1)] = splat(0);
    for (int a = 0; a < d->m; a++) {
        const vw x = w->base[a] + gather(row0 + a, g->gen, g->live);
        A[d->tri_i[a] * c + d->tri_k[a]] = x, A[d->tri_k[a] * c + d->tri_i[a]] = -x;
    }
}

/* x <- P x for the c channels of each live lane's chunk, at x + index[v] */
HDD_INLINE void apply(const vw *P, float *x, vwm index, int live, int c) {
    vw in[HDD_MAX_C];
    for (int k = 0; k < c; k++) in[k] = gather(x + k, index, live);
    for (int i = 0; i < c; i++) {
        vw out = splat(0);
        for (int k = 0; k < c; k++) out = fmadd(P[i * c + k], in[k], out);
        scatter(x + i, index, live, out);
    }
}

/* the rows are far apart (a stride the hardware prefetcher does not follow): the group's q and k
 * at row0, a row's consecutive chunks as one range. (The generator columns, a longer run of each
 * row, the hardware prefetcher finds; prefetching them too is slower.) */
HDD_INLINE void prefetch_lanes(const Hdd *d, const Group *g, const float *row0, int rows, long rows_apart, int write) {
    for (int v0 = 0; v0 < g->live;) {
        int v1 = v0 + 1; /* lanes v0 .. v1 - 1: one scan */
        while (v1 < g->live && g->b[v1] == g->b[v0]) v1++;
        const int nq = (v1 - v0) * d->c;
        for (int r = 0; r < rows; r++) {
            const float *q = row0 + (size_t)r * rows_apart + g->qk[v0];
            for (int e = 0; e < nq; e += 16) {
                if (write) __builtin_prefetch(q + e, 1), __builtin_prefetch(q + d->C + e, 1);
                else __builtin_prefetch(q + e), __builtin_prefetch(q + d->C + e);
            }
        }
        v0 = v1;
    }
}

/* The lanes of an exponential past EXP_KEPT_SQUARINGS squarings: their dg by the series adjoint,
 * in double. */
static void series_adjoint_lanes(const Hdd *d, const Lanes *w, const Group *g, Plan p, const float *row0, const vw *dM,
                                 vw *dg, int c) {
    const int cc = c * c, m = d->m;
    for (int v = 0; v < g->live; v++) {
        if (p.squarings[v] <= EXP_KEPT_SQUARINGS) continue;
        double A[HDD_MAX_C * HDD_MAX_C] = {0}, GM[HDD_MAX_C * HDD_MAX_C], GA[HDD_MAX_C * HDD_MAX_C];
        for (int a = 0; a < m; a++) {
            const double x = (double)w->base[a][v] + (double)row0[g->gen[v] + a];
            A[d->tri_i[a] * c + d->tri_k[a]] = x, A[d->tri_k[a] * c + d->tri_i[a]] = -x;
        }
        for (int e = 0; e < cc; e++) GM[e] = dM[e][v];
        hddrope_expm_adjoint(A, GM, GA, c);
        for (int a = 0; a < m; a++) {
            const int i = d->tri_i[a], k = d->tri_k[a];
            dg[a][v] = (float)(GA[i * c + k] - GA[k * c + i]);
        }
    }
}

/* ---- the scans ---- */

/* forward_unit's steps for unit u (its group; scans: the batch's scans), applied to rows r =
 * 0 .. rows - 1 of each lane's scan (rows = B / scans: 1 with dynamic generators); M_static: the
 * layer's static step matrices (NH n_c, c, c) or NULL. */
HDD_INLINE void forward_lanes(const Hdd *d, long u, int scans, int rows, int l, float *qkv, const float *params,
                             const float *M_static, float *layer_acts, float *layer_state, void *scratch, int T,
                             int pos0, long S, int c) {
    const int cc = c * c, C = d->C, chunks = row_chunks(d);
    const Group g = group_of(d, u, scans, rows, T, S);
    const size_t per_t = (size_t)scans * chunks * cc; /* saved floats per position */
    const long rows_apart = (long)T * S;
    Lanes w = carve(d, scratch);
    lanes_setup(d, l, params, M_static, &g, &w);
    for (int e = 0; e < cc; e++) w.P[e] = identity_entry(e, c);
    if (layer_state && pos0 > 0)
        for (int v = 0; v < g.live; v++) {
            const float *st = layer_state + ((size_t)g.b[v] * chunks + g.J[v]) * cc;
            int from_state = 0;
            for (int e = 0; e < cc; e++) from_state |= st[e] != 0.0f;
            if (from_state)
                for (int e = 0; e < cc; e++) w.P[e][v] = st[e];
        }
    const vw *M = d->dynamic ? SLOT(w.work, SLOT_CUR, cc) : w.M;
    for (int t = 0; t < T; t++) {
        float *row0 = qkv + ((size_t)g.b0 * T + t) * S;
        if (t + HDD_PREFETCH < T) prefetch_lanes(d, &g, row0 + HDD_PREFETCH * S, rows, rows_apart, 1);
        if (d->dynamic) {
            skew_from_row(d, &w, &g, row0, c);
            if (d->map == MAP_CAYLEY) cayley_forward(w.work, c);
            else exp_forward(w.work, 0, c);
        }
        mul_nn(w.P, M, w.next, c); /* P <- P M */
        vw *swap = w.P;
        w.P = w.next, w.next = swap;
        if (layer_acts) {
            float *saved = layer_acts + (size_t)t * per_t + (size_t)g.G0 * cc;
            for (int e = 0; e < cc; e++) save_entry(saved + (size_t)e * g.live, g.live, w.P[e]);
        }
        for (int r = 0; r < rows; r++) {
            float *q = row0 + (size_t)r * rows_apart;
            apply(w.P, q, g.qk, g.live, c);
            apply(w.P, q + C, g.qk, g.live, c);
        }
    }
#ifdef __AVX512F__
    _mm_sfence(); /* save_entry's streaming stores, before another thread reads them */
#endif
    if (layer_state)
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < g.live; v++)
                for (int e = 0; e < cc; e++)
                    layer_state[((size_t)(g.b[v] + r) * chunks + g.J[v]) * cc + e] = w.P[e][v];
}

/* backward_unit's steps for unit u (as forward_lanes), over t = T-1 .. 0; d g_base shares go to
 * partial, (scans, NH n_c, m) or, static, (scans, NH n_c, c^2): dM summed over t, which the caller
 * sums over the scans and sends through the map's adjoint once. */
HDD_INLINE void backward_lanes(const Hdd *d, long u, int scans, int rows, int l, float *dqkv, const float *qkv,
                              const float *params, const float *layer_acts, const float *M_static, void *scratch,
                              double *partial, int T, long S, int c) {
    const int cc = c * c, C = d->C, m = d->m, chunks = row_chunks(d);
    const Group g = group_of(d, u, scans, rows, T, S);
    const size_t per_t = (size_t)scans * chunks * cc;
    const long rows_apart = (long)T * S;
    const int per_chunk = d->dynamic ? m : cc, live = g.live;
    Lanes w = carve(d, scratch);
    lanes_setup(d, l, params, M_static, &g, &w);
    memset(w.share, 0, sizeof(double) * HDD_LANES * (size_t)per_chunk);
    const vw *M = d->dynamic ? SLOT(w.work, SLOT_CUR, cc) : w.M;
    /* P_t and P_{t-1} (the next step's P_t), B_t and the next step's (B_t M_t^T): pairs of buffers */
    vw *Pt = w.P, *Pprev = w.next, *Bt = w.Bt, *Bnext = w.Bnext;
    for (int e = 0; e < cc; e++) Bt[e] = splat(0);
    if (T > 0) {
        const float *last = layer_acts + (size_t)(T - 1) * per_t + (size_t)g.G0 * cc;
        for (int e = 0; e < cc; e++) Pt[e] = load_entry(last + (size_t)e * live, live);
    }
    for (int t = T - 1; t >= 0; t--) {
        const float *saved = layer_acts + (size_t)t * per_t + (size_t)g.G0 * cc;
        const float *row0 = qkv + ((size_t)g.b0 * T + t) * S;
        float *drow0 = dqkv + ((size_t)g.b0 * T + t) * S;
        if (t >= HDD_PREFETCH) {
            prefetch_lanes(d, &g, row0 - HDD_PREFETCH * S, rows, rows_apart, 0);
            prefetch_lanes(d, &g, drow0 - HDD_PREFETCH * S, rows, rows_apart, 1);
        }
        /* q~ = P q, k~ = P k: dq = P^T dq~, dk = P^T dk~, and G_t += dq~ q^T + dk~ k^T (summed over
         * the rows sharing the scan: B_t and dM_t are linear in G_t), q = P^T q~ */
        for (int which = 0; which < 2 * rows; which++) {
            const size_t off = (size_t)(which / 2) * rows_apart + (size_t)(which % 2) * C;
            vw rot[HDD_MAX_C], grad[HDD_MAX_C], un[HDD_MAX_C], dun[HDD_MAX_C];
            for (int k = 0; k < c; k++) {
                rot[k] = gather(row0 + off + k, g.qk, live), grad[k] = gather(drow0 + off + k, g.qk, live);
                un[k] = splat(0), dun[k] = splat(0);
            }
            for (int r = 0; r < c; r++)
                for (int i = 0; i < c; i++)
                    un[i] = fmadd(Pt[r * c + i], rot[r], un[i]), dun[i] = fmadd(Pt[r * c + i], grad[r], dun[i]);
            for (int i = 0; i < c; i++)
                for (int k = 0; k < c; k++) Bt[i * c + k] = fmadd(grad[i], un[k], Bt[i * c + k]);
            for (int i = 0; i < c; i++) scatter(drow0 + off + i, g.qk, live, dun[i]);
        }
        /* P_t = P_{t-1} M_t: dM_t = P_{t-1}^T B_t */
        const vw *dM = Bt;
        if (t > 0) {
            for (int e = 0; e < cc; e++) Pprev[e] = load_entry(saved - per_t + (size_t)e * live, live);
            mul_tn(Pprev, Bt, w.dM, c);
            dM = w.dM;
        }
        if (!d->dynamic) {
            for (int e = 0; e < cc; e++) add_to_share(w.share + (size_t)e * HDD_LANES, dM[e]);
        } else {
            /* M_t rebuilt from g_t (the forward's bits), and through the map to the generators */
            skew_from_row(d, &w, &g, row0, c);
            /* dA = scale dX: Cayley 2 W^T dM W^T, the exponential d(X^1) 2^-s */
            const vw *dX;
            vw scale, dg[HDD_MAX_C * (HDD_MAX_C - 1) / 2];
            Plan p = {.most = 0};
            if (d->map == MAP_CAYLEY) {
                cayley_forward(w.work, c);
                dX = cayley_reverse(w.work, dM, c), scale = splat(2.0f);
            } else {
                p = exp_forward(w.work, 1, c);
                dX = exp_reverse(w.work, p, dM, c), scale = p.scale;
            }
            for (int a = 0; a < m; a++) {
                const int i = d->tri_i[a], k = d->tri_k[a];
                dg[a] = (dX[i * c + k] - dX[k * c + i]) * scale;
            }
            if (p.most > EXP_KEPT_SQUARINGS) series_adjoint_lanes(d, &w, &g, p, row0, dM, dg, c);
            for (int a = 0; a < m; a++) {
                add_to_share(w.share + (size_t)a * HDD_LANES, dg[a]);
                scatter(drow0 + a, g.gen, live, gather(drow0 + a, g.gen, live) + dg[a]);
            }
        }
        /* for t-1: B_t M_t^T */
        mul_nt(Bt, M, Bnext, c);
        vw *swap = Bt;
        Bt = Bnext, Bnext = swap;
        swap = Pt, Pt = Pprev, Pprev = swap;
    }
    for (int v = 0; v < live; v++)
        for (int e = 0; e < per_chunk; e++)
            partial[(size_t)(g.G0 + v) * per_chunk + e] = w.share[(size_t)e * HDD_LANES + v];
}

/* Copies with c a constant where the model runs (c = 2, 3, 4, 8, 16: unrolled, a row or tile of a
 * product in registers); the same operations in the same order as the run-time-c copy, so the same
 * bits. */
void hdd_forward_unit_lanes(const Hdd *d, long u, int scans, int rows, int l, float *qkv, const float *params,
                           const float *M_static, float *layer_acts, float *layer_state, void *scratch, int T,
                           int pos0, long S) {
    if (d->c == 2)
        forward_lanes(d, u, scans, rows, l, qkv, params, M_static, layer_acts, layer_state, scratch, T, pos0, S, 2);
    else if (d->c == 3)
        forward_lanes(d, u, scans, rows, l, qkv, params, M_static, layer_acts, layer_state, scratch, T, pos0, S, 3);
    else if (d->c == 4)
        forward_lanes(d, u, scans, rows, l, qkv, params, M_static, layer_acts, layer_state, scratch, T, pos0, S, 4);
    else if (d->c == 8)
        forward_lanes(d, u, scans, rows, l, qkv, params, M_static, layer_acts, layer_state, scratch, T, pos0, S, 8);
    else if (d->c == 16)
        forward_lanes(d, u, scans, rows, l, qkv, params, M_static, layer_acts, layer_state, scratch, T, pos0, S, 16);
    else forward_lanes(d, u, scans, rows, l, qkv, params, M_static, layer_acts, layer_state, scratch, T, pos0, S, d->c);
}

void hdd_backward_unit_lanes(const Hdd *d, long u, int scans, int rows, int l, float *dqkv, const float *qkv,
                            const float *params, const float *layer_acts, const float *M_static, void *scratch,
                            double *partial, int T, long S) {
    if (d->c == 2)
        backward_lanes(d, u, scans, rows, l, dqkv, qkv, params, layer_acts, M_static, scratch, partial, T, S, 2);
    else if (d->c == 3)
        backward_lanes(d, u, scans, rows, l, dqkv, qkv, params, layer_acts, M_static, scratch, partial, T, S, 3);
    else if (d->c == 4)
        backward_lanes(d, u, scans, rows, l, dqkv, qkv, params, layer_acts, M_static, scratch, partial, T, S, 4);
    else if (d->c == 8)
        backward_lanes(d, u, scans, rows, l, dqkv, qkv, params, layer_acts, M_static, scratch, partial, T, S, 8);
    else if (d->c == 16)
        backward_lanes(d, u, scans, rows, l, dqkv, qkv, params, layer_acts, M_static, scratch, partial, T, S, 16);
    else backward_lanes(d, u, scans, rows, l, dqkv, qkv, params, layer_acts, M_static, scratch, partial, T, S, d->c);
}
