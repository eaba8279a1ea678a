/* tok_cli.c: ./train tokenizer | encode | decode.
 *
 * "tokenizer" streams the stories of a data spec's train split (or of --input files) through the
 * word counter, learns the merges and saves the tokenizer; "encode" is also the tokenizer's speed
 * benchmark (stories encoded in parallel with OpenMP, MB/s reported).
 */
#define _POSIX_C_SOURCE 200809L
#include "cli/tok_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "data/data_spec.h"
#include "data/story_batch.h"
#include "data/text_reader.h"
#include "base/util.h"
#include "cli/args.h"
#include "tokenizer/bpe_train.h"

Tokenizer *cli_tokenizer_option(int argc, char **argv, int *i) {
    Tokenizer *tok = NULL;
    if (!strcmp(argv[*i], "--tokenizer")) {
        tok = tok_load(tr_arg_value(argc, argv, i));
    } else if (!strcmp(argv[*i], "--gpt2")) {
        const char *encoder = tr_arg_value(argc, argv, i);
        const char *vocab = tr_arg_value(argc, argv, i);
        tok = tok_load_gpt2(encoder, vocab);
    } else {
        return NULL;
    }
    if (!tok) tr_die_with_error();
    return tok;
}

/* Calls fn(story, len, ctx) for every story of the inputs (skips honoured); exits on a bad file.
 * Returns the number of stories. */
static uint64_t for_each_story(const DataInput *inputs, int n_inputs,
                               void (*fn)(const uint8_t *, size_t, void *), void *ctx) {
    uint64_t stories = 0;
    for (int k = 0; k < n_inputs; k++) {
        TextReader *r = data_input_open(&inputs[k]);
        if (!r) tr_die_with_error();
        const uint8_t *story;
        size_t len;
        int rc;
        while ((rc = text_reader_next(r, &story, &len)) == 1) {
            fn(story, len, ctx);
            stories++;
        }
        if (rc < 0) tr_die_with_error();
        TextReaderStats st = text_reader_stats(r);
        if (st.dropped)
            fprintf(stderr, "note: %s: dropped %llu truncated story at the end of the file\n",
                    inputs[k].path, (unsigned long long)st.dropped);
        text_reader_close(r);
    }
    return stories;
}

static void count_story(const uint8_t *story, size_t len, void *ctx) {
    bpe_counter_add((BpeCounter *)ctx, story, len);
}

/* bpe_train's progress line, every 500 merges */
static void print_merge_progress(void *ctx, int learned, int n_merges, uint32_t left, uint32_t right, uint32_t id,
                                 uint64_t count, double seconds) {
    fprintf(stderr, "bpe: merge %d/%d: (%u, %u) -> %u, count %llu, %.2fs\n", learned, n_merges, left, right, id,
            (unsigned long long)count, seconds);
}

static void tokenizer_usage(void) {
    fprintf(stderr,
            "usage: train tokenizer (--data SPEC.json | --input FILE...) --vocab N --out FILE\n"
            "  --data SPEC.json   learn from the \"train\" inputs of a data spec (configs/data/)\n"
            "  --input FILE...    or from these files (format detected from the content)\n"
            "  --vocab N          vocabulary size: 256 bytes + merges + <|endoftext|> (default 4096)\n"
            "  --out FILE         where to write the tokenizer (tinyrope-bpe text format)\n");
}

int cmd_tokenizer(int argc, char **argv) {
    const char *spec_path = NULL, *out_path = NULL;
    long long vocab = 4096;
    DataSpec spec = {0};
    int n_files = 0;
    DataInput *files = xcalloc((size_t)argc, sizeof *files);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data")) spec_path = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--vocab")) vocab = tr_parse_int(tr_arg_value(argc, argv, &i), "--vocab", 258, 1 << 20);
        else if (!strcmp(argv[i], "--out")) out_path = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--input")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                files[n_files++] = (DataInput){.path = argv[++i], .format = TEXT_AUTO, .skip = 0};
        } else if (!strcmp(argv[i], "--help")) { tokenizer_usage(); free(files); return 0; }
        else { tokenizer_usage(); tr_die("tokenizer: unknown option '%s'", argv[i]); }
    }
    if (!out_path || (!spec_path && !n_files) || (spec_path && n_files)) {
        tokenizer_usage();
        tr_die("tokenizer: give --out and exactly one of --data or --input");
    }
    const DataInput *inputs = files;
    int n_inputs = n_files;
    if (spec_path) {
        if (data_spec_load(spec_path, &spec) != 0) tr_die_with_error();
        inputs = spec.train;
        n_inputs = spec.n_train;
    }

    Tokenizer *tok = learn_tokenizer(inputs, n_inputs, (int)vocab, out_path);
    tok_free(tok);
    data_spec_free(&spec);
    free(files);
    return 0;
}

Tokenizer *learn_tokenizer(const DataInput *inputs, int n_inputs, int vocab, const char *out_path) {
    int n_merges = vocab - 257;
    double t0 = tr_now_seconds();
    BpeCounter *counter = bpe_counter_new();
    uint64_t stories = for_each_story(inputs, n_inputs, count_story, counter);
    double t_count = tr_now_seconds() - t0;
    fprintf(stderr, "counted %llu words (%zu distinct) in %llu stories in %.2f s\n",
            (unsigned long long)bpe_counter_total(counter), bpe_counter_distinct(counter),
            (unsigned long long)stories, t_count);

    uint32_t (*merges)[2] = xmalloc((size_t)(n_merges > 0 ? n_merges : 1) * sizeof *merges);
    double t1 = tr_now_seconds();
    const BpeProgress progress = {.every = 500, .report = print_merge_progress};
    int learned = bpe_train(counter, n_merges, merges, &progress);
    double t_merge = tr_now_seconds() - t1;
    if (learned < n_merges)
        fprintf(stderr, "note: only %d merges possible (no pair occurs twice any more): vocab %d, not %d\n",
                learned, learned + 257, vocab);
    Tokenizer *tok = tok_from_merges((const uint32_t(*)[2])merges, learned);
    if (!tok || tok_save(tok, out_path) != 0) tr_die_with_error();
    fprintf(stderr, "learned %d merges in %.2f s (total %.2f s); vocab %d, hash %016llx -> %s\n", learned,
            t_merge, tr_now_seconds() - t0, tok_vocab_size(tok), (unsigned long long)tok_hash(tok), out_path);
    free(merges);
    bpe_counter_free(counter);
    return tok;
}

/* ---- encode ---- */

/* Stories are gathered into a StoryBatch, as prepare does, and each batch is encoded by all
 * threads at once. */
typedef struct {
    const Tokenizer *tok;
    const char *path;
    StoryBatch batch;
    uint64_t tokens, bytes;
} EncodeRun;

static void encode_flush(EncodeRun *e) {
    if (story_batch_encode(&e->batch, e->tok, e->path) != 0) tr_die_with_error();
    for (int i = 0; i < e->batch.n; i++) e->tokens += e->batch.n_ids[i] + 1;   /* + EOT */
    e->bytes += e->batch.len;
    story_batch_clear(&e->batch);
}

static void encode_add(const uint8_t *story, size_t len, void *ctx) {
    EncodeRun *e = ctx;
    story_batch_add(&e->batch, story, len);
    if (story_batch_full(&e->batch)) encode_flush(e);
}

static void encode_usage(void) {
    fprintf(stderr,
            "usage: train encode (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) (--text STRING | FILE...)\n"
            "  --text STRING   print the ids of STRING (\"<|endoftext|>\" becomes the special id)\n"
            "  FILE...         encode every story of the files in parallel and report MB/s\n");
}

int cmd_encode(int argc, char **argv) {
    Tokenizer *tok = NULL;
    const char *text = NULL;
    int n_files = 0;
    DataInput *files = xcalloc((size_t)argc, sizeof *files);
    for (int i = 1; i < argc; i++) {
        Tokenizer *t = cli_tokenizer_option(argc, argv, &i);
        if (t) { if (tok) tok_free(tok); tok = t; }
        else if (!strcmp(argv[i], "--text")) text = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--help")) { encode_usage(); return 0; }
        else if (!strncmp(argv[i], "--", 2)) { encode_usage(); tr_die("encode: unknown option '%s'", argv[i]); }
        else files[n_files++] = (DataInput){.path = argv[i], .format = TEXT_AUTO, .skip = 0};
    }
    if (!tok || (!text && !n_files)) { encode_usage(); tr_die("encode: give a tokenizer and --text or files"); }

    if (text) {
        size_t n = strlen(text);
        uint32_t *ids = xmalloc((n + 1) * sizeof *ids);
        size_t k = tok_encode_with_special(tok, (const uint8_t *)text, n, ids, n + 1);
        for (size_t j = 0; j < k; j++) printf(j ? " %u" : "%u", ids[j]);
        printf("\n");
        free(ids);
    } else {
        EncodeRun e = {.tok = tok, .path = files[0].path};
        double t0 = tr_now_seconds();
        uint64_t stories = for_each_story(files, n_files, encode_add, &e);
        encode_flush(&e);
        double dt = tr_now_seconds() - t0;
        int threads = 1;
#ifdef _OPENMP
        threads = omp_get_max_threads();
#endif
        printf("encoded %llu stories, %.2f MB -> %llu tokens (%.3f bytes/token, EOT after each story) "
               "in %.3f s: %.2f MB/s on %d thread(s) (reading included)\n",
               (unsigned long long)stories, e.bytes / 1e6, (unsigned long long)e.tokens,
               (double)e.bytes / (double)(e.tokens - stories), dt, e.bytes / 1e6 / dt, threads);
        story_batch_free(&e.batch);
    }
    tok_free(tok);
    free(files);
    return 0;
}

/* ---- decode ---- */

int cmd_decode(int argc, char **argv) {
    Tokenizer *tok = NULL;
    size_t n = 0;
    uint32_t *ids = xmalloc((size_t)argc * sizeof *ids);
    for (int i = 1; i < argc; i++) {
        Tokenizer *t = cli_tokenizer_option(argc, argv, &i);
        if (t) { if (tok) tok_free(tok); tok = t; continue; }
        if (!strcmp(argv[i], "--help")) {
            fprintf(stderr, "usage: train decode (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) ID...\n");
            return 0;
        }
        ids[n++] = (uint32_t)tr_parse_int(argv[i], "decode: token id", 0, UINT32_MAX);
    }
    if (!tok) tr_die("decode: give --tokenizer FILE or --gpt2 ENCODER_JSON VOCAB_BPE");
    size_t len = tok_decode(tok, ids, n, NULL, 0);
    if (len == (size_t)-1) tr_die_with_error();
    uint8_t *out = xmalloc(len + 1);
    tok_decode(tok, ids, n, out, len);
    fwrite(out, 1, len, stdout);
    printf("\n");
    free(out);
    free(ids);
    tok_free(tok);
    return 0;
}
