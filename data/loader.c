/* loader.c: serves training and validation windows (TokenLoader, rules in loader.h) from the
 * shards that shard_writer.c writes (format in shard_format.h). The loader keeps every shard open
 * and reads one window at a time with fseeko + fread, so a dataset of any size costs only the
 * window table (8 bytes per training window).
 */
#define _POSIX_C_SOURCE 200809L
#include "data/loader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "data/shard_format.h"
#include "base/util.h"

/* ---------------------------------------------------------------------------------------------- */
/* the loader */

struct TokenLoader {
    int B, T, shuffle;
    uint64_t seed;
    int n_shards;
    char **paths;
    FILE **files;
    uint64_t *shard_tokens;
    uint64_t *window_start;    /* n_shards + 1 prefix sums: windows of shards before s */
    uint64_t n_windows, n_tokens, text_bytes;
    uint32_t token_bytes, vocab_size;
    int32_t eot_id;
    uint64_t *order;           /* training: this epoch's permutation of window indices */
    uint64_t order_epoch;
    int order_valid;
    LoaderState state;
    uint8_t *read_buf;         /* one window of raw little-endian tokens */
    int32_t *windows;          /* (B, T+1): loader_next_batch's windows before the shift */
    int *n_targets;            /* (B) */
};

/* Windows of a shard of n tokens. Window k = tokens [kT, kT+T], so it has min(T, n-1-kT) targets:
 * training keeps those with T targets, validation every one with at least one. */
static uint64_t shard_windows(uint64_t n, uint64_t T, int full_only) {
    if (n < 2) return 0;
    return full_only ? (n - 1) / T : (n - 1 + T - 1) / T;
}

/* Uniform in [0, n): draws above the largest multiple of n are rejected, so no value is favoured. */
static uint64_t uniform_below(uint64_t *state, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t r = tr_rng_u64(state);
        if (r < limit) return r % n;
    }
}

/* The window order of an epoch depends on (seed, epoch) only, so a saved (epoch, cursor) resumes
 * the exact same sequence. */
static void build_order(TokenLoader *L, uint64_t epoch) {
    uint64_t st = L->seed;
    st = tr_rng_u64(&st) ^ (epoch * 0xd1b54a32d192ed03ULL);
    st = tr_rng_u64(&st);
    uint64_t W = L->n_windows;
    for (uint64_t i = 0; i < W; i++) L->order[i] = i;
    for (uint64_t i = W - 1; i > 0; i--) {  /* Fisher-Yates */
        uint64_t j = uniform_below(&st, i + 1);
        uint64_t t = L->order[i];
        L->order[i] = L->order[j];
        L->order[j] = t;
    }
    L->order_epoch = epoch;
    L->order_valid = 1;
}

/* Checks one shard's header and size against meta.json and the expected tokenizer. */
static int check_shard(const Meta *m, const char *path, FILE *f, uint64_t meta_tokens,
                       uint64_t expected_tok_hash) {
    uint8_t b[SHARD_HEADER_BYTES];
    if (fread(b, 1, sizeof b, f) != sizeof b) {
        tr_set_error("%s: truncated: shorter than the %d-byte header", path, SHARD_HEADER_BYTES);
        return -1;
    }
    if (memcmp(b, SHARD_MAGIC, 8) != 0) {
        tr_set_error("%s: magic: not a tinyrope shard (bad magic)", path);
        return -1;
    }
    uint32_t version = tr_get_le32(b + 8), bpt = tr_get_le32(b + 12), vocab = tr_get_le32(b + 24),
             eot = tr_get_le32(b + 28);
    uint64_t n = tr_get_le64(b + 16), hash = tr_get_le64(b + 32);
    if (version != SHARD_VERSION) {
        tr_set_error("%s: version: %u is not supported (expected %d)", path, version, SHARD_VERSION);
        return -1;
    }
    if (bpt != m->token_bytes) {
        tr_set_error("%s: bytes per token: %u, but meta.json says %u", path, bpt, m->token_bytes);
        return -1;
    }
    if (n != meta_tokens) {
        tr_set_error("%s: token count: %" PRIu64 ", but meta.json says %" PRIu64, path, n, meta_tokens);
        return -1;
    }
    if (vocab != m->vocab_size) {
        tr_set_error("%s: vocab size: %u, but meta.json says %u", path, vocab, m->vocab_size);
        return -1;
    }
    if (eot != m->eot_id) {
        tr_set_error("%s: eot id: %u, but meta.json says %u", path, eot, m->eot_id);
        return -1;
    }
    if (hash != m->tok_hash || hash != expected_tok_hash) {
        tr_set_error("%s: made with another tokenizer (hash %016" PRIx64 ", expected %016" PRIx64 ")",
                     path, hash, expected_tok_hash);
        return -1;
    }
    for (int i = 40; i < SHARD_HEADER_BYTES; i++) {
        if (b[i] != 0) {
            tr_set_error("%s: header bytes 40..63 are not zero", path);
            return -1;
        }
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        tr_set_error("%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    uint64_t want = SHARD_HEADER_BYTES + n * bpt;
    if ((uint64_t)st.st_size != want) {
        tr_set_error("%s: file size: %" PRIu64 " bytes, but %" PRIu64 " tokens need %" PRIu64
                     " (truncated or damaged)", path, (uint64_t)st.st_size, n, want);
        return -1;
    }
    return 0;
}

TokenLoader *loader_open(const char *dir, const char *split, uint64_t expected_tok_hash, int B, int T,
                         int shuffle, uint64_t seed) {
    int s = -1;
    for (int k = 0; k < N_SPLITS; k++)
        if (split && strcmp(split, split_names[k]) == 0) s = k;
    if (s < 0) {
        tr_set_error("%s: unknown split \"%s\" (expected train or val)", dir, split ? split : "(null)");
        return NULL;
    }
    if (B < 1 || T < 1) {
        tr_set_error("%s: batch size %d and sequence length %d must be positive", dir, B, T);
        return NULL;
    }
    Meta m;
    if (meta_load(dir, &m) != 0) {
        meta_free(&m);
        return NULL;
    }
    if (m.tok_hash != expected_tok_hash) {
        tr_set_error("%s: made with another tokenizer (hash %016" PRIx64 ", expected %016" PRIx64 ")",
                     m.path, m.tok_hash, expected_tok_hash);
        meta_free(&m);
        return NULL;
    }
    const MetaSplit *sp = &m.split[s];
    TokenLoader *L = xcalloc(1, sizeof *L);
    L->B = B;
    L->T = T;
    L->shuffle = shuffle;
    L->seed = seed;
    L->token_bytes = m.token_bytes;
    L->vocab_size = m.vocab_size;
    L->eot_id = (int32_t)m.eot_id;
    L->text_bytes = sp->text_bytes;
    L->n_shards = sp->n_shards;
    L->paths = xcalloc((size_t)sp->n_shards + 1, sizeof *L->paths);
    L->files = xcalloc((size_t)sp->n_shards + 1, sizeof *L->files);
    L->shard_tokens = xcalloc((size_t)sp->n_shards + 1, sizeof *L->shard_tokens);
    L->window_start = xcalloc((size_t)sp->n_shards + 1, sizeof *L->window_start);
    L->read_buf = xmalloc(((size_t)T + 1) * L->token_bytes);
    L->windows = xmalloc((size_t)B * ((size_t)T + 1) * sizeof *L->windows);
    L->n_targets = xmalloc((size_t)B * sizeof *L->n_targets);
    uint64_t full_windows = 0;
    for (int i = 0; i < sp->n_shards; i++) {
        L->paths[i] = path_join(dir, sp->shards[i].file);
        L->files[i] = fopen(L->paths[i], "rb");
        if (!L->files[i]) {
            tr_set_error("%s: cannot open: %s", L->paths[i], strerror(errno));
            goto fail;
        }
        if (check_shard(&m, L->paths[i], L->files[i], sp->shards[i].tokens, expected_tok_hash) != 0)
            goto fail;
        uint64_t n = sp->shards[i].tokens;
        L->shard_tokens[i] = n;
        L->n_tokens += n;
        L->window_start[i] = L->n_windows;
        L->n_windows += shard_windows(n, (uint64_t)T, shuffle);
        full_windows += shard_windows(n, (uint64_t)T, 1);
    }
    L->window_start[sp->n_shards] = L->n_windows;
    if (full_windows == 0) {
        tr_set_error("%s: split %s has no full window of %d tokens (%" PRIu64 " tokens in %d shards)",
                     m.path, split, T + 1, L->n_tokens, sp->n_shards);
        goto fail;
    }
    if (shuffle) L->order = xmalloc(L->n_windows * sizeof *L->order);
    meta_free(&m);
    return L;
fail:
    meta_free(&m);
    loader_close(L);
    return NULL;
}

/* Reads global window g into row (T+1 tokens, EOT after its end); returns its target count or -1. */
static int read_window(TokenLoader *L, uint64_t g, int32_t *row) {
    int lo = 0, hi = L->n_shards;  /* the last shard whose first window is <= g */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (L->window_start[mid] <= g) lo = mid;
        else hi = mid;
    }
    uint64_t T = (uint64_t)L->T, first = (g - L->window_start[lo]) * T;
    uint64_t n = L->shard_tokens[lo] - first;
    if (n > T + 1) n = T + 1;
    uint32_t bpt = L->token_bytes;
    FILE *f = L->files[lo];
    if (fseeko(f, (off_t)(SHARD_HEADER_BYTES + first * bpt), SEEK_SET) != 0 ||
        fread(L->read_buf, bpt, n, f) != n) {
        tr_set_error("%s: read error at token %" PRIu64 " (file changed since it was opened?)",
                     L->paths[lo], first);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint32_t id = bpt == 2 ? (uint32_t)L->read_buf[2 * i] | (uint32_t)L->read_buf[2 * i + 1] << 8
                               : tr_get_le32(L->read_buf + 4 * i);
        if (id >= L->vocab_size) {
            tr_set_error("%s: token %" PRIu64 " is %u, outside the vocabulary (%u)", L->paths[lo],
                         first + i, id, L->vocab_size);
            return -1;
        }
        row[i] = (int32_t)id;
    }
    for (uint64_t i = n; i <= T; i++) row[i] = L->eot_id;
    return (int)(n - 1);
}

int loader_next(TokenLoader *L, int32_t *tokens, int *n_targets) {
    const int B = L->B, row_len = L->T + 1;
    int got = 0;
    for (int b = 0; b < B; b++) {
        int32_t *row = tokens + (size_t)b * row_len;
        if (!L->shuffle && L->state.cursor >= L->n_windows) {
            for (int i = 0; i < row_len; i++) row[i] = L->eot_id;
            n_targets[b] = 0;
            continue;
        }
        uint64_t g = L->state.cursor;
        if (L->shuffle) {
            if (!L->order_valid || L->order_epoch != L->state.epoch) build_order(L, L->state.epoch);
            g = L->order[L->state.cursor];
        }
        int nt = read_window(L, g, row);
        if (nt < 0) return -1;
        n_targets[b] = nt;
        got++;
        L->state.cursor++;
        if (L->shuffle && L->state.cursor == L->n_windows) {  /* an epoch is complete */
            L->state.epoch++;
            L->state.cursor = 0;
        }
    }
    return got > 0 ? 1 : 0;
}

int loader_next_batch(TokenLoader *L, int32_t *inputs, int32_t *targets) {
    const int B = L->B, T = L->T;
    int rc = loader_next(L, L->windows, L->n_targets);
    if (rc != 1) return rc;
    for (int b = 0; b < B; b++) {
        const int32_t *w = L->windows + (size_t)b * (T + 1);
        for (int t = 0; t < T; t++) {
            inputs[(size_t)b * T + t] = w[t];
            targets[(size_t)b * T + t] = t < L->n_targets[b] ? w[t + 1] : -1;   /* the next token */
        }
    }
    return 1;
}

/* Validation: the next pass starts. Training: back to the very beginning (epoch 0, cursor 0). */
void loader_reset(TokenLoader *L) {
    L->state.epoch = 0;
    L->state.cursor = 0;
}

uint64_t loader_num_windows(const TokenLoader *L) { return L->n_windows; }
uint64_t loader_num_tokens(const TokenLoader *L) { return L->n_tokens; }
uint64_t loader_text_bytes(const TokenLoader *L) { return L->text_bytes; }
LoaderState loader_get_state(const TokenLoader *L) { return L->state; }

int loader_set_state(TokenLoader *L, LoaderState s) {
    if (s.cursor > L->n_windows) {
        tr_set_error("loader state: cursor %" PRIu64 " is past the %" PRIu64 " windows of the split",
                     s.cursor, L->n_windows);
        return -1;
    }
    if (L->shuffle && s.cursor == L->n_windows) {  /* the end of an epoch = the start of the next */
        s.epoch++;
        s.cursor = 0;
    }
    L->state = s;
    return 0;
}

void loader_close(TokenLoader *L) {
    if (!L) return;
    for (int i = 0; i < L->n_shards; i++) {
        if (L->files[i]) fclose(L->files[i]);
        free(L->paths[i]);
    }
    free(L->paths);
    free(L->files);
    free(L->shard_tokens);
    free(L->window_start);
    free(L->order);
    free(L->read_buf);
    free(L->windows);
    free(L->n_targets);
    free(L);
}
