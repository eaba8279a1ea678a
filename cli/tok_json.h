/* tok_json.h: a tinyrope tokenizer as JSON, for tools outside tinyrope (`train export` writes it
 * next to the weights, `train import` reads it back; the format is in docs/export.md):
 *     {"format": "tinyrope-bpe-json", "version": 1, "pattern": "gpt2",
 *      "vocab_size": V, "eot_id": V - 1, "special_tokens": {"<|endoftext|>": V - 1},
 *      "vocab": ["00", "01", ..., "<hex of token id's bytes>", ...],     index = id, all V ids
 *      "merges": [[left, right], ...]}                                  rank order; merge r makes id 256 + r
 * Ids 0..255 are the bytes, so vocab[b] is b in hex; vocab[eot_id] is the hex of "<|endoftext|>".
 */
#ifndef TINYROPE_TOK_JSON_H
#define TINYROPE_TOK_JSON_H

#include "tokenizer/tokenizer.h"

/* Writes tok (in tinyrope's layout: byte b = id b, merge r = id 256 + r) to path, atomically.
 * 0 / -1 (error set). */
int tok_json_write(const Tokenizer *tok, const char *path);
/* Reads and checks path: the merges rebuild the tokenizer and every vocab entry, the size and the
 * end-of-text id must agree with it. NULL + one error naming the file and the entry at fault. */
Tokenizer *tok_json_read(const char *path);

#endif
