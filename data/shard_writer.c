/* shard_writer.c: turns the text files of a data spec into token shards (shards_prepare). The
 * format is described in shard_format.h; loader.c reads the shards back.
 *   - prepare reads stories in batches, encodes a batch in parallel (OpenMP, one story per task),
 *     and writes the ids in input order, so the shards do not depend on the thread count;
 *   - every output (each shard, then meta.json) is written to a temporary file and renamed, and the
 *     old meta.json is removed before the first shard is touched: an interrupted prepare never
 *     looks finished.
 */
#define _POSIX_C_SOURCE 200809L
#include "data/shard_writer.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "data/shard_format.h"
#include "data/story_batch.h"
#include "base/util.h"

#define DEFAULT_SHARD_TOKENS (1ULL << 27)

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
    tr_put_le32(out + 8, h->version);
    tr_put_le32(out + 12, h->token_bytes);
    tr_put_le64(out + 16, h->n_tokens);
    tr_put_le32(out + 24, h->vocab_size);
    tr_put_le32(out + 28, h->eot_id);
    tr_put_le64(out + 32, h->tok_hash);
}

/* ---------------------------------------------------------------------------------------------- */
/* the input fingerprint */

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    uint8_t b[8];
    tr_put_le64(b, v);
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
        tr_atomic_writef(&af, "%s\n", text);
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
    if (w->buf_len && tr_atomic_write(&w->af, w->buf, w->buf_len) != 0) return -1;
    w->buf_len = 0;
    return 0;
}

static int writer_put(ShardWriter *w, uint32_t id) {
    if (w->buf_len + 4 > w->buf_cap && writer_flush(w) != 0) return -1;
    if (w->header.token_bytes == 2) {
        w->buf[w->buf_len++] = (uint8_t)id;
        w->buf[w->buf_len++] = (uint8_t)(id >> 8);
    } else {
        tr_put_le32(w->buf + w->buf_len, id);
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
    if (tr_atomic_write(&w->af, zeros, sizeof zeros) != 0) return -1;
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
    if (fseeko(w->af.f, 0, SEEK_SET) != 0) {
        tr_set_error("%s: cannot write: %s", w->path, strerror(errno));
        return -1;
    }
    if (tr_atomic_write(&w->af, bytes, sizeof bytes) != 0) return -1;
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

/* The files prepare writes: the shards and meta.json. */
static int is_prepare_output(const char *name) { return is_shard_name(name) || !strcmp(name, "meta.json"); }

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
    if ((report->removed_temporaries = tr_remove_stale_temporaries(out_dir, is_prepare_output)) < 0) return -1;
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
