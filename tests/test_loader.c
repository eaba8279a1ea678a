/* test_loader.c: tests for data/loader.c: validation coverage, training order and resume, uint32
 * tokens, the shift into inputs and targets, and every error path. The shards are written by hand
 * here, with token values that say where they came from, so every window can be checked against
 * the exact bytes it should hold. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/loader.h"
#include "base/util.h"
#include "tests/data_test_helpers.h"
#include "tests/test.h"

/* ---------------------------------------------------------------------------------------------- */
/* hand-written datasets for the loader */

#define HAND_VOCAB 65000u
#define HAND_EOT 64999u
#define HAND_HASH 0x1234abcd5678ef90ULL

/* Token p of shard s: unique within a split, so a value says where it was read from. */
static uint32_t hand_token(int s, uint64_t p, uint32_t base) { return base + (uint32_t)s * 1000u + (uint32_t)p; }
static int hand_where(uint32_t v, uint32_t base, int *s, uint64_t *p) {
    if (v < base) return 0;
    *s = (int)((v - base) / 1000);
    *p = (v - base) % 1000;
    return 1;
}

typedef struct {
    uint32_t vocab, eot, bpt, version, base;
    uint64_t hash;
} HandOptions;

static HandOptions hand_defaults(void) {
    HandOptions o = {HAND_VOCAB, HAND_EOT, 2, 1, 1, HAND_HASH};
    return o;
}

static void write_hand_shard(const char *path, int s, uint64_t n, const HandOptions *o) {
    size_t size = 64 + n * o->bpt;
    uint8_t *b = calloc(1, size);
    memcpy(b, "TRSHARD", 8);
    uint64_t fields[][3] = {{8, 4, o->version}, {12, 4, o->bpt}, {16, 8, n},
                            {24, 4, o->vocab}, {28, 4, o->eot}, {32, 8, o->hash}};
    for (int f = 0; f < 6; f++)
        for (uint64_t i = 0; i < fields[f][1]; i++) b[fields[f][0] + i] = (uint8_t)(fields[f][2] >> (8 * i));
    for (uint64_t p = 0; p < n; p++) {
        uint32_t v = hand_token(s, p, o->base);
        for (uint32_t i = 0; i < o->bpt; i++) b[64 + p * o->bpt + i] = (uint8_t)(v >> (8 * i));
    }
    test_write_file(path, b, size);
    free(b);
}

/* A dataset dir with train shards of sizes train[] and val shards of sizes val[], with meta.json. */
static void write_hand_dataset(const char *dir, const uint64_t *train, int n_train, const uint64_t *val,
                               int n_val, const HandOptions *o) {
    fresh_dir(dir);
    char meta[8192];
    size_t len = (size_t)snprintf(meta, sizeof meta,
                                  "{\"format\": \"tinyrope-shards\", \"version\": 1, \"fingerprint\": "
                                  "\"0000000000000000\",\n \"tokenizer\": {\"path\": \"hand\", \"hash\": "
                                  "\"%016" PRIx64 "\", \"vocab_size\": %u, \"eot\": %u},\n"
                                  " \"token_bytes\": %u, \"inputs\": {\"train\": [], \"val\": []},\n"
                                  " \"splits\": {",
                                  o->hash, o->vocab, o->eot, o->bpt);
    for (int split = 0; split < 2; split++) {
        const uint64_t *sizes = split ? val : train;
        int n = split ? n_val : n_train;
        const char *name = split ? "val" : "train";
        uint64_t total = 0;
        len += (size_t)snprintf(meta + len, sizeof meta - len, "%s\"%s\": {\"shards\": [", split ? ", " : "", name);
        for (int s = 0; s < n; s++) {
            char file[64], path[600];
            snprintf(file, sizeof file, "%s_%03d.bin", name, s);
            snprintf(path, sizeof path, "%s/%s", dir, file);
            write_hand_shard(path, s, sizes[s], o);
            total += sizes[s];
            len += (size_t)snprintf(meta + len, sizeof meta - len, "%s{\"file\": \"%s\", \"tokens\": %" PRIu64 "}",
                                    s ? ", " : "", file, sizes[s]);
        }
        len += (size_t)snprintf(meta + len, sizeof meta - len,
                                "], \"tokens\": %" PRIu64 ", \"stories\": %d, \"text_bytes\": %" PRIu64
                                ", \"dropped\": 0}",
                                total, n, total * 4);
    }
    snprintf(meta + len, sizeof meta - len, "}}\n");
    char path[600];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    write_text(path, meta);
}

/* ---------------------------------------------------------------------------------------------- */
/* validation loader */

static void test_val_loader_covers_every_target(void) {
    const char *dir = tmp_path("hand_val");
    const uint64_t train[] = {40}, val[] = {50, 17, 33};
    HandOptions o = hand_defaults();
    write_hand_dataset(dir, train, 1, val, 3, &o);
    const int B = 3, T = 8;
    TokenLoader *L = loader_open(dir, "val", HAND_HASH, B, T, 0, 0);
    CHECKF(L != NULL, "%s", tr_error());
    if (!L) return;
    /* ceil((N-1)/T) windows per shard: 7 + 2 + 4. */
    CHECKF(loader_num_windows(L) == 13, "%" PRIu64, loader_num_windows(L));
    CHECK(loader_num_tokens(L) == 100 && loader_text_bytes(L) == 400);

    int32_t tokens[3 * 9], seq[2][8][3 * 9];
    int n_targets[3], seq_nt[2][8][3], batches[2] = {0, 0};
    memset(seq, 0, sizeof seq);
    memset(seq_nt, 0, sizeof seq_nt);
    for (int pass = 0; pass < 2; pass++) {
        unsigned char seen[3][64];
        memset(seen, 0, sizeof seen);
        int rc;
        while ((rc = loader_next(L, tokens, n_targets)) == 1 && batches[pass] < 8) {
            memcpy(seq[pass][batches[pass]], tokens, sizeof tokens);
            memcpy(seq_nt[pass][batches[pass]], n_targets, sizeof n_targets);
            batches[pass]++;
            for (int b = 0; b < B; b++) {
                const int32_t *row = tokens + b * (T + 1);
                int nt = n_targets[b];
                CHECK(nt >= 0 && nt <= T);
                int s0;
                uint64_t p0;
                if (nt > 0 && hand_where((uint32_t)row[0], 1, &s0, &p0)) {
                    CHECKF(p0 % T == 0, "window starts at %" PRIu64, p0);
                    uint64_t left = val[s0] - 1 - p0;
                    CHECKF((uint64_t)nt == (left < (uint64_t)T ? left : (uint64_t)T), "n_targets %d", nt);
                }
                for (int i = 1; i <= nt; i++) {
                    int s = 0;
                    uint64_t p = 1;
                    CHECK(hand_where((uint32_t)row[i], 1, &s, &p) && s < 3 && p < val[s] && p >= 1);
                    if (s < 3 && p < 64) seen[s][p]++;
                    CHECK(row[i - 1] == (int32_t)hand_token(s, p - 1, 1)); /* input = previous token */
                }
                for (int i = nt + 1; i <= T; i++) CHECK(row[i] == (int32_t)HAND_EOT);
                if (nt == 0) CHECK(row[0] == (int32_t)HAND_EOT);
            }
        }
        CHECK(rc == 0);
        CHECK(batches[pass] == 5); /* 13 windows in batches of 3 */
        /* The last batch: one window of shard 2 (targets 25..32 => 8), then two empty rows. */
        CHECK(n_targets[0] == 0 && n_targets[1] == 0 && n_targets[2] == 0); /* the rc==0 call */
        CHECK(seq_nt[pass][4][0] == 8 && seq_nt[pass][4][1] == 0 && seq_nt[pass][4][2] == 0);
        CHECK(seq_nt[pass][2][0] == 1); /* shard 0's last window: tokens 48, 49 */
        for (int s = 0; s < 3; s++)
            for (uint64_t p = 0; p < val[s]; p++)
                CHECKF(seen[s][p] == (p == 0 ? 0 : 1), "shard %d token %" PRIu64 " seen %d times", s, p,
                       seen[s][p]);
        CHECK(loader_next(L, tokens, n_targets) == 0); /* stays finished */
        loader_reset(L);
    }
    CHECK(memcmp(seq[0], seq[1], sizeof seq[0]) == 0 && memcmp(seq_nt[0], seq_nt[1], sizeof seq_nt[0]) == 0);

    /* Resume inside a validation pass. */
    loader_reset(L);
    loader_next(L, tokens, n_targets);
    LoaderState st = loader_get_state(L);
    CHECK(st.cursor == 3);
    loader_next(L, tokens, n_targets);
    CHECK(loader_set_state(L, st) == 0);
    int32_t again[3 * 9];
    loader_next(L, again, n_targets);
    CHECK(memcmp(tokens, again, sizeof again) == 0);
    st.cursor = 14;
    CHECK(loader_set_state(L, st) == -1);
    loader_close(L);
}

/* ---------------------------------------------------------------------------------------------- */
/* training loader */

#define TRAIN_WINDOWS 28 /* 99/8 + 56/8 + 79/8 = 12 + 7 + 9 */

/* Window id (shard * 1000 + first position / T) of each row, checking each is full and intact. */
static void train_batch_ids(const int32_t *tokens, const int *n_targets, int B, int T, const uint64_t *sizes,
                            int *ids) {
    for (int b = 0; b < B; b++) {
        const int32_t *row = tokens + b * (T + 1);
        int s;
        uint64_t p;
        ids[b] = -1;
        CHECKF(n_targets[b] == T, "n_targets %d", n_targets[b]);
        if (!hand_where((uint32_t)row[0], 1, &s, &p) || s > 2) { CHECK(0); continue; }
        CHECK(p % T == 0 && p + T < sizes[s]);
        for (int i = 0; i <= T; i++) CHECK(row[i] == (int32_t)hand_token(s, p + i, 1));
        ids[b] = s * 1000 + (int)(p / T);
    }
}

/* The first n_windows window ids the loader returns (B = 5: epochs end mid-batch). */
static void train_sequence(TokenLoader *L, int *ids, int n, const uint64_t *sizes) {
    int32_t tokens[5 * 9];
    int nt[5], batch_ids[5];
    for (int k = 0; k < n; k += 5) {
        CHECK(loader_next(L, tokens, nt) == 1);
        train_batch_ids(tokens, nt, 5, 8, sizes, batch_ids);
        for (int b = 0; b < 5 && k + b < n; b++) ids[k + b] = batch_ids[b];
    }
}

static void test_train_loader_order_and_resume(void) {
    const char *dir = tmp_path("hand_train");
    const uint64_t train[] = {100, 57, 80}, val[] = {30};
    HandOptions o = hand_defaults();
    write_hand_dataset(dir, train, 3, val, 1, &o);
    TokenLoader *a = loader_open(dir, "train", HAND_HASH, 5, 8, 1, 42);
    TokenLoader *b = loader_open(dir, "train", HAND_HASH, 5, 8, 1, 42);
    TokenLoader *c = loader_open(dir, "train", HAND_HASH, 5, 8, 1, 43);
    CHECKF(a && b && c, "%s", tr_error());
    if (!a || !b || !c) return;
    CHECK(loader_num_windows(a) == TRAIN_WINDOWS);

    enum { N = 3 * TRAIN_WINDOWS + 1 }; /* 85 = 17 batches of 5: three epochs and one window */
    int sa[N], sb[N], sc[N];
    train_sequence(a, sa, N, train);
    train_sequence(b, sb, N, train);
    train_sequence(c, sc, N, train);
    CHECK(memcmp(sa, sb, sizeof sa) == 0);                     /* same seed, same order */
    CHECK(memcmp(sa, sc, sizeof sa) != 0);                     /* other seed, other order */
    CHECK(memcmp(sa, sa + TRAIN_WINDOWS, TRAIN_WINDOWS * sizeof(int)) != 0); /* reshuffled per epoch */
    for (int e = 0; e < 3; e++) {
        int count[3][16];
        memset(count, 0, sizeof count);
        for (int i = e * TRAIN_WINDOWS; i < (e + 1) * TRAIN_WINDOWS; i++)
            if (sa[i] >= 0) count[sa[i] / 1000][sa[i] % 1000]++;
        for (int s = 0; s < 3; s++)
            for (uint64_t k = 0; k < (train[s] - 1) / 8; k++)
                CHECKF(count[s][k] == 1, "epoch %d: shard %d window %" PRIu64 " seen %d times", e, s, k,
                       count[s][k]);
    }
    LoaderState st = loader_get_state(a);
    CHECKF(st.epoch == 3 && st.cursor == 1, "state %" PRIu64 " %" PRIu64, st.epoch, st.cursor);

    /* Resume: after k batches, get_state -> set_state on a fresh loader reproduces the next ones. */
    int32_t ta[5 * 9], tb[5 * 9];
    int na[5], nb[5];
    loader_reset(a);
    for (int k = 0; k < 7; k++) loader_next(a, ta, na);    /* 35 windows: into epoch 1 */
    st = loader_get_state(a);
    CHECK(st.epoch == 1 && st.cursor == 7);
    TokenLoader *r = loader_open(dir, "train", HAND_HASH, 5, 8, 1, 42);
    CHECK(r && loader_set_state(r, st) == 0);
    for (int k = 0; k < 12 && r; k++) {
        CHECK(loader_next(a, ta, na) == 1 && loader_next(r, tb, nb) == 1);
        CHECK(memcmp(ta, tb, sizeof ta) == 0 && memcmp(na, nb, sizeof na) == 0);
    }
    /* And on the same loader after it moved on. */
    LoaderState mid = loader_get_state(a);
    loader_next(a, ta, na);
    loader_next(a, ta, na);
    CHECK(loader_set_state(a, mid) == 0);
    CHECK(r && loader_next(a, ta, na) == 1 && loader_next(r, tb, nb) == 1 && memcmp(ta, tb, sizeof ta) == 0);
    mid.cursor = TRAIN_WINDOWS + 1;
    CHECK(loader_set_state(a, mid) == -1);
    loader_close(a);
    loader_close(b);
    loader_close(c);
    loader_close(r);
}

/* The state itself: set on a fresh loader, it reads back field by field, and the next batches of
 * the two loaders are the same. States in several epochs (the order differs per epoch, so a lost
 * epoch changes the windows), at an epoch's first window, and at its end, which reads back as the
 * start of the next epoch. */
static void test_loader_state_reads_back(void) {
    enum { B = 5, T = 8 };
    const uint64_t train[] = {100, 57, 80}, val[] = {30};
    const char *dir = tmp_path("hand_state");
    HandOptions o = hand_defaults();
    write_hand_dataset(dir, train, 3, val, 1, &o);
    TokenLoader *a = loader_open(dir, "train", HAND_HASH, B, T, 1, 42);
    if (!a) { CHECKF(0, "%s", tr_error()); return; }
    int32_t ia[B * T], ta[B * T], ib[B * T], tb[B * T];
    const int stops[] = {0, 11, 28, 37};   /* batches before each save: (0, 0), (1, 27), (5, 0), (6, 17) */
    int done = 0;
    for (int k = 0; k < 4; k++) {
        for (; done < stops[k]; done++) CHECK(loader_next_batch(a, ia, ta) == 1);
        LoaderState saved = loader_get_state(a);
        const uint64_t windows_done = (uint64_t)done * B;
        CHECKF(saved.epoch == windows_done / TRAIN_WINDOWS && saved.cursor == windows_done % TRAIN_WINDOWS,
               "after %d batches: state (%" PRIu64 ", %" PRIu64 ")", done, saved.epoch, saved.cursor);
        TokenLoader *r = loader_open(dir, "train", HAND_HASH, B, T, 1, 42);
        CHECK(r && loader_set_state(r, saved) == 0);
        if (!r) continue;
        LoaderState back = loader_get_state(r);
        CHECKF(back.epoch == saved.epoch && back.cursor == saved.cursor,
               "set (%" PRIu64 ", %" PRIu64 "), read back (%" PRIu64 ", %" PRIu64 ")", saved.epoch, saved.cursor,
               back.epoch, back.cursor);
        int same = 1;
        for (int n = 0; n < 8; n++) {
            CHECK(loader_next_batch(a, ia, ta) == 1 && loader_next_batch(r, ib, tb) == 1);
            same &= !memcmp(ia, ib, sizeof ia) && !memcmp(ta, tb, sizeof ta);
        }
        done += 8;
        CHECKF(same, "resumed at (%" PRIu64 ", %" PRIu64 "): the next batches differ", saved.epoch, saved.cursor);
        LoaderState end_a = loader_get_state(a), end_r = loader_get_state(r);
        CHECK(end_a.epoch == end_r.epoch && end_a.cursor == end_r.cursor);
        loader_close(r);
    }
    /* the end of epoch 2 is the start of epoch 3 */
    LoaderState end = {.epoch = 2, .cursor = TRAIN_WINDOWS};
    CHECK(loader_set_state(a, end) == 0);
    LoaderState back = loader_get_state(a);
    CHECKF(back.epoch == 3 && back.cursor == 0, "(2, %d) read back as (%" PRIu64 ", %" PRIu64 ")", TRAIN_WINDOWS,
           back.epoch, back.cursor);
    loader_close(a);

    /* validation: a position inside the pass reads back as set */
    TokenLoader *v = loader_open(dir, "val", HAND_HASH, 1, T, 0, 0);
    CHECKF(v != NULL, "%s", tr_error());
    if (!v) return;
    LoaderState mid = {.epoch = 0, .cursor = 2};
    CHECK(loader_set_state(v, mid) == 0);
    back = loader_get_state(v);
    CHECK(back.epoch == 0 && back.cursor == 2);
    int32_t row[T + 1];
    int nt;
    CHECK(loader_next(v, row, &nt) == 1 && nt == 8 && row[0] == (int32_t)hand_token(0, 16, 1));
    loader_close(v);
}

/* uint32 shards (vocab > 65536) read back exactly. */
static void test_loader_uint32_tokens(void) {
    const char *dir = tmp_path("hand_u32");
    const uint64_t train[] = {20}, val[] = {20};
    HandOptions o = hand_defaults();
    o.vocab = 100000;
    o.eot = 99999;
    o.bpt = 4;
    o.base = 70000;
    write_hand_dataset(dir, train, 1, val, 1, &o);
    TokenLoader *L = loader_open(dir, "val", HAND_HASH, 1, 19, 0, 0);
    CHECKF(L != NULL, "%s", tr_error());
    if (!L) return;
    int32_t t[20];
    int nt;
    CHECK(loader_next(L, t, &nt) == 1 && nt == 19);
    for (int i = 0; i < 20; i++) CHECK(t[i] == (int32_t)hand_token(0, (uint64_t)i, 70000));
    loader_close(L);
}

/* loader_next_batch: inputs are the windows' tokens, target t the token after input t, -1 past a
 * short window's end and on an unused row; checked against the shard's tokens directly. */
static void test_loader_batch_shifts_targets(void) {
    const char *dir = tmp_path("hand_batch");
    const uint64_t train[] = {40}, val[] = {23};   /* val: windows of 8, 8 and 6 targets */
    HandOptions o = hand_defaults();
    write_hand_dataset(dir, train, 1, val, 1, &o);
    enum { B = 2, T = 8 };
    TokenLoader *L = loader_open(dir, "val", HAND_HASH, B, T, 0, 0);
    CHECKF(L != NULL, "%s", tr_error());
    if (!L) return;
    const int window_targets[4] = {8, 8, 6, 0};    /* the fourth row of the second batch is unused */
    int32_t inputs[B * T], targets[B * T];
    for (int batch = 0; batch < 2; batch++) {
        CHECK(loader_next_batch(L, inputs, targets) == 1);
        for (int b = 0; b < B; b++) {
            const int w = batch * B + b, n = window_targets[w];
            for (int t = 0; t < T; t++) {
                const uint64_t at = (uint64_t)w * T + (uint64_t)t;
                if (t <= n && n > 0) CHECKF(inputs[b * T + t] == (int32_t)hand_token(0, at, o.base), "w%d t%d", w, t);
                const int32_t want = t < n ? (int32_t)hand_token(0, at + 1, o.base) : -1;
                CHECKF(targets[b * T + t] == want, "window %d t %d: target %d, want %d", w, t, targets[b * T + t], want);
            }
        }
    }
    CHECK(loader_next_batch(L, inputs, targets) == 0);   /* every window returned */
    loader_close(L);
}

/* ---------------------------------------------------------------------------------------------- */
/* loader errors */

static void patch_file(const char *path, long offset, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    if (!f) return;
    fseek(f, offset, SEEK_SET);
    fwrite(bytes, 1, n, f);
    fclose(f);
}

/* Opens split "train" of dir with T = 8 and expects failure with both strings in the message. */
static void expect_open_error(const char *dir, uint64_t hash, int T, const char *a, const char *b, int line) {
    tr_clear_error();
    TokenLoader *L = loader_open(dir, "train", hash, 2, T, 1, 1);
    if (L || !error_has(a, b)) {
        fprintf(stderr, "  line %d: expected an error with \"%s\" and \"%s\", got %s: \"%s\"\n", line, a,
                b ? b : "", L ? "a loader" : "error", tr_error());
        test_current_failed = 1;
    }
    loader_close(L);
}
#define EXPECT_OPEN_ERROR(dir, hash, T, a, b) expect_open_error(dir, hash, T, a, b, __LINE__)

static void test_loader_errors(void) {
    const char *dir = tmp_path("hand_err");
    const char *shard = tmp_path("hand_err/train_001.bin"), *meta = tmp_path("hand_err/meta.json");
    const uint64_t train[] = {40, 30}, val[] = {20};
    HandOptions o = hand_defaults();

    /* The intact dataset opens (so each failure below is due to its one change). */
    write_hand_dataset(dir, train, 2, val, 1, &o);
    TokenLoader *ok = loader_open(dir, "train", HAND_HASH, 2, 8, 1, 1);
    CHECKF(ok != NULL, "%s", tr_error());
    loader_close(ok);

    patch_file(shard, 0, "TRSHARX", 7);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "magic");

    write_hand_dataset(dir, train, 2, val, 1, &o);
    patch_file(shard, 8, "\x02", 1);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "version");

    write_hand_dataset(dir, train, 2, val, 1, &o);
    CHECK(truncate(shard, 64 + 2 * 30 - 2) == 0);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "size");

    write_hand_dataset(dir, train, 2, val, 1, &o);
    patch_file(shard, 16, "\x1f", 1);   /* header says 31 tokens, meta.json 30 */
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "token count");

    write_hand_dataset(dir, train, 2, val, 1, &o);
    patch_file(shard, 12, "\x04", 1);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "bytes per token");

    write_hand_dataset(dir, train, 2, val, 1, &o);
    patch_file(shard, 24, "\x01", 1);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "vocab");

    write_hand_dataset(dir, train, 2, val, 1, &o);
    patch_file(shard, 28, "\x01", 1);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "eot");

    /* Another tokenizer: expected by the caller, or in one shard's header. */
    write_hand_dataset(dir, train, 2, val, 1, &o);
    EXPECT_OPEN_ERROR(dir, HAND_HASH + 1, 8, "meta.json", "made with another tokenizer");
    patch_file(shard, 32, "\xff", 1);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "made with another tokenizer");

    /* meta.json missing, malformed, or inconsistent. */
    write_hand_dataset(dir, train, 2, val, 1, &o);
    remove(meta);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "meta.json", "cannot open");
    write_text(meta, "{\"format\": \"tinyrope-shards\", \"version\": 1,");
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "meta.json", "malformed");
    write_text(meta, "{\"format\": \"tinyrope-shards\", \"version\": 2}");
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "meta.json", "version");

    /* Shard missing. */
    write_hand_dataset(dir, train, 2, val, 1, &o);
    remove(shard);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 8, "train_001.bin", "cannot open");

    /* No full window of T+1 tokens (largest shard has 40 tokens). */
    write_hand_dataset(dir, train, 2, val, 1, &o);
    EXPECT_OPEN_ERROR(dir, HAND_HASH, 40, "meta.json", "no full window");
    ok = loader_open(dir, "train", HAND_HASH, 2, 39, 1, 1); /* exactly one */
    CHECKF(ok && loader_num_windows(ok) == 1, "%s", tr_error());
    loader_close(ok);
    tr_clear_error();
    CHECK(loader_open(dir, "test", HAND_HASH, 2, 8, 1, 1) == NULL && error_has("unknown split", NULL));

    /* A token outside the vocabulary is a read error, not silent garbage. */
    write_hand_dataset(dir, train, 2, val, 1, &o);
    patch_file(shard, 64 + 2 * 3, "\xff\xff", 2);
    TokenLoader *L = loader_open(dir, "val", HAND_HASH, 1, 8, 0, 0);
    CHECK(L != NULL);
    loader_close(L);
    L = loader_open(dir, "train", HAND_HASH, 8, 8, 0, 0); /* 8 rows: reaches train_001 */
    CHECK(L != NULL);
    if (L) {
        int32_t t[8 * 9];
        int nt[8];
        CHECK(loader_next(L, t, nt) == -1 && error_has("train_001.bin", "outside the vocabulary"));
        loader_close(L);
    }
}

int main(void) {
    RUN(test_val_loader_covers_every_target);
    RUN(test_train_loader_order_and_resume);
    RUN(test_loader_state_reads_back);
    RUN(test_loader_uint32_tokens);
    RUN(test_loader_batch_shifts_targets);
    RUN(test_loader_errors);
    return test_summary();
}
