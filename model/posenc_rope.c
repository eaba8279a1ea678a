/* posenc_rope.c: rotary position embedding, the "rope" kind (RoFormer; docs/posenc.md §2).
 *
 * Maths. Each head vector of q and of k (hs channels) is cut into hs/2 interleaved pairs
 * (2i, 2i+1). At absolute position p = pos0 + t, pair i is turned by the angle p*theta_i,
 *     theta_i = base^(-2i/hs),  i = 0 .. hs/2-1  (base 10000 by default, option "base"),
 *     (x'_2i, x'_2i+1) = R(p theta_i) (x_2i, x_2i+1),   R(a) = [[cos a, -sin a], [sin a, cos a]].
 * Since R(a)^T R(b) = R(b - a), the score q'_n . k'_m = q_n^T R((m-n) theta) k_m depends on
 * n - m only, which is the point of RoPE. The same angles serve every head and every layer; v
 * is never touched.
 *
 * Backward (docs/posenc.md §2): the map is a rotation, so its transpose is its inverse: in place,
 *     (dx_2i, dx_2i+1) = R(-p theta_i) (dy_2i, dy_2i+1).
 * Nothing is saved for it (the angle is recomputable) and there are no parameters.
 *
 * Numerics (docs/posenc.md §2): the angles p*theta_i are computed in double and their cos/sin stored
 * as float in a table of 4*max_T rows (the longest evaluation the spec's protocol asks for, 4L),
 * row p = (cos, sin) of pair 0, pair 1, ... Positions past the table are computed on the fly with
 * the same double formula, so they give the same floats a bigger table would: any position works.
 *
 * Layout: qkv rows are (q C | k C | v C | E extra), stride S = 3C + num_extra(pe). The hooks have
 * no stride argument: they take it from num_extra, as the model allocates S = 3C + E. q and k are
 * adjacent, so the 2*NH head vectors in columns [0, 2C) are all rotated the same way.
 */
#include "model/posenc.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include "base/util.h"

typedef struct {
    int hs;
    double *theta;      /* (hs/2) radians per token, for rows past the table */
    long table_rows;
    float *table;       /* (table_rows, hs): cos, sin of p*theta_i, interleaved per pair */
} Rope;

static void rope_fill_row(const Rope *r, long p, float *row) {
    for (int i = 0; i < r->hs / 2; i++) {
        double angle = (double)p * r->theta[i];
        row[2 * i] = (float)cos(angle);
        row[2 * i + 1] = (float)sin(angle);
    }
}

static void rope_destroy(PosEnc *pe) {
    Rope *r = pe->impl;
    if (r) {
        free(r->theta);
        free(r->table);
        free(r);
    }
    pe->impl = NULL;
}

static int rope_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", "base", NULL};
    if (posenc_check_option_keys(options, "rope", known) != 0) return -1;
    double base;
    if (posenc_number_option(options, "base", 10000.0, &base) != 0) return -1;
    if (!(base > 1.0)) {
        tr_set_error("posenc.base: must be greater than 1 (got %g)", base);
        return -1;
    }
    const int hs = pe->dims.hs;
    if (hs % 2 != 0) {
        tr_set_error("posenc.kind: rope needs an even head size (hs = C/NH = %d)", hs);
        return -1;
    }
    Rope *r = xcalloc(1, sizeof *r);
    r->hs = hs;
    r->theta = xmalloc(sizeof(double) * (size_t)(hs / 2));
    for (int i = 0; i < hs / 2; i++) r->theta[i] = pow(base, -2.0 * i / hs);
    r->table_rows = 4L * pe->dims.max_T;
    r->table = xmalloc(sizeof(float) * (size_t)r->table_rows * (size_t)hs);
    for (long p = 0; p < r->table_rows; p++) rope_fill_row(r, p, r->table + p * hs);
    pe->impl = r;
    return 0;
}

/* Rotates the q and k columns of qkv (B,T,S) in place; sign as in posenc_turn_pairs. */
static void rope_apply(const PosEnc *pe, float *qkv, int B, int T, int pos0, float sign) {
    const Rope *r = pe->impl;
    const int NH = pe->dims.NH, hs = r->hs;
    const long S = posenc_qkv_stride(pe);
    const long N = (long)B * T;
    assert(pos0 >= 0 && T >= 0);
#pragma omp parallel if (N * NH * hs >= 16384)
    {
        float *scratch = NULL; /* this thread's row for positions past the table */
#pragma omp for schedule(static)
        for (long n = 0; n < N; n++) {
            long p = pos0 + n % T;
            const float *row;
            if (p < r->table_rows) {
                row = r->table + p * hs;
            } else {
                if (!scratch) scratch = xmalloc(sizeof(float) * (size_t)hs);
                rope_fill_row(r, p, scratch);
                row = scratch;
            }
            posenc_turn_pairs(qkv + n * S, row, 2 * NH, hs, sign);
        }
        free(scratch);
    }
}

static void rope_qk_forward(const PosEnc *pe, int l, float *qkv, const float *x, const float *params, float *acts,
                            float *state, int B, int T, int pos0) {
    rope_apply(pe, qkv, B, T, pos0, 1.0f);
}

static void rope_qk_backward(const PosEnc *pe, int l, float *dqkv, const float *qkv, const float *x,
                             const float *params, float *dparams, const float *acts, int B, int T, int pos0) {
    rope_apply(pe, dqkv, B, T, pos0, -1.0f);
}

const PosEncKind posenc_rope = {
    .name = "rope",
    .summary = "RoPE: rotate interleaved pairs of q and k by p*base^(-2i/hs) (option base, default 10000)",
    .configure = rope_configure,
    .destroy = rope_destroy,
    .init = NULL,
    .embed_forward = NULL,
    .embed_backward = NULL,
    .qk_forward = rope_qk_forward,
    .qk_backward = rope_qk_backward,
};
