/* figure.c: the teaching figures of docs/figures/, computed by the project's own code
 * (scripts/figures.sh makes them all).
 *
 *   build/figure decay  --out DIR [--head-size 48] [--max-distance 50000]
 *         DIR/decay-<kind>.csv (distance,bound): RoFormer's long-term decay bound of the relative
 *         score, q = k = all-ones, for every kind with a fixed position profile (figure_posenc.h)
 *   build/figure angles --out DIR [--head-size 48] [--positions 2048]
 *         DIR/angles-<kind>-pair<j>.csv (position,angle): how far each pair has turned, RoPE and xPos
 *   build/figure attention RUN --out FILE.png [--csv FILE.csv] [--window K] [--tokens N]
 *         attention maps of every layer and head on the first N tokens of validation window K
 *   build/figure motion RUN --out FILE.png [--csv FILE.csv] [--window K] [--tokens N]
 *         how far each token turns HDD-RoPE's P_t (figure_model.h), a dynamic run's checkpoint
 *
 * Bad input gets one "error: ..." line and exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"
#include "scripts/figure_model.h"
#include "scripts/figure_posenc.h"

/* The kinds whose score profile depends on distance alone, as the decay and angle figures show them. */
static const struct { const char *name, *posenc; } FIXED_KINDS[] = {
    {"none", "{\"kind\": \"none\"}"},
    {"rope", "{\"kind\": \"rope\"}"},
    {"xpos", "{\"kind\": \"xpos\"}"},
    {"xpos-author", "{\"kind\": \"xpos\", \"variant\": \"author\"}"},
    {"hddrope-static-c4", "{\"kind\": \"hddrope\", \"chunk\": 4, \"dynamic\": false}"},
};
#define N_FIXED_KINDS (int)(sizeof FIXED_KINDS / sizeof *FIXED_KINDS)

static void usage(void) {
    fprintf(stderr, "usage: figure decay --out DIR [--head-size 48] [--max-distance 50000]\n"
                    "       figure angles --out DIR [--head-size 48] [--positions 2048]\n"
                    "       figure attention RUN --out FILE.png [--csv FILE.csv] [--window K] [--tokens N]\n"
                    "       figure motion RUN --out FILE.png [--csv FILE.csv] [--window K] [--tokens N]\n");
}

static void write_csv(const char *path, const char *header, const double *y, int n, int stride) {
    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) tr_die_with_error();
    tr_atomic_writef(&af, "%s\n", header);
    for (int i = 0; i < n; i++) tr_atomic_writef(&af, "%d,%.9g\n", i, y[(size_t)i * stride]);
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
}

static void decay(const char *dir, int hs, int max_distance) {
    for (int k = 0; k < N_FIXED_KINDS; k++) {
        float *q, *kk;
        int n = figure_rotated_ones(FIXED_KINDS[k].posenc, hs, max_distance + 1, &q, &kk);
        if (n < 0) tr_die_with_error();
        double *bound = xmalloc((size_t)n * sizeof *bound);
        figure_decay_bound(q, kk, n, hs, bound);
        char path[1200];
        snprintf(path, sizeof path, "%s/decay-%s.csv", dir, FIXED_KINDS[k].name);
        write_csv(path, "distance,bound", bound, n, 1);
        free(bound);
        free(q);
        free(kk);
    }
}

static void angles(const char *dir, int hs, int positions) {
    static const char *const kinds[] = {"rope", "xpos", "xpos-author"};
    for (int k = 0; k < 3; k++) {
        const char *posenc = NULL;
        for (int i = 0; i < N_FIXED_KINDS; i++)
            if (!strcmp(FIXED_KINDS[i].name, kinds[k])) posenc = FIXED_KINDS[i].posenc;
        float *q, *kk;
        int n = figure_rotated_ones(posenc, hs, positions, &q, &kk);
        if (n < 0) tr_die_with_error();
        double *angle = xmalloc((size_t)n * (hs / 2) * sizeof *angle);
        figure_pair_angles(q, n, hs, angle);
        for (int j = 0; j < hs / 2; j++) {
            char path[1200];
            snprintf(path, sizeof path, "%s/angles-%s-pair%d.csv", dir, kinds[k], j);
            write_csv(path, "position,angle", angle + j, n, hs / 2);
        }
        free(angle);
        free(q);
        free(kk);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        usage();
        return argc < 2;
    }
    const char *what = argv[1], *out = NULL, *csv = NULL, *run = NULL;
    long long hs = 48, max_distance = 50000, positions = 2048, window = 0, tokens = 32;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--out")) out = tr_arg_value(argc, argv, &i);
        else if (!strcmp(a, "--csv")) csv = tr_arg_value(argc, argv, &i);
        else if (!strcmp(a, "--head-size")) hs = tr_parse_int(tr_arg_value(argc, argv, &i), "--head-size", 2, 1024);
        else if (!strcmp(a, "--max-distance"))
            max_distance = tr_parse_int(tr_arg_value(argc, argv, &i), "--max-distance", 1, 1000000);
        else if (!strcmp(a, "--positions")) positions = tr_parse_int(tr_arg_value(argc, argv, &i), "--positions", 2, 1000000);
        else if (!strcmp(a, "--window")) window = tr_parse_int(tr_arg_value(argc, argv, &i), "--window", 0, 1 << 30);
        else if (!strcmp(a, "--tokens")) tokens = tr_parse_int(tr_arg_value(argc, argv, &i), "--tokens", 1, 4096);
        else if (a[0] != '-' && !run) run = a;
        else tr_die("figure %s: unexpected argument '%s' (figure --help)", what, a);
    }
    if (!out) tr_die("figure %s: --out is required (figure --help)", what);
    int needs_run = !strcmp(what, "attention") || !strcmp(what, "motion");
    if (needs_run != (run != NULL))
        tr_die(needs_run ? "figure %s: give the run directory (figure --help)" : "figure %s: takes no run directory", what);
    if (!strcmp(what, "decay")) {
        if (hs % 4) tr_die("figure decay: --head-size %lld: must be a multiple of 4 (HDD-RoPE's chunks of 4)", hs);
        decay(out, (int)hs, (int)max_distance);
    } else if (!strcmp(what, "angles")) {
        if (hs % 2) tr_die("figure angles: --head-size %lld: must be even (pairs)", hs);
        angles(out, (int)hs, (int)positions);
    } else if (!strcmp(what, "attention")) figure_attention_run(run, (int)window, (int)tokens, out, csv);
    else if (!strcmp(what, "motion")) figure_motion_run(run, (int)window, (int)tokens, out, csv);
    else tr_die("figure: unknown figure '%s' (decay, angles, attention, motion)", what);
    return 0;
}
