/* safetensors.c: write and strictly read safetensors files (the format is in safetensors.h). */
#include "cli/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* The byte widths of the dtypes the format names; a tensor of another dtype is an error. */
static const struct {
    const char *name;
    int bytes;
} dtype_widths[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
                    {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1},
                    {"F8_E5M2", 1}};

static int dtype_width(const char *dtype) {
    for (size_t i = 0; i < sizeof dtype_widths / sizeof dtype_widths[0]; i++)
        if (!strcmp(dtype, dtype_widths[i].name)) return dtype_widths[i].bytes;
    return 0;
}

static uint64_t element_count(const int64_t *shape, int ndim) {
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (uint64_t)shape[d];
    return n;
}

/* ---- writing ---- */

int st_write(const char *path, const StTensorOut *tensors, int n, const cJSON *metadata) {
    cJSON *header = cJSON_CreateObject();
    if (metadata) cJSON_AddItemToObject(header, "__metadata__", cJSON_Duplicate(metadata, 1));
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StTensorOut *t = &tensors[i];
        const uint64_t bytes = element_count(t->shape, t->ndim) * sizeof(float);
        cJSON *entry = cJSON_AddObjectToObject(header, t->name);
        cJSON_AddStringToObject(entry, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *json = cJSON_PrintUnformatted(header);
    cJSON_Delete(header);
    /* Spaces after the JSON put the data area (at 8 + N) on an 8-byte boundary. */
    const size_t json_len = strlen(json), header_len = (json_len + 7) / 8 * 8;
    uint8_t prefix[8];
    tr_put_le64(prefix, header_len);

    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) {
        free(json);
        return -1;
    }
    int bad = fwrite(prefix, 1, 8, af.f) != 8;
    bad |= fwrite(json, 1, json_len, af.f) != json_len;
    for (size_t i = json_len; i < header_len; i++) bad |= fputc(' ', af.f) == EOF;
    /* float32 in memory is little-endian on every machine tinyrope builds for (as checkpoint.bin). */
    for (int i = 0; i < n; i++) {
        const size_t count = (size_t)element_count(tensors[i].shape, tensors[i].ndim);
        bad |= fwrite(tensors[i].data, sizeof(float), count, af.f) != count;
    }
    free(json);
    if (bad) {
        tr_atomic_abort(&af);
        tr_set_error("%s: write failed", path);
        return -1;
    }
    return tr_atomic_commit(&af);
}

/* ---- reading ---- */

/* item as a whole number in [0, 2^53), or -1. */
static int64_t json_count(const cJSON *item) {
    if (!cJSON_IsNumber(item)) return -1;
    const double v = item->valuedouble;
    if (!(v >= 0 && v < 9007199254740992.0) || v != floor(v)) return -1;
    return (int64_t)v;
}

static int parse_metadata(const char *path, const cJSON *meta) {
    if (!cJSON_IsObject(meta)) {
        tr_set_error("%s: __metadata__ is not an object", path);
        return -1;
    }
    for (const cJSON *m = meta->child; m; m = m->next)
        if (!cJSON_IsString(m)) {
            tr_set_error("%s: __metadata__.%s is not a string (the format allows only strings)", path, m->string);
            return -1;
        }
    return 0;
}

/* One tensor entry of the header into t (name not yet set); the error names the tensor. */
static int parse_entry(const char *path, const cJSON *entry, StTensorIn *t) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry)) {
        tr_set_error("%s: tensor %s: not an object", path, name);
        return -1;
    }
    for (const cJSON *k = entry->child; k; k = k->next)
        if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets")) {
            tr_set_error("%s: tensor %s: unknown key \"%s\"", path, name, k->string);
            return -1;
        }
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype) || !dtype_width(dtype->valuestring) || strlen(dtype->valuestring) >= sizeof t->dtype) {
        tr_set_error("%s: tensor %s: dtype missing or not one the format names", path, name);
        return -1;
    }
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype->valuestring);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ST_MAX_DIMS) {
        tr_set_error("%s: tensor %s: shape missing or has more than %d dimensions", path, name, ST_MAX_DIMS);
        return -1;
    }
    t->ndim = 0;
    long double elements = 1;
    for (const cJSON *d = shape->child; d; d = d->next) {
        if ((t->shape[t->ndim] = json_count(d)) < 0) {
            tr_set_error("%s: tensor %s: shape holds something other than a size", path, name);
            return -1;
        }
        elements *= (long double)t->shape[t->ndim++];
    }
    int64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || (begin = json_count(offsets->child)) < 0 ||
        (end = json_count(offsets->child->next)) < 0 || end < begin) {
        tr_set_error("%s: tensor %s: data_offsets must be [begin, end] with 0 <= begin <= end", path, name);
        return -1;
    }
    t->begin = (uint64_t)begin;
    t->end = (uint64_t)end;
    const long double needed = elements * dtype_width(t->dtype);
    if (needed != (long double)(t->end - t->begin)) {
        tr_set_error("%s: tensor %s: data_offsets span %llu bytes, its dtype and shape need %.0Lf", path, name,
                     (unsigned long long)(t->end - t->begin), needed);
        return -1;
    }
    return 0;
}

static int by_range(const void *a, const void *b) {
    const StTensorIn *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The ranges, sorted, must tile [0, data_len). */
static int check_layout(const char *path, StFile *f) {
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, by_range);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        const StTensorIn *t = &f->tensors[i];
        if (t->end > f->data_len) {
            tr_set_error("%s: tensor %s: data_offsets end at %llu, past the data area's %llu bytes", path, t->name,
                         (unsigned long long)t->end, (unsigned long long)f->data_len);
            return -1;
        }
        if (t->begin != at) {
            tr_set_error("%s: tensor %s: starts at byte %llu of the data area, where %llu was expected (%s)", path,
                         t->name, (unsigned long long)t->begin, (unsigned long long)at,
                         t->begin < at ? "it overlaps the tensor before it" : "a gap before it");
            return -1;
        }
        at = t->end;
    }
    if (at != f->data_len) {
        tr_set_error("%s: %llu bytes after the last tensor's data (the data area is %llu bytes, the tensors "
                     "cover %llu)", path, (unsigned long long)(f->data_len - at), (unsigned long long)f->data_len,
                     (unsigned long long)at);
        return -1;
    }
    return 0;
}

static int parse_header(const char *path, const char *text, size_t len, StFile *f) {
    if (len == 0 || text[0] != '{') {
        tr_set_error("%s: the header is not a JSON object", path);
        return -1;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        tr_set_error("%s: the header is not valid JSON", path);
        return -1;
    }
    for (const char *p = end; p < text + len; p++)
        if (*p != ' ') {
            cJSON_Delete(root);
            tr_set_error("%s: the header has something other than spaces after its JSON object", path);
            return -1;
        }
    int count = 0, n_metadata = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__")) count++;
        else n_metadata++;
    }
    f->tensors = xcalloc((size_t)count + 1, sizeof *f->tensors);
    int rc = 0;
    if (n_metadata > 1) {
        tr_set_error("%s: __metadata__ appears twice", path);
        rc = -1;
    }
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            rc = parse_metadata(path, e);
            continue;
        }
        for (int i = 0; i < f->n && rc == 0; i++)
            if (!strcmp(f->tensors[i].name, e->string)) {
                tr_set_error("%s: tensor %s: listed twice", path, e->string);
                rc = -1;
            }
        if (rc == 0 && (rc = parse_entry(path, e, &f->tensors[f->n])) == 0) f->tensors[f->n++].name = xstrdup(e->string);
    }
    if (rc == 0 && n_metadata) f->metadata = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
    cJSON_Delete(root);
    return rc;
}

int st_read(const char *path, StFile *out) {
    memset(out, 0, sizeof *out);
    size_t size;
    uint8_t *bytes = (uint8_t *)tr_read_file(path, &size);
    if (!bytes) return -1;
    out->bytes = bytes;
    if (size < 8) {
        tr_set_error("%s: truncated: %zu bytes, shorter than the 8-byte header length", path, size);
        goto fail;
    }
    const uint64_t header_len = tr_get_le64(bytes);
    if (header_len > size - 8) {
        tr_set_error("%s: the header length %llu runs past the end of the file (%zu bytes)", path,
                     (unsigned long long)header_len, size);
        goto fail;
    }
    if (parse_header(path, (const char *)bytes + 8, (size_t)header_len, out) != 0) goto fail;
    out->data = bytes + 8 + header_len;
    out->data_len = size - 8 - header_len;
    if (check_layout(path, out) != 0) goto fail;
    return 0;
fail:
    st_free(out);
    return -1;
}

const StTensorIn *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

void st_free(StFile *f) {
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    cJSON_Delete(f->metadata);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}
