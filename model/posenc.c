/* posenc.c: the registry of positional-encoding kinds (posenc.h), posenc_create/posenc_destroy,
 * and the option-reading helpers every kind's configure uses (declared at the end of posenc.h),
 * so that all kinds word their errors the same way ("posenc.<key>: what is wrong").
 */
#include "model/posenc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* The registered kinds, one line each: a kind named N is `const PosEncKind posenc_N` in
 * model/posenc_N.c. Every test that covers kinds walks posenc_kinds, so a new line here is all
 * it takes for the kind to be built, configured, gradient-checked and trained by the tests. */
#define POSENC_KIND_LIST(KIND) \
    KIND(none)                 \
    KIND(learned)              \
    KIND(rope)                 \
    KIND(xpos)                 \
    KIND(hddrope)              \
    KIND(path)

#define DECLARE_KIND(name) extern const PosEncKind posenc_##name;
POSENC_KIND_LIST(DECLARE_KIND)
#define KIND_ENTRY(name) &posenc_##name,
const PosEncKind *const posenc_kinds[] = {POSENC_KIND_LIST(KIND_ENTRY) NULL};

/* The registered score biases: `const ScoreBiasKind bias_N` in model/bias_N.c. */
#define BIAS_KIND_LIST(KIND) \
    KIND(alibi)                \
    KIND(fox)

#define DECLARE_BIAS(name) extern const ScoreBiasKind bias_##name;
BIAS_KIND_LIST(DECLARE_BIAS)
#define BIAS_ENTRY(name) &bias_##name,
const ScoreBiasKind *const posenc_bias_kinds[] = {BIAS_KIND_LIST(BIAS_ENTRY) NULL};

/* Writes names (up to a NULL or max_count of them) comma-separated ("kind, base") into buf. */
static void join_names(char *buf, size_t cap, const char *const names[], int max_count) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < max_count && names[i]; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
}

/* "none, learned, rope, xpos": the registered kinds, for error messages. */
static void kinds_list(char *buf, size_t cap) {
    const char *names[64];
    int n = 0;
    for (; n < 64 && posenc_kinds[n]; n++) names[n] = posenc_kinds[n]->name;
    join_names(buf, cap, names, n);
}
static void bias_kinds_list(char *buf, size_t cap) {
    const char *names[64];
    int n = 0;
    for (; n < 64 && posenc_bias_kinds[n]; n++) names[n] = posenc_bias_kinds[n]->name;
    join_names(buf, cap, names, n);
}

/* options["bias"] (present): a bias name, or an object naming it in "kind". Sets pe->bias and
 * configures it. 0 / -1 (error set). */
static int configure_bias(PosEnc *pe, const cJSON *item) {
    char list[256];
    bias_kinds_list(list, sizeof list);
    const cJSON *name = cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "kind") : item;
    if (!cJSON_IsString(name) || !name->valuestring) {
        tr_set_error("posenc.bias: must be a bias name or an object such as {\"kind\": \"alibi\"} (known: %s)", list);
        return -1;
    }
    for (int i = 0; posenc_bias_kinds[i] && !pe->bias; i++)
        if (strcmp(posenc_bias_kinds[i]->name, name->valuestring) == 0) pe->bias = posenc_bias_kinds[i];
    if (!pe->bias) {
        tr_set_error("posenc.bias: unknown bias \"%s\" (known: %s)", name->valuestring, list);
        return -1;
    }
    return pe->bias->configure ? pe->bias->configure(pe, cJSON_IsObject(item) ? item : NULL) : 0;
}

/* ---- helpers for the kinds' configure (declared in posenc.h) ---- */

/* Every key of `options` (NULL: none) must be in known[] (NULL-terminated, "kind" included);
 * the error names the key under `prefix` ("posenc." or "posenc.bias."). */
static int check_keys(const cJSON *options, const char *prefix, const char *what, const char *const known[]) {
    for (const cJSON *item = options ? options->child : NULL; item; item = item->next) {
        int found = 0;
        for (int i = 0; known[i] && !found; i++) found = item->string && strcmp(item->string, known[i]) == 0;
        if (!found) {
            char list[256];
            join_names(list, sizeof list, known, 64);
            tr_set_error("%s%s: unknown option for %s (known: %s)", prefix, item->string ? item->string : "?", what, list);
            return -1;
        }
    }
    return 0;
}

int posenc_check_option_keys(const cJSON *options, const char *kind, const char *const known[]) {
    char what[96];
    snprintf(what, sizeof what, "kind %s", kind);
    return check_keys(options, "posenc.", what, known);
}

int posenc_check_bias_option_keys(const cJSON *options, const char *bias, const char *const known[]) {
    char what[96];
    snprintf(what, sizeof what, "bias %s", bias);
    return check_keys(options, "posenc.bias.", what, known);
}

/* options[key] as a finite number, or fallback when absent. 0 / -1 (error set). */
int posenc_number_option(const cJSON *options, const char *key, double fallback, double *value) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(options, key);
    if (!item) {
        *value = fallback;
        return 0;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) {
        tr_set_error("posenc.%s: must be a number", key);
        return -1;
    }
    *value = item->valuedouble;
    return 0;
}

/* options[key] as a string, or fallback when absent. 0 / -1 (error set). */
int posenc_string_option(const cJSON *options, const char *key, const char *fallback, const char **value) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(options, key);
    if (!item) {
        *value = fallback;
        return 0;
    }
    if (!cJSON_IsString(item) || !item->valuestring) {
        tr_set_error("posenc.%s: must be a string", key);
        return -1;
    }
    *value = item->valuestring;
    return 0;
}

/* ---- create / destroy ---- */

int posenc_create(PosEnc *pe, const cJSON *options, ModelDims dims) {
    memset(pe, 0, sizeof *pe);
    char list[256];
    kinds_list(list, sizeof list);
    if (!cJSON_IsObject(options)) {
        tr_set_error("posenc: must be an object such as {\"kind\": \"rope\"} (known kinds: %s)", list);
        return -1;
    }
    if (dims.L < 1 || dims.C < 1 || dims.NH < 1 || dims.hs < 1 || dims.max_T < 1 || dims.NH * dims.hs != dims.C) {
        tr_set_error("posenc: bad model dimensions (L %d, C %d, NH %d, hs %d, max_T %d)", dims.L, dims.C, dims.NH,
                     dims.hs, dims.max_T);
        return -1;
    }
    const cJSON *kind_item = cJSON_GetObjectItemCaseSensitive(options, "kind");
    if (!kind_item) {
        tr_set_error("posenc.kind: missing (known: %s)", list);
        return -1;
    }
    if (!cJSON_IsString(kind_item) || !kind_item->valuestring) {
        tr_set_error("posenc.kind: must be a string (known: %s)", list);
        return -1;
    }
    const PosEncKind *kind = NULL;
    for (int i = 0; posenc_kinds[i] && !kind; i++)
        if (strcmp(posenc_kinds[i]->name, kind_item->valuestring) == 0) kind = posenc_kinds[i];
    if (!kind) {
        tr_set_error("posenc.kind: unknown kind \"%s\" (known: %s)", kind_item->valuestring, list);
        return -1;
    }
    pe->kind = kind;
    pe->dims = dims;
    /* The kind sees its own options: "bias" belongs to the score bias. */
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(options, "bias");
    cJSON *own = bias ? cJSON_Duplicate(options, 1) : NULL;
    if (own) cJSON_DeleteItemFromObjectCaseSensitive(own, "bias");
    int rc = kind->configure ? kind->configure(pe, own ? own : options) : 0;
    cJSON_Delete(own);
    if (rc == 0 && bias) rc = configure_bias(pe, bias);
    if (rc != 0) {
        posenc_destroy(pe);
        return -1;
    }
    return 0;
}

void posenc_destroy(PosEnc *pe) {
    if (pe->kind && pe->kind->destroy) pe->kind->destroy(pe);
    else free(pe->impl);
    free(pe->bias_impl);
    memset(pe, 0, sizeof *pe);
}

void posenc_describe(const PosEnc *pe, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s", pe->kind ? pe->kind->name : "?", pe->bias ? " + " : "", pe->bias ? pe->bias->name : "");
}

int posenc_max_positions(const PosEnc *pe) {
    return pe->kind && pe->kind->max_positions ? pe->kind->max_positions(pe) : 0;
}
