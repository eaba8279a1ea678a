/* test.h: the tiny test harness every tests/test_*.c uses.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECKF(a < b, "a=%d b=%d", a, b); }
 *   int main(void) { RUN(test_something); return test_summary(); }
 *
 * Each RUN prints "PASS name", "FAIL name" or "SKIP name: why"; tests/run.sh adds them up over
 * all test binaries. A failed CHECK prints file:line and keeps going, so one run shows every
 * broken property. SKIP is for tests that need ../shared (OpenAI's GPT-2 files, the full sample),
 * which is absent outside this workplace.
 */
#ifndef TINYROPE_TEST_H
#define TINYROPE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_current_failed, test_current_skipped;
static int test_passed, test_failed, test_skipped;
static char test_skip_reason[256];

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            test_current_failed = 1;                                                  \
        }                                                                             \
    } while (0)

#define CHECKF(cond, ...)                                                             \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
            test_current_failed = 1;                                                  \
        }                                                                             \
    } while (0)

/* Marks the running test as skipped (with a reason) and returns from it. */
#define SKIP(...)                                                                     \
    do {                                                                              \
        snprintf(test_skip_reason, sizeof test_skip_reason, __VA_ARGS__);             \
        test_current_skipped = 1;                                                     \
        return;                                                                       \
    } while (0)

#define RUN(fn) test_run(#fn, fn)

static inline void test_run(const char *name, void (*fn)(void)) {
    test_current_failed = test_current_skipped = 0;
    fn();
    if (test_current_failed) { printf("FAIL %s\n", name); test_failed++; }
    else if (test_current_skipped) { printf("SKIP %s: %s\n", name, test_skip_reason); test_skipped++; }
    else { printf("PASS %s\n", name); test_passed++; }
    fflush(stdout);
}

static inline int test_summary(void) {
    printf("# %d passed, %d failed, %d skipped\n", test_passed, test_failed, test_skipped);
    return test_failed ? 1 : 0;
}

/* ../shared (or $TINYROPE_SHARED) when present, else NULL: the tests that need it skip. */
static inline const char *test_shared_dir(void) {
    const char *d = getenv("TINYROPE_SHARED");
    if (!d) d = "../shared";
    struct stat st;
    return (stat(d, &st) == 0 && S_ISDIR(st.st_mode)) ? d : NULL;
}

/* The scratch directory (under the build directory) for files a test writes; created once. */
static inline const char *test_tmp_dir(void) {
    static int made;
    const char *d = getenv("TINYROPE_TEST_TMP");
    if (!d) d = "build/test-tmp";
    if (!made) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", d);
        if (system(cmd) != 0) fprintf(stderr, "cannot create %s\n", d);
        made = 1;
    }
    return d;
}

/* Writes n bytes to path (for fixtures); returns 0 on success. */
static inline int test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

/* 1 if $TINYROPE_SMALL is set: sanitizer builds run the same tests on smaller inputs. */
static inline int test_small(void) { return getenv("TINYROPE_SMALL") != NULL; }

#endif
