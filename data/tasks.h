/* tasks.h: synthetic state-tracking tasks, generated in memory from a seed, as an alternative to
 * the token loader (loader.h): each batch is rows of inputs and targets, with -1 where a position
 * is not supervised. Also the metrics that score a model on them: accuracy over the supervised
 * positions, per position, and the solved length (tasks.c).
 *
 * A task comes from a JSON spec; every key is checked and a mistake is one error naming the key.
 *
 * {"task": "group", "group": G, "length": T}: the word problem of the group G (groups.h names the
 *   groups and numbers their elements). Token i is group element i, for inputs and targets alike,
 *   and token |G| (the group's order) is a start token, so the vocabulary is |G| + 1. Position 0
 *   holds the start token (no target); positions 1 .. T-1 hold elements x_1 .. x_{T-1} drawn
 *   uniformly, and the target at position t is the running product y_t = x_1 x_2 ... x_t,
 *   composed left to right (x_1 applied first, group_multiply's convention).
 *
 * {"task": "flipflop", "length": T, "p_ignore": p}: flip-flop language modelling (Liu et al.
 *   2023, "Exposing Attention Glitches with Flip-Flop Language Modeling"). T tokens (T even) are
 *   T/2 pairs of an instruction and a bit. The first instruction is write; each later one is
 *   ignore with probability p, else write or read with equal chances. The bit after a write or an
 *   ignore is uniform; the bit after a read is that of the most recent write. Token ids: 0 and 1
 *   are the bits, then FLIPFLOP_WRITE, FLIPFLOP_READ, FLIPFLOP_IGNORE; 5 tokens in all. Only the
 *   reads are supervised: at a position holding a read, the target is the bit that follows it
 *   (the model predicts it there); every other position has target -1. p defaults to 0.8 and
 *   lies in [0, 1).
 *
 * Batches are deterministic: row b of task_batch(seed, index, ...) depends only on (seed, index,
 * b, T), never on B or on other calls, and a longer T extends the same sequence (its first
 * positions are those of the shorter T). Training passes the step as index, so every step sees
 * fresh sequences; validation passes a fixed seed and indices 0, 1, ...
 */
#ifndef TINYROPE_TASKS_H
#define TINYROPE_TASKS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#define TASK_MAX_LENGTH (1 << 20)
#define TASK_SOLVED_THRESHOLD 0.99

enum { FLIPFLOP_WRITE = 2, FLIPFLOP_READ = 3, FLIPFLOP_IGNORE = 4, FLIPFLOP_VOCAB = 5 };

typedef struct Task Task; /* opaque */

/* The task of spec (an object as above). NULL + error "task spec: <key>: what is wrong" on failure:
 * an unknown or repeated key, a missing "task" or "length", an unknown task or group, a length
 * outside [1, TASK_MAX_LENGTH] (or odd, for flip-flop), p_ignore outside [0, 1). */
Task *task_create(const cJSON *spec);
void task_free(Task *task);

int task_vocab_size(const Task *task);  /* input and target ids lie in [0, vocab) */
int task_length(const Task *task);      /* the spec's length: the T of training */

/* Fills inputs and targets (B, T) with B fresh sequences of T tokens (T >= 1; any T, longer or
 * shorter than task_length, for extrapolation). For flip-flop with an odd T, a read in the last
 * position still has its target, the bit the row cuts off. */
void task_batch(const Task *task, uint64_t seed, uint64_t index, int B, int T, int32_t *inputs,
                int32_t *targets);

/* ---- metrics ---- */
/* The predicted token of one position's scores (logits or probabilities: the argmax is the same):
 * the highest score, ties going to the lowest id; a NaN score is never chosen (all NaN: 0). */
int task_predict(const float *scores, int V);
/* scores (B, T, V), targets (B, T). Adds the number of supervised positions (target >= 0) to
 * *supervised and how many of them task_predict gets right to *correct; a target >= V counts as
 * supervised and wrong. The accuracy is correct / supervised, over as many batches as added. */
void task_count_correct(const float *scores, const int32_t *targets, int B, int T, int V,
                        int64_t *correct, int64_t *supervised);
/* The same per position: adds into correct_at[t] and supervised_at[t], t in [0, T). */
void task_count_correct_by_position(const float *scores, const int32_t *targets, int B, int T, int V,
                                    int64_t *correct_at, int64_t *supervised_at);
/* The solved length: the number of leading positions up to the first supervised position whose
 * accuracy is below threshold (TASK_SOLVED_THRESHOLD in reports), T when there is none. A
 * position without supervision neither passes nor fails. */
int task_solved_length(const int64_t *correct_at, const int64_t *supervised_at, int T, double threshold);

#endif
