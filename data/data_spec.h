/* data_spec.h: the data spec, the JSON file that names the text files of each split and how to
 * read them (data_spec.c). shard_writer.h encodes a spec's inputs into token shards;
 * data_input_open (story_batch.h) opens one input past its skipped stories.
 */
#ifndef TINYROPE_DATA_SPEC_H
#define TINYROPE_DATA_SPEC_H

#include "data/text_reader.h"

typedef struct {
    char *path;
    TextFormat format;
    long skip;            /* stories to skip at the start of the file (e.g. 1 for the CSV) */
} DataInput;

typedef struct {
    DataInput *train; int n_train;
    DataInput *val;   int n_val;
} DataSpec;

/* Loads a data spec from JSON:
 *   {"train": [{"path": "...", "format": "hf-txt", "skip": 0}, ...], "val": [...]}
 * "format" (default "auto") and "skip" (default 0) are optional. Relative paths are relative to
 * the current directory (the repo root), as everywhere else in tinyrope. Unknown keys, wrong
 * types, missing files: error. */
int data_spec_load(const char *json_path, DataSpec *out);
void data_spec_free(DataSpec *spec);

#endif
