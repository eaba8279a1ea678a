/* bench_bpe_train.c: times BPE training (counting and merging separately) on whole files.
 *
 *     bench_bpe_train [--check] VOCAB_SIZE FILE...
 *
 * Each file is read whole and counted as raw text (no story splitting), then bpe_train learns
 * VOCAB_SIZE - 257 merges (256 bytes + merges + "<|endoftext|>"). Prints bytes, words, distinct
 * words, counting and merging seconds, and a fingerprint of the merges so runs can be compared.
 * --check also runs bpe_train_reference (slow: use a small vocabulary) and compares the merges.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"
#include "tokenizer/bpe_train.h"

int main(int argc, char **argv) {
    int check = 0, arg = 1;
    if (arg < argc && strcmp(argv[arg], "--check") == 0) { check = 1; arg++; }
    if (argc - arg < 2) {
        fprintf(stderr, "usage: %s [--check] VOCAB_SIZE FILE...\n", argv[0]);
        return 2;
    }
    int vocab_size = atoi(argv[arg++]);
    if (vocab_size < 257) tr_die("vocab size must be at least 257, got %s", argv[arg - 1]);
    int n_merges = vocab_size - 257;

    BpeCounter *counter = bpe_counter_new();
    size_t total_bytes = 0;
    double count_seconds = 0;
    for (; arg < argc; arg++) {
        size_t n;
        char *text = tr_read_file(argv[arg], &n);
        if (!text) tr_die_with_error();
        double t0 = tr_now_seconds();
        bpe_counter_add(counter, (const uint8_t *)text, n);
        count_seconds += tr_now_seconds() - t0;
        total_bytes += n;
        free(text);
    }

    uint32_t (*merges)[2] = xmalloc((size_t)(n_merges ? n_merges : 1) * sizeof *merges);
    double t0 = tr_now_seconds();
    int learned = bpe_train(counter, n_merges, merges, 0);
    double merge_seconds = tr_now_seconds() - t0;
    uint64_t fingerprint = tr_fnv1a64(merges, (size_t)learned * sizeof *merges, TR_FNV_OFFSET);

    printf("bytes          %zu\n", total_bytes);
    printf("words          %llu\n", (unsigned long long)bpe_counter_total(counter));
    printf("distinct words %zu\n", bpe_counter_distinct(counter));
    printf("merges         %d of %d\n", learned, n_merges);
    printf("count seconds  %.3f (%.1f MB/s)\n", count_seconds, total_bytes / 1e6 / count_seconds);
    printf("merge seconds  %.3f\n", merge_seconds);
    printf("total seconds  %.3f\n", count_seconds + merge_seconds);
    printf("fingerprint    %016llx\n", (unsigned long long)fingerprint);

    int status = 0;
    if (check) {
        uint32_t (*ref)[2] = xmalloc((size_t)(n_merges ? n_merges : 1) * sizeof *ref);
        t0 = tr_now_seconds();
        int ref_learned = bpe_train_reference(counter, n_merges, ref);
        double ref_seconds = tr_now_seconds() - t0;
        int same = ref_learned == learned && memcmp(ref, merges, (size_t)learned * sizeof *ref) == 0;
        printf("reference      %.3f seconds, %s\n", ref_seconds, same ? "identical merges" : "MERGES DIFFER");
        status = same ? 0 : 1;
        free(ref);
    }
    free(merges);
    bpe_counter_free(counter);
    return status;
}
