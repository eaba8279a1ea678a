/* table.c: the comparison table of training runs, as Markdown on stdout.
 *
 *   build/table [--baseline LABEL] [--target LOSS] LABEL=run1/log.csv[,run2/log.csv...] ...
 *
 * One row per series (one config, one log.csv per seed); see report_table.h for the columns. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"
#include "scripts/report_table.h"

int main(int argc, char **argv) {
    if (table_run(argc, argv, stdout) != 0) tr_die_with_error();
    /* stdout is usually redirected into a report file: a full disk must not pass silently */
    if (fflush(stdout) != 0 || ferror(stdout)) tr_die("table: cannot write the table to stdout: %s", strerror(errno));
    return 0;
}
