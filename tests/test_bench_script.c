/* test_bench_script.c: scripts/bench_hdd.sh (make bench-hdd) and scripts/bench_peers.sh (make
 * bench-peers), which share scripts/bench_pair.sh's row, against a stand-in for bench_train
 * that prints a fixed --pair report and logs its arguments: one table row per (shape, chunk,
 * kind) with the report's numbers in the right columns and the row's target, each pair run with
 * the shape's dimensions and thread count, and a failing pair named with a non-zero exit. */
#include "tests/cli_test_helpers.h"

static char out[16384], fake[700], calls[700];

/* The stand-in: --pair's three result lines (numbers chosen to be told apart), one line per call
 * in calls; exits 1 when asked for chunk 16. */
static void write_fake_bench(void) {
    snprintf(fake, sizeof fake, "%s/fake_bench.sh", test_tmp_dir());
    snprintf(calls, sizeof calls, "%s/fake_bench.calls", test_tmp_dir());
    char text[2048];
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "echo \"$OMP_NUM_THREADS $*\" >> '%s'\n"
             "case \"$3\" in *'\"chunk\":16'*) exit 1 ;; esac\n"
             "echo 'pair C=1 L=1 NH=1 T=1 V=1 B=1, 1 alternating rounds'\n"
             "echo '  A rope: median 400.0 ms/step (399.0-401.0) | mean matmuls 250.0, attention 70.0, posenc 4.0 ms'\n"
             "echo \"  B $3: median 500.0 ms/step (499.0-501.0) | mean matmuls 260.0, attention 71.0, posenc 123.4 ms\"\n"
             "echo '  B/A: ratio of medians 1.250; per-round ratios median 1.251, range 1.240-1.262; model FLOPs 1.068'\n",
             calls);
    test_write_file(fake, text, strlen(text));
    remove(calls);
}

/* Runs "ENV sh scripts/SCRIPT" on the stand-in (its output in out) and returns how many lines
 * carry the stand-in's numbers in the report's columns ending with `tail` ("" or "\n"); -1 if the
 * script failed. */
static int script_rows(const char *env, const char *script, const char *tail) {
    write_fake_bench();
    char cmd[2048], row[96];
    snprintf(cmd, sizeof cmd, "chmod +x '%s' && %s sh scripts/%s '%s'", fake, env, script, fake);
    if (cli_run(cmd, out, sizeof out) != 0) return -1;
    snprintf(row, sizeof row, "| 1.250 | 1.251 (1.240-1.262) | 123.4 | 1.068 |%s", tail);
    int rows = 0;
    for (const char *p = out; (p = strstr(p, row)); p++) rows++;
    return rows;
}

static void test_rows_columns_and_targets(void) {
    int rows = script_rows("CHUNKS='3 8' ROUNDS=2", "bench_hdd.sh", "");
    CHECKF(rows == 12, "%d rows with the report's numbers in place, want 2 shapes x 2 chunks x 3 kinds:\n%s", rows,
           out);
    CHECK(strstr(out, "| small, C = 96 | 1 | c = 3 dynamic expm | 1.250 | 1.251 (1.240-1.262) | 123.4 | 1.068 | ≤ 1.15 |"));
    CHECK(strstr(out, "| small | 1 | c = 8 dynamic Cayley | 1.250 | 1.251 (1.240-1.262) | 123.4 | 1.068 | ≤ 1.5 |"));
    CHECK(strstr(out, "| small, C = 96 | 1 | c = 3 static expm | 1.250 | 1.251 (1.240-1.262) | 123.4 | 1.068 | ≤ 1.05 |"));
    CHECK(strstr(out, "| author | 2 | c = 8 dynamic expm | 1.250 | 1.251 (1.240-1.262) | 123.4 | 1.068 | ≤ 1.3 |"));
    CHECK(strstr(out, "| author | 2 | c = 3 dynamic expm | 1.250 | 1.251 (1.240-1.262) | 123.4 | 1.068 | – |"));
    char *log = tr_read_file(calls, NULL);
    CHECKF(log && strstr(log, "1 --pair rope {\"kind\":\"hddrope\",\"chunk\":3} 96 4 4 256 4096 16 2\n"),
           "small-shape call: %s", log ? log : "(no calls)");
    CHECKF(log && strstr(log, "1 --pair rope {\"kind\":\"hddrope\",\"chunk\":8,\"map\":\"cayley\"} 128 4 4 256 4096 16 2\n"),
           "small-shape call: %s", log ? log : "(no calls)");
    CHECKF(log && strstr(log, "2 --pair rope {\"kind\":\"hddrope\",\"chunk\":8,\"dynamic\":false} 768 4 16 512 4096 4 2\n"),
           "author-shape call: %s", log ? log : "(no calls)");
    free(log);
}

static void test_failing_pair_is_named(void) {
    write_fake_bench();
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "chmod +x '%s' && CHUNKS='2 16' SHAPES=small ROUNDS=1 sh scripts/bench_hdd.sh '%s'", fake,
             fake);
    CHECK(cli_run(cmd, out, sizeof out) != 0);
    CHECKF(strstr(out, "bench_hdd.sh: ") && strstr(out, "\"chunk\":16") && strstr(out, "failed"),
           "no line naming the failed pair: %s", out);
    snprintf(cmd, sizeof cmd, "SHAPES=huge sh scripts/bench_hdd.sh '%s'", fake);
    CHECK(cli_run(cmd, out, sizeof out) != 0 && strstr(out, "unknown shape 'huge'"));
}

/* The peers' table: one row per peer and shape, the same columns without a target. */
static void test_peers_rows(void) {
    int rows = script_rows("ROUNDS=3", "bench_peers.sh", "\n");
    CHECKF(rows == 12, "%d rows, want 2 shapes x 6 peers:\n%s", rows, out);
    CHECK(strstr(out, "| small | 1 | path + fox | 1.250 |") && strstr(out, "| author | 2 | alibi | 1.250 |"));
    char *log = tr_read_file(calls, NULL);
    CHECKF(log && strstr(log, "2 --pair rope {\"kind\":\"path\",\"bias\":\"fox\"} 768 4 16 512 4096 4 3\n"),
           "author-shape call: %s", log ? log : "(no calls)");
    free(log);
}

int main(void) {
    RUN(test_rows_columns_and_targets);
    RUN(test_peers_rows);
    RUN(test_failing_pair_is_named);
    return test_summary();
}
