/* shard_format.c: reads and checks a dataset's meta.json (format in shard_format.h), for both the
 * writer's reuse check (shard_writer.c) and the loader (loader.c). Also the split names and the
 * exact JSON integers that the data spec (data_spec.c) reads too.
 */
#include "data/shard_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

const char *const split_names[N_SPLITS] = {"train", "val"};

int json_number_to_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0)) return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

void meta_free(Meta *m) {
    for (int s = 0; s < N_SPLITS; s++) {
        for (int i = 0; i < m->split[s].n_shards; i++) free(m->split[s].shards[i].file);
        free(m->split[s].shards);
    }
    free(m->path);
    memset(m, 0, sizeof *m);
}

char *path_join(const char *dir, const char *name) {
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

int meta_load(const char *dir, Meta *m) {
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
