/* series.c: CSV columns by header name, series of seeds and their aggregate (see series.h). */
#define _POSIX_C_SOURCE 200809L
#include "scripts/series.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* ---- CSV ---- */

/* Splits line (modified in place) at commas; returns the number of fields (at most max). Strips
 * spaces and a trailing '\r' around each field. */
static int split_fields(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *end = strchr(p, ',');
        if (end) *end = '\0';
        while (*p == ' ' || *p == '\t') p++;
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r')) p[--len] = '\0';
        if (n < max) fields[n] = p;
        n++;
        if (!end) break;
        p = end + 1;
    }
    return n;
}

static int blank_line(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r') return 0;
    return 1;
}

int csv_load(const char *path, CsvTable *t) {
    memset(t, 0, sizeof *t);
    char *text = tr_read_file(path, NULL);
    if (!text) return -1;  /* "<path>: cannot open: ..." */
    t->path = xstrdup(path);
    int cap = 0, lineno = 0;
    char *save = NULL, **fields = NULL;
    /* Lines are cut with strtok_r on '\n'; it skips empty lines, which CSV writers never mean. */
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (blank_line(line)) continue;
        if (!t->names) {  /* the header */
            int n = 1;
            for (const char *p = line; *p; p++) n += *p == ',';
            fields = xcalloc((size_t)n, sizeof *fields);
            split_fields(line, fields, n);
            t->ncols = n;
            t->names = xcalloc((size_t)n, sizeof *t->names);
            t->col = xcalloc((size_t)n, sizeof *t->col);
            for (int j = 0; j < n; j++) {
                if (!fields[j][0]) {
                    tr_set_error("%s:%d: empty column name in the header", path, lineno);
                    goto fail;
                }
                t->names[j] = xstrdup(fields[j]);
            }
            continue;
        }
        int n = split_fields(line, fields, t->ncols);
        if (n != t->ncols) {
            tr_set_error("%s:%d: %d cells, the header has %d columns", path, lineno, n, t->ncols);
            goto fail;
        }
        if (t->nrows == cap) {
            cap = cap ? 2 * cap : 64;
            for (int j = 0; j < t->ncols; j++) t->col[j] = xrealloc(t->col[j], (size_t)cap * sizeof(double));
        }
        for (int j = 0; j < t->ncols; j++) {
            char *end;
            errno = 0;
            double v = strtod(fields[j], &end);
            if (end == fields[j] || *end || errno == EINVAL) {
                tr_set_error("%s:%d: '%s' in column %s is not a number", path, lineno, fields[j], t->names[j]);
                goto fail;
            }
            t->col[j][t->nrows] = v;
        }
        t->nrows++;
    }
    if (!t->names) {
        tr_set_error("%s: empty file (no header)", path);
        goto fail;
    }
    if (t->nrows == 0) {
        tr_set_error("%s: no rows after the header", path);
        goto fail;
    }
    free(fields);
    free(text);
    return 0;
fail:
    free(fields);
    free(text);
    csv_free(t);
    return -1;
}

void csv_free(CsvTable *t) {
    for (int j = 0; j < t->ncols; j++) {
        if (t->names) free(t->names[j]);
        if (t->col) free(t->col[j]);
    }
    free(t->names);
    free(t->col);
    free(t->path);
    memset(t, 0, sizeof *t);
}

const double *csv_column(const CsvTable *t, const char *name) {
    for (int j = 0; j < t->ncols; j++)
        if (strcmp(t->names[j], name) == 0) return t->col[j];
    char have[512] = "";
    for (int j = 0; j < t->ncols; j++) {
        size_t len = strlen(have);
        snprintf(have + len, sizeof have - len, "%s%s", j ? ", " : "", t->names[j]);
    }
    tr_set_error("%s: no column '%s' (columns: %s)", t->path, name, have);
    return NULL;
}

/* ---- series ---- */

int series_load(const char *arg, Series *s) {
    memset(s, 0, sizeof *s);
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        tr_set_error("'%s': a series is LABEL=FILE1.csv[,FILE2.csv...]", arg);
        return -1;
    }
    s->label = xmalloc((size_t)(eq - arg) + 1);
    memcpy(s->label, arg, (size_t)(eq - arg));
    s->label[eq - arg] = '\0';
    char *files = xstrdup(eq + 1);
    int cap = 0;
    char *save = NULL;
    for (char *f = strtok_r(files, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        if (s->nseeds == cap) {
            cap = cap ? 2 * cap : 4;
            s->seeds = xrealloc(s->seeds, (size_t)cap * sizeof *s->seeds);
        }
        if (csv_load(f, &s->seeds[s->nseeds]) != 0) {
            free(files);
            series_free(s);
            return -1;
        }
        int rows = s->seeds[s->nseeds].nrows;
        if (s->nseeds == 0 || rows < s->nrows) s->nrows = rows;
        s->nseeds++;
    }
    free(files);
    if (s->nseeds == 0) {
        tr_set_error("'%s': no files after '='", arg);
        series_free(s);
        return -1;
    }
    return 0;
}

void series_free(Series *s) {
    for (int k = 0; k < s->nseeds; k++) csv_free(&s->seeds[k]);
    free(s->seeds);
    free(s->label);
    memset(s, 0, sizeof *s);
}

const double *series_column(const Series *s, int k, const char *name) {
    return csv_column(&s->seeds[k], name);
}

int series_aggregate(const Series *s, const char *xcol, const char *ycol, SeriesAgg *a) {
    return series_aggregate_binned(s, xcol, ycol, 1, a);
}

/* Point i of seed k, averaged over rows [i*bin, min((i+1)*bin, nrows)). A row with no value (nan:
 * a position nothing supervises) is left out; a bin of only such rows stays nan, a gap in the
 * line. */
static double bin_mean(const double *v, int nrows, int bin, int i) {
    int r0 = i * bin, r1 = r0 + bin < nrows ? r0 + bin : nrows;
    double sum = 0;
    int n = 0;
    for (int r = r0; r < r1; r++)
        if (!isnan(v[r])) sum += v[r], n++;
    return n ? sum / n : NAN;
}

int series_aggregate_binned(const Series *s, const char *xcol, const char *ycol, int bin, SeriesAgg *a) {
    memset(a, 0, sizeof *a);
    if (bin < 1) bin = 1;
    int n = (s->nrows + bin - 1) / bin;
    const double **xs = xcalloc((size_t)s->nseeds, sizeof *xs), **ys = xcalloc((size_t)s->nseeds, sizeof *ys);
    for (int k = 0; k < s->nseeds; k++) {
        xs[k] = series_column(s, k, xcol);
        ys[k] = xs[k] ? series_column(s, k, ycol) : NULL;
        if (!ys[k]) {
            free(xs);
            free(ys);
            return -1;
        }
    }
    a->n = n;
    a->x = xcalloc((size_t)n, sizeof(double));
    a->y = xcalloc((size_t)n, sizeof(double));
    a->lo = xcalloc((size_t)n, sizeof(double));
    a->hi = xcalloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        double sx = 0, sy = 0, lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < s->nseeds; k++) {
            double xk = bin_mean(xs[k], s->nrows, bin, i), yk = bin_mean(ys[k], s->nrows, bin, i);
            sx += xk;
            sy += yk;
            if (yk < lo) lo = yk;
            if (yk > hi) hi = yk;
        }
        a->x[i] = sx / s->nseeds;
        a->y[i] = sy / s->nseeds;
        a->lo[i] = lo;
        a->hi[i] = hi;
    }
    free(xs);
    free(ys);
    return 0;
}

void series_agg_free(SeriesAgg *a) {
    free(a->x);
    free(a->y);
    free(a->lo);
    free(a->hi);
    memset(a, 0, sizeof *a);
}

/* ---- statistics ---- */

double stat_mean(const double *v, int n) {
    if (n < 1) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return s / n;
}

double stat_std(const double *v, int n) {
    if (n < 2) return NAN;
    double m = stat_mean(v, n), s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

double interp_at(const double *x, const double *y, int n, double xq) {
    if (n < 1 || xq < x[0] || xq > x[n - 1]) return NAN;
    for (int i = 1; i < n; i++)
        if (xq <= x[i]) {
            if (x[i] == x[i - 1]) return y[i];
            return y[i - 1] + (y[i] - y[i - 1]) * (xq - x[i - 1]) / (x[i] - x[i - 1]);
        }
    return y[n - 1];  /* n == 1 and xq == x[0] */
}

double first_crossing(const double *x, const double *y, int n, double target) {
    for (int i = 0; i < n; i++) {
        if (!(y[i] <= target)) continue;
        if (i == 0 || y[i - 1] == y[i]) return x[i];
        return x[i - 1] + (x[i] - x[i - 1]) * (y[i - 1] - target) / (y[i - 1] - y[i]);
    }
    return NAN;
}

void format_si(char *buf, size_t size, double v) {
    static const char *suffix[] = {"", "k", "M", "G", "T"};
    if (!isfinite(v)) {
        snprintf(buf, size, "n/a");
        return;
    }
    double a = fabs(v);
    int k = 0;
    while (k < 4 && a >= 999.5) {  /* 999.6 rounds to "1.00k", not "1000" */
        a /= 1000;
        v /= 1000;
        k++;
    }
    if (k == 0) snprintf(buf, size, "%.0f", v);
    else snprintf(buf, size, "%.*f%s", a >= 99.95 ? 0 : a >= 9.995 ? 1 : 2, v, suffix[k]);
}
