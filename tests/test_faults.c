/* test_faults.c: nothing is lost under faults. A write that fails (a full disk, injected with
 * TINYROPE_FAIL_WRITE) stops `./train run` with one error line naming the file, the last
 * checkpoint intact, and --resume then gives the log.csv of an uninterrupted run; temporaries a
 * crash left are removed; a torn last row of log.csv is dropped on resume; a run directory
 * another process is training in is refused; a checkpoint past
 * train.max_steps is refused; the ETA formatter does not overflow; errors say what is wrong. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "cli/run.h"
#include "tests/cli_test_helpers.h"

#define FAULT_RUN "run configs/demo.json --set model.n_layer=1 --set model.n_embd=32 --set model.n_head=2 "   \
                  "--set model.block_size=32 --set train.batch_size=4 --set train.max_steps=12 "             \
                  "--set train.eval_every=4 --set train.eval_max_tokens=2000 --set optim.warmup_steps=2 " \
                  "--set train.checkpoint_every=4"

static void run_dir_of(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/faults_%s", test_tmp_dir(), name);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", out);
    CHECK(system(cmd) == 0);
}

/* The log.csv (without clock columns) of an uninterrupted FAULT_RUN, made once. */
static const char *reference_log(void) {
    static char *log;
    if (log) return log;
    char dir[700], args[2048];
    run_dir_of(dir, sizeof dir, "reference");
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s", dir);
    CHECKF(run_train(args) == 0, "uninterrupted run: %s", err_buf);
    log = cli_log_without_timing(dir);
    CHECKF(strlen(log) > 100, "reference log.csv too short: %s", log);
    return log;
}

/* stderr ends with exactly one "error: " line (the tokenizer's progress may come before it), and
 * it contains every needle. */
static int last_line_is_the_error(const char *needle1, const char *needle2) {
    size_t len = strlen(err_buf);
    if (len < 2 || err_buf[len - 1] != '\n') return 0;
    const char *last = err_buf + len - 1;
    while (last > err_buf && last[-1] != '\n') last--;
    const char *first_error = strstr(err_buf, "error: ");
    return first_error == last && !strncmp(last, "error: ", 7) && strstr(last, needle1) && strstr(last, needle2);
}

/* 1 if dir holds a file whose name contains ".tmp.". */
static int has_temporary(const char *dir) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", dir);
    return system(cmd) == 0;
}

/* A write failure at `fault` (TINYROPE_FAIL_WRITE) during an uninterrupted FAULT_RUN: exit 1 with
 * one error line naming `file` and the reason, no temporary left, the checkpoint of step 4 kept,
 * and --resume from it writes the reference log.csv. */
static void expect_write_failure_recovered(const char *name, const char *fault, const char *file) {
    const char *want = reference_log();
    char dir[700], args[2048];
    run_dir_of(dir, sizeof dir, name);
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s", dir);
    setenv("TINYROPE_FAIL_WRITE", fault, 1);
    int rc = run_train(args);
    unsetenv("TINYROPE_FAIL_WRITE");
    CHECKF(rc == 1 && last_line_is_the_error(file, "No space left on device"),
           "%s: status %d, stderr: %s", fault, rc, err_buf);
    CHECKF(!strstr(out_buf, "done:"), "%s: the run says it finished: %s", fault, out_buf);
    CHECKF(!has_temporary(dir), "%s: a temporary file is left in %s", fault, dir);
    snprintf(args, sizeof args, "%s/final.json", dir);
    CHECKF(!tr_file_exists(args), "%s: final.json written by a failed run", fault);
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --resume", dir);
    rc = run_train(args);
    CHECKF(rc == 0 && strstr(out_buf, "at step 4\n"), "%s: resume: status %d, %s %s", fault, rc, out_buf, err_buf);
    char *got = cli_log_without_timing(dir);
    CHECKF(!strcmp(got, want), "%s: log.csv after resume:\n%s\nwant:\n%s", fault, got, want);
    free(got);
}

/* Writes: the header of log.csv is write 1, the row of step 4 write 2, that of step 8 write 3.
 * A checkpoint is 5 writes (header, parameters, AdamW m and v, checksum): write 7 is the
 * parameters of the second one, at step 8. */
static void test_log_write_failure(void) { expect_write_failure_recovered("log", "log.csv:3", "log.csv"); }
static void test_checkpoint_write_failure(void) {
    expect_write_failure_recovered("checkpoint", "checkpoint.bin:7", "checkpoint.bin");
}

/* A process id that no longer runs: a child that has exited and been reaped. */
static long dead_pid(void) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return (long)pid;
}

static void touch(const char *dir, const char *name) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECKF(f != NULL, "cannot create %s", path);
    if (f) fclose(f);
}

static int exists_in(const char *dir, const char *name) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return tr_file_exists(path);
}

/* Temporaries of a crashed checkpoint save and a crashed prepare are removed by the next run in
 * that directory, which says so; a live writer's temporary and files of other names are kept. */
static void test_stale_temporaries_removed(void) {
    char dir[700], data[800], args[2048], stale_ckpt[64], stale_shard[64], live[64], foreign[64];
    run_dir_of(dir, sizeof dir, "stale");
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --stop-at 4", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    const long dead = dead_pid();
    snprintf(stale_ckpt, sizeof stale_ckpt, "checkpoint.bin.tmp.%ld", dead);
    snprintf(stale_shard, sizeof stale_shard, "train_000.bin.tmp.%ld", dead);
    snprintf(live, sizeof live, "log.csv.tmp.%ld", (long)getpid());
    snprintf(foreign, sizeof foreign, "notes.txt.tmp.%ld", dead);
    touch(dir, stale_ckpt);
    touch(data, stale_shard);
    touch(dir, live);
    touch(dir, foreign);
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --resume", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    CHECKF(!exists_in(dir, stale_ckpt) && !exists_in(data, stale_shard), "stale temporaries kept");
    CHECKF(exists_in(dir, live), "the temporary of a live process was removed");
    CHECKF(exists_in(dir, foreign), "a file of another name was removed");
    char said_dir[900], said_data[900];
    snprintf(said_dir, sizeof said_dir, "removed 1 temporary file(s) left in %s by", dir);
    snprintf(said_data, sizeof said_data, "removed 1 temporary file(s) left in %s by", data);
    CHECKF(strstr(out_buf, said_dir) && strstr(out_buf, said_data), "not reported on stdout: %s", out_buf);
}

/* Two processes never write one run directory: while another process holds <dir>/.lock, a run
 * into dir stops with one error line naming dir and writes nothing there; once the holder lets
 * go (here: closes it; a killed process lets go the same way), the run proceeds. */
static void test_busy_run_directory_refused(void) {
    char dir[700], args[2048], lock_path[800];
    run_dir_of(dir, sizeof dir, "locked");
    CHECK(tr_mkdir_p(dir) == 0);
    const int fd = tr_lock_dir(dir);
    CHECKF(fd >= 0, "%s", tr_error());
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s", dir);
    CHECKF(run_train(args) != 0 && one_error_line() && strstr(err_buf, dir) && strstr(err_buf, "another process"),
           "stderr: %s", err_buf);
    CHECKF(!exists_in(dir, "config.json") && !exists_in(dir, "log.csv"), "the refused run wrote into %s", dir);
    close(fd);
    CHECKF(run_train(args) == 0, "after the lock is released: %s", err_buf);
    CHECK(exists_in(dir, "final.json"));
    snprintf(lock_path, sizeof lock_path, "%s/.lock", dir);
    CHECK(tr_file_exists(lock_path));
}

/* A crash while appending the row of step 12 leaves "1" of "12,1536,..." without its newline;
 * the resume from the checkpoint of step 8 must drop it, not glue the next row onto it. */
static void test_torn_last_line_dropped(void) {
    const char *want = reference_log();
    char dir[700], args[2048];
    run_dir_of(dir, sizeof dir, "torn");
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --stop-at 8", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    snprintf(args, sizeof args, "printf 1 >> %s/log.csv", dir);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --resume", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    char *got = cli_log_without_timing(dir);
    CHECKF(!strcmp(got, want), "log.csv after resume over a torn row:\n%s\nwant:\n%s", got, want);
    free(got);
}

/* --resume with train.max_steps below the checkpoint's step: refused with one line saying why,
 * log.csv and final.json untouched. */
static void test_resume_past_the_end_refused(void) {
    char dir[700], args[2048], log_path[800], final_path[800];
    run_dir_of(dir, sizeof dir, "past_end");
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    snprintf(log_path, sizeof log_path, "%s/log.csv", dir);
    snprintf(final_path, sizeof final_path, "%s/final.json", dir);
    char *log_before = tr_read_file(log_path, NULL), *final_before = tr_read_file(final_path, NULL);
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --set train.max_steps=8 --resume", dir);
    int rc = run_train(args);
    CHECKF(rc == 1 && last_line_is_the_error("checkpoint.bin", "past train.max_steps"), "status %d: %s", rc,
           err_buf);
    /* Likewise a --stop-at before the checkpoint's step: nothing to do, said as such. */
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --resume --stop-at 1", dir);
    rc = run_train(args);
    CHECKF(rc == 1 && last_line_is_the_error("--stop-at 1", "already at step"), "status %d: %s", rc, err_buf);
    char *log_after = tr_read_file(log_path, NULL), *final_after = tr_read_file(final_path, NULL);
    CHECK(log_before && log_after && !strcmp(log_before, log_after));
    CHECK(final_before && final_after && !strcmp(final_before, final_after));
    free(log_before);
    free(log_after);
    free(final_before);
    free(final_after);
}

/* The estimate and ETA formatter against hand-computed strings, huge values included (where an
 * int would overflow into a negative duration). */
static void test_format_duration(void) {
    const struct { double seconds; const char *want; } cases[] = {
        {0, "0s"}, {59.9, "59s"}, {61, "1m01s"}, {3599, "59m59s"}, {3600, "1h00m"}, {5 * 3600 + 65, "5h01m"},
        {9998.0 * 3600 + 59 * 60, "9998h59m"}, {9999.0 * 3600, ">9999h"}, {3e9, ">9999h"}, {1e300, ">9999h"},
        {-1, "?"}, {NAN, "?"}, {INFINITY, "?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        run_format_duration(out, sizeof out, cases[i].seconds);
        CHECKF(!strcmp(out, cases[i].want), "%g s: '%s', want '%s'", cases[i].seconds, out, cases[i].want);
    }
}

/* Errors that say what is wrong: a directory given as the config or data spec, a missing checkpoint on
 * --resume, a resume with another batch size (named, with both values). */
static void test_messages_say_why(void) {
    char dir[700], args[2048];
    /* "is a directory" (tr_read_file) or strerror's "Is a directory" */
    CHECKF(run_train("run configs") == 1 && one_error_line() && strstr(err_buf, "configs: ") &&
               strstr(err_buf, "s a directory"), "directory as config: %s", err_buf);
    CHECKF(run_train("run configs/demo.json --set data=configs") == 1 && one_error_line() &&
               strstr(err_buf, "configs: ") && strstr(err_buf, "s a directory"), "directory as data spec: %s", err_buf);
    run_dir_of(dir, sizeof dir, "messages");
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --stop-at 4", dir);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --set train.batch_size=2 --resume", dir);
    CHECKF(run_train(args) == 1 && last_line_is_the_error("checkpoint.bin", "train.batch_size 4 there, 2 here"),
           "batch size change: %s", err_buf);
    snprintf(args, sizeof args, "rm %s/checkpoint.bin", dir);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, FAULT_RUN " --set out_dir=%s --resume", dir);
    CHECKF(run_train(args) == 1 && last_line_is_the_error("checkpoint.bin: not found", "drop --resume"),
           "missing checkpoint: %s", err_buf);
}

int main(void) {
    RUN(test_format_duration);
    RUN(test_log_write_failure);
    RUN(test_checkpoint_write_failure);
    RUN(test_stale_temporaries_removed);
    RUN(test_torn_last_line_dropped);
    RUN(test_busy_run_directory_refused);
    RUN(test_resume_past_the_end_refused);
    RUN(test_messages_say_why);
    return test_summary();
}
