/* tokenizer.h: a byte-level BPE tokenizer: encode, decode, save, load, and OpenAI's GPT-2 files.
 *
 * Vocabulary (V = vocab_size tokens):
 *   - 256 byte tokens. For our own tokenizers byte b has id b; GPT-2 numbers its bytes in another
 *     order, so the map byte -> id is stored (byte_id[256]).
 *   - n_merges learned merges in rank order: merge r joins (left, right) into token merge_id[r].
 *     For our own tokenizers merge_id[r] = 256 + r.
 *   - special tokens (here only "<|endoftext|>"), never produced by merging ordinary text.
 * Encoding = GPT-2 pre-tokenization (pretok.h), then per chunk standard BPE: repeatedly merge the
 * adjacent pair with the lowest merge rank. Decoding = concatenating each token's bytes (exact).
 *
 * Our file format ("tinyrope-bpe", text, versioned, inspectable with less):
 *     tinyrope-bpe 1
 *     pattern gpt2
 *     vocab_size 4096
 *     merges 3839                           the count (vocab_size - 256 - 1)
 *     special 4095 <|endoftext|>            version 1: exactly this one special token, id 256 + merges
 *     merge <id> <left> <right> # "escaped bytes of the new token"   one line per merge, rank order
 *     end
 * Byte tokens are implicit (id b = byte b). Everything after '#' is a comment for people. The
 * loader checks the magic and version, every count, that ids are new and consecutive, and that
 * merges refer only to ids already defined; any problem is one error naming the file and line.
 *
 * tok_hash() fingerprints the vocabulary and merges (not the comments), so a token shard can
 * refuse to be read with a different tokenizer.
 */
#ifndef TINYROPE_TOKENIZER_H
#define TINYROPE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOK_EOT_STRING "<|endoftext|>"

typedef struct Tokenizer Tokenizer; /* opaque; see tokenizer_internal.h */

/* Builds a tokenizer from merges (n_merges, 2): merge r joins token ids merges[r][0] and
 * merges[r][1] into id 256 + r. "<|endoftext|>" gets id 256 + n_merges, so
 * vocab_size = 257 + n_merges. Returns NULL (error set) if a merge refers to an undefined id. */
Tokenizer *tok_from_merges(const uint32_t (*merges)[2], int n_merges);

Tokenizer *tok_load(const char *path);                 /* our format; NULL + error on failure */
int tok_save(const Tokenizer *tok, const char *path);  /* 0 / -1; atomic (tmp + rename) */
/* OpenAI's GPT-2 encoder.json + vocab.bpe: ids identical to GPT-2's. NULL + error on failure. */
Tokenizer *tok_load_gpt2(const char *encoder_json_path, const char *vocab_bpe_path);
void tok_free(Tokenizer *tok);

int tok_vocab_size(const Tokenizer *tok);
int tok_eot_id(const Tokenizer *tok);                  /* id of "<|endoftext|>" */
uint64_t tok_hash(const Tokenizer *tok);
/* Bytes of token id (not NUL-terminated); *len gets the length. NULL if id is out of range. */
const uint8_t *tok_token_bytes(const Tokenizer *tok, int id, int *len);
/* The learned merges in rank order: merge r joins the pair (*left, *right) and returns the id it
 * makes, or -1 when r is not in [0, tok_num_merges). */
int tok_num_merges(const Tokenizer *tok);
int tok_merge(const Tokenizer *tok, int r, uint32_t *left, uint32_t *right);

/* Encodes text[0..n) as ordinary text ("<|endoftext|>" in the text is encoded as plain
 * characters). Appends ids to out (capacity out_cap); returns the number of ids, which may be
 * larger than out_cap, in which case nothing past out_cap was written (call again with room;
 * n ids never exceed n bytes). Thread-safe: many threads may encode with one tokenizer. */
size_t tok_encode(const Tokenizer *tok, const uint8_t *text, size_t n, uint32_t *out, size_t out_cap);
/* As tok_encode, but each occurrence of "<|endoftext|>" becomes the special id. */
size_t tok_encode_with_special(const Tokenizer *tok, const uint8_t *text, size_t n, uint32_t *out,
                               size_t out_cap);
/* The reference encoder (no cache, no heap; the plain O(k^2) loop per chunk) used by the tests. */
size_t tok_encode_reference(const Tokenizer *tok, const uint8_t *text, size_t n, uint32_t *out,
                            size_t out_cap);

/* Decodes ids to bytes in out (capacity out_cap); returns the byte count (may exceed out_cap, as
 * above). Returns (size_t)-1 with the error set if an id is out of range. */
size_t tok_decode(const Tokenizer *tok, const uint32_t *ids, size_t n_ids, uint8_t *out, size_t out_cap);

#endif
