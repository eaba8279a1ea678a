/* test_data_spec.c: tests for data/data_spec.c: a good spec read back field by field, and every
 * mistake in a spec (JSON, keys, types, values, missing files) reported with the file and key.
 * The shards made from a spec are tested in test_shard_writer.c. */
#include <stdio.h>
#include <string.h>

#include "data/data_spec.h"
#include "base/util.h"
#include "tests/data_test_helpers.h"
#include "tests/test.h"

static void expect_spec_error(const char *json, const char *a, const char *b, int line) {
    const char *path = tmp_path("spec_bad.json");
    write_text(path, json);
    DataSpec spec;
    tr_clear_error();
    int rc = data_spec_load(path, &spec);
    if (rc != -1 || !error_has(a, b)) {
        fprintf(stderr, "  line %d: %s: expected an error with \"%s\" and \"%s\", got rc %d: \"%s\"\n", line,
                json, a, b ? b : "", rc, tr_error());
        test_current_failed = 1;
    }
    if (rc == 0) data_spec_free(&spec);
}
#define EXPECT_SPEC_ERROR(json, a, b) expect_spec_error(json, a, b, __LINE__)

static void test_data_spec(void) {
    const char *in_a = tmp_path("spec_a.txt"), *in_b = tmp_path("spec_b.csv");
    tr_mkdir_p(tmp_path(""));
    write_text(in_a, "A story.\n<|endoftext|>\n");
    write_text(in_b, "text\nfirst\nsecond\n");
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train\": [{\"path\": \"%s\", \"format\": \"hf-txt\"}, {\"path\": \"%s\"}],\n"
             " \"val\": [{\"path\": \"%s\", \"format\": \"csv\", \"skip\": 1}]}",
             in_a, in_b, in_b);
    const char *good = tmp_path("spec_good.json");
    write_text(good, json);
    DataSpec spec;
    int rc = data_spec_load(good, &spec);
    CHECKF(rc == 0, "%s", tr_error());
    if (rc == 0) {
        CHECK(spec.n_train == 2 && spec.n_val == 1);
        CHECK(strcmp(spec.train[0].path, in_a) == 0 && spec.train[0].format == TEXT_HF_TXT && spec.train[0].skip == 0);
        CHECK(spec.train[1].format == TEXT_AUTO && spec.train[1].skip == 0);
        CHECK(spec.val[0].format == TEXT_CSV && spec.val[0].skip == 1);
        data_spec_free(&spec);
    }

    char buf[4096];
#define SPEC(train_entry, val_entry) \
    (snprintf(buf, sizeof buf, "{\"train\": [%s], \"val\": [%s]}", train_entry, val_entry), buf)
    char ok_entry[600];
    snprintf(ok_entry, sizeof ok_entry, "{\"path\": \"%s\"}", in_a);
    char e[1300];

    EXPECT_SPEC_ERROR("{\"train\": [", "spec_bad.json", "malformed");
    EXPECT_SPEC_ERROR("[1, 2]", "spec_bad.json", "expected an object");
    snprintf(e, sizeof e, "{\"train\": [%s], \"val\": [%s], \"test\": []}", ok_entry, ok_entry);
    EXPECT_SPEC_ERROR(e, "spec_bad.json", "\"test\"");
    snprintf(e, sizeof e, "{\"train\": [%s]}", ok_entry);
    EXPECT_SPEC_ERROR(e, "spec_bad.json", "\"val\"");
    EXPECT_SPEC_ERROR(SPEC("", "{}"), "spec_bad.json", "train");          /* empty list */
    snprintf(e, sizeof e, "{\"train\": {\"path\": \"%s\"}, \"val\": [%s]}", in_a, ok_entry);
    EXPECT_SPEC_ERROR(e, "spec_bad.json", "train");                       /* not a list */
    EXPECT_SPEC_ERROR(SPEC(ok_entry, "\"x.txt\""), "spec_bad.json", "val[0]"); /* entry not an object */
    EXPECT_SPEC_ERROR(SPEC(ok_entry, "{\"format\": \"csv\"}"), "val[0]", "\"path\"");
    EXPECT_SPEC_ERROR(SPEC(ok_entry, "{\"path\": 3}"), "spec_bad.json", "val[0].path");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"skip\": -1}", in_a);
    EXPECT_SPEC_ERROR(SPEC(ok_entry, e), "spec_bad.json", "val[0].skip");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"skip\": \"1\"}", in_a);
    EXPECT_SPEC_ERROR(SPEC(ok_entry, e), "spec_bad.json", "val[0].skip");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"skip\": 1.5}", in_a);
    EXPECT_SPEC_ERROR(SPEC(ok_entry, e), "spec_bad.json", "val[0].skip");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"format\": \"parquet\"}", in_a);
    EXPECT_SPEC_ERROR(SPEC(e, ok_entry), "spec_bad.json", "train[0].format");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"format\": 7}", in_a);
    EXPECT_SPEC_ERROR(SPEC(e, ok_entry), "spec_bad.json", "train[0].format");
    snprintf(e, sizeof e, "{\"path\": \"%s\", \"sikp\": 1}", in_a);
    EXPECT_SPEC_ERROR(SPEC(ok_entry, e), "val[0]", "\"sikp\"");
    EXPECT_SPEC_ERROR(SPEC(ok_entry, "{\"path\": \"no/such/file.txt\"}"), "no/such/file.txt", "val[0]");
#undef SPEC

    tr_clear_error();
    CHECK(data_spec_load(tmp_path("spec_missing.json"), &spec) == -1 && error_has("spec_missing.json", NULL));
    /* An endless file (whose stat size is 0) and one past the limit are refused before parsing. */
    CHECK(data_spec_load("/dev/zero", &spec) == -1 && error_has("/dev/zero", "larger than 1 MiB"));
    const char *big = tmp_path("spec_big.json");
    FILE *f = fopen(big, "w");
    if (f) {
        fputc('{', f);
        for (int i = 0; i < (1 << 20); i++) fputc(' ', f);
        fputc('}', f);
        fclose(f);
    }
    CHECK(data_spec_load(big, &spec) == -1 && error_has("spec_big.json", "the limit for a data spec"));
}

int main(void) {
    RUN(test_data_spec);
    return test_summary();
}
