/* groups.h: the finite groups of the group word problems (tasks.h): the cyclic groups Z_m, the
 * symmetric groups S3, S4, S5 and the alternating groups A4, A5, each with its multiplication
 * table built once at creation (groups.c).
 *
 * Every element is a permutation of {0, ..., degree-1}, written as the array p with p[k] the
 * image of k, and is numbered so that the identity is element 0:
 * - Z_m (degree m): element i is the rotation k -> (k + i) mod m, so the group is the integers
 *   mod m under addition.
 * - S_n (degree n): the n! permutations in lexicographic order of their arrays.
 * - A_n (degree n): the even permutations among those, in the same order.
 *
 * Products read left to right: group_multiply(a, b) is "apply a, then b", the permutation
 * k -> b[a[k]]. So the running product x_1 x_2 ... x_t applies x_1 first.
 */
#ifndef TINYROPE_GROUPS_H
#define TINYROPE_GROUPS_H

#define GROUP_MAX_CYCLIC_ORDER 1000

typedef struct Group Group; /* opaque */

/* name: "Z<m>" with 2 <= m <= GROUP_MAX_CYCLIC_ORDER written without a sign or leading zeros
 * ("Z2", "Z60"), "S3", "S4", "S5", "A4" or "A5". NULL + error naming what was given on failure. */
Group *group_create(const char *name);
void group_free(Group *g);

const char *group_name(const Group *g);
int group_order(const Group *g);                 /* the number of elements */
int group_degree(const Group *g);                /* the elements permute {0, ..., degree-1} */
/* Writes element e's permutation into perm (group_degree entries). */
void group_element_perm(const Group *g, int e, int *perm);
int group_multiply(const Group *g, int a, int b); /* apply a, then b */
int group_inverse(const Group *g, int a);

#endif
