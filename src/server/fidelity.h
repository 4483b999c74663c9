/* fidelity.h - the fidelity of the configuration that served a request,
 * measured as `agentcompress profile` measures it (DESIGN.md "Metrics";
 * telemetry.h says why the served text itself is not used): the f16
 * variant's greedy output on the prompt is the reference, the configuration
 * is teacher-forced on it. Both variants come through the variant cache,
 * one at a time, each on its own one-thread context, so a measurement runs
 * beside the server's own requests. */
#ifndef AC_FIDELITY_H
#define AC_FIDELITY_H

#include <pthread.h>
#include <stdint.h>

struct ac_variant_cache;
struct ac_manifest;
struct ac_tokenizer;

struct ac_fidelity_env {
    struct ac_variant_cache *cache;
    const char *dir; /* the variants directory */
    const struct ac_manifest *man;
    const struct ac_tokenizer *tok;
    pthread_mutex_t *config_mu; /* held around ac_variant_apply_config, which may change a shared model */
};

/* The reference is at most max_tokens long (it stops at an end token);
 * relative_cost is the configuration's weight bytes over f16's on the same
 * tokens. Plain f16 is 1 and 1 without running anything. */
int ac_fidelity_measure(const struct ac_fidelity_env *env, const int32_t *prompt, int n_prompt, int max_tokens,
                        const char *variant, float prune, float sparsity, double *fidelity, double *relative_cost,
                        char *err);

#endif
