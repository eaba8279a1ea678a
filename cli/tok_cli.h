/* tok_cli.h: the tokenizer subcommands of ./train (see train.c for the overview). Each takes
 * argv with argv[0] = the command name and returns the process exit status. */
#ifndef TINYROPE_TOK_CLI_H
#define TINYROPE_TOK_CLI_H

#include "data/data_spec.h"
#include "tokenizer/tokenizer.h"

int cmd_tokenizer(int argc, char **argv);   /* learn merges, save the tokenizer */
int cmd_encode(int argc, char **argv);      /* ids of a string, or MB/s over files */
int cmd_decode(int argc, char **argv);      /* text of ids */

/* Loads the tokenizer named by "--tokenizer FILE" or "--gpt2 ENCODER_JSON VOCAB_BPE" at argv[*i]
 * (advancing *i); returns NULL if argv[*i] is neither option. Exits with one error line if the
 * files are bad. */
Tokenizer *cli_tokenizer_option(int argc, char **argv, int *i);

/* Learns a vocab-token BPE tokenizer from the stories of inputs, saves it to out_path and returns
 * it, printing progress to stderr. Exits with one error line on bad input. */
Tokenizer *learn_tokenizer(const DataInput *inputs, int n_inputs, int vocab, const char *out_path);

#endif
