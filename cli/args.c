/* args.c: the command layer's error exits and option parsing (see args.h). */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"

void tr_die_with_error(void) {
    fprintf(stderr, "error: %s\n", tr_error()[0] ? tr_error() : "unknown error");
    exit(1);
}

void tr_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

const char *tr_arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) tr_die("%s needs a value", argv[*i]);
    return argv[++*i];
}

long long tr_parse_int(const char *s, const char *what, long long min, long long max) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) tr_die("%s: '%s' is not an integer", what, s);
    if (v < min || v > max) tr_die("%s: %lld is out of range [%lld, %lld]", what, v, min, max);
    return v;
}

double tr_parse_double(const char *s, const char *what, double min, double max) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) tr_die("%s: '%s' is not a number", what, s);
    if (v < min || v > max) tr_die("%s: %g is out of range [%g, %g]", what, v, min, max);
    return v;
}
