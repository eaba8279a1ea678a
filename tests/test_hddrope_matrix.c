/* test_hddrope_matrix.c: tests for HDD-RoPE's small-matrix maths (model/hddrope_matrix.c,
 * docs/hdd-rope.md §3, §4): the exponential against a long Taylor series and Cayley against a
 * direct solve, the closed forms for c = 2, 3 and 4 against the series, the adjoints against
 * the block formula and central finite differences, and the lane kernels for c >= 5
 * (model/hddrope_expm_lanes.c) against the references, from A = 0 through norms that need many
 * squarings, and for their lane independence.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/util.h"
#include "model/hddrope_matrix.h"
#include "tests/hddrope_test_helpers.h"
#include "tests/test.h"

/* ---------------------------------------------------------------------------------------------- */
/* the step maps */

static void test_expm_and_cayley_vs_references(void) {
    uint64_t rng = 17;
    const int sizes[] = {2, 3, 4, 8};
    double worst_small = 0, worst_large = 0, worst_cayley = 0, worst_orth = 0;
    for (int si = 0; si < 4; si++) {
        int c = sizes[si], m = c * (c - 1) / 2;
        for (int trial = 0; trial < 6; trial++) {
            /* small (no squaring), large (norm up to ~6-10: several squarings) */
            double sigma = trial < 3 ? 0.05 : 2.0 / sqrt((double)c);
            double g[MAXC * MAXC], A[MAXC * MAXC], E[MAXC * MAXC], R[MAXC * MAXC];
            for (int a = 0; a < m; a++) g[a] = sigma * tr_rng_normal(&rng);
            skew(g, c, A);
            hddrope_expm(A, E, c);
            taylor_exp(A, R, c, 150);
            for (int i = 0; i < c * c; i++) {
                double e = fabs(E[i] - R[i]);
                if (trial < 3 && e > worst_small) worst_small = e;
                if (trial >= 3 && e > worst_large) worst_large = e;
            }
            for (int i = 0; i < c; i++)
                for (int k = 0; k < c; k++) {
                    double s = 0;
                    for (int r = 0; r < c; r++) s += E[r * c + i] * E[r * c + k];
                    if (fabs(s - (i == k)) > worst_orth) worst_orth = fabs(s - (i == k));
                }
            double M[MAXC * MAXC], X[MAXC * MAXC];
            hddrope_cayley(A, M, NULL, c);
            cayley_solve(A, X, c);
            for (int i = 0; i < c * c; i++)
                if (fabs(M[i] - X[i]) > worst_cayley) worst_cayley = fabs(M[i] - X[i]);
        }
    }
    CHECKF(worst_small < 1e-14, "expm vs Taylor, small A: %g", worst_small);
    CHECKF(worst_large < 1e-10, "expm vs Taylor, large A: %g", worst_large);
    CHECKF(worst_orth < 1e-12, "expm not orthogonal: %g", worst_orth);
    CHECKF(worst_cayley < 1e-12, "Cayley vs direct solve: %g", worst_cayley);
    /* c = 2: exp of angle g is R(g), Cayley is R(2 atan g) */
    double g = 0.7, A[4], E[4];
    skew(&g, 2, A);
    hddrope_expm(A, E, 2);
    CHECK(fabs(E[0] - cos(g)) < 1e-15 && fabs(E[2] - sin(g)) < 1e-15 && fabs(E[1] + sin(g)) < 1e-15);
    hddrope_cayley(A, E, NULL, 2);
    CHECK(fabs(E[0] - cos(2 * atan(g))) < 1e-15 && fabs(E[2] - sin(2 * atan(g))) < 1e-15);
}

/* The c = 4 closed form (the model's step matrix at c = 4) against the series and a long Taylor
 * sum, from A = 0 (sinc at 0) through tiny, moderate and large generators (angles past pi). */
static void test_expm4_closed_form_vs_series(void) {
    uint64_t rng = 23;
    double worst = 0, worst_taylor = 0;
    for (int trial = 0; trial < 400; trial++) {
        const double sigmas[] = {0.0, 1e-9, 1e-3, 0.3, 1.0, 3.0};
        double sigma = sigmas[trial % 6], g[6], A[16], E[16], S[16], R[16];
        for (int a = 0; a < 6; a++) g[a] = sigma * tr_rng_normal(&rng);
        skew(g, 4, A);
        hddrope_expm4(A, E);
        hddrope_expm(A, S, 4);
        for (int i = 0; i < 16; i++) worst = fabs(E[i] - S[i]) > worst ? fabs(E[i] - S[i]) : worst;
        if (trial < 24) {
            taylor_exp(A, R, 4, 150);
            for (int i = 0; i < 16; i++)
                worst_taylor = fabs(E[i] - R[i]) > worst_taylor ? fabs(E[i] - R[i]) : worst_taylor;
        }
    }
    CHECKF(worst < 1e-13, "closed-form exp vs series: %g", worst);
    CHECKF(worst_taylor < 1e-10, "closed-form exp vs Taylor: %g", worst_taylor);
    /* exp(0) = I exactly */
    double Z[16] = {0}, E[16];
    hddrope_expm4(Z, E);
    for (int i = 0; i < 16; i++) CHECK(E[i] == (i % 5 == 0));
}

/* The fast adjoint of expm (c x c series + doublings) against the block-matrix reference, and the
 * reference against central differences of <G, exp(A)> in A (A any matrix here, not only skew). */
static void test_expm_adjoint_vs_block_and_differences(void) {
    uint64_t rng = 23;
    const int sizes[] = {2, 3, 4, 8};
    double worst_fast = 0, worst_fd = 0;
    for (int si = 0; si < 4; si++) {
        int c = sizes[si];
        for (int trial = 0; trial < 6; trial++) {
            double sigma = trial < 3 ? 0.05 : 1.5 / sqrt((double)c), gscale = trial % 2 ? 1e3 : 1.0;
            double A[MAXC * MAXC], GM[MAXC * MAXC], fast[MAXC * MAXC], block[MAXC * MAXC];
            for (int i = 0; i < c * c; i++) A[i] = sigma * tr_rng_normal(&rng), GM[i] = gscale * tr_rng_normal(&rng);
            hddrope_expm_adjoint(A, GM, fast, c);
            hddrope_expm_adjoint_block(A, GM, block, c);
            double big = 0;
            for (int i = 0; i < c * c; i++) big = fmax(big, fabs(block[i]));
            for (int i = 0; i < c * c; i++) worst_fast = fmax(worst_fast, fabs(fast[i] - block[i]) / big);
            for (int i = 0; i < c * c; i++) {
                double E[MAXC * MAXC], L2[2], keep = A[i], h = 1e-6;
                for (int side = 0; side < 2; side++) {
                    A[i] = keep + (side ? -h : h);
                    hddrope_expm(A, E, c);
                    L2[side] = 0;
                    for (int k = 0; k < c * c; k++) L2[side] += GM[k] * E[k];
                }
                A[i] = keep;
                worst_fd = fmax(worst_fd, fabs((L2[0] - L2[1]) / (2 * h) - block[i]) / big);
            }
        }
    }
    CHECKF(worst_fast < 1e-12, "fast adjoint vs block reference: %g (relative)", worst_fast);
    CHECKF(worst_fd < 1e-7, "block adjoint vs finite differences: %g (relative)", worst_fd);
}

/* The closed forms' adjoints return only the skew part (what the generators read): the worst
 * error of `fast` against the skew part (ref - ref^T) / 2 of a reference adjoint, relative to
 * ref's largest entry; INFINITY if fast holds a NaN or an infinity (fmax would drop a NaN). */
static double skew_adjoint_error(const double *fast, const double *ref, int c) {
    double big = 0, worst = 0;
    for (int i = 0; i < c * c; i++) big = fmax(big, fabs(ref[i]));
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++) {
            if (!isfinite(fast[i * c + k])) return INFINITY;
            worst = fmax(worst, fabs(fast[i * c + k] - 0.5 * (ref[i * c + k] - ref[k * c + i])) / big);
        }
    return worst;
}

/* Whether M is exactly skew: M = -M^T, bit for bit. */
static int exactly_skew(const double *M, int c) {
    for (int i = 0; i < c; i++)
        for (int k = 0; k < c; k++)
            if (M[i * c + k] != -M[k * c + i]) return 0;
    return 1;
}

/* The c = 4 closed-form adjoint (skew part only, what the generators see) against the skew part
 * of the series adjoint and of the block reference, for skew A of norms 0 to 5, A = 0 exactly and
 * tiny A (where sinc'(a)/a must come from its series, not from a cancelling difference). */
static void test_expm_adjoint4_closed_form(void) {
    uint64_t rng = 31;
    double worst_series = 0, worst_block = 0;
    int skew_ok = 1;
    for (int trial = 0; trial < 240; trial++) {
        const double sigmas[] = {0.0, 1e-8, 1e-4, 0.05, 0.3, 0.6, 1.0, 2.0, 5.0};
        double sigma = sigmas[trial % 9], g[6], A[16], GM[16], fast[16], series[16], block[16];
        for (int a = 0; a < 6; a++) g[a] = sigma * tr_rng_normal(&rng);
        skew(g, 4, A);
        for (int i = 0; i < 16; i++) GM[i] = (trial % 2 ? 1e3 : 1.0) * tr_rng_normal(&rng);
        hddrope_expm_adjoint4(A, GM, fast);
        hddrope_expm_adjoint(A, GM, series, 4);
        hddrope_expm_adjoint_block(A, GM, block, 4);
        worst_series = fmax(worst_series, skew_adjoint_error(fast, series, 4));
        worst_block = fmax(worst_block, skew_adjoint_error(fast, block, 4));
        skew_ok &= exactly_skew(fast, 4);
    }
    CHECKF(worst_series < 1e-12, "closed-form adjoint vs series (skew part): %g (relative)", worst_series);
    CHECKF(worst_block < 1e-12, "closed-form adjoint vs block reference (skew part): %g (relative)", worst_block);
    CHECK(skew_ok);
}

/* The c = 2 closed forms (the model's step matrix and adjoint at c = 2) against the series
 * exponential and the skew part of the series adjoint, for angles 0 to well past pi. */
static void test_chunk2_closed_forms(void) {
    uint64_t rng = 37;
    double worst_exp = 0, worst_adj = 0;
    int skew_ok = 1;
    for (int trial = 0; trial < 120; trial++) {
        const double sigmas[] = {0.0, 1e-9, 1e-3, 0.5, 2.0, 8.0};
        double g = sigmas[trial % 6] * tr_rng_normal(&rng), A[4], E[4], S[4], GM[4], fast[4], series[4];
        skew(&g, 2, A);
        hddrope_expm2(A, E);
        hddrope_expm(A, S, 2);
        for (int i = 0; i < 4; i++) worst_exp = fmax(worst_exp, fabs(E[i] - S[i]));
        for (int i = 0; i < 4; i++) GM[i] = (trial % 2 ? 1e3 : 1.0) * tr_rng_normal(&rng);
        hddrope_expm_adjoint2(A, GM, fast);
        hddrope_expm_adjoint(A, GM, series, 2);
        worst_adj = fmax(worst_adj, skew_adjoint_error(fast, series, 2));
        skew_ok &= exactly_skew(fast, 2);
    }
    CHECKF(worst_exp < 1e-13, "c = 2 closed-form exp vs series: %g", worst_exp);
    CHECKF(worst_adj < 1e-12, "c = 2 closed-form adjoint vs series (skew part): %g (relative)", worst_adj);
    CHECK(skew_ok);
}

/* The c = 3 closed forms (Rodrigues; the model's step matrix and adjoint at c = 3) against the
 * series exponential, a long Taylor sum, and the skew part of the series and block adjoints, from
 * A = 0 and tiny angles (where the series branch runs) through angles well past pi, and both
 * sides of the branch point |w|^2 = 1e-4. */
static void test_chunk3_closed_forms(void) {
    uint64_t rng = 43;
    double worst_exp = 0, worst_taylor = 0, worst_adj = 0, worst_block = 0;
    int skew_ok = 1;
    for (int trial = 0; trial < 320; trial++) {
        const double sigmas[] = {0.0, 1e-9, 1e-3, 0.00577, 0.00578, 0.3, 1.0, 3.0};
        double sigma = sigmas[trial % 8], g[3], A[9], E[9], S[9], R[9], GM[9], fast[9], series[9], block[9];
        for (int a = 0; a < 3; a++) g[a] = sigma * tr_rng_normal(&rng);
        skew(g, 3, A);
        hddrope_expm3(A, E);
        hddrope_expm(A, S, 3);
        for (int i = 0; i < 9; i++) worst_exp = fmax(worst_exp, fabs(E[i] - S[i]));
        if (trial < 24) {
            taylor_exp(A, R, 3, 150);
            for (int i = 0; i < 9; i++) worst_taylor = fmax(worst_taylor, fabs(E[i] - R[i]));
        }
        for (int i = 0; i < 9; i++) GM[i] = (trial % 2 ? 1e3 : 1.0) * tr_rng_normal(&rng);
        hddrope_expm_adjoint3(A, GM, fast);
        hddrope_expm_adjoint(A, GM, series, 3);
        hddrope_expm_adjoint_block(A, GM, block, 3);
        worst_adj = fmax(worst_adj, skew_adjoint_error(fast, series, 3));
        worst_block = fmax(worst_block, skew_adjoint_error(fast, block, 3));
        skew_ok &= exactly_skew(fast, 3);
    }
    CHECKF(worst_exp < 1e-13, "c = 3 closed-form exp vs series: %g", worst_exp);
    CHECKF(worst_taylor < 1e-10, "c = 3 closed-form exp vs Taylor: %g", worst_taylor);
    CHECKF(worst_adj < 1e-12, "c = 3 closed-form adjoint vs series (skew part): %g (relative)", worst_adj);
    CHECKF(worst_block < 1e-12, "c = 3 closed-form adjoint vs block reference (skew part): %g (relative)", worst_block);
    CHECK(skew_ok);
    double Z[9] = {0}, E[9];
    hddrope_expm3(Z, E);
    for (int i = 0; i < 9; i++) CHECK(E[i] == (i % 4 == 0));
}

/* Cayley's closed forms (c = 2, 3, 4) against the inverse by elimination, their adjoints against
 * the reference adjoint's skew part and against central differences of <G_M, M> in each
 * generator, and the M the adjoint rebuilds against the map's own bits. */
static void test_cayley_closed_forms(void) {
    uint64_t rng = 47;
    double worst_map = 0, worst_adj = 0, worst_fd = 0;
    int skew_ok = 1, same_bits = 1;
    for (int c = 2; c <= 4; c++)
        for (int trial = 0; trial < 120; trial++) {
            const double sigmas[] = {0.0, 1e-6, 0.1, 1.0, 10.0, 1e3};
            const int m = c * (c - 1) / 2;
            double g[6], A[16], M[16], R[16], M2[16], GM[16], fast[16], ref[16], W[16];
            for (int a = 0; a < m; a++) g[a] = sigmas[trial % 6] * tr_rng_normal(&rng);
            skew(g, c, A);
            for (int i = 0; i < c * c; i++) GM[i] = tr_rng_normal(&rng);
            hddrope_step_cayley(A, M, c);
            hddrope_cayley(A, R, W, c);
            for (int i = 0; i < c * c; i++) worst_map = fmax(worst_map, fabs(M[i] - R[i]));
            hddrope_step_cayley_adjoint(A, GM, fast, M2, c);
            hddrope_cayley_adjoint(A, GM, ref, R, c);
            worst_adj = fmax(worst_adj, skew_adjoint_error(fast, ref, c));
            skew_ok &= exactly_skew(fast, c);
            same_bits &= memcmp(M, M2, sizeof(double) * (size_t)(c * c)) == 0;
            if (trial % 6 == 3) /* generator a sits at A[i][k] and -A[k][i]: dL/dg = 2 GA[i][k] */
                for (int a = 0; a < m; a++) {
                    const double h = 1e-5;
                    double gp[6], gm[6], Ap[16], Am[16], Mp[16], Mm[16], lp = 0, lm = 0;
                    memcpy(gp, g, sizeof g), memcpy(gm, g, sizeof g);
                    gp[a] += h, gm[a] -= h;
                    skew(gp, c, Ap), skew(gm, c, Am);
                    hddrope_cayley(Ap, Mp, NULL, c), hddrope_cayley(Am, Mm, NULL, c);
                    for (int i = 0; i < c * c; i++) lp += GM[i] * Mp[i], lm += GM[i] * Mm[i];
                    /* row and column of generator a in skew()'s order: (1,0), (2,0), (2,1), (3,0), ... */
                    const int rows_of[] = {1, 2, 2, 3, 3, 3}, cols_of[] = {0, 0, 1, 0, 1, 2};
                    const int ri = rows_of[a], rk = cols_of[a];
                    worst_fd = fmax(worst_fd, fabs(2.0 * fast[ri * c + rk] - (lp - lm) / (2 * h)));
                }
        }
    /* (at |g| ~ 1e3, M = I + 2k A^2 + ... cancels terms of 1e6 k: 1e-13 of rounding) */
    CHECKF(worst_map < 1e-12, "Cayley closed forms vs elimination: %g", worst_map);
    CHECKF(worst_adj < 1e-12, "Cayley closed-form adjoints vs the reference (skew part): %g (relative)", worst_adj);
    CHECKF(worst_fd < 1e-7, "Cayley closed-form adjoints vs central differences: %g", worst_fd);
    CHECK(skew_ok);
    CHECK(same_bits);
}

/* n random matrices (n, c, c) for the lane kernels: skew (the model's case) or general, of norm
 * sigma (matrix v gets sigma * scale_of[v % 5] so that the lanes need different squarings), and
 * gradients GM of scale 1 or 1e3. */
static void lane_inputs(double *A, double *GM, int n, int c, double sigma, int skew_only, uint64_t *rng) {
    const double scale_of[] = {1.0, 0.0, 40.0, 1e-3, 7.0};
    for (int v = 0; v < n; v++) {
        double *Av = A + (size_t)v * c * c, s = sigma * scale_of[v % 5] / sqrt((double)c);
        if (skew_only) {
            double g[MAXC * MAXC];
            for (int a = 0; a < c * (c - 1) / 2; a++) g[a] = s * tr_rng_normal(rng);
            skew(g, c, Av);
        } else {
            for (int i = 0; i < c * c; i++) Av[i] = s * tr_rng_normal(rng);
        }
        for (int i = 0; i < c * c; i++) GM[(size_t)v * c * c + i] = (v % 2 ? 1e3 : 1.0) * tr_rng_normal(rng);
    }
}

/* The model's exponential for c >= 5 (hddrope_expm_lanes, 8 matrices in vector lanes) and the
 * reverse-mode adjoint of its computation, against the series exponential and the block-matrix
 * adjoint, for skew and general A, from A = 0 through norms that need many squarings (up to
 * |A| ~ 2^20, past the squarands the adjoint keeps), with every lane count. */
static void test_expm_lanes_vs_references(void) {
    uint64_t rng = 41;
    const int sizes[] = {3, 5, 8, 16};
    double worst_exp = 0, worst_adj = 0, worst_E = 0, worst_huge = 0;
    void *work = xaligned_alloc(64, hddrope_expm_lanes_bytes(MAXC));
    for (int si = 0; si < 4; si++) {
        const int c = sizes[si], cc = c * c;
        for (int trial = 0; trial < 8; trial++) {
            /* the last skew one needs up to ~21 squarings (general A: exp would overflow) */
            const double sigmas[] = {0.05, 0.5, 2.0, trial < 4 ? 3e4 : 2.0};
            const int n = 1 + (trial * 3 + si) % HDD_EXP_LANES, huge = trial == 3;
            double A[HDD_EXP_LANES * MAXC * MAXC], GM[HDD_EXP_LANES * MAXC * MAXC], E[HDD_EXP_LANES * MAXC * MAXC],
                E2[HDD_EXP_LANES * MAXC * MAXC], GA[HDD_EXP_LANES * MAXC * MAXC];
            lane_inputs(A, GM, n, c, sigmas[trial % 4], trial < 4, &rng);
            hddrope_expm_lanes(A, E, n, c, work);
            hddrope_expm_adjoint_lanes(A, GM, GA, E2, n, c, work);
            for (int v = 0; v < n; v++) {
                const double *Av = A + (size_t)v * cc;
                double S[MAXC * MAXC], block[MAXC * MAXC], bigE = 0, big = 0;
                hddrope_expm(Av, S, c);
                hddrope_expm_adjoint_block(Av, GM + (size_t)v * cc, block, c);
                for (int i = 0; i < cc; i++) bigE = fmax(bigE, fabs(S[i])), big = fmax(big, fabs(block[i]));
                for (int i = 0; i < cc; i++) {
                    const double e = E[(size_t)v * cc + i], g = GA[(size_t)v * cc + i];
                    const double err_e = isfinite(e) ? fabs(e - S[i]) / bigE : INFINITY;
                    const double err_g = isfinite(g) ? fabs(g - block[i]) / big : INFINITY;
                    if (huge) worst_huge = fmax(worst_huge, fmax(err_e, err_g));
                    else worst_exp = fmax(worst_exp, err_e), worst_adj = fmax(worst_adj, err_g);
                    worst_E = fmax(worst_E, fabs(e - E2[(size_t)v * cc + i]));
                }
            }
        }
    }
    free(work);
    /* the model's series stops at terms of 1e-12 (its results are rounded to float); the
     * squarings and the adjoint's products add some rounding over that */
    CHECKF(worst_exp < 1e-10, "lanes expm vs series: %g (relative)", worst_exp);
    CHECKF(worst_adj < 1e-10, "lanes adjoint vs block reference: %g (relative)", worst_adj);
    /* rotations by ~1e6 rad: an angle is known to 1e6 * 1e-16 in double, and the squarings
     * multiply that by their count */
    CHECKF(worst_huge < 1e-6, "lanes expm and adjoint vs the references at |A| ~ 1e6: %g (relative)", worst_huge);
    CHECKF(worst_E == 0, "the adjoint's E differs from the forward's by %g", worst_E);
}

/* A matrix's bits do not depend on the lanes beside it or on its lane: each of 8 matrices (with
 * different squarings) alone in lane 0, against all 8 together, forward and adjoint. The scans
 * group positions into lanes freely and rely on this (a cached generation step, one position,
 * must reproduce the full forward). */
static void test_expm_lanes_independent(void) {
    uint64_t rng = 43;
    const int sizes[] = {5, 8, 16};
    int same = 1;
    void *work = xaligned_alloc(64, hddrope_expm_lanes_bytes(MAXC));
    for (int si = 0; si < 3; si++) {
        const int c = sizes[si], cc = c * c, n = HDD_EXP_LANES;
        double A[HDD_EXP_LANES * MAXC * MAXC], GM[HDD_EXP_LANES * MAXC * MAXC], E[HDD_EXP_LANES * MAXC * MAXC],
            GA[HDD_EXP_LANES * MAXC * MAXC];
        lane_inputs(A, GM, n, c, 1.5, 1, &rng);
        hddrope_expm_lanes(A, E, n, c, work);
        hddrope_expm_adjoint_lanes(A, GM, GA, NULL, n, c, work);
        for (int v = 0; v < n; v++) {
            double E1[MAXC * MAXC], GA1[MAXC * MAXC];
            hddrope_expm_lanes(A + (size_t)v * cc, E1, 1, c, work);
            hddrope_expm_adjoint_lanes(A + (size_t)v * cc, GM + (size_t)v * cc, GA1, NULL, 1, c, work);
            same &= memcmp(E1, E + (size_t)v * cc, sizeof(double) * (size_t)cc) == 0;
            same &= memcmp(GA1, GA + (size_t)v * cc, sizeof(double) * (size_t)cc) == 0;
        }
    }
    free(work);
    CHECKF(same, "a matrix alone in the lanes gives other bits than among 8");
}

int main(void) {
    RUN(test_expm_and_cayley_vs_references);
    RUN(test_expm4_closed_form_vs_series);
    RUN(test_expm_adjoint_vs_block_and_differences);
    RUN(test_expm_adjoint4_closed_form);
    RUN(test_chunk2_closed_forms);
    RUN(test_chunk3_closed_forms);
    RUN(test_cayley_closed_forms);
    RUN(test_expm_lanes_vs_references);
    RUN(test_expm_lanes_independent);
    return test_summary();
}
