/* report_table.h: the comparison table of scripts/table.c, as functions the tests call.
 *
 * One Markdown row per series (log.csv files, one per seed): val loss at 25%, 50% and 100% of the
 * token budget (the series' last row), the final bits per byte, the tokens each seed needs to
 * reach a target val loss and how many fewer that is than the baseline's mean. Cells are
 * "mean ± std" over seeds (sample std; "n/a" with one seed).
 */
#ifndef TINYROPE_REPORT_TABLE_H
#define TINYROPE_REPORT_TABLE_H

#include <stdio.h>

#include "scripts/series.h"

/* Writes the target/baseline line and the table for series[0..n) to f. baseline: a label, or
 * NULL for "xpos" if present, else the first series. target: a val loss, or NULL for the
 * baseline's final mean val loss. 0, or -1 with the error set (unknown baseline, missing column). */
int table_write(FILE *f, const Series *series, int n, const char *baseline, const double *target);

/* The whole command: parses `[--baseline LABEL] [--target LOSS] SERIES...` (argv[0] is the program),
 * loads the series and writes the table to out. 0, or -1 with the error set. */
int table_run(int argc, char **argv, FILE *out);

#endif
