/* test_gpt2_import.c: tests for reading OpenAI's GPT-2 files (tokenizer/gpt2_import.c): they
 * give GPT-2's ids, and every broken file is refused with an error naming it and the problem.
 *
 * tests/fixtures/gpt2_tiny/ is a hand-made GPT-2-format tokenizer: GPT-2's 256 byte tokens in
 * GPT-2's order (ids 0..255), 23 merges in vocab.bpe whose tokens have ids in *reverse* rank order
 * (merge r -> id 278 - r, so a loader that assumed 256 + r would fail), an unused token "xyz"
 * (279) and <|endoftext|> (280). Its expected ids below were worked out by hand. The real files
 * (../shared/data/gpt2) are checked against their cases.json when present.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/util.h"
#include "tests/test.h"
#include "tests/tokenizer_test_helpers.h"
#include "tokenizer/tokenizer.h"

/* ---------------------------------------------------------------------------------------------
 * GPT-2's format */

static void check_case(const Tokenizer *t, const char *text, int how, const uint32_t *want, size_t n_want) {
    Ids got = encode(t, text, strlen(text), how);
    if (!ids_equal_list(got, want, n_want)) {
        CHECKF(0, "\"%s\" (%s): wrong ids", text, how == ENC_SPECIAL ? "with special" : "ordinary");
        print_ids("got", got);
        Ids w = {(uint32_t *)want, n_want};
        print_ids("want", w);
    }
    if (how == ENC_FAST) {
        Ids ref = encode(t, text, strlen(text), ENC_REFERENCE);
        CHECKF(ids_equal(got, ref), "\"%s\": reference differs", text);
        free(ref.ids);
    }
    free(got.ids);
}

#define CASE(t, text, how, ...)                                                  \
    do {                                                                          \
        const uint32_t want_[] = {__VA_ARGS__};                                   \
        check_case(t, text, how, want_, sizeof want_ / sizeof want_[0]);          \
    } while (0)

static void test_gpt2_fixture(void) {
    Tokenizer *t = tok_load_gpt2(FIXTURE_ENCODER, FIXTURE_VOCAB);
    CHECKF(t != NULL, "%s", tr_error());
    if (!t) return;
    CHECK(tok_vocab_size(t) == 281);
    CHECK(tok_eot_id(t) == 280);
    int len;
    const uint8_t *b = tok_token_bytes(t, 220, &len);   /* GPT-2's "Ġ" is the space byte */
    CHECK(b && len == 1 && b[0] == ' ');
    b = tok_token_bytes(t, 188, &len);   /* "Ā" is byte 0 */
    CHECK(b && len == 1 && b[0] == 0);
    b = tok_token_bytes(t, 256, &len);   /* "Ã©" is é */
    CHECK(b && len == 2 && memcmp(b, "\xc3\xa9", 2) == 0);
    b = tok_token_bytes(t, 276, &len);
    CHECK(b && len == 4 && memcmp(b, " the", 4) == 0);
    /* Worked out by hand from vocab.bpe (merge r has id 278 - r; bytes in GPT-2's order). */
    CASE(t, "Hello world", ENC_FAST, 265, 260);               /* "Hello" r13, " world" r18 */
    CASE(t, " the cat's hat", ENC_FAST, 276, 272, 269, 270);  /* " cat": (a,t) r4 before (Ġ,c) r5 */
    CASE(t, " at", ENC_FAST, 275, 83);                        /* (Ġ,a) r3 beats (a,t) r4 */
    CASE(t, "Hellllo", ENC_FAST, 266, 268, 78);               /* leftmost (l,l) first */
    CASE(t, "\n\n\n", ENC_FAST, 259, 198);
    CASE(t, "caf\xc3\xa9 12", ENC_FAST, 66, 64, 69, 256, 220, 257);
    CASE(t, "  x", ENC_FAST, 220, 220, 87);                   /* the last space joins the word */
    CASE(t, "   \n", ENC_FAST, 258, 220, 198);
    CASE(t, "<|endoftext|>", ENC_FAST, 27, 91, 68, 77, 67, 78, 69, 83, 68, 87, 83, 91, 29);
    CASE(t, "Hello<|endoftext|> world", ENC_SPECIAL, 265, 280, 260);
    Ids none = encode(t, "", 0, ENC_FAST);
    CHECK(none.n == 0);
    free(none.ids);
    for (size_t i = 0; i < N_TRICKY; i++) check_round_trip(t, tricky[i].s, tricky_len(&tricky[i]), "gpt2 fixture tricky");
    uint8_t buf[200];
    for (int r = 0; r < 300; r++) {
        size_t n = rng_next(sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = rng_next(3) ? (uint8_t)" the cat hat\n\nHello world"[rng_next(25)] : (uint8_t)rng_next(256);
        check_round_trip(t, buf, n, "gpt2 fixture random");
    }
    Tokenizer *u = tok_load_gpt2(FIXTURE_ENCODER, FIXTURE_VOCAB);
    CHECK(u && tok_hash(u) == tok_hash(t));
    tok_free(u);
    tok_free(t);
}

/* A copy of the fixture with `from` replaced by `to` in encoder.json (or vocab.bpe), then loaded;
 * checks the load fails with an error naming the right file and the problem. */
static void expect_gpt2_error(const char *name, int in_vocab, const char *from, const char *to,
                              const char *problem) {
    char enc_path[600], bpe_path[600];
    snprintf(enc_path, sizeof enc_path, "%s/tok_%s_encoder.json", test_tmp_dir(), name);
    snprintf(bpe_path, sizeof bpe_path, "%s/tok_%s_vocab.bpe", test_tmp_dir(), name);
    size_t enc_n, bpe_n;
    char *enc = tr_read_file(FIXTURE_ENCODER, &enc_n), *bpe = tr_read_file(FIXTURE_VOCAB, &bpe_n);
    CHECK(enc && bpe);
    if (!enc || !bpe) return;
    char *src = in_vocab ? bpe : enc;
    char *at = strstr(src, from);
    CHECKF(at != NULL, "%s: \"%s\" not in the fixture", name, from);
    if (at) {
        size_t n = strlen(src), fl = strlen(from), tl = strlen(to);
        char *edited = xmalloc(n - fl + tl + 1);
        memcpy(edited, src, (size_t)(at - src));
        memcpy(edited + (at - src), to, tl);
        strcpy(edited + (at - src) + tl, at + fl);
        if (in_vocab) { free(bpe); bpe = edited; } else { free(enc); enc = edited; }
    }
    CHECK(test_write_file(enc_path, enc, strlen(enc)) == 0 && test_write_file(bpe_path, bpe, strlen(bpe)) == 0);
    tr_clear_error();
    Tokenizer *t = tok_load_gpt2(enc_path, bpe_path);
    CHECKF(t == NULL, "%s: loaded a bad file", name);
    tok_free(t);
    const char *blamed = in_vocab ? bpe_path : enc_path;
    CHECKF(strncmp(tr_error(), blamed, strlen(blamed)) == 0, "%s: error \"%s\" should name %s", name, tr_error(), blamed);
    CHECKF(strstr(tr_error(), problem) != NULL, "%s: error \"%s\" does not mention \"%s\"", name, tr_error(), problem);
    free(enc);
    free(bpe);
}

static void test_gpt2_load_errors(void) {
    tr_clear_error();
    CHECK(tok_load_gpt2("tests/fixtures/gpt2_tiny/nope.json", FIXTURE_VOCAB) == NULL);
    CHECKF(strstr(tr_error(), "nope.json") && strstr(tr_error(), "cannot open"), "error: %s", tr_error());
    tr_clear_error();
    CHECK(tok_load_gpt2(FIXTURE_ENCODER, "tests/fixtures/gpt2_tiny/nope.bpe") == NULL);
    CHECKF(strstr(tr_error(), "nope.bpe") && strstr(tr_error(), "cannot open"), "error: %s", tr_error());
    expect_gpt2_error("bad_json", 0, "\"xyz\": 279,", "\"xyz\": 279,,", "bad JSON");
    expect_gpt2_error("cut_json", 0, "\"<|endoftext|>\": 280}", "\"<|endoftext|>\": 2", "bad JSON");
    expect_gpt2_error("not_object", 0, "{", "[", "bad JSON");
    expect_gpt2_error("unknown_left", 1, "H ell\n", "QQ ell\n", "\"QQ\"");
    expect_gpt2_error("unknown_right", 1, "o r\n", "o rr\n", "\"rr\"");
    expect_gpt2_error("unknown_result", 1, "o r\n", "o Q\n", "makes token \"oQ\"");
    expect_gpt2_error("bad_line", 1, "o r\n", "o r x\n", "two token names");
    expect_gpt2_error("missing_byte", 0, "\"!\": 0,", "\"!!\": 0,", "missing byte token for byte 0x21");
    expect_gpt2_error("duplicate_byte", 0, "\"xyz\": 279,", "\"a\": 279,", "duplicate byte token");
    expect_gpt2_error("duplicate_id", 0, "\"xyz\": 279,", "\"xyz\": 278,", "used twice");
    expect_gpt2_error("id_range", 0, "\"xyz\": 279,", "\"xyz\": 2790,", "has id 2790");
    expect_gpt2_error("id_fraction", 0, "\"xyz\": 279,", "\"xyz\": 27.5,", "has id 27.5");
    expect_gpt2_error("trailing_json", 0, "\"<|endoftext|>\": 280}", "\"<|endoftext|>\": 280} {}", "bad JSON");
    expect_gpt2_error("id_string", 0, "\"xyz\": 279,", "\"xyz\": \"279\",", "not a number");
    expect_gpt2_error("alphabet", 0, "\"xyz\": 279,", "\"x y\": 279,", "byte alphabet");
    expect_gpt2_error("no_eot", 0, "<|endoftext|>", "<|endoftext|", "no <|endoftext|>");
    expect_gpt2_error("dup_merge", 1, "o r\n", "o r\no r\n", "duplicate merge");
}

/* Reads ../shared/data/gpt2/cases.json and checks every case; returns the number checked. */
static int check_shared_cases(const Tokenizer *t, const char *path) {
    char *json = tr_read_file(path, NULL);
    CHECKF(json != NULL, "%s", tr_error());
    if (!json) return 0;
    cJSON *root = cJSON_Parse(json);
    CHECK(root != NULL);
    int checked = 0;
    const char *sections[] = {"ordinary", "allow_special"};
    for (int s = 0; s < 2 && root; s++) {
        const cJSON *section = cJSON_GetObjectItemCaseSensitive(root, sections[s]);
        CHECK(cJSON_IsObject(section));
        for (const cJSON *c = section ? section->child : NULL; c; c = c->next) {
            int n = cJSON_GetArraySize(c);
            uint32_t *want = xmalloc((size_t)(n ? n : 1) * sizeof *want);
            for (int i = 0; i < n; i++) want[i] = (uint32_t)cJSON_GetArrayItem(c, i)->valuedouble;
            check_case(t, c->string, s == 0 ? ENC_FAST : ENC_SPECIAL, want, (size_t)n);
            free(want);
            checked++;
        }
    }
    cJSON_Delete(root);
    free(json);
    return checked;
}

static void test_gpt2_shared_files(void) {
    const char *shared = test_shared_dir();
    if (!shared) SKIP("../shared not present (OpenAI's GPT-2 files are not shipped)");
    char enc[512], bpe[512], cases[512];
    snprintf(enc, sizeof enc, "%s/data/gpt2/encoder.json", shared);
    snprintf(bpe, sizeof bpe, "%s/data/gpt2/vocab.bpe", shared);
    snprintf(cases, sizeof cases, "%s/data/gpt2/cases.json", shared);
    if (!tr_file_exists(enc) || !tr_file_exists(bpe)) SKIP("no GPT-2 files under %s/data/gpt2", shared);
    Tokenizer *t = tok_load_gpt2(enc, bpe);
    CHECKF(t != NULL, "%s", tr_error());
    if (!t) return;
    CHECK(tok_vocab_size(t) == 50257);
    CHECK(tok_eot_id(t) == 50256);
    int checked = check_shared_cases(t, cases);
    CHECKF(checked >= 10, "only %d cases", checked);
    CASE(t, "Hello world", ENC_FAST, 15496, 995);
    /* Letters and digits of Unicode 16.0 (the version of tiktoken's regex crate) before "'s": the
     * regex makes the run one chunk and "'s" another, so the ids are those of each chunk encoded
     * alone, which a plain BPE over encoder.json and vocab.bpe gives: U+A7CB (Lu) is its three
     * UTF-8 byte tokens 166 253 233 with no merge among them, " U+1C89 U+1C8A" (Lu, Ll) is
     * 28053 110 231 157 110 232, U+16D70 U+16D71 (Nd) is 172 244 113 108 172 244 113 109, and
     * "'s" is 338, the id tiktoken ends U+A7CB "'s" with. Classing these as 'other' instead glues
     * the apostrophe to the run and ends with "'" 6, "s" 82. */
    CASE(t, "\xea\x9f\x8b's", ENC_FAST, 166, 253, 233, 338);
    CASE(t, " \xe1\xb2\x89\xe1\xb2\x8a's", ENC_FAST, 28053, 110, 231, 157, 110, 232, 338);
    CASE(t, "\xf0\x96\xb5\xb0\xf0\x96\xb5\xb1's", ENC_FAST,
         172, 244, 113, 108, 172, 244, 113, 109, 338);
    /* Real text: fast == reference, and round trips. */
    size_t n;
    uint8_t *text = read_sample("tiny_stories.txt", 30000, &n);
    if (text) {
        check_round_trip(t, text, n, "tiny_stories.txt with GPT-2");
        free(text);
    }
    for (size_t i = 0; i < N_TRICKY; i++) check_round_trip(t, tricky[i].s, tricky_len(&tricky[i]), "gpt2 tricky");
    tok_free(t);
}

int main(void) {
    RUN(test_gpt2_fixture);
    RUN(test_gpt2_load_errors);
    RUN(test_gpt2_shared_files);
    return test_summary();
}
