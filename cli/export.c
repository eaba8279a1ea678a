/* export.c: `train export` and `train import`: a run's parameters as named safetensors tensors and
 * back into a run directory (see export.h; the reference is docs/export.md). */
#define _POSIX_C_SOURCE 200809L
#include "cli/export.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"
#include "cli/checkpoint.h"
#include "cli/run_dir.h"
#include "cli/tok_json.h"
#include "data/data_spec.h"
#include "data/shard_writer.h"

/* ---- the model's tensors ---- */

/* Appends a tensor of shape (d0) when d1 == 0, else (d0, d1). */
static void add_tensor(ModelTensor *list, int *n, float *data, int64_t d0, int64_t d1, const char *fmt, ...)
    TR_PRINTF(6, 7);
static void add_tensor(ModelTensor *list, int *n, float *data, int64_t d0, int64_t d1, const char *fmt, ...) {
    ModelTensor *t = &list[(*n)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = data;
}

int model_tensors(const GPT *m, ModelTensor **out) {
    const ParameterTensors *p = &m->params;
    const PosEnc *pe = &m->posenc;
    const int64_t V = m->config.V, L = m->config.L, C = m->config.C, S = m->S, E = posenc_kind_extra(pe),
                  E_bias = posenc_bias_extra(pe);
    const char *kind = pe->kind->name;
    const int hdd = !strcmp(kind, "hddrope"), learned = !strcmp(kind, "learned");
    /* the posenc tensor: the kind's parameters, then its score bias's (posenc.h) */
    const size_t n_posenc = posenc_kind_params(pe), n_bias = posenc_bias_params(pe);
    float *bias_params = m->posenc_params ? m->posenc_params + n_posenc : NULL;
    ModelTensor *list = xcalloc((size_t)(11 * L + 5), sizeof *list);
    int n = 0;
    add_tensor(list, &n, p->wte, V, C, "wte.weight");
    if (learned) add_tensor(list, &n, m->posenc_params, (int64_t)n_posenc / C, C, "wpe.weight");
    for (int64_t l = 0; l < L; l++) {
        add_tensor(list, &n, p->ln1w + l * C, C, 0, "h.%lld.ln_1.weight", (long long)l);
        add_tensor(list, &n, p->qkvw + l * S * C, 3 * C, C, "h.%lld.attn.c_attn.weight", (long long)l);
        /* The posenc's extra rows of Wqkv: HDD-RoPE's generator W_g (the only kind with such rows). */
        if (E) add_tensor(list, &n, p->qkvw + (l * S + 3 * C) * C, E, C, "h.%lld.attn.%s.%s", (long long)l, kind,
                          hdd ? "w_g" : "extra_weight");
        /* The score bias's extra rows (FoX's w_f, a row per head), after the kind's. */
        if (E_bias)
            add_tensor(list, &n, p->qkvw + (l * S + 3 * C + E) * C, E_bias, C, "h.%lld.attn.%s.weight", (long long)l,
                       pe->bias->name);
        if (n_bias)
            add_tensor(list, &n, bias_params + (size_t)l * (n_bias / (size_t)L), (int64_t)n_bias / L, 0,
                       "h.%lld.attn.%s.bias", (long long)l, pe->bias->name);
        if (hdd && n_posenc)
            add_tensor(list, &n, m->posenc_params + (size_t)l * (n_posenc / (size_t)L), (int64_t)n_posenc / L, 0,
                       "h.%lld.attn.hddrope.g_base", (long long)l);
        add_tensor(list, &n, p->attprojw + l * C * C, C, C, "h.%lld.attn.c_proj.weight", (long long)l);
        add_tensor(list, &n, p->ln2w + l * C, C, 0, "h.%lld.ln_2.weight", (long long)l);
        add_tensor(list, &n, p->fcw + l * 4 * C * C, 4 * C, C, "h.%lld.mlp.c_fc.weight", (long long)l);
        add_tensor(list, &n, p->fcprojw + l * C * 4 * C, C, 4 * C, "h.%lld.mlp.c_proj.weight", (long long)l);
    }
    add_tensor(list, &n, p->lnfw, C, 0, "ln_f.weight");
    /* A kind not named above keeps its parameters in one flat tensor. */
    if (n_posenc && !hdd && !learned) add_tensor(list, &n, m->posenc_params, (int64_t)n_posenc, 0, "%s.params", kind);
    *out = list;
    return n;
}

static size_t tensor_elements(const ModelTensor *t) { return (size_t)t->shape[0] * (t->ndim == 2 ? (size_t)t->shape[1] : 1); }

void export_tokenizer_path(char *out, size_t cap, const char *weights_path) {
    static const char suffix[] = ".safetensors";
    size_t n = strlen(weights_path), k = sizeof suffix - 1;
    if (n > k && !strcmp(weights_path + n - k, suffix)) n -= k;
    snprintf(out, cap, "%.*s.tokenizer.json", (int)n, weights_path);
}

/* ---- export ---- */

void export_run(const char *run_dir, const char *out_path) {
    /* A missing directory, config or checkpoint is reported by the loaders, naming the file. */
    RunDir rd;
    run_dir_init(&rd, run_dir);
    run_dir_read_config(&rd);
    run_dir_load_model(&rd, (int)rd.config.model.block_size);

    ModelTensor *tensors;
    const int n = model_tensors(&rd.model, &tensors);
    StTensorOut *views = xcalloc((size_t)n, sizeof *views);
    size_t covered = 0;
    for (int i = 0; i < n; i++) {
        views[i] = (StTensorOut){.name = tensors[i].name, .ndim = tensors[i].ndim, .data = tensors[i].data};
        memcpy(views[i].shape, tensors[i].shape, sizeof tensors[i].shape);
        covered += tensor_elements(&tensors[i]);
    }
    if (covered != rd.model.num_params)
        tr_die("export: the named tensors cover %zu of the model's %zu parameters", covered, rd.model.num_params);

    char tok_path[RUN_DIR_PATH_MAX], step[32];
    export_tokenizer_path(tok_path, sizeof tok_path, out_path);
    snprintf(step, sizeof step, "%llu", (unsigned long long)rd.progress.step);
    const char *tok_name = strrchr(tok_path, '/') ? strrchr(tok_path, '/') + 1 : tok_path;
    char *config_json = cJSON_PrintUnformatted(rd.config.json);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");   /* what PyTorch-side loaders expect */
    cJSON_AddStringToObject(meta, EXPORT_FORMAT_KEY, EXPORT_FORMAT);
    cJSON_AddStringToObject(meta, EXPORT_VERSION_KEY, EXPORT_VERSION);
    cJSON_AddStringToObject(meta, EXPORT_CONFIG_KEY, config_json);
    cJSON_AddStringToObject(meta, "tinyrope.posenc", rd.model.posenc.kind->name);
    cJSON_AddStringToObject(meta, "tinyrope.step", step);
    cJSON_AddStringToObject(meta, "tinyrope.tokenizer", tok_name);
    if (st_write(out_path, views, n, meta) != 0 || tok_json_write(rd.tokenizer, tok_path) != 0) tr_die_with_error();
    printf("exported %s (step %s, %s): %d tensors, %zu parameters -> %s; tokenizer -> %s\n", run_dir, step,
           rd.model.posenc.kind->name, n, rd.model.num_params, out_path, tok_path);
    cJSON_Delete(meta);
    free(config_json);
    free(views);
    free(tensors);
    run_dir_free(&rd);
}

/* ---- import ---- */

static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t at = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && at < cap; d++)
        at += (size_t)snprintf(out + at, cap - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < cap) snprintf(out + at, cap - at, "]");
}

/* Copies each of the model's tensors from the file, which must hold exactly those tensors, each
 * F32 and of the model's shape; dies naming the first tensor that is not. */
static void copy_tensors(const char *path, const StFile *f, const GPT *model) {
    ModelTensor *tensors;
    const int n = model_tensors(model, &tensors);
    for (int i = 0; i < n; i++) {
        const ModelTensor *want = &tensors[i];
        const StTensorIn *got = st_find(f, want->name);
        char want_shape[64], got_shape[256];
        format_shape(want_shape, sizeof want_shape, want->ndim, want->shape);
        if (!got) tr_die("%s: tensor %s: missing (the config's model has it, shape %s)", path, want->name, want_shape);
        if (strcmp(got->dtype, "F32")) tr_die("%s: tensor %s: dtype %s, the model needs F32", path, want->name, got->dtype);
        format_shape(got_shape, sizeof got_shape, got->ndim, got->shape);
        if (strcmp(got_shape, want_shape))
            tr_die("%s: tensor %s: shape %s, the config's model needs %s", path, want->name, got_shape, want_shape);
        memcpy(want->data, f->data + got->begin, tensor_elements(want) * sizeof(float));
    }
    for (int i = 0; i < f->n; i++) {
        int known = 0;
        for (int j = 0; j < n && !known; j++) known = !strcmp(f->tensors[i].name, tensors[j].name);
        if (!known) tr_die("%s: tensor %s: not a parameter of the config's model", path, f->tensors[i].name);
    }
    free(tensors);
}

/* The config the file was exported with, from its metadata; dies when it is not there. */
static const char *metadata_config(const char *path, const StFile *f) {
    const cJSON *format = f->metadata ? cJSON_GetObjectItemCaseSensitive(f->metadata, EXPORT_FORMAT_KEY) : NULL;
    const cJSON *version = f->metadata ? cJSON_GetObjectItemCaseSensitive(f->metadata, EXPORT_VERSION_KEY) : NULL;
    const cJSON *config = f->metadata ? cJSON_GetObjectItemCaseSensitive(f->metadata, EXPORT_CONFIG_KEY) : NULL;
    if (!format || !config)
        tr_die("%s: __metadata__ has no %s and %s: give the model's config with --config", path, EXPORT_FORMAT_KEY,
               EXPORT_CONFIG_KEY);
    if (strcmp(format->valuestring, EXPORT_FORMAT) || !version || strcmp(version->valuestring, EXPORT_VERSION))
        tr_die("%s: __metadata__: %s \"%s\" version \"%s\" is not %s version %s", path, EXPORT_FORMAT_KEY,
               format->valuestring, version ? version->valuestring : "", EXPORT_FORMAT, EXPORT_VERSION);
    return config->valuestring;
}

static void write_text(const char *path, const char *text) {
    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) tr_die_with_error();
    if (fputs(text, af.f) == EOF) {
        tr_atomic_abort(&af);
        tr_die("%s: write failed", path);
    }
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
}

/* The config: the file's (or --config), the user's --set, then this directory as out_dir and its
 * own tokenizer.bpe (tokenizer.file ""). */
static void load_import_config(RunDir *rd, const ImportOptions *o, const StFile *f) {
    char staged[RUN_DIR_PATH_MAX + 16];
    const char *source = o->config_path;
    if (!source) {
        snprintf(staged, sizeof staged, "%s.import", rd->config_path);
        write_text(staged, metadata_config(o->in_path, f));
        source = staged;
    }
    cJSON *dir = cJSON_CreateString(o->out_dir);
    char *dir_json = cJSON_PrintUnformatted(dir);
    char *out_dir_set = xmalloc(strlen(dir_json) + 16);
    sprintf(out_dir_set, "out_dir=%s", dir_json);
    const char **sets = xcalloc((size_t)o->n_sets + 2, sizeof *sets);
    for (int i = 0; i < o->n_sets; i++) sets[i] = o->sets[i];
    sets[o->n_sets] = out_dir_set;
    sets[o->n_sets + 1] = "tokenizer.file=\"\"";
    const int rc = config_load(&rd->config, source, sets, o->n_sets + 2);
    if (source == staged) remove(staged);
    if (rc != 0) tr_die_with_error();
    trained_posenc_check(&rd->config, o->config_path ? o->config_path : o->in_path);
    free(sets);
    free(out_dir_set);
    free(dir_json);
    cJSON_Delete(dir);
}

void import_run(const ImportOptions *o) {
    StFile f;
    if (st_read(o->in_path, &f) != 0) tr_die_with_error();
    RunDir rd;
    run_dir_init(&rd, o->out_dir);
    if (tr_file_exists(rd.checkpoint_path))
        tr_die("%s: exists: import builds a new run directory (give another --out)", rd.checkpoint_path);
    if (tr_mkdir_p(o->out_dir) != 0) tr_die_with_error();
    load_import_config(&rd, o, &f);

    char tok_json_path[RUN_DIR_PATH_MAX];
    if (o->tokenizer_path) snprintf(tok_json_path, sizeof tok_json_path, "%s", o->tokenizer_path);
    else export_tokenizer_path(tok_json_path, sizeof tok_json_path, o->in_path);
    if (!(rd.tokenizer = tok_json_read(tok_json_path))) tr_die_with_error();
    run_dir_build_model(&rd, (int)rd.config.model.block_size);
    copy_tensors(o->in_path, &f, &rd.model);

    /* Everything checked: write the run directory. */
    run_dir_name_tokenizer(&rd);
    if (tok_save(rd.tokenizer, rd.tokenizer_path) != 0) tr_die_with_error();
    char *config_json = config_to_json(&rd.config);
    const size_t json_len = strlen(config_json);
    config_json = xrealloc(config_json, json_len + 2);
    memcpy(config_json + json_len, "\n", 2);
    write_text(rd.config_path, config_json);
    free(config_json);
    /* Zero moments and step 0, so `train run --resume` can train on from these weights. */
    const size_t P = rd.model.num_params;
    AdamW fresh = {.n_params = P, .m = xcalloc(P ? P : 1, sizeof(float)), .v = xcalloc(P ? P : 1, sizeof(float))};
    CheckpointState start = {.config_hash = run_dir_config_hash(&rd)};
    if (checkpoint_save(rd.checkpoint_path, &start, rd.model.params_memory, P, &fresh) != 0) tr_die_with_error();
    free(fresh.m);
    free(fresh.v);
    char log_path[RUN_DIR_PATH_MAX];
    run_dir_path(log_path, sizeof log_path, o->out_dir, "log.csv");
    write_text(log_path, "step,tokens,train_loss,val_loss,val_bpb,val_acc,lr,grad_norm,elapsed_s,tokens_per_s\n");

    if (!o->no_data) {
        DataSpec spec;
        PrepareReport report;
        if (data_spec_load(rd.config.data, &spec) != 0) tr_die_with_error();
        if (shards_prepare(&spec, rd.tokenizer, rd.tokenizer_path, rd.data_dir, 0, 0, &report) != 0)
            tr_die_with_error();
        data_spec_free(&spec);
    }
    printf("imported %s: %d tensors, %zu parameters -> %s (config.json, tokenizer.bpe, checkpoint.bin at step 0, "
           "log.csv%s)\n", o->in_path, f.n, P, o->out_dir, o->no_data ? "" : ", data/");
    st_free(&f);
    run_dir_free(&rd);
}
