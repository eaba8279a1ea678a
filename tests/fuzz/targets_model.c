/* targets_model.c: fuzz targets for what a run reads besides data: checkpoints
 * (cli/checkpoint.h) loaded as they are and saved then loaded back, configs with a "base" file
 * and --set overrides (model/config.h), and positional-encoding options (model/posenc.h), whose
 * accepted settings must then initialise and run forward and backward on a tiny model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/util.h"
#include "cli/checkpoint.h"
#include "model/config.h"
#include "model/posenc.h"
#include "tests/fuzz/fuzz_targets.h"

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* An optimizer state of n parameters for checkpoint_load to fill (only m, v and t are used). */
static AdamW bare_adamw(size_t n) {
    AdamW opt;
    memset(&opt, 0, sizeof opt);
    opt.n_params = n;
    opt.m = xcalloc(n ? n : 1, sizeof(float));
    opt.v = xcalloc(n ? n : 1, sizeof(float));
    return opt;
}

/* The header's own config hash and parameter count are expected (a small count only), so the
 * fuzzer reaches the body; header byte 12 bit 1 loads without the optimizer. */
int fuzz_checkpoint(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("checkpoint.bin");
    fuzz_write_file(path, data, size);
    uint64_t hash = size >= 24 ? read_le64(data + 16) : 0, n = size >= 32 ? read_le64(data + 24) : 4;
    if (n > (1u << 16)) n = 4;
    int with_opt = size > 12 && !(data[12] & 2);
    float *params = xcalloc(n ? n : 1, sizeof *params);
    AdamW opt = bare_adamw(n);
    CheckpointState st;
    checkpoint_load(path, &st, hash, params, n, with_opt ? &opt : NULL);
    free(params);
    free(opt.m);
    free(opt.v);
    return 0;
}

/* The input becomes the state, then the parameters and moments; what is saved must load back
 * bit for bit. */
int fuzz_checkpoint_round_trip(const uint8_t *data, size_t size) {
    CheckpointState st, back;
    memset(&st, 0, sizeof st);
    memset(&back, 0xA5, sizeof back);
    size_t used = size < sizeof st ? size : sizeof st;
    memcpy(&st, data, used);
    data += used;
    size -= used;
    int with_opt = size % 2;
    size_t n = size / (with_opt ? 12 : 4);
    float *params = xmalloc((n ? n : 1) * sizeof *params), *loaded = xcalloc(n ? n : 1, sizeof *loaded);
    AdamW opt = bare_adamw(n), opt_back = bare_adamw(n);
    memcpy(params, data, n * sizeof *params);
    if (with_opt) {
        memcpy(opt.m, data + 4 * n, n * sizeof(float));
        memcpy(opt.v, data + 8 * n, n * sizeof(float));
        opt.t = st.step;
    }
    const char *path = fuzz_path("round_trip.ckpt");
    if (checkpoint_save(path, &st, params, n, with_opt ? &opt : NULL) == 0) {
        if (checkpoint_load(path, &back, st.config_hash, loaded, n, with_opt ? &opt_back : NULL) != 0)
            fuzz_fail("a saved checkpoint does not load: %s", tr_error());
        if (memcmp(&back, &st, sizeof st) != 0) fuzz_fail("the state changed on the way through the file");
        if (n && memcmp(loaded, params, n * sizeof *params) != 0) fuzz_fail("the parameters changed");
        if (with_opt && ((n && (memcmp(opt.m, opt_back.m, n * sizeof(float)) != 0 ||
                                memcmp(opt.v, opt_back.v, n * sizeof(float)) != 0)) ||
                         opt_back.t != opt.t))
            fuzz_fail("the optimizer state changed");
    }
    free(params);
    free(loaded);
    free(opt.m);
    free(opt.v);
    free(opt_back.m);
    free(opt_back.v);
    return 0;
}

/* Parts: the config, the file its "base" may name ("base.json", next to it), then one --set
 * override per part. */
int fuzz_config(const uint8_t *data, size_t size) {
    enum { MAX_PARTS = 10 };
    const uint8_t *start[MAX_PARTS];
    size_t len[MAX_PARTS];
    int n = fuzz_split(data, size, MAX_PARTS, start, len);
    const char *config_path = fuzz_path("config.json");
    fuzz_write_file(config_path, start[0], len[0]);
    fuzz_write_file(fuzz_path("base.json"), n > 1 ? start[1] : (const uint8_t *)"{}", n > 1 ? len[1] : 2);
    char *overrides[MAX_PARTS];
    int n_overrides = 0;
    for (int i = 2; i < n; i++) overrides[n_overrides++] = fuzz_strndup(start[i], len[i]);
    RunConfig cfg;
    if (config_load(&cfg, config_path, (const char *const *)overrides, n_overrides) == 0) {
        if (cfg.model.n_head <= 0 || cfg.model.n_embd % cfg.model.n_head != 0)
            fuzz_fail("accepted n_embd %ld with n_head %ld", cfg.model.n_embd, cfg.model.n_head);
        if (cfg.optim.min_lr > cfg.optim.lr) fuzz_fail("accepted min_lr above lr");
        /* The resolved config is stored next to log.csv and read again: it must load as itself. */
        char *json = config_to_json(&cfg);
        if (!json) fuzz_fail("config_to_json failed");
        const char *resolved_path = fuzz_path("resolved.json");
        fuzz_write_file(resolved_path, json, strlen(json));
        RunConfig again;
        if (config_load(&again, resolved_path, NULL, 0) != 0)
            fuzz_fail("the resolved config does not load: %s", tr_error());
        char *json_again = config_to_json(&again);
        if (!json_again || strcmp(json, json_again) != 0) fuzz_fail("the resolved config changes when loaded again");
        free(json);
        free(json_again);
        config_free(&again);
        config_free(&cfg);
    }
    for (int i = 0; i < n_overrides; i++) free(overrides[i]);
    return 0;
}

/* Bytes 0-3 pick the model's shape and batch; the rest is the posenc object. */
int fuzz_posenc(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    int NH = 1 + data[1] % 4, hs = 1 + data[2] % 16, B = 1 + (data[0] >> 1) % 2;
    ModelDims dims = {.L = 1 + data[0] % 2, .NH = NH, .hs = hs, .C = NH * hs, .max_T = 1 + data[3] % 24};
    char *text = fuzz_strndup(data + 4, size - 4);
    cJSON *options = cJSON_Parse(text);
    free(text);
    if (!options) return 0;
    PosEnc pe;
    if (posenc_create(&pe, options, dims) != 0) {
        cJSON_Delete(options);
        return 0;
    }
    const PosEncKind *k = pe.kind;
    const int L = dims.L, C = dims.C, T = dims.max_T < 6 ? dims.max_T : 6;
    size_t n_params = k->num_params ? k->num_params(&pe) : 0;
    int E = k->num_extra ? k->num_extra(&pe) : 0;
    size_t n_acts = k->num_acts ? k->num_acts(&pe, B, T) : 0, n_state = k->num_state ? k->num_state(&pe, B) : 0;
    if (E < 0 || n_params > (1u << 22) || n_acts > (1u << 22) || n_state > (1u << 22) || E > 4096)
        fuzz_fail("%s: sizes params %zu, extra %d, acts %zu, state %zu", k->name, n_params, E, n_acts, n_state);
    int max_pos = posenc_max_positions(&pe);
    if (max_pos < 0 || (max_pos > 0 && max_pos < dims.max_T)) fuzz_fail("%s: max positions %d", k->name, max_pos);
    const long S = posenc_qkv_stride(&pe);
    float *params = xcalloc(n_params + 1, sizeof(float)), *dparams = xcalloc(n_params + 1, sizeof(float));
    float *extra_w = xcalloc((size_t)L * E * C + 1, sizeof(float));
    float *qkv = xmalloc(((size_t)B * T * S + 1) * sizeof(float)), *dqkv = xmalloc(((size_t)B * T * S + 1) * sizeof(float));
    float *x = xmalloc(((size_t)B * T * C + 1) * sizeof(float)), *acts = xcalloc(n_acts + 1, sizeof(float));
    if (k->init) k->init(&pe, params, extra_w, (size_t)E * C, 3);
    uint64_t rng = 11;
    for (long i = 0; i < B * T * S; i++) qkv[i] = 0.5f * tr_rng_normal(&rng), dqkv[i] = tr_rng_normal(&rng);
    for (long i = 0; i < B * T * C; i++) x[i] = tr_rng_normal(&rng);
    if (k->embed_forward) k->embed_forward(&pe, x, params, B, T, 0);
    if (k->embed_backward) k->embed_backward(&pe, dparams, x, B, T, 0);
    for (int l = 0; l < L; l++) {
        if (k->qk_forward) k->qk_forward(&pe, l, qkv, x, params, acts, NULL, B, T, 0);
        if (k->qk_backward) k->qk_backward(&pe, l, dqkv, qkv, x, params, dparams, acts, B, T, 0);
    }
    for (long row = 0; row < B * T; row++)
        for (long i = 0; i < 2 * C; i++)
            if (!isfinite(qkv[row * S + i])) fuzz_fail("%s: accepted options that give a non-finite q or k", k->name);
    free(params); free(dparams); free(extra_w); free(qkv); free(dqkv); free(x); free(acts);
    posenc_destroy(&pe);
    cJSON_Delete(options);
    return 0;
}
