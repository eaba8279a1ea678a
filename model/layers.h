/* layers.h: every layer of the transformer, forward and backward side by side (layers.c; GELU,
 * the residual and softmax + cross-entropy in layers_pointwise.c).
 *
 * Shape legend, used everywhere in model/:
 *   B batch, T sequence length, C channels, NH heads, hs = C/NH head size, V vocabulary,
 *   L layers, N = B*T rows, OC output channels of a linear layer.
 * Linear weights are stored (OC, C) row-major, as PyTorch's Linear: out = inp @ weight^T.
 * No layer has a bias (the architecture has none).
 *
 * Conventions (as llm.c): every backward ACCUMULATES into its gradient outputs (+=), so the
 * caller zeroes gradients once per step (the exceptions, crossentropy_backward and
 * crossentropy_backward_unscaled, overwrite: they start the chain); forwards overwrite their
 * outputs. Token ids and targets must be < V and C divisible by NH: the model checks them before
 * calling, these void functions cannot report. Fast kernels (OpenBLAS sgemm, OpenMP, vectorised
 * loops) each have a plain *_reference twin that the tests compare against.
 */
#ifndef TINYROPE_LAYERS_H
#define TINYROPE_LAYERS_H

#include <stdint.h>

/* ---- token embedding: out[b,t,:] = wte[tokens[b,t], :] ---- */
void embedding_forward(float *out /*(B,T,C)*/, const int32_t *tokens /*(B,T)*/, const float *wte /*(V,C)*/,
                       int B, int T, int C);
void embedding_backward(float *dwte /*(V,C)*/, const float *dout /*(B,T,C)*/, const int32_t *tokens /*(B,T)*/,
                        int B, int T, int C);

/* ---- LayerNorm with weight, no bias, eps 1e-5, biased variance ----
 * Saves mean and rstd (N) for the backward. */
void layernorm_forward(float *out /*(N,C)*/, float *mean /*(N)*/, float *rstd /*(N)*/,
                       const float *inp /*(N,C)*/, const float *weight /*(C)*/, int N, int C);
void layernorm_backward(float *dinp /*(N,C)*/, float *dweight /*(C)*/, const float *dout /*(N,C)*/,
                        const float *inp /*(N,C)*/, const float *weight /*(C)*/,
                        const float *mean /*(N)*/, const float *rstd /*(N)*/, int N, int C);

/* ---- linear layer: out = inp @ weight^T (cblas_sgemm) ---- */
void matmul_forward(float *out /*(N,OC)*/, const float *inp /*(N,C)*/, const float *weight /*(OC,C)*/,
                    int N, int C, int OC);
/* dinp += dout @ weight; dweight += dout^T @ inp. Either output may be NULL to skip it. */
void matmul_backward(float *dinp /*(N,C)*/, float *dweight /*(OC,C)*/, const float *dout /*(N,OC)*/,
                     const float *inp /*(N,C)*/, const float *weight /*(OC,C)*/, int N, int C, int OC);
/* matmul_backward with dout multiplied by dout_scale (folded into the products, so dout itself
 * need not be scaled first). */
void matmul_backward_scaled(float *dinp /*(N,C)*/, float *dweight /*(OC,C)*/, const float *dout /*(N,OC)*/,
                            const float *inp /*(N,C)*/, const float *weight /*(OC,C)*/, int N, int C, int OC,
                            float dout_scale);
void matmul_forward_reference(float *out, const float *inp, const float *weight, int N, int C, int OC);
void matmul_backward_reference(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, int N, int C, int OC);

/* ---- causal self-attention, scale 1/sqrt(hs) ----
 * qkv rows hold q (C), k (C), v (C) and possibly more columns after them (a positional encoding
 * may ask the QKV projection for extra outputs); qkv_stride >= 3C is the row length. Head h uses
 * channels [h*hs, (h+1)*hs) of each of q, k, v. att saves the softmax probabilities (zero above
 * the diagonal) for the backward. bias (B,NH,T), where given, is a score bias a: the score of
 * query t and key j gets a[t] - a[j] (ALiBi, FoX; posenc.h); the backward then adds its gradient,
 * da[j] -= sum_t dS[t,j] (dS: the scores' gradient), into dbias. a[t]'s own term, sum_j dS[t,j],
 * is 0 (a softmax's gradient sums to 0 over its row), as a[t] shifts the whole row.
 * With scores_given, att holds the scaled scores of every j <= t on entry (a positional kind
 * that forms them itself, PaTH; posenc.h) instead of q.k/sqrt(hs); the backward then writes the
 * scores' gradient into dscores (B,NH,T,T), 0 above the diagonal, instead of adding dq and dk. */
void attention_forward(float *out /*(B,T,C)*/, float *att /*(B,NH,T,T)*/, const float *qkv /*(B,T,qkv_stride)*/,
                       int B, int T, int C, int NH, int qkv_stride);
/* dqkv (only its first 3C columns) += the gradient through attention; dbias += the bias's (or NULL). */
void attention_backward(float *dqkv /*(B,T,qkv_stride)*/, const float *dout /*(B,T,C)*/,
                        const float *qkv /*(B,T,qkv_stride)*/, const float *att /*(B,NH,T,T)*/,
                        int B, int T, int C, int NH, int qkv_stride, float *dbias /*(B,NH,T) or NULL*/,
                        float *dscores /*(B,NH,T,T) or NULL*/);
void attention_forward_reference(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                                 int qkv_stride);
/* Blockwise causal attention (BCA, docs/posenc.md §3.4; an evaluation option): query t sees keys j with
 * j <= t and j >= block * (floor(t/block) - 1), i.e. its own block of `block` positions and the one
 * before. block = 0 is plain causal attention (attention_forward), as is any T <= 2*block. att is
 * zero outside the window, so attention_backward serves this mask unchanged. */
void attention_forward_blockwise(float *out /*(B,T,C)*/, float *att /*(B,NH,T,T)*/,
                                 const float *qkv /*(B,T,qkv_stride)*/, int B, int T, int C, int NH, int qkv_stride,
                                 int block, const float *bias /*(B,NH,T) or NULL*/, int scores_given);
void attention_forward_blockwise_reference(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                                           int qkv_stride, int block, const float *bias, int scores_given);
void attention_backward_reference(float *dqkv, const float *dout, const float *qkv, const float *att,
                                  int B, int T, int C, int NH, int qkv_stride, float *dbias, float *dscores);

/* ---- GELU, tanh approximation, elementwise over n values ---- */
void gelu_forward(float *out, const float *inp, long n);
void gelu_backward(float *dinp, const float *inp, const float *dout, long n);
void gelu_forward_reference(float *out, const float *inp, long n);
void gelu_backward_reference(float *dinp, const float *inp, const float *dout, long n);

/* ---- residual: out = a + b (out may alias a or b) ---- */
void residual_forward(float *out, const float *a, const float *b, long n);
/* da += dout; db += dout. Either may be NULL (the model passes dout straight on as the gradient of
 * the branch output, so it only needs da). */
void residual_backward(float *da, float *db, const float *dout, long n);

/* ---- softmax + cross-entropy, fused ----
 * logits (N,V) are overwritten with the probabilities. targets[i] < 0 marks a position with no
 * target (padding of the last validation window): its loss is 0 and it gets no gradient.
 * Returns the SUM of the losses of the positions with targets; losses (N) may be NULL. */
double crossentropy_forward(float *probs_inout /*(N,V)*/, float *losses /*(N) or NULL*/,
                            const int32_t *targets /*(N)*/, int N, int V);
/* dlogits = scale * (probs - onehot(target)) for positions with a target, 0 elsewhere
 * (overwrites; scale is 1/number of targets for a mean loss). dlogits may be the same buffer as
 * probs: the logits gradient then replaces the probabilities, saving an (N,V) buffer. */
void crossentropy_backward(float *dlogits /*(N,V)*/, const float *probs /*(N,V)*/, const int32_t *targets /*(N)*/,
                           int N, int V, float scale);
/* crossentropy_backward with scale 1, in place: probs becomes probs - onehot(target) for
 * positions with a target, 0 elsewhere. The caller applies the scale in the product that reads
 * the gradient (matmul_backward_scaled). */
void crossentropy_backward_unscaled(float *probs_inout /*(N,V)*/, const int32_t *targets /*(N)*/, int N, int V);
double crossentropy_forward_reference(float *probs_inout, float *losses, const int32_t *targets, int N, int V);

/* ---- profiling: seconds spent in the matmuls, in attention and in the positional encoding's q/k
 * hooks (forward + backward), summed while layer_profile.enabled is set; the benchmark's phase
 * breakdown reads it ---- */
typedef struct {
    int enabled;
    double matmul_s, attention_s, posenc_s;
} LayerProfile;
extern LayerProfile layer_profile;
double layer_profile_start(void);                 /* 0 when profiling is off */
void layer_profile_stop(double *total, double t0); /* adds the time since t0 to *total */

#endif
