/* generate.c - prompt prefill + sampled decode loop (see generate.h). */
#include "runtime/generate.h"

#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

int ac_generate(struct ac_context *ctx, const struct ac_tokenizer *tok, const int32_t *prompt, int n_prompt,
                const struct ac_gen_params *params, ac_token_fn on_token, void *user, struct ac_gen_stats *stats,
                char *err) {
    memset(stats, 0, sizeof *stats);
    if (n_prompt <= 0) return ac_errf(err, "empty prompt");
    if (params->n_predict <= 0) return ac_errf(err, "the number of tokens to generate must be at least 1");
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
    ac_context_reset(ctx);
    double t0 = ac_time_s();
    if (ac_decode(ctx, prompt, n_prompt, AC_LOGITS_LAST, logits, err) != 0) goto done;
    stats->prefill_s = ac_time_s() - t0;
    stats->n_prompt = n_prompt;
    t0 = ac_time_s();
    for (;;) {
        int32_t id = ac_sample(&sampler, logits);
        stats->n_generated++;
        const bool eog = ac_tokenizer_is_eog(tok, id);
        if (on_token && on_token(user, id)) break;
        if (eog && !params->ignore_eos) {
            stats->hit_eog = true;
            break;
        }
        if (stats->n_generated >= params->n_predict) break;
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
