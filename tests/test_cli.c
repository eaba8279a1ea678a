/* test_cli.c: ./train as a user runs it: the tokenizer -> prepare -> encode/decode pipeline on
 * the shipped sample, and every bad-input path ending in exactly one "error: <file>: ..." line
 * and a non-zero exit status (never a crash). */
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

#include "base/util.h"
#include "tests/cli_test_helpers.h"

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* The command fails with status 1 and stderr is one line "error: ..." that contains `needle`. */
static void expect_error(const char *args, const char *needle) {
    int rc = run_train(args);
    /* Usage text may precede the error for option mistakes; the last line must be the error. */
    const char *last = err_buf;
    size_t len = strlen(err_buf);
    if (len >= 2) {
        const char *p = err_buf + len - 2;
        while (p > err_buf && p[-1] != '\n') p--;
        last = p;
    }
    CHECKF(rc == 1, "train %s: exit status %d, want 1 (stderr: %s)", args, rc, err_buf);
    CHECKF(!strncmp(last, "error: ", 7) && count_lines(last) == 1,
           "train %s: last stderr line is not one 'error: ' line: %s", args, err_buf);
    CHECKF(strstr(last, needle) != NULL, "train %s: error '%s' does not mention '%s'", args, last, needle);
}

static const char *tmp_path(const char *name) {
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", test_tmp_dir(), name);
    return p;
}

static void test_pipeline_on_sample(void) {
    char args[2048];
    const char *tok = tmp_path("cli_tok.bpe");
    snprintf(args, sizeof args, "tokenizer --data configs/data/sample.json --vocab %d --out %s",
             test_small() ? 300 : 1024, tok);
    int rc = run_train(args);
    CHECKF(rc == 0, "tokenizer failed (%d): %s", rc, err_buf);
    CHECK(tr_file_exists(tok));

    const char *dir = tmp_path("cli_data");
    snprintf(args, sizeof args, "prepare --data configs/data/sample.json --tokenizer %s --out %s --force", tok, dir);
    rc = run_train(args);
    CHECKF(rc == 0, "prepare failed (%d): %s", rc, err_buf);
    CHECKF(strstr(out_buf, "198 stories") != NULL, "val split is not the 198 validation stories: %s", out_buf);
    CHECKF(strstr(out_buf, "2819 stories") != NULL, "train split is not 2819 stories: %s", out_buf);
    /* Second run: reused. */
    snprintf(args, sizeof args, "prepare --data configs/data/sample.json --tokenizer %s --out %s", tok, dir);
    rc = run_train(args);
    CHECKF(rc == 0 && strstr(out_buf, "reusing") != NULL, "second prepare did not reuse: %s", out_buf);

    /* encode -> decode round trip, with the special token. */
    const char *text = "Once upon a time, the dog ran 123 miles.<|endoftext|> The end!";
    snprintf(args, sizeof args, "encode --tokenizer %s --text '%s'", tok, text);
    rc = run_train(args);
    CHECKF(rc == 0, "encode failed: %s", err_buf);
    out_buf[strcspn(out_buf, "\n")] = '\0';
    CHECKF(strlen(out_buf) + strlen(tok) + 64 < sizeof args, "ids too long for the test's buffer");
    snprintf(args, sizeof args, "decode --tokenizer %.200s %.1700s", tok, out_buf);
    rc = run_train(args);
    CHECKF(rc == 0, "decode failed: %s", err_buf);
    char want[1024];
    snprintf(want, sizeof want, "%s\n", text);
    CHECKF(!strcmp(out_buf, want), "decode(encode(s)) = '%s', want '%s'", out_buf, want);

    /* encode over files reports a speed. */
    snprintf(args, sizeof args, "encode --tokenizer %s data/sample/validation.csv", tok);
    rc = run_train(args);
    CHECKF(rc == 0 && strstr(out_buf, "MB/s") != NULL, "encode of a file: %s %s", out_buf, err_buf);
}

static void write_text(const char *path, const char *text) { test_write_file(path, text, strlen(text)); }

static void test_bad_inputs(void) {
    char args[2048];
    const char *bad_utf8 = tmp_path("bad_utf8.txt");
    write_text(bad_utf8, "Once upon a time\n\xff\xfe oops\n<|endoftext|>\n");
    const char *binary = tmp_path("binary.txt");
    test_write_file(binary, "\x00\x01\x02\x03\x00\x00garbage", 13);
    const char *empty = tmp_path("empty.txt");
    test_write_file(empty, "", 0);
    const char *bad_tok = tmp_path("bad_tok.bpe");
    write_text(bad_tok, "not-a-tokenizer 1\n");
    const char *bad_spec = tmp_path("bad_spec.json");
    write_text(bad_spec, "{\"train\": [{\"path\": \"data/sample/tiny_stories.txt\", \"colour\": 1}]}");
    const char *tok = tmp_path("cli_tok_small.bpe");
    snprintf(args, sizeof args, "tokenizer --input data/sample/validation.csv --vocab 260 --out %s", tok);
    CHECKF(run_train(args) == 0, "small tokenizer: %s", err_buf);

    expect_error("no-such-command", "unknown command");
    expect_error("tokenizer --input /nonexistent/stories.txt --out x.bpe", "/nonexistent/stories.txt");
    snprintf(args, sizeof args, "tokenizer --input %s --out %s", bad_utf8, tmp_path("x.bpe"));
    expect_error(args, "invalid UTF-8");
    snprintf(args, sizeof args, "tokenizer --input %s --out %s", binary, tmp_path("x.bpe"));
    expect_error(args, binary);
    snprintf(args, sizeof args, "tokenizer --input %s --out %s", empty, tmp_path("x.bpe"));
    expect_error(args, empty);
    snprintf(args, sizeof args, "tokenizer --input data/sample/validation.csv --vocab 12x --out %s", tmp_path("x.bpe"));
    expect_error(args, "--vocab");
    snprintf(args, sizeof args, "encode --tokenizer %s --text hi", bad_tok);
    expect_error(args, bad_tok);
    snprintf(args, sizeof args, "encode --gpt2 /nonexistent/encoder.json /nonexistent/vocab.bpe --text hi");
    expect_error(args, "/nonexistent/");
    snprintf(args, sizeof args, "decode --tokenizer %s 99999", tok);
    expect_error(args, "99999");
    snprintf(args, sizeof args, "prepare --data %s --tokenizer %s --out %s", bad_spec, tok, tmp_path("d"));
    expect_error(args, "colour");
    snprintf(args, sizeof args, "prepare --data /nonexistent/spec.json --tokenizer %s --out %s", tok, tmp_path("d"));
    expect_error(args, "/nonexistent/spec.json");
    expect_error("prepare --data configs/data/sample.json --out x", "tokenizer");
}

int main(void) {
    RUN(test_pipeline_on_sample);
    RUN(test_bad_inputs);
    return test_summary();
}
