/* posenc_xpos.c: xPos (Sun et al., "A Length-Extrapolatable Transformer"), the "xpos" kind:
 * RoPE plus a per-pair exponential decay. Two variants:
 *   "reference" (default): torchscale's XPOS (docs/posenc.md §3.1-§3.2);
 *   "author": the class the HDD-RoPE author trains as his xPos baseline (docs/posenc.md §3.3).
 *
 * Common form. Pairs (2i, 2i+1) of every q and k head are interleaved as in RoPE. At absolute
 * position p, pair i of q is multiplied by the scaled rotation s_i(p) R(angle_i(p)) and pair i of
 * k by s_i(p)^-1 R(angle_i(p)), with s_i(p) = zeta_i^e(p). A query at n and a key at m then score
 *     q~_n . k~_m = sum_i zeta_i^(e(n) - e(m)) * [pair-i RoPE term for angle_i(n) - angle_i(m)],
 * so as long as e and the angle are affine in p, the score depends on n - m only, and the scales
 * give pairs with zeta_i < 1 a decay with distance.
 *
 * "reference" (torchscale):
 *     angle_i(p) = p * theta_i,  theta_i = 10000^(-2i/hs),  i = 0 .. hs/2-1  (integer positions)
 *     e(p) = (p - c) / scale_base  (option "scale_base", default 512)
 *     zeta_i = (2i + 0.4 hs) / (1.4 hs)   (in [2/7, 1): the fast pairs decay most)
 *   The centre c cancels in the score; it only keeps each float factor in range (docs/posenc.md §3.2: pair 0
 *   overflows once |p - c|/scale_base * ln 3.5 > ~88). torchscale recomputes c = ceil(N/2) from
 *   the current length on every call; we fix ONE centre per model, c = ceil(max_T/2). The model
 *   caches keys after this map, so a key scaled with one centre meets queries scaled later: with a
 *   centre that moved between calls (N grows during generation), the score would pick up a stray
 *   factor zeta_i^((c_query - c_key)/scale_base) (the lucidrains cached-keys bug, docs/posenc.md §3.2). With a
 *   fixed c, a forward at (pos0 = k, T = 1) gives bit-for-bit row k of the full forward.
 *   The factors stay within [e^-80, e^80] for |p - c| <= 80 * scale_base / ln 3.5 (about 32.7k
 *   positions at scale_base 512): that bounds the usable positions (max_pos below; asserted).
 *
 * "author" (docs/posenc.md §3.3, the author's class `xpos`, tables for max_sequence_length 2048):
 *     pairs j = 0 .. d/2-1 use the index i = j + 1 (the frequencies start at i = 1), d = hs:
 *     theta_i = 10000^(-2i/d),  zeta_i = (2i/(d/2) + alpha) / (1 + alpha),  alpha = 0.4 d,
 *     u_p = (p - 1024) / 512  multiplies BOTH the angle and the scale exponent:
 *     angle_i(p) = theta_i u_p,  e(p) = u_p.
 *   So the effective rate is theta_i/512 rad per token (the fastest pair turns only
 *   10000^(-2/d) ~ 0.681 rad over 512 tokens at d = 48: almost no rotary signal), and zeta spans
 *   [0.9546, 1.0495] at d = 48, half of the pairs growing with distance. Only positions
 *   0 .. 2047 exist (its tables have 2048 rows): configure rejects max_T > 2048.
 *
 * Backward (docs/posenc.md §3.1): per pair the map is a scalar times a rotation, so its transpose is
 *     dq = s R(-angle) dq~,   dk = s^-1 R(-angle) dk~,
 * the same table entries used transposed. No parameters, nothing saved.
 *
 * Numerics: angles, exponents and scales in double, stored as float: per position a row of
 * 2*hs floats, (s cos, s sin) per pair for q, then (cos/s, sin/s) per pair for k. The reference
 * table covers 4*max_T positions and rows past it are computed on the fly with the same formula
 * (up to max_pos); the author table covers its 2048 positions.
 *
 * Stride: qkv rows are (q | k | v | E extra), S = 3C + num_extra(pe), as the model allocates.
 */
#include "model/posenc.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define XPOS_AUTHOR_MAX_LEN 2048       /* the author's max_sequence_length: its tables' rows */
#define XPOS_MAX_LOG_SCALE 80.0        /* |ln s| bound keeping s and 1/s normal floats */

typedef struct {
    int hs;
    double *theta;       /* (hs/2) radians per unit of angle position */
    double *log_zeta;    /* (hs/2) ln zeta_i */
    double angle_origin; /* angle_i(p) = theta_i * (p - angle_origin) / angle_unit */
    double angle_unit;
    double centre;       /* e(p) = (p - centre) / scale_base */
    double scale_base;
    long max_pos;        /* usable positions: 0 .. max_pos-1 */
    int max_context;     /* the longest max_T this configuration can be rebuilt with */
    long table_rows;
    float *table;        /* (table_rows, 2*hs) */
} XPos;

static void xpos_fill_row(const XPos *x, long p, float *row) {
    const int pairs = x->hs / 2;
    float *row_q = row, *row_k = row + x->hs;
    for (int i = 0; i < pairs; i++) {
        double angle = x->theta[i] * (((double)p - x->angle_origin) / x->angle_unit);
        double scale = exp(((double)p - x->centre) / x->scale_base * x->log_zeta[i]);
        double c = cos(angle), s = sin(angle);
        row_q[2 * i] = (float)(c * scale);
        row_q[2 * i + 1] = (float)(s * scale);
        row_k[2 * i] = (float)(c / scale);
        row_k[2 * i + 1] = (float)(s / scale);
    }
}

static void xpos_destroy(PosEnc *pe) {
    XPos *x = pe->impl;
    if (x) {
        free(x->theta);
        free(x->log_zeta);
        free(x->table);
        free(x);
    }
    pe->impl = NULL;
}

static int xpos_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", "variant", "scale_base", NULL};
    if (posenc_check_option_keys(options, "xpos", known) != 0) return -1;
    const char *variant;
    if (posenc_string_option(options, "variant", "reference", &variant) != 0) return -1;
    int author;
    if (strcmp(variant, "reference") == 0) author = 0;
    else if (strcmp(variant, "author") == 0) author = 1;
    else {
        tr_set_error("posenc.variant: unknown xpos variant \"%s\" (known: reference, author)", variant);
        return -1;
    }
    double scale_base;
    if (posenc_number_option(options, "scale_base", 512.0, &scale_base) != 0) return -1;
    if (author && cJSON_GetObjectItemCaseSensitive(options, "scale_base")) {
        tr_set_error("posenc.scale_base: only for variant reference (the author variant fixes 512)");
        return -1;
    }
    if (!(scale_base > 0.0)) {
        tr_set_error("posenc.scale_base: must be positive (got %g)", scale_base);
        return -1;
    }
    const int hs = pe->dims.hs, max_T = pe->dims.max_T, pairs = hs / 2;
    if (hs % 2 != 0) {
        tr_set_error("posenc.kind: xpos needs an even head size (hs = C/NH = %d)", hs);
        return -1;
    }
    if (author && max_T > XPOS_AUTHOR_MAX_LEN) {
        tr_set_error("posenc.variant: the author's xpos has tables for %d positions only, but max_T is %d",
                     XPOS_AUTHOR_MAX_LEN, max_T);
        return -1;
    }

    /* Reference: pair 0 has the largest |ln zeta|, ln(2/7) for every hs. Positions within
     * `reach` of the centre keep |ln s| <= XPOS_MAX_LOG_SCALE; position 0 must be one of them. */
    const double centre = ceil(max_T / 2.0);
    const double reach = fmin(floor(XPOS_MAX_LOG_SCALE * scale_base / log(3.5)), (double)INT_MAX);
    if (!author && centre > reach) {
        tr_set_error("posenc.scale_base: %g is too small for max_T %d: the xpos scale of position 0 would leave "
                     "the float range (needs scale_base >= %.1f)",
                     scale_base, max_T, centre * log(3.5) / XPOS_MAX_LOG_SCALE);
        return -1;
    }

    XPos *x = xcalloc(1, sizeof *x);
    x->hs = hs;
    x->theta = xmalloc(sizeof(double) * (size_t)pairs);
    x->log_zeta = xmalloc(sizeof(double) * (size_t)pairs);
    if (!author) {
        for (int i = 0; i < pairs; i++) {
            x->theta[i] = pow(10000.0, -2.0 * i / hs);
            x->log_zeta[i] = log((2.0 * i + 0.4 * hs) / (1.4 * hs));
        }
        x->angle_origin = 0.0;
        x->angle_unit = 1.0;
        x->centre = centre;
        x->scale_base = scale_base;
        x->max_pos = (long)(centre + reach) + 1;
        x->max_context = (int)fmin(2.0 * reach, (double)INT_MAX); /* centre ceil(max_T/2) <= reach */
        x->table_rows = 4L * max_T < x->max_pos ? 4L * max_T : x->max_pos;
    } else {
        const double alpha = 0.4 * hs;
        for (int j = 0; j < pairs; j++) {
            int i = j + 1;
            x->theta[j] = pow(10000.0, -2.0 * i / hs);
            x->log_zeta[j] = log((2.0 * i / (hs / 2.0) + alpha) / (1.0 + alpha));
        }
        x->angle_origin = XPOS_AUTHOR_MAX_LEN / 2;
        x->angle_unit = 512.0;
        x->centre = XPOS_AUTHOR_MAX_LEN / 2;
        x->scale_base = 512.0;
        x->max_pos = XPOS_AUTHOR_MAX_LEN;
        x->max_context = XPOS_AUTHOR_MAX_LEN;
        x->table_rows = XPOS_AUTHOR_MAX_LEN;
    }
    x->table = xmalloc(sizeof(float) * (size_t)x->table_rows * 2 * (size_t)hs);
    for (long p = 0; p < x->table_rows; p++) xpos_fill_row(x, p, x->table + p * 2 * hs);
    pe->impl = x;
    return 0;
}

/* The forward map (sign 1) or its transpose (sign -1) on the q and k columns of qkv (B,T,S). */
static void xpos_apply(const PosEnc *pe, float *qkv, int B, int T, int pos0, float sign) {
    const XPos *x = pe->impl;
    const int C = pe->dims.C, NH = pe->dims.NH, hs = x->hs;
    const long S = posenc_qkv_stride(pe);
    const long N = (long)B * T;
    assert(pos0 >= 0 && T >= 0 && (long)pos0 + T <= x->max_pos);
#pragma omp parallel if (N * C >= 16384)
    {
        float *scratch = NULL; /* this thread's row for positions past the table */
#pragma omp for schedule(static)
        for (long n = 0; n < N; n++) {
            long p = pos0 + n % T;
            const float *row;
            if (p < x->table_rows) {
                row = x->table + p * 2 * hs;
            } else {
                if (!scratch) scratch = xmalloc(sizeof(float) * 2 * (size_t)hs);
                xpos_fill_row(x, p, scratch);
                row = scratch;
            }
            float *q = qkv + n * S;
            posenc_turn_pairs(q, row, NH, hs, sign);          /* q: s R(angle) */
            posenc_turn_pairs(q + C, row + hs, NH, hs, sign); /* k: s^-1 R(angle) */
        }
        free(scratch);
    }
}

/* author: its 2048 table rows; reference: the longest context whose centre keeps position 0's
 * scale in the float range (about 65k positions at scale_base 512). */
static int xpos_max_positions(const PosEnc *pe) { return ((const XPos *)pe->impl)->max_context; }

static void xpos_qk_forward(const PosEnc *pe, int l, float *qkv, const float *x, const float *params, float *acts,
                            float *state, int B, int T, int pos0) {
    xpos_apply(pe, qkv, B, T, pos0, 1.0f);
}

static void xpos_qk_backward(const PosEnc *pe, int l, float *dqkv, const float *qkv, const float *x,
                             const float *params, float *dparams, const float *acts, int B, int T, int pos0) {
    xpos_apply(pe, dqkv, B, T, pos0, -1.0f);
}

const PosEncKind posenc_xpos = {
    .name = "xpos",
    .summary = "xPos: RoPE with a per-pair decay zeta^((n-m)/512) (variant reference = torchscale, or author)",
    .configure = xpos_configure,
    .test_options = (const char *const[]){"{\"variant\": \"author\"}", NULL},
    .destroy = xpos_destroy,
    .max_positions = xpos_max_positions,
    .init = NULL,
    .embed_forward = NULL,
    .embed_backward = NULL,
    .qk_forward = xpos_qk_forward,
    .qk_backward = xpos_qk_backward,
};
