/* report_table.c: the Markdown comparison table (see report_table.h). */
#define _POSIX_C_SOURCE 200809L
#include "scripts/report_table.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static const double FRACTIONS[3] = {0.25, 0.5, 1.0};

/* "mean ± std" of v[0..n) with `digits` decimals; "n/a" if any value is missing (NAN). */
static void cell_fixed(char *buf, size_t size, const double *v, int n, int digits) {
    for (int i = 0; i < n; i++)
        if (isnan(v[i])) { snprintf(buf, size, "n/a"); return; }
    if (n < 1) { snprintf(buf, size, "n/a"); return; }
    double m = stat_mean(v, n), s = stat_std(v, n);
    if (fabs(m) < 0.5 * pow(10, -digits)) m = 0;  /* no "-0.000" */
    if (n < 2) snprintf(buf, size, "%.*f ± n/a", digits, m);
    else snprintf(buf, size, "%.*f ± %.*f", digits, m, digits, s);
}

/* The same with SI token counts: "1.23M ± 45.6k". */
static void cell_si(char *buf, size_t size, const double *v, int n) {
    char m[24], s[24];
    format_si(m, sizeof m, stat_mean(v, n));
    format_si(s, sizeof s, stat_std(v, n));
    snprintf(buf, size, "%s ± %s", m, s);
}

/* Per seed of s: the tokens at which val loss first reaches target (NAN where it never does). */
static int crossings(const Series *s, double target, double *t) {
    for (int k = 0; k < s->nseeds; k++) {
        const double *x = series_column(s, k, "tokens"), *y = series_column(s, k, "val_loss");
        if (!x || !y) return -1;
        t[k] = first_crossing(x, y, s->nrows, target);
    }
    return 0;
}

/* Keeps the finite values of v[0..n) at its front; returns how many. */
static int keep_finite(double *v, int n) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) v[m++] = v[i];
    return m;
}

static int find_label(const Series *series, int n, const char *label) {
    for (int i = 0; i < n; i++)
        if (strcmp(series[i].label, label) == 0) return i;
    return -1;
}

int table_write(FILE *f, const Series *series, int n, const char *baseline, const double *target) {
    if (n < 1) { tr_set_error("no series given"); return -1; }
    int b = 0;
    if (baseline) {
        b = find_label(series, n, baseline);
        if (b < 0) { tr_set_error("--baseline %s: no series has that label", baseline); return -1; }
    } else if (find_label(series, n, "xpos") >= 0) {
        b = find_label(series, n, "xpos");
    }
    const Series *bs = &series[b];
    int maxseeds = 0;
    for (int i = 0; i < n; i++) if (series[i].nseeds > maxseeds) maxseeds = series[i].nseeds;
    double *v = xcalloc((size_t)maxseeds, sizeof(double));
    int rc = -1;

    /* The target: given, or where the baseline ends: the highest last val loss over its seeds,
     * so that every baseline seed reaches it and the comparison has all of them to go by. */
    double tgt;
    if (target) {
        tgt = *target;
    } else {
        for (int k = 0; k < bs->nseeds; k++) {
            const double *y = series_column(bs, k, "val_loss");
            if (!y) goto out;
            v[k] = y[bs->nrows - 1];
        }
        tgt = v[0];
        for (int k = 1; k < bs->nseeds; k++) if (v[k] > tgt) tgt = v[k];
    }
    /* The baseline's mean tokens to the target, over the seeds that reach it. */
    if (crossings(bs, tgt, v) != 0) goto out;
    int breached = keep_finite(v, bs->nseeds);
    double base_tokens = breached ? stat_mean(v, breached) : NAN;

    fprintf(f, "Target: val loss %.3f (%s); baseline: %s (%d seed%s).\n\n", tgt,
            target ? "--target" : "the baseline's final val loss, its worst seed", bs->label, bs->nseeds,
            bs->nseeds == 1 ? "" : "s");
    fprintf(f, "| series | seeds | val loss @25%% | val loss @50%% | val loss @100%% | final bits/byte "
               "| tokens to %.3f | reached | %% fewer tokens than %s |\n", tgt, bs->label);
    fprintf(f, "| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < n; i++) {
        const Series *s = &series[i];
        char cells[5][64], tokens[64], fewer[64];
        /* The budget: the mean over seeds of the last row's tokens. */
        for (int k = 0; k < s->nseeds; k++) {
            const double *x = series_column(s, k, "tokens");
            if (!x) goto out;
            v[k] = x[s->nrows - 1];
        }
        double budget = stat_mean(v, s->nseeds);
        for (int c = 0; c < 3; c++) {
            for (int k = 0; k < s->nseeds; k++) {
                const double *x = series_column(s, k, "tokens"), *y = series_column(s, k, "val_loss");
                if (!y) goto out;
                v[k] = interp_at(x, y, s->nrows, FRACTIONS[c] * budget);
            }
            cell_fixed(cells[c], sizeof cells[c], v, s->nseeds, 3);
        }
        for (int k = 0; k < s->nseeds; k++) {
            const double *bpb = series_column(s, k, "val_bpb");
            if (!bpb) goto out;
            v[k] = bpb[s->nrows - 1];
        }
        cell_fixed(cells[3], sizeof cells[3], v, s->nseeds, 3);

        if (crossings(s, tgt, v) != 0) goto out;
        int reached = keep_finite(v, s->nseeds);
        snprintf(cells[4], sizeof cells[4], "%d/%d", reached, s->nseeds);
        if (reached == 0) {
            snprintf(tokens, sizeof tokens, "not reached");
            snprintf(fewer, sizeof fewer, "n/a");
        } else {
            cell_si(tokens, sizeof tokens, v, reached);
            for (int k = 0; k < reached; k++) v[k] = 100.0 * (1.0 - v[k] / base_tokens);
            if (isfinite(base_tokens)) cell_fixed(fewer, sizeof fewer, v, reached, 1);
            else snprintf(fewer, sizeof fewer, "n/a");
        }
        fprintf(f, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", s->label, s->nseeds, cells[0],
                cells[1], cells[2], cells[3], tokens, cells[4], fewer);
    }
    rc = 0;
out:
    free(v);
    return rc;
}

int table_run(int argc, char **argv, FILE *out) {
    const char *baseline = NULL;
    double target = 0;
    int has_target = 0, n = 0;
    Series *series = xcalloc((size_t)(argc > 1 ? argc : 1), sizeof *series);
    int rc = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--baseline") == 0 || strcmp(a, "--target") == 0) {
            if (i + 1 >= argc) { tr_set_error("%s needs a value", a); goto out; }
            const char *val = argv[++i];
            if (a[2] == 'b') {
                baseline = val;
            } else {
                char *end;
                errno = 0;
                target = strtod(val, &end);
                if (end == val || *end || errno || !isfinite(target)) {
                    tr_set_error("--target: '%s' is not a number", val);
                    goto out;
                }
                has_target = 1;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            tr_set_error("unknown option %s (usage: table [--baseline LABEL] [--target LOSS] "
                         "LABEL=FILE.csv[,FILE.csv...]...)", a);
            goto out;
        } else {
            if (series_load(a, &series[n]) != 0) goto out;
            n++;
        }
    }
    if (n == 0) {
        tr_set_error("no series (usage: table [--baseline LABEL] [--target LOSS] LABEL=FILE.csv[,FILE.csv...]...)");
        goto out;
    }
    rc = table_write(out, series, n, baseline, has_target ? &target : NULL);
out:
    for (int i = 0; i < n; i++) series_free(&series[i]);
    free(series);
    return rc;
}
