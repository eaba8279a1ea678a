/* figure_posenc.c: the numbers behind the positional-encoding figures (see figure_posenc.h). */
#include "scripts/figure_posenc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/util.h"
#include "model/posenc.h"

#define FIGURE_PI 3.14159265358979323846

int figure_rotated_ones(const char *posenc_json, int hs, int n, float **q_out, float **k_out) {
    *q_out = *k_out = NULL;
    if (hs < 2 || hs % 2 || n < 1) {
        tr_set_error("figure: head size %d and %d positions: need an even head size and a position", hs, n);
        return -1;
    }
    cJSON *options = cJSON_Parse(posenc_json);
    if (!options) {
        tr_set_error("figure: posenc '%s' is not JSON", posenc_json);
        return -1;
    }
    /* A kind with fixed tables (the author's xPos) refuses a longer context: ask it first. */
    PosEnc pe;
    ModelDims dims = {.L = 1, .C = hs, .NH = 1, .hs = hs, .max_T = 1};
    int rc = posenc_create(&pe, options, dims);
    if (rc == 0) {
        int limit = posenc_max_positions(&pe);
        if (limit > 0 && n > limit) n = limit;
        posenc_destroy(&pe);
        dims.max_T = n;
        rc = posenc_create(&pe, options, dims);
    }
    cJSON_Delete(options);
    if (rc != 0) return -1;
    if (pe.kind->embed_forward || pe.kind->scores_forward || pe.bias) {
        tr_set_error("figure: posenc '%s' does not act by turning q and k alone (it adds absolute positions, "
                     "forms its own scores or adds a score bias)", posenc_json);
        posenc_destroy(&pe);
        return -1;
    }

    /* The kind's parameters and extra rows as a fresh model has them (seeded, so the same every time). */
    long S = posenc_qkv_stride(&pe);
    int E = posenc_num_extra(&pe);
    size_t np = posenc_num_params(&pe);
    size_t nacts = pe.kind->num_acts ? pe.kind->num_acts(&pe, 1, n) : 0;
    float *params = xcalloc(np ? np : 1, sizeof *params);
    float *extra_w = xcalloc(E ? (size_t)E * hs : 1, sizeof *extra_w);
    float *acts = xcalloc(nacts ? nacts : 1, sizeof *acts);
    float *qkv = xcalloc((size_t)n * S, sizeof *qkv);
    float *x = xcalloc((size_t)n * hs, sizeof *x);  /* the layernorm output: dynamic kinds read it, zero here */
    if (pe.kind->init) pe.kind->init(&pe, params, extra_w, (size_t)E * hs, 1);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < 2 * hs; i++) qkv[t * S + i] = 1.0f;
    if (pe.kind->qk_forward) pe.kind->qk_forward(&pe, 0, qkv, x, params, acts, NULL, 1, n, 0);

    float *q = xmalloc((size_t)n * hs * sizeof *q), *k = xmalloc((size_t)n * hs * sizeof *k);
    for (int t = 0; t < n; t++) {
        memcpy(q + (size_t)t * hs, qkv + t * S, (size_t)hs * sizeof *q);
        memcpy(k + (size_t)t * hs, qkv + t * S + hs, (size_t)hs * sizeof *k);
    }
    free(params);
    free(extra_w);
    free(acts);
    free(qkv);
    free(x);
    posenc_destroy(&pe);
    *q_out = q;
    *k_out = k;
    return n;
}

void figure_decay_bound(const float *q, const float *k, int n, int hs, double *bound) {
    const float *k0 = k;  /* the key at position 0 */
    for (int m = 0; m < n; m++) {
        const float *qm = q + (size_t)m * hs;
        double sre = 0, sim = 0, total = 0;
        for (int j = 0; j < hs / 2; j++) {
            /* z_j = q~ conj(k~) / 2 */
            double a = qm[2 * j], b = qm[2 * j + 1], c = k0[2 * j], d = k0[2 * j + 1];
            sre += (a * c + b * d) / 2;
            sim += (b * c - a * d) / 2;
            total += sqrt(sre * sre + sim * sim);  /* |S_{j+1}| */
        }
        bound[m] = total * 2.0 / hs;
    }
}

void figure_pair_angles(const float *q, int n, int hs, double *angle) {
    int pairs = hs / 2;
    for (int j = 0; j < pairs; j++) {
        double turned = 0, prev = atan2(q[2 * j + 1], q[2 * j]);
        for (int p = 0; p < n; p++) {
            double now = atan2(q[(size_t)p * hs + 2 * j + 1], q[(size_t)p * hs + 2 * j]);
            double step = remainder(now - prev, 2 * FIGURE_PI);  /* in [-pi, pi] */
            turned += p ? step : 0;
            prev = now;
            angle[(size_t)p * pairs + j] = turned;
        }
    }
}
