/* bpe_train.c: learning BPE merges (see bpe_train.h), in two phases.
 *
 * Counting. A BpeCounter maps each distinct pre-tokenized chunk ("word") to how often it was
 * seen: an open-addressing hash table (linear probing, power-of-two capacity) whose keys live in
 * one growing byte arena. Memory grows with the number of distinct words only, so the counter can
 * swallow any amount of text; per-thread counters are summed with bpe_counter_merge.
 *
 * Merging (bpe_train). Each distinct word becomes a sequence of symbol ids (initially its bytes)
 * with a weight (its count). We keep
 *   - pair counts: a hash table from (left, right) to the weighted number of adjacent occurrences
 *     (overlapping ones included: "aaa" holds (a, a) twice, as minbpe's get_stats counts);
 *   - for each pair, the list of words it was ever created in. A list may hold words that have
 *     since lost the pair (they are skipped when scanned) but never the same word twice: a pair
 *     is only ever created while the newest of its two ids is being made (or at the start), and
 *     words are processed one at a time, so remembering the last word appended is enough;
 *   - a binary max-heap of (count, left, right) entries with lazy deletion: whenever a pair's
 *     count changes we push a fresh entry, and an entry whose count no longer equals the pair's
 *     current count is stale and skipped when popped.
 * Applying merge (A, B) -> Z visits only the words on (A, B)'s list. Each word is rewritten left
 * to right, non-overlapping (as minbpe's merge), and each replaced occurrence adjusts the counts
 * of its neighbours: with x the symbol before (already rewritten, so possibly Z) and y the one
 * after, (x, A) and (B, y) lose the word's weight, (x, Z) and (Z, y) gain it.
 * Because the heap orders entries by (count desc, left asc, right asc), a total order on pairs,
 * the merges learned do not depend on hash order, word order or how the counts were gathered.
 *
 * bpe_train_reference does the obvious thing instead: per merge, list every adjacent pair of
 * every word, sort, sum, take the best, and rewrite every word. It comes first below, then the
 * fast trainer; tests/test_bpe_train.c (check_fast_equals_reference) holds the two to the same
 * merges.
 */
#include "tokenizer/bpe_train.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer/pretok.h"

/* ------------------------------------------------------------------------------------------ */
/* Counting                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    uint64_t hash;
    uint64_t count;  /* 0 = empty slot */
    size_t offset;   /* of the word's bytes in the arena */
    size_t len;
} CounterSlot;

struct BpeCounter {
    CounterSlot *slots;
    size_t capacity; /* power of two */
    size_t distinct;
    uint64_t total;
    uint8_t *arena;
    size_t arena_used, arena_cap;
};

/* A fast 64-bit hash of a short byte string: 8 bytes per step, then a final avalanche. Only the
 * table layout depends on it, never the training result. */
static uint64_t word_hash(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    if (n) memcpy(&tail, s, n);
    h = (h ^ tail) * 0x94D049BB133111EBULL;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    return h;
}

BpeCounter *bpe_counter_new(void) {
    BpeCounter *c = xcalloc(1, sizeof *c);
    c->capacity = 1024;
    c->slots = xcalloc(c->capacity, sizeof *c->slots);
    c->arena_cap = 1 << 16;
    c->arena = xmalloc(c->arena_cap);
    return c;
}

void bpe_counter_free(BpeCounter *c) {
    if (!c) return;
    free(c->slots);
    free(c->arena);
    free(c);
}

static void counter_grow(BpeCounter *c) {
    size_t new_cap = c->capacity * 2;
    CounterSlot *slots = xcalloc(new_cap, sizeof *slots);
    for (size_t i = 0; i < c->capacity; i++) {
        CounterSlot *s = &c->slots[i];
        if (!s->count) continue;
        size_t j = (size_t)s->hash & (new_cap - 1);
        while (slots[j].count) j = (j + 1) & (new_cap - 1);
        slots[j] = *s;
    }
    free(c->slots);
    c->slots = slots;
    c->capacity = new_cap;
}

/* Adds `count` occurrences of word[0..len) (len >= 1). */
static void counter_add_word(BpeCounter *c, const uint8_t *word, size_t len, uint64_t count) {
    uint64_t h = word_hash(word, len);
    size_t mask = c->capacity - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        CounterSlot *s = &c->slots[i];
        if (!s->count) break;
        if (s->hash == h && s->len == len && memcmp(c->arena + s->offset, word, len) == 0) {
            s->count += count;
            c->total += count;
            return;
        }
        i = (i + 1) & mask;
    }
    /* A new word: copy its bytes into the arena. */
    if (c->arena_used + len > c->arena_cap) {
        while (c->arena_used + len > c->arena_cap) c->arena_cap *= 2;
        c->arena = xrealloc(c->arena, c->arena_cap);
    }
    memcpy(c->arena + c->arena_used, word, len);
    CounterSlot *s = &c->slots[i];
    s->hash = h;
    s->count = count;
    s->offset = c->arena_used;
    s->len = len;
    c->arena_used += len;
    c->distinct++;
    c->total += count;
    /* Grow at load 1/2 so probe runs stay short. */
    if (c->distinct * 2 > c->capacity) counter_grow(c);
}

void bpe_counter_add(BpeCounter *c, const uint8_t *text, size_t n) {
    size_t pos = 0;
    while (pos < n) {
        size_t len = pretok_next(text, n, pos);
        counter_add_word(c, text + pos, len, 1);
        pos += len;
    }
}

void bpe_counter_merge(BpeCounter *dst, const BpeCounter *src) {
    if (dst == src) { /* adding a counter to itself doubles it; inserting while scanning would not */
        for (size_t i = 0; i < dst->capacity; i++) dst->slots[i].count *= 2;
        dst->total *= 2;
        return;
    }
    for (size_t i = 0; i < src->capacity; i++) {
        const CounterSlot *s = &src->slots[i];
        if (s->count) counter_add_word(dst, src->arena + s->offset, s->len, s->count);
    }
}

size_t bpe_counter_distinct(const BpeCounter *c) { return c->distinct; }
uint64_t bpe_counter_total(const BpeCounter *c) { return c->total; }

/* ------------------------------------------------------------------------------------------ */
/* The weighted word list both trainers start from                                            */
/* ------------------------------------------------------------------------------------------ */

/* Words of at least two bytes (shorter ones hold no pair), as symbol sequences in one flat array.
 * Word w occupies symbols[start[w] .. start[w] + len[w]); len shrinks as merges are applied. */
typedef struct {
    uint32_t *symbols;
    size_t *start;
    size_t *len;
    uint64_t *count;
    size_t n_words;
} WordList;

static void words_from_counter(const BpeCounter *c, WordList *wl) {
    size_t n_words = 0, n_symbols = 0;
    for (size_t i = 0; i < c->capacity; i++) {
        const CounterSlot *s = &c->slots[i];
        if (s->count && s->len >= 2) {
            n_words++;
            n_symbols += s->len;
        }
    }
    wl->symbols = xmalloc((n_symbols ? n_symbols : 1) * sizeof *wl->symbols);
    wl->start = xmalloc((n_words ? n_words : 1) * sizeof *wl->start);
    wl->len = xmalloc((n_words ? n_words : 1) * sizeof *wl->len);
    wl->count = xmalloc((n_words ? n_words : 1) * sizeof *wl->count);
    wl->n_words = n_words;
    size_t w = 0, at = 0;
    for (size_t i = 0; i < c->capacity; i++) {
        const CounterSlot *s = &c->slots[i];
        if (!s->count || s->len < 2) continue;
        const uint8_t *bytes = c->arena + s->offset;
        wl->start[w] = at;
        wl->len[w] = s->len;
        wl->count[w] = s->count;
        for (size_t k = 0; k < s->len; k++) wl->symbols[at + k] = bytes[k];
        at += s->len;
        w++;
    }
}

static void words_free(WordList *wl) {
    free(wl->symbols);
    free(wl->start);
    free(wl->len);
    free(wl->count);
}

static inline uint64_t pair_key(uint32_t left, uint32_t right) {
    return ((uint64_t)left << 32) | right;
}

/* The tie rule: does (count_a, key_a) come before (count_b, key_b)? Highest count first, then the
 * smaller left id, then the smaller right id, which is exactly the smaller key. */
static inline int pair_better(uint64_t count_a, uint64_t key_a, uint64_t count_b, uint64_t key_b) {
    return count_a > count_b || (count_a == count_b && key_a < key_b);
}

/* ------------------------------------------------------------------------------------------ */
/* Reference training: recount everything per merge                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    uint64_t key;
    uint64_t count;
} PairCount;

static int compare_pair_count(const void *pa, const void *pb) {
    uint64_t a = ((const PairCount *)pa)->key, b = ((const PairCount *)pb)->key;
    return (a > b) - (a < b);
}

int bpe_train_reference(const BpeCounter *c, int n_merges, uint32_t (*merges_out)[2]) {
    if (n_merges <= 0) return 0;
    WordList wl;
    words_from_counter(c, &wl);
    size_t max_pairs = 0;
    for (size_t w = 0; w < wl.n_words; w++) max_pairs += wl.len[w] - 1;
    PairCount *occurrences = xmalloc((max_pairs ? max_pairs : 1) * sizeof *occurrences);

    int learned = 0;
    while (learned < n_merges) {
        /* List every adjacent pair (weighted by its word's count), sort by pair, sum each run. */
        size_t n = 0;
        for (size_t w = 0; w < wl.n_words; w++) {
            const uint32_t *sym = wl.symbols + wl.start[w];
            for (size_t k = 0; k + 1 < wl.len[w]; k++) {
                occurrences[n].key = pair_key(sym[k], sym[k + 1]);
                occurrences[n].count = wl.count[w];
                n++;
            }
        }
        qsort(occurrences, n, sizeof *occurrences, compare_pair_count);
        uint64_t best_key = 0, best_count = 0;
        for (size_t i = 0; i < n;) {
            size_t j = i;
            uint64_t sum = 0;
            while (j < n && occurrences[j].key == occurrences[i].key) sum += occurrences[j++].count;
            if (pair_better(sum, occurrences[i].key, best_count, best_key)) {
                best_count = sum;
                best_key = occurrences[i].key;
            }
            i = j;
        }
        if (best_count < 2) break;

        uint32_t a = (uint32_t)(best_key >> 32), b = (uint32_t)best_key;
        uint32_t z = 256u + (uint32_t)learned;
        merges_out[learned][0] = a;
        merges_out[learned][1] = b;
        /* minbpe's merge: scan left to right, replace each (a, b) and skip past it. */
        for (size_t w = 0; w < wl.n_words; w++) {
            uint32_t *sym = wl.symbols + wl.start[w];
            size_t len = wl.len[w], out = 0;
            for (size_t k = 0; k < len;) {
                if (k + 1 < len && sym[k] == a && sym[k + 1] == b) {
                    sym[out++] = z;
                    k += 2;
                } else {
                    sym[out++] = sym[k++];
                }
            }
            wl.len[w] = out;
        }
        learned++;
    }
    free(occurrences);
    words_free(&wl);
    return learned;
}

/* ------------------------------------------------------------------------------------------ */
/* Fast training: incremental pair counts, word index, lazy max-heap                          */
/* ------------------------------------------------------------------------------------------ */

#define EMPTY_KEY UINT64_MAX /* no pair has it: ids stay far below 2^32 - 1 */
#define NO_WORD UINT32_MAX

typedef struct {
    uint64_t key;
    uint64_t count;
    uint32_t *words;     /* words the pair was created in (some may have lost it since) */
    uint32_t n_words, cap_words;
    uint32_t last_word;  /* the last word appended, so no word is listed twice */
    uint32_t touched_at; /* merge number + 1 when its count last changed, for the heap refresh */
} PairSlot;

typedef struct {
    PairSlot *slots;
    size_t capacity, used;
} PairTable;

typedef struct {
    uint64_t count;
    uint64_t key;
} HeapEntry;

typedef struct {
    HeapEntry *entries;
    size_t n, cap;
} PairHeap;

static uint64_t key_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xFF51AFD7ED558CCDULL;
    key ^= key >> 33;
    key *= 0xC4CEB9FE1A85EC53ULL;
    key ^= key >> 33;
    return key;
}

static void pairs_init(PairTable *t, size_t capacity) {
    t->capacity = capacity;
    t->used = 0;
    t->slots = xmalloc(capacity * sizeof *t->slots);
    for (size_t i = 0; i < capacity; i++) t->slots[i].key = EMPTY_KEY;
}

static void pairs_free(PairTable *t) {
    for (size_t i = 0; i < t->capacity; i++)
        if (t->slots[i].key != EMPTY_KEY) free(t->slots[i].words);
    free(t->slots);
}

static void pairs_grow(PairTable *t) {
    PairTable bigger;
    pairs_init(&bigger, t->capacity * 2);
    size_t mask = bigger.capacity - 1;
    for (size_t i = 0; i < t->capacity; i++) {
        if (t->slots[i].key == EMPTY_KEY) continue;
        size_t j = (size_t)key_hash(t->slots[i].key) & mask;
        while (bigger.slots[j].key != EMPTY_KEY) j = (j + 1) & mask;
        bigger.slots[j] = t->slots[i];
    }
    bigger.used = t->used;
    free(t->slots);
    *t = bigger;
}

/* The slot of key, created (count 0) if absent. The pointer is valid until the next call. */
static PairSlot *pairs_get(PairTable *t, uint64_t key) {
    size_t mask = t->capacity - 1;
    size_t i = (size_t)key_hash(key) & mask;
    while (t->slots[i].key != EMPTY_KEY) {
        if (t->slots[i].key == key) return &t->slots[i];
        i = (i + 1) & mask;
    }
    /* Absent: insert, growing first (at load 1/2) if needed. */
    if ((t->used + 1) * 2 > t->capacity) {
        pairs_grow(t);
        mask = t->capacity - 1;
        i = (size_t)key_hash(key) & mask;
        while (t->slots[i].key != EMPTY_KEY) i = (i + 1) & mask;
    }
    PairSlot *s = &t->slots[i];
    memset(s, 0, sizeof *s);
    s->key = key;
    s->last_word = NO_WORD;
    t->used++;
    return s;
}

static void heap_push(PairHeap *h, uint64_t count, uint64_t key) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 1024;
        h->entries = xrealloc(h->entries, h->cap * sizeof *h->entries);
    }
    size_t i = h->n++;
    HeapEntry e = {count, key};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        HeapEntry *p = &h->entries[parent];
        if (!pair_better(e.count, e.key, p->count, p->key)) break;
        h->entries[i] = *p;
        i = parent;
    }
    h->entries[i] = e;
}

static HeapEntry heap_pop(PairHeap *h) {
    HeapEntry top = h->entries[0];
    HeapEntry last = h->entries[--h->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) break;
        HeapEntry *e = h->entries;
        if (child + 1 < h->n && pair_better(e[child + 1].count, e[child + 1].key, e[child].count, e[child].key))
            child++;
        if (!pair_better(e[child].count, e[child].key, last.count, last.key)) break;
        e[i] = e[child];
        i = child;
    }
    if (h->n) h->entries[i] = last;
    return top;
}

/* Training state passed to the per-occurrence updates. */
typedef struct {
    PairTable pairs;
    PairHeap heap;
    uint64_t *touched; /* keys whose count changed during the current merge */
    size_t n_touched, cap_touched;
    uint32_t stamp;    /* current merge number + 1 */
} Trainer;

static void note_touched(Trainer *tr, PairSlot *s) {
    if (s->touched_at == tr->stamp) return;
    s->touched_at = tr->stamp;
    if (tr->n_touched == tr->cap_touched) {
        tr->cap_touched = tr->cap_touched ? tr->cap_touched * 2 : 1024;
        tr->touched = xrealloc(tr->touched, tr->cap_touched * sizeof *tr->touched);
    }
    tr->touched[tr->n_touched++] = s->key;
}

/* (left, right) appears once more in word w of weight c. */
static void pair_gain(Trainer *tr, uint32_t left, uint32_t right, uint64_t c, uint32_t w) {
    PairSlot *s = pairs_get(&tr->pairs, pair_key(left, right));
    s->count += c;
    if (s->last_word != w) {
        if (s->n_words == s->cap_words) {
            s->cap_words = s->cap_words ? s->cap_words * 2 : 2;
            s->words = xrealloc(s->words, s->cap_words * sizeof *s->words);
        }
        s->words[s->n_words++] = w;
        s->last_word = w;
    }
    note_touched(tr, s);
}

/* (left, right) appears once less in a word of weight c. */
static void pair_lose(Trainer *tr, uint32_t left, uint32_t right, uint64_t c) {
    PairSlot *s = pairs_get(&tr->pairs, pair_key(left, right));
    assert(s->count >= c);
    s->count -= c;
    note_touched(tr, s);
}

/* Rewrites word w, replacing each non-overlapping (a, b) from the left by z, and updates the pair
 * counts of the neighbours. */
static void merge_in_word(Trainer *tr, WordList *wl, uint32_t w, uint32_t a, uint32_t b, uint32_t z) {
    uint32_t *sym = wl->symbols + wl->start[w];
    size_t n = wl->len[w];
    uint64_t c = wl->count[w];
    size_t read = 0, write = 0;
    while (read < n) {
        if (read + 1 < n && sym[read] == a && sym[read + 1] == b) {
            if (write > 0) {
                uint32_t x = sym[write - 1]; /* already rewritten: may be z */
                pair_lose(tr, x, a, c);
                pair_gain(tr, x, z, c, w);
            }
            if (read + 2 < n) {
                uint32_t y = sym[read + 2];
                pair_lose(tr, b, y, c);
                pair_gain(tr, z, y, c, w);
            }
            pair_lose(tr, a, b, c);
            sym[write++] = z;
            read += 2;
        } else {
            sym[write++] = sym[read++];
        }
    }
    wl->len[w] = write;
}

int bpe_train(const BpeCounter *c, int n_merges, uint32_t (*merges_out)[2], const BpeProgress *progress) {
    if (n_merges <= 0) return 0;
    WordList wl;
    words_from_counter(c, &wl);
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    pairs_init(&tr.pairs, 1 << 12);

    /* Initial counts: every adjacent byte pair of every word. */
    for (size_t w = 0; w < wl.n_words; w++) {
        const uint32_t *sym = wl.symbols + wl.start[w];
        for (size_t k = 0; k + 1 < wl.len[w]; k++)
            pair_gain(&tr, sym[k], sym[k + 1], wl.count[w], (uint32_t)w);
    }
    for (size_t i = 0; i < tr.pairs.capacity; i++) {
        PairSlot *s = &tr.pairs.slots[i];
        if (s->key != EMPTY_KEY && s->count >= 2) heap_push(&tr.heap, s->count, s->key);
    }

    int learned = 0;
    double t0 = tr_now_seconds();
    while (learned < n_merges) {
        /* The best pair whose heap entry is current; stale entries are dropped. */
        PairSlot *best = NULL;
        uint64_t best_count = 0;
        while (tr.heap.n > 0) {
            HeapEntry e = heap_pop(&tr.heap);
            PairSlot *s = pairs_get(&tr.pairs, e.key);
            if (s->count == e.count && e.count >= 2) {
                best = s;
                best_count = e.count;
                break;
            }
        }
        if (!best) break; /* no pair occurs twice: nothing more to learn */

        uint32_t a = (uint32_t)(best->key >> 32), b = (uint32_t)best->key;
        uint32_t z = 256u + (uint32_t)learned;
        merges_out[learned][0] = a;
        merges_out[learned][1] = b;

        /* Take the word list out of the table: the slot may move while new pairs are added, and
         * (a, b) can never be created again (z is the only id newer than both). */
        uint32_t *words = best->words;
        uint32_t n_words = best->n_words;
        best->words = NULL;
        best->n_words = best->cap_words = 0;

        tr.stamp = (uint32_t)learned + 1;
        tr.n_touched = 0;
        for (uint32_t i = 0; i < n_words; i++) merge_in_word(&tr, &wl, words[i], a, b, z);
        free(words);
        assert(pairs_get(&tr.pairs, pair_key(a, b))->count == 0);

        /* Every pair whose count changed gets a fresh heap entry; its old ones are now stale. */
        for (size_t i = 0; i < tr.n_touched; i++) {
            PairSlot *s = pairs_get(&tr.pairs, tr.touched[i]);
            if (s->count >= 2) heap_push(&tr.heap, s->count, s->key);
        }
        learned++;
        if (progress && progress->every > 0 && (learned % progress->every == 0 || learned == n_merges))
            progress->report(progress->ctx, learned, n_merges, a, b, z, best_count, tr_now_seconds() - t0);
    }

    pairs_free(&tr.pairs);
    free(tr.heap.entries);
    free(tr.touched);
    words_free(&wl);
    return learned;
}
