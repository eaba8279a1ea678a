/* safetensors.h: the safetensors file format, written and read strictly (safetensors.c), for
 * `train export` and `train import` (cli/export.c).
 *
 * A file is, in this order:
 *     8 bytes     N, the header's length, unsigned little-endian
 *     N bytes     a JSON object, UTF-8, padded at its end with spaces (0x20): per tensor name
 *                 {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, and
 *                 optionally "__metadata__": an object of string -> string
 *     the rest    the data area: each tensor's bytes, row-major, little-endian, at
 *                 [begin, end) counted from the data area's start
 * The writer pads the header so that the data area starts at a multiple of 8 bytes and lays the
 * tensors out back to back in the order given. The reader accepts tensors listed in any order,
 * but their byte ranges, sorted, must cover the data area exactly: no gap, no overlap, nothing
 * after the last one; each range holds exactly the bytes its dtype and shape need.
 */
#ifndef TINYROPE_SAFETENSORS_H
#define TINYROPE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define ST_MAX_DIMS 8

/* One float32 tensor to write: a view of memory the caller owns. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
} StTensorOut;

/* Writes the tensors (in this order) and the metadata (an object of strings, may be NULL) to path,
 * atomically. 0 / -1 (error set, naming path). */
int st_write(const char *path, const StTensorOut *tensors, int n, const cJSON *metadata);

/* One tensor as a file lists it. */
typedef struct {
    char *name;
    char dtype[16];
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;        /* byte range in the data area */
} StTensorIn;

typedef struct {
    StTensorIn *tensors;        /* in the order of their byte ranges */
    int n;
    cJSON *metadata;            /* the "__metadata__" object, NULL when absent; owned */
    uint8_t *bytes;             /* the whole file */
    const uint8_t *data;        /* the data area, inside bytes */
    uint64_t data_len;
} StFile;

/* Reads and checks path against the format's rules above; every problem is one error naming the
 * file (and the tensor). 0 / -1. */
int st_read(const char *path, StFile *out);
/* The tensor called name, or NULL. */
const StTensorIn *st_find(const StFile *f, const char *name);
void st_free(StFile *f);

#endif
