/* fuzz_support.c: the registry of fuzz targets and the scratch-file helpers they share
 * (fuzz_targets.h). */
#define _POSIX_C_SOURCE 200809L
#include "tests/fuzz/fuzz_targets.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define FUZZ_ENTRY(name) {#name, fuzz_##name},
const FuzzTarget fuzz_targets[] = {FUZZ_TARGET_LIST(FUZZ_ENTRY){NULL, NULL}};

void fuzz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz target: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

const char *fuzz_scratch_dir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    const char *test_tmp = getenv("TINYROPE_TEST_TMP");
    const char *tmp = getenv("TMPDIR");
    if (test_tmp) snprintf(dir, sizeof dir, "%s/fuzz-%ld", test_tmp, (long)getpid());
    else snprintf(dir, sizeof dir, "%s/tinyrope-fuzz-%ld", tmp ? tmp : "/tmp", (long)getpid());
    if (tr_mkdir_p(dir) != 0) fuzz_fail("cannot create %s: %s", dir, tr_error());
    return dir;
}

const char *fuzz_path(const char *name) {
    static char paths[8][768];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", fuzz_scratch_dir(), name);
    return path;
}

void fuzz_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) fuzz_fail("cannot write %s", path);
}

int fuzz_split(const uint8_t *data, size_t size, int max_parts, const uint8_t **start, size_t *len) {
    const size_t sep_len = strlen(FUZZ_PART_SEPARATOR);
    int n = 0;
    size_t from = 0;
    for (size_t i = 0; n < max_parts - 1 && i + sep_len <= size; i++) {
        if (memcmp(data + i, FUZZ_PART_SEPARATOR, sep_len) != 0) continue;
        start[n] = data + from;
        len[n++] = i - from;
        from = i + sep_len;
        i = from - 1;
    }
    start[n] = data + from;
    len[n++] = size - from;
    return n;
}

char *fuzz_strndup(const uint8_t *data, size_t n) {
    char *s = xmalloc(n + 1);
    if (n) memcpy(s, data, n);
    s[n] = '\0';
    return s;
}
