/* prompt_cache.h - the contexts a server keeps between requests for prompt
 * caching (ac_gen_params.reuse_prefix): up to `capacity` of them, each
 * tagged with the configuration it runs (variant, pruning, sparsity, and
 * the variant cache's load of the model, so that a context is never used
 * with a model other than its own). A request takes out a context of its
 * configuration (ac_prompt_cache_take) and puts it back after the run; the
 * least recently used one is freed when a new one does not fit. Each kept context holds a KV cache of
 * its full length. Thread-safe. */
#ifndef AC_PROMPT_CACHE_H
#define AC_PROMPT_CACHE_H

#include <stdint.h>

struct ac_context;
struct ac_prompt_cache;

struct ac_prompt_key {
    int variant;
    float prune, sparsity;
    long load_id; /* ac_cache_load_id, or any constant for a model that stays */
};

int ac_prompt_cache_new(struct ac_prompt_cache **out, int capacity, char *err);
/* Frees the kept contexts too (they touch only their own memory, so this
 * is safe after their models are gone). */
void ac_prompt_cache_free(struct ac_prompt_cache *pc);

/* Takes out a kept context of key's configuration for prompt ids: the one
 * whose cached tokens the prompt continues (nothing cached is lost), the
 * longest such; else, while the cache has room, NULL (make a new one, so
 * that other conversations stay cached); else the one sharing the longest
 * prefix, or the configuration's least recently used one. Contexts of
 * key's variant made on another load are freed. */
struct ac_context *ac_prompt_cache_take(struct ac_prompt_cache *pc, const struct ac_prompt_key *key,
                                        const int32_t *ids, int n_ids);

/* Keeps ctx (taken or new) for later requests; when the cache is full, the
 * least recently used context is freed (ctx itself, with capacity 0). */
void ac_prompt_cache_put(struct ac_prompt_cache *pc, const struct ac_prompt_key *key, struct ac_context *ctx);

/* Seeds fresh, a new context of key's configuration, with the longest
 * prefix of ids that a kept context of the configuration holds
 * (ac_context_copy_prefix); returns its length (0: none). */
int ac_prompt_cache_seed(struct ac_prompt_cache *pc, const struct ac_prompt_key *key, const int32_t *ids, int n_ids,
                         struct ac_context *fresh);

/* Contexts kept now. */
int ac_prompt_cache_size(struct ac_prompt_cache *pc);

#endif
