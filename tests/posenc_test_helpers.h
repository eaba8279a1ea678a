/* posenc_test_helpers.h: what the positional-encoding tests share. */
#ifndef TINYROPE_POSENC_TEST_HELPERS_H
#define TINYROPE_POSENC_TEST_HELPERS_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "model/posenc.h"

static inline ModelDims make_dims(int C, int NH, int max_T) {
    ModelDims d = {.L = 2, .C = C, .NH = NH, .hs = C / NH, .max_T = max_T};
    return d;
}

/* posenc_create from a JSON text; 0 or -1 (error set). */
static inline int create_json(PosEnc *pe, const char *json, ModelDims d) {
    cJSON *opts = cJSON_Parse(json);
    if (!opts) {
        fprintf(stderr, "  bad test JSON: %s\n", json);
        return -1;
    }
    int rc = posenc_create(pe, opts, d);
    cJSON_Delete(opts);
    return rc;
}

#endif
