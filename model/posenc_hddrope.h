/* posenc_hddrope.h: the small-matrix routines of the HDD-RoPE kind (posenc_hddrope.c), exported
 * so that tests/test_hddrope.c can check them against its own references. Matrices are c x c (or
 * n x n), row-major, in double. */
#ifndef TINYROPE_POSENC_HDDROPE_H
#define TINYROPE_POSENC_HDDROPE_H

void hddrope_expm(const double *A, double *E, int n);                 /* E = exp(A), series */
void hddrope_expm4(const double *A, double *E);                       /* c = 4 closed form */
void hddrope_cayley(const double *A, double *M, double *W_out, int n); /* M = (I-A)^-1 (I+A) */
/* GA = the adjoint of exp at A applied to GM (see posenc_hddrope.c for the convention) */
void hddrope_expm_adjoint(const double *A, const double *GM, double *GA, int c);
void hddrope_expm_adjoint_block(const double *A, const double *GM, double *GA, int c); /* reference */
void hddrope_expm_adjoint4(const double *A, const double *GM, double *GA); /* c = 4, skew part only */
void hddrope_expm2(const double *A, double *E);                             /* c = 2 closed form */
void hddrope_expm_adjoint2(const double *A, const double *GM, double *GA); /* c = 2, skew part only */
/* the model's general-c kernels: Paterson-Stockmeyer Taylor at its tolerance, and the exact
 * reverse-mode adjoint of that computation */
void hddrope_expm_fast(const double *A, double *E, int c);
void hddrope_expm_adjoint_fast(const double *A, const double *GM, double *GA, int c);
/* sin and cos of x[i] >= 0 (n of them, float) as the c = 4 lane kernels compute them */
void hddrope_sincos(const float *x, float *s, float *c, int n);
/* tests only: 1 = run the model through the reference kernels (series, c not a constant) */
void hddrope_use_reference_kernels(int on);
/* tests only: P_t of (layer l, b, t, head h, chunk j) from the acts of a forward over (B, T) */
struct PosEnc;
void hddrope_saved_P(const struct PosEnc *pe, const float *acts, int l, int B, int T, int b, int t, int h, int j,
                     float *P);
/* tests only: 0 = run c = 4 (expm, no re-orthonormalisation) through the scalar path, not the lanes */
void hddrope_use_lane_kernels(int on);

#endif
