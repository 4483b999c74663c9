/* generate.c - prompt prefill + sampled decode loop (see generate.h). */
#include "runtime/generate.h"

#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* Hands id to the caller and says whether generation ends with it. */
static bool emit(const struct ac_tokenizer *tok, const struct ac_gen_params *params, int32_t id, ac_token_fn on_token,
                 void *user, struct ac_gen_stats *stats) {
    stats->n_generated++;
    const bool eog = ac_tokenizer_is_eog(tok, id);
    if (on_token && on_token(user, id)) return true;
    if (eog && !params->ignore_eos) {
        stats->hit_eog = true;
        return true;
    }
    return stats->n_generated >= params->n_predict;
}

/* After the prompt: `next` is sampled and emitted but not yet decoded by
 * either model. Each round the draft proposes d1 .. dk after next (greedy),
 * the model decodes next, d1 .. dk in one batch, and its sampler draws from
 * each row in turn until a draw differs from the proposal; that draw is the
 * next `next`. The draft holds the model's tokens but for at most one
 * accepted proposal it has not decoded yet (lag). Both contexts have the
 * same size, so the draft never runs out of room before the model does. */
static int speculate(struct ac_context *ctx, struct ac_sampler *sampler, const struct ac_tokenizer *tok,
                     const struct ac_gen_params *params, int32_t next, ac_token_fn on_token, void *user,
                     struct ac_gen_stats *stats, char *err) {
    struct ac_context *draft = params->draft;
    const int n_vocab = ac_tokenizer_n_vocab(tok), k_max = params->n_draft;
    float *logits = malloc((size_t)(k_max + 1) * n_vocab * sizeof *logits);
    int32_t *batch = malloc((size_t)(k_max + 1) * sizeof *batch);
    int rc = -1, lag = 0;
    int32_t feed[2]; /* what the draft decodes before proposing: [lagging token,] next */
    if (!logits || !batch) {
        ac_errf(err, "out of memory");
        goto done;
    }
    for (;;) {
        const int room = ac_context_n_ctx(ctx) - ac_context_n_past(ctx);
        if (room <= 0) {
            stats->hit_ctx_end = true;
            break;
        }
        /* propose no more than is left to generate, or fits */
        int k = params->n_predict - stats->n_generated;
        if (k > k_max) k = k_max;
        if (k > room - 1) k = room - 1;
        batch[0] = feed[lag] = next;
        const int d0 = ac_context_n_past(draft);
        for (int i = 1; i <= k; i++) {
            if (ac_decode(draft, i == 1 ? feed : &batch[i - 1], i == 1 ? lag + 1 : 1, AC_LOGITS_LAST, logits, err) != 0)
                goto done;
            batch[i] = ac_argmax(logits, n_vocab);
        }
        stats->n_drafted += k;
        const int n0 = ac_context_n_past(ctx);
        if (ac_decode(ctx, batch, k + 1, AC_LOGITS_ALL, logits, err) != 0) goto done;
        stats->n_decoded++;
        int j = 0;
        for (;; j++) {
            const int32_t id = ac_sample(sampler, logits + (size_t)j * n_vocab);
            const bool accepted = j < k && id == batch[j + 1];
            stats->n_accepted += accepted;
            if (emit(tok, params, id, on_token, user, stats)) {
                rc = 0;
                goto done;
            }
            if (accepted) continue;
            next = id;
            break;
        }
        /* keep next and the j accepted proposals; the draft decoded
         * [lagging,] next, d1 .. d(k-1), so when all k were accepted dk
         * is left for it to decode next round */
        ac_context_truncate(ctx, n0 + 1 + j);
        if (k > 0) { /* (k = 0: the context is full after this token, the loop ends) */
            ac_context_truncate(draft, d0 + lag + 1 + (j < k ? j : k - 1));
            lag = j == k;
            feed[0] = batch[k];
        }
    }
    rc = 0;
done:
    free(logits);
    free(batch);
    return rc;
}

/* The context ready for the prompt: reset, or cut back to the prompt's
 * cached prefix; returns the positions kept. */
static int fresh_start(struct ac_context *ctx, const int32_t *prompt, int n_prompt, bool reuse_prefix) {
    if (reuse_prefix) return ac_context_keep_prefix(ctx, prompt, n_prompt);
    ac_context_reset(ctx);
    return 0;
}

int ac_generate(struct ac_context *ctx, const struct ac_tokenizer *tok, const int32_t *prompt, int n_prompt,
                const struct ac_gen_params *params, ac_token_fn on_token, void *user, struct ac_gen_stats *stats,
                char *err) {
    memset(stats, 0, sizeof *stats);
    if (n_prompt <= 0) return ac_errf(err, "empty prompt");
    if (params->n_predict <= 0) return ac_errf(err, "the number of tokens to generate must be at least 1");
    if (params->draft) {
        if (params->n_draft < 1) return ac_errf(err, "the number of draft tokens must be at least 1");
        if (ac_context_n_vocab(params->draft) != ac_context_n_vocab(ctx))
            return ac_errf(err, "the draft model's vocabulary (%d tokens) is not the model's (%d)",
                           ac_context_n_vocab(params->draft), ac_context_n_vocab(ctx));
        if (ac_context_n_ctx(params->draft) != ac_context_n_ctx(ctx))
            return ac_errf(err, "the draft context (%d) must be as long as the model's (%d)",
                           ac_context_n_ctx(params->draft), ac_context_n_ctx(ctx));
    }
    if (n_prompt >= ac_context_n_ctx(ctx))
        return ac_errf(err, "prompt of %d tokens does not fit in the context of %d", n_prompt, ac_context_n_ctx(ctx));
    const int n_vocab = ac_tokenizer_n_vocab(tok);
    struct ac_sampler sampler;
    if (ac_sampler_init(&sampler, &params->sampling, n_vocab, err) != 0) return -1;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    int rc = -1;
    if (!logits) {
        ac_errf(err, "out of memory");
        goto done;
    }
    double t0 = ac_time_s();
    const int keep = fresh_start(ctx, prompt, n_prompt, params->reuse_prefix);
    if (ac_decode(ctx, prompt + keep, n_prompt - keep, AC_LOGITS_LAST, logits, err) != 0) goto done;
    if (params->draft) {
        const int keep_draft = fresh_start(params->draft, prompt, n_prompt, params->reuse_prefix);
        if (ac_decode(params->draft, prompt + keep_draft, n_prompt - keep_draft, AC_LOGITS_NONE, NULL, err) != 0)
            goto done;
    }
    stats->n_cached = keep;
    stats->prefill_s = ac_time_s() - t0;
    stats->n_prompt = n_prompt;
    t0 = ac_time_s();
    if (params->draft) {
        const int32_t first = ac_sample(&sampler, logits);
        if (!emit(tok, params, first, on_token, user, stats) &&
            speculate(ctx, &sampler, tok, params, first, on_token, user, stats, err) != 0)
            goto done;
        stats->decode_s = ac_time_s() - t0;
        rc = 0;
        goto done;
    }
    for (;;) {
        int32_t id = ac_sample(&sampler, logits);
        if (emit(tok, params, id, on_token, user, stats)) break;
        if (ac_context_n_past(ctx) >= ac_context_n_ctx(ctx)) {
            stats->hit_ctx_end = true;
            break;
        }
        if (ac_decode(ctx, &id, 1, AC_LOGITS_LAST, logits, err) != 0) goto done;
        stats->n_decoded++;
    }
    stats->decode_s = ac_time_s() - t0;
    rc = 0;
done:
    free(logits);
    ac_sampler_free(&sampler);
    return rc;
}

int ac_count_teacher_forced(struct ac_context *ctx, const int32_t *ref, int from, int n_ref, float *logits,
                            int chunk, int *matched, char *err) {
    const int n_vocab = ac_context_n_vocab(ctx);
    for (int target = from; target < n_ref; target += chunk) {
        const int n = n_ref - target < chunk ? n_ref - target : chunk;
        /* ref[target - 1 .. + n) predict ref[target .. + n) */
        if (ac_decode(ctx, ref + target - 1, n, AC_LOGITS_ALL, logits, err) != 0) return -1;
        for (int j = 0; j < n; j++) *matched += ac_argmax(logits + (size_t)j * n_vocab, n_vocab) == ref[target + j];
    }
    return 0;
}
