/* hddrope_test_helpers.h: what the HDD-RoPE tests share: the skew matrix of generator values as
 * docs/hdd-rope.md §1 lays it out, and the plain references the fast maths is checked against (a
 * long Taylor series for exp, Gaussian elimination for Cayley). */
#ifndef TINYROPE_HDDROPE_TEST_HELPERS_H
#define TINYROPE_HDDROPE_TEST_HELPERS_H

#include <math.h>
#include <string.h>

#define MAXC 16

/* The skew matrix of m generator values, lower triangle row-major over (i, k), i > k, as model/posenc_hddrope.c fills it. */
static inline void skew(const double *g, int c, double *A) {
    int a = 0;
    memset(A, 0, sizeof(double) * (size_t)(c * c));
    for (int i = 1; i < c; i++)
        for (int k = 0; k < i; k++, a++) A[i * c + k] = g[a], A[k * c + i] = -g[a];
}

/* exp(A) by the plain Taylor series with `terms` terms, no scaling: the reference. */
static inline void taylor_exp(const double *A, double *E, int n, int terms) {
    double term[MAXC * MAXC], next[MAXC * MAXC];
    for (int i = 0; i < n * n; i++) E[i] = term[i] = (i % (n + 1) == 0);
    for (int k = 1; k < terms; k++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int r = 0; r < n; r++) s += term[i * n + r] * A[r * n + j];
                next[i * n + j] = s / k;
            }
        memcpy(term, next, sizeof(double) * (size_t)(n * n));
        for (int i = 0; i < n * n; i++) E[i] += term[i];
    }
}

/* X solving (I - A) X = (I + A) by Gaussian elimination with partial pivoting: the reference Cayley. */
static inline void cayley_solve(const double *A, double *X, int n) {
    double a[MAXC * MAXC], b[MAXC * MAXC];
    for (int i = 0; i < n * n; i++) {
        a[i] = (i % (n + 1) == 0) - A[i];
        b[i] = (i % (n + 1) == 0) + A[i];
    }
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[r * n + col]) > fabs(a[piv * n + col])) piv = r;
        for (int k = 0; k < n; k++) {
            double t = a[col * n + k];
            a[col * n + k] = a[piv * n + k], a[piv * n + k] = t;
            t = b[col * n + k];
            b[col * n + k] = b[piv * n + k], b[piv * n + k] = t;
        }
        for (int r = col + 1; r < n; r++) {
            double f = a[r * n + col] / a[col * n + col];
            for (int k = 0; k < n; k++) a[r * n + k] -= f * a[col * n + k], b[r * n + k] -= f * b[col * n + k];
        }
    }
    for (int k = 0; k < n; k++)
        for (int i = n - 1; i >= 0; i--) {
            double s = b[i * n + k];
            for (int r = i + 1; r < n; r++) s -= a[i * n + r] * X[r * n + k];
            X[i * n + k] = s / a[i * n + i];
        }
}

#endif
