/* test_doc_anchors.c: the teaching docs (docs/tour.md, backward.md, exercises.md, figures.md) name
 * only functions and files that exist, so a renamed function or a moved file breaks a test
 * instead of silently leaving the docs behind the code. Run from the repo root.
 *
 * What a doc anchors, outside fenced code blocks (``` or ~~~, indented or not; inline code spans
 * are on one line):
 *   - `name()` in a code span: a C identifier immediately followed by "()";
 *   - a repo path in a code span: a word (words are split at spaces and '=') that starts with
 *     model/ data/ tokenizer/ cli/ base/ scripts/ tests/ configs/ or docs/, cut at the first
 *     character that cannot be in a path (so `model/layers.c:42` anchors model/layers.c); a word
 *     whose path is followed by one of < * { [ $ ? is a pattern (`model/bias_<name>.c`,
 *     `tests/test_*.c`), not a path. It is relative to the repository root;
 *   - the target of a relative link [text](target) (no scheme; the #fragment dropped), relative
 *     to the doc's folder.
 * A path must exist, as a file or a folder. A name must be DEFINED in a .c or .h file under base/
 * tokenizer/ data/ model/ cli/ scripts/ tests/ (folders included) or in train.c, where a line
 * defines `name` when `name` is followed (after optional spaces) by '(' and
 *   - the line is `#define name(` (a function-like macro), or
 *   - the line starts at column 0 with an identifier that is not a statement keyword (return, if,
 *     else, while, for, do, switch, case, goto, sizeof, typedef), and everything before `name`
 *     is identifiers, '*' and blanks: the return type, qualifiers, storage class and attribute
 *     macros of a definition or prototype (`static inline int name(`, `HDD_INLINE void name(`,
 *     `void *name(`), or
 *   - `name` itself is at column 0 and the line does not end in ';' (a definition whose type is
 *     on the line above).
 * A call never matches: inside a function it is indented, and at column 0 it comes after '=' or
 * a keyword, or ends in ';'. So a name the code only calls (`cblas_sgemm`) or only holds in a
 * struct (a posenc hook such as `scores_forward`) does not count as defined.
 * Each broken anchor is one failure line: "<doc>:<line>: <anchor>: <what is wrong>".
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "tests/test.h"

/* ---- which names the sources define ---- */

static int is_ident_start(int c) { return isalpha(c) || c == '_'; }
static int is_ident_char(int c) { return isalnum(c) || c == '_'; }
static int is_blank(int c) { return c == ' ' || c == '\t'; }

static int first_word_is_keyword(const char *line, size_t len) {
    static const char *const keywords[] = {"return", "if",   "else", "while",  "for",     "do",
                                           "switch", "case", "goto", "sizeof", "typedef", NULL};
    size_t n = 0;
    while (n < len && is_ident_char((unsigned char)line[n])) n++;
    for (int k = 0; keywords[k]; k++)
        if (strlen(keywords[k]) == n && strncmp(line, keywords[k], n) == 0) return 1;
    return 0;
}

/* Whether line[0..len) defines the identifier at line[at..at+name_len), which the caller found
 * followed by optional blanks and '(' (the rule of the header comment). */
static int defines_at(const char *line, size_t len, size_t at, size_t name_len) {
    size_t i = 0;
    while (i < len && is_blank(line[i])) i++;
    if (i < len && line[i] == '#') {
        for (i++; i < len && is_blank(line[i]); i++) {}
        if (len - i < 7 || strncmp(line + i, "define", 6) != 0 || !is_blank(line[i + 6])) return 0;
        for (i += 6; i < len && is_blank(line[i]); i++) {}
        return i == at && at + name_len < len && line[at + name_len] == '(';
    }
    if (len == 0 || !is_ident_start((unsigned char)line[0]) || first_word_is_keyword(line, len)) return 0;
    if (at == 0) {
        size_t end = len;
        while (end > 0 && isspace((unsigned char)line[end - 1])) end--;
        return end > 0 && line[end - 1] != ';';
    }
    for (size_t k = 0; k < at; k++) {
        const unsigned char c = (unsigned char)line[k];
        if (!is_ident_char(c) && c != '*' && !is_blank(c)) return 0;
    }
    return 1;
}

/* Calls add(name, name_len, ctx) for every name line[0..len) defines. */
static void line_definitions(const char *line, size_t len, void (*add)(const char *, size_t, void *), void *ctx) {
    for (size_t i = 0; i < len; i++) {
        if (!is_ident_start((unsigned char)line[i]) || (i > 0 && is_ident_char((unsigned char)line[i - 1]))) continue;
        size_t j = i;
        while (j < len && is_ident_char((unsigned char)line[j])) j++;
        size_t k = j;
        while (k < len && is_blank(line[k])) k++;
        if (k < len && line[k] == '(' && defines_at(line, len, i, j - i)) add(line + i, j - i, ctx);
        i = j - 1;
    }
}

/* 1 if the line (NUL-terminated) defines name. */
static void note_match(const char *s, size_t n, void *ctx) {
    const char *want = *(const char **)ctx;
    if (strlen(want) == n && strncmp(s, want, n) == 0) *(const char **)ctx = NULL;
}
static int line_defines(const char *line, const char *name) {
    const char *want = name;
    line_definitions(line, strlen(line), note_match, &want);
    return want == NULL;
}

typedef struct {
    char **names;
    size_t n, cap;
} NameSet;

static void name_add(const char *s, size_t n, void *ctx) {
    NameSet *set = ctx;
    if (set->n == set->cap) {
        set->cap = set->cap ? 2 * set->cap : 1024;
        set->names = xrealloc(set->names, set->cap * sizeof *set->names);
    }
    char *copy = xmalloc(n + 1);
    memcpy(copy, s, n);
    copy[n] = '\0';
    set->names[set->n++] = copy;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int name_defined(const NameSet *set, const char *name) {
    return bsearch(&name, set->names, set->n, sizeof *set->names, compare_names) != NULL;
}

static void index_file(NameSet *set, const char *path) {
    size_t n;
    char *text = tr_read_file(path, &n);
    if (!text) {
        fprintf(stderr, "  %s\n", tr_error());
        return;
    }
    for (char *line = text; line < text + n;) {
        char *end = memchr(line, '\n', (size_t)(text + n - line));
        if (!end) end = text + n;
        line_definitions(line, (size_t)(end - line), name_add, set);
        line = end < text + n ? end + 1 : end;
    }
    free(text);
}

static void index_dir(NameSet *set, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "  %s: cannot open the folder\n", dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        size_t len = strlen(e->d_name);
        if (S_ISDIR(st.st_mode)) index_dir(set, path);
        else if (len > 2 && (!strcmp(e->d_name + len - 2, ".c") || !strcmp(e->d_name + len - 2, ".h")))
            index_file(set, path);
    }
    closedir(d);
}

/* Every name the sources define, built once. */
static const NameSet *defined_names(void) {
    static NameSet set;
    static int built;
    if (!built) {
        static const char *const dirs[] = {"base", "tokenizer", "data", "model", "cli", "scripts", "tests"};
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) index_dir(&set, dirs[i]);
        index_file(&set, "train.c");
        qsort(set.names, set.n, sizeof *set.names, compare_names);
        built = 1;
    }
    return &set;
}

/* ---- what a doc anchors ---- */

static int is_path_char(int c) { return isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-' || c == '+'; }

static int starts_with_repo_folder(const char *s, size_t n) {
    static const char *const folders[] = {"model/", "data/",    "tokenizer/", "cli/", "base/",
                                          "scripts/", "tests/", "configs/",   "docs/", NULL};
    for (int k = 0; folders[k]; k++) {
        size_t f = strlen(folders[k]);
        if (n >= f && strncmp(s, folders[k], f) == 0) return 1;
    }
    return 0;
}

typedef struct {
    const char *doc;             /* the name failure lines give */
    const char *link_dir;        /* the folder links are relative to */
    const NameSet *defined;
    FILE *report;
    int line_no, failures;
} DocCheck;

static void fail_anchor(DocCheck *dc, const char *what, size_t what_len, const char *suffix, const char *why) {
    fprintf(dc->report, "  %s:%d: `%.*s%s`: %s\n", dc->doc, dc->line_no, (int)what_len, what, suffix, why);
    dc->failures++;
}

/* The names and paths of one code span's text s[0..n). */
static void check_span(DocCheck *dc, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!is_ident_start((unsigned char)s[i]) || (i > 0 && is_ident_char((unsigned char)s[i - 1]))) continue;
        size_t j = i;
        while (j < n && is_ident_char((unsigned char)s[j])) j++;
        if (j + 1 < n && s[j] == '(' && s[j + 1] == ')') {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(j - i), s + i);
            if (!name_defined(dc->defined, name))
                fail_anchor(dc, s + i, j - i, "()", "not defined in any .c or .h file of the repository");
        }
        i = j - 1;
    }
    for (size_t i = 0; i < n;) {
        while (i < n && (isspace((unsigned char)s[i]) || s[i] == '=')) i++;
        size_t p = i;
        while (p < n && is_path_char((unsigned char)s[p])) p++;
        const int pattern = p < n && strchr("<*{[$?", s[p]) != NULL;
        if (p > i && !pattern && starts_with_repo_folder(s + i, p - i)) {
            char path[1024];
            snprintf(path, sizeof path, "%.*s", (int)(p - i), s + i);
            if (!tr_file_exists(path)) fail_anchor(dc, s + i, p - i, "", "no such file or folder");
        }
        while (p < n && !isspace((unsigned char)s[p]) && s[p] != '=') p++;
        i = p;
    }
}

/* "https://...", "mailto:...": a link out of the repository. */
static int has_scheme(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')) i++;
    return i > 0 && i < n && s[i] == ':';
}

/* The link targets in plain (non-code) text s[0..n). */
static void check_links(DocCheck *dc, const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != ']' || s[i + 1] != '(') continue;
        size_t start = i + 2, end = start;
        while (end < n && s[end] != ')' && !isspace((unsigned char)s[end])) end++;
        size_t cut = start;
        while (cut < end && s[cut] != '#') cut++;
        const char *target = s + start;
        const size_t len = cut - start;
        i = end;
        if (len == 0 || has_scheme(target, len)) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%.*s", dc->link_dir, (int)len, target);
        if (!tr_file_exists(path)) fail_anchor(dc, target, len, "", "the link leads to no file or folder");
    }
}

static void check_line(DocCheck *dc, const char *line, size_t len) {
    size_t plain = 0;   /* start of the text not yet checked for links */
    for (size_t i = 0; i < len;) {
        if (line[i] != '`') { i++; continue; }
        size_t ticks = 0;
        while (i + ticks < len && line[i + ticks] == '`') ticks++;
        size_t open_end = i + ticks, close = open_end;
        for (;;) {   /* the next run of exactly `ticks` backticks closes the span */
            while (close < len && line[close] != '`') close++;
            if (close >= len) break;
            size_t run = 0;
            while (close + run < len && line[close + run] == '`') run++;
            if (run == ticks) break;
            close += run;
        }
        if (close >= len) break;   /* unclosed: the rest is plain text */
        check_links(dc, line + plain, i - plain);
        check_span(dc, line + open_end, close - open_end);
        i = plain = close + ticks;
    }
    check_links(dc, line + plain, len - plain);
}

/* Checks a doc's text; writes one failure line per broken anchor to report and returns their
 * count. */
static int check_doc_text(const char *doc, const char *text, const char *link_dir, FILE *report) {
    DocCheck dc = {.doc = doc, .link_dir = link_dir, .defined = defined_names(), .report = report};
    int fenced = 0;
    const size_t n = strlen(text);
    for (const char *line = text; line < text + n;) {
        const char *end = memchr(line, '\n', (size_t)(text + n - line));
        if (!end) end = text + n;
        size_t len = (size_t)(end - line);
        if (len && line[len - 1] == '\r') len--;
        dc.line_no++;
        size_t lead = 0;
        while (lead < len && is_blank(line[lead])) lead++;   /* fences may be indented in lists */
        if (len - lead >= 3 && (!strncmp(line + lead, "```", 3) || !strncmp(line + lead, "~~~", 3))) fenced = !fenced;
        else if (!fenced) check_line(&dc, line, len);
        line = end < text + n ? end + 1 : end;
    }
    return dc.failures;
}

static int check_doc_file(const char *path) {
    char *text = tr_read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "  %s\n", tr_error());
        return 1;
    }
    int failures = check_doc_text(path, text, "docs", stderr);
    free(text);
    return failures;
}

/* ---- tests ---- */

static void test_definition_rule(void) {
    CHECK(line_defines("void layernorm_forward(float *out, const float *inp, int N) {", "layernorm_forward"));
    CHECK(line_defines("static inline int posenc_kind_extra(const PosEnc *pe) { return 0; }", "posenc_kind_extra"));
    CHECK(line_defines("HDD_INLINE void forward_unit(const Hdd *d, long u,", "forward_unit"));
    CHECK(line_defines("char *xstrdup(const char *s);", "xstrdup"));
    CHECK(line_defines("#define MADD(a, b, c) fmaf((a), (b), (c))", "MADD"));
    CHECK(line_defines("gpt_forward(GPT *m, const int32_t *tokens)", "gpt_forward"));
    /* calls, hooks and comments */
    CHECK(!line_defines("    layernorm_forward(out, mean, rstd, inp, w, N, C);", "layernorm_forward"));
    CHECK(!line_defines("layernorm_forward(out, mean, rstd, inp, w, N, C);", "layernorm_forward"));
    CHECK(!line_defines("double x = lr_at(&schedule, step);", "lr_at"));
    CHECK(!line_defines("return lr_at(&schedule, step);", "lr_at"));
    CHECK(!line_defines("    void (*qk_forward)(const PosEnc *pe, int l);", "qk_forward"));
    CHECK(!line_defines(" * layernorm_forward() saves mean and rstd", "layernorm_forward"));
    CHECK(!line_defines("/* layernorm_forward(x) */", "layernorm_forward"));
    CHECK(!line_defines("#define MADD (a)", "MADD"));
    CHECK(!line_defines("typedef int handler(int);", "handler"));
}

static void test_definitions_of_the_repository(void) {
    const NameSet *set = defined_names();
    CHECKF(set->n > 1000, "%zu definitions found", set->n);
    CHECK(name_defined(set, "layernorm_backward"));   /* model/layers.c */
    CHECK(name_defined(set, "cmd_run"));              /* train.c, static */
    CHECK(name_defined(set, "forward_unit"));         /* an attribute macro before the type */
    CHECK(name_defined(set, "softmax_backward_inplace"));
    CHECK(name_defined(set, "MADD"));                 /* a macro, model/fast_math.h */
    /* called or held, never defined here */
    CHECK(!name_defined(set, "cblas_sgemm"));
    CHECK(!name_defined(set, "omp_get_max_threads"));
    CHECK(!name_defined(set, "scores_forward"));   /* a posenc hook: a struct member */
}

/* The checker reports exactly the broken anchors of a small doc: a good name and a good link
 * pass, a name that nothing defines and a missing file fail, each on its own line. */
static void test_checker_reports_bad_anchors(void) {
    static const char doc[] =
        "# A doc\n"
        "Read `layernorm_backward()` in [layers.c](../model/layers.c) and `model/layers.c`.\n"
        "Then `no_such_function_anywhere()`,\n"
        "and `model/no_such_file_anywhere.c`.\n"
        "```\n"
        "`inside_a_fence_is_not_checked()`\n"
        "```\n";
    FILE *report = tmpfile();
    CHECK(report != NULL);
    if (!report) return;
    int failures = check_doc_text("memory.md", doc, "docs", report);
    CHECKF(failures == 2, "%d failures", failures);
    rewind(report);
    char lines[3][512] = {{0}};
    int n = 0;
    while (n < 3 && fgets(lines[n], sizeof lines[n], report)) n++;
    fclose(report);
    CHECKF(n == 2, "%d report lines", n);
    CHECKF(strstr(lines[0], "memory.md:3:") && strstr(lines[0], "`no_such_function_anywhere()`"), "%s", lines[0]);
    CHECKF(strstr(lines[1], "memory.md:4:") && strstr(lines[1], "`model/no_such_file_anywhere.c`"), "%s", lines[1]);
}

static void check_doc(const char *path) {
    CHECKF(tr_file_exists(path), "%s is missing", path);
    if (!tr_file_exists(path)) return;
    int failures = check_doc_file(path);
    CHECKF(failures == 0, "%d broken anchors in %s (listed above)", failures, path);
}
static void test_tour(void) { check_doc("docs/tour.md"); }
static void test_backward_doc(void) { check_doc("docs/backward.md"); }
static void test_exercises_doc(void) { check_doc("docs/exercises.md"); }
static void test_figures_doc(void) { check_doc("docs/figures.md"); }

int main(void) {
    RUN(test_definition_rule);
    RUN(test_definitions_of_the_repository);
    RUN(test_checker_reports_bad_anchors);
    RUN(test_tour);
    RUN(test_backward_doc);
    RUN(test_exercises_doc);
    RUN(test_figures_doc);
    return test_summary();
}
