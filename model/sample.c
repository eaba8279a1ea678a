/* sample.c: temperature and top-p sampling (see sample.h). */
#include "model/sample.h"

#include <math.h>
#include <stdlib.h>

#include "base/util.h"

void sampler_init(Sampler *s, int V) {
    s->V = V;
    s->probs = xmalloc((size_t)V * sizeof *s->probs);
    s->order = xmalloc((size_t)V * sizeof *s->order);
}

void sampler_free(Sampler *s) {
    free(s->probs);
    free(s->order);
}

static const float *sort_probs;   /* qsort has no context argument */
static int by_probability_desc(const void *a, const void *b) {
    float pa = sort_probs[*(const int *)a], pb = sort_probs[*(const int *)b];
    if (pa != pb) return pa > pb ? -1 : 1;
    return *(const int *)a - *(const int *)b;   /* ties: smaller id first, deterministic */
}

int sample_token(Sampler *s, const float *logits, float temperature, float top_p, uint64_t *rng) {
    const int V = s->V;
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0f) return best;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += s->probs[i] = expf((logits[i] - logits[best]) / temperature);
    for (int i = 0; i < V; i++) s->probs[i] = (float)(s->probs[i] / sum);
    /* The nucleus: most likely first, until the mass reaches top_p. */
    int n = V;
    for (int i = 0; i < V; i++) s->order[i] = i;
    if (top_p < 1.0f) {
        sort_probs = s->probs;
        qsort(s->order, (size_t)V, sizeof *s->order, by_probability_desc);
        double mass = 0;
        for (n = 0; n < V && mass < top_p; n++) mass += s->probs[s->order[n]];
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += s->probs[s->order[i]];
    double r = (double)tr_rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->probs[s->order[i]];
        if (r < acc) return s->order[i];
    }
    return s->order[n - 1];
}
