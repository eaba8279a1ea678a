/* shard_writer.h: `prepare`: the inputs of a data spec (data_spec.h) encoded into token shards
 * and meta.json (shard_writer.c; the format is in shard_format.h). loader.h reads them back.
 *
 * Re-running prepare with the same inputs and tokenizer reuses the shards (nothing is rewritten).
 */
#ifndef TINYROPE_SHARD_WRITER_H
#define TINYROPE_SHARD_WRITER_H

#include <stdint.h>

#include "tokenizer/tokenizer.h"
#include "data/data_spec.h"

typedef struct {
    uint64_t tokens, stories, text_bytes, dropped;
    int n_shards;
    int reused;            /* 1 if existing shards matched and nothing was written */
    double seconds;        /* wall time of the whole split: reading, encoding, writing, fsync */
} SplitReport;

typedef struct {
    SplitReport train, val;
    int removed_temporaries;   /* files "<shard or meta.json>.tmp.<pid>" an interrupted prepare left */
} PrepareReport;

/* First removes the temporaries that a crashed prepare left in out_dir (see
 * tr_remove_stale_temporaries). Then encodes every story of every input (stories encoded in parallel with OpenMP, written in input
 * order) into shards in out_dir, then writes meta.json last (atomically), so an interrupted
 * prepare never looks finished. shard_tokens caps the tokens per shard (0 = default 2^27).
 * force = 1 rewrites even if meta.json says the shards are current. 0 / -1 (error set). */
int shards_prepare(const DataSpec *spec, const Tokenizer *tok, const char *tokenizer_path,
                   const char *out_dir, uint64_t shard_tokens, int force, PrepareReport *report);

#endif
