/* layers.c: the transformer's layers, each forward next to its backward (shapes: layers.h):
 * embedding, LayerNorm, the linear layers and attention. GELU, the residual and softmax +
 * cross-entropy are in layers_pointwise.c.
 *
 * Written in the manner of llm.c's train_gpt2.c: the forward saves what the backward needs, and
 * each backward step says which forward line it undoes. Every backward ACCUMULATES (+=) into its
 * gradients (the cross-entropy backwards, which the header says overwrite, are the exception).
 *
 * Speed: the linear layers and attention's products are OpenBLAS sgemm calls; every other layer
 * is a loop over rows parallelised with OpenMP, written so that GCC vectorises it (hence
 * fast_math.h and the `omp simd` reductions). Attention runs one (batch, head) per OpenMP
 * iteration; OpenBLAS's OpenMP build runs an sgemm called inside a parallel region on the calling
 * thread only, so the two levels of parallelism do not fight. Where a layer has a fast version,
 * its *_reference functions come first: the plain loops the tests hold the fast version to.
 * tests/bench_layers.c measures all of this.
 */
#include "model/layers.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/util.h"
#include "model/fast_math.h"

/* ---- profiling for the benchmark (off unless layer_profile.enabled) ---- */
LayerProfile layer_profile;
double layer_profile_start(void) { return layer_profile.enabled ? tr_now_seconds() : 0.0; }
void layer_profile_stop(double *total, double t0) {
    if (layer_profile.enabled) *total += tr_now_seconds() - t0;
}

static int num_threads(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* token embedding */

void embedding_forward(float *out /*(B,T,C)*/, const int32_t *tokens /*(B,T)*/, const float *wte /*(V,C)*/,
                       int B, int T, int C) {
    long N = (long)B * T;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++) {
        memcpy(out + n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
    }
}

void embedding_backward(float *dwte /*(V,C)*/, const float *dout /*(B,T,C)*/, const int32_t *tokens /*(B,T)*/,
                        int B, int T, int C) {
    long N = (long)B * T;
    // A token may appear at many positions, so two rows n may add into the same row of dwte.
    // Each thread therefore owns a slice of channels [c0, c1) and walks every row: no two
    // threads ever write the same float, and each dwte element gets its terms in row order
    // (the result does not depend on the thread count).
#pragma omp parallel
    {
        int nth = num_threads(), id = thread_id();
        int c0 = (int)((long)C * id / nth), c1 = (int)((long)C * (id + 1) / nth);
        for (long n = 0; n < N; n++) {
            float *dwte_row = dwte + (size_t)tokens[n] * C;
            const float *dout_row = dout + n * C;
            // undoes out[n,:] = wte[tokens[n],:]
            for (int c = c0; c < c1; c++) dwte_row[c] += dout_row[c];
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* LayerNorm, weight only */

void layernorm_forward(float *out /*(N,C)*/, float *mean /*(N)*/, float *rstd /*(N)*/,
                       const float *inp /*(N,C)*/, const float *weight /*(C)*/, int N, int C) {
    const float eps = 1e-5f;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;                        // biased variance (divides by C, as PyTorch)
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            float norm = (x[c] - m) * s;       // (1)
            o[c] = norm * weight[c];           // (2)
        }
        mean[n] = m;
        rstd[n] = s;
    }
}

void layernorm_backward(float *dinp /*(N,C)*/, float *dweight /*(C)*/, const float *dout /*(N,C)*/,
                        const float *inp /*(N,C)*/, const float *weight /*(C)*/,
                        const float *mean /*(N)*/, const float *rstd /*(N)*/, int N, int C) {
    // dweight sums over all rows. Each thread sums its rows into its own (C) partial, and the
    // partials are added in thread order afterwards: no race, and a fixed summation order for a
    // given thread count.
    int nth = max_threads();
    float *dweight_partial = xcalloc((size_t)nth * C, sizeof(float));
#pragma omp parallel
    {
        float *my_dweight = dweight_partial + (size_t)thread_id() * C;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            // first pass: the two row means the normalisation's backward needs
            float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * s;
                float dnorm = weight[c] * dy[c];
                dnorm_mean += dnorm;
                dnorm_norm_mean += dnorm * norm;
            }
            dnorm_mean /= C;
            dnorm_norm_mean /= C;
            // second pass
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * s;
                float dnorm = weight[c] * dy[c];
                // undoes (2) o = norm * weight, for the weight
                my_dweight[c] += norm * dy[c];
                // undoes (1) norm = (x - mean) * rstd, with mean and rstd functions of the whole
                // row: the gradient flows through x directly (dnorm), through the mean (every norm
                // moves by -rstd: dnorm_mean) and through rstd (d rstd = -rstd^3 / 2 d(var), so
                // every norm moves by -norm * rstd^2 / 2 * d(var): norm * dnorm_norm_mean).
                dx[c] += s * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
            }
        }
    }
    for (int t = 0; t < nth; t++)
        for (int c = 0; c < C; c++) dweight[c] += dweight_partial[(size_t)t * C + c];
    free(dweight_partial);
}

/* ------------------------------------------------------------------------------------------ */
/* linear layer: out = inp @ weight^T */

void matmul_forward_reference(float *out /*(N,OC)*/, const float *inp /*(N,C)*/, const float *weight /*(OC,C)*/,
                              int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            float sum = 0.0f;
            for (int c = 0; c < C; c++) sum += inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
            out[(size_t)n * OC + o] = sum;
        }
    }
}

void matmul_backward_reference(float *dinp /*(N,C)*/, float *dweight /*(OC,C)*/, const float *dout /*(N,OC)*/,
                               const float *inp /*(N,C)*/, const float *weight /*(OC,C)*/, int N, int C,
                               int OC) {
    // undoes out[n,o] = sum_c inp[n,c] * weight[o,c], one (n,o) term at a time
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            float d = dout[(size_t)n * OC + o];
            for (int c = 0; c < C; c++) {
                if (dinp) dinp[(size_t)n * C + c] += weight[(size_t)o * C + c] * d;
                if (dweight) dweight[(size_t)o * C + c] += inp[(size_t)n * C + c] * d;
            }
        }
    }
}

/* The fast twin of the loops above: one sgemm per product. tests/test_layers.c holds it to them
 * (test_matmul_fast_vs_reference; matmul_backward_scaled: test_crossentropy_unscaled_vs_backward). */
void matmul_forward(float *out /*(N,OC)*/, const float *inp /*(N,C)*/, const float *weight /*(OC,C)*/,
                    int N, int C, int OC) {
    double profile_t0 = layer_profile_start();
    // out (N,OC) = inp (N,C) . weight^T (C,OC)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
    layer_profile_stop(&layer_profile.matmul_s, profile_t0);
}

void matmul_backward_scaled(float *dinp /*(N,C)*/, float *dweight /*(OC,C)*/, const float *dout /*(N,OC)*/,
                            const float *inp /*(N,C)*/, const float *weight /*(OC,C)*/, int N, int C, int OC,
                            float dout_scale) {
    double profile_t0 = layer_profile_start();
    // out = inp . weight^T, so (beta = 1: accumulate; alpha carries the scale of dout)
    // dinp (N,C) += dout (N,OC) . weight (OC,C)
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, dout_scale, dout, OC, weight, C, 1.0f,
                    dinp, C);
    // dweight (OC,C) += dout^T (OC,N) . inp (N,C)
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, dout_scale, dout, OC, inp, C, 1.0f,
                    dweight, C);
    layer_profile_stop(&layer_profile.matmul_s, profile_t0);
}

void matmul_backward(float *dinp /*(N,C)*/, float *dweight /*(OC,C)*/, const float *dout /*(N,OC)*/,
                     const float *inp /*(N,C)*/, const float *weight /*(OC,C)*/, int N, int C, int OC) {
    matmul_backward_scaled(dinp, dweight, dout, inp, weight, N, C, OC, 1.0f);
}

/* ------------------------------------------------------------------------------------------ */
/* causal self-attention
 *
 * For one (batch b, head h), with Q, K, V the (T,hs) slices of qkv and P the (T,T) block of att:
 *     S = Q K^T * scale          (1) scores
 *     P = causal_softmax(S)      (2) row t over columns 0..t, exact zeros after
 *     O = P V                    (3) the head's (T,hs) slice of out
 *
 * Blockwise causal attention (BCA, xPos paper §3.3; docs/posenc.md §3.4), an evaluation option: with
 * blocks of w positions, query t attends to keys j with blockwise_first_key(t, w) <= j <= t, i.e.
 * its own block and the previous one, so no query ever sees a distance >= 2w (the training
 * context when w = block_size/2). w = 0 is plain causal attention, and so is any T <= 2w. The
 * saved att is zero outside each row's window, which is all the backward needs: it is the same
 * code for either mask (a zero probability gets a zero score gradient). */

void attention_forward_reference(float *out /*(B,T,C)*/, float *att /*(B,NH,T,T)*/,
                                 const float *qkv /*(B,T,qkv_stride)*/, int B, int T, int C, int NH,
                                 int qkv_stride) {
    attention_forward_blockwise_reference(out, att, qkv, B, T, C, NH, qkv_stride, 0, NULL, 0);
}

/* Row by row with an explicit mask: key t2 is visible to query t iff allowed(t, t2). */
static int blockwise_allowed(int t, int t2, int block) {
    return t2 <= t && (block <= 0 || t2 >= block * (t / block - 1));
}

void attention_forward_blockwise_reference(float *out /*(B,T,C)*/, float *att /*(B,NH,T,T)*/,
                                           const float *qkv /*(B,T,qkv_stride)*/, int B, int T, int C, int NH,
                                           int qkv_stride, int block, const float *bias /*(B,NH,T) or NULL*/,
                                           int scores_given) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                const float *query = qkv + ((size_t)b * T + t) * qkv_stride + (size_t)h * hs;
                float *att_row = att + (((size_t)b * NH + h) * T + t) * T;
                const float *a = bias ? bias + ((size_t)b * NH + h) * T : NULL;
                // (1) scores against the visible keys (plus a[t] - a[t2]), and their max
                float maxval = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    if (!blockwise_allowed(t, t2, block)) continue;
                    const float *key = qkv + ((size_t)b * T + t2) * qkv_stride + C + (size_t)h * hs;
                    float s = att_row[t2]; /* scores_given: the kind's */
                    if (!scores_given) {
                        s = 0.0f;
                        for (int i = 0; i < hs; i++) s += query[i] * key[i];
                        s *= scale;
                    }
                    if (a) s += a[t] - a[t2];
                    if (s > maxval) maxval = s;
                    att_row[t2] = s;
                }
                // (2) softmax over the visible keys, exact zeros elsewhere
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    if (!blockwise_allowed(t, t2, block)) continue;
                    float e = expf(att_row[t2] - maxval);
                    att_row[t2] = e;
                    sum += e;
                }
                for (int t2 = 0; t2 < T; t2++) att_row[t2] = blockwise_allowed(t, t2, block) ? att_row[t2] / sum : 0.0f;
                // (3) weighted sum of the values
                float *out_row = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                for (int i = 0; i < hs; i++) out_row[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *value = qkv + ((size_t)b * T + t2) * qkv_stride + 2 * C + (size_t)h * hs;
                    for (int i = 0; i < hs; i++) out_row[i] += att_row[t2] * value[i];
                }
            }
        }
    }
}

void attention_backward_reference(float *dqkv /*(B,T,qkv_stride)*/, const float *dout /*(B,T,C)*/,
                                  const float *qkv /*(B,T,qkv_stride)*/, const float *att /*(B,NH,T,T)*/,
                                  int B, int T, int C, int NH, int qkv_stride, float *dbias /*(B,NH,T) or NULL*/,
                                  float *dscores /*(B,NH,T,T) or NULL*/) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    float *datt = xmalloc((size_t)T * sizeof(float));    // one row's dP, then dS
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                size_t row_off = ((size_t)b * T + t) * qkv_stride + (size_t)h * hs;
                const float *query = qkv + row_off;
                float *dquery = dqkv + row_off;
                const float *att_row = att + (((size_t)b * NH + h) * T + t) * T;
                const float *dout_row = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
                // undo (3) out_row = sum_t2 att_row[t2] * value[t2]
                for (int t2 = 0; t2 <= t; t2++) {
                    size_t off2 = ((size_t)b * T + t2) * qkv_stride + (size_t)h * hs;
                    const float *value = qkv + off2 + 2 * C;
                    float *dvalue = dqkv + off2 + 2 * C;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        d += dout_row[i] * value[i];
                        dvalue[i] += att_row[t2] * dout_row[i];
                    }
                    datt[t2] = d;
                }
                // undo (2) softmax: d score[t3] = sum_t2 datt[t2] * att[t2] * ([t2 == t3] - att[t3])
                //                              = att[t3] * (datt[t3] - sum_t2 att[t2] datt[t2])
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) dot += att_row[t2] * datt[t2];
                for (int t2 = 0; t2 <= t; t2++) datt[t2] = att_row[t2] * (datt[t2] - dot);
                // undo the bias, score[t2] += a[t] - a[t2]: da[t2] -= d score[t2]. (The query's own
                // term, da[t] += sum_t2 d score[t2], is 0: a softmax gradient sums to 0 over its row.)
                if (dbias) {
                    float *da = dbias + ((size_t)b * NH + h) * T;
                    for (int t2 = 0; t2 <= t; t2++) da[t2] -= datt[t2];
                }
                // undo (1) score[t2] = query . key[t2] * scale, or hand d score to the kind that made it
                if (dscores) {
                    float *drow = dscores + (((size_t)b * NH + h) * T + t) * T;
                    for (int t2 = 0; t2 < T; t2++) drow[t2] = t2 <= t ? datt[t2] : 0.0f;
                    continue;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    size_t off2 = ((size_t)b * T + t2) * qkv_stride + (size_t)h * hs;
                    const float *key = qkv + off2 + C;
                    float *dkey = dqkv + off2 + C;
                    for (int i = 0; i < hs; i++) {
                        dquery[i] += key[i] * datt[t2] * scale;
                        dkey[i] += query[i] * datt[t2] * scale;
                    }
                }
            }
        }
    }
    free(datt);
}

/* The fast version works in tiles of ATTENTION_TILE query rows: rows [r0,r1) only ever look at
 * keys [0,r1), so the products skip the blocks above the diagonal (about half the FLOPs at large
 * T) and a tile of scores is still warm in cache when the softmax and P V read it. 64 was the
 * fastest of 32, 64, 96, 128, 256 and no tiling (B=4 NH=16 T=512 hs=48, forward + backward on 2
 * threads: 44 ms; 52 ms with 32 or 128; 97 ms untiled).
 *
 * tests/test_layers.c (test_attention_fast_vs_reference) holds this fast version to the
 * references above, on sizes that cross the tile boundary. */
enum { ATTENTION_TILE = 64 };

static int min_int(int a, int b) { return a < b ? a : b; }

/* The row loops of the softmax (softmax_row, model/fast_math.h) and its backward live in their
 * own functions, kept out of line: inlined into the loop over rows, whose length t+1 changes from
 * row to row, GCC 12 leaves their reductions scalar (the attention forward took 2x as long); on
 * their own they vectorise. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Given p = softmax(s) and dp = dL/dp over [0, n), replaces dp by dL/ds:
 * ds_j = sum_i dp_i p_i ([i == j] - p_j) = p_j (dp_j - sum_i p_i dp_i).
 * |ds_j| below 2^-100 becomes 0, as softmax_row does for p: a decaying bias makes many p_j tiny,
 * and their products would be subnormal floats, slow in every product that reads dS. */
NOINLINE static void softmax_backward_inplace(float *dp, const float *p, int n) {
    float dot = 0.0f;
#pragma omp simd simdlen(SIMD_LANES) reduction(+ : dot)
    for (int j = 0; j < n; j++) dot = MADD(p[j], dp[j], dot);
#pragma omp simd simdlen(SIMD_LANES)
    for (int j = 0; j < n; j++) {
        const float ds = p[j] * (dp[j] - dot);
        dp[j] = ds < 0x1p-100f && ds > -0x1p-100f ? 0.0f : ds;
    }
}

/* The first key query t may attend to: 0 for causal attention (block 0), else the start of the
 * block before t's own. Never decreases with t. */
static int blockwise_first_key(int t, int block) {
    if (block <= 0) return 0;
    int first = block * (t / block - 1);
    return first > 0 ? first : 0;
}

/* One head. q, k, v: (T,hs) with row stride ld_qkv; out: (T,hs) with row stride ld_out;
 * att: (T,T); block: 0 (causal) or the BCA block size; a: the head's score bias (T) or NULL. */
static void attention_head_forward(float *out, float *att, const float *q, const float *k, const float *v,
                                   int T, int hs, int ld_qkv, int ld_out, float scale, int block, const float *a,
                                   int scores_given) {
    for (int r0 = 0; r0 < T; r0 += ATTENTION_TILE) {
        int r1 = min_int(r0 + ATTENTION_TILE, T), rows = r1 - r0;
        int k0 = blockwise_first_key(r0, block); // the tile's rows look at keys [k0, r1) at most
        float *p = att + (size_t)r0 * T;       // rows [r0,r1) of P, (rows, T) with stride T
        // (1) S[r0:r1, k0:r1] = Q[r0:r1] . K[k0:r1]^T * scale, unless the kind gave S
        if (!scores_given)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1 - k0, hs, scale, q + (size_t)r0 * ld_qkv,
                        ld_qkv, k + (size_t)k0 * ld_qkv, ld_qkv, 0.0f, p + k0, T);
        // (2) causal softmax of each row, in place: row t over keys first..t, the rest exactly 0.
        // The row is padded with -inf (exp gives exact zeros, which leave the max and the sum as
        // they are) to a whole number of SIMD_LANES where the row has room: the vector loops then
        // have no scalar remainder, which would cost as much as the rest of a short row.
        for (int t = r0; t < r1; t++) {
            float *row = att + (size_t)t * T;
            int first = blockwise_first_key(t, block), n = t + 1 - first;
            int n_padded = min_int((n + SIMD_LANES - 1) / SIMD_LANES * SIMD_LANES, T - first);
            if (first > 0) memset(row, 0, (size_t)first * sizeof(float));
            if (a)
                for (int j = first; j <= t; j++) row[j] += a[t] - a[j];
            for (int j = first + n; j < first + n_padded; j++) row[j] = -INFINITY;
            softmax_row(row + first, n_padded, NULL, NULL);
            memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
        }
        // (3) O[r0:r1] = P[r0:r1, k0:r1] . V[k0:r1]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hs, r1 - k0, 1.0f, p + k0, T,
                    v + (size_t)k0 * ld_qkv, ld_qkv, 0.0f, out + (size_t)r0 * ld_out, ld_out);
    }
}

void attention_forward_blockwise(float *out /*(B,T,C)*/, float *att /*(B,NH,T,T)*/,
                                 const float *qkv /*(B,T,qkv_stride)*/, int B, int T, int C, int NH, int qkv_stride,
                                 int block, const float *bias /*(B,NH,T) or NULL*/, int scores_given) {
    double profile_t0 = layer_profile_start();
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * qkv_stride + (size_t)h * hs;
            attention_head_forward(out + (size_t)b * T * C + (size_t)h * hs, att + ((size_t)b * NH + h) * T * T,
                                   q, q + C, q + 2 * C, T, hs, qkv_stride, C, scale, block,
                                   bias ? bias + ((size_t)b * NH + h) * T : NULL, scores_given);
        }
    }
    layer_profile_stop(&layer_profile.attention_s, profile_t0);
}

void attention_forward(float *out /*(B,T,C)*/, float *att /*(B,NH,T,T)*/, const float *qkv /*(B,T,qkv_stride)*/,
                       int B, int T, int C, int NH, int qkv_stride) {
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, qkv_stride, 0, NULL, 0);
}

/* One head's backward, tile by tile. dq, dk, dv: (T,hs) with stride ld_qkv; dout: (T,hs) with
 * stride ld_out; p: the head's saved (T,T) probabilities; scratch: ATTENTION_TILE * T floats;
 * da: the head's score-bias gradient (T, accumulated) or NULL. */
static void attention_head_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                    const float *k, const float *v, const float *att, float *scratch,
                                    int T, int hs, int ld_qkv, int ld_out, float scale, float *da, float *dscores) {
    for (int r0 = 0; r0 < T; r0 += ATTENTION_TILE) {
        int r1 = min_int(r0 + ATTENTION_TILE, T), rows = r1 - r0;
        const float *p = att + (size_t)r0 * T;      // P[r0:r1, :]
        const float *dO = dout + (size_t)r0 * ld_out; // dO[r0:r1]
        float *dS = scratch;                         // (rows, r1), stride T; first holds dP
        // undo (3) O = P V:
        //   dP[r0:r1, 0:r1] = dO[r0:r1] . V[0:r1]^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, hs, 1.0f, dO, ld_out, v, ld_qkv, 0.0f,
                    dS, T);
        //   dV[0:r1] += P[r0:r1, 0:r1]^T . dO[r0:r1]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hs, rows, 1.0f, p, T, dO, ld_out, 1.0f, dv,
                    ld_qkv);
        // undo (2) P = softmax(S), row by row. Above the diagonal P is 0, so dS is 0 there too.
        // Each row runs to a whole number of SIMD_LANES where dP's columns (up to r1, finite) allow:
        // the zero probabilities there add nothing to the dot product (see the forward's padding).
        for (int t = r0; t < r1; t++) {
            float *drow = dS + (size_t)(t - r0) * T;
            int n_padded = min_int((t + SIMD_LANES) / SIMD_LANES * SIMD_LANES, r1);
            softmax_backward_inplace(drow, att + (size_t)t * T, n_padded);
            for (int j = t + 1; j < r1; j++) drow[j] = 0.0f;
            // undo the bias S[t, j] += a[t] - a[j]: da[j] -= dS[t, j] (a[t]'s term sums a softmax
            // gradient's row: 0)
            if (da)
                for (int j = 0; j <= t; j++) da[j] -= drow[j];
        }
        // undo (1) S = Q K^T * scale, or hand dS to the kind that made S
        if (dscores) {
            for (int t = r0; t < r1; t++) {
                float *out = dscores + (size_t)t * T;
                memcpy(out, dS + (size_t)(t - r0) * T, sizeof(float) * (size_t)r1);
                memset(out + r1, 0, sizeof(float) * (size_t)(T - r1));
            }
            continue;
        }
        //   dQ[r0:r1] += dS[r0:r1, 0:r1] . K[0:r1] * scale
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hs, r1, scale, dS, T, k, ld_qkv, 1.0f,
                    dq + (size_t)r0 * ld_qkv, ld_qkv);
        //   dK[0:r1] += dS[r0:r1, 0:r1]^T . Q[r0:r1] * scale
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hs, rows, scale, dS, T, q + (size_t)r0 * ld_qkv,
                    ld_qkv, 1.0f, dk, ld_qkv);
    }
}

void attention_backward(float *dqkv /*(B,T,qkv_stride)*/, const float *dout /*(B,T,C)*/,
                        const float *qkv /*(B,T,qkv_stride)*/, const float *att /*(B,NH,T,T)*/,
                        int B, int T, int C, int NH, int qkv_stride, float *dbias /*(B,NH,T) or NULL*/,
                        float *dscores /*(B,NH,T,T) or NULL*/) {
    double profile_t0 = layer_profile_start();
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    // Each (b,h) writes only its own head's columns of dqkv, so the iterations are independent.
#pragma omp parallel
    {
        float *scratch = xmalloc((size_t)min_int(ATTENTION_TILE, T) * T * sizeof(float));
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                size_t qoff = (size_t)b * T * qkv_stride + (size_t)h * hs;
                float *dq = dqkv + qoff;
                const float *q = qkv + qoff;
                attention_head_backward(dq, dq + C, dq + 2 * C, dout + (size_t)b * T * C + (size_t)h * hs, q,
                                        q + C, q + 2 * C, att + ((size_t)b * NH + h) * T * T, scratch, T, hs,
                                        qkv_stride, C, scale, dbias ? dbias + ((size_t)b * NH + h) * T : NULL,
                                        dscores ? dscores + ((size_t)b * NH + h) * T * T : NULL);
            }
        }
        free(scratch);
    }
    layer_profile_stop(&layer_profile.attention_s, profile_t0);
}
