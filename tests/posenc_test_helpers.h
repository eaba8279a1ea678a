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

/* The option sets the tests run for every registered kind: {"kind": name} with its defaults, then
 * one per entry of the kind's test_options. Writes up to max JSON texts into out; returns how
 * many. A new kind is covered by walking the registry, without editing any test. */
static inline int posenc_test_option_sets(char (*out)[256], int max) {
    int n = 0;
    for (int k = 0; posenc_kinds[k]; k++) {
        const PosEncKind *kind = posenc_kinds[k];
        if (n < max) snprintf(out[n++], 256, "{\"kind\": \"%s\"}", kind->name);
        for (int i = 0; kind->test_options && kind->test_options[i] && n < max; i++) {
            const char *rest = kind->test_options[i];
            while (*rest == ' ' || *rest == '{') rest++;   /* the options after their opening brace */
            snprintf(out[n++], 256, "{\"kind\": \"%s\", %s", kind->name, rest);
        }
    }
    return n;
}

#endif
