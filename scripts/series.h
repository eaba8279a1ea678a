/* series.h: what the report tools (scripts/plot.c, scripts/table.c) share: reading a CSV into
 * columns named by its header, and a "series" (one config, one CSV per seed) with its seeds
 * aligned by row index.
 *
 * A series argument is LABEL=FILE1.csv[,FILE2.csv...]. Row i of every seed is one point; a series
 * has as many points as its shortest file. Aggregated over seeds: x and y are the means, lo..hi
 * the min..max band.
 *
 * Errors follow data/util.h: functions record "<file>: what is wrong" with tr_set_error() and
 * return -1 (or NULL); the tools' main() prints it as one "error: ..." line.
 */
#ifndef TINYROPE_SERIES_H
#define TINYROPE_SERIES_H

#include <stdio.h>

/* One CSV file: ncols columns of nrows numbers each, column-major (col[j][i] = row i, column j). */
typedef struct {
    char *path;
    int ncols, nrows;
    char **names;    /* [ncols] header names */
    double **col;    /* [ncols][nrows] */
} CsvTable;

/* Reads a CSV with a header line; every other non-empty line must have one number per column.
 * 0, or -1 with the error set ("<path>: cannot open", "<path>:<line>: 'x' in column c is not a
 * number", "<path>: no rows", ...). */
int csv_load(const char *path, CsvTable *t);
void csv_free(CsvTable *t);
/* The column called name, or NULL with "<path>: no column 'name' (columns: a, b, ...)". */
const double *csv_column(const CsvTable *t, const char *name);

typedef struct {
    char *label;
    int nseeds;
    CsvTable *seeds;  /* [nseeds] */
    int nrows;        /* points: the smallest row count over seeds */
} Series;

/* Parses "LABEL=FILE1.csv[,FILE2.csv...]" and loads every file. 0 or -1 (error set). */
int series_load(const char *arg, Series *s);
void series_free(Series *s);
/* Column `name` of seed k (nrows points are valid), or NULL with the error naming the file. */
const double *series_column(const Series *s, int k, const char *name);

/* Aggregate of one series over its seeds: n points, each x/y the seed mean, lo..hi the y band. */
typedef struct {
    int n;
    double *x, *y, *lo, *hi;
} SeriesAgg;

/* 0, or -1 with the error naming the file that lacks a column. */
int series_aggregate(const Series *s, const char *xcol, const char *ycol, SeriesAgg *out);
/* The same with every `bin` consecutive rows of each seed averaged into one point first (the
 * last bin may be shorter), so the band is the spread of the seeds' bin means: for per-position
 * losses, which are noisy position by position. bin = 1 is series_aggregate. */
int series_aggregate_binned(const Series *s, const char *xcol, const char *ycol, int bin, SeriesAgg *out);
void series_agg_free(SeriesAgg *a);

/* ---- small statistics used by both tools ---- */
double stat_mean(const double *v, int n);
/* Sample standard deviation (n - 1 in the denominator); NAN when n < 2. */
double stat_std(const double *v, int n);
/* y at xq on the polyline (x[i], y[i]) with x increasing; NAN outside [x[0], x[n-1]]. */
double interp_at(const double *x, const double *y, int n, double xq);
/* The first x at which y falls to `target` or below, linearly interpolated between the rows
 * around the crossing (x[0] if y[0] is already there); NAN if y never gets there. */
double first_crossing(const double *x, const double *y, int n, double target);
/* Formats v with 3 significant digits and an SI suffix: 950, 12.3k, 205k, 1.23M, 4.5G. */
void format_si(char *buf, size_t size, double v);

#endif
