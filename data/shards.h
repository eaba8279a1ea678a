/* shards.h: token shards on disk, the command that writes them, and the loader that reads them.
 *
 * A dataset directory holds meta.json plus shard files train_000.bin, train_001.bin, ...,
 * val_000.bin. Each shard is one header followed by its tokens:
 *     offset  size  field
 *          0     8  magic "TRSHARD\0"
 *          8     4  version (1)                   all integers little-endian
 *         12     4  bytes per token (2 = uint16, 4 = uint32 when vocab_size > 65536)
 *         16     8  token count N
 *         24     4  vocab size
 *         28     4  id of <|endoftext|>
 *         32     8  tokenizer hash (tok_hash)
 *         40    24  zero
 *         64  N*bpt tokens
 * Token stream of a shard: EOT, story, EOT, story, EOT, ... (every story is followed by EOT, and
 * the shard opens with one EOT so the first story's first token is predicted like every other).
 *
 * meta.json records the tokenizer (path, hash, vocab size), a fingerprint of the inputs (path,
 * format, skip, size, mtime of each file, plus the tokenizer hash), and per split: shard names,
 * tokens, stories and text bytes (the UTF-8 bytes of the stories, for bits per byte).
 * Re-running prepare with the same inputs and tokenizer reuses the shards (nothing is rewritten).
 *
 * Loader windows: window k of a shard is its tokens [k*T, k*T + T] (T+1 tokens: T inputs and the
 * T targets shifted by one), so consecutive windows share one token and every target appears in
 * exactly one window. Training uses only full windows, in an order shuffled by a seeded generator,
 * reshuffled each epoch. Validation uses every window including the last, shorter one, in file
 * order, each exactly once per pass.
 */
#ifndef TINYROPE_SHARDS_H
#define TINYROPE_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"
#include "data/text_reader.h"

#define SHARD_HEADER_BYTES 64

/* ---- the data description: which files make each split ---- */
typedef struct {
    char *path;
    TextFormat format;
    long skip;            /* stories to skip at the start of the file (e.g. 1 for the CSV) */
} DataInput;

typedef struct {
    DataInput *train; int n_train;
    DataInput *val;   int n_val;
} DataSpec;

/* Loads a data spec from JSON:
 *   {"train": [{"path": "...", "format": "hf-txt", "skip": 0}, ...], "val": [...]}
 * "format" (default "auto") and "skip" (default 0) are optional. Relative paths are relative to
 * the current directory (the repo root), as everywhere else in tinyrope. Unknown keys, wrong
 * types, missing files: error. */
int data_spec_load(const char *json_path, DataSpec *out);
void data_spec_free(DataSpec *spec);

/* ---- writing shards ---- */
typedef struct {
    uint64_t tokens, stories, text_bytes, dropped;
    int n_shards;
    int reused;            /* 1 if existing shards matched and nothing was written */
    double seconds;        /* wall time of the whole split: reading, encoding, writing, fsync */
} SplitReport;

typedef struct {
    SplitReport train, val;
} PrepareReport;

/* Encodes every story of every input (stories encoded in parallel with OpenMP, written in input
 * order) into shards in out_dir, then writes meta.json last (atomically), so an interrupted
 * prepare never looks finished. shard_tokens caps the tokens per shard (0 = default 2^27).
 * force = 1 rewrites even if meta.json says the shards are current. 0 / -1 (error set). */
int shards_prepare(const DataSpec *spec, const Tokenizer *tok, const char *tokenizer_path,
                   const char *out_dir, uint64_t shard_tokens, int force, PrepareReport *report);

/* ---- reading ---- */
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
