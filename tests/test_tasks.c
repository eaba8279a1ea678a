/* test_tasks.c: tests for data/groups.c and data/tasks.c: the group axioms on every table, the
 * element numbering and the running products against permutations composed here directly, the
 * flip-flop rules and statistics, determinism of batches, spec errors, and the metrics on batches
 * made by hand. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/groups.h"
#include "data/tasks.h"
#include "base/util.h"
#include "tests/test.h"

static const char *const permutation_groups[] = {"S3", "S4", "S5", "A4", "A5"};
#define N_PERMUTATION_GROUPS 5

/* ---------------------------------------------------------------------------------------------- */
/* an independent numbering of the permutation groups */

#define REF_MAX_DEGREE 5
#define REF_MAX_ORDER 120

typedef struct {
    int degree, order;
    int perm[REF_MAX_ORDER][REF_MAX_DEGREE];
} RefGroup;

static int ref_inversions(const int *p, int n) {
    int count = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) count += p[i] > p[j];
    return count;
}

/* Counts through every array of n digits in [0, n) like an odometer, which visits them in
 * lexicographic order, and keeps the permutations (the even ones for A_n). */
static void ref_group(const char *name, RefGroup *r) {
    int n = name[1] - '0', even_only = name[0] == 'A';
    int digits[REF_MAX_DEGREE] = {0};
    r->degree = n;
    r->order = 0;
    for (;;) {
        int used = 0, distinct = 1;
        for (int k = 0; k < n; k++) {
            if (used & (1 << digits[k])) distinct = 0;
            used |= 1 << digits[k];
        }
        if (distinct && (!even_only || ref_inversions(digits, n) % 2 == 0))
            memcpy(r->perm[r->order++], digits, sizeof digits);
        int k = n - 1;
        while (k >= 0 && ++digits[k] == n) digits[k--] = 0;
        if (k < 0) break;
    }
}

static int ref_find(const RefGroup *r, const int *p) {
    for (int e = 0; e < r->order; e++)
        if (memcmp(r->perm[e], p, sizeof r->perm[e]) == 0) return e;
    return -1;
}

static Group *make_group(const char *name) {
    Group *g = group_create(name);
    CHECKF(g != NULL, "%s: %s", name, tr_error());
    return g;
}

/* ---------------------------------------------------------------------------------------------- */
/* groups */

static void test_group_orders(void) {
    const char *names[] = {"S3", "S4", "S5", "A4", "A5", "Z2", "Z7", "Z60", "Z1000"};
    const int orders[] = {6, 24, 120, 12, 60, 2, 7, 60, 1000};
    const int degrees[] = {3, 4, 5, 4, 5, 2, 7, 60, 1000};
    for (int i = 0; i < 9; i++) {
        Group *g = make_group(names[i]);
        if (!g) continue;
        CHECKF(group_order(g) == orders[i], "%s: order %d", names[i], group_order(g));
        CHECKF(group_degree(g) == degrees[i], "%s: degree %d", names[i], group_degree(g));
        CHECK(strcmp(group_name(g), names[i]) == 0);
        group_free(g);
    }
}

/* Closure, identity 0, inverses, cancellation (every row and column of the table is a
 * permutation) and associativity on every triple, or on `samples` random triples when nonzero. */
static void check_group_axioms(const char *name, int samples) {
    Group *g = make_group(name);
    if (!g) return;
    int n = group_order(g), failures = 0;
    char *seen = malloc((size_t)n);
    for (int a = 0; a < n; a++) {
        memset(seen, 0, (size_t)n);
        for (int b = 0; b < n; b++) {
            int c = group_multiply(g, a, b);
            if (c < 0 || c >= n || seen[c]) { failures++; continue; }
            seen[c] = 1;
        }
        memset(seen, 0, (size_t)n);
        for (int b = 0; b < n; b++) {
            int c = group_multiply(g, b, a);
            if (c < 0 || c >= n || seen[c]) { failures++; continue; }
            seen[c] = 1;
        }
        if (group_multiply(g, 0, a) != a || group_multiply(g, a, 0) != a) failures++;
        int inv = group_inverse(g, a);
        if (inv < 0 || inv >= n || group_multiply(g, a, inv) != 0 || group_multiply(g, inv, a) != 0) failures++;
    }
    CHECKF(failures == 0, "%s: %d failures of closure, cancellation, identity or inverses", name, failures);
    free(seen);
    if (failures) { /* products out of range would index past the table */
        group_free(g);
        return;
    }
    int assoc_failures = 0;
    if (samples) {
        uint64_t rng = 7;
        for (int s = 0; s < samples; s++) {
            int a = (int)(tr_rng_u64(&rng) % (uint64_t)n), b = (int)(tr_rng_u64(&rng) % (uint64_t)n);
            int c = (int)(tr_rng_u64(&rng) % (uint64_t)n);
            assoc_failures += group_multiply(g, group_multiply(g, a, b), c) !=
                              group_multiply(g, a, group_multiply(g, b, c));
        }
    } else {
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                int ab = group_multiply(g, a, b);
                for (int c = 0; c < n; c++)
                    assoc_failures += group_multiply(g, ab, c) != group_multiply(g, a, group_multiply(g, b, c));
            }
    }
    CHECKF(assoc_failures == 0, "%s: %d triples not associative", name, assoc_failures);
    group_free(g);
}

static void test_group_axioms(void) {
    const char *exhaustive[] = {"S3", "S4", "A4", "A5", "Z2", "Z12", "Z60"};
    for (int i = 0; i < 7; i++) check_group_axioms(exhaustive[i], 0);
    check_group_axioms("S5", test_small() ? 200000 : 0);
    check_group_axioms("Z1000", 200000);
}

static int is_commutative(const Group *g) {
    for (int a = 0; a < group_order(g); a++)
        for (int b = 0; b < a; b++)
            if (group_multiply(g, a, b) != group_multiply(g, b, a)) return 0;
    return 1;
}

static void test_group_commutativity(void) {
    const char *abelian[] = {"Z2", "Z3", "Z7", "Z60", "Z1000"};
    const char *not_abelian[] = {"S3", "S4", "S5", "A4", "A5"};
    for (int i = 0; i < 5; i++) {
        Group *g = make_group(abelian[i]);
        if (g) CHECKF(is_commutative(g), "%s should be commutative", abelian[i]);
        group_free(g);
        g = make_group(not_abelian[i]);
        if (g) CHECKF(!is_commutative(g), "%s should not be commutative", not_abelian[i]);
        group_free(g);
    }
}

/* S3 in lexicographic order is 012, 021, 102, 120, 201, 210. "Apply 021, then 102" sends
 * 0 -> 0 -> 1, 1 -> 2 -> 2, 2 -> 1 -> 0: 120, element 3; the other order gives 201, element 4. */
static void test_group_composition_order_by_hand(void) {
    Group *g = make_group("S3");
    if (!g) return;
    CHECKF(group_multiply(g, 1, 2) == 3, "021 then 102 = %d, expected 3 (120)", group_multiply(g, 1, 2));
    CHECKF(group_multiply(g, 2, 1) == 4, "102 then 021 = %d, expected 4 (201)", group_multiply(g, 2, 1));
    CHECK(group_inverse(g, 3) == 4 && group_inverse(g, 5) == 5);
    group_free(g);
}

/* The numbering and the table against the permutations enumerated and composed here. */
static void test_group_elements_match_reference(void) {
    for (int i = 0; i < N_PERMUTATION_GROUPS; i++) {
        const char *name = permutation_groups[i];
        Group *g = make_group(name);
        if (!g) continue;
        RefGroup *r = malloc(sizeof *r);
        ref_group(name, r);
        CHECKF(group_order(g) == r->order, "%s: order %d, reference %d", name, group_order(g), r->order);
        int n = r->degree, element_failures = 0, product_failures = 0;
        for (int e = 0; e < r->order && e < group_order(g); e++) {
            int p[REF_MAX_DEGREE] = {0};
            group_element_perm(g, e, p);
            element_failures += memcmp(p, r->perm[e], sizeof p) != 0;
            for (int f = 0; f < r->order; f++) {
                int product[REF_MAX_DEGREE] = {0};
                for (int k = 0; k < n; k++) product[k] = r->perm[f][r->perm[e][k]];
                product_failures += group_multiply(g, e, f) != ref_find(r, product);
            }
        }
        CHECKF(element_failures == 0, "%s: %d elements numbered differently", name, element_failures);
        CHECKF(product_failures == 0, "%s: %d products differ from the composed ones", name, product_failures);
        free(r);
        group_free(g);
    }
    Group *z = make_group("Z7");
    if (z) {
        int p[7], ok = 1;
        for (int e = 0; e < 7; e++) {
            group_element_perm(z, e, p);
            for (int k = 0; k < 7; k++) ok &= p[k] == (k + e) % 7;
        }
        CHECK(ok);
        group_free(z);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* tasks */

static Task *make_task(const char *json) {
    cJSON *spec = cJSON_Parse(json);
    Task *t = task_create(spec);
    CHECKF(t != NULL, "%s: %s", json, tr_error());
    cJSON_Delete(spec);
    return t;
}

/* The running products of the batch's inputs, composed from the reference permutations. */
static void test_group_targets_match_reference(void) {
    const int B = 4, T = test_small() ? 40 : 200;
    int32_t *in = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < N_PERMUTATION_GROUPS; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"task\": \"group\", \"group\": \"%s\", \"length\": 64}", permutation_groups[i]);
        Task *task = make_task(json);
        if (!task) continue;
        RefGroup *r = malloc(sizeof *r);
        ref_group(permutation_groups[i], r);
        CHECK(task_vocab_size(task) == r->order + 1 && task_length(task) == 64);
        task_batch(task, 11, 3, B, T, in, tg);
        int failures = 0;
        for (int b = 0; b < B; b++) {
            failures += in[b * T] != r->order || tg[b * T] != -1;   /* the start token, unsupervised */
            int current[REF_MAX_DEGREE] = {0}, next[REF_MAX_DEGREE] = {0};
            for (int k = 0; k < r->degree; k++) current[k] = k;
            for (int t = 1; t < T; t++) {
                int x = in[b * T + t];
                if (x < 0 || x >= r->order) { failures++; break; }
                for (int k = 0; k < r->degree; k++) next[k] = r->perm[x][current[k]];
                memcpy(current, next, sizeof current);
                failures += tg[b * T + t] != ref_find(r, current);
            }
        }
        CHECKF(failures == 0, "%s: %d targets differ from the composed products", permutation_groups[i], failures);
        free(r);
        task_free(task);
    }
    /* Z_m: composing rotations k -> k + x mod m; the product's index is the image of 0. */
    Task *task = make_task("{\"task\": \"group\", \"group\": \"Z997\", \"length\": 8}");
    if (task) {
        task_batch(task, 5, 0, B, T, in, tg);
        int failures = 0;
        int *rotation = malloc(sizeof(int) * 997);
        for (int b = 0; b < B; b++) {
            failures += in[b * T] != 997 || tg[b * T] != -1;
            for (int k = 0; k < 997; k++) rotation[k] = k;
            for (int t = 1; t < T; t++) {
                for (int k = 0; k < 997; k++) rotation[k] = (rotation[k] + in[b * T + t]) % 997;
                failures += tg[b * T + t] != rotation[0];
            }
        }
        CHECKF(failures == 0, "Z997: %d targets differ", failures);
        free(rotation);
        task_free(task);
    }
    free(in);
    free(tg);
}

/* Each element's share of the inputs within 5 sigma of uniform. */
static void test_group_inputs_uniform(void) {
    Task *task = make_task("{\"task\": \"group\", \"group\": \"A5\", \"length\": 64}");
    if (!task) return;
    const int B = 32, T = 256, batches = test_small() ? 8 : 32;
    int32_t *in = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
    long counts[60] = {0}, total = 0;
    for (int i = 0; i < batches; i++) {
        task_batch(task, 1, (uint64_t)i, B, T, in, tg);
        for (int k = 0; k < B * T; k++)
            if (k % T != 0) counts[in[k]]++, total++;   /* position 0 is the start token */
    }
    double mean = total / 60.0, sigma = sqrt(total * (1.0 / 60) * (59.0 / 60));
    for (int e = 0; e < 60; e++)
        CHECKF(fabs(counts[e] - mean) <= 5 * sigma, "element %d drawn %ld times, expected %.0f", e, counts[e],
               mean);
    free(in);
    free(tg);
    task_free(task);
}

static int same_rows(const int32_t *a, const int32_t *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

/* Same (seed, index): the same rows, whatever B; another seed or index: other rows; a longer T
 * extends the rows of a shorter one. */
static void check_determinism(const char *json) {
    Task *task = make_task(json);
    if (!task) return;
    enum { B = 4, T = 64 };
    int32_t in1[B * T], tg1[B * T], in2[B * T], tg2[B * T], in_long[2 * T], tg_long[2 * T];
    task_batch(task, 42, 7, B, T, in1, tg1);
    task_batch(task, 42, 7, B, T, in2, tg2);
    CHECKF(same_rows(in1, in2, B * T) && same_rows(tg1, tg2, B * T), "%s: not deterministic", json);
    task_batch(task, 42, 7, 1, T, in2, tg2);
    CHECKF(same_rows(in1, in2, T) && same_rows(tg1, tg2, T), "%s: row 0 depends on B", json);
    task_batch(task, 43, 7, B, T, in2, tg2);
    CHECKF(!same_rows(in1, in2, T), "%s: seeds 42 and 43 give the same row", json);
    task_batch(task, 42, 8, B, T, in2, tg2);
    CHECKF(!same_rows(in1, in2, T), "%s: indices 7 and 8 give the same row", json);
    CHECKF(!same_rows(in1, in1 + T, T), "%s: rows 0 and 1 are the same", json);
    task_batch(task, 42, 7, 1, 2 * T, in_long, tg_long);
    CHECKF(same_rows(in1, in_long, T) && same_rows(tg1, tg_long, T), "%s: a longer T changes the start", json);
    task_free(task);
}

static void test_batches_deterministic(void) {
    check_determinism("{\"task\": \"group\", \"group\": \"S5\", \"length\": 64}");
    check_determinism("{\"task\": \"flipflop\", \"length\": 64, \"p_ignore\": 0.5}");
}

/* The rules of every sequence, checked by reading it: instructions at even positions, bits at odd
 * ones, a write first, every read's bit and target the last written bit, no other target. */
static void check_flipflop_rules(const int32_t *in, const int32_t *tg, int B, int T, int *failures) {
    for (int b = 0; b < B; b++) {
        const int32_t *x = in + (size_t)b * T, *y = tg + (size_t)b * T;
        int last_written = -1;
        if (x[0] != FLIPFLOP_WRITE) (*failures)++;
        for (int t = 0; t < T; t++) {
            int is_instruction = t % 2 == 0;
            int is_known = x[t] == FLIPFLOP_WRITE || x[t] == FLIPFLOP_READ || x[t] == FLIPFLOP_IGNORE;
            if (is_instruction && !is_known) (*failures)++;
            if (!is_instruction && x[t] != 0 && x[t] != 1) (*failures)++;
            if (!is_instruction && x[t - 1] == FLIPFLOP_WRITE) last_written = x[t];
            if (is_instruction && x[t] == FLIPFLOP_READ) {
                if (y[t] != last_written) (*failures)++;
                if (t + 1 < T && x[t + 1] != last_written) (*failures)++;
            } else if (y[t] != -1) {
                (*failures)++;
            }
        }
    }
}

static void test_flipflop_rules(void) {
    Task *task = make_task("{\"task\": \"flipflop\", \"length\": 256, \"p_ignore\": 0.5}");
    if (!task) return;
    CHECK(task_vocab_size(task) == 5 && task_length(task) == 256);
    enum { B = 16, T = 256 };
    static int32_t in[B * T], tg[B * T];
    int failures = 0, reads = 0;
    for (int i = 0; i < 8; i++) {
        task_batch(task, 3, (uint64_t)i, B, T, in, tg);
        check_flipflop_rules(in, tg, B, T, &failures);
        for (int k = 0; k < B * T; k++) reads += tg[k] >= 0;
    }
    CHECKF(failures == 0, "%d violations of the flip-flop rules", failures);
    CHECKF(reads > 1000, "only %d reads", reads);
    /* An odd T cuts a pair: a read in the last position keeps its target. */
    int tail_reads = 0;
    for (int i = 0; i < 64; i++) {
        task_batch(task, 4, (uint64_t)i, B, 7, in, tg);
        check_flipflop_rules(in, tg, B, 7, &failures);
        for (int b = 0; b < B; b++) tail_reads += in[b * 7 + 6] == FLIPFLOP_READ;
    }
    CHECKF(failures == 0, "%d violations at T = 7", failures);
    CHECK(tail_reads > 0);
    task_free(task);
}

/* Instruction shares: ignore with probability p, write and read equally often otherwise, written
 * bits fair; each count within 5 sigma of its binomial mean. */
static void check_flipflop_shares(const char *json, double p_ignore) {
    Task *task = make_task(json);
    if (!task) return;
    enum { B = 32, T = 512 };
    static int32_t in[B * T], tg[B * T];
    long steps = 0, ignores = 0, writes = 0, reads = 0, written_ones = 0, written = 0;
    for (int i = 0; i < (test_small() ? 4 : 16); i++) {
        task_batch(task, 9, (uint64_t)i, B, T, in, tg);
        for (int b = 0; b < B; b++)
            for (int t = 2; t < T; t += 2) {
                int x = in[b * T + t];
                steps++;
                ignores += x == FLIPFLOP_IGNORE;
                writes += x == FLIPFLOP_WRITE;
                reads += x == FLIPFLOP_READ;
                if (x == FLIPFLOP_WRITE) written++, written_ones += in[b * T + t + 1];
            }
    }
    double sigma = sqrt(steps * p_ignore * (1 - p_ignore));
    CHECKF(fabs(ignores - steps * p_ignore) <= 5 * sigma + 1e-9, "%s: %ld ignores in %ld steps", json, ignores, steps);
    long kept = writes + reads;
    CHECKF(fabs(writes - kept / 2.0) <= 5 * sqrt(kept * 0.25), "%s: %ld writes, %ld reads", json, writes, reads);
    CHECKF(fabs(written_ones - written / 2.0) <= 5 * sqrt(written * 0.25), "%s: %ld ones in %ld written bits", json,
           written_ones, written);
    task_free(task);
}

static void test_flipflop_shares(void) {
    check_flipflop_shares("{\"task\": \"flipflop\", \"length\": 256, \"p_ignore\": 0.8}", 0.8);
    check_flipflop_shares("{\"task\": \"flipflop\", \"length\": 256, \"p_ignore\": 0.3}", 0.3);
    check_flipflop_shares("{\"task\": \"flipflop\", \"length\": 256, \"p_ignore\": 0}", 0.0);
    check_flipflop_shares("{\"task\": \"flipflop\", \"length\": 256}", 0.8); /* the default */
}

/* Each bad spec: NULL and one message naming the key. */
static void test_spec_errors(void) {
    static const char *const cases[][2] = {
        {"{\"task\": \"group\", \"group\": \"A5\", \"length\": 64, \"lenght\": 3}", "\"lenght\""},
        {"{\"task\": \"group\", \"group\": \"B7\", \"length\": 64}", "group"},
        {"{\"task\": \"group\", \"group\": \"Z1\", \"length\": 64}", "group"},
        {"{\"task\": \"group\", \"group\": \"Z1001\", \"length\": 64}", "group"},
        {"{\"task\": \"group\", \"group\": \"Z07\", \"length\": 64}", "group"},
        {"{\"task\": \"group\", \"group\": 5, \"length\": 64}", "group"},
        {"{\"task\": \"group\", \"length\": 64}", "group"},
        {"{\"task\": \"group\", \"group\": \"A5\", \"length\": 0}", "length"},
        {"{\"task\": \"group\", \"group\": \"A5\", \"length\": -4}", "length"},
        {"{\"task\": \"group\", \"group\": \"A5\", \"length\": 2.5}", "length"},
        {"{\"task\": \"group\", \"group\": \"A5\", \"length\": 1e12}", "length"},
        {"{\"task\": \"group\", \"group\": \"A5\"}", "length"},
        {"{\"task\": \"group\", \"group\": \"A5\", \"length\": 64, \"length\": 32}", "length"},
        {"{\"task\": \"group\", \"group\": \"A5\", \"length\": 64, \"p_ignore\": 0.5}", "\"p_ignore\""},
        {"{\"task\": \"flipflop\", \"length\": 64, \"p_ignore\": -0.1}", "p_ignore"},
        {"{\"task\": \"flipflop\", \"length\": 64, \"p_ignore\": 1}", "p_ignore"},
        {"{\"task\": \"flipflop\", \"length\": 64, \"p_ignore\": \"0.5\"}", "p_ignore"},
        {"{\"task\": \"flipflop\", \"length\": 63}", "length"},
        {"{\"task\": \"flipflop\", \"length\": 64, \"group\": \"A5\"}", "\"group\""},
        {"{\"task\": \"parity\", \"length\": 64}", "task"},
        {"{\"length\": 64}", "task"},
        {"[1, 2]", "task spec"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *spec = cJSON_Parse(cases[i][0]);
        CHECKF(spec != NULL, "bad JSON in the test: %s", cases[i][0]);
        tr_clear_error();
        Task *task = task_create(spec);
        CHECKF(task == NULL, "accepted %s", cases[i][0]);
        CHECKF(strstr(tr_error(), cases[i][1]) != NULL, "%s: error \"%s\" does not name %s", cases[i][0], tr_error(),
               cases[i][1]);
        task_free(task);
        cJSON_Delete(spec);
    }
    CHECK(task_create(NULL) == NULL && tr_error()[0] != '\0');
}

/* ---------------------------------------------------------------------------------------------- */
/* metrics */

/* Two rows of three positions over four tokens; the predictions are 2, 1 (a tie of 1 and 3),
 * 0 (all NaN), 3 (a NaN first), 0 (a tie of all), 2. */
static const float hand_scores[2 * 3 * 4] = {
    0.1f, -1.0f, 5.0f, 4.9f,    1.0f, 3.0f, 0.0f, 3.0f,    NAN, NAN, NAN, NAN,
    NAN, -2.0f, -3.0f, -1.0f,   7.0f, 7.0f, 7.0f, 7.0f,    0.2f, 0.3f, 0.4f, 0.1f,
};

static void test_predict_by_hand(void) {
    const int expected[6] = {2, 1, 0, 3, 0, 2};
    for (int k = 0; k < 6; k++)
        CHECKF(task_predict(hand_scores + 4 * k, 4) == expected[k], "position %d: %d, expected %d", k,
               task_predict(hand_scores + 4 * k, 4), expected[k]);
}

static void test_accuracy_by_hand(void) {
    /* Row 0: right, wrong (3 is the tie's loser), unsupervised. Row 1: unsupervised, right, a
     * target past the vocabulary (wrong). So 2 of 4 are right; by position 1/1, 1/2, 0/1. */
    const int32_t targets[6] = {2, 3, -1, -1, 0, 9};
    int64_t correct = 0, supervised = 0;
    task_count_correct(hand_scores, targets, 2, 3, 4, &correct, &supervised);
    CHECKF(correct == 2 && supervised == 4, "%lld of %lld", (long long)correct, (long long)supervised);
    task_count_correct(hand_scores, targets, 2, 3, 4, &correct, &supervised);
    CHECKF(correct == 4 && supervised == 8, "accumulated: %lld of %lld", (long long)correct, (long long)supervised);
    int64_t correct_at[3] = {0}, supervised_at[3] = {0};
    for (int pass = 0; pass < 2; pass++)
        task_count_correct_by_position(hand_scores, targets, 2, 3, 4, correct_at, supervised_at);
    CHECK(correct_at[0] == 2 && correct_at[1] == 2 && correct_at[2] == 0);
    CHECK(supervised_at[0] == 2 && supervised_at[1] == 4 && supervised_at[2] == 2);
}

static void test_solved_length_by_hand(void) {
    /* Accuracies 1, -, 0.99, 1, 0.98, 1: solved up to the 0.98 at position 4. */
    const int64_t correct[6] = {100, 0, 99, 50, 98, 10};
    const int64_t supervised[6] = {100, 0, 100, 50, 100, 10};
    CHECK(task_solved_length(correct, supervised, 6, TASK_SOLVED_THRESHOLD) == 4);
    CHECK(task_solved_length(correct, supervised, 4, TASK_SOLVED_THRESHOLD) == 4);
    CHECK(task_solved_length(correct, supervised, 6, 0.995) == 2);
    CHECK(task_solved_length(correct, supervised, 6, 0.5) == 6);
    const int64_t first_fails[2] = {0, 5}, first_total[2] = {3, 5};
    CHECK(task_solved_length(first_fails, first_total, 2, TASK_SOLVED_THRESHOLD) == 0);
}

/* A perfect predictor built from the targets scores 100% and solves the whole length; shifting
 * its predictions by one token scores 0. */
static void test_metrics_on_task_batches(void) {
    Task *task = make_task("{\"task\": \"group\", \"group\": \"A4\", \"length\": 32}");
    if (!task) return;
    enum { B = 8, T = 32, V = 12 };
    int32_t in[B * T], tg[B * T];
    static float scores[B * T * V];
    task_batch(task, 2, 0, B, T, in, tg);
    for (int shift = 0; shift < 2; shift++) {
        for (int k = 0; k < B * T; k++)
            for (int v = 0; v < V; v++) scores[k * V + v] = v == (tg[k] + shift) % V ? 1.0f : 0.0f;
        int64_t correct_at[T] = {0}, supervised_at[T] = {0};
        task_count_correct_by_position(scores, tg, B, T, V, correct_at, supervised_at);
        int64_t correct = 0, supervised = 0;
        task_count_correct(scores, tg, B, T, V, &correct, &supervised);
        /* position 0 (the start token) is unsupervised: it neither counts nor ends the solved length */
        CHECK(supervised == B * (T - 1) && correct == (shift ? 0 : B * (T - 1)));
        CHECK(task_solved_length(correct_at, supervised_at, T, TASK_SOLVED_THRESHOLD) == (shift ? 1 : T));
    }
    task_free(task);
}

int main(void) {
    RUN(test_group_orders);
    RUN(test_group_axioms);
    RUN(test_group_commutativity);
    RUN(test_group_composition_order_by_hand);
    RUN(test_group_elements_match_reference);
    RUN(test_group_targets_match_reference);
    RUN(test_group_inputs_uniform);
    RUN(test_batches_deterministic);
    RUN(test_flipflop_rules);
    RUN(test_flipflop_shares);
    RUN(test_spec_errors);
    RUN(test_predict_by_hand);
    RUN(test_accuracy_by_hand);
    RUN(test_solved_length_by_hand);
    RUN(test_metrics_on_task_batches);
    return test_summary();
}
