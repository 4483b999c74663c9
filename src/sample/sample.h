/* sample.h - next-token sampling: greedy, temperature, top-k, top-p.
 *
 * The sampler owns its RNG. The selection itself (ac_sample_pick) is a pure
 * function of the logits, the parameters and one uniform number, so tests
 * can drive it with chosen coins. */
#ifndef AC_SAMPLE_H
#define AC_SAMPLE_H

#include <stdint.h>

struct ac_sampler_params {
    float temp;  /* <= 0: greedy */
    int top_k;   /* <= 0: whole vocabulary */
    float top_p; /* >= 1: disabled */
    uint64_t seed;
};

struct ac_prob_item {
    float p;
    int32_t id;
};

struct ac_sampler {
    struct ac_sampler_params params;
    uint64_t rng;
    int n_vocab;
    struct ac_prob_item *items; /* n_vocab scratch entries */
};

int ac_sampler_init(struct ac_sampler *s, const struct ac_sampler_params *p, int n_vocab, char *err);
void ac_sampler_free(struct ac_sampler *s);

/* Draws the next token from logits (n_vocab floats). */
int32_t ac_sample(struct ac_sampler *s, const float *logits);

/* Highest logit; the lowest id wins ties. */
int32_t ac_argmax(const float *logits, int n);

/* Top-k, then softmax at temp, then top-p; returns the token whose
 * cumulative probability interval holds coin (in [0,1)). items: n scratch. */
int32_t ac_sample_pick(const float *logits, int n, const struct ac_sampler_params *p, float coin,
                       struct ac_prob_item *items);

/* Uniform float in [0,1) from a xorshift64* state (state must be nonzero). */
float ac_rng_uniform(uint64_t *state);

#endif
