/* generate.h - the generation loop: prefill a prompt, then sample and decode
 * token by token, handing each token to a callback as it is produced. */
#ifndef AC_GENERATE_H
#define AC_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "sample/sample.h"

struct ac_context;
struct ac_tokenizer;

struct ac_gen_params {
    int n_predict;   /* tokens to generate, >= 1 */
    bool ignore_eos; /* keep going past end-of-generation tokens */
    struct ac_sampler_params sampling;
    /* Self-speculative decoding: a cheaper model of the same vocabulary (a
     * low-bit variant) proposes up to n_draft tokens greedily, the model of
     * ctx scores them in one batch and keeps them while its own sampler
     * draws the same tokens. The output is exactly the output without a
     * draft (same sampler, same seed: the engine's logits do not depend on
     * batching), at fewer passes over the large model's weights. NULL: off. */
    struct ac_context *draft;
    int n_draft; /* >= 1 with a draft */
    /* Prompt caching: keep the context's cached positions that the prompt
     * starts with (ac_context_keep_prefix) instead of resetting it, so a
     * prompt that extends the previous conversation runs only its new
     * tokens. Same output as without. */
    bool reuse_prefix;
};

struct ac_gen_stats {
    int n_prompt;     /* tokens of the prompt */
    int n_cached;     /* of which were kept from the context's cache, not run (reuse_prefix) */
    int n_generated;  /* tokens produced (including a final EOG token) */
    int n_decoded;    /* forward passes after the prompt's (one token each, or a batch to verify) */
    double prefill_s; /* wall time of the prompt's forward pass */
    double decode_s;  /* wall time after the prompt's pass (decoding, drafting, sampling) */
    bool hit_eog;
    bool hit_ctx_end;
    int n_drafted;  /* tokens the draft proposed */
    int n_accepted; /* of which the model drew the same */
};

/* Called with each generated token (EOG tokens included); return true to
 * stop early. */
typedef bool (*ac_token_fn)(void *user, int32_t id);

/* Generates after prompt[0..n_prompt) on a context (and draft context) that
 * is reset first (reuse_prefix: cut back to the prompt's cached prefix).
 * Stops at n_predict tokens, an EOG token (unless ignore_eos), the end of
 * the context, or when on_token asks. */
int ac_generate(struct ac_context *ctx, const struct ac_tokenizer *tok, const int32_t *prompt, int n_prompt,
                const struct ac_gen_params *params, ac_token_fn on_token, void *user, struct ac_gen_stats *stats,
                char *err);

/* Teacher forcing (DESIGN.md "Fidelity"): with ctx holding a prompt and
 * ref[0..from - 1) after it, feeds ref[from - 1 ..] in batches of up to
 * chunk tokens and adds to *matched the positions t in [from, n_ref) where
 * the model's top-1 token is ref[t]. from >= 1; logits holds chunk rows of
 * the vocabulary. */
int ac_count_teacher_forced(struct ac_context *ctx, const int32_t *ref, int from, int n_ref, float *logits,
                            int chunk, int *matched, char *err);

#endif
