/* groups.c: builds the groups of groups.h: their elements in the documented order and their
 * multiplication and inverse tables, so that a product during sequence generation is one lookup.
 */
#include "data/groups.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define GROUP_MAX_DEGREE_PERM 5     /* S5 and A5: the largest permutation groups offered */

struct Group {
    char name[8];
    int order, degree;
    int cyclic;                     /* 1 for Z_m, whose permutations are made on demand */
    uint8_t *perms;                 /* (order, degree): the permutation groups' elements */
    uint16_t *table;                /* (order, order): table[a * order + b] = a then b */
    uint16_t *inverse;              /* (order) */
};

static int factorial(int n) { return n <= 1 ? 1 : n * factorial(n - 1); }

/* Rearranges p into the lexicographically next permutation; 0 once p was the last. */
static int next_permutation(uint8_t *p, int n) {
    int i = n - 2;
    while (i >= 0 && p[i] >= p[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (p[j] <= p[i]) j--;
    uint8_t t = p[i]; p[i] = p[j]; p[j] = t;
    for (int lo = i + 1, hi = n - 1; lo < hi; lo++, hi--) { t = p[lo]; p[lo] = p[hi]; p[hi] = t; }
    return 1;
}

/* 1 if p is even: a permutation with c cycles on n points is a product of n - c transpositions. */
static int is_even(const uint8_t *p, int n) {
    uint8_t seen[GROUP_MAX_DEGREE_PERM] = {0};
    int cycles = 0;
    for (int k = 0; k < n; k++) {
        if (seen[k]) continue;
        cycles++;
        for (int j = k; !seen[j]; j = p[j]) seen[j] = 1;
    }
    return (n - cycles) % 2 == 0;
}

/* The position of p among all n! permutations in lexicographic order (its Lehmer code). */
static int lex_rank(const uint8_t *p, int n) {
    int rank = 0;
    for (int i = 0; i < n; i++) {
        int smaller_after = 0;
        for (int j = i + 1; j < n; j++) smaller_after += p[j] < p[i];
        rank += smaller_after * factorial(n - 1 - i);
    }
    return rank;
}

/* "Z<m>": m, or 0 when name is not of that form or m is out of range. */
static int parse_cyclic_order(const char *name) {
    if (name[0] != 'Z' || name[1] < '1' || name[1] > '9') return 0;
    long m = 0;
    for (const char *c = name + 1; *c; c++) {
        if (*c < '0' || *c > '9') return 0;
        m = m * 10 + (*c - '0');
        if (m > GROUP_MAX_CYCLIC_ORDER) return 0;
    }
    return m >= 2 ? (int)m : 0;
}

static void build_cyclic(Group *g) {
    int m = g->order;
    for (int a = 0; a < m; a++) {
        for (int b = 0; b < m; b++) g->table[a * m + b] = (uint16_t)((a + b) % m);
        g->inverse[a] = (uint16_t)((m - a) % m);
    }
}

/* The elements in lexicographic order (the even ones only when even_only), then the table by
 * composing the arrays and finding each product by its lexicographic rank. */
static void build_permutation_group(Group *g, int even_only) {
    int n = g->degree, all = factorial(n);
    int *element_of_rank = xmalloc((size_t)all * sizeof *element_of_rank);
    uint8_t p[GROUP_MAX_DEGREE_PERM];
    for (int k = 0; k < n; k++) p[k] = (uint8_t)k;
    int count = 0, rank = 0;
    do {
        if (!even_only || is_even(p, n)) {
            memcpy(g->perms + (size_t)count * n, p, (size_t)n);
            element_of_rank[rank] = count++;
        } else {
            element_of_rank[rank] = -1;
        }
        rank++;
    } while (next_permutation(p, n));
    for (int a = 0; a < g->order; a++) {
        const uint8_t *pa = g->perms + (size_t)a * n;
        for (int b = 0; b < g->order; b++) {
            const uint8_t *pb = g->perms + (size_t)b * n;
            uint8_t product[GROUP_MAX_DEGREE_PERM];
            for (int k = 0; k < n; k++) product[k] = pb[pa[k]];
            int c = element_of_rank[lex_rank(product, n)];
            g->table[a * g->order + b] = (uint16_t)c;
            if (c == 0) g->inverse[a] = (uint16_t)b;
        }
    }
    free(element_of_rank);
}

Group *group_create(const char *name) {
    int m = parse_cyclic_order(name);
    int degree = 0, even_only = 0;
    if (!m) {
        if (strcmp(name, "S3") == 0) degree = 3;
        else if (strcmp(name, "S4") == 0) degree = 4;
        else if (strcmp(name, "S5") == 0) degree = 5;
        else if (strcmp(name, "A4") == 0) degree = 4, even_only = 1;
        else if (strcmp(name, "A5") == 0) degree = 5, even_only = 1;
        else {
            tr_set_error("unknown group \"%.40s\" (expected Z<m> with 2 <= m <= %d, S3, S4, S5, A4 "
                         "or A5)", name, GROUP_MAX_CYCLIC_ORDER);
            return NULL;
        }
    }
    Group *g = xcalloc(1, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->cyclic = m != 0;
    g->degree = m ? m : degree;
    g->order = m ? m : factorial(degree) / (even_only ? 2 : 1);
    g->table = xmalloc((size_t)g->order * g->order * sizeof *g->table);
    g->inverse = xmalloc((size_t)g->order * sizeof *g->inverse);
    if (g->cyclic) {
        build_cyclic(g);
    } else {
        g->perms = xmalloc((size_t)g->order * g->degree);
        build_permutation_group(g, even_only);
    }
    return g;
}

void group_free(Group *g) {
    if (!g) return;
    free(g->perms);
    free(g->table);
    free(g->inverse);
    free(g);
}

const char *group_name(const Group *g) { return g->name; }
int group_order(const Group *g) { return g->order; }
int group_degree(const Group *g) { return g->degree; }

void group_element_perm(const Group *g, int e, int *perm) {
    for (int k = 0; k < g->degree; k++)
        perm[k] = g->cyclic ? (k + e) % g->degree : g->perms[(size_t)e * g->degree + k];
}

int group_multiply(const Group *g, int a, int b) { return g->table[(size_t)a * g->order + b]; }
int group_inverse(const Group *g, int a) { return g->inverse[a]; }
