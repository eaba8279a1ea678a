/* loader.h: the token windows of a prepared dataset (written by shard_writer.h, format in
 * shard_format.h), as rows of tokens or as the inputs and targets the model eats (loader.c).
 *
 * Window k of a shard is its tokens [k*T, k*T + T] (T+1 tokens: T inputs and the T targets
 * shifted by one), so consecutive windows share one token and every target appears in exactly
 * one window. Training uses only full windows, in an order shuffled by a seeded generator,
 * reshuffled each epoch. Validation uses every window including the last, shorter one, in file
 * order, each exactly once per pass.
 */
#ifndef TINYROPE_LOADER_H
#define TINYROPE_LOADER_H

#include <stdint.h>

typedef struct {
    uint64_t epoch;        /* completed passes over the training windows */
    uint64_t cursor;       /* next window index in this epoch's order */
} LoaderState;

typedef struct TokenLoader TokenLoader; /* opaque */

/* Opens split "train" or "val" of the dataset in dir. Checks meta.json and every shard's header
 * and file size against it, and that the tokenizer hash equals expected_tok_hash; any mismatch
 * is an error naming the file. shuffle = 1 for training (only full windows, seeded order).
 * NULL + error on failure, including when the split has no full window of T+1 tokens. */
TokenLoader *loader_open(const char *dir, const char *split, uint64_t expected_tok_hash, int B, int T,
                         int shuffle, uint64_t seed);
/* Fills tokens (B, T+1) and n_targets (B): row b holds n_targets[b] + 1 valid tokens
 * (n_targets[b] == T for a full window, less for the last validation window, 0 for an unused row,
 * whose tokens are EOT padding).
 * Training: always returns 1 (wraps into the next epoch, reshuffled). Validation: returns 1 while
 * windows remain, 0 once every window has been returned (then loader_reset starts a new pass).
 * -1 on a read error (error set). */
int loader_next(TokenLoader *L, int32_t *tokens, int *n_targets);
/* What the model eats: the next windows as inputs (B, T) and targets (B, T), target t of row b
 * being the token after input t, -1 where there is none (past a short window's end, unused
 * rows). Returns as loader_next. */
int loader_next_batch(TokenLoader *L, int32_t *inputs, int32_t *targets);
void loader_reset(TokenLoader *L);
uint64_t loader_num_windows(const TokenLoader *L);
uint64_t loader_num_tokens(const TokenLoader *L);
uint64_t loader_text_bytes(const TokenLoader *L);      /* from meta.json, for bits per byte */
LoaderState loader_get_state(const TokenLoader *L);
int loader_set_state(TokenLoader *L, LoaderState s);   /* -1 (error) if out of range */
void loader_close(TokenLoader *L);

#endif
