/* evaluate.c: the validation loss of a model, overall and per window position (see evaluate.h). */
#include "cli/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"
#include "cli/args.h"
#include "data/tasks.h"

void batch_alloc(Batch *batch, int B, int T) {
    const size_t n = (size_t)B * T;
    batch->B = B;
    batch->T = T;
    batch->inputs = xmalloc(2 * n * sizeof *batch->inputs);
    batch->targets = batch->inputs + n;
}

void batch_free(Batch *batch) {
    free(batch->inputs);
    batch->inputs = batch->targets = NULL;
}

EvalResult evaluate(GPT *model, TokenLoader *val, Batch *batch, long max_tokens, PositionLoss *per_position) {
    const int B = batch->B, T = batch->T;
    EvalResult r = {0};
    double nats = 0;
    int64_t correct = 0, counted = 0;
    loader_reset(val);
    int rc;
    while ((rc = loader_next_batch(val, batch->inputs, batch->targets)) == 1) {
        if (gpt_forward(model, batch->inputs, batch->targets, B, T) != 0) tr_die_with_error();
        nats += (double)model->mean_loss * (double)model->n_targets;
        r.tokens += (uint64_t)model->n_targets;
        task_count_correct(model->acts.probs, batch->targets, B, T, model->config.V, &correct, &counted);
        if (per_position)
            for (long i = 0; i < (long)B * T; i++)
                if (batch->targets[i] >= 0) {
                    per_position[i % T].nats += model->losses[i];
                    per_position[i % T].tokens++;
                }
        if (max_tokens > 0 && r.tokens >= (uint64_t)max_tokens) break;
    }
    if (rc < 0) tr_die_with_error();
    double bytes = (double)loader_text_bytes(val);
    if (rc == 1) bytes *= (double)r.tokens / (double)(loader_num_tokens(val) - 1);   /* capped */
    r.loss = r.tokens ? nats / (double)r.tokens : 0.0;
    r.bits_per_byte = bytes > 0 ? nats / log(2.0) / bytes : 0.0;
    r.accuracy = counted ? (double)correct / (double)counted : 0.0;
    return r;
}

const char *check_eval_context(const RunDir *rd, long long T, int bca) {
    const int T_train = (int)rd->config.model.block_size;
    PosEnc trained;
    trained_posenc_create(&trained, &rd->config, rd->config_path);
    const int max_positions = posenc_max_positions(&trained), absolute = trained.kind->embed_forward != NULL;
    static char kind[64]; /* the name this returns */
    posenc_describe(&trained, kind, sizeof kind);
    posenc_destroy(&trained);
    if (max_positions && T > max_positions)
        tr_die("eval: --block-size %lld: %s positions exist for %d positions only (the run's block_size is %d)", T,
               kind, max_positions, T_train);
    /* BCA keeps every query within T_train - 1 of its keys, which only helps a kind whose scores
     * depend on distances; an absolute kind (learned) has no use for it. */
    if (bca && absolute) tr_die("eval: --bca is for relative position encodings; %s adds absolute positions", kind);
    if (bca && T_train < 2) tr_die("eval: --bca needs a trained block_size of at least 2 (blocks of block_size/2)");
    return kind;
}

void write_position_losses(const char *csv_path, const PositionLoss *per_position, int T) {
    TrAtomicFile af;
    if (tr_atomic_open(&af, csv_path) != 0) tr_die_with_error();
    int failed = tr_atomic_writef(&af, "position,loss,tokens\n") != 0;
    for (long t = 0; t < T && !failed; t++) {
        const PositionLoss *p = &per_position[t];
        if (p->tokens)
            failed = tr_atomic_writef(&af, "%ld,%.6f,%llu\n", t, p->nats / (double)p->tokens,
                                      (unsigned long long)p->tokens) != 0;
        else failed = tr_atomic_writef(&af, "%ld,,0\n", t) != 0;
    }
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
}
