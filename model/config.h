/* config.h: the run configuration: JSON files under configs/, every key overridable from the
 * command line (--set model.n_layer=2), checked strictly before any work starts.
 *
 * Layout (every key optional except where a default makes no sense; defaults in config.c):
 *   {
 *     "data": "configs/data/sample.json",      the data spec (configs/data/)
 *     "out_dir": "runs/demo",                  log.csv, config.json, checkpoints, samples
 *     "seed": 1337,
 *     "tokenizer": {"vocab_size": 4096, "file": ""},   file "": learn one on the train split
 *     "model": {"n_layer": 4, "n_embd": 128, "n_head": 4, "block_size": 128,
 *               "posenc": {"kind": "rope", ...the kind's options}},
 *     "train": {"batch_size": 16, "grad_accum": 1, "max_steps": 1000, "eval_every": 100,
 *               "eval_max_tokens": 0, "log_every": 10, "checkpoint_every": 0, "sample_tokens": 200},
 *     "optim": {"lr": 1e-3, "min_lr": 1e-4, "schedule": "cosine", "warmup_steps": 100,
 *               "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "grad_clip": 1.0,
 *               "clip_per_group": false, "posenc_lr_mult": 1.0, "posenc_weight_decay": 0.0}
 *   }
 * Unknown keys, wrong types and out-of-range values are errors naming the key; the posenc object
 * is checked by its kind when the model is built. A config file, and each base it names, is read
 * up to 1 MiB and refused beyond. config_check_training_memory refuses a model whose training
 * run (parameters, gradients, AdamW state, activations at train.batch_size and model.block_size,
 * with tokenizer.vocab_size as V) needs more than the machine's physical memory, naming the key
 * that, lowered to its default, saves the most.
 */
#ifndef TINYROPE_CONFIG_H
#define TINYROPE_CONFIG_H

#include <cjson/cJSON.h>

typedef struct {
    char data[512];
    char out_dir[512];
    long seed;
    struct { long vocab_size; char file[512]; } tokenizer;
    struct { long n_layer, n_embd, n_head, block_size; cJSON *posenc; } model;
    struct {
        long batch_size, grad_accum, max_steps, eval_every, eval_max_tokens, log_every,
             checkpoint_every, sample_tokens;
    } train;
    struct {
        double lr, min_lr, beta1, beta2, eps, weight_decay, grad_clip, posenc_lr_mult, posenc_weight_decay;
        long warmup_steps;
        int clip_per_group;
        char schedule[16];   /* "cosine" or "constant" */
    } optim;
    cJSON *json;             /* the resolved configuration (defaults filled in), owned */
} RunConfig;

/* Loads path (NULL: defaults only), applies the overrides ("a.b.c=value"; value parsed as JSON
 * when it is valid JSON, else taken as a string), fills defaults, and checks everything.
 * 0 / -1 with the error set ("<path>: model.n_head: ..."). */
int config_load(RunConfig *cfg, const char *path, const char *const *overrides, int n_overrides);
void config_free(RunConfig *cfg);
/* Whether a training run of cfg fits in this machine's memory (parameters, gradients, AdamW
 * state, activations at train.batch_size x model.block_size): 0, or -1 with an error naming the
 * key that, back at its default, saves the most. `run` and `config` check it before any work;
 * `sample` and `eval` do not, so a run trained on a bigger machine can still be read here. */
int config_check_training_memory(const RunConfig *cfg, const char *where);
/* The resolved configuration as pretty JSON (caller frees), to store next to log.csv. */
char *config_to_json(const RunConfig *cfg);

#endif
