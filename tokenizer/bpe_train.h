/* bpe_train.h: learning BPE merges from a stream of text.
 *
 * Two phases, so memory is bounded by the number of distinct words, not by corpus size:
 *   1. Counting: bpe_counter_add() pre-tokenizes text (pretok.h) and counts each distinct chunk
 *      ("word") in a hash table. Feed it story by story, from any reader.
 *   2. Merging: bpe_train() runs BPE on the weighted word list. Pair counts are kept up to date
 *      incrementally (each merge touches only the words that contain the pair) and the best
 *      pair comes from a priority queue with lazy deletion, never from a full recount.
 * Tie rule (deterministic, independent of hash order and thread count): the pair with the highest
 * count wins; among equal counts, the smaller left id, then the smaller right id.
 * A merge is only learned for pairs whose count is >= 2 (a pair seen once teaches nothing);
 * training stops early, with fewer merges, when no such pair remains.
 */
#ifndef TINYROPE_BPE_TRAIN_H
#define TINYROPE_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct BpeCounter BpeCounter;

BpeCounter *bpe_counter_new(void);
void bpe_counter_free(BpeCounter *c);
/* Pre-tokenizes text[0..n) and adds every chunk to the counts. */
void bpe_counter_add(BpeCounter *c, const uint8_t *text, size_t n);
/* Adds all counts of src into dst (for per-thread counters). */
void bpe_counter_merge(BpeCounter *dst, const BpeCounter *src);
size_t bpe_counter_distinct(const BpeCounter *c);   /* distinct words */
uint64_t bpe_counter_total(const BpeCounter *c);    /* total words counted */

/* Progress of bpe_train: report(ctx, ...) after every `every` merges and after the last one.
 * The library never prints; the command layer's report does. */
typedef struct {
    int every;
    void (*report)(void *ctx, int learned, int n_merges, uint32_t left, uint32_t right, uint32_t id,
                   uint64_t count, double seconds);
    void *ctx;
} BpeProgress;

/* Learns up to n_merges merges into merges_out (n_merges, 2): merge r joins (left, right) into
 * id 256 + r. Returns the number learned (<= n_merges). progress may be NULL (silent). */
int bpe_train(const BpeCounter *c, int n_merges, uint32_t (*merges_out)[2], const BpeProgress *progress);

/* The reference: recounts every pair of every word per merge (slow, obviously right), same tie
 * rule. Tests check that both learn identical merges. */
int bpe_train_reference(const BpeCounter *c, int n_merges, uint32_t (*merges_out)[2]);

#endif
