/* test_shard_writer.c: tests for data/shard_writer.c: shards_prepare's layout (every header field
 * and story read back independently), rollover to new shards, reuse, thread independence, errors,
 * and the throughput on the shipped sample. The loader's own tests are in test_loader.c. */
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

#include "data/loader.h"
#include "data/shard_writer.h"
#include "base/util.h"
#include "tests/data_test_helpers.h"
#include "tests/test.h"
#include "tokenizer/tokenizer.h"

/* ---------------------------------------------------------------------------------------------- */
/* helpers */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* A shard read back by the tests, independently of shard_writer.c. */
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
    RUN(test_prepare_tiny_dataset);
    RUN(test_prepare_rollover);
    RUN(test_prepare_reuse);
    RUN(test_prepare_threads_identical);
    RUN(test_prepare_errors);
    RUN(test_prepare_sample_throughput);
    return test_summary();
}
