/* checkpoint.c: save and load a run's full state (format in checkpoint.h). */
#include "cli/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define CKPT_MAGIC "TRCKPT\0\0"
#define CKPT_VERSION 1
#define CKPT_HEADER 128

/* Writes n bytes and folds them into the running checksum. */
static int write_hashed(TrAtomicFile *af, const void *data, size_t n, uint64_t *hash) {
    *hash = tr_fnv1a64(data, n, *hash);
    return tr_atomic_write(af, data, n);
}

int checkpoint_save(const char *path, const CheckpointState *st, const float *params, size_t n_params,
                    const AdamW *opt) {
    uint8_t h[CKPT_HEADER] = {0};
    memcpy(h, CKPT_MAGIC, 8);
    h[8] = CKPT_VERSION;
    h[12] = opt ? 1 : 0;
    tr_put_le64(h + 16, st->config_hash);
    tr_put_le64(h + 24, n_params);
    tr_put_le64(h + 32, st->step);
    tr_put_le64(h + 40, st->tokens_seen);
    tr_put_le64(h + 48, opt ? opt->t : 0);
    tr_put_le64(h + 64, st->loader.epoch);
    tr_put_le64(h + 72, st->loader.cursor);
    uint64_t elapsed_bits;
    memcpy(&elapsed_bits, &st->elapsed_s, 8);
    tr_put_le64(h + 80, elapsed_bits);
    tr_put_le64(h + 88, st->model_hash);
    tr_put_le64(h + 96, st->batch_hash);
    tr_put_le64(h + 104, st->tokenizer_hash);

    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) return -1;
    /* A failed write stops the file there; the commit removes the temporary and reports it. */
    uint64_t hash = TR_FNV_OFFSET;
    int bad = write_hashed(&af, h, sizeof h, &hash);
    if (!bad) bad = write_hashed(&af, params, n_params * sizeof(float), &hash);
    if (!bad && opt) bad = write_hashed(&af, opt->m, n_params * sizeof(float), &hash);
    if (!bad && opt) bad = write_hashed(&af, opt->v, n_params * sizeof(float), &hash);
    uint8_t trailer[8];
    tr_put_le64(trailer, hash);
    if (!bad) tr_atomic_write(&af, trailer, 8);
    return tr_atomic_commit(&af);
}

static void header_to_state(const uint8_t *h, CheckpointState *st) {
    st->config_hash = tr_get_le64(h + 16);
    st->step = tr_get_le64(h + 32);
    st->tokens_seen = tr_get_le64(h + 40);
    st->loader.epoch = tr_get_le64(h + 64);
    st->loader.cursor = tr_get_le64(h + 72);
    uint64_t elapsed_bits = tr_get_le64(h + 80);
    memcpy(&st->elapsed_s, &elapsed_bits, 8);
    st->model_hash = tr_get_le64(h + 88);
    st->batch_hash = tr_get_le64(h + 96);
    st->tokenizer_hash = tr_get_le64(h + 104);
}

static int read_hashed(FILE *f, void *data, size_t n, uint64_t *hash) {
    if (fread(data, 1, n, f) != n) return -1;
    *hash = tr_fnv1a64(data, n, *hash);
    return 0;
}

int checkpoint_load(const char *path, CheckpointState *st, uint64_t expected_config_hash, float *params,
                    size_t n_params, AdamW *opt) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tr_set_error("%s: cannot open checkpoint: %s", path, strerror(errno));
        return -1;
    }
    uint8_t h[CKPT_HEADER];
    uint64_t hash = TR_FNV_OFFSET;
    const char *problem = NULL;
    if (read_hashed(f, h, sizeof h, &hash) != 0) problem = "truncated header";
    else if (memcmp(h, CKPT_MAGIC, 8) != 0) problem = "not a tinyrope checkpoint (wrong magic)";
    else if (h[8] != CKPT_VERSION || h[9] || h[10] || h[11]) problem = "unsupported checkpoint version";
    else if (tr_get_le64(h + 16) != expected_config_hash)
        problem = "made with another model or tokenizer configuration (config hash differs)";
    else if (tr_get_le64(h + 24) != n_params) problem = "parameter count differs from this model";
    else if (opt && !(h[12] & 1)) problem = "holds no optimizer state, so training cannot resume from it";
    if (problem) {
        fclose(f);
        tr_set_error("%s: %s", path, problem);
        return -1;
    }
    int has_opt = h[12] & 1;
    size_t bytes = n_params * sizeof(float);
    float *m = NULL, *v = NULL;
    if (has_opt) {
        m = xmalloc(bytes ? bytes : 1);
        v = xmalloc(bytes ? bytes : 1);
    }
    /* Read into place only after the checksum says the whole file is intact: parameters are
     * staged in a copy so a corrupt file leaves the caller's model untouched. */
    float *p = xmalloc(bytes ? bytes : 1);
    uint8_t trailer[8];
    int bad = read_hashed(f, p, bytes, &hash);
    if (has_opt) bad |= read_hashed(f, m, bytes, &hash) | read_hashed(f, v, bytes, &hash);
    bad |= fread(trailer, 1, 8, f) != 8;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (bad || extra || tr_get_le64(trailer) != hash) {
        free(p); free(m); free(v);
        tr_set_error("%s: %s", path, bad ? "truncated checkpoint" : extra ? "trailing bytes after the checkpoint"
                                                                          : "checksum mismatch (corrupted file)");
        return -1;
    }
    memcpy(params, p, bytes);
    if (opt) {
        memcpy(opt->m, m, bytes);
        memcpy(opt->v, v, bytes);
        opt->t = tr_get_le64(h + 48);
    }
    free(p); free(m); free(v);
    header_to_state(h, st);
    return 0;
}

int checkpoint_read_state(const char *path, CheckpointState *st) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tr_set_error("%s: cannot open checkpoint: %s", path, strerror(errno));
        return -1;
    }
    uint8_t h[CKPT_HEADER];
    int ok = fread(h, 1, sizeof h, f) == sizeof h && memcmp(h, CKPT_MAGIC, 8) == 0;
    fclose(f);
    if (!ok) {
        tr_set_error("%s: not a tinyrope checkpoint (short file or wrong magic)", path);
        return -1;
    }
    header_to_state(h, st);
    return 0;
}
