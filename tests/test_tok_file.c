/* test_tok_file.c: tests for our tokenizer file format (tokenizer/tok_file.c): save -> load
 * keeps the vocabulary, the ids and the fingerprint; the file is the documented text, with
 * readable comments; the fingerprint ignores the comments and sees every change to the merges;
 * every broken file is refused with one message naming file and line; and a tokenizer whose ids
 * are not in our layout (GPT-2's) is never saved.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tests/test.h"
#include "tests/tokenizer_test_helpers.h"
#include "tokenizer/tokenizer.h"

/* ---------------------------------------------------------------------------------------------
 * Saving and loading */

static char *tmp_path(const char *name) {
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/tok_%s", test_tmp_dir(), name);
    return p;
}

static int same_vocabulary(const Tokenizer *a, const Tokenizer *b) {
    if (tok_vocab_size(a) != tok_vocab_size(b) || tok_eot_id(a) != tok_eot_id(b)) return 0;
    for (int id = 0; id < tok_vocab_size(a); id++) {
        int la, lb;
        const uint8_t *x = tok_token_bytes(a, id, &la), *y = tok_token_bytes(b, id, &lb);
        if (la != lb || memcmp(x, y, (size_t)la) != 0) return 0;
    }
    return 1;
}

static void test_save_load_round_trip(void) {
    Tokenizer *t = get_sample_tokenizer();
    CHECK(t != NULL);
    if (!t) return;
    const char *path = tmp_path("saved.bpe");
    remove(path);
    CHECKF(tok_save(t, path) == 0, "save: %s", tr_error());
    Tokenizer *u = tok_load(path);
    CHECKF(u != NULL, "load: %s", tr_error());
    if (!u) return;
    CHECK(same_vocabulary(t, u));
    CHECK(tok_hash(t) == tok_hash(u));
    if (sample_text) {
        Ids a = encode(t, sample_text, sample_n, ENC_SPECIAL), b = encode(u, sample_text, sample_n, ENC_SPECIAL);
        CHECK(ids_equal(a, b));
        free(a.ids);
        free(b.ids);
    }
    /* The file is what tokenizer.h documents, with readable comments. */
    size_t size;
    char *text = tr_read_file(path, &size);
    CHECK(text != NULL);
    if (text) {
        char head[200];
        snprintf(head, sizeof head, "tinyrope-bpe 1\npattern gpt2\nvocab_size %d\nmerges %d\nspecial %d <|endoftext|>\nmerge 256 ",
                 tok_vocab_size(t), tok_vocab_size(t) - 257, tok_eot_id(t));
        CHECKF(strncmp(text, head, strlen(head)) == 0, "file starts: %.120s", text);
        CHECK(size > 4 && strcmp(text + size - 4, "end\n") == 0);
    }
    /* Saving what was loaded gives the same bytes; no temporary file is left behind. */
    const char *again = tmp_path("saved_again.bpe");
    CHECK(tok_save(u, again) == 0);
    size_t size2;
    char *text2 = tr_read_file(again, &size2);
    CHECK(text && text2 && size == size2 && memcmp(text, text2, size) == 0);
    DIR *dir = opendir(test_tmp_dir());
    CHECK(dir != NULL);
    for (struct dirent *e; dir && (e = readdir(dir));)
        CHECKF(!strstr(e->d_name, "tok_saved") || !strstr(e->d_name, ".tmp."), "left over: %s", e->d_name);
    if (dir) closedir(dir);
    free(text);
    free(text2);
    tok_free(u);
}

static void test_comment_escaping(void) {
    /* Merge comments show the token's bytes C-style: quote, backslash, newline, tab, \xHH. */
    const uint32_t m[5][2] = {{'"', '\\'}, {'\n', '\t'}, {0xc3, 0xa9}, {' ', 't'}, {0, 0xff}};
    Tokenizer *t = tok_from_merges(m, 5);
    const char *path = tmp_path("escape.bpe");
    CHECK(t && tok_save(t, path) == 0);
    char *text = tr_read_file(path, NULL);
    CHECK(text != NULL);
    if (text) {
        CHECKF(strstr(text, "merge 256 34 92 # \"\\\"\\\\\"\n"), "%s", text);
        CHECKF(strstr(text, "merge 257 10 9 # \"\\n\\t\"\n"), "%s", text);
        CHECKF(strstr(text, "merge 258 195 169 # \"\\xc3\\xa9\"\n"), "%s", text);
        CHECKF(strstr(text, "merge 259 32 116 # \" t\"\n"), "%s", text);
        CHECKF(strstr(text, "merge 260 0 255 # \"\\x00\\xff\"\n"), "%s", text);
    }
    Tokenizer *u = tok_load(path);
    CHECKF(u && tok_hash(u) == tok_hash(t), "%s", tr_error());
    free(text);
    tok_free(t);
    tok_free(u);
}

static void test_hash_ignores_comments_detects_changes(void) {
    const uint32_t m[4][2] = {{'a', 'b'}, {'c', 'd'}, {256, 257}, {' ', 258}};
    Tokenizer *t = tok_from_merges(m, 4);
    CHECK(t != NULL);
    if (!t) return;
    /* The same vocabulary written by hand: other comments, blank lines, spacing, CRLF. */
    const char *by_hand =
        "tinyrope-bpe 1\n# a comment line\n\npattern   gpt2\r\nvocab_size 261 # 256 + 4 + 1\nmerges\t4\n"
        "special 260 <|endoftext|>\nmerge 256 97 98\nmerge 257 99 100 # whatever\n\n"
        "  merge 258 256 257   # \"abcd\"\nmerge 259 32 258 # \" abcd\"\nend\n\n# trailing comment\n";
    const char *path = tmp_path("by_hand.bpe");
    CHECK(test_write_file(path, by_hand, strlen(by_hand)) == 0);
    Tokenizer *u = tok_load(path);
    CHECKF(u != NULL, "%s", tr_error());
    if (u) {
        CHECK(tok_hash(u) == tok_hash(t));
        CHECK(same_vocabulary(t, u));
    }
    tok_free(u);
    /* Any change to a merge changes the fingerprint; so does dropping the last merge. */
    uint32_t changed[4][2];
    memcpy(changed, m, sizeof m);
    changed[3][0] = '\n';
    Tokenizer *c = tok_from_merges((const uint32_t(*)[2])changed, 4), *shorter = tok_from_merges(m, 3);
    memcpy(changed, m, sizeof m);
    changed[2][0] = 257;
    changed[2][1] = 256;
    Tokenizer *swapped = tok_from_merges((const uint32_t(*)[2])changed, 4);
    CHECK(c && shorter && swapped);
    if (c && shorter && swapped) {
        CHECK(tok_hash(c) != tok_hash(t));
        CHECK(tok_hash(shorter) != tok_hash(t));
        CHECK(tok_hash(swapped) != tok_hash(t));
    }
    /* Same token bytes, different merges: token 258 is "abc" in both, built as ("ab", c) or as
     * (a, "bc"), and "abc" encodes as [a, "bc"] with the first, [258] with the second. */
    const uint32_t via_ab[3][2] = {{'b', 'c'}, {'a', 'b'}, {257, 'c'}};
    const uint32_t via_bc[3][2] = {{'b', 'c'}, {'a', 'b'}, {'a', 256}};
    Tokenizer *x = tok_from_merges(via_ab, 3), *y = tok_from_merges(via_bc, 3);
    CHECK(x && y && same_vocabulary(x, y));
    if (x && y) {
        Ids ex = encode(x, "abc", 3, ENC_FAST), ey = encode(y, "abc", 3, ENC_FAST);
        CHECK(!ids_equal(ex, ey));
        CHECK(tok_hash(x) != tok_hash(y));
        free(ex.ids);
        free(ey.ids);
    }
    tok_free(x);
    tok_free(y);
    /* And it is a pure function of the vocabulary: rebuilding gives the same value. */
    Tokenizer *again = tok_from_merges(m, 4);
    CHECK(again && tok_hash(again) == tok_hash(t));
    tok_free(again);
    tok_free(c);
    tok_free(shorter);
    tok_free(swapped);
    tok_free(t);
}

/* Writes a bad file, loads it, and checks the one error names the file (and line) and says what
 * is wrong. */
static void expect_load_error(const char *name, const char *content, const char *where, const char *problem) {
    const char *path = tmp_path(name);
    CHECK(test_write_file(path, content, strlen(content)) == 0);
    tr_clear_error();
    Tokenizer *t = tok_load(path);
    CHECKF(t == NULL, "%s: loaded a bad file", name);
    tok_free(t);
    char want_where[600];
    snprintf(want_where, sizeof want_where, "%s%s", path, where);
    CHECKF(strncmp(tr_error(), want_where, strlen(want_where)) == 0, "%s: error \"%s\" does not start with \"%s\"",
           name, tr_error(), want_where);
    CHECKF(strstr(tr_error(), problem) != NULL, "%s: error \"%s\" does not mention \"%s\"", name, tr_error(),
           problem);
}

#define GOOD_HEAD "tinyrope-bpe 1\npattern gpt2\nvocab_size 260\nmerges 3\nspecial 259 <|endoftext|>\n"
static void test_load_errors(void) {
    /* First, the good file these are variations of. */
    const char *good = GOOD_HEAD "merge 256 97 98\nmerge 257 256 99\nmerge 258 32 257\nend\n";
    const char *path = tmp_path("good.bpe");
    CHECK(test_write_file(path, good, strlen(good)) == 0);
    Tokenizer *t = tok_load(path);
    CHECKF(t != NULL, "%s", tr_error());
    tok_free(t);

    expect_load_error("magic.bpe", "tinyrope-bpx 1\npattern gpt2\n", ":1:", "wrong magic");
    expect_load_error("empty.bpe", "", ":1:", "wrong magic");
    expect_load_error("json.bpe", "{\"model\": {}}\n", ":1:", "wrong magic");
    expect_load_error("version.bpe", "tinyrope-bpe 2\npattern gpt2\n", ":1:", "unsupported tokenizer file version 2");
    expect_load_error("no_end.bpe", GOOD_HEAD "merge 256 97 98\nmerge 257 256 99\nmerge 258 32 257\n", ":8:",
                      "truncated");
    expect_load_error("cut.bpe", GOOD_HEAD "merge 256 97 98\nmerge 257 256 99\nmer", ":8:", "truncated");
    expect_load_error("few.bpe", GOOD_HEAD "merge 256 97 98\nmerge 257 256 99\nend\n", ":8:", "truncated: 3 merges declared");
    expect_load_error("header_only.bpe", "tinyrope-bpe 1\npattern gpt2\n", ":2:", "truncated");
    expect_load_error("many.bpe", GOOD_HEAD "merge 256 97 98\nmerge 257 256 99\nmerge 258 32 257\nmerge 259 1 2\nend\n",
                      ":9:", "more merges than the 3 declared");
    expect_load_error("unknown_id.bpe", GOOD_HEAD "merge 256 97 98\nmerge 257 256 300\n", ":7:", "not defined yet");
    expect_load_error("later_id.bpe", GOOD_HEAD "merge 256 97 257\n", ":6:", "not defined yet");
    expect_load_error("self_id.bpe", GOOD_HEAD "merge 256 256 98\n", ":6:", "not defined yet");
    expect_load_error("skip_id.bpe", GOOD_HEAD "merge 256 97 98\nmerge 258 256 99\n", ":7:", "non-consecutive");
    expect_load_error("special_id.bpe",
                      "tinyrope-bpe 1\npattern gpt2\nvocab_size 260\nmerges 3\nspecial 300 <|endoftext|>\n", ":5:",
                      "non-consecutive");
    expect_load_error("garbage.bpe", GOOD_HEAD "merge 256 97 9x8\n", ":6:", "bad number \"9x8\"");
    expect_load_error("negative.bpe", GOOD_HEAD "merge 256 -1 98\n", ":6:", "bad number \"-1\"");
    expect_load_error("huge.bpe", GOOD_HEAD "merge 256 99999999999999999999 98\n", ":6:", "bad number");
    expect_load_error("vocab_word.bpe", "tinyrope-bpe 1\npattern gpt2\nvocab_size lots\n", ":3:", "bad number \"lots\"");
    expect_load_error("vocab_size.bpe",
                      "tinyrope-bpe 1\npattern gpt2\nvocab_size 4096\nmerges 3\nspecial 259 <|endoftext|>\n"
                      "merge 256 97 98\nmerge 257 256 99\nmerge 258 32 257\nend\n",
                      ":3:", "vocab_size 4096 is inconsistent");
    expect_load_error("no_special.bpe",
                      "tinyrope-bpe 1\npattern gpt2\nvocab_size 259\nmerges 3\n"
                      "merge 256 97 98\nmerge 257 256 99\nmerge 258 32 257\nend\n",
                      "", "no \"special");
    expect_load_error("pattern.bpe", "tinyrope-bpe 1\npattern llama\n", ":2:", "unsupported pre-tokenization pattern");
    expect_load_error("after_end.bpe", GOOD_HEAD "merge 256 97 98\nmerge 257 256 99\nmerge 258 32 257\nend\nmerge 259 1 2\n",
                      ":10:", "after \"end\"");
    expect_load_error("dup.bpe", GOOD_HEAD "merge 256 97 98\nmerge 257 97 98\nmerge 258 32 257\nend\n", ":7:",
                      "same pair");
    expect_load_error("unknown_line.bpe", GOOD_HEAD "mrege 256 97 98\n", ":6:", "unknown line");
    expect_load_error("fields.bpe", GOOD_HEAD "merge 256 97\n", ":6:", "expected \"merge <id> <left> <right>\"");
    {
        const char nul[] = GOOD_HEAD "merge 256 9\0007 98\n";
        const char *p = tmp_path("nul_inside.bpe");
        CHECK(test_write_file(p, nul, sizeof nul - 1) == 0);
        tr_clear_error();
        CHECK(tok_load(p) == NULL);
        CHECKF(strstr(tr_error(), ":6:") && strstr(tr_error(), "NUL"), "error: %s", tr_error());
    }
    const char *missing = tmp_path("does_not_exist.bpe");
    remove(missing);
    tr_clear_error();
    CHECK(tok_load(missing) == NULL);
    CHECKF(strstr(tr_error(), missing) && strstr(tr_error(), "cannot open"), "error: %s", tr_error());
}

static void test_save_errors(void) {
    const uint32_t m[1][2] = {{'a', 'b'}};
    Tokenizer *t = tok_from_merges(m, 1);
    CHECK(t != NULL);
    if (!t) return;
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/t.bpe", test_tmp_dir());
    tr_clear_error();
    CHECK(tok_save(t, path) == -1);
    CHECKF(strstr(tr_error(), "no/such/dir/t.bpe"), "error: %s", tr_error());
    tok_free(t);
    /* GPT-2's ids are not in our layout; saving must refuse rather than write a wrong file. */
    Tokenizer *g = tok_load_gpt2(FIXTURE_ENCODER, FIXTURE_VOCAB);
    CHECKF(g != NULL, "%s", tr_error());
    if (g) {
        const char *p = tmp_path("gpt2.bpe");
        remove(p);
        CHECK(tok_save(g, p) == -1);
        CHECK(!tr_file_exists(p));
    }
    tok_free(g);
}

int main(void) {
    RUN(test_save_load_round_trip);
    RUN(test_comment_escaping);
    RUN(test_hash_ignores_comments_detects_changes);
    RUN(test_load_errors);
    RUN(test_save_errors);
    tok_free(sample_tok);
    free(sample_text);
    return test_summary();
}
