/* train.c: the tinyrope program, one binary with subcommands.
 *
 *   ./train tokenizer --data configs/data/sample.json --vocab 4096 --out runs/tok.bpe
 *         learn a byte-level BPE tokenizer from the train split of a data spec (or --input FILES)
 *   ./train prepare --data configs/data/sample.json --tokenizer runs/tok.bpe --out runs/data
 *         encode train and val text into token shards + meta.json (reused when up to date)
 *   ./train encode (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) (--text STRING | FILES...)
 *         print the ids of a string, or encode whole files in parallel and report MB/s
 *   ./train decode (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) ID...
 *
 * Every command reports bad input as one "error: <file>: <what>" line and exits with status 1.
 * The commands themselves live next to what they drive (tokenizer/tok_cli.c, data/...); this file
 * only dispatches, so it can read top to bottom as the map of the program.
 */
#include <stdio.h>
#include <string.h>

#include "data/data_cli.h"
#include "tokenizer/tok_cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
    const char *help;
} Command;

static const Command commands[] = {
    {"tokenizer", cmd_tokenizer, "learn a BPE tokenizer from text"},
    {"prepare", cmd_prepare, "encode text into token shards"},
    {"encode", cmd_encode, "encode a string or files; reports MB/s"},
    {"decode", cmd_decode, "decode token ids to text"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: train <command> [options]   (train <command> --help for its options)\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s' (train --help lists the commands)\n", argv[1]);
    return 1;
}
