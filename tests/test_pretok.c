/* test_pretok.c: the GPT-2 pre-tokenizer: chunk boundaries on GPT-2's own test strings, the
 * fast scanner against the literal alternative-by-alternative reference, and the classes. */
#include <stdint.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer/pretok.h"
#include "tests/test.h"

/* Splits s into chunks joined by '|' (for readable failure messages). */
static void chunks_of(const char *s, char *out, size_t cap, int reference) {
    size_t n = strlen(s), pos = 0, o = 0;
    out[0] = '\0';
    while (pos < n) {
        size_t len = reference ? pretok_next_reference((const uint8_t *)s, n, pos)
                               : pretok_next((const uint8_t *)s, n, pos);
        if (o && o + 1 < cap) out[o++] = '|';
        for (size_t k = 0; k < len && o + 1 < cap; k++) out[o++] = s[pos + k];
        out[o] = '\0';
        pos += len;
    }
}

static void expect_chunks(const char *s, const char *expected) {
    char got[1024];
    for (int reference = 0; reference <= 1; reference++) {
        chunks_of(s, got, sizeof got, reference);
        CHECKF(strcmp(got, expected) == 0, "%s on \"%s\": got \"%s\", want \"%s\"",
               reference ? "reference" : "fast", s, got, expected);
    }
}

/* The chunkings GPT-2's regex gives (the token ids in ../shared/data/gpt2/cases.json agree). */
static void test_gpt2_chunks(void) {
    expect_chunks("Hello world", "Hello| world");
    expect_chunks(" 's", " '|s");
    expect_chunks("don't", "don|'t");
    expect_chunks("  multiple   spaces\n\n\nnewlines", " | multiple|  | spaces|\n\n|\n|newlines");
    expect_chunks("12345 1,234.5", "12345| 1|,|234|.|5");
    expect_chunks("I'm, you're, we've, they'll, he'd, IT'S",
                  "I|'m|,| you|'re|,| we|'ve|,| they|'ll|,| he|'d|,| IT|'|S");
    expect_chunks("tab\tsep\r\nCRLF \n  \n", "tab|\t|sep|\r|\n|CRLF| \n  \n");
    expect_chunks("\xe2\x80\x9c" "curly quotes\xe2\x80\x9d \xe2\x80\x94 dash\xe2\x80\xa6",
                  "\xe2\x80\x9c|curly| quotes|\xe2\x80\x9d| \xe2\x80\x94| dash|\xe2\x80\xa6");
    expect_chunks("", "");
    expect_chunks(" ", " ");
    expect_chunks("a  ", "a|  ");
    expect_chunks("x \xc2\xa0y", "x| |\xc2\xa0|y");       /* NBSP is whitespace but not " ?" */
    expect_chunks("'sa 'S ''s", "'s|a| '|S| ''|s");         /* contractions are case-sensitive */
    expect_chunks("caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve");
    expect_chunks("!!! ?? a", "!!!| ??| a");
}

static void test_classes(void) {
    CHECK(pretok_class('a') == PRETOK_LETTER);
    CHECK(pretok_class(0xE9) == PRETOK_LETTER);       /* é */
    CHECK(pretok_class(0x4E2D) == PRETOK_LETTER);     /* 中 */
    CHECK(pretok_class('7') == PRETOK_NUMBER);
    CHECK(pretok_class(0x663) == PRETOK_NUMBER);      /* Arabic-Indic three */
    CHECK(pretok_class(0xBD) == PRETOK_NUMBER);       /* ½ is category No */
    CHECK(pretok_class(' ') == PRETOK_SPACE);
    CHECK(pretok_class('\n') == PRETOK_SPACE);
    CHECK(pretok_class(0xA0) == PRETOK_SPACE);
    CHECK(pretok_class(0x3000) == PRETOK_SPACE);
    CHECK(pretok_class(0x1C) == PRETOK_OTHER);        /* not White_Space, though isspace() says so */
    CHECK(pretok_class('!') == PRETOK_OTHER);
    CHECK(pretok_class(0x1F600) == PRETOK_OTHER);     /* emoji */
    CHECK(pretok_class(0x10FFFF) == PRETOK_OTHER);
}

static void test_decode_invalid(void) {
    uint32_t cp;
    const uint8_t overlong[] = {0xC0, 0xAF}, surrogate[] = {0xED, 0xA0, 0x80}, cut[] = {0xE2, 0x80};
    CHECK(pretok_decode(overlong, 2, &cp) == 1 && cp == 0xFFFFFFFFu);
    CHECK(pretok_decode(surrogate, 3, &cp) == 1 && cp == 0xFFFFFFFFu);
    CHECK(pretok_decode(cut, 2, &cp) == 1 && cp == 0xFFFFFFFFu);
    const uint8_t euro[] = {0xE2, 0x82, 0xAC};
    CHECK(pretok_decode(euro, 3, &cp) == 3 && cp == 0x20AC);
}

/* Walks text with both scanners; returns 1 if they agree everywhere and the chunks tile it. */
static int scanners_agree(const uint8_t *text, size_t n, size_t *where) {
    size_t pos = 0;
    while (pos < n) {
        size_t a = pretok_next(text, n, pos), b = pretok_next_reference(text, n, pos);
        if (a != b || a == 0 || pos + a > n) { *where = pos; return 0; }
        pos += a;
    }
    return 1;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rng_next(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void test_fast_equals_reference_random(void) {
    /* Pieces chosen to hit every rule: spaces of several kinds, letters and numbers outside
     * ASCII, apostrophes, emoji, and bytes that are not valid UTF-8. */
    static const char *pieces[] = {" ", "  ", "\n", "\n\n", "\t", "\r\n", "\xc2\xa0", "\xe3\x80\x80",
                                   "a", "Zz", "\xc3\xa9", "\xe4\xb8\xad", "7", "42", "\xd9\xa3", "\xc2\xbd",
                                   "'", "'s", "'re", "'LL", "!", "...", "\xf0\x9f\x98\x80", "\xff", "\xe2\x80",
                                   "\x80", "\xc0\xaf", "\xed\xa0\x80", "\0", "\x1c", "-"};
    int npieces = (int)(sizeof pieces / sizeof pieces[0]);
    int rounds = test_small() ? 2000 : 20000;
    uint8_t buf[256];
    for (int r = 0; r < rounds; r++) {
        size_t n = 0;
        int count = 1 + (int)(rng_next() % 24);
        for (int i = 0; i < count; i++) {
            int k = (int)(rng_next() % (uint32_t)npieces);
            size_t len = (k == 28) ? 1 : strlen(pieces[k]);   /* piece 28 is a NUL byte */
            if (n + len > sizeof buf) break;
            memcpy(buf + n, pieces[k], len);
            n += len;
        }
        size_t where = 0;
        if (!scanners_agree(buf, n, &where)) {
            CHECKF(0, "scanners disagree at byte %zu of a random string of %zu bytes", where, n);
            return;
        }
    }
}

/* Every ASCII byte, in random strings: the fast path classifies ASCII without the tables. */
static void test_fast_equals_reference_ascii(void) {
    uint8_t buf[64];
    for (int r = 0; r < (test_small() ? 2000 : 20000); r++) {
        size_t n = 1 + rng_next() % sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(rng_next() % 128);
        size_t where = 0;
        if (!scanners_agree(buf, n, &where)) {
            CHECKF(0, "scanners disagree at byte %zu (0x%02x) of a random ASCII string", where, buf[where]);
            return;
        }
    }
}

static void test_fast_equals_reference_sample(void) {
    const char *paths[] = {"data/sample/tinystories_10k.txt", "data/sample/tiny_stories.txt"};
    int checked = 0;
    for (int i = 0; i < 2; i++) {
        size_t n;
        char *text = tr_read_file(paths[i], &n);
        if (!text) continue;
        if (test_small() && n > 200000) n = 200000;
        size_t where = 0;
        CHECKF(scanners_agree((const uint8_t *)text, n, &where), "%s: disagree at byte %zu", paths[i], where);
        free(text);
        checked++;
    }
    CHECKF(checked == 2, "sample files missing under data/sample/");
}

int main(void) {
    RUN(test_gpt2_chunks);
    RUN(test_classes);
    RUN(test_decode_invalid);
    RUN(test_fast_equals_reference_random);
    RUN(test_fast_equals_reference_ascii);
    RUN(test_fast_equals_reference_sample);
    return test_summary();
}
