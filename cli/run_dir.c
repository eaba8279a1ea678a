/* run_dir.c: opening a run directory: its config, tokenizer, model and checkpoint (see run_dir.h). */
#include "cli/run_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "cli/args.h"
#include "cli/task_run.h"

void run_dir_path(char *out, size_t cap, const char *dir, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

void run_dir_init(RunDir *rd, const char *dir) {
    rd->dir = dir;
    run_dir_path(rd->config_path, sizeof rd->config_path, dir, "config.json");
    run_dir_path(rd->checkpoint_path, sizeof rd->checkpoint_path, dir, "checkpoint.bin");
    run_dir_path(rd->data_dir, sizeof rd->data_dir, dir, "data");
    rd->tokenizer_path[0] = '\0';
    rd->tokenizer = NULL;
    rd->task = NULL;
    rd->lock_fd = -1;
}

void run_dir_read_config(RunDir *rd) {
    if (config_load(&rd->config, rd->config_path, NULL, 0) != 0) tr_die_with_error();
}

void run_dir_name_tokenizer(RunDir *rd) {
    if (rd->config.tokenizer.file[0])
        snprintf(rd->tokenizer_path, sizeof rd->tokenizer_path, "%s", rd->config.tokenizer.file);
    else run_dir_path(rd->tokenizer_path, sizeof rd->tokenizer_path, rd->dir, "tokenizer.bpe");
}

void run_dir_load_model(RunDir *rd, int max_T) {
    run_dir_name_tokenizer(rd);
    if (!rd->task && !(rd->tokenizer = tok_load(rd->tokenizer_path))) tr_die_with_error();
    run_dir_build_model(rd, max_T);
    run_dir_load_checkpoint(rd, NULL);
}

void run_dir_build_model(RunDir *rd, int max_T) {
    const RunConfig *cfg = &rd->config;
    const int V = rd->task ? (int)cfg->tokenizer.vocab_size : tok_vocab_size(rd->tokenizer);
    GPTConfig mc = {.V = V, .L = (int)cfg->model.n_layer, .C = (int)cfg->model.n_embd,
                    .NH = (int)cfg->model.n_head, .max_T = max_T};
    if (gpt_build(&rd->model, &mc, cfg->model.posenc, (uint64_t)cfg->seed) != 0) tr_die_with_error();
}

/* The model section of the config, posenc included. */
static uint64_t model_section_hash(const RunConfig *cfg) {
    char *model_json = cJSON_PrintUnformatted(cJSON_GetObjectItem(cfg->json, "model"));
    uint64_t h = tr_fnv1a64(model_json, strlen(model_json), TR_FNV_OFFSET);
    free(model_json);
    return h;
}

static void batch_shape(const RunConfig *cfg, long shape[2]) {
    shape[0] = cfg->train.batch_size;
    shape[1] = cfg->train.grad_accum;
}

/* The data part of the hash: the tokenizer's, or a task run's spec and vocabulary. */
static uint64_t data_hash(const RunDir *rd) { return rd->task ? rd->task->hash : tok_hash(rd->tokenizer); }

uint64_t run_dir_config_hash(const RunDir *rd) {
    long shape[2];
    batch_shape(&rd->config, shape);
    uint64_t tok_h = data_hash(rd);
    uint64_t h = tr_fnv1a64(shape, sizeof shape, model_section_hash(&rd->config));
    return tr_fnv1a64(&tok_h, sizeof tok_h, h);
}

void run_dir_start_progress(RunDir *rd) {
    long shape[2];
    batch_shape(&rd->config, shape);
    rd->progress = (CheckpointState){.config_hash = run_dir_config_hash(rd),
                                     .model_hash = model_section_hash(&rd->config),
                                     .batch_hash = tr_fnv1a64(shape, sizeof shape, TR_FNV_OFFSET),
                                     .tokenizer_hash = data_hash(rd)};
}

/* Appends "key: <then> there, <now> here" for each key of the two JSON objects whose values
 * differ, recursing into nested objects. */
static void append_key_differences(char *out, size_t cap, const char *prefix, const cJSON *then, const cJSON *now) {
    for (int side = 0; side < 2; side++) {
        const cJSON *walk = side ? then : now, *other = side ? now : then;
        for (const cJSON *item = walk ? walk->child : NULL; item; item = item->next) {
            const cJSON *match = cJSON_GetObjectItemCaseSensitive(other, item->string);
            if (side && match) continue;   /* keys on both sides are compared in the first pass */
            char key[256];
            snprintf(key, sizeof key, "%s.%s", prefix, item->string);
            if (cJSON_IsObject(item) && cJSON_IsObject(match)) {
                append_key_differences(out, cap, key, side ? item : match, side ? match : item);
                continue;
            }
            const cJSON *then_item = side ? item : match, *now_item = side ? match : item;
            char *a = then_item ? cJSON_PrintUnformatted(then_item) : xstrdup("unset");
            char *b = now_item ? cJSON_PrintUnformatted(now_item) : xstrdup("unset");
            size_t len = strlen(out);
            if (strcmp(a, b) != 0 && len < cap)
                snprintf(out + len, cap - len, "%s%s %s there, %s here", out[0] ? "; " : "", key, a, b);
            free(a);
            free(b);
        }
    }
}

/* The checkpoint was made with another configuration: says which of the hashed parts differ and,
 * when the run's config.json is the one the checkpoint was made with, which keys. */
static void die_config_differs(const RunDir *rd, const CheckpointState *found) {
    RunDir here = *rd;
    run_dir_start_progress(&here);
    const CheckpointState *now = &here.progress;
    if (!found->model_hash && !found->batch_hash && !found->tokenizer_hash)
        tr_die("%s: made with another model, tokenizer or batch shape (config hash differs)", rd->checkpoint_path);
    RunConfig recorded;
    const int have_recorded = config_load(&recorded, rd->config_path, NULL, 0) == 0;
    tr_clear_error();
    char parts[2400] = "";
    if (found->model_hash != now->model_hash) {
        char keys[700] = "";
        if (have_recorded && model_section_hash(&recorded) == found->model_hash)
            append_key_differences(keys, sizeof keys, "model", cJSON_GetObjectItem(recorded.json, "model"),
                                   cJSON_GetObjectItem(rd->config.json, "model"));
        snprintf(parts, sizeof parts, "another model configuration (%s)", keys[0] ? keys : "the model section differs");
    }
    if (found->batch_hash != now->batch_hash) {
        char batch[200] = "the batch shape differs";
        long shape[2];
        if (have_recorded) batch_shape(&recorded, shape);
        if (have_recorded && tr_fnv1a64(shape, sizeof shape, TR_FNV_OFFSET) == found->batch_hash)
            snprintf(batch, sizeof batch, "train.batch_size %ld there, %ld here; train.grad_accum %ld there, %ld here",
                     shape[0], rd->config.train.batch_size, shape[1], rd->config.train.grad_accum);
        size_t len = strlen(parts);
        snprintf(parts + len, sizeof parts - len, "%sanother batch shape (%s)", len ? " and " : "", batch);
    }
    if (found->tokenizer_hash != now->tokenizer_hash) {
        size_t len = strlen(parts);
        if (rd->task)
            snprintf(parts + len, sizeof parts - len, "%sanother task spec or tokenizer.vocab_size (not %s)",
                     len ? " and " : "", rd->config.data);
        else
            snprintf(parts + len, sizeof parts - len, "%sanother tokenizer (not %s)", len ? " and " : "",
                     rd->tokenizer_path);
    }
    if (have_recorded) config_free(&recorded);
    tr_die("%s: made with %s; the config hash differs", rd->checkpoint_path, parts);
}

void run_dir_load_checkpoint(RunDir *rd, AdamW *opt) {
    if (!tr_file_exists(rd->checkpoint_path))
        tr_die("%s: not found: %s", rd->checkpoint_path,
               opt ? "nothing to resume; train first, or drop --resume to start afresh"
                   : "train the run first");
    CheckpointState found;
    if (checkpoint_read_state(rd->checkpoint_path, &found) == 0 && found.config_hash != run_dir_config_hash(rd))
        die_config_differs(rd, &found);
    if (checkpoint_load(rd->checkpoint_path, &rd->progress, run_dir_config_hash(rd), rd->model.params_memory,
                        rd->model.num_params, opt) != 0)
        tr_die_with_error();
}

void run_dir_free(RunDir *rd) {
    gpt_free(&rd->model);
    tok_free(rd->tokenizer);
    task_run_free(rd->task);
    rd->task = NULL;
    config_free(&rd->config);
    if (rd->lock_fd >= 0) close(rd->lock_fd); /* releases the lock */
    rd->lock_fd = -1;
}

void trained_posenc_create(PosEnc *pe, const RunConfig *cfg, const char *config_path) {
    ModelDims dims = {.L = (int)cfg->model.n_layer, .C = (int)cfg->model.n_embd, .NH = (int)cfg->model.n_head,
                      .hs = (int)(cfg->model.n_embd / cfg->model.n_head), .max_T = (int)cfg->model.block_size};
    if (posenc_create(pe, cfg->model.posenc, dims) != 0) tr_die("%s: model.%s", config_path, tr_error());
}

void trained_posenc_check(const RunConfig *cfg, const char *config_path) {
    PosEnc probe;
    trained_posenc_create(&probe, cfg, config_path);
    posenc_destroy(&probe);
}
