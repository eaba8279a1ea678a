/* text_reader_test_helpers.h: what the story-reader tests share (test_text_reader_formats.c,
 * test_text_reader_bulk.c): the reader's test hooks, fixture files under the scratch directory,
 * one whole pass over a file (Read), and growable buffers and story lists. */
#ifndef TINYROPE_TEXT_READER_TEST_HELPERS_H
#define TINYROPE_TEXT_READER_TEST_HELPERS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/text_reader.h"
#include "base/util.h"
#include "tests/test.h"

/* Hooks defined in text_reader.c, not part of the header. */
extern size_t text_reader_block_size;
extern size_t text_reader_max_story;
size_t text_reader_buffer_bytes(const TextReader *r);

#define DEFAULT_BLOCK ((size_t)1 << 20)

/* "<tmp>/tr_<name>"; four rotating buffers so a test can hold a few paths at once. */
static inline const char *tmp_path(const char *name) {
    static char paths[4][512];
    static int next;
    static const char *dir;
    if (!dir) dir = test_tmp_dir(); /* it runs mkdir through the shell: once is enough */
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%s/tr_%s", dir, name);
    return p;
}

/* Writes a fixture file (a C string) under the scratch directory and returns its path. */
static inline const char *fixture_n(const char *name, const char *content, size_t n) {
    const char *path = tmp_path(name);
    if (test_write_file(path, content, n) != 0) fprintf(stderr, "cannot write %s\n", path);
    return path;
}
static inline const char *fixture(const char *name, const char *content) {
    return fixture_n(name, content, strlen(content));
}

/* Everything one pass over a file gave. */
typedef struct {
    int open_failed;
    int ok;                /* reached the end without error */
    int repeat_consistent; /* a call after the end/error gave the same result again */
    char error[1024];
    size_t n, cap;
    char **s;
    size_t *len;
    TextReaderStats stats;
    TextFormat format;
} Read;

static inline Read read_all(const char *path, TextFormat format) {
    Read rd;
    memset(&rd, 0, sizeof rd);
    tr_clear_error();
    TextReader *r = text_reader_open(path, format);
    if (!r) {
        rd.open_failed = 1;
        snprintf(rd.error, sizeof rd.error, "%s", tr_error());
        return rd;
    }
    rd.format = text_reader_format(r);
    const uint8_t *story;
    size_t len;
    int rc;
    while ((rc = text_reader_next(r, &story, &len)) == 1) {
        if (rd.n == rd.cap) {
            rd.cap = rd.cap ? 2 * rd.cap : 16;
            rd.s = xrealloc(rd.s, rd.cap * sizeof *rd.s);
            rd.len = xrealloc(rd.len, rd.cap * sizeof *rd.len);
        }
        rd.s[rd.n] = xmalloc(len + 1);
        memcpy(rd.s[rd.n], story, len);
        rd.s[rd.n][len] = '\0';
        rd.len[rd.n++] = len;
    }
    rd.ok = rc == 0;
    if (rc < 0) snprintf(rd.error, sizeof rd.error, "%s", tr_error());
    tr_clear_error();
    int again = text_reader_next(r, &story, &len);
    rd.repeat_consistent = again == rc && (rc == 0 || strcmp(tr_error(), rd.error) == 0);
    rd.stats = text_reader_stats(r);
    text_reader_close(r);
    return rd;
}

static inline void read_free(Read *rd) {
    for (size_t i = 0; i < rd->n; i++) free(rd->s[i]);
    free(rd->s);
    free(rd->len);
    memset(rd, 0, sizeof *rd);
}

/* The first 120 bytes of s with newlines and control bytes made visible, for failure messages. */
static inline const char *shown(const char *s, size_t n) {
    static char out[4][512];
    static int next;
    char *o = out[next++ % 4];
    size_t k = 0;
    for (size_t i = 0; i < n && i < 120 && k + 8 < 512; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            k += (size_t)snprintf(o + k, 512 - k, "\\n");
        else if (c == '\r')
            k += (size_t)snprintf(o + k, 512 - k, "\\r");
        else if (c < 32 || c == 127)
            k += (size_t)snprintf(o + k, 512 - k, "\\x%02x", c);
        else
            o[k++] = (char)c;
    }
    o[k] = '\0';
    return o;
}

/* A growable byte buffer. */
typedef struct {
    char *p;
    size_t n, cap;
} Buf;
static inline void buf_add(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static inline void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* A list of expected stories. */
typedef struct {
    char **s;
    size_t *len;
    size_t n, cap;
} List;
static inline void list_add(List *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->s = xrealloc(l->s, l->cap * sizeof *l->s);
        l->len = xrealloc(l->len, l->cap * sizeof *l->len);
    }
    l->s[l->n] = xmalloc(n + 1);
    memcpy(l->s[l->n], s, n);
    l->s[l->n][n] = '\0';
    l->len[l->n++] = n;
}
static inline void list_free(List *l) {
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    free(l->len);
    memset(l, 0, sizeof *l);
}
static inline int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
/* Adds s stripped, unless empty (the readers' rule). */
static inline void list_add_stripped(List *l, const char *s, size_t n) {
    size_t b = 0, e = n;
    while (b < e && is_ws(s[b])) b++;
    while (e > b && is_ws(s[e - 1])) e--;
    if (e > b) list_add(l, s + b, e - b);
}

#endif
