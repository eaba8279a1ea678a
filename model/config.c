/* config.c: the run configuration (see config.h). One table lists every key with its type, range
 * and default; loading = file, then --set overrides, then defaults for what is missing, then one
 * pass over the table that checks and copies every value, then the memory the model will need. */
#define _POSIX_C_SOURCE 200809L
#include "model/config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "model/gpt.h"

/* Config files are a few hundred bytes. A bigger one is a wrong path: a data file, or a device
 * such as /dev/zero that never ends (and whose stat size says 0), so reading stops at the limit. */
#define CONFIG_MAX_BYTES ((size_t)1 << 20)

/* Test hook (not in the header): the memory a run may use, in bytes; 0 = this machine's
 * physical memory. */
size_t config_memory_limit = 0;

typedef enum { F_INT, F_NUM, F_BOOL, F_STR, F_OBJECT } FieldType;

typedef struct {
    const char *key;        /* dotted path */
    FieldType type;
    size_t offset;          /* into RunConfig */
    size_t size;            /* capacity for F_STR */
    double min, max;        /* for F_INT / F_NUM */
    const char *dflt;       /* JSON text */
} Field;

#define FIELD(key, type, member, min, max, dflt) \
    {key, type, offsetof(RunConfig, member), sizeof(((RunConfig *)0)->member), min, max, dflt}
#define BIG 1e15

static const Field fields[] = {
    FIELD("data", F_STR, data, 0, 0, "\"configs/data/sample.json\""),
    FIELD("out_dir", F_STR, out_dir, 0, 0, "\"runs/run\""),
    FIELD("seed", F_INT, seed, 0, BIG, "1337"),
    FIELD("tokenizer.vocab_size", F_INT, tokenizer.vocab_size, 258, 1 << 20, "4096"),
    FIELD("tokenizer.file", F_STR, tokenizer.file, 0, 0, "\"\""),
    FIELD("model.n_layer", F_INT, model.n_layer, 1, 1024, "4"),
    FIELD("model.n_embd", F_INT, model.n_embd, 1, 1 << 16, "128"),
    FIELD("model.n_head", F_INT, model.n_head, 1, 1024, "4"),
    FIELD("model.block_size", F_INT, model.block_size, 1, 1 << 16, "128"),
    FIELD("model.posenc", F_OBJECT, model.posenc, 0, 0, "{\"kind\": \"rope\"}"),
    FIELD("train.batch_size", F_INT, train.batch_size, 1, 1 << 20, "16"),
    FIELD("train.grad_accum", F_INT, train.grad_accum, 1, 1 << 20, "1"),
    FIELD("train.max_steps", F_INT, train.max_steps, 1, BIG, "1000"),
    FIELD("train.eval_every", F_INT, train.eval_every, 1, BIG, "100"),
    FIELD("train.eval_max_tokens", F_INT, train.eval_max_tokens, 0, BIG, "0"),
    FIELD("train.log_every", F_INT, train.log_every, 1, BIG, "10"),
    FIELD("train.checkpoint_every", F_INT, train.checkpoint_every, 0, BIG, "0"),
    FIELD("train.sample_tokens", F_INT, train.sample_tokens, 0, 1 << 20, "200"),
    FIELD("optim.lr", F_NUM, optim.lr, 0, 10, "1e-3"),
    FIELD("optim.min_lr", F_NUM, optim.min_lr, 0, 10, "1e-4"),
    FIELD("optim.schedule", F_STR, optim.schedule, 0, 0, "\"cosine\""),
    FIELD("optim.warmup_steps", F_INT, optim.warmup_steps, 0, BIG, "100"),
    FIELD("optim.beta1", F_NUM, optim.beta1, 0, 0.999999, "0.9"),
    FIELD("optim.beta2", F_NUM, optim.beta2, 0, 0.999999, "0.95"),
    FIELD("optim.eps", F_NUM, optim.eps, 1e-30, 1, "1e-8"),
    FIELD("optim.weight_decay", F_NUM, optim.weight_decay, 0, 10, "0.1"),
    FIELD("optim.grad_clip", F_NUM, optim.grad_clip, 0, BIG, "1.0"),
    FIELD("optim.clip_per_group", F_BOOL, optim.clip_per_group, 0, 0, "false"),
    FIELD("optim.posenc_lr_mult", F_NUM, optim.posenc_lr_mult, 0, 1000, "1.0"),
    FIELD("optim.posenc_weight_decay", F_NUM, optim.posenc_weight_decay, 0, 10, "0.0"),
};
#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

/* Finds (create = 0) or makes (create = 1) the object holding the last component of key, and
 * returns that component in *leaf. NULL if a middle component is missing or not an object. */
static cJSON *parent_of(cJSON *root, const char *key, int create, char *leaf, size_t leaf_cap) {
    cJSON *node = root;
    const char *p = key;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= leaf_cap) return NULL;
        memcpy(leaf, p, n);
        leaf[n] = '\0';
        if (!dot) return node;
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, leaf);
        if (!child && create) child = cJSON_AddObjectToObject(node, leaf);
        if (!child || !cJSON_IsObject(child)) return NULL;
        node = child;
        p = dot + 1;
    }
}

static const Field *find_field(const char *key) {
    for (int i = 0; i < N_FIELDS; i++)
        if (!strcmp(fields[i].key, key)) return &fields[i];
    return NULL;
}

/* Every key in the tree must be a field, a section holding fields, or inside model.posenc. */
static int check_known_keys(const cJSON *node, const char *prefix, const char *where) {
    for (const cJSON *item = node->child; item; item = item->next) {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", item->string);
        if (find_field(key)) continue;   /* a leaf (model.posenc's contents are the kind's) */
        int is_section = 0;
        size_t n = strlen(key);
        for (int i = 0; i < N_FIELDS; i++)
            if (!strncmp(fields[i].key, key, n) && fields[i].key[n] == '.') is_section = 1;
        if (!is_section) {
            tr_set_error("%s: unknown key \"%s\"", where, key);
            return -1;
        }
        if (!cJSON_IsObject(item)) {
            tr_set_error("%s: \"%s\" must be an object", where, key);
            return -1;
        }
        if (check_known_keys(item, key, where) != 0) return -1;
    }
    return 0;
}

static int apply_override(cJSON *root, const char *text) {
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        tr_set_error("--set %s: expected key=value", text);
        return -1;
    }
    char key[256], leaf[128];
    if ((size_t)(eq - text) >= sizeof key) {
        tr_set_error("--set %s: key too long", text);
        return -1;
    }
    memcpy(key, text, (size_t)(eq - text));
    key[eq - text] = '\0';
    cJSON *value = cJSON_Parse(eq + 1);
    if (!value) value = cJSON_CreateString(eq + 1);   /* bare words are strings: kind=xpos */
    cJSON *parent = parent_of(root, key, 1, leaf, sizeof leaf);
    if (!parent) {
        cJSON_Delete(value);
        tr_set_error("--set %s: \"%s\" is not a key inside an object", text, key);
        return -1;
    }
    if (cJSON_GetObjectItemCaseSensitive(parent, leaf)) cJSON_ReplaceItemInObjectCaseSensitive(parent, leaf, value);
    else cJSON_AddItemToObject(parent, leaf, value);
    return 0;
}

static int read_field(RunConfig *cfg, cJSON *root, const Field *f, const char *where) {
    char leaf[128];
    cJSON *parent = parent_of(root, f->key, 1, leaf, sizeof leaf);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, leaf);
    if (!v) {
        v = cJSON_Parse(f->dflt);
        cJSON_AddItemToObject(parent, leaf, v);
    }
    char *dst = (char *)cfg + f->offset;
    switch (f->type) {
    case F_INT:
    case F_NUM: {
        if (!cJSON_IsNumber(v)) {
            tr_set_error("%s: %s must be a number", where, f->key);
            return -1;
        }
        double x = v->valuedouble;
        if (f->type == F_INT && x != floor(x)) {
            tr_set_error("%s: %s must be an integer, not %g", where, f->key, x);
            return -1;
        }
        if (!(x >= f->min && x <= f->max)) {
            tr_set_error("%s: %s = %g is outside [%g, %g]", where, f->key, x, f->min, f->max);
            return -1;
        }
        if (f->type == F_INT) *(long *)dst = (long)x;
        else *(double *)dst = x;
        return 0;
    }
    case F_BOOL:
        if (!cJSON_IsBool(v)) {
            tr_set_error("%s: %s must be true or false", where, f->key);
            return -1;
        }
        *(int *)dst = cJSON_IsTrue(v);
        return 0;
    case F_STR:
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= f->size) {
            tr_set_error("%s: %s must be a string (under %zu bytes)", where, f->key, f->size);
            return -1;
        }
        strcpy(dst, v->valuestring);
        return 0;
    case F_OBJECT:
        if (!cJSON_IsObject(v)) {
            tr_set_error("%s: %s must be an object", where, f->key);
            return -1;
        }
        *(cJSON **)dst = v;
        return 0;
    }
    return -1;
}

/* Copies every key of `over` into `into`, merging objects key by key (so a file that names only
 * model.posenc.chunk keeps the rest of its base's model section) and replacing anything else. */
static void merge_into(cJSON *into, const cJSON *over) {
    for (const cJSON *item = over->child; item; item = item->next) {
        cJSON *have = cJSON_GetObjectItemCaseSensitive(into, item->string);
        if (have && cJSON_IsObject(have) && cJSON_IsObject(item)) {
            merge_into(have, item);
        } else {
            cJSON *copy = cJSON_Duplicate(item, 1);
            if (have) cJSON_ReplaceItemInObjectCaseSensitive(into, item->string, copy);
            else cJSON_AddItemToObject(into, item->string, copy);
        }
    }
}


/* Reads a config file as a JSON object. A top-level "base": "other.json" (a path relative to this
 * file's directory) is read first, recursively, and this file's keys are merged over it: the
 * configs of one comparison name their shared base once and then only what differs. */
static cJSON *read_config_file(const char *path, int depth) {
    if (depth > 16) {
        tr_set_error("%s: \"base\" nests more than 16 files deep (a cycle?)", path);
        return NULL;
    }
    char *text = tr_read_file_at_most(path, CONFIG_MAX_BYTES, "a config file", NULL);
    if (!text) return NULL;
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        /* The error pointer points into text, so report before freeing it. */
        const char *near = root ? "" : cJSON_GetErrorPtr();
        tr_set_error("%s: not a JSON object (parse error near \"%.20s\")", path, near ? near : "");
        cJSON_Delete(root);
        free(text);
        return NULL;
    }
    free(text);
    cJSON *base_name = cJSON_DetachItemFromObjectCaseSensitive(root, "base");
    if (!base_name) return root;
    if (!cJSON_IsString(base_name) || !base_name->valuestring[0]) {
        tr_set_error("%s: \"base\" must be the path of another config file", path);
        cJSON_Delete(base_name);
        cJSON_Delete(root);
        return NULL;
    }
    char base_path[1024];
    const char *slash = strrchr(path, '/');
    int dir_len = slash && base_name->valuestring[0] != '/' ? (int)(slash - path + 1) : 0;
    snprintf(base_path, sizeof base_path, "%.*s%s", dir_len, path, base_name->valuestring);
    cJSON_Delete(base_name);
    cJSON *merged = read_config_file(base_path, depth + 1);
    if (!merged) {
        char inner[1200];
        snprintf(inner, sizeof inner, "%s", tr_error());
        tr_set_error("%s: base: %s", path, inner);
        cJSON_Delete(root);
        return NULL;
    }
    merge_into(merged, root);
    cJSON_Delete(root);
    return merged;
}

/* ---- the memory a run needs ---- */

/* The keys that size the model and its batch, in the order a refusal blames them on a tie. */
enum { SIZE_EMBD, SIZE_LAYER, SIZE_BLOCK, SIZE_BATCH, SIZE_VOCAB, SIZE_HEAD, N_SIZE_KEYS };
static const char *const size_keys[N_SIZE_KEYS] = {"model.n_embd", "model.n_layer", "model.block_size",
                                                   "train.batch_size", "tokenizer.vocab_size", "model.n_head"};

static size_t run_bytes(const long v[N_SIZE_KEYS], const PosEnc *pe) {
    GPTConfig gc = {.V = (int)v[SIZE_VOCAB], .L = (int)v[SIZE_LAYER], .C = (int)v[SIZE_EMBD],
                    .NH = (int)v[SIZE_HEAD], .max_T = (int)v[SIZE_BLOCK]};
    return gpt_training_bytes(&gc, pe, (int)v[SIZE_BATCH], (int)v[SIZE_BLOCK]);
}

/* The key whose lowering to its default saves the most memory: the one to blame. */
static const char *key_to_blame(const long v[N_SIZE_KEYS]) {
    int best = 0;
    size_t best_bytes = SIZE_MAX;
    for (int i = 0; i < N_SIZE_KEYS; i++) {
        long lowered[N_SIZE_KEYS];
        memcpy(lowered, v, sizeof lowered);
        long dflt = atol(find_field(size_keys[i])->dflt);
        if (lowered[i] > dflt) lowered[i] = dflt;
        size_t bytes = run_bytes(lowered, NULL);
        if (bytes < best_bytes) best = i, best_bytes = bytes;
    }
    return size_keys[best];
}

static void format_bytes(char *out, size_t cap, size_t bytes) {
    static const char *const units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
    double x = (double)bytes;
    int u = 0;
    while (x >= 1000 && u < 6) x /= 1000, u++;
    snprintf(out, cap, x < 100 && u ? "%s%.1f %s" : "%s%.0f %s", bytes == SIZE_MAX ? "over " : "", x, units[u]);
}

/* Refuses a model that cannot fit in memory before any data work starts: the parameters, their
 * gradients, AdamW's moments and the activations at the config's batch. The count without the
 * positional encoding comes first, because building the encoding of an absurd shape allocates
 * tables of its own; an encoding whose options are wrong is left to the model build to report. */
int config_check_training_memory(const RunConfig *cfg, const char *where) {
    long v[N_SIZE_KEYS] = {cfg->model.n_embd, cfg->model.n_layer, cfg->model.block_size, cfg->train.batch_size,
                           cfg->tokenizer.vocab_size, cfg->model.n_head};
    size_t limit = config_memory_limit;
    if (!limit) {
        long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || page_size <= 0) return 0;   /* unknown: nothing to check against */
        limit = (size_t)pages > SIZE_MAX / (size_t)page_size ? SIZE_MAX : (size_t)pages * (size_t)page_size;
    }
    size_t bytes = run_bytes(v, NULL);
    if (bytes <= limit) {
        ModelDims dims = {.L = (int)v[SIZE_LAYER], .C = (int)v[SIZE_EMBD], .NH = (int)v[SIZE_HEAD],
                          .hs = (int)(v[SIZE_EMBD] / v[SIZE_HEAD]), .max_T = (int)v[SIZE_BLOCK]};
        PosEnc pe;
        if (posenc_create(&pe, cfg->model.posenc, dims) != 0) return 0;
        bytes = run_bytes(v, &pe);
        posenc_destroy(&pe);
        if (bytes <= limit) return 0;
    }
    char need[64], have[64];
    format_bytes(need, sizeof need, bytes);
    format_bytes(have, sizeof have, limit);
    tr_set_error("%s: %s: a model of %s (parameters, gradients, AdamW state, activations at batch_size %ld, "
                 "block_size %ld) does not fit in this machine's %s", where, key_to_blame(v), need,
                 v[SIZE_BATCH], v[SIZE_BLOCK], have);
    return -1;
}

int config_load(RunConfig *cfg, const char *path, const char *const *overrides, int n_overrides) {
    memset(cfg, 0, sizeof *cfg);
    const char *where = path ? path : "(defaults)";
    cJSON *root = path ? read_config_file(path, 0) : cJSON_CreateObject();
    if (!root) return -1;
    cfg->json = root;
    for (int i = 0; i < n_overrides; i++)
        if (apply_override(root, overrides[i]) != 0) goto fail;
    if (check_known_keys(root, "", where) != 0) goto fail;
    for (int i = 0; i < N_FIELDS; i++)
        if (read_field(cfg, root, &fields[i], where) != 0) goto fail;
    if (strcmp(cfg->optim.schedule, "cosine") && strcmp(cfg->optim.schedule, "constant")) {
        tr_set_error("%s: optim.schedule must be \"cosine\" or \"constant\", not \"%s\"", where, cfg->optim.schedule);
        goto fail;
    }
    if (cfg->optim.min_lr > cfg->optim.lr) {
        tr_set_error("%s: optim.min_lr %g is above optim.lr %g", where, cfg->optim.min_lr, cfg->optim.lr);
        goto fail;
    }
    if (cfg->model.n_embd % cfg->model.n_head != 0) {
        tr_set_error("%s: model.n_embd %ld is not divisible by model.n_head %ld", where, cfg->model.n_embd,
                     cfg->model.n_head);
        goto fail;
    }
    return 0;
fail:
    config_free(cfg);
    return -1;
}

void config_free(RunConfig *cfg) {
    cJSON_Delete(cfg->json);
    memset(cfg, 0, sizeof *cfg);
}

char *config_to_json(const RunConfig *cfg) { return cJSON_Print(cfg->json); }
