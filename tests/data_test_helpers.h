/* data_test_helpers.h: what the data/ tests share (test_data_spec.c, test_shard_writer.c,
 * test_loader.c): scratch paths under <test tmp dir>/shards, fresh directories, and a check of
 * the last error message. */
#ifndef TINYROPE_DATA_TEST_HELPERS_H
#define TINYROPE_DATA_TEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tests/test.h"

/* <test tmp dir>/shards/<name>, in one of 32 rotating buffers (no test holds more at once). */
static inline char *tmp_path(const char *name) {
    static char buf[32][512];
    static int next;
    static const char *base;
    if (!base) base = test_tmp_dir();
    char *p = buf[next++ % 32];
    snprintf(p, 512, "%s/shards/%s", base, name);
    return p;
}

static inline void rm_rf(const char *path) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", path);
}

static inline void fresh_dir(const char *path) {
    rm_rf(path);
    tr_mkdir_p(path);
}

static inline int write_text(const char *path, const char *text) { return test_write_file(path, text, strlen(text)); }

static inline int error_has(const char *a, const char *b) {
    const char *e = tr_error();
    return strstr(e, a) != NULL && (!b || strstr(e, b) != NULL);
}

#endif
