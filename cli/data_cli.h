/* data_cli.h: the data subcommand of ./train (see train.c for the overview). */
#ifndef TINYROPE_DATA_CLI_H
#define TINYROPE_DATA_CLI_H

int cmd_prepare(int argc, char **argv);     /* text -> token shards + meta.json */

#endif
