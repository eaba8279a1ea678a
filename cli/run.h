/* run.h: the stages of `train run`, in the order cmd_run (train.c) calls them: set up (config,
 * tokenizer, shards, model, optimizer; a fresh start or a resume), then per step one update,
 * the progress line, the evaluation with its log.csv row and the checkpoint, each when due, and
 * at the end final.json and a story (run.c). A run whose data spec is a synthetic task has no
 * tokenizer, shards or story: it draws fresh task sequences every step (cli/task_run.h).
 *
 * A run resumed from its checkpoint continues exactly: the checkpoint holds the parameters, the
 * AdamW state, the loader position (a task run's batches follow from the step alone) and the
 * clock, and log.csv is cut back to the checkpoint's step (a row torn by a crash dropped), so the
 * rows that follow are those of an uninterrupted run.
 * A checkpoint past train.max_steps is refused: training cannot go back to the step asked for.
 *
 * Nothing is lost under faults: every row of log.csv is written, flushed and fsynced before the
 * checkpoint of its step, and a failed write of a result file (log.csv, final.json, the
 * checkpoint) stops the run with one error line naming the file and the reason, the last
 * checkpoint intact. Temporaries that a crash left in the run directory are removed at setup.
 */
#ifndef TINYROPE_RUN_H
#define TINYROPE_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "cli/evaluate.h"
#include "cli/run_dir.h"
#include "data/loader.h"
#include "model/optim.h"

typedef struct {
    const char *config_path;
    const char *const *sets;     /* --set key=value overrides */
    int n_sets;
    int resume;                  /* continue from <out_dir>/checkpoint.bin */
    long long stop_at;           /* > 0: stop after this many updates, as if interrupted */
} RunOptions;

typedef struct {
    RunDir dir;                  /* config, tokenizer, model, progress (step, tokens, clock) */
    TokenLoader *train, *val;    /* NULL for a task run */
    AdamW opt;
    LrSchedule schedule;
    Batch batch;
    char log_path[RUN_DIR_PATH_MAX], final_path[RUN_DIR_PATH_MAX];
    FILE *log;
    uint64_t end;                /* the step this process stops at: max_steps, or --stop-at */
    int tty;                     /* progress on one line, rewritten every step */
    /* This process's clock; progress.elapsed_s also counts the training time before a resume. */
    double t_start, elapsed_before;
    uint64_t first_step;
    /* The last step's figures, for the progress line and log.csv. */
    double train_loss, grad_norm, tokens_per_s;
    float lr;
    EvalResult last_eval;        /* tokens == 0 until this process evaluates */
} TrainingRun;

/* Everything before the first step, its report (model, memory, data, time estimate) included. A
 * fresh run writes config.json and the header of log.csv; a resumed one loads the checkpoint. */
void run_setup(TrainingRun *run, const RunOptions *opts);
/* One optimizer update over grad_accum micro-batches; dies if the loss or gradient is not finite. */
void run_train_step(TrainingRun *run);
void run_print_progress(const TrainingRun *run);
/* Evaluates on the validation split (a task run: its validation set), prints the result and
 * appends the log.csv row: val_acc is the next-token accuracy, val_bpb nan for a task run. */
void run_evaluate_and_log(TrainingRun *run);
void run_save_checkpoint(TrainingRun *run);
/* Closes log.csv; a finished run also writes final.json and a story. */
void run_finish(TrainingRun *run);
void run_free(TrainingRun *run);

/* A duration for the estimate and the ETA: "42s", "3m07s", "12h05m"; ">9999h" beyond that and
 * "?" for a negative or non-finite one. */
void run_format_duration(char *out, size_t cap, double seconds);

#endif
