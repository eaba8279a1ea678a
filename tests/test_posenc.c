/* test_posenc.c: tests for the positional-encoding plug-ins (model/posenc*.c): the registry and
 * its errors, RoPE's invariants (norms, relative scores, identity at p = 0), xPos (relative
 * scores, direct form = decay-in-the-dot-product form, the centre, the spec's zeta ranges and the
 * author variant's angle rates), every backward against finite differences of a double-precision
 * reference forward written here from the specs, and cached generation (pos0 = k, T = 1) against
 * the full forward.
 *
 * qkv rows in these tests carry 5 extra columns (S = 3C + 5) that every hook must leave alone: the
 * kinds here have num_extra 0, so the tests wrap a kind in a copy whose num_extra says 5 (the
 * hooks take the stride from num_extra, as the model allocates S = 3C + E).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/util.h"
#include "model/posenc.h"
#include "tests/posenc_test_helpers.h"
#include "tests/test.h"

#define EXTRA 5

/* ---------------------------------------------------------------------------------------------- */
/* helpers */

/* Checks that creating fails with an error containing each of the NULL-terminated needles. */
static void expect_error(const char *json, ModelDims d, const char *const needles[]) {
    PosEnc pe;
    tr_clear_error();
    int rc = create_json(&pe, json, d);
    CHECKF(rc == -1, "%s: created, expected an error", json);
    if (rc == 0) {
        posenc_destroy(&pe);
        return;
    }
    CHECKF(pe.kind == NULL && pe.impl == NULL, "%s: pe not cleared after the error", json);
    for (int i = 0; needles[i]; i++)
        CHECKF(strstr(tr_error(), needles[i]) != NULL, "%s: error \"%s\" lacks \"%s\"", json, tr_error(), needles[i]);
}

/* A copy of a kind that reports EXTRA extra columns, so the hooks see S = 3C + EXTRA. */
static int extra_columns(const PosEnc *pe) { return EXTRA; }
typedef struct {
    PosEncKind wrapped;
    const PosEncKind *original;
} WideKind;
static void widen(PosEnc *pe, WideKind *w) {
    w->original = pe->kind;
    w->wrapped = *pe->kind;
    w->wrapped.num_extra = extra_columns;
    pe->kind = &w->wrapped;
}
static void unwiden(PosEnc *pe, WideKind *w) { pe->kind = w->original; }

static void fill_normal(float *p, size_t n, uint64_t seed) {
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) p[i] = tr_rng_normal(&rng);
}

static float *copy_floats(const float *src, size_t n) {
    float *dst = xmalloc(n * sizeof *dst);
    memcpy(dst, src, n * sizeof *dst);
    return dst;
}

/* The kinds' hooks must not read x, params, acts or state: they get NULL. */
static void qk_forward(const PosEnc *pe, float *qkv, int B, int T, int pos0) {
    pe->kind->qk_forward(pe, 0, qkv, NULL, NULL, NULL, NULL, B, T, pos0);
}
static void qk_backward(const PosEnc *pe, float *dqkv, const float *qkv, int B, int T, int pos0) {
    pe->kind->qk_backward(pe, 1, dqkv, qkv, NULL, NULL, NULL, NULL, B, T, pos0);
}

/* q (which = 0) or k (which = 1) of head h at row (b,t). */
static float *head(float *qkv, int which, int b, int t, int h, int T, int C, int hs, int S) {
    return qkv + ((size_t)b * T + t) * S + (size_t)which * C + (size_t)h * hs;
}

static double dot(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---------------------------------------------------------------------------------------------- */
/* the reference: each encoding's per-pair angle and q scale at position p, in double, written
 * from the maths (docs/posenc.md §2-§3) independently of model/posenc_*.c */

enum { REF_ROPE, REF_XPOS, REF_AUTHOR };
typedef struct {
    const char *json;
    int type;
    double base;       /* rope */
    double scale_base; /* xpos reference */
} RefSpec;

static const RefSpec ref_specs[] = {
    {"{\"kind\": \"rope\"}", REF_ROPE, 10000, 0},
    {"{\"kind\": \"rope\", \"base\": 500}", REF_ROPE, 500, 0},
    {"{\"kind\": \"xpos\"}", REF_XPOS, 0, 512},
    {"{\"kind\": \"xpos\", \"variant\": \"reference\", \"scale_base\": 64}", REF_XPOS, 0, 64},
    {"{\"kind\": \"xpos\", \"variant\": \"author\"}", REF_AUTHOR, 0, 0},
};
#define N_REF_SPECS ((int)(sizeof ref_specs / sizeof ref_specs[0]))

/* Pair j (0-based) of a head of size hs at position p: q gets scale * R(angle), k 1/scale * R(angle). */
static void ref_pair(const RefSpec *r, int hs, int max_T, int j, long p, double *angle, double *scale) {
    switch (r->type) {
    case REF_ROPE:
        *angle = (double)p * pow(r->base, -2.0 * j / hs);
        *scale = 1.0;
        break;
    case REF_XPOS: {
        double zeta = (2.0 * j + 0.4 * hs) / (1.4 * hs);
        double centre = (double)((max_T + 1) / 2); /* ceil(max_T/2) */
        *angle = (double)p * pow(10000.0, -2.0 * j / hs);
        *scale = pow(zeta, ((double)p - centre) / r->scale_base);
        break;
    }
    default: { /* REF_AUTHOR: the author's index i = j + 1; u_p scales angle and exponent */
        int i = j + 1;
        double alpha = 0.4 * hs, u = ((double)p - 1024.0) / 512.0;
        *angle = pow(10000.0, -2.0 * i / hs) * u;
        *scale = pow((2.0 * i / (hs / 2.0) + alpha) / (1.0 + alpha), u);
        break;
    }
    }
}

/* The reference forward on a double copy of qkv (B,T,S). */
static void ref_forward(const RefSpec *r, double *qkv, int B, int T, int C, int NH, int S, int max_T, int pos0) {
    int hs = C / NH;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int which = 0; which < 2; which++)
                for (int h = 0; h < NH; h++) {
                    double *v = qkv + ((size_t)b * T + t) * S + (size_t)which * C + (size_t)h * hs;
                    for (int j = 0; j < hs / 2; j++) {
                        double angle, scale;
                        ref_pair(r, hs, max_T, j, pos0 + t, &angle, &scale);
                        if (which == 1) scale = 1.0 / scale;
                        double x0 = v[2 * j], x1 = v[2 * j + 1];
                        v[2 * j] = scale * (x0 * cos(angle) - x1 * sin(angle));
                        v[2 * j + 1] = scale * (x1 * cos(angle) + x0 * sin(angle));
                    }
                }
}

/* The score of un-encoded q (query at n) and k (key at m) in the decay-in-the-dot-product form
 * (docs/posenc.md §3.1-§3.2): sum_j decay_j^(n-m) * [pair-j RoPE term at angle (n-m)*rate_j]. For
 * RoPE the decay is 1. */
static double ref_relative_score(const RefSpec *r, int hs, const float *q, const float *k, long n, long m) {
    double score = 0, delta = (double)(n - m);
    for (int j = 0; j < hs / 2; j++) {
        double rate, decay;
        if (r->type == REF_ROPE) {
            rate = pow(r->base, -2.0 * j / hs);
            decay = 1.0;
        } else if (r->type == REF_XPOS) {
            rate = pow(10000.0, -2.0 * j / hs);
            decay = pow((2.0 * j + 0.4 * hs) / (1.4 * hs), delta / r->scale_base);
        } else {
            int i = j + 1;
            double alpha = 0.4 * hs;
            rate = pow(10000.0, -2.0 * i / hs) / 512.0;
            decay = pow((2.0 * i / (hs / 2.0) + alpha) / (1.0 + alpha), delta / 512.0);
        }
        double q0 = q[2 * j], q1 = q[2 * j + 1], k0 = k[2 * j], k1 = k[2 * j + 1];
        double pair = (q0 * k0 + q1 * k1) * cos(delta * rate) + (q0 * k1 - q1 * k0) * sin(delta * rate);
        score += decay * pair;
    }
    return score;
}

/* ---------------------------------------------------------------------------------------------- */
/* registry */

static void test_registry_every_kind_creates(void) {
    ModelDims d = make_dims(16, 4, 32);
    int n_kinds = 0;
    for (int i = 0; posenc_kinds[i]; i++, n_kinds++) {
        const PosEncKind *kind = posenc_kinds[i];
        CHECK(kind->name && kind->summary && kind->configure);
        for (int j = 0; j < i; j++) CHECKF(strcmp(posenc_kinds[j]->name, kind->name) != 0, "%s twice", kind->name);
        char json[128];
        snprintf(json, sizeof json, "{\"kind\": \"%s\"}", kind->name);
        PosEnc pe;
        int rc = create_json(&pe, json, d);
        CHECKF(rc == 0, "%s: %s", kind->name, tr_error());
        if (rc != 0) continue;
        CHECK(pe.kind == kind && pe.dims.C == 16 && pe.dims.max_T == 32);
        /* the sizes of the kinds this file covers (test_hddrope.c checks hddrope's) */
        int covered = !strcmp(kind->name, "none") || !strcmp(kind->name, "learned") || !strcmp(kind->name, "rope") ||
                      !strcmp(kind->name, "xpos");
        if (covered) {
            size_t params = kind->num_params ? kind->num_params(&pe) : 0;
            CHECKF(params == (strcmp(kind->name, "learned") == 0 ? 32u * 16u : 0u), "%s: %zu params", kind->name,
                   params);
            CHECK(!kind->num_extra || kind->num_extra(&pe) == 0);
            CHECK(!kind->num_acts || kind->num_acts(&pe, 3, 7) == 0);
            CHECK(!kind->num_state || kind->num_state(&pe, 3) == 0);
        }
        /* which hooks each kind has */
        int embed = kind->embed_forward != NULL, qk = kind->qk_forward != NULL, scores = kind->scores_forward != NULL;
        CHECK(embed == (kind->embed_backward != NULL) && qk == (kind->qk_backward != NULL));
        CHECK(scores == (kind->scores_backward != NULL) && scores == (kind->scores_step != NULL));
        if (strcmp(kind->name, "none") == 0) CHECK(!embed && !qk && !scores && !kind->init);
        else if (strcmp(kind->name, "learned") == 0) CHECK(embed && !qk && !scores && kind->init);
        else if (strcmp(kind->name, "path") == 0) CHECK(!embed && !qk && scores && kind->init);
        else if (!strcmp(kind->name, "rope") || !strcmp(kind->name, "xpos") || !strcmp(kind->name, "hddrope"))
            CHECK(!embed && qk && !scores);
        /* any other kind acts in one place: on the embedding, on q and k, or on the scores */
        else CHECKF(embed + qk + scores == 1, "%s: embed %d, qk %d, scores %d", kind->name, embed, qk, scores);
        posenc_destroy(&pe);
        CHECK(pe.kind == NULL && pe.impl == NULL);
        posenc_destroy(&pe); /* twice is harmless */
    }
    CHECK(n_kinds >= 4);
    /* the author variant creates up to its 2048 positions */
    PosEnc pe;
    CHECKF(create_json(&pe, "{\"kind\": \"xpos\", \"variant\": \"author\"}", make_dims(96, 2, 2048)) == 0, "%s",
           tr_error());
    posenc_destroy(&pe);
    /* a huge scale_base (no decay to speak of) is fine: the usable positions are capped, not overflowed */
    CHECKF(create_json(&pe, "{\"kind\": \"xpos\", \"scale_base\": 1e30}", make_dims(16, 4, 32)) == 0, "%s",
           tr_error());
    posenc_destroy(&pe);
}

static void test_registry_errors(void) {
    ModelDims d = make_dims(16, 4, 32);
    /* the kind: missing, unknown, wrong type; options not an object */
    expect_error("{}", d, (const char *const[]){"posenc.kind: missing", "none", "learned", "rope", "xpos", NULL});
    expect_error("{\"kind\": \"alibi\"}", d,
                 (const char *const[]){"posenc.kind", "\"alibi\"", "none, learned, rope, xpos", NULL});
    expect_error("{\"kind\": 3}", d, (const char *const[]){"posenc.kind: must be a string", NULL});
    expect_error("[\"rope\"]", d, (const char *const[]){"posenc: must be an object", "rope", NULL});
    expect_error("\"rope\"", d, (const char *const[]){"posenc: must be an object", NULL});
    /* unknown option keys, named, with the kind's known keys */
    expect_error("{\"kind\": \"none\", \"base\": 10}", d,
                 (const char *const[]){"posenc.base: unknown option for kind none (known: kind)", NULL});
    expect_error("{\"kind\": \"learned\", \"max_T\": 10}", d,
                 (const char *const[]){"posenc.max_T: unknown option for kind learned", NULL});
    expect_error("{\"kind\": \"rope\", \"foo\": 1}", d,
                 (const char *const[]){"posenc.foo: unknown option for kind rope (known: kind, base)", NULL});
    expect_error("{\"kind\": \"xpos\", \"base\": 10000}", d,
                 (const char *const[]){"posenc.base: unknown option for kind xpos (known: kind, variant, scale_base)",
                                       NULL});
    /* bad values */
    expect_error("{\"kind\": \"rope\", \"base\": \"big\"}", d, (const char *const[]){"posenc.base: must be a number", NULL});
    expect_error("{\"kind\": \"rope\", \"base\": 1}", d, (const char *const[]){"posenc.base", NULL});
    expect_error("{\"kind\": \"rope\", \"base\": -5}", d, (const char *const[]){"posenc.base", NULL});
    expect_error("{\"kind\": \"xpos\", \"variant\": \"lucidrains\"}", d,
                 (const char *const[]){"posenc.variant", "lucidrains", "reference, author", NULL});
    expect_error("{\"kind\": \"xpos\", \"variant\": 1}", d, (const char *const[]){"posenc.variant: must be a string", NULL});
    expect_error("{\"kind\": \"xpos\", \"scale_base\": 0}", d, (const char *const[]){"posenc.scale_base", NULL});
    expect_error("{\"kind\": \"xpos\", \"variant\": \"author\", \"scale_base\": 512}", d,
                 (const char *const[]){"posenc.scale_base", "reference", NULL});
    /* a scale base so small that position 0's scale leaves the float range */
    expect_error("{\"kind\": \"xpos\", \"scale_base\": 1}", make_dims(16, 4, 512),
                 (const char *const[]){"posenc.scale_base", "512", NULL});
    /* odd head size: hs = 12/4 = 3 */
    ModelDims odd = make_dims(12, 4, 32);
    expect_error("{\"kind\": \"rope\"}", odd, (const char *const[]){"even head size", "3", NULL});
    expect_error("{\"kind\": \"xpos\"}", odd, (const char *const[]){"even head size", NULL});
    expect_error("{\"kind\": \"xpos\", \"variant\": \"author\"}", odd, (const char *const[]){"even head size", NULL});
    /* the author's tables have 2048 rows */
    expect_error("{\"kind\": \"xpos\", \"variant\": \"author\"}", make_dims(96, 2, 2049),
                 (const char *const[]){"posenc.variant", "2048", "2049", NULL});
    /* inconsistent dimensions */
    ModelDims bad = make_dims(16, 4, 32);
    bad.hs = 3;
    expect_error("{\"kind\": \"rope\"}", bad, (const char *const[]){"posenc: bad model dimensions", NULL});
}

/* ---------------------------------------------------------------------------------------------- */
/* RoPE */

static void test_rope_keeps_norms_and_columns(void) {
    const int B = 2, T = 9, C = 32, NH = 4, hs = C / NH, max_T = 16, S = 3 * C + EXTRA;
    PosEnc pe;
    if (create_json(&pe, "{\"kind\": \"rope\"}", make_dims(C, NH, max_T)) != 0) {
        CHECKF(0, "%s", tr_error());
        return;
    }
    WideKind w;
    widen(&pe, &w);
    size_t n = (size_t)B * T * S;
    float *orig = xmalloc(n * sizeof *orig);
    fill_normal(orig, n, 11);
    /* 0 and 7: inside the table (4*max_T = 64 rows); 60: straddles its end; 100000: past it */
    const int pos0s[] = {0, 7, 60, 100000};
    for (int pi = 0; pi < 4; pi++) {
        int pos0 = pos0s[pi];
        float *qkv = copy_floats(orig, n);
        qk_forward(&pe, qkv, B, T, pos0);
        double worst = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                for (int which = 0; which < 2; which++)
                    for (int h = 0; h < NH; h++) {
                        const float *before = head(orig, which, b, t, h, T, C, hs, S);
                        const float *after = head(qkv, which, b, t, h, T, C, hs, S);
                        double n0 = sqrt(dot(before, before, hs)), n1 = sqrt(dot(after, after, hs));
                        if (fabs(n1 - n0) / n0 > worst) worst = fabs(n1 - n0) / n0;
                    }
                size_t row = ((size_t)b * T + t) * S;
                CHECKF(memcmp(qkv + row + 2 * C, orig + row + 2 * C, (C + EXTRA) * sizeof(float)) == 0,
                       "pos0 %d: v or the extra columns changed at (%d,%d)", pos0, b, t);
            }
        CHECKF(worst < 1e-6, "pos0 %d: norm changed by %g (relative)", pos0, worst);
        /* the rotation actually happened (so the norm check is not vacuous) */
        CHECKF(pos0 == 0 ? memcmp(qkv + S, orig + S, 2 * C * sizeof(float)) != 0
                         : memcmp(qkv, orig, 2 * C * sizeof(float)) != 0,
               "pos0 %d: nothing rotated", pos0);
        if (pos0 == 0) {
            /* position 0 is the identity, bit for bit: cos 0 = 1 and sin 0 = 0 exactly */
            for (int b = 0; b < B; b++)
                CHECK(memcmp(qkv + (size_t)b * T * S, orig + (size_t)b * T * S, (size_t)S * sizeof(float)) == 0);
        }
        free(qkv);
    }
    free(orig);
    unwiden(&pe, &w);
    posenc_destroy(&pe);
}

/* Scores q~_n . k~_m of the encoded qkv (B = 1) against the same scores after shifting pos0, and
 * against ref_relative_score on the raw q and k. Returns the worst errors through the pointers,
 * relative to |q||k|. */
static void score_errors(const PosEnc *pe, const RefSpec *r, const float *raw, int T, int C, int NH, int pos0,
                         int shift, double *shift_err, double *formula_err) {
    const int hs = C / NH, S = 3 * C + EXTRA;
    size_t n = (size_t)T * S;
    float *a = copy_floats(raw, n), *b = copy_floats(raw, n), *rawc = copy_floats(raw, n);
    qk_forward(pe, a, 1, T, pos0);
    qk_forward(pe, b, 1, T, pos0 + shift);
    *shift_err = *formula_err = 0;
    for (int h = 0; h < NH; h++)
        for (int tn = 0; tn < T; tn++)
            for (int tm = 0; tm < T; tm++) {
                const float *q = head(rawc, 0, 0, tn, h, T, C, hs, S), *k = head(rawc, 1, 0, tm, h, T, C, hs, S);
                double norms = sqrt(dot(q, q, hs) * dot(k, k, hs));
                double sa = dot(head(a, 0, 0, tn, h, T, C, hs, S), head(a, 1, 0, tm, h, T, C, hs, S), hs);
                double sb = dot(head(b, 0, 0, tn, h, T, C, hs, S), head(b, 1, 0, tm, h, T, C, hs, S), hs);
                double sf = ref_relative_score(r, hs, q, k, pos0 + tn, pos0 + tm);
                if (fabs(sa - sb) / norms > *shift_err) *shift_err = fabs(sa - sb) / norms;
                if (fabs(sa - sf) / norms > *formula_err) *formula_err = fabs(sa - sf) / norms;
            }
    free(a);
    free(b);
    free(rawc);
}

static void test_rope_scores_are_relative(void) {
    const int T = 12, C = 32, NH = 2, max_T = 16, S = 3 * C + EXTRA;
    for (int s = 0; s < 2; s++) { /* default base, base 500 */
        const RefSpec *r = &ref_specs[s];
        PosEnc pe;
        if (create_json(&pe, r->json, make_dims(C, NH, max_T)) != 0) {
            CHECKF(0, "%s", tr_error());
            continue;
        }
        WideKind w;
        widen(&pe, &w);
        float *raw = xmalloc((size_t)T * S * sizeof *raw);
        fill_normal(raw, (size_t)T * S, 21 + s);
        /* shifts inside the table, across its end and far past it */
        const int cases[][2] = {{0, 5}, {3, 40}, {0, 1000}, {70, 123456}};
        for (int c = 0; c < 4; c++) {
            double shift_err, formula_err;
            score_errors(&pe, r, raw, T, C, NH, cases[c][0], cases[c][1], &shift_err, &formula_err);
            CHECKF(shift_err < 2e-6, "%s pos0 %d shift %d: scores moved by %g", r->json, cases[c][0], cases[c][1],
                   shift_err);
            CHECKF(formula_err < 2e-6, "%s pos0 %d: scores differ from the formula by %g", r->json, cases[c][0],
                   formula_err);
        }
        free(raw);
        unwiden(&pe, &w);
        posenc_destroy(&pe);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* xPos */

static void test_xpos_reference_scores(void) {
    const int T = 12, C = 32, NH = 2, max_T = 16, S = 3 * C + EXTRA;
    for (int s = 2; s < 4; s++) { /* scale_base 512 (default), 64 */
        const RefSpec *r = &ref_specs[s];
        PosEnc pe;
        if (create_json(&pe, r->json, make_dims(C, NH, max_T)) != 0) {
            CHECKF(0, "%s", tr_error());
            continue;
        }
        WideKind w;
        widen(&pe, &w);
        float *raw = xmalloc((size_t)T * S * sizeof *raw);
        fill_normal(raw, (size_t)T * S, 31 + s);
        /* (n, m) -> (n + shift, m + shift), the direct form vs the decay-in-the-dot form */
        const int cases[][2] = {{0, 5}, {3, 40}, {0, 1000}, {70, 3000}};
        for (int c = 0; c < 4; c++) {
            double shift_err, formula_err;
            score_errors(&pe, r, raw, T, C, NH, cases[c][0], cases[c][1], &shift_err, &formula_err);
            CHECKF(shift_err < 2e-6, "%s pos0 %d shift %d: scores moved by %g", r->json, cases[c][0], cases[c][1],
                   shift_err);
            CHECKF(formula_err < 2e-6, "%s pos0 %d: direct form differs from the decay form by %g", r->json,
                   cases[c][0], formula_err);
        }
        free(raw);
        unwiden(&pe, &w);
        posenc_destroy(&pe);
    }
}

/* Encodes the unit vector e_2j in q and in k of head 0 at position p (B = T = 1), returns the
 * encoded pairs j of q and k. */
static void encode_unit(const PosEnc *pe, int C, int j, long p, float q_pair[2], float k_pair[2]) {
    const int S = 3 * C + EXTRA;
    float *qkv = xcalloc((size_t)S, sizeof *qkv);
    qkv[2 * j] = 1.0f;
    qkv[C + 2 * j] = 1.0f;
    qk_forward(pe, qkv, 1, 1, (int)p);
    q_pair[0] = qkv[2 * j], q_pair[1] = qkv[2 * j + 1];
    k_pair[0] = qkv[C + 2 * j], k_pair[1] = qkv[C + 2 * j + 1];
    free(qkv);
}

/* ONE centre per model, c = ceil(max_T/2): there, q and k are purely rotated (scale 1). And one
 * scale_base further on, q's pair j is scaled by zeta_j exactly: the spec's zeta range. */
static void test_xpos_reference_centre_and_zeta(void) {
    const int C = 96, NH = 2, hs = 48, max_T = 63, centre = 32;
    PosEnc pe;
    if (create_json(&pe, "{\"kind\": \"xpos\"}", make_dims(C, NH, max_T)) != 0) {
        CHECKF(0, "%s", tr_error());
        return;
    }
    WideKind w;
    widen(&pe, &w);
    float q[2], k[2];
    for (int j = 0; j < hs / 2; j++) {
        encode_unit(&pe, C, j, centre, q, k);
        CHECKF(fabs(hypot(q[0], q[1]) - 1) < 1e-6 && fabs(hypot(k[0], k[1]) - 1) < 1e-6,
               "pair %d scaled at the centre %d: %g %g", j, centre, hypot(q[0], q[1]), hypot(k[0], k[1]));
    }
    encode_unit(&pe, C, 0, centre - 1, q, k);
    CHECKF(hypot(q[0], q[1]) > 1.001, "position %d: q scale %g should be > 1 (before the centre)", centre - 1,
           hypot(q[0], q[1]));
    double zmin = 1e9, zmax = -1e9;
    for (int j = 0; j < hs / 2; j++) {
        encode_unit(&pe, C, j, centre + 512, q, k);
        double zq = hypot(q[0], q[1]), zk = hypot(k[0], k[1]);
        CHECKF(fabs(zq * zk - 1) < 1e-6, "pair %d: k's scale %g is not 1/q's %g", j, zk, zq);
        if (zq < zmin) zmin = zq;
        if (zq > zmax) zmax = zq;
    }
    /* docs/posenc.md §3.1, §3.3: zeta in [2/7 = 0.286, 0.970] at hs = 48 */
    CHECKF(fabs(zmin - 2.0 / 7.0) < 1e-6 && fabs(zmax - 0.9702) < 1e-4, "zeta range [%.5f, %.5f]", zmin, zmax);
    unwiden(&pe, &w);
    posenc_destroy(&pe);
}

/* The HDD-RoPE author's xPos (docs/posenc.md §3.3) at d = hs = 48, its numbers. */
static void test_xpos_author_numbers(void) {
    const int C = 96, NH = 2, hs = 48;
    PosEnc pe;
    if (create_json(&pe, "{\"kind\": \"xpos\", \"variant\": \"author\"}", make_dims(C, NH, 2048)) != 0) {
        CHECKF(0, "%s", tr_error());
        return;
    }
    WideKind w;
    widen(&pe, &w);
    float q[2], k[2];
    /* u_p = 1 at p = 1536: q's pair j is scaled by zeta_j. Range [0.9546, 1.0495], 12 above 1. */
    double zmin = 1e9, zmax = -1e9;
    int above_one = 0;
    for (int j = 0; j < hs / 2; j++) {
        encode_unit(&pe, C, j, 1536, q, k);
        double z = hypot(q[0], q[1]);
        if (z < zmin) zmin = z;
        if (z > zmax) zmax = z;
        above_one += z > 1.0;
    }
    CHECKF(fabs(zmin - 0.9546) < 5e-5 && fabs(zmax - 1.0495) < 5e-5, "zeta range [%.5f, %.5f]", zmin, zmax);
    CHECKF(above_one == 12, "%d zetas above 1", above_one);
    /* u = 0 at p = 1024: the identity */
    encode_unit(&pe, C, 0, 1024, q, k);
    CHECK(q[0] == 1.0f && q[1] == 0.0f && k[0] == 1.0f && k[1] == 0.0f);
    /* the effective angle rate is theta_i / 512 with theta_i = 10000^(-2i/48), i = j + 1 */
    double worst = 0;
    for (int j = 0; j < hs / 2; j++) {
        encode_unit(&pe, C, j, 1025, q, k);
        double rate = atan2(q[1], q[0]), want = pow(10000.0, -2.0 * (j + 1) / hs) / 512.0;
        if (fabs(rate - want) / want > worst) worst = fabs(rate - want) / want;
        encode_unit(&pe, C, j, 1023, q, k);
        double back = atan2(q[1], q[0]);
        if (fabs(back + want) / want > worst) worst = fabs(back + want) / want;
    }
    CHECKF(worst < 1e-4, "angle rates off by %g (relative)", worst);
    /* "barely rotates": over 512 tokens the fastest pair turns 0.681 rad, the slowest 1e-4 rad */
    float q2[2];
    encode_unit(&pe, C, 0, 700, q, k);
    encode_unit(&pe, C, 0, 700 + 512, q2, k);
    double turn_fast = atan2(q2[1], q2[0]) - atan2(q[1], q[0]);
    CHECKF(fabs(turn_fast - 0.681) < 5e-4, "fastest pair turns %.5f rad over 512 tokens", turn_fast);
    encode_unit(&pe, C, hs / 2 - 1, 700, q, k);
    encode_unit(&pe, C, hs / 2 - 1, 700 + 512, q2, k);
    double turn_slow = atan2(q2[1], q2[0]) - atan2(q[1], q[0]);
    CHECKF(fabs(turn_slow - 1e-4) < 1e-6, "slowest pair turns %.3g rad over 512 tokens", turn_slow);
    /* the last of its 2048 positions works */
    encode_unit(&pe, C, 0, 2047, q, k);
    CHECK(isfinite(q[0]) && isfinite(k[1]));
    unwiden(&pe, &w);
    posenc_destroy(&pe);
}

/* ---------------------------------------------------------------------------------------------- */
/* forward against the double reference, backward against finite differences of
 * L = sum(R ⊙ qkv_after), for every rotary spec */

static void test_qk_forward_backward_vs_reference(void) {
    const int B = 2, T = 5, C = 8, NH = 2, max_T = 16, S = 3 * C + EXTRA;
    const size_t n = (size_t)B * T * S;
    for (int s = 0; s < N_REF_SPECS; s++) {
        const RefSpec *r = &ref_specs[s];
        PosEnc pe;
        if (create_json(&pe, r->json, make_dims(C, NH, max_T)) != 0) {
            CHECKF(0, "%s: %s", r->json, tr_error());
            continue;
        }
        WideKind w;
        widen(&pe, &w);
        const int pos0s[] = {0, 3, 62, 300}; /* in the table, across its end (64 rows), past it */
        for (int pi = 0; pi < 4; pi++) {
            int pos0 = pos0s[pi];
            float *x = xmalloc(n * sizeof *x), *R = xmalloc(n * sizeof *R);
            fill_normal(x, n, 100 + s * 10 + pi);
            fill_normal(R, n, 200 + s * 10 + pi);
            double *xd = xmalloc(n * sizeof *xd), *yd = xmalloc(n * sizeof *yd);
            for (size_t i = 0; i < n; i++) xd[i] = x[i];

            /* forward */
            float *y = copy_floats(x, n);
            qk_forward(&pe, y, B, T, pos0);
            memcpy(yd, xd, n * sizeof *yd);
            ref_forward(r, yd, B, T, C, NH, S, max_T, pos0);
            double fwd_err = 0;
            for (size_t i = 0; i < n; i++)
                if (fabs(y[i] - yd[i]) / (1 + fabs(yd[i])) > fwd_err) fwd_err = fabs(y[i] - yd[i]) / (1 + fabs(yd[i]));
            CHECKF(fwd_err < 2e-6, "%s pos0 %d: forward differs from the reference by %g", r->json, pos0, fwd_err);

            /* backward: the kind's, in float, from dL/dqkv_after = R */
            float *dqkv = copy_floats(R, n);
            qk_backward(&pe, dqkv, y, B, T, pos0);

            /* central differences of L in double, over every entry */
            const double eps = 1e-3;
            double bwd_err = 0;
            for (size_t i = 0; i < n; i++) {
                double Lp = 0, Lm = 0, keep = xd[i];
                xd[i] = keep + eps;
                memcpy(yd, xd, n * sizeof *yd);
                ref_forward(r, yd, B, T, C, NH, S, max_T, pos0);
                for (size_t k = 0; k < n; k++) Lp += R[k] * yd[k];
                xd[i] = keep - eps;
                memcpy(yd, xd, n * sizeof *yd);
                ref_forward(r, yd, B, T, C, NH, S, max_T, pos0);
                for (size_t k = 0; k < n; k++) Lm += R[k] * yd[k];
                xd[i] = keep;
                double g = (Lp - Lm) / (2 * eps);
                if (fabs(dqkv[i] - g) / (1 + fabs(g)) > bwd_err) bwd_err = fabs(dqkv[i] - g) / (1 + fabs(g));
            }
            CHECKF(bwd_err < 1e-5, "%s pos0 %d: backward differs from finite differences by %g", r->json, pos0,
                   bwd_err);
            /* the gradient of v and of the extra columns passes through untouched, bit for bit */
            for (size_t row = 0; row < (size_t)B * T; row++)
                CHECKF(memcmp(dqkv + row * S + 2 * C, R + row * S + 2 * C, (C + EXTRA) * sizeof(float)) == 0,
                       "%s: dv or the extra columns changed in row %zu", r->json, row);
            free(x);
            free(R);
            free(xd);
            free(yd);
            free(y);
            free(dqkv);
        }
        unwiden(&pe, &w);
        posenc_destroy(&pe);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* learned */

static void test_learned_init(void) {
    const int C = 64, max_T = 64;
    PosEnc pe;
    if (create_json(&pe, "{\"kind\": \"learned\"}", make_dims(C, 4, max_T)) != 0) {
        CHECKF(0, "%s", tr_error());
        return;
    }
    size_t n = pe.kind->num_params(&pe);
    CHECK(n == (size_t)C * max_T);
    float *a = xmalloc(n * sizeof *a), *b = xmalloc(n * sizeof *b), *c = xmalloc(n * sizeof *c);
    pe.kind->init(&pe, a, NULL, 0, 42);
    pe.kind->init(&pe, b, NULL, 0, 42);
    pe.kind->init(&pe, c, NULL, 0, 43);
    CHECK(memcmp(a, b, n * sizeof *a) == 0);
    CHECK(memcmp(a, c, n * sizeof *a) != 0);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) sum += a[i], sq += (double)a[i] * a[i];
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    CHECKF(fabs(mean) < 3 * 0.02 / sqrt((double)n), "mean %g", mean);
    CHECKF(fabs(sd - 0.02) < 0.001, "std %g, want 0.02", sd);
    free(a);
    free(b);
    free(c);
    posenc_destroy(&pe);
}

static void test_learned_forward_backward(void) {
    const int B = 3, T = 6, C = 8, max_T = 16;
    PosEnc pe;
    if (create_json(&pe, "{\"kind\": \"learned\"}", make_dims(C, 2, max_T)) != 0) {
        CHECKF(0, "%s", tr_error());
        return;
    }
    const size_t np = (size_t)max_T * C, no = (size_t)B * T * C;
    float *wpe = xmalloc(np * sizeof *wpe);
    pe.kind->init(&pe, wpe, NULL, 0, 7);
    const int pos0s[] = {0, 5, max_T - T};
    for (int pi = 0; pi < 3; pi++) {
        int pos0 = pos0s[pi];
        float *out = xmalloc(no * sizeof *out), *R = xmalloc(no * sizeof *R);
        fill_normal(out, no, 300 + pi);
        fill_normal(R, no, 400 + pi);
        /* forward: adds wpe[pos0 + t] */
        float *after = copy_floats(out, no);
        pe.kind->embed_forward(&pe, after, wpe, B, T, pos0);
        int exact = 1;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++) {
                    size_t i = ((size_t)b * T + t) * C + c;
                    exact &= after[i] == out[i] + wpe[(size_t)(pos0 + t) * C + c];
                }
        CHECKF(exact, "pos0 %d: forward is not out + wpe[pos0 + t]", pos0);
        /* backward accumulates onto what dwpe held, compared with central differences of
         * L = sum(R ⊙ (out + wpe[pos0 + t])) in double */
        float *dwpe = xmalloc(np * sizeof *dwpe), *dwpe0 = xmalloc(np * sizeof *dwpe0);
        fill_normal(dwpe0, np, 500 + pi);
        memcpy(dwpe, dwpe0, np * sizeof *dwpe);
        pe.kind->embed_backward(&pe, dwpe, R, B, T, pos0);
        double worst = 0;
        const double eps = 1e-3;
        for (size_t k = 0; k < np; k++) {
            double L[2];
            for (int side = 0; side < 2; side++) {
                double bump = side ? -eps : eps;
                L[side] = 0;
                for (int b = 0; b < B; b++)
                    for (int t = 0; t < T; t++)
                        for (int c = 0; c < C; c++) {
                            size_t j = (size_t)(pos0 + t) * C + c;
                            double wj = wpe[j] + (j == k ? bump : 0.0);
                            L[side] += R[((size_t)b * T + t) * C + c] * ((double)out[((size_t)b * T + t) * C + c] + wj);
                        }
            }
            double g = (L[0] - L[1]) / (2 * eps), got = (double)dwpe[k] - dwpe0[k];
            if (fabs(got - g) / (1 + fabs(g)) > worst) worst = fabs(got - g) / (1 + fabs(g));
        }
        CHECKF(worst < 1e-5, "pos0 %d: dwpe differs from finite differences by %g", pos0, worst);
        free(out);
        free(R);
        free(after);
        free(dwpe);
        free(dwpe0);
    }
    free(wpe);
    posenc_destroy(&pe);
}

/* ---------------------------------------------------------------------------------------------- */
/* cached generation: a forward at (pos0 = k, T = 1) is row k of the full forward, bit for bit */

static void test_cached_step_equals_full_forward(void) {
    const int B = 2, C = 64, NH = 4, max_T = 128, T = test_small() ? 40 : 128;
    const int S = 3 * C + EXTRA;
    const char *jsons[] = {"{\"kind\": \"none\"}",
                           "{\"kind\": \"learned\"}",
                           "{\"kind\": \"rope\"}",
                           "{\"kind\": \"xpos\"}",
                           "{\"kind\": \"xpos\", \"variant\": \"author\"}"};
    int kinds_seen = 0;
    for (int s = 0; s < 5; s++) {
        PosEnc pe;
        if (create_json(&pe, jsons[s], make_dims(C, NH, max_T)) != 0) {
            CHECKF(0, "%s: %s", jsons[s], tr_error());
            continue;
        }
        WideKind w;
        widen(&pe, &w);
        const PosEncKind *k = pe.kind;
        if (k->qk_forward) {
            size_t n = (size_t)B * T * S;
            float *full = xmalloc(n * sizeof *full);
            fill_normal(full, n, 600 + s);
            float *orig = copy_floats(full, n);
            qk_forward(&pe, full, B, T, 0); /* B*T*C >= 16384 at T = 128: the OpenMP path */
            float *step = xmalloc((size_t)B * S * sizeof *step);
            int mismatches = 0;
            for (int t = 0; t < T; t++) {
                for (int b = 0; b < B; b++)
                    memcpy(step + (size_t)b * S, orig + ((size_t)b * T + t) * S, (size_t)S * sizeof *step);
                qk_forward(&pe, step, B, 1, t);
                for (int b = 0; b < B; b++)
                    mismatches += memcmp(step + (size_t)b * S, full + ((size_t)b * T + t) * S,
                                         (size_t)S * sizeof *step) != 0;
            }
            CHECKF(mismatches == 0, "%s: %d cached rows differ from the full forward", jsons[s], mismatches);
            free(full);
            free(orig);
            free(step);
            kinds_seen++;
        } else if (k->embed_forward) {
            size_t n = (size_t)B * T * C;
            float *wpe = xmalloc((size_t)max_T * C * sizeof *wpe);
            k->init(&pe, wpe, NULL, 0, 9);
            float *full = xmalloc(n * sizeof *full);
            fill_normal(full, n, 700 + s);
            float *orig = copy_floats(full, n);
            k->embed_forward(&pe, full, wpe, B, T, 0);
            float *step = xmalloc((size_t)B * C * sizeof *step);
            int mismatches = 0;
            for (int t = 0; t < T; t++) {
                for (int b = 0; b < B; b++)
                    memcpy(step + (size_t)b * C, orig + ((size_t)b * T + t) * C, (size_t)C * sizeof *step);
                k->embed_forward(&pe, step, wpe, B, 1, t);
                for (int b = 0; b < B; b++)
                    mismatches += memcmp(step + (size_t)b * C, full + ((size_t)b * T + t) * C,
                                         (size_t)C * sizeof *step) != 0;
            }
            CHECKF(mismatches == 0, "%s: %d cached rows differ from the full forward", jsons[s], mismatches);
            free(wpe);
            free(full);
            free(orig);
            free(step);
            kinds_seen++;
        } else {
            /* none: nothing to run, so nothing can differ */
            CHECK(!k->qk_backward && !k->embed_backward);
            kinds_seen++;
        }
        unwiden(&pe, &w);
        posenc_destroy(&pe);
    }
    CHECK(kinds_seen == 5);
}

int main(void) {
    RUN(test_registry_every_kind_creates);
    RUN(test_registry_errors);
    RUN(test_rope_keeps_norms_and_columns);
    RUN(test_rope_scores_are_relative);
    RUN(test_xpos_reference_scores);
    RUN(test_xpos_reference_centre_and_zeta);
    RUN(test_xpos_author_numbers);
    RUN(test_qk_forward_backward_vs_reference);
    RUN(test_learned_init);
    RUN(test_learned_forward_backward);
    RUN(test_cached_step_equals_full_forward);
    return test_summary();
}
