/* plot.c: one figure (PNG) of training curves, one line per config with its seeds' min-max band.
 *
 *   build/plot --out fig.png [--x tokens] [--y val_loss] [--log-x] [--log-y] [--ymin V] [--ymax V]
 *              [--title T] [--xlabel T] [--ylabel T] [--width W --height H]
 *              [--legend-right] [--mark-x V [--mark-label T]] [--minus LABEL]
 *              LABEL=run1/log.csv[,run2/log.csv...] ...
 *
 * See report_plot.h for what is drawn. */
#include "base/util.h"
#include "cli/args.h"
#include "scripts/report_plot.h"

int main(int argc, char **argv) {
    if (plot_run(argc, argv) != 0) tr_die_with_error();
    return 0;
}
