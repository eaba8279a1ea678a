/* figure_model.c: attention maps and HDD-RoPE's per-token motion from a trained model
 * (see figure_model.h). */
#include "scripts/figure_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"
#include "cli/run_dir.h"
#include "cli/task_run.h"
#include "data/loader.h"
#include "model/posenc_hddrope.h"
#include "scripts/report_plot.h"

static const unsigned char BLACK[3] = {0, 0, 0}, MASKED[3] = {238, 238, 238};
static const unsigned char BLUE[3] = {0, 114, 178}, VERMILLION[3] = {213, 94, 0};

void figure_hdd_step_angles(const GPT *model, int n, double *angle) {
    const PosEnc *pe = &model->posenc;
    const Hdd *d = pe->impl;
    const int c = d->c;
    float buf[2][HDD_MAX_C * HDD_MAX_C];
    for (int l = 0; l < model->config.L; l++) {
        double *row = angle + (size_t)l * n;
        for (int t = 0; t < n; t++) row[t] = 0;
        /* along each chunk's scan, P_{t-1} is the previous step's P_t */
        for (int h = 0; h < d->NH; h++)
            for (int j = 0; j < d->nc; j++) {
                float *prev = buf[0], *P = buf[1];
                for (int i = 0; i < c * c; i++) prev[i] = (i % (c + 1) == 0);  /* P_{-1} = I */
                for (int t = 0; t < n; t++) {
                    hddrope_saved_P(pe, model->posenc_acts, l, 1, n, 0, t, h, j, P);
                    double f2 = 0;  /* ||P_{t-1}^T P_t - I||_F^2 */
                    for (int r = 0; r < c; r++)
                        for (int k = 0; k < c; k++) {
                            double m = -(double)(r == k);
                            for (int i = 0; i < c; i++) m += (double)prev[i * c + r] * P[i * c + k];
                            f2 += m * m;
                        }
                    row[t] += 2 * asin(fmin(1.0, sqrt(f2 / 8)));
                    float *swap = prev;
                    prev = P;
                    P = swap;
                }
            }
        for (int t = 0; t < n; t++) row[t] /= d->NH * d->nc;
    }
}

void figure_heat_colour(double v, const unsigned char full[3], unsigned char rgb[3]) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    for (int k = 0; k < 3; k++) rgb[k] = (unsigned char)lround(255 + (full[k] - 255.0) * v);
}

/* A blank white image; the caller frees. */
static unsigned char *blank(int w, int h) {
    unsigned char *rgb = xmalloc((size_t)w * h * 3);
    memset(rgb, 255, (size_t)w * h * 3);
    return rgb;
}

/* Writes the labels as "t:text" items in lines no wider than width from (x, y); returns the y
 * after the last line (or, with draw = 0, only measures). */
static int label_list(unsigned char *rgb, int w, int h, int x, int y, int width, char *const *labels, int n, int draw) {
    const int line = plot_text_height() + 8;
    int cx = x;
    for (int t = 0; t < n; t++) {
        char item[64];
        snprintf(item, sizeof item, "%d:%s  ", t, labels[t]);
        int iw = plot_text_width(item);
        if (cx > x && cx + iw > x + width) {
            cx = x;
            y += line;
        }
        if (draw) plot_draw_text(rgb, w, h, cx, y, item, BLACK, 0);
        cx += iw;
    }
    return y + line;
}

int figure_attention_png(const float *att, int L, int NH, int n, char *const *labels, const char *out) {
    const int cell = n >= 120 ? 2 : 240 / n > 12 ? 12 : 240 / n;
    const int panel = n * cell, gap = 18, left = 100, top = 64;
    const int w = left + NH * (panel + gap) + 10;
    const int grid_h = top + L * (panel + gap);
    const int h = label_list(NULL, 0, 0, 20, grid_h + 10, w - 40, labels, n, 0) + 10;
    unsigned char *rgb = blank(w, h);
    plot_draw_text(rgb, w, h, 20, 12, "attention probabilities (colour: square root), row = query, column = key", BLACK, 0);
    for (int hd = 0; hd < NH; hd++) {
        char s[32];
        snprintf(s, sizeof s, "head %d", hd);
        plot_draw_text(rgb, w, h, left + hd * (panel + gap), top - 22, s, BLACK, 0);
    }
    for (int l = 0; l < L; l++) {
        char s[32];
        snprintf(s, sizeof s, "layer %d", l);
        int y0 = top + l * (panel + gap);
        plot_draw_text(rgb, w, h, 16, y0 + panel / 2 - plot_text_height() / 2, s, BLACK, 0);
        for (int hd = 0; hd < NH; hd++) {
            int x0 = left + hd * (panel + gap);
            const float *a = att + ((size_t)l * NH + hd) * n * n;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    unsigned char col[3];
                    if (j > i) memcpy(col, MASKED, 3);
                    else figure_heat_colour(sqrt(fmax(0.0, a[(size_t)i * n + j])), BLUE, col);
                    plot_fill_rect(rgb, w, h, x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell, y0 + (i + 1) * cell, col);
                }
        }
    }
    label_list(rgb, w, h, 20, grid_h + 10, w - 40, labels, n, 1);
    int rc = plot_write_png(out, rgb, w, h);
    free(rgb);
    return rc;
}

int figure_motion_png(const double *angle, int L, int n, char *const *labels, const char *out) {
    const int cw = 18, sh = 34, left = 100, top = 56, right = 190;
    int label_w = 0;
    for (int t = 0; t < n; t++) label_w = label_w > plot_text_width(labels[t]) ? label_w : plot_text_width(labels[t]);
    const int w = left + n * cw + right, strips_h = top + L * (sh + 4);
    const int h = strips_h + label_w + 70;
    unsigned char *rgb = blank(w, h);
    plot_draw_text(rgb, w, h, 20, 12, "how far each token turns P_t: the mean rotation angle of its step M_t", BLACK, 0);
    /* Each layer's own range: the static part of the generator sets the level, the tokens only
     * move it, and a shared scale would hide that movement. */
    for (int l = 0; l < L; l++) {
        const double *a = angle + (size_t)l * n;
        double lo = a[0], hi = a[0];
        for (int t = 1; t < n; t++) lo = fmin(lo, a[t]), hi = fmax(hi, a[t]);
        char s[64];
        snprintf(s, sizeof s, "layer %d", l);
        int y0 = top + l * (sh + 4);
        plot_draw_text(rgb, w, h, 16, y0 + sh / 2 - plot_text_height() / 2, s, BLACK, 0);
        for (int t = 0; t < n; t++) {
            unsigned char col[3];
            figure_heat_colour(hi > lo ? (a[t] - lo) / (hi - lo) : 0, VERMILLION, col);
            plot_fill_rect(rgb, w, h, left + t * cw, y0, left + (t + 1) * cw - 1, y0 + sh, col);
        }
        snprintf(s, sizeof s, "%.3f..%.3f rad", lo, hi);
        plot_draw_text(rgb, w, h, left + n * cw + 8, y0 + sh / 2 - plot_text_height() / 2, s, BLACK, 0);
    }
    /* Token labels, reading upwards, their top just under the strips. */
    for (int t = 0; t < n; t++)
        plot_draw_text(rgb, w, h, left + t * cw + 2, strips_h + 6 + plot_text_width(labels[t]), labels[t], BLACK, 1);
    /* The colour scale: each layer's lowest to highest angle (the numbers right of its strip). */
    int by = h - 40, bx = left;
    for (int i = 0; i < 200; i++) {
        unsigned char col[3];
        figure_heat_colour(i / 199.0, VERMILLION, col);
        plot_fill_rect(rgb, w, h, bx + i, by, bx + i + 1, by + 14, col);
    }
    plot_draw_text(rgb, w, h, bx + 210, by, "the layer's lowest .. highest angle", BLACK, 0);
    int rc = plot_write_png(out, rgb, w, h);
    free(rgb);
    return rc;
}

/* ---- the commands ---- */

typedef struct {
    RunDir rd;
    int n;
    int32_t *tokens;   /* (n) */
    char **labels;     /* (n) token texts */
} Window;

/* Opens the run, reads the first n tokens of validation window `window` and runs the forward. */
static void window_forward(Window *w, const char *dir, int window, int n) {
    run_dir_init(&w->rd, dir);
    run_dir_read_config(&w->rd);
    if (task_run_open(&w->rd)) tr_die("%s: a task run has no validation text: the figures read a text run", dir);
    int T = (int)w->rd.config.model.block_size;
    if (n < 1 || n > T) tr_die("figure: --tokens %d: the run's block_size is %d", n, T);
    run_dir_load_model(&w->rd, T);
    TokenLoader *val = loader_open(w->rd.data_dir, "val", tok_hash(w->rd.tokenizer), 1, T, 0, 0);
    if (!val) tr_die_with_error();
    if ((uint64_t)window >= loader_num_windows(val))
        tr_die("figure: --window %d: the run's validation split has %llu windows", window,
               (unsigned long long)loader_num_windows(val));
    int32_t *row = xmalloc((size_t)(T + 1) * sizeof *row);
    int n_targets = 0;
    if (loader_set_state(val, (LoaderState){0, (uint64_t)window}) != 0 || loader_next(val, row, &n_targets) != 1)
        tr_die_with_error();
    loader_close(val);
    w->n = n < n_targets + 1 ? n : n_targets + 1;
    w->tokens = row;
    w->labels = xcalloc((size_t)w->n, sizeof *w->labels);
    for (int t = 0; t < w->n; t++) {
        int len = 0;
        const uint8_t *bytes = tok_token_bytes(w->rd.tokenizer, row[t], &len);
        char *s = w->labels[t] = xcalloc(32, 1);
        for (int i = 0, o = 0; i < len && o < 28; i++) {
            if (bytes[i] == '\n') { s[o++] = '\\'; s[o++] = 'n'; }
            else s[o++] = bytes[i] == ' ' ? '_' : (char)bytes[i];  /* a token's own space, made visible */
        }
    }
    if (gpt_forward(&w->rd.model, w->tokens, NULL, 1, w->n) != 0) tr_die_with_error();
}

static void window_free(Window *w) {
    for (int t = 0; t < w->n; t++) free(w->labels[t]);
    free(w->labels);
    free(w->tokens);
    run_dir_free(&w->rd);
}

/* CSV rows through a temporary file: a reader never sees half of one. */
static TrAtomicFile csv_open(const char *path, const char *header) {
    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) tr_die_with_error();
    tr_atomic_writef(&af, "%s\n", header);
    return af;
}

void figure_attention_run(const char *dir, int window, int n, const char *out, const char *csv) {
    Window w;
    window_forward(&w, dir, window, n);
    const GPT *m = &w.rd.model;
    const int L = m->config.L, NH = m->config.NH;
    if (figure_attention_png(m->acts.att, L, NH, w.n, w.labels, out) != 0) tr_die_with_error();
    if (csv) {
        TrAtomicFile af = csv_open(csv, "layer,head,query,key,probability");
        for (int l = 0; l < L; l++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < w.n; i++)
                    for (int j = 0; j <= i; j++)
                        tr_atomic_writef(&af, "%d,%d,%d,%d,%.6f\n", l, h, i, j,
                                         m->acts.att[(((size_t)l * NH + h) * w.n + i) * w.n + j]);
        if (tr_atomic_commit(&af) != 0) tr_die_with_error();
    }
    window_free(&w);
}

void figure_motion_run(const char *dir, int window, int n, const char *out, const char *csv) {
    Window w;
    window_forward(&w, dir, window, n);
    const GPT *m = &w.rd.model;
    if (strcmp(m->posenc.kind->name, "hddrope") != 0)
        tr_die("figure: %s: its posenc is %s; the motion figure reads HDD-RoPE's running product", dir,
               m->posenc.kind->name);
    double *angle = xmalloc((size_t)m->config.L * w.n * sizeof *angle);
    figure_hdd_step_angles(m, w.n, angle);
    if (figure_motion_png(angle, m->config.L, w.n, w.labels, out) != 0) tr_die_with_error();
    if (csv) {
        TrAtomicFile af = csv_open(csv, "layer,position,token,angle");
        for (int l = 0; l < m->config.L; l++)
            for (int t = 0; t < w.n; t++)
                tr_atomic_writef(&af, "%d,%d,%d,%.6f\n", l, t, w.tokens[t], angle[(size_t)l * w.n + t]);
        if (tr_atomic_commit(&af) != 0) tr_die_with_error();
    }
    free(angle);
    window_free(&w);
}
