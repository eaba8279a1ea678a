/* posenc_hddrope.h: what the files of the HDD-RoPE kind share, and the hooks its tests use.
 *   model/posenc_hddrope.c   the kind: options, sizes, init, and the plain scalar scan
 *                            (forward and backward) for every chunk size c
 *   model/hddrope_matrix.c   the small-matrix maths: exponential, Cayley and their adjoints
 *   model/hddrope_expm_lanes.c  the exponential and its adjoint for c >= 5, 8 matrices at once
 *   model/hddrope_lanes.c    the fast twin of the scan for c = 4 (either map, no
 *                            re-orthonormalisation): 8 chunks of a head side by side in vector lanes
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

#define HDD_LANES 8          /* chunks side by side in the lane kernels (one AVX register of floats) */
#define HDD_PREFETCH 4       /* how many positions ahead the scans prefetch their strided rows */
#define HDD_SCRATCH_ALIGN 64 /* alignment of a unit's scratch (the lane kernels' widest vector) */

/* Saved floats per (b, t, h): P of every chunk, c^2 each; for c = 4 in the lane kernels' layout:
 * groups of HDD_LANES chunks, 16 entries x HDD_LANES lanes each, except that a last group of at
 * most 4 chunks holds 16 x 4. The scalar path's (chunk, 16) layout fits in both. */
static inline size_t hdd_acts_per_head(const Hdd *d) {
    if (d->c != 4) return (size_t)d->nc * d->c * d->c;
    const int rest = d->nc % HDD_LANES;
    return (size_t)(d->nc / HDD_LANES) * HDD_LANES * 16 + (rest == 0 ? 0 : rest <= 4 ? 4 * 16 : HDD_LANES * 16);
}

/* The lane kernels (hddrope_lanes.c): the forward and backward of one parallel unit, with the
 * arguments of forward_unit and backward_unit in posenc_hddrope.c; scratch: hdd_lanes_scratch_bytes,
 * aligned to HDD_SCRATCH_ALIGN. hdd_lanes_saved_at: where entry i of chunk j's P lies in a
 * head's saved floats. */
size_t hdd_lanes_scratch_bytes(const Hdd *d);
void hdd_forward_unit_lanes(const Hdd *d, long u, int rows, int l, float *qkv, const float *params,
                            const float *M_head, float *layer_acts, float *layer_state, void *scratch, int T,
                            int pos0, long S);
void hdd_backward_unit_lanes(const Hdd *d, long u, int rows, int l, float *dqkv, const float *qkv,
                             const float *params, const float *layer_acts, const float *M_head, void *scratch,
                             double *partial, int T, long S);
size_t hdd_lanes_saved_at(const Hdd *d, int j, int i);

/* Tests only. */
/* 1 = run the model through the reference kernels (series exponential and adjoint, c not a constant) */
void hddrope_use_reference_kernels(int on);
/* 0 = run c = 4 (either map, no re-orthonormalisation) through the scalar path, not the lanes */
void hddrope_use_lane_kernels(int on);
/* P_t of (layer l, b, t, head h, chunk j) from the acts of a forward over (B, T) */
struct PosEnc;
void hddrope_saved_P(const struct PosEnc *pe, const float *acts, int l, int B, int T, int b, int t, int h, int j,
                     float *P);
/* sin and cos of x[i] >= 0 (n of them, float) as the lane kernels compute them */
void hddrope_sincos(const float *x, float *s, float *c, int n);

#endif
