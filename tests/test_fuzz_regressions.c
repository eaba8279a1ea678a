/* test_fuzz_regressions.c: replays every committed fuzz input (tests/fuzz/seeds/<target>/ and
 * tests/fuzz/regressions/<target>/) through the fuzz targets' own functions (tests/fuzz/), so
 * the bugs fuzzing found stay fixed in the ordinary builds, sanitizer pass included, without
 * clang or libFuzzer. One test per target; each target must have at least one committed input. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "tests/fuzz/fuzz_targets.h"
#include "tests/test.h"

static const FuzzTarget *current_target;
static char current_input[512];

/* A target aborts on a broken promise: name the input before the process goes. */
static void on_abort(int sig) {
    static const char msg[] = "FAIL fuzz input: ";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    ignored = write(2, current_input, strlen(current_input));
    ignored = write(2, "\n", 1);
    (void)ignored;
    signal(sig, SIG_DFL);
    raise(sig);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Feeds every file of dir to the current target, in name order; returns how many. */
static int replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        names = xrealloc(names, (size_t)(n + 1) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, compare_names);
    int replayed = 0;
    for (int i = 0; i < n; i++) {
        snprintf(current_input, sizeof current_input, "%s/%s", dir, names[i]);
        size_t len;
        char *data = tr_read_file(current_input, &len);
        CHECKF(data != NULL, "%s", tr_error());
        if (data) {
            CHECKF(current_target->run((const uint8_t *)data, len) == 0, "%s", current_input);
            replayed++;
        }
        free(data);
        free(names[i]);
    }
    free(names);
    return replayed;
}

static void replay_current_target(void) {
    char dir[256];
    int total = 0;
    snprintf(dir, sizeof dir, "tests/fuzz/seeds/%s", current_target->name);
    total += replay_dir(dir);
    snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", current_target->name);
    total += replay_dir(dir);
    CHECKF(total > 0, "no committed input for fuzz target %s", current_target->name);
}

int main(void) {
    signal(SIGABRT, on_abort);
    for (const FuzzTarget *t = fuzz_targets; t->name; t++) {
        char name[128];
        snprintf(name, sizeof name, "fuzz_%s", t->name);
        current_target = t;
        test_run(name, replay_current_target);
    }
    char remove_scratch[600];
    snprintf(remove_scratch, sizeof remove_scratch, "rm -rf '%s'", fuzz_scratch_dir());
    if (system(remove_scratch) != 0) fprintf(stderr, "cannot remove %s\n", fuzz_scratch_dir());
    return test_summary();
}
