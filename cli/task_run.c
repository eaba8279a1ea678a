/* task_run.c: runs on the synthetic tasks of data/tasks.h: their spec file, training batches,
 * evaluation and the run directory's task.json (see task_run.h).
 */
#include "cli/task_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"

#define TASK_SPEC_MAX_BYTES ((size_t)1 << 20)
#define TASK_MAX_VAL_SEQUENCES (1L << 30)

/* The parsed JSON of path, or NULL (error set). */
static cJSON *read_spec_json(const char *path) {
    size_t len;
    char *text = tr_read_file_at_most(path, TASK_SPEC_MAX_BYTES, "a data spec", &len);
    if (!text) return NULL;
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &parse_end, 1);
    if (!root) tr_set_error("%s: malformed JSON near byte %ld", path, parse_end ? (long)(parse_end - text) : 0L);
    free(text);
    return root;
}

int task_spec_file_is_task(const char *path) {
    cJSON *root = read_spec_json(path);
    const int is_task = cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "task") != NULL;
    cJSON_Delete(root);
    tr_clear_error();
    return is_task;
}

void task_run_load(RunDir *rd, const char *spec_path, const char *config_path) {
    cJSON *spec = read_spec_json(spec_path);
    if (!spec) tr_die_with_error();
    long val_sequences = TASK_VAL_SEQUENCES;
    /* val_sequences is the run's key, not the task's: task_create sees the spec without it. */
    cJSON *task_spec = cJSON_Duplicate(spec, 1);
    cJSON *val = cJSON_DetachItemFromObjectCaseSensitive(task_spec, "val_sequences");
    if (val) {
        const double v = cJSON_IsNumber(val) ? val->valuedouble : -1;
        if (!(v >= 1 && v <= (double)TASK_MAX_VAL_SEQUENCES && v == floor(v)))
            tr_die("%s: task spec: val_sequences: expected an integer from 1 to %ld", spec_path,
                   TASK_MAX_VAL_SEQUENCES);
        val_sequences = (long)v;
        cJSON_Delete(val);
        if (cJSON_GetObjectItemCaseSensitive(task_spec, "val_sequences"))
            tr_die("%s: task spec: val_sequences: key given twice", spec_path);
    }
    Task *task = task_create(task_spec);
    cJSON_Delete(task_spec);
    if (!task) tr_die("%s: %s", spec_path, tr_error());
    const RunConfig *cfg = &rd->config;
    const int V = task_vocab_size(task), T = task_length(task);
    if (cfg->tokenizer.vocab_size < V)
        tr_die("%s: tokenizer.vocab_size: %ld is below the task's vocabulary of %d tokens (%s)", config_path,
               cfg->tokenizer.vocab_size, V, spec_path);
    if (cfg->model.block_size < T)
        tr_die("%s: model.block_size: %ld is shorter than the task's length of %d tokens (%s)", config_path,
               cfg->model.block_size, T, spec_path);
    struct TaskData *td = xcalloc(1, sizeof *td);
    td->task = task;
    td->spec = spec;
    td->val_sequences = val_sequences;
    char *json = cJSON_PrintUnformatted(spec);
    const int64_t vocab = cfg->tokenizer.vocab_size;
    td->hash = tr_fnv1a64(&vocab, sizeof vocab, tr_fnv1a64(json, strlen(json), TR_FNV_OFFSET));
    free(json);
    rd->task = td;
}

int task_run_open(RunDir *rd) {
    char path[RUN_DIR_PATH_MAX];
    run_dir_path(path, sizeof path, rd->dir, "task.json");
    if (!tr_file_exists(path)) return 0;
    task_run_load(rd, path, rd->config_path);
    return 1;
}

void task_run_write_spec(const RunDir *rd) {
    char path[RUN_DIR_PATH_MAX];
    run_dir_path(path, sizeof path, rd->dir, "task.json");
    char *json = cJSON_Print(rd->task->spec);
    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) tr_die_with_error();
    tr_atomic_writef(&af, "%s\n", json);
    free(json);
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
}

void task_run_free(struct TaskData *td) {
    if (!td) return;
    task_free(td->task);
    cJSON_Delete(td->spec);
    free(td);
}

void task_train_batch(const struct TaskData *td, uint64_t seed, uint64_t index, Batch *batch) {
    task_batch(td->task, seed, index, batch->B, batch->T, batch->inputs, batch->targets);
}

EvalResult task_evaluate(GPT *model, const struct TaskData *td, uint64_t seed, Batch *batch, long max_tokens,
                         int64_t *correct_at, int64_t *supervised_at) {
    const int T = batch->T, V = model->config.V;
    const uint64_t val_seed = TASK_VAL_SEED ^ seed;
    EvalResult r = {.bits_per_byte = NAN};
    double nats = 0;
    int64_t correct = 0, supervised = 0;
    for (long done = 0; done < td->val_sequences;) {
        const int B = td->val_sequences - done < batch->B ? (int)(td->val_sequences - done) : batch->B;
        /* Sequence i is row 0 of batch i: the set is the same at every batch size. */
        for (int row = 0; row < B; row++)
            task_batch(td->task, val_seed, (uint64_t)(done + row), 1, T, batch->inputs + (size_t)row * T,
                       batch->targets + (size_t)row * T);
        if (gpt_forward(model, batch->inputs, batch->targets, B, T) != 0) tr_die_with_error();
        nats += (double)model->mean_loss * (double)model->n_targets;
        task_count_correct(model->acts.probs, batch->targets, B, T, V, &correct, &supervised);
        if (correct_at)
            task_count_correct_by_position(model->acts.probs, batch->targets, B, T, V, correct_at, supervised_at);
        done += B;
        if (max_tokens > 0 && supervised >= max_tokens) break;
    }
    r.tokens = (uint64_t)supervised;
    r.loss = supervised ? nats / (double)supervised : 0.0;
    r.accuracy = supervised ? (double)correct / (double)supervised : 0.0;
    return r;
}

void write_position_accuracy(const char *csv_path, const int64_t *correct_at, const int64_t *supervised_at, int T) {
    TrAtomicFile af;
    if (tr_atomic_open(&af, csv_path) != 0) tr_die_with_error();
    int failed = tr_atomic_writef(&af, "position,supervised,correct,accuracy\n") != 0;
    for (long t = 0; t < T && !failed; t++) {
        if (supervised_at[t])
            failed = tr_atomic_writef(&af, "%ld,%lld,%lld,%.6f\n", t, (long long)supervised_at[t],
                                      (long long)correct_at[t], (double)correct_at[t] / (double)supervised_at[t]) != 0;
        else failed = tr_atomic_writef(&af, "%ld,0,0,nan\n", t) != 0;   /* as log.csv writes a missing number */
    }
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
}

/* The run's task with p_ignore replaced (the checkpoint was made for the trained spec, so this
 * happens after it is loaded and leaves the data hash alone). */
static void set_p_ignore(struct TaskData *td, double p_ignore) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(td->spec, "task");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "flipflop") != 0)
        tr_die("eval: --p-ignore is for a flip-flop run; this run's task is %s",
               cJSON_IsString(kind) ? kind->valuestring : "not named");
    cJSON *spec = cJSON_Duplicate(td->spec, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "val_sequences");   /* not a key of task_create */
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "p_ignore");
    cJSON_AddNumberToObject(spec, "p_ignore", p_ignore);
    Task *task = task_create(spec);
    cJSON_Delete(spec);
    if (!task) tr_die("eval: --p-ignore %g: %s", p_ignore, tr_error());
    task_free(td->task);
    td->task = task;
}

int task_run_eval(RunDir *rd, int T, int B, long max_tokens, int bca, double p_ignore, const char *csv_path) {
    const int T_train = task_length(rd->task->task), block_size = (int)rd->config.model.block_size;
    if (!T) T = T_train;
    const long fit = rd->config.train.batch_size * T_train / T;   /* the trained batch's tokens */
    if (!B) B = fit > 1 ? (int)fit : 1;
    const char *kind = check_eval_context(rd, T, bca);
    if (bca && T_train < 2) tr_die("eval: --bca needs a task length of at least 2 (blocks of half of it)");
    run_dir_load_model(rd, T > block_size ? T : block_size);
    if (!isnan(p_ignore)) set_p_ignore(rd->task, p_ignore);
    rd->model.attn_block = bca ? T_train / 2 : 0;
    Batch batch;
    batch_alloc(&batch, B, T);
    int64_t *correct_at = xcalloc((size_t)T, sizeof *correct_at);
    int64_t *supervised_at = xcalloc((size_t)T, sizeof *supervised_at);
    const double t0 = tr_now_seconds();
    EvalResult ev = task_evaluate(&rd->model, rd->task, (uint64_t)rd->config.seed, &batch, max_tokens, correct_at,
                                  supervised_at);
    const int solved = task_solved_length(correct_at, supervised_at, T, TASK_SOLVED_THRESHOLD);
    printf("eval %s (step %llu): %s, length %d (trained %d)%s, batch %d: val loss %.6f, accuracy %.6f (%llu "
           "supervised positions), solved length %d of %d (%.1f s)\n", rd->dir, (unsigned long long)rd->progress.step,
           kind, T, T_train, bca ? ", BCA" : "", B, ev.loss, ev.accuracy, (unsigned long long)ev.tokens, solved, T,
           tr_now_seconds() - t0);
    if (csv_path) write_position_accuracy(csv_path, correct_at, supervised_at, T);
    free(correct_at);
    free(supervised_at);
    batch_free(&batch);
    run_dir_free(rd);
    return 0;
}
