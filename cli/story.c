/* story.c: sampling a story from a model (see story.h). */
#include "cli/story.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"
#include "model/sample.h"

void write_story(GPT *model, const Tokenizer *tok, const char *prompt, int max_tokens, float temperature,
                 float top_p, uint64_t seed, FILE *out) {
    const int eot = tok_eot_id(tok);
    size_t n = strlen(prompt);
    uint32_t *ids = xmalloc((n + 1) * sizeof *ids);
    size_t n_ids = tok_encode(tok, (const uint8_t *)prompt, n, ids, n + 1);
    KVCache kv;
    gpt_kv_init(&kv, model);
    Sampler sampler;
    sampler_init(&sampler, model->config.V);
    uint64_t rng = seed;
    const float *logits = gpt_step(model, &kv, eot);
    for (size_t i = 0; i < n_ids && logits; i++) logits = gpt_step(model, &kv, (int32_t)ids[i]);
    if (!logits) tr_die("prompt: %s", tr_error());
    fwrite(prompt, 1, n, out);
    for (int i = 0; i < max_tokens; i++) {
        int next = sample_token(&sampler, logits, temperature, top_p, &rng);
        if (next == eot) break;
        int len;
        const uint8_t *bytes = tok_token_bytes(tok, next, &len);
        fwrite(bytes, 1, (size_t)len, out);
        fflush(out);
        if (kv.len == kv.capacity) {
            fprintf(out, " [context of %d tokens full]", kv.capacity);
            break;
        }
        logits = gpt_step(model, &kv, next);
    }
    fputc('\n', out);
    sampler_free(&sampler);
    gpt_kv_free(&kv);
    free(ids);
}
