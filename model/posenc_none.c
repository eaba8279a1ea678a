/* posenc_none.c: NoPE, the "none" kind: no positional encoding at all (posenc.md §3, "NoPE").
 *
 * Nothing is added to the embedding and q and k are left alone. The model can still tell
 * positions apart through the causal mask: a token at position p attends to exactly p+1 tokens,
 * so it can learn to count (Haviv et al.; Kazemnejad et al.). Every hook is NULL (the model skips
 * NULL hooks); the size functions report 0.
 */
#include "model/posenc.h"

#include <stddef.h>

/* from posenc.c */

static int none_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", NULL};
    return posenc_check_option_keys(options, "none", known);
}

static size_t none_num_params(const PosEnc *pe) { return 0; }
static int none_num_extra(const PosEnc *pe) { return 0; }
static size_t none_num_acts(const PosEnc *pe, int B, int T) { return 0; }
static size_t none_num_state(const PosEnc *pe, int B) { return 0; }

const PosEncKind posenc_none = {
    .name = "none",
    .summary = "NoPE: no positional encoding; position comes only from the causal mask",
    .configure = none_configure,
    .destroy = NULL,
    .num_params = none_num_params,
    .num_extra = none_num_extra,
    .num_acts = none_num_acts,
    .num_state = none_num_state,
    .init = NULL,
    .embed_forward = NULL,
    .embed_backward = NULL,
    .qk_forward = NULL,
    .qk_backward = NULL,
};
