/* task_run.h: a run whose data spec is a synthetic task of data/tasks.h instead of text: the task
 * spec file, the batches a task run trains on, its evaluation (accuracy over the supervised
 * positions, per position) and the run directory's copy of the spec, task.json (task_run.c).
 *
 * A data spec file that holds a "task" key is a task spec: the keys of task_create (tasks.h) and
 * "val_sequences", the size of the validation set (default TASK_VAL_SEQUENCES). A task run has no
 * tokenizer and no shards: the model's vocabulary is tokenizer.vocab_size, which must hold the
 * task's vocabulary; it trains at the task's length, which must fit in model.block_size. Step s,
 * micro-batch k of the run draws task_batch(seed, s * grad_accum + k), so the step alone sets the
 * next batch; validation reads the same fixed sequences every time, under TASK_VAL_SEED ^ seed.
 */
#ifndef TINYROPE_TASK_RUN_H
#define TINYROPE_TASK_RUN_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "cli/evaluate.h"
#include "cli/run_dir.h"
#include "data/tasks.h"
#include "model/gpt.h"

#define TASK_VAL_SEQUENCES 512
#define TASK_VAL_SEED 0x76616c2d7365745fULL   /* "val-set_": the validation set's seed is this ^ seed */

struct TaskData {
    Task *task;
    cJSON *spec;              /* the spec as read (val_sequences included): what task.json holds */
    long val_sequences;
    uint64_t hash;            /* of the spec and the model's vocabulary: the checkpoint's data part */
};

/* Whether the data spec at path is a task spec (a JSON object with a "task" key). A file that
 * cannot be read or parsed is not: the text data spec's loader then says what is wrong. */
int task_spec_file_is_task(const char *path);

/* rd->task from the task spec at spec_path, checked against rd's config (config_path names it in
 * messages): dies with one error line naming the spec file or the config key at fault. */
void task_run_load(RunDir *rd, const char *spec_path, const char *config_path);
/* Opens rd as a task run when its directory holds task.json (then 1), else 0. */
int task_run_open(RunDir *rd);
/* <dir>/task.json: the run's own copy of its spec, written atomically; dies on failure. */
void task_run_write_spec(const RunDir *rd);
void task_run_free(struct TaskData *td);

/* The batch of step's micro-batch k: task_batch(seed, step * grad_accum + k). */
void task_train_batch(const struct TaskData *td, uint64_t seed, uint64_t index, Batch *batch);

/* Mean loss and accuracy over the validation set, val_sequences sequences of batch->T tokens,
 * sequence i being row 0 of task_batch(TASK_VAL_SEED ^ seed, i) (the same set at every batch
 * size), evaluated batch->B at a time (the last batch may hold fewer); stops
 * after the batch that reaches max_tokens supervised positions when max_tokens > 0. tokens counts
 * the supervised positions; bits_per_byte is NaN (a task has no bytes). correct_at and
 * supervised_at (batch->T entries each, zeroed by the caller) get the counts per position when
 * given. */
EvalResult task_evaluate(GPT *model, const struct TaskData *td, uint64_t seed, Batch *batch, long max_tokens,
                         int64_t *correct_at, int64_t *supervised_at);

/* `train eval` on a task run: rd's checkpoint at sequences of T tokens (0: the task's length), B
 * at a time (0: batch_size * length / T), BCA with blocks of half the task's length if bca; prints
 * the loss, the accuracy and the solved length, and the accuracy per position into csv_path if
 * given. p_ignore >= 0 evaluates a flip-flop run on another mix than it trained on (its sparse
 * and dense variants); NaN keeps the trained spec. Returns 0 (the command's status); dies on
 * failure. */
int task_run_eval(RunDir *rd, int T, int B, long max_tokens, int bca, double p_ignore, const char *csv_path);

/* Per-position accuracy as CSV (position,supervised,correct,accuracy; accuracy nan where no
 * position was supervised), atomically. */
void write_position_accuracy(const char *csv_path, const int64_t *correct_at, const int64_t *supervised_at, int T);

#endif
