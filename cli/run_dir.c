/* run_dir.c: opening a run directory: its config, tokenizer, model and checkpoint (see run_dir.h). */
#include "cli/run_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"

void run_dir_path(char *out, size_t cap, const char *dir, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

void run_dir_init(RunDir *rd, const char *dir) {
    rd->dir = dir;
    run_dir_path(rd->config_path, sizeof rd->config_path, dir, "config.json");
    run_dir_path(rd->checkpoint_path, sizeof rd->checkpoint_path, dir, "checkpoint.bin");
    run_dir_path(rd->data_dir, sizeof rd->data_dir, dir, "data");
    rd->tokenizer_path[0] = '\0';
    rd->tokenizer = NULL;
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
    if (!(rd->tokenizer = tok_load(rd->tokenizer_path))) tr_die_with_error();
    run_dir_build_model(rd, max_T);
    run_dir_load_checkpoint(rd, NULL);
}

void run_dir_build_model(RunDir *rd, int max_T) {
    const RunConfig *cfg = &rd->config;
    GPTConfig mc = {.V = tok_vocab_size(rd->tokenizer), .L = (int)cfg->model.n_layer, .C = (int)cfg->model.n_embd,
                    .NH = (int)cfg->model.n_head, .max_T = max_T};
    if (gpt_build(&rd->model, &mc, cfg->model.posenc, (uint64_t)cfg->seed) != 0) tr_die_with_error();
}

uint64_t run_dir_config_hash(const RunDir *rd) {
    char *model_json = cJSON_PrintUnformatted(cJSON_GetObjectItem(rd->config.json, "model"));
    uint64_t h = tr_fnv1a64(model_json, strlen(model_json), TR_FNV_OFFSET);
    long shape[2] = {rd->config.train.batch_size, rd->config.train.grad_accum};
    uint64_t tok_h = tok_hash(rd->tokenizer);
    h = tr_fnv1a64(shape, sizeof shape, h);
    h = tr_fnv1a64(&tok_h, sizeof tok_h, h);
    free(model_json);
    return h;
}

void run_dir_load_checkpoint(RunDir *rd, AdamW *opt) {
    if (checkpoint_load(rd->checkpoint_path, &rd->progress, run_dir_config_hash(rd), rd->model.params_memory,
                        rd->model.num_params, opt) != 0)
        tr_die_with_error();
}

void run_dir_free(RunDir *rd) {
    gpt_free(&rd->model);
    tok_free(rd->tokenizer);
    config_free(&rd->config);
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
