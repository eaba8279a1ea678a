/* posenc_learned.c: learned absolute position embedding, the "learned" kind (GPT-2 / llm.c;
 * docs/posenc.md §5).
 *
 * The kind owns one table wpe of shape (max_T, C), shared by the whole model (not per layer).
 * The token at absolute position p gets wpe[p] added to its token embedding:
 *     out[b,t,:] += wpe[pos0 + t, :]
 * and the backward sums the gradient over the batch:
 *     dwpe[pos0 + t, :] += sum_b dout[b,t,:].
 * Init: N(0, 0.02), as GPT-2, drawn from the seed with util.h's splitmix64 + Box-Muller generator
 * so a seed gives the same table on every machine.
 *
 * There is no row for p >= max_T, so this kind cannot run past the training context: the model
 * must keep pos0 + T <= max_T (sliding-window evaluation); the hooks assert it, and max_positions
 * reports it (`train eval` refuses a longer context with a message).
 */
#include "model/posenc.h"

#include <assert.h>
#include <stddef.h>

#include "base/util.h"

static int learned_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", NULL};
    return posenc_check_option_keys(options, "learned", known);
}

static size_t learned_num_params(const PosEnc *pe) { return (size_t)pe->dims.max_T * (size_t)pe->dims.C; }
/* One row per trained position: nothing exists past max_T. */
static int learned_max_positions(const PosEnc *pe) { return pe->dims.max_T; }

static void learned_init(const PosEnc *pe, float *params, float *extra_w, size_t extra_stride, uint64_t seed) {
    uint64_t rng = seed;
    size_t n = learned_num_params(pe);
    for (size_t i = 0; i < n; i++) params[i] = 0.02f * tr_rng_normal(&rng);
}

static void learned_embed_forward(const PosEnc *pe, float *out, const float *wpe, int B, int T, int pos0) {
    assert(pos0 >= 0 && T >= 0 && (long)pos0 + T <= pe->dims.max_T);
    const long C = pe->dims.C, N = (long)B * T;
#pragma omp parallel for schedule(static) if (N * C >= 65536)
    for (long n = 0; n < N; n++) {
        float *o = out + n * C;
        const float *w = wpe + (pos0 + n % T) * C;
        for (long c = 0; c < C; c++) o[c] += w[c];
    }
}

/* Parallel over positions, so each dwpe row has one writer and the sum over b runs in a fixed
 * order (the result does not depend on the thread count). */
static void learned_embed_backward(const PosEnc *pe, float *dwpe, const float *dout, int B, int T, int pos0) {
    assert(pos0 >= 0 && T >= 0 && (long)pos0 + T <= pe->dims.max_T);
    const long C = pe->dims.C;
#pragma omp parallel for schedule(static) if ((long)B * T * C >= 65536)
    for (long t = 0; t < T; t++) {
        float *dw = dwpe + (pos0 + t) * C;
        for (long b = 0; b < B; b++) {
            const float *d = dout + (b * T + t) * C;
            for (long c = 0; c < C; c++) dw[c] += d[c];
        }
    }
}

const PosEncKind posenc_learned = {
    .name = "learned",
    .summary = "learned absolute position embedding wpe (max_T, C) added to the token embedding (GPT-2)",
    .configure = learned_configure,
    .destroy = NULL,
    .num_params = learned_num_params,
    .max_positions = learned_max_positions,
    .init = learned_init,
    .embed_forward = learned_embed_forward,
    .embed_backward = learned_embed_backward,
    .qk_forward = NULL,
    .qk_backward = NULL,
};
