/* tokenizer.c: byte-level BPE: building, encoding (fast and reference), decoding, our text file
 * format, the vocabulary fingerprint, and OpenAI's GPT-2 encoder.json + vocab.bpe.
 *
 * Layout in memory: every token id has its bytes (token_start/token_data); byte_id maps a byte to
 * its token; merge r joins merges[r] = (left, right) into merge_id[r]. Lower rank = merged first.
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
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer/pretok.h"

#define NO_ID UINT32_MAX

typedef struct {
    uint32_t left, right;
    uint32_t rank;   /* UINT32_MAX marks an empty slot */
    uint32_t id;     /* the merged token */
} PairSlot;

struct Tokenizer {
    int vocab_size;
    int n_merges;
    int eot_id;
    uint32_t byte_id[256];
    uint32_t (*merges)[2];   /* [n_merges] (left, right), rank order */
    uint32_t *merge_id;      /* [n_merges] the token merge r creates */
    size_t *token_start;     /* [vocab_size + 1] offsets into token_data */
    uint8_t *token_data;
    PairSlot *pair_table;    /* (left, right) -> rank, open addressing, load <= 1/2 */
    int pair_shift;          /* 64 - log2(table size) */
    PairSlot *pairs_sorted;  /* [n_merges] sorted by (left, right): the reference encoder's lookup */
    uint64_t generation;     /* unique per tokenizer ever built: keys the per-thread caches */
    uint64_t hash;
};

/* ---------------------------------------------------------------------------------------------
 * Building */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} ByteBuf;

static void buf_reserve(ByteBuf *b, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
}

static void buf_append(ByteBuf *b, const void *p, size_t n) {
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

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
static int tok_index(Tokenizer *t, int *dup_first, int *dup_second) {
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
 * already be checked to refer only to defined ids. who names the source for errors. */
static Tokenizer *build_our_layout(const uint32_t (*merges)[2], int n_merges, int *dup_first,
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
    Tokenizer *t = build_our_layout(merges, n_merges, &dup_first, &dup_second);
    if (!t)
        tr_set_error("tok_from_merges: merge %d joins the same pair (%u, %u) as merge %d",
                     dup_second, merges[dup_second][0], merges[dup_second][1], dup_first);
    return t;
}

int tok_vocab_size(const Tokenizer *tok) { return tok->vocab_size; }
int tok_eot_id(const Tokenizer *tok) { return tok->eot_id; }
uint64_t tok_hash(const Tokenizer *tok) { return tok->hash; }

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

/* ---------------------------------------------------------------------------------------------
 * Our file format (see tokenizer.h) */

/* The token's bytes between double quotes, C-style: \" \\ \n \r \t, other bytes outside printable
 * ASCII as \xHH (always two hex digits). Only for people reading the file; the loader skips it. */
static void write_escaped(FILE *f, const uint8_t *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c >= 0x20 && c < 0x7f) fputc(c, f);
        else fprintf(f, "\\x%02x", c);
    }
    fputc('"', f);
}

int tok_save(const Tokenizer *tok, const char *path) {
    /* Byte and merge ids are implicit in the format, so only our layout can be written. */
    int ours = tok->eot_id == 256 + tok->n_merges && tok->vocab_size == 257 + tok->n_merges;
    for (int b = 0; b < 256; b++) ours = ours && tok->byte_id[b] == (uint32_t)b;
    for (int r = 0; r < tok->n_merges; r++) ours = ours && tok->merge_id[r] == 256 + (uint32_t)r;
    if (!ours) {
        tr_set_error("%s: cannot save this tokenizer: its ids are not in tinyrope's layout (byte b = "
                     "id b, merge r = id 256 + r), e.g. one loaded from GPT-2's files", path);
        return -1;
    }
    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) return -1;
    FILE *f = af.f;
    fprintf(f, "tinyrope-bpe 1\npattern gpt2\nvocab_size %d\nmerges %d\nspecial %d %s\n",
            tok->vocab_size, tok->n_merges, tok->eot_id, TOK_EOT_STRING);
    for (int r = 0; r < tok->n_merges; r++) {
        int len;
        const uint8_t *bytes = tok_token_bytes(tok, 256 + r, &len);
        fprintf(f, "merge %d %u %u # ", 256 + r, tok->merges[r][0], tok->merges[r][1]);
        write_escaped(f, bytes, (size_t)len);
        fputc('\n', f);
    }
    fputs("end\n", f);
    return tr_atomic_commit(&af);
}

/* Splits line[0..len) (comment and '\r' already cut off) into at most max_fields
 * whitespace-separated fields, NUL-terminating each in place. Returns the field count, or
 * max_fields + 1 when there are more. */
static int split_fields(char *line, size_t len, char **fields, int max_fields) {
    int n = 0;
    size_t i = 0;
    for (;;) {
        while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
        if (i >= len) return n;
        if (n == max_fields) return n + 1;
        fields[n++] = line + i;
        while (i < len && line[i] != ' ' && line[i] != '\t') i++;
        if (i < len) line[i++] = '\0';
        else line[len] = '\0';   /* the caller's buffer has room: it held the '\n' or the final NUL */
    }
}

/* Strict decimal: digits only, at most INT32_MAX. */
static int parse_count(const char *s, uint32_t *value) {
    if (!*s) return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > INT32_MAX) return -1;
    }
    *value = (uint32_t)v;
    return 0;
}

Tokenizer *tok_load(const char *path) {
    size_t size;
    char *text = tr_read_file(path, &size);
    if (!text) return NULL;
    Tokenizer *t = NULL;
    uint32_t (*merges)[2] = NULL;
    int *merge_line = NULL;
    size_t merges_cap = 0;
    uint32_t n_merges = 0, declared_vocab = 0, declared_merges = 0;
    int vocab_line = 0, n_special = 0, seen_end = 0;
    /* The header lines, in order; then special / merge lines; then "end". */
    enum { WANT_MAGIC, WANT_PATTERN, WANT_VOCAB, WANT_MERGES, BODY, AFTER_END } stage = WANT_MAGIC;
    int line_no = 0;
    for (size_t at = 0; at < size;) {
        char *line = text + at;
        char *newline = memchr(line, '\n', size - at);
        size_t len = newline ? (size_t)(newline - line) : size - at;
        at += len + 1;
        line_no++;
        if (memchr(line, '\0', len)) {
            tr_set_error("%s:%d: NUL byte in a text file", path, line_no);
            goto fail;
        }
        char *hash = memchr(line, '#', len);
        if (hash) len = (size_t)(hash - line);
        if (len > 0 && line[len - 1] == '\r') len--;
        char *f[6];
        int nf = split_fields(line, len, f, 5);
        /* Every line we write ends with a newline; one without is a file cut off mid-line, whose
         * last number may look valid but be short ("merge 300 12 4" of "... 45"). */
        if (!newline && nf > 0 && stage != WANT_MAGIC) {
            tr_set_error("%s:%d: truncated: the last line has no newline (file cut off?)", path, line_no);
            goto fail;
        }
        if (stage == WANT_MAGIC) {
            if (nf < 1 || strcmp(f[0], "tinyrope-bpe") != 0) {
                tr_set_error("%s:%d: not a tinyrope tokenizer file (wrong magic: the first line should "
                             "be \"tinyrope-bpe 1\")", path, line_no);
                goto fail;
            }
            uint32_t version;
            if (nf != 2 || parse_count(f[1], &version) != 0) {
                tr_set_error("%s:%d: bad magic line: expected \"tinyrope-bpe <version>\"", path, line_no);
                goto fail;
            }
            if (version != 1) {
                tr_set_error("%s:%d: unsupported tokenizer file version %u (this build reads version 1)",
                             path, line_no, version);
                goto fail;
            }
            stage = WANT_PATTERN;
            continue;
        }
        if (nf == 0) continue;   /* blank or comment-only line */
        if (stage == AFTER_END) {
            tr_set_error("%s:%d: unexpected text after \"end\"", path, line_no);
            goto fail;
        }
        if (stage == WANT_PATTERN) {
            if (strcmp(f[0], "pattern") != 0 || nf != 2) {
                tr_set_error("%s:%d: expected \"pattern gpt2\"", path, line_no);
                goto fail;
            }
            if (strcmp(f[1], "gpt2") != 0) {
                tr_set_error("%s:%d: unsupported pre-tokenization pattern \"%s\" (only gpt2)", path,
                             line_no, f[1]);
                goto fail;
            }
            stage = WANT_VOCAB;
            continue;
        }
        if (stage == WANT_VOCAB || stage == WANT_MERGES) {
            const char *key = stage == WANT_VOCAB ? "vocab_size" : "merges";
            uint32_t value;
            if (strcmp(f[0], key) != 0 || nf != 2) {
                tr_set_error("%s:%d: expected \"%s <count>\"", path, line_no, key);
                goto fail;
            }
            if (parse_count(f[1], &value) != 0) {
                tr_set_error("%s:%d: bad number \"%s\" for %s", path, line_no, f[1], key);
                goto fail;
            }
            if (stage == WANT_VOCAB) {
                declared_vocab = value;
                vocab_line = line_no;
                stage = WANT_MERGES;
            } else {
                if (value > INT32_MAX - 257) {
                    tr_set_error("%s:%d: too many merges (%u)", path, line_no, value);
                    goto fail;
                }
                declared_merges = value;
                stage = BODY;
            }
            continue;
        }
        /* BODY */
        if (strcmp(f[0], "end") == 0 && nf == 1) {
            if (n_merges != declared_merges) {
                tr_set_error("%s:%d: truncated: %u merges declared but only %u found", path, line_no,
                             declared_merges, n_merges);
                goto fail;
            }
            seen_end = 1;
            stage = AFTER_END;
            continue;
        }
        if (strcmp(f[0], "special") == 0) {
            uint32_t id;
            if (nf != 3) {
                tr_set_error("%s:%d: expected \"special <id> <name>\"", path, line_no);
                goto fail;
            }
            if (parse_count(f[1], &id) != 0) {
                tr_set_error("%s:%d: bad number \"%s\" for a special token id", path, line_no, f[1]);
                goto fail;
            }
            if (strcmp(f[2], TOK_EOT_STRING) != 0 || n_special > 0) {
                tr_set_error("%s:%d: unsupported special token \"%s\" (version 1 has exactly one: %s)",
                             path, line_no, f[2], TOK_EOT_STRING);
                goto fail;
            }
            if (id != 256 + declared_merges) {
                tr_set_error("%s:%d: non-consecutive id: special token id %u should be %u (after the %u "
                             "merges)", path, line_no, id, 256 + declared_merges, declared_merges);
                goto fail;
            }
            n_special++;
            continue;
        }
        if (strcmp(f[0], "merge") == 0) {
            uint32_t v[3];
            if (nf != 4) {
                tr_set_error("%s:%d: expected \"merge <id> <left> <right>\"", path, line_no);
                goto fail;
            }
            for (int k = 0; k < 3; k++) {
                if (parse_count(f[1 + k], &v[k]) != 0) {
                    tr_set_error("%s:%d: bad number \"%s\" in merge", path, line_no, f[1 + k]);
                    goto fail;
                }
            }
            if (n_merges == declared_merges) {
                tr_set_error("%s:%d: more merges than the %u declared", path, line_no, declared_merges);
                goto fail;
            }
            if (v[0] != 256 + n_merges) {
                tr_set_error("%s:%d: non-consecutive id: merge id %u should be %u", path, line_no, v[0],
                             256 + n_merges);
                goto fail;
            }
            for (int k = 1; k <= 2; k++) {
                if (v[k] >= v[0]) {
                    tr_set_error("%s:%d: merge %u refers to id %u, which is unknown or not defined yet "
                                 "(a merge may only use bytes and earlier merges)", path, line_no, v[0], v[k]);
                    goto fail;
                }
            }
            if (n_merges == merges_cap) {
                merges_cap = merges_cap ? 2 * merges_cap : 1024;
                merges = xrealloc(merges, merges_cap * sizeof *merges);
                merge_line = xrealloc(merge_line, merges_cap * sizeof *merge_line);
            }
            merges[n_merges][0] = v[1];
            merges[n_merges][1] = v[2];
            merge_line[n_merges] = line_no;
            n_merges++;
            continue;
        }
        tr_set_error("%s:%d: unknown line \"%s\" (expected special, merge or end)", path, line_no, f[0]);
        goto fail;
    }
    if (stage == WANT_MAGIC) {
        tr_set_error("%s:1: not a tinyrope tokenizer file (empty; wrong magic)", path);
        goto fail;
    }
    if (!seen_end) {
        tr_set_error("%s:%d: truncated: the file ends without its \"end\" line (%u of %u merges read)",
                     path, line_no, n_merges, declared_merges);
        goto fail;
    }
    if (n_special != 1) {
        tr_set_error("%s: no \"special <id> %s\" line", path, TOK_EOT_STRING);
        goto fail;
    }
    if (declared_vocab != 256 + n_merges + 1) {
        tr_set_error("%s:%d: vocab_size %u is inconsistent: 256 bytes + %u merges + 1 special token = %u",
                     path, vocab_line, declared_vocab, n_merges, 256 + n_merges + 1);
        goto fail;
    }
    int dup_first, dup_second;
    t = build_our_layout((const uint32_t (*)[2])merges, (int)n_merges, &dup_first, &dup_second);
    if (!t)
        tr_set_error("%s:%d: merge %d joins the same pair (%u, %u) as the merge on line %d", path,
                     merge_line[dup_second], 256 + dup_second, merges[dup_second][0],
                     merges[dup_second][1], merge_line[dup_first]);
fail:
    free(text);
    free(merges);
    free(merge_line);
    return t;
}

/* ---------------------------------------------------------------------------------------------
 * GPT-2's files.
 *
 * encoder.json maps token strings to ids; vocab.bpe lists merges "A B" in rank order after a
 * "#version" line. Token strings are not bytes: GPT-2 writes each byte as one visible character
 * (bytes_to_unicode): the printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for
 * themselves, and the other 68 bytes, in increasing order, become U+0100, U+0101, ... So a space
 * is 'Ġ' (U+0120) and a newline 'Ċ' (U+010A). */

static int gpt2_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* char_to_byte[cp] for cp < 256 + 68, -1 for characters outside GPT-2's byte alphabet. */
static void gpt2_char_to_byte(int char_to_byte[256 + 68]) {
    for (int cp = 0; cp < 256 + 68; cp++) char_to_byte[cp] = -1;
    int next = 0;
    for (int b = 0; b < 256; b++) {
        if (gpt2_is_printable(b)) char_to_byte[b] = b;
        else char_to_byte[256 + next++] = b;
    }
}

/* Decodes a GPT-2 token string into buf; returns 0, or -1 if a character is not one of the 256. */
static int gpt2_name_to_bytes(const char *name, const int char_to_byte[256 + 68], ByteBuf *buf) {
    const uint8_t *s = (const uint8_t *)name;
    size_t n = strlen(name);
    buf->len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)pretok_decode(s + i, n - i, &cp);
        if (cp >= 256 + 68 || char_to_byte[cp] < 0) return -1;
        uint8_t byte = (uint8_t)char_to_byte[cp];
        buf_append(buf, &byte, 1);
    }
    return 0;
}

/* Token string -> id, open addressing over the encoder's own strings. */
typedef struct {
    int *slots;   /* ids, -1 empty */
    size_t mask;
    const char **names;   /* by id */
} NameTable;

static size_t name_hash(const char *s, size_t len) {
    return (size_t)tr_fnv1a64(s, len, TR_FNV_OFFSET);
}

static void names_insert(NameTable *nt, int id) {
    const char *name = nt->names[id];
    size_t i = name_hash(name, strlen(name)) & nt->mask;
    while (nt->slots[i] >= 0) i = (i + 1) & nt->mask;
    nt->slots[i] = id;
}

/* Looks up s[0..len) (need not be NUL-terminated); -1 if absent. */
static int names_find(const NameTable *nt, const char *s, size_t len) {
    for (size_t i = name_hash(s, len) & nt->mask;; i = (i + 1) & nt->mask) {
        int id = nt->slots[i];
        if (id < 0) return -1;
        const char *name = nt->names[id];
        if (strncmp(name, s, len) == 0 && name[len] == '\0') return id;
    }
}

/* Line number (1-based) of text[offset]. */
static int line_of(const char *text, size_t offset) {
    int line = 1;
    for (size_t i = 0; i < offset; i++) line += text[i] == '\n';
    return line;
}

Tokenizer *tok_load_gpt2(const char *encoder_json_path, const char *vocab_bpe_path) {
    const char *enc_path = encoder_json_path, *bpe_path = vocab_bpe_path;
    size_t enc_size, bpe_size;
    char *enc_text = tr_read_file(enc_path, &enc_size);
    if (!enc_text) return NULL;
    char *bpe_text = tr_read_file(bpe_path, &bpe_size);
    if (!bpe_text) {
        free(enc_text);
        return NULL;
    }
    Tokenizer *t = NULL, *result = NULL;
    const char **names = NULL;
    NameTable nt = {0};
    ByteBuf bytes = {0}, data = {0}, joined = {0};
    uint32_t (*merges)[2] = NULL;
    uint32_t *merge_ids = NULL;
    int *merge_line = NULL;
    size_t merges_cap = 0;
    int n_merges = 0;
    int char_to_byte[256 + 68];
    gpt2_char_to_byte(char_to_byte);

    /* parse_end, not cJSON_GetErrorPtr: that one is shared by all threads. The length includes
     * tr_read_file's final NUL so that cJSON can insist nothing follows the object. */
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(enc_text, enc_size + 1, &parse_end, 1);
    if (!root) {
        size_t offset = parse_end ? (size_t)(parse_end - enc_text) : 0;
        tr_set_error("%s:%d: bad JSON (parse error near byte %zu)", enc_path, line_of(enc_text, offset),
                     offset);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        tr_set_error("%s: bad encoder: expected a JSON object mapping token strings to ids", enc_path);
        goto done;
    }
    int count = cJSON_GetArraySize(root);
    if (count < 257) {
        tr_set_error("%s: bad encoder: only %d tokens (needs 256 bytes and %s)", enc_path, count,
                     TOK_EOT_STRING);
        goto done;
    }
    names = xcalloc((size_t)count, sizeof *names);
    t = xcalloc(1, sizeof *t);
    t->vocab_size = count;
    t->eot_id = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = NO_ID;
    for (const cJSON *item = root->child; item; item = item->next) {
        double v = item->valuedouble;
        if (!cJSON_IsNumber(item) || !(v >= 0 && v < count) || v != (double)(int)v) {
            if (cJSON_IsNumber(item))
                tr_set_error("%s: bad encoder: token \"%s\" has id %g; ids must be the integers 0..%d",
                             enc_path, item->string, v, count - 1);
            else
                tr_set_error("%s: bad encoder: the id of token \"%s\" is not a number", enc_path,
                             item->string);
            goto done;
        }
        int id = (int)v;
        if (names[id]) {
            tr_set_error("%s: bad encoder: id %d is used twice (\"%s\" and \"%s\")", enc_path, id,
                         names[id], item->string);
            goto done;
        }
        names[id] = item->string;
    }
    /* count distinct ids in 0..count-1, one per entry: every id has a name. */
    size_t table_size = 16;
    while (table_size < 2 * (size_t)count) table_size *= 2;
    nt.slots = xmalloc(table_size * sizeof *nt.slots);
    for (size_t i = 0; i < table_size; i++) nt.slots[i] = -1;
    nt.mask = table_size - 1;
    nt.names = names;
    t->token_start = xmalloc(((size_t)count + 1) * sizeof *t->token_start);
    for (int id = 0; id < count; id++) {
        if (gpt2_name_to_bytes(names[id], char_to_byte, &bytes) != 0 || bytes.len == 0) {
            tr_set_error("%s: bad encoder: token \"%s\" (id %d) is %s", enc_path, names[id], id,
                         bytes.len == 0 && names[id][0] == '\0'
                             ? "empty"
                             : "not written in GPT-2's byte alphabet (bytes_to_unicode)");
            goto done;
        }
        if (bytes.len == 1) {
            uint8_t b = bytes.data[0];
            if (t->byte_id[b] != NO_ID) {
                tr_set_error("%s: bad encoder: duplicate byte token: byte 0x%02x is both id %u and id %d",
                             enc_path, b, t->byte_id[b], id);
                goto done;
            }
            t->byte_id[b] = (uint32_t)id;
        }
        if (names_find(&nt, names[id], strlen(names[id])) >= 0) {
            tr_set_error("%s: bad encoder: token \"%s\" appears twice", enc_path, names[id]);
            goto done;
        }
        names_insert(&nt, id);
        if (strcmp(names[id], TOK_EOT_STRING) == 0) t->eot_id = id;
        t->token_start[id] = data.len;
        buf_append(&data, bytes.data, bytes.len);
    }
    t->token_start[count] = data.len;
    t->token_data = data.data;
    data.data = NULL;
    for (int b = 0; b < 256; b++) {
        if (t->byte_id[b] == NO_ID) {
            tr_set_error("%s: bad encoder: missing byte token for byte 0x%02x", enc_path, b);
            goto done;
        }
    }
    if (t->eot_id < 0) {
        tr_set_error("%s: bad encoder: no %s token", enc_path, TOK_EOT_STRING);
        goto done;
    }

    int line_no = 0;
    for (size_t at = 0; at < bpe_size;) {
        char *line = bpe_text + at;
        char *newline = memchr(line, '\n', bpe_size - at);
        size_t len = newline ? (size_t)(newline - line) : bpe_size - at;
        at += len + 1;
        line_no++;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (line_no == 1 && len >= 8 && memcmp(line, "#version", 8) == 0) continue;
        if (len == 0) continue;
        char *space = memchr(line, ' ', len);
        size_t left_len = space ? (size_t)(space - line) : 0;
        size_t right_len = space ? len - left_len - 1 : 0;
        if (!space || left_len == 0 || right_len == 0 || memchr(space + 1, ' ', right_len) ||
            memchr(line, '\0', len)) {
            tr_set_error("%s:%d: bad merge line: expected two token names separated by one space",
                         bpe_path, line_no);
            goto done;
        }
        const char *right_name = space + 1;
        int left = names_find(&nt, line, left_len), right = names_find(&nt, right_name, right_len);
        joined.len = 0;
        buf_append(&joined, line, left_len);
        buf_append(&joined, right_name, right_len);
        int merged = names_find(&nt, (const char *)joined.data, joined.len);
        if (left < 0 || right < 0) {
            tr_set_error("%s:%d: merge names token \"%.*s\", which is not in %s", bpe_path, line_no,
                         (int)(left < 0 ? left_len : right_len), left < 0 ? line : right_name, enc_path);
            goto done;
        }
        if (merged < 0) {
            tr_set_error("%s:%d: merge makes token \"%.*s\", which is not in %s", bpe_path, line_no,
                         (int)joined.len, (const char *)joined.data, enc_path);
            goto done;
        }
        if (merged == t->eot_id) {
            tr_set_error("%s:%d: merge produces the special token %s", bpe_path, line_no, TOK_EOT_STRING);
            goto done;
        }
        if ((size_t)n_merges == merges_cap) {
            merges_cap = merges_cap ? 2 * merges_cap : 1024;
            merges = xrealloc(merges, merges_cap * sizeof *merges);
            merge_ids = xrealloc(merge_ids, merges_cap * sizeof *merge_ids);
            merge_line = xrealloc(merge_line, merges_cap * sizeof *merge_line);
        }
        merges[n_merges][0] = (uint32_t)left;
        merges[n_merges][1] = (uint32_t)right;
        merge_ids[n_merges] = (uint32_t)merged;
        merge_line[n_merges] = line_no;
        n_merges++;
    }
    t->n_merges = n_merges;
    t->merges = merges;
    t->merge_id = merge_ids;
    merges = NULL;
    merge_ids = NULL;
    if (!t->merges) {   /* no merges at all: keep the arrays non-NULL for uniformity */
        t->merges = xmalloc(sizeof *t->merges);
        t->merge_id = xmalloc(sizeof *t->merge_id);
    }
    int dup_first, dup_second;
    if (tok_index(t, &dup_first, &dup_second) != 0) {
        tr_set_error("%s:%d: duplicate merge: the same pair as line %d", bpe_path,
                     merge_line[dup_second], merge_line[dup_first]);
        goto done;
    }
    result = t;
    t = NULL;
done:
    tok_free(t);
    cJSON_Delete(root);
    free(enc_text);
    free(bpe_text);
    free(names);
    free(nt.slots);
    free(bytes.data);
    free(data.data);
    free(joined.data);
    free(merges);
    free(merge_ids);
    free(merge_line);
    return result;
}
