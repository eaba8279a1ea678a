/* bias_alibi.c: ALiBi (Press et al., "Train Short, Test Long", ICLR 2022; docs/posenc.md §8) as a score bias
 * (posenc.h): the score of query i and key j <= i drops by m_h (i - j), a fixed slope per head,
 * so a[t] = -m_h t. No parameters; any position is computed, so no length limit.
 *
 * The slopes: for n heads a power of two, m_h = 2^(-8 h / n), h = 1 .. n (a geometric sequence
 * from 2^(-8/n) down to 2^-8). For other n, the n0 = 2^floor(log2 n) slopes of n0 heads, then
 * the first n - n0 of the odd-numbered slopes of 2 n0 heads (h = 1, 3, 5, ...), which fall
 * between them. tests/test_bias.c checks both against the numbers written out for 8 and 12 heads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/posenc.h"

typedef struct {
    int NH;
    float slope[]; /* (NH) */
} Alibi;

/* ALiBi's slope of head h (0-based) among n heads. */
static double alibi_slope(int h, int n) {
    int n0 = 1;
    while (2 * n0 <= n) n0 *= 2;
    if (h < n0) return pow(2.0, -8.0 * (h + 1) / n0);
    return pow(2.0, -8.0 * (2 * (h - n0) + 1) / (2 * n0));
}

static int alibi_configure(PosEnc *pe, const cJSON *options) {
    static const char *const known[] = {"kind", NULL};
    if (posenc_check_bias_option_keys(options, "alibi", known) != 0) return -1;
    const int NH = pe->dims.NH;
    Alibi *al = xmalloc(sizeof *al + (size_t)NH * sizeof(float));
    al->NH = NH;
    for (int h = 0; h < NH; h++) al->slope[h] = (float)alibi_slope(h, NH);
    pe->bias_impl = al;
    return 0;
}

static void alibi_forward(const PosEnc *pe, int l, float *a, const float *qkv, const float *params, float *state,
                          int B, int T, int pos0) {
    const Alibi *al = pe->bias_impl;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < al->NH; h++) {
            float *row = a + ((size_t)b * al->NH + h) * T;
            for (int t = 0; t < T; t++) row[t] = -al->slope[h] * (float)(pos0 + t);
        }
}

const ScoreBiasKind bias_alibi = {
    .name = "alibi",
    .summary = "ALiBi: the score drops by a fixed slope per head times the distance",
    .configure = alibi_configure,
    .forward = alibi_forward,
};
