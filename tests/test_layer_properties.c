/* test_layer_properties.c: properties of model/layers.c that hold exactly, beside the gradient
 * and fast-against-reference checks of tests/test_layers.c: every backward accumulates into its
 * gradients (a second call doubles them), attention is causal (a change at position t0 leaves
 * every output before t0 bit-for-bit unchanged), its probability rows sum to 1 with exact zeros
 * above the diagonal, cross-entropy of uniform logits is log V, its probabilities keep their
 * relative accuracy over logits spread across [-120, 30], and its backward works in place.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/layers.h"
#include "tests/layers_test_helpers.h"
#include "tests/test.h"

/* ---- properties ---- */

/* Runs a backward on zeroed gradients once, then again: the second call must double them. */
static void check_doubles(const char *name, float *const *grads, const size_t *sizes, int n_grads,
                          void (*backward)(void *ctx), void *ctx) {
    for (int k = 0; k < n_grads; k++) memset(grads[k], 0, sizes[k] * sizeof(float));
    backward(ctx);
    float *once[3];
    for (int k = 0; k < n_grads; k++) once[k] = copy_floats(grads[k], sizes[k]);
    backward(ctx);
    for (int k = 0; k < n_grads; k++) {
        double norm = 0;
        for (size_t i = 0; i < sizes[k]; i++) {
            once[k][i] *= 2;
            norm = fmax(norm, fabs(once[k][i]));
        }
        double err = rel_err(grads[k], once[k], sizes[k]);
        CHECKF(norm > 0 && err < 1e-6, "%s gradient %d: twice vs 2 x once rel err %g", name, k, err);
        free(once[k]);
    }
}

typedef struct {
    int B, T, C, NH, S, V;
    const int32_t *tokens;
    float *x, *w, *dout, *dx, *dy, *dw, *mean, *rstd, *att;
} AccCtx;

static void acc_embedding(void *p) {
    AccCtx *a = p;
    embedding_backward(a->dw, a->dout, a->tokens, a->B, a->T, a->C);
}
static void acc_layernorm(void *p) {
    AccCtx *a = p;
    layernorm_backward(a->dx, a->dw, a->dout, a->x, a->w, a->mean, a->rstd, a->B * a->T, a->C);
}
static void acc_matmul(void *p) {
    AccCtx *a = p;
    matmul_backward(a->dx, a->dw, a->dout, a->x, a->w, a->B * a->T, a->C, a->V);
}
static void acc_matmul_ref(void *p) {
    AccCtx *a = p;
    matmul_backward_reference(a->dx, a->dw, a->dout, a->x, a->w, a->B * a->T, a->C, a->V);
}
static void acc_attention(void *p) {
    AccCtx *a = p;
    attention_backward(a->dx, a->dout, a->x, a->att, a->B, a->T, a->C, a->NH, a->S, NULL, NULL);
}
static void acc_attention_ref(void *p) {
    AccCtx *a = p;
    attention_backward_reference(a->dx, a->dout, a->x, a->att, a->B, a->T, a->C, a->NH, a->S, NULL, NULL);
}
static void acc_gelu(void *p) { AccCtx *a = p; gelu_backward(a->dx, a->x, a->dout, (long)a->B * a->T * a->C); }
static void acc_residual(void *p) {
    AccCtx *a = p;
    residual_backward(a->dx, a->dy, a->dout, (long)a->B * a->T * a->C);
}

static void test_backward_accumulates(void) {
    rng_seed(10);
    enum { B = 2, T = 9, C = 8, NH = 2, S = 3 * C + 1, V = 6, N = B * T };
    int32_t tokens[N];
    for (int n = 0; n < N; n++) tokens[n] = n % 4;          // repeats
    float *big = random_floats(N * S, 1.0f);                 // inputs; large enough for every layer
    AccCtx a = {.B = B, .T = T, .C = C, .NH = NH, .S = S, .V = V, .tokens = tokens, .x = big,
                .w = random_floats(V * C, 1.0f), .dout = random_floats(N * S, 1.0f),
                .dx = xmalloc(N * S * sizeof(float)), .dy = xmalloc(N * C * sizeof(float)),
                .dw = xmalloc(V * C * sizeof(float)), .mean = xmalloc(N * sizeof(float)),
                .rstd = xmalloc(N * sizeof(float)), .att = xmalloc(B * NH * T * T * sizeof(float))};
    float *scratch = xmalloc(N * S * sizeof(float));

    check_doubles("embedding", (float *[]){a.dw}, (size_t[]){V * C}, 1, acc_embedding, &a);
    layernorm_forward(scratch, a.mean, a.rstd, a.x, a.w, N, C);
    check_doubles("layernorm", (float *[]){a.dx, a.dw}, (size_t[]){N * C, C}, 2, acc_layernorm, &a);
    check_doubles("matmul", (float *[]){a.dx, a.dw}, (size_t[]){N * C, V * C}, 2, acc_matmul, &a);
    check_doubles("matmul_reference", (float *[]){a.dx, a.dw}, (size_t[]){N * C, V * C}, 2, acc_matmul_ref, &a);
    attention_forward(scratch, a.att, a.x, B, T, C, NH, S);
    // (dqkv's extra column stays 0 in both calls, so doubling holds there too)
    check_doubles("attention", (float *[]){a.dx}, (size_t[]){N * S}, 1, acc_attention, &a);
    check_doubles("attention_reference", (float *[]){a.dx}, (size_t[]){N * S}, 1, acc_attention_ref, &a);
    check_doubles("gelu", (float *[]){a.dx}, (size_t[]){N * C}, 1, acc_gelu, &a);
    check_doubles("residual", (float *[]){a.dx, a.dy}, (size_t[]){N * C, N * C}, 2, acc_residual, &a);

    free(big); free(a.w); free(a.dout); free(a.dx); free(a.dy); free(a.dw); free(a.mean); free(a.rstd);
    free(a.att); free(scratch);
}

/* Changing the token at position t0 (all of its q, k, v) leaves every output and probability
 * row before t0 bit-for-bit unchanged; and a gradient that enters only at positions <= t0 reaches
 * no input after t0. */
static void check_causal(int T, int t0, int reference) {
    enum { B = 2, C = 12, NH = 3, S = 3 * C + 2 };
    const char *name = reference ? "reference" : "fast";
    size_t nqkv = (size_t)B * T * S, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    float *qkv = random_floats(nqkv, 2.0f), *qkv2 = copy_floats(qkv, nqkv);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < 3 * C; c++) qkv2[((size_t)b * T + t0) * S + c] += 10.0f * rand_sym() + 1.0f;
    float *out = xmalloc(nout * sizeof(float)), *out2 = xmalloc(nout * sizeof(float));
    float *att = xmalloc(natt * sizeof(float)), *att2 = xmalloc(natt * sizeof(float));
    void (*forward)(float *, float *, const float *, int, int, int, int, int) =
        reference ? attention_forward_reference : attention_forward;
    forward(out, att, qkv, B, T, C, NH, S);
    forward(out2, att2, qkv2, B, T, C, NH, S);
    for (int b = 0; b < B; b++) {
        size_t row0 = (size_t)b * T * C;
        CHECKF(memcmp(out + row0, out2 + row0, (size_t)t0 * C * sizeof(float)) == 0,
               "%s T=%d: outputs before %d changed", name, T, t0);
        CHECKF(memcmp(out + row0 + (size_t)t0 * C, out2 + row0 + (size_t)t0 * C, C * sizeof(float)) != 0,
               "%s T=%d: output at %d did not change (test is vacuous)", name, T, t0);
        for (int h = 0; h < NH; h++) {
            size_t a0 = ((size_t)b * NH + h) * T * T;
            CHECKF(memcmp(att + a0, att2 + a0, (size_t)t0 * T * sizeof(float)) == 0,
                   "%s T=%d: probabilities before %d changed", name, T, t0);
        }
    }
    // backward: dout zero after t0
    float *dout = random_floats(nout, 1.0f), *dqkv = xcalloc(nqkv, sizeof(float));
    for (int b = 0; b < B; b++)
        memset(dout + ((size_t)b * T + t0 + 1) * C, 0, (size_t)(T - t0 - 1) * C * sizeof(float));
    (reference ? attention_backward_reference : attention_backward)(dqkv, dout, qkv, att, B, T, C, NH, S, NULL, NULL);
    int leaked = 0;
    for (int b = 0; b < B; b++)
        for (size_t i = ((size_t)b * T + t0 + 1) * S; i < ((size_t)b + 1) * T * S; i++) leaked |= dqkv[i] != 0.0f;
    CHECKF(!leaked, "%s T=%d: gradient reached positions after %d", name, T, t0);
    free(qkv); free(qkv2); free(out); free(out2); free(att); free(att2); free(dout); free(dqkv);
}

static void test_attention_causal(void) {
    rng_seed(11);
    for (int reference = 0; reference <= 1; reference++) {
        check_causal(9, 4, reference);
        check_causal(100, 70, reference);     // t0 inside the second tile
        check_causal(100, 64, reference);     // t0 on a tile boundary
    }
}

/* Rows sum to 1, exact zeros above the diagonal, every entry written; with scores spread over
 * hundreds (far past exp's range) the fast probabilities still match the reference's, which
 * they only can if the softmax subtracts each row's max. */
static void test_attention_probabilities(void) {
    rng_seed(12);
    enum { B = 2, C = 16, NH = 4, S = 3 * C };
    int T = test_small() ? 70 : 140;
    size_t natt = (size_t)B * NH * T * T;
    float *qkv = random_floats((size_t)B * T * S, 15.0f);  // scores of a row span about +-200
    float *out = xmalloc((size_t)B * T * C * sizeof(float)), *att = xmalloc(natt * sizeof(float));
    float *att_ref = xmalloc(natt * sizeof(float));
    for (int reference = 1; reference >= 0; reference--) {
        const char *name = reference ? "reference" : "fast";
        float *probs = reference ? att_ref : att;
        for (size_t i = 0; i < natt; i++) probs[i] = NAN;   // every entry must be written
        (reference ? attention_forward_reference : attention_forward)(out, probs, qkv, B, T, C, NH, S);
        double worst_sum = 0;
        int above_nonzero = 0, bad = 0;
        for (int bh = 0; bh < B * NH; bh++)
            for (int t = 0; t < T; t++) {
                const float *row = probs + ((size_t)bh * T + t) * T;
                double sum = 0;
                for (int j = 0; j < T; j++) {
                    if (j > t) above_nonzero |= row[j] != 0.0f;
                    else bad |= !(row[j] >= 0.0f && row[j] <= 1.0f);
                    sum += row[j];
                }
                worst_sum = fmax(worst_sum, fabs(sum - 1));
            }
        CHECKF(worst_sum < 1e-5, "%s: a row sums to 1 +- %g", name, worst_sum);
        CHECKF(!above_nonzero, "%s: non-zero probability above the diagonal", name);
        CHECKF(!bad, "%s: probability outside [0,1] (or NaN)", name);
        for (size_t i = 0; i < (size_t)B * T * C; i++) bad |= !isfinite(out[i]);
        CHECKF(!bad, "%s: non-finite output", name);
    }
    // scores of size ~100 carry rounding errors of ~1e-5 (sgemm and the loops add in different
    // orders), which move the probabilities by as much
    double err = rel_err(att, att_ref, natt);
    CHECKF(err < 1e-4, "fast vs reference probabilities rel err %g", err);
    free(qkv); free(out); free(att); free(att_ref);
}

static void test_crossentropy_uniform(void) {
    enum { N = 8, V = 1000 };
    const int32_t targets[N] = {0, 999, -1, 5, 17, -1, 500, 3};
    float *logits = xmalloc(N * V * sizeof(float)), losses[N];
    for (int i = 0; i < N * V; i++) logits[i] = 2.5f;
    double total = crossentropy_forward(logits, losses, targets, N, V);
    CHECKF(fabs(total - 6 * log(V)) < 1e-5 * 6 * log(V), "total %.9g, want 6 log V = %.9g", total, 6 * log(V));
    for (int n = 0; n < N; n++) {
        double want = targets[n] < 0 ? 0 : log(V);
        CHECKF(fabs(losses[n] - want) <= 1e-6 * log(V), "row %d loss %.9g, want %.9g", n, losses[n], want);
    }
    for (int i = 0; i < N * V; i++) CHECK(fabsf(logits[i] - 1.0f / V) < 1e-9f);

    // huge logits stay finite; a target far below the max has a large but exact loss
    for (int i = 0; i < N * V; i++) logits[i] = (i % V == 7) ? 1000.0f : -1000.0f;
    total = crossentropy_forward(logits, losses, targets, N, V);
    CHECKF(isfinite(total), "total %g", total);
    CHECKF(fabs(losses[0] - 2000.0) < 1e-3, "loss %g, want 2000", losses[0]);
    free(logits);
}

/* Logits spread over [-120, 30]: every probability keeps its relative accuracy down to where it
 * underflows (the exp behind the softmax is a hand-written one), and the loss of a target far
 * below the max is still accurate (it comes from the logits, not from the tiny probability).
 * A probability exp(x - max) / sum can only be as accurate as x - max is in float, so the double
 * softmax here starts from the same float differences; beyond them, a few ulp are allowed. */
static void test_crossentropy_wide_range(void) {
    rng_seed(14);
    enum { N = 4, V = 300 };
    int32_t targets[N] = {0, 1, 2, 3};
    float *logits = random_floats(N * V, 1.0f);
    for (int i = 0; i < N * V; i++) logits[i] = -45.0f + 75.0f * logits[i];
    for (int n = 0; n < N; n++) {                  // target n: the row's smallest logit
        int arg = 0;
        for (int v = 1; v < V; v++) arg = logits[n * V + v] < logits[n * V + arg] ? v : arg;
        targets[n] = arg;
    }
    double *logits_d = to_double(logits, N * V), losses_d[N];
    crossentropy_d(losses_d, logits_d, targets, N, V);
    float losses[N];
    crossentropy_forward(logits, losses, targets, N, V);
    double worst_prob = 0, shifted[V];
    for (int n = 0; n < N; n++) {
        float maxval = -INFINITY;
        for (int v = 0; v < V; v++) maxval = fmaxf(maxval, (float)logits_d[n * V + v]);
        double sum = 0;
        for (int v = 0; v < V; v++) sum += exp(shifted[v] = (float)logits_d[n * V + v] - maxval);
        for (int v = 0; v < V; v++) {
            double want = exp(shifted[v]) / sum, got = logits[n * V + v];
            if (want > 1e-30) worst_prob = fmax(worst_prob, fabs(got - want) / want);
            else CHECKF(got >= 0 && got < 1e-30, "p=%g where %g is due", got, want);
            // below exp(-104) even a correctly rounded float exp is 0
            if (shifted[v] < -104) CHECKF(got == 0.0f, "p=%g where %g is due", got, want);
        }
        CHECKF(losses_d[n] > 100 && fabs(losses[n] - losses_d[n]) < 1e-6 * losses_d[n],
               "row %d loss %.9g, want %.9g", n, losses[n], losses_d[n]);
    }
    CHECKF(worst_prob < 5e-7, "a probability is off by %g of itself", worst_prob);
    free(logits); free(logits_d);
}

static void test_crossentropy_backward_in_place(void) {
    rng_seed(13);
    enum { N = 5, V = 33 };
    const int32_t targets[N] = {4, -1, 32, 0, 4};
    float *probs = random_floats(N * V, 4.0f);
    crossentropy_forward(probs, NULL, targets, N, V);
    float *dlogits = random_floats(N * V, 1.0f);
    crossentropy_backward(dlogits, probs, targets, N, V, 0.25f);
    crossentropy_backward(probs, probs, targets, N, V, 0.25f);
    CHECK(memcmp(probs, dlogits, N * V * sizeof(float)) == 0);
    // each row with a target: gradient sums to 0 (probabilities sum to 1, minus the one-hot)
    for (int n = 0; n < N; n++) {
        double sum = 0;
        for (int v = 0; v < V; v++) sum += dlogits[n * V + v];
        CHECKF(fabs(sum) < 1e-6, "row %d gradient sums to %g", n, sum);
    }
    free(probs); free(dlogits);
}

int main(void) {
    RUN(test_backward_accumulates);
    RUN(test_attention_causal);
    RUN(test_attention_probabilities);
    RUN(test_crossentropy_uniform);
    RUN(test_crossentropy_wide_range);
    RUN(test_crossentropy_backward_in_place);
    return test_summary();
}
