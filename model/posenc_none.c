/* posenc_none.c: NoPE, the "none" kind: no positional encoding at all (docs/posenc.md §4).
 *
 * Nothing is added to the embedding and q and k are left alone. The model can still tell
 * positions apart through the causal mask: a token at position p attends to exactly p+1 tokens,
 * so it can learn to count (Haviv et al.; Kazemnejad et al.). Every hook is NULL (the model skips
 * NULL hooks and counts a NULL size as 0).
 */
#include "model/posenc.h"

#include <stddef.h>

static int none_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", NULL};
    return posenc_check_option_keys(options, "none", known);
}

const PosEncKind posenc_none = {
    .name = "none",
    .summary = "NoPE: no positional encoding; position comes only from the causal mask",
    .configure = none_configure,
    .destroy = NULL,
    .init = NULL,
    .embed_forward = NULL,
    .embed_backward = NULL,
    .qk_forward = NULL,
    .qk_backward = NULL,
};
