/* cli_test_helpers.h: for tests that run the programs as a user does (./train, the scripts):
 * run a shell command and capture what it printed, and read a log.csv without its clock columns
 * (the only columns that may differ between two runs of the same training). */
#ifndef TINYROPE_CLI_TEST_HELPERS_H
#define TINYROPE_CLI_TEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/util.h"
#include "tests/test.h"

/* The trainer binary under test: the build's own (tests/run_binaries.sh sets it), else ./train. */
static inline const char *cli_train_bin(void) {
    const char *bin = getenv("TINYROPE_TRAIN_BIN");
    return bin ? bin : "./train";
}

/* What the last run_program / run_train printed: stdout and stderr apart. */
static char out_buf[1 << 16], err_buf[1 << 16];

/* Runs "<bin> <args>" (args: a shell fragment). Returns the exit status, or 128 + the signal if
 * it was killed (a crash). */
static inline int run_program(const char *bin, const char *args) {
    char cmd[4096], out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/program.out", test_tmp_dir());
    snprintf(err_path, sizeof err_path, "%s/program.err", test_tmp_dir());
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", bin, args, out_path, err_path);
    int status = system(cmd);
    char *o = tr_read_file(out_path, NULL), *e = tr_read_file(err_path, NULL);
    snprintf(out_buf, sizeof out_buf, "%s", o ? o : "");
    snprintf(err_buf, sizeof err_buf, "%s", e ? e : "");
    free(o);
    free(e);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static inline int run_train(const char *args) { return run_program(cli_train_bin(), args); }

/* The report tool `name` (plot, table, figure) built beside the trainer under test, or NULL when
 * it is not there. */
static inline const char *cli_tool_bin(const char *name) {
    static char bin[512];
    char dir[440];
    snprintf(dir, sizeof dir, "%.430s", cli_train_bin());
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    snprintf(bin, sizeof bin, "%s/%.60s", slash ? dir : ".", name);
    return tr_file_exists(bin) ? bin : NULL;
}

/* Column `col` (0 = step, 3 = val_loss, 4 = val_bpb, 5 = val_acc) of every row of dir/log.csv into v (at most
 * cap rows). Returns the number of rows, -1 if the file cannot be read. */
static inline int cli_log_column(const char *dir, int col, double *v, int cap) {
    char path[1200];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    char *text = tr_read_file(path, NULL);
    if (!text) return -1;
    int rows = 0;
    for (char *line = strchr(text, '\n'); line && line[1] && rows < cap; line = strchr(line + 1, '\n')) {
        const char *p = line + 1;
        for (int c = 0; c < col && p; c++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        if (!p) break;
        v[rows++] = strtod(p, NULL);
    }
    free(text);
    return rows;
}

/* The last run_train wrote exactly one "error: ..." line to stderr and nothing else there. */
static inline int one_error_line(void) {
    const char *nl = strchr(err_buf, '\n');
    return !strncmp(err_buf, "error: ", 7) && nl && nl[1] == '\0';
}

/* Runs `cmd` through the shell with stdout and stderr together in out (truncated to cap);
 * returns the exit status (128 if it did not exit normally). */
static inline int cli_run(const char *cmd, char *out, size_t cap) {
    char path[600], full[8192];
    snprintf(path, sizeof path, "%s/cli.out", test_tmp_dir());
    snprintf(full, sizeof full, "(%s) >%s 2>&1", cmd, path);
    int status = system(full);
    char *text = tr_read_file(path, NULL);
    snprintf(out, cap, "%s", text ? text : "");
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* dir/log.csv with only its first 8 columns (everything but elapsed_s and tokens_per_s). */
static inline char *cli_log_without_timing(const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    char *text = tr_read_file(path, NULL);
    if (!text) return xstrdup("");
    char *out = xmalloc(strlen(text) + 1), *o = out;
    int col = 0;
    for (char *p = text; *p; p++) {
        if (*p == '\n') col = 0;
        else if (*p == ',') col++;
        if (col < 8 || *p == '\n') *o++ = *p;
    }
    *o = '\0';
    free(text);
    return out;
}

#endif
