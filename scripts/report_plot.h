/* report_plot.h: the figure of scripts/plot.c, as functions the tests call.
 *
 * A figure as papers print it: white background, an axes box with light grid lines at "nice"
 * ticks (1, 2 or 5 x 10^k; decades on log axes) and their labels (200k, 1.2M for big numbers),
 * axis labels, a title, and per series (one config) the seed mean as a 2-px anti-aliased line over
 * the seeds' min-max band in a light translucent fill of the same colour, with a legend. Colours
 * are the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), safe for colour-blind
 * readers. Text is stb_easy_font's segment font drawn at 2x; the PNG is written by
 * stb_image_write.
 */
#ifndef TINYROPE_REPORT_PLOT_H
#define TINYROPE_REPORT_PLOT_H

#include "scripts/series.h"

typedef struct {
    const char *out;                    /* the PNG path */
    const char *xcol, *ycol;            /* columns (default tokens, val_loss) */
    const char *title, *xlabel, *ylabel; /* NULL: no title; the column names for the labels */
    int log_x, log_y;
    int width, height;                  /* pixels (default 800 x 500) */
    double ymin, ymax;                  /* NAN: fit the data (with a small margin) */
    int bin;                            /* average every `bin` rows into one point (default 1) */
    int legend_right;                   /* the legend right of the plot area, off the data (default:
                                           inside, in the emptiest corner) */
    double mark_x;                      /* NAN, or a dashed vertical line at this x ... */
    const char *mark_label;             /* ... labelled so (NULL: "x = value") */
    const char *minus;                  /* NULL, or the label of a series whose seed-mean y is
                                           subtracted, row by row, from every series (the
                                           difference to a baseline; the x must match) */
} PlotOptions;

void plot_default_options(PlotOptions *o);

/* Renders the figure into *rgb (width x height x 3 bytes, row-major, caller frees) and gives the
 * plot area in pixels (area = {x0, y0, x1, y1}, inclusive-exclusive; may be NULL). 0, or -1 with
 * the error set (a missing column names its file; a log axis needs positive values). */
int plot_render(const PlotOptions *o, const Series *series, int n, unsigned char **rgb, int area[4]);
/* plot_render, then the PNG at o->out. 0 or -1 (error set). */
int plot_write(const PlotOptions *o, const Series *series, int n);
/* The colour of series i: the palette, repeating. */
void plot_series_color(int i, unsigned char rgb[3]);

/* Drawing helpers for figures that are not curves (scripts/figure_model.c), on an RGB image of
 * w x h pixels (3 bytes each, row-major) in the same font and colours as the curves. Pixels outside
 * the image are skipped. */
void plot_draw_text(unsigned char *rgb, int w, int h, int x, int y, const char *s, const unsigned char color[3],
                    int rotated);  /* rotated: reads bottom to top, (x, y) its bottom-left corner */
int plot_text_width(const char *s);
int plot_text_height(void);        /* a capital letter's height in pixels */
void plot_fill_rect(unsigned char *rgb, int w, int h, int x0, int y0, int x1, int y1, const unsigned char color[3]);
/* The image as a PNG at path, through a temporary file (never half a PNG). 0 or -1 (error set). */
int plot_write_png(const char *path, const unsigned char *rgb, int w, int h);

/* The whole command (argv[0] is the program): parses the options and series, writes the PNG.
 * 0, or -1 with the error set (bad option, bad file). */
int plot_run(int argc, char **argv);

#endif
