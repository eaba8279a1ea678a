/* posenc_hddrope.c: HDD-RoPE (high-dimensional, dynamic RoPE), the "hddrope" kind
 * (docs/hdd-rope.md: §1 the method, §3 the step matrix, §4 the backward, §6 the cost).
 *
 * Maths, per layer l, head h, chunk j (c consecutive channels of the head, c | hs, n_c = hs/c
 * chunks, m = c(c-1)/2 generator values "axes" per chunk, G = NH*n_c*m per token):
 *     g_t = g_base[l] + (W_g x_t)                (W_g x_t: the E = G extra qkv columns; "dynamic")
 *     A_t = L - L^T, L strictly lower triangular, filled row-major over (i, k), i > k, from g_t
 *     M_t = exp(A_t)  ("map": "expm")   or   (I - A_t)^-1 (I + A_t)  ("map": "cayley")
 *     P_t = P_{t-1} M_t,  P_0 = I        (inclusive right-accumulated scan, the author's MRU op)
 *     q~_t = P_t q_t,  k~_t = P_t k_t    (column vectors, per chunk)
 * Right accumulation with column application is what makes scores relative: for s <= t,
 * q~_t . k~_s = (M_{s+1}..M_t q_t) . k_s depends on the steps strictly after s only (docs/hdd-rope.md §2).
 * With c = 2, static generators g = theta_i and expm, P_t = R((t+1) theta_i): RoPE (docs/hdd-rope.md §2).
 *
 * Backward (docs/hdd-rope.md §4), per (b, h, j), in double (the c = 4 lanes: float) from the saved float P_t
 * (and M_t rebuilt from g_t):
 *     dq_t = P_t^T dq~_t,  dk_t = P_t^T dk~_t          (written over dqkv in place)
 *     G_t = dq~_t q_t^T + dk~_t k_t^T,  q_t = P_t^T q~_t (recovered from the rotated qkv)
 *     B_T = G_T,  B_t = G_t + B_{t+1} M_{t+1}^T,  dL/dM_t = P_{t-1}^T B_t
 *     expm:   dL/dA = L_exp(A^T, dL/dM) (the Frechet derivative of exp at A^T in direction dM).
 *             References: a c x c series with scaling and doublings (hddrope_expm_adjoint), and
 *             the top-right block of exp([[A^T, dM], [0, A^T]]) (hddrope_expm_adjoint_block).
 *             The model uses: c = 2 and c = 4, the adjoint of the closed forms
 *             (hddrope_expm_adjoint2/4, their skew part only, which is all that dg below reads);
 *             other c, the exact reverse-mode adjoint of the forward's own computation
 *             (hddrope_expm_adjoint_fast: recompute, then back through the squarings, the
 *             Paterson-Stockmeyer Horner steps and the powers). All tested against the references.
 *     cayley: M = 2W - I, W = (I - A)^-1, dW = W dA W  =>  dL/dA = 2 W^T dM W^T
 *     dg(i,k) = dA[i][k] - dA[k][i]; it goes to d g_base and (dynamic) onto the extra columns.
 * The extra columns pass through qk_forward unchanged and are read by it, so their gradient is
 * what dqkv already held plus dg (+=; attention_backward leaves them at 0).
 *
 * Numerics (docs/hdd-rope.md §7). The step matrix is computed in double and stored as float. expm, reference
 * (hddrope_expm): halve A until its infinity norm is <= 1/4, a Taylor series (Horner) of the
 * degree whose last term is below 1e-17, then square back. expm in the model: c = 2 and c = 4 in
 * closed form (hddrope_expm2/4); other c, scaling and squaring with the Taylor polynomial
 * evaluated by Paterson-Stockmeyer, the norm min(infinity, Frobenius), the last term below 1e-12
 * and the scaling with the fewest c x c products (hddrope_expm_fast). Cayley: Gauss-Jordan with
 * partial pivoting. The kernels run in copies with c a constant for c = 2, 4, 8 (c = 16 measured
 * slower that way: the unrolled code shuffles; it runs the generic copy).
 * The scan multiplies the float P by the float M in double and rounds P to float at every step
 * (the c = 4 lane kernels: in float throughout, see there); either way P lives in float, so a
 * cached generation step (P read back from the float state) is bit-identical to the full forward. "reorthonormalize": k > 0 applies one Newton-Schulz step P <- P (3I - P^T P)/2 after
 * every position p with (p + 1) % k == 0. The backward treats it as the identity: on an
 * orthogonal P it is the identity on the manifold the scan moves on, so this is exact up to the
 * drift it removes.
 *
 * Init: the W_g rows are 0 (so the model starts as static RoPE-like rotations); g_base per
 * "base_init": "rope" puts theta_i = 10000^(-2i/hs) of global pair i = (2i, 2i+1) on the plane
 * (2i', 2i'+1) of its chunk (row 2i'+1, column 2i' of L; tan(theta/2) under Cayley), 0 on the
 * coupling planes; for odd c a pair that straddles two chunks gets no plane (its frequency is
 * dropped). "zero": g_base = 0 (NoPE at init with dynamic = false).
 *
 * Layouts. Generator index (h, j, a) -> (h*n_c + j)*m + a, both for g_base[l] (L, G) and for the
 * extra columns 3C + index. Activations, layer l: (B, T, NH) blocks of acts_per_head floats, P_t
 * of each chunk (c*c floats per chunk; for c = 4 in the lane kernels' (group, entry, lane)
 * order); static generators, (1, T, NH) blocks: P_t is then the same for every b (scan_rows).
 * M is not saved: the backward rebuilds it with the forward's bits inside the adjoint.
 * State, layer l: (B, NH, n_c) blocks of c*c floats holding P of the last position; all zero
 * (the model's reset) means P = I.
 * Parallel units: one (b, h) with all its chunks, forward and backward (the backward's d g_base
 * shares are summed over b in a fixed order afterwards, so no thread count changes the bits).
 * Static generators: one unit per h, whose scan serves every b (the forward applies P_t to each
 * row; the backward sums G_t over the rows before its one scan back).
 *
 * The small-matrix routines are exported (posenc_hddrope.h) only so that tests/test_hddrope.c
 * can test them against its own references.
 */
#include "model/posenc_hddrope.h"

#include "model/posenc.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include "base/util.h"

#define HDD_MAX_C 16

enum { MAP_EXPM = 0, MAP_CAYLEY = 1 };

/* how many positions ahead the backward scan prefetches its strided rows */
#define HDD_PREFETCH 4

/* Where the series are cut in the model's own step matrices and gradients: they are rounded to
 * float (relative 6e-8) right after, so terms below 1e-12 of the result cannot matter; the public
 * hddrope_expm and hddrope_expm_adjoint (tested against references) go to double precision. */
#define HDD_SERIES_TOLERANCE 1e-12

/* The c x c kernels are written once with c a parameter and forced inline, so that the common
 * chunk sizes (c = 2, 4, 8) get copies with c a constant (unrolled, vectorised) by calling them
 * with a literal; same operations in the same order, so all copies give the same bits. */
#define HDD_INLINE static inline __attribute__((always_inline))

/* fmax without the libm call (no NaN rules needed here): it sits in the inner loops */
static inline double max_d(double a, double b) { return a > b ? a : b; }

typedef struct {
    int L, C, NH, hs;
    int c, nc, m, G;
    int map, dynamic, base_rope, reortho;
    int tri_i[HDD_MAX_C * (HDD_MAX_C - 1) / 2], tri_k[HDD_MAX_C * (HDD_MAX_C - 1) / 2];
} Hdd;

/* ---- small dense double matrices (row-major, n <= 2*HDD_MAX_C) ---- */

/* out = X b with X(i, r) = a[i*si + r*sr] (X = a: si = n, sr = 1; X = a^T: si = 1, sr = n), n <= 2*HDD_MAX_C.
 * One row at a time, accumulated in registers over r; for large n four rows at a time, r outermost
 * (four independent chains of multiply-adds per vector of k). Each sum runs over r in order either
 * way, so the bits do not depend on the blocking. out must not alias a or b. */
HDD_INLINE void mm_rows(const double *restrict a, int si, int sr, const double *restrict b, double *restrict out,
                        int n) {
    int i0 = 0;
    /* (blocks measured faster from c = 16 on, slower at c = 4 and 8, where one row is short) */
    for (; n >= 12 && i0 + 4 <= n; i0 += 4) {
        double acc[4][2 * HDD_MAX_C];
        for (int ii = 0; ii < 4; ii++)
            for (int k = 0; k < n; k++) acc[ii][k] = 0;
        for (int r = 0; r < n; r++)
            for (int ii = 0; ii < 4; ii++) {
                const double x = a[(i0 + ii) * si + r * sr];
                for (int k = 0; k < n; k++) acc[ii][k] += x * b[r * n + k];
            }
        for (int ii = 0; ii < 4; ii++)
            for (int k = 0; k < n; k++) out[(i0 + ii) * n + k] = acc[ii][k];
    }
    for (; i0 < n; i0++) {
        double acc[2 * HDD_MAX_C];
        for (int k = 0; k < n; k++) acc[k] = 0;
        for (int r = 0; r < n; r++) {
            const double x = a[i0 * si + r * sr];
            for (int k = 0; k < n; k++) acc[k] += x * b[r * n + k];
        }
        for (int k = 0; k < n; k++) out[i0 * n + k] = acc[k];
    }
}

/* out = a b; out may alias a or b */
HDD_INLINE void mat_mul(const double *a, const double *b, double *out, int n) {
    double tmp[4 * HDD_MAX_C * HDD_MAX_C];
    mm_rows(a, n, 1, b, tmp, n);
    memcpy(out, tmp, sizeof(double) * (size_t)(n * n));
}

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
    if (n == 4) expm_kernel(A, E, 4, 1e-17);
    else expm_kernel(A, E, n, 1e-17);
}

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
    if (c == 4) expm_adjoint_kernel(A, GM, GA, 4, 1e-17);
    else expm_adjoint_kernel(A, GM, GA, c, 1e-17);
}

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

/* ---- general c: Paterson-Stockmeyer Taylor and its reverse-mode adjoint ---- */

/* out = a^T b and out = a b^T (c x c, out distinct from a and b) */
HDD_INLINE void mul_tn(const double *restrict a, const double *restrict b, double *restrict out, int c) {
    mm_rows(a, 1, c, b, out, c);
}
HDD_INLINE void mul_nt(const double *restrict a, const double *restrict b, double *restrict out, int c) {
    double bt[HDD_MAX_C * HDD_MAX_C]; /* transpose first so that the inner loop runs along rows */
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) bt[k * c + i] = b[i * c + k];
    mm_rows(a, c, 1, bt, out, c);
}

/* How the fast exponential evaluates exp(A): X = A / 2^s, the Taylor polynomial of degree q
 * (last term x^q/q! <= tolerance, x a norm of X) by Paterson-Stockmeyer with the powers
 * X^1..X^r and a Horner scheme in X^r over J + 1 blocks of r coefficients, then s squarings.
 * The norm is the smaller of the infinity and Frobenius norms (both bound every power); of the
 * scalings with x <= 2 and up to three more halvings it takes the one with the fewest products. */
#define HDD_PS_MAX 8    /* r and J: at most sqrt(30)-ish in practice */
#define HDD_PS_MAX_SQ 24 /* squarings the adjoint keeps; beyond (|A| > 2^25) it uses the series */
typedef struct {
    int s, q, r, J;
    double scale, inv_fact[31]; /* 1/k!, k <= q */
} ExpPlan;

HDD_INLINE ExpPlan exp_plan(const double *A, int c, double tolerance) {
    double inf = 0, fro = 0;
    for (int i = 0; i < c; i++) {
        double row = 0;
        for (int k = 0; k < c; k++) row += fabs(A[i * c + k]), fro += A[i * c + k] * A[i * c + k];
        inf = max_d(inf, row);
    }
    double norm = sqrt(fro) < inf ? sqrt(fro) : inf, scale = 1.0;
    int s = 0;
    while (norm * scale > 2.0 && s < 1000) scale *= 0.5, s++;
    ExpPlan best = {.q = 1, .r = 1, .J = 1, .scale = 1.0};
    int best_cost = 1 << 30;
    for (int extra = 0; extra < 4; extra++, s++, scale *= 0.5) {
        const double x = norm * scale;
        int q = 0;
        for (double bound = 1.0; bound > tolerance && q < 30;) q++, bound *= x / q;
        for (int r = 1; r <= HDD_PS_MAX && r <= q; r++) {
            const int J = q / r, cost = s + (r - 1) + J;
            if (J <= HDD_PS_MAX && cost < best_cost)
                best_cost = cost, best.s = s, best.q = q, best.r = r, best.J = J, best.scale = scale;
        }
    }
    double f = 1;
    for (int k = 0; k <= best.q; k++) best.inv_fact[k] = 1.0 / f, f *= k + 1;
    return best;
}

/* B_j = sum_{i<r} X^i / (jr+i)! (terms past q dropped) from the powers pw[i] = X^i, i >= 1 */
HDD_INLINE void ps_block(const ExpPlan *p, const double (*pw)[HDD_MAX_C * HDD_MAX_C], int j, double *Bj, int c) {
    for (int i = 0; i < c * c; i++) Bj[i] = 0; /* (a plain fill and a diagonal: both vectorise) */
    for (int i = 0; i < c; i++) Bj[i * (c + 1)] = p->inv_fact[j * p->r];
    for (int i = 1; i < p->r && j * p->r + i <= p->q; i++) {
        const double a = p->inv_fact[j * p->r + i];
        for (int e = 0; e < c * c; e++) Bj[e] += a * pw[i][e];
    }
}

/* The forward of the plan: pw[1..r] = X^i, Q[J..0] the Horner values (Q[0] = the polynomial),
 * E[0..s-1] the squarands (E[0] = Q[0]); the result in out. Q (HDD_PS_MAX + 1 matrices) and E
 * (HDD_PS_MAX_SQ) are written only when keep is set (the adjoint reads them); else they may be NULL. */
HDD_INLINE void ps_forward(const double *A, const ExpPlan *p, double (*pw)[HDD_MAX_C * HDD_MAX_C],
                           double (*Q)[HDD_MAX_C * HDD_MAX_C], double (*E)[HDD_MAX_C * HDD_MAX_C], int keep,
                           double *out, int c) {
    const int cc = c * c;
    for (int i = 0; i < cc; i++) pw[1][i] = A[i] * p->scale;
    for (int k = 2; k <= p->r; k++) mat_mul(pw[k - 1], pw[1], pw[k], c);
    double Bj[HDD_MAX_C * HDD_MAX_C], cur[HDD_MAX_C * HDD_MAX_C];
    ps_block(p, (const double (*)[HDD_MAX_C * HDD_MAX_C])pw, p->J, cur, c);
    for (int j = p->J - 1; j >= 0; j--) {
        if (keep) memcpy(Q[j + 1], cur, sizeof(double) * (size_t)cc);
        ps_block(p, (const double (*)[HDD_MAX_C * HDD_MAX_C])pw, j, Bj, c);
        mat_mul(pw[p->r], cur, cur, c);
        for (int i = 0; i < cc; i++) cur[i] += Bj[i];
    }
    for (int s = 0; s < p->s; s++) {
        if (keep) memcpy(E[s], cur, sizeof(double) * (size_t)cc);
        mat_mul(cur, cur, cur, c);
    }
    memcpy(out, cur, sizeof(double) * (size_t)cc);
}

HDD_INLINE void expm_fast_kernel(const double *A, double *E, int c, double tolerance) {
    const ExpPlan p = exp_plan(A, c, tolerance);
    double pw[HDD_PS_MAX + 1][HDD_MAX_C * HDD_MAX_C];
    ps_forward(A, &p, pw, NULL, NULL, 0, E, c);
}

/* GA = the gradient w.r.t. A of <G_M, F(A)>, F the function expm_fast_kernel computes (the exact
 * adjoint of its products, so it agrees with L_exp(A^T, G_M) to the series' tolerance):
 * squarings E_{i+1} = E_i E_i give dE_i = dE_{i+1} E_i^T + E_i^T dE_{i+1}; Horner steps
 * Q_j = B_j + X^r Q_{j+1} give dB_j = dQ_j, d(X^r) += dQ_j Q_{j+1}^T, dQ_{j+1} = (X^r)^T dQ_j;
 * the powers X^k = X^(k-1) X give d(X^(k-1)) += d(X^k) X^T, dX += (X^(k-1))^T d(X^k). */
HDD_INLINE void expm_fast_adjoint_kernel(const double *A, const double *GM, double *GA, double *E_out, int c,
                                         double tolerance) {
    const int cc = c * c;
    const ExpPlan p = exp_plan(A, c, tolerance);
    if (p.s > HDD_PS_MAX_SQ) { /* |A| > 2^25: not worth the stack; the series adjoint is the same */
        if (E_out) expm_fast_kernel(A, E_out, c, tolerance);
        expm_adjoint_kernel(A, GM, GA, c, tolerance);
        return;
    }
    double pw[HDD_PS_MAX + 1][HDD_MAX_C * HDD_MAX_C], Q[HDD_PS_MAX + 1][HDD_MAX_C * HDD_MAX_C];
    double E[HDD_PS_MAX_SQ][HDD_MAX_C * HDD_MAX_C], dpw[HDD_PS_MAX + 1][HDD_MAX_C * HDD_MAX_C];
    double out[HDD_MAX_C * HDD_MAX_C], dcur[HDD_MAX_C * HDD_MAX_C], t1[HDD_MAX_C * HDD_MAX_C],
        t2[HDD_MAX_C * HDD_MAX_C];
    ps_forward(A, &p, pw, Q, E, 1, out, c); /* expm_fast_kernel's computation: its bits */
    if (E_out) memcpy(E_out, out, sizeof(double) * (size_t)cc);
    memcpy(dcur, GM, sizeof(double) * (size_t)cc);
    for (int s = p.s - 1; s >= 0; s--) {
        mul_nt(dcur, E[s], t1, c);
        mul_tn(E[s], dcur, t2, c);
        for (int i = 0; i < cc; i++) dcur[i] = t1[i] + t2[i];
    }
    for (int k = 1; k <= p.r; k++) memset(dpw[k], 0, sizeof(double) * (size_t)cc);
    for (int j = 0; j <= p.J; j++) {
        /* dcur = dQ_j: through B_j to the powers */
        for (int i = 1; i < p.r && j * p.r + i <= p.q; i++) {
            const double a = p.inv_fact[j * p.r + i];
            for (int e = 0; e < cc; e++) dpw[i][e] += a * dcur[e];
        }
        if (j == p.J) break;
        mul_nt(dcur, Q[j + 1], t1, c);
        for (int e = 0; e < cc; e++) dpw[p.r][e] += t1[e];
        mul_tn(pw[p.r], dcur, t2, c);
        memcpy(dcur, t2, sizeof(double) * (size_t)cc);
    }
    for (int k = p.r; k >= 2; k--) {
        mul_nt(dpw[k], pw[1], t1, c);
        mul_tn(pw[k - 1], dpw[k], t2, c);
        for (int e = 0; e < cc; e++) dpw[k - 1][e] += t1[e], dpw[1][e] += t2[e];
    }
    for (int i = 0; i < cc; i++) GA[i] = dpw[1][i] * p.scale;
}

void hddrope_expm_fast(const double *A, double *E, int c) {
    if (c < 1 || c > HDD_MAX_C) return;
    expm_fast_kernel(A, E, c, HDD_SERIES_TOLERANCE);
}

void hddrope_expm_adjoint_fast(const double *A, const double *GM, double *GA, int c) {
    if (c < 1 || c > HDD_MAX_C) return;
    expm_fast_adjoint_kernel(A, GM, GA, NULL, c, HDD_SERIES_TOLERANCE);
}

/* Tests only: 1 sends the model through the reference kernels (series exponential and adjoint,
 * c a run-time value) instead of the closed forms, the fast kernels and the copies with c a
 * constant, so that the two can be compared end to end. */
static int hdd_reference_kernels;
void hddrope_use_reference_kernels(int on) { hdd_reference_kernels = on; }
/* Tests only: 0 sends the default setup (c = 4, expm, no re-orthonormalisation) through the scalar
 * c = 4 path instead of the lane kernels, so that the two can be compared. */
static int hdd_lane_kernels = 1;
void hddrope_use_lane_kernels(int on) { hdd_lane_kernels = on; }

/* ---- configuration ---- */

static int hdd_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", "chunk", "map", "dynamic", "base_init", "reorthonormalize", NULL};
    if (posenc_check_option_keys(options, "hddrope", known) != 0) return -1;
    const int hs = pe->dims.hs;
    double chunk, reortho;
    const char *map, *base_init;
    if (posenc_number_option(options, "chunk", 4, &chunk) != 0) return -1;
    if (chunk != floor(chunk) || chunk < 2 || chunk > HDD_MAX_C) {
        tr_set_error("posenc.chunk: must be an integer from 2 to %d (got %g)", HDD_MAX_C, chunk);
        return -1;
    }
    if (hs % (int)chunk != 0) {
        tr_set_error("posenc.chunk: %d does not divide the head size hs = C/NH = %d", (int)chunk, hs);
        return -1;
    }
    if (posenc_string_option(options, "map", "expm", &map) != 0) return -1;
    if (strcmp(map, "expm") != 0 && strcmp(map, "cayley") != 0) {
        tr_set_error("posenc.map: unknown map \"%s\" (known: expm, cayley)", map);
        return -1;
    }
    int dynamic = 1;
    const cJSON *dyn = cJSON_GetObjectItemCaseSensitive(options, "dynamic");
    if (dyn) {
        if (!cJSON_IsBool(dyn)) {
            tr_set_error("posenc.dynamic: must be true or false");
            return -1;
        }
        dynamic = cJSON_IsTrue(dyn);
    }
    if (posenc_string_option(options, "base_init", "rope", &base_init) != 0) return -1;
    if (strcmp(base_init, "rope") != 0 && strcmp(base_init, "zero") != 0) {
        tr_set_error("posenc.base_init: unknown value \"%s\" (known: rope, zero)", base_init);
        return -1;
    }
    if (posenc_number_option(options, "reorthonormalize", 0, &reortho) != 0) return -1;
    if (reortho != floor(reortho) || reortho < 0 || reortho > 1e9) {
        tr_set_error("posenc.reorthonormalize: must be an integer >= 0 (0 = off; got %g)", reortho);
        return -1;
    }
    Hdd *d = xcalloc(1, sizeof *d);
    d->L = pe->dims.L, d->C = pe->dims.C, d->NH = pe->dims.NH, d->hs = hs;
    d->c = (int)chunk, d->nc = hs / d->c, d->m = d->c * (d->c - 1) / 2, d->G = d->NH * d->nc * d->m;
    d->map = strcmp(map, "cayley") == 0 ? MAP_CAYLEY : MAP_EXPM;
    d->dynamic = dynamic;
    d->base_rope = strcmp(base_init, "rope") == 0;
    d->reortho = (int)reortho;
    int a = 0;
    for (int i = 1; i < d->c; i++)
        for (int k = 0; k < i; k++, a++) d->tri_i[a] = i, d->tri_k[a] = k;
    pe->impl = d;
    return 0;
}

static void hdd_destroy(PosEnc *pe) {
    free(pe->impl);
    pe->impl = NULL;
}

/* Saved floats per (b, t, h): P of every chunk, c^2 each; for c = 4 in the lane kernels' layout:
 * groups of HDD_LANES chunks, 16 entries x HDD_LANES lanes each, except that a last group of at
 * most 4 chunks holds 16 x 4 (lanes_width). The scalar path's (chunk, 16) layout fits in both. */
#define HDD_LANES 8
static size_t acts_per_head(const Hdd *d) {
    if (d->c != 4) return (size_t)d->nc * d->c * d->c;
    const int rest = d->nc % HDD_LANES;
    return (size_t)(d->nc / HDD_LANES) * HDD_LANES * 16 + (rest == 0 ? 0 : rest <= 4 ? 4 * 16 : HDD_LANES * 16);
}

static size_t hdd_num_params(const PosEnc *pe) {
    const Hdd *d = pe->impl;
    return (size_t)d->L * (size_t)d->G;
}
static int hdd_num_extra(const PosEnc *pe) {
    const Hdd *d = pe->impl;
    return d->dynamic ? d->G : 0;
}
/* The batch rows that get a scan of their own: static generators make P_t the same for every b,
 * so the batch shares one scan per head (and one saved P). */
static int scan_rows(const Hdd *d, int B) { return d->dynamic ? B : 1; }
static size_t hdd_num_acts(const PosEnc *pe, int B, int T) {
    const Hdd *d = pe->impl;
    return (size_t)d->L * (size_t)scan_rows(d, B) * (size_t)T * (size_t)d->NH * acts_per_head(d);
}
static size_t hdd_num_state(const PosEnc *pe, int B) {
    const Hdd *d = pe->impl;
    return (size_t)d->L * (size_t)B * (size_t)d->NH * (size_t)d->nc * (size_t)(d->c * d->c);
}

static void hdd_init(const PosEnc *pe, float *params, float *extra_w, size_t extra_stride, uint64_t seed) {
    const Hdd *d = pe->impl;
    if (d->dynamic && extra_w)
        for (int l = 0; l < d->L; l++)
            memset(extra_w + (size_t)l * extra_stride, 0, sizeof(float) * (size_t)d->G * d->C);
    memset(params, 0, sizeof(float) * hdd_num_params(pe));
    if (!d->base_rope) return;
    for (int l = 0; l < d->L; l++)
        for (int h = 0; h < d->NH; h++)
            for (int i = 0; i < d->hs / 2; i++) {
                int j = (2 * i) / d->c, lo = 2 * i - j * d->c;
                if (lo + 1 >= d->c) continue; /* odd c: the pair straddles two chunks */
                double theta = pow(10000.0, -2.0 * i / d->hs);
                int a = (lo + 1) * lo / 2 + lo; /* row lo+1, column lo of L */
                params[(size_t)l * d->G + ((size_t)h * d->nc + j) * d->m + a] =
                    (float)(d->map == MAP_CAYLEY ? tan(theta / 2) : theta);
            }
}

/* ---- forward ---- */

/* A = L - L^T from the m generator values g (double, c x c). */
HDD_INLINE void fill_skew(const Hdd *d, const double *g, double *A, int c) {
    memset(A, 0, sizeof(double) * (size_t)(c * c));
    for (int a = 0; a < d->m; a++) {
        A[d->tri_i[a] * c + d->tri_k[a]] = g[a];
        A[d->tri_k[a] * c + d->tri_i[a]] = -g[a];
    }
}

/* The float step matrix of generator values g (m of them) and, for the backward, A in double. */
HDD_INLINE void step_matrix(const Hdd *d, const double *g, double *A, float *M, int c) {
    double Md[HDD_MAX_C * HDD_MAX_C];
    fill_skew(d, g, A, c);
    if (d->map == MAP_CAYLEY) hddrope_cayley(A, Md, NULL, c);
    else if (hdd_reference_kernels) expm_kernel(A, Md, c, HDD_SERIES_TOLERANCE);
    else if (c == 2) expm2_kernel(A, Md);
    else if (c == 4) expm4_kernel(A, Md);
    else expm_fast_kernel(A, Md, c, HDD_SERIES_TOLERANCE);
    for (int i = 0; i < c * c; i++) M[i] = (float)Md[i];
}

/* The generator values of (layer l, row n, head h, chunk j) into g (double). */
static void generators(const Hdd *d, int l, const float *params, const float *row, int h, int j, double *g) {
    size_t index = ((size_t)h * d->nc + j) * d->m;
    const float *base = params + (size_t)l * d->G + index;
    for (int a = 0; a < d->m; a++) g[a] = base[a] + (d->dynamic ? (double)row[3 * d->C + index + a] : 0.0);
}

/* Whether the c = 4 lane kernels run this kind's forward and backward. */
static int use_lanes(const Hdd *d) {
    return d->c == 4 && d->map == MAP_EXPM && d->reortho == 0 && !hdd_reference_kernels && hdd_lane_kernels;
}

/* v <- P v (float in, double accumulate) for a chunk of c channels. */
HDD_INLINE void apply(const float *P, float *v, int c) {
    double tmp[HDD_MAX_C];
    for (int i = 0; i < c; i++) {
        double s = 0;
        for (int k = 0; k < c; k++) s += (double)P[i * c + k] * v[k];
        tmp[i] = s;
    }
    for (int i = 0; i < c; i++) v[i] = (float)tmp[i];
}

/* ---- c = 4 with HDD_LANES chunks of a head side by side ----
 *
 * The model's path for the default setup (c = 4, expm, no re-orthonormalisation): the same maths
 * as the scalar c = 4 path (expm4_kernel, expm4_adjoint_kernel, forward_unit, backward_unit),
 * with every quantity a vector of 8 floats over consecutive chunks j of one head (GCC vector
 * extensions; AVX/FMA intrinsics where the machine has them), so that each step is one
 * instruction across chunks instead of shuffles inside one 4 x 4 matrix. It runs in float (the
 * spec's precision for scans and step matrices): float sin/cos (sincos_lanes), float products,
 * P kept in float as the scalar path keeps it; only the d g_base shares summed over t stay in
 * double. Against the scalar path (double inside each step, rounded to float after) that is a few
 * float ulps per step; tests/test_hddrope.c compares the two (hddrope_use_lane_kernels(0)).
 * Lanes past the head's last chunk run on zero generators (M = I) and are never loaded or stored.
 * Layout: here the saved P of a head are (group, 16 entries, HDD_LANES chunks) floats instead of
 * (chunk, 16 entries), so the backward loads them as vectors; num_acts covers both layouts. */
/* Without AVX, GCC notes that these 32-byte vectors are passed differently: they never cross a
 * call here (every helper is inlined into this file's units), so the note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vlane __attribute__((vector_size(HDD_LANES * sizeof(float))));
typedef int32_t vmask __attribute__((vector_size(HDD_LANES * sizeof(int32_t))));
typedef double vlane_d __attribute__((vector_size(HDD_LANES * sizeof(double)))); /* sums over t */
#define HDD_SCRATCH_ALIGN 64 /* (the widest vector above: vlane_d) */
_Static_assert(HDD_LANES == 8, "the lane helpers below are written for 8 lanes (one AVX register of floats)");

HDD_INLINE vlane splat(float x) { return (vlane){x, x, x, x, x, x, x, x}; }
HDD_INLINE vlane pick(vmask mask, vlane yes, vlane no) { return (vlane)(((vmask)yes & mask) | ((vmask)no & ~mask)); }
/* lanes 0 .. live-1 set */
HDD_INLINE vmask live_mask(int live) {
    const vmask lane = {0, 1, 2, 3, 4, 5, 6, 7};
    return lane < (vmask){live, live, live, live, live, live, live, live};
}
/* acc + a b, fused where the machine has FMA (the matrix products below are made of these) */
HDD_INLINE vlane fmadd(vlane a, vlane b, vlane acc) {
#ifdef __FMA__
    return (vlane)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)acc);
#else
    return acc + a * b;
#endif
}
#ifdef __AVX__ /* (GCC builds the element-wise forms below from scalar instructions) */
HDD_INLINE vlane floorv(vlane x) { return (vlane)_mm256_floor_ps((__m256)x); }
HDD_INLINE vlane sqrtv(vlane x) { return (vlane)_mm256_sqrt_ps((__m256)x); }
HDD_INLINE int all_lanes(vmask mask) { return _mm256_movemask_ps((__m256)mask) == 0xff; }
#else
HDD_INLINE vlane floorv(vlane x) {
    for (int v = 0; v < HDD_LANES; v++) x[v] = floorf(x[v]);
    return x;
}
HDD_INLINE vlane sqrtv(vlane x) {
    for (int v = 0; v < HDD_LANES; v++) x[v] = sqrtf(x[v]);
    return x;
}
HDD_INLINE int all_lanes(vmask mask) {
    int all = 1;
    for (int v = 0; v < HDD_LANES; v++) all &= mask[v] != 0;
    return all;
}
#endif

/* p[v * stride] for the live lanes v, 0 in the others (the strided reads of generators and
 * step matrices into lanes; masked-off lanes are not read). */
HDD_INLINE vlane gather_lanes(const float *p, int stride, int live) {
#ifdef __AVX2__
    const __m256i index = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
    return (vlane)_mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, index, (__m256)live_mask(live), 4);
#else
    vlane x = splat(0);
    for (int v = 0; v < live; v++) x[v] = p[(size_t)v * stride];
    return x;
#endif
}

/* sin and cos of x >= 0 in float, |error| ~ 1e-7: x = q pi/2 + r, |r| <= pi/4 (pi/2 in three
 * parts, the first two of 8 and 11 bits so that q * part is exact for q < 2^13), the Taylor
 * polynomials of sin r (to r^9; the first term left out is below 2e-9) and cos r (to r^10),
 * then the quadrant q mod 4. x past HDD_SINCOS_MAX (or NaN) goes to libm. */
#define HDD_SINCOS_MAX 8192.0f
HDD_INLINE void sincos_lanes(vlane x, vlane *s, vlane *c) {
    const float pio2_1 = 1.5703125f, pio2_2 = 4.837512969970703125e-4f, pio2_3 = 7.54978995489188216e-8f;
    const vlane q = floorv(x * 0.636619772f + 0.5f);
    const vlane r = ((x - q * pio2_1) - q * pio2_2) - q * pio2_3, r2 = r * r;
    const vlane ps = r + r * r2 * (-1.0f / 6 + r2 * (1.0f / 120 + r2 * (-1.0f / 5040 + r2 * (1.0f / 362880))));
    const vlane pc = 1.0f + r2 * (-0.5f + r2 * (1.0f / 24 + r2 * (-1.0f / 720 + r2 * (1.0f / 40320 +
                     r2 * (-1.0f / 3628800)))));
    const vlane quadrant = q - 4.0f * floorv(q * 0.25f); /* 0, 1, 2, 3 */
    const vmask odd = (quadrant == splat(1.0f)) | (quadrant == splat(3.0f));
    const vmask sin_negative = quadrant >= splat(2.0f);
    const vmask cos_negative = (quadrant == splat(1.0f)) | (quadrant == splat(2.0f));
    const vlane sv = pick(odd, pc, ps), cv = pick(odd, ps, pc);
    *s = pick(sin_negative, -sv, sv);
    *c = pick(cos_negative, -cv, cv);
    if (!all_lanes(x <= splat(HDD_SINCOS_MAX)))
        for (int v = 0; v < HDD_LANES; v++)
            if (!(x[v] <= HDD_SINCOS_MAX)) (*s)[v] = (float)sin(x[v]), (*c)[v] = (float)cos(x[v]);
}

void hddrope_sincos(const float *x, float *s, float *c, int n) {
    for (int i = 0; i < n; i += HDD_LANES) {
        vlane xs = splat(0), ss, cs;
        for (int v = 0; v < HDD_LANES && i + v < n; v++) xs[v] = x[i + v];
        sincos_lanes(xs, &ss, &cs);
        for (int v = 0; v < HDD_LANES && i + v < n; v++) s[i + v] = ss[v], c[i + v] = cs[v];
    }
}

/* expm4_factors over lanes, from the six generator values g[a] (axis order (1,0), (2,0), (2,1),
 * (3,0), (3,1), (3,2); A[i][k] = g, A[k][i] = -g). */
typedef struct {
    vlane F[2][16], x[2][3], a2[2], alpha[2], co[2], sn[2], si[2];
} Expm4Lanes;

HDD_INLINE void expm4_factors_lanes(const vlane *g, Expm4Lanes *f) {
    /* p_ik = A[i][k] for i < k: -g of the axis (k, i) */
    const vlane p01 = -g[0], p02 = -g[1], p03 = -g[3], p12 = -g[2], p13 = -g[4], p23 = -g[5];
    for (int half = 0; half < 2; half++) {
        const float sign = half == 0 ? 1.0f : -1.0f;
        const vlane x01 = 0.5f * (p01 + sign * p23), x02 = 0.5f * (p02 - sign * p13), x03 = 0.5f * (p03 + sign * p12);
        const vlane x23 = sign * x01, x13 = -sign * x02, x12 = sign * x03;
        const vlane a2 = x01 * x01 + x02 * x02 + x03 * x03, alpha = sqrtv(a2);
        vlane sn, co;
        sincos_lanes(alpha, &sn, &co);
        const vlane si = pick(alpha > splat(0), sn / alpha, splat(1.0f));
        f->x[half][0] = x01, f->x[half][1] = x02, f->x[half][2] = x03;
        f->a2[half] = a2, f->alpha[half] = alpha, f->co[half] = co, f->sn[half] = sn, f->si[half] = si;
        vlane *F = f->F[half];
        F[0] = F[5] = F[10] = F[15] = co;
        F[1] = si * x01, F[4] = -F[1];
        F[2] = si * x02, F[8] = -F[2];
        F[3] = si * x03, F[12] = -F[3];
        F[6] = si * x12, F[9] = -F[6];
        F[7] = si * x13, F[13] = -F[7];
        F[11] = si * x23, F[14] = -F[11];
    }
}

/* out = X Y for 4 x 4 matrices of lanes (row-major, sums in mat_mul's order) */
HDD_INLINE void mat4_mul_lanes(const vlane *X, const vlane *Y, vlane *out) {
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            vlane acc = splat(0);
            for (int r = 0; r < 4; r++) acc = fmadd(X[i * 4 + r], Y[r * 4 + k], acc);
            out[i * 4 + k] = acc;
        }
}

/* The 4 channels of chunks j0.. (x = their first channel; live of them) as 4 vectors over lanes,
 * and back. */
HDD_INLINE void gather_chunks(const float *x, int live, vlane *out) {
#ifdef __AVX__
    __m128 r[HDD_LANES]; /* row v: chunk v's 4 channels; two 4 x 4 transposes in registers */
    for (int v = 0; v < HDD_LANES; v++) r[v] = v < live ? _mm_loadu_ps(x + 4 * v) : _mm_setzero_ps();
    _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
    _MM_TRANSPOSE4_PS(r[4], r[5], r[6], r[7]);
    for (int k = 0; k < 4; k++) out[k] = (vlane)_mm256_set_m128(r[4 + k], r[k]);
#else
    for (int k = 0; k < 4; k++) {
        out[k] = splat(0);
        for (int v = 0; v < live; v++) out[k][v] = x[v * 4 + k];
    }
#endif
}
HDD_INLINE void scatter_chunks(float *x, int live, const vlane *in) {
#ifdef __AVX__
    __m128 r[HDD_LANES];
    for (int k = 0; k < 4; k++) r[k] = _mm256_castps256_ps128((__m256)in[k]), r[4 + k] = _mm256_extractf128_ps((__m256)in[k], 1);
    _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
    _MM_TRANSPOSE4_PS(r[4], r[5], r[6], r[7]);
    for (int v = 0; v < live; v++) _mm_storeu_ps(x + 4 * v, r[v]);
#else
    for (int k = 0; k < 4; k++)
        for (int v = 0; v < live; v++) x[v * 4 + k] = in[k][v];
#endif
}

/* v <- P v for the q or k chunks j0.. */
HDD_INLINE void apply_lanes(const vlane *P, float *x, int live) {
    vlane in[4], out[4];
    gather_chunks(x, live, in);
    for (int i = 0; i < 4; i++) {
        out[i] = splat(0);
        for (int k = 0; k < 4; k++) out[i] = fmadd(P[i * 4 + k], in[k], out[i]);
    }
    scatter_chunks(x, live, out);
}

static size_t lanes_groups(const Hdd *d) { return (size_t)(d->nc + HDD_LANES - 1) / HDD_LANES; }
static int lanes_live(const Hdd *d, int gi) { return d->nc - gi * HDD_LANES < HDD_LANES ? d->nc - gi * HDD_LANES : HDD_LANES; }
/* floats between the saved entries of group gi (acts_per_head's layout) */
static int lanes_width(const Hdd *d, int gi) { return lanes_live(d, gi) <= 4 ? 4 : HDD_LANES; }

/* One saved entry of P (lanes 0 .. width-1, width 4 or 8) to the acts and back. Fixed-size copies:
 * a copy of variable length becomes `rep movs` plus a stalled vector load of what it just stored,
 * which was most of the backward's time. */
HDD_INLINE void save_entry(float *p, int width, vlane x) {
    if (width == HDD_LANES) memcpy(p, &x, sizeof x);
    else memcpy(p, &x, sizeof(float) * 4);
}
HDD_INLINE vlane load_entry(const float *p, int width) {
    vlane x;
    if (width == HDD_LANES) {
        memcpy(&x, p, sizeof x);
        return x;
    }
#if defined(__AVX__) && HDD_LANES == 8
    return (vlane)_mm256_insertf128_ps(_mm256_setzero_ps(), _mm_loadu_ps(p), 0);
#else
    x = splat(0);
    memcpy(&x, p, sizeof(float) * 4);
    return x;
#endif
}

/* One group of lanes' running values in a unit's scratch (lanes_groups of them, 64-byte aligned). */
typedef struct {
    vlane P[16];       /* forward: the running product P_t; backward: B_{t+1} M_{t+1}^T */
    vlane M[16];       /* static generators: the step matrix (the same at every t; I in dead lanes) */
    vlane base[6];     /* g_base of the group's chunks */
    vlane_d share[16]; /* backward: this unit's share of d g_base, dg (6) or, static, the summed dM (16) */
} LaneGroup;

/* The groups' g_base and (static) step matrices, before a scan. */
static void lanes_setup(const Hdd *d, int l, int h, const float *params, const float *M_head, LaneGroup *grp) {
    for (int gi = 0; gi < (int)lanes_groups(d); gi++) {
        const int j0 = gi * HDD_LANES, live = lanes_live(d, gi);
        const float *base = params + (size_t)l * d->G + ((size_t)h * d->nc + j0) * 6;
        for (int a = 0; a < 6; a++) grp[gi].base[a] = gather_lanes(base + a, 6, live);
        if (M_head)
            for (int i = 0; i < 16; i++)
                grp[gi].M[i] = pick(live_mask(live), gather_lanes(M_head + (size_t)j0 * 16 + i, 16, live), splat(i % 5 == 0));
    }
}

/* M_t of a group from its generators at this row (dynamic): g = g_base + the row's extra columns. */
HDD_INLINE void step_matrices_lanes(const Hdd *d, const LaneGroup *grp, const float *row, int h, int j0, int live,
                                    Expm4Lanes *f, vlane *M) {
    const float *extra = row + 3 * d->C + ((size_t)h * d->nc + j0) * 6;
    vlane g[6];
    for (int a = 0; a < 6; a++) g[a] = grp->base[a] + gather_lanes(extra + a, 6, live);
    expm4_factors_lanes(g, f);
    mat4_mul_lanes(f->F[0], f->F[1], M); /* M = F+ F- */
}

/* The forward scan of one (b, h), applied to the rows of b .. b + rows - 1 (static generators: the
 * whole batch, rows = B; else 1); M_head: static generators, the head's step matrices (n_c, 16),
 * else NULL; grp: the unit's scratch. */
static void forward_unit_lanes(const Hdd *d, long u, int rows, int l, float *qkv, const float *params,
                               const float *M_head, float *layer_acts, float *layer_state, LaneGroup *grp, int T,
                               int pos0, long S) {
    const int NH = d->NH, nc = d->nc, C = d->C, groups = (int)lanes_groups(d);
    const int b = (int)(u / NH), h = (int)(u % NH);
    const size_t per_head = acts_per_head(d);
    float *st = layer_state ? layer_state + (size_t)u * nc * 16 : NULL;
    lanes_setup(d, l, h, params, M_head, grp);
    for (int gi = 0; gi < groups; gi++) {
        const int j0 = gi * HDD_LANES, live = lanes_live(d, gi);
        for (int i = 0; i < 16; i++) grp[gi].P[i] = splat(i % 5 == 0);
        for (int v = 0; v < live; v++) {
            const float *st_j = st ? st + (size_t)(j0 + v) * 16 : NULL;
            int from_state = 0;
            if (st_j && pos0 > 0)
                for (int i = 0; i < 16; i++) from_state |= st_j[i] != 0.0f;
            if (from_state)
                for (int i = 0; i < 16; i++) grp[gi].P[i][v] = st_j[i];
        }
    }
    Expm4Lanes f;
    for (int t = 0; t < T; t++) {
        float *row = qkv + ((size_t)b * T + t) * S;
        float *saved = layer_acts ? layer_acts + (((size_t)b * T + t) * NH + h) * per_head : NULL;
        if (t + HDD_PREFETCH < T)
            for (int r = 0; r < rows; r++) {
                /* the rows are far apart (a stride the hardware prefetcher does not follow) */
                const float *ahead = row + ((size_t)r * T + HDD_PREFETCH) * S + (size_t)h * d->hs;
                for (int e = 0; e < d->hs; e += 16) __builtin_prefetch(ahead + e, 1), __builtin_prefetch(ahead + C + e, 1);
                if (d->dynamic)
                    for (int e = 0; e < nc * 6; e += 16) __builtin_prefetch(ahead - (size_t)h * d->hs + 3 * C + (size_t)h * nc * 6 + e);
            }
        for (int gi = 0; gi < groups; gi++) {
            const int j0 = gi * HDD_LANES, live = lanes_live(d, gi);
            vlane M[16], *P = grp[gi].P;
            const vlane *Mt = grp[gi].M;
            if (d->dynamic) step_matrices_lanes(d, &grp[gi], row, h, j0, live, &f, M), Mt = M;
            vlane next[16]; /* P <- P M */
            mat4_mul_lanes(P, Mt, next);
            memcpy(P, next, sizeof next);
            if (saved) {
                const int width = lanes_width(d, gi);
                for (int i = 0; i < 16; i++) save_entry(saved + (size_t)gi * 16 * HDD_LANES + i * width, width, P[i]);
            }
            for (int r = 0; r < rows; r++) {
                float *q = row + (size_t)r * T * S + (size_t)h * d->hs + (size_t)j0 * 4;
                apply_lanes(P, q, live);
                apply_lanes(P, q + C, live);
            }
        }
    }
    if (st)
        for (int r = 0; r < rows; r++)
            for (int gi = 0; gi < groups; gi++)
                for (int v = 0; v < lanes_live(d, gi); v++)
                    for (int i = 0; i < 16; i++)
                        st[((size_t)r * NH * nc + (size_t)(gi * HDD_LANES + v)) * 16 + i] = grp[gi].P[i][v];
}

/* expm4_adjoint_kernel over lanes: dg[a] (the generators' gradient) from dM and the factors. */
HDD_INLINE void expm4_adjoint_lanes(const Expm4Lanes *f, const vlane *GM, vlane *dg) {
    vlane dsi[2]; /* d(sin a / a)/da / a: the series below a = 1, where the closed form cancels in float */
    for (int half = 0; half < 2; half++) {
        const vlane a2 = f->a2[half], alpha = f->alpha[half];
        vlane term = splat(1.0f / 6.0f), sum = splat(0);
        for (int n = 1; n <= 8; n++) {
            sum += (n % 2 ? -2.0f : 2.0f) * n * term;
            term *= a2 / (float)((2 * n + 2) * (2 * n + 3));
        }
        const vlane closed = (alpha * f->co[half] - f->sn[half]) / (a2 * alpha);
        dsi[half] = pick(alpha < splat(1.0f), sum, closed);
    }
    vlane Gf[2][16]; /* G+ = G E-^T, G- = E+^T G */
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            vlane plus = splat(0), minus = splat(0);
            for (int r = 0; r < 4; r++) {
                plus = fmadd(GM[i * 4 + r], f->F[1][k * 4 + r], plus);
                minus = fmadd(f->F[0][r * 4 + i], GM[r * 4 + k], minus);
            }
            Gf[0][i * 4 + k] = plus, Gf[1][i * 4 + k] = minus;
        }
    vlane dp[6];
    for (int p = 0; p < 6; p++) dp[p] = splat(0);
    for (int half = 0; half < 2; half++) {
        const float sign = half == 0 ? 1.0f : -1.0f;
        const vlane *G = Gf[half], *x = f->x[half], si = f->si[half];
        const vlane b01 = G[1] - G[4] + sign * (G[11] - G[14]);
        const vlane b02 = G[2] - G[8] - sign * (G[7] - G[13]);
        const vlane b03 = G[3] - G[12] + sign * (G[6] - G[9]);
        const vlane trace = G[0] + G[5] + G[10] + G[15];
        const vlane inner = x[0] * b01 + x[1] * b02 + x[2] * b03;
        const vlane common = -si * trace + dsi[half] * inner;
        const vlane d01 = si * b01 + x[0] * common, d02 = si * b02 + x[1] * common, d03 = si * b03 + x[2] * common;
        dp[0] += 0.5f * d01, dp[5] += 0.5f * sign * d01;
        dp[1] += 0.5f * d02, dp[4] -= 0.5f * sign * d02;
        dp[2] += 0.5f * d03, dp[3] += 0.5f * sign * d03;
    }
    /* axis (1,0) lies on plane 01, (2,0) on 02, (2,1) on 12, (3,0) on 03, (3,1) on 13, (3,2) on 23;
     * dg = dA[i][k] - dA[k][i] with dA = -dp/2 below and dp/2 above the diagonal */
    static const int plane_of_axis[6] = {0, 1, 3, 2, 4, 5};
    for (int a = 0; a < 6; a++) dg[a] = -0.5f * dp[plane_of_axis[a]] - 0.5f * dp[plane_of_axis[a]];
}

/* The backward of one (b, h) (backward_unit's steps, chunk groups in lanes), over the rows
 * b .. b + rows - 1 that share its scan; grp: the unit's scratch, whose d g_base shares go to
 * `partial` at the end. */
static void backward_unit_lanes(const Hdd *d, long u, int rows, int l, float *dqkv, const float *qkv,
                                const float *params, const float *layer_acts, const float *M_head, LaneGroup *grp,
                                double *partial, int T, long S) {
    const int NH = d->NH, nc = d->nc, C = d->C, groups = (int)lanes_groups(d);
    const int b = (int)(u / NH), h = (int)(u % NH);
    const size_t per_head = acts_per_head(d), head_rows = (size_t)NH * per_head; /* acts floats per position */
    lanes_setup(d, l, h, params, M_head, grp);
    for (int gi = 0; gi < groups; gi++)
        for (int i = 0; i < 16; i++) grp[gi].P[i] = splat(0), grp[gi].share[i] = (vlane_d){0};
    for (int t = T - 1; t >= 0; t--) {
        const float *saved = layer_acts + ((size_t)b * T + t) * head_rows + (size_t)h * per_head;
        const float *row = qkv + ((size_t)b * T + t) * S;
        float *drow = dqkv + ((size_t)b * T + t) * S;
        if (t >= HDD_PREFETCH) {
            /* the rows are far apart (a stride the hardware prefetcher does not follow) */
            const size_t ahead = (size_t)HDD_PREFETCH * S, q_off = (size_t)h * d->hs;
            for (size_t e = 0; e < per_head; e += 16) __builtin_prefetch(saved - HDD_PREFETCH * head_rows + e);
            for (int r = 0; r < rows; r++)
                for (int e = 0; e < d->hs; e += 16) {
                    const size_t at = (size_t)r * T * S + q_off + e - ahead;
                    __builtin_prefetch(row + at);
                    __builtin_prefetch(row + C + at);
                    __builtin_prefetch(drow + at, 1);
                    __builtin_prefetch(drow + C + at, 1);
                }
            if (d->dynamic)
                for (int e = 0; e < nc * 6; e += 16) {
                    __builtin_prefetch(row - ahead + 3 * C + (size_t)h * nc * 6 + e);
                    __builtin_prefetch(drow - ahead + 3 * C + (size_t)h * nc * 6 + e, 1);
                }
        }
        for (int gi = 0; gi < groups; gi++) {
            const int j0 = gi * HDD_LANES, live = lanes_live(d, gi);
            LaneGroup *G = &grp[gi];
            const float *Pg = saved + (size_t)gi * 16 * HDD_LANES;
            const int width = lanes_width(d, gi);
            vlane P[16], Bt[16];
            for (int i = 0; i < 16; i++) P[i] = load_entry(Pg + i * width, width), Bt[i] = G->P[i];
            /* q~ = P q, k~ = P k: dq = P^T dq~, dk = P^T dk~, and G_t += dq~ q^T + dk~ k^T (summed
             * over the rows sharing the scan: B_t and dM_t are linear in G_t) */
            for (int which = 0; which < 2 * rows; which++) {
                const size_t off = (size_t)(which / 2) * T * S + (size_t)(which % 2) * C + (size_t)h * d->hs + (size_t)j0 * 4;
                vlane rot[4], gr[4], un[4], dun[4];
                gather_chunks(row + off, live, rot);
                gather_chunks(drow + off, live, gr);
                for (int i = 0; i < 4; i++) un[i] = dun[i] = splat(0);
                for (int r = 0; r < 4; r++)
                    for (int i = 0; i < 4; i++) un[i] = fmadd(P[r * 4 + i], rot[r], un[i]), dun[i] = fmadd(P[r * 4 + i], gr[r], dun[i]);
                for (int i = 0; i < 4; i++)
                    for (int k = 0; k < 4; k++) Bt[i * 4 + k] = fmadd(gr[i], un[k], Bt[i * 4 + k]);
                scatter_chunks(drow + off, live, dun);
            }
            /* P_t = P_{t-1} M_t: dM_t = P_{t-1}^T B_t */
            vlane dM[16];
            if (t == 0) {
                memcpy(dM, Bt, sizeof dM);
            } else {
                vlane Pp[16];
                for (int i = 0; i < 16; i++) Pp[i] = load_entry(Pg - head_rows + i * width, width);
                for (int i = 0; i < 4; i++)
                    for (int k = 0; k < 4; k++) {
                        vlane acc = splat(0);
                        for (int r = 0; r < 4; r++) acc = fmadd(Pp[r * 4 + i], Bt[r * 4 + k], acc);
                        dM[i * 4 + k] = acc;
                    }
            }
            vlane M_dyn[16];
            const vlane *M = G->M;
            if (!d->dynamic) {
                for (int i = 0; i < 16; i++) G->share[i] += __builtin_convertvector(dM[i], vlane_d);
            } else {
                /* M_t rebuilt from g_t (the forward's bits), and through the map to the generators */
                vlane dg[6];
                float dg_lanes[6][HDD_LANES];
                Expm4Lanes f;
                step_matrices_lanes(d, G, row, h, j0, live, &f, M_dyn);
                M = M_dyn;
                expm4_adjoint_lanes(&f, dM, dg);
                memcpy(dg_lanes, dg, sizeof dg_lanes);
                float *dextra = drow + 3 * C + ((size_t)h * nc + j0) * 6;
                for (int a = 0; a < 6; a++) G->share[a] += __builtin_convertvector(dg[a], vlane_d);
                for (int v = 0; v < live; v++)
                    for (int a = 0; a < 6; a++) dextra[v * 6 + a] += dg_lanes[a][v];
            }
            /* for t-1: B_t M_t^T */
            for (int i = 0; i < 4; i++)
                for (int k = 0; k < 4; k++) {
                    vlane acc = splat(0);
                    for (int r = 0; r < 4; r++) acc = fmadd(Bt[i * 4 + r], M[k * 4 + r], acc);
                    G->P[i * 4 + k] = acc;
                }
        }
    }
    const int per_chunk = d->dynamic ? 6 : 16;
    for (int gi = 0; gi < groups; gi++)
        for (int v = 0; v < lanes_live(d, gi); v++)
            for (int e = 0; e < per_chunk; e++) partial[(size_t)(gi * HDD_LANES + v) * per_chunk + e] = grp[gi].share[e][v];
}

/* Static generators: layer l's step matrices, one per (h, j), (NH, n_c, c, c) floats (xmalloc'd,
 * the caller frees), and their A into A_out (same shape, double) when not NULL; NULL when the
 * generators are dynamic. Forward and backward both read these, so they agree bit for bit. */
static float *static_step_matrices(const Hdd *d, int l, const float *params, double *A_out) {
    if (d->dynamic) return NULL;
    const int cc = d->c * d->c, heads_chunks = d->NH * d->nc;
    float *M = xmalloc(sizeof(float) * (size_t)heads_chunks * cc);
    for (int hj = 0; hj < heads_chunks; hj++) {
        double g[HDD_MAX_C * (HDD_MAX_C - 1) / 2], A[HDD_MAX_C * HDD_MAX_C];
        generators(d, l, params, NULL, hj / d->nc, hj % d->nc, g);
        step_matrix(d, g, A, M + (size_t)hj * cc, d->c);
        if (A_out) memcpy(A_out + (size_t)hj * cc, A, sizeof(double) * (size_t)cc);
    }
    return M;
}

/* The scans of one (b, h) over the T positions, all n_c chunks of the head together (so that each
 * row's q, k and generator columns of the head are read once, in order), applied to the rows of
 * b .. b + rows - 1 (static generators: the whole batch shares the scan; else rows = 1). M_head:
 * static generators, the head's step matrices (n_c, c, c), the same at every position (see
 * static_step_matrices); else NULL. scratch: n_c c^2 floats (the running products). */
HDD_INLINE void forward_unit(const Hdd *d, long u, int rows, int l, float *qkv, const float *params,
                             const float *M_head, float *layer_acts, float *layer_state, float *scratch, int T,
                             int pos0, long S, int c) {
    const int cc = c * c, NH = d->NH, nc = d->nc, C = d->C;
    const int b = (int)(u / NH), h = (int)(u % NH);
    const size_t per_head = acts_per_head(d);
    float *P_all = scratch; /* (n_c, c, c) */
    float M[HDD_MAX_C * HDD_MAX_C];
    double A[HDD_MAX_C * HDD_MAX_C], g[HDD_MAX_C * (HDD_MAX_C - 1) / 2];
    float *st = layer_state ? layer_state + (size_t)u * nc * cc : NULL;
    for (int j = 0; j < nc; j++) {
        float *P = P_all + (size_t)j * cc;
        const float *st_j = st ? st + (size_t)j * cc : NULL;
        int from_state = 0;
        if (st_j && pos0 > 0)
            for (int i = 0; i < cc; i++) from_state |= st_j[i] != 0.0f;
        for (int i = 0; i < cc; i++) P[i] = from_state ? st_j[i] : (float)(i % (c + 1) == 0);
    }
    for (int t = 0; t < T; t++) {
        float *row = qkv + ((size_t)b * T + t) * S;
        float *saved = layer_acts ? layer_acts + (((size_t)b * T + t) * NH + h) * per_head : NULL;
        const long p = (long)pos0 + t;
        const int reortho_here = d->reortho > 0 && (p + 1) % d->reortho == 0;
        for (int j = 0; j < nc; j++) {
            float *P = P_all + (size_t)j * cc;
            const float *Mj = M_head ? M_head + (size_t)j * cc : NULL;
            if (d->dynamic) {
                generators(d, l, params, row, h, j, g);
                step_matrix(d, g, A, M, c);
                Mj = M;
            }
            /* P <- P M, in double, rounded to float */
            double next[HDD_MAX_C * HDD_MAX_C];
            for (int i = 0; i < c; i++) {
                for (int k = 0; k < c; k++) next[i * c + k] = 0;
                for (int r = 0; r < c; r++)
                    for (int k = 0; k < c; k++) next[i * c + k] += (double)P[i * c + r] * Mj[r * c + k];
            }
            if (reortho_here) {
                /* P <- P (3I - P^T P) / 2 */
                double PtP[HDD_MAX_C * HDD_MAX_C], fixed[HDD_MAX_C * HDD_MAX_C];
                for (int i = 0; i < c; i++)
                    for (int k = 0; k < c; k++) {
                        double s = 0;
                        for (int r = 0; r < c; r++) s += next[r * c + i] * next[r * c + k];
                        PtP[i * c + k] = ((i == k) ? 3.0 : 0.0) - s;
                    }
                for (int i = 0; i < c; i++)
                    for (int k = 0; k < c; k++) {
                        double s = 0;
                        for (int r = 0; r < c; r++) s += next[i * c + r] * PtP[r * c + k];
                        fixed[i * c + k] = 0.5 * s;
                    }
                memcpy(next, fixed, sizeof(double) * (size_t)cc);
            }
            for (int i = 0; i < cc; i++) P[i] = (float)next[i];
            if (saved) memcpy(saved + (size_t)j * cc, P, sizeof(float) * (size_t)cc);
            for (int r = 0; r < rows; r++) {
                float *q = row + (size_t)r * T * S + (size_t)h * d->hs + (size_t)j * c;
                apply(P, q, c);
                apply(P, q + C, c);
            }
        }
    }
    if (st)
        for (int r = 0; r < rows; r++) memcpy(st + (size_t)r * NH * nc * cc, P_all, sizeof(float) * (size_t)nc * cc);
}

static void hdd_qk_forward(const PosEnc *pe, int l, float *qkv, const float *x, const float *params, float *acts,
                           float *state, int B, int T, int pos0) {
    const Hdd *d = pe->impl;
    const int c = d->c, cc = c * c, NH = d->NH, nc = d->nc;
    const long S = posenc_qkv_stride(pe);
    const int scans = scan_rows(d, B), rows = B / scans; /* rows: the batch rows each scan serves */
    const long units = (long)scans * NH;
    float *layer_acts = acts ? acts + (size_t)l * scans * T * NH * acts_per_head(d) : NULL;
    float *layer_state = state ? state + (size_t)l * B * NH * nc * cc : NULL;
    const int lanes = use_lanes(d);
    float *M_static = static_step_matrices(d, l, params, NULL);
    /* (the lane kernels' vectors need their alignment) */
    const size_t scratch_bytes = lanes ? sizeof(LaneGroup) * lanes_groups(d) : sizeof(float) * (size_t)nc * cc;
#pragma omp parallel if (units * rows * nc * T >= 256)
    {
        void *scratch = xaligned_alloc(HDD_SCRATCH_ALIGN, scratch_bytes);
#pragma omp for schedule(static)
        for (long u = 0; u < units; u++) {
            /* copies with c a constant for the chunk sizes in use (unrolled, vectorised) */
            const int cs = hdd_reference_kernels ? 0 : c;
            const float *M_head = M_static ? M_static + (size_t)(u % NH) * nc * cc : NULL;
            float *la = layer_acts, *ls = layer_state;
            if (lanes) forward_unit_lanes(d, u, rows, l, qkv, params, M_head, la, ls, scratch, T, pos0, S);
            else if (cs == 2) forward_unit(d, u, rows, l, qkv, params, M_head, la, ls, scratch, T, pos0, S, 2);
            else if (cs == 4) forward_unit(d, u, rows, l, qkv, params, M_head, la, ls, scratch, T, pos0, S, 4);
            else if (cs == 8) forward_unit(d, u, rows, l, qkv, params, M_head, la, ls, scratch, T, pos0, S, 8);
            else forward_unit(d, u, rows, l, qkv, params, M_head, la, ls, scratch, T, pos0, S, c);
        }
        free(scratch);
    }
    free(M_static);
}

/* ---- backward ---- */

/* dA from dM for the step matrix of A (double, c x c); Md gets the step matrix itself in double,
 * computed as step_matrix computes it (the same bits: the backward need not save M). */
HDD_INLINE void step_matrix_backward(const Hdd *d, const double *A, const double *dM, double *dA, double *Md, int c) {
    if (d->map == MAP_CAYLEY) {
        double W[HDD_MAX_C * HDD_MAX_C], Wt[HDD_MAX_C * HDD_MAX_C], tmp[HDD_MAX_C * HDD_MAX_C];
        hddrope_cayley(A, Md, W, c);
        for (int i = 0; i < c; i++)
            for (int k = 0; k < c; k++) Wt[i * c + k] = W[k * c + i];
        mat_mul(Wt, dM, tmp, c);
        mat_mul(tmp, Wt, dA, c);
        for (int i = 0; i < c * c; i++) dA[i] *= 2.0;
        return;
    }
    /* c = 2, 4: the skew part only, all that generator_grad reads */
    if (hdd_reference_kernels) {
        expm_kernel(A, Md, c, HDD_SERIES_TOLERANCE);
        expm_adjoint_kernel(A, dM, dA, c, HDD_SERIES_TOLERANCE);
    } else if (c == 2) {
        expm2_adjoint_kernel(A, dM, dA, Md);
    } else if (c == 4) {
        expm4_adjoint_kernel(A, dM, dA, Md);
    } else {
        expm_fast_adjoint_kernel(A, dM, dA, Md, c, HDD_SERIES_TOLERANCE);
    }
}

/* dg from dA: generator a sits at A[i][k] and, negated, at A[k][i]. */
HDD_INLINE double generator_grad(const Hdd *d, const double *dA, int a, int c) {
    return dA[d->tri_i[a] * c + d->tri_k[a]] - dA[d->tri_k[a] * c + d->tri_i[a]];
}

/* The backward of one (b, h) over t = T-1 .. 0, all n_c chunks of the head together (as in the
 * forward), over the rows b .. b + rows - 1 that share its scan (static generators: the batch).
 * This unit's share of d g_base goes to its own slot of `partial`, which the caller sums over the
 * units in a fixed order: dynamic, dg (n_c, m); static, where the step matrix is the same at every
 * position and its adjoint is linear in dM, the summed dM (n_c, c, c), sent through the map once
 * by the caller. scratch: n_c c^2 doubles. */
HDD_INLINE void backward_unit(const Hdd *d, long u, int rows, int l, float *dqkv, const float *qkv,
                              const float *params, const float *layer_acts, const float *M_static, double *scratch,
                              double *partial, int T, long S, int c) {
    const int cc = c * c, NH = d->NH, nc = d->nc, C = d->C, m = d->m;
    const int b = (int)(u / NH), h = (int)(u % NH);
    const size_t per_head = acts_per_head(d), head_rows = (size_t)NH * per_head; /* acts floats per position */
    double *Bnext_all = scratch;                   /* per chunk: B_{t+1} M_{t+1}^T, 0 past the end */
    memset(Bnext_all, 0, sizeof(double) * (size_t)nc * cc);
    memset(partial, 0, sizeof(double) * (size_t)nc * (d->dynamic ? m : cc));
    for (int t = T - 1; t >= 0; t--) {
        const float *saved = layer_acts + ((size_t)b * T + t) * head_rows + (size_t)h * per_head;
        const float *row = qkv + ((size_t)b * T + t) * S;
        float *drow = dqkv + ((size_t)b * T + t) * S;
        for (int j = 0; j < nc; j++) {
            const float *P = saved + (size_t)j * cc;
            const size_t q_off = (size_t)h * d->hs + (size_t)j * c, index = ((size_t)h * nc + j) * m;
            if (t >= HDD_PREFETCH) {
                /* the rows are far apart (a stride the hardware prefetcher does not follow) */
                const size_t ahead = (size_t)HDD_PREFETCH * S;
                __builtin_prefetch(P - HDD_PREFETCH * head_rows);
                __builtin_prefetch(P - HDD_PREFETCH * head_rows + cc - 1);
                for (int r = 0; r < rows; r++) {
                    const size_t at = (size_t)r * T * S + q_off - ahead;
                    __builtin_prefetch(row + at);
                    __builtin_prefetch(row + C + at);
                    __builtin_prefetch(drow + at, 1);
                    __builtin_prefetch(drow + C + at, 1);
                }
                if (d->dynamic) {
                    __builtin_prefetch(row - ahead + 3 * C + index);
                    __builtin_prefetch(drow - ahead + 3 * C + index, 1);
                }
            }
            double *Bnext = Bnext_all + (size_t)j * cc, Bt[HDD_MAX_C * HDD_MAX_C];
            memcpy(Bt, Bnext, sizeof(double) * (size_t)cc);
            /* q~ = P q, k~ = P k: dq = P^T dq~, dk = P^T dk~, and G_t += dq~ q^T + dk~ k^T (summed
             * over the rows sharing the scan: B_t and dM_t are linear in G_t) */
            for (int which = 0; which < 2 * rows; which++) {
                const size_t off = (size_t)(which / 2) * T * S + (size_t)(which % 2) * C + q_off;
                const float *rotated = row + off;
                float *grad = drow + off;
                double un[HDD_MAX_C], dun[HDD_MAX_C];
                for (int i = 0; i < c; i++) un[i] = 0, dun[i] = 0;
                for (int r = 0; r < c; r++)
                    for (int i = 0; i < c; i++) {
                        un[i] += (double)P[r * c + i] * rotated[r];
                        dun[i] += (double)P[r * c + i] * grad[r];
                    }
                for (int i = 0; i < c; i++)
                    for (int k = 0; k < c; k++) Bt[i * c + k] += (double)grad[i] * un[k];
                for (int i = 0; i < c; i++) grad[i] = (float)dun[i];
            }
            /* P_t = P_{t-1} M_t: dM_t = P_{t-1}^T B_t */
            double dM[HDD_MAX_C * HDD_MAX_C];
            if (t == 0) {
                memcpy(dM, Bt, sizeof(double) * (size_t)cc);
            } else {
                const float *Pprev = P - head_rows;
                for (int i = 0; i < c; i++) {
                    for (int k = 0; k < c; k++) dM[i * c + k] = 0;
                    for (int r = 0; r < c; r++)
                        for (int k = 0; k < c; k++) dM[i * c + k] += (double)Pprev[r * c + i] * Bt[r * c + k];
                }
            }
            const float *M;
            float M_here[HDD_MAX_C * HDD_MAX_C];
            if (!d->dynamic) {
                M = M_static + (size_t)j * cc;
                for (int i = 0; i < cc; i++) partial[(size_t)j * cc + i] += dM[i];
            } else {
                /* M_t = map(A_t), A_t from g_t: through the map to the generators, and M_t rebuilt */
                double g[HDD_MAX_C * (HDD_MAX_C - 1) / 2], A[HDD_MAX_C * HDD_MAX_C], dA[HDD_MAX_C * HDD_MAX_C],
                    Md[HDD_MAX_C * HDD_MAX_C];
                generators(d, l, params, row, h, j, g);
                fill_skew(d, g, A, c);
                step_matrix_backward(d, A, dM, dA, Md, c);
                for (int i = 0; i < cc; i++) M_here[i] = (float)Md[i];
                M = M_here;
                for (int a = 0; a < m; a++) {
                    double dg = generator_grad(d, dA, a, c);
                    partial[(size_t)j * m + a] += dg;
                    drow[3 * C + index + a] += (float)dg;
                }
            }
            /* for t-1: B_t M_t^T */
            double Mt[HDD_MAX_C * HDD_MAX_C];
            for (int r = 0; r < c; r++)
                for (int k = 0; k < c; k++) Mt[r * c + k] = M[k * c + r];
            for (int i = 0; i < c; i++) {
                for (int k = 0; k < c; k++) Bnext[i * c + k] = 0;
                for (int r = 0; r < c; r++)
                    for (int k = 0; k < c; k++) Bnext[i * c + k] += Bt[i * c + r] * Mt[r * c + k];
            }
        }
    }
}

static void hdd_qk_backward(const PosEnc *pe, int l, float *dqkv, const float *qkv, const float *x,
                            const float *params, float *dparams, const float *acts, int B, int T, int pos0) {
    const Hdd *d = pe->impl;
    const int c = d->c, cc = c * c, NH = d->NH, nc = d->nc, m = d->m, heads_chunks = NH * nc;
    const long S = posenc_qkv_stride(pe);
    const int scans = scan_rows(d, B), rows = B / scans; /* as in the forward */
    const float *layer_acts = acts + (size_t)l * scans * T * NH * acts_per_head(d);
    const long units = (long)scans * NH;
    const size_t per_unit = (size_t)nc * (d->dynamic ? m : cc); /* doubles of `partial` per unit */
    double *partial = xmalloc(sizeof(double) * per_unit * (size_t)units);
    /* static generators: the one step matrix per (h, j) (the forward's bits), and its A */
    double *A_static = d->dynamic ? NULL : xmalloc(sizeof(double) * (size_t)heads_chunks * cc);
    float *M_static = static_step_matrices(d, l, params, A_static);
    const int lanes = use_lanes(d);
    const size_t scratch_bytes = lanes ? sizeof(LaneGroup) * lanes_groups(d) : sizeof(double) * (size_t)nc * cc;
#pragma omp parallel if (units * rows * nc * T >= 256)
    {
        void *scratch = xaligned_alloc(HDD_SCRATCH_ALIGN, scratch_bytes);
#pragma omp for schedule(static)
        for (long u = 0; u < units; u++) {
            const int cs = hdd_reference_kernels ? 0 : c;
            const float *M_head = M_static ? M_static + (size_t)(u % NH) * nc * cc : NULL;
            double *mine = partial + (size_t)u * per_unit;
            if (lanes) backward_unit_lanes(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S);
            else if (cs == 2) backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, 2);
            else if (cs == 4) backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, 4);
            else if (cs == 8) backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, 8);
            else backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, c);
        }
        free(scratch);
    }
    /* d g_base: the units' shares summed over their b in order (the same bits for any thread count) */
    if (dparams) {
        for (int hj = 0; hj < heads_chunks; hj++) {
            const size_t at = (size_t)hj * (d->dynamic ? m : cc); /* offset of (h, j) inside a b block */
            const size_t b_stride = (size_t)heads_chunks * (d->dynamic ? m : cc);
            float *dbase = dparams + (size_t)l * d->G + (size_t)hj * m;
            if (d->dynamic) {
                for (int a = 0; a < m; a++) {
                    double sum = 0;
                    for (int b = 0; b < scans; b++) sum += partial[(size_t)b * b_stride + at + a];
                    dbase[a] += (float)sum;
                }
            } else {
                double dM[HDD_MAX_C * HDD_MAX_C] = {0}, dA[HDD_MAX_C * HDD_MAX_C], Md[HDD_MAX_C * HDD_MAX_C];
                for (int b = 0; b < scans; b++)
                    for (int i = 0; i < cc; i++) dM[i] += partial[(size_t)b * b_stride + at + i];
                step_matrix_backward(d, A_static + (size_t)hj * cc, dM, dA, Md, c);
                for (int a = 0; a < m; a++) dbase[a] += (float)generator_grad(d, dA, a, c);
            }
        }
    }
    free(partial);
    free(M_static);
    free(A_static);
}

/* Tests only: P_t of (layer l, b, t, head h, chunk j) from a training forward's acts (B, T as
 * given to it), c x c floats into P, whichever layout the run used (use_lanes). */
void hddrope_saved_P(const PosEnc *pe, const float *acts, int l, int B, int T, int b, int t, int h, int j, float *P) {
    const Hdd *d = pe->impl;
    const int cc = d->c * d->c;
    const int scans = scan_rows(d, B);
    if (scans == 1) b = 0; /* one scan shared by the batch */
    const float *head = acts + (((size_t)l * scans + b) * T + t) * d->NH * acts_per_head(d) + (size_t)h * acts_per_head(d);
    for (int i = 0; i < cc; i++)
        P[i] = use_lanes(d) ? head[(size_t)(j / HDD_LANES) * 16 * HDD_LANES + i * lanes_width(d, j / HDD_LANES) + j % HDD_LANES]
                            : head[(size_t)j * cc + i];
}

const PosEncKind posenc_hddrope = {
    .name = "hddrope",
    .summary = "HDD-RoPE: rotate c-channel chunks of q and k by the running product of exp(A_t), A_t skew from "
               "g_base + W_g x_t (options chunk, map, dynamic, base_init, reorthonormalize)",
    .configure = hdd_configure,
    .test_options = (const char *const[]){"{\"chunk\": 2}", "{\"chunk\": 4, \"map\": \"cayley\", \"dynamic\": false}", NULL},
    .destroy = hdd_destroy,
    .num_params = hdd_num_params,
    .num_extra = hdd_num_extra,
    .num_acts = hdd_num_acts,
    .num_state = hdd_num_state,
    .init = hdd_init,
    .embed_forward = NULL,
    .embed_backward = NULL,
    .qk_forward = hdd_qk_forward,
    .qk_backward = hdd_qk_backward,
};
