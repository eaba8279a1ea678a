/* posenc.h: positional encodings as plug-ins.
 *
 * The model knows nothing about any particular encoding: it calls the hooks of one PosEncKind.
 * Adding a kind = one new file model/posenc_<name>.c defining a `const PosEncKind posenc_<name>`
 * and one line in the registry (posenc.c). Kinds: none (NoPE), learned (absolute, added to the
 * token embedding), rope, xpos (torchscale reference, or "variant": "author"), and HDD-RoPE.
 *
 * Where the hooks run, per layer l (shape legend in layers.h; S = 3C + E is the qkv row length):
 *     x   = layernorm(h)                       (B,T,C)
 *     qkv = x @ Wqkv^T                         (B,T,S)  Wqkv (S,C): q, k, v rows, then E extra rows
 *     qk_forward(l, qkv, x)                    rotates/scales the q and k columns of qkv in place;
 *                                              may read its E extra columns (HDD-RoPE's generator
 *                                              W_g x comes out of the same sgemm) and x
 *     attention(qkv)
 * and in the backward, after attention_backward filled dqkv with the gradient w.r.t. the ROTATED
 * q and k: qk_backward(l, dqkv) turns it, in place, into the gradient w.r.t. the un-rotated q and
 * k, writes the gradient of its extra columns into dqkv[..., 3C:], and accumulates its own
 * parameter gradients; matmul_backward then carries everything (W_g included) to Wqkv and x.
 * The learned kind instead uses embed_forward/embed_backward on the embedding output.
 *
 * Positions: a forward over T tokens starting at absolute position pos0 (0 in training; the
 * number of cached tokens during generation). A kind with a recurrent state (HDD-RoPE's running
 * product) keeps it in `state`, which the model zeroes at the start of a sequence, so generation
 * with a KV cache continues exactly where the previous call stopped.
 *
 * Memory: the model owns and allocates everything (one allocation per buffer set): the kind only
 * reports sizes (floats) and receives pointers into the model's parameter, gradient, activation
 * and state buffers. The qkv row length the hooks see is S = 3C + num_extra(pe).
 *
 * Every hook except configure may be NULL: a NULL size counts as 0, a NULL init or destroy does
 * nothing, a NULL embed or qk hook means the kind does not act there. A failed posenc_create
 * leaves the PosEnc zeroed.
 *
 * A score bias composes with any kind: {"kind": "rope", "bias": "alibi"} (or "bias": {"kind":
 * "alibi"}) keeps RoPE's rotations and adds a[i] - a[j] to the score of query i and key j, where
 * the bias kind fills a (B, NH, T) for each layer (ALiBi: a[t] = -m_h t, so the score drops by m_h
 * per position of distance; FoX: a[t] = sum_{s <= t} log f_s, a data-dependent decay). NoPE with
 * a bias is {"kind": "none", "bias": ...}. Bias kinds have their own registry (posenc.c); one is
 * one file model/bias_<name>.c plus one line there. A bias may own parameters and extra QKV
 * outputs as a kind does: the model appends them after the kind's (its parameters after the
 * kind's, its extra columns at 3C + the kind's E), and the positional encoding's totals below
 * count both.
 */
#ifndef TINYROPE_POSENC_H
#define TINYROPE_POSENC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* The model dimensions a kind may depend on. */
typedef struct {
    int L, C, NH, hs;
    int max_T;                   /* the training context length (block size) */
} ModelDims;

typedef struct PosEnc PosEnc;

typedef struct {
    const char *name;            /* the config's "posenc": {"kind": name, ...} */
    const char *summary;         /* one line, for --help and logs */

    /* Reads the kind's options from `options` (the whole posenc object, "kind" included) and
     * checks them against the dimensions (e.g. hs even, T within range). Unknown option keys
     * are an error. Allocates the kind's private config into pe->impl. 0, or -1 with the error set
     * ("posenc.<key>: what is wrong"). */
    int (*configure)(PosEnc *pe, const cJSON *options);
    void (*destroy)(PosEnc *pe);

    /* Sizes, in floats. num_params: parameters the kind owns (all layers), given their own
     * AdamW group. num_extra: E, the extra QKV-projection outputs per layer (their weight rows
     * live in Wqkv but belong to the kind's parameter group). num_acts(B,T): activations saved
     * for the backward (all layers). num_state(B): recurrent state for generation (all layers). */
    size_t (*num_params)(const PosEnc *pe);
    int (*num_extra)(const PosEnc *pe);
    size_t (*num_acts)(const PosEnc *pe, int B, int T);
    size_t (*num_state)(const PosEnc *pe, int B);
    /* The longest context the kind supports as configured at these dims (max_T = the trained
     * block size): positions 0 .. n-1. 0 (or a NULL hook) = no limit: the kind's tables grow
     * with max_T or it computes any position. `train eval` checks a longer context against it. */
    int (*max_positions)(const PosEnc *pe);
    /* Option sets (JSON objects, "kind" left out) that the tests cover besides the defaults,
     * NULL-terminated; NULL = the defaults only. The whole-model gradient check and the KV-cache
     * check run every registered kind with {} and with each of these. */
    const char *const *test_options;

    /* Initialises params (num_params floats) and the extra weight rows of every layer
     * (extra_w + l*extra_stride points at layer l's (E,C) rows). seed makes it deterministic. */
    void (*init)(const PosEnc *pe, float *params, float *extra_w, size_t extra_stride, uint64_t seed);

    /* Absolute kinds: out (B,T,C) += position embedding of positions pos0..pos0+T-1; backward
     * accumulates into dparams. NULL for kinds that act on q and k. */
    void (*embed_forward)(const PosEnc *pe, float *out, const float *params, int B, int T, int pos0);
    void (*embed_backward)(const PosEnc *pe, float *dparams, const float *dout, int B, int T, int pos0);

    /* Relative kinds, layer l: see the header comment. qkv (B,T,S) is changed in place; x (B,T,C)
     * is the layernorm output; acts is the kind's whole activation block (num_acts(B,T) floats;
     * the kind finds layer l's part itself); state (num_state floats, NULL in training) is the
     * recurrent state. In qk_backward, qkv is what qk_forward left (q and k already rotated).
     * NULL for kinds that do not touch q and k. */
    void (*qk_forward)(const PosEnc *pe, int l, float *qkv, const float *x, const float *params,
                       float *acts, float *state, int B, int T, int pos0);
    void (*qk_backward)(const PosEnc *pe, int l, float *dqkv, const float *qkv, const float *x,
                        const float *params, float *dparams, const float *acts, int B, int T, int pos0);

    /* Kinds that form the attention scores themselves (PaTH), in place of q . k / sqrt(hs):
     * scores_forward fills scores (B, NH, T, T) with s[i][j] for every j <= i of each head (above
     * the diagonal is left alone); attention then adds the score bias, takes the softmax and weighs
     * v as usual (layers.h, scores_given). scores_backward gets the scores' gradient in the same
     * layout (0 above the diagonal) and adds what it implies into dqkv (q, k and the kind's extra
     * columns) and dparams. scores_step is generation's row for the token at position pos: scores
     * + h * row_stride (h < NH) = s[pos][j] for j = 0 .. pos, from the layer's cached keys k_cache
     * (pos + 1 rows of C, the newest included) and the kind's state (num_state(1) floats, zeroed
     * at the start of a sequence), which it extends with what later rows need of this one.
     * All three NULL for kinds whose scores are q . k. */
    void (*scores_forward)(const PosEnc *pe, int l, float *scores, const float *qkv, const float *params, float *acts,
                           int B, int T);
    void (*scores_backward)(const PosEnc *pe, int l, const float *dscores, float *dqkv, const float *qkv,
                            const float *params, float *dparams, const float *acts, int B, int T);
    void (*scores_step)(const PosEnc *pe, int l, float *scores, long row_stride, const float *qkv,
                        const float *k_cache, const float *params, float *state, int pos);
} PosEncKind;

/* An additive score bias (see the header comment). */
typedef struct {
    const char *name;            /* "bias": name, or {"kind": name, ...} */
    const char *summary;
    /* Reads the bias's options (the "bias" object, "kind" included; NULL for the string form)
     * into pe->bias_impl. 0, or -1 with the error set ("posenc.bias.<key>: what is wrong"). */
    int (*configure)(PosEnc *pe, const cJSON *options);
    /* Sizes in floats, as for a kind: parameters (all layers), extra QKV outputs per layer (at
     * posenc_bias_column), recurrent state for generation (all layers). NULL: 0. */
    size_t (*num_params)(const PosEnc *pe);
    int (*num_extra)(const PosEnc *pe);
    size_t (*num_state)(const PosEnc *pe, int B);
    /* As a kind's init: params (num_params floats), extra_w + l * extra_stride = layer l's rows. */
    void (*init)(const PosEnc *pe, float *params, float *extra_w, size_t extra_stride, uint64_t seed);
    /* a (B, NH, T) = the bias of positions pos0 .. pos0 + T - 1 at layer l; qkv (B, T, S) is
     * the layer's projection (after qk_forward); state as a kind's (NULL in training). */
    void (*forward)(const PosEnc *pe, int l, float *a, const float *qkv, const float *params, float *state, int B,
                    int T, int pos0);
    /* da (B, NH, T) = the loss's gradient w.r.t. a: adds the gradient of the bias's extra columns
     * into dqkv and of its parameters into dparams. NULL for a bias without inputs (ALiBi). */
    void (*backward)(const PosEnc *pe, int l, const float *da, float *dqkv, const float *qkv, const float *params,
                     float *dparams, int B, int T);
} ScoreBiasKind;

struct PosEnc {
    const PosEncKind *kind;
    ModelDims dims;
    void *impl;                  /* the kind's own configuration and tables */
    const ScoreBiasKind *bias;   /* NULL: no score bias */
    void *bias_impl;             /* the bias's own configuration */
};

/* Helpers for the kinds' configure: each returns 0, or -1 with the error set ("posenc.<key>: ...").
 * check_option_keys: every key of options is "kind" or in known (NULL-terminated).
 * number_option / string_option: options[key] if present (checked to be a number / string), else
 * the fallback. */
int posenc_check_option_keys(const cJSON *options, const char *kind, const char *const known[]);
/* The same for a score bias's options (NULL: none), the error naming "posenc.bias.<key>". */
int posenc_check_bias_option_keys(const cJSON *options, const char *bias, const char *const known[]);
int posenc_number_option(const cJSON *options, const char *key, double fallback, double *value);
int posenc_string_option(const cJSON *options, const char *key, const char *fallback, const char **value);

/* The extra QKV outputs per layer of the kind alone, of the bias alone, and of both (E). */
static inline int posenc_kind_extra(const PosEnc *pe) { return pe->kind->num_extra ? pe->kind->num_extra(pe) : 0; }
static inline int posenc_bias_extra(const PosEnc *pe) {
    return pe->bias && pe->bias->num_extra ? pe->bias->num_extra(pe) : 0;
}
static inline int posenc_num_extra(const PosEnc *pe) { return posenc_kind_extra(pe) + posenc_bias_extra(pe); }
/* The qkv row length the hooks see: S = 3C + E; the bias's first extra column. */
static inline long posenc_qkv_stride(const PosEnc *pe) { return 3L * pe->dims.C + posenc_num_extra(pe); }
static inline long posenc_bias_column(const PosEnc *pe) { return 3L * pe->dims.C + posenc_kind_extra(pe); }
/* Parameters of the kind alone, of the bias alone (stored after the kind's), and of both. */
static inline size_t posenc_kind_params(const PosEnc *pe) { return pe->kind->num_params ? pe->kind->num_params(pe) : 0; }
static inline size_t posenc_bias_params(const PosEnc *pe) {
    return pe->bias && pe->bias->num_params ? pe->bias->num_params(pe) : 0;
}
static inline size_t posenc_num_params(const PosEnc *pe) { return posenc_kind_params(pe) + posenc_bias_params(pe); }
/* The bias's recurrent state for generation (floats, all layers). */
static inline size_t posenc_bias_state(const PosEnc *pe, int B) {
    return pe->bias && pe->bias->num_state ? pe->bias->num_state(pe, B) : 0;
}

/* Multiplies each pair (v[2i], v[2i+1]) of `heads` consecutive head vectors of size hs by the
 * 2x2 matrix [[a, -b], [b, a]], (a, b) = (row[2i], row[2i+1]) (sign 1), or by its transpose
 * (sign -1, the backward). RoPE's rotation (a, b) = (cos, sin) and xPos's scaled rotation
 * (a, b) = s (cos, sin) are both this map. */
static inline void posenc_turn_pairs(float *v, const float *row, int heads, int hs, float sign) {
    for (int h = 0; h < heads; h++, v += hs) {
        for (int i = 0; i < hs / 2; i++) {
            float a = row[2 * i], b = sign * row[2 * i + 1];
            float x0 = v[2 * i], x1 = v[2 * i + 1];
            v[2 * i] = x0 * a - x1 * b;
            v[2 * i + 1] = x1 * a + x0 * b;
        }
    }
}

/* "rope", or "rope + alibi" with a score bias: the encoding's name, for logs. */
void posenc_describe(const PosEnc *pe, char *buf, size_t cap);

/* pe->kind->max_positions(pe), 0 (no limit) when the kind has no such hook. */
int posenc_max_positions(const PosEnc *pe);

/* Finds the kind named in options["kind"] in the registry and configures it. 0 / -1 (error set,
 * naming the known kinds when the name is unknown). */
int posenc_create(PosEnc *pe, const cJSON *options, ModelDims dims);
void posenc_destroy(PosEnc *pe);
/* The registries, NULL-terminated, for listing. */
extern const PosEncKind *const posenc_kinds[];
extern const ScoreBiasKind *const posenc_bias_kinds[];

#endif
