/* test_text_reader_formats.c: the story readers of data/text_reader.c on small hand-written files.
 *
 * Exact stories and counts for every format (CRLF, byte order mark, paragraph breaks, quoting,
 * escapes, truncated endings), every error path with its message, format detection and the size
 * limits. Every fixture is read with several tiny read blocks (text_reader_block_size is a test
 * hook) as well as the default 1 MiB, so stories, lines and quoted fields cross block boundaries
 * at every possible place. Random, large and real files: test_text_reader_bulk.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/text_reader.h"
#include "base/util.h"
#include "tests/test.h"
#include "tests/text_reader_test_helpers.h"

static const size_t BLOCK_SIZES[] = {4, 5, 7, 16, 61, DEFAULT_BLOCK};
#define N_BLOCK_SIZES (sizeof BLOCK_SIZES / sizeof BLOCK_SIZES[0])

/* Reads path with every block size and checks the stories are exactly `expected` (NULL-ended)
 * and the stats agree. */
static void expect_stories_at(int line, const char *path, TextFormat format, uint64_t dropped,
                              const char *const *expected) {
    size_t n_expected = 0, bytes = 0;
    while (expected[n_expected]) bytes += strlen(expected[n_expected++]);
    for (size_t b = 0; b < N_BLOCK_SIZES; b++) {
        text_reader_block_size = BLOCK_SIZES[b];
        Read rd = read_all(path, format);
        CHECKF(rd.ok, "line %d, block %zu: %s", line, BLOCK_SIZES[b], rd.error);
        CHECKF(rd.n == n_expected, "line %d, block %zu: %zu stories, want %zu", line, BLOCK_SIZES[b], rd.n,
               n_expected);
        for (size_t i = 0; i < rd.n && i < n_expected; i++)
            CHECKF(rd.len[i] == strlen(expected[i]) && memcmp(rd.s[i], expected[i], rd.len[i]) == 0,
                   "line %d, block %zu, story %zu: got \"%s\", want \"%s\"", line, BLOCK_SIZES[b], i,
                   shown(rd.s[i], rd.len[i]), shown(expected[i], strlen(expected[i])));
        CHECKF(rd.stats.stories == n_expected && rd.stats.bytes == bytes && rd.stats.dropped == dropped,
               "line %d, block %zu: stats stories=%llu bytes=%llu dropped=%llu, want %zu %zu %llu", line,
               BLOCK_SIZES[b], (unsigned long long)rd.stats.stories, (unsigned long long)rd.stats.bytes,
               (unsigned long long)rd.stats.dropped, n_expected, bytes, (unsigned long long)dropped);
        CHECKF(rd.repeat_consistent, "line %d: a call after the end did not return 0 again", line);
        read_free(&rd);
    }
    text_reader_block_size = DEFAULT_BLOCK;
}
#define EXPECT_STORIES(path, format, dropped, ...)                                                           \
    expect_stories_at(__LINE__, path, format, dropped, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_NO_STORIES(path, format, dropped)                                                             \
    expect_stories_at(__LINE__, path, format, dropped, (const char *const[]){NULL})

/* Reads path (small and default blocks) and checks it fails with "<path>: ..." containing `what`. */
static void expect_error_at(int line, const char *path, TextFormat format, const char *what) {
    static const size_t sizes[] = {5, DEFAULT_BLOCK};
    for (size_t b = 0; b < 2; b++) {
        text_reader_block_size = sizes[b];
        Read rd = read_all(path, format);
        size_t plen = strlen(path);
        CHECKF(!rd.ok, "line %d: %s read without error (%zu stories)", line, path, rd.n);
        CHECKF(strncmp(rd.error, path, plen) == 0 && rd.error[plen] == ':',
               "line %d: error does not start with the path: \"%s\"", line, rd.error);
        CHECKF(strstr(rd.error, what) != NULL, "line %d: error \"%s\" does not contain \"%s\"", line,
               rd.error, what);
        CHECKF(strchr(rd.error, '\n') == NULL, "line %d: error is not one line: \"%s\"", line, rd.error);
        CHECKF(rd.open_failed || rd.repeat_consistent, "line %d: error not repeated by the next call", line);
        read_free(&rd);
    }
    text_reader_block_size = DEFAULT_BLOCK;
}
#define EXPECT_ERROR(path, format, what) expect_error_at(__LINE__, path, format, what)

/* ---- formats ---- */

static void test_format_names(void) {
    const TextFormat all[] = {TEXT_AUTO, TEXT_HF_TXT, TEXT_LINES, TEXT_JSON, TEXT_JSONL, TEXT_CSV};
    const char *names[] = {"auto", "hf-txt", "lines", "json", "jsonl", "csv"};
    for (int i = 0; i < 6; i++) {
        TextFormat f = TEXT_AUTO;
        CHECKF(strcmp(text_format_name(all[i]), names[i]) == 0, "name of %d: %s", i,
               text_format_name(all[i]));
        CHECKF(text_format_parse(names[i], &f) == 0 && f == all[i], "parse %s", names[i]);
    }
    TextFormat f = TEXT_CSV;
    CHECK(text_format_parse("txt", &f) == -1 && f == TEXT_CSV);
    CHECK(strstr(tr_error(), "txt") != NULL);
    CHECK(text_format_parse("HF-TXT", &f) == -1);
}

static void test_hf_txt_stories(void) {
    /* The sample's shape: a leading empty line, single '\n' between paragraphs, a cut-off end. */
    const char *p = fixture("hf1.txt", "\nOnce upon a time.\nThe end.\n<|endoftext|>\n"
                                       "  Second story.  \n\n<|endoftext|>\nCut off in the mid");
    EXPECT_STORIES(p, TEXT_HF_TXT, 1, "Once upon a time.\nThe end.", "Second story.");
    /* Ends with a separator: nothing dropped. Consecutive separators: the empty story is skipped. */
    p = fixture("hf2.txt", "A.\n<|endoftext|>\n<|endoftext|>\n \t\n<|endoftext|>\nB.\n<|endoftext|>\n");
    EXPECT_STORIES(p, TEXT_HF_TXT, 0, "A.", "B.");
    /* Only blank text after the last separator is not a dropped story. */
    p = fixture("hf3.txt", "A.\n<|endoftext|>\n\n  \n");
    EXPECT_STORIES(p, TEXT_HF_TXT, 0, "A.");
    /* Separator lines may carry trailing spaces, tabs, '\r'; anything else makes them text. */
    p = fixture("hf4.txt", "A.\n<|endoftext|>  \t\nB.\r\n<|endoftext|>\r\nC <|endoftext|>\n"
                           " <|endoftext|>\n<|endoftext|>x\n<|endoftext|>\n");
    EXPECT_STORIES(p, TEXT_HF_TXT, 0, "A.", "B.", "C <|endoftext|>\n <|endoftext|>\n<|endoftext|>x");
    /* CRLF files give the same stories as LF files; a byte order mark is not part of the text. */
    p = fixture("hf5.txt", "\xEF\xBB\xBF"
                           "Line one.\r\n\r\nLine two \xC3\xA9.\r\n<|endoftext|>\r\n"
                           "Next.\r\n<|endoftext|>\r\n");
    EXPECT_STORIES(p, TEXT_HF_TXT, 0, "Line one.\n\nLine two \xC3\xA9.", "Next.");
    /* A lone '\r' (not before '\n') is text, kept inside the story. */
    p = fixture("hf6.txt", "a\rb\n<|endoftext|>\n");
    EXPECT_STORIES(p, TEXT_HF_TXT, 0, "a\rb");
    /* A long story spanning many blocks, with a multi-byte character on every boundary. */
    Buf b = {0};
    for (int i = 0; i < 300; i++) buf_str(&b, i % 7 ? "ab\xE2\x82\xAC " : "\n");
    char *story = xstrdup(b.p);
    buf_str(&b, "\n<|endoftext|>\nshort\n<|endoftext|>\n");
    p = fixture("hf7.txt", b.p);
    List want = {0};
    list_add_stripped(&want, story, strlen(story));
    EXPECT_STORIES(p, TEXT_HF_TXT, 0, want.s[0], "short");
    list_free(&want);
    free(story);
    free(b.p);
}

static void test_lines_stories(void) {
    /* Single '\n' ends a story, "\n\n" and longer runs are paragraph breaks inside it. */
    const char *p = fixture("l1.txt", "A one.\n\nA two.\nB one.\n\n\nB two.\nC without newline");
    EXPECT_STORIES(p, TEXT_LINES, 0, "A one.\n\nA two.", "B one.\n\n\nB two.", "C without newline");
    /* CRLF reads like LF; leading blank lines and a trailing newline change nothing. */
    p = fixture("l2.txt", "\r\n\r\nA one.\r\n\r\nA two.\r\nB.\r\n");
    EXPECT_STORIES(p, TEXT_LINES, 0, "A one.\n\nA two.", "B.");
    /* A line of only spaces or tabs is blank: "\n \n" is a paragraph break, as the V1 rows use it. */
    p = fixture("l3.txt", "A.\n \nB.\n\t\n\nC.\nD.\n");
    EXPECT_STORIES(p, TEXT_LINES, 0, "A.\n \nB.\n\t\n\nC.", "D.");
    /* Stories are stripped: spaces at the ends go, inner ones stay. */
    p = fixture("l4.txt", "  A  a.  \n\n  more  \nB\n");
    EXPECT_STORIES(p, TEXT_LINES, 0, "A  a.  \n\n  more", "B");
    p = fixture("l5.txt", "one story only");
    EXPECT_STORIES(p, TEXT_LINES, 0, "one story only");
}

static void test_jsonl_stories(void) {
    const char *p =
        fixture("j1.jsonl", "{\"story\": \"First.\\nLine two.\"}\n"
                            "\n"
                            "   \n"
                            "{\"id\": 7, \"text\": \"  Caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \"}\r\n"
                            "{\"text\": \"not this\", \"story\": \"Story wins.\"}\n"
                            "{\"text\": \"   \"}\n"
                            "{\"story\": null, \"text\": \"Text when story is not a string.\"}\n"
                            "{\"text\": \"last, no newline\"}");
    EXPECT_STORIES(p, TEXT_JSONL, 0, "First.\nLine two.", "Caf\xC3\xA9 \xF0\x9F\x98\x80 \"q\" \\",
                   "Story wins.", "Text when story is not a string.", "last, no newline");
    /* A cut-off last line (no final newline, not valid JSON) is dropped and counted. */
    p = fixture("j2.jsonl", "{\"text\": \"One.\"}\n{\"text\": \"Two.\"}\n{\"text\": \"Thr");
    EXPECT_STORIES(p, TEXT_JSONL, 1, "One.", "Two.");
    /* ... even when the cut falls inside a multi-byte character. */
    p = fixture("j3.jsonl", "{\"text\": \"One.\"}\n{\"text\": \"caf\xC3");
    EXPECT_STORIES(p, TEXT_JSONL, 1, "One.");
    p = fixture("j4.jsonl", "\xEF\xBB\xBF{\"text\": \"BOM first.\"}\n");
    EXPECT_STORIES(p, TEXT_JSONL, 0, "BOM first.");
}

static void test_csv_stories(void) {
    const char *p = fixture("c1.csv", "id,text,note\n"
                                      "1,Plain story,x\n"
                                      "\n"
                                      "2,\"Quoted, with comma\nand a newline and \"\"quotes\"\"\",\"n,o\"\n"
                                      "3,,empty text is skipped\n"
                                      "4,\"  padded  \",\n"
                                      "5,\"\"\"\",last no newline");
    EXPECT_STORIES(p, TEXT_CSV, 0, "Plain story", "Quoted, with comma\nand a newline and \"quotes\"",
                   "padded", "\"");
    /* CRLF everywhere, also inside quoted fields; a byte order mark before the header. */
    p = fixture("c2.csv", "\xEF\xBB\xBFtext\r\n\"Para one.\r\n\r\nPara two.\"\r\n\r\nSecond\r\n");
    EXPECT_STORIES(p, TEXT_CSV, 0, "Para one.\n\nPara two.", "Second");
    /* The text column can be anywhere; other names only match exactly. */
    p = fixture("c3.csv", "Text,texts,\"text\"\na,b,c\n");
    EXPECT_STORIES(p, TEXT_CSV, 0, "c");
    /* An unterminated quoted field at the end: that record is dropped and counted. */
    p = fixture("c4.csv", "text\n\"One.\"\n\"Two, cut off\nin the mid");
    EXPECT_STORIES(p, TEXT_CSV, 1, "One.");
    p = fixture("c5.csv", "text\n\"One.\"\n\"Two, cut off after a newline\n");
    EXPECT_STORIES(p, TEXT_CSV, 1, "One.");
}

static void test_json_stories(void) {
    const char *p = fixture("s1.json", "{\"texts\": [\"One.\\nTwo.\", \"  \", \" Three. \"], \"other\": 1}");
    EXPECT_STORIES(p, TEXT_JSON, 0, "One.\nTwo.", "Three.");
    p = fixture("s2.json", "[\"a\", \"b\\u00e9\"]\n");
    EXPECT_STORIES(p, TEXT_JSON, 0, "a", "b\xC3\xA9");
    p = fixture("s3.json",
                "\xEF\xBB\xBF[{\"story\": \"S\", \"text\": \"T\"}, {\"text\": \"T2\"}, \"plain\"]");
    EXPECT_STORIES(p, TEXT_JSON, 0, "S", "T2", "plain");
}

/* ---- format detection ---- */

static void expect_format_at(int line, const char *path, TextFormat want) {
    tr_clear_error();
    TextReader *r = text_reader_open(path, TEXT_AUTO);
    CHECKF(r != NULL, "line %d: %s", line, tr_error());
    if (!r) return;
    CHECKF(text_reader_format(r) == want, "line %d: %s detected as %s, want %s", line, path,
           text_format_name(text_reader_format(r)), text_format_name(want));
    const uint8_t *story;
    size_t len;
    CHECKF(text_reader_next(r, &story, &len) == 1, "line %d: no first story: %s", line, tr_error());
    text_reader_close(r);
}
#define EXPECT_FORMAT(path, want) expect_format_at(__LINE__, path, want)

static void test_auto_detection(void) {
    const char *hf = "Story.\n<|endoftext|>\nMore\n";
    const char *jsonl = "{\"text\": \"x\"}\n{\"text\": \"y\"}\n";
    EXPECT_FORMAT(fixture("a1.txt", hf), TEXT_HF_TXT);
    EXPECT_FORMAT(fixture("a2.txt", "One.\nTwo.\n"), TEXT_LINES);
    EXPECT_FORMAT(fixture("a3.txt", jsonl), TEXT_JSONL);
    EXPECT_FORMAT(fixture("a4", hf), TEXT_HF_TXT);
    EXPECT_FORMAT(fixture("a5.text", "\r\n  {\"story\": \"x\"}\r\n"), TEXT_JSONL);
    EXPECT_FORMAT(fixture("a6.txt", "{not json}\nsecond\n"), TEXT_LINES);
    EXPECT_FORMAT(fixture("a7.txt", "[\"an array is not a jsonl object\"]\n"), TEXT_LINES);
    EXPECT_FORMAT(fixture("a8.txt", "Story.\r\n<|endoftext|> \r\n"), TEXT_HF_TXT);
    /* By extension, whatever the content looks like. */
    EXPECT_FORMAT(fixture("a9.JSONL", jsonl), TEXT_JSONL);
    EXPECT_FORMAT(fixture("a10.jsonl", jsonl), TEXT_JSONL);
    EXPECT_FORMAT(fixture("a11.json", "[\"x\"]"), TEXT_JSON);
    EXPECT_FORMAT(fixture("a12.csv", "text\nx\n"), TEXT_CSV);
    /* The extension is the file's, not a directory's. */
    char dir[600];
    snprintf(dir, sizeof dir, "%s", tmp_path("dir.csv"));
    CHECK(tr_mkdir_p(dir) == 0);
    char inner[700];
    snprintf(inner, sizeof inner, "%s/stories", dir);
    CHECK(test_write_file(inner, hf, strlen(hf)) == 0);
    EXPECT_FORMAT(inner, TEXT_HF_TXT);
    /* Binary data (NUL bytes) is not guessed at. */
    const char binary[] = "\x7f"
                          "ELF\x02\x01\x01\0\0\0\0\0\0\0text";
    EXPECT_ERROR(fixture_n("b1.bin", binary, sizeof binary - 1), TEXT_AUTO, "unknown format (binary data?)");
    EXPECT_ERROR(fixture_n("b2.txt", binary, sizeof binary - 1), TEXT_AUTO, "unknown format (binary data?)");
    /* A separator line past the first 1 MiB is not seen by the sniffer: that file reads as lines. */
    if (!test_small()) {
        Buf b = {0};
        while (b.n < ((size_t)1 << 20) + 100) buf_str(&b, "A long paragraph of story text.\n\n");
        buf_str(&b, "<|endoftext|>\n");
        EXPECT_FORMAT(fixture_n("a13.txt", b.p, b.n), TEXT_LINES);
        free(b.p);
    }
}

/* ---- errors ---- */

static void test_open_errors(void) {
    const char *missing = tmp_path("does_not_exist.txt");
    unlink(missing);
    for (int f = TEXT_AUTO; f <= TEXT_CSV; f++)
        EXPECT_ERROR(missing, (TextFormat)f, "cannot open: No such file");
    const char *dir = tmp_path("a_directory.txt");
    CHECK(tr_mkdir_p(dir) == 0);
    for (int f = TEXT_AUTO; f <= TEXT_CSV; f++) EXPECT_ERROR(dir, (TextFormat)f, "is a directory");
    EXPECT_ERROR(fixture("bad_code.txt", "x\n"), (TextFormat)42, "unknown format");
    CHECK(text_reader_open(fixture("bad_code2.txt", "x\n"), (TextFormat)-1) == NULL);
}

static void test_empty_inputs(void) {
    const char *empty = fixture("empty.txt", "");
    for (int f = TEXT_AUTO; f <= TEXT_CSV; f++) EXPECT_ERROR(empty, (TextFormat)f, ": no stories");
    EXPECT_ERROR(fixture("empty.json", ""), TEXT_AUTO, ": no stories");
    EXPECT_ERROR(fixture("empty.csv", ""), TEXT_AUTO, ": no stories");
    EXPECT_ERROR(fixture("empty.jsonl", ""), TEXT_AUTO, ": no stories");
    const char *blank = fixture("blank.txt", "\n \r\n\t\n");
    for (int f = TEXT_AUTO; f <= TEXT_CSV; f++) EXPECT_ERROR(blank, (TextFormat)f, ": no stories");
    EXPECT_ERROR(fixture("hdr.csv", "id,text\n\n"), TEXT_CSV, ": no stories");
    EXPECT_ERROR(fixture("blanks.csv", "text\n\"  \"\n,\n"), TEXT_CSV,
                 "line 3: record has 2 fields, the header has 1");
    EXPECT_ERROR(fixture("blanks2.csv", "text\n\"  \"\n\"\"\n"), TEXT_CSV, ": no stories");
    EXPECT_ERROR(fixture("emptyarr.json", "{\"texts\": []}"), TEXT_JSON, ": no stories");
    EXPECT_ERROR(fixture("blankarr.json", "[\" \", \"\\n\"]"), TEXT_JSON, ": no stories");
    /* An hf-txt file without any separator is one unterminated story: dropped, so no stories. */
    EXPECT_ERROR(fixture("nosep.txt", "A story without a separator.\n"), TEXT_HF_TXT,
                 ": no stories (only an unterminated");
    EXPECT_ERROR(fixture("cut.jsonl", "{\"text\": \"cut"), TEXT_JSONL, ": no stories (only an unterminated");
}

static void test_invalid_utf8(void) {
    /* hf-txt: "Good.\n" (6) + separator line (14) + "ab\n" (3) + "cd": the bad byte is at 25, line 4. */
    EXPECT_ERROR(fixture("u1.txt", "Good.\n<|endoftext|>\nab\ncd\xFF"
                                   "e\n<|endoftext|>\n"),
                 TEXT_HF_TXT, ": line 4: invalid UTF-8 at byte offset 25");
    /* With CRLF (story bytes no longer match file bytes): 3 + 15 + 2 + 4 + 1 = offset 25, line 5. */
    EXPECT_ERROR(fixture("u2.txt", "x\r\n<|endoftext|>\r\n\r\nab\r\nc\xC3(\r\n<|endoftext|>\r\n"),
                 TEXT_HF_TXT, ": line 5: invalid UTF-8 at byte offset 25");
    /* A truncated 3-byte sequence at the end of a line. */
    EXPECT_ERROR(fixture("u3.txt", "a\nb\xE2\x82\nc\n"), TEXT_LINES,
                 ": line 2: invalid UTF-8 at byte offset 3");
    /* Offsets count the byte order mark: it is in the file. */
    EXPECT_ERROR(fixture("u10.txt", "\xEF\xBB\xBF"
                                    "ab\xFF\n"),
                 TEXT_LINES, ": line 1: invalid UTF-8 at byte offset 5");
    /* Overlong encoding and a surrogate. */
    EXPECT_ERROR(fixture("u4.txt", "ok\n\xC0\xAF\n"), TEXT_LINES, ": line 2: invalid UTF-8 at byte offset 3");
    EXPECT_ERROR(fixture("u5.txt", "ok\n\nx \xED\xA0\x80\n"), TEXT_LINES,
                 ": line 3: invalid UTF-8 at byte offset 6");
    /* csv: header (5) + "\"ok\"\n" (5) + "\"a\"\"b\n" (6): offset 16 on line 4. */
    EXPECT_ERROR(fixture("u6.csv", "text\n\"ok\"\n\"a\"\"b\n\xFF\"\n"), TEXT_CSV,
                 ": line 4: invalid UTF-8 at byte offset 16");
    EXPECT_ERROR(fixture("u7.jsonl", "{\"text\":\"ok\"}\n{\"text\":\"a\xFF\"}\n"), TEXT_JSONL,
                 ": line 2: invalid UTF-8 at byte offset 24");
    EXPECT_ERROR(fixture("u8.json", "{\"texts\": [\"a\",\n \"b\xFF\"]}"), TEXT_JSON,
                 ": line 2: invalid UTF-8 at byte offset 19");
    /* Invalid bytes in a dropped, cut-off story are no error: a cut can split a character. */
    const char *p = fixture("u9.txt", "ok\n<|endoftext|>\ncut \xE2\x82");
    EXPECT_STORIES(p, TEXT_HF_TXT, 1, "ok");
}

static void test_malformed_json(void) {
    EXPECT_ERROR(fixture("m1.json", "{\"texts\": [\"a\",\n \"b\" \"c\"]}"), TEXT_JSON,
                 ": line 2: invalid JSON");
    EXPECT_ERROR(fixture("m2.json", "[\"a\"] trailing"), TEXT_JSON, ": line 1: invalid JSON");
    EXPECT_ERROR(fixture("m3.json", "{\"stories\": [\"a\"]}"), TEXT_JSON, "expected {\"texts\": [strings]}");
    EXPECT_ERROR(fixture("m4.json", "\"just a string\""), TEXT_JSON, "expected {\"texts\": [strings]}");
    EXPECT_ERROR(fixture("m5.json", "{\"texts\": \"not an array\"}"), TEXT_JSON, "expected {\"texts\"");
    EXPECT_ERROR(fixture("m6.json", "{\"texts\": [\"a\", 3]}"), TEXT_JSON,
                 "element 1 of \"texts\" is not a string");
    EXPECT_ERROR(fixture("m7.json", "[\"a\", [\"b\"]]"), TEXT_JSON, "element 1 of the array is neither");
    EXPECT_ERROR(fixture("m8.json", "[{\"title\": \"b\"}]"), TEXT_JSON,
                 "element 0 of the array has no \"story\" or \"text\"");
    EXPECT_ERROR(fixture("m9.json", "[\"a\\u0000b\"]"), TEXT_JSON, "\\u0000");
    EXPECT_ERROR(fixture_n("m10.json", "[\"a\0\"]", 6), TEXT_JSON, "NUL byte");
    /* "\\u0000" is an escaped backslash then "u0000": fine. */
    EXPECT_STORIES(fixture("m11.json", "[\"a\\\\u0000\"]"), TEXT_JSON, 0, "a\\u0000");
    /* jsonl: a bad line in the middle (or a bad last line that ends with a newline) is an error. */
    EXPECT_ERROR(fixture("m12.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"\n{\"text\": \"c\"}\n"), TEXT_JSONL,
                 ": line 2: invalid JSON");
    EXPECT_ERROR(fixture("m13.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\n"), TEXT_JSONL,
                 ": line 2: invalid JSON");
    EXPECT_ERROR(fixture("m14.jsonl", "{\"text\": \"a\"}\n\n[\"b\"]\n"), TEXT_JSONL,
                 ": line 3: expected a JSON object with a \"story\" or \"text\" field");
    EXPECT_ERROR(fixture("m15.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}\n"), TEXT_JSONL,
                 ": line 2: no \"story\" or \"text\" string field");
    EXPECT_ERROR(fixture("m16.jsonl", "{\"text\": 5}\n"), TEXT_JSONL,
                 ": line 1: no \"story\" or \"text\" string field");
    EXPECT_ERROR(fixture("m17.jsonl", "{\"text\": \"a\"} {\"text\": \"b\"}\n"), TEXT_JSONL,
                 ": line 1: invalid JSON");
    EXPECT_ERROR(fixture("m18.jsonl", "{\"text\": \"a\\u0000\"}\n"), TEXT_JSONL, ": line 1: \\u0000");
    /* A complete last line without a newline that is valid JSON but wrong is still an error. */
    EXPECT_ERROR(fixture("m19.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}"), TEXT_JSONL,
                 ": line 2: no \"story\"");
}

static void test_malformed_csv(void) {
    EXPECT_ERROR(fixture("k1.csv", "story,id\nx,1\n"), TEXT_CSV,
                 ": line 1: the CSV header has no \"text\" column (its columns: \"story\", \"id\")");
    EXPECT_ERROR(fixture("k2.csv", " text\nx\n"), TEXT_CSV, "no \"text\" column (its columns: \" text\")");
    EXPECT_ERROR(fixture("k3.csv", "text,text\nx,y\n"), TEXT_CSV, "two \"text\" columns");
    EXPECT_ERROR(fixture("k4.csv", "text\nok\nsay \"hi\"\n"), TEXT_CSV,
                 ": line 3: quote in the middle of an unquoted field");
    EXPECT_ERROR(fixture("k5.csv", "text\n\"ok\"\n\"multi\nline\"x\n"), TEXT_CSV,
                 ": line 4: unexpected character after a closing quote");
    EXPECT_ERROR(fixture("k6.csv", "text\n\"ok\" \n"), TEXT_CSV,
                 ": line 2: unexpected character after a closing quote");
    EXPECT_ERROR(fixture("k7.csv", "id,text\n1,a\n2\n"), TEXT_CSV,
                 ": line 3: record has 1 fields, the header has 2");
    EXPECT_ERROR(fixture("k8.csv", "id,text\n1,\"a\nb\",3\n"), TEXT_CSV,
                 ": line 2: record has 3 fields, the header has 2");
    EXPECT_ERROR(fixture("k9.csv", "\"te\nxt\n"), TEXT_CSV, "unterminated quote in the CSV header");
    /* A header of only empty fields leaves no header text at all: the message lists them empty. */
    EXPECT_ERROR(fixture("k10.csv", ",\nx,y\n"), TEXT_CSV, "no \"text\" column (its columns: \"\", \"\")");
    EXPECT_ERROR(fixture("k11.csv", ",,\n"), TEXT_AUTO, "no \"text\" column (its columns: \"\", \"\", \"\")");
    EXPECT_ERROR(fixture("k12.csv", "\"\"\n"), TEXT_CSV, "no \"text\" column (its columns: \"\")");
}

static void test_size_limits(void) {
    /* Story and line limits (a test hook lowers the 64 MiB default). */
    text_reader_max_story = 100;
    Buf b = {0};
    for (int i = 0; i < 20; i++) buf_str(&b, "ten bytes\n");
    buf_str(&b, "<|endoftext|>\n");
    EXPECT_ERROR(fixture("big1.txt", b.p), TEXT_HF_TXT, "story longer than 100 bytes");
    b.n = 0;
    for (int i = 0; i < 20; i++) buf_str(&b, "ten bytes ");
    EXPECT_ERROR(fixture("big2.txt", b.p), TEXT_LINES, ": line 1 is longer than 100 bytes");
    EXPECT_STORIES(fixture("big3.txt", "short\nstories\npass\n"), TEXT_LINES, 0, "short", "stories", "pass");
    text_reader_max_story = (size_t)64 << 20;
    free(b.p);
    /* json is read whole: a file over 1 GiB is refused before reading (sparse, costs no disk). */
    const char *path = tmp_path("huge.json");
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    int ok = fseek(f, ((long)1 << 30), SEEK_SET) == 0 && fputc(']', f) != EOF;
    fclose(f);
    if (ok) EXPECT_ERROR(path, TEXT_AUTO, "limited to 1 GiB");
    unlink(path);
}

int main(void) {
    RUN(test_format_names);
    RUN(test_hf_txt_stories);
    RUN(test_lines_stories);
    RUN(test_jsonl_stories);
    RUN(test_csv_stories);
    RUN(test_json_stories);
    RUN(test_auto_detection);
    RUN(test_open_errors);
    RUN(test_empty_inputs);
    RUN(test_invalid_utf8);
    RUN(test_malformed_json);
    RUN(test_malformed_csv);
    RUN(test_size_limits);
    return test_summary();
}
