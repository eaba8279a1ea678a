/* train.c: the tinyrope program. Subcommands are filled in below. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    fprintf(stderr, "usage: %s <command> ...\n", argv[0]);
    return 1;
}
