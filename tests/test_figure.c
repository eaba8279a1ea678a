/* test_figure.c: the teaching figures (scripts/figure_posenc.c, scripts/figure_model.c, and the
 * plot options they use in scripts/report_plot.c) against numbers computed here another way:
 *   - the decay bound of RoPE from its formula, theta_k = 10000^(-2k/hs), in double;
 *   - the angle each pair has turned, p * theta_j for RoPE and p * theta_{j+1} / 512 for the
 *     author's xPos (docs/posenc.md §3.3);
 *   - HDD-RoPE's per-token step angle, read by the figure from the saved P_t, against |g_t| of
 *     each c = 2 chunk computed from the generator columns (a plane rotation by g turns by |g|);
 *   - PNGs: the right pixels where the data is, and plot's --minus equal to plotting the
 *     differences themselves;
 *   - the figure command's bad input: one error line, exit status 1. */
#include <math.h>
#include <stdint.h>

#include <stb/stb_image.h>  /* Debian's libstb holds the decoder too */

#include "model/gpt.h"
#include "model/posenc_hddrope.h"
#include "scripts/figure_model.h"
#include "scripts/figure_posenc.h"
#include "scripts/report_plot.h"
#include "tests/cli_test_helpers.h"

static double rope_bound(int hs, int m) {
    double sre = 0, sim = 0, total = 0;
    for (int j = 0; j < hs / 2; j++) {
        double theta = pow(10000.0, -2.0 * j / hs);
        sre += cos(m * theta);
        sim += sin(m * theta);
        total += hypot(sre, sim);
    }
    return total * 2.0 / hs;
}

static void test_decay_bound_of_rope_and_none(void) {
    const int hs = 48, n = 1001;
    float *q, *k;
    CHECK(figure_rotated_ones("{\"kind\": \"rope\"}", hs, n, &q, &k) == n);
    double *bound = xmalloc(n * sizeof *bound);
    figure_decay_bound(q, k, n, hs, bound);
    const int at[] = {0, 1, 7, 100, 1000};
    for (int i = 0; i < 5; i++) {
        double want = rope_bound(hs, at[i]);
        CHECKF(fabs(bound[at[i]] - want) < 2e-4 * want, "rope bound at %d: %.6f, formula %.6f", at[i], bound[at[i]], want);
    }
    CHECKF(fabs(bound[0] - (hs / 2 + 1) / 2.0) < 1e-5, "bound at 0: %.6f", bound[0]);
    free(q);
    free(k);
    /* NoPE turns nothing: the bound stays at its value at distance 0. */
    CHECK(figure_rotated_ones("{\"kind\": \"none\"}", hs, 100, &q, &k) == 100);
    figure_decay_bound(q, k, 100, hs, bound);
    CHECKF(fabs(bound[99] - bound[0]) < 1e-9 && fabs(bound[0] - 12.5) < 1e-9, "none: %.6f .. %.6f", bound[0], bound[99]);
    free(q);
    free(k);
    /* The author's xPos has 2048 positions: the figure stops there rather than fail. */
    CHECK(figure_rotated_ones("{\"kind\": \"xpos\", \"variant\": \"author\"}", hs, 5000, &q, &k) == 2048);
    free(q);
    free(k);
    free(bound);
}

static void test_pair_angles(void) {
    const int hs = 48, n = 600;
    float *q, *k;
    double *angle = xmalloc((size_t)n * (hs / 2) * sizeof *angle);
    CHECK(figure_rotated_ones("{\"kind\": \"rope\"}", hs, n, &q, &k) == n);
    figure_pair_angles(q, n, hs, angle);
    const int pos[] = {0, 1, 3, 250, 599}, pairs[] = {0, 1, 5, 23};
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 4; b++) {
            double want = pos[a] * pow(10000.0, -2.0 * pairs[b] / hs), got = angle[(size_t)pos[a] * (hs / 2) + pairs[b]];
            CHECKF(fabs(got - want) < 1e-4 * (1 + want), "rope pair %d at %d: %.6f, want %.6f", pairs[b], pos[a], got, want);
        }
    free(q);
    free(k);
    CHECK(figure_rotated_ones("{\"kind\": \"xpos\", \"variant\": \"author\"}", hs, n, &q, &k) == n);
    figure_pair_angles(q, n, hs, angle);
    for (int b = 0; b < 4; b++) {
        double want = pow(10000.0, -2.0 * (pairs[b] + 1) / hs);  /* theta_{j+1} per 512 tokens, at 512 */
        double got = angle[(size_t)512 * (hs / 2) + pairs[b]];
        CHECKF(fabs(got - want) < 1e-4 * (1 + want), "author pair %d at 512: %.7f, want %.7f", pairs[b], got, want);
    }
    free(q);
    free(k);
    free(angle);
}

static void test_hdd_step_angles_equal_generator_size(void) {
    const int C = 8, NH = 2, T = 12;
    GPTConfig cfg = {.V = 16, .L = 2, .C = C, .NH = NH, .max_T = T};
    cJSON *pe = cJSON_Parse("{\"kind\": \"hddrope\", \"chunk\": 2}");
    GPT model;
    CHECK(gpt_build(&model, &cfg, pe, 7) == 0);
    cJSON_Delete(pe);
    const Hdd *d = model.posenc.impl;
    const int G = d->G, S = model.S;
    /* Generators of either sign, below pi in size: g_base in [-1, 1] and W_g rows of 0.1 scale. */
    uint64_t r = 12345;
    for (int l = 0; l < cfg.L; l++) {
        for (int a = 0; a < G; a++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            model.posenc_params[l * G + a] = (float)((r >> 40) / (double)(1 << 24) * 2 - 1);
            for (int c = 0; c < C; c++) {
                r = r * 6364136223846793005ULL + 1442695040888963407ULL;
                model.params.qkvw[((size_t)l * S + 3 * C + a) * C + c] = (float)((r >> 40) / (double)(1 << 24) - 0.5) * 0.2f;
            }
        }
    }
    int32_t tokens[12];
    for (int t = 0; t < T; t++) tokens[t] = (t * 5 + 3) % cfg.V;
    CHECK(gpt_forward(&model, tokens, NULL, 1, T) == 0);
    double angle[2 * 12];
    figure_hdd_step_angles(&model, T, angle);
    double worst = 0;
    for (int l = 0; l < cfg.L; l++)
        for (int t = 0; t < T; t++) {
            double want = 0;
            for (int a = 0; a < G; a++)
                want += fabs(model.posenc_params[l * G + a] + model.acts.qkv[((size_t)l * T + t) * S + 3 * C + a]);
            want /= G;
            worst = fmax(worst, fabs(angle[l * T + t] - want));
        }
    CHECKF(worst < 1e-4, "step angle differs from the mean |g| by %g", worst);
    gpt_free(&model);
}

static int is_colour(const unsigned char *p, const unsigned char c[3]) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }

static void test_attention_and_motion_pngs(void) {
    enum { L = 2, NH = 3, n = 8 };
    float att[L * NH * n * n] = {0};
    /* Layer 1, head 2: every query attends to key 0 alone. */
    for (int i = 0; i < n; i++) att[((1 * NH + 2) * n + i) * n + 0] = 1.0f;
    char names[n][16], *labels[n];
    for (int t = 0; t < n; t++) snprintf(names[t], sizeof names[t], "tok%d", t), labels[t] = names[t];
    char out[600];
    snprintf(out, sizeof out, "%s/attention.png", test_tmp_dir());
    CHECK(figure_attention_png(att, L, NH, n, labels, out) == 0);
    int w, h, ch;
    unsigned char *img = stbi_load(out, &w, &h, &ch, 3);
    CHECK(img != NULL);
    if (img) {
        /* The layout of figure_attention_png: cells of 12 px from (100, 64), panels 96 + 18 apart. */
        const int cell = 12, step = n * cell + 18;
        const unsigned char blue[3] = {0, 114, 178}, white[3] = {255, 255, 255}, masked[3] = {238, 238, 238};
        for (int i = 0; i < n; i++) {
            int y = 64 + step + i * cell + cell / 2;
            CHECKF(is_colour(img + 3 * ((size_t)y * w + 100 + 2 * step + cell / 2), blue), "query %d, key 0 not full", i);
            if (i > 0) CHECK(is_colour(img + 3 * ((size_t)y * w + 100 + 2 * step + cell + cell / 2), white));
            if (i < n - 1) CHECK(is_colour(img + 3 * ((size_t)y * w + 100 + 2 * step + (n - 1) * cell + cell / 2), masked));
        }
        stbi_image_free(img);
    }
    double angle[2 * n];
    for (int i = 0; i < 2 * n; i++) angle[i] = 1.0 + 0.01 * i;
    angle[3] = 5.0;   /* layer 0's largest: full colour */
    snprintf(out, sizeof out, "%s/motion.png", test_tmp_dir());
    CHECK(figure_motion_png(angle, 2, n, labels, out) == 0);
    img = stbi_load(out, &w, &h, &ch, 3);
    CHECK(img != NULL);
    if (img) {
        /* Strips of 34 px from (100, 56), cells 18 px wide. */
        const unsigned char full[3] = {213, 94, 0}, white[3] = {255, 255, 255};
        CHECK(is_colour(img + 3 * ((size_t)(56 + 17) * w + 100 + 3 * 18 + 9), full));
        CHECK(is_colour(img + 3 * ((size_t)(56 + 17) * w + 100 + 0 * 18 + 9), white));
        CHECK(is_colour(img + 3 * ((size_t)(56 + 38 + 17) * w + 100 + 7 * 18 + 9), full));
        stbi_image_free(img);
    }
}

static const char *csv_fixture(const char *name, double offset, int sine) {
    static char paths[4][600];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 600, "%s/%s.csv", test_tmp_dir(), name);
    FILE *f = fopen(p, "w");
    fprintf(f, "position,loss\n");
    for (int i = 0; i < 40; i++) fprintf(f, "%d,%.9g\n", i, offset + (sine ? sin(i * 0.3) : 0));
    fclose(f);
    return p;
}

/* The figure of series base=a and other=b; area (may be NULL) gets the plot area. */
static unsigned char *render_area(const PlotOptions *o, const char *a, const char *b, int area[4]) {
    char sa[700], sb[700];
    snprintf(sa, sizeof sa, "base=%s", a);
    snprintf(sb, sizeof sb, "other=%s", b);
    Series s[2];
    unsigned char *rgb = NULL;
    if (series_load(sa, &s[0]) == 0 && series_load(sb, &s[1]) == 0) plot_render(o, s, 2, &rgb, area);
    series_free(&s[0]);
    series_free(&s[1]);
    return rgb;
}

static unsigned char *render(const PlotOptions *o, const char *a, const char *b) { return render_area(o, a, b, NULL); }

/* Coloured (not grey or white) pixels of the image right of column x0. */
static long coloured_right_of(const unsigned char *rgb, int w, int h, int x0) {
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = x0; x < w; x++) {
            const unsigned char *p = rgb + 3 * ((size_t)y * w + x);
            n += p[0] != p[1] || p[1] != p[2];
        }
    return n;
}

static void test_plot_minus_mark_and_legend(void) {
    PlotOptions o;
    plot_default_options(&o);
    o.xcol = "position";
    o.ycol = "loss";
    o.legend_right = 1;
    /* base = sin, other = sin + 1, minus base  ==  base = 0, other = 1 plotted as they are. */
    o.minus = "base";
    unsigned char *diff = render(&o, csv_fixture("sine", 3, 1), csv_fixture("sine1", 4, 1));
    o.minus = NULL;
    unsigned char *direct = render(&o, csv_fixture("zero", 0, 0), csv_fixture("one", 1, 0));
    CHECK(diff && direct);
    if (diff && direct) CHECK(memcmp(diff, direct, (size_t)o.width * o.height * 3) == 0);
    /* The mark changes a narrow column and its label only. */
    o.mark_x = 20;
    o.mark_label = "L";
    unsigned char *marked = render(&o, csv_fixture("zero", 0, 0), csv_fixture("one", 1, 0));
    int xmin = o.width, xmax = -1;
    for (int y = 0; marked && direct && y < o.height; y++)
        for (int x = 0; x < o.width; x++)
            if (memcmp(marked + 3 * ((size_t)y * o.width + x), direct + 3 * ((size_t)y * o.width + x), 3))
                xmin = x < xmin ? x : xmin, xmax = x > xmax ? x : xmax;
    CHECKF(xmax >= xmin && xmax - xmin < 40, "the mark changed columns %d..%d", xmin, xmax);
    free(diff);
    free(direct);
    free(marked);
    /* The legend right of the plot area: the area gives up its width, and the swatches are there;
     * inside (the default) the area keeps the width and nothing is drawn right of it. */
    int area[4];
    o.mark_x = NAN;
    o.minus = NULL;
    unsigned char *right = render_area(&o, csv_fixture("zero", 0, 0), csv_fixture("one", 1, 0), area);
    CHECK(right && area[2] < o.width - 100 && coloured_right_of(right, o.width, o.height, area[2] + 1) > 0);
    free(right);
    o.legend_right = 0;
    unsigned char *inside = render_area(&o, csv_fixture("zero", 0, 0), csv_fixture("one", 1, 0), area);
    CHECK(inside && area[2] == o.width - 30 && coloured_right_of(inside, o.width, o.height, area[2] + 1) == 0);
    free(inside);
    /* --minus with a label no series has, or with other positions, is an error naming them. */
    o.mark_x = NAN;
    o.minus = "nobody";
    CHECK(render(&o, csv_fixture("zero", 0, 0), csv_fixture("one", 1, 0)) == NULL);
    CHECK(strstr(tr_error(), "nobody") != NULL);
}

/* The two checkpoint figures end to end, on a few steps of configs/tiny.json with dynamic
 * HDD-RoPE (2 layers, 4 heads): the PNGs have the layout's size and the CSVs every row. */
static void test_figures_of_a_checkpoint(void) {
    const char *bin = cli_tool_bin("figure");
    if (!bin) SKIP("the figure tool is not built beside the trainer");
    char run[256], args[1024], png[320], csv[320];
    snprintf(run, sizeof run, "%s/fig_run", test_tmp_dir());
    snprintf(args, sizeof args,
             "run configs/tiny.json --set out_dir=%s --set 'model.posenc={\"kind\":\"hddrope\",\"chunk\":4}' "
             "--set train.max_steps=4 --set train.eval_every=4 --set train.eval_max_tokens=256 --set train.sample_tokens=0",
             run);
    int rc = run_train(args);
    CHECKF(rc == 0, "training: %s", err_buf);
    if (rc != 0) return;
    snprintf(png, sizeof png, "%s/att.png", test_tmp_dir());
    snprintf(csv, sizeof csv, "%s/att.csv", test_tmp_dir());
    snprintf(args, sizeof args, "attention %s --out %s --csv %s --tokens 16", run, png, csv);
    CHECKF(run_program(bin, args) == 0, "figure attention: %s", err_buf);
    int w = 0, h = 0, ch;
    unsigned char *img = stbi_load(png, &w, &h, &ch, 3);
    /* cells of 12 px: panels of 192, 4 heads 210 apart from x = 100, and 10 px to spare */
    CHECKF(img && w == 100 + 4 * 210 + 10 && h > 64 + 2 * 210, "attention PNG %d x %d", w, h);
    stbi_image_free(img);
    char *text = tr_read_file(csv, NULL);
    int rows = 0;
    for (char *p = text; p && *p; p++) rows += *p == '\n';
    CHECKF(rows == 1 + 2 * 4 * (16 * 17 / 2), "attention CSV: %d lines", rows);
    free(text);
    snprintf(png, sizeof png, "%s/motion.png", test_tmp_dir());
    snprintf(csv, sizeof csv, "%s/motion.csv", test_tmp_dir());
    snprintf(args, sizeof args, "motion %s --out %s --csv %s --tokens 16", run, png, csv);
    CHECKF(run_program(bin, args) == 0, "figure motion: %s", err_buf);
    img = stbi_load(png, &w, &h, &ch, 3);
    CHECKF(img && w == 100 + 16 * 18 + 190, "motion PNG %d x %d", w, h);
    stbi_image_free(img);
    text = tr_read_file(csv, NULL);
    rows = 0;
    int positive = 0;
    for (char *line = text ? strchr(text, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n')) {
        int l, t, tok;
        double angle;
        rows++;
        positive += sscanf(line + 1, "%d,%d,%d,%lf", &l, &t, &tok, &angle) == 4 && angle > 0 && angle < 3.1416;
    }
    CHECKF(positive == rows, "%d of %d angles in (0, pi)", positive, rows);
    CHECKF(rows == 2 * 16, "motion CSV: %d rows", rows);
    free(text);
    /* A run that is not HDD-RoPE has no motion to show: one error line. */
    snprintf(args, sizeof args, "run configs/tiny.json --set out_dir=%s_rope --set train.max_steps=2 "
             "--set train.eval_every=2 --set train.eval_max_tokens=256 --set train.sample_tokens=0", run);
    CHECK(run_train(args) == 0);
    snprintf(args, sizeof args, "motion %s_rope --out %s", run, png);
    CHECKF(run_program(bin, args) == 1 && one_error_line() && strstr(err_buf, "rope"), "%s", err_buf);
}

static void test_figure_command_errors(void) {
    const char *bin = cli_tool_bin("figure");
    if (!bin) SKIP("the figure tool is not built beside the trainer");
    const char *cases[][2] = {
        {"shapes --out x", "unknown figure"},
        {"decay", "--out"},
        {"decay --out /tmp --head-size 6", "multiple of 4"},
        {"attention --out x.png", "run directory"},
        {"attention /nonexistent/run --out x.png", "/nonexistent/run"},
        {"decay --out /tmp --max-distance 0", "--max-distance"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = run_program(bin, cases[i][0]);
        CHECKF(rc == 1 && one_error_line() && strstr(err_buf, cases[i][1]), "figure %s: rc %d, stderr: %s", cases[i][0],
               rc, err_buf);
    }
}

int main(void) {
    RUN(test_decay_bound_of_rope_and_none);
    RUN(test_pair_angles);
    RUN(test_hdd_step_angles_equal_generator_size);
    RUN(test_attention_and_motion_pngs);
    RUN(test_plot_minus_mark_and_legend);
    RUN(test_figures_of_a_checkpoint);
    RUN(test_figure_command_errors);
    return test_summary();
}
