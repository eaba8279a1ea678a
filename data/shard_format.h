/* shard_format.h: the on-disk form of a prepared dataset, shared inside data/ by the data spec
 * (data_spec.c), the shard writer (shard_writer.c) and the loader (loader.c): the split names,
 * the shard header, meta.json and its reader (shard_format.c). Code outside data/ uses
 * shard_writer.h and loader.h instead.
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
 */
#ifndef TINYROPE_SHARD_FORMAT_H
#define TINYROPE_SHARD_FORMAT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#define SHARD_HEADER_BYTES 64
#define SHARD_MAGIC "TRSHARD"           /* 7 characters + the NUL = the 8 magic bytes */
#define SHARD_VERSION 1
#define META_FORMAT "tinyrope-shards"
#define META_VERSION 1

enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1, N_SPLITS = 2 };
extern const char *const split_names[N_SPLITS];   /* "train", "val" */

/* Token width for a vocabulary: ids run from 0 to vocab_size - 1, so 65536 still fits uint16. */
static inline uint32_t token_bytes_for_vocab(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

/* meta.json as read back. */
typedef struct {
    char *file;
    uint64_t tokens;
} MetaShard;

typedef struct {
    MetaShard *shards;
    int n_shards;
    uint64_t tokens, stories, text_bytes, dropped;
} MetaSplit;

typedef struct {
    char *path;                 /* <dir>/meta.json, for messages */
    char fingerprint[32];
    uint64_t tok_hash;
    uint32_t vocab_size, eot_id, token_bytes;
    MetaSplit split[N_SPLITS];
} Meta;

/* 1 if the JSON number v is an integer in [0, 2^53] (exactly representable, so no silent
 * rounding), storing it in *out. */
int json_number_to_u64(const cJSON *v, uint64_t *out);

/* "<dir>/<name>", allocated. */
char *path_join(const char *dir, const char *name);

/* Reads and checks <dir>/meta.json. 0, or -1 with the error set (naming meta.json and the key).
 * Either way meta_free releases what was read. */
int meta_load(const char *dir, Meta *m);
void meta_free(Meta *m);

#endif
