/* util.h: the small pieces every part of tinyrope shares.
 *
 * - Errors: library functions never print and never exit. They record one message with
 *   tr_set_error("%s: what is wrong", path) and return NULL or -1; the command-line layer prints
 *   tr_error() as the single "error: ..." line and exits non-zero. Tests read the same message.
 * - Allocation: xmalloc/xcalloc/xrealloc stop the program on out-of-memory (there is nothing
 *   sensible to recover), everything else reports through tr_set_error.
 * - Files: atomic writes (temporary file + fsync + rename) so no reader ever sees half a file.
 * - Hashing: 64-bit FNV-1a, used to fingerprint tokenizers and inputs.
 */
#ifndef TINYROPE_UTIL_H
#define TINYROPE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- errors ---- */
#if defined(__GNUC__)
#define TR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TR_PRINTF(a, b)
#endif
void tr_set_error(const char *fmt, ...) TR_PRINTF(1, 2);
const char *tr_error(void);           /* the last message, "" if none */
void tr_clear_error(void);

/* ---- allocation (stop on out-of-memory) ---- */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
/* alignment a power of two; n is rounded up to a multiple of it (aligned_alloc needs that) */
void *xaligned_alloc(size_t alignment, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* ---- time ---- */
double tr_now_seconds(void);          /* monotonic clock */

/* ---- hashing ---- */
#define TR_FNV_OFFSET 0xcbf29ce484222325ULL
uint64_t tr_fnv1a64(const void *data, size_t n, uint64_t h); /* pass TR_FNV_OFFSET to start */

/* ---- little-endian integers in file headers, independent of the host's byte order ---- */
static inline void tr_put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tr_put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t tr_get_le32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t tr_get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* ---- files ---- */
/* Reads a whole (small) file into a NUL-terminated buffer. Returns NULL and sets the error
 * ("<path>: cannot open: <reason>") on failure. *len_out (may be NULL) gets the byte count. */
char *tr_read_file(const char *path, size_t *len_out);
/* The same, refusing a file of more than max_bytes ("<path>: larger than <max>, the limit for
 * <what>"). It reads at most max_bytes + 1 bytes, so an endless file such as /dev/zero is refused
 * too: the size stat reports is not trusted. */
char *tr_read_file_at_most(const char *path, size_t max_bytes, const char *what, size_t *len_out);
int tr_file_exists(const char *path);
/* Size in bytes, or -1 (error set) if it cannot be stat'ed. */
int64_t tr_file_size(const char *path);
/* Creates dir and its parents; 0 on success, -1 with error set. */
int tr_mkdir_p(const char *dir);
/* Takes an exclusive lock on <dir>/.lock (created if missing) so that two processes never write
 * one run directory at once. Returns the descriptor that holds it: the lock lasts until it is
 * closed or the process ends, however it ends (kill -9 included), so a dead run never leaves its
 * directory locked. -1 with the error set when another process holds it or it cannot be taken. */
int tr_lock_dir(const char *dir);
/* The process's peak resident memory so far, in bytes (getrusage), or -1 if unknown. */
double tr_peak_rss_bytes(void);

/* Checked writes to f, opened for path (the name errors and the fault hook use): 0, or -1 with
 * the error "<path>: cannot write: <reason>" set. A full disk shows up here or at the flush, so
 * a result file is written with these and closed with tr_sync / tr_close_synced, never with bare
 * fprintf and fclose.
 *
 * Fault hook for tests: TINYROPE_FAIL_WRITE="<name>:<n>" in the environment makes the n-th
 * checked write (counting from 1 in the process) to a file named <name> (the last part of its
 * path; an atomic file counts under its final name) fail with ENOSPC, as on a full disk, without
 * writing anything. Unset, it costs one getenv per process. */
int tr_write(FILE *f, const char *path, const void *data, size_t n);
int tr_writef(FILE *f, const char *path, const char *fmt, ...) TR_PRINTF(3, 4);
int tr_sync(FILE *f, const char *path);        /* fflush + fsync */
int tr_close_synced(FILE *f, const char *path);  /* fflush + fsync + fclose (f is closed either way) */

/* Atomic write: open "<path>.tmp.<pid>", write (with tr_atomic_write / tr_atomic_writef, or
 * directly to f), then tr_atomic_commit() fsyncs, closes, renames onto path and fsyncs the
 * directory, so the rename survives a power cut; tr_atomic_abort() closes and removes the
 * temporary. A failed tr_atomic_write makes the commit fail too, with the write's reason. */
typedef struct {
    FILE *f;
    char *path;
    char *tmp_path;
    int write_errno;   /* of the first failed checked write, 0 if none */
} TrAtomicFile;
int tr_atomic_open(TrAtomicFile *af, const char *path); /* 0 or -1 (error set) */
int tr_atomic_write(TrAtomicFile *af, const void *data, size_t n);   /* 0 or -1 (error set) */
int tr_atomic_writef(TrAtomicFile *af, const char *fmt, ...) TR_PRINTF(2, 3);
int tr_atomic_commit(TrAtomicFile *af);                  /* 0 or -1 (error set, temp removed) */
void tr_atomic_abort(TrAtomicFile *af);
/* fsync of a directory, so that a rename or a new file in it survives a power cut; a filesystem
 * that cannot sync directories (EINVAL) is not an error. 0 or -1 (error set). */
int tr_sync_dir(const char *dir);
/* Removes from dir the temporaries "<name>.tmp.<pid>" of tr_atomic_open that a crash left behind:
 * those whose name is_ours accepts and whose process is no longer running (a live writer's
 * temporary is its file in progress). Returns how many were removed, 0 if dir does not exist,
 * or -1 (error set). */
int tr_remove_stale_temporaries(const char *dir, int (*is_ours)(const char *name));

/* ---- UTF-8 ---- */
/* Returns 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). On failure,
 * *bad_offset (may be NULL) gets the offset of the first invalid byte. */
int tr_utf8_valid(const uint8_t *s, size_t n, size_t *bad_offset);

/* ---- random numbers (deterministic, platform-independent) ---- */
/* splitmix64: the whole generator state is one uint64, so it is trivial to checkpoint. */
uint64_t tr_rng_u64(uint64_t *state);
float tr_rng_uniform(uint64_t *state);             /* [0, 1) */
float tr_rng_normal(uint64_t *state);              /* N(0, 1), Box-Muller */

#endif
