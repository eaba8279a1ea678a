/* story.h: a story written by a trained model, token by token, with a KV cache: what `sample`
 * prints, and `run` at the end of a finished run (story.c).
 */
#ifndef TINYROPE_STORY_H
#define TINYROPE_STORY_H

#include <stdint.h>
#include <stdio.h>

#include "model/gpt.h"
#include "tokenizer/tokenizer.h"

/* EOT (as every story in the shards starts after one), the prompt, then sampled tokens until
 * EOT, max_tokens or the end of the context. Tokens are written to out as they come. */
void write_story(GPT *model, const Tokenizer *tok, const char *prompt, int max_tokens, float temperature,
                 float top_p, uint64_t seed, FILE *out);

#endif
