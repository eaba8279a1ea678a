/* tasks.c: the synthetic tasks of tasks.h: their specs, the generation of group word problems and
 * flip-flop sequences, and the accuracy metrics. The groups themselves are built in groups.c.
 */
#include "data/tasks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/groups.h"
#include "data/shard_format.h"
#include "base/util.h"

typedef enum { TASK_GROUP, TASK_FLIPFLOP } TaskKind;

struct Task {
    TaskKind kind;
    int length;
    double p_ignore;        /* flip-flop */
    Group *group;           /* group word problem */
};

#define FLIPFLOP_DEFAULT_P_IGNORE 0.8

/* ---- specs ---- */

/* The keys each kind accepts, in the order the unknown-key message lists them. */
static const char *const group_keys[] = {"task", "group", "length", NULL};
static const char *const flipflop_keys[] = {"task", "length", "p_ignore", NULL};

static int key_index(const char *const *keys, const char *name) {
    for (int i = 0; keys[i]; i++)
        if (strcmp(keys[i], name) == 0) return i;
    return -1;
}

/* Every key of spec is one of keys and appears once; values[i] gets the item of keys[i]. */
static int collect_keys(const cJSON *spec, const char *const *keys, const cJSON **values) {
    const cJSON *field;
    cJSON_ArrayForEach(field, spec) {
        int i = key_index(keys, field->string);
        if (i < 0) {
            char expected[64] = "";
            for (int k = 0; keys[k]; k++)
                snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s",
                         k ? ", " : "", keys[k]);
            tr_set_error("task spec: unknown key \"%.60s\" (expected %s)", field->string, expected);
            return -1;
        }
        if (values[i]) {
            tr_set_error("task spec: %s: key given twice", keys[i]);
            return -1;
        }
        values[i] = field;
    }
    return 0;
}

static int parse_length(const cJSON *item, TaskKind kind, int *length) {
    uint64_t n;
    if (!item) {
        tr_set_error("task spec: length: missing (the number of tokens per sequence)");
        return -1;
    }
    if (!json_number_to_u64(item, &n) || n < 1 || n > TASK_MAX_LENGTH) {
        tr_set_error("task spec: length: expected an integer from 1 to %d", TASK_MAX_LENGTH);
        return -1;
    }
    if (kind == TASK_FLIPFLOP && n % 2 != 0) {
        tr_set_error("task spec: length: %d is odd; flip-flop sequences are instruction and bit pairs",
                     (int)n);
        return -1;
    }
    *length = (int)n;
    return 0;
}

static Group *parse_group(const cJSON *item) {
    if (!item) {
        tr_set_error("task spec: group: missing (Z<m>, S3, S4, S5, A4 or A5)");
        return NULL;
    }
    if (!cJSON_IsString(item)) {
        tr_set_error("task spec: group: expected a string (Z<m>, S3, S4, S5, A4 or A5)");
        return NULL;
    }
    Group *g = group_create(item->valuestring);
    if (!g) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", tr_error());
        tr_set_error("task spec: group: %s", reason);
    }
    return g;
}

static int parse_p_ignore(const cJSON *item, double *p) {
    if (!item) {
        *p = FLIPFLOP_DEFAULT_P_IGNORE;
        return 0;
    }
    if (!cJSON_IsNumber(item) || !(item->valuedouble >= 0.0 && item->valuedouble < 1.0)) {
        tr_set_error("task spec: p_ignore: expected a probability in [0, 1) (at 1 nothing is ever read)");
        return -1;
    }
    *p = item->valuedouble;
    return 0;
}

Task *task_create(const cJSON *spec) {
    if (!cJSON_IsObject(spec)) {
        tr_set_error("task spec: expected an object {\"task\": \"group\" or \"flipflop\", ...}");
        return NULL;
    }
    const cJSON *kind_item = cJSON_GetObjectItemCaseSensitive(spec, "task");
    if (!cJSON_IsString(kind_item)) {
        tr_set_error("task spec: task: %s (expected \"group\" or \"flipflop\")",
                     kind_item ? "not a string" : "missing");
        return NULL;
    }
    Task t = {0};
    const char *const *keys;
    if (strcmp(kind_item->valuestring, "group") == 0) {
        t.kind = TASK_GROUP;
        keys = group_keys;
    } else if (strcmp(kind_item->valuestring, "flipflop") == 0) {
        t.kind = TASK_FLIPFLOP;
        keys = flipflop_keys;
    } else {
        tr_set_error("task spec: task: unknown task \"%.40s\" (expected \"group\" or \"flipflop\")",
                     kind_item->valuestring);
        return NULL;
    }
    const cJSON *values[4] = {0};
    if (collect_keys(spec, keys, values) != 0) return NULL;
    if (parse_length(values[key_index(keys, "length")], t.kind, &t.length) != 0) return NULL;
    if (t.kind == TASK_FLIPFLOP && parse_p_ignore(values[key_index(keys, "p_ignore")], &t.p_ignore) != 0)
        return NULL;
    if (t.kind == TASK_GROUP && !(t.group = parse_group(values[key_index(keys, "group")]))) return NULL;
    Task *task = xmalloc(sizeof *task);
    *task = t;
    return task;
}

void task_free(Task *task) {
    if (!task) return;
    group_free(task->group);
    free(task);
}

int task_vocab_size(const Task *task) {
    return task->kind == TASK_GROUP ? group_order(task->group) + 1 : FLIPFLOP_VOCAB;   /* + the start token */
}

int task_length(const Task *task) { return task->length; }

/* ---- generation ---- */

/* The generator state of one row: each of seed, index and row goes through a splitmix64 round,
 * so nearby values of any of them give unrelated streams. */
static uint64_t row_state(uint64_t seed, uint64_t index, int row) {
    uint64_t s = seed;
    s = tr_rng_u64(&s) ^ index;
    s = tr_rng_u64(&s) ^ (uint64_t)row;
    return tr_rng_u64(&s);
}

/* Uniform in [0, n); the modulo bias is below n / 2^64, invisible at these sizes. */
static int uniform_below(uint64_t *state, int n) { return (int)(tr_rng_u64(state) % (uint64_t)n); }

/* Uniform in [0, 1) with 53 bits, so any p_ignore is honoured to double precision. */
static double uniform_double(uint64_t *state) { return (double)(tr_rng_u64(state) >> 11) * 0x1p-53; }

/* Position 0 holds the start token (id = the group's order), unsupervised: without it a
 * relative encoding cannot tell position 1 of "a a" from position 0 of "a" (both attend over
 * equal values only), and every prefix of equal elements would be a guess. */
static void group_row(const Group *g, uint64_t *state, int T, int32_t *inputs, int32_t *targets) {
    int order = group_order(g), product = 0;
    inputs[0] = order;
    targets[0] = -1;
    for (int t = 1; t < T; t++) {
        int x = uniform_below(state, order);
        product = t == 1 ? x : group_multiply(g, product, x);
        inputs[t] = x;
        targets[t] = product;
    }
}

static void flipflop_row(double p_ignore, uint64_t *state, int T, int32_t *inputs, int32_t *targets) {
    int last_written = 0;
    for (int t = 0; t < T; t += 2) {
        int instruction = FLIPFLOP_WRITE;
        if (t > 0) {
            if (uniform_double(state) < p_ignore) instruction = FLIPFLOP_IGNORE;
            else instruction = (tr_rng_u64(state) >> 63) ? FLIPFLOP_READ : FLIPFLOP_WRITE;
        }
        int bit = (int)(tr_rng_u64(state) >> 63);
        if (instruction == FLIPFLOP_READ) bit = last_written;
        if (instruction == FLIPFLOP_WRITE) last_written = bit;
        inputs[t] = instruction;
        targets[t] = instruction == FLIPFLOP_READ ? bit : -1;
        if (t + 1 < T) {
            inputs[t + 1] = bit;
            targets[t + 1] = -1;
        }
    }
}

void task_batch(const Task *task, uint64_t seed, uint64_t index, int B, int T, int32_t *inputs,
                int32_t *targets) {
    for (int b = 0; b < B; b++) {
        uint64_t state = row_state(seed, index, b);
        int32_t *in = inputs + (size_t)b * T, *tg = targets + (size_t)b * T;
        if (task->kind == TASK_GROUP) group_row(task->group, &state, T, in, tg);
        else flipflop_row(task->p_ignore, &state, T, in, tg);
    }
}

/* ---- metrics ---- */

int task_predict(const float *scores, int V) {
    int best = -1;
    for (int v = 0; v < V; v++)
        if (!isnan(scores[v]) && (best < 0 || scores[v] > scores[best])) best = v;
    return best < 0 ? 0 : best;
}

void task_count_correct_by_position(const float *scores, const int32_t *targets, int B, int T, int V,
                                    int64_t *correct_at, int64_t *supervised_at) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t at = (size_t)b * T + t;
            if (targets[at] < 0) continue;
            supervised_at[t]++;
            correct_at[t] += task_predict(scores + at * V, V) == targets[at];
        }
}

void task_count_correct(const float *scores, const int32_t *targets, int B, int T, int V,
                        int64_t *correct, int64_t *supervised) {
    for (size_t at = 0; at < (size_t)B * T; at++) {
        if (targets[at] < 0) continue;
        (*supervised)++;
        *correct += task_predict(scores + at * V, V) == targets[at];
    }
}

int task_solved_length(const int64_t *correct_at, const int64_t *supervised_at, int T, double threshold) {
    for (int t = 0; t < T; t++)
        if (supervised_at[t] > 0 && (double)correct_at[t] / (double)supervised_at[t] < threshold) return t;
    return T;
}
