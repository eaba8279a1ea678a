/* data_cli.c: ./train prepare: turns the text of a data spec into token shards (data/shard_writer.h). */
#include "cli/data_cli.h"

#include <stdio.h>
#include <string.h>

#include "cli/tok_cli.h"
#include "data/data_spec.h"
#include "data/shard_writer.h"
#include "base/util.h"
#include "cli/args.h"

static void prepare_usage(void) {
    fprintf(stderr,
            "usage: train prepare --data SPEC.json (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) --out DIR\n"
            "                     [--shard-tokens N] [--force]\n"
            "  writes DIR/train_000.bin ..., DIR/val_000.bin and DIR/meta.json; a second run with the\n"
            "  same inputs and tokenizer reuses them (--force rewrites)\n");
}

static void print_split(const char *name, const SplitReport *r) {
    printf("%-5s %8llu stories %10llu tokens %11llu text bytes (%.3f bytes/token) in %d shard%s",
           name, (unsigned long long)r->stories, (unsigned long long)r->tokens,
           (unsigned long long)r->text_bytes,
           /* tokens count one EOT after each story and one opening each shard */
           r->tokens > r->stories + (uint64_t)r->n_shards
               ? (double)r->text_bytes / (double)(r->tokens - r->stories - (uint64_t)r->n_shards) : 0.0,
           r->n_shards, r->n_shards == 1 ? "" : "s");
    if (r->dropped) printf(", %llu truncated story dropped", (unsigned long long)r->dropped);
    if (!r->reused && r->seconds > 0)
        printf(", %.2f s (%.1f MB/s)", r->seconds, r->text_bytes / 1e6 / r->seconds);
    printf("\n");
}

int cmd_prepare(int argc, char **argv) {
    const char *spec_path = NULL, *out_dir = NULL, *tok_path = "(gpt2)";
    Tokenizer *tok = NULL;
    long long shard_tokens = 0;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        int at = i;
        Tokenizer *t = cli_tokenizer_option(argc, argv, &i);
        if (t) {
            if (tok) tok_free(tok);
            tok = t;
            tok_path = argv[at + 1];
        } else if (!strcmp(argv[i], "--data")) spec_path = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--out")) out_dir = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--shard-tokens"))
            shard_tokens = tr_parse_int(tr_arg_value(argc, argv, &i), "--shard-tokens", 1024, 1LL << 40);
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (!strcmp(argv[i], "--help")) { prepare_usage(); return 0; }
        else { prepare_usage(); tr_die("prepare: unknown option '%s'", argv[i]); }
    }
    if (!spec_path || !out_dir || !tok) { prepare_usage(); tr_die("prepare: give --data, a tokenizer and --out"); }

    DataSpec spec;
    if (data_spec_load(spec_path, &spec) != 0) tr_die_with_error();
    PrepareReport report;
    if (shards_prepare(&spec, tok, tok_path, out_dir, (uint64_t)shard_tokens, force, &report) != 0)
        tr_die_with_error();
    if (report.removed_temporaries)
        printf("removed %d temporary file(s) left in %s by an interrupted write\n", report.removed_temporaries, out_dir);
    if (report.train.reused && report.val.reused)
        printf("%s is up to date with its inputs and tokenizer: reusing it\n", out_dir);
    print_split("train", &report.train);
    print_split("val", &report.val);
    data_spec_free(&spec);
    tok_free(tok);
    return 0;
}
