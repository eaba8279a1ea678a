/* test_state_scripts.c: scripts/state_grid.sh and scripts/state_figures.sh as a user runs them,
 * on a tiny flip-flop config with two configurations (KINDS, one of them an ablation setting) x
 * two seeds at one depth: summary.csv has one row per run with the flip-flop columns; each
 * row's 1x accuracy is the run's own last held-out accuracy in log.csv (the same sequences);
 * the Markdown table's mean ± std are those of the rows; the ablation's setting reached the run;
 * runs train two at a time (JOBS=2); a second pass keeps the finished runs and resumes one stopped
 * after its last checkpoint; a missing config is refused. Then state_figures.sh
 * writes the figures (no chunk-size figure: no kind here is named hdd-c<c>) and a per-position
 * CSV at 4x the training length. */
#define _POSIX_C_SOURCE 200809L /* st_mtim */
#include <math.h>
#include <sys/stat.h>

#include "tests/cli_test_helpers.h"

#define KINDS                                                                                               \
    "KINDS='rope|{\"kind\":\"rope\"}\n"                                                                     \
    "hdd-c2-lr0.5|{\"kind\":\"hddrope\",\"chunk\":2}|optim.posenc_lr_mult=0.5'"

static char out[32768], runs[700], config[700];

/* The value of "key" in a run's config.json (cJSON's layout: "key":<tab>value), NAN if absent. */
static double config_number(const char *path, const char *key) {
    char *text = tr_read_file(path, NULL), quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\":", key);
    const char *p = text ? strstr(text, quoted) : NULL;
    const double v = p ? strtod(p + strlen(quoted), NULL) : NAN;
    free(text);
    return v;
}

static double mtime_of(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
}

/* The tools' directory: beside the trainer under test (build/ or build-san/). */
static void tools_dir(char *dir, size_t cap) {
    snprintf(dir, cap, "%s", cli_train_bin());
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, cap, "build");
}

static int grid(void) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, KINDS " JOBS=2 TRAIN=%s sh scripts/state_grid.sh %s %s 2 1", cli_train_bin(), config, runs);
    return cli_run(cmd, out, sizeof out);
}

static void write_config(void) {
    char dir[600], spec[700];
    snprintf(dir, sizeof dir, "%s/state-configs", test_tmp_dir());
    tr_mkdir_p(dir);
    snprintf(spec, sizeof spec, "%s/flipflop.json", dir);
    const char *s = "{\"task\": \"flipflop\", \"length\": 8, \"p_ignore\": 0.5, \"val_sequences\": 64}\n";
    test_write_file(spec, s, strlen(s));
    snprintf(config, sizeof config, "%s/grid.json", dir);
    char text[2048];
    snprintf(text, sizeof text,
             "{\"data\": \"%s\", \"tokenizer\": {\"vocab_size\": 258},\n"
             " \"model\": {\"n_layer\": 1, \"n_embd\": 16, \"n_head\": 2, \"block_size\": 32},\n"
             " \"train\": {\"batch_size\": 8, \"max_steps\": 12, \"eval_every\": 6, \"checkpoint_every\": 0,\n"
             "           \"sample_tokens\": 0},\n"
             " \"optim\": {\"lr\": 1e-2, \"warmup_steps\": 1}}\n",
             spec);
    test_write_file(config, text, strlen(text));
    snprintf(runs, sizeof runs, "%s/state-runs", test_tmp_dir());
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf %s", runs);
    CHECK(system(cmd) == 0);
}

/* Parses summary.csv: rows of (name, layers, seed, 11 numbers). Returns the row count. */
typedef struct {
    char name[32];
    int layers, seed;
    double v[8]; /* acc 1x 2x 4x, solved 1x 2x 4x, acc sparse, acc dense */
} Row;
static int read_summary(Row *rows, int cap, char *header, size_t header_cap) {
    char path[800];
    snprintf(path, sizeof path, "%s/summary.csv", runs);
    char *text = tr_read_file(path, NULL);
    if (!text) return -1;
    char *nl = strchr(text, '\n');
    snprintf(header, header_cap, "%.*s", nl ? (int)(nl - text) : 0, text);
    int n = 0;
    for (char *line = nl ? nl + 1 : NULL; line && *line && n < cap; n++) {
        Row *r = &rows[n];
        int used = 0;
        if (sscanf(line, "%31[^,],%d,%d%n", r->name, &r->layers, &r->seed, &used) != 3) break;
        char *p = line + used;
        for (int i = 0; i < 8; i++) r->v[i] = *p == ',' ? strtod(p + 1, &p) : NAN;
        line = strchr(line, '\n');
        if (line) line++;
    }
    free(text);
    return n;
}

static void test_grid_rows_and_table(void) {
    write_config();
    int rc = grid();
    CHECKF(rc == 0, "state_grid.sh exited %d:\n%s", rc, out);
    Row rows[8];
    char header[400];
    const int n = read_summary(rows, 8, header, sizeof header);
    CHECKF(!strcmp(header, "kind,layers,seed,acc_1x,acc_2x,acc_4x,solved_1x,solved_2x,solved_4x,acc_sparse,acc_dense"),
           "header: %s", header);
    CHECKF(n == 4, "%d rows in summary.csv, want 2 kinds x 2 seeds", n);
    if (n != 4) return;
    const char *names[] = {"rope", "rope", "hdd-c2-lr0.5", "hdd-c2-lr0.5"};
    for (int i = 0; i < 4; i++) {
        CHECKF(!strcmp(rows[i].name, names[i]) && rows[i].layers == 1 && rows[i].seed == 1 + i % 2, "row %d: %s L%d s%d",
               i, rows[i].name, rows[i].layers, rows[i].seed);
        char dir[1000];
        snprintf(dir, sizeof dir, "%s/%.31s-L1-s%d", runs, rows[i].name, rows[i].seed);
        double acc[8];
        const int m = cli_log_column(dir, 5, acc, 8);
        CHECKF(m == 2 && fabs(acc[m - 1] - rows[i].v[0]) < 1e-6, "%s: acc_1x %f, log.csv's last val_acc %f", dir,
               rows[i].v[0], m > 0 ? acc[m - 1] : NAN);
        for (int k = 0; k < 8; k++)
            CHECKF(isfinite(rows[i].v[k]) && rows[i].v[k] >= 0 && (k >= 3 && k < 6 ? rows[i].v[k] <= 32 : rows[i].v[k] <= 1),
                   "%s: column %d = %f", dir, k + 3, rows[i].v[k]);
        /* the solved length at 1x cannot pass the training length, nor shrink at longer lengths */
        CHECKF(rows[i].v[3] <= 8 && rows[i].v[4] >= rows[i].v[3] - 1e-9 && rows[i].v[5] >= rows[i].v[4] - 1e-9,
               "%s: solved lengths %g %g %g", dir, rows[i].v[3], rows[i].v[4], rows[i].v[5]);
    }
    /* the ablation's --set reached the run, and only that one */
    char path[1000];
    snprintf(path, sizeof path, "%s/hdd-c2-lr0.5-L1-s1/config.json", runs);
    CHECKF(config_number(path, "posenc_lr_mult") == 0.5, "%s: posenc_lr_mult %g", path,
           config_number(path, "posenc_lr_mult"));
    snprintf(path, sizeof path, "%s/rope-L1-s1/config.json", runs);
    CHECKF(config_number(path, "posenc_lr_mult") == 1.0, "%s: posenc_lr_mult %g", path,
           config_number(path, "posenc_lr_mult"));
    /* the table: mean ± sample std of acc_1x over the two seeds, from the rows */
    for (int k = 0; k < 2; k++) {
        const double a = rows[2 * k].v[0], b = rows[2 * k + 1].v[0], mean = 0.5 * (a + b);
        const double sd = sqrt((a - mean) * (a - mean) + (b - mean) * (b - mean));
        char want[160];
        snprintf(want, sizeof want, "| %.31s | 1 | %.3f ± %.3f |", rows[2 * k].name, mean, sd);
        CHECKF(strstr(out, want) != NULL, "table lacks \"%s\":\n%s", want, out);
    }
    CHECKF(strstr(out, "acc sparse | acc dense |") != NULL, "no flip-flop columns in the table:\n%s", out);
}

static void test_second_pass_keeps_runs_and_bad_config(void) {
    char path[900];
    snprintf(path, sizeof path, "%s/rope-L1-s1/log.csv", runs);
    if (!tr_file_exists(path)) SKIP("no runs (test_grid_rows_and_table failed?)");
    const double before = mtime_of(path);
    /* A run stopped after its last checkpoint (no final.json) resumes instead of starting over. */
    char final[900], cmd[2048];
    snprintf(final, sizeof final, "%s/rope-L1-s2/final.json", runs);
    CHECK(remove(final) == 0);
    CHECKF(grid() == 0, "second pass:\n%s", out);
    CHECK(mtime_of(path) == before);
    CHECKF(tr_file_exists(final), "%s: not written again on resume", final);
    snprintf(path, sizeof path, "%s/rope-L1-s2.log", runs);
    char *log = tr_read_file(path, NULL);
    CHECKF(log && strstr(log, "resumed from"), "%s: the stopped run started over instead of resuming", path);
    free(log);
    snprintf(cmd, sizeof cmd, "TRAIN=%s sh scripts/state_grid.sh %s/missing.json %s 1 1", cli_train_bin(),
             test_tmp_dir(), runs);
    CHECK(cli_run(cmd, out, sizeof out) != 0 && strstr(out, "missing.json") != NULL);
}

/* KINDS=peers trains the published peers, one row each. */
static void test_peers_preset(void) {
    char cmd[4096], peers[800], path[900];
    snprintf(peers, sizeof peers, "%s/state-peers", test_tmp_dir());
    snprintf(cmd, sizeof cmd, "rm -rf %s && KINDS=peers JOBS=2 TRAIN=%s sh scripts/state_grid.sh %s %s 1 1", peers,
             cli_train_bin(), config, peers);
    const int rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "state_grid.sh KINDS=peers exited %d:\n%s", rc, out);
    const char *names[] = {"alibi", "fox", "rope-fox", "path", "path-fox", "hdd-c4-fox"};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s-L1-s1/final.json", peers, names[i]);
        CHECKF(tr_file_exists(path), "%s: not trained", path);
    }
    snprintf(path, sizeof path, "%s/path-fox-L1-s1/config.json", peers);
    char *text = tr_read_file(path, NULL);
    CHECKF(text && strstr(text, "\"path\"") && strstr(text, "\"fox\""), "%s: not PaTH + FoX", path);
    free(text);
}

static void test_figures(void) {
    char path[900], cmd[4096], tools[600], figs[800];
    snprintf(path, sizeof path, "%s/summary.csv", runs);
    if (!tr_file_exists(path)) SKIP("no summary (test_grid_rows_and_table failed?)");
    tools_dir(tools, sizeof tools);
    snprintf(figs, sizeof figs, "%s/state-figures", test_tmp_dir());
    snprintf(cmd, sizeof cmd, "TRAIN=%s PLOT=%s/plot sh scripts/state_figures.sh %s %s ff", cli_train_bin(), tools, runs,
             figs);
    int rc = cli_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "state_figures.sh exited %d:\n%s", rc, out);
    const char *files[] = {"ff-position-L1.png", "ff-curves-L1.png", "ff-solved-depth.png", "ff-summary.csv"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", figs, files[i]);
        CHECKF(tr_file_exists(path), "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/ff-solved-c.png", figs);
    CHECK(!tr_file_exists(path));
    /* the per-position CSV at 4x: a header and one row per position of 32 */
    snprintf(path, sizeof path, "%s/rope-L1-s2/acc_4x.csv", runs);
    char *text = tr_read_file(path, NULL);
    int lines = 0;
    for (const char *p = text; p && *p; p++) lines += *p == '\n';
    CHECKF(text && lines == 33, "%s: %d lines, want 33", path, lines);
    free(text);
}

int main(void) {
    RUN(test_grid_rows_and_table);
    RUN(test_second_pass_keeps_runs_and_bad_config);
    RUN(test_figures);
    RUN(test_peers_preset);
    return test_summary();
}
