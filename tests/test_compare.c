/* test_compare.c: scripts/compare.sh as a user runs it, on a tiny config: every (config, seed)
 * lands in <out>/<name>/seed<k>/ and finishes; running the same command again skips finished runs
 * without touching them; an interrupted run resumes and ends as if it had never stopped; a run
 * directory made from another config, and bad arguments, are refused with one error line; runs
 * archived by archive_runs.sh and restored count as finished; then report.sh and extrapolate.sh
 * on those runs; --jobs runs several at once with the results of running them one by one. */
#define _POSIX_C_SOURCE 200809L   /* st_mtim */
#include <sys/stat.h>
#include <unistd.h>

#include "tests/cli_test_helpers.h"

/* A whole run in well under a second (a few under the sanitizers). Seeds differ in the model's
 * initialisation and the batch order, so seed1 and seed2 must end with different losses. */
static const char *write_tiny_configs(void) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/cmp-configs", test_tmp_dir());
    tr_mkdir_p(dir);
    char path[700];
    snprintf(path, sizeof path, "%s/base.json", dir);
    const char *base =
        "{\"data\": \"configs/data/sample.json\", \"tokenizer\": {\"vocab_size\": 300},\n"
        " \"model\": {\"n_layer\": 1, \"n_embd\": 16, \"n_head\": 2, \"block_size\": 16},\n"
        " \"train\": {\"batch_size\": 2, \"max_steps\": 6, \"eval_every\": 3, \"eval_max_tokens\": 512,\n"
        "           \"checkpoint_every\": 3, \"sample_tokens\": 0},\n"
        " \"optim\": {\"lr\": 1e-2, \"warmup_steps\": 1}}\n";
    test_write_file(path, base, strlen(base));
    snprintf(path, sizeof path, "%s/rope.json", dir);
    const char *rope = "{\"base\": \"base.json\", \"model\": {\"posenc\": {\"kind\": \"rope\"}}}\n";
    test_write_file(path, rope, strlen(rope));
    snprintf(path, sizeof path, "%s/none.json", dir);
    const char *none = "{\"base\": \"base.json\", \"model\": {\"posenc\": {\"kind\": \"none\"}}}\n";
    test_write_file(path, none, strlen(none));
    return dir;
}

static char out[16384];

static int compare(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "TRAIN=%s REPORT=0 sh scripts/compare.sh %s", cli_train_bin(), args);
    return cli_run(cmd, out, sizeof out);
}

static double mtime_of(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
}

static void test_runs_skips_and_resumes(void) {
    const char *cfgs = write_tiny_configs();
    char runs[700], args[2048], path[900], dir[800];
    snprintf(runs, sizeof runs, "%s/cmp-runs", test_tmp_dir());
    snprintf(args, sizeof args, "rm -rf %s", runs); /* a previous invocation's runs (seed 3 of the archive test) */
    cli_run(args, out, sizeof out);
    snprintf(args, sizeof args, "--seeds 2 --out %s %s/rope.json %s/none.json", runs, cfgs, cfgs);

    /* 1. Four runs, each finished. */
    int rc = compare(args);
    CHECKF(rc == 0, "compare.sh exited %d:\n%s", rc, out);
    const char *names[] = {"rope", "none"};
    double ckpt_time[2][2];
    for (int c = 0; c < 2; c++)
        for (int k = 1; k <= 2; k++) {
            snprintf(path, sizeof path, "%s/%s/seed%d/final.json", runs, names[c], k);
            CHECKF(tr_file_exists(path), "%s missing", path);
            snprintf(path, sizeof path, "%s/%s/seed%d/checkpoint.bin", runs, names[c], k);
            ckpt_time[c][k - 1] = mtime_of(path);
        }
    snprintf(dir, sizeof dir, "%s/rope/seed1", runs);
    char *seed1 = cli_log_without_timing(dir);
    snprintf(dir, sizeof dir, "%s/rope/seed2", runs);
    char *seed2 = cli_log_without_timing(dir);
    CHECKF(strchr(seed1, '\n') && strcmp(seed1, seed2) != 0, "seeds 1 and 2 gave the same log:\n%s", seed1);
    CHECKF(strstr(seed1, "\n6,"), "rope seed1 has no row for step 6:\n%s", seed1);

    /* 2. The same command again: all four skipped, nothing rewritten. */
    rc = compare(args);
    CHECKF(rc == 0, "second compare.sh exited %d:\n%s", rc, out);
    int skipped = 0;
    for (const char *p = out; (p = strstr(p, "finished, skipped")); p++) skipped++;
    CHECKF(skipped == 4, "%d of 4 runs skipped:\n%s", skipped, out);
    CHECKF(!strstr(out, "training into") && !strstr(out, "resuming"), "a finished run ran again:\n%s", out);
    for (int c = 0; c < 2; c++)
        for (int k = 1; k <= 2; k++) {
            snprintf(path, sizeof path, "%s/%s/seed%d/checkpoint.bin", runs, names[c], k);
            CHECKF(mtime_of(path) == ckpt_time[c][k - 1], "%s was rewritten", path);
        }

    /* 3. Interrupted: rope seed1 redone up to step 3 only (as if killed after its first checkpoint).
     *    compare.sh resumes it, and the log equals the uninterrupted run's. */
    char cmd[4096];
    snprintf(dir, sizeof dir, "%s/rope/seed1", runs);
    snprintf(cmd, sizeof cmd, "rm -rf %s && %s run %s/rope.json --set out_dir=%s --set seed=1 --stop-at 3",
             dir, cli_train_bin(), cfgs, dir);
    rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "interrupted run exited %d:\n%s", rc, out);
    snprintf(path, sizeof path, "%s/final.json", dir);
    CHECK(!tr_file_exists(path));
    rc = compare(args);
    CHECKF(rc == 0, "third compare.sh exited %d:\n%s", rc, out);
    CHECKF(strstr(out, "rope seed 1: resuming"), "rope seed1 was not resumed:\n%s", out);
    skipped = 0;
    for (const char *p = out; (p = strstr(p, "finished, skipped")); p++) skipped++;
    CHECKF(skipped == 3, "%d of the 3 finished runs skipped:\n%s", skipped, out);
    CHECK(tr_file_exists(path));
    char *resumed = cli_log_without_timing(dir);
    CHECKF(!strcmp(resumed, seed1), "resumed log differs:\n%s\nuninterrupted:\n%s", resumed, seed1);

    /* 4. Another config over an existing run directory: refused, the directory named. */
    snprintf(args, sizeof args, "--seeds 1 --out %s --set optim.lr=0.02 %s/rope.json", runs, cfgs);
    rc = compare(args);
    CHECKF(rc != 0 && strstr(out, "rope/seed1") && strstr(out, "different config"), "rc %d:\n%s", rc, out);

    free(seed1);
    free(seed2);
    free(resumed);
}

/* report.sh and extrapolate.sh on the finished runs of the test above: every figure and table is
 * written; extrapolate.sh evaluates each run at L, 2L, 4L and 2L, 4L with BCA (5 rows per run),
 * and a second pass reuses them without evaluating again. */
static void test_report_and_extrapolation(void) {
    char runs[700], cmd[4096], path[900];
    snprintf(runs, sizeof runs, "%s/cmp-runs", test_tmp_dir());
    snprintf(path, sizeof path, "%s/rope/seed1/final.json", runs);
    if (!tr_file_exists(path)) SKIP("no finished runs (test_runs_skips_and_resumes failed?)");
    char tools[600];
    snprintf(tools, sizeof tools, "%s", cli_train_bin());
    char *slash = strrchr(tools, '/');
    if (slash) *slash = '\0';
    else snprintf(tools, sizeof tools, "build");
    snprintf(cmd, sizeof cmd, "PLOT=%s/plot TABLE=%s/table sh scripts/report.sh %s", tools, tools, runs);
    int rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "report.sh exited %d:\n%s", rc, out);
    const char *files[] = {"val_loss.png", "val_loss_log.png", "train_loss.png", "val_loss_time.png", "table.md"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/report/%s", runs, files[i]);
        CHECKF(tr_file_exists(path), "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/report/table.md", runs);
    char *table = tr_read_file(path, NULL);
    CHECKF(table && strstr(table, "| rope | 2 |") && strstr(table, "| none | 2 |"), "%s", table ? table : "");
    free(table);

    snprintf(cmd, sizeof cmd, "TRAIN=%s sh scripts/extrapolate.sh %s", cli_train_bin(), runs);
    rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "extrapolate.sh exited %d:\n%s", rc, out);
    snprintf(path, sizeof path, "%s/report/extrapolation.csv", runs);
    char *csv = tr_read_file(path, NULL);
    int rows = 0;
    for (const char *p = csv; p && (p = strchr(p, '\n')); p++) rows++;
    CHECKF(rows == 1 + 2 * 2 * 5, "%d lines in extrapolation.csv:\n%s", rows, csv ? csv : "");
    CHECKF(csv && strstr(csv, "rope,1,64,1,") && strstr(csv, "none,2,32,0,"), "%s", csv ? csv : "");
    snprintf(path, sizeof path, "%s/rope/seed2/eval_T64-bca.csv", runs);
    CHECKF(tr_file_exists(path), "%s missing", path);
    rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0 && !strstr(out, "eval "), "second pass evaluated again (rc %d):\n%s", rc, out);
    snprintf(path, sizeof path, "%s/report/extrapolation.csv", runs);
    char *csv2 = tr_read_file(path, NULL);
    CHECKF(csv && csv2 && !strcmp(csv, csv2), "the second pass changed the summary:\n%s", csv2 ? csv2 : "");
    free(csv);
    free(csv2);
}

/* archive_runs.sh on the runs above keeps their small files, not the checkpoints; copied back
 * over an emptied run directory they count as finished: compare.sh --seeds 3 trains only seed 3
 * of each config, and the restored logs are the originals. */
static void test_archive_and_restore(void) {
    const char *cfgs = write_tiny_configs();
    static char runs[700], archive[700], cmd[4096], args[2048], path[900];
    snprintf(runs, sizeof runs, "%s/cmp-runs", test_tmp_dir());
    snprintf(archive, sizeof archive, "%s/cmp-archive", test_tmp_dir());
    snprintf(path, sizeof path, "%s/rope/seed2", runs);
    char *before = cli_log_without_timing(path);
    snprintf(cmd, sizeof cmd, "rm -rf %s && sh scripts/archive_runs.sh %s %s", archive, runs, archive);
    int rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "archived 4 finished runs"), "archive_runs.sh exited %d:\n%s", rc, out);
    snprintf(path, sizeof path, "%s/rope/seed2/checkpoint.bin", archive);
    CHECKF(!tr_file_exists(path), "the archive holds a checkpoint");
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp -R %s/. %s/", runs, runs, archive, runs);
    rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "restoring exited %d:\n%s", rc, out);
    snprintf(args, sizeof args, "--seeds 3 --out %s %s/rope.json %s/none.json", runs, cfgs, cfgs);
    rc = compare(args);
    CHECKF(rc == 0, "compare.sh on the restored runs exited %d:\n%s", rc, out);
    int skipped = 0, trained = 0;
    for (const char *p = out; (p = strstr(p, "finished, skipped")); p++) skipped++;
    for (const char *p = out; (p = strstr(p, "training into")); p++) trained++;
    CHECKF(skipped == 4 && trained == 2, "%d skipped, %d trained (want 4, 2):\n%s", skipped, trained, out);
    snprintf(path, sizeof path, "%s/rope/seed2", runs);
    char *after = cli_log_without_timing(path);
    CHECKF(!strcmp(after, before), "the restored log differs:\n%s\nbefore:\n%s", after, before);
    free(before), free(after);
}

/* --jobs: two runs at once, one thread each, give the logs of the same runs one after the other
 * at one thread, each run's output in <run>.log; a run whose directory another process holds
 * fails alone (the others finish) and compare.sh then exits non-zero naming it. */
static void test_jobs(void) {
    const char *cfgs = write_tiny_configs();
    char a[700], b[700], busy[700], args[2048], dir[900], path[1000], cmd[4096];
    snprintf(a, sizeof a, "%s/cmp-jobs2", test_tmp_dir());
    snprintf(b, sizeof b, "%s/cmp-jobs1", test_tmp_dir());
    snprintf(busy, sizeof busy, "%s/cmp-busy", test_tmp_dir());
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s", a, b, busy);
    cli_run(cmd, out, sizeof out);
    snprintf(args, sizeof args, "--jobs 2 --seeds 2 --out %s %s/rope.json %s/none.json", a, cfgs, cfgs);
    int rc = compare(args);
    CHECKF(rc == 0, "--jobs 2 exited %d:\n%s", rc, out);
    int done = 0;
    for (const char *p = out; (p = strstr(p, ": done")); p++) done++;
    CHECKF(done == 4, "%d of 4 runs reported done:\n%s", done, out);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 TRAIN=%s REPORT=0 sh scripts/compare.sh --jobs 1 --seeds 2 --out %s "
             "%s/rope.json %s/none.json", cli_train_bin(), b, cfgs, cfgs);
    rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "--jobs 1 exited %d:\n%s", rc, out);
    const char *names[] = {"rope", "none"};
    for (int c = 0; c < 2; c++)
        for (int k = 1; k <= 2; k++) {
            snprintf(dir, sizeof dir, "%s/%s/seed%d", a, names[c], k);
            char *parallel = cli_log_without_timing(dir);
            snprintf(path, sizeof path, "%s.log", dir);
            CHECKF(tr_file_exists(path), "%s missing", path);
            snprintf(dir, sizeof dir, "%s/%s/seed%d", b, names[c], k);
            char *serial = cli_log_without_timing(dir);
            CHECKF(strchr(serial, '\n') && !strcmp(parallel, serial), "%s seed %d: logs differ:\n%s\n%s", names[c], k,
                   parallel, serial);
            free(parallel);
            free(serial);
        }
    /* a busy directory */
    snprintf(dir, sizeof dir, "%s/rope/seed1", busy);
    CHECK(tr_mkdir_p(dir) == 0);
    const int fd = tr_lock_dir(dir);
    CHECKF(fd >= 0, "%s", tr_error());
    snprintf(args, sizeof args, "--jobs 2 --seeds 1 --out %s %s/rope.json %s/none.json", busy, cfgs, cfgs);
    rc = compare(args);
    CHECKF(rc != 0 && strstr(out, "runs failed") && strstr(out, dir) && strstr(out, "another process"), "rc %d:\n%s",
           rc, out);
    snprintf(path, sizeof path, "%s/none/seed1/final.json", busy);
    CHECKF(tr_file_exists(path), "the other run did not finish:\n%s", out);
    close(fd);
}

static void test_bad_arguments(void) {
    const char *cfgs = write_tiny_configs();
    char args[1024];
    snprintf(args, sizeof args, "--seeds 0 %s/rope.json", cfgs);
    CHECK(compare(args) != 0 && strstr(out, "--seeds"));
    snprintf(args, sizeof args, "--seeds two %s/rope.json", cfgs);
    CHECK(compare(args) != 0 && strstr(out, "--seeds"));
    snprintf(args, sizeof args, "--jobs 0 %s/rope.json", cfgs);
    CHECK(compare(args) != 0 && strstr(out, "--jobs"));
    snprintf(args, sizeof args, "--jobs many %s/rope.json", cfgs);
    CHECK(compare(args) != 0 && strstr(out, "--jobs"));
    CHECK(compare("--seeds 1 no/such/config.json") != 0 && strstr(out, "no/such/config.json"));
    CHECK(compare("--data no/such/data.json configs/small/rope.json") != 0 && strstr(out, "no/such/data.json"));
    CHECK(compare("--colour red configs/small/rope.json") != 0 && strstr(out, "--colour"));
    CHECK(compare("") != 0 && strstr(out, "usage"));
    /* A config that cannot run (a posenc option its kind lacks) fails before any run starts. */
    char path[700];
    snprintf(path, sizeof path, "%s/bad.json", cfgs);
    const char *bad = "{\"base\": \"base.json\", \"model\": {\"posenc\": {\"kind\": \"rope\", \"chunk\": 4}}}\n";
    test_write_file(path, bad, strlen(bad));
    snprintf(args, sizeof args, "--out %s/cmp-bad %s/rope.json %s", test_tmp_dir(), cfgs, path);
    CHECK(compare(args) != 0 && strstr(out, "bad.json") && strstr(out, "chunk") && !strstr(out, "training into"));
}

int main(void) {
    RUN(test_runs_skips_and_resumes);
    RUN(test_report_and_extrapolation);
    RUN(test_archive_and_restore);
    RUN(test_jobs);
    RUN(test_bad_arguments);
    return test_summary();
}
