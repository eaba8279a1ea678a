/* test_tokenizer.c: tests for the BPE tokenizer's building, encoding and decoding
 * (tokenizer/tokenizer.c).
 *
 * The core properties: decode(encode(s)) == s for every byte string; the fast encoder (heap, hash
 * table, per-thread cache) gives exactly the reference encoder's ids, on real text, tricky
 * strings and random bytes, from one thread or several; and the encoder's speed, for information.
 * Our file format is tested in test_tok_file.c, OpenAI's GPT-2 files in test_gpt2_import.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/util.h"
#include "tests/test.h"
#include "tests/tokenizer_test_helpers.h"
#include "tokenizer/tokenizer.h"

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
    RUN(test_encode_speed);
    tok_free(sample_tok);
    free(sample_text);
    return test_summary();
}
