/* test_sample.c: sample_token against probabilities computed here in double: temperature 0 is the
 * argmax, a low temperature concentrates on it, temperatures 1, 2 and 0.5 draw with the
 * frequencies of softmax(logits / T), and top-p draws only from the smallest set of most likely
 * tokens whose mass reaches p, with their probabilities renormalised. */
#include <math.h>
#include <string.h>

#include "model/sample.h"
#include "tests/test.h"

enum { V = 6 };
static const float logits[V] = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 0.0f};
static const int argmax = 1;
/* Token ids by decreasing logit, so by decreasing probability at every temperature. */
static const int by_logit[V] = {1, 3, 0, 2, 5, 4};

static void softmax_at(double temperature, double *p) {
    double sum = 0;
    for (int i = 0; i < V; i++) sum += p[i] = exp(((double)logits[i] - logits[argmax]) / temperature);
    for (int i = 0; i < V; i++) p[i] /= sum;
}

static void draw_counts(Sampler *s, float temperature, float top_p, int n, uint64_t seed, int *counts) {
    uint64_t rng = seed;
    memset(counts, 0, V * sizeof *counts);
    for (int k = 0; k < n; k++) {
        int t = sample_token(s, logits, temperature, top_p, &rng);
        CHECKF(t >= 0 && t < V, "token %d outside the vocabulary", t);
        if (t >= 0 && t < V) counts[t]++;
    }
}

/* Each token's frequency over n draws is within 5 standard deviations sqrt(p (1 - p) / n) of its
 * probability (plus 1/n for the rounding of a count). For an exact sampler a deviation that large
 * has a probability under 6e-7 per token, and the draws are seeded, so the test is deterministic;
 * a wrong distribution (softmax(logits * T), say) is off by many times that bound. */
static void check_frequencies(const int *counts, int n, const double *p, const char *what) {
    for (int i = 0; i < V; i++) {
        double f = (double)counts[i] / n, bound = 5.0 * sqrt(p[i] * (1.0 - p[i]) / n) + 1.0 / n;
        CHECKF(fabs(f - p[i]) <= bound, "%s: token %d drawn with frequency %.5f, probability %.5f (bound %.5f)", what,
               i, f, p[i], bound);
    }
}

static void test_temperature_zero_is_argmax(void) {
    Sampler s;
    sampler_init(&s, V);
    uint64_t rng = 3;
    for (int k = 0; k < 50; k++) CHECK(sample_token(&s, logits, 0.0f, 1.0f, &rng) == argmax);
    for (int k = 0; k < 50; k++) CHECK(sample_token(&s, logits, 0.0f, 0.5f, &rng) == argmax);
    sampler_free(&s);
}

/* At T = 0.05 the runner-up (0.5 below the argmax) has probability about e^-10: the argmax is
 * all but certain. */
static void test_low_temperature_concentrates(void) {
    Sampler s;
    sampler_init(&s, V);
    double p[V];
    softmax_at(0.05, p);
    CHECK(p[argmax] > 0.9999);
    int counts[V];
    const int n = 2000;
    draw_counts(&s, 0.05f, 1.0f, n, 17, counts);
    CHECKF(counts[argmax] > 0.99 * n, "argmax drawn %d of %d times at T = 0.05", counts[argmax], n);
    sampler_free(&s);
}

static void test_temperature_frequencies(void) {
    Sampler s;
    sampler_init(&s, V);
    const float temperatures[] = {1.0f, 2.0f, 0.5f};
    const int n = 20000;
    for (int k = 0; k < 3; k++) {
        double p[V];
        softmax_at(temperatures[k], p);
        int counts[V];
        draw_counts(&s, temperatures[k], 1.0f, n, 100 + (uint64_t)k, counts);
        char what[64];
        snprintf(what, sizeof what, "T = %g", (double)temperatures[k]);
        check_frequencies(counts, n, p, what);
    }
    sampler_free(&s);
}

/* top_p midway into the mass of the k-th most likely token keeps exactly the k most likely. */
static void test_top_p_keeps_the_nucleus(void) {
    Sampler s;
    sampler_init(&s, V);
    const float temperatures[] = {1.0f, 2.0f};
    const int sizes[] = {1, 2, 3, 5};
    const int n = 20000;
    for (int ti = 0; ti < 2; ti++) {
        double p[V];
        softmax_at(temperatures[ti], p);
        for (int si = 0; si < 4; si++) {
            const int k = sizes[si];
            double before = 0;
            for (int r = 0; r < k - 1; r++) before += p[by_logit[r]];
            const float top_p = (float)(before + 0.5 * p[by_logit[k - 1]]);
            double kept[V] = {0}, kept_mass = before + p[by_logit[k - 1]];
            for (int r = 0; r < k; r++) kept[by_logit[r]] = p[by_logit[r]] / kept_mass;
            int counts[V];
            draw_counts(&s, temperatures[ti], top_p, n, 200 + (uint64_t)(10 * ti + si), counts);
            for (int r = k; r < V; r++)
                CHECKF(counts[by_logit[r]] == 0, "T = %g, top_p %.4f (keeps %d): token %d, outside, drawn %d times",
                       (double)temperatures[ti], (double)top_p, k, by_logit[r], counts[by_logit[r]]);
            char what[96];
            snprintf(what, sizeof what, "T = %g, top_p %.4f (keeps %d)", (double)temperatures[ti], (double)top_p, k);
            check_frequencies(counts, n, kept, what);
        }
    }
    sampler_free(&s);
}

int main(void) {
    RUN(test_temperature_zero_is_argmax);
    RUN(test_low_temperature_concentrates);
    RUN(test_temperature_frequencies);
    RUN(test_top_p_keeps_the_nucleus);
    return test_summary();
}
