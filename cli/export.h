/* export.h: a run's weights for other tools, and back: `train export` writes the parameters of a
 * run's checkpoint as safetensors (cli/safetensors.h) with the tokenizer as JSON beside it
 * (cli/tok_json.h); `train import` builds a run directory from such a pair. docs/export.md is
 * the reference: tensor names and shapes, the metadata, the tokenizer file, loading in Python.
 *
 * The model's tensors, named as GPT-2's where they mean the same (L layers, S = 3C + E):
 *     wte.weight (V, C)                      the token embedding, also the output head (tied)
 *     wpe.weight (block_size, C)             kind "learned" only
 *     h.{l}.ln_1.weight (C)
 *     h.{l}.attn.c_attn.weight (3C, C)       q, k, v rows of Wqkv
 *     h.{l}.attn.hddrope.w_g (G, C)          kind "hddrope", dynamic: Wqkv's E = G extra rows
 *     h.{l}.attn.hddrope.g_base (G)          kind "hddrope"
 *     h.{l}.attn.c_proj.weight (C, C)
 *     h.{l}.ln_2.weight (C)
 *     h.{l}.mlp.c_fc.weight (4C, C)
 *     h.{l}.mlp.c_proj.weight (C, 4C)
 *     ln_f.weight (C)
 * Matrices are (out, in), as the model stores and PyTorch's nn.Linear holds them.
 */
#ifndef TINYROPE_EXPORT_H
#define TINYROPE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "cli/safetensors.h"
#include "model/gpt.h"

/* The metadata keys export writes and import reads. */
#define EXPORT_FORMAT_KEY "tinyrope.format"
#define EXPORT_FORMAT "tinyrope-gpt"
#define EXPORT_VERSION_KEY "tinyrope.version"
#define EXPORT_VERSION "1"
#define EXPORT_CONFIG_KEY "tinyrope.config"

/* One named view into the model's parameters. */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    float *data;
} ModelTensor;

/* The model's parameters as named tensors, in file order, covering every parameter once. Returns
 * the count; *out is the caller's to free. */
int model_tensors(const GPT *model, ModelTensor **out);

/* `train export`: run_dir's checkpoint to out_path (.safetensors) and the tokenizer to
 * export_tokenizer_path(out_path). Dies with one error line on bad input. */
void export_run(const char *run_dir, const char *out_path);

typedef struct {
    const char *in_path;         /* the .safetensors file */
    const char *out_dir;         /* the run directory to build */
    const char *config_path;     /* NULL: the config in the file's metadata */
    const char *tokenizer_path;  /* NULL: export_tokenizer_path(in_path) */
    const char *const *sets;     /* --set overrides of the config */
    int n_sets;
    int no_data;                 /* 1: do not prepare the token shards */
} ImportOptions;

/* `train import`: out_dir gets config.json, tokenizer.bpe, checkpoint.bin (the file's weights,
 * zero AdamW moments, step 0), a log.csv of only its header and, unless no_data, the token
 * shards of the config's data spec. Dies with one error line on bad input. */
void import_run(const ImportOptions *opts);

/* The tokenizer's file beside a weights file: "<path without .safetensors>.tokenizer.json". */
void export_tokenizer_path(char *out, size_t cap, const char *weights_path);

#endif
