/* gpt.h: the transformer: GPT-2-like, pre-LayerNorm, no biases, tied output head, a positional
 * encoding plug-in (posenc.h). Forward, backward, parameter groups for AdamW.
 *
 * Per layer l (shape legend in layers.h; S = 3C + E, E = the posenc's extra QKV outputs):
 *     ln1   = layernorm(res, ln1w[l])               (B,T,C)
 *     qkv   = ln1 @ qkvw[l]^T                       (B,T,S)
 *     posenc.qk_forward(qkv, ln1)                   rotates q, k in place
 *     atty  = attention(qkv)                        (B,T,C)   scores q.k/sqrt(hs), or the kind's own
 *                                                             (PaTH), plus a score bias a_n - a_m
 *                                                             (ALiBi, FoX) when the posenc has one
 *     res2  = res + atty @ attprojw[l]^T            (B,T,C)
 *     ln2   = layernorm(res2, ln2w[l])              (B,T,C)
 *     fch   = gelu(ln2 @ fcw[l]^T)                  (B,T,4C)
 *     res3  = res2 + fch @ fcprojw[l]^T             (B,T,C)   = the next layer's res
 * with res of layer 0 = wte[tokens] (+ posenc.embed_forward for absolute kinds), then
 *     logits = layernorm(res, lnfw) @ wte^T          (B,T,V)
 * Init: N(0, 0.02) for every matrix, N(0, 0.02/sqrt(2L)) for attprojw and fcprojw, LayerNorm
 * weights 1, the posenc's parameters and extra rows as the kind (and its score bias) decide.
 */
#ifndef TINYROPE_GPT_H
#define TINYROPE_GPT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "model/optim.h"
#include "model/posenc.h"

typedef struct {
    int V;        /* vocabulary size */
    int L;        /* layers */
    int C;        /* channels */
    int NH;       /* heads; hs = C / NH */
    int max_T;    /* context length (block size) */
} GPTConfig;

#define GPT_NUM_PARAM_TENSORS 8
typedef struct {
    float *wte;       /* (V, C) token embedding, also the output head */
    float *ln1w;      /* (L, C) */
    float *qkvw;      /* (L, S, C) q, k, v rows, then the posenc's E extra rows */
    float *attprojw;  /* (L, C, C) */
    float *ln2w;      /* (L, C) */
    float *fcw;       /* (L, 4C, C) */
    float *fcprojw;   /* (L, C, 4C) */
    float *lnfw;      /* (C) */
} ParameterTensors;

#define GPT_NUM_ACT_TENSORS 19
typedef struct {
    float *encoded;   /* (B, T, C) */
    float *ln1;       /* (L, B, T, C) */
    float *ln1_mean;  /* (L, B, T) */
    float *ln1_rstd;  /* (L, B, T) */
    float *qkv;       /* (L, B, T, S) */
    float *atty;      /* (L, B, T, C) */
    float *att;       /* (L, B, NH, T, T) */
    float *res2;      /* (L, B, T, C) */
    float *ln2;       /* (L, B, T, C) */
    float *ln2_mean;  /* (L, B, T) */
    float *ln2_rstd;  /* (L, B, T) */
    float *fch;       /* (L, B, T, 4C) before GELU */
    float *fch_gelu;  /* (L, B, T, 4C) */
    float *res3;      /* (L, B, T, C) */
    float *lnf;       /* (B, T, C) */
    float *lnf_mean;  /* (B, T) */
    float *lnf_rstd;  /* (B, T) */
    float *probs;     /* (B, T, V) softmax of the logits; the backward overwrites it with probs - onehot(target) */
    float *score_bias; /* (B, NH, T) the posenc's score bias a of the current layer (posenc.h), if it has one */
} ActivationTensors;

typedef struct {
    GPTConfig config;
    PosEnc posenc;
    int S;                           /* qkv row length, 3C + E */
    /* Parameters: the model's tensors then the posenc's own parameters, one allocation. */
    ParameterTensors params;
    float *posenc_params;            /* (P) */
    size_t param_sizes[GPT_NUM_PARAM_TENSORS + 1];
    size_t num_params;
    float *params_memory;
    /* Gradients: the same layout, one allocation. */
    ParameterTensors grads;
    float *posenc_grads;
    float *grads_memory;
    /* Activations and their gradients for a given (B, T), allocated on the first forward. */
    int B, T;
    ActivationTensors acts, grad_acts;
    float *posenc_acts;
    size_t act_sizes[GPT_NUM_ACT_TENSORS + 1];
    size_t num_acts, num_grad_acts;
    float *acts_memory, *grad_acts_memory;
    /* Evaluation option, 0 by default: > 0 makes the forward use blockwise causal attention with
     * blocks of attn_block positions (BCA, layers.h); gpt_step ignores it. */
    int attn_block;
    /* Set by the last forward with targets. */
    int32_t *targets;                /* (B, T) copy; -1 = no target */
    float *losses;                   /* (B, T) each position's loss, 0 where there is no target */
    long n_targets;
    float mean_loss;                 /* -1 after a forward without targets */
} GPT;

/* Builds the model with random init (seed). posenc_options is the config's "posenc" object.
 * 0 / -1 with the error set (bad shapes, bad posenc options). */
int gpt_build(GPT *model, const GPTConfig *cfg, const cJSON *posenc_options, uint64_t seed);
void gpt_free(GPT *model);

/* Bytes a training run of this model allocates: parameters, their gradients, AdamW's two moments
 * (optim.h), and the activations, their gradients, targets and losses of a batch of (B, T), the
 * logits (B, T, V) included; counted by the code that sizes gpt_build's and the forward's
 * allocations, so the two agree. pe is the positional encoding the model is built with, or NULL
 * to leave it out (its extra QKV rows, parameters and activations), which gives a lower bound.
 * SIZE_MAX when the count does not fit in a size_t. */
size_t gpt_training_bytes(const GPTConfig *cfg, const PosEnc *pe, int B, int T);

/* tokens (B, T), targets (B, T) with -1 where there is no target, or NULL. B and T may change
 * between calls (activations are reallocated), T <= max_T. Sets mean_loss when targets are given.
 * Returns 0, or -1 (error set) on a token outside the vocabulary or T > max_T. */
int gpt_forward(GPT *model, const int32_t *tokens, const int32_t *targets, int B, int T);
/* Gradients of the mean loss of the last forward (which needs targets), ADDED into model->grads
 * (so several micro-batches accumulate; scale with loss_scale, e.g. 1/grad_accum). */
void gpt_backward(GPT *model, const int32_t *tokens, float loss_scale);
void gpt_zero_grad(GPT *model);

/* ---- generation with a KV cache ----
 * One token at a time: each step computes only the new token's row, attending over the cached
 * (already rotated) keys and values, so a story of n tokens costs O(n) rows, not O(n^2). A posenc
 * with a recurrent state keeps it in the cache too. Positions stop at the context length. */
typedef struct {
    int capacity;            /* max_T positions */
    int len;                 /* tokens cached so far = the next token's position */
    float *k, *v;            /* (L, capacity, C) each: rotated keys, values */
    float *posenc_state;     /* the posenc's num_state(1) floats */
    float *posenc_acts;      /* scratch for the posenc's hooks at (B, T) = (1, 1) */
    float *x, *ln, *qkv, *atty, *att, *fch, *logits; /* one row each: C, C, S, C, capacity, 4C, V */
    float *bias;             /* (L, NH, capacity) the score bias of every cached position, if any */
    float *bias_state;       /* the score bias's recurrent state (posenc_bias_state(1) floats) */
    float *scores;           /* (NH, capacity) one row of scores, for a kind that forms them (PaTH) */
    float *memory;           /* all of the above, one allocation */
} KVCache;

void gpt_kv_init(KVCache *kv, const GPT *model);
void gpt_kv_reset(KVCache *kv, const GPT *model);   /* start a new sequence */
void gpt_kv_free(KVCache *kv);
/* Feeds token at position kv->len and returns the logits (V) for the next token (valid until the
 * next call), or NULL with the error set when the context is full or the token is invalid. */
const float *gpt_step(GPT *model, KVCache *kv, int32_t token);

/* The AdamW groups of this model: "decay" (the weight matrices), "no_decay" (embedding and
 * LayerNorm weights), "posenc_matrix" (the posenc's extra QKV rows, decayed by
 * posenc_weight_decay) and "posenc" (the posenc's own parameters, never decayed); both posenc
 * groups take posenc_lr_mult. Caller frees
 * each group's ranges and the array. */
int gpt_param_groups(const GPT *model, float weight_decay, float posenc_lr_mult, float posenc_weight_decay,
                     ParamGroup **groups_out);

#endif
