/* fuzz_targets.h: the fuzz targets, one function per loader or round trip, shared by the thin
 * libFuzzer entry (fuzz_entry.c, one binary per target) and by tests/test_fuzz_regressions.c,
 * which replays every committed seed and regression input through the same functions with GCC.
 *
 * A target takes arbitrary bytes, feeds them to one loader (through a scratch file when the
 * loader takes a path), checks what the loader promises about anything it accepts, frees
 * everything and returns 0. A broken promise calls fuzz_fail, which aborts so that libFuzzer
 * records the input. Inputs that hold several files separate them with FUZZ_PART_SEPARATOR.
 */
#ifndef TINYROPE_FUZZ_TARGETS_H
#define TINYROPE_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

typedef int (*FuzzTargetFn)(const uint8_t *data, size_t size);

typedef struct {
    const char *name;           /* the directory name under tests/fuzz/seeds and regressions */
    FuzzTargetFn run;
} FuzzTarget;

/* Every target, NULL-terminated. */
extern const FuzzTarget fuzz_targets[];

#define FUZZ_TARGET_LIST(X)                                             \
    X(tok_file) X(gpt2_encoder) X(gpt2_vocab)                           \
    X(text_auto) X(text_hf_txt) X(text_lines) X(text_json)              \
    X(text_jsonl) X(text_csv) X(data_spec)                              \
    X(loader_meta) X(loader_shard) X(shard_round_trip)                  \
    X(checkpoint) X(checkpoint_round_trip) X(config) X(posenc)

#define FUZZ_DECLARE(name) int fuzz_##name(const uint8_t *data, size_t size);
FUZZ_TARGET_LIST(FUZZ_DECLARE)
#undef FUZZ_DECLARE

/* ---- what the targets share (fuzz_support.c) ---- */

#define FUZZ_PART_SEPARATOR "\n#----\n"

/* A directory of this process for scratch files: $TINYROPE_TEST_TMP/fuzz-<pid>, else
 * $TMPDIR (or /tmp)/tinyrope-fuzz-<pid>. Created on first use. */
const char *fuzz_scratch_dir(void);
/* "<scratch>/<name>" in a static buffer of a small rotating pool (eight live at once). */
const char *fuzz_path(const char *name);
/* Writes n bytes to path, stopping the process if it cannot (the scratch disk is broken). */
void fuzz_write_file(const char *path, const void *data, size_t n);
/* Splits data at each FUZZ_PART_SEPARATOR into at most max_parts parts (the last one keeps the
 * rest); returns the count. Part i is data[start[i] .. start[i] + len[i]). */
int fuzz_split(const uint8_t *data, size_t size, int max_parts, const uint8_t **start, size_t *len);
/* A NUL-terminated copy of n bytes (caller frees). */
char *fuzz_strndup(const uint8_t *data, size_t n);
/* Prints what broke and aborts. */
void fuzz_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

#endif
