/* layers_pointwise.c: the layers that work element by element or row by row (shapes: layers.h):
 * GELU, the residual, and softmax + cross-entropy over the vocabulary. layers.c holds the rest
 * (embedding, LayerNorm, the linear layers, attention) under the same conventions: each forward
 * next to its backward, every backward says which forward line it undoes, and where a layer has
 * a fast version its *_reference twin comes first.
 *
 * Speed: these loops move whole activation tensors and compute an exp per element, so they are
 * written for GCC to vectorise 16 lanes wide with fused multiply-adds (model/fast_math.h), and
 * parallelised over elements or rows with OpenMP.
 */
#include "model/layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/util.h"
#include "model/fast_math.h"

/* ------------------------------------------------------------------------------------------ */
/* GELU, tanh approximation (GPT-2's): gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). */

#define GELU_SCALING_FACTOR 0.7978845608028654f /* sqrt(2/pi) */

void gelu_forward_reference(float *out, const float *inp, long n) {
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALING_FACTOR * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

void gelu_backward_reference(float *dinp, const float *inp, const float *dout, long n) {
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALING_FACTOR * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        // d/dx 0.5 x (1 + tanh u) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx
        float du_dx = GELU_SCALING_FACTOR * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du_dx) * dout[i];
    }
}

/* The fast twin of the two above, through the identity 0.5 (1 + tanh(u)) = sigmoid(2u) =
 * 1 / (1 + exp(-2u)): one vectorised exp instead of a tanhf call, and no cancellation near
 * u = 0. tests/test_layers.c (test_gelu_fast_vs_reference) holds it to the references. */
void gelu_forward(float *out, const float *inp, long n) {
#pragma omp parallel for simd simdlen(SIMD_LANES) schedule(static)
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALING_FACTOR * MADD(0.044715f * x, x * x, x);   // (1)
        float s = 1.0f / (1.0f + fast_expf(-2.0f * u));                  // (2) s = 0.5 (1 + tanh u)
        out[i] = x * s;                                                   // (3)
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, long n) {
#pragma omp parallel for simd simdlen(SIMD_LANES) schedule(static)
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALING_FACTOR * MADD(0.044715f * x, x * x, x);
        float s = 1.0f / (1.0f + fast_expf(-2.0f * u));
        // undo (3) out = x s: d/dx = s + x ds/dx
        // undo (2): ds/du = 2 s (1 - s)  (the sigmoid's derivative, at 2u)
        // undo (1): du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
        float du_dx = GELU_SCALING_FACTOR * MADD(3.0f * 0.044715f * x, x, 1.0f);
        float grad = MADD(x * 2.0f * s * (1.0f - s), du_dx, s);
        dinp[i] = MADD(grad, dout[i], dinp[i]);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* residual */

/* out may be the same buffer as a or b (elementwise). */
void residual_forward(float *out, const float *a, const float *b, long n) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* undoes out = a + b: the gradient passes unchanged to both. Either of da, db may be NULL to skip
 * it (the model can read one branch's gradient straight from dout instead of copying it). */
void residual_backward(float *da, float *db, const float *dout, long n) {
    if (da) {
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) da[i] += dout[i];
    }
    if (db) {
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) db[i] += dout[i];
    }
}

/* ------------------------------------------------------------------------------------------ */
/* softmax + cross-entropy */

void softmax_row(float *x, int n, float *max_out, float *sum_out) {
    float maxval = x[0];                       // subtracting the max keeps exp from overflowing
#pragma omp simd simdlen(SIMD_LANES) reduction(max : maxval)
    for (int j = 1; j < n; j++) maxval = x[j] > maxval ? x[j] : maxval;
    float sum = 0.0f;
#pragma omp simd simdlen(SIMD_LANES) reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        x[j] = fast_expf(x[j] - maxval);
        sum += x[j];
    }
    /* Probabilities below 2^-100 (1e-30 of the row) become exact zeros: left as they are, a
     * decaying bias (FoX, ALiBi at long range) fills rows with subnormal floats, which cost the
     * products that read them (P V, the softmax backward, PaTH's walk) tens of times a normal
     * float's work. */
    float inv = 1.0f / sum;
#pragma omp simd simdlen(SIMD_LANES)
    for (int j = 0; j < n; j++) {
        const float p = x[j] * inv;
        x[j] = p < 0x1p-100f ? 0.0f : p;
    }
    if (max_out) *max_out = maxval;
    if (sum_out) *sum_out = sum;
}

double crossentropy_forward_reference(float *probs_inout /*(N,V)*/, float *losses /*(N) or NULL*/,
                                      const int32_t *targets /*(N)*/, int N, int V) {
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        float *row = probs_inout + (size_t)n * V;
        float maxval = row[0];
        for (int v = 1; v < V; v++) maxval = row[v] > maxval ? row[v] : maxval;
        float sum = 0.0f;
        for (int v = 0; v < V; v++) sum += expf(row[v] - maxval);
        // -log p_target = log(sum exp(logit - max)) - (logit_target - max), from the logit
        float loss = targets[n] >= 0 ? logf(sum) - (row[targets[n]] - maxval) : 0.0f;
        for (int v = 0; v < V; v++) row[v] = expf(row[v] - maxval) / sum;
        if (losses) losses[n] = loss;
        total += loss;
    }
    return total;
}

/* The fast twin of crossentropy_forward_reference: rows in parallel, each row's three passes
 * (max, exp and sum, scale) vectorised by softmax_row while the row sits in L1.
 * tests/test_layers.c (test_crossentropy_fast_vs_reference) holds it to the reference. */
double crossentropy_forward(float *probs_inout /*(N,V)*/, float *losses /*(N) or NULL*/,
                            const int32_t *targets /*(N)*/, int N, int V) {
    // The total is summed per thread in double and the per-thread sums added in thread order,
    // so it is the same from run to run (for a given thread count).
    int nth = max_threads();
    double *thread_sum = xcalloc((size_t)nth, sizeof(double));
#pragma omp parallel
    {
        double my_sum = 0.0;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            float *row = probs_inout + (size_t)n * V;
            // the target's loss, -log p = log(sum exp(logit - max)) - (logit_target - max), is
            // computed from the logit (read before the softmax overwrites it), which stays
            // accurate where p itself underflows
            int32_t target = targets[n];
            float target_logit = target >= 0 ? row[target] : 0.0f;
            float maxval, sum;
            softmax_row(row, V, &maxval, &sum);
            float loss = target >= 0 ? logf(sum) - (target_logit - maxval) : 0.0f;
            if (losses) losses[n] = loss;
            my_sum += loss;
        }
        thread_sum[thread_id()] = my_sum;
    }
    double total = 0.0;
    for (int t = 0; t < nth; t++) total += thread_sum[t];
    free(thread_sum);
    return total;
}

void crossentropy_backward(float *dlogits /*(N,V)*/, const float *probs /*(N,V)*/, const int32_t *targets /*(N)*/,
                           int N, int V, float scale) {
    // Each element is read before it is written, at the same index, so dlogits may alias probs.
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        int32_t target = targets[n];
        if (target < 0) {                      // no target: no loss, no gradient
            for (int v = 0; v < V; v++) d[v] = 0.0f;
            continue;
        }
        // undoes loss = -log softmax(logits)[target]: d loss / d logit_v = p_v - [v == target]
        for (int v = 0; v < V; v++) d[v] = scale * (p[v] - (v == target ? 1.0f : 0.0f));
    }
}

/* crossentropy_backward at scale 1, in place, for a caller that applies the scale in the next
 * product (matmul_backward_scaled): subtracting the one-hot touches one entry per row, where the
 * scaled version reads and writes all N*V. tests/test_layers.c
 * (test_crossentropy_unscaled_vs_backward) holds it to crossentropy_backward at scale 1. */
void crossentropy_backward_unscaled(float *probs_inout /*(N,V)*/, const int32_t *targets /*(N)*/, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *d = probs_inout + (size_t)n * V;
        // undoes loss = -log softmax(logits)[target]: d loss / d logit_v = p_v - [v == target]
        if (targets[n] >= 0) d[targets[n]] -= 1.0f;
        else memset(d, 0, (size_t)V * sizeof(float));   // no target: no loss, no gradient
    }
}
