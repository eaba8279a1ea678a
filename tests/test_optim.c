/* test_optim.c: AdamW (against hand-computed values and against its reference loop), clipping,
 * weight decay by group, frozen parameters, convergence on a quadratic, errors, the learning-rate
 * schedule, and bit-identical results whatever the number of OpenMP threads. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/util.h"
#include "model/optim.h"
#include "tests/test.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static float rng_uniform(void) { return (float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

static ParamGroup make_group(const char *name, float lr_mult, float wd, ParamRange *ranges, int n_ranges) {
    ParamGroup g;
    memset(&g, 0, sizeof g);
    snprintf(g.name, sizeof g.name, "%s", name);
    g.lr_mult = lr_mult;
    g.weight_decay = wd;
    g.ranges = ranges;
    g.n_ranges = n_ranges;
    return g;
}

static int close_to(double a, double b, double rel, double abs_tol) {
    return fabs(a - b) <= abs_tol + rel * fabs(b);
}

/* ---- one and two steps by hand ---- */

/* First step: m_hat = g, v_hat = g^2, so p moves by -lr * (g / (|g| + eps) + wd * p), about
 * -lr * sign(g) - lr*wd*p. The second step checks the bias corrections 1 - 0.9^2 = 0.19 and
 * 1 - 0.999^2 = 0.001999 written out here. */
static void test_steps_by_hand(void) {
    enum { N = 6 };
    /* params 0..3 decayed, 4 not decayed, 5 frozen */
    ParamRange decay_r[] = {{0, 4}}, plain_r[] = {{4, 1}};
    ParamGroup groups[] = {make_group("decay", 1.0f, 0.1f, decay_r, 1), make_group("no_decay", 1.0f, 0.0f, plain_r, 1)};
    AdamW opt;
    CHECK(adamw_init(&opt, N, groups, 2, 0.9f, 0.999f, 1e-8f, 0.0f, 0) == 0);
    float p[N] = {1.0f, -2.0f, 0.5f, 3.0f, -1.5f, 7.0f};
    float g1[N] = {0.5f, -3.0f, 0.0f, 1e-3f, 2.0f, 100.0f};
    const double lr = 0.1, wd = 0.1, eps = 1e-8;
    double p0[N], expect[N];
    for (int i = 0; i < N; i++) p0[i] = p[i];
    for (int i = 0; i < N; i++) {
        double wd_i = i < 4 ? wd : 0.0;
        expect[i] = i == 5 ? p0[i] : p0[i] - lr * (g1[i] / (fabs(g1[i]) + eps) + wd_i * p0[i]);
    }
    double norm = adamw_step(&opt, p, g1, (float)lr);
    double want_norm = sqrt(0.25 + 9.0 + 0.0 + 1e-6 + 4.0); /* frozen param's 100 left out */
    CHECKF(close_to(norm, want_norm, 1e-6, 0), "norm %.9g want %.9g", norm, want_norm);
    CHECK(opt.t == 1);
    for (int i = 0; i < N; i++)
        CHECKF(close_to(p[i], expect[i], 1e-6, 1e-7), "step 1 p[%d] = %.9g want %.9g", i, p[i], expect[i]);
    /* the approximate closed form: -lr*sign(g) - lr*wd*p */
    CHECK(close_to(p[0], 1.0 - 0.1 - 0.01 * 1.0, 1e-6, 0));
    CHECK(close_to(p[1], -2.0 + 0.1 + 0.01 * 2.0, 1e-6, 0));
    CHECK(close_to(p[2], 0.5 - 0.01 * 0.5, 1e-6, 0)); /* zero gradient: decay only */
    CHECK(close_to(p[4], -1.5 - 0.1, 1e-6, 0));
    CHECK(p[5] == 7.0f);

    float g2[N] = {-1.0f, 1.0f, 2.0f, 1e-3f, 2.0f, -100.0f};
    for (int i = 0; i < N; i++) {
        double m1 = 0.1 * g1[i], v1 = 0.001 * (double)g1[i] * g1[i];
        double m2 = 0.9 * m1 + 0.1 * g2[i], v2 = 0.999 * v1 + 0.001 * (double)g2[i] * g2[i];
        double m_hat = m2 / 0.19, v_hat = v2 / 0.001999;
        double wd_i = i < 4 ? wd : 0.0;
        double before = p[i];
        expect[i] = i == 5 ? before : before - lr * (m_hat / (sqrt(v_hat) + eps) + wd_i * before);
    }
    adamw_step(&opt, p, g2, (float)lr);
    CHECK(opt.t == 2);
    for (int i = 0; i < N; i++)
        CHECKF(close_to(p[i], expect[i], 2e-6, 1e-6), "step 2 p[%d] = %.9g want %.9g", i, p[i], expect[i]);
    /* the moments are kept (frozen ones untouched) */
    CHECK(close_to(opt.m[0], 0.9 * 0.05 + 0.1 * -1.0, 1e-6, 1e-9));
    CHECK(opt.m[5] == 0.0f && opt.v[5] == 0.0f);
    adamw_free(&opt);
}

/* ---- fast against reference ---- */

/* 3 groups, scattered ranges (some crossing the 8192-element chunks of the fast path), frozen
 * gaps between them; both versions see the same gradients for 20 steps. */
enum { FR_N = 30011 };
static ParamRange fr_decay[] = {{0, 5000}, {12000, 8000}, {25000, 2000}};
static ParamRange fr_plain[] = {{5000, 4000}, {20000, 1000}, {29000, 11}};
static ParamRange fr_posenc[] = {{9000, 3000}, {29011, 1000}};

static void init_three_groups(AdamW *opt, float clip, int per_group) {
    ParamGroup groups[] = {make_group("decay", 1.0f, 0.1f, fr_decay, 3),
                           make_group("no_decay", 0.5f, 0.0f, fr_plain, 3),
                           make_group("posenc", 3.0f, 0.01f, fr_posenc, 2)};
    if (adamw_init(opt, FR_N, groups, 3, 0.9f, 0.95f, 1e-8f, clip, per_group) != 0)
        fprintf(stderr, "init failed: %s\n", tr_error());
}

/* Gradients whose scale varies by group and by step, so clipping switches on and off. */
static void random_grads(float *g, int step) {
    for (size_t i = 0; i < FR_N; i++) {
        float scale = (i >= 9000 && i < 12000) ? 0.3f : (i >= 20000 && i < 21000) ? 0.05f : 0.01f;
        if (step % 3 == 1) scale *= 20.0f;
        g[i] = rng_uniform() * scale;
    }
}

static void fast_vs_reference(float clip, int per_group, const char *what) {
    AdamW fast, ref;
    init_three_groups(&fast, clip, per_group);
    init_three_groups(&ref, clip, per_group);
    float *p_fast = xmalloc(FR_N * sizeof(float)), *p_ref = xmalloc(FR_N * sizeof(float));
    float *g_fast = xmalloc(FR_N * sizeof(float)), *g_ref = xmalloc(FR_N * sizeof(float));
    for (size_t i = 0; i < FR_N; i++) p_fast[i] = p_ref[i] = rng_uniform();
    double worst = 0;
    int clipped_steps = 0;
    for (int step = 0; step < 20; step++) {
        random_grads(g_fast, step);
        memcpy(g_ref, g_fast, FR_N * sizeof(float));
        float lr = 1e-2f * (1.0f + 0.1f * step);
        double n_fast = adamw_step(&fast, p_fast, g_fast, lr);
        double n_ref = adamw_step_reference(&ref, p_ref, g_ref, lr);
        CHECKF(close_to(n_fast, n_ref, 1e-12, 0), "%s step %d: norm %.17g vs %.17g", what, step, n_fast, n_ref);
        if (clip > 0 && n_ref > clip) clipped_steps++;
        for (size_t i = 0; i < FR_N; i++) {
            double d = fabs((double)p_fast[i] - p_ref[i]) / (1.0 + fabs(p_ref[i]));
            if (d > worst) worst = d;
        }
    }
    CHECKF(worst < 1e-6, "%s: largest relative parameter difference %.3g", what, worst);
    double worst_m = 0, worst_v = 0;
    for (size_t i = 0; i < FR_N; i++) {
        /* m can cancel to near zero, so it is measured against the gradient scale sqrt(v) */
        double grad_scale = sqrt(fabs((double)ref.v[i])) + 1e-12;
        worst_m = fmax(worst_m, fabs((double)fast.m[i] - ref.m[i]) / grad_scale);
        worst_v = fmax(worst_v, fabs((double)fast.v[i] - ref.v[i]) / (1e-20 + fabs(ref.v[i])));
    }
    CHECKF(worst_m < 1e-6 && worst_v < 1e-5, "%s: moments differ: m %.3g v %.3g", what, worst_m, worst_v);
    CHECK(fast.t == 20 && ref.t == 20);
    if (clip > 0 && !per_group)
        CHECKF(clipped_steps > 0 && clipped_steps < 20, "%s: clipped %d of 20 steps", what, clipped_steps);
    /* frozen gaps untouched and identical */
    CHECK(memcmp(p_fast + 21000, p_ref + 21000, 4000 * sizeof(float)) == 0);
    adamw_free(&fast);
    adamw_free(&ref);
    free(p_fast), free(p_ref), free(g_fast), free(g_ref);
}

static void test_fast_matches_reference(void) {
    fast_vs_reference(0.0f, 0, "no clipping");
    fast_vs_reference(20.0f, 0, "global clipping");
    fast_vs_reference(1.0f, 1, "per-group clipping");
}

/* ---- clipping ---- */

/* Two steps: an ordinary gradient (below the clip), then a huge one. With clipping, the huge
 * gradient must act exactly as the same direction scaled to norm = clip. The first step gives
 * the moments a history, so that the gradient's scale matters (a lone first Adam step is
 * scale-invariant and would hide a missing clip). */
static void test_clipping_global(void) {
    enum { N = 64 };
    ParamRange all[] = {{0, N}};
    ParamGroup groups[] = {make_group("all", 1.0f, 0.0f, all, 1)};
    const float clip = 1.0f;
    float first[N], huge[N], prescaled[N];
    double huge_sq = 0;
    for (int i = 0; i < N; i++) {
        first[i] = 0.05f * rng_uniform();
        huge[i] = 1000.0f * rng_uniform();
        huge_sq += (double)huge[i] * huge[i];
    }
    double huge_norm = sqrt(huge_sq);
    for (int i = 0; i < N; i++) prescaled[i] = (float)(huge[i] * (clip / huge_norm));

    float p_huge[N], p_pre[N], p_noclip[N], g[N];
    for (int i = 0; i < N; i++) p_huge[i] = p_pre[i] = p_noclip[i] = rng_uniform();
    AdamW a, b, c;
    CHECK(adamw_init(&a, N, groups, 1, 0.9f, 0.999f, 1e-8f, clip, 0) == 0);
    CHECK(adamw_init(&b, N, groups, 1, 0.9f, 0.999f, 1e-8f, clip, 0) == 0);
    CHECK(adamw_init(&c, N, groups, 1, 0.9f, 0.999f, 1e-8f, 0.0f, 0) == 0);
    memcpy(g, first, sizeof g); adamw_step(&a, p_huge, g, 0.01f);
    memcpy(g, first, sizeof g); adamw_step(&b, p_pre, g, 0.01f);
    memcpy(g, first, sizeof g); adamw_step(&c, p_noclip, g, 0.01f);
    memcpy(g, huge, sizeof g);
    double returned = adamw_step(&a, p_huge, g, 0.01f);
    CHECKF(close_to(returned, huge_norm, 1e-9, 0), "returned norm %.9g, pre-clip norm %.9g", returned, huge_norm);
    memcpy(g, prescaled, sizeof g);
    double returned_pre = adamw_step(&b, p_pre, g, 0.01f);
    CHECK(close_to(returned_pre, clip, 1e-6, 0));
    memcpy(g, huge, sizeof g); adamw_step(&c, p_noclip, g, 0.01f);
    double diff_clip = 0, diff_noclip = 0;
    for (int i = 0; i < N; i++) {
        diff_clip = fmax(diff_clip, fabs((double)p_huge[i] - p_pre[i]));
        diff_noclip = fmax(diff_noclip, fabs((double)p_noclip[i] - p_pre[i]));
    }
    CHECKF(diff_clip < 1e-6, "clipped huge gradient differs from the prescaled one by %.3g", diff_clip);
    CHECKF(diff_noclip > 1e-3, "the test cannot see clipping: unclipped differs by only %.3g", diff_noclip);
    /* The reference reports the same pre-clip norm. */
    memcpy(g, huge, sizeof g);
    CHECK(close_to(adamw_step_reference(&c, p_noclip, g, 0.01f), huge_norm, 1e-12, 0));
    adamw_free(&a), adamw_free(&b), adamw_free(&c);
}

/* Per-group clipping: group B's update does not depend on group A's gradients being huge;
 * with global clipping it does (checked, so the test can see the difference). */
static void test_clipping_per_group(void) {
    enum { N = 40 };
    ParamRange ra[] = {{0, 20}}, rb[] = {{20, 20}};
    ParamGroup groups[] = {make_group("a", 1.0f, 0.0f, ra, 1), make_group("b", 1.0f, 0.0f, rb, 1)};
    float first[N], second_small[N], second_huge[N], start[N];
    for (int i = 0; i < N; i++) {
        start[i] = rng_uniform();
        first[i] = 0.1f * rng_uniform();
        second_small[i] = 0.1f * rng_uniform();
        second_huge[i] = i < 20 ? 1e4f * rng_uniform() : second_small[i];
    }
    double b_moves[2][2][N]; /* [per_group][huge] */
    double norms[2][2];
    for (int per_group = 0; per_group < 2; per_group++)
        for (int huge = 0; huge < 2; huge++) {
            AdamW opt;
            CHECK(adamw_init(&opt, N, groups, 2, 0.9f, 0.99f, 1e-8f, 0.5f, per_group) == 0);
            float p[N], g[N];
            memcpy(p, start, sizeof p);
            memcpy(g, first, sizeof g);
            adamw_step(&opt, p, g, 0.01f);
            memcpy(g, huge ? second_huge : second_small, sizeof g);
            norms[per_group][huge] = adamw_step(&opt, p, g, 0.01f);
            for (int i = 20; i < N; i++) b_moves[per_group][huge][i] = (double)p[i] - start[i];
            adamw_free(&opt);
        }
    double per_group_diff = 0, global_diff = 0;
    for (int i = 20; i < N; i++) {
        per_group_diff = fmax(per_group_diff, fabs(b_moves[1][1][i] - b_moves[1][0][i]));
        global_diff = fmax(global_diff, fabs(b_moves[0][1][i] - b_moves[0][0][i]));
    }
    CHECKF(per_group_diff == 0.0, "per-group: group b's update changed by %.3g", per_group_diff);
    CHECKF(global_diff > 1e-4, "global: group b's update changed by only %.3g", global_diff);
    /* the returned norm is the global one in both modes */
    CHECK(norms[0][1] == norms[1][1] && norms[1][1] > 1e4);
}

/* The clip factor against AdamW written out here in double: two groups (one with its own lr_mult
 * and decay) and a frozen tail; a first step below the clip, then gradients far above it in both
 * groups, which must act as g * clip / ||g|| (global) or g * clip / ||g_group|| (per group). The
 * first gradients are as large per element as the clipped ones, so the moments' history makes the
 * second step depend on the clipped scale (a lone Adam step would not). Fast and reference both;
 * and each against an unclipped optimizer fed the prescaled gradient. */
enum { CS_N = 48, CS_A = 16, CS_B = 24 };   /* group a [0, 16), group b [16, 40), frozen [40, 48) */

/* p after the two steps, by hand: scale[i] multiplies the second gradient of parameter i. */
static void two_steps_by_hand(const float *p0, const float *g1, const float *g2, const double *scale,
                              const double *lr_mult, const double *wd, double lr, double *out) {
    const double b1 = 0.9, b2 = 0.99, eps = 1e-8;
    for (int i = 0; i < CS_N; i++) {
        if (lr_mult[i] == 0) { out[i] = p0[i]; continue; }
        double m = (1 - b1) * g1[i], v = (1 - b2) * (double)g1[i] * g1[i];
        double p = p0[i] - lr * lr_mult[i] * ((m / (1 - b1)) / (sqrt(v / (1 - b2)) + eps) + wd[i] * p0[i]);
        double g = g2[i] * scale[i];
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        out[i] = p - lr * lr_mult[i] * ((m / (1 - b1 * b1)) / (sqrt(v / (1 - b2 * b2)) + eps) + wd[i] * p);
    }
}

static void test_clipping_scales_by_hand(void) {
    ParamRange ra[] = {{0, CS_A}}, rb[] = {{CS_A, CS_B}};
    ParamGroup groups[] = {make_group("a", 1.0f, 0.0f, ra, 1), make_group("b", 0.5f, 0.1f, rb, 1)};
    const float clip = 1.0f, lr = 0.01f;
    float p0[CS_N], g1[CS_N], g2[CS_N];
    double lr_mult[CS_N], wd[CS_N];
    for (int i = 0; i < CS_N; i++) {
        int in_a = i < CS_A, in_b = !in_a && i < CS_A + CS_B;
        p0[i] = rng_uniform();
        g1[i] = 0.2f * rng_uniform();
        g2[i] = (in_a ? 40.0f : 10.0f) * rng_uniform();
        if (!in_a && !in_b) g1[i] = g2[i] = 1e3f;   /* frozen: must count in no norm */
        lr_mult[i] = in_a ? 1.0 : in_b ? 0.5 : 0.0;
        wd[i] = in_b ? 0.1 : 0.0;
    }
    double sq1[2] = {0}, sq2[2] = {0};
    for (int i = 0; i < CS_A + CS_B; i++) {
        sq1[i >= CS_A] += (double)g1[i] * g1[i];
        sq2[i >= CS_A] += (double)g2[i] * g2[i];
    }
    const double norm_a = sqrt(sq2[0]), norm_b = sqrt(sq2[1]), norm = sqrt(sq2[0] + sq2[1]);
    /* the first step is below the clip in every mode, the second far above it in each group */
    CHECK(sqrt(sq1[0] + sq1[1]) < clip && norm_a > 10 * clip && norm_b > 10 * clip);

    for (int per_group = 0; per_group < 2; per_group++) {
        double scale[CS_N], wrong_scale[CS_N], want[CS_N], wrong[CS_N];
        float prescaled[CS_N];
        for (int i = 0; i < CS_N; i++) {
            double n = per_group ? (i < CS_A ? norm_a : norm_b) : norm;
            scale[i] = clip / n;
            wrong_scale[i] = clip / (n * n);
            prescaled[i] = (float)(g2[i] * scale[i]);
        }
        two_steps_by_hand(p0, g1, g2, scale, lr_mult, wd, lr, want);
        two_steps_by_hand(p0, g1, g2, wrong_scale, lr_mult, wd, lr, wrong);
        double visible = 0;
        for (int i = 0; i < CS_N; i++) visible = fmax(visible, fabs(want[i] - wrong[i]));
        CHECKF(visible > 1e-3, "the test cannot tell the clip by ||g|| from ||g||^2 (%.3g)", visible);

        for (int reference = 0; reference < 2; reference++) {
            const char *what = reference ? "reference" : "fast";
            AdamW clipped, plain;
            CHECK(adamw_init(&clipped, CS_N, groups, 2, 0.9f, 0.99f, 1e-8f, clip, per_group) == 0);
            CHECK(adamw_init(&plain, CS_N, groups, 2, 0.9f, 0.99f, 1e-8f, 0.0f, per_group) == 0);
            float p[CS_N], q[CS_N], g[CS_N];
            memcpy(p, p0, sizeof p);
            memcpy(q, p0, sizeof q);
            double (*step)(AdamW *, float *, float *, float) = reference ? adamw_step_reference : adamw_step;
            memcpy(g, g1, sizeof g), step(&clipped, p, g, lr);
            memcpy(g, g1, sizeof g), step(&plain, q, g, lr);
            memcpy(g, g2, sizeof g);
            double returned = step(&clipped, p, g, lr);
            CHECKF(close_to(returned, norm, 1e-9, 0), "%s, per_group %d: returned norm %.9g, want %.9g", what,
                   per_group, returned, norm);
            memcpy(g, prescaled, sizeof g), step(&plain, q, g, lr);
            double by_hand = 0, vs_plain = 0;
            for (int i = 0; i < CS_N; i++) {
                by_hand = fmax(by_hand, fabs(p[i] - want[i]));
                vs_plain = fmax(vs_plain, fabs((double)p[i] - q[i]));
            }
            CHECKF(by_hand < 2e-6, "%s, per_group %d: clipped step differs from the hand computation by %.3g", what,
                   per_group, by_hand);
            CHECKF(vs_plain < 2e-6, "%s, per_group %d: clipped step differs from the prescaled one by %.3g", what,
                   per_group, vs_plain);
            adamw_free(&clipped);
            adamw_free(&plain);
        }
    }
}

/* A non-finite gradient skips the whole update (params, moments and t unchanged) and the norm
 * says so. */
static void test_nonfinite_gradient_skips(void) {
    enum { N = 10 };
    ParamRange all[] = {{0, N - 1}};
    ParamGroup groups[] = {make_group("all", 1.0f, 0.1f, all, 1)};
    for (int ref = 0; ref < 2; ref++) {
        AdamW opt;
        CHECK(adamw_init(&opt, N, groups, 1, 0.9f, 0.999f, 1e-8f, 1.0f, 0) == 0);
        float p[N], g[N], before[N];
        for (int i = 0; i < N; i++) p[i] = before[i] = (float)i, g[i] = 1.0f;
        g[N - 1] = NAN; /* frozen: ignored */
        double n = ref ? adamw_step_reference(&opt, p, g, 0.1f) : adamw_step(&opt, p, g, 0.1f);
        CHECK(isfinite(n) && opt.t == 1);
        memcpy(before, p, sizeof p);
        float m3 = opt.m[3];
        g[3] = NAN;
        n = ref ? adamw_step_reference(&opt, p, g, 0.1f) : adamw_step(&opt, p, g, 0.1f);
        CHECK(isnan(n));
        CHECK(opt.t == 1 && opt.m[3] == m3);
        CHECK(memcmp(p, before, sizeof p) == 0);
        g[3] = INFINITY;
        n = ref ? adamw_step_reference(&opt, p, g, 0.1f) : adamw_step(&opt, p, g, 0.1f);
        CHECK(isinf(n) && opt.t == 1 && memcmp(p, before, sizeof p) == 0);
        adamw_free(&opt);
    }
}

/* ---- weight decay by group, frozen parameters ---- */

static void test_weight_decay_and_frozen(void) {
    enum { N = 30 };
    ParamRange rd[] = {{0, 5}, {20, 5}}, rn[] = {{5, 5}};
    ParamGroup groups[] = {make_group("decay", 1.0f, 0.2f, rd, 2), make_group("no_decay", 1.0f, 0.0f, rn, 1)};
    AdamW opt;
    CHECK(adamw_init(&opt, N, groups, 2, 0.9f, 0.999f, 1e-8f, 0.0f, 0) == 0);
    float p[N], g[N], start[N];
    for (int i = 0; i < N; i++) {
        p[i] = start[i] = 1.0f + rng_uniform();
        g[i] = 0.0f;
    }
    for (int i = 10; i < 20; i++) g[i] = 5.0f * rng_uniform(); /* frozen, with gradients */
    for (int i = 25; i < 30; i++) g[i] = NAN;                  /* frozen, with garbage */
    const float lr = 0.05f;
    for (int step = 0; step < 3; step++) {
        float before[N];
        memcpy(before, p, sizeof p);
        double n = adamw_step(&opt, p, g, lr);
        CHECK(n == 0.0);
        for (int i = 0; i < N; i++) {
            int decayed = i < 5 || (i >= 20 && i < 25);
            double want = decayed ? before[i] - (double)lr * 0.2 * before[i] : before[i];
            CHECKF(close_to(p[i], want, 1e-6, 0), "step %d p[%d] = %.9g want %.9g", step, i, p[i], want);
        }
    }
    for (int i = 5; i < 20; i++) CHECK(p[i] == start[i]);
    for (int i = 25; i < 30; i++) CHECK(p[i] == start[i]);
    adamw_free(&opt);
}

/* ---- convergence ---- */

/* 1000 steps on sum (p - target)^2 with warmup + cosine decay reach the targets within 1e-3. */
static void test_minimises_quadratic(void) {
    enum { N = 16 };
    ParamRange all[] = {{0, N}};
    ParamGroup groups[] = {make_group("all", 1.0f, 0.0f, all, 1)};
    AdamW opt;
    CHECK(adamw_init(&opt, N, groups, 1, 0.9f, 0.999f, 1e-8f, 1.0f, 0) == 0);
    LrSchedule sched = {LR_COSINE, 0.05f, 1e-5f, 20, 1000};
    float p[N], g[N], target[N];
    for (int i = 0; i < N; i++) {
        target[i] = 2.0f * rng_uniform();
        p[i] = 0.0f;
    }
    for (long step = 0; step < 1000; step++) {
        for (int i = 0; i < N; i++) g[i] = 2.0f * (p[i] - target[i]);
        adamw_step(&opt, p, g, lr_at(&sched, step));
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs((double)p[i] - target[i]));
    CHECKF(worst < 1e-3, "largest distance to the target %.3g", worst);
    adamw_free(&opt);
}

/* ---- errors ---- */

static void expect_init_error(size_t n, const ParamGroup *groups, int n_groups, float b1, float b2, float eps,
                              float clip, const char *needle) {
    AdamW opt;
    tr_clear_error();
    int rc = adamw_init(&opt, n, groups, n_groups, b1, b2, eps, clip, 0);
    CHECKF(rc == -1, "expected failure (%s)", needle);
    CHECKF(strstr(tr_error(), needle) != NULL, "error \"%s\" lacks \"%s\"", tr_error(), needle);
    CHECK(opt.m == NULL && opt.groups == NULL);
    adamw_free(&opt); /* safe after a failure */
}

static void test_errors(void) {
    ParamRange ok_a[] = {{0, 10}, {20, 5}}, ok_b[] = {{10, 10}};
    ParamGroup good[] = {make_group("a", 1.0f, 0.1f, ok_a, 2), make_group("b", 1.0f, 0.0f, ok_b, 1)};
    AdamW opt;
    CHECK(adamw_init(&opt, 25, good, 2, 0.9f, 0.95f, 1e-8f, 1.0f, 1) == 0);
    /* a deep copy: the caller's arrays may change afterwards */
    ok_a[0].start = 99;
    CHECK(opt.groups[0].ranges[0].start == 0 && opt.groups[0].ranges != ok_a && strcmp(opt.groups[1].name, "b") == 0);
    ok_a[0].start = 0;
    adamw_free(&opt);
    CHECK(opt.m == NULL);
    /* touching ranges are fine, an empty range anywhere is fine */
    ParamRange touching[] = {{0, 5}, {5, 5}, {7, 0}};
    ParamGroup t1[] = {make_group("t", 1.0f, 0.0f, touching, 3)};
    CHECK(adamw_init(&opt, 10, t1, 1, 0.9f, 0.95f, 1e-8f, 0.0f, 0) == 0);
    adamw_free(&opt);

    ParamRange overlap_self[] = {{0, 10}, {9, 3}};
    ParamGroup o1[] = {make_group("self", 1.0f, 0.0f, overlap_self, 2)};
    expect_init_error(100, o1, 1, 0.9f, 0.95f, 1e-8f, 0.0f, "overlaps");
    ParamRange oa[] = {{50, 10}}, ob[] = {{0, 5}, {40, 11}};
    ParamGroup o2[] = {make_group("first", 1.0f, 0.0f, oa, 1), make_group("second", 1.0f, 0.0f, ob, 2)};
    expect_init_error(100, o2, 2, 0.9f, 0.95f, 1e-8f, 0.0f, "overlaps");
    ParamRange same[] = {{3, 1}, {3, 1}};
    ParamGroup o3[] = {make_group("same", 1.0f, 0.0f, same, 2)};
    expect_init_error(100, o3, 1, 0.9f, 0.95f, 1e-8f, 0.0f, "overlaps");

    ParamRange past_end[] = {{95, 6}};
    ParamGroup e1[] = {make_group("end", 1.0f, 0.0f, past_end, 1)};
    expect_init_error(100, e1, 1, 0.9f, 0.95f, 1e-8f, 0.0f, "outside");
    ParamRange wraps[] = {{10, SIZE_MAX - 5}};
    ParamGroup e2[] = {make_group("wrap", 1.0f, 0.0f, wraps, 1)};
    expect_init_error(100, e2, 1, 0.9f, 0.95f, 1e-8f, 0.0f, "outside");

    expect_init_error(25, good, 2, 1.0f, 0.95f, 1e-8f, 0.0f, "beta1");
    expect_init_error(25, good, 2, -0.1f, 0.95f, 1e-8f, 0.0f, "beta1");
    expect_init_error(25, good, 2, 0.9f, NAN, 1e-8f, 0.0f, "beta2");
    expect_init_error(25, good, 2, 0.9f, 1.5f, 1e-8f, 0.0f, "beta2");
    expect_init_error(25, good, 2, 0.9f, 0.95f, 0.0f, 0.0f, "eps");
    expect_init_error(25, good, 2, 0.9f, 0.95f, 1e-8f, -1.0f, "grad_clip");
    ParamGroup bad_mult[] = {make_group("m", -1.0f, 0.0f, ok_b, 1)};
    expect_init_error(25, bad_mult, 1, 0.9f, 0.95f, 1e-8f, 0.0f, "lr_mult");
    ParamGroup bad_wd[] = {make_group("w", 1.0f, -0.1f, ok_b, 1)};
    expect_init_error(25, bad_wd, 1, 0.9f, 0.95f, 1e-8f, 0.0f, "weight_decay");
    ParamGroup bad_n[] = {make_group("n", 1.0f, 0.0f, ok_b, -1)};
    expect_init_error(25, bad_n, 1, 0.9f, 0.95f, 1e-8f, 0.0f, "range list");
}

/* ---- schedule ---- */

static void test_lr_schedule(void) {
    LrSchedule cos_s = {LR_COSINE, 1e-3f, 1e-4f, 10, 111}; /* decay over steps 10..110 */
    CHECK(close_to(lr_at(&cos_s, 0), 1e-4, 1e-6, 0));     /* lr / warmup */
    CHECK(close_to(lr_at(&cos_s, 4), 5e-4, 1e-6, 0));
    CHECK(close_to(lr_at(&cos_s, 9), 1e-3, 1e-6, 0));     /* last warmup step reaches the peak */
    CHECK(close_to(lr_at(&cos_s, 10), 1e-3, 1e-6, 0));    /* cosine starts at the peak */
    CHECK(close_to(lr_at(&cos_s, 60), 5.5e-4, 1e-6, 0));  /* midpoint (lr + min_lr) / 2 */
    CHECK(close_to(lr_at(&cos_s, 110), 1e-4, 1e-6, 0));   /* the last step: min_lr */
    CHECK(close_to(lr_at(&cos_s, 500), 1e-4, 1e-6, 0));   /* clamped afterwards */
    CHECK(lr_at(&cos_s, 35) > lr_at(&cos_s, 36));         /* decreasing */
    double quarter = 1e-4 + 0.9e-3 * 0.5 * (1.0 + cos(3.14159265358979323846 * 0.25));
    CHECK(close_to(lr_at(&cos_s, 35), quarter, 1e-6, 0));

    LrSchedule const_s = {LR_CONSTANT, 3e-4f, 0.0f, 4, 100};
    CHECK(close_to(lr_at(&const_s, 0), 0.75e-4, 1e-6, 0));
    CHECK(close_to(lr_at(&const_s, 3), 3e-4, 1e-6, 0));
    CHECK(lr_at(&const_s, 4) == 3e-4f && lr_at(&const_s, 99) == 3e-4f && lr_at(&const_s, 10000) == 3e-4f);

    LrSchedule no_warmup = {LR_COSINE, 1.0f, 0.0f, 0, 3};
    CHECK(lr_at(&no_warmup, 0) == 1.0f);
    CHECK(close_to(lr_at(&no_warmup, 1), 0.5, 1e-6, 0));
    CHECK(close_to(lr_at(&no_warmup, 2), 0.0, 0, 1e-7));
    LrSchedule no_room = {LR_COSINE, 1.0f, 0.1f, 5, 5}; /* warmup takes every step: ends at min_lr */
    CHECK(close_to(lr_at(&no_room, 4), 1.0, 1e-6, 0));
    CHECK(close_to(lr_at(&no_room, 5), 0.1, 1e-6, 0));
}

/* ---- determinism across thread counts ---- */

#ifdef _OPENMP
/* Runs 10 clipped steps with `threads` OpenMP threads (FR_N spans several chunks of the fast path). */
static void run_threads(int threads, int per_group, float *p, double *norms) {
    omp_set_num_threads(threads);
    AdamW opt;
    init_three_groups(&opt, 2.0f, per_group);
    float *g = xmalloc(FR_N * sizeof(float));
    rng_state = 1234;
    for (size_t i = 0; i < FR_N; i++) p[i] = rng_uniform();
    for (int step = 0; step < 10; step++) {
        random_grads(g, step);
        norms[step] = adamw_step(&opt, p, g, 1e-2f);
    }
    free(g);
    adamw_free(&opt);
}
#endif

static void test_threads_bit_identical(void) {
#ifndef _OPENMP
    SKIP("built without OpenMP");
#else
    int saved = omp_get_max_threads();
    for (int per_group = 0; per_group < 2; per_group++) {
        float *p1 = xmalloc(FR_N * sizeof(float)), *p2 = xmalloc(FR_N * sizeof(float));
        float *p3 = xmalloc(FR_N * sizeof(float));
        double n1[10], n2[10], n3[10];
        run_threads(1, per_group, p1, n1);
        run_threads(2, per_group, p2, n2);
        run_threads(3, per_group, p3, n3);
        CHECKF(memcmp(n1, n2, sizeof n1) == 0 && memcmp(n1, n3, sizeof n1) == 0,
               "per_group %d: norms differ by thread count", per_group);
        CHECKF(memcmp(p1, p2, FR_N * sizeof(float)) == 0 && memcmp(p1, p3, FR_N * sizeof(float)) == 0,
               "per_group %d: parameters differ by thread count", per_group);
        free(p1), free(p2), free(p3);
    }
    omp_set_num_threads(saved);
#endif
}

int main(void) {
    RUN(test_steps_by_hand);
    RUN(test_fast_matches_reference);
    RUN(test_clipping_global);
    RUN(test_clipping_per_group);
    RUN(test_clipping_scales_by_hand);
    RUN(test_nonfinite_gradient_skips);
    RUN(test_weight_decay_and_frozen);
    RUN(test_minimises_quadratic);
    RUN(test_errors);
    RUN(test_lr_schedule);
    RUN(test_threads_bit_identical);
    return test_summary();
}
