/* sample.h: choosing the next token from the model's logits: temperature, then top-p (nucleus)
 * sampling, from a seeded generator so a story can be reproduced. */
#ifndef TINYROPE_SAMPLE_H
#define TINYROPE_SAMPLE_H

#include <stdint.h>

typedef struct {
    int V;
    float *probs;     /* (V) */
    int *order;       /* (V) token ids sorted by probability */
} Sampler;

void sampler_init(Sampler *s, int V);
void sampler_free(Sampler *s);
/* temperature 0 = the most likely token (argmax). Otherwise softmax(logits / temperature), keep the
 * smallest set of most likely tokens whose probability reaches top_p (top_p >= 1 keeps all), and
 * draw from it with rng. */
int sample_token(Sampler *s, const float *logits, float temperature, float top_p, uint64_t *rng);

#endif
