/* test_shards.c: tests for data/shards.c: the data spec, shards_prepare (layout, rollover, reuse,
 * thread independence) and the loader (validation coverage, training order and resume, every
 * error path). Loader tests use shards written by hand here, with token values that say where
 * they came from, so every window can be checked against the exact bytes it should hold. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <cjson/cJSON.h>

#include "data/shards.h"
#include "base/util.h"
#include "tests/test.h"
#include "tokenizer/tokenizer.h"

/* ---------------------------------------------------------------------------------------------- */
/* helpers */

/* <test tmp dir>/shards/<name>, in one of 32 rotating buffers (no test holds more at once). */
static char *tmp_path(const char *name) {
    static char buf[32][512];
    static int next;
    static const char *base;
    if (!base) base = test_tmp_dir();
    char *p = buf[next++ % 32];
    snprintf(p, 512, "%s/shards/%s", base, name);
    return p;
}

static void rm_rf(const char *path) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", path);
}

static void fresh_dir(const char *path) {
    rm_rf(path);
    tr_mkdir_p(path);
}

static int write_text(const char *path, const char *text) { return test_write_file(path, text, strlen(text)); }

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* A shard read back by the tests, independently of shards.c. */
typedef struct {
    int ok;
    char magic[8];
    uint32_t version, bpt, vocab, eot;
    uint64_t n, hash;
    int reserved_zero;
    uint64_t file_size;
    uint32_t *tokens;
} ShardFile;

static ShardFile read_shard(const char *path) {
    ShardFile s;
    memset(&s, 0, sizeof s);
    size_t len;
    uint8_t *b = (uint8_t *)tr_read_file(path, &len);
    if (!b || len < 64) { free(b); return s; }
    memcpy(s.magic, b, 8);
    s.version = le32(b + 8);
    s.bpt = le32(b + 12);
    s.n = le64(b + 16);
    s.vocab = le32(b + 24);
    s.eot = le32(b + 28);
    s.hash = le64(b + 32);
    s.reserved_zero = 1;
    for (int i = 40; i < 64; i++) s.reserved_zero &= b[i] == 0;
    s.file_size = len;
    if ((s.bpt == 2 || s.bpt == 4) && len == 64 + s.n * s.bpt) {
        s.tokens = malloc((s.n ? s.n : 1) * sizeof *s.tokens);
        for (uint64_t i = 0; i < s.n; i++)
            s.tokens[i] = s.bpt == 2 ? (uint32_t)b[64 + 2 * i] | (uint32_t)b[65 + 2 * i] << 8
                                     : le32(b + 64 + 4 * i);
        s.ok = 1;
    }
    free(b);
    return s;
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = tr_read_file(a, &na), *y = tr_read_file(b, &nb);
    int eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static int error_has(const char *a, const char *b) {
    const char *e = tr_error();
    return strstr(e, a) != NULL && (!b || strstr(e, b) != NULL);
}

/* A small BPE: "th", "e ", "the", "in", " a" (ids 256..260); EOT = 261. */
static Tokenizer *small_tokenizer(void) {
    static const uint32_t merges[][2] = {{'t', 'h'}, {'e', ' '}, {256, 'e'}, {'i', 'n'}, {' ', 'a'}};
    return tok_from_merges(merges, 5);
}

static void spec_init(DataSpec *spec, DataInput *train, int n_train, DataInput *val, int n_val) {
    spec->train = train;
    spec->n_train = n_train;
    spec->val = val;
    spec->n_val = n_val;
}

/* Splits an EOT-separated shard stream into stories: starts[i], lens[i] in tokens. Returns the
 * story count, or -1 if the stream does not start and end with EOT. */
static int split_stories(const uint32_t *t, uint64_t n, uint32_t eot, uint64_t *starts, uint64_t *lens,
                         int max) {
    if (n < 1 || t[0] != eot || t[n - 1] != eot) return -1;
    int count = 0;
    uint64_t begin = 1;
    for (uint64_t i = 1; i < n; i++) {
        if (t[i] != eot) continue;
        if (count < max) { starts[count] = begin; lens[count] = i - begin; }
        count++;
        begin = i + 1;
    }
    return count;
}

/* 1 if ids decode to exactly the story and equal tok_encode(story). */
static int ids_match_story(const Tokenizer *tok, const uint32_t *ids, uint64_t n, const char *story) {
    size_t len = strlen(story);
    uint32_t *want = malloc((len + 1) * sizeof *want);
    size_t nw = tok_encode(tok, (const uint8_t *)story, len, want, len + 1);
    int ok = nw == n && memcmp(want, ids, n * sizeof *ids) == 0;
    uint8_t *bytes = malloc(len + 64);
    size_t nb = tok_decode(tok, ids, n, bytes, len + 64);
    ok = ok && nb == len && memcmp(bytes, story, len) == 0;
    free(want);
    free(bytes);
    return ok;
}

static cJSON *load_json(const char *path) {
    char *text = tr_read_file(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

static double json_at(const cJSON *root, const char *a, const char *b, const char *c) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, a);
    if (b) j = cJSON_GetObjectItemCaseSensitive(j, b);
    if (c) j = cJSON_GetObjectItemCaseSensitive(j, c);
    return cJSON_IsNumber(j) ? j->valuedouble : -1.0;
}

/* ---------------------------------------------------------------------------------------------- */
/* prepare: layout of a tiny dataset */

static const char *const tiny_train[] = {
    "Once upon a time, the cat sat in a hat.\nIt was happy.",
    "Lily saw the big tree. \xe2\x80\x9cHello!\xe2\x80\x9d said Lily.",
    "Tom ran.",
    "The end of the third story is here, and then the fourth begins.",
};
static const char *const tiny_val[] = {
    "Spot saw the shiny car.\n\nHe said, \"Wow!\"",
    "A second validation story.",
};

static void write_tiny_inputs(const char *train_path, const char *val_path) {
    char text[2048];
    /* HF .txt: opens with an empty line, "<|endoftext|>" lines between stories, a cut-off tail. */
    snprintf(text, sizeof text,
             "\n%s\n<|endoftext|>\n  %s  \n<|endoftext|>\n%s\n<|endoftext|>\n%s\n<|endoftext|>\n"
             "This last story is cut o",
             tiny_train[0], tiny_train[1], tiny_train[2], tiny_train[3]);
    write_text(train_path, text);
    /* CSV: the first record belongs to another split (skip 1); the second field has "" quotes. */
    write_text(val_path,
               "text\n\"A train story that must be skipped.\"\n"
               "\"Spot saw the shiny car.\n\nHe said, \"\"Wow!\"\"\"\n"
               "A second validation story.\n");
}

static void test_prepare_tiny_dataset(void) {
    const char *dir = tmp_path("tiny");
    fresh_dir(dir);
    const char *train_path = tmp_path("tiny_train.txt"), *val_path = tmp_path("tiny_val.csv");
    write_tiny_inputs(train_path, val_path);
    Tokenizer *tok = small_tokenizer();
    CHECK(tok != NULL);
    if (!tok) return;
    uint32_t eot = (uint32_t)tok_eot_id(tok);

    DataInput train = {(char *)train_path, TEXT_HF_TXT, 0}, val = {(char *)val_path, TEXT_CSV, 1};
    DataSpec spec;
    spec_init(&spec, &train, 1, &val, 1);
    PrepareReport rep;
    int rc = shards_prepare(&spec, tok, "tok.bpe", dir, 0, 0, &rep);
    CHECKF(rc == 0, "%s", tr_error());
    CHECK(rep.train.reused == 0 && rep.val.reused == 0);
    CHECK(rep.train.n_shards == 1 && rep.val.n_shards == 1);
    CHECKF(rep.train.stories == 4, "%" PRIu64, rep.train.stories);
    CHECKF(rep.val.stories == 2, "%" PRIu64, rep.val.stories);   /* skip honoured */
    CHECK(rep.train.dropped == 1 && rep.val.dropped == 0);

    const char *const *stories[2] = {tiny_train, tiny_val};
    int n_stories[2] = {4, 2};
    const char *files[2] = {"train_000.bin", "val_000.bin"};
    const char *names[2] = {"train", "val"};
    SplitReport *reps[2] = {&rep.train, &rep.val};
    cJSON *meta = load_json(tmp_path("tiny/meta.json"));
    CHECK(meta != NULL);
    for (int s = 0; s < 2; s++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, files[s]);
        ShardFile sf = read_shard(path);
        CHECKF(sf.ok, "%s", path);
        if (!sf.ok) continue;
        CHECK(memcmp(sf.magic, "TRSHARD\0", 8) == 0);
        CHECK(sf.version == 1 && sf.bpt == 2 && sf.reserved_zero);
        CHECK(sf.vocab == (uint32_t)tok_vocab_size(tok) && sf.vocab == 262);
        CHECK(sf.eot == eot && sf.hash == tok_hash(tok));
        CHECK(sf.file_size == 64 + 2 * sf.n);
        uint64_t starts[16], lens[16];
        int n = split_stories(sf.tokens, sf.n, eot, starts, lens, 16);
        CHECKF(n == n_stories[s], "%s: %d stories", names[s], n);
        uint64_t want_tokens = 1, want_bytes = 0;
        for (int i = 0; i < n && i < n_stories[s]; i++) {
            CHECKF(ids_match_story(tok, sf.tokens + starts[i], lens[i], stories[s][i]), "%s story %d",
                   names[s], i);
            want_tokens += lens[i] + 1;
            want_bytes += strlen(stories[s][i]);
        }
        CHECK(sf.n == want_tokens && reps[s]->tokens == want_tokens);
        CHECKF(reps[s]->text_bytes == want_bytes, "%" PRIu64 " vs %" PRIu64, reps[s]->text_bytes,
               want_bytes);
        CHECK(json_at(meta, "splits", names[s], "tokens") == (double)want_tokens);
        CHECK(json_at(meta, "splits", names[s], "stories") == (double)n_stories[s]);
        CHECK(json_at(meta, "splits", names[s], "text_bytes") == (double)want_bytes);
        free(sf.tokens);
    }
    /* Other meta.json fields. */
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(meta, "format");
    CHECK(cJSON_IsString(fmt) && strcmp(fmt->valuestring, "tinyrope-shards") == 0);
    CHECK(json_at(meta, "version", NULL, NULL) == 1 && json_at(meta, "token_bytes", NULL, NULL) == 2);
    CHECK(json_at(meta, "tokenizer", "vocab_size", NULL) == 262 && json_at(meta, "tokenizer", "eot", NULL) == 261);
    char hex[32];
    snprintf(hex, sizeof hex, "%016" PRIx64, tok_hash(tok));
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(meta, "tokenizer"), "hash");
    CHECK(cJSON_IsString(h) && strcmp(h->valuestring, hex) == 0);
    const cJSON *vin = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                              cJSON_GetObjectItemCaseSensitive(meta, "inputs"), "val"), 0);
    CHECK(json_at(vin, "skip", NULL, NULL) == 1 && json_at(vin, "size", NULL, NULL) == (double)tr_file_size(val_path));
    CHECK(json_at(meta, "splits", "train", "dropped") == 1);
    cJSON_Delete(meta);

    /* The loader agrees with meta.json on what it reports. */
    TokenLoader *L = loader_open(dir, "val", tok_hash(tok), 1, 4, 0, 0);
    CHECKF(L != NULL, "%s", tr_error());
    if (L) {
        CHECK(loader_num_tokens(L) == rep.val.tokens && loader_text_bytes(L) == rep.val.text_bytes);
        loader_close(L);
    }
    tok_free(tok);
}

/* ---------------------------------------------------------------------------------------------- */
/* prepare: rollover to new shards */

/* Deterministic story text: story i has 3 + (i*7 % 11) words. */
static void make_story(int i, char *out, size_t cap) {
    static const char *const words[] = {"the", "cat", "ran", "to", "a", "big", "tree", "and",
                                        "Lily", "smiled", "happy", "dog"};
    size_t len = 0;
    int n_words = 3 + (i * 7) % 11;
    uint64_t x = (uint64_t)i * 2654435761u + 1;
    for (int w = 0; w < n_words && len + 16 < cap; w++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        len += (size_t)snprintf(out + len, cap - len, "%s%s", w ? " " : "", words[(x >> 33) % 12]);
    }
    snprintf(out + len, cap - len, " %d.", i);
}

static void write_story_file(const char *path, int first, int n) {
    size_t cap = (size_t)n * 128 + 64, len = 0;
    char *text = malloc(cap);
    for (int i = first; i < first + n; i++) {
        char story[128];
        make_story(i, story, sizeof story);
        len += (size_t)snprintf(text + len, cap - len, "%s\n<|endoftext|>\n", story);
    }
    test_write_file(path, text, len);
    free(text);
}

static void test_prepare_rollover(void) {
    const char *dir = tmp_path("roll");
    fresh_dir(dir);
    const char *train_path = tmp_path("roll_train.txt"), *val_path = tmp_path("roll_val.txt");
    const int n_train = 60;
    write_story_file(train_path, 0, n_train);
    write_story_file(val_path, 1000, 3);
    Tokenizer *tok = small_tokenizer();
    uint32_t eot = (uint32_t)tok_eot_id(tok);
    DataInput train = {(char *)train_path, TEXT_HF_TXT, 0}, val = {(char *)val_path, TEXT_AUTO, 0};
    DataSpec spec;
    spec_init(&spec, &train, 1, &val, 1);
    PrepareReport rep;
    const uint64_t cap = 200;
    int rc = shards_prepare(&spec, tok, NULL, dir, cap, 0, &rep);
    CHECKF(rc == 0, "%s", tr_error());
    CHECKF(rep.train.n_shards >= 4, "%d shards", rep.train.n_shards);
    CHECK(rep.val.n_shards == 1);

    uint64_t sum = 0;
    int story = 0;
    for (int k = 0; k < rep.train.n_shards; k++) {
        char name[64];
        snprintf(name, sizeof name, "roll/train_%03d.bin", k);
        ShardFile sf = read_shard(tmp_path(name));
        CHECKF(sf.ok, "%s", name);
        if (!sf.ok) continue;
        uint64_t starts[256], lens[256];
        int n = split_stories(sf.tokens, sf.n, eot, starts, lens, 256);
        CHECKF(n >= 1, "%s: %d stories", name, n);
        CHECKF(sf.n <= cap || n == 1, "%s: %" PRIu64 " tokens > cap", name, sf.n);
        /* Rolled only when the next story would not fit. */
        if (k + 1 < rep.train.n_shards) {
            char next[128];
            make_story(story + n, next, sizeof next);
            uint32_t ids[256];
            size_t n_next = tok_encode(tok, (const uint8_t *)next, strlen(next), ids, 256);
            CHECKF(sf.n + n_next + 1 > cap, "%s: rolled over too early", name);
        }
        for (int i = 0; i < n && i < 256; i++, story++) {
            char want[128];
            make_story(story, want, sizeof want);
            CHECKF(ids_match_story(tok, sf.tokens + starts[i], lens[i], want), "story %d", story);
        }
        sum += sf.n;
        free(sf.tokens);
    }
    CHECKF(story == n_train, "%d stories in the shards", story);
    CHECK(sum == rep.train.tokens);
    char extra[64];
    snprintf(extra, sizeof extra, "roll/train_%03d.bin", rep.train.n_shards);
    CHECK(!tr_file_exists(tmp_path(extra)));
    tok_free(tok);
}

/* ---------------------------------------------------------------------------------------------- */
/* prepare: reuse */

static int same_mtime(const char *path, const struct stat *before) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_mtim.tv_sec == before->st_mtim.tv_sec &&
           st.st_mtim.tv_nsec == before->st_mtim.tv_nsec && st.st_ino == before->st_ino;
}

static void test_prepare_reuse(void) {
    const char *dir = tmp_path("reuse"), *copy = tmp_path("reuse_copy");
    fresh_dir(dir);
    fresh_dir(copy);
    const char *train_path = tmp_path("reuse_train.txt"), *val_path = tmp_path("reuse_val.txt");
    write_story_file(train_path, 0, 40);
    write_story_file(val_path, 500, 5);
    Tokenizer *tok = small_tokenizer();
    DataInput train = {(char *)train_path, TEXT_HF_TXT, 0}, val = {(char *)val_path, TEXT_HF_TXT, 0};
    DataSpec spec;
    spec_init(&spec, &train, 1, &val, 1);
    PrepareReport rep, rep2;
    CHECKF(shards_prepare(&spec, tok, NULL, dir, 150, 0, &rep) == 0, "%s", tr_error());
    CHECK(rep.train.reused == 0 && rep.train.n_shards >= 3);

    const char *watched[] = {"meta.json", "train_000.bin", "train_001.bin", "val_000.bin"};
    struct stat before[4];
    for (int i = 0; i < 4; i++) {
        char src[600], dst[600], cmd[1300];
        snprintf(src, sizeof src, "%s/%s", dir, watched[i]);
        snprintf(dst, sizeof dst, "%s/%s", copy, watched[i]);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
        CHECK(system(cmd) == 0 && stat(src, &before[i]) == 0);
    }
    CHECKF(shards_prepare(&spec, tok, NULL, dir, 150, 0, &rep2) == 0, "%s", tr_error());
    CHECK(rep2.train.reused == 1 && rep2.val.reused == 1);
    CHECK(rep2.train.tokens == rep.train.tokens && rep2.train.stories == rep.train.stories);
    CHECK(rep2.train.n_shards == rep.train.n_shards && rep2.val.text_bytes == rep.val.text_bytes);
    for (int i = 0; i < 4; i++) {
        char src[600], dst[600];
        snprintf(src, sizeof src, "%s/%s", dir, watched[i]);
        snprintf(dst, sizeof dst, "%s/%s", copy, watched[i]);
        CHECKF(same_mtime(src, &before[i]) && files_equal(src, dst), "%s was rewritten", watched[i]);
    }

    /* force rewrites. */
    CHECK(shards_prepare(&spec, tok, NULL, dir, 150, 1, &rep2) == 0 && rep2.train.reused == 0);

    /* A different shard size is a different dataset; the shards it no longer needs are removed. */
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep2) == 0);
    CHECK(rep2.train.reused == 0 && rep2.train.n_shards == 1);
    CHECK(!tr_file_exists(tmp_path("reuse/train_001.bin")) && tr_file_exists(tmp_path("reuse/val_000.bin")));

    /* A changed input is rewritten: another size (with the old modification time put back, so
     * the size alone must tell), then the same bytes with a new modification time. */
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep2) == 0 && rep2.train.reused == 1);
    struct stat in_st;
    CHECK(stat(train_path, &in_st) == 0);
    write_story_file(train_path, 0, 41);
    struct timespec times[2] = {in_st.st_atim, in_st.st_mtim};
    CHECK(utimensat(AT_FDCWD, train_path, times, 0) == 0);
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep2) == 0);
    CHECK(rep2.train.reused == 0 && rep2.train.stories == 41);
    times[1].tv_nsec = (times[1].tv_nsec + 1000) % 1000000000;
    CHECK(utimensat(AT_FDCWD, train_path, times, 0) == 0);
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep2) == 0 && rep2.train.reused == 0);
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep2) == 0 && rep2.train.reused == 1);

    /* A shard that lost bytes is not reused either. */
    char shard[600];
    snprintf(shard, sizeof shard, "%s/val_000.bin", dir);
    CHECK(truncate(shard, 70) == 0);
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep2) == 0 && rep2.val.reused == 0);
    CHECK(tr_file_size(shard) == (int64_t)(64 + 2 * rep2.val.tokens));
    tok_free(tok);
}

/* ---------------------------------------------------------------------------------------------- */
/* multi-threaded encoding = single-threaded encoding */

static void test_prepare_threads_identical(void) {
#ifndef _OPENMP
    SKIP("built without OpenMP");
#else
    const char *d1 = tmp_path("thr1"), *d2 = tmp_path("thr2");
    fresh_dir(d1);
    fresh_dir(d2);
    const char *train_path = tmp_path("thr_train.txt"), *val_path = tmp_path("thr_val.txt");
    /* More stories than one batch holds, so batches follow each other too. */
    int n = test_small() ? 5000 : 9000;
    write_story_file(train_path, 0, n);
    write_story_file(val_path, 100000, 50);
    Tokenizer *tok = small_tokenizer();
    DataInput train = {(char *)train_path, TEXT_HF_TXT, 0}, val = {(char *)val_path, TEXT_HF_TXT, 0};
    DataSpec spec;
    spec_init(&spec, &train, 1, &val, 1);
    PrepareReport r1, r2;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECKF(shards_prepare(&spec, tok, NULL, d1, 20000, 0, &r1) == 0, "%s", tr_error());
    omp_set_num_threads(2);
    CHECKF(shards_prepare(&spec, tok, NULL, d2, 20000, 0, &r2) == 0, "%s", tr_error());
    omp_set_num_threads(saved);
    CHECK(r1.train.stories == (uint64_t)n && r1.train.n_shards > 1);
    CHECK(r1.train.n_shards == r2.train.n_shards);
    for (int k = 0; k < r1.train.n_shards; k++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/train_%03d.bin", d1, k);
        snprintf(b, sizeof b, "%s/train_%03d.bin", d2, k);
        CHECKF(files_equal(a, b), "%s differs", a);
    }
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/val_000.bin", d1);
    snprintf(b, sizeof b, "%s/val_000.bin", d2);
    CHECK(files_equal(a, b));
    tok_free(tok);
#endif
}

/* ---------------------------------------------------------------------------------------------- */
/* prepare on the shipped sample: identical with 1 and 2 threads, and the throughput. The train
 * split lists the sample 8 times (11 MB) so the timing is not lost in noise. Tokenizers: byte-level,
 * GPT-2's when ../shared has it, and $TINYROPE_BENCH_TOKENIZER (one of ours) when set. */

#ifdef _OPENMP
static void prepare_throughput(const char *label, const Tokenizer *tok, const DataSpec *spec, uint64_t want_stories) {
    char dirs[2][600];
    for (int threads = 1; threads <= 2; threads++) {
        snprintf(dirs[threads - 1], sizeof dirs[0], "%s", tmp_path(threads == 1 ? "sample1" : "sample2"));
        fresh_dir(dirs[threads - 1]);
        omp_set_num_threads(threads);
        PrepareReport rep;
        int rc = shards_prepare(spec, tok, NULL, dirs[threads - 1], 0, 1, &rep);
        CHECKF(rc == 0, "%s", tr_error());
        if (rc != 0) return;
        double secs = rep.train.seconds > 0 ? rep.train.seconds : 1e-9;
        printf("# prepare %s, %d thread%s: %.1f MB in %.3f s = %.1f MB/s, %.2f Mtokens/s "
               "(%" PRIu64 " stories, %" PRIu64 " tokens, %.2f bytes/token)\n",
               label, threads, threads > 1 ? "s" : " ", rep.train.text_bytes / 1e6, secs,
               rep.train.text_bytes / 1e6 / secs, rep.train.tokens / 1e6 / secs, rep.train.stories,
               rep.train.tokens, (double)rep.train.text_bytes / (double)rep.train.tokens);
        CHECK(rep.train.stories == want_stories);
    }
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/train_000.bin", dirs[0]);
    snprintf(b, sizeof b, "%s/train_000.bin", dirs[1]);
    CHECKF(files_equal(a, b), "%s: 1 and 2 threads differ", label);
}

#endif

static void test_prepare_sample_throughput(void) {
    const char *sample = "data/sample/tinystories_10k.txt";
    if (!tr_file_exists(sample)) SKIP("%s not found", sample);
    if (test_small()) SKIP("timing only in the optimised build");
#ifndef _OPENMP
    SKIP("built without OpenMP");
#else
    enum { COPIES = 8 };
    DataInput train[COPIES], val = {(char *)"data/sample/validation.csv", TEXT_CSV, 1};
    for (int i = 0; i < COPIES; i++) train[i] = (DataInput){(char *)sample, TEXT_HF_TXT, 0};
    DataSpec spec;
    spec_init(&spec, train, COPIES, &val, 1);
    int saved = omp_get_max_threads();

    Tokenizer *tok = tok_from_merges(NULL, 0);
    CHECK(tok != NULL);
    if (tok) prepare_throughput("byte-level", tok, &spec, COPIES * 1727);
    tok_free(tok);

    const char *shared = test_shared_dir();
    if (shared) {
        char enc[512], bpe[512];
        snprintf(enc, sizeof enc, "%s/data/gpt2/encoder.json", shared);
        snprintf(bpe, sizeof bpe, "%s/data/gpt2/vocab.bpe", shared);
        tok = tr_file_exists(enc) ? tok_load_gpt2(enc, bpe) : NULL;
        if (tok) prepare_throughput("GPT-2", tok, &spec, COPIES * 1727);
        tok_free(tok);
    }
    const char *ours = getenv("TINYROPE_BENCH_TOKENIZER");
    if (ours) {
        tok = tok_load(ours);
        CHECKF(tok != NULL, "%s", tr_error());
        if (tok) prepare_throughput(ours, tok, &spec, COPIES * 1727);
        tok_free(tok);
    }
    omp_set_num_threads(saved);
#endif
}

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

/* ---------------------------------------------------------------------------------------------- */
/* the data spec */

static void expect_spec_error(const char *json, const char *a, const char *b, int line) {
    const char *path = tmp_path("spec_bad.json");
    write_text(path, json);
    DataSpec spec;
    tr_clear_error();
    int rc = data_spec_load(path, &spec);
    if (rc != -1 || !error_has(a, b)) {
        fprintf(stderr, "  line %d: %s: expected an error with \"%s\" and \"%s\", got rc %d: \"%s\"\n", line,
                json, a, b ? b : "", rc, tr_error());
        test_current_failed = 1;
    }
    if (rc == 0) data_spec_free(&spec);
}
#define EXPECT_SPEC_ERROR(json, a, b) expect_spec_error(json, a, b, __LINE__)

static void test_data_spec(void) {
    const char *in_a = tmp_path("spec_a.txt"), *in_b = tmp_path("spec_b.csv");
    tr_mkdir_p(tmp_path(""));
    write_text(in_a, "A story.\n<|endoftext|>\n");
    write_text(in_b, "text\nfirst\nsecond\n");
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train\": [{\"path\": \"%s\", \"format\": \"hf-txt\"}, {\"path\": \"%s\"}],\n"
             " \"val\": [{\"path\": \"%s\", \"format\": \"csv\", \"skip\": 1}]}",
             in_a, in_b, in_b);
    const char *good = tmp_path("spec_good.json");
    write_text(good, json);
    DataSpec spec;
    int rc = data_spec_load(good, &spec);
    CHECKF(rc == 0, "%s", tr_error());
    if (rc == 0) {
        CHECK(spec.n_train == 2 && spec.n_val == 1);
        CHECK(strcmp(spec.train[0].path, in_a) == 0 && spec.train[0].format == TEXT_HF_TXT && spec.train[0].skip == 0);
        CHECK(spec.train[1].format == TEXT_AUTO && spec.train[1].skip == 0);
        CHECK(spec.val[0].format == TEXT_CSV && spec.val[0].skip == 1);
        data_spec_free(&spec);
    }

    char buf[4096];
#define SPEC(train_entry, val_entry) \
    (snprintf(buf, sizeof buf, "{\"train\": [%s], \"val\": [%s]}", train_entry, val_entry), buf)
    char ok_entry[600];
    snprintf(ok_entry, sizeof ok_entry, "{\"path\": \"%s\"}", in_a);
    char e[1300];

    EXPECT_SPEC_ERROR("{\"train\": [", "spec_bad.json", "malformed");
    EXPECT_SPEC_ERROR("[1, 2]", "spec_bad.json", "expected an object");
    snprintf(e, sizeof e, "{\"train\": [%s], \"val\": [%s], \"test\": []}", ok_entry, ok_entry);
    EXPECT_SPEC_ERROR(e, "spec_bad.json", "\"test\"");
    snprintf(e, sizeof e, "{\"train\": [%s]}", ok_entry);
    EXPECT_SPEC_ERROR(e, "spec_bad.json", "\"val\"");
    EXPECT_SPEC_ERROR(SPEC("", "{}"), "spec_bad.json", "train");          /* empty list */
    snprintf(e, sizeof e, "{\"train\": {\"path\": \"%s\"}, \"val\": [%s]}", in_a, ok_entry);
    EXPECT_SPEC_ERROR(e, "spec_bad.json", "train");                       /* not a list */
    EXPECT_SPEC_ERROR(SPEC(ok_entry, "\"x.txt\""), "spec_bad.json", "val[0]"); /* entry not an object */
    EXPECT_SPEC_ERROR(SPEC(ok_entry, "{\"format\": \"csv\"}"), "val[0]", "\"path\"");
    EXPECT_SPEC_ERROR(SPEC(ok_entry, "{\"path\": 3}"), "spec_bad.json", "val[0].path");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"skip\": -1}", in_a);
    EXPECT_SPEC_ERROR(SPEC(ok_entry, e), "spec_bad.json", "val[0].skip");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"skip\": \"1\"}", in_a);
    EXPECT_SPEC_ERROR(SPEC(ok_entry, e), "spec_bad.json", "val[0].skip");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"skip\": 1.5}", in_a);
    EXPECT_SPEC_ERROR(SPEC(ok_entry, e), "spec_bad.json", "val[0].skip");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"format\": \"parquet\"}", in_a);
    EXPECT_SPEC_ERROR(SPEC(e, ok_entry), "spec_bad.json", "train[0].format");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"format\": 7}", in_a);
    EXPECT_SPEC_ERROR(SPEC(e, ok_entry), "spec_bad.json", "train[0].format");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"sikp\": 1}", in_a);
    EXPECT_SPEC_ERROR(SPEC(ok_entry, e), "val[0]", "\"sikp\"");
    EXPECT_SPEC_ERROR(SPEC(ok_entry, "{\"path\": \"no/such/file.txt\"}"), "no/such/file.txt", "val[0]");
#undef SPEC

    tr_clear_error();
    CHECK(data_spec_load(tmp_path("spec_missing.json"), &spec) == -1 && error_has("spec_missing.json", NULL));
}

/* ---------------------------------------------------------------------------------------------- */
/* prepare errors */

static void test_prepare_errors(void) {
    const char *dir = tmp_path("perr");
    fresh_dir(dir);
    const char *a = tmp_path("perr_a.txt"), *bad = tmp_path("perr_bad.txt");
    write_story_file(a, 0, 3);
    write_text(bad, "Good story.\n<|endoftext|>\nBad \xff byte.\n<|endoftext|>\n");
    Tokenizer *tok = small_tokenizer();
    DataInput train = {(char *)a, TEXT_HF_TXT, 3}, val = {(char *)a, TEXT_HF_TXT, 0};
    DataSpec spec;
    spec_init(&spec, &train, 1, &val, 1);
    PrepareReport rep;
    tr_clear_error();
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep) == -1 && error_has("perr_a.txt", "skip"));
    CHECK(!tr_file_exists(tmp_path("perr/meta.json")));
    train.skip = 5;
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep) == -1 && error_has("perr_a.txt", "skip"));
    train.skip = 0;
    val.path = (char *)bad;
    tr_clear_error();
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep) == -1 && error_has("perr_bad.txt", NULL));
    CHECK(!tr_file_exists(tmp_path("perr/meta.json")));
    val.path = (char *)tmp_path("perr_missing.txt");
    CHECK(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep) == -1 && error_has("perr_missing.txt", NULL));
    /* A directory whose meta.json is someone else's is not ours to rewrite. */
    const char *foreign = tmp_path("perr_foreign");
    fresh_dir(foreign);
    char foreign_meta[600];
    snprintf(foreign_meta, sizeof foreign_meta, "%s/meta.json", foreign);
    write_text(foreign_meta, "{\"format\": \"something else\"}");
    val.path = (char *)a;
    tr_clear_error();
    CHECK(shards_prepare(&spec, tok, NULL, foreign, 0, 0, &rep) == -1 && error_has("meta.json", "not overwriting"));
    char *kept = tr_read_file(foreign_meta, NULL);
    CHECK(kept && strstr(kept, "something else") != NULL);
    free(kept);
    /* A successful run afterwards, and the failed one before it left no temporary files. */
    val.path = (char *)a;
    CHECKF(shards_prepare(&spec, tok, NULL, dir, 0, 0, &rep) == 0, "%s", tr_error());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", dir);
    CHECK(system(cmd) != 0);
    tok_free(tok);
}

int main(void) {
    RUN(test_data_spec);
    RUN(test_prepare_tiny_dataset);
    RUN(test_prepare_rollover);
    RUN(test_prepare_reuse);
    RUN(test_prepare_threads_identical);
    RUN(test_prepare_errors);
    RUN(test_val_loader_covers_every_target);
    RUN(test_train_loader_order_and_resume);
    RUN(test_loader_uint32_tokens);
    RUN(test_loader_batch_shifts_targets);
    RUN(test_loader_errors);
    RUN(test_prepare_sample_throughput);
    return test_summary();
}
