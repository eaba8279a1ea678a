/* test_param_groups.c: the AdamW group of every parameter of the model, against a map of the
 * parameter layout written out here from the shapes in gpt.h: the token embedding and the
 * LayerNorm weights are not decayed, the weight matrices are, the positional encoding's extra QKV
 * rows (HDD-RoPE's W_g) take posenc_lr_mult and posenc_weight_decay, and its own parameters
 * (g_base, learned positions) take posenc_lr_mult without decay. */
#include <math.h>
#include <string.h>

#include "base/util.h"
#include "model/gpt.h"
#include "tests/posenc_test_helpers.h"
#include "tests/test.h"

static const GPTConfig shape = {.V = 13, .L = 2, .C = 16, .NH = 2, .max_T = 8};

/* Distinct values, so every role is told apart by its (lr_mult, weight_decay). */
#define WEIGHT_DECAY 0.1f
#define POSENC_LR_MULT 0.25f
#define POSENC_WEIGHT_DECAY 0.05f

typedef enum { DECAYED, NOT_DECAYED, POSENC_MATRIX, POSENC_OWN } Role;
static const float role_lr_mult[] = {1.0f, 1.0f, POSENC_LR_MULT, POSENC_LR_MULT};
static const float role_decay[] = {WEIGHT_DECAY, 0.0f, POSENC_WEIGHT_DECAY, 0.0f};

typedef struct {
    char name[48];
    size_t start, count;
    Role role;
} Span;

typedef struct {
    Span spans[64];
    int n;
    size_t end;
} Layout;

static void add_span(Layout *lay, const char *name, size_t count, Role role) {
    if (lay->n == 64) { CHECK(0); return; }
    Span *s = &lay->spans[lay->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->start = lay->end;
    s->count = count;
    s->role = role;
    lay->end += count;
}

/* The parameters in the order of ParameterTensors, then the posenc's own: E extra QKV rows per
 * layer and P posenc parameters of the kind, then Eb rows and Pb parameters of its score bias
 * (decayed and not decayed like the model's own). */
static Layout layout_of(size_t E, size_t P, size_t Eb, size_t Pb) {
    const size_t V = (size_t)shape.V, L = (size_t)shape.L, C = (size_t)shape.C;
    Layout lay = {.n = 0};
    char name[48];
    add_span(&lay, "wte", V * C, NOT_DECAYED);
    add_span(&lay, "ln1w", L * C, NOT_DECAYED);
    for (size_t l = 0; l < L; l++) {
        snprintf(name, sizeof name, "qkvw[%zu] q, k, v rows", l);
        add_span(&lay, name, 3 * C * C, DECAYED);
        snprintf(name, sizeof name, "qkvw[%zu] posenc rows", l);
        add_span(&lay, name, E * C, POSENC_MATRIX);
        snprintf(name, sizeof name, "qkvw[%zu] score bias rows", l);
        add_span(&lay, name, Eb * C, DECAYED);
    }
    add_span(&lay, "attprojw", L * C * C, DECAYED);
    add_span(&lay, "ln2w", L * C, NOT_DECAYED);
    add_span(&lay, "fcw", L * 4 * C * C, DECAYED);
    add_span(&lay, "fcprojw", L * C * 4 * C, DECAYED);
    add_span(&lay, "lnfw", C, NOT_DECAYED);
    add_span(&lay, "posenc parameters", P, POSENC_OWN);
    add_span(&lay, "score bias parameters", Pb, NOT_DECAYED);
    return lay;
}

/* The first span of the named tensor, for checking where the model put it. */
static size_t span_start(const Layout *lay, const char *prefix) {
    for (int i = 0; i < lay->n; i++)
        if (!strncmp(lay->spans[i].name, prefix, strlen(prefix))) return lay->spans[i].start;
    return (size_t)-1;
}

/* Builds the model for options_json and checks its groups against the layout with E extra rows
 * per layer and P posenc parameters (Eb, Pb: its score bias's). */
static void check_groups_bias(const char *options_json, size_t E, size_t P, size_t Eb, size_t Pb) {
    cJSON *options = cJSON_Parse(options_json);
    GPT m;
    int rc = gpt_build(&m, &shape, options, 1);
    cJSON_Delete(options);
    CHECKF(rc == 0, "%s: %s", options_json, tr_error());
    if (rc) return;
    const Layout lay = layout_of(E, P, Eb, Pb);
    CHECKF(m.num_params == lay.end, "%s: %zu parameters, the layout has %zu", options_json, m.num_params, lay.end);
    const ParameterTensors *p = &m.params;
    const float *base = m.params_memory;
    struct { const char *name; const float *ptr; } tensors[] = {
        {"wte", p->wte}, {"ln1w", p->ln1w}, {"qkvw", p->qkvw}, {"attprojw", p->attprojw}, {"ln2w", p->ln2w},
        {"fcw", p->fcw}, {"fcprojw", p->fcprojw}, {"lnfw", p->lnfw}};
    for (int t = 0; t < 8; t++)
        CHECKF((size_t)(tensors[t].ptr - base) == span_start(&lay, tensors[t].name), "%s: %s is at %zu, not %zu",
               options_json, tensors[t].name, (size_t)(tensors[t].ptr - base), span_start(&lay, tensors[t].name));
    if (P) CHECK((size_t)(m.posenc_params - base) == span_start(&lay, "posenc parameters"));
    if (m.num_params != lay.end) {
        gpt_free(&m);
        return;
    }

    ParamGroup *groups;
    int n_groups = gpt_param_groups(&m, WEIGHT_DECAY, POSENC_LR_MULT, POSENC_WEIGHT_DECAY, &groups);
    int *group_of = xmalloc(m.num_params * sizeof *group_of);
    for (size_t i = 0; i < m.num_params; i++) group_of[i] = -1;
    size_t overlaps = 0;
    for (int g = 0; g < n_groups; g++)
        for (int r = 0; r < groups[g].n_ranges; r++) {
            const ParamRange *range = &groups[g].ranges[r];
            CHECK(range->start + range->count <= m.num_params);
            for (size_t i = range->start; i < range->start + range->count && i < m.num_params; i++) {
                overlaps += group_of[i] != -1;
                group_of[i] = g;
            }
        }
    CHECKF(overlaps == 0, "%s: %zu parameters in two groups", options_json, overlaps);
    for (int s = 0; s < lay.n; s++) {
        const Span *span = &lay.spans[s];
        size_t wrong = 0, first_wrong = 0;
        for (size_t i = span->start; i < span->start + span->count; i++) {
            int g = group_of[i];
            int ok = g >= 0 && groups[g].lr_mult == role_lr_mult[span->role] &&
                     groups[g].weight_decay == role_decay[span->role];
            if (!ok && !wrong++) first_wrong = i;
        }
        if (wrong) {
            int g = group_of[first_wrong];
            CHECKF(0,
                   "%s: %s: %zu of %zu parameters in the wrong group (one in %s: lr_mult %g, decay %g; want %g, %g)",
                   options_json, span->name, wrong, span->count, g >= 0 ? groups[g].name : "no group",
                   g >= 0 ? (double)groups[g].lr_mult : 0.0, g >= 0 ? (double)groups[g].weight_decay : 0.0,
                   (double)role_lr_mult[span->role], (double)role_decay[span->role]);
        }
    }
    for (int g = 0; g < n_groups; g++) free(groups[g].ranges);
    free(groups);
    free(group_of);
    gpt_free(&m);
}

static void check_groups(const char *options_json, size_t E, size_t P) { check_groups_bias(options_json, E, P, 0, 0); }

/* HDD-RoPE's generator count from docs/hdd-rope.md: NH heads, hs / c chunks per head, c (c - 1) / 2
 * generators per chunk. */
static size_t hdd_generators(int c) {
    const int hs = shape.C / shape.NH;
    return (size_t)shape.NH * (size_t)(hs / c) * (size_t)(c * (c - 1) / 2);
}

/* The kinds with their sizes written out by hand. */
static void test_groups_of_known_kinds(void) {
    const size_t L = (size_t)shape.L;
    check_groups("{\"kind\": \"rope\"}", 0, 0);
    check_groups("{\"kind\": \"none\"}", 0, 0);
    check_groups("{\"kind\": \"xpos\"}", 0, 0);
    check_groups("{\"kind\": \"learned\"}", 0, (size_t)shape.max_T * (size_t)shape.C);
    check_groups("{\"kind\": \"hddrope\"}", hdd_generators(4), L * hdd_generators(4));   /* dynamic, c = 4 */
    check_groups("{\"kind\": \"hddrope\", \"chunk\": 2}", hdd_generators(2), L * hdd_generators(2));
    check_groups("{\"kind\": \"hddrope\", \"chunk\": 8, \"dynamic\": true}", hdd_generators(8), L * hdd_generators(8));
    check_groups("{\"kind\": \"hddrope\", \"dynamic\": false}", 0, L * hdd_generators(4));
    /* PaTH: w (C rows) and beta (NH rows) per layer; FoX: w_f (NH rows) and b_f (NH) per layer,
     * in the model's own groups after the kind's */
    const size_t NH = (size_t)shape.NH, C = (size_t)shape.C;
    check_groups("{\"kind\": \"path\"}", C + NH, 0);
    check_groups_bias("{\"kind\": \"none\", \"bias\": \"fox\"}", 0, 0, NH, L * NH);
    check_groups_bias("{\"kind\": \"hddrope\", \"bias\": \"fox\"}", hdd_generators(4), L * hdd_generators(4), NH, L * NH);
    check_groups_bias("{\"kind\": \"path\", \"bias\": \"alibi\"}", C + NH, 0, 0, 0);
}

/* Every registered kind and test option set, with the sizes the kind itself reports. */
static void test_groups_of_every_registered_kind(void) {
    char sets[64][256];
    int n = posenc_test_option_sets(sets, 64);
    CHECK(n >= 8);
    ModelDims dims = {.L = shape.L, .C = shape.C, .NH = shape.NH, .hs = shape.C / shape.NH, .max_T = shape.max_T};
    for (int i = 0; i < n; i++) {
        PosEnc pe;
        if (create_json(&pe, sets[i], dims) != 0) {
            CHECKF(0, "%s: %s", sets[i], tr_error());
            continue;
        }
        const size_t E = (size_t)posenc_kind_extra(&pe), P = posenc_kind_params(&pe);
        const size_t Eb = (size_t)posenc_bias_extra(&pe), Pb = posenc_bias_params(&pe);
        posenc_destroy(&pe);
        check_groups_bias(sets[i], E, P, Eb, Pb);
    }
}

int main(void) {
    RUN(test_groups_of_known_kinds);
    RUN(test_groups_of_every_registered_kind);
    return test_summary();
}
