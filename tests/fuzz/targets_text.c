/* targets_text.c: fuzz targets for the story readers of data/text_reader.h, one per format plus
 * the automatic detection, and for data specs (data/data_spec.h). Every story a reader returns
 * must keep the reader's promises: non-empty, valid UTF-8, stripped of surrounding whitespace,
 * and counted in the stats. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "data/data_spec.h"
#include "data/text_reader.h"
#include "tests/fuzz/fuzz_targets.h"

static int is_strip_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Reads every story of path and checks each; the reader's result does not matter, only that it
 * keeps its promises and frees what it took. Returns a hash of the stories and the end (0 or -1)
 * in *resolved's format, or 0 with *resolved = TEXT_AUTO if the file did not open. */
static uint64_t read_all(const char *path, TextFormat format, TextFormat *resolved) {
    *resolved = TEXT_AUTO;
    TextReader *r = text_reader_open(path, format);
    if (!r) return 0;
    *resolved = text_reader_format(r);
    if (format != TEXT_AUTO && text_reader_format(r) != format) fuzz_fail("%s: format changed", path);
    const uint8_t *story;
    size_t len, bad;
    uint64_t stories = 0, bytes = 0, hash = TR_FNV_OFFSET;
    int rc;
    while ((rc = text_reader_next(r, &story, &len)) == 1) {
        if (len == 0) fuzz_fail("%s: empty story %llu", path, (unsigned long long)stories);
        if (is_strip_space(story[0]) || is_strip_space(story[len - 1]))
            fuzz_fail("%s: story %llu is not stripped", path, (unsigned long long)stories);
        if (!tr_utf8_valid(story, len, &bad))
            fuzz_fail("%s: story %llu is invalid UTF-8 at byte %zu", path, (unsigned long long)stories, bad);
        stories++;
        bytes += len;
        hash = tr_fnv1a64(&len, sizeof len, tr_fnv1a64(story, len, hash));
    }
    TextReaderStats stats = text_reader_stats(r);
    if (stats.stories != stories || stats.bytes != bytes)
        fuzz_fail("%s: stats say %llu stories of %llu bytes, the reader gave %llu of %llu", path,
                  (unsigned long long)stats.stories, (unsigned long long)stats.bytes,
                  (unsigned long long)stories, (unsigned long long)bytes);
    if (rc == 0 && stories == 0) fuzz_fail("%s: no stories, yet no error", path);
    text_reader_close(r);
    return tr_fnv1a64(&rc, sizeof rc, hash);
}

static int fuzz_format(const uint8_t *data, size_t size, const char *name, TextFormat format) {
    const char *path = fuzz_path(name);
    fuzz_write_file(path, data, size);
    TextFormat resolved;
    read_all(path, format, &resolved);
    return 0;
}

int fuzz_text_hf_txt(const uint8_t *data, size_t size) { return fuzz_format(data, size, "stories.txt", TEXT_HF_TXT); }
int fuzz_text_lines(const uint8_t *data, size_t size) { return fuzz_format(data, size, "rows.txt", TEXT_LINES); }
int fuzz_text_json(const uint8_t *data, size_t size) { return fuzz_format(data, size, "stories.json", TEXT_JSON); }
int fuzz_text_jsonl(const uint8_t *data, size_t size) { return fuzz_format(data, size, "stories.jsonl", TEXT_JSONL); }
int fuzz_text_csv(const uint8_t *data, size_t size) { return fuzz_format(data, size, "stories.csv", TEXT_CSV); }

/* The first byte picks the file name, since detection looks at the extension before the content.
 * Whatever format detection picks, reading with that format named gives the same stories. */
int fuzz_text_auto(const uint8_t *data, size_t size) {
    static const char *const names[] = {"auto.txt", "auto.jsonl", "auto.csv", "auto.json", "auto.data", "auto"};
    if (size == 0) return 0;
    const char *path = fuzz_path(names[data[0] % (sizeof names / sizeof *names)]);
    fuzz_write_file(path, data + 1, size - 1);
    TextFormat detected, named;
    uint64_t by_detection = read_all(path, TEXT_AUTO, &detected);
    if (detected == TEXT_AUTO) return 0;
    if (read_all(path, detected, &named) != by_detection)
        fuzz_fail("%s: detected as %s, but reading it named so gives other stories", path,
                  text_format_name(detected));
    return 0;
}

int fuzz_data_spec(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("spec.json");
    fuzz_write_file(path, data, size);
    DataSpec spec;
    memset(&spec, 0, sizeof spec);
    if (data_spec_load(path, &spec) != 0) return 0;
    const DataInput *lists[2] = {spec.train, spec.val};
    const int counts[2] = {spec.n_train, spec.n_val};
    for (int s = 0; s < 2; s++) {
        if (counts[s] < 0 || (counts[s] > 0 && !lists[s])) fuzz_fail("%s: split %d has %d inputs", path, s, counts[s]);
        for (int i = 0; i < counts[s]; i++) {
            const DataInput *in = &lists[s][i];
            if (!in->path || !in->path[0] || in->skip < 0 || !text_format_name(in->format))
                fuzz_fail("%s: input %d of split %d is malformed", path, i, s);
            if (!tr_file_exists(in->path)) fuzz_fail("%s: accepted the missing file %s", path, in->path);
        }
    }
    data_spec_free(&spec);
    return 0;
}
