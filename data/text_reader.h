/* text_reader.h: streaming story readers for every format TinyStories comes in.
 *
 * A reader yields one story at a time; memory is bounded by the longest story (plus, for the
 * whole-file JSON format, the file itself), so the 2 GB HF .txt files are streamed.
 *
 * Formats (TEXT_AUTO picks by extension, then by content; see text_reader.c):
 *   hf-txt  HF .txt (V1 and V2): stories separated by lines holding exactly "<|endoftext|>".
 *           Text after the last separator is an unterminated, possibly truncated story: dropped
 *           and counted in stats.dropped.
 *   lines   .txt without separators (HF `datasets` rows dumped as text): a blank line (empty or
 *           only spaces/tabs) between paragraphs, a newline between two non-blank lines between stories.
 *   json    {"texts": [string, ...]}, or a top-level array of strings or of objects with a
 *           "story" or "text" field. Parsed whole with cJSON (such files are small).
 *   jsonl   one JSON object per line with a "story" or "text" field. A last line that is cut off
 *           (no final newline and not valid JSON) is dropped and counted.
 *   csv     RFC 4180 with a header row that has a `text` column; quoted fields may hold newlines
 *           and "" escapes. An unterminated quoted field at end of file is dropped and counted.
 * Every story is stripped of leading and trailing whitespace (space, \t, \r, \n); empty stories
 * are skipped. A story must be valid UTF-8.
 * Errors (one message naming the file and, where it helps, the line): cannot open, unknown format,
 * invalid UTF-8 (with byte offset), malformed JSON/CSV, missing field/column, no stories at all.
 */
#ifndef TINYROPE_TEXT_READER_H
#define TINYROPE_TEXT_READER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TEXT_AUTO = 0, TEXT_HF_TXT, TEXT_LINES, TEXT_JSON, TEXT_JSONL, TEXT_CSV } TextFormat;

/* "auto", "hf-txt", "lines", "json", "jsonl", "csv" <-> TextFormat. parse returns 0 or -1. */
const char *text_format_name(TextFormat f);
int text_format_parse(const char *name, TextFormat *out);

typedef struct {
    uint64_t stories;      /* stories returned so far */
    uint64_t bytes;        /* bytes of those stories (after stripping) */
    uint64_t dropped;      /* truncated/unterminated stories dropped at end of file */
} TextReaderStats;

typedef struct TextReader TextReader; /* opaque */

/* Opens path. NULL + error ("<path>: ...") if it cannot be opened or its format is unknown. */
TextReader *text_reader_open(const char *path, TextFormat format);
TextFormat text_reader_format(const TextReader *r);   /* the resolved format */
/* Next story: returns 1 and points *story and *len at it (valid until the next call), 0 at the end,
 * -1 on error (error set: "<path>: line N: what"). At the end, a file that gave no story at all
 * is an error ("<path>: no stories"). */
int text_reader_next(TextReader *r, const uint8_t **story, size_t *len);
TextReaderStats text_reader_stats(const TextReader *r);
void text_reader_close(TextReader *r);

#endif
