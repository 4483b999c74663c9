/* fidelity.c - see fidelity.h. */
#include "server/fidelity.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/common.h"
#include "compress/calibration.h"
#include "compress/compress.h"
#include "model/model.h"
#include "runtime/cache.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"

#define CHUNK 64 /* teacher-forced positions per forward pass */

/* A one-thread context of a cached variant (released by the caller). */
static int open_variant(const struct ac_fidelity_env *env, const char *name, int n_ctx, struct ac_model **model,
                        struct ac_context **ctx, char *err) {
    bool hit;
    if (ac_cache_acquire(env->cache, name, model, &hit, err) != 0) return -1;
    const struct ac_context_params cp = {.n_ctx = n_ctx, .n_batch = CHUNK, .n_threads = 1};
    if (ac_context_new(ctx, *model, &cp, err) != 0) {
        ac_cache_release(env->cache, name);
        return -1;
    }
    return 0;
}

static void close_variant(const struct ac_fidelity_env *env, const char *name, struct ac_context *ctx) {
    ac_context_free(ctx);
    ac_cache_release(env->cache, name);
}

/* The f16 variant's greedy output (up to max_tokens, an end token included)
 * into ref, and the weight bytes it read; *logits: a malloc'd buffer of
 * CHUNK rows for the caller to reuse and free. */
static int reference(const struct ac_fidelity_env *env, const int32_t *prompt, int n_prompt, int max_tokens,
                     int32_t *ref, int *n_ref, double *bytes, float **logits_out, char *err) {
    struct ac_model *model;
    struct ac_context *ctx;
    if (open_variant(env, "f16", n_prompt + max_tokens, &model, &ctx, err) != 0) return -1;
    const int n_vocab = model->cfg.n_vocab;
    float *logits = *logits_out = malloc(sizeof(float) * (size_t)n_vocab * CHUNK);
    if (!logits) {
        close_variant(env, "f16", ctx);
        return ac_errf(err, "out of memory");
    }
    int rc = ac_decode(ctx, prompt, n_prompt, AC_LOGITS_LAST, logits, err);
    int n = 0;
    while (rc == 0) {
        const int32_t id = ac_argmax(logits, n_vocab);
        ref[n++] = id;
        if (ac_tokenizer_is_eog(env->tok, id) || n >= max_tokens) break;
        rc = ac_decode(ctx, &id, 1, AC_LOGITS_LAST, logits, err);
    }
    *n_ref = n;
    *bytes = ac_context_weight_bytes(ctx);
    close_variant(env, "f16", ctx);
    return rc;
}

/* Top-1 matches of the configuration teacher-forced on ref, and its bytes. */
static int teacher_forced(const struct ac_fidelity_env *env, const struct ac_manifest_variant *v, float prune,
                          float sparsity, const int32_t *prompt, int n_prompt, const int32_t *ref, int n_ref,
                          int *matched, double *bytes, float *logits, char *err) {
    struct ac_model *model;
    struct ac_context *ctx;
    if (open_variant(env, v->name, n_prompt + n_ref, &model, &ctx, err) != 0) return -1;
    const int n_vocab = model->cfg.n_vocab;
    int rc = 0;
    if (prune > 0.0f || sparsity > 0.0f) {
        pthread_mutex_lock(env->config_mu);
        rc = ac_variant_apply_config(model, ctx, env->dir, env->man, v->file, prune, sparsity, err);
        pthread_mutex_unlock(env->config_mu);
    }
    /* the prompt predicts ref[0]; ref[t - 1] predicts ref[t] */
    if (rc == 0) rc = ac_decode(ctx, prompt, n_prompt, AC_LOGITS_LAST, logits, err);
    *matched = rc == 0 && n_ref > 0 && ac_argmax(logits, n_vocab) == ref[0];
    if (rc == 0) rc = ac_count_teacher_forced(ctx, ref, 1, n_ref, logits, CHUNK, matched, err);
    *bytes = ac_context_weight_bytes(ctx);
    close_variant(env, v->name, ctx);
    return rc;
}

int ac_fidelity_measure(const struct ac_fidelity_env *env, const int32_t *prompt, int n_prompt, int max_tokens,
                        const char *variant, float prune, float sparsity, double *fidelity, double *relative_cost,
                        char *err) {
    const struct ac_manifest_variant *v = ac_manifest_find(env->man, variant), *f16 = ac_manifest_find(env->man, "f16");
    if (!v || !v->file) return ac_errf(err, "fidelity: '%s' is not a local variant", variant);
    if (!f16 || !f16->file) return ac_errf(err, "fidelity: %s/manifest.json has no local f16 variant", env->dir);
    if (n_prompt < 1 || max_tokens < 1) return ac_errf(err, "fidelity: nothing to measure");
    if (v == f16 && prune == 0.0f && sparsity == 0.0f) { /* the reference itself */
        *fidelity = 1.0;
        *relative_cost = 1.0;
        return 0;
    }
    float *logits = NULL;
    int32_t *ref = malloc(sizeof(int32_t) * (size_t)max_tokens);
    int n_ref = 0, matched = 0;
    double ref_bytes = 0.0, bytes = 0.0;
    if (!ref) return ac_errf(err, "out of memory");
    int rc = reference(env, prompt, n_prompt, max_tokens, ref, &n_ref, &ref_bytes, &logits, err);
    if (rc == 0)
        rc = teacher_forced(env, v, prune, sparsity, prompt, n_prompt, ref, n_ref, &matched, &bytes, logits, err);
    if (rc == 0) {
        *fidelity = n_ref > 0 ? (double)matched / n_ref : 1.0;
        *relative_cost = ref_bytes > 0.0 ? bytes / ref_bytes : v->relative_cost;
    }
    free(logits);
    free(ref);
    return rc;
}
