/* tokenizer_internal.h: what the files behind tokenizer.h share, and nothing a user of the
 * tokenizer should see (include tokenizer/tokenizer.h for that):
 *   tokenizer/tokenizer.c     building, the fingerprint, encoding (fast and reference), decoding
 *   tokenizer/tok_file.c      our text file format: tok_save and the strict tok_load
 *   tokenizer/gpt2_import.c   OpenAI's GPT-2 encoder.json + vocab.bpe: tok_load_gpt2
 *
 * Layout in memory: every token id has its bytes (token_start/token_data); byte_id maps a byte to
 * its token; merge r joins merges[r] = (left, right) into merge_id[r]. Lower rank = merged first.
 */
#ifndef TINYROPE_TOKENIZER_INTERNAL_H
#define TINYROPE_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer/tokenizer.h"

#define NO_ID UINT32_MAX

typedef struct {
    uint32_t left, right;
    uint32_t rank;   /* UINT32_MAX marks an empty slot */
    uint32_t id;     /* the merged token */
} PairSlot;

struct Tokenizer {
    int vocab_size;
    int n_merges;
    int eot_id;
    uint32_t byte_id[256];
    uint32_t (*merges)[2];   /* [n_merges] (left, right), rank order */
    uint32_t *merge_id;      /* [n_merges] the token merge r creates */
    size_t *token_start;     /* [vocab_size + 1] offsets into token_data */
    uint8_t *token_data;
    PairSlot *pair_table;    /* (left, right) -> rank, open addressing, load <= 1/2 */
    int pair_shift;          /* 64 - log2(table size) */
    PairSlot *pairs_sorted;  /* [n_merges] sorted by (left, right): the reference encoder's lookup */
    uint64_t generation;     /* unique per tokenizer ever built: keys the per-thread caches */
    uint64_t hash;
};

typedef struct {
    uint8_t *data;
    size_t len, cap;
} ByteBuf;

static inline void buf_reserve(ByteBuf *b, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
}

static inline void buf_append(ByteBuf *b, const void *p, size_t n) {
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* Builds the lookup structures and the fingerprint of t, whose fields above pair_table are all
 * filled in. Returns 0, or -1 when two merges join the same pair: their ranks go to *dup_first and
 * *dup_second, and the caller words the error. */
int tok_index(Tokenizer *t, int *dup_first, int *dup_second);

/* A tokenizer in our layout (byte b = id b, merge r = id 256 + r, "<|endoftext|>" = 256 +
 * n_merges) from merges that refer only to defined ids. NULL when two merges join the same pair,
 * with *dup_first and *dup_second set as by tok_index. */
Tokenizer *tok_build_our_layout(const uint32_t (*merges)[2], int n_merges, int *dup_first,
                                int *dup_second);

#endif
