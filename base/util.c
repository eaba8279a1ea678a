/* util.c: errors, allocation, time, hashing, files and UTF-8 checks shared by all of tinyrope.
 * See util.h for the error convention. */
#define _POSIX_C_SOURCE 200809L
#include "base/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ---- */

/* One message per thread, so OpenMP workers reporting errors do not overwrite each other. */
static _Thread_local char tr_error_message[1024];

void tr_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tr_error_message, sizeof tr_error_message, fmt, ap);
    va_end(ap);
}

const char *tr_error(void) { return tr_error_message; }
void tr_clear_error(void) { tr_error_message[0] = '\0'; }

/* ---- allocation ---- */

static void out_of_memory(size_t n) {
    fprintf(stderr, "error: out of memory (asked for %zu bytes)\n", n);
    exit(1);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *xaligned_alloc(size_t alignment, size_t n) {
    size_t rounded = (n + alignment - 1) / alignment * alignment;
    void *p = aligned_alloc(alignment, rounded ? rounded : alignment);
    if (!p) out_of_memory(n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

/* ---- time ---- */

double tr_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- hashing ---- */

uint64_t tr_fnv1a64(const void *data, size_t n, uint64_t h) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- random numbers ---- */

/* splitmix64 (Steele, Lea, Flood 2014): the whole state is one uint64 */
uint64_t tr_rng_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

float tr_rng_uniform(uint64_t *state) { return (float)((tr_rng_u64(state) >> 40) * (1.0 / 16777216.0)); }

float tr_rng_normal(uint64_t *state) {
    /* Box-Muller in double; u1 in (0, 1] so the log is finite. */
    double u1 = ((tr_rng_u64(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (tr_rng_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---- files ---- */

char *tr_read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tr_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) break;
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        tr_set_error("%s: read error", path);
        return NULL;
    }
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

int tr_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int64_t tr_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        tr_set_error("%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    return (int64_t)st.st_size;
}

int tr_mkdir_p(const char *dir) {
    char *tmp = xstrdup(dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
            tr_set_error("%s: cannot create directory: %s", tmp, strerror(errno));
            free(tmp);
            return -1;
        }
        *p = '/';
    }
    int rc = mkdir(tmp, 0777);
    if (rc != 0 && errno != EEXIST) {
        tr_set_error("%s: cannot create directory: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int tr_atomic_open(TrAtomicFile *af, const char *path) {
    size_t n = strlen(path) + 32;
    af->path = xstrdup(path);
    af->tmp_path = xmalloc(n);
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        tr_set_error("%s: cannot write: %s", af->tmp_path, strerror(errno));
        free(af->path);
        free(af->tmp_path);
        af->path = af->tmp_path = NULL;
        return -1;
    }
    return 0;
}

int tr_atomic_commit(TrAtomicFile *af) {
    int ok = fflush(af->f) == 0 && !ferror(af->f) && fsync(fileno(af->f)) == 0;
    int saved_errno = errno;
    ok = (fclose(af->f) == 0) && ok;
    af->f = NULL;
    if (!ok) {
        tr_set_error("%s: write failed: %s", af->path, strerror(saved_errno));
        remove(af->tmp_path);
    } else if (rename(af->tmp_path, af->path) != 0) {
        tr_set_error("%s: cannot rename into place: %s", af->path, strerror(errno));
        remove(af->tmp_path);
        ok = 0;
    }
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    return ok ? 0 : -1;
}

void tr_atomic_abort(TrAtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) remove(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    af->f = NULL;
    af->path = af->tmp_path = NULL;
}

/* ---- UTF-8 ---- */

int tr_utf8_valid(const uint8_t *s, size_t n, size_t *bad_offset) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else goto bad;
        if (i + len > n) goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
        i += len;
    }
    return 1;
bad:
    if (bad_offset) *bad_offset = i;
    return 0;
}
