/* hddrope_matrix.c: the small dense matrices of HDD-RoPE: the exponential and the Cayley map of a
 * c x c skew matrix A, and their adjoints (the gradient w.r.t. A of <G_M, map(A)>), row-major, in
 * double (docs/hdd-rope.md §3 the step matrix, §4 the backward, §7 numerics).
 *
 * Reading order: the products; the reference exponential (a Taylor series with scaling and
 * squaring) and two reference adjoints (a series, and the block formula); Cayley and its adjoint;
 * Cayley's closed forms for c = 2, 3 and 4 and the entry points the scan calls for Cayley
 * (hddrope_step_cayley, hddrope_step_cayley_adjoint); the exponential's closed forms for c = 2, 3
 * and 4; last, the two entry points the scan calls for those (hddrope_step_expm,
 * hddrope_step_expm_adjoint). Other chunk sizes take the exponential of
 * model/hddrope_expm_lanes.c (several matrices at once in vector lanes).
 * tests/test_hddrope_matrix.c checks every fast form against the references and against finite
 * differences.
 *
 * The kernels are written once with c a parameter and forced inline, so that the entry points get
 * copies with c a constant (unrolled, vectorised) by calling them with a literal; same operations
 * in the same order, so every copy gives the same bits.
 */
#include "model/hddrope_matrix.h"

#include <math.h>
#include <string.h>

/* The references (hddrope_expm, hddrope_expm_adjoint) go to double precision. */
#define HDD_REFERENCE_TOLERANCE 1e-17

#define HDD_INLINE static inline __attribute__((always_inline))

/* fmax without the libm call (no NaN rules needed here): it sits in the inner loops */
static inline double max_d(double a, double b) { return a > b ? a : b; }

/* ---- products (n <= 2*HDD_MAX_C) ---- */

/* out = a b, one row at a time, accumulated in registers over r in order. out must not alias a or b. */
HDD_INLINE void mm_rows_inline(const double *restrict a, const double *restrict b, double *restrict out, int n) {
    for (int i = 0; i < n; i++) {
        double acc[2 * HDD_MAX_C];
        for (int k = 0; k < n; k++) acc[k] = 0;
        for (int r = 0; r < n; r++) {
            const double x = a[i * n + r];
            for (int k = 0; k < n; k++) acc[k] += x * b[r * n + k];
        }
        for (int k = 0; k < n; k++) out[i * n + k] = acc[k];
    }
}

/* mm_rows_inline for a run-time n, compiled once (a copy at every call would only cost build time) */
static void mm_rows_any(const double *restrict a, const double *restrict b, double *restrict out, int n) {
    mm_rows_inline(a, b, out, n);
}

/* out = a b; out may alias a or b. Inline where n is a constant (the c = 4 closed form), else one call. */
HDD_INLINE void mat_mul(const double *a, const double *b, double *out, int n) {
    double tmp[4 * HDD_MAX_C * HDD_MAX_C];
    if (__builtin_constant_p(n)) mm_rows_inline(a, b, tmp, n);
    else mm_rows_any(a, b, tmp, n);
    memcpy(out, tmp, sizeof(double) * (size_t)(n * n));
}

/* ---- references: the series exponential and two adjoints ---- */

/* E = exp(A), n <= 2*HDD_MAX_C: scaling and squaring with a Taylor series. */
HDD_INLINE void expm_kernel(const double *A, double *E, int n, double tolerance) {
    const int nn = n * n;
    double norm = 0;
    for (int i = 0; i < n; i++) {
        double row = 0;
        for (int k = 0; k < n; k++) row += fabs(A[i * n + k]);
        if (row > norm) norm = row;
    }
    /* scale to norm <= 1/4, then the degree q whose last term norm^q/q! is below 1e-17 */
    int squarings = 0;
    double scale = 1.0;
    while (norm * scale > 0.25 && squarings < 1000) scale *= 0.5, squarings++;
    int q = 0;
    for (double bound = 1.0; bound > tolerance && q < 30;) q++, bound *= norm * scale / q;
    double X[4 * HDD_MAX_C * HDD_MAX_C], buf_a[4 * HDD_MAX_C * HDD_MAX_C], buf_b[4 * HDD_MAX_C * HDD_MAX_C];
    double *R = buf_a, *next = buf_b, *swap;
    for (int i = 0; i < nn; i++) X[i] = A[i] * scale;
    /* Horner: R = I + X/k (I + X/(k+1) (... (I + X/q))) */
    for (int i = 0; i < nn; i++) R[i] = (i % (n + 1) == 0);
    for (int k = q; k >= 1; k--) {
        const double inv = 1.0 / k;
        mat_mul(X, R, next, n);
        for (int i = 0; i < nn; i++) next[i] = (i % (n + 1) == 0) + next[i] * inv;
        swap = R, R = next, next = swap;
    }
    for (int s = 0; s < squarings; s++) {
        mat_mul(R, R, next, n);
        swap = R, R = next, next = swap;
    }
    memcpy(E, R, sizeof(double) * (size_t)nn);
}

void hddrope_expm(const double *A, double *E, int n) {
    if (n < 1 || n > 2 * HDD_MAX_C) return; /* never: c is checked in configure */
    expm_kernel(A, E, n, HDD_REFERENCE_TOLERANCE);
}

/* The adjoint of the exponential: G_A = L_exp(A^T, G_M), the gradient w.r.t. A of <G_M, exp(A)>.
 * Reference version: the top-right c x c block of exp([[A^T, G_M], [0, A^T]]) (Mathias' block
 * formula), with the generic expm on the 2c x 2c matrix. G_M is scaled to entries <= 2^-10 first
 * (the block is linear in it), so the squarings depend on A alone and nothing can overflow. */
void hddrope_expm_adjoint_block(const double *A, const double *GM, double *GA, int c) {
    const int n = 2 * c;
    double big[4 * HDD_MAX_C * HDD_MAX_C], E[4 * HDD_MAX_C * HDD_MAX_C], size = 0;
    for (int i = 0; i < c * c; i++) size = max_d(size, fabs(GM[i]));
    if (size == 0 || c < 1 || c > HDD_MAX_C) {
        for (int i = 0; i < c * c; i++) GA[i] = 0;
        return;
    }
    memset(big, 0, sizeof(double) * (size_t)(n * n));
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) {
            big[i * n + k] = big[(i + c) * n + k + c] = A[k * c + i];
            big[i * n + k + c] = GM[i * c + k] / size * 0x1p-10;
        }
    hddrope_expm(big, E, n);
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) GA[i * c + k] = E[i * n + k + c] * (size * 0x1p10);
}

/* The same adjoint, about 4x cheaper: every product is c x c. With X = A^T / 2^s (infinity norm
 * <= 1/4) and F = G_M / 2^s, the series L(X, F) = sum_k F_k / k!, F_1 = F,
 * F_k = F_{k-1} X + X^{k-1} F (the sum of X^i F X^j over i + j = k - 1), then s doublings
 * L(2Y, 2F) = e L + L e with e = exp(Y) (squared alongside). */
HDD_INLINE void expm_adjoint_kernel(const double *A, const double *GM, double *GA, int c, double tolerance) {
    const int cc = c * c;
    double X[HDD_MAX_C * HDD_MAX_C], e[HDD_MAX_C * HDD_MAX_C], power[HDD_MAX_C * HDD_MAX_C];
    double F[HDD_MAX_C * HDD_MAX_C], t1[HDD_MAX_C * HDD_MAX_C], t2[HDD_MAX_C * HDD_MAX_C];
    double norm = 0;
    for (int i = 0; i < c; i++) {
        double row = 0;
        for (int k = 0; k < c; k++) row += fabs(A[k * c + i]);
        norm = max_d(norm, row);
    }
    int squarings = 0;
    double scale = 1.0;
    while (norm * scale > 0.25 && squarings < 1000) scale *= 0.5, squarings++;
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) X[i * c + k] = A[k * c + i] * scale;
    for (int i = 0; i < cc; i++) {
        F[i] = GM[i] * scale;
        GA[i] = F[i];
        power[i] = e[i] = (i % (c + 1) == 0);
    }
    /* The degree, fixed in advance (no data-dependent exit, so the loop is straight vector code):
     * with x = |X| <= 1/4, |F_k / k!| <= x^(k-1) |F| / (k-1)! and |X^k / k!| <= x^k / k!, so past
     * the first q with x^q / q! <= 1e-17 both series' terms are below double precision. */
    int q = 1;
    for (double bound = norm * scale; bound > tolerance && q < 30;) q++, bound *= norm * scale / q;
    double inv_factorial = 1; /* 1/(k-1)! */
    for (int k = 2; k <= q; k++) {
        /* power = X^(k-2) -> X^(k-1) (and e gets the X^(k-1)/(k-1)! term) */
        mat_mul(power, X, power, c);
        for (int i = 0; i < cc; i++) e[i] += power[i] * inv_factorial;
        inv_factorial /= k;
        mat_mul(F, X, t1, c);
        mat_mul(power, GM, t2, c);
        for (int i = 0; i < cc; i++) {
            F[i] = t1[i] + t2[i] * scale;
            GA[i] += F[i] * inv_factorial;
        }
    }
    for (int s = 0; s < squarings; s++) {
        mat_mul(e, GA, t1, c);
        mat_mul(GA, e, t2, c);
        for (int i = 0; i < cc; i++) GA[i] = t1[i] + t2[i];
        mat_mul(e, e, e, c);
    }
}

void hddrope_expm_adjoint(const double *A, const double *GM, double *GA, int c) {
    if (c < 1 || c > HDD_MAX_C) return;
    expm_adjoint_kernel(A, GM, GA, c, HDD_REFERENCE_TOLERANCE);
}

/* ---- Cayley ---- */

/* W = M^-1 (n <= HDD_MAX_C) by Gauss-Jordan with partial pivoting. M = I - A with A skew is
 * always invertible (its eigenvalues are 1 - i lambda). */
static void mat_inverse(const double *M, double *W, int n) {
    double a[HDD_MAX_C * HDD_MAX_C];
    memcpy(a, M, sizeof(double) * (size_t)(n * n));
    for (int i = 0; i < n * n; i++) W[i] = (i % (n + 1) == 0);
    for (int col = 0; col < n; col++) {
        int pivot = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[r * n + col]) > fabs(a[pivot * n + col])) pivot = r;
        if (pivot != col)
            for (int k = 0; k < n; k++) {
                double t = a[col * n + k];
                a[col * n + k] = a[pivot * n + k], a[pivot * n + k] = t;
                t = W[col * n + k];
                W[col * n + k] = W[pivot * n + k], W[pivot * n + k] = t;
            }
        double inv = 1.0 / a[col * n + col];
        for (int k = 0; k < n; k++) a[col * n + k] *= inv, W[col * n + k] *= inv;
        for (int r = 0; r < n; r++) {
            if (r == col) continue;
            double f = a[r * n + col];
            if (f == 0) continue;
            for (int k = 0; k < n; k++) a[r * n + k] -= f * a[col * n + k], W[r * n + k] -= f * W[col * n + k];
        }
    }
}

/* M = (I - A)^-1 (I + A) = 2 (I - A)^-1 - I; W = (I - A)^-1 too when W is not NULL. */
void hddrope_cayley(const double *A, double *M, double *W_out, int n) {
    double ImA[HDD_MAX_C * HDD_MAX_C], W[HDD_MAX_C * HDD_MAX_C];
    if (n < 1 || n > HDD_MAX_C) return;
    for (int i = 0; i < n * n; i++) ImA[i] = (i % (n + 1) == 0) - A[i];
    mat_inverse(ImA, W, n);
    for (int i = 0; i < n * n; i++) M[i] = 2.0 * W[i] - (i % (n + 1) == 0);
    if (W_out) memcpy(W_out, W, sizeof(double) * (size_t)(n * n));
}

/* The adjoint of the Cayley map: M = 2W - I, W = (I - A)^-1, dW = W dA W, so
 * dL/dA = 2 W^T G_M W^T. M gets the map itself, as hddrope_cayley computes it. */
void hddrope_cayley_adjoint(const double *A, const double *GM, double *GA, double *M, int c) {
    double W[HDD_MAX_C * HDD_MAX_C], Wt[HDD_MAX_C * HDD_MAX_C], tmp[HDD_MAX_C * HDD_MAX_C];
    if (c < 1 || c > HDD_MAX_C) return;
    hddrope_cayley(A, M, W, c);
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) Wt[i * c + k] = W[k * c + i];
    mat_mul(Wt, GM, tmp, c);
    mat_mul(tmp, Wt, GA, c);
    for (int i = 0; i < c * c; i++) GA[i] *= 2.0;
}

/* Cayley in closed form for c = 3 and 4 (c = 2 below). A skew matrix of size c <= 4 satisfies
 * A^4 = -p A^2 - q^2 I with p = |A|_F^2 / 2 and q its Pfaffian (c = 4: a01 a23 - a02 a13 + a03 a12;
 * 0 for c = 2, 3), since its eigenvalues are +-i alpha, +-i beta with p = alpha^2 + beta^2 and
 * q^2 = alpha^2 beta^2. Multiplying out with that identity,
 *     W = (I - A)^-1 = k S,  S = (1 + p)(I + A) + A^2 + A^3,  k = 1 / (1 + p + q^2) = 1/det(I - A),
 * and M = 2W - I. Along a skew direction dA, p moves by <A, dA>, q by <Q, dA> (Q: the Pfaffian's
 * partial derivatives on the upper triangle), k by -k^2 (dp + 2q dq); with G_W = 2 G_M the
 * gradient's skew part is that of
 *     -k^2 <G_W, S> (A + 2q Q) + k (<G_W, I + A> A + (1 + p) G_W + G_W A^T + A^T G_W
 *                                   + G_W A^2^T + A^T G_W A^T + A^2^T G_W).
 * CayleySmall holds what the map and its adjoint share (the backward rebuilds M with the
 * forward's bits). */
typedef struct {
    double A2[16], A3[16], S[16], p, q, k;
} CayleySmall;

HDD_INLINE void cayley_small_factors(const double *A, CayleySmall *f, int c) {
    double sum = 0;
    for (int i = 0; i < c * c; i++) sum += A[i] * A[i];
    f->p = 0.5 * sum;
    f->q = c == 4 ? A[1] * A[11] - A[2] * A[7] + A[3] * A[6] : 0.0;
    f->k = 1.0 / (1.0 + f->p + f->q * f->q);
    mat_mul(A, A, f->A2, c);
    mat_mul(f->A2, A, f->A3, c);
    for (int i = 0; i < c * c; i++) f->S[i] = (1.0 + f->p) * ((i % (c + 1) == 0) + A[i]) + f->A2[i] + f->A3[i];
}

HDD_INLINE void cayley_small_map(const CayleySmall *f, double *M, int c) {
    for (int i = 0; i < c * c; i++) M[i] = 2.0 * f->k * f->S[i] - (i % (c + 1) == 0);
}

HDD_INLINE void cayley_small_kernel(const double *A, double *M, int c) {
    CayleySmall f;
    cayley_small_factors(A, &f, c);
    cayley_small_map(&f, M, c);
}

/* The skew part of the adjoint (as hddrope_expm_adjoint4 returns it); M, when not NULL, gets the
 * map as cayley_small_kernel computes it. */
HDD_INLINE void cayley_small_adjoint_kernel(const double *A, const double *GM, double *GA, double *M, int c) {
    CayleySmall f;
    cayley_small_factors(A, &f, c);
    if (M) cayley_small_map(&f, M, c);
    const int cc = c * c;
    double GW[16], Q[16] = {0}, on_S = 0, on_IA = 0;
    for (int i = 0; i < cc; i++) {
        GW[i] = 2.0 * GM[i];
        on_S += GW[i] * f.S[i];
        on_IA += GW[i] * ((i % (c + 1) == 0) + A[i]);
    }
    if (c == 4) /* d q / d a_ik on the upper triangle */
        Q[1] = A[11], Q[11] = A[1], Q[2] = -A[7], Q[7] = -A[2], Q[3] = A[6], Q[6] = A[3];
    double full[16];
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) {
            /* (1 + p) G_W + G_W A^T + A^T G_W + G_W A^2^T + A^2^T G_W, then A^T G_W A^T below */
            double s = (1.0 + f.p) * GW[i * c + k];
            for (int r = 0; r < c; r++)
                s += GW[i * c + r] * A[k * c + r] + A[r * c + i] * GW[r * c + k] + GW[i * c + r] * f.A2[k * c + r] +
                     f.A2[r * c + i] * GW[r * c + k];
            full[i * c + k] = s;
        }
    double AtG[16];
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (int r = 0; r < c; r++) s += A[r * c + i] * GW[r * c + k];
            AtG[i * c + k] = s;
        }
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (int r = 0; r < c; r++) s += AtG[i * c + r] * A[k * c + r];
            full[i * c + k] = f.k * (full[i * c + k] + s + on_IA * A[i * c + k]) -
                              f.k * f.k * on_S * (A[i * c + k] + 2.0 * f.q * Q[i * c + k]);
        }
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) GA[i * c + k] = 0.5 * (full[i * c + k] - full[k * c + i]);
}

/* c = 2 on its own: with A = [[0, -g], [g, 0]] and k = 1/(1 + g^2), M = k [[1 - g^2, -2g], [2g, 1 - g^2]]
 * and dL/dg = k^2 (-4g (G00 + G11) + 2 (1 - g^2)(G10 - G01)), half on each side of the skew GA.
 * (The general form above reaches this gradient, of size 1/g^2, through terms of size 1, so
 * loses g^2 ulps of it.) */
HDD_INLINE void cayley2_kernel(const double *A, double *M) {
    const double g = A[2], k = 1.0 / (1.0 + g * g);
    M[0] = M[3] = k * (1.0 - g * g), M[1] = -2.0 * g * k, M[2] = 2.0 * g * k;
}
HDD_INLINE void cayley2_adjoint_kernel(const double *A, const double *GM, double *GA, double *M) {
    const double g = A[2], k = 1.0 / (1.0 + g * g);
    if (M) cayley2_kernel(A, M);
    const double dg = k * k * (-4.0 * g * (GM[0] + GM[3]) + 2.0 * (1.0 - g * g) * (GM[2] - GM[1]));
    GA[0] = GA[3] = 0, GA[1] = -0.5 * dg, GA[2] = 0.5 * dg;
}

/* The model's Cayley map and its adjoint: closed forms at c = 2, 3 and 4 (adjoint: skew part
 * only), the inverse by elimination otherwise. */
void hddrope_step_cayley(const double *A, double *M, int c) {
    if (c == 2) cayley2_kernel(A, M);
    else if (c == 3) cayley_small_kernel(A, M, 3);
    else if (c == 4) cayley_small_kernel(A, M, 4);
    else hddrope_cayley(A, M, NULL, c);
}

void hddrope_step_cayley_adjoint(const double *A, const double *GM, double *GA, double *M, int c) {
    if (c == 2) cayley2_adjoint_kernel(A, GM, GA, M);
    else if (c == 3) cayley_small_adjoint_kernel(A, GM, GA, M, 3);
    else if (c == 4) cayley_small_adjoint_kernel(A, GM, GA, M, 4);
    else hddrope_cayley_adjoint(A, GM, GA, M, c);
}

/* ---- c = 2: closed forms ---- */

/* E = exp(A) for c = 2: A = [[0, -g], [g, 0]] (g = A[1][0]) turns by the angle g. */
HDD_INLINE void expm2_kernel(const double *A, double *E) {
    const double g = A[2], co = cos(g), sn = sin(g);
    E[0] = co, E[1] = -sn, E[2] = sn, E[3] = co;
}
void hddrope_expm2(const double *A, double *E) { expm2_kernel(A, E); }

/* The skew part of the adjoint for c = 2 (the convention of hddrope_expm_adjoint4): with
 * dE/dg = [[-sin g, -cos g], [cos g, -sin g]], dL/dg = <G_M, dE/dg>, half of it on each side.
 * E (if not NULL) gets exp(A), as expm2_kernel computes it. */
HDD_INLINE void expm2_adjoint_kernel(const double *A, const double *GM, double *GA, double *E) {
    const double g = A[2], co = cos(g), sn = sin(g);
    if (E) E[0] = co, E[1] = -sn, E[2] = sn, E[3] = co;
    const double dg = -sn * (GM[0] + GM[3]) + co * (GM[2] - GM[1]);
    GA[0] = GA[3] = 0, GA[1] = -0.5 * dg, GA[2] = 0.5 * dg;
}
void hddrope_expm_adjoint2(const double *A, const double *GM, double *GA) { expm2_adjoint_kernel(A, GM, GA, NULL); }

/* ---- c = 3: closed forms ---- */

/* A skew 3 x 3 matrix is the cross product with w = (A[2][1], A[0][2], A[1][0]); with t = |w|,
 * exp(A) = I + a A + b A^2, a = sin t / t, b = (1 - cos t) / t^2 (Rodrigues). Expm3Factors holds
 * what the exponential and its adjoint share, so that the step matrix the backward rebuilds has
 * the forward's bits: w, t^2, a, b, A^2, and da/dt / t, db/dt / t (the adjoint only). */
typedef struct {
    double w[3], A2[9], a, b, da_t, db_t;
} Expm3Factors;

HDD_INLINE void expm3_factors(const double *A, Expm3Factors *f) {
    const double w1 = A[7], w2 = A[2], w3 = A[3];
    const double t2 = w1 * w1 + w2 * w2 + w3 * w3;
    f->w[0] = w1, f->w[1] = w2, f->w[2] = w3;
    if (t2 < 1e-4) {
        /* the series, where the quotients below lose digits; the next terms (t^6) are < 1e-15 */
        f->a = 1 - t2 / 6 * (1 - t2 / 20);
        f->b = 0.5 - t2 / 24 * (1 - t2 / 30);
        f->da_t = -1.0 / 3 + t2 / 30 * (1 - t2 / 28);
        f->db_t = -1.0 / 12 + t2 / 180 * (1 - t2 / 37.333333333333336);
    } else {
        const double t = sqrt(t2), sn = sin(t), co = cos(t), half = sin(0.5 * t) / (0.5 * t);
        f->a = sn / t;
        f->b = 0.5 * half * half; /* (1 - cos t) / t^2 without the cancellation */
        f->da_t = (co - f->a) / t2;
        f->db_t = (f->a - 2 * f->b) / t2;
    }
    /* A^2 = w w^T - t^2 I */
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) f->A2[i * 3 + k] = f->w[i] * f->w[k] - (i == k ? t2 : 0.0);
}

HDD_INLINE void expm3_from_factors(const double *A, const Expm3Factors *f, double *E) {
    for (int i = 0; i < 9; i++) E[i] = (i % 4 == 0) + f->a * A[i] + f->b * f->A2[i];
}

HDD_INLINE void expm3_kernel(const double *A, double *E) {
    Expm3Factors f;
    expm3_factors(A, &f);
    expm3_from_factors(A, &f, E);
}
void hddrope_expm3(const double *A, double *E) { expm3_kernel(A, E); }

/* The skew part of the adjoint for c = 3 (the convention of hddrope_expm_adjoint4). With G = G_M
 * and E = I + a A + b A^2, holding a and b fixed the gradient w.r.t. A is D = a G + b (G A^T +
 * A^T G); through t, dL/dw_p also gets w_p (da/dt / t <G, A> + db/dt / t <G, A^2>). The generator
 * of w_p sits at (i, k) and (k, i) with opposite signs, so dL/dw_p = D[i][k] - D[k][i] + that
 * term, and GA[i][k] = -GA[k][i] = dL/dw_p / 2. */
HDD_INLINE void expm3_adjoint_kernel(const double *A, const double *GM, double *GA, double *E) {
    Expm3Factors f;
    expm3_factors(A, &f);
    if (E) expm3_from_factors(A, &f, E);
    double GAt[9], AtG[9], D[9], gA = 0, gA2 = 0;
    for (int i = 0; i < 9; i++) gA += GM[i] * A[i], gA2 += GM[i] * f.A2[i];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            double s1 = 0, s2 = 0;
            for (int r = 0; r < 3; r++) s1 += GM[i * 3 + r] * A[k * 3 + r], s2 += A[r * 3 + i] * GM[r * 3 + k];
            GAt[i * 3 + k] = s1, AtG[i * 3 + k] = s2;
        }
    for (int i = 0; i < 9; i++) D[i] = f.a * GM[i] + f.b * (GAt[i] + AtG[i]);
    const double radial = f.da_t * gA + f.db_t * gA2;
    const double d1 = D[7] - D[5] + f.w[0] * radial; /* w1 at (2, 1) */
    const double d2 = D[2] - D[6] + f.w[1] * radial; /* w2 at (0, 2) */
    const double d3 = D[3] - D[1] + f.w[2] * radial; /* w3 at (1, 0) */
    GA[0] = GA[4] = GA[8] = 0;
    GA[7] = 0.5 * d1, GA[5] = -0.5 * d1;
    GA[2] = 0.5 * d2, GA[6] = -0.5 * d2;
    GA[3] = 0.5 * d3, GA[1] = -0.5 * d3;
}
void hddrope_expm_adjoint3(const double *A, const double *GM, double *GA) { expm3_adjoint_kernel(A, GM, GA, NULL); }

/* ---- c = 4: closed forms ---- */

/* E = exp(A) for c = 4 in closed form (docs/hdd-rope.md §3): with the Hodge dual on planes
 * (01)<->(23), (02)<->(31), (03)<->(12), A = A+ + A-, A+- = (A +- *A)/2, where A+-^2 = -a+-^2 I and
 * A+ A- = A- A+, so exp(A) = (cos a+ I + sinc a+ A+)(cos a- I + sinc a- A-). Two sincos and one
 * 4 x 4 product instead of a series; tested against hddrope_expm. */
/* The two factors of exp(A) for c = 4 (see hddrope_expm4), with what the adjoint reads of them:
 * x[half] the three plane values of A+ (half 0) or A- (half 1), a2 = |x|^2, co = cos |x|,
 * sn = sin |x|, si = sinc |x|. Shared by the exponential and its adjoint, so that the step
 * matrix the backward rebuilds from these has the forward's bits. */
typedef struct {
    double factor[2][16], x[2][3], a2[2], alpha[2], co[2], sn[2], si[2];
} Expm4Factors;

HDD_INLINE void expm4_factors(const double *A, Expm4Factors *f) {
    const double p01 = A[1], p02 = A[2], p03 = A[3], p12 = A[6], p13 = A[7], p23 = A[11];
    /* the plane values of A+ (sign 1) and A- (sign -1); *A has 01 <- 23, 02 <- 31 = -13, 03 <- 12 */
    for (int half = 0; half < 2; half++) {
        const double sign = half == 0 ? 1.0 : -1.0;
        const double x01 = 0.5 * (p01 + sign * p23), x02 = 0.5 * (p02 - sign * p13), x03 = 0.5 * (p03 + sign * p12);
        /* self-dual (anti-self-dual): 23 = +-01, 13 = -+02, 12 = +-03 */
        const double x23 = sign * x01, x13 = -sign * x02, x12 = sign * x03;
        const double a2 = x01 * x01 + x02 * x02 + x03 * x03, alpha = sqrt(a2);
        /* sin unconditional (and only then divided) so that the compiler fuses sin and cos into one sincos */
        const double co = cos(alpha), sn = sin(alpha), si = alpha > 0 ? sn / alpha : 1.0;
        f->x[half][0] = x01, f->x[half][1] = x02, f->x[half][2] = x03;
        f->a2[half] = a2, f->alpha[half] = alpha, f->co[half] = co, f->sn[half] = sn, f->si[half] = si;
        double *F = f->factor[half];
        F[0] = F[5] = F[10] = F[15] = co;
        F[1] = si * x01, F[4] = -F[1];
        F[2] = si * x02, F[8] = -F[2];
        F[3] = si * x03, F[12] = -F[3];
        F[6] = si * x12, F[9] = -F[6];
        F[7] = si * x13, F[13] = -F[7];
        F[11] = si * x23, F[14] = -F[11];
    }
}

HDD_INLINE void expm4_kernel(const double *A, double *E) {
    Expm4Factors f;
    expm4_factors(A, &f);
    mat_mul(f.factor[0], f.factor[1], E, 4);
}
void hddrope_expm4(const double *A, double *E) { expm4_kernel(A, E); }

/* The skew part of the adjoint for c = 4 in closed form (docs/hdd-rope.md §3): GA = (L - L^T)/2 with
 * L = L_exp(A^T, G_M), for skew A. That is all the model reads (dg(i,k) = dA[i][k] - dA[k][i]),
 * and it is the gradient of <G_M, E+ E-> through the factors of hddrope_expm4: with
 * E = cos a I + sinc a A (A = sum_p x_p B_p, a = |x|), dL/dE+ = G_M E-^T, dL/dE- = E+^T G_M and
 * dL/dx_p = sinc a <G_E, B_p> + x_p (-sinc a tr G_E + (sinc'(a)/a) <G_E, A>);
 * then x+- = (p01 +- p23, p02 -+ p13, p03 +- p12)/2 back to the planes. Two sincos and two 4 x 4
 * products instead of a series with doublings; tested against hddrope_expm_adjoint. */
HDD_INLINE void expm4_adjoint_kernel(const double *A, const double *GM, double *GA, double *E) {
    Expm4Factors f;
    expm4_factors(A, &f);
    if (E) mat_mul(f.factor[0], f.factor[1], E, 4); /* expm4_kernel's product: its bits */
    double dsi[2];
    for (int half = 0; half < 2; half++) {
        const double a2 = f.a2[half], alpha = f.alpha[half];
        /* sinc'(a)/a = (a cos a - sin a)/a^3, which cancels for small a: its series there
         * (sum_{n>=1} (-1)^n 2n a^(2n-2)/(2n+1)!; the n = 9 term is below 1e-17 at a = 1/2) */
        if (alpha < 0.5) {
            double term = 1.0 / 6.0, sum = 0; /* term = a^(2n-2)/(2n+1)! */
            for (int n = 1; n <= 8; n++) {
                sum += (n % 2 ? -2.0 : 2.0) * n * term;
                term *= a2 / ((2 * n + 2) * (2 * n + 3));
            }
            dsi[half] = sum;
        } else {
            dsi[half] = (alpha * f.co[half] - f.sn[half]) / (a2 * alpha);
        }
    }
    /* G+ = G E-^T, G- = E+^T G */
    double Gf[2][16];
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            double plus = 0, minus = 0;
            for (int r = 0; r < 4; r++) {
                plus += GM[i * 4 + r] * f.factor[1][k * 4 + r];
                minus += f.factor[0][r * 4 + i] * GM[r * 4 + k];
            }
            Gf[0][i * 4 + k] = plus, Gf[1][i * 4 + k] = minus;
        }
    double dp[6] = {0}; /* d/d p01, p02, p03, p12, p13, p23 */
    for (int half = 0; half < 2; half++) {
        const double sign = half == 0 ? 1.0 : -1.0, *G = Gf[half], *x = f.x[half], si = f.si[half];
        /* <G, B_p> for the three basis matrices of this half */
        const double b01 = G[1] - G[4] + sign * (G[11] - G[14]);
        const double b02 = G[2] - G[8] - sign * (G[7] - G[13]);
        const double b03 = G[3] - G[12] + sign * (G[6] - G[9]);
        const double trace = G[0] + G[5] + G[10] + G[15];
        const double inner = x[0] * b01 + x[1] * b02 + x[2] * b03;
        const double common = -si * trace + dsi[half] * inner;
        const double d01 = si * b01 + x[0] * common;
        const double d02 = si * b02 + x[1] * common;
        const double d03 = si * b03 + x[2] * common;
        dp[0] += 0.5 * d01, dp[5] += 0.5 * sign * d01;
        dp[1] += 0.5 * d02, dp[4] -= 0.5 * sign * d02;
        dp[2] += 0.5 * d03, dp[3] += 0.5 * sign * d03;
    }
    /* dp is dL/dA[i][k] - dL/dA[k][i] for i < k; the skew part holds half of it on each side */
    const int plane_i[6] = {0, 0, 0, 1, 1, 2}, plane_k[6] = {1, 2, 3, 2, 3, 3};
    for (int i = 0; i < 16; i++) GA[i] = 0;
    for (int p = 0; p < 6; p++) {
        GA[plane_i[p] * 4 + plane_k[p]] = 0.5 * dp[p];
        GA[plane_k[p] * 4 + plane_i[p]] = -0.5 * dp[p];
    }
}

void hddrope_expm_adjoint4(const double *A, const double *GM, double *GA) { expm4_adjoint_kernel(A, GM, GA, NULL); }

/* ---- general c: Paterson-Stockmeyer Taylor and its reverse-mode adjoint ---- */

/* ---- what the scan calls ---- */

/* The model's exp(A) at c = 2, 3 and 4 (the scan takes hddrope_expm_lanes for other c; here they
 * get the series, so that no c leaves E unwritten). */
void hddrope_step_expm(const double *A, double *E, int c) {
    if (c == 2) expm2_kernel(A, E);
    else if (c == 3) expm3_kernel(A, E);
    else if (c == 4) expm4_kernel(A, E);
    else hddrope_expm(A, E, c);
}

/* Its adjoint (the skew part only, all the generators' gradient reads), and E =
 * hddrope_step_expm(A) with the same bits when E is not NULL (the backward need not save it). */
void hddrope_step_expm_adjoint(const double *A, const double *GM, double *GA, double *E, int c) {
    if (c == 2) expm2_adjoint_kernel(A, GM, GA, E);
    else if (c == 3) expm3_adjoint_kernel(A, GM, GA, E);
    else if (c == 4) expm4_adjoint_kernel(A, GM, GA, E);
    else {
        if (E) hddrope_expm(A, E, c);
        hddrope_expm_adjoint(A, GM, GA, c);
    }
}
