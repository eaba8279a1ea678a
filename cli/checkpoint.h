/* checkpoint.h: everything a run needs to continue exactly where it stopped, in one file:
 * parameters, AdamW moments and step count, the training step, tokens seen and
 * the loader position. Written atomically (temporary file + fsync + rename), so a crash while
 * writing leaves the previous checkpoint intact.
 *
 * Format (little-endian):
 *     offset size  field
 *          0    8  magic "TRCKPT\0\0"
 *          8    4  version (1)
 *         12    4  flags (bit 0: AdamW moments present)
 *         16    8  config hash (what must match to resume: the model, batch shape and tokenizer)
 *         24    8  number of parameters P
 *         32    8  step           40  8  tokens seen     48  8  AdamW t
 *         56    8  zero (reserved) 64  8  loader epoch    72  8  loader cursor
 *         80    8  training seconds so far (IEEE double)
 *         88    8  hash of the model section     96  8  hash of the batch shape
 *        104    8  hash of the tokenizer (the three parts of the config hash, to say which one
 *                  differs; zero in older files, which then get a general message)
 *        112   16  zero
 *        128  4P   parameters (fp32), then 4P AdamW m and 4P AdamW v if flag bit 0
 *        end    8  FNV-1a 64 of every byte before it (catches truncation and corruption)
 */
#ifndef TINYROPE_CHECKPOINT_H
#define TINYROPE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "data/loader.h"
#include "model/optim.h"

typedef struct {
    uint64_t config_hash;
    uint64_t step;            /* optimizer updates done */
    uint64_t tokens_seen;
    LoaderState loader;
    double elapsed_s;         /* training wall time so far, so log.csv's clock continues */
    /* The parts of config_hash (0 = not recorded), for saying which one differs. */
    uint64_t model_hash, batch_hash, tokenizer_hash;
} CheckpointState;

/* opt may be NULL (a model-only checkpoint). 0 / -1 (error set; the old file is untouched). */
int checkpoint_save(const char *path, const CheckpointState *st, const float *params, size_t n_params,
                    const AdamW *opt);
/* Reads only the header of path into st (step, tokens, hashes, ...). 0 / -1 (error set). */
int checkpoint_read_state(const char *path, CheckpointState *st);
/* Reads path into st, params (n_params) and, if opt is not NULL, opt's m, v and t. Refuses (-1,
 * error naming the file) a wrong magic or version, a different config hash or parameter count,
 * a missing optimizer state when opt is given, and a truncated or corrupted file. */
int checkpoint_load(const char *path, CheckpointState *st, uint64_t expected_config_hash, float *params,
                    size_t n_params, AdamW *opt);

#endif
