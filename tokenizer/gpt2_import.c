/* gpt2_import.c: OpenAI's GPT-2 tokenizer files (encoder.json + vocab.bpe) read as a Tokenizer
 * whose ids are GPT-2's own (tok_load_gpt2); any problem in them is one error naming the file.
 *
 * encoder.json maps token strings to ids; vocab.bpe lists merges "A B" in rank order after a
 * "#version" line. Token strings are not bytes: GPT-2 writes each byte as one visible character
 * (bytes_to_unicode): the printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for
 * themselves, and the other 68 bytes, in increasing order, become U+0100, U+0101, ... So a space
 * is 'Ġ' (U+0120) and a newline 'Ċ' (U+010A). */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer/pretok.h"

static int gpt2_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* char_to_byte[cp] for cp < 256 + 68, -1 for characters outside GPT-2's byte alphabet. */
static void gpt2_char_to_byte(int char_to_byte[256 + 68]) {
    for (int cp = 0; cp < 256 + 68; cp++) char_to_byte[cp] = -1;
    int next = 0;
    for (int b = 0; b < 256; b++) {
        if (gpt2_is_printable(b)) char_to_byte[b] = b;
        else char_to_byte[256 + next++] = b;
    }
}

/* Decodes a GPT-2 token string into buf; returns 0, or -1 if a character is not one of the 256. */
static int gpt2_name_to_bytes(const char *name, const int char_to_byte[256 + 68], ByteBuf *buf) {
    const uint8_t *s = (const uint8_t *)name;
    size_t n = strlen(name);
    buf->len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)pretok_decode(s + i, n - i, &cp);
        if (cp >= 256 + 68 || char_to_byte[cp] < 0) return -1;
        uint8_t byte = (uint8_t)char_to_byte[cp];
        buf_append(buf, &byte, 1);
    }
    return 0;
}

/* Token string -> id, open addressing over the encoder's own strings. */
typedef struct {
    int *slots;   /* ids, -1 empty */
    size_t mask;
    const char **names;   /* by id */
} NameTable;

static size_t name_hash(const char *s, size_t len) {
    return (size_t)tr_fnv1a64(s, len, TR_FNV_OFFSET);
}

static void names_insert(NameTable *nt, int id) {
    const char *name = nt->names[id];
    size_t i = name_hash(name, strlen(name)) & nt->mask;
    while (nt->slots[i] >= 0) i = (i + 1) & nt->mask;
    nt->slots[i] = id;
}

/* Looks up s[0..len) (need not be NUL-terminated); -1 if absent. */
static int names_find(const NameTable *nt, const char *s, size_t len) {
    for (size_t i = name_hash(s, len) & nt->mask;; i = (i + 1) & nt->mask) {
        int id = nt->slots[i];
        if (id < 0) return -1;
        const char *name = nt->names[id];
        if (strncmp(name, s, len) == 0 && name[len] == '\0') return id;
    }
}

/* Line number (1-based) of text[offset]. */
static int line_of(const char *text, size_t offset) {
    int line = 1;
    for (size_t i = 0; i < offset; i++) line += text[i] == '\n';
    return line;
}

Tokenizer *tok_load_gpt2(const char *encoder_json_path, const char *vocab_bpe_path) {
    const char *enc_path = encoder_json_path, *bpe_path = vocab_bpe_path;
    size_t enc_size, bpe_size;
    char *enc_text = tr_read_file(enc_path, &enc_size);
    if (!enc_text) return NULL;
    char *bpe_text = tr_read_file(bpe_path, &bpe_size);
    if (!bpe_text) {
        free(enc_text);
        return NULL;
    }
    Tokenizer *t = NULL, *result = NULL;
    const char **names = NULL;
    NameTable nt = {0};
    ByteBuf bytes = {0}, data = {0}, joined = {0};
    uint32_t (*merges)[2] = NULL;
    uint32_t *merge_ids = NULL;
    int *merge_line = NULL;
    size_t merges_cap = 0;
    int n_merges = 0;
    int char_to_byte[256 + 68];
    gpt2_char_to_byte(char_to_byte);

    /* parse_end, not cJSON_GetErrorPtr: that one is shared by all threads. The length includes
     * tr_read_file's final NUL so that cJSON can insist nothing follows the object. */
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(enc_text, enc_size + 1, &parse_end, 1);
    if (!root) {
        size_t offset = parse_end ? (size_t)(parse_end - enc_text) : 0;
        tr_set_error("%s:%d: bad JSON (parse error near byte %zu)", enc_path, line_of(enc_text, offset),
                     offset);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        tr_set_error("%s: bad encoder: expected a JSON object mapping token strings to ids", enc_path);
        goto done;
    }
    int count = cJSON_GetArraySize(root);
    if (count < 257) {
        tr_set_error("%s: bad encoder: only %d tokens (needs 256 bytes and %s)", enc_path, count,
                     TOK_EOT_STRING);
        goto done;
    }
    names = xcalloc((size_t)count, sizeof *names);
    t = xcalloc(1, sizeof *t);
    t->vocab_size = count;
    t->eot_id = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = NO_ID;
    for (const cJSON *item = root->child; item; item = item->next) {
        double v = item->valuedouble;
        if (!cJSON_IsNumber(item) || !(v >= 0 && v < count) || v != (double)(int)v) {
            if (cJSON_IsNumber(item))
                tr_set_error("%s: bad encoder: token \"%s\" has id %g; ids must be the integers 0..%d",
                             enc_path, item->string, v, count - 1);
            else
                tr_set_error("%s: bad encoder: the id of token \"%s\" is not a number", enc_path,
                             item->string);
            goto done;
        }
        int id = (int)v;
        if (names[id]) {
            tr_set_error("%s: bad encoder: id %d is used twice (\"%s\" and \"%s\")", enc_path, id,
                         names[id], item->string);
            goto done;
        }
        names[id] = item->string;
    }
    /* count distinct ids in 0..count-1, one per entry: every id has a name. */
    size_t table_size = 16;
    while (table_size < 2 * (size_t)count) table_size *= 2;
    nt.slots = xmalloc(table_size * sizeof *nt.slots);
    for (size_t i = 0; i < table_size; i++) nt.slots[i] = -1;
    nt.mask = table_size - 1;
    nt.names = names;
    t->token_start = xmalloc(((size_t)count + 1) * sizeof *t->token_start);
    for (int id = 0; id < count; id++) {
        if (gpt2_name_to_bytes(names[id], char_to_byte, &bytes) != 0 || bytes.len == 0) {
            tr_set_error("%s: bad encoder: token \"%s\" (id %d) is %s", enc_path, names[id], id,
                         bytes.len == 0 && names[id][0] == '\0'
                             ? "empty"
                             : "not written in GPT-2's byte alphabet (bytes_to_unicode)");
            goto done;
        }
        if (bytes.len == 1) {
            uint8_t b = bytes.data[0];
            if (t->byte_id[b] != NO_ID) {
                tr_set_error("%s: bad encoder: duplicate byte token: byte 0x%02x is both id %u and id %d",
                             enc_path, b, t->byte_id[b], id);
                goto done;
            }
            t->byte_id[b] = (uint32_t)id;
        }
        if (names_find(&nt, names[id], strlen(names[id])) >= 0) {
            tr_set_error("%s: bad encoder: token \"%s\" appears twice", enc_path, names[id]);
            goto done;
        }
        names_insert(&nt, id);
        if (strcmp(names[id], TOK_EOT_STRING) == 0) t->eot_id = id;
        t->token_start[id] = data.len;
        buf_append(&data, bytes.data, bytes.len);
    }
    t->token_start[count] = data.len;
    t->token_data = data.data;
    data.data = NULL;
    for (int b = 0; b < 256; b++) {
        if (t->byte_id[b] == NO_ID) {
            tr_set_error("%s: bad encoder: missing byte token for byte 0x%02x", enc_path, b);
            goto done;
        }
    }
    if (t->eot_id < 0) {
        tr_set_error("%s: bad encoder: no %s token", enc_path, TOK_EOT_STRING);
        goto done;
    }

    int line_no = 0;
    for (size_t at = 0; at < bpe_size;) {
        char *line = bpe_text + at;
        char *newline = memchr(line, '\n', bpe_size - at);
        size_t len = newline ? (size_t)(newline - line) : bpe_size - at;
        at += len + 1;
        line_no++;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (line_no == 1 && len >= 8 && memcmp(line, "#version", 8) == 0) continue;
        if (len == 0) continue;
        char *space = memchr(line, ' ', len);
        size_t left_len = space ? (size_t)(space - line) : 0;
        size_t right_len = space ? len - left_len - 1 : 0;
        if (!space || left_len == 0 || right_len == 0 || memchr(space + 1, ' ', right_len) ||
            memchr(line, '\0', len)) {
            tr_set_error("%s:%d: bad merge line: expected two token names separated by one space",
                         bpe_path, line_no);
            goto done;
        }
        const char *right_name = space + 1;
        int left = names_find(&nt, line, left_len), right = names_find(&nt, right_name, right_len);
        joined.len = 0;
        buf_append(&joined, line, left_len);
        buf_append(&joined, right_name, right_len);
        int merged = names_find(&nt, (const char *)joined.data, joined.len);
        if (left < 0 || right < 0) {
            tr_set_error("%s:%d: merge names token \"%.*s\", which is not in %s", bpe_path, line_no,
                         (int)(left < 0 ? left_len : right_len), left < 0 ? line : right_name, enc_path);
            goto done;
        }
        if (merged < 0) {
            tr_set_error("%s:%d: merge makes token \"%.*s\", which is not in %s", bpe_path, line_no,
                         (int)joined.len, (const char *)joined.data, enc_path);
            goto done;
        }
        if (merged == t->eot_id) {
            tr_set_error("%s:%d: merge produces the special token %s", bpe_path, line_no, TOK_EOT_STRING);
            goto done;
        }
        if ((size_t)n_merges == merges_cap) {
            merges_cap = merges_cap ? 2 * merges_cap : 1024;
            merges = xrealloc(merges, merges_cap * sizeof *merges);
            merge_ids = xrealloc(merge_ids, merges_cap * sizeof *merge_ids);
            merge_line = xrealloc(merge_line, merges_cap * sizeof *merge_line);
        }
        merges[n_merges][0] = (uint32_t)left;
        merges[n_merges][1] = (uint32_t)right;
        merge_ids[n_merges] = (uint32_t)merged;
        merge_line[n_merges] = line_no;
        n_merges++;
    }
    t->n_merges = n_merges;
    t->merges = merges;
    t->merge_id = merge_ids;
    merges = NULL;
    merge_ids = NULL;
    if (!t->merges) {   /* no merges at all: keep the arrays non-NULL for uniformity */
        t->merges = xmalloc(sizeof *t->merges);
        t->merge_id = xmalloc(sizeof *t->merge_id);
    }
    int dup_first, dup_second;
    if (tok_index(t, &dup_first, &dup_second) != 0) {
        tr_set_error("%s:%d: duplicate merge: the same pair as line %d", bpe_path,
                     merge_line[dup_second], merge_line[dup_first]);
        goto done;
    }
    result = t;
    t = NULL;
done:
    tok_free(t);
    cJSON_Delete(root);
    free(enc_text);
    free(bpe_text);
    free(names);
    free(nt.slots);
    free(bytes.data);
    free(data.data);
    free(joined.data);
    free(merges);
    free(merge_ids);
    free(merge_line);
    return result;
}
