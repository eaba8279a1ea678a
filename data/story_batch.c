/* story_batch.c: batches of stories encoded in parallel, and opening an input past its skipped
 * stories (see story_batch.h). */
#include "data/story_batch.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void story_batch_clear(StoryBatch *b) {
    b->n = 0;
    b->len = 0;
}

void story_batch_add(StoryBatch *b, const uint8_t *story, size_t len) {
    if (b->n + 1 >= b->cap_stories) {
        b->cap_stories = b->cap_stories ? 2 * b->cap_stories : 1024;
        b->start = xrealloc(b->start, (size_t)b->cap_stories * sizeof *b->start);
        b->n_ids = xrealloc(b->n_ids, (size_t)b->cap_stories * sizeof *b->n_ids);
    }
    if (b->len + len > b->cap) {
        while (b->len + len > b->cap) b->cap = b->cap ? 2 * b->cap : ((size_t)1 << 20);
        b->text = xrealloc(b->text, b->cap);
    }
    b->start[b->n] = b->len;
    memcpy(b->text + b->len, story, len);
    b->len += len;
    b->n++;
    b->start[b->n] = b->len;
}

int story_batch_full(const StoryBatch *b) {
    return b->n >= STORY_BATCH_MAX_STORIES || b->len >= STORY_BATCH_MAX_BYTES;
}

int story_batch_encode(StoryBatch *b, const Tokenizer *tok, const char *input_path) {
    if (b->ids_cap < b->len) {
        free(b->ids);
        b->ids_cap = b->len;
        b->ids = xmalloc(b->ids_cap * sizeof *b->ids);
    }
    const int n = b->n;
    const uint8_t *text = b->text;
    const size_t *start = b->start;
    uint32_t *ids = b->ids;
    size_t *n_ids = b->n_ids;
    /* Dynamic schedule: stories differ in length by 10x. */
    #pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) {
        size_t len = start[i + 1] - start[i];
        n_ids[i] = tok_encode(tok, text + start[i], len, ids + start[i], len);
    }
    for (int i = 0; i < n; i++) {
        if (n_ids[i] > start[i + 1] - start[i]) {
            tr_set_error("%s: the tokenizer produced more ids (%zu) than bytes (%zu) for a story",
                         input_path, n_ids[i], start[i + 1] - start[i]);
            return -1;
        }
    }
    return 0;
}

void story_batch_free(StoryBatch *b) {
    free(b->text);
    free(b->start);
    free(b->n_ids);
    free(b->ids);
    memset(b, 0, sizeof *b);
}

TextReader *data_input_open(const DataInput *in) {
    TextReader *r = text_reader_open(in->path, in->format);
    if (!r) return NULL;
    const uint8_t *story;
    size_t len;
    for (long k = 0; k < in->skip; k++) {
        int rc = text_reader_next(r, &story, &len);
        if (rc > 0) continue;
        if (rc == 0)
            tr_set_error("%s: skip %ld but the file holds only %" PRIu64 " stories", in->path, in->skip,
                         text_reader_stats(r).stories);
        text_reader_close(r);
        return NULL;
    }
    return r;
}
