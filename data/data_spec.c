/* data_spec.c: loads and checks a data spec (data_spec.h): the train and val lists, each input's
 * path, format and skip, every mistake reported with the spec file and the key. shard_writer.c
 * encodes the inputs of a spec into shards.
 */
#define _POSIX_C_SOURCE 200809L
#include "data/data_spec.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/shard_format.h"
#include "base/util.h"

static void data_inputs_free(DataInput *inputs, int n) {
    if (!inputs) return;
    for (int i = 0; i < n; i++) free(inputs[i].path);
    free(inputs);
}

void data_spec_free(DataSpec *spec) {
    if (!spec) return;
    data_inputs_free(spec->train, spec->n_train);
    data_inputs_free(spec->val, spec->n_val);
    memset(spec, 0, sizeof *spec);
}

/* One {"path", "format", "skip"} entry; key is e.g. "train[0]" for the messages. */
static int parse_input(const char *json_path, const char *key, const cJSON *item, DataInput *out) {
    if (!cJSON_IsObject(item)) {
        tr_set_error("%s: %s: expected an object {\"path\": ..., \"format\": ..., \"skip\": ...}",
                     json_path, key);
        return -1;
    }
    int seen_format = 0, seen_skip = 0;
    const cJSON *field;
    cJSON_ArrayForEach(field, item) {
        const char *name = field->string;
        if (strcmp(name, "path") == 0) {
            if (out->path) {
                tr_set_error("%s: %s.path: key given twice", json_path, key);
                return -1;
            }
            if (!cJSON_IsString(field) || field->valuestring[0] == '\0') {
                tr_set_error("%s: %s.path: expected a non-empty string", json_path, key);
                return -1;
            }
            out->path = xstrdup(field->valuestring);
        } else if (strcmp(name, "format") == 0) {
            if (seen_format++) {
                tr_set_error("%s: %s.format: key given twice", json_path, key);
                return -1;
            }
            if (!cJSON_IsString(field)) {
                tr_set_error("%s: %s.format: expected a string", json_path, key);
                return -1;
            }
            if (text_format_parse(field->valuestring, &out->format) != 0) {
                tr_set_error("%s: %s.format: unknown format \"%s\" (expected auto, hf-txt, lines, "
                             "json, jsonl or csv)", json_path, key, field->valuestring);
                return -1;
            }
        } else if (strcmp(name, "skip") == 0) {
            uint64_t skip;
            if (seen_skip++) {
                tr_set_error("%s: %s.skip: key given twice", json_path, key);
                return -1;
            }
            if (!json_number_to_u64(field, &skip) || skip > (uint64_t)0x7fffffff) {
                tr_set_error("%s: %s.skip: expected a non-negative integer (stories to skip)",
                             json_path, key);
                return -1;
            }
            out->skip = (long)skip;
        } else {
            tr_set_error("%s: %s: unknown key \"%s\" (expected path, format, skip)", json_path, key,
                         name);
            return -1;
        }
    }
    if (!out->path) {
        tr_set_error("%s: %s: missing key \"path\"", json_path, key);
        return -1;
    }
    struct stat st;
    if (stat(out->path, &st) != 0) {
        tr_set_error("%s: cannot open input file (%s in %s): %s", out->path, key, json_path,
                     strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        tr_set_error("%s: input is not a regular file (%s in %s)", out->path, key, json_path);
        return -1;
    }
    return 0;
}

/* A data spec names a handful of files: anything larger is not one (and /dev/zero never ends). */
#define DATA_SPEC_MAX_BYTES ((size_t)1 << 20)

int data_spec_load(const char *json_path, DataSpec *out) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = tr_read_file_at_most(json_path, DATA_SPEC_MAX_BYTES, "a data spec", &len);
    if (!text) return -1;
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &parse_end, 1);
    if (!root) {
        long at = parse_end ? (long)(parse_end - text) : 0;
        tr_set_error("%s: malformed JSON near byte %ld", json_path, at);
        free(text);
        return -1;
    }
    free(text);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        tr_set_error("%s: expected an object {\"train\": [...], \"val\": [...]}", json_path);
        goto done;
    }
    const cJSON *lists[N_SPLITS] = {NULL, NULL};
    const cJSON *field;
    cJSON_ArrayForEach(field, root) {
        int s = -1;
        for (int k = 0; k < N_SPLITS; k++)
            if (strcmp(field->string, split_names[k]) == 0) s = k;
        if (s < 0) {
            tr_set_error("%s: unknown key \"%s\" (expected train, val)", json_path, field->string);
            goto done;
        }
        if (lists[s]) {
            tr_set_error("%s: %s: key given twice", json_path, split_names[s]);
            goto done;
        }
        if (!cJSON_IsArray(field) || cJSON_GetArraySize(field) == 0) {
            tr_set_error("%s: %s: expected a non-empty list of inputs", json_path, split_names[s]);
            goto done;
        }
        lists[s] = field;
    }
    for (int s = 0; s < N_SPLITS; s++) {
        if (!lists[s]) {
            tr_set_error("%s: missing key \"%s\"", json_path, split_names[s]);
            goto done;
        }
        int n = cJSON_GetArraySize(lists[s]);
        DataInput *inputs = xcalloc((size_t)n, sizeof *inputs);
        if (s == SPLIT_TRAIN) { out->train = inputs; out->n_train = n; }
        else { out->val = inputs; out->n_val = n; }
        int i = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, lists[s]) {
            char key[48];
            snprintf(key, sizeof key, "%s[%d]", split_names[s], i);
            if (parse_input(json_path, key, item, &inputs[i]) != 0) goto done;
            i++;
        }
    }
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc != 0) data_spec_free(out);
    return rc;
}
