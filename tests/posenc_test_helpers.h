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
 * one per entry of the kind's test_options; then every registered score bias, alone (on NoPE)
 * and on RoPE. Writes up to max JSON texts into out; returns how many. A new kind or bias is
 * covered by walking the registries, without editing any test. */
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
    for (int b = 0; posenc_bias_kinds[b]; b++) {
        if (n < max) snprintf(out[n++], 256, "{\"kind\": \"none\", \"bias\": \"%s\"}", posenc_bias_kinds[b]->name);
        if (n < max) snprintf(out[n++], 256, "{\"kind\": \"rope\", \"bias\": {\"kind\": \"%s\"}}", posenc_bias_kinds[b]->name);
    }
    return n;
}

#endif
