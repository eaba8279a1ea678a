/* story_batch.h: stories read into one buffer, then encoded all at once in parallel (OpenMP over
 * stories). Both `prepare` (into shards) and `encode` (the speed report) go through it, and the
 * ids do not depend on the thread count: each story is encoded on its own into its own slice.
 *
 * Also: opening one input of a data spec with its leading `skip` stories already consumed.
 */
#ifndef TINYROPE_STORY_BATCH_H
#define TINYROPE_STORY_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"
#include "data/data_spec.h"
#include "data/text_reader.h"

/* How much a batch holds before it is encoded: big enough to keep every thread busy, small
 * enough that memory stays bounded whatever the input size. */
#define STORY_BATCH_MAX_BYTES ((size_t)16 << 20)
#define STORY_BATCH_MAX_STORIES 4096

/* Story i is text[start[i] .. start[i+1]); after story_batch_encode its n_ids[i] ids are at
 * ids + start[i] (never more ids than bytes, so the slices cannot overlap). */
typedef struct {
    uint8_t *text;
    size_t len, cap;
    size_t *start;             /* (n + 1) */
    size_t *n_ids;             /* (n) */
    int n, cap_stories;
    uint32_t *ids;             /* (len) */
    size_t ids_cap;
} StoryBatch;

void story_batch_clear(StoryBatch *b);                   /* empty it, keep the memory */
void story_batch_add(StoryBatch *b, const uint8_t *story, size_t len);
int story_batch_full(const StoryBatch *b);
/* 0, or -1 with the error set (naming input_path) if the tokenizer misbehaves. */
int story_batch_encode(StoryBatch *b, const Tokenizer *tok, const char *input_path);
void story_batch_free(StoryBatch *b);

/* Opens in->path and reads past its first in->skip stories. NULL + error if the file cannot be
 * read or holds no more than `skip` stories. */
TextReader *data_input_open(const DataInput *in);

#endif
