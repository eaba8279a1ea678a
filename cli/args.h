/* args.h: for the command layer only (train.c, cli/, scripts/ mains, benches): these print one
 * "error: ..." line and exit non-zero. Library code (base/, tokenizer/, data/, model/) never
 * calls them; it records the message with tr_set_error and returns, and the command prints it. */
#ifndef TINYROPE_ARGS_H
#define TINYROPE_ARGS_H

#include "base/util.h"

/* Prints "error: <tr_error()>" to stderr and exits with status 1. */
void tr_die_with_error(void);
/* Prints "error: <formatted>" to stderr and exits with status 1. */
void tr_die(const char *fmt, ...) TR_PRINTF(1, 2);

/* The value after option argv[*i] (advancing *i), or "error: <option> needs a value" + exit. */
const char *tr_arg_value(int argc, char **argv, int *i);
/* Parses a whole decimal integer in [min, max] or exits with "error: <what>: ...". */
long long tr_parse_int(const char *s, const char *what, long long min, long long max);
/* Parses a whole finite number in [min, max] or exits with "error: <what>: ...". */
double tr_parse_double(const char *s, const char *what, double min, double max);

#endif
