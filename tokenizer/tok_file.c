/* tok_file.c: tinyrope's own tokenizer file, "tinyrope-bpe" version 1 (the format is in
 * tokenizer.h): tok_save writes it atomically, with each merge's bytes as a comment for people;
 * tok_load reads it strictly, so that any problem is one error naming the file and the line.
 */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* The token's bytes between double quotes, C-style: \" \\ \n \r \t, other bytes outside printable
 * ASCII as \xHH (always two hex digits). Only for people reading the file; the loader skips it. */
static void write_escaped(FILE *f, const uint8_t *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c >= 0x20 && c < 0x7f) fputc(c, f);
        else fprintf(f, "\\x%02x", c);
    }
    fputc('"', f);
}

int tok_save(const Tokenizer *tok, const char *path) {
    /* Byte and merge ids are implicit in the format, so only our layout can be written. */
    int ours = tok->eot_id == 256 + tok->n_merges && tok->vocab_size == 257 + tok->n_merges;
    for (int b = 0; b < 256; b++) ours = ours && tok->byte_id[b] == (uint32_t)b;
    for (int r = 0; r < tok->n_merges; r++) ours = ours && tok->merge_id[r] == 256 + (uint32_t)r;
    if (!ours) {
        tr_set_error("%s: cannot save this tokenizer: its ids are not in tinyrope's layout (byte b = "
                     "id b, merge r = id 256 + r), e.g. one loaded from GPT-2's files", path);
        return -1;
    }
    TrAtomicFile af;
    if (tr_atomic_open(&af, path) != 0) return -1;
    FILE *f = af.f;
    fprintf(f, "tinyrope-bpe 1\npattern gpt2\nvocab_size %d\nmerges %d\nspecial %d %s\n",
            tok->vocab_size, tok->n_merges, tok->eot_id, TOK_EOT_STRING);
    for (int r = 0; r < tok->n_merges; r++) {
        int len;
        const uint8_t *bytes = tok_token_bytes(tok, 256 + r, &len);
        fprintf(f, "merge %d %u %u # ", 256 + r, tok->merges[r][0], tok->merges[r][1]);
        write_escaped(f, bytes, (size_t)len);
        fputc('\n', f);
    }
    fputs("end\n", f);
    return tr_atomic_commit(&af);
}

/* Splits line[0..len) (comment and '\r' already cut off) into at most max_fields
 * whitespace-separated fields, NUL-terminating each in place. Returns the field count, or
 * max_fields + 1 when there are more. */
static int split_fields(char *line, size_t len, char **fields, int max_fields) {
    int n = 0;
    size_t i = 0;
    for (;;) {
        while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
        if (i >= len) return n;
        if (n == max_fields) return n + 1;
        fields[n++] = line + i;
        while (i < len && line[i] != ' ' && line[i] != '\t') i++;
        if (i < len) line[i++] = '\0';
        else line[len] = '\0';   /* the caller's buffer has room: it held the '\n' or the final NUL */
    }
}

/* Strict decimal: digits only, at most INT32_MAX. */
static int parse_count(const char *s, uint32_t *value) {
    if (!*s) return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > INT32_MAX) return -1;
    }
    *value = (uint32_t)v;
    return 0;
}

Tokenizer *tok_load(const char *path) {
    size_t size;
    char *text = tr_read_file(path, &size);
    if (!text) return NULL;
    Tokenizer *t = NULL;
    uint32_t (*merges)[2] = NULL;
    int *merge_line = NULL;
    size_t merges_cap = 0;
    uint32_t n_merges = 0, declared_vocab = 0, declared_merges = 0;
    int vocab_line = 0, n_special = 0, seen_end = 0;
    /* The header lines, in order; then special / merge lines; then "end". */
    enum { WANT_MAGIC, WANT_PATTERN, WANT_VOCAB, WANT_MERGES, BODY, AFTER_END } stage = WANT_MAGIC;
    int line_no = 0;
    for (size_t at = 0; at < size;) {
        char *line = text + at;
        char *newline = memchr(line, '\n', size - at);
        size_t len = newline ? (size_t)(newline - line) : size - at;
        at += len + 1;
        line_no++;
        if (memchr(line, '\0', len)) {
            tr_set_error("%s:%d: NUL byte in a text file", path, line_no);
            goto fail;
        }
        char *hash = memchr(line, '#', len);
        if (hash) len = (size_t)(hash - line);
        if (len > 0 && line[len - 1] == '\r') len--;
        char *f[6];
        int nf = split_fields(line, len, f, 5);
        /* Every line we write ends with a newline; one without is a file cut off mid-line, whose
         * last number may look valid but be short ("merge 300 12 4" of "... 45"). */
        if (!newline && nf > 0 && stage != WANT_MAGIC) {
            tr_set_error("%s:%d: truncated: the last line has no newline (file cut off?)", path, line_no);
            goto fail;
        }
        if (stage == WANT_MAGIC) {
            if (nf < 1 || strcmp(f[0], "tinyrope-bpe") != 0) {
                tr_set_error("%s:%d: not a tinyrope tokenizer file (wrong magic: the first line should "
                             "be \"tinyrope-bpe 1\")", path, line_no);
                goto fail;
            }
            uint32_t version;
            if (nf != 2 || parse_count(f[1], &version) != 0) {
                tr_set_error("%s:%d: bad magic line: expected \"tinyrope-bpe <version>\"", path, line_no);
                goto fail;
            }
            if (version != 1) {
                tr_set_error("%s:%d: unsupported tokenizer file version %u (this build reads version 1)",
                             path, line_no, version);
                goto fail;
            }
            stage = WANT_PATTERN;
            continue;
        }
        if (nf == 0) continue;   /* blank or comment-only line */
        if (stage == AFTER_END) {
            tr_set_error("%s:%d: unexpected text after \"end\"", path, line_no);
            goto fail;
        }
        if (stage == WANT_PATTERN) {
            if (strcmp(f[0], "pattern") != 0 || nf != 2) {
                tr_set_error("%s:%d: expected \"pattern gpt2\"", path, line_no);
                goto fail;
            }
            if (strcmp(f[1], "gpt2") != 0) {
                tr_set_error("%s:%d: unsupported pre-tokenization pattern \"%s\" (only gpt2)", path,
                             line_no, f[1]);
                goto fail;
            }
            stage = WANT_VOCAB;
            continue;
        }
        if (stage == WANT_VOCAB || stage == WANT_MERGES) {
            const char *key = stage == WANT_VOCAB ? "vocab_size" : "merges";
            uint32_t value;
            if (strcmp(f[0], key) != 0 || nf != 2) {
                tr_set_error("%s:%d: expected \"%s <count>\"", path, line_no, key);
                goto fail;
            }
            if (parse_count(f[1], &value) != 0) {
                tr_set_error("%s:%d: bad number \"%s\" for %s", path, line_no, f[1], key);
                goto fail;
            }
            if (stage == WANT_VOCAB) {
                declared_vocab = value;
                vocab_line = line_no;
                stage = WANT_MERGES;
            } else {
                if (value > INT32_MAX - 257) {
                    tr_set_error("%s:%d: too many merges (%u)", path, line_no, value);
                    goto fail;
                }
                declared_merges = value;
                stage = BODY;
            }
            continue;
        }
        /* BODY */
        if (strcmp(f[0], "end") == 0 && nf == 1) {
            if (n_merges != declared_merges) {
                tr_set_error("%s:%d: truncated: %u merges declared but only %u found", path, line_no,
                             declared_merges, n_merges);
                goto fail;
            }
            seen_end = 1;
            stage = AFTER_END;
            continue;
        }
        if (strcmp(f[0], "special") == 0) {
            uint32_t id;
            if (nf != 3) {
                tr_set_error("%s:%d: expected \"special <id> <name>\"", path, line_no);
                goto fail;
            }
            if (parse_count(f[1], &id) != 0) {
                tr_set_error("%s:%d: bad number \"%s\" for a special token id", path, line_no, f[1]);
                goto fail;
            }
            if (strcmp(f[2], TOK_EOT_STRING) != 0 || n_special > 0) {
                tr_set_error("%s:%d: unsupported special token \"%s\" (version 1 has exactly one: %s)",
                             path, line_no, f[2], TOK_EOT_STRING);
                goto fail;
            }
            if (id != 256 + declared_merges) {
                tr_set_error("%s:%d: non-consecutive id: special token id %u should be %u (after the %u "
                             "merges)", path, line_no, id, 256 + declared_merges, declared_merges);
                goto fail;
            }
            n_special++;
            continue;
        }
        if (strcmp(f[0], "merge") == 0) {
            uint32_t v[3];
            if (nf != 4) {
                tr_set_error("%s:%d: expected \"merge <id> <left> <right>\"", path, line_no);
                goto fail;
            }
            for (int k = 0; k < 3; k++) {
                if (parse_count(f[1 + k], &v[k]) != 0) {
                    tr_set_error("%s:%d: bad number \"%s\" in merge", path, line_no, f[1 + k]);
                    goto fail;
                }
            }
            if (n_merges == declared_merges) {
                tr_set_error("%s:%d: more merges than the %u declared", path, line_no, declared_merges);
                goto fail;
            }
            if (v[0] != 256 + n_merges) {
                tr_set_error("%s:%d: non-consecutive id: merge id %u should be %u", path, line_no, v[0],
                             256 + n_merges);
                goto fail;
            }
            for (int k = 1; k <= 2; k++) {
                if (v[k] >= v[0]) {
                    tr_set_error("%s:%d: merge %u refers to id %u, which is unknown or not defined yet "
                                 "(a merge may only use bytes and earlier merges)", path, line_no, v[0], v[k]);
                    goto fail;
                }
            }
            if (n_merges == merges_cap) {
                merges_cap = merges_cap ? 2 * merges_cap : 1024;
                merges = xrealloc(merges, merges_cap * sizeof *merges);
                merge_line = xrealloc(merge_line, merges_cap * sizeof *merge_line);
            }
            merges[n_merges][0] = v[1];
            merges[n_merges][1] = v[2];
            merge_line[n_merges] = line_no;
            n_merges++;
            continue;
        }
        tr_set_error("%s:%d: unknown line \"%s\" (expected special, merge or end)", path, line_no, f[0]);
        goto fail;
    }
    if (stage == WANT_MAGIC) {
        tr_set_error("%s:1: not a tinyrope tokenizer file (empty; wrong magic)", path);
        goto fail;
    }
    if (!seen_end) {
        tr_set_error("%s:%d: truncated: the file ends without its \"end\" line (%u of %u merges read)",
                     path, line_no, n_merges, declared_merges);
        goto fail;
    }
    if (n_special != 1) {
        tr_set_error("%s: no \"special <id> %s\" line", path, TOK_EOT_STRING);
        goto fail;
    }
    if (declared_vocab != 256 + n_merges + 1) {
        tr_set_error("%s:%d: vocab_size %u is inconsistent: 256 bytes + %u merges + 1 special token = %u",
                     path, vocab_line, declared_vocab, n_merges, 256 + n_merges + 1);
        goto fail;
    }
    int dup_first, dup_second;
    t = tok_build_our_layout((const uint32_t (*)[2])merges, (int)n_merges, &dup_first, &dup_second);
    if (!t)
        tr_set_error("%s:%d: merge %d joins the same pair (%u, %u) as the merge on line %d", path,
                     merge_line[dup_second], 256 + dup_second, merges[dup_second][0],
                     merges[dup_second][1], merge_line[dup_first]);
fail:
    free(text);
    free(merges);
    free(merge_line);
    return t;
}
