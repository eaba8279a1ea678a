/* targets_tokenizer.c: fuzz targets for the tokenizer files: our format (tok_load) and OpenAI's
 * GPT-2 pair (tok_load_gpt2), each file fuzzed against a fixed, valid partner. A tokenizer that
 * loads must be usable: every token has bytes, and decode(encode(text)) gives the text back. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tests/fuzz/fuzz_targets.h"
#include "tokenizer/tokenizer.h"

#define GPT2_FIXTURE_DIR "tests/fixtures/gpt2_tiny"

/* The checks every loaded tokenizer must pass; frees it. */
static void check_usable(Tokenizer *tok, const char *what) {
    int vocab = tok_vocab_size(tok), eot = tok_eot_id(tok);
    if (vocab < 257 || eot < 0 || eot >= vocab) fuzz_fail("%s: vocab %d, eot %d", what, vocab, eot);
    for (int id = 0; id < vocab; id++) {
        int len = -1;
        if (!tok_token_bytes(tok, id, &len) || len < 0) fuzz_fail("%s: token %d has no bytes", what, id);
    }
    (void)tok_hash(tok);
    static const char text[] = "Once upon a time, the  cat's hat\n\nsaid \"hi\" <|endoftext|> 42 \xc3\xa9t\xc3\xa9!";
    const size_t n = sizeof text - 1;
    uint32_t ids[sizeof text], ref[sizeof text];
    uint8_t back[sizeof text];
    size_t n_ids = tok_encode(tok, (const uint8_t *)text, n, ids, n);
    size_t n_ref = tok_encode_reference(tok, (const uint8_t *)text, n, ref, n);
    if (n_ids > n || n_ids != n_ref || memcmp(ids, ref, n_ids * sizeof *ids) != 0)
        fuzz_fail("%s: the encoder and the reference encoder disagree", what);
    size_t n_back = tok_decode(tok, ids, n_ids, back, sizeof back);
    if (n_back != n || memcmp(back, text, n) != 0) fuzz_fail("%s: decode(encode(text)) != text", what);
    tok_free(tok);
}

/* A loaded tokenizer saved again must load as the same vocabulary and merges. */
int fuzz_tok_file(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("tokenizer.bpe"), *again_path = fuzz_path("tokenizer_again.bpe");
    fuzz_write_file(path, data, size);
    Tokenizer *tok = tok_load(path);
    if (!tok) return 0;
    if (tok_save(tok, again_path) != 0) fuzz_fail("a loaded tokenizer does not save: %s", tr_error());
    Tokenizer *again = tok_load(again_path);
    if (!again) fuzz_fail("a saved tokenizer does not load: %s", tr_error());
    if (tok_hash(again) != tok_hash(tok) || tok_vocab_size(again) != tok_vocab_size(tok))
        fuzz_fail("a tokenizer changes when saved and loaded");
    tok_free(again);
    check_usable(tok, "tok_load");
    return 0;
}

int fuzz_gpt2_encoder(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("encoder.json");
    fuzz_write_file(path, data, size);
    Tokenizer *tok = tok_load_gpt2(path, GPT2_FIXTURE_DIR "/vocab.bpe");
    if (tok) check_usable(tok, "tok_load_gpt2 (encoder.json fuzzed)");
    return 0;
}

int fuzz_gpt2_vocab(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("vocab.bpe");
    fuzz_write_file(path, data, size);
    Tokenizer *tok = tok_load_gpt2(GPT2_FIXTURE_DIR "/encoder.json", path);
    if (tok) check_usable(tok, "tok_load_gpt2 (vocab.bpe fuzzed)");
    return 0;
}
