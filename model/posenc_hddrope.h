/* posenc_hddrope.h: what the files of the HDD-RoPE kind share, and the hooks its tests use.
 *   model/posenc_hddrope.c   the kind: options, sizes, init, and the plain scalar scan
 *                            (forward and backward) for every chunk size c
 *   model/hddrope_matrix.c   the small-matrix maths: exponential, Cayley and their adjoints
 *   model/hddrope_expm_lanes.c  the exponential and its adjoint for c >= 5, 8 matrices at once
 *   model/hddrope_lanes.c    the fast twin of the scan (every c, either map, no
 *                            re-orthonormalisation): 16 chunks of the batch side by side in vector lanes
 * The model reaches the kind through its registry entry (posenc_hddrope in model/posenc.h). */
#ifndef TINYROPE_POSENC_HDDROPE_H
#define TINYROPE_POSENC_HDDROPE_H

#include <stddef.h>

#include "model/hddrope_matrix.h"

enum { MAP_EXPM = 0, MAP_CAYLEY = 1 };

/* The kind's configuration (pe->impl): the model's shape, the chunking (c channels per chunk,
 * n_c = hs/c chunks per head, m = c(c-1)/2 generators per chunk, G = NH n_c m per layer) and the
 * options; tri_i/tri_k: the (row, column) of generator a in the strictly lower triangle of A. */
typedef struct {
    int L, C, NH, hs;
    int c, nc, m, G;
    int map, dynamic, base_rope, reortho;
    int tri_i[HDD_MAX_C * (HDD_MAX_C - 1) / 2], tri_k[HDD_MAX_C * (HDD_MAX_C - 1) / 2];
} Hdd;

#define HDD_PREFETCH 4       /* how many positions ahead the scans prefetch their strided rows */
#define HDD_SCRATCH_ALIGN 64 /* alignment of a unit's scratch (the lane kernels' widest vector) */

/* Saved floats per (b, t, h): P of every chunk, c^2 each (the lane kernels keep the same total in
 * their own order: hdd_lanes_saved_at). */
static inline size_t hdd_acts_per_head(const Hdd *d) { return (size_t)d->nc * d->c * d->c; }

/* The lane kernels (hddrope_lanes.c): a parallel unit is a group of HDD_LANES consecutive chunks
 * G = sb NH n_c + h n_c + j over the `scans` scans sb (hdd_lanes_groups of them; scan sb serves
 * the `rows` batch rows from sb rows on); the arguments are forward_unit's and backward_unit's, except that M_static is the layer's (NH n_c, c, c) static
 * step matrices (or NULL) and `partial` the whole (scans, NH n_c, m or c^2) array of d g_base
 * shares. A layer's saved P are (T, groups, c^2, lanes); hdd_lanes_saved_at says where entry e of
 * (scan sb, t, J = h n_c + j) lies. The lanes' offsets are int32: hdd_lanes_fit(d, B, T, S) says whether
 * a batch's fit. scratch: hdd_lanes_scratch_bytes, aligned to HDD_SCRATCH_ALIGN. */
#define HDD_LANES 16
int hdd_lanes_groups(const Hdd *d, int scans);
int hdd_lanes_fit(const Hdd *d, int B, int T, long S);
size_t hdd_lanes_scratch_bytes(const Hdd *d);
void hdd_forward_unit_lanes(const Hdd *d, long u, int scans, int rows, int l, float *qkv, const float *params,
                            const float *M_static, float *layer_acts, float *layer_state, void *scratch, int T,
                            int pos0, long S);
void hdd_backward_unit_lanes(const Hdd *d, long u, int scans, int rows, int l, float *dqkv, const float *qkv,
                             const float *params, const float *layer_acts, const float *M_static, void *scratch,
                             double *partial, int T, long S);
size_t hdd_lanes_saved_at(const Hdd *d, int scans, int t, int sb, int J, int e);

/* Tests only. */
/* 1 = run the model through the reference kernels (series exponential and adjoint, c not a constant) */
void hddrope_use_reference_kernels(int on);
/* 0 = run the lane kernels' setups (no re-orthonormalisation) through the scalar path instead */
void hddrope_use_lane_kernels(int on);
/* P_t of (layer l, b, t, head h, chunk j) from the acts of a forward over (B, T) */
struct PosEnc;
void hddrope_saved_P(const struct PosEnc *pe, const float *acts, int l, int B, int T, int b, int t, int h, int j,
                     float *P);

#endif
