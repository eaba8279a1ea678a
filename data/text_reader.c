/* text_reader.c: streaming story readers for the formats TinyStories comes in (see text_reader.h).
 *
 * The line-based formats (hf-txt, lines, jsonl, csv) share one block reader: the file is read with
 * fread in blocks of text_reader_block_size bytes and cut into lines with memchr. A line that lies
 * inside one block is handed out in place; only a line that crosses a block boundary is copied
 * into a carry buffer. Each story is assembled in its own buffer, so memory is one block plus the
 * longest line plus the longest story, whatever the file size. json is parsed whole with cJSON.
 *
 * Rules shared by every format, beyond those in the header:
 *   - A UTF-8 byte order mark at the very start of the file is skipped.
 *   - In the line-based formats a "\r\n" line ending reads as "\n" (also inside quoted CSV
 *     fields), so a file saved with Windows line endings gives the same stories.
 *   - No story or line may exceed text_reader_max_story bytes (64 MiB; TinyStories stories are
 *     a few KB): a bigger one almost always means the wrong format, and we would rather say so
 *     than try to hold a 2 GB "story".
 *   - Errors are sticky: after -1 every later text_reader_next returns -1 with the same message.
 *
 * Invalid UTF-8 is reported with the line and the byte offset in the file. A story is not a
 * verbatim copy of the file (CRLF, CSV quoting), so while it is assembled we record "spans": where
 * each contiguous run of story bytes came from in the file. They map a story offset back to the
 * file. Text that is dropped (an unterminated last story) is never checked, because a file cut
 * at an arbitrary byte can end in half a character.
 */
#define _POSIX_C_SOURCE 200809L
#include "data/text_reader.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/util.h"

/* Test hooks (not in the header): tests shrink the block to push stories across block
 * boundaries, and lower the story limit to reach that error without a 64 MiB fixture. */
size_t text_reader_block_size = (size_t)1 << 20;
size_t text_reader_max_story = (size_t)64 << 20;

#define SNIFF_BYTES ((size_t)1 << 20)
#define JSON_MAX_BYTES ((int64_t)1 << 30)
#define MIN_BLOCK 4 /* room for the byte order mark check */

static const char EOT_LINE[] = "<|endoftext|>";
#define EOT_LEN (sizeof EOT_LINE - 1)

/* Where the story bytes [story_pos, next span's story_pos) came from in the file. */
typedef struct {
    size_t story_pos;
    uint64_t file_pos;
    uint64_t line;
} Span;

struct TextReader {
    char *path;
    TextFormat format;
    FILE *f;

    /* block reader */
    uint8_t *block;
    size_t block_cap, block_len, block_pos;
    uint64_t block_offset; /* file offset of block[0] */
    int at_eof;
    uint8_t *carry; /* a line that crosses a block boundary */
    size_t carry_len, carry_cap;
    uint64_t line_no;     /* number (1-based) of the line last returned by next_line */
    uint64_t line_offset; /* file offset of its first byte */
    size_t line_raw_len;  /* its length including a '\r' before the '\n' */

    /* the story being assembled */
    uint8_t *story;
    size_t story_len, story_cap;
    Span *spans;
    size_t n_spans, spans_cap;

    /* lines: the first line of the next story, read ahead to end the current one */
    uint8_t *held;
    size_t held_len, held_cap, held_raw_len;
    int held_valid, held_has_newline;
    uint64_t held_line, held_offset;

    /* jsonl: the current line as a C string and its parse; json: the whole document */
    char *json_line;
    size_t json_line_cap;
    cJSON *json_doc;
    cJSON *json_next;      /* json: the next array element */
    uint64_t json_index;   /* json: index of the next array element */
    int json_texts_object; /* json: the array is {"texts": [...]} */

    /* csv: fields of the current record lie back to back in story; field i ends at field_end[i] */
    size_t csv_columns, csv_text_column;
    size_t *field_end;
    size_t n_fields, field_end_cap;
    uint64_t record_line;

    TextReaderStats stats;
    int done;    /* end reached (stories were returned) */
    char *error; /* sticky error message, once failed */
};

/* ---- names ---- */

static const char *const FORMAT_NAMES[] = {"auto", "hf-txt", "lines", "json", "jsonl", "csv"};
#define N_FORMATS ((int)(sizeof FORMAT_NAMES / sizeof FORMAT_NAMES[0]))

const char *text_format_name(TextFormat f) {
    return ((int)f >= 0 && (int)f < N_FORMATS) ? FORMAT_NAMES[f] : "unknown";
}

int text_format_parse(const char *name, TextFormat *out) {
    for (int i = 0; name && i < N_FORMATS; i++) {
        if (strcmp(name, FORMAT_NAMES[i]) == 0) {
            *out = (TextFormat)i;
            return 0;
        }
    }
    tr_set_error("unknown text format \"%s\" (expected auto, hf-txt, lines, json, jsonl or csv)",
                 name ? name : "(null)");
    return -1;
}

/* ---- errors ---- */

/* Sets "<path>: <message>", remembers it so later calls repeat it, returns -1. */
static int fail(TextReader *r, const char *fmt, ...) TR_PRINTF(2, 3);
static int fail(TextReader *r, const char *fmt, ...) {
    char message[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    tr_set_error("%s: %s", r->path, message);
    if (!r->error) r->error = xstrdup(tr_error());
    return -1;
}

static int is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    *buf = xrealloc(*buf, c * elem);
    *cap = c;
}

/* ---- block reader ---- */

static int refill(TextReader *r) {
    r->block_offset += r->block_len;
    r->block_pos = 0;
    r->block_len = fread(r->block, 1, r->block_cap, r->f);
    if (r->block_len < r->block_cap) {
        if (ferror(r->f)) return fail(r, "read error: %s", strerror(errno));
        r->at_eof = 1; /* fread only comes back short at end of file or on error */
    }
    if (r->block_offset == 0 && r->block_len >= 3 && memcmp(r->block, "\xEF\xBB\xBF", 3) == 0)
        r->block_pos = 3;
    return 0;
}

static int carry_append(TextReader *r, const uint8_t *p, size_t n) {
    if (r->carry_len + n > text_reader_max_story)
        return fail(r, "line %llu is longer than %zu bytes (is the format right?)",
                    (unsigned long long)(r->line_no + 1), text_reader_max_story);
    grow((void **)&r->carry, &r->carry_cap, r->carry_len + n, 1);
    memcpy(r->carry + r->carry_len, p, n);
    r->carry_len += n;
    return 0;
}

/* The next line: 1 with the line in *line and *len (without its '\n', and without a '\r' just
 * before it) and *has_newline; 0 at end of file; -1 on error. *line stays valid until the next call.
 * r->line_no, r->line_offset and r->line_raw_len describe the line returned. */
static int next_line(TextReader *r, const uint8_t **line, size_t *len, int *has_newline) {
    int carrying = 0;
    uint64_t start = r->block_offset + r->block_pos;
    r->carry_len = 0;
    for (;;) {
        if (r->block_pos == r->block_len) {
            if (r->at_eof) break;
            if (refill(r) < 0) return -1;
            if (!carrying) start = r->block_offset + r->block_pos;
            continue;
        }
        const uint8_t *p = r->block + r->block_pos;
        size_t avail = r->block_len - r->block_pos;
        const uint8_t *nl = memchr(p, '\n', avail);
        if (nl) {
            size_t n = (size_t)(nl - p);
            if (carrying) {
                if (carry_append(r, p, n) < 0) return -1;
                *line = r->carry;
                *len = r->carry_len;
            } else {
                *line = p;
                *len = n;
            }
            r->block_pos += n + 1;
            *has_newline = 1;
            goto found;
        }
        if (carry_append(r, p, avail) < 0) return -1;
        carrying = 1;
        r->block_pos = r->block_len;
    }
    if (!carrying) return 0;
    *line = r->carry;
    *len = r->carry_len;
    *has_newline = 0;
found:
    r->line_no++;
    r->line_offset = start;
    r->line_raw_len = *len;
    if (*has_newline && *len > 0 && (*line)[*len - 1] == '\r') (*len)--;
    return 1;
}

/* ---- story assembly ---- */

static void story_reset(TextReader *r) {
    r->story_len = 0;
    r->n_spans = 0;
}

/* Appends n bytes that sit at file_pos (on line `line`) in the file. */
static int story_append(TextReader *r, const uint8_t *data, size_t n, uint64_t file_pos, uint64_t line) {
    if (n == 0) return 0;
    if (r->story_len + n > text_reader_max_story)
        return fail(r, "line %llu: story longer than %zu bytes (is the format right?)",
                    (unsigned long long)line, text_reader_max_story);
    grow((void **)&r->story, &r->story_cap, r->story_len + n, 1);
    memcpy(r->story + r->story_len, data, n);
    Span *last = r->n_spans ? &r->spans[r->n_spans - 1] : NULL;
    if (!last || last->file_pos + (r->story_len - last->story_pos) != file_pos) {
        grow((void **)&r->spans, &r->spans_cap, r->n_spans + 1, sizeof(Span));
        r->spans[r->n_spans++] = (Span){r->story_len, file_pos, line};
    }
    r->story_len += n;
    return 0;
}

/* Appends the line last returned by next_line, and its newline as "\n" if it had one. */
static int story_append_line(TextReader *r, const uint8_t *line, size_t len, int has_newline) {
    if (story_append(r, line, len, r->line_offset, r->line_no) < 0) return -1;
    if (has_newline &&
        story_append(r, (const uint8_t *)"\n", 1, r->line_offset + r->line_raw_len, r->line_no) < 0)
        return -1;
    return 0;
}

static int has_text(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space(s[i])) return 1;
    return 0;
}

/* Strips story[begin, end), and returns it as the next story (1) or skips it when empty (0).
 * -1 if it is not valid UTF-8: the spans give the line and the file offset of the bad byte. */
static int emit(TextReader *r, size_t begin, size_t end, const uint8_t **story, size_t *len) {
    while (begin < end && is_space(r->story[begin])) begin++;
    while (end > begin && is_space(r->story[end - 1])) end--;
    if (begin == end) return 0;
    size_t bad;
    if (!tr_utf8_valid(r->story + begin, end - begin, &bad)) {
        size_t pos = begin + bad, s = 0;
        while (s + 1 < r->n_spans && r->spans[s + 1].story_pos <= pos) s++;
        const Span *span = &r->spans[s];
        uint64_t line = span->line;
        for (size_t i = span->story_pos; i < pos; i++) line += r->story[i] == '\n';
        return fail(r, "line %llu: invalid UTF-8 at byte offset %llu", (unsigned long long)line,
                    (unsigned long long)(span->file_pos + (pos - span->story_pos)));
    }
    r->stats.stories++;
    r->stats.bytes += end - begin;
    *story = r->story + begin;
    *len = end - begin;
    return 1;
}

/* Same for a story that does not live in r->story (decoded JSON strings, whose UTF-8 was checked
 * in the file already; checked again here because escapes are decoded by cJSON). */
static int emit_plain(TextReader *r, const char *s, const char *where, const uint8_t **story, size_t *len) {
    size_t begin = 0, end = strlen(s);
    const uint8_t *u = (const uint8_t *)s;
    while (begin < end && is_space(u[begin])) begin++;
    while (end > begin && is_space(u[end - 1])) end--;
    if (begin == end) return 0;
    if (!tr_utf8_valid(u + begin, end - begin, NULL)) return fail(r, "%s: invalid UTF-8 in the story", where);
    r->stats.stories++;
    r->stats.bytes += end - begin;
    *story = u + begin;
    *len = end - begin;
    return 1;
}

/* End of input: 0, or -1 if the file gave no story at all. */
static int finish(TextReader *r) {
    r->done = 1;
    if (r->stats.stories > 0) return 0;
    if (r->stats.dropped > 0)
        return fail(r, "no stories (only an unterminated one at the end, which was dropped%s)",
                    r->format == TEXT_HF_TXT ? "; hf-txt stories end with a \"<|endoftext|>\" line" : "");
    return fail(r, "no stories");
}

/* ---- hf-txt ---- */

/* "<|endoftext|>" alone on its line; trailing spaces, tabs and '\r' are tolerated. */
static int is_separator(const uint8_t *s, size_t n) {
    if (n < EOT_LEN || s[0] != '<' || memcmp(s, EOT_LINE, EOT_LEN) != 0) return 0;
    for (size_t i = EOT_LEN; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

static int next_hf_txt(TextReader *r, const uint8_t **story, size_t *len) {
    story_reset(r);
    for (;;) {
        const uint8_t *line;
        size_t n;
        int has_newline;
        int rc = next_line(r, &line, &n, &has_newline);
        if (rc < 0) return -1;
        if (rc == 0) {
            if (has_text(r->story, r->story_len)) r->stats.dropped++; /* no separator after it */
            return finish(r);
        }
        if (is_separator(line, n)) {
            rc = emit(r, 0, r->story_len, story, len);
            if (rc != 0) return rc;
            story_reset(r);
            continue;
        }
        if (story_append_line(r, line, n, has_newline) < 0) return -1;
    }
}

/* ---- lines ---- */

/* Empty or only spaces and tabs. In csv such a line is an empty record, skipped (a single-column
 * record of spaces would give an empty story anyway, and with more columns it cannot be meant as
 * a record). In lines it is a paragraph break: the V1 rows hold a few "\n \n" breaks. */
static int is_blank_line(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

/* A newline next to a blank line (empty, or only spaces and tabs) is a paragraph break; any other
 * newline ends a story. So a non-blank line's newline is undecided ("pending") until we see
 * whether the next line is blank. */
static int next_lines(TextReader *r, const uint8_t **story, size_t *len) {
    story_reset(r);
    int pending = 0;
    uint64_t pending_pos = 0, pending_line = 0;
    if (r->held_valid) {
        r->held_valid = 0;
        if (story_append(r, r->held, r->held_len, r->held_offset, r->held_line) < 0) return -1;
        pending = r->held_has_newline;
        pending_pos = r->held_offset + r->held_raw_len;
        pending_line = r->held_line;
    }
    for (;;) {
        const uint8_t *line;
        size_t n;
        int has_newline;
        int rc = next_line(r, &line, &n, &has_newline);
        if (rc < 0) return -1;
        if (rc == 0) { /* a last story without a final newline still counts */
            rc = emit(r, 0, r->story_len, story, len);
            return rc != 0 ? rc : finish(r);
        }
        if (is_blank_line(line, n)) { /* its newline and a pending one are paragraph breaks */
            if (pending && story_append(r, (const uint8_t *)"\n", 1, pending_pos, pending_line) < 0)
                return -1;
            pending = 0;
            if (story_append_line(r, line, n, has_newline) < 0) return -1;
            continue;
        }
        if (pending) { /* the pending newline ends the story; this line starts the next one */
            rc = emit(r, 0, r->story_len, story, len);
            if (rc < 0) return -1;
            if (rc == 1) {
                grow((void **)&r->held, &r->held_cap, n, 1);
                memcpy(r->held, line, n);
                r->held_len = n;
                r->held_raw_len = r->line_raw_len;
                r->held_has_newline = has_newline;
                r->held_line = r->line_no;
                r->held_offset = r->line_offset;
                r->held_valid = 1;
                return 1;
            }
            story_reset(r);
        }
        if (story_append(r, line, n, r->line_offset, r->line_no) < 0) return -1;
        pending = has_newline;
        pending_pos = r->line_offset + r->line_raw_len;
        pending_line = r->line_no;
    }
}

/* ---- JSON helpers ---- */

/* cJSON strings are C strings, so an escaped NUL would silently cut a story short: refuse it.
 * Returns the offset of the first "\u0000" escape, or -1. */
static int64_t find_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) return (int64_t)i;
        i++; /* skip the escaped character, so "\\u0000" (an escaped backslash) is not a hit */
    }
    return -1;
}

/* The "story" field of an object if it is a string, else its "text" field, else NULL. */
static const char *story_field(const cJSON *obj) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "story");
    if (!cJSON_IsString(v)) v = cJSON_GetObjectItemCaseSensitive(obj, "text");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Parses s (NUL-terminated, n bytes, no NUL inside) as one JSON value with nothing after it.
 * On failure returns NULL and *error_at gets the offset where parsing stopped. */
static cJSON *parse_json(const char *s, size_t n, size_t *error_at) {
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(s, &end, 1);
    if (!doc && error_at) *error_at = end && end >= s && end <= s + n ? (size_t)(end - s) : 0;
    return doc;
}

/* ---- jsonl ---- */

static int next_jsonl(TextReader *r, const uint8_t **story, size_t *len) {
    for (;;) {
        cJSON_Delete(r->json_doc); /* the story returned last time, or a skipped empty one */
        r->json_doc = NULL;
        const uint8_t *line;
        size_t n;
        int has_newline;
        int rc = next_line(r, &line, &n, &has_newline);
        if (rc < 0) return -1;
        if (rc == 0) return finish(r);
        size_t begin = 0, end = n;
        while (begin < end && is_space(line[begin])) begin++;
        while (end > begin && is_space(line[end - 1])) end--;
        if (begin == end) continue; /* blank line */
        unsigned long long line_no = (unsigned long long)r->line_no;
        grow((void **)&r->json_line, &r->json_line_cap, end - begin + 1, 1);
        memcpy(r->json_line, line + begin, end - begin);
        r->json_line[end - begin] = '\0';
        size_t jn = end - begin, error_at = 0;
        int has_nul = memchr(r->json_line, '\0', jn) != NULL;
        cJSON *doc = has_nul ? NULL : parse_json(r->json_line, jn, &error_at);
        if (!doc && !has_newline) { /* the last line, cut off: an unterminated story */
            r->stats.dropped++;
            return finish(r);
        }
        size_t bad;
        if (!tr_utf8_valid(line + begin, jn, &bad)) {
            cJSON_Delete(doc);
            return fail(r, "line %llu: invalid UTF-8 at byte offset %llu", line_no,
                        (unsigned long long)(r->line_offset + begin + bad));
        }
        if (has_nul) return fail(r, "line %llu: NUL byte in a JSON line", line_no);
        if (!doc) return fail(r, "line %llu: invalid JSON at column %zu", line_no, begin + error_at + 1);
        r->json_doc = doc;
        if (!cJSON_IsObject(doc))
            return fail(r, "line %llu: expected a JSON object with a \"story\" or \"text\" field", line_no);
        if (find_nul_escape(r->json_line, jn) >= 0)
            return fail(r, "line %llu: \\u0000 (NUL) in a JSON string is not supported", line_no);
        const char *text = story_field(doc);
        if (!text) return fail(r, "line %llu: no \"story\" or \"text\" string field", line_no);
        char where[64];
        snprintf(where, sizeof where, "line %llu", line_no);
        rc = emit_plain(r, text, where, story, len);
        if (rc != 0) return rc;
    }
}

/* ---- json ---- */

static const char JSON_EXPECTED[] =
    "expected {\"texts\": [strings]}, a top-level array of strings, or an array of objects with a "
    "\"story\" or \"text\" field";

static uint64_t line_of_offset(const char *s, size_t offset) {
    uint64_t line = 1;
    for (size_t i = 0; i < offset; i++) line += s[i] == '\n';
    return line;
}

static int open_json(TextReader *r) {
    struct stat st;
    if (fstat(fileno(r->f), &st) == 0 && S_ISREG(st.st_mode) && (int64_t)st.st_size > JSON_MAX_BYTES)
        return fail(r,
                    "JSON file of %lld bytes is too big: the json format is read whole and is "
                    "limited to 1 GiB (convert it to jsonl, which is streamed)",
                    (long long)st.st_size);
    size_t n = 0, cap = 1 << 16;
    char *text = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if ((int64_t)cap > JSON_MAX_BYTES) {
                free(text);
                return fail(r, "JSON input is bigger than 1 GiB: the json format is read whole (use jsonl)");
            }
            cap *= 2;
            text = xrealloc(text, cap);
        }
        size_t got = fread(text + n, 1, cap - 1 - n, r->f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(r->f)) {
        free(text);
        return fail(r, "read error: %s", strerror(errno));
    }
    text[n] = '\0';
    size_t begin = n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    int rc = 0;
    size_t bad, error_at = 0;
    if (!has_text((const uint8_t *)text + begin, n - begin)) {
        /* empty: text_reader_next reports "no stories" */
    } else if (!tr_utf8_valid((const uint8_t *)text, n, &bad)) {
        rc = fail(r, "line %llu: invalid UTF-8 at byte offset %zu",
                  (unsigned long long)line_of_offset(text, bad), bad);
    } else if (memchr(text, '\0', n)) {
        size_t at = (size_t)((char *)memchr(text, '\0', n) - text);
        rc = fail(r, "line %llu: NUL byte in JSON", (unsigned long long)line_of_offset(text, at));
    } else if (!(r->json_doc = parse_json(text + begin, n - begin, &error_at))) {
        rc = fail(r, "line %llu: invalid JSON", (unsigned long long)line_of_offset(text, begin + error_at));
    } else if (find_nul_escape(text, n) >= 0) {
        rc = fail(r, "line %llu: \\u0000 (NUL) in a JSON string is not supported",
                  (unsigned long long)line_of_offset(text, (size_t)find_nul_escape(text, n)));
    } else {
        cJSON *array = r->json_doc;
        if (cJSON_IsObject(array)) {
            array = cJSON_GetObjectItemCaseSensitive(r->json_doc, "texts");
            r->json_texts_object = 1;
        }
        if (!cJSON_IsArray(array))
            rc = fail(r, "%s", JSON_EXPECTED);
        else
            r->json_next = array->child;
    }
    free(text);
    return rc;
}

static int next_json(TextReader *r, const uint8_t **story, size_t *len) {
    while (r->json_next) {
        cJSON *item = r->json_next;
        unsigned long long index = (unsigned long long)r->json_index++;
        r->json_next = item->next;
        const char *text = cJSON_IsString(item) ? item->valuestring : NULL;
        if (r->json_texts_object) {
            if (!text) return fail(r, "element %llu of \"texts\" is not a string", index);
        } else if (!text) {
            if (!cJSON_IsObject(item))
                return fail(r, "element %llu of the array is neither a string nor an object (%s)", index,
                            JSON_EXPECTED);
            text = story_field(item);
            if (!text)
                return fail(r, "element %llu of the array has no \"story\" or \"text\" string field", index);
        }
        char where[64];
        snprintf(where, sizeof where, "element %llu", index);
        int rc = emit_plain(r, text, where, story, len);
        if (rc != 0) return rc;
    }
    return finish(r);
}

/* ---- csv ---- */

static int end_field(TextReader *r) {
    grow((void **)&r->field_end, &r->field_end_cap, r->n_fields + 1, sizeof(size_t));
    r->field_end[r->n_fields++] = r->story_len;
    return 0;
}

/* Reads one RFC 4180 record into r->story (fields back to back, r->field_end[i] = end of field i),
 * skipping blank lines. 1: a record; 0: end of file; 2: the file ends inside a quoted field (the
 * record is incomplete); -1: malformed. */
static int csv_read_record(TextReader *r) {
    const uint8_t *line;
    size_t n;
    int has_newline, rc;
    story_reset(r);
    r->n_fields = 0;
    do {
        rc = next_line(r, &line, &n, &has_newline);
        if (rc <= 0) return rc;
    } while (is_blank_line(line, n));
    r->record_line = r->line_no;
    size_t i = 0;
    for (;;) { /* one field per iteration, starting at line[i] */
        if (i < n && line[i] == '"') {
            i++;
            for (;;) { /* inside quotes: up to the closing quote, across lines */
                const uint8_t *q = memchr(line + i, '"', n - i);
                size_t k = q ? (size_t)(q - line) : n;
                if (story_append(r, line + i, k - i, r->line_offset + i, r->line_no) < 0) return -1;
                if (!q) { /* the field goes on on the next line */
                    if (!has_newline) return 2;
                    if (story_append(r, (const uint8_t *)"\n", 1, r->line_offset + r->line_raw_len,
                                     r->line_no) < 0)
                        return -1;
                    rc = next_line(r, &line, &n, &has_newline);
                    if (rc < 0) return -1;
                    if (rc == 0) return 2;
                    i = 0;
                    continue;
                }
                if (k + 1 < n && line[k + 1] == '"') { /* "" is one quote */
                    if (story_append(r, line + k + 1, 1, r->line_offset + k + 1, r->line_no) < 0) return -1;
                    i = k + 2;
                    continue;
                }
                i = k + 1;
                break;
            }
            if (i < n && line[i] != ',')
                return fail(r, "line %llu: unexpected character after a closing quote (column %zu)",
                            (unsigned long long)r->line_no, i + 1);
        } else {
            size_t k = i;
            while (k < n && line[k] != ',' && line[k] != '"') k++;
            if (k < n && line[k] == '"')
                return fail(r, "line %llu: quote in the middle of an unquoted field (column %zu)",
                            (unsigned long long)r->line_no, k + 1);
            if (story_append(r, line + i, k - i, r->line_offset + i, r->line_no) < 0) return -1;
            i = k;
        }
        end_field(r);
        if (i == n) return 1;
        i++; /* the comma */
    }
}

static int open_csv(TextReader *r) {
    int rc = csv_read_record(r);
    if (rc < 0) return -1;
    if (rc == 0) return 0; /* empty file: "no stories" */
    if (rc == 2)
        return fail(r, "line %llu: unterminated quote in the CSV header", (unsigned long long)r->record_line);
    r->csv_columns = r->n_fields;
    int found = 0;
    for (size_t c = 0; c < r->n_fields; c++) {
        size_t begin = c ? r->field_end[c - 1] : 0;
        if (r->field_end[c] - begin == 4 && memcmp(r->story + begin, "text", 4) == 0) {
            if (found) return fail(r, "line 1: the CSV header has two \"text\" columns");
            r->csv_text_column = c;
            found = 1;
        }
    }
    if (!found) {
        const char *header = r->story ? (const char *)r->story : ""; /* NULL if every field is empty */
        char fields[240];
        size_t k = 0;
        for (size_t c = 0; c < r->n_fields && k + 8 < sizeof fields; c++) {
            size_t begin = c ? r->field_end[c - 1] : 0, n = r->field_end[c] - begin;
            if (n > sizeof fields - k - 8) n = sizeof fields - k - 8;
            k += (size_t)snprintf(fields + k, sizeof fields - k, "%s\"%.*s\"", c ? ", " : "", (int)n, header + begin);
        }
        return fail(r, "line %llu: the CSV header has no \"text\" column (its columns: %s)",
                    (unsigned long long)r->record_line, fields);
    }
    return 0;
}

static int next_csv(TextReader *r, const uint8_t **story, size_t *len) {
    if (r->csv_columns == 0) return finish(r); /* the file was empty */
    for (;;) {
        int rc = csv_read_record(r);
        if (rc < 0) return -1;
        if (rc == 0) return finish(r);
        if (rc == 2) {
            r->stats.dropped++;
            return finish(r);
        }
        if (r->n_fields != r->csv_columns)
            return fail(r, "line %llu: record has %zu fields, the header has %zu",
                        (unsigned long long)r->record_line, r->n_fields, r->csv_columns);
        size_t c = r->csv_text_column;
        rc = emit(r, c ? r->field_end[c - 1] : 0, r->field_end[c], story, len);
        if (rc != 0) return rc;
    }
}

/* ---- format detection ---- */

static TextFormat format_from_extension(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (!dot) return TEXT_AUTO;
    if (strcasecmp(dot, ".jsonl") == 0) return TEXT_JSONL;
    if (strcasecmp(dot, ".json") == 0) return TEXT_JSON;
    if (strcasecmp(dot, ".csv") == 0) return TEXT_CSV;
    return TEXT_AUTO;
}

/* Looks at the first SNIFF_BYTES: "<|endoftext|>" lines -> hf-txt; a first line that is a JSON
 * object -> jsonl; else lines. NUL bytes mean it is not text at all. */
static int sniff(TextReader *r, TextFormat *out) {
    uint8_t *buf = xmalloc(SNIFF_BYTES + 1);
    size_t n = fread(buf, 1, SNIFF_BYTES, r->f);
    int rc = 0;
    if (ferror(r->f)) {
        rc = fail(r, "read error: %s", strerror(errno));
    } else if (fseek(r->f, 0, SEEK_SET) != 0) {
        rc = fail(r, "cannot seek back after detecting the format (%s); name the format explicitly",
                  strerror(errno));
    } else if (memchr(buf, '\0', n)) {
        rc = fail(r, "unknown format (binary data?)");
    } else {
        size_t begin = n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
        int complete = n < SNIFF_BYTES; /* else the last line may be cut off */
        *out = TEXT_LINES;
        for (size_t i = begin; i < n;) {
            const uint8_t *nl = memchr(buf + i, '\n', n - i);
            size_t end = nl ? (size_t)(nl - buf) : n;
            if ((nl || complete) && is_separator(buf + i, end - i)) {
                *out = TEXT_HF_TXT;
                break;
            }
            i = end + 1;
        }
        size_t first = begin;
        while (first < n && is_space(buf[first])) first++;
        if (*out == TEXT_LINES && first < n && buf[first] == '{') {
            const uint8_t *nl = memchr(buf + first, '\n', n - first);
            size_t end = nl ? (size_t)(nl - buf) : n;
            buf[end] = '\0';
            cJSON *doc = parse_json((const char *)buf + first, end - first, NULL);
            if (cJSON_IsObject(doc)) *out = TEXT_JSONL;
            cJSON_Delete(doc);
        }
    }
    free(buf);
    return rc;
}

/* ---- public ---- */

TextReader *text_reader_open(const char *path, TextFormat format) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tr_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        tr_set_error("%s: cannot open: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        tr_set_error("%s: cannot open: is a directory", path);
        fclose(f);
        return NULL;
    }
    TextReader *r = xcalloc(1, sizeof *r);
    r->path = xstrdup(path);
    r->f = f;
    int rc = 0;
    if ((int)format < 0 || (int)format >= N_FORMATS) {
        rc = fail(r, "unknown format (code %d)", (int)format);
    } else if (format == TEXT_AUTO) {
        format = format_from_extension(path);
        if (format == TEXT_AUTO) rc = sniff(r, &format);
    }
    r->format = format;
    if (rc == 0 && format != TEXT_JSON) {
        r->block_cap = text_reader_block_size < MIN_BLOCK ? MIN_BLOCK : text_reader_block_size;
        r->block = xmalloc(r->block_cap);
    }
    if (rc == 0 && format == TEXT_JSON) rc = open_json(r);
    if (rc == 0 && format == TEXT_CSV) rc = open_csv(r);
    if (rc < 0) {
        text_reader_close(r);
        return NULL; /* the error stays set: close does not touch it */
    }
    return r;
}

TextFormat text_reader_format(const TextReader *r) { return r->format; }

int text_reader_next(TextReader *r, const uint8_t **story, size_t *len) {
    if (r->error) {
        tr_set_error("%s", r->error);
        return -1;
    }
    if (r->done) return 0;
    switch (r->format) {
    case TEXT_HF_TXT: return next_hf_txt(r, story, len);
    case TEXT_LINES: return next_lines(r, story, len);
    case TEXT_JSONL: return next_jsonl(r, story, len);
    case TEXT_JSON: return next_json(r, story, len);
    case TEXT_CSV: return next_csv(r, story, len);
    default: return fail(r, "unknown format");
    }
}

TextReaderStats text_reader_stats(const TextReader *r) { return r->stats; }

/* Bytes of buffers the reader holds now (for tests: they must stay bounded by the block size plus
 * the longest line and story, however big the file). Not counting json's cJSON tree. */
size_t text_reader_buffer_bytes(const TextReader *r);
size_t text_reader_buffer_bytes(const TextReader *r) {
    return r->block_cap + r->carry_cap + r->story_cap + r->spans_cap * sizeof(Span) + r->held_cap +
           r->json_line_cap + r->field_end_cap * sizeof(size_t);
}

void text_reader_close(TextReader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    cJSON_Delete(r->json_doc);
    free(r->path);
    free(r->block);
    free(r->carry);
    free(r->story);
    free(r->spans);
    free(r->held);
    free(r->json_line);
    free(r->field_end);
    free(r->error);
    free(r);
}
