/* kld.h - quality of a configuration against the F16 reference over a
 * text, as llama.cpp's perplexity/KLD tool reports it: perplexity, mean
 * KL(P_f16 || P_config) per position, the fraction of positions whose top-1
 * token equals F16's ("same top-1"), and weight bytes read per token. */
#ifndef AC_KLD_H
#define AC_KLD_H

#include <stdint.h>

#include "model/model.h"

/* The F16 model's next-token distributions over a text: log-probabilities
 * stored as IEEE halves, (n_positions, n_vocab). */
struct ac_kld_reference {
    int n_vocab, window, n_positions;
    uint16_t *logprob;
    int32_t *top1;
    const int32_t *tokens; /* borrowed */
    int n_tokens;
};

struct ac_kld_result {
    double ppl, kld, same_top1, bytes_per_token;
};

/* Splits tokens into windows of `window` tokens, each decoded from an empty
 * cache; every position but a window's last predicts the next token. */
int ac_kld_reference_build(const struct ac_model *f16, const int32_t *tokens, int n_tokens, int window, int n_threads,
                           struct ac_kld_reference *ref, char *err);
void ac_kld_reference_free(struct ac_kld_reference *ref);

/* Scores model under rc (NULL: plain) against ref. */
int ac_kld_measure(const struct ac_model *model, const struct ac_run_config *rc, const struct ac_kld_reference *ref,
                   int n_threads, struct ac_kld_result *out, char *err);

#endif
