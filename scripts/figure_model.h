/* figure_model.h: the teaching figures read out of a trained model (scripts/figure.c draws them):
 *   attention maps: the attention probabilities of every layer and head on a validation window;
 *   HDD-RoPE's motion: how far each token turns the running product P_t.
 *
 * How far P moves at token t, per chunk: M_t = P_{t-1}^T P_t (P_{-1} = I), the step the token took,
 * read back from the P_t the forward saved, so it measures what the scan did whatever the map
 * (exponential or Cayley) and whatever built the generator. Its size is given as an angle: a
 * rotation by theta in one plane has ||M - I||_F^2 = 8 sin^2(theta/2), so
 *     angle_t = 2 asin(min(1, ||M_t - I||_F / sqrt(8)))
 * is that rotation's angle, and for steps in several planes the angle of one plane rotation as far
 * from I. The figure shows its mean over the heads and chunks of each layer.
 */
#ifndef TINYROPE_FIGURE_MODEL_H
#define TINYROPE_FIGURE_MODEL_H

#include "model/gpt.h"

/* angle[l * n + t] for every layer l and position t < n, after a forward of (B, T) = (1, n) of a
 * model whose posenc is HDD-RoPE. */
void figure_hdd_step_angles(const GPT *model, int n, double *angle);

/* The heat colour of v in [0, 1]: white at 0 to full colour `full` at 1. */
void figure_heat_colour(double v, const unsigned char full[3], unsigned char rgb[3]);

/* PNG of the attention probabilities att (L, NH, n, n) (row = query, column = key), one panel per
 * head, one row of panels per layer; labels[t] is token t's text, listed under the panels.
 * 0 or -1 (error set). */
int figure_attention_png(const float *att, int L, int NH, int n, char *const *labels, const char *out);

/* PNG of angle (L, n) as one strip of cells per layer, each token's label under its column.
 * 0 or -1 (error set). */
int figure_motion_png(const double *angle, int L, int n, char *const *labels, const char *out);

/* The commands: the run directory's checkpoint on the first n tokens of its validation window
 * `window`, the PNG at out, and unless csv is NULL the numbers at csv (attention:
 * layer,head,query,key,probability; motion: layer,position,token,angle). They print one error
 * line and exit on bad input (cli/args.h). */
void figure_attention_run(const char *dir, int window, int n, const char *out, const char *csv);
void figure_motion_run(const char *dir, int window, int n, const char *out, const char *csv);

#endif
