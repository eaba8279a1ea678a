/* test_layout.c: the folders' dependency arrows, read from the sources' #include lines.
 *
 * The arrows run one way (README, "Layout"):
 *     base/       nothing
 *     tokenizer/  base
 *     data/       tokenizer, base
 *     model/      base                       (no data/, no tokenizer/)
 *     cli/        everything above           (the command implementations)
 *     train.c, scripts/  everything above and cli/
 * Every quoted include is written from the repository root ("model/gpt.h"), so the folder of an
 * include is its first path component and the file must exist there. Also: nothing outside the
 * tests points at ../shared, and no source file is much over 800 lines (a file is one thing, and
 * one thing fits in a read). Run from the repo root.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/test.h"

/* The folders a source folder may include from (its own included). */
static const char *const allowed_arrows[][6] = {
    {"base", NULL},
    {"tokenizer", "base", NULL},
    {"data", "tokenizer", "base", NULL},
    {"model", "base", NULL},
    {"cli", "model", "data", "tokenizer", "base", NULL},
    {"scripts", "cli", "model", "data", "tokenizer", "base"},
};
#define N_FOLDERS (int)(sizeof allowed_arrows / sizeof allowed_arrows[0])

static int folder_index(const char *name) {
    for (int i = 0; i < N_FOLDERS; i++)
        if (strcmp(allowed_arrows[i][0], name) == 0) return i;
    return -1;
}

static int may_include(int from, const char *to_folder) {
    for (int k = 0; k < 6 && allowed_arrows[from][k]; k++)
        if (strcmp(allowed_arrows[from][k], to_folder) == 0) return 1;
    return 0;
}

/* Checks one source file's quoted includes against the arrows of folder `from` (-1: train.c,
 * which may include any library or cli folder). Root is where include paths start. Prints each
 * violation and returns how many there were. */
static int check_file(const char *root, const char *path, int from) {
    char full[1024];
    snprintf(full, sizeof full, "%s/%s", root, path);
    FILE *f = fopen(full, "r");
    if (!f) {
        fprintf(stderr, "  %s: cannot open\n", full);
        return 1;
    }
    int bad = 0, line_no = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line_no++;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (strncmp(p, "#include \"", 10) != 0) continue;
        char inc[512];
        const char *start = p + 10, *end = strchr(start, '"');
        if (!end || (size_t)(end - start) >= sizeof inc) continue;
        memcpy(inc, start, (size_t)(end - start));
        inc[end - start] = '\0';
        char target[1024];
        snprintf(target, sizeof target, "%s/%s", root, inc);
        struct stat st;
        const char *slash = strchr(inc, '/');
        if (!slash || stat(target, &st) != 0) {
            fprintf(stderr, "  %s:%d: \"%s\" is not a path from the repository root\n", path, line_no, inc);
            bad++;
            continue;
        }
        char folder[64] = {0};
        memcpy(folder, inc, (size_t)(slash - inc) < sizeof folder - 1 ? (size_t)(slash - inc) : sizeof folder - 1);
        int ok = from < 0 ? folder_index(folder) >= 0 && strcmp(folder, "scripts") != 0 : may_include(from, folder);
        if (!ok) {
            fprintf(stderr, "  %s:%d: includes \"%s\": %s/ may not depend on %s/\n", path, line_no, inc,
                    from < 0 ? "train.c" : allowed_arrows[from][0], folder);
            bad++;
        }
    }
    fclose(f);
    return bad;
}

/* Calls visit(root, "folder/name", ctx) for every .c and .h file directly in root/folder and
 * counts them into *files_seen; returns the sum of what visit returned. */
typedef int (*SourceVisit)(const char *root, const char *path, void *ctx);
static int walk_sources(const char *root, const char *folder, SourceVisit visit, void *ctx, int *files_seen) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, folder);
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    int sum = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t n = strlen(e->d_name);
        if (n < 3 || e->d_name[n - 2] != '.' || (e->d_name[n - 1] != 'c' && e->d_name[n - 1] != 'h')) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
        sum += visit(root, path, ctx);
        (*files_seen)++;
    }
    closedir(dp);
    return sum;
}

static int visit_includes(const char *root, const char *path, void *folder_index) {
    return check_file(root, path, *(const int *)folder_index);
}

/* All .c and .h files of the known folders under root, plus train.c; the number of violations. */
static int check_tree(const char *root, int *files_seen) {
    int bad = 0;
    *files_seen = 0;
    for (int i = 0; i < N_FOLDERS; i++) bad += walk_sources(root, allowed_arrows[i][0], visit_includes, &i, files_seen);
    char train[1024];
    snprintf(train, sizeof train, "%s/train.c", root);
    struct stat st;
    if (stat(train, &st) == 0) {
        bad += check_file(root, "train.c", -1);
        (*files_seen)++;
    }
    return bad;
}

static void test_repository_follows_the_arrows(void) {
    int files = 0;
    int bad = check_tree(".", &files);
    CHECKF(files > 40, "only %d source files found: not run from the repository root?", files);
    CHECKF(bad == 0, "%d include(s) against the arrows (listed above)", bad);
}

/* How many lines of the file at path mention "../shared" or "shared/spec" (each printed). */
static int outside_references(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int found = 0, line_no = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line_no++;
        if (strstr(line, "../shared") || strstr(line, "shared/spec")) {
            fprintf(stderr, "  %s:%d: points outside the repository\n", path, line_no);
            found++;
        }
    }
    fclose(f);
    return found;
}

/* The code and the docs are understood from the repository alone: no comment or document
 * points at ../shared (only tests may read the optional GPT-2 files there). */
static void test_no_references_outside_the_repo(void) {
    const char *const folders[] = {"base", "tokenizer", "data", "model", "cli", "scripts", "docs", NULL};
    int found = outside_references("train.c") + outside_references("README.md"), files = 2;
    for (int i = 0; folders[i]; i++) {
        DIR *dp = opendir(folders[i]);
        if (!dp) continue;
        struct dirent *e;
        while ((e = readdir(dp))) {
            size_t n = strlen(e->d_name);
            int source = n > 2 && (!strcmp(e->d_name + n - 2, ".c") || !strcmp(e->d_name + n - 2, ".h"));
            int doc = n > 3 && (!strcmp(e->d_name + n - 3, ".md") || !strcmp(e->d_name + n - 3, ".sh"));
            if (!source && !doc) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", folders[i], e->d_name);
            found += outside_references(path);
            files++;
        }
        closedir(dp);
    }
    CHECKF(files > 40, "only %d files read", files);
    CHECKF(found == 0, "%d line(s) point at ../shared (listed above)", found);
}

/* The longest a source file may be: "about 800 lines", with room for a header comment to grow. */
#define MAX_SOURCE_LINES 850

static long count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long lines = 0;
    int ch, last = '\n';
    while ((ch = getc(f)) != EOF) {
        if (ch == '\n') lines++;
        last = ch;
    }
    fclose(f);
    return lines + (last != '\n');
}

/* 1 (and the file printed) when root/path is longer than MAX_SOURCE_LINES, else 0. */
static int visit_length(const char *root, const char *path, void *unused) {
    char full[1024];
    snprintf(full, sizeof full, "%s/%s", root, path);
    long n_lines = count_lines(full);
    if (n_lines <= MAX_SOURCE_LINES) return 0;
    fprintf(stderr, "  %s: %ld lines\n", full, n_lines);
    return 1;
}

/* The .c and .h files under root (the library and command folders, scripts/, tests/ and train.c)
 * longer than MAX_SOURCE_LINES, each printed; how many. */
static int long_files(const char *root, int *files_seen) {
    const char *const folders[] = {"base", "tokenizer", "data", "model", "cli", "scripts", "tests", NULL};
    int found = 0;
    *files_seen = 0;
    char train[1024];
    snprintf(train, sizeof train, "%s/train.c", root);
    struct stat st;
    if (stat(train, &st) == 0) {
        found += visit_length(root, "train.c", NULL);
        (*files_seen)++;
    }
    for (int i = 0; folders[i]; i++) found += walk_sources(root, folders[i], visit_length, NULL, files_seen);
    return found;
}

static void test_no_source_file_is_too_long(void) {
    int files = 0, found = long_files(".", &files);
    CHECKF(files > 80, "only %d source files found: not run from the repository root?", files);
    CHECKF(found == 0, "%d source file(s) over %d lines (listed above): split along a seam", found, MAX_SOURCE_LINES);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A scratch tree for the checkers' own tests: $TINYROPE_TEST_TMP/name (or build/test-tmp/name)
 * with the given folders made in it; its path into root. */
static void make_scratch_tree(char *root, size_t cap, const char *name, const char *const *folders) {
    const char *tmp_root = getenv("TINYROPE_TEST_TMP") ? getenv("TINYROPE_TEST_TMP") : "build/test-tmp";
    snprintf(root, cap, "%s/%s", tmp_root, name);
    mkdir(tmp_root, 0755);
    mkdir(root, 0755);
    for (int i = 0; folders[i]; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", root, folders[i]);
        mkdir(path, 0755);
    }
}

/* The checker itself: a small tree with one allowed and one forbidden arrow, then a
 * relative-style include. Each forbidden line must be found, and nothing else. */
static void test_checker_finds_a_backward_arrow(void) {
    char root[512], path[700];
    make_scratch_tree(root, sizeof root, "layout", (const char *const[]){"base", "model", "data", NULL});
    snprintf(path, sizeof path, "%s/base/util.h", root);
    write_file(path, "/* base */\n");
    snprintf(path, sizeof path, "%s/data/shards.h", root);
    write_file(path, "#include \"base/util.h\"\n");
    snprintf(path, sizeof path, "%s/model/gpt.c", root);
    write_file(path, "#include \"base/util.h\"\n");
    int files = 0;
    CHECK(check_tree(root, &files) == 0 && files == 3);
    write_file(path, "#include \"base/util.h\"\n#include \"data/shards.h\"\n");  /* model -> data */
    CHECK(check_tree(root, &files) == 1);
    write_file(path, "#include \"../base/util.h\"\n");                         /* not root-relative */
    CHECK(check_tree(root, &files) == 1);
    snprintf(path, sizeof path, "%s/base/util.h", root);
    write_file(path, "#include \"model/gpt.c\"\n");                             /* base -> model */
    snprintf(path, sizeof path, "%s/model/gpt.c", root);
    write_file(path, "#include \"base/util.h\"\n");
    CHECK(check_tree(root, &files) == 1);
}

/* The length check itself: a file of exactly the limit passes, one line more is found, and a last
 * line without its newline counts. */
static void test_length_checker_finds_a_long_file(void) {
    char root[512], path[700];
    make_scratch_tree(root, sizeof root, "lengths", (const char *const[]){"model", NULL});
    snprintf(path, sizeof path, "%s/model/long.c", root);
    for (int extra = 0; extra < 3; extra++) {
        FILE *f = fopen(path, "w");
        if (!f) break;
        for (int i = 0; i < MAX_SOURCE_LINES; i++) fputs("int x;\n", f);
        if (extra == 1) fputs("int y;\n", f);
        if (extra == 2) fputs("int y;", f); /* no final newline */
        fclose(f);
        int files = 0;
        CHECKF(long_files(root, &files) == (extra > 0) && files == 1, "case %d", extra);
    }
}

int main(void) {
    RUN(test_checker_finds_a_backward_arrow);
    RUN(test_repository_follows_the_arrows);
    RUN(test_no_references_outside_the_repo);
    RUN(test_length_checker_finds_a_long_file);
    RUN(test_no_source_file_is_too_long);
    return test_summary();
}
