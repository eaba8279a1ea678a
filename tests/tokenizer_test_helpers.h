/* tokenizer_test_helpers.h: what the tokenizer tests (test_tokenizer.c, test_tok_file.c,
 * test_gpt2_import.c) share: a reproducible random generator, the sample text, encoding into an
 * id list and comparing lists, the round-trip check (decode(encode(s)) == s, fast == reference),
 * the strings that have broken tokenizers before, and one realistic tokenizer learned from the
 * sample.
 *
 * The merges come from a tiny greedy learner in this file (not from bpe_train.c, which is tested
 * on its own). tests/fixtures/gpt2_tiny/ is a hand-made tokenizer in GPT-2's format (see
 * test_gpt2_import.c).
 */
#ifndef TINYROPE_TOKENIZER_TEST_HELPERS_H
#define TINYROPE_TOKENIZER_TEST_HELPERS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tests/test.h"
#include "tokenizer/pretok.h"
#include "tokenizer/tokenizer.h"

#define FIXTURE_ENCODER "tests/fixtures/gpt2_tiny/encoder.json"
#define FIXTURE_VOCAB "tests/fixtures/gpt2_tiny/vocab.bpe"

/* Small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 88172645463325252ULL;
static inline uint32_t rng_next(uint32_t bound) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 33) % bound;
}

/* A file of the shipped sample (data/sample/), else the same file in ../shared; NULL if neither.
 * Under TINYROPE_SMALL only the first small_limit bytes. */
static inline uint8_t *read_sample(const char *name, size_t small_limit, size_t *n) {
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

static inline Ids encode(const Tokenizer *t, const void *text, size_t n, int how) {
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

static inline int ids_equal(Ids a, Ids b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.ids, b.ids, a.n * sizeof *a.ids) == 0);
}

static inline int ids_equal_list(Ids a, const uint32_t *want, size_t n_want) {
    return a.n == n_want && (n_want == 0 || memcmp(a.ids, want, n_want * sizeof *want) == 0);
}

static inline void print_ids(const char *label, Ids a) {
    fprintf(stderr, "    %s (%zu):", label, a.n);
    for (size_t i = 0; i < a.n && i < 40; i++) fprintf(stderr, " %u", a.ids[i]);
    fprintf(stderr, a.n > 40 ? " ...\n" : "\n");
}

/* Checks decode(encode(s)) == s and fast == reference for one string; 1 if all held. */
static inline int check_round_trip(const Tokenizer *t, const void *text, size_t n, const char *what) {
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

static inline int compare_pair_counts(const void *a, const void *b) {
    const PairCount *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : 0;   /* left, then right */
}

typedef struct {
    const uint8_t *p;
    size_t len;
} Slice;

static inline int compare_slices(const void *a, const void *b) {
    const Slice *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static inline int learn_merges(const uint8_t *text, size_t n, int n_merges, int batch, uint32_t (*out)[2]) {
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

static inline size_t tricky_len(const Tricky *t) { return t->n ? t->n : strlen(t->s); }

/* One tokenizer learned from the sample (plus the tricky strings, so that whitespace, digit and
 * multi-byte merges exist), shared by the tests that need "a realistic tokenizer". */
static Tokenizer *sample_tok;
static uint8_t *sample_text;
static size_t sample_n;

static inline Tokenizer *get_sample_tokenizer(void) {
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

#endif
