/* test_report.c: the report tools of scripts/ (plot: PNG figure, table: Markdown) on small CSVs
 * written here, with numbers worked out by hand: CSV reading by header name, seed alignment and
 * aggregation, the table's interpolated losses, crossings and "% fewer tokens", the figure's size,
 * colours and log axis, and every bad input ending in one error line that names the file. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <stb/stb_image.h>  /* Debian's libstb holds the decoder too */

#include "base/util.h"
#include "scripts/report_plot.h"
#include "scripts/report_table.h"
#include "scripts/series.h"
#include "tests/cli_test_helpers.h"

#define LOG_HEADER "step,tokens,train_loss,val_loss,val_bpb,lr,grad_norm,elapsed_s,tokens_per_s\n"

static char path_buf[8][512];

/* Writes text to <tmp>/name and returns the path (one of 8 rotating buffers). */
static const char *fixture(const char *name, const char *text) {
    static int next;
    char *p = path_buf[next++ % 8];
    snprintf(p, 512, "%s/%s", test_tmp_dir(), name);
    if (test_write_file(p, text, strlen(text)) != 0) fprintf(stderr, "cannot write %s\n", p);
    return p;
}

/* A log.csv whose rows are at tokens 80, 160, 240, 320, 400 with these val losses; bpb is only
 * set on the last row. */
static const char *log_fixture(const char *name, const double loss[5], double bpb) {
    char text[2048];
    int len = snprintf(text, sizeof text, LOG_HEADER);
    for (int i = 0; i < 5; i++)
        len += snprintf(text + len, sizeof text - len, "%d,%d,%.3f,%.3f,%.3f,0.001,0.5,1.0,1000\n", 10 * (i + 1),
                        80 * (i + 1), loss[i] + 0.1, loss[i], i == 4 ? bpb : 2.0);
    return fixture(name, text);
}

static void test_csv_columns_by_name(void) {
    const char *p = fixture("cols.csv", "b,a\r\n1,2.5\r\n\n3,-4e3\r\n");
    CsvTable t;
    CHECKF(csv_load(p, &t) == 0, "%s", tr_error());
    CHECK(t.nrows == 2 && t.ncols == 2);
    const double *a = csv_column(&t, "a"), *b = csv_column(&t, "b");
    CHECK(a && b && a[0] == 2.5 && a[1] == -4000 && b[0] == 1 && b[1] == 3);
    CHECK(csv_column(&t, "c") == NULL);
    CHECKF(strstr(tr_error(), p) && strstr(tr_error(), "'c'"), "%s", tr_error());
    csv_free(&t);
}

/* log.csv as `run` writes it: val_acc after val_bpb, and a task run's val_bpb as nan; columns are
 * read by name, so the files without val_acc above read the same. */
static void test_log_with_val_acc(void) {
    const char *p = fixture("acc.csv", "step,tokens,train_loss,val_loss,val_bpb,val_acc,lr,grad_norm,elapsed_s,"
                                       "tokens_per_s\n10,80,1.5,1.4,nan,0.25,0.001,0.5,1.0,1000\n");
    CsvTable t;
    CHECKF(csv_load(p, &t) == 0, "%s", tr_error());
    const double *acc = csv_column(&t, "val_acc"), *bpb = csv_column(&t, "val_bpb"), *loss = csv_column(&t, "val_loss");
    CHECK(acc && bpb && loss && acc[0] == 0.25 && isnan(bpb[0]) && loss[0] == 1.4);
    csv_free(&t);
}

/* Seeds are aligned by row: the longer file's extra row is ignored; x, y are means, lo..hi the band. */
static void test_series_aggregate(void) {
    const char *a = fixture("agg_a.csv", "x,y\n0,1\n10,3\n20,5\n30,100\n");
    const char *b = fixture("agg_b.csv", "x,y\n2,3\n12,2\n22,9\n");
    char arg[1200];
    snprintf(arg, sizeof arg, "cfg=%s,%s", a, b);
    Series s;
    CHECKF(series_load(arg, &s) == 0, "%s", tr_error());
    CHECK(strcmp(s.label, "cfg") == 0 && s.nseeds == 2 && s.nrows == 3);
    SeriesAgg g;
    CHECKF(series_aggregate(&s, "x", "y", &g) == 0, "%s", tr_error());
    CHECK(g.n == 3);
    CHECK(g.x[0] == 1 && g.x[1] == 11 && g.x[2] == 21);
    CHECK(g.y[0] == 2 && g.y[1] == 2.5 && g.y[2] == 7);
    CHECK(g.lo[0] == 1 && g.hi[0] == 3 && g.lo[1] == 2 && g.hi[1] == 3 && g.lo[2] == 5 && g.hi[2] == 9);
    series_agg_free(&g);
    /* Bins of 2 rows per seed, then over seeds: a -> (5, 2), (20, 5); b -> (7, 2.5), (22, 9). */
    CHECKF(series_aggregate_binned(&s, "x", "y", 2, &g) == 0, "%s", tr_error());
    CHECK(g.n == 2 && g.x[0] == 6 && g.y[0] == 2.25 && g.lo[0] == 2 && g.hi[0] == 2.5);
    CHECK(g.x[1] == 21 && g.y[1] == 7 && g.lo[1] == 5 && g.hi[1] == 9);
    series_agg_free(&g);
    CHECK(series_aggregate(&s, "x", "z", &g) == -1);
    CHECKF(strstr(tr_error(), "agg_a.csv") && strstr(tr_error(), "'z'"), "%s", tr_error());
    series_free(&s);
    /* A bin leaves out rows with no value (nan) and is nan only when all of them are:
     * (1, nan) -> 1, (nan, nan) -> nan, (4, 6) -> 5. */
    const char *c = fixture("agg_c.csv", "x,y\n0,1\n1,nan\n2,nan\n3,nan\n4,4\n5,6\n");
    snprintf(arg, sizeof arg, "cfg=%s", c);
    CHECKF(series_load(arg, &s) == 0, "%s", tr_error());
    CHECKF(series_aggregate_binned(&s, "x", "y", 2, &g) == 0, "%s", tr_error());
    CHECK(g.n == 3 && g.y[0] == 1 && isnan(g.y[1]) && g.y[2] == 5 && g.x[1] == 2.5);
    series_agg_free(&g);
    series_free(&s);
}

static void test_numbers(void) {
    char buf[32];
    format_si(buf, sizeof buf, 950); CHECKF(strcmp(buf, "950") == 0, "%s", buf);
    format_si(buf, sizeof buf, 12345); CHECKF(strcmp(buf, "12.3k") == 0, "%s", buf);
    format_si(buf, sizeof buf, 204800); CHECKF(strcmp(buf, "205k") == 0, "%s", buf);
    format_si(buf, sizeof buf, 999600); CHECKF(strcmp(buf, "1.00M") == 0, "%s", buf);
    format_si(buf, sizeof buf, 1234567); CHECKF(strcmp(buf, "1.23M") == 0, "%s", buf);
    double x[3] = {0, 10, 20}, y[3] = {5, 3, 2};
    CHECK(fabs(interp_at(x, y, 3, 15) - 2.5) < 1e-12);
    CHECK(isnan(interp_at(x, y, 3, 25)));
    CHECK(fabs(first_crossing(x, y, 3, 4) - 5) < 1e-12);
    CHECK(first_crossing(x, y, 3, 6) == 0);
    CHECK(isnan(first_crossing(x, y, 3, 1)));
    double v[2] = {1, 3};
    CHECK(stat_mean(v, 2) == 2 && fabs(stat_std(v, 2) - sqrt(2)) < 1e-12 && isnan(stat_std(v, 1)));
}

/* Two configs of two seeds, rows at tokens 80..400 (budget 400: 25% = 100 tokens, a quarter of
 * the way from row 1 to row 2; 50% = 200, half-way from row 2 to row 3).
 *   xpos: 5.0 4.6 4.2 3.8 3.4 (bpb 1.20) and 5.2 4.8 4.4 4.0 3.6 (bpb 1.30)
 *     @25%: 4.9, 5.1 -> 5.000 ± 0.141 (sample std 0.1 * sqrt 2); @50%: 4.4, 4.6; @100%: 3.4, 3.6
 *     target = the worst seed's final 3.6: seed 1 crosses at 320 + 80 * 0.2/0.4 = 360, seed 2 at
 *     its last row, 400 -> 380 ± 28; % fewer: +5.26 and -5.26 -> 0.0 ± 7.4.
 *   hdd: 4.6 4.0 3.4 3.2 3.0 (bpb 1.10) and 4.4 3.8 3.5 3.3 3.1 (bpb 1.14)
 *     @25%: 4.45, 4.25; @50%: 3.7, 3.65 -> 3.675 ± 0.035; @100%: 3.0, 3.1 -> 3.050 ± 0.071
 *     crossings of 3.6: 160 + 80 * 0.4/0.6 = 213.33 and 160 + 80 * 0.2/0.3 = 213.33 -> 213 ± 0;
 *     % fewer than 380: 43.86 both -> 43.9 ± 0.0. */
static int load_table_series(Series s[2]) {
    static const double x1[5] = {5.0, 4.6, 4.2, 3.8, 3.4}, x2[5] = {5.2, 4.8, 4.4, 4.0, 3.6};
    static const double h1[5] = {4.6, 4.0, 3.4, 3.2, 3.0}, h2[5] = {4.4, 3.8, 3.5, 3.3, 3.1};
    char arg[1200];
    snprintf(arg, sizeof arg, "hdd=%s,", log_fixture("hdd1.csv", h1, 1.10));
    snprintf(arg + strlen(arg), sizeof arg - strlen(arg), "%s", log_fixture("hdd2.csv", h2, 1.14));
    if (series_load(arg, &s[0]) != 0) return -1;
    snprintf(arg, sizeof arg, "xpos=%s,", log_fixture("xpos1.csv", x1, 1.20));
    snprintf(arg + strlen(arg), sizeof arg - strlen(arg), "%s", log_fixture("xpos2.csv", x2, 1.30));
    return series_load(arg, &s[1]);
}

/* table_write into a string. */
static int table_string(const Series *s, int n, const char *baseline, const double *target, char *out, size_t size) {
    FILE *f = tmpfile();
    if (!f) return -1;
    int rc = table_write(f, s, n, baseline, target);
    rewind(f);
    size_t len = fread(out, 1, size - 1, f);
    out[len] = '\0';
    fclose(f);
    return rc;
}

static void test_table_numbers(void) {
    Series s[2];
    if (load_table_series(s) != 0) { CHECKF(0, "%s", tr_error()); return; }
    char out[4096];
    CHECKF(table_string(s, 2, NULL, NULL, out, sizeof out) == 0, "%s", tr_error());
    /* xpos is the default baseline although it comes second. */
    CHECKF(strstr(out, "Target: val loss 3.600 (the baseline's final val loss, its worst seed); baseline: xpos (2 seeds).\n"),
           "%s", out);
    CHECKF(strstr(out, "| tokens to 3.600 | reached | % fewer tokens than xpos |"), "%s", out);
    CHECKF(strstr(out, "| hdd | 2 | 4.350 ± 0.141 | 3.675 ± 0.035 | 3.050 ± 0.071 | 1.120 ± 0.028 "
                       "| 213 ± 0 | 2/2 | 43.9 ± 0.0 |\n"), "%s", out);
    CHECKF(strstr(out, "| xpos | 2 | 5.000 ± 0.141 | 4.500 ± 0.141 | 3.500 ± 0.141 | 1.250 ± 0.071 "
                       "| 380 ± 28 | 2/2 | 0.0 ± 7.4 |\n"), "%s", out);
    CHECK(strstr(out, "hdd") < strstr(out, "| xpos | 2"));  /* rows in argument order */

    /* Another baseline: its worst final (3.1) becomes the target, which xpos never reaches. */
    CHECKF(table_string(s, 2, "hdd", NULL, out, sizeof out) == 0, "%s", tr_error());
    CHECKF(strstr(out, "Target: val loss 3.100") && strstr(out, "baseline: hdd (2 seeds)"), "%s", out);
    CHECKF(strstr(out, "| not reached | 0/2 | n/a |"), "%s", out);
    /* hdd: seed 1 crosses 3.1 at 320 + 80 * 0.1/0.2 = 360, seed 2 at its last row (400). */
    CHECKF(strstr(out, "| hdd | 2 | 4.350 ± 0.141 | 3.675 ± 0.035 | 3.050 ± 0.071 | 1.120 ± 0.028 "
                       "| 380 ± 28 | 2/2 | 0.0 ± 7.4 |"), "%s", out);

    /* An explicit target: xpos crosses 4.0 at 280 and 320 (mean 300); hdd at 160 and 133.3. */
    double target = 4.0;
    CHECKF(table_string(s, 2, NULL, &target, out, sizeof out) == 0, "%s", tr_error());
    CHECKF(strstr(out, "Target: val loss 4.000 (--target); baseline: xpos"), "%s", out);
    CHECKF(strstr(out, "| 300 ± 28 | 2/2 | 0.0 ± 9.4 |"), "%s", out);
    /* hdd: 100 * (1 - 160/300) = 46.67 and 100 * (1 - 133.33/300) = 55.56 -> 51.1 ± 6.3 */
    CHECKF(strstr(out, "| 147 ± 19 | 2/2 | 51.1 ± 6.3 |"), "%s", out);

    CHECK(table_string(s, 2, "nope", NULL, out, sizeof out) == -1);
    CHECKF(strstr(tr_error(), "nope"), "%s", tr_error());
    series_free(&s[0]);
    series_free(&s[1]);
}

static void test_table_one_seed_and_first_series_baseline(void) {
    static const double y[5] = {5.0, 4.6, 4.2, 3.8, 3.4};
    char arg[600];
    snprintf(arg, sizeof arg, "rope=%s", log_fixture("one.csv", y, 1.2));
    Series s;
    if (series_load(arg, &s) != 0) { CHECKF(0, "%s", tr_error()); return; }
    char out[4096];
    CHECKF(table_string(&s, 1, NULL, NULL, out, sizeof out) == 0, "%s", tr_error());
    CHECKF(strstr(out, "baseline: rope (1 seed)."), "%s", out);
    CHECKF(strstr(out, "| rope | 1 | 4.900 ± n/a | 4.400 ± n/a | 3.400 ± n/a | 1.200 ± n/a | 400 ± n/a | 1/1 | 0.0 ± n/a |"),
           "%s", out);
    series_free(&s);
}

static void test_bad_inputs_name_the_file(void) {
    Series s;
    const char *missing = "build/test-tmp-definitely-missing.csv";
    char arg[1200];
    snprintf(arg, sizeof arg, "a=%s", missing);
    CHECK(series_load(arg, &s) == -1);
    CHECKF(strstr(tr_error(), missing), "%s", tr_error());

    const char *bad = fixture("bad_cell.csv", "tokens,val_loss\n1,2\n2,abc\n");
    snprintf(arg, sizeof arg, "a=%s", bad);
    CHECK(series_load(arg, &s) == -1);
    CHECKF(strstr(tr_error(), bad) && strstr(tr_error(), ":3:") && strstr(tr_error(), "'abc'"), "%s", tr_error());

    const char *empty = fixture("no_rows.csv", "tokens,val_loss\n");
    snprintf(arg, sizeof arg, "a=%s", empty);
    CHECK(series_load(arg, &s) == -1);
    CHECKF(strstr(tr_error(), empty) && strstr(tr_error(), "no rows"), "%s", tr_error());

    const char *ragged = fixture("ragged.csv", "tokens,val_loss\n1,2,3\n");
    snprintf(arg, sizeof arg, "a=%s", ragged);
    CHECK(series_load(arg, &s) == -1);
    CHECKF(strstr(tr_error(), ragged), "%s", tr_error());

    CHECK(series_load("no-equals-sign.csv", &s) == -1);
    CHECKF(strstr(tr_error(), "LABEL="), "%s", tr_error());

    /* A plot of a column the file lacks names the file and the column. */
    const char *ok = fixture("ok.csv", "tokens,val_loss\n1,2\n2,1\n");
    snprintf(arg, sizeof arg, "a=%s", ok);
    CHECK(series_load(arg, &s) == 0);
    PlotOptions o;
    plot_default_options(&o);
    o.ycol = "val_bpb";
    unsigned char *rgb;
    CHECK(plot_render(&o, &s, 1, &rgb, NULL) == -1);
    CHECKF(strstr(tr_error(), ok) && strstr(tr_error(), "val_bpb"), "%s", tr_error());
    /* No table without a val_bpb column either. */
    char out[1024];
    CHECK(table_string(&s, 1, NULL, NULL, out, sizeof out) == -1);
    CHECKF(strstr(tr_error(), ok) && strstr(tr_error(), "val_bpb"), "%s", tr_error());
    series_free(&s);
}

/* Two series, x 0..20; series a: y = 1000 * 10^(-3x/20) (1000 down to 1), b the same / 2. Two
 * seeds for a, to have a band. */
static int load_plot_series(Series s[2]) {
    char a1[2048], a2[2048], b[2048];
    int l1 = snprintf(a1, sizeof a1, "x,y\n"), l2 = snprintf(a2, sizeof a2, "x,y\n"), lb = snprintf(b, sizeof b, "x,y\n");
    for (int i = 0; i <= 20; i++) {
        double y = 1000 * pow(10, -3.0 * i / 20);
        l1 += snprintf(a1 + l1, sizeof a1 - l1, "%d,%.6g\n", i, y * 1.1);
        l2 += snprintf(a2 + l2, sizeof a2 - l2, "%d,%.6g\n", i, y / 1.1);
        lb += snprintf(b + lb, sizeof b - lb, "%d,%.6g\n", i, y / 2);
    }
    char arg[1200];
    snprintf(arg, sizeof arg, "a=%s,", fixture("plot_a1.csv", a1));
    snprintf(arg + strlen(arg), sizeof arg - strlen(arg), "%s", fixture("plot_a2.csv", a2));
    if (series_load(arg, &s[0]) != 0) return -1;
    snprintf(arg, sizeof arg, "b=%s", fixture("plot_b.csv", b));
    return series_load(arg, &s[1]);
}

static int is_color(const unsigned char *p, const unsigned char c[3]) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }

/* The topmost pixel of exactly colour c in column x of the image (w wide), inside rows y0..y1; -1 if none. */
static int find_in_column(const unsigned char *img, int w, int x, int y0, int y1, const unsigned char c[3]) {
    for (int y = y0; y < y1; y++)
        if (is_color(img + 3 * ((size_t)y * w + x), c)) return y;
    return -1;
}

static void test_plot_png(void) {
    Series s[2];
    if (load_plot_series(s) != 0) { CHECKF(0, "%s", tr_error()); return; }
    char out[512];
    snprintf(out, sizeof out, "%s/report_plot.png", test_tmp_dir());
    remove(out);
    PlotOptions o;
    plot_default_options(&o);
    o.out = out;
    o.xcol = "x";
    o.ycol = "y";
    o.title = "test figure";
    o.width = 480;
    o.height = 320;
    CHECKF(plot_write(&o, s, 2) == 0, "%s", tr_error());
    int w = 0, h = 0, ch = 0;
    unsigned char *img = stbi_load(out, &w, &h, &ch, 3);
    CHECKF(img && w == 480 && h == 320, "%s: %dx%d", out, w, h);
    if (!img) { series_free(&s[0]); series_free(&s[1]); return; }
    int area[4];
    unsigned char *rgb;
    CHECK(plot_render(&o, s, 2, &rgb, area) == 0);
    CHECK(memcmp(rgb, img, (size_t)w * h * 3) == 0);  /* the PNG holds what was rendered */
    CHECK(area[0] > 20 && area[1] > 20 && area[2] < w && area[3] < h - 20);
    const unsigned char white[3] = {255, 255, 255};
    CHECK(is_color(img, white) && is_color(img + 3 * ((size_t)h * w - 1), white));

    /* Each series' colour inside the plot area (lines are drawn solid at their centre). */
    unsigned char ca[3], cb[3];
    plot_series_color(0, ca);
    plot_series_color(1, cb);
    CHECK(memcmp(ca, cb, 3) != 0);
    int na = 0, nb = 0, outside = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const unsigned char *p = img + 3 * ((size_t)y * w + x);
            int inside = x >= area[0] && x < area[2] && y >= area[1] && y < area[3];
            na += inside && is_color(p, ca);
            nb += inside && is_color(p, cb);
            outside += !inside && is_color(p, ca) && !(y < area[1] + 120 && x > area[0]);  /* legend aside */
        }
    CHECKF(na > 100 && nb > 100, "series pixels in the plot area: %d, %d", na, nb);
    CHECKF(outside == 0, "%d series pixels outside the plot area", outside);

    /* Linear y: at the middle x (10 -> y = 31.6 of 0..1100) the line is near the bottom, and the
     * curve is convex: it falls much more over the quarter before the middle than the one after. */
    int xm = (area[0] + area[2]) / 2, d = (area[2] - area[0]) / 4, ph = area[3] - area[1];
    int y0 = find_in_column(rgb, w, xm - d, area[1], area[3], ca);
    int y1 = find_in_column(rgb, w, xm, area[1], area[3], ca);
    int y2 = find_in_column(rgb, w, xm + d, area[1], area[3], ca);
    CHECKF(y1 > area[3] - ph / 6, "linear: y %d, area %d..%d", y1, area[1], area[3]);
    CHECKF(y0 >= 0 && y1 - y0 > (y2 - y1) + 20, "linear: %d %d %d", y0, y1, y2);
    free(rgb);
    /* Log y: the curve is a straight line (equal drops), and b (a / 2.009: a is the mean of
     * 1.1 y and y / 1.1) lies log10(2.009) decades below a, of log10(1100 / 0.5) decades + 10%. */
    o.log_y = 1;
    CHECK(plot_render(&o, s, 2, &rgb, area) == 0);
    xm = (area[0] + area[2]) / 2;
    d = (area[2] - area[0]) / 4;
    ph = area[3] - area[1];
    y0 = find_in_column(rgb, w, xm - d, area[1], area[3], ca);
    y1 = find_in_column(rgb, w, xm, area[1], area[3], ca);
    y2 = find_in_column(rgb, w, xm + d, area[1], area[3], ca);
    CHECKF(y0 >= 0 && y0 < y1 && y1 < y2 && abs((y1 - y0) - (y2 - y1)) <= 2, "log: %d %d %d", y0, y1, y2);
    int y_b = find_in_column(rgb, w, xm, area[1], area[3], cb);
    double expect = log10(2 * (1.1 + 1 / 1.1) / 2) / (log10(1100 / 0.5) * 1.1) * ph;
    CHECKF(y_b > 0 && fabs(y_b - y1 - expect) <= 2, "log: b at %d, a at %d, expected %.1f apart", y_b, y1, expect);
    free(rgb);

    /* --ymax clips: nothing of a series above the plot area's top. */
    o.log_y = 0;
    o.ymax = 100;
    CHECK(plot_render(&o, s, 2, &rgb, area) == 0);
    int above = 0, in = 0;
    for (int x = 0; x < w; x++) {
        above += find_in_column(rgb, w, x, 0, area[1], ca) >= 0;
        in += find_in_column(rgb, w, x, area[1], area[3], ca) >= 0;
    }
    CHECKF(above == 0 && in > 100, "--ymax: %d columns above the area, %d inside", above, in);
    free(rgb);
    o.ymin = 200;  /* above ymax: an error, not a figure */
    CHECK(plot_render(&o, s, 2, &rgb, area) == -1 && rgb == NULL);
    CHECKF(strstr(tr_error(), "--ymin"), "%s", tr_error());

    stbi_image_free(img);
    series_free(&s[0]);
    series_free(&s[1]);
}

/* ---- the two binaries: exit status 1 and one "error: ..." line ---- */

/* Runs "<build>/<tool> <args>" (build: where run_binaries.sh put train); -1 if not found. */
static int run_tool(const char *tool, const char *args) {
    if (!getenv("TINYROPE_TRAIN_BIN")) return -1;
    const char *bin = cli_tool_bin(tool);
    return bin ? run_program(bin, args) : -1;
}

static int one_error_naming(const char *needle) { return one_error_line() && strstr(err_buf, needle); }

/* Whether dir holds a file whose name starts with prefix. */
static int tmp_left(const char *dir, const char *prefix) {
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(dp))) found |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(dp);
    return found;
}

static void test_command_line(void) {
    if (run_tool("table", "") < 0) SKIP("no plot/table binaries next to $TINYROPE_TRAIN_BIN");
    static const double y[5] = {5.0, 4.6, 4.2, 3.8, 3.4};
    const char *log = log_fixture("cli.csv", y, 1.2);
    char args[2048], png[512];
    snprintf(png, sizeof png, "%s/cli.png", test_tmp_dir());
    remove(png);
    snprintf(args, sizeof args, "--out %s --width 300 --height 200 --log-x r=%s", png, log);
    CHECKF(run_tool("plot", args) == 0 && err_buf[0] == '\0', "%s", err_buf);
    int w = 0, h = 0, ch = 0;
    CHECK(stbi_info(png, &w, &h, &ch) && w == 300 && h == 200);

    /* A full disk while the PNG is written: one error naming it, and neither the file nor a
     * temporary left behind. */
    char full[512];
    snprintf(full, sizeof full, "%s/full.png", test_tmp_dir());
    remove(full);
    snprintf(args, sizeof args, "--out %s r=%s", full, log);
    setenv("TINYROPE_FAIL_WRITE", "full.png:1", 1);
    CHECK(run_tool("plot", args) == 1);
    unsetenv("TINYROPE_FAIL_WRITE");
    CHECKF(one_error_naming(full) && strstr(err_buf, "No space left on device"), "%s", err_buf);
    CHECK(!tr_file_exists(full) && !tmp_left(test_tmp_dir(), "full.png.tmp."));

    snprintf(args, sizeof args, "--out %s --y nope r=%s", png, log);
    CHECK(run_tool("plot", args) == 1);
    CHECKF(one_error_naming(log) && strstr(err_buf, "nope"), "%s", err_buf);
    CHECK(run_tool("plot", "--out x.png r=/no/such/file.csv") == 1);
    CHECKF(one_error_naming("/no/such/file.csv"), "%s", err_buf);
    snprintf(args, sizeof args, "--out %s --bogus r=%s", png, log);
    CHECK(run_tool("plot", args) == 1);
    CHECKF(one_error_naming("--bogus"), "%s", err_buf);
    snprintf(args, sizeof args, "--out %s --width wide r=%s", png, log);
    CHECK(run_tool("plot", args) == 1);
    CHECKF(one_error_naming("--width"), "%s", err_buf);
    snprintf(args, sizeof args, "r=%s", log);
    CHECK(run_tool("plot", args) == 1);
    CHECKF(one_error_naming("--out"), "%s", err_buf);

    snprintf(args, sizeof args, "--target 3.8 r=%s", log);
    CHECKF(run_tool("table", args) == 0, "%s", err_buf);
    CHECKF(strstr(out_buf, "| r | 1 | 4.900 ± n/a |") && strstr(out_buf, "| 320 ± n/a | 1/1 |"), "%s", out_buf);
    snprintf(args, sizeof args, "--target low r=%s", log);
    CHECK(run_tool("table", args) == 1);
    CHECKF(one_error_naming("--target"), "%s", err_buf);
    CHECK(run_tool("table", "") == 1);
    CHECKF(one_error_naming("no series"), "%s", err_buf);
}

int main(void) {
    RUN(test_csv_columns_by_name);
    RUN(test_log_with_val_acc);
    RUN(test_series_aggregate);
    RUN(test_numbers);
    RUN(test_table_numbers);
    RUN(test_table_one_seed_and_first_series_baseline);
    RUN(test_bad_inputs_name_the_file);
    RUN(test_plot_png);
    RUN(test_command_line);
    return test_summary();
}
