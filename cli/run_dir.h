/* run_dir.h: a run directory (the out_dir of `train run`: config.json, the tokenizer, data/,
 * log.csv, checkpoint.bin) and what a command builds from it: the run's config, its tokenizer,
 * the model of that config and the training progress its checkpoint records.
 *
 * `sample` and `eval` open a finished or interrupted run with run_dir_read_config and
 * run_dir_load_model. `run` fills the same struct from the command line's config and uses the
 * pieces (tokenizer path, model, checkpoint) one by one, so that all three agree on which
 * tokenizer belongs to a run, how its model is built and which checkpoint fits it. Like the rest
 * of cli/, these print one error line and exit on failure (cli/args.h).
 */
#ifndef TINYROPE_RUN_DIR_H
#define TINYROPE_RUN_DIR_H

#include "cli/checkpoint.h"
#include "model/config.h"
#include "model/gpt.h"
#include "model/optim.h"
#include "model/posenc.h"
#include "tokenizer/tokenizer.h"

#define RUN_DIR_PATH_MAX 1100

typedef struct {
    const char *dir;                            /* not owned */
    char config_path[RUN_DIR_PATH_MAX];         /* <dir>/config.json */
    char checkpoint_path[RUN_DIR_PATH_MAX];     /* <dir>/checkpoint.bin unless a command names another */
    char data_dir[RUN_DIR_PATH_MAX];            /* <dir>/data: the token shards */
    char tokenizer_path[RUN_DIR_PATH_MAX];      /* set by run_dir_name_tokenizer */
    RunConfig config;
    Tokenizer *tokenizer;
    GPT model;
    CheckpointState progress;                   /* step, tokens seen, loader position, clock */
    struct TaskData *task;                      /* a task run's data (task_run.h), else NULL */
    int lock_fd;                                /* holds <dir>/.lock while training, else -1 */
} RunDir;

/* <dir>/<name> into out. */
void run_dir_path(char *out, size_t cap, const char *dir, const char *name);

/* Names the files of the run in dir; reads nothing (a command may check them first). */
void run_dir_init(RunDir *rd, const char *dir);
/* rd->config: the config as the run recorded it in config.json. */
void run_dir_read_config(RunDir *rd);
/* rd->tokenizer_path: the config's tokenizer.file, else the run's own <dir>/tokenizer.bpe. */
void run_dir_name_tokenizer(RunDir *rd);
/* The tokenizer (none for a task run), the model (contexts up to max_T) and the checkpoint's
 * parameters: what a command needs to use a trained model. */
void run_dir_load_model(RunDir *rd, int max_T);

/* rd->model: the config's shape with the tokenizer's vocabulary (a task run's: tokenizer.vocab_size),
 * contexts up to max_T, initialised from the config's seed. */
void run_dir_build_model(RunDir *rd, int max_T);
/* What a checkpoint must agree on to be loaded: the model section of the config (posenc
 * included), the batch shape and the tokenizer (for a task run: the task spec and vocab_size). */
uint64_t run_dir_config_hash(const RunDir *rd);
/* rd->progress for step 0: the config hash and its three parts (model, batch shape, tokenizer). */
void run_dir_start_progress(RunDir *rd);
/* Loads rd->checkpoint_path into the model's parameters and rd->progress, and into opt's state
 * unless opt is NULL (opt given means resuming). A missing checkpoint is refused with what to do;
 * one of another config with the part that differs (model, batch shape or tokenizer) and, when
 * the run's config.json is the config the checkpoint was made with, the differing keys. */
void run_dir_load_checkpoint(RunDir *rd, AdamW *opt);

void run_dir_free(RunDir *rd);

/* The positional encoding of cfg's model as it is trained (max_T = block_size): created to check
 * its options against the shapes before any work, and to ask it what it allows. Dies with
 * config_path and the option at fault. */
void trained_posenc_create(PosEnc *pe, const RunConfig *cfg, const char *config_path);
void trained_posenc_check(const RunConfig *cfg, const char *config_path);

#endif
