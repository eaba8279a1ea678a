/* optim.h: AdamW with parameter groups, global gradient-norm clipping, and the LR schedule.
 *
 * AdamW (Loshchilov & Hutter), decoupled weight decay, bias-corrected moments:
 *     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *     p -= lr_g * ( m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd_g * p )
 * where lr_g = lr * group.lr_mult and wd_g = group.weight_decay. Parameters are one flat float
 * array; a group is a list of index ranges into it (a group may be scattered, e.g. the extra rows
 * of every layer's QKV weight), so the model decides what is decayed: matrices yes, embeddings and
 * LayerNorm weights no, positional-encoding parameters with their own lr multiplier.
 *
 * Clipping: with clip > 0, all gradients are scaled by min(1, clip / ||g||) where ||g|| is the
 * global L2 norm over every grouped (trainable) parameter (computed in double, in an order that
 * does not depend on the thread count), before the update; the norm before
 * clipping is returned for logging. With clip_per_group, each group is instead clipped by its own
 * norm (as the HDD-RoPE author's trainer does), so one group's large gradients cannot shrink the
 * others' updates; the returned norm is still the global one.
 *
 * Schedule: warmup linearly from lr/warmup to lr over `warmup` steps, then cosine from lr down to
 * min_lr at the last update, step max_steps - 1 ("cosine"), or stay at lr ("constant").
 */
#ifndef TINYROPE_OPTIM_H
#define TINYROPE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t start, count;             /* params[start .. start+count) */
} ParamRange;

typedef struct {
    char name[32];                   /* "decay", "no_decay", "posenc", ... (for logs) */
    float lr_mult;
    float weight_decay;
    ParamRange *ranges;
    int n_ranges;
} ParamGroup;

typedef struct {
    float beta1, beta2, eps;
    float grad_clip;                 /* 0 = no clipping */
    int clip_per_group;              /* 0: one global norm; 1: each group by its own norm */
    ParamGroup *groups;
    int n_groups;
    size_t n_params;
    float *m, *v;                    /* (n_params) each, one allocation */
    uint64_t t;                      /* updates done (for bias correction) */
} AdamW;

/* Sets up the optimizer; the groups' ranges must not overlap (checked: -1 + error) but need not
 * cover every parameter (uncovered parameters are frozen). Moments start at zero. */
int adamw_init(AdamW *opt, size_t n_params, const ParamGroup *groups, int n_groups, float beta1,
               float beta2, float eps, float grad_clip, int clip_per_group);
void adamw_free(AdamW *opt);
/* Clips (if enabled) and applies one update with learning rate lr. Returns the gradient norm
 * before clipping. grads is not written (the clip factor is applied inside the update). A NaN or
 * infinite norm skips the update entirely (parameters, moments and t unchanged) and is returned,
 * so the caller can check it with isfinite() and stop. */
double adamw_step(AdamW *opt, float *params, float *grads, float lr);
/* The same update, written as the plainest possible loop (double precision norm, no OpenMP), that
 * the tests compare against. */
double adamw_step_reference(AdamW *opt, float *params, float *grads, float lr);

typedef enum { LR_CONSTANT = 0, LR_COSINE } LrScheduleKind;
typedef struct {
    LrScheduleKind kind;
    float lr, min_lr;
    long warmup, max_steps;
} LrSchedule;
/* The learning rate of update `step` (0-based). */
float lr_at(const LrSchedule *s, long step);

#endif
