/* util.c: errors, allocation, time, hashing, files (checked and atomic writes) and UTF-8 checks
 * shared by all of tinyrope.
 * See util.h for the error convention. */
#define _POSIX_C_SOURCE 200809L
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
    return tr_read_file_at_most(path, SIZE_MAX - 1, NULL, len_out);
}

char *tr_read_file_at_most(const char *path, size_t max_bytes, const char *what, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tr_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {   /* fopen accepts a directory */
        fclose(f);
        tr_set_error("%s: is a directory, not a file", path);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap || len > max_bytes) break;
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (read_errno) {
        free(buf);
        tr_set_error("%s: cannot read: %s", path, strerror(read_errno));
        return NULL;
    }
    if (len > max_bytes) {
        free(buf);
        if (max_bytes % ((size_t)1 << 20) == 0)
            tr_set_error("%s: larger than %zu MiB, the limit for %s", path, max_bytes >> 20, what);
        else
            tr_set_error("%s: larger than %zu bytes, the limit for %s", path, max_bytes, what);
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

double tr_peak_rss_bytes(void) {
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) return -1;
    return (double)usage.ru_maxrss * 1024.0; /* Linux reports kilobytes */
}

int tr_lock_dir(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/.lock", dir);
    const int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        tr_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLK, &lock) != 0) {
        const int busy = errno == EACCES || errno == EAGAIN;
        if (busy) tr_set_error("%s: another process is using this run directory (it holds %s)", dir, path);
        else tr_set_error("%s: cannot lock: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- checked writes ---- */

/* TINYROPE_FAIL_WRITE="<name>:<n>" (see util.h). Files are written from the main thread only,
 * so the count needs no lock. */
static int write_fault_injected(const char *path) {
    static int parsed;
    static char name[256];
    static long fail_at, count;
    if (!parsed) {
        parsed = 1;
        const char *spec = getenv("TINYROPE_FAIL_WRITE");
        const char *colon = spec ? strrchr(spec, ':') : NULL;
        if (colon && colon > spec && (size_t)(colon - spec) < sizeof name) {
            memcpy(name, spec, (size_t)(colon - spec));
            name[colon - spec] = '\0';
            fail_at = strtol(colon + 1, NULL, 10);
        }
    }
    if (fail_at <= 0) return 0;
    const char *slash = strrchr(path, '/');
    return strcmp(slash ? slash + 1 : path, name) == 0 && ++count == fail_at;
}

static int write_failed(const char *path, int err) {
    tr_set_error("%s: cannot write: %s", path, strerror(err ? err : EIO));
    errno = err ? err : EIO;
    return -1;
}

int tr_write(FILE *f, const char *path, const void *data, size_t n) {
    if (write_fault_injected(path)) return write_failed(path, ENOSPC);
    errno = 0;
    if (fwrite(data, 1, n, f) != n) return write_failed(path, errno);
    return 0;
}

static int write_formatted(FILE *f, const char *path, const char *fmt, va_list ap) {
    char small[512];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    int rc;
    if (n < 0) rc = write_failed(path, EINVAL);
    else if ((size_t)n < sizeof small) rc = tr_write(f, path, small, (size_t)n);
    else {
        char *big = xmalloc((size_t)n + 1);
        vsnprintf(big, (size_t)n + 1, fmt, again);
        rc = tr_write(f, path, big, (size_t)n);
        free(big);
    }
    va_end(again);
    return rc;
}

int tr_writef(FILE *f, const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = write_formatted(f, path, fmt, ap);
    va_end(ap);
    return rc;
}

int tr_sync(FILE *f, const char *path) {
    if (fflush(f) != 0 || ferror(f)) return write_failed(path, errno);
    if (fsync(fileno(f)) != 0) return write_failed(path, errno);
    return 0;
}

int tr_close_synced(FILE *f, const char *path) {
    int rc = tr_sync(f, path);
    if (fclose(f) != 0 && rc == 0) rc = write_failed(path, errno);
    return rc;
}

/* ---- atomic files ---- */

int tr_atomic_open(TrAtomicFile *af, const char *path) {
    size_t n = strlen(path) + 32;
    af->path = xstrdup(path);
    af->tmp_path = xmalloc(n);
    af->write_errno = 0;
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

int tr_atomic_write(TrAtomicFile *af, const void *data, size_t n) {
    if (tr_write(af->f, af->path, data, n) == 0) return 0;
    if (!af->write_errno) af->write_errno = errno;
    return -1;
}

int tr_atomic_writef(TrAtomicFile *af, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = write_formatted(af->f, af->path, fmt, ap);
    va_end(ap);
    if (rc != 0 && !af->write_errno) af->write_errno = errno;
    return rc;
}

int tr_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        if (errno == EACCES) return 0;   /* a directory we may not read we cannot sync either */
        tr_set_error("%s: cannot open the directory to sync it: %s", dir, strerror(errno));
        return -1;
    }
    int rc = fsync(fd), err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) {
        tr_set_error("%s: cannot sync the directory: %s", dir, strerror(err));
        return -1;
    }
    return 0;
}

/* The directory holding path: "." for a bare name. */
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    char *dir = xstrdup(path);
    dir[slash - path] = '\0';
    return dir;
}

int tr_atomic_commit(TrAtomicFile *af) {
    int err = af->write_errno;
    if (!err && ferror(af->f)) err = errno ? errno : EIO;   /* an unchecked fwrite failed */
    if (!err && fflush(af->f) != 0) err = errno;
    if (!err && fsync(fileno(af->f)) != 0) err = errno;
    if (fclose(af->f) != 0 && !err) err = errno;
    af->f = NULL;
    int ok = 1;
    if (err) {
        tr_set_error("%s: cannot write: %s", af->path, strerror(err));
        remove(af->tmp_path);
        ok = 0;
    } else if (rename(af->tmp_path, af->path) != 0) {
        tr_set_error("%s: cannot rename into place: %s", af->path, strerror(errno));
        remove(af->tmp_path);
        ok = 0;
    } else {
        char *dir = parent_dir(af->path);
        ok = tr_sync_dir(dir) == 0;
        free(dir);
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

/* The pid of a temporary "<name>.tmp.<pid>" (and *name_len, the length of <name>), or 0 if
 * file_name is not one. */
static long temporary_pid(const char *file_name, size_t *name_len) {
    const char *mark = NULL;
    for (const char *p = strstr(file_name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) mark = p;
    if (!mark || mark == file_name) return 0;
    const char *digits = mark + 5;
    long pid = 0;
    for (const char *p = digits; *p; p++) {
        if (*p < '0' || *p > '9' || pid > 100000000L) return 0;
        pid = pid * 10 + (*p - '0');
    }
    *name_len = (size_t)(mark - file_name);
    return digits[0] ? pid : 0;
}

static int process_alive(long pid) {
    if (pid == (long)getpid()) return 1;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;   /* EPERM: alive, another user's */
}

int tr_remove_stale_temporaries(const char *dir, int (*is_ours)(const char *name)) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        tr_set_error("%s: cannot list directory: %s", dir, strerror(errno));
        return -1;
    }
    int removed = 0, failed = 0;
    struct dirent *e;
    while (!failed && (e = readdir(d)) != NULL) {
        size_t name_len;
        long pid = temporary_pid(e->d_name, &name_len);
        if (pid <= 0 || name_len >= 256) continue;
        char name[256];
        memcpy(name, e->d_name, name_len);
        name[name_len] = '\0';
        if (!is_ours(name) || process_alive(pid)) continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *path = xmalloc(n);
        snprintf(path, n, "%s/%s", dir, e->d_name);
        if (remove(path) == 0) removed++;
        else if (errno != ENOENT) {   /* ENOENT: another process cleaned it first */
            tr_set_error("%s: cannot remove a stale temporary file: %s", path, strerror(errno));
            failed = 1;
        }
        free(path);
    }
    closedir(d);
    return failed ? -1 : removed;
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
