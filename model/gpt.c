/* gpt.c: the transformer's forward and backward, built from the layers of layers.c and one
 * positional-encoding plug-in (posenc.h). See gpt.h for the architecture, line by line.
 *
 * Memory, as llm.c: parameters, gradients, activations and activation gradients are each one
 * allocation, carved into tensors by a table of sizes computed in one place (fill_*_sizes).
 * Activation gradients exist only for the tensors the backward writes (no gradient buffer for
 * the attention probabilities, the LayerNorm statistics or the logits, whose gradient replaces
 * the probabilities in place).
 */
#include "model/gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/layers.h"

/* ---- sizes, computed in one place ---- */

/* Counts saturate at SIZE_MAX instead of wrapping, so an absurd shape reads as too big, never as
 * a small number that would then be allocated and overrun. */
static size_t mul_sat(size_t a, size_t b) { return b && a > SIZE_MAX / b ? SIZE_MAX : a * b; }
static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }
static size_t product(size_t a, size_t b, size_t c) { return mul_sat(mul_sat(a, b), c); }

static void fill_param_sizes(size_t sizes[GPT_NUM_PARAM_TENSORS + 1], const GPTConfig *c, size_t S,
                             size_t n_posenc) {
    size_t V = (size_t)c->V, L = (size_t)c->L, C = (size_t)c->C;
    sizes[0] = mul_sat(V, C);               /* wte */
    sizes[1] = mul_sat(L, C);               /* ln1w */
    sizes[2] = product(L, S, C);            /* qkvw */
    sizes[3] = product(L, C, C);            /* attprojw */
    sizes[4] = mul_sat(L, C);               /* ln2w */
    sizes[5] = product(L, 4 * C, C);        /* fcw */
    sizes[6] = product(L, C, 4 * C);        /* fcprojw */
    sizes[7] = C;                           /* lnfw */
    sizes[8] = n_posenc;                    /* the posenc's own parameters */
}

/* want_grads = 1 gives the sizes of the activation gradients: 0 for tensors the backward never
 * needs a gradient buffer for. */
static void fill_act_sizes(size_t sizes[GPT_NUM_ACT_TENSORS + 1], const GPTConfig *c, size_t S, int B, int T,
                           size_t n_posenc_acts, const PosEnc *pe, int want_grads) {
    size_t L = (size_t)c->L, C = (size_t)c->C, NH = (size_t)c->NH, V = (size_t)c->V;
    size_t N = mul_sat((size_t)B, (size_t)T);
    size_t g = want_grads ? 0 : 1;   /* multiplies the sizes of forward-only tensors */
    sizes[0] = mul_sat(N, C);                       /* encoded */
    sizes[1] = product(L, N, C);                    /* ln1 */
    sizes[2] = product(g, L, N);                    /* ln1_mean */
    sizes[3] = product(g, L, N);                    /* ln1_rstd */
    sizes[4] = product(L, N, S);                    /* qkv */
    sizes[5] = product(L, N, C);                    /* atty */
    /* att (L, B, NH, T, T); as a gradient, one layer's scores' gradient for a kind that forms them */
    const int dscores = want_grads && pe && pe->kind && pe->kind->scores_backward;
    sizes[6] = mul_sat(product(dscores ? 1 : g, dscores ? 1 : L, NH), mul_sat((size_t)T, N));
    sizes[7] = product(L, N, C);                    /* res2 */
    sizes[8] = product(L, N, C);                    /* ln2 */
    sizes[9] = product(g, L, N);                    /* ln2_mean */
    sizes[10] = product(g, L, N);                   /* ln2_rstd */
    sizes[11] = product(L, N, 4 * C);               /* fch */
    sizes[12] = product(L, N, 4 * C);               /* fch_gelu */
    sizes[13] = product(L, N, C);                   /* res3 */
    sizes[14] = mul_sat(N, C);                      /* lnf */
    sizes[15] = g * N;                              /* lnf_mean */
    sizes[16] = g * N;                              /* lnf_rstd */
    sizes[17] = product(g, N, V);                   /* probs */
    /* score_bias (B, NH, T), one layer's; its gradient where the bias has inputs to send it to */
    const int bias_buffer = pe && pe->bias && (!want_grads || pe->bias->backward);
    sizes[18] = bias_buffer ? mul_sat(NH, N) : 0;
    sizes[19] = g * n_posenc_acts;                  /* the posenc's saved activations */
}

/* Activation tensors start on 64-byte lines (ACT_ALIGN floats): vector loads, and the streaming
 * stores of model/hddrope_wide_lanes.c, need it. Parameters stay packed (checkpoints hold them as
 * one array). */
#define ACT_ALIGN 16
static size_t padded(size_t n, size_t align) { return align ? add_sat(n, align - 1) / align * align : n; }

static size_t sum_sizes(const size_t *sizes, int n, size_t align) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total = add_sat(total, padded(sizes[i], align));
    return total;
}

size_t gpt_training_bytes(const GPTConfig *cfg, const PosEnc *pe, int B, int T) {
    const PosEncKind *k = pe ? pe->kind : NULL;
    size_t S = 3 * (size_t)cfg->C + (size_t)(pe ? posenc_num_extra(pe) : 0);
    size_t sizes[GPT_NUM_ACT_TENSORS + 1];
    fill_param_sizes(sizes, cfg, S, pe ? posenc_num_params(pe) : 0);
    size_t floats = mul_sat(4, sum_sizes(sizes, GPT_NUM_PARAM_TENSORS + 1, 0)); /* parameters, gradients, m, v */
    size_t n_posenc_acts = k && k->num_acts ? k->num_acts(pe, B, T) : 0;
    for (int want_grads = 0; want_grads <= 1; want_grads++) {
        fill_act_sizes(sizes, cfg, S, B, T, n_posenc_acts, pe, want_grads);
        floats = add_sat(floats, sum_sizes(sizes, GPT_NUM_ACT_TENSORS + 1, ACT_ALIGN));
    }
    size_t per_position = sizeof(int32_t) + sizeof(float); /* targets and losses */
    return add_sat(mul_sat(floats, sizeof(float)), product((size_t)B, (size_t)T, per_position));
}

/* One allocation for all tensors (zeroed); points each field (in struct order) into it, each
 * start rounded up to `align` floats (0: packed). Zero-size tensors get NULL. */
static float *alloc_and_point(float **fields[], const size_t *sizes, int n, size_t align, size_t *total_out) {
    size_t total = sum_sizes(sizes, n, align);
    float *memory = align ? xaligned_alloc(align * sizeof(float), (total ? total : 1) * sizeof(float))
                          : xcalloc(total ? total : 1, sizeof(float));
    if (align) memset(memory, 0, (total ? total : 1) * sizeof(float));
    float *p = memory;
    for (int i = 0; i < n; i++) {
        *fields[i] = sizes[i] ? p : NULL;
        p += padded(sizes[i], align);
    }
    *total_out = total;
    return memory;
}

#define PARAM_FIELDS(t, extra) {&(t)->wte, &(t)->ln1w, &(t)->qkvw, &(t)->attprojw, &(t)->ln2w, &(t)->fcw, \
                                &(t)->fcprojw, &(t)->lnfw, (extra)}
#define ACT_FIELDS(a, extra) {&(a)->encoded, &(a)->ln1, &(a)->ln1_mean, &(a)->ln1_rstd, &(a)->qkv, &(a)->atty, \
                              &(a)->att, &(a)->res2, &(a)->ln2, &(a)->ln2_mean, &(a)->ln2_rstd, &(a)->fch,   \
                              &(a)->fch_gelu, &(a)->res3, &(a)->lnf, &(a)->lnf_mean, &(a)->lnf_rstd,         \
                              &(a)->probs, &(a)->score_bias, (extra)}

/* ---- build ---- */

static void fill_normal(float *p, size_t n, float std, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) p[i] = std * tr_rng_normal(rng);
}

int gpt_build(GPT *m, const GPTConfig *cfg, const cJSON *posenc_options, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (cfg->V < 2 || cfg->L < 1 || cfg->C < 1 || cfg->NH < 1 || cfg->max_T < 1) {
        tr_set_error("model: sizes must be positive (vocab %d, n_layer %d, n_embd %d, n_head %d, block_size %d)",
                     cfg->V, cfg->L, cfg->C, cfg->NH, cfg->max_T);
        return -1;
    }
    if (cfg->C % cfg->NH != 0) {
        tr_set_error("model: n_embd %d is not divisible by n_head %d", cfg->C, cfg->NH);
        return -1;
    }
    m->config = *cfg;
    ModelDims dims = {.L = cfg->L, .C = cfg->C, .NH = cfg->NH, .hs = cfg->C / cfg->NH, .max_T = cfg->max_T};
    if (posenc_create(&m->posenc, posenc_options, dims) != 0) return -1;
    const PosEnc *pe = &m->posenc;
    m->S = (int)posenc_qkv_stride(pe);

    fill_param_sizes(m->param_sizes, cfg, (size_t)m->S, posenc_num_params(pe));
    float **pf[] = PARAM_FIELDS(&m->params, &m->posenc_params);
    m->params_memory = alloc_and_point(pf, m->param_sizes, GPT_NUM_PARAM_TENSORS + 1, 0, &m->num_params);
    float **gf[] = PARAM_FIELDS(&m->grads, &m->posenc_grads);
    size_t n_grads;
    m->grads_memory = alloc_and_point(gf, m->param_sizes, GPT_NUM_PARAM_TENSORS + 1, 0, &n_grads);

    /* Init: the order of draws is fixed, so a seed gives the same model on every machine. */
    uint64_t rng = seed;
    size_t L = (size_t)cfg->L, C = (size_t)cfg->C, S = (size_t)m->S;
    float resid_std = 0.02f / sqrtf(2.0f * (float)cfg->L);
    ParameterTensors *p = &m->params;
    fill_normal(p->wte, m->param_sizes[0], 0.02f, &rng);
    for (size_t l = 0; l < L; l++) {
        for (size_t i = 0; i < C; i++) p->ln1w[l * C + i] = 1.0f;
        for (size_t i = 0; i < C; i++) p->ln2w[l * C + i] = 1.0f;
        fill_normal(p->qkvw + l * S * C, 3 * C * C, 0.02f, &rng);
        fill_normal(p->attprojw + l * C * C, C * C, resid_std, &rng);
        fill_normal(p->fcw + l * 4 * C * C, 4 * C * C, 0.02f, &rng);
        fill_normal(p->fcprojw + l * C * 4 * C, 4 * C * C, resid_std, &rng);
    }
    for (size_t i = 0; i < C; i++) p->lnfw[i] = 1.0f;
    if (pe->kind->init) pe->kind->init(pe, m->posenc_params, p->qkvw + 3 * C * C, S * C, seed ^ 0x5DEECE66DULL);
    if (pe->bias && pe->bias->init)
        pe->bias->init(pe, m->posenc_params + posenc_kind_params(pe), p->qkvw + (size_t)posenc_bias_column(pe) * C,
                       S * C, seed ^ 0xB1A5ULL);
    m->mean_loss = -1.0f;
    return 0;
}

void gpt_free(GPT *m) {
    posenc_destroy(&m->posenc);
    free(m->params_memory);
    free(m->grads_memory);
    free(m->acts_memory);
    free(m->grad_acts_memory);
    free(m->targets);
    free(m->losses);
    memset(m, 0, sizeof *m);
}

/* (Re)allocates the activations for a batch of (B, T). */
static void ensure_activations(GPT *m, int B, int T) {
    if (m->acts_memory && m->B == B && m->T == T) return;
    free(m->acts_memory);
    free(m->grad_acts_memory);
    free(m->targets);
    free(m->losses);
    const PosEncKind *k = m->posenc.kind;
    size_t n_pe_acts = k->num_acts ? k->num_acts(&m->posenc, B, T) : 0;
    m->B = B;
    m->T = T;
    fill_act_sizes(m->act_sizes, &m->config, (size_t)m->S, B, T, n_pe_acts, &m->posenc, 0);
    float **af[] = ACT_FIELDS(&m->acts, &m->posenc_acts);
    m->acts_memory = alloc_and_point(af, m->act_sizes, GPT_NUM_ACT_TENSORS + 1, ACT_ALIGN, &m->num_acts);
    size_t grad_sizes[GPT_NUM_ACT_TENSORS + 1];
    fill_act_sizes(grad_sizes, &m->config, (size_t)m->S, B, T, n_pe_acts, &m->posenc, 1);
    float *unused_posenc_grad_acts;
    float **gf[] = ACT_FIELDS(&m->grad_acts, &unused_posenc_grad_acts);
    m->grad_acts_memory = alloc_and_point(gf, grad_sizes, GPT_NUM_ACT_TENSORS + 1, ACT_ALIGN, &m->num_grad_acts);
    m->targets = xmalloc((size_t)B * (size_t)T * sizeof *m->targets);
    m->losses = xmalloc((size_t)B * (size_t)T * sizeof *m->losses);
}

/* ---- forward ---- */

int gpt_forward(GPT *m, const int32_t *tokens, const int32_t *targets, int B, int T) {
    const GPTConfig *c = &m->config;
    if (T < 1 || T > c->max_T || B < 1) {
        tr_set_error("model: batch (B=%d, T=%d) outside 1 <= T <= block_size %d", B, T, c->max_T);
        return -1;
    }
    size_t N = (size_t)B * (size_t)T;
    for (size_t i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->V) {
            tr_set_error("model: token %d at position %zu is outside the vocabulary (%d)", tokens[i], i, c->V);
            return -1;
        }
        if (targets && targets[i] >= c->V) {
            tr_set_error("model: target %d at position %zu is outside the vocabulary (%d)", targets[i], i, c->V);
            return -1;
        }
    }
    ensure_activations(m, B, T);
    const int L = c->L, C = c->C, NH = c->NH, S = m->S, V = c->V;
    const PosEnc *pe = &m->posenc;
    const ParameterTensors *p = &m->params;
    ActivationTensors *a = &m->acts;

    embedding_forward(a->encoded, tokens, p->wte, B, T, C);
    if (pe->kind->embed_forward) pe->kind->embed_forward(pe, a->encoded, m->posenc_params, B, T, 0);

    const float *res = a->encoded;
    for (int l = 0; l < L; l++) {
        float *l_ln1 = a->ln1 + (size_t)l * N * C;
        float *l_ln1_mean = a->ln1_mean + (size_t)l * N, *l_ln1_rstd = a->ln1_rstd + (size_t)l * N;
        float *l_qkv = a->qkv + (size_t)l * N * S;
        float *l_atty = a->atty + (size_t)l * N * C;
        float *l_att = a->att + (size_t)l * B * NH * T * T;
        float *l_res2 = a->res2 + (size_t)l * N * C;
        float *l_ln2 = a->ln2 + (size_t)l * N * C;
        float *l_ln2_mean = a->ln2_mean + (size_t)l * N, *l_ln2_rstd = a->ln2_rstd + (size_t)l * N;
        float *l_fch = a->fch + (size_t)l * N * 4 * C;
        float *l_fch_gelu = a->fch_gelu + (size_t)l * N * 4 * C;
        float *l_res3 = a->res3 + (size_t)l * N * C;

        layernorm_forward(l_ln1, l_ln1_mean, l_ln1_rstd, res, p->ln1w + (size_t)l * C, (int)N, C);
        matmul_forward(l_qkv, l_ln1, p->qkvw + (size_t)l * S * C, (int)N, C, S);
        if (pe->kind->qk_forward) {
            double profile_t0 = layer_profile_start();
            pe->kind->qk_forward(pe, l, l_qkv, l_ln1, m->posenc_params, m->posenc_acts, NULL, B, T, 0);
            layer_profile_stop(&layer_profile.posenc_s, profile_t0);
        }
        const int scores_given = pe->kind->scores_forward != NULL;
        if (scores_given) {
            double profile_t0 = layer_profile_start();
            pe->kind->scores_forward(pe, l, l_att, l_qkv, m->posenc_params, m->posenc_acts, B, T);
            layer_profile_stop(&layer_profile.posenc_s, profile_t0);
        }
        if (pe->bias)
            pe->bias->forward(pe, l, a->score_bias, l_qkv, m->posenc_params + posenc_kind_params(pe), NULL, B, T, 0);
        attention_forward_blockwise(l_atty, l_att, l_qkv, B, T, C, NH, S, m->attn_block, a->score_bias, scores_given);
        matmul_forward(l_res2, l_atty, p->attprojw + (size_t)l * C * C, (int)N, C, C);
        residual_forward(l_res2, res, l_res2, (long)(N * C));
        layernorm_forward(l_ln2, l_ln2_mean, l_ln2_rstd, l_res2, p->ln2w + (size_t)l * C, (int)N, C);
        matmul_forward(l_fch, l_ln2, p->fcw + (size_t)l * 4 * C * C, (int)N, C, 4 * C);
        gelu_forward(l_fch_gelu, l_fch, (long)(N * 4 * C));
        matmul_forward(l_res3, l_fch_gelu, p->fcprojw + (size_t)l * C * 4 * C, (int)N, 4 * C, C);
        residual_forward(l_res3, l_res2, l_res3, (long)(N * C));
        res = l_res3;
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, res, p->lnfw, (int)N, C);
    matmul_forward(a->probs, a->lnf, p->wte, (int)N, C, V);

    /* Without targets every position gets -1: the softmax is still computed, the loss is not. */
    m->n_targets = 0;
    for (size_t i = 0; i < N; i++) {
        m->targets[i] = targets ? targets[i] : -1;
        m->n_targets += m->targets[i] >= 0;
    }
    double loss_sum = crossentropy_forward(a->probs, m->losses, m->targets, (int)N, V);
    m->mean_loss = targets ? (m->n_targets ? (float)(loss_sum / (double)m->n_targets) : 0.0f) : -1.0f;
    return 0;
}

/* ---- backward: the forward above, undone line by line from the bottom ---- */

static void zero_floats(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

void gpt_zero_grad(GPT *m) { memset(m->grads_memory, 0, m->num_params * sizeof(float)); }

void gpt_backward(GPT *m, const int32_t *tokens, float loss_scale) {
    const GPTConfig *c = &m->config;
    const int B = m->B, T = m->T, L = c->L, C = c->C, NH = c->NH, S = m->S, V = c->V;
    const size_t N = (size_t)B * (size_t)T;
    const PosEnc *pe = &m->posenc;
    const ParameterTensors *p = &m->params;
    ParameterTensors *g = &m->grads;
    ActivationTensors *a = &m->acts, *ga = &m->grad_acts;
    /* The layers accumulate, so each activation gradient is zeroed just before the first layer
     * that adds into it: zeroed there rather than all at the start, a buffer is still in cache
     * when that layer reads it back. */

    /* loss = mean over targets of crossentropy(softmax(logits)): dlogits replaces probs, as
     * probs - onehot; its factor loss_scale / n_targets is applied in the product below, which
     * saves a pass over the (N,V) buffer. */
    float *dlogits = a->probs;
    crossentropy_backward_unscaled(dlogits, m->targets, (int)N, V);
    /* logits = lnf @ wte^T */
    zero_floats(ga->lnf, N * C);
    matmul_backward_scaled(ga->lnf, g->wte, dlogits, a->lnf, p->wte, (int)N, C, V,
                           m->n_targets ? loss_scale / (float)m->n_targets : 0.0f);
    /* lnf = layernorm(res_L) */
    const float *res_last = a->res3 + (size_t)(L - 1) * N * C;
    float *dres_last = ga->res3 + (size_t)(L - 1) * N * C;
    zero_floats(dres_last, N * C);
    layernorm_backward(dres_last, g->lnfw, ga->lnf, res_last, p->lnfw, a->lnf_mean, a->lnf_rstd, (int)N, C);

    for (int l = L - 1; l >= 0; l--) {
        const float *res = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * N * C;
        float *dres = l == 0 ? ga->encoded : ga->res3 + (size_t)(l - 1) * N * C;
        const float *l_ln1 = a->ln1 + (size_t)l * N * C;
        const float *l_ln1_mean = a->ln1_mean + (size_t)l * N, *l_ln1_rstd = a->ln1_rstd + (size_t)l * N;
        const float *l_qkv = a->qkv + (size_t)l * N * S;
        const float *l_atty = a->atty + (size_t)l * N * C;
        const float *l_att = a->att + (size_t)l * B * NH * T * T;
        const float *l_res2 = a->res2 + (size_t)l * N * C;
        const float *l_ln2 = a->ln2 + (size_t)l * N * C;
        const float *l_ln2_mean = a->ln2_mean + (size_t)l * N, *l_ln2_rstd = a->ln2_rstd + (size_t)l * N;
        const float *l_fch = a->fch + (size_t)l * N * 4 * C;
        const float *l_fch_gelu = a->fch_gelu + (size_t)l * N * 4 * C;
        float *dl_ln1 = ga->ln1 + (size_t)l * N * C;
        float *dl_qkv = ga->qkv + (size_t)l * N * S;
        float *dl_atty = ga->atty + (size_t)l * N * C;
        float *dl_res2 = ga->res2 + (size_t)l * N * C;
        float *dl_ln2 = ga->ln2 + (size_t)l * N * C;
        float *dl_fch = ga->fch + (size_t)l * N * 4 * C;
        float *dl_fch_gelu = ga->fch_gelu + (size_t)l * N * 4 * C;
        float *dl_res3 = ga->res3 + (size_t)l * N * C;

        /* res3 = res2 + fch_gelu @ fcprojw^T */
        zero_floats(dl_res2, N * C);
        residual_backward(dl_res2, NULL, dl_res3, (long)(N * C));
        zero_floats(dl_fch_gelu, N * 4 * C);
        matmul_backward(dl_fch_gelu, g->fcprojw + (size_t)l * C * 4 * C, dl_res3, l_fch_gelu,
                        p->fcprojw + (size_t)l * C * 4 * C, (int)N, 4 * C, C);
        /* fch_gelu = gelu(fch) */
        zero_floats(dl_fch, N * 4 * C);
        gelu_backward(dl_fch, l_fch, dl_fch_gelu, (long)(N * 4 * C));
        /* fch = ln2 @ fcw^T */
        zero_floats(dl_ln2, N * C);
        matmul_backward(dl_ln2, g->fcw + (size_t)l * 4 * C * C, dl_fch, l_ln2, p->fcw + (size_t)l * 4 * C * C,
                        (int)N, C, 4 * C);
        /* ln2 = layernorm(res2) */
        layernorm_backward(dl_res2, g->ln2w + (size_t)l * C, dl_ln2, l_res2, p->ln2w + (size_t)l * C, l_ln2_mean,
                           l_ln2_rstd, (int)N, C);
        /* res2 = res + atty @ attprojw^T */
        zero_floats(dres, N * C);
        residual_backward(dres, NULL, dl_res2, (long)(N * C));
        zero_floats(dl_atty, N * C);
        matmul_backward(dl_atty, g->attprojw + (size_t)l * C * C, dl_res2, l_atty, p->attprojw + (size_t)l * C * C,
                        (int)N, C, C);
        /* atty = attention(qkv) */
        zero_floats(dl_qkv, N * S);
        float *dbias = ga->score_bias; /* NULL unless the bias has inputs */
        if (dbias) zero_floats(dbias, N * (size_t)NH);
        float *dscores = pe->kind->scores_backward ? ga->att : NULL; /* the kind forms the scores */
        attention_backward(dl_qkv, dl_atty, l_qkv, l_att, B, T, C, NH, S, dbias, dscores);
        if (dscores) {
            double profile_t0 = layer_profile_start();
            pe->kind->scores_backward(pe, l, dscores, dl_qkv, l_qkv, m->posenc_params, m->posenc_grads,
                                      m->posenc_acts, B, T);
            layer_profile_stop(&layer_profile.posenc_s, profile_t0);
        }
        if (dbias)
            pe->bias->backward(pe, l, dbias, dl_qkv, l_qkv, m->posenc_params + posenc_kind_params(pe),
                               m->posenc_grads + posenc_kind_params(pe), B, T);
        /* posenc.qk_forward(qkv, ln1): from rotated to un-rotated q, k, and the extra columns */
        if (pe->kind->qk_backward) {
            double profile_t0 = layer_profile_start();
            pe->kind->qk_backward(pe, l, dl_qkv, l_qkv, l_ln1, m->posenc_params, m->posenc_grads, m->posenc_acts,
                                  B, T, 0);
            layer_profile_stop(&layer_profile.posenc_s, profile_t0);
        }
        /* qkv = ln1 @ qkvw^T */
        zero_floats(dl_ln1, N * C);
        matmul_backward(dl_ln1, g->qkvw + (size_t)l * S * C, dl_qkv, l_ln1, p->qkvw + (size_t)l * S * C, (int)N, C,
                        S);
        /* ln1 = layernorm(res) */
        layernorm_backward(dres, g->ln1w + (size_t)l * C, dl_ln1, res, p->ln1w + (size_t)l * C, l_ln1_mean,
                           l_ln1_rstd, (int)N, C);
    }
    /* encoded = wte[tokens] (+ position embedding) */
    if (pe->kind->embed_backward) pe->kind->embed_backward(pe, m->posenc_grads, ga->encoded, B, T, 0);
    embedding_backward(g->wte, ga->encoded, tokens, B, T, C);
}

/* ---- parameter groups ---- */

static void group_add(ParamGroup *g, size_t start, size_t count) {
    if (!count) return;
    g->ranges = xrealloc(g->ranges, (size_t)(g->n_ranges + 1) * sizeof *g->ranges);
    g->ranges[g->n_ranges++] = (ParamRange){start, count};
}

int gpt_param_groups(const GPT *m, float weight_decay, float posenc_lr_mult, float posenc_weight_decay,
                     ParamGroup **groups_out) {
    /* The posenc's extra QKV rows (HDD-RoPE's W_g) and its own parameters (g_base, learned
     * position vectors) share the lr multiplier but not the decay: decaying g_base would pull the
     * RoPE angles it starts from towards zero, so posenc_weight_decay is for the matrix only. A
     * score bias's rows and parameters (FoX's w_f, b_f) are the model's like any projection and
     * bias: decay and no_decay, so that "rope" + FoX and "hddrope" + FoX train FoX alike. */
    ParamGroup *gs = xcalloc(4, sizeof *gs);
    snprintf(gs[0].name, sizeof gs[0].name, "decay");
    snprintf(gs[1].name, sizeof gs[1].name, "no_decay");
    snprintf(gs[2].name, sizeof gs[2].name, "posenc_matrix");
    snprintf(gs[3].name, sizeof gs[3].name, "posenc");
    gs[0].lr_mult = gs[1].lr_mult = 1.0f;
    gs[0].weight_decay = weight_decay;
    gs[2].lr_mult = gs[3].lr_mult = posenc_lr_mult;
    gs[2].weight_decay = posenc_weight_decay;

    const size_t L = (size_t)m->config.L, C = (size_t)m->config.C, S = (size_t)m->S;
    const size_t E_kind = (size_t)posenc_kind_extra(&m->posenc), P_kind = posenc_kind_params(&m->posenc);
    const float *base = m->params_memory;
    const ParameterTensors *p = &m->params;
#define OFFSET(ptr) ((size_t)((ptr) - base))
    group_add(&gs[1], OFFSET(p->wte), m->param_sizes[0]);
    group_add(&gs[1], OFFSET(p->ln1w), m->param_sizes[1]);
    for (size_t l = 0; l < L; l++) {
        group_add(&gs[0], OFFSET(p->qkvw) + l * S * C, 3 * C * C);           /* q, k, v rows */
        group_add(&gs[2], OFFSET(p->qkvw) + l * S * C + 3 * C * C, E_kind * C);        /* the kind's rows */
        group_add(&gs[0], OFFSET(p->qkvw) + l * S * C + (3 * C + E_kind) * C, (S - 3 * C - E_kind) * C); /* bias's */
    }
    group_add(&gs[0], OFFSET(p->attprojw), m->param_sizes[3]);
    group_add(&gs[1], OFFSET(p->ln2w), m->param_sizes[4]);
    group_add(&gs[0], OFFSET(p->fcw), m->param_sizes[5]);
    group_add(&gs[0], OFFSET(p->fcprojw), m->param_sizes[6]);
    group_add(&gs[1], OFFSET(p->lnfw), m->param_sizes[7]);
    if (m->posenc_params) {
        group_add(&gs[3], OFFSET(m->posenc_params), P_kind);
        group_add(&gs[1], OFFSET(m->posenc_params) + P_kind, m->param_sizes[8] - P_kind); /* the bias's */
    }
#undef OFFSET
    *groups_out = gs;
    return 4;
}

/* ---- generation with a KV cache: the forward above for one row at position kv->len ---- */

void gpt_kv_init(KVCache *kv, const GPT *m) {
    const GPTConfig *c = &m->config;
    const PosEncKind *k = m->posenc.kind;
    size_t L = (size_t)c->L, C = (size_t)c->C, cap = (size_t)c->max_T, S = (size_t)m->S, V = (size_t)c->V;
    size_t n_state = k->num_state ? k->num_state(&m->posenc, 1) : 0;
    size_t n_acts = k->num_acts ? k->num_acts(&m->posenc, 1, 1) : 0;
    size_t n_bias = m->posenc.bias ? L * (size_t)c->NH * cap : 0, n_bias_state = posenc_bias_state(&m->posenc, 1);
    size_t n_scores = k->scores_step ? (size_t)c->NH * cap : 0;
    size_t sizes[] = {L * cap * C, L * cap * C, n_state, n_acts, C, C, S, C, cap, 4 * C, V, n_bias, n_bias_state,
                      n_scores};
    float **fields[] = {&kv->k, &kv->v, &kv->posenc_state, &kv->posenc_acts, &kv->x, &kv->ln, &kv->qkv,
                        &kv->atty, &kv->att, &kv->fch, &kv->logits, &kv->bias, &kv->bias_state, &kv->scores};
    size_t total;
    kv->memory = alloc_and_point(fields, sizes, (int)(sizeof sizes / sizeof sizes[0]), 0, &total);
    kv->capacity = c->max_T;
    gpt_kv_reset(kv, m);
}

void gpt_kv_reset(KVCache *kv, const GPT *m) {
    const PosEncKind *k = m->posenc.kind;
    size_t n_state = k->num_state ? k->num_state(&m->posenc, 1) : 0;
    if (n_state) memset(kv->posenc_state, 0, n_state * sizeof(float));
    size_t n_bias_state = posenc_bias_state(&m->posenc, 1);
    if (n_bias_state) memset(kv->bias_state, 0, n_bias_state * sizeof(float));
    kv->len = 0;
}

void gpt_kv_free(KVCache *kv) {
    free(kv->memory);
    memset(kv, 0, sizeof *kv);
}

const float *gpt_step(GPT *m, KVCache *kv, int32_t token) {
    const GPTConfig *c = &m->config;
    const int L = c->L, C = c->C, NH = c->NH, S = m->S, V = c->V, hs = C / NH, pos = kv->len;
    if (pos >= kv->capacity) {
        tr_set_error("generation: the context of %d tokens is full", kv->capacity);
        return NULL;
    }
    if (token < 0 || token >= V) {
        tr_set_error("generation: token %d is outside the vocabulary (%d)", token, V);
        return NULL;
    }
    const PosEnc *pe = &m->posenc;
    const ParameterTensors *p = &m->params;
    float mean, rstd;
    embedding_forward(kv->x, &token, p->wte, 1, 1, C);
    if (pe->kind->embed_forward) pe->kind->embed_forward(pe, kv->x, m->posenc_params, 1, 1, pos);
    const float scale = 1.0f / sqrtf((float)hs);
    for (int l = 0; l < L; l++) {
        float *k_cache = kv->k + (size_t)l * kv->capacity * C, *v_cache = kv->v + (size_t)l * kv->capacity * C;
        layernorm_forward(kv->ln, &mean, &rstd, kv->x, p->ln1w + (size_t)l * C, 1, C);
        matmul_forward(kv->qkv, kv->ln, p->qkvw + (size_t)l * S * C, 1, C, S);
        if (pe->kind->qk_forward)
            pe->kind->qk_forward(pe, l, kv->qkv, kv->ln, m->posenc_params, kv->posenc_acts, kv->posenc_state, 1, 1,
                                 pos);
        memcpy(k_cache + (size_t)pos * C, kv->qkv + C, (size_t)C * sizeof(float));
        memcpy(v_cache + (size_t)pos * C, kv->qkv + 2 * C, (size_t)C * sizeof(float));
        /* the score bias of this position, kept beside the cached keys: a (NH, capacity) */
        float *bias = kv->bias ? kv->bias + (size_t)l * NH * kv->capacity : NULL;
        if (bias) {
            /* a_pos (NH), atty as scratch */
            pe->bias->forward(pe, l, kv->atty, kv->qkv, m->posenc_params + posenc_kind_params(pe), kv->bias_state, 1,
                              1, pos);
            for (int h = 0; h < NH; h++) bias[(size_t)h * kv->capacity + pos] = kv->atty[h];
        }
        /* a kind that forms the scores: all heads' rows at once */
        if (kv->scores)
            pe->kind->scores_step(pe, l, kv->scores, kv->capacity, kv->qkv, k_cache, m->posenc_params,
                                  kv->posenc_state, pos);
        /* attention of the one query over positions 0..pos, head by head */
        for (int h = 0; h < NH; h++) {
            const float *q = kv->qkv + h * hs, *a = bias ? bias + (size_t)h * kv->capacity : NULL;
            float maxval = -INFINITY, sum = 0.0f;
            for (int s = 0; s <= pos; s++) {
                const float *k = k_cache + (size_t)s * C + h * hs;
                float dot = 0.0f;
                if (kv->scores) kv->att[s] = kv->scores[(size_t)h * kv->capacity + s];
                else {
                    for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                    kv->att[s] = dot * scale;
                }
                if (a) kv->att[s] += a[pos] - a[s];
                if (kv->att[s] > maxval) maxval = kv->att[s];
            }
            for (int s = 0; s <= pos; s++) sum += (kv->att[s] = expf(kv->att[s] - maxval));
            float *y = kv->atty + h * hs;
            for (int i = 0; i < hs; i++) y[i] = 0.0f;
            for (int s = 0; s <= pos; s++) {
                const float *v = v_cache + (size_t)s * C + h * hs;
                float w = kv->att[s] / sum;
                for (int i = 0; i < hs; i++) y[i] += w * v[i];
            }
        }
        /* res2 = x + atty @ attprojw^T; res3 = res2 + gelu(ln2 @ fcw^T) @ fcprojw^T (ln doubles as scratch) */
        matmul_forward(kv->ln, kv->atty, p->attprojw + (size_t)l * C * C, 1, C, C);
        residual_forward(kv->x, kv->x, kv->ln, C);
        layernorm_forward(kv->ln, &mean, &rstd, kv->x, p->ln2w + (size_t)l * C, 1, C);
        matmul_forward(kv->fch, kv->ln, p->fcw + (size_t)l * 4 * C * C, 1, C, 4 * C);
        gelu_forward(kv->fch, kv->fch, 4 * C);
        matmul_forward(kv->ln, kv->fch, p->fcprojw + (size_t)l * C * 4 * C, 1, 4 * C, C);
        residual_forward(kv->x, kv->x, kv->ln, C);
    }
    layernorm_forward(kv->ln, &mean, &rstd, kv->x, p->lnfw, 1, C);
    matmul_forward(kv->logits, kv->ln, p->wte, 1, C, V);
    kv->len++;
    return kv->logits;
}
