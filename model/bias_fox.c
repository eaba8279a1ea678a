/* bias_fox.c: the forgetting transformer's forget gate (Lin et al., "Forgetting Transformer:
 * Softmax Attention with a Forget Gate", ICLR 2025) as a score bias (posenc.h; docs/posenc.md §8).
 *
 * Per layer l, head h and position t (shape legend in layers.h):
 *     z_t = w_f . x_t + b_f          w_f: one extra QKV row per head, x the layer's ln1 output;
 *                                    b_f (L, NH) the bias's parameters
 *     log f_t = log sigmoid(z_t)     (f_t in (0, 1): how much of the past the head keeps)
 *     a_t = sum_{s <= t} log f_s     so the score of query i and key j gets
 *                                    a_i - a_j = sum_{s = j+1}^{i} log f_s <= 0
 * A key's weight decays by the product of the gates between it and the query. With f = 1 the
 * bias is 0 and attention is plain (tests/test_bias.c checks that NoPE and RoPE are recovered).
 *
 * Backward, from da (B, NH, T), undoing the two lines above in reverse:
 *     d log f_s = sum_{t >= s} da_t                 (a is a running sum)
 *     dz_s = d log f_s * sigmoid(-z_s)               (d/dz log sigmoid(z) = 1 - sigmoid(z))
 * and dz_s goes to the extra column (then, through the QKV product, to w_f and x) and to b_f.
 *
 * Generation carries a_{t-1} of each layer, row and head in the state (L, B, NH), so a cached
 * step adds the same terms in the same order as the full forward. a runs in float: over T
 * positions it can reach -T * |log f|, and a_i - a_j then keeps about 7 significant digits of
 * that size (at T = 4096 and f = 1/2, about 3e-4 of a score).
 *
 * Options: "gate_bias" (default 0): b_f at init, so every f starts at sigmoid(gate_bias) (1/2 by
 * default, as in the reference implementation's plain linear layer; larger values start closer to
 * plain attention). w_f starts at N(0, 0.02) like the model's other projections.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/posenc.h"

typedef struct {
    int L, NH;
    double gate_bias;
} Fox;

static int fox_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", "gate_bias", NULL};
    if (posenc_check_bias_option_keys(options, "fox", known) != 0) return -1;
    double gate_bias = 0.0;
    const cJSON *item = options ? cJSON_GetObjectItemCaseSensitive(options, "gate_bias") : NULL;
    if (item) {
        if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || fabs(item->valuedouble) > 30) {
            tr_set_error("posenc.bias.gate_bias: must be a number in [-30, 30]");
            return -1;
        }
        gate_bias = item->valuedouble;
    }
    Fox *fx = xmalloc(sizeof *fx);
    *fx = (Fox){.L = pe->dims.L, .NH = pe->dims.NH, .gate_bias = gate_bias};
    pe->bias_impl = fx;
    return 0;
}

static size_t fox_num_params(const PosEnc *pe) { return (size_t)pe->dims.L * (size_t)pe->dims.NH; }
static int fox_num_extra(const PosEnc *pe) { return pe->dims.NH; }
static size_t fox_num_state(const PosEnc *pe, int B) { return (size_t)pe->dims.L * (size_t)B * (size_t)pe->dims.NH; }

static void fox_init(const PosEnc *pe, float *params, float *extra_w, size_t extra_stride, uint64_t seed) {
    const Fox *fx = pe->bias_impl;
    const size_t C = (size_t)pe->dims.C;
    uint64_t rng = seed;
    for (int l = 0; l < fx->L; l++)
        for (size_t i = 0; i < (size_t)fx->NH * C; i++) extra_w[(size_t)l * extra_stride + i] = 0.02f * tr_rng_normal(&rng);
    for (int i = 0; i < fx->L * fx->NH; i++) params[i] = (float)fx->gate_bias;
}

/* log sigmoid(z) = -log(1 + e^-z), without overflow for either sign of z */
static double log_sigmoid(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }

static void fox_forward(const PosEnc *pe, int l, float *a, const float *qkv, const float *params, float *state, int B,
                        int T, int pos0) {
    const Fox *fx = pe->bias_impl;
    const int NH = fx->NH;
    const long S = posenc_qkv_stride(pe), col = posenc_bias_column(pe);
    const float *b_f = params + (size_t)l * NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *carried = state ? state + ((size_t)l * B + b) * NH + h : NULL;
            float sum = carried && pos0 > 0 ? *carried : 0.0f;
            float *row = a + ((size_t)b * NH + h) * T;
            for (int t = 0; t < T; t++) {
                const double z = (double)qkv[((size_t)b * T + t) * S + col + h] + (double)b_f[h];
                sum = (float)((double)sum + log_sigmoid(z));
                row[t] = sum;
            }
            if (carried) *carried = sum;
        }
}

static void fox_backward(const PosEnc *pe, int l, const float *da, float *dqkv, const float *qkv, const float *params,
                         float *dparams, int B, int T) {
    const Fox *fx = pe->bias_impl;
    const int NH = fx->NH;
    const long S = posenc_qkv_stride(pe), col = posenc_bias_column(pe);
    const float *b_f = params + (size_t)l * NH;
    for (int h = 0; h < NH; h++) {
        double db = 0.0;
        for (int b = 0; b < B; b++) {
            const float *drow = da + ((size_t)b * NH + h) * T;
            double dlogf = 0.0; /* sum of da over t >= s */
            for (int s = T - 1; s >= 0; s--) {
                dlogf += drow[s];
                const size_t at = ((size_t)b * T + s) * S + col + h;
                const double z = (double)qkv[at] + (double)b_f[h];
                const double dz = dlogf / (1.0 + exp(z)); /* sigmoid(-z) */
                dqkv[at] += (float)dz;
                db += dz;
            }
        }
        dparams[(size_t)l * NH + h] += (float)db;
    }
}

const ScoreBiasKind bias_fox = {
    .name = "fox",
    .summary = "FoX forget gate: scores decay by the product of data-dependent gates between key and query",
    .configure = fox_configure,
    .num_params = fox_num_params,
    .num_extra = fox_num_extra,
    .num_state = fox_num_state,
    .init = fox_init,
    .forward = fox_forward,
    .backward = fox_backward,
};
