/* run.c: the stages of `train run`: setup, one update, progress, evaluation, checkpoint, end
 * (see run.h; the loop that calls them is cmd_run in train.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "cli/run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "cli/args.h"
#include "cli/story.h"
#include "cli/task_run.h"
#include "cli/tok_cli.h"
#include "data/data_spec.h"
#include "data/shard_writer.h"

/* ------------------------------------------------------------------------------------------------
 * Setup.
 */

/* The files a run writes into its directory: a crash while writing one leaves its temporary. */
static int is_run_file(const char *name) {
    static const char *const names[] = {"config.json", "log.csv", "checkpoint.bin", "final.json", "tokenizer.bpe",
                                        "task.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) return 1;
    return 0;
}

static void print_removed_temporaries(int n, const char *dir) {
    printf("removed %d temporary file(s) left in %s by an interrupted write\n", n, dir);
}

/* A task spec: the task, checked against the config, and no tokenizer or loaders (task_run.h).
 * Text: the tokenizer, the config's file, else the run's own: learned afresh by a new run (it is
 * deterministic, so the shards of an identical earlier run are still reused), loaded on resume.
 * Then the shards, and a loader for each split. */
static void open_data(TrainingRun *run, int resume, const char *config_path) {
    RunDir *rd = &run->dir;
    const int B = (int)rd->config.train.batch_size, T = (int)rd->config.model.block_size;
    const int is_task = task_spec_file_is_task(rd->config.data);
    DataSpec spec;
    if (is_task) task_run_load(rd, rd->config.data, config_path);
    else if (data_spec_load(rd->config.data, &spec) != 0) tr_die_with_error();
    if (tr_mkdir_p(rd->dir) != 0 || (rd->lock_fd = tr_lock_dir(rd->dir)) < 0) tr_die_with_error();
    /* (after the lock: a live run's temporaries are not stale) */
    const int removed = tr_remove_stale_temporaries(rd->dir, is_run_file);
    if (removed < 0) tr_die_with_error();
    if (removed) print_removed_temporaries(removed, rd->dir);
    if (is_task) return;
    run_dir_name_tokenizer(rd);
    if (rd->config.tokenizer.file[0] || resume) {
        if (!(rd->tokenizer = tok_load(rd->tokenizer_path))) tr_die_with_error();
    } else {
        rd->tokenizer = learn_tokenizer(spec.train, spec.n_train, (int)rd->config.tokenizer.vocab_size,
                                        rd->tokenizer_path);
    }
    PrepareReport report;
    if (shards_prepare(&spec, rd->tokenizer, rd->tokenizer_path, rd->data_dir, 0, 0, &report) != 0)
        tr_die_with_error();
    if (report.removed_temporaries) print_removed_temporaries(report.removed_temporaries, rd->data_dir);
    data_spec_free(&spec);
    uint64_t th = tok_hash(rd->tokenizer);
    run->train = loader_open(rd->data_dir, "train", th, B, T, 1, (uint64_t)rd->config.seed);
    run->val = run->train ? loader_open(rd->data_dir, "val", th, B, T, 0, 0) : NULL;
    if (!run->train || !run->val) tr_die_with_error();
}

static void build_model_and_optimizer(TrainingRun *run) {
    const RunConfig *cfg = &run->dir.config;
    GPT *model = &run->dir.model;
    run_dir_build_model(&run->dir, (int)cfg->model.block_size);
    ParamGroup *groups;
    int n_groups = gpt_param_groups(model, (float)cfg->optim.weight_decay, (float)cfg->optim.posenc_lr_mult,
                                    (float)cfg->optim.posenc_weight_decay, &groups);
    if (adamw_init(&run->opt, model->num_params, groups, n_groups, (float)cfg->optim.beta1,
                   (float)cfg->optim.beta2, (float)cfg->optim.eps, (float)cfg->optim.grad_clip,
                   cfg->optim.clip_per_group) != 0)
        tr_die_with_error();
    for (int g = 0; g < n_groups; g++) free(groups[g].ranges);
    free(groups);
    run->schedule = (LrSchedule){.kind = strcmp(cfg->optim.schedule, "cosine") ? LR_CONSTANT : LR_COSINE,
                                 .lr = (float)cfg->optim.lr, .min_lr = (float)cfg->optim.min_lr,
                                 .warmup = cfg->optim.warmup_steps, .max_steps = cfg->train.max_steps};
}

/* One forward to size the activations, so the memory report is complete, and timed, with a
 * backward, for the wall-time estimate (the gradients are zeroed at the start of every step, and
 * the loader is rewound, so this leaves no trace in training). The first micro-step also
 * allocates and first touches every buffer, which can take longer than the step itself for a
 * small model: under 2 s, a second one is timed instead. Returns the micro-step's seconds;
 * *forward_s gets the forward's. */
static double measure_micro_step(TrainingRun *run, double *forward_s) {
    GPT *model = &run->dir.model;
    Batch *batch = &run->batch;
    if (run->dir.task) task_train_batch(run->dir.task, (uint64_t)run->dir.config.seed, 0, batch);
    else if (loader_next_batch(run->train, batch->inputs, batch->targets) != 1) tr_die_with_error();
    double t_micro = 0;
    for (int attempt = 0; attempt < 2 && (attempt == 0 || t_micro < 2.0); attempt++) {
        t_micro = tr_now_seconds();
        if (gpt_forward(model, batch->inputs, batch->targets, batch->B, batch->T) != 0) tr_die_with_error();
        *forward_s = tr_now_seconds() - t_micro;
        gpt_backward(model, batch->inputs, 1.0f);
        t_micro = tr_now_seconds() - t_micro;
    }
    if (run->train) loader_set_state(run->train, (LoaderState){0, 0});
    return t_micro;
}

/* Everything a training step holds, as the memory check before the run counts it (gpt.h): what
 * the peak resident memory is compared with. */
static double training_bytes(const TrainingRun *run) {
    const GPT *model = &run->dir.model;
    return (double)gpt_training_bytes(&model->config, &model->posenc, run->batch.B, run->batch.T);
}

static void print_summary(const TrainingRun *run) {
    const RunConfig *cfg = &run->dir.config;
    const GPT *model = &run->dir.model;
    const GPTConfig *mc = &model->config;
    char posenc[64];
    posenc_describe(&model->posenc, posenc, sizeof posenc);
    printf("model: %s, L=%d C=%d NH=%d T=%d V=%d: %zu parameters\n", posenc, mc->L, mc->C,
           mc->NH, run->batch.T, mc->V, model->num_params);
    printf("memory: parameters %.1f MB, gradients %.1f MB, AdamW %.1f MB, activations (B=%d) %.1f MB, "
           "their gradients %.1f MB; %.1f MB in all\n", model->num_params * 4e-6, model->num_params * 4e-6,
           model->num_params * 8e-6, run->batch.B, model->num_acts * 4e-6, model->num_grad_acts * 4e-6,
           training_bytes(run) * 1e-6);
    if (run->dir.task)
        printf("data: task %s (vocabulary %d, length %d), fresh sequences every step, val %ld sequences; %ld tokens "
               "per step\n", cfg->data, task_vocab_size(run->dir.task->task), run->batch.T,
               run->dir.task->val_sequences, cfg->train.batch_size * run->batch.T * cfg->train.grad_accum);
    else
        printf("data: train %llu tokens, val %llu tokens; %ld tokens per step\n",
               (unsigned long long)loader_num_tokens(run->train), (unsigned long long)loader_num_tokens(run->val),
               cfg->train.batch_size * cfg->model.block_size * cfg->train.grad_accum);
}

#define LOG_HEADER "step,tokens,train_loss,val_loss,val_bpb,val_acc,lr,grad_norm,elapsed_s,tokens_per_s\n"

/* On resume, keeps the CSV rows up to the checkpoint's step, so the rows that follow line up
 * with those of an uninterrupted run. A last line without its newline is a row torn by a crash
 * mid-write: it is dropped, or the next row would be glued onto it. */
static void truncate_log(const char *log_path, uint64_t step) {
    size_t n;
    char *text = tr_read_file(log_path, &n);
    if (!text) tr_die_with_error();
    TrAtomicFile af;
    if (tr_atomic_open(&af, log_path) != 0) tr_die_with_error();
    const char *header_end = strchr(text, '\n');
    if (header_end) tr_atomic_write(&af, text, (size_t)(header_end - text + 1));
    else tr_atomic_writef(&af, LOG_HEADER);
    for (char *line = header_end ? (char *)header_end + 1 : text + n, *end; (end = strchr(line, '\n')); line = end + 1)
        if (strtoull(line, NULL, 10) <= step) tr_atomic_write(&af, line, (size_t)(end - line + 1));
    free(text);
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
}

/* Resume: the checkpoint's parameters, AdamW state, loader position and clock, and log.csv cut
 * back to its step. Fresh start: config.json and a log.csv of only its header. */
static void resume_or_start(TrainingRun *run, int resume) {
    RunDir *rd = &run->dir;
    run_dir_start_progress(rd);
    if (resume) {
        run_dir_load_checkpoint(rd, &run->opt);
        /* Training cannot go back: a checkpoint past max_steps is not the run this config asks for,
         * and calling it finished would write a final.json for a step the config does not name. */
        if (rd->progress.step > (uint64_t)rd->config.train.max_steps)
            tr_die("%s: at step %llu, past train.max_steps = %ld: nothing to resume; raise train.max_steps to "
                   "train on, or drop --resume to start afresh", rd->checkpoint_path,
                   (unsigned long long)rd->progress.step, rd->config.train.max_steps);
        if (run->train && loader_set_state(run->train, rd->progress.loader) != 0) tr_die_with_error();
        truncate_log(run->log_path, rd->progress.step);
        printf("resumed from %s at step %llu\n", rd->checkpoint_path, (unsigned long long)rd->progress.step);
        return;
    }
    remove(run->final_path);   /* a finished earlier run in this directory is being replaced */
    if (rd->task) task_run_write_spec(rd);
    else {
        char task_path[RUN_DIR_PATH_MAX];   /* an earlier task run's: this run is text */
        run_dir_path(task_path, sizeof task_path, rd->dir, "task.json");
        remove(task_path);
    }
    char *json = config_to_json(&rd->config);
    TrAtomicFile af;
    if (tr_atomic_open(&af, rd->config_path) != 0) tr_die_with_error();
    tr_atomic_writef(&af, "%s\n", json);
    free(json);
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
    if (tr_atomic_open(&af, run->log_path) != 0) tr_die_with_error();
    tr_atomic_writef(&af, LOG_HEADER);
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
}

void run_format_duration(char *out, size_t cap, double s) {
    if (s < 0 || !isfinite(s)) snprintf(out, cap, "?");
    else if (s >= 9999.0 * 3600) snprintf(out, cap, ">9999h");   /* no estimate is that precise */
    else {
        const long whole = (long)s;
        if (whole < 60) snprintf(out, cap, "%lds", whole);
        else if (whole < 3600) snprintf(out, cap, "%ldm%02lds", whole / 60, whole % 60);
        else snprintf(out, cap, "%ldh%02ldm", whole / 3600, whole % 3600 / 60);
    }
}

/* The measured micro-step times the micro-steps left, plus the evaluations. */
static void print_estimate(const TrainingRun *run, double t_micro, double t_forward) {
    const RunConfig *cfg = &run->dir.config;
    const long steps_left = cfg->train.max_steps - (long)run->dir.progress.step;
    const double val_batches = run->dir.task ? ceil((double)run->dir.task->val_sequences / run->batch.B)
                               : ceil((double)loader_num_tokens(run->val) / ((double)run->batch.B * run->batch.T));
    const long evals_left = steps_left / cfg->train.eval_every + 1;
    const double eval_s = val_batches * t_forward;
    char total[32];
    run_format_duration(total, sizeof total, steps_left * cfg->train.grad_accum * t_micro + evals_left * eval_s);
    printf("estimate: %s on this machine (%ld micro-steps of %.2f s, %ld evaluations of %.1f s; "
           "measured on one micro-step)\n", total, steps_left * cfg->train.grad_accum, t_micro, evals_left, eval_s);
}

void run_setup(TrainingRun *run, const RunOptions *opts) {
    memset(run, 0, sizeof *run);
    RunDir *rd = &run->dir;
    if (config_load(&rd->config, opts->config_path, opts->sets, opts->n_sets) != 0 ||
        config_check_training_memory(&rd->config, opts->config_path) != 0)
        tr_die_with_error();
    const long steps = rd->config.train.max_steps;
    trained_posenc_check(&rd->config, opts->config_path);
    run_dir_init(rd, rd->config.out_dir);
    run_dir_path(run->log_path, sizeof run->log_path, rd->dir, "log.csv");
    run_dir_path(run->final_path, sizeof run->final_path, rd->dir, "final.json");
    open_data(run, opts->resume, opts->config_path);
    build_model_and_optimizer(run);
    /* A task run trains at its task's length, at most block_size (task_run_load checks). */
    batch_alloc(&run->batch, (int)rd->config.train.batch_size,
                rd->task ? task_length(rd->task->task) : (int)rd->config.model.block_size);
    double t_forward;
    const double t_micro = measure_micro_step(run, &t_forward);
    print_summary(run);
    resume_or_start(run, opts->resume);
    if (opts->resume && opts->stop_at > 0 && (uint64_t)opts->stop_at < rd->progress.step)
        tr_die("--stop-at %lld: the checkpoint is already at step %llu; give a later step", opts->stop_at,
               (unsigned long long)rd->progress.step);
    print_estimate(run, t_micro, t_forward);

    if (!(run->log = fopen(run->log_path, "a"))) tr_die("%s: cannot append: %s", run->log_path, strerror(errno));
    run->tty = isatty(fileno(stdout));
    run->t_start = tr_now_seconds();
    run->first_step = rd->progress.step;
    run->elapsed_before = rd->progress.elapsed_s;
    run->end = opts->stop_at > 0 && opts->stop_at < steps ? (uint64_t)opts->stop_at : (uint64_t)steps;
}

/* ------------------------------------------------------------------------------------------------
 * The steps.
 */

void run_train_step(TrainingRun *run) {
    GPT *model = &run->dir.model;
    CheckpointState *progress = &run->dir.progress;
    Batch *batch = &run->batch;
    const long accum = run->dir.config.train.grad_accum;
    const uint64_t step = progress->step;
    gpt_zero_grad(model);
    run->train_loss = 0;
    for (long micro = 0; micro < accum; micro++) {
        if (run->dir.task)
            task_train_batch(run->dir.task, (uint64_t)run->dir.config.seed, step * (uint64_t)accum + (uint64_t)micro,
                             batch);
        else if (loader_next_batch(run->train, batch->inputs, batch->targets) != 1) tr_die_with_error();
        if (gpt_forward(model, batch->inputs, batch->targets, batch->B, batch->T) != 0) tr_die_with_error();
        if (!isfinite(model->mean_loss))
            tr_die("step %llu: the loss is %f; stopping (the last checkpoint, if any, is intact)",
                   (unsigned long long)step, model->mean_loss);
        gpt_backward(model, batch->inputs, 1.0f / (float)accum);
        run->train_loss += model->mean_loss / (double)accum;
    }
    run->lr = lr_at(&run->schedule, (long)step);
    run->grad_norm = adamw_step(&run->opt, model->params_memory, model->grads_memory, run->lr);
    if (!isfinite(run->grad_norm))
        tr_die("step %llu: the gradient norm is %f; stopping (the last checkpoint, if any, is intact)",
               (unsigned long long)step, run->grad_norm);
    progress->step = step + 1;
    progress->tokens_seen += (uint64_t)batch->B * batch->T * accum;

    double since_start = tr_now_seconds() - run->t_start;
    progress->elapsed_s = run->elapsed_before + since_start;
    run->tokens_per_s = (double)(progress->step - run->first_step) * batch->B * batch->T * accum / since_start;
}

void run_print_progress(const TrainingRun *run) {
    const long steps = run->dir.config.train.max_steps, accum = run->dir.config.train.grad_accum;
    const uint64_t step = run->dir.progress.step;
    char eta[32];
    run_format_duration(eta, sizeof eta,
                    (double)(steps - (long)step) * run->batch.B * run->batch.T * accum / run->tokens_per_s);
    printf("%sstep %llu/%ld | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | ETA %s%s", run->tty ? "\r" : "",
           (unsigned long long)step, steps, run->train_loss, run->lr, run->grad_norm, run->tokens_per_s, eta,
           run->tty ? "  " : "\n");
    fflush(stdout);
}

/* A result file could not be written: the run stops before saving another checkpoint, so the
 * last one still matches log.csv. */
static void die_keeping_checkpoint(const TrainingRun *run) {
    if (tr_file_exists(run->dir.checkpoint_path))
        tr_die("%s; stopping (the last checkpoint is intact: --resume continues from it)", tr_error());
    tr_die("%s; stopping (no checkpoint was saved yet)", tr_error());
}

/* The validation split, or a task run's validation set. */
static EvalResult evaluate_run(TrainingRun *run) {
    const RunConfig *cfg = &run->dir.config;
    if (run->dir.task)
        return task_evaluate(&run->dir.model, run->dir.task, (uint64_t)cfg->seed, &run->batch,
                             cfg->train.eval_max_tokens, NULL, NULL);
    return evaluate(&run->dir.model, run->val, &run->batch, cfg->train.eval_max_tokens, NULL);
}

void run_evaluate_and_log(TrainingRun *run) {
    const CheckpointState *progress = &run->dir.progress;
    EvalResult ev = run->last_eval = evaluate_run(run);
    if (run->tty) printf("\n");
    if (run->dir.task)
        printf("eval step %llu: val loss %.4f, accuracy %.4f (%llu supervised positions)\n",
               (unsigned long long)progress->step, ev.loss, ev.accuracy, (unsigned long long)ev.tokens);
    else
        printf("eval step %llu: val loss %.4f, %.4f bits per byte, accuracy %.4f (%llu tokens)\n",
               (unsigned long long)progress->step, ev.loss, ev.bits_per_byte, ev.accuracy,
               (unsigned long long)ev.tokens);
    /* Synced before the checkpoint of this step is saved: a checkpoint never gets ahead of its rows.
     * A task run's val_bpb is nan: it has no bytes. */
    if (tr_writef(run->log, run->log_path, "%llu,%llu,%.6f,%.6f,%.6f,%.6f,%.6e,%.6f,%.2f,%.1f\n",
                  (unsigned long long)progress->step, (unsigned long long)progress->tokens_seen, run->train_loss,
                  ev.loss, ev.bits_per_byte, ev.accuracy, run->lr, run->grad_norm, progress->elapsed_s,
                  run->tokens_per_s) != 0 ||
        tr_sync(run->log, run->log_path) != 0)
        die_keeping_checkpoint(run);
}

void run_save_checkpoint(TrainingRun *run) {
    RunDir *rd = &run->dir;
    rd->progress.loader = run->train ? loader_get_state(run->train) : (LoaderState){0, 0};
    if (checkpoint_save(rd->checkpoint_path, &rd->progress, rd->model.params_memory, rd->model.num_params,
                        &run->opt) != 0)
        die_keeping_checkpoint(run);
}

/* ------------------------------------------------------------------------------------------------
 * The end.
 */

/* final.json marks a finished run (scripts/compare.sh skips it); written last, atomically. */
static void write_final(TrainingRun *run) {
    const CheckpointState *progress = &run->dir.progress;
    if (!run->last_eval.tokens)   /* resumed from the final checkpoint: nothing was evaluated */
        run->last_eval = evaluate_run(run);
    const EvalResult *ev = &run->last_eval;
    char bpb[32];   /* JSON has no NaN: a task run's val_bpb is null */
    if (isfinite(ev->bits_per_byte)) snprintf(bpb, sizeof bpb, "%.6f", ev->bits_per_byte);
    else snprintf(bpb, sizeof bpb, "null");
    TrAtomicFile af;
    if (tr_atomic_open(&af, run->final_path) != 0) tr_die_with_error();
    tr_atomic_writef(&af, "{\"step\": %llu, \"tokens\": %llu, \"val_loss\": %.6f, \"val_bpb\": %s, "
                     "\"val_acc\": %.6f, \"elapsed_s\": %.2f}\n", (unsigned long long)progress->step,
                     (unsigned long long)progress->tokens_seen, ev->loss, bpb, ev->accuracy, progress->elapsed_s);
    if (tr_atomic_commit(&af) != 0) die_keeping_checkpoint(run);
}

void run_finish(TrainingRun *run) {
    const RunConfig *cfg = &run->dir.config;
    const int finished = run->dir.progress.step == (uint64_t)cfg->train.max_steps;
    const int log_failed = tr_close_synced(run->log, run->log_path) != 0;
    run->log = NULL;
    if (log_failed) die_keeping_checkpoint(run);
    if (finished) write_final(run);
    if (finished && cfg->train.sample_tokens > 0 && !run->dir.task) {
        printf("sample (temperature 0.8, top-p 0.9):\n");
        write_story(&run->dir.model, run->dir.tokenizer, "Once upon a time", (int)cfg->train.sample_tokens, 0.8f,
                    0.9f, (uint64_t)cfg->seed, stdout);
    }
    printf("memory: peak resident %.1f MB (the model's buffers: %.1f MB)\n", tr_peak_rss_bytes() * 1e-6,
           training_bytes(run) * 1e-6);
    printf("done: %s (log.csv, config.json, checkpoint.bin%s)\n", run->dir.dir,
           finished ? ", final.json" : "; interrupted: --resume continues");
}

void run_free(TrainingRun *run) {
    batch_free(&run->batch);
    adamw_free(&run->opt);
    loader_close(run->train);
    loader_close(run->val);
    run_dir_free(&run->dir);
}
