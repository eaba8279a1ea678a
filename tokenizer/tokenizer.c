/* tokenizer.c: byte-level BPE: building, encoding (fast and reference), decoding, and the
 * vocabulary fingerprint. Our file format is in tok_file.c, GPT-2's files in gpt2_import.c; the
 * struct they all fill in is in tokenizer_internal.h.
 *
 * Encoding a chunk (one pre-token from pretok_next) is standard BPE: repeatedly merge the adjacent
 * pair with the lowest rank, the leftmost one among equal ranks. Two implementations:
 *   - tok_encode_reference: the obvious loop (find the best pair by scanning, merge, repeat), with
 *     pair ranks looked up by binary search in a sorted array. O(k^2) per chunk, no state.
 *   - tok_encode: a doubly linked list over the chunk's symbols plus a min-heap of candidate pairs
 *     keyed by (rank, position), ranks from an open-addressing hash table; and in front of that a
 *     per-thread cache chunk bytes -> ids, since natural text repeats the same words endlessly.
 * The tests check both give identical ids on real and random text.
 */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tokenizer_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer/pretok.h"

/* ---------------------------------------------------------------------------------------------
 * Building */

/* Starts at 1 so that a zeroed cache slot (generation 0) never matches a tokenizer. A pointer is
 * not enough to key the caches: a freed tokenizer's address is soon reused by the next one. */
static atomic_uint_fast64_t next_generation = 1;

void tok_free(Tokenizer *tok) {
    if (!tok) return;
    free(tok->merges);
    free(tok->merge_id);
    free(tok->token_start);
    free(tok->token_data);
    free(tok->pair_table);
    free(tok->pairs_sorted);
    free(tok);
}

static inline size_t pair_index(const Tokenizer *t, uint32_t left, uint32_t right) {
    uint64_t key = ((uint64_t)left << 32) | right;
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> t->pair_shift);
}

static inline const PairSlot *pair_find(const Tokenizer *t, uint32_t left, uint32_t right) {
    size_t mask = ((size_t)1 << (64 - t->pair_shift)) - 1;
    for (size_t i = pair_index(t, left, right);; i = (i + 1) & mask) {
        const PairSlot *s = &t->pair_table[i];
        if (s->rank == UINT32_MAX) return NULL;
        if (s->left == left && s->right == right) return s;
    }
}

static int compare_pairs(const void *a, const void *b) {
    const PairSlot *x = a, *y = b;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    if (x->right != y->right) return x->right < y->right ? -1 : 1;
    return 0;
}

static void hash_u32(uint64_t *h, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    *h = tr_fnv1a64(le, 4, *h);
}

/* tok_hash, version 1: 64-bit FNV-1a (tr_fnv1a64 starting from TR_FNV_OFFSET) over this byte
 * string, where every number is an unsigned 32-bit little-endian integer:
 *     the 33 ASCII bytes "tinyrope-bpe hash 1 pattern gpt2\n"
 *     vocab_size
 *     for id = 0 .. vocab_size-1: the length of token id's bytes, then the bytes
 *     byte_id[0] .. byte_id[255]
 *     n_merges, then for each merge in rank order: left, right, merge_id
 *     the number of special tokens (1), then for each: its id, its length, its bytes
 * So it covers everything that decides encoding and decoding, and nothing of the file's
 * comments, spacing or line order. */
static uint64_t compute_hash(const Tokenizer *t) {
    static const char tag[] = "tinyrope-bpe hash 1 pattern gpt2\n";
    uint64_t h = tr_fnv1a64(tag, sizeof tag - 1, TR_FNV_OFFSET);
    hash_u32(&h, (uint32_t)t->vocab_size);
    for (int id = 0; id < t->vocab_size; id++) {
        size_t len = t->token_start[id + 1] - t->token_start[id];
        hash_u32(&h, (uint32_t)len);
        h = tr_fnv1a64(t->token_data + t->token_start[id], len, h);
    }
    for (int b = 0; b < 256; b++) hash_u32(&h, t->byte_id[b]);
    hash_u32(&h, (uint32_t)t->n_merges);
    for (int r = 0; r < t->n_merges; r++) {
        hash_u32(&h, t->merges[r][0]);
        hash_u32(&h, t->merges[r][1]);
        hash_u32(&h, t->merge_id[r]);
    }
    hash_u32(&h, 1);
    hash_u32(&h, (uint32_t)t->eot_id);
    hash_u32(&h, (uint32_t)strlen(TOK_EOT_STRING));
    h = tr_fnv1a64(TOK_EOT_STRING, strlen(TOK_EOT_STRING), h);
    return h;
}

/* Builds the lookup structures once every field above pair_table is filled in. Returns 0, or -1
 * when two merges join the same pair (the later could never apply): their ranks go to *dup_first
 * and *dup_second and the caller words the error. */
int tok_index(Tokenizer *t, int *dup_first, int *dup_second) {
    int bits = 4;
    while (((size_t)1 << bits) < 2 * (size_t)t->n_merges) bits++;
    size_t size = (size_t)1 << bits, mask = size - 1;
    t->pair_shift = 64 - bits;
    t->pair_table = xmalloc(size * sizeof *t->pair_table);
    for (size_t i = 0; i < size; i++) t->pair_table[i].rank = UINT32_MAX;
    t->pairs_sorted = xmalloc((t->n_merges ? (size_t)t->n_merges : 1) * sizeof *t->pairs_sorted);
    for (int r = 0; r < t->n_merges; r++) {
        uint32_t left = t->merges[r][0], right = t->merges[r][1];
        size_t i = pair_index(t, left, right);
        while (t->pair_table[i].rank != UINT32_MAX) {
            if (t->pair_table[i].left == left && t->pair_table[i].right == right) {
                *dup_first = (int)t->pair_table[i].rank;
                *dup_second = r;
                return -1;
            }
            i = (i + 1) & mask;
        }
        PairSlot slot = {left, right, (uint32_t)r, t->merge_id[r]};
        t->pair_table[i] = slot;
        t->pairs_sorted[r] = slot;
    }
    qsort(t->pairs_sorted, (size_t)t->n_merges, sizeof *t->pairs_sorted, compare_pairs);
    t->generation = atomic_fetch_add(&next_generation, 1);
    t->hash = compute_hash(t);
    return 0;
}

/* Our layout: byte b = id b, merge r = id 256 + r, "<|endoftext|>" = 256 + n_merges. Merges must
 * already be checked to refer only to defined ids. */
Tokenizer *tok_build_our_layout(const uint32_t (*merges)[2], int n_merges, int *dup_first,
                                int *dup_second) {
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->n_merges = n_merges;
    t->vocab_size = 257 + n_merges;
    t->eot_id = 256 + n_merges;
    for (int b = 0; b < 256; b++) t->byte_id[b] = (uint32_t)b;
    t->merges = xmalloc((n_merges ? (size_t)n_merges : 1) * sizeof *t->merges);
    t->merge_id = xmalloc((n_merges ? (size_t)n_merges : 1) * sizeof *t->merge_id);
    t->token_start = xmalloc(((size_t)t->vocab_size + 1) * sizeof *t->token_start);
    ByteBuf data = {0};
    for (int b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        t->token_start[b] = data.len;
        buf_append(&data, &byte, 1);
    }
    for (int r = 0; r < n_merges; r++) {
        uint32_t left = merges[r][0], right = merges[r][1];
        t->merges[r][0] = left;
        t->merges[r][1] = right;
        t->merge_id[r] = 256 + (uint32_t)r;
        t->token_start[256 + r] = data.len;
        size_t left_start = t->token_start[left], left_len = t->token_start[left + 1] - left_start;
        size_t right_start = t->token_start[right], right_len = t->token_start[right + 1] - right_start;
        /* Reserve first: appending may move data.data, which the sources point into. */
        buf_reserve(&data, left_len + right_len);
        memcpy(data.data + data.len, data.data + left_start, left_len);
        memcpy(data.data + data.len + left_len, data.data + right_start, right_len);
        data.len += left_len + right_len;
    }
    t->token_start[t->eot_id] = data.len;
    buf_append(&data, TOK_EOT_STRING, strlen(TOK_EOT_STRING));
    t->token_start[t->vocab_size] = data.len;
    t->token_data = data.data;
    if (tok_index(t, dup_first, dup_second) != 0) {
        tok_free(t);
        return NULL;
    }
    return t;
}

Tokenizer *tok_from_merges(const uint32_t (*merges)[2], int n_merges) {
    if (n_merges < 0 || n_merges > INT32_MAX - 257) {
        tr_set_error("tok_from_merges: bad number of merges %d", n_merges);
        return NULL;
    }
    for (int r = 0; r < n_merges; r++) {
        for (int side = 0; side < 2; side++) {
            if (merges[r][side] >= 256 + (uint32_t)r) {
                tr_set_error("tok_from_merges: merge %d (new id %d) refers to id %u, which is not "
                             "defined yet", r, 256 + r, merges[r][side]);
                return NULL;
            }
        }
    }
    int dup_first, dup_second;
    Tokenizer *t = tok_build_our_layout(merges, n_merges, &dup_first, &dup_second);
    if (!t)
        tr_set_error("tok_from_merges: merge %d joins the same pair (%u, %u) as merge %d",
                     dup_second, merges[dup_second][0], merges[dup_second][1], dup_first);
    return t;
}

int tok_vocab_size(const Tokenizer *tok) { return tok->vocab_size; }
int tok_eot_id(const Tokenizer *tok) { return tok->eot_id; }
uint64_t tok_hash(const Tokenizer *tok) { return tok->hash; }
int tok_num_merges(const Tokenizer *tok) { return tok->n_merges; }

int tok_merge(const Tokenizer *tok, int r, uint32_t *left, uint32_t *right) {
    if (r < 0 || r >= tok->n_merges) return -1;
    *left = tok->merges[r][0];
    *right = tok->merges[r][1];
    return (int)tok->merge_id[r];
}

const uint8_t *tok_token_bytes(const Tokenizer *tok, int id, int *len) {
    if (id < 0 || id >= tok->vocab_size) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = (int)(tok->token_start[id + 1] - tok->token_start[id]);
    return tok->token_data + tok->token_start[id];
}

/* ---------------------------------------------------------------------------------------------
 * Reference encoder */

static uint32_t reference_rank(const Tokenizer *t, uint32_t left, uint32_t right) {
    PairSlot key = {left, right, 0, 0};
    const PairSlot *s = bsearch(&key, t->pairs_sorted, (size_t)t->n_merges, sizeof key, compare_pairs);
    return s ? s->rank : UINT32_MAX;
}

/* Writes id at out[count] when it fits; returns the new count. Past out_cap ids are only counted. */
static inline size_t emit(uint32_t *out, size_t out_cap, size_t count, uint32_t id) {
    if (count < out_cap) out[count] = id;
    return count + 1;
}

size_t tok_encode_reference(const Tokenizer *tok, const uint8_t *text, size_t n, uint32_t *out,
                            size_t out_cap) {
    size_t count = 0;
    uint32_t *ids = NULL;
    size_t ids_cap = 0;
    for (size_t pos = 0; pos < n;) {
        size_t len = pretok_next(text, n, pos);
        if (len > ids_cap) {
            ids_cap = len;
            ids = xrealloc(ids, ids_cap * sizeof *ids);
        }
        size_t k = len;
        for (size_t i = 0; i < len; i++) ids[i] = tok->byte_id[text[pos + i]];
        while (k >= 2) {
            uint32_t best_rank = UINT32_MAX;
            size_t best = 0;
            for (size_t i = 0; i + 1 < k; i++) {
                uint32_t rank = reference_rank(tok, ids[i], ids[i + 1]);
                if (rank < best_rank) {   /* strict: the leftmost wins among equal ranks */
                    best_rank = rank;
                    best = i;
                }
            }
            if (best_rank == UINT32_MAX) break;
            ids[best] = tok->merge_id[best_rank];
            memmove(ids + best + 1, ids + best + 2, (k - best - 2) * sizeof *ids);
            k--;
        }
        for (size_t i = 0; i < k; i++) count = emit(out, out_cap, count, ids[i]);
        pos += len;
    }
    free(ids);
    return count;
}

/* ---------------------------------------------------------------------------------------------
 * Fast encoder */

/* Scratch arrays for merging one chunk, grown on demand and freed at the end of the call. */
typedef struct {
    uint32_t *id;
    uint32_t *prev, *next;   /* linked list over live symbols; NO_ID ends it */
    uint64_t *heap;          /* (rank << 32 | position of the pair's left symbol), min-heap */
    size_t cap;
} Scratch;

static void scratch_reserve(Scratch *s, size_t len) {
    if (len <= s->cap) return;
    size_t cap = len < 256 ? 256 : len;
    s->id = xrealloc(s->id, cap * sizeof *s->id);
    s->prev = xrealloc(s->prev, cap * sizeof *s->prev);
    s->next = xrealloc(s->next, cap * sizeof *s->next);
    /* Each merge pushes at most two new pairs onto the len-1 initial ones. */
    s->heap = xrealloc(s->heap, 3 * cap * sizeof *s->heap);
    s->cap = cap;
}

static void scratch_free(Scratch *s) {
    free(s->id);
    free(s->prev);
    free(s->next);
    free(s->heap);
}

static inline void heap_push(uint64_t *heap, size_t *n, uint64_t item) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent] <= item) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = item;
}

static inline uint64_t heap_pop(uint64_t *heap, size_t *n) {
    uint64_t top = heap[0], last = heap[--(*n)];
    size_t i = 0, size = *n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && heap[child + 1] < heap[child]) child++;
        if (last <= heap[child]) break;
        heap[i] = heap[child];
        i = child;
    }
    if (size) heap[i] = last;
    return top;
}

static inline void push_pair(const Tokenizer *t, Scratch *s, size_t *heap_n, uint32_t pos) {
    uint32_t next = s->next[pos];
    if (next == NO_ID) return;
    const PairSlot *slot = pair_find(t, s->id[pos], s->id[next]);
    if (slot) heap_push(s->heap, heap_n, ((uint64_t)slot->rank << 32) | pos);
}

/* BPE on one chunk (len < 2^32 - 1); leaves the resulting ids in s->id[0..return value). */
static size_t bpe_chunk(const Tokenizer *t, const uint8_t *bytes, size_t len, Scratch *s) {
    scratch_reserve(s, len);
    for (size_t i = 0; i < len; i++) {
        s->id[i] = t->byte_id[bytes[i]];
        s->prev[i] = i == 0 ? NO_ID : (uint32_t)(i - 1);
        s->next[i] = i + 1 == len ? NO_ID : (uint32_t)(i + 1);
    }
    size_t heap_n = 0;
    for (size_t i = 0; i + 1 < len; i++) push_pair(t, s, &heap_n, (uint32_t)i);
    while (heap_n > 0) {
        uint64_t top = heap_pop(s->heap, &heap_n);
        uint32_t rank = (uint32_t)(top >> 32), pos = (uint32_t)top;
        /* Lazy deletion: the entry is stale unless the pair at pos is still exactly merge rank's
         * pair (each rank has one pair, so this is the whole check). Merged-away symbols have
         * id NO_ID and never match. */
        uint32_t right = s->next[pos];
        if (s->id[pos] != t->merges[rank][0] || right == NO_ID || s->id[right] != t->merges[rank][1])
            continue;
        s->id[pos] = t->merge_id[rank];
        s->id[right] = NO_ID;
        s->next[pos] = s->next[right];
        if (s->next[right] != NO_ID) s->prev[s->next[right]] = pos;
        if (s->prev[pos] != NO_ID) push_pair(t, s, &heap_n, s->prev[pos]);
        push_pair(t, s, &heap_n, pos);
    }
    size_t k = 0;
    for (uint32_t i = 0; i != NO_ID; i = s->next[i]) s->id[k++] = s->id[i];
    return k;
}

/* The per-thread cache: direct-mapped, chunk bytes -> ids. A slot belongs to the tokenizer whose
 * generation it carries, so several tokenizers can share a thread without clearing anything. */
#define CACHE_SLOTS 4096          /* power of two */
#define CACHE_MAX_BYTES 24        /* longer chunks are rare and not cached */
typedef struct {
    uint64_t generation;
    uint8_t len, n_ids;
    uint8_t bytes[CACHE_MAX_BYTES];
    uint32_t ids[CACHE_MAX_BYTES];
} CacheSlot;
static _Thread_local CacheSlot encode_cache[CACHE_SLOTS];

static inline uint32_t chunk_hash(const uint8_t *p, size_t len) {
    uint32_t h = 2166136261u ^ (uint32_t)len;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 16777619u;
    return (h * 2654435761u) >> (32 - 12);
}
_Static_assert(CACHE_SLOTS == 1 << 12, "chunk_hash returns 12 bits");

size_t tok_encode(const Tokenizer *tok, const uint8_t *text, size_t n, uint32_t *out, size_t out_cap) {
    size_t count = 0;
    Scratch scratch = {0};
    for (size_t pos = 0; pos < n;) {
        size_t len = pretok_next(text, n, pos);
        const uint8_t *chunk = text + pos;
        pos += len;
        if (len == 1) {
            count = emit(out, out_cap, count, tok->byte_id[chunk[0]]);
            continue;
        }
        if (len <= CACHE_MAX_BYTES) {
            CacheSlot *slot = &encode_cache[chunk_hash(chunk, len)];
            if (slot->generation != tok->generation || slot->len != len ||
                memcmp(slot->bytes, chunk, len) != 0) {
                size_t k = bpe_chunk(tok, chunk, len, &scratch);
                slot->generation = tok->generation;
                slot->len = (uint8_t)len;
                slot->n_ids = (uint8_t)k;
                memcpy(slot->bytes, chunk, len);
                memcpy(slot->ids, scratch.id, k * sizeof *scratch.id);
            }
            size_t room = count < out_cap ? out_cap - count : 0;
            if (room) memcpy(out + count, slot->ids, (slot->n_ids < room ? slot->n_ids : room) * sizeof *out);
            count += slot->n_ids;
            continue;
        }
        if (len >= NO_ID) {   /* a 4 GiB word: beyond the list's 32-bit indices, take the slow road */
            size_t rest = out_cap > count ? out_cap - count : 0;
            count += tok_encode_reference(tok, chunk, len, out + (rest ? count : 0), rest);
            continue;
        }
        size_t k = bpe_chunk(tok, chunk, len, &scratch);
        for (size_t i = 0; i < k; i++) count = emit(out, out_cap, count, scratch.id[i]);
    }
    scratch_free(&scratch);
    return count;
}

/* Position of the first "<|endoftext|>" in text[from..n), or n. */
static size_t find_eot(const uint8_t *text, size_t n, size_t from) {
    const size_t m = sizeof TOK_EOT_STRING - 1;
    for (size_t i = from; i + m <= n;) {
        const uint8_t *p = memchr(text + i, '<', n - m + 1 - i);
        if (!p) break;
        i = (size_t)(p - text);
        if (memcmp(p, TOK_EOT_STRING, m) == 0) return i;
        i++;
    }
    return n;
}

size_t tok_encode_with_special(const Tokenizer *tok, const uint8_t *text, size_t n, uint32_t *out,
                               size_t out_cap) {
    size_t count = 0;
    if (n == 0) return 0;
    for (size_t pos = 0; pos <= n;) {
        size_t eot = find_eot(text, n, pos);
        size_t room = count < out_cap ? out_cap - count : 0;
        count += tok_encode(tok, text + pos, eot - pos, room ? out + count : out, room);
        if (eot == n) break;
        count = emit(out, out_cap, count, (uint32_t)tok->eot_id);
        pos = eot + sizeof TOK_EOT_STRING - 1;
    }
    return count;
}

size_t tok_decode(const Tokenizer *tok, const uint32_t *ids, size_t n_ids, uint8_t *out, size_t out_cap) {
    size_t count = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] >= (uint32_t)tok->vocab_size) {
            tr_set_error("token id %u at position %zu is out of range (vocabulary size %d)", ids[i], i,
                         tok->vocab_size);
            return (size_t)-1;
        }
        size_t start = tok->token_start[ids[i]], len = tok->token_start[ids[i] + 1] - start;
        if (count < out_cap)
            memcpy(out + count, tok->token_data + start, len < out_cap - count ? len : out_cap - count);
        count += len;
    }
    return count;
}
