/* tok_json.c: the tokenizer as JSON, written and strictly read back (format in tok_json.h). */
#include "cli/tok_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/util.h"

#define TOK_JSON_FORMAT "tinyrope-bpe-json"
#define TOK_JSON_VERSION 1

static char *hex_of(const uint8_t *bytes, int n) {
    static const char digits[] = "0123456789abcdef";
    char *s = xmalloc((size_t)n * 2 + 1);
    for (int i = 0; i < n; i++) {
        s[2 * i] = digits[bytes[i] >> 4];
        s[2 * i + 1] = digits[bytes[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

int tok_json_write(const Tokenizer *tok, const char *path) {
    const int V = tok_vocab_size(tok), n_merges = tok_num_merges(tok), eot = tok_eot_id(tok);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", TOK_JSON_FORMAT);
    cJSON_AddNumberToObject(root, "version", TOK_JSON_VERSION);
    cJSON_AddStringToObject(root, "pattern", "gpt2");
    cJSON_AddNumberToObject(root, "vocab_size", V);
    cJSON_AddNumberToObject(root, "eot_id", eot);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(root, "special_tokens"), TOK_EOT_STRING, eot);
    cJSON *vocab = cJSON_AddArrayToObject(root, "vocab");
    for (int id = 0; id < V; id++) {
        int len;
        const uint8_t *bytes = tok_token_bytes(tok, id, &len);
        char *hex = hex_of(bytes, len);
        cJSON_AddItemToArray(vocab, cJSON_CreateString(hex));
        free(hex);
    }
    cJSON *merges = cJSON_AddArrayToObject(root, "merges");
    int ours = eot == 256 + n_merges && V == 257 + n_merges;
    for (int r = 0; r < n_merges && ours; r++) {
        uint32_t left = 0, right = 0;
        ours = tok_merge(tok, r, &left, &right) == 256 + r;
        const int pair[2] = {(int)left, (int)right};
        cJSON_AddItemToArray(merges, cJSON_CreateIntArray(pair, 2));
    }
    if (!ours) {
        cJSON_Delete(root);
        tr_set_error("%s: cannot write this tokenizer: its ids are not in tinyrope's layout", path);
        return -1;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    TrAtomicFile af;
    int rc = tr_atomic_open(&af, path);
    if (rc == 0) {
        const size_t n = strlen(text);
        if (fwrite(text, 1, n, af.f) != n || fputc('\n', af.f) == EOF) {
            tr_atomic_abort(&af);
            tr_set_error("%s: write failed", path);
            rc = -1;
        } else rc = tr_atomic_commit(&af);
    }
    free(text);
    return rc;
}

/* ---- reading ---- */

static int json_int(const cJSON *item, long long *out) {
    if (!cJSON_IsNumber(item) || item->valuedouble != (double)(long long)item->valuedouble) return -1;
    *out = (long long)item->valuedouble;
    return 0;
}

/* The merges array as (n, 2) ids; NULL + error naming the bad entry. */
static uint32_t (*read_merges(const char *path, const cJSON *merges, int *n_out))[2] {
    if (!cJSON_IsArray(merges)) {
        tr_set_error("%s: merges: missing or not an array", path);
        return NULL;
    }
    const int n = cJSON_GetArraySize(merges);
    uint32_t (*pairs)[2] = xmalloc(((size_t)n + 1) * sizeof *pairs);
    int r = 0;
    for (const cJSON *m = merges->child; m; m = m->next, r++) {
        long long left, right;
        if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2 || json_int(m->child, &left) != 0 ||
            json_int(m->child->next, &right) != 0 || left < 0 || right < 0 || left >= 256 + r || right >= 256 + r) {
            tr_set_error("%s: merges[%d]: must be [left, right], ids of bytes or of earlier merges (< %d)", path, r,
                         256 + r);
            free(pairs);
            return NULL;
        }
        pairs[r][0] = (uint32_t)left;
        pairs[r][1] = (uint32_t)right;
    }
    *n_out = n;
    return pairs;
}

/* Every field but the merges agrees with tok, built from them; 0 / -1 (error set). */
static int check_against(const char *path, const cJSON *root, const Tokenizer *tok) {
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(root, "pattern");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(root, "vocab");
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(root, "special_tokens");
    long long version = 0, V = 0, eot = 0, special_eot = 0;
    if (!cJSON_IsString(format) || strcmp(format->valuestring, TOK_JSON_FORMAT)) {
        tr_set_error("%s: format: not \"%s\"", path, TOK_JSON_FORMAT);
        return -1;
    }
    if (json_int(cJSON_GetObjectItemCaseSensitive(root, "version"), &version) != 0 || version != TOK_JSON_VERSION) {
        tr_set_error("%s: version: only %d is known", path, TOK_JSON_VERSION);
        return -1;
    }
    if (!cJSON_IsString(pattern) || strcmp(pattern->valuestring, "gpt2")) {
        tr_set_error("%s: pattern: only \"gpt2\" is known", path);
        return -1;
    }
    if (json_int(cJSON_GetObjectItemCaseSensitive(root, "vocab_size"), &V) != 0 || V != tok_vocab_size(tok)) {
        tr_set_error("%s: vocab_size: must be 257 + the number of merges (%d)", path, tok_vocab_size(tok));
        return -1;
    }
    if (json_int(cJSON_GetObjectItemCaseSensitive(root, "eot_id"), &eot) != 0 || eot != tok_eot_id(tok) ||
        !cJSON_IsObject(special) || cJSON_GetArraySize(special) != 1 ||
        json_int(cJSON_GetObjectItemCaseSensitive(special, TOK_EOT_STRING), &special_eot) != 0 || special_eot != eot) {
        tr_set_error("%s: eot_id and special_tokens: must both give %s the id %d", path, TOK_EOT_STRING,
                     tok_eot_id(tok));
        return -1;
    }
    if (!cJSON_IsArray(vocab) || cJSON_GetArraySize(vocab) != V) {
        tr_set_error("%s: vocab: must be an array of vocab_size (%lld) hex strings", path, V);
        return -1;
    }
    int id = 0;
    for (const cJSON *entry = vocab->child; entry; entry = entry->next, id++) {
        int len;
        const uint8_t *bytes = tok_token_bytes(tok, id, &len);
        char *hex = hex_of(bytes, len);
        const int same = cJSON_IsString(entry) && !strcmp(entry->valuestring, hex);
        free(hex);
        if (!same) {
            tr_set_error("%s: vocab[%d]: not the hex of the bytes its merges make", path, id);
            return -1;
        }
    }
    return 0;
}

Tokenizer *tok_json_read(const char *path) {
    char *text = tr_read_file(path, NULL);
    if (!text) return NULL;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        tr_set_error("%s: not a JSON object", path);
        return NULL;
    }
    int n_merges = 0;
    uint32_t (*merges)[2] = read_merges(path, cJSON_GetObjectItemCaseSensitive(root, "merges"), &n_merges);
    Tokenizer *tok = NULL;
    if (merges && !(tok = tok_from_merges((const uint32_t (*)[2])merges, n_merges))) {
        char why[512];
        snprintf(why, sizeof why, "%s", tr_error());
        tr_set_error("%s: merges: %s", path, why);
    }
    if (tok && check_against(path, root, tok) != 0) {
        tok_free(tok);
        tok = NULL;
    }
    free(merges);
    cJSON_Delete(root);
    return tok;
}
