/* test_bpe_train.c: tests for BPE training (tokenizer/bpe_train.h).
 *
 * The core property: the fast trainer (incremental counts, word index, lazy heap) learns exactly
 * the merges of the reference (full recount per merge) on real text, on random words from tiny
 * alphabets (many ties), on runs of one letter (overlapping pairs) and on weighted words. Then:
 * a hand-worked example, determinism under reordering and per-thread counters, no merge across a
 * pre-tokenization boundary, the counter's totals and bounded memory, and the early stop.
 * The last test uses tokenizer.c to check that a trained tokenizer round-trips text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tests/test.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/pretok.h"
#include "tokenizer/tokenizer.h"

#define SAMPLE_PATH "data/sample/tinystories_10k.txt"

typedef uint32_t Merge[2];

static void add_str(BpeCounter *c, const char *s) { bpe_counter_add(c, (const uint8_t *)s, strlen(s)); }

/* The first `limit` bytes of the shipped sample (NUL-terminated), or NULL. */
static char *read_sample_prefix(size_t limit, size_t *n) {
    char *text = tr_read_file(SAMPLE_PATH, n);
    if (!text) return NULL;
    if (*n > limit) {
        *n = limit;
        text[limit] = '\0';
    }
    return text;
}

/* Small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state;
static uint32_t rng_next(uint32_t bound) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 33) % bound;
}

/* Every merge may only refer to ids that exist already, and no pair is learned twice. */
static int merges_well_formed(Merge *m, int n) {
    for (int r = 0; r < n; r++) {
        if (m[r][0] >= 256u + (uint32_t)r || m[r][1] >= 256u + (uint32_t)r) return 0;
        for (int q = 0; q < r; q++)
            if (m[q][0] == m[r][0] && m[q][1] == m[r][1]) return 0;
    }
    return 1;
}

/* Trains with both trainers; checks they agree. Returns the number learned (fast). */
static int check_fast_equals_reference(const BpeCounter *c, int n_merges, const char *what) {
    Merge *fast = xmalloc((size_t)n_merges * sizeof *fast);
    Merge *ref = xmalloc((size_t)n_merges * sizeof *ref);
    int n_fast = bpe_train(c, n_merges, fast, 0);
    int n_ref = bpe_train_reference(c, n_merges, ref);
    CHECKF(n_fast == n_ref, "%s: fast learned %d merges, reference %d", what, n_fast, n_ref);
    int n = n_fast < n_ref ? n_fast : n_ref;
    for (int r = 0; r < n; r++) {
        if (fast[r][0] != ref[r][0] || fast[r][1] != ref[r][1]) {
            CHECKF(0, "%s: merge %d: fast (%u, %u), reference (%u, %u)", what, r, fast[r][0],
                   fast[r][1], ref[r][0], ref[r][1]);
            break;
        }
    }
    CHECKF(merges_well_formed(fast, n_fast), "%s: malformed merges", what);
    free(fast);
    free(ref);
    return n_fast;
}

/* Bytes of every token 0 .. 256 + n_merges - 1, built from the merges (no tokenizer.c needed). */
typedef struct {
    uint8_t **bytes;
    size_t *len;
    int n;
} TokenBytes;

static TokenBytes token_bytes(Merge *m, int n_merges) {
    TokenBytes t;
    t.n = 256 + n_merges;
    t.bytes = xmalloc((size_t)t.n * sizeof *t.bytes);
    t.len = xmalloc((size_t)t.n * sizeof *t.len);
    for (int i = 0; i < 256; i++) {
        t.bytes[i] = xmalloc(1);
        t.bytes[i][0] = (uint8_t)i;
        t.len[i] = 1;
    }
    for (int r = 0; r < n_merges; r++) {
        uint32_t a = m[r][0], b = m[r][1];
        int id = 256 + r;
        t.len[id] = t.len[a] + t.len[b];
        t.bytes[id] = xmalloc(t.len[id]);
        memcpy(t.bytes[id], t.bytes[a], t.len[a]);
        memcpy(t.bytes[id] + t.len[a], t.bytes[b], t.len[b]);
    }
    return t;
}

static void token_bytes_free(TokenBytes *t) {
    for (int i = 0; i < t->n; i++) free(t->bytes[i]);
    free(t->bytes);
    free(t->len);
}

/* ---- the hand-worked example ------------------------------------------------------------- */

/* "aaabdaaabac" is one pre-tokenization chunk. Pair counts: (a,a) 4 (overlapping), (a,b) 2, rest
 * 1, so merge 0 is (a,a) -> 256 and the word becomes 256 a b d 256 a b a c. Now (256,a) and
 * (a,b) both have count 2; the smaller left id wins: (97,98) -> 257, giving 256 257 d 256 257 a c.
 * Then (256,257) -> 258, giving 258 d 258 a c, where every pair occurs once: training stops. */
static void test_aaabdaaabac_merges(void) {
    BpeCounter *c = bpe_counter_new();
    add_str(c, "aaabdaaabac");
    const Merge want[3] = {{97, 97}, {97, 98}, {256, 257}};
    Merge got[10];
    int n = bpe_train(c, 3, got, 0);
    CHECKF(n == 3, "learned %d", n);
    for (int r = 0; r < 3 && r < n; r++)
        CHECKF(got[r][0] == want[r][0] && got[r][1] == want[r][1], "fast merge %d: (%u, %u)", r, got[r][0], got[r][1]);
    n = bpe_train_reference(c, 3, got);
    CHECKF(n == 3, "reference learned %d", n);
    for (int r = 0; r < 3 && r < n; r++)
        CHECKF(got[r][0] == want[r][0] && got[r][1] == want[r][1], "reference merge %d: (%u, %u)", r, got[r][0], got[r][1]);
    /* Asking for more: nothing occurs twice after the third merge. */
    CHECK(bpe_train(c, 10, got, 0) == 3);
    CHECK(bpe_train_reference(c, 10, got) == 3);
    bpe_counter_free(c);
}

/* ---- fast == reference -------------------------------------------------------------------- */

static void test_fast_matches_reference_on_sample(void) {
    size_t n;
    char *text = read_sample_prefix(test_small() ? 30000 : 300000, &n);
    if (!text) SKIP("%s", tr_error());
    BpeCounter *c = bpe_counter_new();
    bpe_counter_add(c, (const uint8_t *)text, n);
    int want = test_small() ? 150 : 500;
    int got = check_fast_equals_reference(c, want, "sample");
    CHECKF(got == want, "learned only %d of %d merges on real text", got, want);
    bpe_counter_free(c);
    free(text);
}

/* Tiny alphabets make many pairs tie, which is where a wrong tie rule shows. */
static void test_fast_matches_reference_on_random_words(void) {
    int rounds = test_small() ? 6 : 30;
    for (int round = 0; round < rounds; round++) {
        rng_state = 0x9E3779B97F4A7C15ULL + (uint64_t)round;
        int alphabet = 2 + round % 3;
        int n_words = 50 + (int)rng_next(300);
        char word[32];
        BpeCounter *c = bpe_counter_new();
        for (int w = 0; w < n_words; w++) {
            int len = 1 + (int)rng_next(12);
            int k = 0;
            if (rng_next(2)) word[k++] = ' ';
            for (int i = 0; i < len; i++) word[k++] = (char)('a' + rng_next((uint32_t)alphabet));
            word[k] = '\0';
            add_str(c, word);
        }
        char what[64];
        snprintf(what, sizeof what, "random words, round %d", round);
        int learned = check_fast_equals_reference(c, 2000, what);
        CHECKF(learned > 0 && learned < 2000, "%s: learned %d (expected an early stop)", what, learned);
        bpe_counter_free(c);
    }
}

/* Runs of one letter: overlapping pairs, where merges must go left to right without overlap. */
static void test_fast_matches_reference_on_repeated_letters(void) {
    BpeCounter *c = bpe_counter_new();
    char buf[1100];
    for (int k = 1; k <= 40; k++) {
        memset(buf, 'a', (size_t)k);
        buf[k] = '\0';
        add_str(c, buf);
        for (int i = 0; i < k; i++) memcpy(buf + 2 * i, "ab", 2);
        buf[2 * k] = '\0';
        add_str(c, buf);
        for (int i = 0; i < k; i++) buf[i] = i % 3 == 2 ? 'b' : 'a';
        buf[k] = '\0';
        add_str(c, buf);
    }
    memset(buf, 'a', 1000);
    buf[1000] = '\0';
    add_str(c, buf);
    check_fast_equals_reference(c, 3000, "repeated letters");
    bpe_counter_free(c);

    /* One word alone: "aaaaaaa" (7) -> 256 256 256 a -> 257 256 a -> (257,256) once: stop. */
    c = bpe_counter_new();
    add_str(c, "aaaaaaa");
    Merge m[8];
    int n = bpe_train(c, 8, m, 0);
    CHECKF(n == 2, "aaaaaaa: learned %d", n);
    CHECK(n >= 1 && m[0][0] == 97 && m[0][1] == 97);
    CHECK(n >= 2 && m[1][0] == 256 && m[1][1] == 256);
    check_fast_equals_reference(c, 8, "aaaaaaa");
    bpe_counter_free(c);
}

/* Words with different counts: pair counts are weighted by how often each word was seen. */
static void test_fast_matches_reference_on_weighted_words(void) {
    int rounds = test_small() ? 3 : 10;
    for (int round = 0; round < rounds; round++) {
        rng_state = 12345 + (uint64_t)round;
        BpeCounter *c = bpe_counter_new();
        char word[32];
        for (int w = 0; w < 60; w++) {
            int len = 2 + (int)rng_next(8);
            for (int i = 0; i < len; i++) word[i] = (char)('a' + rng_next(3));
            word[len] = '\0';
            int times = 1 + (int)rng_next(w % 5 == 0 ? 200 : 5);
            for (int t = 0; t < times; t++) add_str(c, word);
        }
        /* A counter added to itself doubles every weight, which must not change the merges. */
        Merge before[500], after[500];
        int n_before = bpe_train(c, 500, before, 0);
        bpe_counter_merge(c, c);
        int n_after = bpe_train(c, 500, after, 0);
        CHECK(n_after >= n_before);
        CHECK(memcmp(before, after, (size_t)n_before * sizeof *before) == 0);
        char what[64];
        snprintf(what, sizeof what, "weighted words, round %d", round);
        check_fast_equals_reference(c, 500, what);
        bpe_counter_free(c);
    }
}

/* ---- determinism -------------------------------------------------------------------------- */

/* Splits text at each "<|endoftext|>" into pieces (pointers into text, which is modified). */
static int split_stories(char *text, char **pieces, int max_pieces) {
    int n = 0;
    char *p = text;
    while (n < max_pieces) {
        pieces[n++] = p;
        char *eot = strstr(p, TOK_EOT_STRING);
        if (!eot) break;
        *eot = '\0';
        p = eot + strlen(TOK_EOT_STRING);
    }
    return n;
}

static void test_training_is_deterministic(void) {
    size_t n;
    char *text = read_sample_prefix(test_small() ? 40000 : 400000, &n);
    if (!text) SKIP("%s", tr_error());
    static char *pieces[4096];
    int n_pieces = split_stories(text, pieces, 4096);
    CHECKF(n_pieces > 10, "only %d stories", n_pieces);

    BpeCounter *in_order = bpe_counter_new(), *reversed = bpe_counter_new();
    BpeCounter *even = bpe_counter_new(), *odd = bpe_counter_new();
    for (int i = 0; i < n_pieces; i++) {
        add_str(in_order, pieces[i]);
        add_str(reversed, pieces[n_pieces - 1 - i]);
        add_str(i % 2 ? odd : even, pieces[i]);
    }
    bpe_counter_merge(even, odd);
    CHECK(bpe_counter_total(even) == bpe_counter_total(in_order));
    CHECK(bpe_counter_distinct(even) == bpe_counter_distinct(in_order));
    CHECK(bpe_counter_total(reversed) == bpe_counter_total(in_order));

    int want = test_small() ? 300 : 2000;
    Merge *a = xmalloc((size_t)want * sizeof *a), *b = xmalloc((size_t)want * sizeof *b);
    int na = bpe_train(in_order, want, a, 0);
    CHECKF(na == want, "learned %d", na);
    int nb = bpe_train(in_order, want, b, 0);
    CHECK(nb == na && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    nb = bpe_train(reversed, want, b, 0);
    CHECKF(nb == na && memcmp(a, b, (size_t)na * sizeof *a) == 0, "reversed story order differs");
    nb = bpe_train(even, want, b, 0);
    CHECKF(nb == na && memcmp(a, b, (size_t)na * sizeof *a) == 0, "merged counters differ");
    /* Asking for fewer merges gives a prefix of the same list. */
    nb = bpe_train(even, want / 3, b, 0);
    CHECK(nb == want / 3 && memcmp(a, b, (size_t)nb * sizeof *a) == 0);

    free(a);
    free(b);
    bpe_counter_free(in_order);
    bpe_counter_free(reversed);
    bpe_counter_free(even);
    bpe_counter_free(odd);
    free(text);
}

/* ---- pre-tokenization boundaries ---------------------------------------------------------- */

static int is_letter(uint8_t ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }

/* On text made of one-letter words, spaces and punctuation, a token that crossed a boundary would
 * hold a letter followed by a space, or a letter next to punctuation. */
static void test_no_merge_crosses_boundary_synthetic(void) {
    BpeCounter *c = bpe_counter_new();
    for (int i = 0; i < 200; i++) add_str(c, "a b a b a b ab ab ba a.b. a,b, b. a. .. ..a");
    Merge m[200];
    int n = bpe_train(c, 200, m, 0);
    CHECKF(n >= 5, "learned only %d", n);
    TokenBytes t = token_bytes(m, n);
    for (int id = 256; id < t.n; id++) {
        const uint8_t *s = t.bytes[id];
        for (size_t k = 0; k + 1 < t.len[id]; k++) {
            CHECKF(!(is_letter(s[k]) && !is_letter(s[k + 1])), "token %d \"%.*s\" crosses a word end", id,
                   (int)t.len[id], (const char *)s);
            CHECKF(!(s[k] == '.' || s[k] == ',') || s[k + 1] == '.' || s[k + 1] == ',',
                   "token %d \"%.*s\" joins punctuation and letters", id, (int)t.len[id], (const char *)s);
        }
        for (size_t k = 1; k < t.len[id]; k++)
            CHECKF(s[k] != ' ', "token %d \"%.*s\" has a space after its start", id, (int)t.len[id],
                   (const char *)s);
    }
    token_bytes_free(&t);
    bpe_counter_free(c);
}

/* On real text, every learned token must lie inside one pre-tokenization chunk of the text. */
static void test_no_merge_crosses_boundary_sample(void) {
    size_t n;
    char *text = read_sample_prefix(test_small() ? 20000 : 200000, &n);
    if (!text) SKIP("%s", tr_error());
    const uint8_t *u = (const uint8_t *)text;
    BpeCounter *c = bpe_counter_new();
    bpe_counter_add(c, u, n);
    int want = test_small() ? 100 : 400;
    Merge *m = xmalloc((size_t)want * sizeof *m);
    int learned = bpe_train(c, want, m, 0);
    CHECKF(learned == want, "learned %d", learned);
    TokenBytes t = token_bytes(m, learned);

    /* found[id]: token id occurs inside some chunk. Scan each chunk once for every token. */
    char *found = xcalloc((size_t)t.n, 1);
    for (size_t pos = 0; pos < n;) {
        size_t len = pretok_next(u, n, pos);
        for (int id = 256; id < t.n; id++) {
            if (found[id] || t.len[id] > len) continue;
            for (size_t k = 0; k + t.len[id] <= len; k++)
                if (memcmp(u + pos + k, t.bytes[id], t.len[id]) == 0) { found[id] = 1; break; }
        }
        pos += len;
    }
    for (int id = 256; id < t.n; id++)
        CHECKF(found[id], "token %d \"%.*s\" is not inside any chunk", id, (int)t.len[id],
               (const char *)t.bytes[id]);
    free(found);
    token_bytes_free(&t);
    free(m);
    bpe_counter_free(c);
    free(text);
}

/* ---- counting ----------------------------------------------------------------------------- */

static void test_counter_totals(void) {
    BpeCounter *c = bpe_counter_new();
    CHECK(bpe_counter_total(c) == 0 && bpe_counter_distinct(c) == 0);
    bpe_counter_add(c, (const uint8_t *)"", 0);
    CHECK(bpe_counter_total(c) == 0 && bpe_counter_distinct(c) == 0);
    /* Chunks: "the" " cat" " the" " dog" "." " the" " end" */
    add_str(c, "the cat the dog. the end");
    CHECKF(bpe_counter_total(c) == 7, "total %llu", (unsigned long long)bpe_counter_total(c));
    CHECKF(bpe_counter_distinct(c) == 6, "distinct %zu", bpe_counter_distinct(c));
    /* Chunks: "the" " cat" "'s" "\n" "\n" "end" (the last space of a run goes to the next word
     * only if it is a space): three new words, "'s", "\n" and "end". */
    add_str(c, "the cat's\n\nend");
    CHECKF(bpe_counter_total(c) == 13, "total %llu", (unsigned long long)bpe_counter_total(c));
    CHECKF(bpe_counter_distinct(c) == 9, "distinct %zu", bpe_counter_distinct(c));

    /* Merging: totals add, shared words are not counted twice. */
    BpeCounter *d = bpe_counter_new();
    add_str(d, "the cat sat");
    bpe_counter_merge(d, c);
    CHECKF(bpe_counter_total(d) == 16, "total %llu", (unsigned long long)bpe_counter_total(d));
    CHECKF(bpe_counter_distinct(d) == 10, "distinct %zu", bpe_counter_distinct(d));
    /* A counter merged into itself doubles every count (seen through a copy into a fresh one). */
    bpe_counter_merge(d, d);
    BpeCounter *e = bpe_counter_new();
    bpe_counter_merge(e, d);
    CHECKF(bpe_counter_total(e) == 32, "total %llu", (unsigned long long)bpe_counter_total(e));
    CHECKF(bpe_counter_distinct(e) == 10, "distinct %zu", bpe_counter_distinct(e));
    bpe_counter_free(e);
    bpe_counter_free(d);
    bpe_counter_free(c);
}

/* Memory grows with distinct words only: the same text again adds counts, not entries. */
static void test_counter_memory_bounded(void) {
    size_t n;
    char *text = read_sample_prefix(test_small() ? 20000 : 200000, &n);
    if (!text) SKIP("%s", tr_error());
    BpeCounter *c = bpe_counter_new();
    bpe_counter_add(c, (const uint8_t *)text, n);
    size_t distinct = bpe_counter_distinct(c);
    uint64_t total = bpe_counter_total(c);
    CHECK(distinct > 100 && total > distinct);
    int times = test_small() ? 20 : 100;
    for (int i = 1; i < times; i++) bpe_counter_add(c, (const uint8_t *)text, n);
    CHECKF(bpe_counter_distinct(c) == distinct, "distinct %zu -> %zu", distinct, bpe_counter_distinct(c));
    CHECK(bpe_counter_total(c) == total * (uint64_t)times);

    /* Many distinct words force the table to grow several times; every one is kept. */
    BpeCounter *many = bpe_counter_new();
    char word[16];
    for (int i = 0; i < 50000; i++) {
        snprintf(word, sizeof word, "w%d", i); /* "w" then a number: two chunks, "w" is shared */
        add_str(many, word);
        add_str(many, word);
    }
    CHECKF(bpe_counter_distinct(many) == 50001, "distinct %zu", bpe_counter_distinct(many));
    CHECK(bpe_counter_total(many) == 200000);
    bpe_counter_free(many);
    bpe_counter_free(c);
    free(text);
}

/* ---- early stop ------------------------------------------------------------------------------ */

static void test_early_stop(void) {
    Merge m[16];
    BpeCounter *c = bpe_counter_new();
    CHECK(bpe_train(c, 16, m, 0) == 0); /* empty */
    CHECK(bpe_train_reference(c, 16, m) == 0);
    add_str(c, "abcdefg");              /* every pair once */
    CHECK(bpe_train(c, 16, m, 0) == 0);
    CHECK(bpe_train_reference(c, 16, m) == 0);
    add_str(c, "x y z");                /* single-byte words and " y", " z": nothing twice */
    CHECK(bpe_train(c, 16, m, 0) == 0);
    bpe_counter_free(c);

    /* "ab" and " ab": (a,b) twice -> 256; then (' ', 256) once: stop after one merge. */
    c = bpe_counter_new();
    add_str(c, "ab ab");
    int n = bpe_train(c, 16, m, 0);
    CHECKF(n == 1, "learned %d", n);
    CHECK(n >= 1 && m[0][0] == 'a' && m[0][1] == 'b');
    CHECK(bpe_train_reference(c, 16, m) == 1);
    CHECK(bpe_train(c, 0, m, 0) == 0);  /* asking for none */
    CHECK(bpe_train(c, -3, m, 0) == 0);
    /* The same word twice has every pair twice: all of it gets merged. */
    add_str(c, "cdef cdef");            /* "cdef" and " cdef" */
    n = bpe_train(c, 16, m, 0);
    CHECKF(n == 4, "learned %d", n);    /* ab, cd, ef (101 < 257), (cd)(ef); then (' ', x) once each */
    bpe_counter_free(c);
}

/* ---- with the tokenizer ------------------------------------------------------------------------ */

static void test_aaabdaaabac_encodes(void) {
    BpeCounter *c = bpe_counter_new();
    add_str(c, "aaabdaaabac");
    Merge m[3];
    int n = bpe_train(c, 3, m, 0);
    CHECK(n == 3);
    Tokenizer *tok = tok_from_merges((const uint32_t(*)[2])m, n);
    CHECKF(tok != NULL, "%s", tr_error());
    if (tok) {
        uint32_t ids[16];
        size_t k = tok_encode(tok, (const uint8_t *)"aaabdaaabac", 11, ids, 16);
        const uint32_t want[5] = {258, 100, 258, 97, 99};
        CHECKF(k == 5 && memcmp(ids, want, sizeof want) == 0, "%zu ids", k);
        tok_free(tok);
    }
    bpe_counter_free(c);
}

/* A tokenizer trained on text encodes and decodes that text exactly, and compresses it. */
static void test_trained_tokenizer_round_trips(void) {
    size_t n;
    char *text = read_sample_prefix(test_small() ? 20000 : 300000, &n);
    if (!text) SKIP("%s", tr_error());
    BpeCounter *c = bpe_counter_new();
    bpe_counter_add(c, (const uint8_t *)text, n);
    int want = test_small() ? 200 : 1000;
    Merge *m = xmalloc((size_t)want * sizeof *m);
    int learned = bpe_train(c, want, m, 0);
    CHECK(learned == want);
    Tokenizer *tok = tok_from_merges((const uint32_t(*)[2])m, learned);
    CHECKF(tok != NULL, "%s", tr_error());
    if (tok) {
        uint32_t *ids = xmalloc(n * sizeof *ids);
        uint8_t *back = xmalloc(n + 1);
        size_t k = tok_encode(tok, (const uint8_t *)text, n, ids, n);
        CHECKF(k * 2 < n, "%zu ids for %zu bytes: poor compression", k, n);
        size_t m_bytes = tok_decode(tok, ids, k, back, n + 1);
        CHECK(m_bytes == n && memcmp(back, text, n) == 0);
        free(ids);
        free(back);
        tok_free(tok);
    }
    free(m);
    bpe_counter_free(c);
    free(text);
}

int main(void) {
    RUN(test_aaabdaaabac_merges);
    RUN(test_fast_matches_reference_on_sample);
    RUN(test_fast_matches_reference_on_random_words);
    RUN(test_fast_matches_reference_on_repeated_letters);
    RUN(test_fast_matches_reference_on_weighted_words);
    RUN(test_training_is_deterministic);
    RUN(test_no_merge_crosses_boundary_synthetic);
    RUN(test_no_merge_crosses_boundary_sample);
    RUN(test_counter_totals);
    RUN(test_counter_memory_bounded);
    RUN(test_early_stop);
    RUN(test_aaabdaaabac_encodes);
    RUN(test_trained_tokenizer_round_trips);
    return test_summary();
}
