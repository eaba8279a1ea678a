/* optim.c: AdamW over parameter groups, gradient-norm clipping, and the learning-rate schedule.
 * The maths is in optim.h; this file adds the decisions the header leaves open:
 *
 * - The gradient norm (global and per group) covers only the grouped parameters. Parameters in
 *   no group are frozen: never updated, and their gradients (which the caller may not even
 *   bother to zero) are ignored, so freezing a tensor does not change the clipping of the rest.
 * - The norm is deterministic whatever the number of OpenMP threads: the grouped ranges are cut
 *   into fixed-size chunks (NORM_CHUNK elements, independent of the thread count), each chunk is
 *   summed in a fixed order, and the chunk sums are added up serially in group/range order. A run
 *   resumed on a machine with another core count therefore reproduces the same parameters bit for
 *   bit. (An OpenMP reduction would not: its combination order depends on the thread count.)
 * - A non-finite norm (a NaN or Inf gradient somewhere in a group; squares summed in double
 *   cannot overflow from finite floats) skips the update entirely: parameters, moments and t are
 *   left as they were, so one bad batch cannot poison the moments forever. The norm is returned
 *   as is, for the caller to notice and report.
 * - grads are read, never written: the clip factor is folded into the update.
 */
#include "model/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* Elements per chunk for the norm and the update. A fixed constant on purpose (see above); large
 * enough that scheduling costs nothing next to the work, small enough to balance the threads. */
#define NORM_CHUNK 8192

/* ---- setup ---- */

typedef struct {
    size_t start, count;
    int group, range;
} RangeRef;

static int compare_range_start(const void *a, const void *b) {
    const RangeRef *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

/* Checks the hyper-parameters and the groups' ranges; 0 or -1 with the error set. */
static int validate(size_t n_params, const ParamGroup *groups, int n_groups, float beta1,
                    float beta2, float eps, float grad_clip) {
    /* Written as !(ok) so that NaN fails every test. */
    if (!(beta1 >= 0.0f && beta1 < 1.0f)) {
        tr_set_error("adamw: beta1 = %g must be in [0, 1)", (double)beta1);
        return -1;
    }
    if (!(beta2 >= 0.0f && beta2 < 1.0f)) {
        tr_set_error("adamw: beta2 = %g must be in [0, 1)", (double)beta2);
        return -1;
    }
    if (!(eps > 0.0f && isfinite(eps))) {
        tr_set_error("adamw: eps = %g must be positive and finite", (double)eps);
        return -1;
    }
    if (!(grad_clip >= 0.0f && isfinite(grad_clip))) {
        tr_set_error("adamw: grad_clip = %g must be >= 0 and finite (0 = no clipping)", (double)grad_clip);
        return -1;
    }
    if (n_groups < 0 || (n_groups > 0 && !groups)) {
        tr_set_error("adamw: invalid group list (%d groups)", n_groups);
        return -1;
    }
    size_t n_refs = 0;
    for (int gi = 0; gi < n_groups; gi++) {
        const ParamGroup *g = &groups[gi];
        if (!(g->lr_mult >= 0.0f && isfinite(g->lr_mult))) {
            tr_set_error("adamw: group %d (%.32s): lr_mult = %g must be >= 0 and finite", gi, g->name,
                         (double)g->lr_mult);
            return -1;
        }
        if (!(g->weight_decay >= 0.0f && isfinite(g->weight_decay))) {
            tr_set_error("adamw: group %d (%.32s): weight_decay = %g must be >= 0 and finite", gi, g->name,
                         (double)g->weight_decay);
            return -1;
        }
        if (g->n_ranges < 0 || (g->n_ranges > 0 && !g->ranges)) {
            tr_set_error("adamw: group %d (%.32s): invalid range list (%d ranges)", gi, g->name, g->n_ranges);
            return -1;
        }
        for (int ri = 0; ri < g->n_ranges; ri++) {
            const ParamRange *r = &g->ranges[ri];
            if (r->start > n_params || r->count > n_params - r->start) {
                tr_set_error("adamw: group %d (%.32s) range %d [%zu, +%zu) is outside the %zu parameters", gi,
                             g->name, ri, r->start, r->count, n_params);
                return -1;
            }
            n_refs++;
        }
    }

    /* Overlaps: sort the non-empty ranges by start; each must end before the next begins. */
    RangeRef *refs = xmalloc(n_refs * sizeof *refs);
    size_t n = 0;
    for (int gi = 0; gi < n_groups; gi++)
        for (int ri = 0; ri < groups[gi].n_ranges; ri++) {
            const ParamRange *r = &groups[gi].ranges[ri];
            if (r->count > 0) refs[n++] = (RangeRef){r->start, r->count, gi, ri};
        }
    qsort(refs, n, sizeof *refs, compare_range_start);
    int status = 0;
    for (size_t i = 1; i < n; i++) {
        const RangeRef *a = &refs[i - 1], *b = &refs[i];
        if (a->start + a->count > b->start) {
            tr_set_error("adamw: group %d (%.32s) range %d [%zu, %zu) overlaps group %d (%.32s) range %d [%zu, %zu)",
                         a->group, groups[a->group].name, a->range, a->start, a->start + a->count, b->group,
                         groups[b->group].name, b->range, b->start, b->start + b->count);
            status = -1;
            break;
        }
    }
    free(refs);
    return status;
}

int adamw_init(AdamW *opt, size_t n_params, const ParamGroup *groups, int n_groups, float beta1,
               float beta2, float eps, float grad_clip, int clip_per_group) {
    memset(opt, 0, sizeof *opt); /* so that adamw_free is safe after a failed init */
    if (validate(n_params, groups, n_groups, beta1, beta2, eps, grad_clip) != 0) return -1;

    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->grad_clip = grad_clip;
    opt->clip_per_group = clip_per_group ? 1 : 0;
    opt->n_params = n_params;
    opt->n_groups = n_groups;
    opt->groups = xcalloc((size_t)n_groups, sizeof *opt->groups);
    for (int gi = 0; gi < n_groups; gi++) {
        ParamGroup *g = &opt->groups[gi];
        *g = groups[gi];
        g->name[sizeof g->name - 1] = '\0';
        g->ranges = NULL;
        if (g->n_ranges > 0) {
            g->ranges = xmalloc((size_t)g->n_ranges * sizeof *g->ranges);
            memcpy(g->ranges, groups[gi].ranges, (size_t)g->n_ranges * sizeof *g->ranges);
        }
    }
    /* One allocation for both moments (as llm.c), zeroed. */
    opt->m = xcalloc(2 * n_params, sizeof(float));
    opt->v = opt->m + n_params;
    opt->t = 0;
    return 0;
}

void adamw_free(AdamW *opt) {
    if (!opt) return;
    for (int gi = 0; gi < opt->n_groups; gi++) free(opt->groups[gi].ranges);
    free(opt->groups);
    free(opt->m);
    memset(opt, 0, sizeof *opt);
}

/* ---- the update ---- */

/* The clip factor of one group given its norm: min(1, clip / norm), 1 without clipping. */
static double clip_scale(const AdamW *opt, double norm) {
    if (opt->grad_clip <= 0.0f || norm <= (double)opt->grad_clip) return 1.0;
    return (double)opt->grad_clip / norm;
}

/* The update written plainly: the norm as plain double sums over each group, then AdamW element
 * by element in double. adamw_step below is its fast twin. */
double adamw_step_reference(AdamW *opt, float *params, float *grads, float lr) {
    double *group_sq = xcalloc((size_t)opt->n_groups, sizeof *group_sq);
    double total_sq = 0.0;
    for (int gi = 0; gi < opt->n_groups; gi++) {
        for (int ri = 0; ri < opt->groups[gi].n_ranges; ri++) {
            const ParamRange *r = &opt->groups[gi].ranges[ri];
            for (size_t i = r->start; i < r->start + r->count; i++) group_sq[gi] += (double)grads[i] * grads[i];
        }
        total_sq += group_sq[gi];
    }
    double norm = sqrt(total_sq);
    if (!isfinite(norm)) {
        free(group_sq);
        return norm;
    }

    opt->t++;
    const double beta1 = opt->beta1, beta2 = opt->beta2, eps = opt->eps;
    const double bias1 = 1.0 - pow(beta1, (double)opt->t), bias2 = 1.0 - pow(beta2, (double)opt->t);
    for (int gi = 0; gi < opt->n_groups; gi++) {
        const ParamGroup *g = &opt->groups[gi];
        const double group_lr = (double)lr * g->lr_mult, wd = g->weight_decay;
        const double scale = clip_scale(opt, opt->clip_per_group ? sqrt(group_sq[gi]) : norm);
        for (int ri = 0; ri < g->n_ranges; ri++) {
            const ParamRange *r = &g->ranges[ri];
            for (size_t i = r->start; i < r->start + r->count; i++) {
                double grad = grads[i] * scale;
                double m = beta1 * opt->m[i] + (1.0 - beta1) * grad;
                double v = beta2 * opt->v[i] + (1.0 - beta2) * grad * grad;
                opt->m[i] = (float)m;
                opt->v[i] = (float)v;
                double m_hat = m / bias1, v_hat = v / bias2;
                double p = params[i];
                params[i] = (float)(p - group_lr * (m_hat / (sqrt(v_hat) + eps) + wd * p));
            }
        }
    }
    free(group_sq);
    return norm;
}

typedef struct {
    size_t start, count;
    int group;
} Chunk;

/* Cuts every group's ranges into chunks of at most NORM_CHUNK elements, in group, range order. */
static Chunk *make_chunks(const AdamW *opt, size_t *n_out) {
    size_t n = 0;
    for (int gi = 0; gi < opt->n_groups; gi++)
        for (int ri = 0; ri < opt->groups[gi].n_ranges; ri++)
            n += (opt->groups[gi].ranges[ri].count + NORM_CHUNK - 1) / NORM_CHUNK;
    Chunk *chunks = xmalloc(n * sizeof *chunks);
    size_t k = 0;
    for (int gi = 0; gi < opt->n_groups; gi++)
        for (int ri = 0; ri < opt->groups[gi].n_ranges; ri++) {
            const ParamRange *r = &opt->groups[gi].ranges[ri];
            for (size_t off = 0; off < r->count; off += NORM_CHUNK) {
                size_t left = r->count - off;
                chunks[k++] = (Chunk){r->start + off, left < NORM_CHUNK ? left : NORM_CHUNK, gi};
            }
        }
    *n_out = n;
    return chunks;
}

/* Sum of squares of x[0..n) in double, in an order fixed by this code alone: eight interleaved
 * accumulators (so the loop pipelines and vectorises without -ffast-math) combined pairwise. */
static double sum_squares(const float *x, size_t n) {
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* The fast twin of adamw_step_reference: the norm in parallel chunks whose sums are combined in a
 * fixed order, and the update in float, chunk by chunk. tests/test_optim.c
 * (test_fast_matches_reference) holds the two together. */
double adamw_step(AdamW *opt, float *params, float *grads, float lr) {
    size_t n_chunks;
    Chunk *chunks = make_chunks(opt, &n_chunks);
    double *chunk_sq = xmalloc(n_chunks * sizeof *chunk_sq);
    double *group_sq = xcalloc((size_t)opt->n_groups, sizeof *group_sq);
    float *group_scale = xmalloc((size_t)opt->n_groups * sizeof *group_scale);

    /* Norm: chunks in parallel, then their sums in order (deterministic, see the top). */
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t k = 0; k < n_chunks; k++) chunk_sq[k] = sum_squares(grads + chunks[k].start, chunks[k].count);
    for (size_t k = 0; k < n_chunks; k++) group_sq[chunks[k].group] += chunk_sq[k];
    double total_sq = 0.0;
    for (int gi = 0; gi < opt->n_groups; gi++) total_sq += group_sq[gi];
    double norm = sqrt(total_sq);

    if (isfinite(norm)) {
        for (int gi = 0; gi < opt->n_groups; gi++)
            group_scale[gi] = (float)clip_scale(opt, opt->clip_per_group ? sqrt(group_sq[gi]) : norm);

        opt->t++;
        const float beta1 = opt->beta1, beta2 = opt->beta2, eps = opt->eps;
        const float bias1 = (float)(1.0 - pow((double)beta1, (double)opt->t));
        const float bias2 = (float)(1.0 - pow((double)beta2, (double)opt->t));
        float *m_all = opt->m, *v_all = opt->v;
#pragma omp parallel for schedule(dynamic, 1)
        for (size_t k = 0; k < n_chunks; k++) {
            const ParamGroup *g = &opt->groups[chunks[k].group];
            const float group_lr = lr * g->lr_mult, wd = g->weight_decay, scale = group_scale[chunks[k].group];
            float *p = params + chunks[k].start, *m = m_all + chunks[k].start, *v = v_all + chunks[k].start;
            const float *gr = grads + chunks[k].start;
            for (size_t i = 0; i < chunks[k].count; i++) {
                float grad = gr[i] * scale;
                float mi = beta1 * m[i] + (1.0f - beta1) * grad;
                float vi = beta2 * v[i] + (1.0f - beta2) * grad * grad;
                m[i] = mi;
                v[i] = vi;
                float m_hat = mi / bias1, v_hat = vi / bias2;
                p[i] -= group_lr * (m_hat / (sqrtf(v_hat) + eps) + wd * p[i]);
            }
        }
    }
    free(chunks);
    free(chunk_sq);
    free(group_sq);
    free(group_scale);
    return norm;
}

/* ---- schedule ----
 * With W = warmup, S = max_steps, peak lr and floor min_lr, update `step` (0-based) uses
 *     step < W:            lr * (step + 1) / W                       (lr/W at step 0, lr at W-1)
 *     LR_CONSTANT, after:  lr
 *     LR_COSINE, after:    min_lr + (lr - min_lr) * (1 + cos(pi * x)) / 2,
 *                          x = (step - W) / (S - 1 - W) clamped to [0, 1]
 * so the cosine starts at lr on step W and reaches min_lr on step S-1, the last update of a run of
 * S updates (and stays there if the run goes on). If S - 1 <= W the decay has no room: min_lr. */
float lr_at(const LrSchedule *s, long step) {
    if (step < 0) step = 0;
    if (step < s->warmup) return (float)((double)s->lr * (double)(step + 1) / (double)s->warmup);
    if (s->kind == LR_CONSTANT) return s->lr;
    long decay_steps = s->max_steps - 1 - (s->warmup > 0 ? s->warmup : 0);
    double x = decay_steps > 0 ? (double)(step - (s->warmup > 0 ? s->warmup : 0)) / (double)decay_steps : 1.0;
    if (x > 1.0) x = 1.0;
    const double pi = 3.14159265358979323846;
    return (float)(s->min_lr + ((double)s->lr - s->min_lr) * 0.5 * (1.0 + cos(pi * x)));
}
