/* fuzz_entry.c: the libFuzzer entry point of one target, chosen at compile time with
 * -DFUZZ_TARGET_FN=fuzz_<name> (the Makefile builds one binary per target). */
#include "tests/fuzz/fuzz_targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return FUZZ_TARGET_FN(data, size); }
