/* pretok.c: the GPT-2 pre-tokenizer as a hand-written scanner (see pretok.h for the pattern).
 *
 * pretok_next dispatches on the first character of the chunk, which is enough because the
 * pattern's alternatives start with disjoint things (an apostrophe, an optional ASCII space, a
 * letter / number / other run, or whitespace). pretok_next_reference instead tries the pattern's
 * seven alternatives one after another, literally, the way a backtracking regex engine does. The
 * reference comes first below, then the fast scanner; the tests check the two agree.
 */
#include "tokenizer/pretok.h"

#include "tokenizer/unicode_tables.h"

#define INVALID_CP 0xFFFFFFFFu

int pretok_class(uint32_t cp) {
    /* Binary search over the sorted ranges; code points in no range are "other". */
    int lo = 0, hi = UNICODE_CLASS_RANGE_COUNT - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < unicode_class_ranges[mid].lo) hi = mid - 1;
        else if (cp > unicode_class_ranges[mid].hi) lo = mid + 1;
        else return unicode_class_ranges[mid].cls;
    }
    return PRETOK_OTHER;
}

int pretok_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = INVALID_CP; return 1; }
    if ((size_t)len > n) { *cp = INVALID_CP; return 1; }
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) { *cp = INVALID_CP; return 1; }
        v = (v << 6) | (s[k] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not characters: one byte each. */
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = INVALID_CP; return 1; }
    *cp = v;
    return len;
}

/* ---------------------------------------------------------------------------------------------
 * Reference: the pattern's alternatives tried in order, each matched the slow literal way.
 * Each matcher returns the match length at pos, or 0 for no match. */

static int ref_class(const uint8_t *text, size_t n, size_t pos, size_t *len) {
    uint32_t cp;
    *len = (size_t)pretok_decode(text + pos, n - pos, &cp);
    return cp == INVALID_CP ? PRETOK_OTHER : pretok_class(cp);
}

static int ref_is_other(int cls) { return cls == PRETOK_OTHER; }

static size_t ref_literal(const uint8_t *text, size_t n, size_t pos, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (pos + k >= n || text[pos + k] != (uint8_t)lit[k]) return 0;
    return k;
}

/* " ?" followed by one or more characters of class want (want = -1: "not space/letter/number"). */
static size_t ref_optional_space_run(const uint8_t *text, size_t n, size_t pos, int want) {
    size_t start = pos;
    for (int with_space = 1; with_space >= 0; with_space--) {   /* greedy: try with the space first */
        size_t p = start;
        if (with_space) {
            if (p < n && text[p] == ' ') p++;
            else continue;
        }
        size_t q = p, len;
        while (q < n) {
            int cls = ref_class(text, n, q, &len);
            int ok = want < 0 ? ref_is_other(cls) : cls == want;
            if (!ok) break;
            q += len;
        }
        if (q > p) return q - start;
    }
    return 0;
}

/* "\s+(?!\S)": greedy with backtracking returns the longest whitespace run whose end is not
 * followed by a non-space character; check every possible end and keep the longest that passes. */
static size_t ref_space_not_before_nonspace(const uint8_t *text, size_t n, size_t pos) {
    size_t q = pos, len, best = 0;
    while (q < n && ref_class(text, n, q, &len) == PRETOK_SPACE) {
        q += len;
        size_t next_len;
        int followed_by_nonspace = q < n && ref_class(text, n, q, &next_len) != PRETOK_SPACE;
        if (!followed_by_nonspace) best = q - pos;
    }
    return best;
}

static size_t ref_space_run(const uint8_t *text, size_t n, size_t pos) {
    size_t q = pos, len;
    while (q < n && ref_class(text, n, q, &len) == PRETOK_SPACE) q += len;
    return q - pos;
}

size_t pretok_next_reference(const uint8_t *text, size_t n, size_t pos) {
    static const char *contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t m;
    for (int i = 0; i < 7; i++)
        if ((m = ref_literal(text, n, pos, contractions[i]))) return m;
    if ((m = ref_optional_space_run(text, n, pos, PRETOK_LETTER))) return m;
    if ((m = ref_optional_space_run(text, n, pos, PRETOK_NUMBER))) return m;
    if ((m = ref_optional_space_run(text, n, pos, -1))) return m;
    if ((m = ref_space_not_before_nonspace(text, n, pos))) return m;
    if ((m = ref_space_run(text, n, pos))) return m;
    return 1;   /* unreachable: every character is in one of the classes above */
}

/* ---------------------------------------------------------------------------------------------
 * The fast scanner: one dispatch on the first character of the chunk. tests/test_pretok.c
 * (test_fast_equals_reference_random, _ascii, _sample) holds it to pretok_next_reference. */

/* ASCII by arithmetic: nearly all TinyStories text is ASCII, and these are exactly the Unicode
 * classes of U+0000..U+007F (the tests compare the two scanners on every ASCII byte). */
static inline int ascii_class(uint8_t c) {
    if ((uint8_t)((c | 0x20) - 'a') < 26) return PRETOK_LETTER;
    if ((uint8_t)(c - '0') < 10) return PRETOK_NUMBER;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return PRETOK_SPACE;
    return PRETOK_OTHER;
}

/* Class and byte length of the character at text[pos]. */
static inline int char_at(const uint8_t *text, size_t n, size_t pos, int *len) {
    uint8_t c = text[pos];
    if (c < 0x80) {
        *len = 1;
        return ascii_class(c);
    }
    uint32_t cp;
    *len = pretok_decode(text + pos, n - pos, &cp);
    return cp == INVALID_CP ? PRETOK_OTHER : pretok_class(cp);
}

/* End of the maximal run of characters of class cls starting at pos. */
static size_t run_end(const uint8_t *text, size_t n, size_t pos, int cls) {
    while (pos < n) {
        int len;
        if (char_at(text, n, pos, &len) != cls) break;
        pos += (size_t)len;
    }
    return pos;
}

/* Length of the contraction ('s 't 're 've 'm 'll 'd, case-sensitive) at pos, or 0. */
static size_t contraction_len(const uint8_t *text, size_t n, size_t pos) {
    if (text[pos] != '\'' || pos + 1 >= n) return 0;
    uint8_t a = text[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 < n) {
        uint8_t b = text[pos + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    return 0;
}

size_t pretok_next(const uint8_t *text, size_t n, size_t pos) {
    size_t c = contraction_len(text, n, pos);
    if (c) return c;

    int len0;
    int cls0 = char_at(text, n, pos, &len0);
    /* " ?X+" for X in letter, number, other: an ASCII space joins the run that follows it. */
    if (text[pos] == ' ' && pos + 1 < n) {
        int len1;
        int cls1 = char_at(text, n, pos + 1, &len1);
        if (cls1 != PRETOK_SPACE) return run_end(text, n, pos + 1, cls1) - pos;
    }
    if (cls0 != PRETOK_SPACE) return run_end(text, n, pos, cls0) - pos;

    /* Whitespace: "\s+(?!\S)" takes the run but, when a non-space follows, gives back its last
     * character (so " word" keeps its space); a single whitespace character before a non-space
     * falls through to "\s+" and is a chunk of its own. */
    size_t end = run_end(text, n, pos, PRETOK_SPACE);
    if (end == n) return end - pos;
    size_t last = pos, p = pos;
    while (p < end) {   /* find the start of the run's last character */
        int len;
        char_at(text, n, p, &len);
        last = p;
        p += (size_t)len;
    }
    return last > pos ? last - pos : end - pos;
}
