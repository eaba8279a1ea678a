/* test_export.c: `./train export` and `./train import` on tiny trained runs (RoPE, and dynamic
 * HDD-RoPE with its generator rows and g_base): the file is read here on its own, by the format's
 * rules, and every tensor is compared bit for bit with the checkpoint's parameters at offsets
 * worked out here from the layout in model/gpt.h; an imported run samples the same story and
 * evaluates to the same loss; damaged and mismatched files are refused with one error line naming
 * the file and the tensor; and `run --resume` from imported initial weights trains exactly as a
 * fresh run. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/util.h"
#include "cli/export.h"
#include "cli/run_dir.h"
#include "cli/safetensors.h"
#include "tests/cli_test_helpers.h"

#define EXPORT_RUN "run configs/demo.json --set model.n_layer=2 --set model.n_embd=32 --set model.n_head=2 "   \
                   "--set model.block_size=32 --set train.batch_size=4 --set train.eval_every=6 "              \
                   "--set optim.warmup_steps=2 --set train.sample_tokens=0 --set train.eval_max_tokens=4096"

/* Trains `posenc` (--set arguments) for `steps` into <tmp>/export_<name>; 0 on success. */
static int train_tiny(const char *name, const char *posenc, int steps, char *dir, size_t cap) {
    char args[2048];
    snprintf(dir, cap, "%s/export_%s", test_tmp_dir(), name);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    if (system(args) != 0) return -1;
    snprintf(args, sizeof args, EXPORT_RUN " %s --set train.max_steps=%d --set out_dir=%s", posenc, steps, dir);
    int rc = run_train(args);
    CHECKF(rc == 0, "%s: %s", name, err_buf);
    return rc;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* ---- the file, read by the format's rules ---- */

typedef struct {
    char name[96];
    int64_t shape[4];
    int ndim;
    uint64_t begin, end;
} Entry;

static int by_begin(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Checks path against the rules; fills entries (sorted by offset) and the metadata copy. Returns
 * the number of tensors, -1 after a failed CHECK. *data_out points into *bytes_out. */
static int read_independently(const char *path, Entry *entries, int cap, cJSON **metadata, uint8_t **bytes_out,
                              const uint8_t **data_out) {
    size_t size = 0;
    uint8_t *bytes = (uint8_t *)tr_read_file(path, &size);
    *bytes_out = bytes;
    CHECKF(bytes && size >= 8, "%s: unreadable or shorter than 8 bytes", path);
    if (!bytes || size < 8) return -1;
    const uint64_t N = le64(bytes);
    CHECKF(N <= size - 8, "header length %llu, file %zu bytes", (unsigned long long)N, size);
    CHECKF((8 + N) % 8 == 0, "data area starts at %llu, not 8-byte aligned", (unsigned long long)(8 + N));
    if (N > size - 8) return -1;
    const char *header = (const char *)bytes + 8, *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, N, &json_end, 0);
    CHECK(cJSON_IsObject(root) && header[0] == '{');
    if (!cJSON_IsObject(root)) return -1;
    for (const char *p = json_end; p < header + N; p++) CHECKF(*p == ' ', "padding byte 0x%02x", (unsigned char)*p);
    const uint64_t data_len = size - 8 - N;
    int n = 0;
    *metadata = NULL;
    for (cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            for (cJSON *m = e->child; m; m = m->next) CHECKF(cJSON_IsString(m), "metadata %s is not a string", m->string);
            *metadata = cJSON_Duplicate(e, 1);
            continue;
        }
        CHECK(n < cap);
        if (n >= cap) break;
        Entry *t = &entries[n++];
        snprintf(t->name, sizeof t->name, "%s", e->string);
        const cJSON *dtype = cJSON_GetObjectItem(e, "dtype"), *shape = cJSON_GetObjectItem(e, "shape");
        const cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
        CHECKF(cJSON_IsString(dtype) && !strcmp(dtype->valuestring, "F32"), "%s: dtype", t->name);
        CHECK(cJSON_IsArray(shape) && cJSON_GetArraySize(shape) <= 4 && cJSON_IsArray(off) && cJSON_GetArraySize(off) == 2);
        uint64_t elements = 1;
        t->ndim = 0;
        for (cJSON *d = shape->child; d && t->ndim < 4; d = d->next) elements *= (uint64_t)(t->shape[t->ndim++] = (int64_t)d->valuedouble);
        t->begin = (uint64_t)off->child->valuedouble;
        t->end = (uint64_t)off->child->next->valuedouble;
        CHECKF(t->begin <= t->end && t->end <= data_len, "%s: offsets [%llu, %llu) outside %llu", t->name,
               (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)data_len);
        CHECKF(t->end - t->begin == 4 * elements, "%s: %llu bytes for %llu floats", t->name,
               (unsigned long long)(t->end - t->begin), (unsigned long long)elements);
    }
    cJSON_Delete(root);
    qsort(entries, (size_t)n, sizeof *entries, by_begin);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        CHECKF(entries[i].begin == at, "%s starts at %llu, previous ends at %llu", entries[i].name,
               (unsigned long long)entries[i].begin, (unsigned long long)at);
        at = entries[i].end;
    }
    CHECKF(at == data_len, "tensors end at %llu, the file's data area at %llu", (unsigned long long)at,
           (unsigned long long)data_len);
    *data_out = bytes + 8 + N;
    return n;
}

/* Where a tensor lives in the checkpoint's parameters, from gpt.h's layout: wte (V,C), ln1w (L,C),
 * qkvw (L,S,C), attprojw (L,C,C), ln2w (L,C), fcw (L,4C,C), fcprojw (L,C,4C), lnfw (C), then the
 * posenc's own (HDD-RoPE: g_base (L,G); learned: (T,C)). Returns the float offset, -1 if unknown;
 * *count gets the number of floats and shape the dims. */
typedef struct {
    long V, L, C, S, G, T;
} Dims;

static long checkpoint_offset(const Dims *d, const char *name, long *count, long shape[2]) {
    const long V = d->V, L = d->L, C = d->C, S = d->S;
    const long wte = 0, ln1 = wte + V * C, qkv = ln1 + L * C, proj = qkv + L * S * C, ln2 = proj + L * C * C;
    const long fc = ln2 + L * C, fcproj = fc + L * 4 * C * C, lnf = fcproj + L * C * 4 * C, pe = lnf + C;
    int l;
    char rest[64];
    shape[1] = 0;
#define AT(off, a, b) (shape[0] = (a), shape[1] = (b), *count = (a) * ((b) != 0 ? (b) : 1), (off))
    if (!strcmp(name, "wte.weight")) return AT(wte, V, C);
    if (!strcmp(name, "ln_f.weight")) return AT(lnf, C, 0);
    if (!strcmp(name, "wpe.weight")) return AT(pe, d->T, C);
    if (sscanf(name, "h.%d.%63s", &l, rest) != 2 || l < 0 || l >= L) return -1;
    if (!strcmp(rest, "ln_1.weight")) return AT(ln1 + l * C, C, 0);
    if (!strcmp(rest, "attn.c_attn.weight")) return AT(qkv + l * S * C, 3 * C, C);
    if (!strcmp(rest, "attn.hddrope.w_g")) return AT(qkv + l * S * C + 3 * C * C, S - 3 * C, C);
    if (!strcmp(rest, "attn.hddrope.g_base")) return AT(pe + l * d->G, d->G, 0);
    /* a score bias after a kind without extra rows or parameters: FoX's w_f (NH rows), b_f (NH) */
    if (!strcmp(rest, "attn.fox.weight")) return AT(qkv + l * S * C + 3 * C * C, S - 3 * C, C);
    if (!strcmp(rest, "attn.fox.bias")) return AT(pe + l * (S - 3 * C), S - 3 * C, 0);
    if (!strcmp(rest, "attn.c_proj.weight")) return AT(proj + l * C * C, C, C);
    if (!strcmp(rest, "ln_2.weight")) return AT(ln2 + l * C, C, 0);
    if (!strcmp(rest, "mlp.c_fc.weight")) return AT(fc + l * 4 * C * C, 4 * C, C);
    if (!strcmp(rest, "mlp.c_proj.weight")) return AT(fcproj + l * C * 4 * C, C, 4 * C);
#undef AT
    return -1;
}

/* Exports dir to <dir>.safetensors and checks the file against dir/checkpoint.bin. */
static void check_export(const char *dir, const Dims *d, int expect_tensors, char *weights, size_t cap) {
    char args[2048], path[1200];
    snprintf(weights, cap, "%s.safetensors", dir);
    snprintf(args, sizeof args, "export %s --out %s", dir, weights);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    snprintf(path, sizeof path, "%s.tokenizer.json", dir);
    CHECKF(tr_file_exists(path), "no tokenizer file %s", path);

    Entry entries[64];
    cJSON *meta = NULL;
    uint8_t *bytes = NULL;
    const uint8_t *data = NULL;
    int n = read_independently(weights, entries, 64, &meta, &bytes, &data);
    CHECKF(n == expect_tensors, "%d tensors, want %d", n, expect_tensors);
    const cJSON *config = cJSON_GetObjectItem(meta, "tinyrope.config");
    cJSON *cfg = config ? cJSON_Parse(config->valuestring) : NULL;
    CHECKF(cfg && cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, "model"), "n_layer")->valueint == d->L,
           "metadata config");
    cJSON_Delete(cfg);

    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    size_t ckpt_size = 0;
    uint8_t *ckpt = (uint8_t *)tr_read_file(path, &ckpt_size);
    CHECK(ckpt && ckpt_size > 128);
    const long P = ckpt ? (long)le64(ckpt + 24) : 0;
    const float *params = ckpt ? (const float *)(ckpt + 128) : NULL;
    long covered = 0;
    for (int i = 0; i < n && params && data; i++) {
        long count, shape[2];
        long off = checkpoint_offset(d, entries[i].name, &count, shape);
        CHECKF(off >= 0, "unexpected tensor %s", entries[i].name);
        if (off < 0) continue;
        CHECKF(entries[i].shape[0] == shape[0] && (shape[1] ? entries[i].ndim == 2 && entries[i].shape[1] == shape[1]
                                                            : entries[i].ndim == 1),
               "%s: shape", entries[i].name);
        CHECKF(off + count <= P && !memcmp(data + entries[i].begin, params + off, (size_t)count * 4),
               "%s differs from the checkpoint", entries[i].name);
        covered += count;
    }
    CHECKF(covered == P, "the tensors hold %ld of the checkpoint's %ld parameters", covered, P);
    free(ckpt);
    free(bytes);
    cJSON_Delete(meta);
}

/* Imports weights into <dir>_imported and checks that sample and eval agree with dir's. */
static void check_import_agrees(const char *dir, const char *weights) {
    char args[2048], imported[700], story[sizeof out_buf], eval_line[512];
    snprintf(imported, sizeof imported, "%s_imported", dir);
    snprintf(args, sizeof args, "rm -rf %s", imported);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, "import %s --out %s", weights, imported);
    CHECKF(run_train(args) == 0, "%s", err_buf);

    const char *sample = "sample %s --seed 7 --temperature 0.9 --top-p 0.95 --tokens 24 --prompt 'The dog'";
    snprintf(args, sizeof args, sample, dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    snprintf(story, sizeof story, "%s", out_buf);
    snprintf(args, sizeof args, sample, imported);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    CHECKF(!strcmp(story, out_buf) && strlen(story) > 10, "stories differ:\n%s\n%s", story, out_buf);

    snprintf(args, sizeof args, "eval %s --max-tokens 4096", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    const char *loss = strstr(out_buf, "val loss ");
    snprintf(eval_line, sizeof eval_line, "%s", loss ? loss : "(none)");
    snprintf(args, sizeof args, "eval %s --max-tokens 4096", imported);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    loss = strstr(out_buf, "val loss ");
    /* the same loss, bits per byte and token count; only the timing may differ */
    CHECKF(loss && !strncmp(loss, eval_line, (size_t)(strstr(eval_line, " tokens") - eval_line)),
           "eval: %s vs %s", eval_line, loss ? loss : "(none)");
}

static void test_export_import_rope(void) {
    char dir[600], weights[700];
    if (train_tiny("rope", "--set model.posenc.kind=rope", 6, dir, sizeof dir) != 0) return;
    const Dims d = {.V = 4096, .L = 2, .C = 32, .S = 96, .G = 0, .T = 32};
    check_export(dir, &d, 1 + 2 * 6 + 1, weights, sizeof weights);
    check_import_agrees(dir, weights);
}

/* Dynamic HDD-RoPE (the default): c = 4, hs = 16, so 4 chunks of 6 generators per head, G = 48
 * extra Wqkv rows (W_g) and g_base of 48 per layer. */
static void test_export_import_hddrope(void) {
    char dir[600], weights[700];
    if (train_tiny("hdd", "--set model.posenc.kind=hddrope --set model.posenc.dynamic=true", 6, dir, sizeof dir) != 0)
        return;
    const Dims d = {.V = 4096, .L = 2, .C = 32, .S = 96 + 48, .G = 48, .T = 32};
    check_export(dir, &d, 1 + 2 * 8 + 1, weights, sizeof weights);
    check_import_agrees(dir, weights);
}

/* RoPE with FoX's forget gate: NH = 2 extra Wqkv rows (w_f) and b_f of 2 per layer. */
static void test_export_import_rope_fox(void) {
    char dir[600], weights[700];
    if (train_tiny("fox", "--set model.posenc.bias=fox", 6, dir, sizeof dir) != 0) return;
    const Dims d = {.V = 4096, .L = 2, .C = 32, .S = 96 + 2, .G = 0, .T = 32};
    check_export(dir, &d, 1 + 2 * 8 + 1, weights, sizeof weights);
    check_import_agrees(dir, weights);
}

/* ---- refusals ---- */

/* Writes dst: src with its header edited by edit (on the parsed header) and the data area cut by
 * drop_tail bytes; the header is padded back to 8 bytes. */
static void write_edited(const char *src, const char *dst, void (*edit)(cJSON *header), size_t drop_tail) {
    size_t size;
    uint8_t *bytes = (uint8_t *)tr_read_file(src, &size);
    const uint64_t N = le64(bytes);
    cJSON *header = cJSON_ParseWithLength((const char *)bytes + 8, N);
    edit(header);
    char *json = cJSON_PrintUnformatted(header);
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    FILE *f = fopen(dst, "wb");
    uint8_t prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (uint8_t)(padded >> (8 * i));
    fwrite(prefix, 1, 8, f);
    fwrite(json, 1, len, f);
    for (size_t i = len; i < padded; i++) fputc(' ', f);
    fwrite(bytes + 8 + N, 1, size - 8 - N - drop_tail, f);
    fclose(f);
    free(json);
    free(bytes);
    cJSON_Delete(header);
}

static void set_offsets(cJSON *entry, double begin, double end) {
    cJSON *off = cJSON_GetObjectItem(entry, "data_offsets");
    cJSON_SetNumberValue(cJSON_GetArrayItem(off, 0), begin);
    cJSON_SetNumberValue(cJSON_GetArrayItem(off, 1), end);
}
/* h.0.ln_1.weight starts 4 bytes early: it overlaps wte; the last tensor ends 4 bytes early. */
static void edit_overlap(cJSON *h) {
    cJSON *ln1 = cJSON_GetObjectItem(h, "h.0.ln_1.weight");
    cJSON *off = cJSON_GetObjectItem(ln1, "data_offsets");
    double b = cJSON_GetArrayItem(off, 0)->valuedouble, e = cJSON_GetArrayItem(off, 1)->valuedouble;
    set_offsets(ln1, b - 4, e - 4);
}
/* c_fc as (C, 4C) instead of (4C, C): the same bytes, a shape the model does not have. */
static void edit_shape(cJSON *h) {
    cJSON *shape = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "h.1.mlp.c_fc.weight"), "shape");
    double a = cJSON_GetArrayItem(shape, 0)->valuedouble, b = cJSON_GetArrayItem(shape, 1)->valuedouble;
    cJSON_SetNumberValue(cJSON_GetArrayItem(shape, 0), b);
    cJSON_SetNumberValue(cJSON_GetArrayItem(shape, 1), a);
}
static void edit_dtype(cJSON *h) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "h.0.ln_2.weight"), "dtype", cJSON_CreateString("I32"));
}
/* ln_f.weight (the last tensor) gone, with its bytes. */
static void edit_missing(cJSON *h) { cJSON_DeleteItemFromObject(h, "ln_f.weight"); }
static void edit_nothing(cJSON *h) { (void)h; }

/* import of path must fail with one error line that names path and, if given, the tensor. */
static void check_refused(const char *path, const char *tensor, const char *what) {
    char args[2048], out_dir[800];
    snprintf(out_dir, sizeof out_dir, "%s.out", path);
    snprintf(args, sizeof args, "rm -rf %s", out_dir);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, "import %s --out %s --no-data", path, out_dir);
    int rc = run_train(args);
    CHECKF(rc == 1 && one_error_line() && strstr(err_buf, path) && (!tensor || strstr(err_buf, tensor)) &&
               strstr(err_buf, what),
           "%s: rc %d: %s", path, rc, err_buf);
    snprintf(args, sizeof args, "%s/checkpoint.bin", out_dir);
    CHECKF(!tr_file_exists(args), "%s: a refused import wrote a checkpoint", path);
}

static void test_import_refuses_bad_files(void) {
    char dir[600], weights[700], bad[800], tok_src[800], tok_dst[900], args[2048];
    snprintf(dir, sizeof dir, "%s/export_rope", test_tmp_dir());
    snprintf(weights, sizeof weights, "%s.safetensors", dir);
    if (!tr_file_exists(weights)) SKIP("needs the export of test_export_import_rope");
    snprintf(tok_src, sizeof tok_src, "%s.tokenizer.json", dir);
    const struct {
        const char *name, *tensor, *what;
        void (*edit)(cJSON *);
        size_t drop_tail;
    } cases[] = {
        {"truncated", "ln_f.weight", "past the data area", edit_nothing, 6},
        {"overlap", "h.0.ln_1.weight", "overlaps", edit_overlap, 0},
        {"shape", "h.1.mlp.c_fc.weight", "shape [32, 128]", edit_shape, 0},
        {"dtype", "h.0.ln_2.weight", "dtype I32", edit_dtype, 0},
        {"missing", "ln_f.weight", "missing", edit_missing, 32 * 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(bad, sizeof bad, "%s/bad_%s.safetensors", test_tmp_dir(), cases[i].name);
        write_edited(weights, bad, cases[i].edit, cases[i].drop_tail);
        snprintf(tok_dst, sizeof tok_dst, "%s/bad_%s.tokenizer.json", test_tmp_dir(), cases[i].name);
        snprintf(args, sizeof args, "cp %s %s", tok_src, tok_dst);
        CHECK(system(args) == 0);
        check_refused(bad, cases[i].tensor, cases[i].what);
    }
    /* a header length past the end of the file, and a file too short to hold one */
    size_t size;
    uint8_t *bytes = (uint8_t *)tr_read_file(weights, &size);
    snprintf(bad, sizeof bad, "%s/bad_length.safetensors", test_tmp_dir());
    FILE *f = fopen(bad, "wb");
    for (int i = 0; i < 8; i++) fputc((int)((size >> (8 * i)) & 255), f);
    fwrite(bytes + 8, 1, size - 8, f);
    fclose(f);
    check_refused(bad, NULL, "runs past the end");
    snprintf(bad, sizeof bad, "%s/bad_short.safetensors", test_tmp_dir());
    f = fopen(bad, "wb");
    fwrite(bytes, 1, 5, f);
    fclose(f);
    check_refused(bad, NULL, "truncated");
    free(bytes);
    /* the file's weights against another model: a layer more than the file has */
    snprintf(args, sizeof args, "rm -rf %s/bad_layers", test_tmp_dir());
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, "import %s --out %s/bad_layers --no-data --set model.n_layer=3", weights, test_tmp_dir());
    CHECKF(run_train(args) == 1 && one_error_line() && strstr(err_buf, "h.2.ln_1.weight: missing"), "%s", err_buf);
    /* and never over an existing run */
    snprintf(args, sizeof args, "import %s --out %s --no-data", weights, dir);
    CHECKF(run_train(args) == 1 && one_error_line() && strstr(err_buf, "exists"), "%s", err_buf);
}

/* ---- training on from an import ---- */

/* The initial weights of a run's config (its seed), exported by hand and imported, then trained
 * with `run --resume`: zero moments, step 0 and the loader at the start make that a fresh run, so
 * its log.csv rows equal those of `run` from scratch. */
static void test_resume_from_import_is_a_fresh_run(void) {
    char dir[600], weights[700], init[800], tok_dst[900], imported[800], fresh[600], args[2048];
    snprintf(dir, sizeof dir, "%s/export_rope", test_tmp_dir());
    snprintf(weights, sizeof weights, "%s.safetensors", dir);
    if (!tr_file_exists(weights)) SKIP("needs the export of test_export_import_rope");
    RunDir rd;
    run_dir_init(&rd, dir);
    run_dir_read_config(&rd);
    run_dir_name_tokenizer(&rd);
    rd.tokenizer = tok_load(rd.tokenizer_path);
    CHECK(rd.tokenizer != NULL);
    if (!rd.tokenizer) return;
    run_dir_build_model(&rd, (int)rd.config.model.block_size);
    ModelTensor *tensors;
    const int n = model_tensors(&rd.model, &tensors);
    StTensorOut views[64];
    for (int i = 0; i < n && i < 64; i++) {
        views[i] = (StTensorOut){.name = tensors[i].name, .ndim = tensors[i].ndim, .data = tensors[i].data};
        memcpy(views[i].shape, tensors[i].shape, sizeof tensors[i].shape);
    }
    StFile exported;
    CHECK(st_read(weights, &exported) == 0);
    snprintf(init, sizeof init, "%s/init.safetensors", test_tmp_dir());
    CHECKF(st_write(init, views, n, exported.metadata) == 0, "%s", tr_error());
    st_free(&exported);
    free(tensors);
    run_dir_free(&rd);
    snprintf(tok_dst, sizeof tok_dst, "%s/init.tokenizer.json", test_tmp_dir());
    snprintf(args, sizeof args, "cp %s.tokenizer.json %s", dir, tok_dst);
    CHECK(system(args) == 0);

    snprintf(imported, sizeof imported, "%s/init_imported", test_tmp_dir());
    snprintf(args, sizeof args, "rm -rf %s", imported);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, "import %s --out %s", init, imported);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    snprintf(args, sizeof args, "run %s/config.json --resume --set train.max_steps=3 --set train.eval_every=1",
             imported);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    if (train_tiny("fresh", "--set model.posenc.kind=rope --set train.eval_every=1", 3, fresh, sizeof fresh) != 0)
        return;
    char *a = cli_log_without_timing(imported), *b = cli_log_without_timing(fresh);
    CHECKF(!strcmp(a, b) && strlen(b) > 100, "resumed import:\n%s\nfresh run:\n%s", a, b);
    free(a);
    free(b);
}

int main(void) {
    RUN(test_export_import_rope);
    RUN(test_export_import_hddrope);
    RUN(test_export_import_rope_fox);
    RUN(test_import_refuses_bad_files);
    RUN(test_resume_from_import_is_a_fresh_run);
    return test_summary();
}
