/* targets_data.c: fuzz targets for prepared datasets (data/loader.h, format in
 * data/shard_format.h): a fuzzed meta.json over valid shards, a fuzzed shard under a meta.json
 * that agrees with its header, and the round trip text -> shards (shard_writer.h) -> loader,
 * whose tokens must equal an independent encoding of the same stories. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "data/data_spec.h"
#include "data/loader.h"
#include "data/shard_writer.h"
#include "data/text_reader.h"
#include "tests/fuzz/fuzz_targets.h"
#include "tokenizer/tokenizer.h"

/* A small tokenizer: 256 bytes, four merges, then <|endoftext|> (id 260). */
static Tokenizer *small_tokenizer(void) {
    static const uint32_t merges[][2] = {{'t', 'h'}, {256, 'e'}, {' ', 'a'}, {'e', ' '}};
    Tokenizer *tok = tok_from_merges(merges, 4);
    if (!tok) fuzz_fail("tok_from_merges: %s", tr_error());
    return tok;
}

/* Reads the split through a loader; every token must lie in the vocabulary, every row keep its
 * target count within T. Bounded, since a training loader never ends. */
static void drain(TokenLoader *L, int B, int T, uint32_t vocab, const char *what) {
    int32_t *tokens = xmalloc((size_t)B * (T + 1) * sizeof *tokens);
    int32_t *inputs = xmalloc((size_t)B * T * sizeof *inputs), *targets = xmalloc((size_t)B * T * sizeof *targets);
    int n_targets[8];
    for (int call = 0; call < 64; call++) {
        int rc = call % 2 ? loader_next(L, tokens, n_targets) : loader_next_batch(L, inputs, targets);
        if (rc != 1) break;
        for (int b = 0; b < B && call % 2; b++) {
            if (n_targets[b] < 0 || n_targets[b] > T) fuzz_fail("%s: row %d has %d targets", what, b, n_targets[b]);
            for (int t = 0; t <= T; t++)
                if (tokens[(size_t)b * (T + 1) + t] < 0 || (uint32_t)tokens[(size_t)b * (T + 1) + t] >= vocab)
                    fuzz_fail("%s: token %d outside the vocabulary", what, tokens[(size_t)b * (T + 1) + t]);
        }
        for (int i = 0; i < B * T && !(call % 2); i++)
            if (inputs[i] < 0 || (uint32_t)inputs[i] >= vocab || targets[i] < -1 || targets[i] >= (int32_t)vocab)
                fuzz_fail("%s: input %d / target %d outside the vocabulary", what, inputs[i], targets[i]);
    }
    LoaderState s = loader_get_state(L);
    if (loader_set_state(L, s) != 0) fuzz_fail("%s: its own state refused: %s", what, tr_error());
    free(tokens);
    free(inputs);
    free(targets);
}

static void open_and_drain(const char *dir, uint64_t hash, uint32_t vocab) {
    static const struct { const char *split; int B, T, shuffle; } runs[] = {
        {"train", 2, 4, 1}, {"train", 1, 1, 0}, {"val", 3, 5, 0}, {"val", 2, 3, 1}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        TokenLoader *L = loader_open(dir, runs[i].split, hash, runs[i].B, runs[i].T, runs[i].shuffle, 7);
        if (!L) continue;
        drain(L, runs[i].B, runs[i].T, vocab, dir);
        loader_close(L);
    }
}

/* ---- a fuzzed meta.json over shards written once by shards_prepare ---- */

static const char fixed_text[] =
    "Once upon a time there was a cat.\n<|endoftext|>\nThe cat sat on the mat. Then the end.\n"
    "<|endoftext|>\nA boy had a red ball and the ball was the best.\n<|endoftext|>\n"
    "They ate the cake at the lake.\n<|endoftext|>\n";

int fuzz_loader_meta(const uint8_t *data, size_t size) {
    static char dir[768];
    static Tokenizer *tok;
    if (!tok) {
        tok = small_tokenizer();
        const char *text_path = fuzz_path("fixed_stories.txt");
        fuzz_write_file(text_path, fixed_text, sizeof fixed_text - 1);
        snprintf(dir, sizeof dir, "%s", fuzz_path("dataset_meta"));
        DataInput input = {.path = (char *)text_path, .format = TEXT_HF_TXT, .skip = 0};
        DataSpec spec = {.train = &input, .n_train = 1, .val = &input, .n_val = 1};
        PrepareReport report;
        if (shards_prepare(&spec, tok, "small.bpe", dir, 16, 1, &report) != 0) fuzz_fail("prepare: %s", tr_error());
    }
    char meta_path[800];
    snprintf(meta_path, sizeof meta_path, "%s/meta.json", dir);
    fuzz_write_file(meta_path, data, size);
    open_and_drain(dir, tok_hash(tok), (uint32_t)tok_vocab_size(tok));
    return 0;
}

/* ---- a fuzzed shard under a meta.json made from the shard's own header ---- */

static uint64_t read_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* The header's fields go into meta.json as they are, so the loader's checks of the shard against
 * meta.json pass whenever the header is self-consistent, and the fuzzer reaches the tokens. */
int fuzz_loader_shard(const uint8_t *data, size_t size) {
    char dir[768];
    snprintf(dir, sizeof dir, "%s", fuzz_path("dataset_shard"));
    if (tr_mkdir_p(dir) != 0) fuzz_fail("%s", tr_error());
    char path[800];
    snprintf(path, sizeof path, "%s/train_000.bin", dir);
    fuzz_write_file(path, data, size);
    uint64_t n = 0, vocab = 300, eot = 299, hash = 0;
    if (size >= 40) {
        n = read_le(data + 16, 8);
        vocab = read_le(data + 24, 4);
        eot = read_le(data + 28, 4);
        hash = read_le(data + 32, 8);
    }
    uint64_t bpt = vocab <= 65536 ? 2 : 4;
    char meta[2048];
    char split[512];
    snprintf(split, sizeof split,
             "{\"tokens\": %" PRIu64 ", \"stories\": 1, \"text_bytes\": 10, \"dropped\": 0, "
             "\"shards\": [{\"file\": \"train_000.bin\", \"tokens\": %" PRIu64 "}]}", n, n);
    snprintf(meta, sizeof meta,
             "{\"format\": \"tinyrope-shards\", \"version\": 1, \"fingerprint\": \"0123456789abcdef\", "
             "\"tokenizer\": {\"path\": \"t.bpe\", \"hash\": \"%016" PRIx64 "\", \"vocab_size\": %" PRIu64
             ", \"eot\": %" PRIu64 "}, \"token_bytes\": %" PRIu64 ", \"splits\": {\"train\": %s, \"val\": %s}}",
             hash, vocab, eot, bpt, split, split);
    snprintf(path, sizeof path, "%s/meta.json", dir);
    fuzz_write_file(path, meta, strlen(meta));
    open_and_drain(dir, hash, (uint32_t)vocab);
    return 0;
}

/* ---- the round trip: fuzzed stories -> shards -> loader ---- */

typedef struct {
    uint32_t *ids;
    size_t n, cap;
} IdList;

static void ids_push(IdList *l, const uint32_t *ids, size_t n) {
    if (l->n + n > l->cap) {
        l->cap = (l->n + n) * 2 + 64;
        l->ids = xrealloc(l->ids, l->cap * sizeof *l->ids);
    }
    if (n) memcpy(l->ids + l->n, ids, n * sizeof *ids);
    l->n += n;
}

/* Every story of path encoded on its own with the reference encoder, each followed by EOT: the
 * targets of a split, in order (a shard's opening EOT is never a target). */
static int expected_targets(const char *path, TextFormat format, const Tokenizer *tok, IdList *out) {
    TextReader *r = text_reader_open(path, format);
    if (!r) return -1;
    const uint8_t *story;
    size_t len;
    int rc;
    uint32_t eot = (uint32_t)tok_eot_id(tok);
    while ((rc = text_reader_next(r, &story, &len)) == 1) {
        uint32_t *ids = xmalloc((len + 1) * sizeof *ids);
        size_t n = tok_encode_reference(tok, story, len, ids, len);
        if (n > len) fuzz_fail("reference encoder: %zu ids for %zu bytes", n, len);
        ids[n] = eot;
        ids_push(out, ids, n + 1);
        free(ids);
    }
    text_reader_close(r);
    return rc;
}

/* Byte 0 picks the format, byte 1 the shard size cap, byte 2 the window length; the rest is
 * the text, used for both splits. */
int fuzz_shard_round_trip(const uint8_t *data, size_t size) {
    static const TextFormat formats[] = {TEXT_HF_TXT, TEXT_LINES, TEXT_JSONL, TEXT_CSV, TEXT_JSON};
    static const char *const names[] = {"rt.txt", "rt_rows.txt", "rt.jsonl", "rt.csv", "rt.json"};
    static Tokenizer *tok;
    if (size < 3) return 0;
    if (!tok) tok = small_tokenizer();
    int which = data[0] % 5;
    uint64_t shard_tokens = 2 + data[1] % 64;
    int T = 1 + data[2] % 8;
    const char *text_path = fuzz_path(names[which]);
    fuzz_write_file(text_path, data + 3, size - 3);
    char dir[768];
    snprintf(dir, sizeof dir, "%s", fuzz_path("dataset_round_trip"));
    DataInput input = {.path = (char *)text_path, .format = formats[which], .skip = 0};
    DataSpec spec = {.train = &input, .n_train = 1, .val = &input, .n_val = 1};
    PrepareReport report;
    if (shards_prepare(&spec, tok, "small.bpe", dir, shard_tokens, 1, &report) != 0) return 0;
    IdList want = {0};
    if (expected_targets(text_path, formats[which], tok, &want) != 0)
        fuzz_fail("prepare accepted %s, the reader alone does not: %s", text_path, tr_error());
    if (report.train.stories == 0 || report.train.tokens != want.n + (uint64_t)report.train.n_shards)
        fuzz_fail("prepare wrote %" PRIu64 " tokens in %d shards; expected %zu targets", report.train.tokens,
                  report.train.n_shards, want.n);
    for (int s = 0; s < 2; s++) {
        const char *split = s ? "val" : "train";
        enum { B = 3 };
        TokenLoader *L = loader_open(dir, split, tok_hash(tok), B, T, 0, 1);
        if (!L) continue;  /* no full window: every shard shorter than T + 1 */
        int32_t *tokens = xmalloc((size_t)B * (T + 1) * sizeof *tokens);
        int n_targets[B];
        IdList got = {0};
        int rc;
        while ((rc = loader_next(L, tokens, n_targets)) == 1)
            for (int b = 0; b < B; b++)
                for (int t = 1; t <= n_targets[b]; t++) ids_push(&got, (uint32_t *)&tokens[(size_t)b * (T + 1) + t], 1);
        if (rc != 0) fuzz_fail("%s: loader_next failed: %s", split, tr_error());
        if (got.n != want.n || memcmp(got.ids, want.ids, want.n * sizeof *want.ids) != 0)
            fuzz_fail("%s: the loader's %zu targets differ from the %zu of an independent encode", split, got.n,
                      want.n);
        free(got.ids);
        free(tokens);
        loader_close(L);
    }
    free(want.ids);
    return 0;
}
