/* fast_math.h: what the layer files (model/layers.c, model/layers_pointwise.c) share for their
 * vectorised and parallel loops: a multiply-add, an exp that vectorises, the softmax of one row,
 * and the OpenMP thread count and index (1 and 0 without OpenMP). Internal to those files; the
 * model's interface is layers.h.
 */
#ifndef TINYROPE_FAST_MATH_H
#define TINYROPE_FAST_MATH_H

#include <math.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static inline int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* a * b + c, fused where the target has a fast fma. -std=c11 turns off GCC's contraction of
 * a * b + c, so without this the hot loops run separate multiplies and adds; fmaf is one
 * instruction there (GCC defines __FP_FAST_FMAF) and a slow library call elsewhere, hence the
 * plain expression as the fallback. */
#ifdef __FP_FAST_FMAF
#define MADD(a, b, c) fmaf((a), (b), (c))
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* Lanes per iteration for the hot loops' `omp simd simdlen(SIMD_LANES)`: GCC's tuning for
 * AVX-512 Xeons prefers 256-bit vectors, which leaves half of each register unused in these
 * compute-bound loops; 16 floats is one AVX-512 register, two AVX2 ones, four SSE ones. */
#define SIMD_LANES 16

/* exp for the hot loops (softmax, GELU, cross-entropy). glibc's expf is an opaque call per
 * element that the compiler cannot vectorise, and it made those layers cost as much as the
 * matmuls around them; this branch-free version vectorises. exp(x) = 2^k exp(r) with
 * k = round(x / ln 2) and r = x - k ln 2 in [-ln2/2, ln2/2], where the Taylor series to degree 7
 * is accurate to 1e-8. Measured against double exp over every float in [-87, 88]: relative
 * error < 8e-8 (1.3 ulp) with MADD fused, < 1.1e-7 without (glibc's expf: 6e-8). Below -87.3 (2^k would leave the normal range) it
 * returns 0, above 88 it saturates at exp(88) ~ 1.7e38 instead of going to inf; NaN stays NaN.
 * tests/test_layer_properties.c (test_crossentropy_wide_range) holds its accuracy. */
static inline float fast_expf(float x) {
    const float log2e = 1.44269504f, ln2_hi = 0.693145752f, ln2_lo = 1.42860677e-6f;
    float xc = x < -87.3f ? -87.3f : x > 88.0f ? 88.0f : x;  // (fminf/fmaxf would block vectorising)
    xc = xc == xc ? xc : 0.0f;   // NaN: compute on 0 (converting NaN to int is undefined), return x below
    // round to nearest integer: adding 1.5 * 2^23 pushes the fraction bits out of the float
    const float round_magic = 12582912.0f;
    float k = MADD(xc, log2e, round_magic) - round_magic;
    float r = MADD(-k, ln2_lo, MADD(-k, ln2_hi, xc));  // two steps keep r exact to ~1 ulp
    float p = MADD(r, 1.0f / 5040, 1.0f / 720);         // Horner, highest degree first
    p = MADD(p, r, 1.0f / 120);
    p = MADD(p, r, 1.0f / 24);
    p = MADD(p, r, 1.0f / 6);
    p = MADD(p, r, 1.0f / 2);
    p = MADD(p, r, 1.0f);
    p = MADD(p, r, 1.0f);
    union { uint32_t i; float f; } two_k = {.i = (uint32_t)((int32_t)k + 127) << 23};
    return x < -87.3f ? 0.0f : x == x ? p * two_k.f : x;
}

/* x[0..n) = softmax(x[0..n)) in place (n >= 1); the row's max and sum of exp(x - max) go to
 * *max_out and *sum_out when not NULL. Out of line on purpose: inlined into a loop over rows of
 * varying length, GCC 12 leaves its reductions scalar. Defined in layers_pointwise.c. */
void softmax_row(float *x, int n, float *max_out, float *sum_out);

#endif
