/* hddrope_lanes.c: the fast twin of HDD-RoPE's scan for c = 4 (either map, no
 * re-orthonormalisation): forward_unit and backward_unit of model/posenc_hddrope.c, with 8 chunks
 * of a head side by side in vector lanes. tests/test_hddrope.c compares the two
 * (test_lane_kernels_vs_scalar, through hddrope_use_lane_kernels(0)) and tests this file's sin/cos
 * (test_lane_sincos).
 *
 * The same maths as the scalar c = 4 path (the closed forms hddrope_expm4 and
 * hddrope_expm_adjoint4, or Cayley's hddrope_step_cayley and its adjoint, of
 * model/hddrope_matrix.c, and the scan), with every quantity a vector of
 * 8 floats over consecutive chunks j of one head (GCC vector extensions; AVX/FMA intrinsics where
 * the machine has them), so that each step is one instruction across chunks instead of shuffles
 * inside one 4 x 4 matrix. It runs in float (the precision of the scan's state and step
 * matrices): float sin/cos (sincos_lanes), float products, P kept in float as the scalar path
 * keeps it; only the d g_base shares summed over t stay in double. Against the scalar path (double
 * inside each step, rounded to float after) that is a few float ulps per step.
 * Lanes past the head's last chunk run on zero generators (M = I) and are never loaded or stored.
 * Layout: here the saved P of a head are (group, 16 entries, HDD_LANES chunks) floats instead of
 * (chunk, 16 entries), so the backward loads them as vectors; hdd_acts_per_head covers both. */
#include "model/posenc_hddrope.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#define HDD_INLINE static inline __attribute__((always_inline))

/* Without AVX, GCC notes that these 32-byte vectors are passed differently: they never cross a
 * call here (every helper is inlined into this file's units), so the note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vlane __attribute__((vector_size(HDD_LANES * sizeof(float))));
typedef int32_t vmask __attribute__((vector_size(HDD_LANES * sizeof(int32_t))));
typedef double vlane_d __attribute__((vector_size(HDD_LANES * sizeof(double)))); /* sums over t */
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

/* The two factors of exp(A) for c = 4 (hddrope_expm4's) over lanes, from the six generator values g[a] (axis order (1,0), (2,0), (2,1),
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

/* out = X Y for 4 x 4 matrices of lanes (row-major, each sum over r in order) */
HDD_INLINE void mat4_mul_lanes(const vlane *X, const vlane *Y, vlane *out) {
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            vlane acc = splat(0);
            for (int r = 0; r < 4; r++) acc = fmadd(X[i * 4 + r], Y[r * 4 + k], acc);
            out[i * 4 + k] = acc;
        }
}

/* Cayley for c = 4 over lanes: hddrope_step_cayley's closed form (model/hddrope_matrix.c) in
 * float. With p = |A|_F^2 / 2 and q the Pfaffian, W = (I - A)^-1 = k S, S = (1 + p)(I + A) + A^2 + A^3,
 * k = 1 / (1 + p + q^2), M = 2W - I; Cayley4Lanes keeps what the adjoint needs. */
typedef struct {
    vlane A[16], A2[16], S[16], p, q, k;
} Cayley4Lanes;

HDD_INLINE void cayley4_lanes(const vlane *g, Cayley4Lanes *f, vlane *M) {
    static const int row_of[6] = {1, 2, 2, 3, 3, 3}, col_of[6] = {0, 0, 1, 0, 1, 2};
    vlane A3[16];
    for (int i = 0; i < 16; i++) f->A[i] = splat(0);
    for (int a = 0; a < 6; a++) f->A[row_of[a] * 4 + col_of[a]] = g[a], f->A[col_of[a] * 4 + row_of[a]] = -g[a];
    mat4_mul_lanes(f->A, f->A, f->A2);
    mat4_mul_lanes(f->A2, f->A, A3);
    vlane sum = splat(0);
    for (int a = 0; a < 6; a++) sum = fmadd(g[a], g[a], sum);
    f->p = sum; /* |A|_F^2 / 2 */
    f->q = f->A[1] * f->A[11] - f->A[2] * f->A[7] + f->A[3] * f->A[6];
    f->k = 1.0f / (1.0f + f->p + f->q * f->q);
    /* With R = (1 + p) A + A^2 + A^3: S = (1 + p) I + R, and M = 2kS - I = I + 2k (R - q^2 I) (since
     * 2k(1 + p) - 1 = k(1 + p - q^2)): in float, 2kS - I would subtract 1 from about 2 on the
     * diagonal and lose an ulp of M there */
    for (int i = 0; i < 16; i++) {
        const vlane identity = i % 5 == 0 ? splat(1.0f) : splat(0);
        const vlane R = (1.0f + f->p) * f->A[i] + f->A2[i] + A3[i];
        f->S[i] = (1.0f + f->p) * identity + R;
        M[i] = identity + 2.0f * f->k * (R - f->q * f->q * identity);
    }
}

/* hddrope_step_cayley_adjoint over lanes: dg[a] = full[i][k] - full[k][i] for generator a at
 * (i, k), full = k (<G_W, I + A> A + (1 + p) G_W + G_W A^T + A^T G_W + G_W A^2^T + A^T G_W A^T
 * + A^2^T G_W) - k^2 <G_W, S> (A + 2q Q), G_W = 2 G_M, Q the Pfaffian's partial derivatives. */
HDD_INLINE void cayley4_adjoint_lanes(const Cayley4Lanes *f, const vlane *GM, vlane *dg) {
    static const int row_of[6] = {1, 2, 2, 3, 3, 3}, col_of[6] = {0, 0, 1, 0, 1, 2};
    const vlane *A = f->A, *A2 = f->A2;
    vlane GW[16], Q[16], AtG[16], full[16], on_S = splat(0), on_IA = splat(0);
    for (int i = 0; i < 16; i++) {
        GW[i] = 2.0f * GM[i];
        on_S = fmadd(GW[i], f->S[i], on_S);
        on_IA = fmadd(GW[i], (i % 5 == 0 ? splat(1.0f) : splat(0)) + A[i], on_IA);
        Q[i] = splat(0);
    }
    Q[1] = A[11], Q[11] = A[1], Q[2] = -A[7], Q[7] = -A[2], Q[3] = A[6], Q[6] = A[3];
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            vlane s = (1.0f + f->p) * GW[i * 4 + k], at = splat(0);
            for (int r = 0; r < 4; r++) {
                s = fmadd(GW[i * 4 + r], A[k * 4 + r], s);
                s = fmadd(A[r * 4 + i], GW[r * 4 + k], s);
                s = fmadd(GW[i * 4 + r], A2[k * 4 + r], s);
                s = fmadd(A2[r * 4 + i], GW[r * 4 + k], s);
                at = fmadd(A[r * 4 + i], GW[r * 4 + k], at);
            }
            full[i * 4 + k] = s, AtG[i * 4 + k] = at;
        }
    const vlane k2S = f->k * f->k * on_S;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            vlane s = splat(0);
            for (int r = 0; r < 4; r++) s = fmadd(AtG[i * 4 + r], A[k * 4 + r], s);
            full[i * 4 + k] = f->k * (full[i * 4 + k] + s + on_IA * A[i * 4 + k]) -
                              k2S * (A[i * 4 + k] + 2.0f * f->q * Q[i * 4 + k]);
        }
    for (int a = 0; a < 6; a++) dg[a] = full[row_of[a] * 4 + col_of[a]] - full[col_of[a] * 4 + row_of[a]];
}

/* What a step's map keeps for its adjoint: the member of d->map. */
typedef union {
    Expm4Lanes expm;
    Cayley4Lanes cayley;
} StepLanes;

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

size_t hdd_lanes_scratch_bytes(const Hdd *d) { return sizeof(LaneGroup) * lanes_groups(d); }

size_t hdd_lanes_saved_at(const Hdd *d, int j, int i) {
    return (size_t)(j / HDD_LANES) * 16 * HDD_LANES + (size_t)i * lanes_width(d, j / HDD_LANES) + j % HDD_LANES;
}

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
                                    StepLanes *f, vlane *M) {
    const float *extra = row + 3 * d->C + ((size_t)h * d->nc + j0) * 6;
    vlane g[6];
    for (int a = 0; a < 6; a++) g[a] = grp->base[a] + gather_lanes(extra + a, 6, live);
    if (d->map == MAP_CAYLEY) {
        cayley4_lanes(g, &f->cayley, M);
    } else {
        expm4_factors_lanes(g, &f->expm);
        mat4_mul_lanes(f->expm.F[0], f->expm.F[1], M); /* M = F+ F- */
    }
}

/* The forward scan of one (b, h) (forward_unit's steps, chunk groups in lanes), applied to the
 * rows of b .. b + rows - 1 (static generators: the whole batch, rows = B; else 1); M_head:
 * static generators, the head's step matrices (n_c, 16), else NULL; scratch: the unit's groups. */
void hdd_forward_unit_lanes(const Hdd *d, long u, int rows, int l, float *qkv, const float *params,
                            const float *M_head, float *layer_acts, float *layer_state, void *scratch, int T,
                            int pos0, long S) {
    LaneGroup *grp = scratch;
    const int NH = d->NH, nc = d->nc, C = d->C, groups = (int)lanes_groups(d);
    const int b = (int)(u / NH), h = (int)(u % NH);
    const size_t per_head = hdd_acts_per_head(d);
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
    StepLanes f;
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

/* hddrope_expm_adjoint4 over lanes: dg[a] (the generators' gradient) from dM and the factors. */
HDD_INLINE void expm4_adjoint_lanes(const Expm4Lanes *f, const vlane *GM, vlane *dg) {
    vlane dsi[2]; /* d(sin a / a)/da / a: the series below a = 1, where the closed form cancels in float */
    for (int half = 0; half < 2; half++) {
        const vlane a2 = f->a2[half], alpha = f->alpha[half];
        /* sum_{n=1..8} (-1)^n 2n t_n a2^(n-1), t_1 = 1/6, t_{n+1} = t_n / ((2n+2)(2n+3)), by Horner in
         * a2: the terms one by one would fall into subnormal floats (very slow) for small angles.
         * Below a2 = 1e-20 the a2 terms are far under an ulp of the first, and are dropped. */
        float coef[8], t = 1.0f / 6.0f;
        for (int n = 1; n <= 8; n++) coef[n - 1] = (n % 2 ? -2.0f : 2.0f) * n * t, t /= (float)((2 * n + 2) * (2 * n + 3));
        const vlane a2s = pick(a2 < splat(1e-20f), splat(0), a2);
        vlane sum = splat(coef[7]);
        for (int n = 6; n >= 0; n--) sum = coef[n] + a2s * sum;
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
 * b .. b + rows - 1 that share its scan; scratch: the unit's groups, whose d g_base shares go to
 * `partial` at the end. */
void hdd_backward_unit_lanes(const Hdd *d, long u, int rows, int l, float *dqkv, const float *qkv,
                             const float *params, const float *layer_acts, const float *M_head, void *scratch,
                             double *partial, int T, long S) {
    LaneGroup *grp = scratch;
    const int NH = d->NH, nc = d->nc, C = d->C, groups = (int)lanes_groups(d);
    const int b = (int)(u / NH), h = (int)(u % NH);
    const size_t per_head = hdd_acts_per_head(d), head_rows = (size_t)NH * per_head; /* acts floats per position */
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
                    /* signed: HDD_PREFETCH positions back may lie before row + q_off */
                    const ptrdiff_t at = (ptrdiff_t)((size_t)r * T * S + q_off + e) - (ptrdiff_t)ahead;
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
                StepLanes f;
                step_matrices_lanes(d, G, row, h, j0, live, &f, M_dyn);
                M = M_dyn;
                if (d->map == MAP_CAYLEY) cayley4_adjoint_lanes(&f.cayley, dM, dg);
                else expm4_adjoint_lanes(&f.expm, dM, dg);
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
