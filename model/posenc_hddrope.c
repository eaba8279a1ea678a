/* posenc_hddrope.c: HDD-RoPE (high-dimensional, dynamic RoPE), the "hddrope" kind
 * (docs/hdd-rope.md: §1 the method, §3 the step matrix, §4 the backward, §6 the cost).
 * This file is the kind: its options, sizes and init, and the plain scalar scan, forward and
 * backward, for every chunk size. The small-matrix maths it calls is model/hddrope_matrix.c; every
 * setup without re-orthonormalisation runs the scan's fast twin in model/hddrope_lanes.c (the same
 * steps in float with 16 chunks in vector lanes) instead.
 *
 * Maths, per layer l, head h, chunk j (c consecutive channels of the head, c | hs, n_c = hs/c
 * chunks, m = c(c-1)/2 generator values "axes" per chunk, G = NH*n_c*m per token):
 *     g_t = g_base[l] + (W_g x_t)                (W_g x_t: the E = G extra qkv columns; "dynamic")
 *     A_t = L - L^T, L strictly lower triangular, filled row-major over (i, k), i > k, from g_t
 *     M_t = exp(A_t)  ("map": "expm")   or   (I - A_t)^-1 (I + A_t)  ("map": "cayley")
 *     P_t = P_{t-1} M_t,  P_{-1} = I     (inclusive right-accumulated scan: P_0 = M_0)
 *     q~_t = P_t q_t,  k~_t = P_t k_t    (column vectors, per chunk)
 * Right accumulation with column application is what makes scores relative: for s <= t,
 * q~_t . k~_s = (M_{s+1}..M_t q_t) . k_s depends on the steps strictly after s only (docs/hdd-rope.md §2).
 * With c = 2, static generators g = theta_i and expm, P_t = R((t+1) theta_i): RoPE (docs/hdd-rope.md §2).
 *
 * Backward (docs/hdd-rope.md §4), per (b, h, j), in double from the saved float P_t (and M_t
 * rebuilt from g_t):
 *     dq_t = P_t^T dq~_t,  dk_t = P_t^T dk~_t          (written over dqkv in place)
 *     G_t = dq~_t q_t^T + dk~_t k_t^T,  q_t = P_t^T q~_t (recovered from the rotated qkv)
 *     B_{T-1} = G_{T-1},  B_t = G_t + B_{t+1} M_{t+1}^T,  dL/dM_t = P_{t-1}^T B_t
 *     dL/dA_t = the adjoint of the map at A_t applied to dL/dM_t (model/hddrope_matrix.c)
 *     dg(i,k) = dA[i][k] - dA[k][i]; it goes to d g_base and (dynamic) onto the extra columns.
 * The extra columns pass through qk_forward unchanged and are read by it, so their gradient is
 * what dqkv already held plus dg (+=; attention_backward leaves them at 0).
 *
 * Numerics (docs/hdd-rope.md §7). The step matrix is computed in double and stored as float. The
 * scan multiplies the float P by the float M in double and rounds P to float at every step (the
 * lane kernels: in float throughout); either way P lives in float, so a cached generation step
 * (P read back from the float state) is bit-identical to the full forward. "reorthonormalize":
 * k > 0 applies one Newton-Schulz step P <- P (3I - P^T P)/2 after every position p with
 * (p + 1) % k == 0. The backward treats it as the identity: on an orthogonal P it is the identity
 * on the manifold the scan moves on, so this is exact up to the drift it removes.
 *
 * Init: the W_g rows are 0 (so the model starts as static RoPE-like rotations); g_base per
 * "base_init": "rope" puts theta_i = 10000^(-2i/hs) of global pair i = (2i, 2i+1) on the plane
 * (2i', 2i'+1) of its chunk (row 2i'+1, column 2i' of L; tan(theta/2) under Cayley), 0 on the
 * coupling planes; for odd c a pair that straddles two chunks gets no plane (its frequency is
 * dropped). "zero": g_base = 0 (NoPE at init with dynamic = false).
 *
 * Layouts. Generator index (h, j, a) -> (h*n_c + j)*m + a, both for g_base[l] (L, G) and for the
 * extra columns 3C + index. Activations, layer l: (scans, T, NH) blocks of hdd_acts_per_head
 * floats, P_t of each chunk (c*c floats per chunk); scans = B, or with static generators, where
 * P_t is the same for every b, the few scans of scan_rows. The lane kernels keep the same floats
 * per layer in their own order, (T, group of 16 chunks, entry, lane).
 * M is not saved: the backward rebuilds it with the forward's bits (inside the adjoint, or, for
 * c >= 5, in the adjoint's forward half before the block's positions).
 * State, layer l: (B, NH, n_c) blocks of c*c floats holding P of the last position; all zero
 * (the model's reset) means P = I.
 * Parallel units: one (b, h) with all its chunks, forward and backward (the lane kernels: one
 * group of 16 chunks); the backward's d g_base shares are summed over b in a fixed order
 * afterwards, so no thread count changes the bits.
 * Static generators: one unit per (scan, h), whose scan serves its B / scans batch rows (the
 * forward applies P_t to each row; the backward sums G_t over the rows before its one scan back).
 * The scan runs in copies with c a constant for c = 2, 3, 4, 8 (unrolled, vectorised; forced inline
 * and called with a literal, the same operations in the same order, so every copy gives the same
 * bits). For c >= 5 with expm, the step matrices of 8 consecutive positions of a chunk are
 * computed together, one per vector lane (model/hddrope_expm_lanes.c), so each scan walks blocks
 * of 8 positions and, inside a block, one chunk at a time; a matrix's bits do not depend on its
 * block, so cached generation (one position) still matches the full forward.
 */
#include "model/posenc_hddrope.h"

#include "model/posenc.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define HDD_INLINE static inline __attribute__((always_inline))

/* Tests only: 1 sends the model through the reference kernels (series exponential and adjoint,
 * c a run-time value) instead of the closed forms, the fast kernels and the copies with c a
 * constant, so that the two can be compared end to end. */
static int hdd_reference_kernels;
void hddrope_use_reference_kernels(int on) { hdd_reference_kernels = on; }
/* Tests only: 0 sends the c = 4 setups (either map, no re-orthonormalisation) through the scalar
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

static size_t hdd_num_params(const PosEnc *pe) {
    const Hdd *d = pe->impl;
    return (size_t)d->L * (size_t)d->G;
}
static int hdd_num_extra(const PosEnc *pe) {
    const Hdd *d = pe->impl;
    return d->dynamic ? d->G : 0;
}
/* The scans of a batch, each serving B / scans consecutive batch rows: dynamic generators, one per
 * row. Static generators make P_t the same for every b, so the batch shares its scans (and their
 * saved P): one, or where a row has fewer chunks than a group of lanes holds, as many identical
 * scans as fill the lanes (the largest divisor of B up to HDD_LANES / (NH n_c)), so that the
 * rows' rotations run on full vectors. */
static int scan_rows(const Hdd *d, int B) {
    if (d->dynamic) return B;
    int scans = 1;
    for (int k = 2; k <= HDD_LANES / (d->NH * d->nc) && k <= B; k++)
        if (B % k == 0) scans = k;
    return scans;
}
static size_t hdd_num_acts(const PosEnc *pe, int B, int T) {
    const Hdd *d = pe->impl;
    return (size_t)d->L * (size_t)scan_rows(d, B) * (size_t)T * (size_t)d->NH * hdd_acts_per_head(d);
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

/* The generator values of (layer l, row n, head h, chunk j) into g (double). */
static void generators(const Hdd *d, int l, const float *params, const float *row, int h, int j, double *g) {
    size_t index = ((size_t)h * d->nc + j) * d->m;
    const float *base = params + (size_t)l * d->G + index;
    for (int a = 0; a < d->m; a++) g[a] = base[a] + (d->dynamic ? (double)row[3 * d->C + index + a] : 0.0);
}

/* A = L - L^T from the m generator values g (double, c x c). */
HDD_INLINE void fill_skew(const Hdd *d, const double *g, double *A, int c) {
    memset(A, 0, sizeof(double) * (size_t)(c * c));
    for (int a = 0; a < d->m; a++) {
        A[d->tri_i[a] * c + d->tri_k[a]] = g[a];
        A[d->tri_k[a] * c + d->tri_i[a]] = -g[a];
    }
}

/* Whether the exponential runs in blocks of HDD_EXP_LANES matrices (hddrope_expm_lanes: the chunk
 * sizes without a closed form). */
static int use_exp_lanes(const Hdd *d) { return d->map == MAP_EXPM && d->c >= 5 && !hdd_reference_kernels; }

/* The float step matrix of generator values g (m of them) and, for the backward, A in double.
 * work: hddrope_expm_lanes_bytes(c) where use_exp_lanes, else unused. */
HDD_INLINE void step_matrix(const Hdd *d, const double *g, double *A, float *M, void *work, int c) {
    double Md[HDD_MAX_C * HDD_MAX_C];
    fill_skew(d, g, A, c);
    if (d->map == MAP_CAYLEY && hdd_reference_kernels) hddrope_cayley(A, Md, NULL, c);
    else if (d->map == MAP_CAYLEY) hddrope_step_cayley(A, Md, c);
    else if (hdd_reference_kernels) hddrope_expm(A, Md, c);
    else if (use_exp_lanes(d)) hddrope_expm_lanes(A, Md, 1, c, work);
    else hddrope_step_expm(A, Md, c);
    for (int i = 0; i < c * c; i++) M[i] = (float)Md[i];
}

/* Where use_exp_lanes, the scans take the step matrices of up to HDD_EXP_LANES consecutive
 * positions of a chunk at once: positions t0 .. t0 + n - 1, t0 a multiple of HDD_EXP_LANES, lane
 * v = position t0 + v. Buffers of one unit, carved from its scratch before the scan's own part:
 * the exponential's work, then (lanes, c, c) each of A, dM (the backward's gradients for the
 * block's adjoints), the adjoints, in double, and of M in float. */
typedef struct {
    void *work;
    double *A, *dM, *out;
    float *M;
} ExpBlock;

static size_t exp_block_bytes(const Hdd *d) {
    if (!use_exp_lanes(d)) return 0;
    const size_t block = (size_t)HDD_EXP_LANES * d->c * d->c;
    const size_t bytes = hddrope_expm_lanes_bytes(d->c) + block * (3 * sizeof(double) + sizeof(float));
    return (bytes + HDD_SCRATCH_ALIGN - 1) / HDD_SCRATCH_ALIGN * HDD_SCRATCH_ALIGN;
}

/* The ExpBlock at `at` (aligned to HDD_SCRATCH_ALIGN, exp_block_bytes long). */
static ExpBlock exp_block_at(const Hdd *d, void *at) {
    const size_t block = (size_t)HDD_EXP_LANES * d->c * d->c;
    ExpBlock e;
    e.work = at;
    e.A = (double *)((char *)at + hddrope_expm_lanes_bytes(d->c));
    e.dM = e.A + block;
    e.out = e.dM + block;
    e.M = (float *)(e.out + block);
    return e;
}

/* Chunk j's step matrices at positions t0 .. t0 + n - 1 of unit (b, h) (b_rows: row b's first
 * position): A, and M rounded to float; keep: the backward's (the adjoint's forward half, which
 * keeps what hddrope_expm_lanes_reverse needs). */
HDD_INLINE void exp_block_forward(const Hdd *d, const ExpBlock *e, int l, const float *params, const float *b_rows,
                                  long S, int h, int j, int t0, int n, int keep, int c) {
    const int cc = c * c;
    double g[HDD_MAX_C * (HDD_MAX_C - 1) / 2];
    for (int v = 0; v < n; v++) {
        generators(d, l, params, b_rows + (size_t)(t0 + v) * S, h, j, g);
        fill_skew(d, g, e->A + (size_t)v * cc, c);
    }
    if (keep) hddrope_expm_lanes_keep(e->A, e->out, n, c, e->work);
    else hddrope_expm_lanes(e->A, e->out, n, c, e->work);
    for (int i = 0; i < n * cc; i++) e->M[i] = (float)e->out[i];
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

/* Static generators: a scan serves several batch rows (rows = B / scans), so each step of the
 * backward goes back through 2 rows vectors (q and k of each row). unapply_rows does it HDD_ROW_TILE vectors at a time,
 * side by side, so the products run across vectors; each sum has the terms and order of
 * backward_unit's one-vector loop, so the bits are those of one vector at a time. Vector w of a
 * tile is q (w even) or k (w odd) of batch row r0 + w/2: at base + (r0 + w/2) stride + (w % 2) C. */
#define HDD_ROW_TILE 16

HDD_INLINE int tile_vectors(int rows, int r0) {
    return 2 * (rows - r0) < HDD_ROW_TILE ? 2 * (rows - r0) : HDD_ROW_TILE;
}

/* Going back through q~ = P q for the rows' q and k: grad <- P^T grad (dq from dq~), and
 * B += grad~ q^T, q = P^T q~ recovered from the rotated vector, over the vectors in order. */
HDD_INLINE void unapply_rows(const float *P, const float *rot_base, float *grad_base, int rows, size_t stride, int C,
                             double *B, int c) {
    for (int r0 = 0; r0 < rows; r0 += HDD_ROW_TILE / 2) {
        const int nv = tile_vectors(rows, r0);
        double rot[HDD_MAX_C][HDD_ROW_TILE], grad[HDD_MAX_C][HDD_ROW_TILE];
        double un[HDD_MAX_C][HDD_ROW_TILE], dun[HDD_MAX_C][HDD_ROW_TILE];
        for (int w = 0; w < nv; w++) {
            const size_t at = (size_t)(r0 + w / 2) * stride + (size_t)(w % 2) * C;
            for (int k = 0; k < c; k++) rot[k][w] = rot_base[at + k], grad[k][w] = grad_base[at + k];
        }
        for (int i = 0; i < c; i++)
            for (int w = 0; w < nv; w++) un[i][w] = 0, dun[i][w] = 0;
        for (int r = 0; r < c; r++)
            for (int i = 0; i < c; i++) {
                const double p = P[r * c + i];
                for (int w = 0; w < nv; w++) un[i][w] += p * rot[r][w], dun[i][w] += p * grad[r][w];
            }
        for (int w = 0; w < nv; w++)
            for (int i = 0; i < c; i++)
                for (int k = 0; k < c; k++) B[i * c + k] += grad[i][w] * un[k][w];
        for (int w = 0; w < nv; w++) {
            const size_t at = (size_t)(r0 + w / 2) * stride + (size_t)(w % 2) * C;
            for (int i = 0; i < c; i++) grad_base[at + i] = (float)dun[i][w];
        }
    }
}

/* Static generators: layer l's step matrices, one per (h, j), (NH, n_c, c, c) floats (xmalloc'd,
 * the caller frees), and their A into A_out (same shape, double) when not NULL; NULL when the
 * generators are dynamic. Forward and backward both read these, so they agree bit for bit. */
static float *static_step_matrices(const Hdd *d, int l, const float *params, double *A_out) {
    if (d->dynamic) return NULL;
    const int cc = d->c * d->c, heads_chunks = d->NH * d->nc;
    float *M = xmalloc(sizeof(float) * (size_t)heads_chunks * cc);
    void *work = use_exp_lanes(d) ? xaligned_alloc(HDD_SCRATCH_ALIGN, hddrope_expm_lanes_bytes(d->c)) : NULL;
    for (int hj = 0; hj < heads_chunks; hj++) {
        double g[HDD_MAX_C * (HDD_MAX_C - 1) / 2], A[HDD_MAX_C * HDD_MAX_C];
        generators(d, l, params, NULL, hj / d->nc, hj % d->nc, g);
        step_matrix(d, g, A, M + (size_t)hj * cc, work, d->c);
        if (A_out) memcpy(A_out + (size_t)hj * cc, A, sizeof(double) * (size_t)cc);
    }
    free(work);
    return M;
}

/* The scans of one (b, h) over the T positions, all n_c chunks of the head together (so that each
 * row's q, k and generator columns of the head are read once, in order), applied to the rows of
 * b .. b + rows - 1 (static generators: the whole batch shares the scan; else rows = 1). M_head:
 * static generators, the head's step matrices (n_c, c, c), the same at every position (see
 * static_step_matrices); else NULL. scratch: exp_block_bytes, then n_c c^2 floats (the running
 * products). */
HDD_INLINE void forward_unit(const Hdd *d, long u, int rows, int l, float *qkv, const float *params,
                             const float *M_head, float *layer_acts, float *layer_state, void *scratch, int T,
                             int pos0, long S, int c) {
    const int cc = c * c, NH = d->NH, nc = d->nc, C = d->C;
    const int sb = (int)(u / NH), h = (int)(u % NH), b = sb * rows; /* the scan and its first batch row */
    const size_t per_head = hdd_acts_per_head(d);
    const int blocks = d->dynamic && use_exp_lanes(d);
    const ExpBlock eb = blocks ? exp_block_at(d, scratch) : (ExpBlock){0};
    float *P_all = (float *)((char *)scratch + exp_block_bytes(d)); /* (n_c, c, c) */
    float M[HDD_MAX_C * HDD_MAX_C];
    double A[HDD_MAX_C * HDD_MAX_C], g[HDD_MAX_C * (HDD_MAX_C - 1) / 2];
    float *st = layer_state ? layer_state + ((size_t)b * NH + h) * nc * cc : NULL;
    for (int j = 0; j < nc; j++) {
        float *P = P_all + (size_t)j * cc;
        const float *st_j = st ? st + (size_t)j * cc : NULL;
        int from_state = 0;
        if (st_j && pos0 > 0)
            for (int i = 0; i < cc; i++) from_state |= st_j[i] != 0.0f;
        for (int i = 0; i < cc; i++) P[i] = from_state ? st_j[i] : (float)(i % (c + 1) == 0);
    }
    /* Blocks of positions (one position each without use_exp_lanes), and in a block each chunk
     * through all its positions: a chunk's scan is its own, so the order of chunks cannot change a bit. */
    const int block = blocks ? HDD_EXP_LANES : 1;
    for (int t0 = 0; t0 < T; t0 += block) {
        const int n = T - t0 < block ? T - t0 : block;
        for (int j = 0; j < nc; j++) {
            if (blocks) exp_block_forward(d, &eb, l, params, qkv + (size_t)b * T * S, S, h, j, t0, n, 0, c);
            for (int t = t0; t < t0 + n; t++) {
                float *row = qkv + ((size_t)b * T + t) * S;
                float *saved = layer_acts ? layer_acts + (((size_t)sb * T + t) * NH + h) * per_head : NULL;
                const long p = (long)pos0 + t;
                const int reortho_here = d->reortho > 0 && (p + 1) % d->reortho == 0;
                float *P = P_all + (size_t)j * cc;
                const float *Mj = M_head ? M_head + (size_t)j * cc : NULL;
                if (blocks) {
                    Mj = eb.M + (size_t)(t - t0) * cc;
                } else if (d->dynamic) {
                    generators(d, l, params, row, h, j, g);
                    step_matrix(d, g, A, M, NULL, c);
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
    }
    if (st)
        for (int r = 0; r < rows; r++) memcpy(st + (size_t)r * NH * nc * cc, P_all, sizeof(float) * (size_t)nc * cc);
}

/* Whether the lane kernels (model/hddrope_lanes.c) run this kind's forward and backward. */
static int use_lanes(const Hdd *d) { return d->reortho == 0 && !hdd_reference_kernels && hdd_lane_kernels; }

static void hdd_qk_forward(const PosEnc *pe, int l, float *qkv, const float *x, const float *params, float *acts,
                           float *state, int B, int T, int pos0) {
    const Hdd *d = pe->impl;
    const int c = d->c, cc = c * c, NH = d->NH, nc = d->nc;
    const long S = posenc_qkv_stride(pe);
    const int scans = scan_rows(d, B), rows = B / scans; /* rows: the batch rows each scan serves */
    const int lanes = use_lanes(d) && hdd_lanes_fit(d, B, T, S);
    const long units = lanes ? hdd_lanes_groups(d, scans) : (long)scans * NH;
    float *layer_acts = acts ? acts + (size_t)l * scans * T * NH * hdd_acts_per_head(d) : NULL;
    float *layer_state = state ? state + (size_t)l * B * NH * nc * cc : NULL;
    float *M_static = static_step_matrices(d, l, params, NULL);
    /* (the lane kernels' vectors need their alignment) */
    const size_t scratch_bytes =
        lanes ? hdd_lanes_scratch_bytes(d) : exp_block_bytes(d) + sizeof(float) * (size_t)nc * cc;
#pragma omp parallel if (units * rows * nc * T >= 256)
    {
        void *scratch = xaligned_alloc(HDD_SCRATCH_ALIGN, scratch_bytes);
#pragma omp for schedule(static)
        for (long u = 0; u < units; u++) {
            /* copies with c a constant for the chunk sizes in use (unrolled, vectorised) */
            const int cs = hdd_reference_kernels ? 0 : c;
            const float *M_head = M_static ? M_static + (size_t)(u % NH) * nc * cc : NULL;
            float *la = layer_acts, *ls = layer_state;
            if (lanes) hdd_forward_unit_lanes(d, u, scans, rows, l, qkv, params, M_static, la, ls, scratch, T, pos0, S);
            else if (cs == 2) forward_unit(d, u, rows, l, qkv, params, M_head, la, ls, scratch, T, pos0, S, 2);
            else if (cs == 3) forward_unit(d, u, rows, l, qkv, params, M_head, la, ls, scratch, T, pos0, S, 3);
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
HDD_INLINE void step_matrix_backward(const Hdd *d, const double *A, const double *dM, double *dA, double *Md,
                                     void *work, int c) {
    if (d->map == MAP_CAYLEY && hdd_reference_kernels) {
        hddrope_cayley_adjoint(A, dM, dA, Md, c);
    } else if (d->map == MAP_CAYLEY) {
        hddrope_step_cayley_adjoint(A, dM, dA, Md, c); /* c <= 4: the skew part, all generator_grad reads */
    } else if (hdd_reference_kernels) {
        hddrope_expm(A, Md, c);
        hddrope_expm_adjoint(A, dM, dA, c);
    } else if (use_exp_lanes(d)) {
        hddrope_expm_adjoint_lanes(A, dM, dA, Md, 1, c, work);
    } else {
        hddrope_step_expm_adjoint(A, dM, dA, Md, c); /* c = 2, 4: the skew part, all generator_grad reads */
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
 * by the caller. scratch: exp_block_bytes, then n_c c^2 doubles.
 * In blocks (use_exp_lanes): at a block's last position the step matrices of all its positions,
 * and at its first the adjoints of all of them (dM_t kept meanwhile), in the same order of t for
 * each sum as without blocks. */
HDD_INLINE void backward_unit(const Hdd *d, long u, int rows, int l, float *dqkv, const float *qkv,
                              const float *params, const float *layer_acts, const float *M_static, void *scratch,
                              double *partial, int T, long S, int c) {
    const int cc = c * c, NH = d->NH, nc = d->nc, C = d->C, m = d->m;
    const int sb = (int)(u / NH), h = (int)(u % NH), b = sb * rows; /* the scan and its first batch row */
    const size_t per_head = hdd_acts_per_head(d), head_rows = (size_t)NH * per_head; /* acts floats per position */
    const int blocks = d->dynamic && use_exp_lanes(d);
    const ExpBlock eb = blocks ? exp_block_at(d, scratch) : (ExpBlock){0};
    /* per chunk: B_{t+1} M_{t+1}^T, 0 past the end */
    double *Bnext_all = (double *)((char *)scratch + exp_block_bytes(d));
    memset(Bnext_all, 0, sizeof(double) * (size_t)nc * cc);
    memset(partial, 0, sizeof(double) * (size_t)nc * (d->dynamic ? m : cc));
    /* The forward's blocks, last first, and in a block each chunk through its positions, last
     * first: every sum below runs over t downwards as with one position per block. */
    const int block = blocks ? HDD_EXP_LANES : 1;
    for (int t0 = (T - 1) / block * block; t0 >= 0; t0 -= block) {
        const int n = T - t0 < block ? T - t0 : block;
        for (int j = 0; j < nc; j++) {
            if (blocks) exp_block_forward(d, &eb, l, params, qkv + (size_t)b * T * S, S, h, j, t0, n, 1, c);
            for (int t = t0 + n - 1; t >= t0; t--) {
                const float *saved = layer_acts + ((size_t)sb * T + t) * head_rows + (size_t)h * per_head;
                const float *row = qkv + ((size_t)b * T + t) * S;
                float *drow = dqkv + ((size_t)b * T + t) * S;
                const float *P = saved + (size_t)j * cc;
                const size_t q_off = (size_t)h * d->hs + (size_t)j * c, index = ((size_t)h * nc + j) * m;
                if (t >= HDD_PREFETCH) {
                    /* the rows are far apart (a stride the hardware prefetcher does not follow) */
                    const size_t ahead = (size_t)HDD_PREFETCH * S;
                    __builtin_prefetch(P - HDD_PREFETCH * head_rows);
                    __builtin_prefetch(P - HDD_PREFETCH * head_rows + cc - 1);
                    for (int r = 0; r < rows; r++) {
                        /* signed: HDD_PREFETCH positions back may lie before row + q_off */
                        const ptrdiff_t at = (ptrdiff_t)((size_t)r * T * S + q_off) - (ptrdiff_t)ahead;
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
                if (rows > 1) unapply_rows(P, row + q_off, drow + q_off, rows, (size_t)T * S, C, Bt, c);
                for (int which = 0; rows == 1 && which < 2; which++) {
                    const size_t off = (size_t)(which % 2) * C + q_off;
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
                } else if (blocks) {
                    /* the adjoint waits for the block's first position */
                    memcpy(eb.dM + (size_t)(t - t0) * cc, dM, sizeof(double) * (size_t)cc);
                    M = eb.M + (size_t)(t - t0) * cc;
                } else {
                    /* M_t = map(A_t), A_t from g_t: through the map to the generators, and M_t rebuilt */
                    double g[HDD_MAX_C * (HDD_MAX_C - 1) / 2], A[HDD_MAX_C * HDD_MAX_C], dA[HDD_MAX_C * HDD_MAX_C],
                        Md[HDD_MAX_C * HDD_MAX_C];
                    generators(d, l, params, row, h, j, g);
                    fill_skew(d, g, A, c);
                    step_matrix_backward(d, A, dM, dA, Md, NULL, c);
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
            if (blocks) { /* the block's adjoints, then its dg over t downwards */
                const size_t index = ((size_t)h * nc + j) * m;
                hddrope_expm_lanes_reverse(eb.A, eb.dM, eb.out, n, c, eb.work);
                for (int t = t0 + n - 1; t >= t0; t--) {
                    float *dgen = dqkv + ((size_t)b * T + t) * S + 3 * C + index;
                    for (int a = 0; a < m; a++) {
                        double dg = generator_grad(d, eb.out + (size_t)(t - t0) * cc, a, c);
                        partial[(size_t)j * m + a] += dg;
                        dgen[a] += (float)dg;
                    }
                }
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
    const float *layer_acts = acts + (size_t)l * scans * T * NH * hdd_acts_per_head(d);
    const int lanes = use_lanes(d) && hdd_lanes_fit(d, B, T, S);
    const long units = lanes ? hdd_lanes_groups(d, scans) : (long)scans * NH;
    /* d g_base shares, (scans, NH, n_c, m or c^2): a (b, h) unit's slot, or (lanes) a group's chunks */
    const size_t per_unit = (size_t)nc * (d->dynamic ? m : cc); /* doubles per (b, h) */
    double *partial = xmalloc(sizeof(double) * per_unit * (size_t)scans * NH);
    /* static generators: the one step matrix per (h, j) (the forward's bits), and its A */
    double *A_static = d->dynamic ? NULL : xmalloc(sizeof(double) * (size_t)heads_chunks * cc);
    float *M_static = static_step_matrices(d, l, params, A_static);
    const size_t scratch_bytes =
        lanes ? hdd_lanes_scratch_bytes(d) : exp_block_bytes(d) + sizeof(double) * (size_t)nc * cc;
#pragma omp parallel if (units * rows * nc * T >= 256)
    {
        void *scratch = xaligned_alloc(HDD_SCRATCH_ALIGN, scratch_bytes);
#pragma omp for schedule(static)
        for (long u = 0; u < units; u++) {
            const int cs = hdd_reference_kernels ? 0 : c;
            const float *M_head = M_static ? M_static + (size_t)(u % NH) * nc * cc : NULL;
            double *mine = partial + (size_t)u * per_unit;
            if (lanes) hdd_backward_unit_lanes(d, u, scans, rows, l, dqkv, qkv, params, layer_acts, M_static, scratch, partial, T, S);
            else if (cs == 2) backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, 2);
            else if (cs == 3) backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, 3);
            else if (cs == 4) backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, 4);
            else if (cs == 8) backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, 8);
            else backward_unit(d, u, rows, l, dqkv, qkv, params, layer_acts, M_head, scratch, mine, T, S, c);
        }
        free(scratch);
    }
    /* d g_base: the units' shares summed over their b in order (the same bits for any thread count) */
    if (dparams) {
        void *work = !d->dynamic && use_exp_lanes(d) ? xaligned_alloc(HDD_SCRATCH_ALIGN, hddrope_expm_lanes_bytes(c))
                                                     : NULL;
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
                step_matrix_backward(d, A_static + (size_t)hj * cc, dM, dA, Md, work, c);
                for (int a = 0; a < m; a++) dbase[a] += (float)generator_grad(d, dA, a, c);
            }
        }
        free(work);
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
    b /= B / scans; /* the scan that serves row b */
    const float *layer = acts + (size_t)l * scans * T * d->NH * hdd_acts_per_head(d);
    const float *head = layer + (((size_t)b * T + t) * d->NH + h) * hdd_acts_per_head(d);
    for (int i = 0; i < cc; i++)
        P[i] = use_lanes(d) ? layer[hdd_lanes_saved_at(d, scans, t, b, h * d->nc + j, i)] : head[(size_t)j * cc + i];
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