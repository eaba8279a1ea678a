/* figure_posenc.h: what the teaching figures of the positional encodings compute (scripts/figure.c
 * draws them): every number comes out of the kind's own forward (its qk_forward hook), not out of a
 * second copy of its formula, so a figure shows the code that trains.
 *
 * Setting: one layer, one head of size hs (C = hs), every q and k equal to all-ones, positions
 * 0 .. n-1 in one forward. Pair j is channels (2j, 2j+1), read as the complex number
 * x_2j + i x_2j+1. For the kinds that turn pairs (RoPE, xPos, static HDD-RoPE at its RoPE init)
 * the rotated query at position m and the key at 0 give, per pair,
 *     z_j(m) = q~_m,j * conj(k~_0,j) / 2,     so the score q~_m . k~_0 = 2 * sum_j Re z_j(m)
 * (the 1/2 makes |z_j| = 1 for RoPE: |1 + i|^2 = 2).
 *
 * Long-term decay (Su et al., "RoFormer", 2021, section 3.4.3): with S_j(m) = z_0(m) + ... + z_{j-1}(m),
 *     bound(m) = (2/hs) * sum_{j=1..hs/2} |S_j(m)|,
 * the factor by which the relative score q . k of any q, k can grow with distance m. For RoPE it
 * is (2/hs) * sum_j |sum_{k<j} e^{i m theta_k}|, theta_k = 10000^(-2k/hs); at m = 0 it is (hs/2 + 1)/2.
 */
#ifndef TINYROPE_FIGURE_POSENC_H
#define TINYROPE_FIGURE_POSENC_H

/* The rotated all-ones query and key of positions 0 .. n-1 of the kind posenc_json (a "posenc"
 * object, e.g. {"kind":"xpos","variant":"author"}) with head size hs: q_out and k_out (n, hs),
 * caller frees. n is cut to the kind's max_positions (that many rows are written); returns the
 * number of positions, or -1 with the error set (bad JSON, an option the kind refuses, a kind that
 * adds absolute positions or forms its own scores: no rotated q and k to show). */
int figure_rotated_ones(const char *posenc_json, int hs, int n, float **q_out, float **k_out);

/* bound[m] for m = 0 .. n-1 from the rows figure_rotated_ones gave (see above). */
void figure_decay_bound(const float *q, const float *k, int n, int hs, double *bound);

/* angle[p * (hs/2) + j]: how far pair j of the query at position p has turned from position 0, in
 * radians, unwrapped (each step's change taken in (-pi, pi]), for p = 0 .. n-1. */
void figure_pair_angles(const float *q, int n, int hs, double *angle);

#endif
