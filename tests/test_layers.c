/* test_layers.c: every layer of model/layers.c and model/layers_pointwise.c.
 *
 * - Gradients: each backward against central finite differences of L = sum(out * R) (R a fixed
 *   random tensor, which the backward gets as dout). The differences are taken on forwards
 *   written again here in double precision, so they are accurate to ~1e-10 and the tolerances
 *   only have to absorb the float arithmetic of the layer under test. The float forwards are
 *   checked against the same double forwards.
 * - Fast against reference: the sgemm matmul and tiled sgemm attention against the plain loops,
 *   on odd sizes and on sizes that cross the attention tile boundary; the vectorised GELU and
 *   softmax + cross-entropy against their plain loops; the in-place unscaled cross-entropy
 *   backward with the scaled matmul backward against the scaled backward with the plain one.
 * The layers' properties (backwards accumulate, causality, probability rows, cross-entropy
 * identities) are tested in tests/test_layer_properties.c.
 *
 * Errors are normwise: max|got - want| / max|want|, so an entry that cancels to ~0 does not make
 * the check flaky while any real mistake (a dropped term, a wrong index) shows up as O(1).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/layers.h"
#include "tests/layers_test_helpers.h"
#include "tests/test.h"

/* ---- gradients against finite differences ---- */

typedef struct {
    int N, C, V, OC, B, T, NH, S;
    const int32_t *tokens;
    double *a, *b;            /* the inputs being differentiated (layer-specific meaning) */
    double *R;                /* the fixed random weights of L = sum(out * R) */
    double *out;              /* scratch for the forward's output */
    float scale;
} GradCtx;

static double embedding_loss(void *p) {
    GradCtx *g = p;
    embedding_forward_d(g->out, g->tokens, g->a, g->N, g->C);
    return dot_d(g->out, g->R, (size_t)g->N * g->C);
}

static void test_embedding_grad(void) {
    rng_seed(1);
    enum { B = 2, T = 5, C = 6, V = 5, N = B * T };
    // repeated tokens (1 four times, 3 three times) and an unused one (4): its gradient is 0
    const int32_t tokens[N] = {1, 3, 1, 1, 0, 2, 3, 3, 1, 0};
    float *wte = random_floats(V * C, 1.0f), *R = random_floats(N * C, 1.0f);
    float *out = xmalloc(N * C * sizeof(float)), *dwte = xcalloc(V * C, sizeof(float));
    GradCtx g = {.N = N, .C = C, .tokens = tokens, .a = to_double(wte, V * C), .R = to_double(R, N * C),
                 .out = xmalloc(N * C * sizeof(double))};
    double *fd = xmalloc(V * C * sizeof(double));

    embedding_forward(out, tokens, wte, B, T, C);
    embedding_loss(&g);
    CHECKF(rel_err_d(out, g.out, N * C) == 0, "forward differs from wte rows");
    embedding_backward(dwte, R, tokens, B, T, C);
    finite_differences(fd, g.a, V * C, embedding_loss, &g);
    double err = rel_err_d(dwte, fd, V * C);
    CHECKF(err < GRAD_TOL, "dwte rel err %g", err);
    for (int c = 0; c < C; c++) CHECKF(dwte[4 * C + c] == 0.0f, "unused token got gradient %g", dwte[4 * C + c]);

    free(wte); free(R); free(out); free(dwte); free(g.a); free(g.R); free(g.out); free(fd);
}

/* Thousands of rows on 3 tokens: with threads, a backward that splits the rows among threads
 * would lose updates (two threads adding into the same dwte row); the sums must be complete. */
static void test_embedding_backward_repeats(void) {
    rng_seed(15);
    int B = 8, T = test_small() ? 128 : 1024, C = 64, V = 3, N = B * T;
    int32_t *tokens = xmalloc((size_t)N * sizeof(int32_t));
    for (int n = 0; n < N; n++) tokens[n] = n % V;
    float *dout = random_floats((size_t)N * C, 1.0f), *dwte = xcalloc((size_t)V * C, sizeof(float));
    double *want = xcalloc((size_t)V * C, sizeof(double));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) want[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
    embedding_backward(dwte, dout, tokens, B, T, C);
    double err = rel_err_d(dwte, want, (size_t)V * C);
    CHECKF(err < 1e-5, "dwte rel err %g", err);
    free(tokens); free(dout); free(dwte); free(want);
}

static double layernorm_loss(void *p) {
    GradCtx *g = p;
    layernorm_forward_d(g->out, NULL, NULL, g->a, g->b, g->N, g->C);
    return dot_d(g->out, g->R, (size_t)g->N * g->C);
}

static void test_layernorm_grad(void) {
    rng_seed(2);
    enum { N = 6, C = 10 };
    float *inp = random_floats(N * C, 2.0f), *weight = random_floats(C, 1.0f), *R = random_floats(N * C, 1.0f);
    for (int i = 0; i < N * C; i++) inp[i] += 3.0f;   // a non-zero mean, so its gradient term matters
    float *out = xmalloc(N * C * sizeof(float)), mean[N], rstd[N];
    float *dinp = xcalloc(N * C, sizeof(float)), *dweight = xcalloc(C, sizeof(float));
    GradCtx g = {.N = N, .C = C, .a = to_double(inp, N * C), .b = to_double(weight, C), .R = to_double(R, N * C),
                 .out = xmalloc(N * C * sizeof(double))};
    double *fd = xmalloc(N * C * sizeof(double)), mean_d[N], rstd_d[N];

    layernorm_forward(out, mean, rstd, inp, weight, N, C);
    layernorm_forward_d(g.out, mean_d, rstd_d, g.a, g.b, N, C);
    CHECKF(rel_err_d(out, g.out, N * C) < FWD_TOL, "forward rel err %g", rel_err_d(out, g.out, N * C));
    CHECKF(rel_err_d(mean, mean_d, N) < FWD_TOL, "mean rel err %g", rel_err_d(mean, mean_d, N));
    CHECKF(rel_err_d(rstd, rstd_d, N) < FWD_TOL, "rstd rel err %g", rel_err_d(rstd, rstd_d, N));

    layernorm_backward(dinp, dweight, R, inp, weight, mean, rstd, N, C);
    finite_differences(fd, g.a, N * C, layernorm_loss, &g);
    double err = rel_err_d(dinp, fd, N * C);
    CHECKF(err < GRAD_TOL, "dinp rel err %g", err);
    finite_differences(fd, g.b, C, layernorm_loss, &g);
    err = rel_err_d(dweight, fd, C);
    CHECKF(err < GRAD_TOL, "dweight rel err %g", err);

    free(inp); free(weight); free(R); free(out); free(dinp); free(dweight);
    free(g.a); free(g.b); free(g.R); free(g.out); free(fd);
}

static double matmul_loss(void *p) {
    GradCtx *g = p;
    matmul_forward_d(g->out, g->a, g->b, g->N, g->C, g->OC);
    return dot_d(g->out, g->R, (size_t)g->N * g->OC);
}

static void test_matmul_grad(void) {
    rng_seed(3);
    enum { N = 6, C = 5, OC = 7 };
    float *inp = random_floats(N * C, 1.0f), *weight = random_floats(OC * C, 1.0f);
    float *R = random_floats(N * OC, 1.0f);
    float *out = xmalloc(N * OC * sizeof(float));
    GradCtx g = {.N = N, .C = C, .OC = OC, .a = to_double(inp, N * C), .b = to_double(weight, OC * C),
                 .R = to_double(R, N * OC), .out = xmalloc(N * OC * sizeof(double))};
    double *fd_inp = xmalloc(N * C * sizeof(double)), *fd_weight = xmalloc(OC * C * sizeof(double));
    finite_differences(fd_inp, g.a, N * C, matmul_loss, &g);
    finite_differences(fd_weight, g.b, OC * C, matmul_loss, &g);
    matmul_loss(&g);

    for (int reference = 0; reference <= 1; reference++) {
        const char *name = reference ? "reference" : "fast";
        (reference ? matmul_forward_reference : matmul_forward)(out, inp, weight, N, C, OC);
        double err = rel_err_d(out, g.out, N * OC);
        CHECKF(err < FWD_TOL, "%s forward rel err %g", name, err);
        float *dinp = xcalloc(N * C, sizeof(float)), *dweight = xcalloc(OC * C, sizeof(float));
        (reference ? matmul_backward_reference : matmul_backward)(dinp, dweight, R, inp, weight, N, C, OC);
        err = rel_err_d(dinp, fd_inp, N * C);
        CHECKF(err < GRAD_TOL, "%s dinp rel err %g", name, err);
        err = rel_err_d(dweight, fd_weight, OC * C);
        CHECKF(err < GRAD_TOL, "%s dweight rel err %g", name, err);
        // a NULL output is skipped and does not change the other one
        float *dinp2 = xcalloc(N * C, sizeof(float)), *dweight2 = xcalloc(OC * C, sizeof(float));
        (reference ? matmul_backward_reference : matmul_backward)(dinp2, NULL, R, inp, weight, N, C, OC);
        (reference ? matmul_backward_reference : matmul_backward)(NULL, dweight2, R, inp, weight, N, C, OC);
        CHECKF(rel_err(dinp2, dinp, N * C) == 0, "%s dinp alone differs", name);
        CHECKF(rel_err(dweight2, dweight, OC * C) == 0, "%s dweight alone differs", name);
        free(dinp); free(dweight); free(dinp2); free(dweight2);
    }
    free(inp); free(weight); free(R); free(out); free(g.a); free(g.b); free(g.R); free(g.out);
    free(fd_inp); free(fd_weight);
}

static double attention_loss(void *p) {
    GradCtx *g = p;
    attention_forward_d(g->out, NULL, g->a, g->B, g->T, g->C, g->NH, g->S);
    return dot_d(g->out, g->R, (size_t)g->B * g->T * g->C);
}

/* qkv rows with `extra` columns after q, k, v: they hold NaN, which would poison the output or
 * the gradient if anything read them, and dqkv's extra columns must keep their initial value. */
static void check_attention_grad(int B, int T, int C, int NH, int extra, int check_reference) {
    int S = 3 * C + extra;
    size_t nqkv = (size_t)B * T * S, nout = (size_t)B * T * C;
    float *qkv = random_floats(nqkv, 1.5f), *R = random_floats(nout, 1.0f);
    double *qkv_d = to_double(qkv, nqkv);
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int e = 0; e < extra; e++) {
            qkv[r * S + 3 * C + e] = NAN;
            qkv_d[r * S + 3 * C + e] = 0;    // the double forward never reads them either
        }
    GradCtx g = {.B = B, .T = T, .C = C, .NH = NH, .S = S, .a = qkv_d, .R = to_double(R, nout),
                 .out = xmalloc(nout * sizeof(double))};
    double *fd = xmalloc(nqkv * sizeof(double)), *att_d = xmalloc((size_t)B * NH * T * T * sizeof(double));
    finite_differences(fd, g.a, nqkv, attention_loss, &g);
    attention_forward_d(g.out, att_d, qkv_d, B, T, C, NH, S);

    float *out = xmalloc(nout * sizeof(float)), *att = xmalloc((size_t)B * NH * T * T * sizeof(float));
    float *dqkv0 = random_floats(nqkv, 1.0f);      // backward accumulates onto this
    for (int reference = 0; reference <= check_reference; reference++) {
        const char *name = reference ? "reference" : "fast";
        (reference ? attention_forward_reference : attention_forward)(out, att, qkv, B, T, C, NH, S);
        double err = rel_err_d(out, g.out, nout);
        CHECKF(err < FWD_TOL, "%s T=%d forward out rel err %g", name, T, err);
        err = rel_err_d(att, att_d, (size_t)B * NH * T * T);
        CHECKF(err < FWD_TOL, "%s T=%d forward att rel err %g", name, T, err);

        float *dqkv = copy_floats(dqkv0, nqkv);
        (reference ? attention_backward_reference : attention_backward)(dqkv, R, qkv, att, B, T, C, NH, S, NULL, NULL);
        // compare dqkv - dqkv0 (in double) with the finite differences, on the q, k, v columns
        double diff = 0, scale = 1e-30;
        int extras_kept = 1;
        for (size_t r = 0; r < (size_t)B * T; r++)
            for (int c = 0; c < S; c++) {
                size_t i = r * S + c;
                if (c >= 3 * C) {
                    extras_kept &= memcmp(&dqkv[i], &dqkv0[i], sizeof(float)) == 0;
                    continue;
                }
                diff = fmax(diff, fabs(((double)dqkv[i] - dqkv0[i]) - fd[i]));
                scale = fmax(scale, fabs(fd[i]));
            }
        CHECKF(diff / scale < GRAD_TOL, "%s T=%d dqkv rel err %g", name, T, diff / scale);
        CHECKF(extras_kept, "%s T=%d wrote dqkv's extra columns", name, T);
        free(dqkv);
    }
    free(qkv); free(R); free(qkv_d); free(g.R); free(g.out); free(fd); free(att_d); free(out); free(att);
    free(dqkv0);
}

static void test_attention_grad(void) {
    rng_seed(4);
    check_attention_grad(2, 5, 8, 2, 3, 1);
    // long enough to cross attention tile boundaries (tiles of 64 query rows)
    check_attention_grad(1, test_small() ? 70 : 133, 4, 2, 1, 0);
}

static double gelu_loss(void *p) {
    GradCtx *g = p;
    double L = 0;
    for (int i = 0; i < g->N; i++) L += (g->out[i] = gelu_d(g->a[i])) * g->R[i];
    return L;
}

static void test_gelu_grad(void) {
    rng_seed(5);
    enum { N = 60 };
    float *inp = random_floats(N, 5.0f), *R = random_floats(N, 1.0f);
    float *out = xmalloc(N * sizeof(float)), *dinp = xcalloc(N, sizeof(float));
    GradCtx g = {.N = N, .a = to_double(inp, N), .R = to_double(R, N), .out = xmalloc(N * sizeof(double))};
    double fd[N];
    gelu_forward(out, inp, N);
    gelu_loss(&g);
    CHECKF(rel_err_d(out, g.out, N) < FWD_TOL, "forward rel err %g", rel_err_d(out, g.out, N));
    gelu_backward(dinp, inp, R, N);
    finite_differences(fd, g.a, N, gelu_loss, &g);
    double err = rel_err_d(dinp, fd, N);
    CHECKF(err < GRAD_TOL, "dinp rel err %g", err);
    // far out: gelu(x) = x (gradient 1) on the right, 0 (gradient 0) on the left, and finite
    const float far[4] = {30.0f, 100.0f, -30.0f, -100.0f};
    float far_out[4], far_grad[4] = {0}, ones[4] = {1, 1, 1, 1};
    gelu_forward(far_out, far, 4);
    gelu_backward(far_grad, far, ones, 4);
    for (int i = 0; i < 4; i++) {
        float want = far[i] > 0 ? far[i] : 0.0f, want_grad = far[i] > 0 ? 1.0f : 0.0f;
        CHECKF(fabsf(far_out[i] - want) < 1e-6f && fabsf(far_grad[i] - want_grad) < 1e-6f,
               "gelu(%g) = %g, gelu'(%g) = %g", far[i], far_out[i], far[i], far_grad[i]);
    }
    free(inp); free(R); free(out); free(dinp); free(g.a); free(g.R); free(g.out);
}

static double residual_loss(void *p) {
    GradCtx *g = p;
    double L = 0;
    for (int i = 0; i < g->N; i++) L += (g->out[i] = g->a[i] + g->b[i]) * g->R[i];
    return L;
}

static void test_residual_grad(void) {
    rng_seed(6);
    enum { N = 20 };
    float *a = random_floats(N, 1.0f), *b = random_floats(N, 1.0f), *R = random_floats(N, 1.0f);
    float *out = xmalloc(N * sizeof(float)), *da = xcalloc(N, sizeof(float)), *db = xcalloc(N, sizeof(float));
    GradCtx g = {.N = N, .a = to_double(a, N), .b = to_double(b, N), .R = to_double(R, N),
                 .out = xmalloc(N * sizeof(double))};
    double fd[N];
    residual_forward(out, a, b, N);
    residual_loss(&g);
    CHECKF(rel_err_d(out, g.out, N) < FWD_TOL, "forward rel err %g", rel_err_d(out, g.out, N));
    residual_backward(da, db, R, N);
    finite_differences(fd, g.a, N, residual_loss, &g);
    CHECKF(rel_err_d(da, fd, N) < GRAD_TOL, "da rel err %g", rel_err_d(da, fd, N));
    finite_differences(fd, g.b, N, residual_loss, &g);
    CHECKF(rel_err_d(db, fd, N) < GRAD_TOL, "db rel err %g", rel_err_d(db, fd, N));
    // either gradient may be NULL; the other still accumulates
    float *da2 = copy_floats(da, N), *db2 = copy_floats(db, N);
    residual_backward(da2, NULL, R, N);
    residual_backward(NULL, db2, R, N);
    for (int i = 0; i < N; i++) CHECK(da2[i] == da[i] + R[i] && db2[i] == db[i] + R[i]);
    free(da2); free(db2);
    // in place: out may be a or b
    float *sum = copy_floats(b, N);
    residual_forward(sum, a, sum, N);
    CHECK(memcmp(sum, out, N * sizeof(float)) == 0);
    free(sum);
    free(a); free(b); free(R); free(out); free(da); free(db); free(g.a); free(g.b); free(g.R); free(g.out);
}

static double crossentropy_loss(void *p) {
    GradCtx *g = p;
    return g->scale * crossentropy_d(NULL, g->a, g->tokens, g->N, g->V);
}

static void test_crossentropy_grad(void) {
    rng_seed(7);
    enum { N = 6, V = 7 };
    const int32_t targets[N] = {3, -1, 0, 6, -1, 3};
    float scale = 0.25f;                                // 1 / number of targets
    float *logits = random_floats(N * V, 3.0f);
    GradCtx g = {.N = N, .V = V, .tokens = targets, .a = to_double(logits, N * V), .scale = scale};
    double fd[N * V], losses_d[N], probs_d[N * V];
    double total_d = crossentropy_d(losses_d, g.a, targets, N, V);
    for (int n = 0; n < N; n++) {
        double maxval = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) maxval = fmax(maxval, g.a[n * V + v]);
        for (int v = 0; v < V; v++) sum += exp(g.a[n * V + v] - maxval);
        for (int v = 0; v < V; v++) probs_d[n * V + v] = exp(g.a[n * V + v] - maxval) / sum;
    }

    float *probs = copy_floats(logits, N * V), losses[N];
    double total = crossentropy_forward(probs, losses, targets, N, V);
    CHECKF(fabs(total - total_d) < 1e-6 * total_d, "total %.9g, want %.9g", total, total_d);
    CHECKF(rel_err_d(losses, losses_d, N) < FWD_TOL, "losses rel err %g", rel_err_d(losses, losses_d, N));
    CHECK(losses[1] == 0.0f && losses[4] == 0.0f);
    CHECKF(rel_err_d(probs, probs_d, N * V) < FWD_TOL, "probs rel err %g", rel_err_d(probs, probs_d, N * V));
    // losses may be NULL
    float *probs2 = copy_floats(logits, N * V);
    CHECK(crossentropy_forward(probs2, NULL, targets, N, V) == total);

    float *dlogits = random_floats(N * V, 1.0f);        // overwritten, whatever it held
    crossentropy_backward(dlogits, probs, targets, N, V, scale);
    finite_differences(fd, g.a, N * V, crossentropy_loss, &g);
    double err = rel_err_d(dlogits, fd, N * V);
    CHECKF(err < GRAD_TOL, "dlogits rel err %g", err);
    for (int v = 0; v < V; v++) CHECK(dlogits[1 * V + v] == 0.0f && dlogits[4 * V + v] == 0.0f);
    free(logits); free(g.a); free(probs); free(probs2); free(dlogits);
}

/* ---- fast against reference ---- */

static void check_matmul_fast_vs_reference(int N, int C, int OC) {
    float *inp = random_floats((size_t)N * C, 1.0f), *weight = random_floats((size_t)OC * C, 1.0f);
    float *dout = random_floats((size_t)N * OC, 1.0f);
    float *out = xmalloc((size_t)N * OC * sizeof(float)), *out_ref = xmalloc((size_t)N * OC * sizeof(float));
    matmul_forward(out, inp, weight, N, C, OC);
    matmul_forward_reference(out_ref, inp, weight, N, C, OC);
    double err = rel_err(out, out_ref, (size_t)N * OC);
    CHECKF(err < 1e-5, "N=%d C=%d OC=%d forward rel err %g", N, C, OC, err);

    // both accumulate onto the same non-zero starting gradients
    float *dinp = random_floats((size_t)N * C, 1.0f), *dweight = random_floats((size_t)OC * C, 1.0f);
    float *dinp_ref = copy_floats(dinp, (size_t)N * C), *dweight_ref = copy_floats(dweight, (size_t)OC * C);
    matmul_backward(dinp, dweight, dout, inp, weight, N, C, OC);
    matmul_backward_reference(dinp_ref, dweight_ref, dout, inp, weight, N, C, OC);
    err = rel_err(dinp, dinp_ref, (size_t)N * C);
    CHECKF(err < 1e-5, "N=%d C=%d OC=%d dinp rel err %g", N, C, OC, err);
    err = rel_err(dweight, dweight_ref, (size_t)OC * C);
    CHECKF(err < 1e-5, "N=%d C=%d OC=%d dweight rel err %g", N, C, OC, err);
    free(inp); free(weight); free(dout); free(out); free(out_ref); free(dinp); free(dweight);
    free(dinp_ref); free(dweight_ref);
}

static void test_matmul_fast_vs_reference(void) {
    rng_seed(8);
    check_matmul_fast_vs_reference(2 * 7, 12, 20);
    check_matmul_fast_vs_reference(2 * 64, 64, 3 * 64);
    if (!test_small()) check_matmul_fast_vs_reference(4 * 64, 96, 4 * 96);
}

static void check_attention_fast_vs_reference(int B, int T, int C, int NH, int extra) {
    int S = 3 * C + extra;
    size_t nqkv = (size_t)B * T * S, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    float *qkv = random_floats(nqkv, 2.0f), *dout = random_floats(nout, 1.0f);
    float *out = xmalloc(nout * sizeof(float)), *out_ref = xmalloc(nout * sizeof(float));
    float *att = xmalloc(natt * sizeof(float)), *att_ref = xmalloc(natt * sizeof(float));
    attention_forward(out, att, qkv, B, T, C, NH, S);
    attention_forward_reference(out_ref, att_ref, qkv, B, T, C, NH, S);
    double err = rel_err(out, out_ref, nout);
    CHECKF(err < 1e-5, "B=%d T=%d C=%d NH=%d out rel err %g", B, T, C, NH, err);
    err = rel_err(att, att_ref, natt);
    CHECKF(err < 1e-5, "B=%d T=%d C=%d NH=%d att rel err %g", B, T, C, NH, err);

    float *dqkv = random_floats(nqkv, 1.0f), *dqkv_ref = copy_floats(dqkv, nqkv);
    // both backwards from the reference's probabilities, so only the backwards are compared
    attention_backward(dqkv, dout, qkv, att_ref, B, T, C, NH, S, NULL, NULL);
    attention_backward_reference(dqkv_ref, dout, qkv, att_ref, B, T, C, NH, S, NULL, NULL);
    err = rel_err(dqkv, dqkv_ref, nqkv);
    CHECKF(err < 1e-5, "B=%d T=%d C=%d NH=%d dqkv rel err %g", B, T, C, NH, err);
    free(qkv); free(dout); free(out); free(out_ref); free(att); free(att_ref); free(dqkv); free(dqkv_ref);
}

static void test_attention_fast_vs_reference(void) {
    rng_seed(9);
    check_attention_fast_vs_reference(2, 7, 12, 3, 5);
    check_attention_fast_vs_reference(2, 64, 64, 4, 0);
    check_attention_fast_vs_reference(1, test_small() ? 70 : 150, 32, 2, 2); // crosses tile boundaries
}

/* The vectorised GELU against the plain tanhf loops, over the range where it bends (|x| < 8, on a
 * length that leaves a remainder after whole vectors) and far out where it is x or 0; the
 * backwards accumulate onto the same non-zero start. */
static void test_gelu_fast_vs_reference(void) {
    rng_seed(15);
    enum { N = 1000 + 13 };
    float *inp = random_floats(N, 8.0f), *dout = random_floats(N, 1.0f);
    inp[0] = 0.0f; inp[1] = 40.0f; inp[2] = -40.0f; inp[3] = 1e-20f;
    float *out = xmalloc(N * sizeof(float)), *out_ref = xmalloc(N * sizeof(float));
    gelu_forward(out, inp, N);
    gelu_forward_reference(out_ref, inp, N);
    double err = rel_err(out, out_ref, N);
    CHECKF(err < 1e-6, "forward rel err %g", err);
    // the reference on its own, against the double formula
    double *inp_d = to_double(inp, N), worst = 0, scale = 0;
    for (int i = 0; i < N; i++) {
        worst = fmax(worst, fabs(out_ref[i] - gelu_d(inp_d[i])));
        scale = fmax(scale, fabs(gelu_d(inp_d[i])));
    }
    CHECKF(worst / scale < 1e-6, "reference forward rel err %g", worst / scale);
    float *dinp = random_floats(N, 1.0f), *dinp_ref = copy_floats(dinp, N);
    gelu_backward(dinp, inp, dout, N);
    gelu_backward_reference(dinp_ref, inp, dout, N);
    err = rel_err(dinp, dinp_ref, N);
    CHECKF(err < 1e-6, "backward rel err %g", err);
    free(inp); free(dout); free(out); free(out_ref); free(inp_d); free(dinp); free(dinp_ref);
}

/* The vectorised softmax + cross-entropy against the plain expf/logf loops, on a row length with
 * a remainder after whole vectors and on one of the model's size, with rows that have no target. */
static void check_crossentropy_fast_vs_reference(int N, int V) {
    int32_t *targets = xmalloc((size_t)N * sizeof *targets);
    for (int n = 0; n < N; n++) targets[n] = n % 3 == 1 ? -1 : (int32_t)((n * 7919) % V);
    float *probs = random_floats((size_t)N * V, 6.0f), *probs_ref = copy_floats(probs, (size_t)N * V);
    float *losses = xmalloc((size_t)N * sizeof(float)), *losses_ref = xmalloc((size_t)N * sizeof(float));
    double total = crossentropy_forward(probs, losses, targets, N, V);
    double total_ref = crossentropy_forward_reference(probs_ref, losses_ref, targets, N, V);
    CHECKF(fabs(total - total_ref) < 1e-6 * total_ref, "N=%d V=%d total %.9g, reference %.9g", N, V, total,
           total_ref);
    double err = rel_err(losses, losses_ref, (size_t)N);
    CHECKF(err < 1e-6, "N=%d V=%d losses rel err %g", N, V, err);
    err = rel_err(probs, probs_ref, (size_t)N * V);
    CHECKF(err < 1e-6, "N=%d V=%d probs rel err %g", N, V, err);
    free(targets); free(probs); free(probs_ref); free(losses); free(losses_ref);
}

static void test_crossentropy_fast_vs_reference(void) {
    rng_seed(16);
    check_crossentropy_fast_vs_reference(7, 37);
    check_crossentropy_fast_vs_reference(5, 4096);
}

/* crossentropy_backward_unscaled equals crossentropy_backward at scale 1 bit for bit (rows without
 * a target included), and the scale applied afterwards by matmul_backward_scaled gives the
 * gradients of matmul_backward on the scaled dlogits. */
static void test_crossentropy_unscaled_vs_backward(void) {
    rng_seed(17);
    enum { N = 6, V = 29, C = 5 };
    const int32_t targets[N] = {3, -1, 0, 28, -1, 3};
    float *probs = random_floats(N * V, 3.0f);
    crossentropy_forward(probs, NULL, targets, N, V);
    float *d_scaled1 = random_floats(N * V, 1.0f), *d_unscaled = copy_floats(probs, N * V);
    crossentropy_backward(d_scaled1, probs, targets, N, V, 1.0f);
    crossentropy_backward_unscaled(d_unscaled, targets, N, V);
    CHECK(memcmp(d_scaled1, d_unscaled, N * V * sizeof(float)) == 0);
    for (int v = 0; v < V; v++) CHECK(d_unscaled[1 * V + v] == 0.0f && d_unscaled[4 * V + v] == 0.0f);

    const float scale = 0.25f;                           // 1 / number of targets
    float *d_scaled = xmalloc(N * V * sizeof(float));
    crossentropy_backward(d_scaled, probs, targets, N, V, scale);
    float *inp = random_floats(N * C, 1.0f), *weight = random_floats(V * C, 1.0f);
    float *dinp = random_floats(N * C, 1.0f), *dweight = random_floats(V * C, 1.0f);
    float *dinp_ref = copy_floats(dinp, N * C), *dweight_ref = copy_floats(dweight, V * C);
    matmul_backward_scaled(dinp, dweight, d_unscaled, inp, weight, N, C, V, scale);
    matmul_backward_reference(dinp_ref, dweight_ref, d_scaled, inp, weight, N, C, V);
    double err = rel_err(dinp, dinp_ref, N * C);
    CHECKF(err < 1e-6, "dinp rel err %g", err);
    err = rel_err(dweight, dweight_ref, V * C);
    CHECKF(err < 1e-6, "dweight rel err %g", err);
    free(probs); free(d_scaled1); free(d_unscaled); free(d_scaled); free(inp); free(weight); free(dinp);
    free(dweight); free(dinp_ref); free(dweight_ref);
}

int main(void) {
    RUN(test_embedding_grad);
    RUN(test_embedding_backward_repeats);
    RUN(test_layernorm_grad);
    RUN(test_matmul_grad);
    RUN(test_attention_grad);
    RUN(test_gelu_grad);
    RUN(test_residual_grad);
    RUN(test_crossentropy_grad);
    RUN(test_matmul_fast_vs_reference);
    RUN(test_attention_fast_vs_reference);
    RUN(test_gelu_fast_vs_reference);
    RUN(test_crossentropy_fast_vs_reference);
    RUN(test_crossentropy_unscaled_vs_backward);
    return test_summary();
}
