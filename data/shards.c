/* shards.c: turns the text files of a data spec into token shards (shards_prepare) and serves
 * training and validation windows from those shards (TokenLoader).
 *
 * The shard format, the meta.json fields and the window rules are described in shards.h. In short:
 *   - prepare reads stories in batches, encodes a batch in parallel (OpenMP, one story per task),
 *     and writes the ids in input order, so the shards do not depend on the thread count;
 *   - every output (each shard, then meta.json) is written to a temporary file and renamed, and the
 *     old meta.json is removed before the first shard is touched: an interrupted prepare never
 *     looks finished;
 *   - the loader keeps every shard open and reads one window at a time with fseeko + fread, so a
 *     dataset of any size costs only the window table (8 bytes per training window).
 */
#define _POSIX_C_SOURCE 200809L
#include "data/shards.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "data/story_batch.h"
#include "base/util.h"

#define SHARD_MAGIC "TRSHARD"           /* 7 characters + the NUL = the 8 magic bytes */
#define SHARD_VERSION 1
#define META_FORMAT "tinyrope-shards"
#define META_VERSION 1
#define DEFAULT_SHARD_TOKENS (1ULL << 27)
/* A batch of stories encoded together: enough work for every thread, bounded memory
 * (text + 4 bytes of ids per text byte). */

enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1, N_SPLITS = 2 };
static const char *const split_names[N_SPLITS] = {"train", "val"};

/* ---------------------------------------------------------------------------------------------- */
/* little-endian integers, independent of the host's byte order */

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_le32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* ---------------------------------------------------------------------------------------------- */
/* the shard header */

typedef struct {
    uint32_t version;
    uint32_t token_bytes;
    uint64_t n_tokens;
    uint32_t vocab_size;
    uint32_t eot_id;
    uint64_t tok_hash;
} ShardHeader;

static void shard_header_encode(const ShardHeader *h, uint8_t out[SHARD_HEADER_BYTES]) {
    memset(out, 0, SHARD_HEADER_BYTES);
    memcpy(out, SHARD_MAGIC, 8);
    put_le32(out + 8, h->version);
    put_le32(out + 12, h->token_bytes);
    put_le64(out + 16, h->n_tokens);
    put_le32(out + 24, h->vocab_size);
    put_le32(out + 28, h->eot_id);
    put_le64(out + 32, h->tok_hash);
}

/* Token width for a vocabulary: ids run from 0 to vocab_size - 1, so 65536 still fits uint16. */
static uint32_t token_bytes_for_vocab(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

/* ---------------------------------------------------------------------------------------------- */
/* the data spec */

static void data_inputs_free(DataInput *inputs, int n) {
    if (!inputs) return;
    for (int i = 0; i < n; i++) free(inputs[i].path);
    free(inputs);
}

void data_spec_free(DataSpec *spec) {
    if (!spec) return;
    data_inputs_free(spec->train, spec->n_train);
    data_inputs_free(spec->val, spec->n_val);
    memset(spec, 0, sizeof *spec);
}

/* 1 if the JSON number v is an integer in [0, 2^53] (exactly representable, so no silent
 * rounding), storing it in *out. */
static int json_number_to_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0)) return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

/* One {"path", "format", "skip"} entry; key is e.g. "train[0]" for the messages. */
static int parse_input(const char *json_path, const char *key, const cJSON *item, DataInput *out) {
    if (!cJSON_IsObject(item)) {
        tr_set_error("%s: %s: expected an object {\"path\": ..., \"format\": ..., \"skip\": ...}",
                     json_path, key);
        return -1;
    }
    int seen_format = 0, seen_skip = 0;
    const cJSON *field;
    cJSON_ArrayForEach(field, item) {
        const char *name = field->string;
        if (strcmp(name, "path") == 0) {
            if (out->path) {
                tr_set_error("%s: %s.path: key given twice", json_path, key);
                return -1;
            }
            if (!cJSON_IsString(field) || field->valuestring[0] == '\0') {
                tr_set_error("%s: %s.path: expected a non-empty string", json_path, key);
                return -1;
            }
            out->path = xstrdup(field->valuestring);
        } else if (strcmp(name, "format") == 0) {
            if (seen_format++) {
                tr_set_error("%s: %s.format: key given twice", json_path, key);
                return -1;
            }
            if (!cJSON_IsString(field)) {
                tr_set_error("%s: %s.format: expected a string", json_path, key);
                return -1;
            }
            if (text_format_parse(field->valuestring, &out->format) != 0) {
                tr_set_error("%s: %s.format: unknown format \"%s\" (expected auto, hf-txt, lines, "
                             "json, jsonl or csv)", json_path, key, field->valuestring);
                return -1;
            }
        } else if (strcmp(name, "skip") == 0) {
            uint64_t skip;
            if (seen_skip++) {
                tr_set_error("%s: %s.skip: key given twice", json_path, key);
                return -1;
            }
            if (!json_number_to_u64(field, &skip) || skip > (uint64_t)0x7fffffff) {
                tr_set_error("%s: %s.skip: expected a non-negative integer (stories to skip)",
                             json_path, key);
                return -1;
            }
            out->skip = (long)skip;
        } else {
            tr_set_error("%s: %s: unknown key \"%s\" (expected path, format, skip)", json_path, key,
                         name);
            return -1;
        }
    }
    if (!out->path) {
        tr_set_error("%s: %s: missing key \"path\"", json_path, key);
        return -1;
    }
    struct stat st;
    if (stat(out->path, &st) != 0) {
        tr_set_error("%s: cannot open input file (%s in %s): %s", out->path, key, json_path,
                     strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        tr_set_error("%s: input is not a regular file (%s in %s)", out->path, key, json_path);
        return -1;
    }
    return 0;
}

int data_spec_load(const char *json_path, DataSpec *out) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = tr_read_file(json_path, &len);
    if (!text) return -1;
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &parse_end, 1);
    if (!root) {
        long at = parse_end ? (long)(parse_end - text) : 0;
        tr_set_error("%s: malformed JSON near byte %ld", json_path, at);
        free(text);
        return -1;
    }
    free(text);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        tr_set_error("%s: expected an object {\"train\": [...], \"val\": [...]}", json_path);
        goto done;
    }
    const cJSON *lists[N_SPLITS] = {NULL, NULL};
    const cJSON *field;
    cJSON_ArrayForEach(field, root) {
        int s = -1;
        for (int k = 0; k < N_SPLITS; k++)
            if (strcmp(field->string, split_names[k]) == 0) s = k;
        if (s < 0) {
            tr_set_error("%s: unknown key \"%s\" (expected train, val)", json_path, field->string);
            goto done;
        }
        if (lists[s]) {
            tr_set_error("%s: %s: key given twice", json_path, split_names[s]);
            goto done;
        }
        if (!cJSON_IsArray(field) || cJSON_GetArraySize(field) == 0) {
            tr_set_error("%s: %s: expected a non-empty list of inputs", json_path, split_names[s]);
            goto done;
        }
        lists[s] = field;
    }
    for (int s = 0; s < N_SPLITS; s++) {
        if (!lists[s]) {
            tr_set_error("%s: missing key \"%s\"", json_path, split_names[s]);
            goto done;
        }
        int n = cJSON_GetArraySize(lists[s]);
        DataInput *inputs = xcalloc((size_t)n, sizeof *inputs);
        if (s == SPLIT_TRAIN) { out->train = inputs; out->n_train = n; }
        else { out->val = inputs; out->n_val = n; }
        int i = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, lists[s]) {
            char key[48];
            snprintf(key, sizeof key, "%s[%d]", split_names[s], i);
            if (parse_input(json_path, key, item, &inputs[i]) != 0) goto done;
            i++;
        }
    }
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc != 0) data_spec_free(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* the input fingerprint */

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    uint8_t b[8];
    put_le64(b, v);
    return tr_fnv1a64(b, 8, h);
}
/* The terminating NUL is hashed too, so ("ab","c") and ("a","bc") differ. */
static uint64_t fnv_str(uint64_t h, const char *s) { return tr_fnv1a64(s, strlen(s) + 1, h); }

static int input_stat(const DataInput *in, uint64_t *size, uint64_t *mtime_ns) {
    struct stat st;
    if (stat(in->path, &st) != 0) {
        tr_set_error("%s: cannot open input file: %s", in->path, strerror(errno));
        return -1;
    }
    *size = (uint64_t)st.st_size;
    *mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
    return 0;
}

static int spec_split(const DataSpec *spec, int s, const DataInput **inputs) {
    *inputs = s == SPLIT_TRAIN ? spec->train : spec->val;
    return s == SPLIT_TRAIN ? spec->n_train : spec->n_val;
}

/* Everything that decides the shards' bytes: the inputs (by name, size and modification time),
 * how they are read, the tokenizer and the shard size. */
static int inputs_fingerprint(const DataSpec *spec, uint64_t tok_hash, uint64_t shard_tokens,
                              uint64_t *out) {
    uint64_t h = fnv_str(TR_FNV_OFFSET, META_FORMAT " 1");
    for (int s = 0; s < N_SPLITS; s++) {
        const DataInput *inputs;
        int n = spec_split(spec, s, &inputs);
        h = fnv_str(h, split_names[s]);
        h = fnv_u64(h, (uint64_t)n);
        for (int i = 0; i < n; i++) {
            uint64_t size, mtime_ns;
            if (input_stat(&inputs[i], &size, &mtime_ns) != 0) return -1;
            h = fnv_str(h, inputs[i].path);
            h = fnv_str(h, text_format_name(inputs[i].format));
            h = fnv_u64(h, (uint64_t)inputs[i].skip);
            h = fnv_u64(h, size);
            h = fnv_u64(h, mtime_ns);
        }
    }
    h = fnv_u64(h, tok_hash);
    h = fnv_u64(h, shard_tokens);
    *out = h;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* meta.json: reading (shared by the reuse check and the loader) */

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

static void meta_free(Meta *m) {
    for (int s = 0; s < N_SPLITS; s++) {
        for (int i = 0; i < m->split[s].n_shards; i++) free(m->split[s].shards[i].file);
        free(m->split[s].shards);
    }
    free(m->path);
    memset(m, 0, sizeof *m);
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int meta_u64(const Meta *m, const cJSON *obj, const char *ctx, const char *key,
                    uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!json_number_to_u64(v, out)) {
        tr_set_error("%s: %s%s: missing or not a non-negative integer", m->path, ctx, key);
        return -1;
    }
    return 0;
}

static int parse_hex64(const char *s, uint64_t *out) {
    if (!s || strlen(s) != 16) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 1;
}

/* A shard name must be a plain file name in the dataset directory. */
static int shard_name_ok(const char *name) {
    return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

static int meta_parse_split(Meta *m, const cJSON *splits, int s) {
    char ctx[64];
    const char *name = split_names[s];
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(splits, name);
    if (!cJSON_IsObject(obj)) {
        tr_set_error("%s: splits.%s: missing or not an object", m->path, name);
        return -1;
    }
    MetaSplit *sp = &m->split[s];
    snprintf(ctx, sizeof ctx, "splits.%s.", name);
    if (meta_u64(m, obj, ctx, "tokens", &sp->tokens) || meta_u64(m, obj, ctx, "stories", &sp->stories) ||
        meta_u64(m, obj, ctx, "text_bytes", &sp->text_bytes) ||
        meta_u64(m, obj, ctx, "dropped", &sp->dropped))
        return -1;
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(obj, "shards");
    if (!cJSON_IsArray(shards)) {
        tr_set_error("%s: splits.%s.shards: missing or not a list", m->path, name);
        return -1;
    }
    int n = cJSON_GetArraySize(shards);
    sp->shards = xcalloc((size_t)n, sizeof *sp->shards);
    uint64_t sum = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, shards) {
        int i = sp->n_shards;
        snprintf(ctx, sizeof ctx, "splits.%s.shards[%d].", name, i);
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(item, "file");
        if (!cJSON_IsString(file) || !shard_name_ok(file->valuestring)) {
            tr_set_error("%s: %sfile: missing or not a plain file name", m->path, ctx);
            return -1;
        }
        sp->shards[i].file = xstrdup(file->valuestring);
        sp->n_shards++;
        if (meta_u64(m, item, ctx, "tokens", &sp->shards[i].tokens)) return -1;
        sum += sp->shards[i].tokens;
    }
    if (sum != sp->tokens) {
        tr_set_error("%s: splits.%s.tokens: %" PRIu64 " but its shards hold %" PRIu64, m->path, name,
                     sp->tokens, sum);
        return -1;
    }
    return 0;
}

/* Reads and checks <dir>/meta.json. 0, or -1 with the error set (naming meta.json and the key). */
static int meta_load(const char *dir, Meta *m) {
    memset(m, 0, sizeof *m);
    m->path = path_join(dir, "meta.json");
    char *text = tr_read_file(m->path, NULL);
    if (!text) return -1;  /* "<dir>/meta.json: cannot open: ..." */
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        tr_set_error("%s: malformed JSON (not an object)", m->path);
        goto done;
    }
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, META_FORMAT) != 0) {
        tr_set_error("%s: format: expected \"%s\"", m->path, META_FORMAT);
        goto done;
    }
    uint64_t version;
    if (meta_u64(m, root, "", "version", &version)) goto done;
    if (version != META_VERSION) {
        tr_set_error("%s: version: %" PRIu64 " is not supported (expected %d)", m->path, version,
                     META_VERSION);
        goto done;
    }
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(root, "fingerprint");
    if (!cJSON_IsString(fp) || strlen(fp->valuestring) >= sizeof m->fingerprint) {
        tr_set_error("%s: fingerprint: missing or not a hex string", m->path);
        goto done;
    }
    strcpy(m->fingerprint, fp->valuestring);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
    if (!cJSON_IsObject(tok)) {
        tr_set_error("%s: tokenizer: missing or not an object", m->path);
        goto done;
    }
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(tok, "hash");
    if (!cJSON_IsString(hash) || !parse_hex64(hash->valuestring, &m->tok_hash)) {
        tr_set_error("%s: tokenizer.hash: missing or not 16 hex digits", m->path);
        goto done;
    }
    uint64_t vocab, eot, bpt;
    if (meta_u64(m, tok, "tokenizer.", "vocab_size", &vocab) || meta_u64(m, tok, "tokenizer.", "eot", &eot) ||
        meta_u64(m, root, "", "token_bytes", &bpt))
        goto done;
    if (vocab == 0 || vocab > UINT32_MAX || eot >= vocab) {
        tr_set_error("%s: tokenizer: vocab_size %" PRIu64 " / eot %" PRIu64 " out of range", m->path,
                     vocab, eot);
        goto done;
    }
    if (bpt != token_bytes_for_vocab(vocab)) {
        tr_set_error("%s: token_bytes: %" PRIu64 " does not suit vocab_size %" PRIu64 " (expected %u)",
                     m->path, bpt, vocab, token_bytes_for_vocab(vocab));
        goto done;
    }
    m->vocab_size = (uint32_t)vocab;
    m->eot_id = (uint32_t)eot;
    m->token_bytes = (uint32_t)bpt;
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(root, "splits");
    if (!cJSON_IsObject(splits)) {
        tr_set_error("%s: splits: missing or not an object", m->path);
        goto done;
    }
    for (int s = 0; s < N_SPLITS; s++)
        if (meta_parse_split(m, splits, s) != 0) goto done;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* meta.json: writing */

static cJSON *json_u64(uint64_t v) { return cJSON_CreateNumber((double)v); }

static int meta_write(const char *dir, const char *fingerprint_hex, const Tokenizer *tok,
                      const char *tokenizer_path, uint32_t token_bytes, const DataSpec *spec,
                      const MetaSplit split[N_SPLITS]) {
    char hex[32];
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", META_FORMAT);
    cJSON_AddNumberToObject(root, "version", META_VERSION);
    cJSON_AddStringToObject(root, "fingerprint", fingerprint_hex);
    cJSON *t = cJSON_AddObjectToObject(root, "tokenizer");
    if (tokenizer_path) cJSON_AddStringToObject(t, "path", tokenizer_path);
    else cJSON_AddNullToObject(t, "path");
    snprintf(hex, sizeof hex, "%016" PRIx64, tok_hash(tok));
    cJSON_AddStringToObject(t, "hash", hex);
    cJSON_AddNumberToObject(t, "vocab_size", tok_vocab_size(tok));
    cJSON_AddNumberToObject(t, "eot", tok_eot_id(tok));
    cJSON_AddNumberToObject(root, "token_bytes", token_bytes);
    cJSON *inputs = cJSON_AddObjectToObject(root, "inputs");
    for (int s = 0; s < N_SPLITS; s++) {
        const DataInput *in;
        int n = spec_split(spec, s, &in);
        cJSON *list = cJSON_AddArrayToObject(inputs, split_names[s]);
        for (int i = 0; i < n; i++) {
            uint64_t size = 0, mtime;
            if (input_stat(&in[i], &size, &mtime) != 0) {
                cJSON_Delete(root);
                return -1;
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "path", in[i].path);
            cJSON_AddStringToObject(o, "format", text_format_name(in[i].format));
            cJSON_AddNumberToObject(o, "skip", (double)in[i].skip);
            cJSON_AddItemToObject(o, "size", json_u64(size));
            cJSON_AddItemToArray(list, o);
        }
    }
    cJSON *splits = cJSON_AddObjectToObject(root, "splits");
    for (int s = 0; s < N_SPLITS; s++) {
        cJSON *o = cJSON_AddObjectToObject(splits, split_names[s]);
        cJSON *list = cJSON_AddArrayToObject(o, "shards");
        for (int i = 0; i < split[s].n_shards; i++) {
            cJSON *sh = cJSON_CreateObject();
            cJSON_AddStringToObject(sh, "file", split[s].shards[i].file);
            cJSON_AddItemToObject(sh, "tokens", json_u64(split[s].shards[i].tokens));
            cJSON_AddItemToArray(list, sh);
        }
        cJSON_AddItemToObject(o, "tokens", json_u64(split[s].tokens));
        cJSON_AddItemToObject(o, "stories", json_u64(split[s].stories));
        cJSON_AddItemToObject(o, "text_bytes", json_u64(split[s].text_bytes));
        cJSON_AddItemToObject(o, "dropped", json_u64(split[s].dropped));
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char *path = path_join(dir, "meta.json");
    TrAtomicFile af;
    int rc = tr_atomic_open(&af, path);
    if (rc == 0) {
        fputs(text, af.f);
        fputc('\n', af.f);
        rc = tr_atomic_commit(&af);
    }
    free(path);
    cJSON_free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* writing shards */

typedef struct {
    const char *dir;
    const char *split;
    ShardHeader header;        /* template: everything but n_tokens */
    uint64_t cap;              /* shard_tokens */
    TrAtomicFile af;
    int open;
    char *path;                /* of the open shard */
    uint64_t n_in_shard;
    uint8_t *buf;              /* little-endian tokens waiting for fwrite */
    size_t buf_len, buf_cap;
    MetaSplit *out;            /* the shards written so far */
} ShardWriter;

static int writer_flush(ShardWriter *w) {
    if (w->buf_len && fwrite(w->buf, 1, w->buf_len, w->af.f) != w->buf_len) {
        tr_set_error("%s: write failed: %s", w->path, strerror(errno));
        return -1;
    }
    w->buf_len = 0;
    return 0;
}

static int writer_put(ShardWriter *w, uint32_t id) {
    if (w->buf_len + 4 > w->buf_cap && writer_flush(w) != 0) return -1;
    if (w->header.token_bytes == 2) {
        w->buf[w->buf_len++] = (uint8_t)id;
        w->buf[w->buf_len++] = (uint8_t)(id >> 8);
    } else {
        put_le32(w->buf + w->buf_len, id);
        w->buf_len += 4;
    }
    w->n_in_shard++;
    return 0;
}

static int writer_begin_shard(ShardWriter *w) {
    char name[64];
    snprintf(name, sizeof name, "%s_%03d.bin", w->split, w->out->n_shards);
    w->path = path_join(w->dir, name);
    if (tr_atomic_open(&w->af, w->path) != 0) {
        free(w->path);
        w->path = NULL;
        return -1;
    }
    w->open = 1;
    w->n_in_shard = 0;
    /* The token count is known only at the end: a placeholder header now, the real one on close. */
    uint8_t zeros[SHARD_HEADER_BYTES] = {0};
    if (fwrite(zeros, 1, sizeof zeros, w->af.f) != sizeof zeros) {
        tr_set_error("%s: write failed: %s", w->path, strerror(errno));
        return -1;
    }
    return writer_put(w, w->header.eot_id);
}

static void writer_abort(ShardWriter *w) {
    if (w->open) tr_atomic_abort(&w->af);
    w->open = 0;
    free(w->path);
    w->path = NULL;
}

static int writer_end_shard(ShardWriter *w) {
    if (writer_flush(w) != 0) return -1;
    ShardHeader h = w->header;
    h.n_tokens = w->n_in_shard;
    uint8_t bytes[SHARD_HEADER_BYTES];
    shard_header_encode(&h, bytes);
    if (fseeko(w->af.f, 0, SEEK_SET) != 0 || fwrite(bytes, 1, sizeof bytes, w->af.f) != sizeof bytes) {
        tr_set_error("%s: write failed: %s", w->path, strerror(errno));
        return -1;
    }
    w->open = 0;
    if (tr_atomic_commit(&w->af) != 0) return -1;
    MetaSplit *out = w->out;
    out->shards = xrealloc(out->shards, (size_t)(out->n_shards + 1) * sizeof *out->shards);
    const char *slash = strrchr(w->path, '/');
    out->shards[out->n_shards].file = xstrdup(slash ? slash + 1 : w->path);
    out->shards[out->n_shards].tokens = w->n_in_shard;
    out->n_shards++;
    out->tokens += w->n_in_shard;
    free(w->path);
    w->path = NULL;
    return 0;
}

/* Appends one story and its EOT. A story never straddles two shards: when it would push the shard
 * past the cap, the shard is closed first. A shard holds at least one story, even one that alone
 * exceeds the cap (only possible with a tiny shard_tokens). */
static int writer_add_story(ShardWriter *w, const uint32_t *ids, size_t n) {
    if (w->open && w->n_in_shard > 1 && w->n_in_shard + n + 1 > w->cap && writer_end_shard(w) != 0)
        return -1;
    if (!w->open && writer_begin_shard(w) != 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (writer_put(w, ids[i]) != 0) return -1;
    return writer_put(w, w->header.eot_id);
}

/* Reads every input of one split and writes its shards. */
static int prepare_split(const DataInput *inputs, int n_inputs, const Tokenizer *tok, ShardWriter *w,
                         StoryBatch *batch) {
    MetaSplit *out = w->out;
    for (int i = 0; i < n_inputs; i++) {
        const DataInput *in = &inputs[i];
        TextReader *r = data_input_open(in);
        if (!r) return -1;
        const uint8_t *story;
        size_t len;
        int rc = 1;
        uint64_t encoded = 0;
        while (rc > 0) {
            story_batch_clear(batch);
            while (!story_batch_full(batch) && (rc = text_reader_next(r, &story, &len)) > 0)
                story_batch_add(batch, story, len);
            if (rc < 0 || batch->n == 0) break;
            if (story_batch_encode(batch, tok, in->path) != 0) { rc = -1; break; }
            for (int k = 0; k < batch->n && rc >= 0; k++) {
                if (writer_add_story(w, batch->ids + batch->start[k], batch->n_ids[k]) != 0) rc = -1;
                out->text_bytes += batch->start[k + 1] - batch->start[k];
            }
            out->stories += (uint64_t)batch->n;
            encoded += (uint64_t)batch->n;
        }
        if (rc == 0 && encoded == 0) {
            tr_set_error("%s: skip %ld leaves no stories (the file holds %" PRIu64 ")", in->path,
                         in->skip, text_reader_stats(r).stories);
            rc = -1;
        }
        out->dropped += text_reader_stats(r).dropped;
        text_reader_close(r);
        if (rc < 0) return -1;
    }
    return w->open ? writer_end_shard(w) : 0;
}

/* "train_000.bin", "val_012.bin", ...: the names prepare writes. */
static int is_shard_name(const char *name) {
    for (int s = 0; s < N_SPLITS; s++) {
        size_t n = strlen(split_names[s]);
        if (strncmp(name, split_names[s], n) != 0 || name[n] != '_') continue;
        const char *p = name + n + 1;
        size_t digits = 0;
        while (p[digits] >= '0' && p[digits] <= '9') digits++;
        if (digits >= 3 && strcmp(p + digits, ".bin") == 0) return 1;
    }
    return 0;
}

/* Removes shard files of an earlier prepare that the new meta.json does not list. */
static int remove_stale_shards(const char *dir, const MetaSplit split[N_SPLITS]) {
    DIR *d = opendir(dir);
    if (!d) {
        tr_set_error("%s: cannot list directory: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_shard_name(e->d_name)) continue;
        int listed = 0;
        for (int s = 0; s < N_SPLITS && !listed; s++)
            for (int i = 0; i < split[s].n_shards && !listed; i++)
                listed = strcmp(split[s].shards[i].file, e->d_name) == 0;
        if (listed) continue;
        char *path = path_join(dir, e->d_name);
        if (remove(path) != 0) {
            tr_set_error("%s: cannot remove stale shard: %s", path, strerror(errno));
            rc = -1;
        }
        free(path);
    }
    closedir(d);
    return rc;
}

static void report_from_split(SplitReport *r, const MetaSplit *s, int reused) {
    r->tokens = s->tokens;
    r->stories = s->stories;
    r->text_bytes = s->text_bytes;
    r->dropped = s->dropped;
    r->n_shards = s->n_shards;
    r->reused = reused;
}

/* 1 if meta.json in dir was written for exactly these inputs and every shard it lists is there
 * with the size it should have; the report is then filled from it. */
static int shards_reusable(const char *dir, const char *fingerprint_hex, PrepareReport *report) {
    Meta m;
    int ok = meta_load(dir, &m) == 0 && strcmp(m.fingerprint, fingerprint_hex) == 0;
    for (int s = 0; s < N_SPLITS && ok; s++) {
        for (int i = 0; i < m.split[s].n_shards && ok; i++) {
            char *path = path_join(dir, m.split[s].shards[i].file);
            struct stat st;
            uint64_t want = SHARD_HEADER_BYTES + m.split[s].shards[i].tokens * m.token_bytes;
            ok = stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == want;
            free(path);
        }
    }
    if (ok) {
        report_from_split(&report->train, &m.split[SPLIT_TRAIN], 1);
        report_from_split(&report->val, &m.split[SPLIT_VAL], 1);
    }
    meta_free(&m);
    tr_clear_error();  /* a missing or stale meta.json is not an error here */
    return ok;
}

/* 1 if the file at path is a JSON object with "format": "tinyrope-shards". */
static int is_our_meta(const char *path) {
    char *text = tr_read_file(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    int ours = cJSON_IsString(format) && strcmp(format->valuestring, META_FORMAT) == 0;
    cJSON_Delete(root);
    return ours;
}

int shards_prepare(const DataSpec *spec, const Tokenizer *tok, const char *tokenizer_path,
                   const char *out_dir, uint64_t shard_tokens, int force, PrepareReport *report) {
    memset(report, 0, sizeof *report);
    if (shard_tokens == 0) shard_tokens = DEFAULT_SHARD_TOKENS;
    if (spec->n_train <= 0 || spec->n_val <= 0) {
        tr_set_error("%s: the data spec needs at least one train and one val input", out_dir);
        return -1;
    }
    int vocab = tok_vocab_size(tok), eot = tok_eot_id(tok);
    if (vocab <= 0 || eot < 0 || eot >= vocab) {
        tr_set_error("%s: tokenizer has vocab_size %d and eot %d", out_dir, vocab, eot);
        return -1;
    }
    uint64_t fingerprint;
    if (inputs_fingerprint(spec, tok_hash(tok), shard_tokens, &fingerprint) != 0) return -1;
    char fingerprint_hex[32];
    snprintf(fingerprint_hex, sizeof fingerprint_hex, "%016" PRIx64, fingerprint);

    if (tr_mkdir_p(out_dir) != 0) return -1;
    if (!force && shards_reusable(out_dir, fingerprint_hex, report)) return 0;

    /* From here on the directory is being rewritten: without meta.json it does not look finished.
     * A meta.json that is not ours means out_dir is the wrong directory: leave it alone. */
    char *meta_path = path_join(out_dir, "meta.json");
    if (tr_file_exists(meta_path) && !is_our_meta(meta_path)) {
        tr_set_error("%s: exists and is not a %s meta.json; not overwriting it (choose another "
                     "output directory)", meta_path, META_FORMAT);
        free(meta_path);
        return -1;
    }
    if (remove(meta_path) != 0 && errno != ENOENT) {
        tr_set_error("%s: cannot remove: %s", meta_path, strerror(errno));
        free(meta_path);
        return -1;
    }
    free(meta_path);

    MetaSplit split[N_SPLITS];
    memset(split, 0, sizeof split);
    StoryBatch batch;
    memset(&batch, 0, sizeof batch);
    ShardWriter w;
    memset(&w, 0, sizeof w);
    w.dir = out_dir;
    w.cap = shard_tokens;
    w.header.version = SHARD_VERSION;
    w.header.token_bytes = token_bytes_for_vocab((uint64_t)vocab);
    w.header.vocab_size = (uint32_t)vocab;
    w.header.eot_id = (uint32_t)eot;
    w.header.tok_hash = tok_hash(tok);
    w.buf_cap = 1u << 20;
    w.buf = xmalloc(w.buf_cap);

    int rc = 0;
    for (int s = 0; s < N_SPLITS && rc == 0; s++) {
        const DataInput *inputs;
        int n = spec_split(spec, s, &inputs);
        w.split = split_names[s];
        w.out = &split[s];
        double t0 = tr_now_seconds();
        rc = prepare_split(inputs, n, tok, &w, &batch);
        SplitReport *r = s == SPLIT_TRAIN ? &report->train : &report->val;
        report_from_split(r, &split[s], 0);
        r->seconds = tr_now_seconds() - t0;  /* reading + encoding + writing the split */
    }
    if (rc != 0) writer_abort(&w);
    if (rc == 0)
        rc = meta_write(out_dir, fingerprint_hex, tok, tokenizer_path, w.header.token_bytes, spec,
                        split);
    if (rc == 0) rc = remove_stale_shards(out_dir, split);

    free(w.buf);
    story_batch_free(&batch);
    for (int s = 0; s < N_SPLITS; s++) {
        for (int i = 0; i < split[s].n_shards; i++) free(split[s].shards[i].file);
        free(split[s].shards);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* the loader */

struct TokenLoader {
    int B, T, shuffle;
    uint64_t seed;
    int n_shards;
    char **paths;
    FILE **files;
    uint64_t *shard_tokens;
    uint64_t *window_start;    /* n_shards + 1 prefix sums: windows of shards before s */
    uint64_t n_windows, n_tokens, text_bytes;
    uint32_t token_bytes, vocab_size;
    int32_t eot_id;
    uint64_t *order;           /* training: this epoch's permutation of window indices */
    uint64_t order_epoch;
    int order_valid;
    LoaderState state;
    uint8_t *read_buf;         /* one window of raw little-endian tokens */
    int32_t *windows;          /* (B, T+1): loader_next_batch's windows before the shift */
    int *n_targets;            /* (B) */
};

/* Windows of a shard of n tokens. Window k = tokens [kT, kT+T], so it has min(T, n-1-kT) targets:
 * training keeps those with T targets, validation every one with at least one. */
static uint64_t shard_windows(uint64_t n, uint64_t T, int full_only) {
    if (n < 2) return 0;
    return full_only ? (n - 1) / T : (n - 1 + T - 1) / T;
}

/* Uniform in [0, n): draws above the largest multiple of n are rejected, so no value is favoured. */
static uint64_t uniform_below(uint64_t *state, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t r = tr_rng_u64(state);
        if (r < limit) return r % n;
    }
}

/* The window order of an epoch depends on (seed, epoch) only, so a saved (epoch, cursor) resumes
 * the exact same sequence. */
static void build_order(TokenLoader *L, uint64_t epoch) {
    uint64_t st = L->seed;
    st = tr_rng_u64(&st) ^ (epoch * 0xd1b54a32d192ed03ULL);
    st = tr_rng_u64(&st);
    uint64_t W = L->n_windows;
    for (uint64_t i = 0; i < W; i++) L->order[i] = i;
    for (uint64_t i = W - 1; i > 0; i--) {  /* Fisher-Yates */
        uint64_t j = uniform_below(&st, i + 1);
        uint64_t t = L->order[i];
        L->order[i] = L->order[j];
        L->order[j] = t;
    }
    L->order_epoch = epoch;
    L->order_valid = 1;
}

/* Checks one shard's header and size against meta.json and the expected tokenizer. */
static int check_shard(const Meta *m, const char *path, FILE *f, uint64_t meta_tokens,
                       uint64_t expected_tok_hash) {
    uint8_t b[SHARD_HEADER_BYTES];
    if (fread(b, 1, sizeof b, f) != sizeof b) {
        tr_set_error("%s: truncated: shorter than the %d-byte header", path, SHARD_HEADER_BYTES);
        return -1;
    }
    if (memcmp(b, SHARD_MAGIC, 8) != 0) {
        tr_set_error("%s: magic: not a tinyrope shard (bad magic)", path);
        return -1;
    }
    uint32_t version = get_le32(b + 8), bpt = get_le32(b + 12), vocab = get_le32(b + 24),
             eot = get_le32(b + 28);
    uint64_t n = get_le64(b + 16), hash = get_le64(b + 32);
    if (version != SHARD_VERSION) {
        tr_set_error("%s: version: %u is not supported (expected %d)", path, version, SHARD_VERSION);
        return -1;
    }
    if (bpt != m->token_bytes) {
        tr_set_error("%s: bytes per token: %u, but meta.json says %u", path, bpt, m->token_bytes);
        return -1;
    }
    if (n != meta_tokens) {
        tr_set_error("%s: token count: %" PRIu64 ", but meta.json says %" PRIu64, path, n, meta_tokens);
        return -1;
    }
    if (vocab != m->vocab_size) {
        tr_set_error("%s: vocab size: %u, but meta.json says %u", path, vocab, m->vocab_size);
        return -1;
    }
    if (eot != m->eot_id) {
        tr_set_error("%s: eot id: %u, but meta.json says %u", path, eot, m->eot_id);
        return -1;
    }
    if (hash != m->tok_hash || hash != expected_tok_hash) {
        tr_set_error("%s: made with another tokenizer (hash %016" PRIx64 ", expected %016" PRIx64 ")",
                     path, hash, expected_tok_hash);
        return -1;
    }
    for (int i = 40; i < SHARD_HEADER_BYTES; i++) {
        if (b[i] != 0) {
            tr_set_error("%s: header bytes 40..63 are not zero", path);
            return -1;
        }
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        tr_set_error("%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    uint64_t want = SHARD_HEADER_BYTES + n * bpt;
    if ((uint64_t)st.st_size != want) {
        tr_set_error("%s: file size: %" PRIu64 " bytes, but %" PRIu64 " tokens need %" PRIu64
                     " (truncated or damaged)", path, (uint64_t)st.st_size, n, want);
        return -1;
    }
    return 0;
}

TokenLoader *loader_open(const char *dir, const char *split, uint64_t expected_tok_hash, int B, int T,
                         int shuffle, uint64_t seed) {
    int s = -1;
    for (int k = 0; k < N_SPLITS; k++)
        if (split && strcmp(split, split_names[k]) == 0) s = k;
    if (s < 0) {
        tr_set_error("%s: unknown split \"%s\" (expected train or val)", dir, split ? split : "(null)");
        return NULL;
    }
    if (B < 1 || T < 1) {
        tr_set_error("%s: batch size %d and sequence length %d must be positive", dir, B, T);
        return NULL;
    }
    Meta m;
    if (meta_load(dir, &m) != 0) {
        meta_free(&m);
        return NULL;
    }
    if (m.tok_hash != expected_tok_hash) {
        tr_set_error("%s: made with another tokenizer (hash %016" PRIx64 ", expected %016" PRIx64 ")",
                     m.path, m.tok_hash, expected_tok_hash);
        meta_free(&m);
        return NULL;
    }
    const MetaSplit *sp = &m.split[s];
    TokenLoader *L = xcalloc(1, sizeof *L);
    L->B = B;
    L->T = T;
    L->shuffle = shuffle;
    L->seed = seed;
    L->token_bytes = m.token_bytes;
    L->vocab_size = m.vocab_size;
    L->eot_id = (int32_t)m.eot_id;
    L->text_bytes = sp->text_bytes;
    L->n_shards = sp->n_shards;
    L->paths = xcalloc((size_t)sp->n_shards + 1, sizeof *L->paths);
    L->files = xcalloc((size_t)sp->n_shards + 1, sizeof *L->files);
    L->shard_tokens = xcalloc((size_t)sp->n_shards + 1, sizeof *L->shard_tokens);
    L->window_start = xcalloc((size_t)sp->n_shards + 1, sizeof *L->window_start);
    L->read_buf = xmalloc(((size_t)T + 1) * L->token_bytes);
    L->windows = xmalloc((size_t)B * ((size_t)T + 1) * sizeof *L->windows);
    L->n_targets = xmalloc((size_t)B * sizeof *L->n_targets);
    uint64_t full_windows = 0;
    for (int i = 0; i < sp->n_shards; i++) {
        L->paths[i] = path_join(dir, sp->shards[i].file);
        L->files[i] = fopen(L->paths[i], "rb");
        if (!L->files[i]) {
            tr_set_error("%s: cannot open: %s", L->paths[i], strerror(errno));
            goto fail;
        }
        if (check_shard(&m, L->paths[i], L->files[i], sp->shards[i].tokens, expected_tok_hash) != 0)
            goto fail;
        uint64_t n = sp->shards[i].tokens;
        L->shard_tokens[i] = n;
        L->n_tokens += n;
        L->window_start[i] = L->n_windows;
        L->n_windows += shard_windows(n, (uint64_t)T, shuffle);
        full_windows += shard_windows(n, (uint64_t)T, 1);
    }
    L->window_start[sp->n_shards] = L->n_windows;
    if (full_windows == 0) {
        tr_set_error("%s: split %s has no full window of %d tokens (%" PRIu64 " tokens in %d shards)",
                     m.path, split, T + 1, L->n_tokens, sp->n_shards);
        goto fail;
    }
    if (shuffle) L->order = xmalloc(L->n_windows * sizeof *L->order);
    meta_free(&m);
    return L;
fail:
    meta_free(&m);
    loader_close(L);
    return NULL;
}

/* Reads global window g into row (T+1 tokens, EOT after its end); returns its target count or -1. */
static int read_window(TokenLoader *L, uint64_t g, int32_t *row) {
    int lo = 0, hi = L->n_shards;  /* the last shard whose first window is <= g */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (L->window_start[mid] <= g) lo = mid;
        else hi = mid;
    }
    uint64_t T = (uint64_t)L->T, first = (g - L->window_start[lo]) * T;
    uint64_t n = L->shard_tokens[lo] - first;
    if (n > T + 1) n = T + 1;
    uint32_t bpt = L->token_bytes;
    FILE *f = L->files[lo];
    if (fseeko(f, (off_t)(SHARD_HEADER_BYTES + first * bpt), SEEK_SET) != 0 ||
        fread(L->read_buf, bpt, n, f) != n) {
        tr_set_error("%s: read error at token %" PRIu64 " (file changed since it was opened?)",
                     L->paths[lo], first);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint32_t id = bpt == 2 ? (uint32_t)L->read_buf[2 * i] | (uint32_t)L->read_buf[2 * i + 1] << 8
                               : get_le32(L->read_buf + 4 * i);
        if (id >= L->vocab_size) {
            tr_set_error("%s: token %" PRIu64 " is %u, outside the vocabulary (%u)", L->paths[lo],
                         first + i, id, L->vocab_size);
            return -1;
        }
        row[i] = (int32_t)id;
    }
    for (uint64_t i = n; i <= T; i++) row[i] = L->eot_id;
    return (int)(n - 1);
}

int loader_next(TokenLoader *L, int32_t *tokens, int *n_targets) {
    const int B = L->B, row_len = L->T + 1;
    int got = 0;
    for (int b = 0; b < B; b++) {
        int32_t *row = tokens + (size_t)b * row_len;
        if (!L->shuffle && L->state.cursor >= L->n_windows) {
            for (int i = 0; i < row_len; i++) row[i] = L->eot_id;
            n_targets[b] = 0;
            continue;
        }
        uint64_t g = L->state.cursor;
        if (L->shuffle) {
            if (!L->order_valid || L->order_epoch != L->state.epoch) build_order(L, L->state.epoch);
            g = L->order[L->state.cursor];
        }
        int nt = read_window(L, g, row);
        if (nt < 0) return -1;
        n_targets[b] = nt;
        got++;
        L->state.cursor++;
        if (L->shuffle && L->state.cursor == L->n_windows) {  /* an epoch is complete */
            L->state.epoch++;
            L->state.cursor = 0;
        }
    }
    return got > 0 ? 1 : 0;
}

int loader_next_batch(TokenLoader *L, int32_t *inputs, int32_t *targets) {
    const int B = L->B, T = L->T;
    int rc = loader_next(L, L->windows, L->n_targets);
    if (rc != 1) return rc;
    for (int b = 0; b < B; b++) {
        const int32_t *w = L->windows + (size_t)b * (T + 1);
        for (int t = 0; t < T; t++) {
            inputs[(size_t)b * T + t] = w[t];
            targets[(size_t)b * T + t] = t < L->n_targets[b] ? w[t + 1] : -1;   /* the next token */
        }
    }
    return 1;
}

/* Validation: the next pass starts. Training: back to the very beginning (epoch 0, cursor 0). */
void loader_reset(TokenLoader *L) {
    L->state.epoch = 0;
    L->state.cursor = 0;
}

uint64_t loader_num_windows(const TokenLoader *L) { return L->n_windows; }
uint64_t loader_num_tokens(const TokenLoader *L) { return L->n_tokens; }
uint64_t loader_text_bytes(const TokenLoader *L) { return L->text_bytes; }
LoaderState loader_get_state(const TokenLoader *L) { return L->state; }

int loader_set_state(TokenLoader *L, LoaderState s) {
    if (s.cursor > L->n_windows) {
        tr_set_error("loader state: cursor %" PRIu64 " is past the %" PRIu64 " windows of the split",
                     s.cursor, L->n_windows);
        return -1;
    }
    if (L->shuffle && s.cursor == L->n_windows) {  /* the end of an epoch = the start of the next */
        s.epoch++;
        s.cursor = 0;
    }
    L->state = s;
    return 0;
}

void loader_close(TokenLoader *L) {
    if (!L) return;
    for (int i = 0; i < L->n_shards; i++) {
        if (L->files[i]) fclose(L->files[i]);
        free(L->paths[i]);
    }
    free(L->paths);
    free(L->files);
    free(L->shard_tokens);
    free(L->window_start);
    free(L->order);
    free(L->read_buf);
    free(L->windows);
    free(L->n_targets);
    free(L);
}
