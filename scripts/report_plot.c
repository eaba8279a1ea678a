/* report_plot.c: training curves as a PNG figure (see report_plot.h).
 *
 * Drawing happens on an RGB canvas in this order: grid, bands, lines (clipped to the plot area),
 * then the axes box, ticks, labels, title and legend. Lines and bands are first drawn as a coverage
 * mask per series (max over segments, so joints are not blended twice), then blended in once.
 */
#define _POSIX_C_SOURCE 200809L
#include "scripts/report_plot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>  /* Debian's libstb holds the implementation */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_easy_font.h>    /* header-only, all static */
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "base/util.h"

#define TEXT_SCALE 2   /* stb_easy_font pixels per font unit */
#define CAP_H 7        /* the font's capital height in font units */
#define LINE_HALF 1.1  /* half the line width in pixels */
#define BAND_ALPHA 0.18

/* Okabe-Ito, without its yellow (too light on white) until the other seven are used. */
static const unsigned char PALETTE[8][3] = {
    {0, 114, 178}, {213, 94, 0}, {0, 158, 115}, {204, 121, 167},
    {230, 159, 0}, {86, 180, 233}, {0, 0, 0}, {240, 228, 66},
};
static const unsigned char BLACK[3] = {0, 0, 0}, GRID[3] = {228, 228, 228}, GREY[3] = {150, 150, 150};

void plot_series_color(int i, unsigned char rgb[3]) { memcpy(rgb, PALETTE[i % 8], 3); }

void plot_default_options(PlotOptions *o) {
    memset(o, 0, sizeof *o);
    o->xcol = "tokens";
    o->ycol = "val_loss";
    o->width = 800;
    o->height = 500;
    o->ymin = o->ymax = NAN;
    o->bin = 1;
    o->mark_x = NAN;
}

/* Every series minus series `base`'s mean, row by row: rows the base lacks, or whose x differs
 * from the base's, are an error rather than a silently shifted difference. */
static int subtract_base(SeriesAgg *agg, const Series *series, int n, const char *base_label) {
    int b = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(series[i].label, base_label)) b = i;
    if (b < 0) { tr_set_error("--minus: no series is labelled '%s'", base_label); return -1; }
    double *base = xmalloc((size_t)agg[b].n * sizeof *base);
    memcpy(base, agg[b].y, (size_t)agg[b].n * sizeof *base);
    for (int i = 0; i < n; i++) {
        SeriesAgg *g = &agg[i];
        for (int j = 0; j < g->n; j++) {
            if (j >= agg[b].n || fabs(g->x[j] - agg[b].x[j]) > 1e-9 * fmax(1, fabs(g->x[j]))) {
                tr_set_error("--minus: series '%s' has x = %g at row %d where '%s' has %s", series[i].label, g->x[j],
                             j, base_label, j >= agg[b].n ? "no row" : "another x");
                free(base);
                return -1;
            }
            g->y[j] -= base[j];
            g->lo[j] -= base[j];
            g->hi[j] -= base[j];
        }
    }
    free(base);
    return 0;
}

/* ---- canvas ---- */

typedef struct {
    int w, h;
    unsigned char *px;  /* [h][w][3] */
    float *mask;        /* [h][w] coverage scratch for one series */
    int clip[4];        /* x0, y0, x1, y1: where data may be drawn */
} Canvas;

static void blend(Canvas *c, int x, int y, const unsigned char rgb[3], double a) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h || a <= 0) return;
    if (a > 1) a = 1;
    unsigned char *p = c->px + 3 * ((size_t)y * c->w + x);
    for (int k = 0; k < 3; k++) p[k] = (unsigned char)lround(p[k] + (rgb[k] - p[k]) * a);
}

static void fill_rect(Canvas *c, int x0, int y0, int x1, int y1, const unsigned char rgb[3], double a) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) blend(c, x, y, rgb, a);
}

/* Blends the mask into the canvas in colour rgb, scaled by alpha, and clears it. */
static void apply_mask(Canvas *c, const unsigned char rgb[3], double alpha) {
    for (int y = c->clip[1]; y < c->clip[3]; y++)
        for (int x = c->clip[0]; x < c->clip[2]; x++) {
            float *m = &c->mask[(size_t)y * c->w + x];
            if (*m > 0) blend(c, x, y, rgb, alpha * *m);
            *m = 0;
        }
}

static void mask_max(Canvas *c, int x, int y, double v) {
    if (x < c->clip[0] || y < c->clip[1] || x >= c->clip[2] || y >= c->clip[3] || v <= 0) return;
    float *m = &c->mask[(size_t)y * c->w + x];
    if (v > *m) *m = (float)(v > 1 ? 1 : v);
}

static int clampi(double v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* A segment of half-width LINE_HALF: coverage falls off linearly over the last pixel of distance
 * from the segment, which is enough anti-aliasing for a 2-px line. */
static void mask_segment(Canvas *c, double x0, double y0, double x1, double y1) {
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1)) return;
    double r = LINE_HALF + 1;
    int xa = clampi(floor(fmin(x0, x1) - r), c->clip[0], c->clip[2]);
    int xb = clampi(ceil(fmax(x0, x1) + r), c->clip[0], c->clip[2]);
    int ya = clampi(floor(fmin(y0, y1) - r), c->clip[1], c->clip[3]);
    int yb = clampi(ceil(fmax(y0, y1) + r), c->clip[1], c->clip[3]);
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = ya; y < yb; y++)
        for (int x = xa; x < xb; x++) {
            double px = x + 0.5 - x0, py = y + 0.5 - y0;
            double t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - t * dx, ey = py - t * dy;
            mask_max(c, x, y, LINE_HALF + 0.5 - sqrt(ex * ex + ey * ey));
        }
}

/* The band between (x0, lo0..hi0) and (x1, lo1..hi1), pixel y growing downwards: each pixel column
 * is covered by the fraction of its height inside the band. */
static void mask_band(Canvas *c, double x0, double lo0, double hi0, double x1, double lo1, double hi1) {
    if (x1 < x0) {
        double t;
        t = x0; x0 = x1; x1 = t;
        t = lo0; lo0 = lo1; lo1 = t;
        t = hi0; hi0 = hi1; hi1 = t;
    }
    int xa = clampi(floor(x0), c->clip[0], c->clip[2]), xb = clampi(ceil(x1), c->clip[0], c->clip[2]);
    for (int x = xa; x < xb; x++) {
        double t = x1 > x0 ? (x + 0.5 - x0) / (x1 - x0) : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        double top = hi0 + t * (hi1 - hi0), bot = lo0 + t * (lo1 - lo0);  /* top <= bot in pixels */
        int ya = clampi(floor(top), c->clip[1], c->clip[3]), yb = clampi(ceil(bot), c->clip[1], c->clip[3]);
        for (int y = ya; y < yb; y++) mask_max(c, x, y, fmin(y + 1, bot) - fmax(y, top));
    }
}

/* ---- text: stb_easy_font quads, each an axis-aligned rectangle, filled at TEXT_SCALE ---- */

/* stb_easy_font indexes its tables by (char - 32): keep to printable ASCII. */
static void printable(char *dst, size_t size, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++) dst[i] = (src[i] >= 32 && src[i] < 127) ? src[i] : '?';
    dst[i] = '\0';
}

static int text_width(const char *s) {
    char buf[256];
    printable(buf, sizeof buf, s);
    return stb_easy_font_width(buf) * TEXT_SCALE;
}

/* Draws s with its top-left corner at (x, y); rotated reads bottom to top with (x, y) its
 * bottom-left corner (for the y label). bold repeats it one pixel along. */
static void draw_text(Canvas *c, int x, int y, const char *s, const unsigned char rgb[3], int rotated, int bold) {
    static float quads[4096 * 16];  /* 4 vertices of (x, y, z, rgba) per quad */
    char buf[256];
    printable(buf, sizeof buf, s);
    int nq = stb_easy_font_print(0, 0, buf, NULL, quads, sizeof quads);
    for (int q = 0; q < nq; q++) {
        const float *v = quads + 16 * q;  /* vertex k at v + 4k: x, y */
        double qx0 = fmin(v[0], v[8]), qx1 = fmax(v[0], v[8]);
        double qy0 = fmin(v[1], v[9]), qy1 = fmax(v[1], v[9]);
        for (int b = 0; b <= bold; b++) {
            if (!rotated)
                fill_rect(c, x + b + (int)lround(qx0 * TEXT_SCALE), y + (int)lround(qy0 * TEXT_SCALE),
                          x + b + (int)lround(qx1 * TEXT_SCALE), y + (int)lround(qy1 * TEXT_SCALE), rgb, 1);
            else
                fill_rect(c, x + (int)lround(qy0 * TEXT_SCALE), y - b - (int)lround(qx1 * TEXT_SCALE),
                          x + (int)lround(qy1 * TEXT_SCALE), y - b - (int)lround(qx0 * TEXT_SCALE), rgb, 1);
        }
    }
}

/* ---- axes and ticks ---- */

typedef struct {
    double lo, hi;     /* data range shown */
    int log;
    double p0, p1;     /* pixel positions of lo and hi */
    int n;             /* ticks */
    double tick[64];
    int label[64];     /* 1: major tick with a label and grid line; 0: minor (log axes) */
    double step;       /* linear tick spacing, for the label decimals */
} Axis;

static double axis_t(const Axis *a, double v) { return a->log ? log10(v) : v; }
static double axis_px(const Axis *a, double v) {
    return a->p0 + (axis_t(a, v) - axis_t(a, a->lo)) / (axis_t(a, a->hi) - axis_t(a, a->lo)) * (a->p1 - a->p0);
}

/* 1, 2 or 5 x 10^k: the smallest such step giving at most max_ticks intervals over range. */
static double nice_step(double range, int max_ticks) {
    double raw = range / max_ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static void add_tick(Axis *a, double v, int label) {
    if (a->n < 64 && v >= a->lo * (1 - 1e-12) && v <= a->hi * (1 + 1e-12)) {
        a->tick[a->n] = v;
        a->label[a->n++] = label;
    }
}

static void linear_ticks(Axis *a, int max_ticks) {
    a->step = nice_step(a->hi - a->lo, max_ticks);
    for (double k = ceil(a->lo / a->step - 1e-9); k * a->step <= a->hi + 1e-9 * a->step; k++)
        add_tick(a, fabs(k) < 1e-9 ? 0 : k * a->step, 1);
}

/* Log axes: labelled decades with minor ticks at 2..9 when the range spans two decades or more;
 * 1, 2, 5 x 10^k when that gives three labels; otherwise nice linear values at log positions. */
static void log_ticks(Axis *a, int max_ticks) {
    int d0 = (int)floor(log10(a->lo)), d1 = (int)ceil(log10(a->hi));
    if (log10(a->hi / a->lo) >= 2) {
        int every = (d1 - d0 + max_ticks - 1) / max_ticks;  /* label every n-th decade if crowded */
        for (int d = d0; d <= d1; d++)
            for (int m = 1; m < 10; m++) add_tick(a, m * pow(10, d), m == 1 && d % every == 0);
        return;
    }
    for (int d = d0; d <= d1; d++)
        for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) add_tick(a, m * pow(10, d), 1);
    if (a->n >= 3) return;
    a->n = 0;
    linear_ticks(a, max_ticks);
}

/* A tick label: big numbers with an SI suffix and no trailing zeros (200k, 1.2M, 1M), others with
 * the decimals the tick spacing needs (0.5 -> 3.5, 4.0). */
static void tick_label(char *buf, size_t size, double v, double step) {
    static const char *suffix[] = {"", "k", "M", "G", "T"};
    double a = fabs(v), scale = 1;
    int k = 0;
    while (k < 4 && a >= 1000 * scale) { scale *= 1000; k++; }
    int dec = (int)fmax(0, -floor(log10(step / scale) + 1e-9));
    snprintf(buf, size, "%.*f", dec, v / scale);
    if (k > 0 && strchr(buf, '.')) {  /* 1.0M -> 1M, 1.50M -> 1.5M */
        char *e = buf + strlen(buf) - 1;
        while (*e == '0') *e-- = '\0';
        if (*e == '.') *e = '\0';
    }
    snprintf(buf + strlen(buf), size - strlen(buf), "%s", suffix[k]);
}

static void axis_labels_of(const Axis *a, int i, char *buf, size_t size) {
    double step = a->log && a->step == 0 ? pow(10, floor(log10(a->tick[i]) + 1e-9)) : a->step;
    tick_label(buf, size, a->tick[i], step);
}

/* The range of the values with a margin (a fraction of the range, in log space on log axes). */
static void fit_range(Axis *a, double lo, double hi, double margin) {
    if (a->log) { lo = log10(lo); hi = log10(hi); }
    if (hi - lo < 1e-12 * (fabs(lo) + 1)) { double d = 0.05 * fabs(lo) + 0.05; lo -= d; hi += d; }
    double m = margin * (hi - lo);
    lo -= m;
    hi += m;
    a->lo = a->log ? pow(10, lo) : lo;
    a->hi = a->log ? pow(10, hi) : hi;
}

/* ---- the figure ---- */

static char *default_label(const char *col) {
    char *s = xstrdup(col);
    for (char *p = s; *p; p++) if (*p == '_') *p = ' ';
    return s;
}

int plot_render(const PlotOptions *o, const Series *series, int n, unsigned char **rgb, int area[4]) {
    *rgb = NULL;
    if (n < 1) { tr_set_error("no series to plot"); return -1; }
    SeriesAgg *agg = xcalloc((size_t)n, sizeof *agg);
    Canvas c = {0};
    int rc = -1;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (series_aggregate_binned(&series[i], o->xcol, o->ycol, o->bin, &agg[i]) != 0) goto out;
    if (o->minus && subtract_base(agg, series, n, o->minus) != 0) goto out;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < agg[i].n; j++) {
            const SeriesAgg *g = &agg[i];
            /* A log axis cannot show values <= 0 (e.g. a step-0 row at 0 tokens): drop the point. */
            if ((o->log_x && !(g->x[j] > 0)) || (o->log_y && !(g->lo[j] > 0))) g->x[j] = NAN;
            if (!isfinite(g->x[j]) || !isfinite(g->lo[j]) || !isfinite(g->hi[j])) continue;
            xlo = fmin(xlo, g->x[j]); xhi = fmax(xhi, g->x[j]);
            ylo = fmin(ylo, g->lo[j]); yhi = fmax(yhi, g->hi[j]);
        }
    }
    if (!(xlo <= xhi)) {
        tr_set_error("%s: no values to plot%s", series[0].seeds[0].path, o->log_x || o->log_y ? " (a log axis needs values > 0)" : "");
        goto out;
    }

    Axis ax = {.log = o->log_x}, ay = {.log = o->log_y};
    fit_range(&ax, xlo, xhi, 0.02);
    /* A clipped end is exact; the margin of the other end is a fraction of the shown range. */
    fit_range(&ay, isnan(o->ymin) ? ylo : o->ymin, isnan(o->ymax) ? yhi : o->ymax, 0.05);
    if (!isnan(o->ymin)) ay.lo = o->ymin;
    if (!isnan(o->ymax)) ay.hi = o->ymax;
    if (!(ay.lo < ay.hi) || (ay.log && !(ay.lo > 0))) {
        tr_set_error("--ymin/--ymax: the y range %g..%g is empty%s", ay.lo, ay.hi, ay.log ? " or not positive" : "");
        goto out;
    }

    /* Layout: the margins hold tick labels, axis labels and the title. */
    int W = o->width, H = o->height, fh = CAP_H * TEXT_SCALE, pad = 10;
    if (ay.log) log_ticks(&ay, H / 60); else linear_ticks(&ay, H / 60);
    int ytick_w = 0;
    char lab[64];
    for (int i = 0; i < ay.n; i++) {
        axis_labels_of(&ay, i, lab, sizeof lab);
        if (ay.label[i] && text_width(lab) > ytick_w) ytick_w = text_width(lab);
    }
    /* The legend's size; right of the plot area it takes its width from the plot. */
    int row = fh + 8, lw = 0, sw = 24;
    for (int i = 0; i < n; i++) lw = text_width(series[i].label) > lw ? text_width(series[i].label) : lw;
    lw += sw + 3 * 8;
    int lh = n * row + 8;
    int left = pad + fh + pad + ytick_w + 8, right = W - 30 - (o->legend_right ? lw : 0);
    int top = o->title ? pad + fh + 2 * pad : 2 * pad, bottom = H - (8 + fh + pad + fh + pad);
    if (right - left < 50 || bottom - top < 50) {
        tr_set_error("--width %d --height %d: too small for a figure", W, H);
        goto out;
    }
    ax.p0 = left; ax.p1 = right;
    ay.p0 = bottom; ay.p1 = top;
    if (ax.log) log_ticks(&ax, (right - left) / 90); else linear_ticks(&ax, (right - left) / 90);

    c.w = W; c.h = H;
    c.px = xmalloc((size_t)W * H * 3);
    memset(c.px, 255, (size_t)W * H * 3);
    c.mask = xcalloc((size_t)W * H, sizeof(float));
    c.clip[0] = left; c.clip[1] = top; c.clip[2] = right; c.clip[3] = bottom;

    for (int i = 0; i < ax.n; i++)
        if (ax.label[i]) fill_rect(&c, (int)lround(axis_px(&ax, ax.tick[i])), top, (int)lround(axis_px(&ax, ax.tick[i])) + 1, bottom, GRID, 1);
    for (int i = 0; i < ay.n; i++)
        if (ay.label[i]) fill_rect(&c, left, (int)lround(axis_px(&ay, ay.tick[i])), right, (int)lround(axis_px(&ay, ay.tick[i])) + 1, GRID, 1);

    /* All bands first, then all lines, so no band covers another series' line. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            const SeriesAgg *g = &agg[i];
            unsigned char col[3];
            plot_series_color(i, col);
            for (int j = 0; j + 1 < g->n; j++) {
                double x0 = axis_px(&ax, g->x[j]), x1 = axis_px(&ax, g->x[j + 1]);
                if (!isfinite(x0) || !isfinite(x1) || !isfinite(g->lo[j]) || !isfinite(g->hi[j]) ||
                    !isfinite(g->lo[j + 1]) || !isfinite(g->hi[j + 1]))
                    continue;  /* a dropped point or a diverged run (nan): a gap in the line */
                if (pass == 0)
                    mask_band(&c, x0, axis_px(&ay, g->lo[j]), axis_px(&ay, g->hi[j]),
                              x1, axis_px(&ay, g->lo[j + 1]), axis_px(&ay, g->hi[j + 1]));
                else
                    mask_segment(&c, x0, axis_px(&ay, g->y[j]), x1, axis_px(&ay, g->y[j + 1]));
            }
            if (g->n == 1 && pass == 1)  /* a lone point: a dot */
                mask_segment(&c, axis_px(&ax, g->x[0]) - 2, axis_px(&ay, g->y[0]), axis_px(&ax, g->x[0]) + 2, axis_px(&ay, g->y[0]));
            apply_mask(&c, col, pass == 0 ? BAND_ALPHA : 1.0);
        }

    /* Axes box, ticks (outwards) and their labels. */
    fill_rect(&c, left - 1, top - 1, right + 1, top, BLACK, 1);
    fill_rect(&c, left - 1, bottom, right + 1, bottom + 1, BLACK, 1);
    fill_rect(&c, left - 1, top - 1, left, bottom + 1, BLACK, 1);
    fill_rect(&c, right, top - 1, right + 1, bottom + 1, BLACK, 1);
    for (int i = 0; i < ax.n; i++) {
        int x = (int)lround(axis_px(&ax, ax.tick[i])), len = ax.label[i] ? 6 : 3;
        fill_rect(&c, x, bottom + 1, x + 1, bottom + 1 + len, BLACK, 1);
        if (!ax.label[i]) continue;
        axis_labels_of(&ax, i, lab, sizeof lab);
        draw_text(&c, x - text_width(lab) / 2, bottom + 10, lab, BLACK, 0, 0);
    }
    for (int i = 0; i < ay.n; i++) {
        int y = (int)lround(axis_px(&ay, ay.tick[i])), len = ay.label[i] ? 6 : 3;
        fill_rect(&c, left - 1 - len, y, left - 1, y + 1, BLACK, 1);
        if (!ay.label[i]) continue;
        axis_labels_of(&ay, i, lab, sizeof lab);
        draw_text(&c, left - 9 - text_width(lab), y - fh / 2, lab, BLACK, 0, 0);
    }

    /* Axis labels and title. */
    char *xl = o->xlabel ? xstrdup(o->xlabel) : default_label(o->xcol);
    char *yl = o->ylabel ? xstrdup(o->ylabel) : default_label(o->ycol);
    draw_text(&c, (left + right - text_width(xl)) / 2, H - pad - fh, xl, BLACK, 0, 0);
    draw_text(&c, pad, (top + bottom + text_width(yl)) / 2, yl, BLACK, 1, 0);
    if (o->title) draw_text(&c, (left + right - text_width(o->title)) / 2, pad, o->title, BLACK, 0, 1);
    free(xl);
    free(yl);

    /* The marked x: a dashed line over the whole height, its label at the top, inside. */
    if (!isnan(o->mark_x) && (!ax.log || o->mark_x > 0)) {
        int x = (int)lround(axis_px(&ax, o->mark_x));
        if (x >= left && x < right) {
            for (int y = top; y < bottom; y += 8) fill_rect(&c, x, y, x + 2, y + 5 < bottom ? y + 5 : bottom, BLACK, 0.7);
            char mark[96];
            if (o->mark_label) snprintf(mark, sizeof mark, "%s", o->mark_label);
            else snprintf(mark, sizeof mark, "x = %g", o->mark_x);
            int tx = x + 6 + text_width(mark) < right ? x + 6 : x - 6 - text_width(mark);
            fill_rect(&c, tx - 2, top + 6, tx + text_width(mark) + 2, top + 8 + fh, (const unsigned char[3]){255, 255, 255}, 0.9);
            draw_text(&c, tx, top + 8, mark, BLACK, 0, 0);
        }
    }

    /* Legend: right of the plot area when asked, else in the corner of the plot area with the
     * fewest data pixels (top-right first). */
    int lx = right + 14, ly = top;
    if (!o->legend_right) {
        int best = -1;
        long best_ink = -1;
        int corners[4][2] = {{right - 10 - lw, top + 10}, {left + 10, bottom - 10 - lh},
                             {left + 10, top + 10}, {right - 10 - lw, bottom - 10 - lh}};
        for (int k = 0; k < 4; k++) {
            long ink = 0;
            for (int y = corners[k][1]; y < corners[k][1] + lh; y++)
                for (int x = corners[k][0]; x < corners[k][0] + lw; x++) {
                    if (x < 0 || y < 0 || x >= W || y >= H) continue;
                    const unsigned char *p = c.px + 3 * ((size_t)y * W + x);
                    ink += (p[0] != p[1] || p[1] != p[2]);  /* coloured: a series, not grid or white */
                }
            if (best < 0 || ink < best_ink) { best = k; best_ink = ink; }
        }
        lx = corners[best][0], ly = corners[best][1];
    }
    fill_rect(&c, lx, ly, lx + lw, ly + lh, (const unsigned char[3]){255, 255, 255}, 0.9);
    fill_rect(&c, lx, ly, lx + lw, ly + 1, GREY, 1);
    fill_rect(&c, lx, ly + lh - 1, lx + lw, ly + lh, GREY, 1);
    fill_rect(&c, lx, ly, lx + 1, ly + lh, GREY, 1);
    fill_rect(&c, lx + lw - 1, ly, lx + lw, ly + lh, GREY, 1);
    for (int i = 0; i < n; i++) {
        unsigned char col[3];
        plot_series_color(i, col);
        int y = ly + 8 + i * row;
        fill_rect(&c, lx + 8, y, lx + 8 + sw, y + fh, col, BAND_ALPHA);
        fill_rect(&c, lx + 8, y + fh / 2 - 1, lx + 8 + sw, y + fh / 2 + 1, col, 1);
        draw_text(&c, lx + 16 + sw, y, series[i].label, BLACK, 0, 0);
    }

    if (area) { area[0] = left; area[1] = top; area[2] = right; area[3] = bottom; }
    *rgb = c.px;
    c.px = NULL;
    rc = 0;
out:
    for (int i = 0; i < n; i++) series_agg_free(&agg[i]);
    free(agg);
    free(c.px);
    free(c.mask);
    return rc;
}

/* stb hands the encoded PNG over in pieces: they go straight into the temporary file. */
static void png_to_file(void *atomic_file, void *data, int size) {
    tr_atomic_write(atomic_file, data, (size_t)size);
}

int plot_write_png(const char *path, const unsigned char *rgb, int w, int h) {
    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) return -1;
    if (!stbi_write_png_to_func(png_to_file, &af, w, h, 3, rgb, 3 * w)) {
        tr_atomic_abort(&af);
        tr_set_error("%s: cannot encode the PNG", path);
        return -1;
    }
    return tr_atomic_commit(&af);
}

int plot_write(const PlotOptions *o, const Series *series, int n) {
    unsigned char *rgb;
    if (plot_render(o, series, n, &rgb, NULL) != 0) return -1;
    int rc = plot_write_png(o->out, rgb, o->width, o->height);
    free(rgb);
    return rc;
}

/* ---- drawing for other figures: a canvas over the caller's image, without a mask ---- */

static Canvas canvas_of(unsigned char *rgb, int w, int h) {
    Canvas c = {w, h, rgb, NULL, {0, 0, w, h}};
    return c;
}

void plot_draw_text(unsigned char *rgb, int w, int h, int x, int y, const char *s, const unsigned char color[3],
                    int rotated) {
    Canvas c = canvas_of(rgb, w, h);
    draw_text(&c, x, y, s, color, rotated, 0);
}

int plot_text_width(const char *s) { return text_width(s); }
int plot_text_height(void) { return CAP_H * TEXT_SCALE; }

void plot_fill_rect(unsigned char *rgb, int w, int h, int x0, int y0, int x1, int y1, const unsigned char color[3]) {
    Canvas c = canvas_of(rgb, w, h);
    fill_rect(&c, x0, y0, x1, y1, color, 1);
}

/* ---- the command ---- */

#define USAGE "usage: plot --out FILE.png [--x COL] [--y COL] [--log-x] [--log-y] [--ymin V] [--ymax V] [--bin K] " \
              "[--title T] [--xlabel T] [--ylabel T] [--width W] [--height H] [--legend-right] [--mark-x V [--mark-label T]] " \
              "[--minus LABEL] LABEL=FILE.csv[,FILE.csv...]..."

static int parse_number(const char *opt, const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(*v)) { tr_set_error("%s: '%s' is not a number", opt, s); return -1; }
    return 0;
}

int plot_run(int argc, char **argv) {
    PlotOptions o;
    plot_default_options(&o);
    Series *series = xcalloc((size_t)(argc > 1 ? argc : 1), sizeof *series);
    int n = 0, rc = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--log-x") == 0) { o.log_x = 1; continue; }
        if (strcmp(a, "--log-y") == 0) { o.log_y = 1; continue; }
        if (strcmp(a, "--legend-right") == 0) { o.legend_right = 1; continue; }
        if (strncmp(a, "--", 2) != 0) {
            if (series_load(a, &series[n]) != 0) goto out;
            n++;
            continue;
        }
        static const char *with_value[] = {"--out", "--x", "--y", "--title", "--xlabel", "--ylabel",
                                           "--width", "--height", "--ymin", "--ymax", "--bin",
                                           "--mark-x", "--mark-label", "--minus"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) known |= strcmp(a, with_value[k]) == 0;
        if (!known) { tr_set_error("unknown option %s (%s)", a, USAGE); goto out; }
        if (i + 1 >= argc) { tr_set_error("%s needs a value", a); goto out; }
        const char *v = argv[++i];
        double d;
        if (strcmp(a, "--out") == 0) o.out = v;
        else if (strcmp(a, "--x") == 0) o.xcol = v;
        else if (strcmp(a, "--y") == 0) o.ycol = v;
        else if (strcmp(a, "--title") == 0) o.title = v;
        else if (strcmp(a, "--xlabel") == 0) o.xlabel = v;
        else if (strcmp(a, "--ylabel") == 0) o.ylabel = v;
        else if (strcmp(a, "--mark-label") == 0) o.mark_label = v;
        else if (strcmp(a, "--minus") == 0) o.minus = v;
        else {
            if (parse_number(a, v, &d) != 0) goto out;
            if (strcmp(a, "--ymin") == 0) o.ymin = d;
            else if (strcmp(a, "--ymax") == 0) o.ymax = d;
            else if (strcmp(a, "--mark-x") == 0) o.mark_x = d;
            else if (strcmp(a, "--bin") == 0) {
                if (d != floor(d) || d < 1 || d > 1e6) {
                    tr_set_error("--bin: %s is not a whole number of rows >= 1", v);
                    goto out;
                }
                o.bin = (int)d;
            }
            else if (d != floor(d) || d < 200 || d > 8000) {
                tr_set_error("%s: %s is not a whole number of pixels in [200, 8000]", a, v);
                goto out;
            } else if (strcmp(a, "--width") == 0) o.width = (int)d;
            else o.height = (int)d;
        }
    }
    if (!o.out) { tr_set_error("--out FILE.png is required (%s)", USAGE); goto out; }
    if (n == 0) { tr_set_error("no series (%s)", USAGE); goto out; }
    rc = plot_write(&o, series, n);
out:
    for (int i = 0; i < n; i++) series_free(&series[i]);
    free(series);
    return rc;
}
