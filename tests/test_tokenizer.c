/* test_tokenizer.c: tests for the BPE tokenizer (tokenizer/tokenizer.h).
 *
 * The core properties: decode(encode(s)) == s for every byte string; the fast encoder (heap, hash
 * table, per-thread cache) gives exactly the reference encoder's ids, on real text, tricky
 * strings and random bytes, from one thread or several; save -> load keeps the vocabulary, the
 * ids and the fingerprint; every broken file is refused with one message naming file and line;
 * and OpenAI's GPT-2 files give GPT-2's ids.
 *
 * The merges come from a tiny greedy learner in this file (not from bpe_train.c, which is tested
 * on its own). tests/fixtures/gpt2_tiny/ is a hand-made GPT-2-format tokenizer: GPT-2's 256 byte
 * tokens in GPT-2's order (ids 0..255), 23 merges in vocab.bpe whose tokens have ids in *reverse*
 * rank order (merge r -> id 278 - r, so a loader that assumed 256 + r would fail), an unused
 * token "xyz" (279) and <|endoftext|> (280). Its expected ids below were worked out by hand.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cjson/cJSON.h>

#include "base/util.h"
#include "tests/test.h"
#include "tokenizer/pretok.h"
#include "tokenizer/tokenizer.h"

#define FIXTURE_ENCODER "tests/fixtures/gpt2_tiny/encoder.json"
#define FIXTURE_VOCAB "tests/fixtures/gpt2_tiny/vocab.bpe"

/* ---------------------------------------------------------------------------------------------
 * Helpers */

/* Small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 88172645463325252ULL;
static uint32_t rng_next(uint32_t bound) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 33) % bound;
}

/* A file of the shipped sample (data/sample/), else the same file in ../shared; NULL if neither.
 * Under TINYROPE_SMALL only the first small_limit bytes. */
static uint8_t *read_sample(const char *name, size_t small_limit, size_t *n) {
    char path[512];
    snprintf(path, sizeof path, "data/sample/%s", name);
    char *text = tr_read_file(path, n);
    const char *shared = test_shared_dir();
    if (!text && shared) {
        const char *sub = strcmp(name, "tinystories_10k.txt") == 0 ? "mines-opt-ml__decoding-gpt/data"
                          : strcmp(name, "tiny_stories.txt") == 0  ? "s-ajaykumar__smallGPT/data"
                                                                   : "cribeirop__Final_Test_NLP";
        snprintf(path, sizeof path, "%s/data/tinystories/%s/%s", shared, sub, name);
        text = tr_read_file(path, n);
    }
    if (text && test_small() && *n > small_limit) *n = small_limit;
    return (uint8_t *)text;
}

typedef struct {
    uint32_t *ids;
    size_t n;
} Ids;

enum { ENC_FAST, ENC_REFERENCE, ENC_SPECIAL };

static Ids encode(const Tokenizer *t, const void *text, size_t n, int how) {
    Ids r;
    size_t cap = n + 1;
    r.ids = xmalloc(cap * sizeof *r.ids);
    const uint8_t *s = text;
    r.n = how == ENC_FAST        ? tok_encode(t, s, n, r.ids, cap)
          : how == ENC_REFERENCE ? tok_encode_reference(t, s, n, r.ids, cap)
                                 : tok_encode_with_special(t, s, n, r.ids, cap);
    CHECKF(r.n <= n, "%zu ids for %zu bytes", r.n, n);
    return r;
}

static int ids_equal(Ids a, Ids b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.ids, b.ids, a.n * sizeof *a.ids) == 0);
}

static int ids_equal_list(Ids a, const uint32_t *want, size_t n_want) {
    return a.n == n_want && (n_want == 0 || memcmp(a.ids, want, n_want * sizeof *want) == 0);
}

static void print_ids(const char *label, Ids a) {
    fprintf(stderr, "    %s (%zu):", label, a.n);
    for (size_t i = 0; i < a.n && i < 40; i++) fprintf(stderr, " %u", a.ids[i]);
    fprintf(stderr, a.n > 40 ? " ...\n" : "\n");
}

/* Checks decode(encode(s)) == s and fast == reference for one string; 1 if all held. */
static int check_round_trip(const Tokenizer *t, const void *text, size_t n, const char *what) {
    Ids fast = encode(t, text, n, ENC_FAST), ref = encode(t, text, n, ENC_REFERENCE);
    int ok = 1;
    if (!ids_equal(fast, ref)) {
        CHECKF(0, "%s: fast and reference encoders differ", what);
        print_ids("fast", fast);
        print_ids("reference", ref);
        ok = 0;
    }
    uint8_t *back = xmalloc(n + 1);
    size_t m = tok_decode(t, fast.ids, fast.n, back, n + 1);
    if (m != n || (n && memcmp(back, text, n) != 0)) {
        CHECKF(0, "%s: decode(encode(s)) != s (%zu bytes in, %zu out)", what, n, m);
        ok = 0;
    }
    free(back);
    free(fast.ids);
    free(ref.ids);
    return ok;
}

/* The tiny greedy learner. Pre-tokenizes text into words (pretok_next), then repeatedly counts
 * adjacent pairs over all words and takes the `batch` most frequent pairs (count >= 2; ties:
 * smaller left id, then smaller right id) as the next merges, applying each to every word in
 * order. batch = 1 is exact BPE training as in minbpe; larger batches are a fast way to get a
 * realistic merge list (any list whose merges use defined ids is a valid tokenizer). */
typedef struct {
    uint32_t *sym;
    size_t n;
    uint64_t count;
} Word;

typedef struct {
    uint64_t key;   /* left << 32 | right; UINT64_MAX empty */
    uint64_t count;
} PairCount;

static int compare_pair_counts(const void *a, const void *b) {
    const PairCount *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : 0;   /* left, then right */
}

typedef struct {
    const uint8_t *p;
    size_t len;
} Slice;

static int compare_slices(const void *a, const void *b) {
    const Slice *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int learn_merges(const uint8_t *text, size_t n, int n_merges, int batch, uint32_t (*out)[2]) {
    /* Distinct words with their counts. */
    size_t n_slices = 0, cap = 1024;
    Slice *slices = xmalloc(cap * sizeof *slices);
    for (size_t pos = 0; pos < n;) {
        size_t len = pretok_next(text, n, pos);
        if (n_slices == cap) slices = xrealloc(slices, (cap *= 2) * sizeof *slices);
        slices[n_slices].p = text + pos;
        slices[n_slices++].len = len;
        pos += len;
    }
    if (n_slices) qsort(slices, n_slices, sizeof *slices, compare_slices);
    size_t n_words = 0, total_symbols = 0;
    Word *words = xmalloc((n_slices ? n_slices : 1) * sizeof *words);
    for (size_t i = 0; i < n_slices; i++) {
        if (n_words && compare_slices(&slices[i], &slices[i - 1]) == 0) {
            words[n_words - 1].count++;
            continue;
        }
        Word *w = &words[n_words++];
        w->sym = xmalloc(slices[i].len * sizeof *w->sym);
        for (size_t k = 0; k < slices[i].len; k++) w->sym[k] = slices[i].p[k];
        w->n = slices[i].len;
        w->count = 1;
        total_symbols += w->n;
    }
    free(slices);
    size_t table_size = 16;
    while (table_size < 2 * total_symbols) table_size *= 2;   /* more than the distinct pairs */
    PairCount *table = xmalloc(table_size * sizeof *table);
    int learned = 0;
    while (learned < n_merges) {
        for (size_t i = 0; i < table_size; i++) table[i].key = UINT64_MAX;
        for (size_t w = 0; w < n_words; w++) {
            for (size_t i = 0; i + 1 < words[w].n; i++) {
                uint64_t key = (uint64_t)words[w].sym[i] << 32 | words[w].sym[i + 1];
                size_t h = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & (table_size - 1);
                while (table[h].key != UINT64_MAX && table[h].key != key) h = (h + 1) & (table_size - 1);
                if (table[h].key == UINT64_MAX) {
                    table[h].key = key;
                    table[h].count = 0;
                }
                table[h].count += words[w].count;
            }
        }
        size_t m = 0;
        for (size_t i = 0; i < table_size; i++)
            if (table[i].key != UINT64_MAX && table[i].count >= 2) table[m++] = table[i];
        if (m == 0) break;
        qsort(table, m, sizeof *table, compare_pair_counts);
        for (size_t k = 0; k < m && k < (size_t)batch && learned < n_merges; k++) {
            uint32_t left = (uint32_t)(table[k].key >> 32), right = (uint32_t)table[k].key;
            uint32_t id = 256 + (uint32_t)learned;
            out[learned][0] = left;
            out[learned][1] = right;
            learned++;
            for (size_t w = 0; w < n_words; w++) {
                uint32_t *sym = words[w].sym;
                size_t j = 0, len = words[w].n;
                for (size_t i = 0; i < len; i++) {
                    if (i + 1 < len && sym[i] == left && sym[i + 1] == right) {
                        sym[j++] = id;
                        i++;
                    } else {
                        sym[j++] = sym[i];
                    }
                }
                words[w].n = j;
            }
        }
    }
    for (size_t w = 0; w < n_words; w++) free(words[w].sym);
    free(words);
    free(table);
    return learned;
}

/* Strings that have broken tokenizers before: empty, whitespace shapes, contractions, digits,
 * non-ASCII letters and marks, invalid UTF-8, NUL bytes. */
typedef struct {
    const char *s;
    size_t n;   /* 0: strlen */
} Tricky;
static const Tricky tricky[] = {
    {"", 0}, {"a", 0}, {" ", 0}, {"  ", 0}, {"      ", 0}, {"\n", 0}, {"\n\n\n", 0}, {"\t\t x", 0},
    {"a\r\nb\r\n", 0}, {"  multiple   spaces\n\n\nnewlines  ", 0}, {" \n \n  \t\n", 0},
    {"I'm, you're, we've, they'll, he'd, IT'S don't 's '", 0}, {"'''", 0}, {"''s", 0},
    {"12345 1,234.5 007 3.14159", 0}, {"Once upon a time, there was a little girl named Lily.", 0},
    {"\xf0\x9f\x98\x80\xf0\x9f\x91\x8d emoji \xf0\x9f\x8f\xb3\xef\xb8\x8f\xe2\x80\x8d\xf0\x9f\x8c\x88", 0},
    {"\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 0},
    {"cafe\xcc\x81 e\xcc\x81\xcc\x81\xcc\x81 na\xc3\xafve", 0},   /* combining marks */
    {"\xff", 0}, {"\xff\xfe\xfd", 0}, {"abc\xe2\x82", 0}, {"\xe2\x82 x", 0}, {"\x80\x80\x80", 0},
    {" \x80word", 0}, {"\xc0\xaf overlong", 0}, {"\xed\xa0\x80 surrogate", 0}, {"\xf4\x90\x80\x80", 0},
    {"a\0b", 3}, {"\0", 1}, {"\0\0\0 \0", 5}, {"<|endoftext|>", 0}, {"x<|endoftext|>y<|endof", 0},
    {"\xe2\x80\x9c" "curly" "\xe2\x80\x9d \xe2\x80\x94 dash\xe2\x80\xa6", 0},
};
#define N_TRICKY (sizeof tricky / sizeof tricky[0])

static size_t tricky_len(const Tricky *t) { return t->n ? t->n : strlen(t->s); }

/* One tokenizer learned from the sample (plus the tricky strings, so that whitespace, digit and
 * multi-byte merges exist), shared by the tests that need "a realistic tokenizer". */
static Tokenizer *sample_tok;
static uint8_t *sample_text;
static size_t sample_n;

static Tokenizer *get_sample_tokenizer(void) {
    if (sample_tok) return sample_tok;
    sample_text = read_sample("tinystories_10k.txt", 100000, &sample_n);
    size_t train_n = sample_text ? (sample_n < 300000 ? sample_n : 300000) : 0;
    size_t extra = 0;
    for (size_t i = 0; i < N_TRICKY; i++) extra += 3 * tricky_len(&tricky[i]);
    uint8_t *train = xmalloc(train_n + extra + 1);
    if (train_n) memcpy(train, sample_text, train_n);
    size_t at = train_n;
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < N_TRICKY; i++) {
            memcpy(train + at, tricky[i].s, tricky_len(&tricky[i]));
            at += tricky_len(&tricky[i]);
        }
    int want = 700;
    uint32_t(*merges)[2] = xmalloc((size_t)want * sizeof *merges);
    int n = learn_merges(train, at, want, 16, merges);
    sample_tok = tok_from_merges((const uint32_t(*)[2])merges, n);
    free(merges);
    free(train);
    return sample_tok;
}

/* ---------------------------------------------------------------------------------------------
 * Building and encoding */

static void test_minbpe_example(void) {
    /* minbpe's example: on "aaabdaaabac" the greedy learner finds aa (count 4) -> 256; then
     * (256, a) and (a, b) both occur twice and the tie rule picks the smaller left id, a; then
     * (256, 257) -> 258. */
    const char *s = "aaabdaaabac";
    uint32_t merges[3][2];
    int n = learn_merges((const uint8_t *)s, strlen(s), 3, 1, merges);
    const uint32_t want_merges[3][2] = {{97, 97}, {97, 98}, {256, 257}};
    CHECKF(n == 3 && memcmp(merges, want_merges, sizeof merges) == 0, "learned %d merges: (%u,%u) (%u,%u) (%u,%u)",
           n, merges[0][0], merges[0][1], merges[1][0], merges[1][1], merges[2][0], merges[2][1]);
    Tokenizer *t = tok_from_merges(want_merges, 3);
    CHECK(t != NULL);
    if (!t) return;
    const uint32_t want[] = {258, 100, 258, 97, 99};
    Ids fast = encode(t, s, strlen(s), ENC_FAST), ref = encode(t, s, strlen(s), ENC_REFERENCE);
    CHECK(ids_equal_list(fast, want, 5));
    CHECK(ids_equal_list(ref, want, 5));
    if (!ids_equal_list(fast, want, 5)) print_ids("fast", fast);
    check_round_trip(t, s, strlen(s), "minbpe example");
    /* Leftmost first among equal ranks: "aaa" is (aa, a), never (a, aa). */
    Ids aaa = encode(t, "aaa", 3, ENC_FAST);
    const uint32_t want_aaa[] = {256, 97};
    CHECK(ids_equal_list(aaa, want_aaa, 2));
    free(fast.ids);
    free(ref.ids);
    free(aaa.ids);
    tok_free(t);
}

static void test_from_merges_basics(void) {
    const uint32_t merges[3][2] = {{'h', 'e'}, {'l', 'l'}, {256, 257}};   /* "he", "ll", "hell" */
    Tokenizer *t = tok_from_merges(merges, 3);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(tok_vocab_size(t) == 260);
    CHECK(tok_eot_id(t) == 259);
    int len = -1;
    const uint8_t *b = tok_token_bytes(t, 258, &len);
    CHECK(b && len == 4 && memcmp(b, "hell", 4) == 0);
    b = tok_token_bytes(t, 'x', &len);
    CHECK(b && len == 1 && b[0] == 'x');
    b = tok_token_bytes(t, 259, &len);
    CHECK(b && len == 13 && memcmp(b, TOK_EOT_STRING, 13) == 0);
    CHECK(tok_token_bytes(t, 260, &len) == NULL);
    CHECK(tok_token_bytes(t, -1, &len) == NULL);
    /* Rank, not position, decides: in "hello" the pair (h,e) has rank 0 and (l,l) rank 1. */
    Ids ids = encode(t, "hello", 5, ENC_FAST);
    const uint32_t want[] = {258, 'o'};
    CHECK(ids_equal_list(ids, want, 2));
    free(ids.ids);
    tok_free(t);

    Tokenizer *empty = tok_from_merges(NULL, 0);   /* bytes only */
    CHECK(empty && tok_vocab_size(empty) == 257 && tok_eot_id(empty) == 256);
    if (empty) check_round_trip(empty, "hi there", 8, "no merges");
    tok_free(empty);

    const uint32_t bad[2][2] = {{'a', 'b'}, {'a', 258}};   /* 258 is not defined before merge 1 */
    tr_clear_error();
    CHECK(tok_from_merges(bad, 2) == NULL);
    CHECKF(strstr(tr_error(), "not defined"), "error: %s", tr_error());
    const uint32_t dup[2][2] = {{'a', 'b'}, {'a', 'b'}};
    tr_clear_error();
    CHECK(tok_from_merges(dup, 2) == NULL);
    CHECKF(strstr(tr_error(), "same pair"), "error: %s", tr_error());
}

static void test_round_trip_tricky_strings(void) {
    Tokenizer *t = get_sample_tokenizer();
    CHECK(t != NULL);
    if (!t) return;
    for (size_t i = 0; i < N_TRICKY; i++) {
        char what[64];
        snprintf(what, sizeof what, "tricky string %zu", i);
        check_round_trip(t, tricky[i].s, tricky_len(&tricky[i]), what);
    }
    /* All of them in one text, where they meet each other. */
    size_t total = 0;
    for (size_t i = 0; i < N_TRICKY; i++) total += tricky_len(&tricky[i]);
    uint8_t *all = xmalloc(total), *p = all;
    for (size_t i = 0; i < N_TRICKY; i++) {
        memcpy(p, tricky[i].s, tricky_len(&tricky[i]));
        p += tricky_len(&tricky[i]);
    }
    check_round_trip(t, all, total, "all tricky strings");
    /* The tricky text was part of the training text, so merges must have fired on it. */
    Ids ids = encode(t, all, total, ENC_FAST);
    CHECKF(ids.n < total * 3 / 4, "%zu ids for %zu bytes: merges not applied?", ids.n, total);
    free(ids.ids);
    free(all);
    Ids none = encode(t, "", 0, ENC_FAST);
    CHECK(none.n == 0);
    free(none.ids);
}

static void test_round_trip_random_bytes(void) {
    Tokenizer *t = get_sample_tokenizer();
    CHECK(t != NULL);
    if (!t) return;
    /* Bytes drawn from a mix: letters and spaces (so merges fire), whitespace, UTF-8 fragments,
     * and any byte at all. */
    static const char alphabet[] = "eeetttaaoo   hnsl\n\n\t'.,!0123\xc3\xa9\xe2\x80\x9c\xf0\x9f\x98\x80";
    int rounds = test_small() ? 300 : 3000, failures = 0;
    uint8_t buf[300];
    for (int r = 0; r < rounds && failures < 3; r++) {
        size_t n = rng_next(sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = rng_next(4) == 0 ? (uint8_t)rng_next(256) : (uint8_t)alphabet[rng_next(sizeof alphabet - 1)];
        char what[64];
        snprintf(what, sizeof what, "random string %d", r);
        if (!check_round_trip(t, buf, n, what)) failures++;
    }
    /* Long chunks (past the cache's length limit) go through the heap directly. */
    size_t long_n = 5000;
    uint8_t *longer = xmalloc(long_n);
    for (size_t i = 0; i < long_n; i++) longer[i] = (uint8_t)"aeiouthns"[rng_next(9)];
    check_round_trip(t, longer, long_n, "one 5000-letter word");
    memset(longer, ' ', long_n);
    check_round_trip(t, longer, long_n, "5000 spaces");
    free(longer);
}

static void test_sample_text_fast_equals_reference(void) {
    Tokenizer *t = get_sample_tokenizer();
    CHECK(t != NULL);
    if (!t) return;
    const char *files[] = {"tinystories_10k.txt", "tiny_stories.txt", "validation.csv"};
    int found = 0;
    for (int f = 0; f < 3; f++) {
        size_t n;
        uint8_t *text = read_sample(files[f], 60000, &n);
        if (!text) continue;
        found++;
        check_round_trip(t, text, n, files[f]);
        Ids ids = encode(t, text, n, ENC_FAST);
        /* A learned vocabulary compresses real text well; bytes-only would be 1 byte per id. */
        CHECKF((double)n / (double)ids.n > 2.0, "%s: only %.2f bytes per token", files[f],
               (double)n / (double)ids.n);
        free(ids.ids);
        free(text);
    }
    if (!found) SKIP("no sample text (data/sample/ or ../shared)");
}

static void test_output_capacity(void) {
    Tokenizer *t = get_sample_tokenizer();
    CHECK(t != NULL);
    if (!t) return;
    const char *s = "Once upon a time<|endoftext|> there was a cat named Tom.";
    size_t n = strlen(s);
    Ids full = encode(t, s, n, ENC_SPECIAL);
    for (int how = ENC_FAST; how <= ENC_SPECIAL; how++) {
        Ids all = encode(t, s, n, how);
        for (size_t cap = 0; cap < all.n + 2; cap++) {
            uint32_t out[128];
            for (size_t i = 0; i < 128; i++) out[i] = 0xDEADBEEF;
            size_t got = how == ENC_FAST        ? tok_encode(t, (const uint8_t *)s, n, out, cap)
                         : how == ENC_REFERENCE ? tok_encode_reference(t, (const uint8_t *)s, n, out, cap)
                                                : tok_encode_with_special(t, (const uint8_t *)s, n, out, cap);
            CHECKF(got == all.n, "cap %zu: returned %zu, want %zu", cap, got, all.n);
            size_t w = cap < all.n ? cap : all.n;
            CHECK(memcmp(out, all.ids, w * sizeof *out) == 0);
            for (size_t i = w; i < 128; i++)
                if (out[i] != 0xDEADBEEF) {
                    CHECKF(0, "how %d, cap %zu: wrote past the capacity at %zu", how, cap, i);
                    break;
                }
        }
        free(all.ids);
    }
    /* NULL output with zero capacity just counts. */
    CHECK(tok_encode(t, (const uint8_t *)s, n, NULL, 0) > 0);
    /* Decode: same contract; a bad id is an error. */
    for (size_t cap = 0; cap < n + 2; cap++) {
        uint8_t out[128];
        memset(out, 0xAB, sizeof out);
        size_t got = tok_decode(t, full.ids, full.n, out, cap);
        CHECK(got == n);
        size_t w = cap < n ? cap : n;
        CHECK(memcmp(out, s, w) == 0);
        for (size_t i = w; i < sizeof out; i++)
            if (out[i] != 0xAB) {
                CHECKF(0, "decode cap %zu: wrote past the capacity at %zu", cap, i);
                break;
            }
    }
    uint32_t bad[] = {'a', (uint32_t)tok_vocab_size(t), 'b'};
    uint8_t out[16];
    tr_clear_error();
    CHECK(tok_decode(t, bad, 3, out, sizeof out) == (size_t)-1);
    CHECKF(strstr(tr_error(), "out of range"), "error: %s", tr_error());
    free(full.ids);
}

static void test_encode_with_special(void) {
    Tokenizer *t = get_sample_tokenizer();
    CHECK(t != NULL);
    if (!t) return;
    uint32_t eot = (uint32_t)tok_eot_id(t);
    const char *cases[] = {"<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>", "x<|endoftext|",
                           "<<|endoftext|>>", "end<|endoftext|>\nOnce", "<|endoftext|>text<|endoftext|"};
    const int want_eots[] = {1, 1, 2, 0, 1, 1, 1};
    for (int c = 0; c < 7; c++) {
        size_t n = strlen(cases[c]);
        Ids special = encode(t, cases[c], n, ENC_SPECIAL), plain = encode(t, cases[c], n, ENC_FAST);
        int eots = 0, plain_eots = 0;
        for (size_t i = 0; i < special.n; i++) eots += special.ids[i] == eot;
        for (size_t i = 0; i < plain.n; i++) plain_eots += plain.ids[i] == eot;
        CHECKF(eots == want_eots[c], "\"%s\": %d EOT ids, want %d", cases[c], eots, want_eots[c]);
        CHECKF(plain_eots == 0, "\"%s\": tok_encode produced the EOT id", cases[c]);
        uint8_t back[64];
        size_t m = tok_decode(t, special.ids, special.n, back, sizeof back);
        CHECKF(m == n && memcmp(back, cases[c], n) == 0, "\"%s\": does not round-trip", cases[c]);
        free(special.ids);
        free(plain.ids);
    }
    /* "a<|endoftext|>b" is exactly encode("a"), EOT, encode("b"). */
    Ids ab = encode(t, "a<|endoftext|>b", 15, ENC_SPECIAL);
    CHECK(ab.n == 3 && ab.ids[0] == 'a' && ab.ids[1] == eot && ab.ids[2] == 'b');
    free(ab.ids);

    size_t n;
    uint8_t *text = read_sample("tinystories_10k.txt", 200000, &n);
    if (!text) SKIP("no sample text");
    size_t occurrences = 0;
    for (size_t i = 0; i + 13 <= n; i++) occurrences += memcmp(text + i, TOK_EOT_STRING, 13) == 0;
    Ids ids = encode(t, text, n, ENC_SPECIAL);
    size_t eots = 0;
    for (size_t i = 0; i < ids.n; i++) eots += ids.ids[i] == eot;
    CHECKF(eots == occurrences && occurrences > 0, "%zu EOT ids for %zu occurrences", eots, occurrences);
    uint8_t *back = xmalloc(n);
    CHECK(tok_decode(t, ids.ids, ids.n, back, n) == n && memcmp(back, text, n) == 0);
    free(back);
    free(ids.ids);
    free(text);
}

/* ---------------------------------------------------------------------------------------------
 * Threads and the per-thread cache */

#ifdef _OPENMP
/* Cutting text at `at` cannot change its chunks when a newline after a non-space ends one piece
 * (printable ASCII) and a letter starts the next: that newline is a chunk of its own either way. */
static int is_safe_cut(const uint8_t *text, size_t n, size_t at) {
    if (at < 2 || at >= n) return 0;
    uint8_t before = text[at - 2], c = text[at];
    return text[at - 1] == '\n' && before > ' ' && before < 0x7f && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
}
#endif

static void test_threads_match_single_thread(void) {
#ifndef _OPENMP
    SKIP("built without OpenMP");
#else
    Tokenizer *t = get_sample_tokenizer();
    CHECK(t != NULL);
    if (!t || !sample_text) SKIP("no sample text");
    size_t n = sample_n;
    Ids single = encode(t, sample_text, n, ENC_REFERENCE);
    /* Both threads encode the whole text at the same time, each into its own buffer. */
    Ids both[2];
    int threads_seen = 0;
#pragma omp parallel num_threads(2)
    {
        int me = omp_get_thread_num();
#pragma omp atomic
        threads_seen++;
        both[me] = encode(t, sample_text, n, ENC_FAST);
    }
    CHECKF(threads_seen == 2, "only %d thread(s) ran", threads_seen);
    for (int k = 0; k < threads_seen; k++) {
        CHECKF(ids_equal(both[k], single), "thread %d's ids differ from the single-threaded ones", k);
        free(both[k].ids);
    }
    /* And pieces encoded in parallel, concatenated, give the same ids as one call. */
    enum { PIECES = 16 };
    size_t cut[PIECES + 1];
    cut[0] = 0;
    for (int p = 1; p < PIECES; p++) {
        size_t at = n * (size_t)p / PIECES;
        while (at < n && !(is_safe_cut(sample_text, n, at))) at++;
        cut[p] = at < cut[p - 1] ? cut[p - 1] : at;
    }
    cut[PIECES] = n;
    Ids parts[PIECES];
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
    for (int p = 0; p < PIECES; p++) parts[p] = encode(t, sample_text + cut[p], cut[p + 1] - cut[p], ENC_FAST);
    size_t at = 0;
    int same = 1;
    for (int p = 0; p < PIECES; p++) {
        if (at + parts[p].n > single.n || memcmp(single.ids + at, parts[p].ids, parts[p].n * sizeof(uint32_t)))
            same = 0;
        at += parts[p].n;
        free(parts[p].ids);
    }
    CHECKF(same && at == single.n, "pieces encoded in parallel differ from the whole");
    free(single.ids);
#endif
}

static void test_cache_keyed_by_tokenizer(void) {
    /* Two tokenizers that split the same words differently: the per-thread cache must never
     * hand one tokenizer's ids to the other, even when a new tokenizer reuses a freed one's
     * address. */
    const char *text = "the cat sat on the mat. the hat. that cat.";
    size_t n = strlen(text);
    const uint32_t m1[3][2] = {{'a', 't'}, {' ', 'c'}, {257, 256}};       /* " cat" merges */
    const uint32_t m2[3][2] = {{'t', 'h'}, {256, 'e'}, {'a', 't'}};       /* "the" merges */
    Tokenizer *a = tok_from_merges(m1, 3), *b = tok_from_merges(m2, 3);
    CHECK(a && b);
    if (!a || !b) return;
    for (int round = 0; round < 3; round++) {
        Tokenizer *t = round == 1 ? b : a;
        Ids fast = encode(t, text, n, ENC_FAST), ref = encode(t, text, n, ENC_REFERENCE);
        CHECKF(ids_equal(fast, ref), "round %d: cached ids of the other tokenizer?", round);
        free(fast.ids);
        free(ref.ids);
    }
    Ids with_a = encode(a, text, n, ENC_FAST), with_b = encode(b, text, n, ENC_FAST);
    CHECK(!ids_equal(with_a, with_b));   /* else this test would prove nothing */
    free(with_a.ids);
    free(with_b.ids);
    /* Free and rebuild, alternating merge lists, many times: malloc hands back the same
     * addresses, so a cache keyed by pointer would serve stale ids. */
    int stale = 0;
    for (int k = 0; k < 20; k++) {
        tok_free(b);
        b = tok_from_merges(k % 2 ? m2 : m1, 3);
        Ids fast = encode(b, text, n, ENC_FAST), ref = encode(b, text, n, ENC_REFERENCE);
        stale += !ids_equal(fast, ref);
        free(fast.ids);
        free(ref.ids);
    }
    CHECKF(stale == 0, "%d of 20 rebuilt tokenizers got stale cached ids", stale);
    tok_free(a);
    tok_free(b);
}

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

/* ---------------------------------------------------------------------------------------------
 * Speed (informational: prints MB/s; checks only that the timed ids are the reference's) */

/* MB/s of tok_encode on text: *cold = the first call, with an empty cache for this tokenizer;
 * returns the best of three calls after it (cache warm, as in a long run). */
static double time_encode(const Tokenizer *t, const uint8_t *text, size_t n, Ids *out, double *cold) {
    out->ids = xmalloc((n + 1) * sizeof *out->ids);
    double t0 = tr_now_seconds();
    tok_encode(t, text, n, out->ids, n + 1);
    *cold = (double)n / 1e6 / (tr_now_seconds() - t0);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        t0 = tr_now_seconds();
        out->n = tok_encode(t, text, n, out->ids, n + 1);
        double dt = tr_now_seconds() - t0;
        if (dt < best) best = dt;
    }
    return (double)n / 1e6 / best;
}

static void test_encode_speed(void) {
    size_t n;
    uint8_t *text = read_sample("tinystories_10k.txt", 100000, &n);
    if (!text) SKIP("no sample text");
    /* A ~4k vocabulary learned from the text itself (batched greedy learner). */
    int want = test_small() ? 500 : 3839;
    uint32_t(*merges)[2] = xmalloc((size_t)want * sizeof *merges);
    int learned = learn_merges(text, n, want, 64, merges);
    Tokenizer *t = tok_from_merges((const uint32_t(*)[2])merges, learned);
    free(merges);
    CHECK(t != NULL);
    if (t) {
        Ids fast;
        double cold, mbs = time_encode(t, text, n, &fast, &cold);
        Ids ref = encode(t, text, n, ENC_REFERENCE);
        CHECK(ids_equal(fast, ref));
        printf("  encode speed, vocab %d: %.1f MB/s single-threaded (first pass %.1f MB/s; %.2f bytes/token, "
               "%.2f MB)\n", tok_vocab_size(t), mbs, cold, (double)n / (double)fast.n, (double)n / 1e6);
        free(fast.ids);
        free(ref.ids);
        tok_free(t);
    }
    const char *shared = test_shared_dir();
    if (shared) {
        char enc[512], bpe[512];
        snprintf(enc, sizeof enc, "%s/data/gpt2/encoder.json", shared);
        snprintf(bpe, sizeof bpe, "%s/data/gpt2/vocab.bpe", shared);
        Tokenizer *g = tok_load_gpt2(enc, bpe);
        if (g) {
            Ids fast;
            double cold, mbs = time_encode(g, text, n, &fast, &cold);
            Ids ref = encode(g, text, n, ENC_REFERENCE);
            CHECK(ids_equal(fast, ref));
            printf("  encode speed, GPT-2 (vocab %d): %.1f MB/s single-threaded (first pass %.1f MB/s; "
                   "%.2f bytes/token)\n", tok_vocab_size(g), mbs, cold, (double)n / (double)fast.n);
            free(fast.ids);
            free(ref.ids);
            tok_free(g);
        }
    }
    free(text);
}

int main(void) {
    RUN(test_minbpe_example);
    RUN(test_from_merges_basics);
    RUN(test_round_trip_tricky_strings);
    RUN(test_round_trip_random_bytes);
    RUN(test_sample_text_fast_equals_reference);
    RUN(test_output_capacity);
    RUN(test_encode_with_special);
    RUN(test_threads_match_single_thread);
    RUN(test_cache_keyed_by_tokenizer);
    RUN(test_save_load_round_trip);
    RUN(test_comment_escaping);
    RUN(test_hash_ignores_comments_detects_changes);
    RUN(test_load_errors);
    RUN(test_save_errors);
    RUN(test_gpt2_fixture);
    RUN(test_gpt2_load_errors);
    RUN(test_gpt2_shared_files);
    RUN(test_encode_speed);
    tok_free(sample_tok);
    free(sample_text);
    return test_summary();
}
