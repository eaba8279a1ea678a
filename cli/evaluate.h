/* evaluate.h: the loss and next-token accuracy of a model over the validation split, as `run`
 * reports them every eval_every steps and `eval` at other context lengths (evaluate.c). Every
 * window of the split is read once, so every val token is predicted once. A task run evaluates
 * on its task instead (task_run.h), into the same EvalResult.
 */
#ifndef TINYROPE_EVALUATE_H
#define TINYROPE_EVALUATE_H

#include <stdint.h>

#include "cli/run_dir.h"
#include "data/loader.h"
#include "model/gpt.h"

/* The windows the model reads at once: inputs and targets (B, T each), one allocation. */
typedef struct {
    int B, T;
    int32_t *inputs, *targets;
} Batch;

void batch_alloc(Batch *batch, int B, int T);
void batch_free(Batch *batch);

typedef struct {
    double loss;              /* mean loss per target token, nats */
    double bits_per_byte;     /* NaN for a task run: a task has no bytes */
    double accuracy;          /* the fraction of targets that are the model's most likely token */
    uint64_t tokens;          /* targets evaluated */
} EvalResult;

/* The loss summed at one window position over the split (`train eval --out`). */
typedef struct {
    double nats;
    uint64_t tokens;
} PositionLoss;

/* Mean loss over the validation split (all of it unless max_tokens > 0 caps it), bits per byte:
 * total nats / ln 2 / text bytes, with the split's text bytes prorated when capped, and the
 * accuracy of the argmax (task_count_correct of data/tasks.h) over the same targets. When
 * per_position (batch->T entries) is given, each target's loss is also added at its window
 * position. */
EvalResult evaluate(GPT *model, TokenLoader *val, Batch *batch, long max_tokens, PositionLoss *per_position);

/* Whether the run's model can be evaluated at a context of T tokens, with blockwise causal
 * attention if bca: dies naming what its positional encoding, as trained, allows. Returns the
 * encoding's name. */
const char *check_eval_context(const RunDir *rd, long long T, int bca);

/* per_position as CSV (position,loss,tokens; an empty loss where no window reached), atomically. */
void write_position_losses(const char *csv_path, const PositionLoss *per_position, int T);

#endif
