/* hddrope_matrix.h: the small dense matrices of HDD-RoPE (hddrope_matrix.c): the exponential and
 * the Cayley map of a c x c skew matrix and their adjoints. Matrices are c x c (or n x n),
 * row-major, in double. "Adjoint" of a map F at A: GA = the gradient w.r.t. A of <GM, F(A)>; for
 * the exponential that is the Frechet derivative of exp at A^T applied to GM. */
#ifndef TINYROPE_HDDROPE_MATRIX_H
#define TINYROPE_HDDROPE_MATRIX_H

#include <stddef.h>

#define HDD_MAX_C 16 /* the largest chunk size */

/* What the scan calls for c = 2, 3, 4: the model's exp(A) (closed forms) and its adjoint, which
 * also returns E = exp(A) with the forward's bits when E is not NULL (only the skew part of GA,
 * all that the generators' gradient reads). The scan takes hddrope_expm_lanes below for other c;
 * given one, these fall back to the reference series (full GA). */
void hddrope_step_expm(const double *A, double *E, int c);
void hddrope_step_expm_adjoint(const double *A, const double *GM, double *GA, double *E, int c);

/* Cayley: M = (I - A)^-1 (I + A), W = (I - A)^-1 too when W_out is not NULL; its adjoint, with
 * M = the map as hddrope_cayley computes it. */
void hddrope_cayley(const double *A, double *M, double *W_out, int n);
void hddrope_cayley_adjoint(const double *A, const double *GM, double *GA, double *M, int c);
/* What the scan calls for Cayley: closed forms at c = 2, 3 and 4 (the adjoint: skew part only, and
 * M with the map's bits when not NULL), the two above otherwise. */
void hddrope_step_cayley(const double *A, double *M, int c);
void hddrope_step_cayley_adjoint(const double *A, const double *GM, double *GA, double *M, int c);

/* References, to double precision: exp by a Taylor series with scaling and squaring (n <= 2
 * HDD_MAX_C), its adjoint by a series with doublings, and by the block formula. */
void hddrope_expm(const double *A, double *E, int n);
void hddrope_expm_adjoint(const double *A, const double *GM, double *GA, int c);
void hddrope_expm_adjoint_block(const double *A, const double *GM, double *GA, int c);

/* The forms hddrope_step_* picks among, exported for their tests: closed forms (adjoints: skew
 * part only). */
void hddrope_expm2(const double *A, double *E);
void hddrope_expm_adjoint2(const double *A, const double *GM, double *GA);
void hddrope_expm3(const double *A, double *E);
void hddrope_expm_adjoint3(const double *A, const double *GM, double *GA);
void hddrope_expm4(const double *A, double *E);
void hddrope_expm_adjoint4(const double *A, const double *GM, double *GA);

/* The model's exponential for c >= 5 (hddrope_expm_lanes.c): n <= HDD_EXP_LANES matrices A
 * (n, c, c) at once, each in its own vector lane, its bits independent of the others (so any
 * grouping of matrices gives the same results); a Taylor polynomial at the model's tolerance with
 * scaling and squaring, and the exact reverse-mode adjoint of that computation, which also
 * returns E (the forward's bits) when E is not NULL. work: hddrope_expm_lanes_bytes(c) bytes,
 * aligned to 64. */
#define HDD_EXP_LANES 8
size_t hddrope_expm_lanes_bytes(int c);
void hddrope_expm_lanes(const double *A, double *E, int n, int c, void *work);
void hddrope_expm_adjoint_lanes(const double *A, const double *GM, double *GA, double *E, int n, int c, void *work);
/* The adjoint in two halves, for a scan that needs E before it knows GM: _keep is the forward
 * (E as hddrope_expm_lanes gives it, when not NULL) keeping in work what _reverse then needs;
 * _reverse takes the same A and n. hddrope_expm_adjoint_lanes is the two in a row. */
void hddrope_expm_lanes_keep(const double *A, double *E, int n, int c, void *work);
void hddrope_expm_lanes_reverse(const double *A, const double *GM, double *GA, int n, int c, void *work);

#endif
