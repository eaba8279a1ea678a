/* bench_helpers.h: what the benchmarks share: this machine's matrix-multiply peak, the yardstick
 * their speeds are fractions of. */
#ifndef TINYROPE_BENCH_HELPERS_H
#define TINYROPE_BENCH_HELPERS_H

#include <stdlib.h>

#include <cblas.h>

#include "base/util.h"

/* GFLOP/s of the best of `runs` square 2048 products after one warm-up: cblas_sgemm, or
 * cblas_dgemm when double_precision is set (what the double-precision kernels run against). */
static inline double gemm_peak_gflops(int double_precision, int runs) {
    const int n = 2048;
    const size_t nn = (size_t)n * n, elem = double_precision ? sizeof(double) : sizeof(float);
    void *a = xmalloc(nn * elem), *b = xmalloc(nn * elem), *c = xmalloc(nn * elem);
    uint64_t rng = 1;
    for (size_t i = 0; i < nn; i++) {
        const double x = tr_rng_uniform(&rng), y = tr_rng_uniform(&rng);
        if (double_precision) ((double *)a)[i] = x, ((double *)b)[i] = y;
        else ((float *)a)[i] = (float)x, ((float *)b)[i] = (float)y;
    }
    double best = 1e30;
    for (int r = 0; r <= runs; r++) {
        const double t0 = tr_now_seconds();
        if (double_precision)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        const double dt = tr_now_seconds() - t0;
        if (r > 0 && dt < best) best = dt; /* the first run warms up */
    }
    free(a), free(b), free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

#endif
