/* prompt_cache.c - kept contexts for prompt caching (see prompt_cache.h). */
#include "runtime/prompt_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/common.h"
#include "model/model.h"

struct slot {
    struct ac_context *ctx; /* NULL: free */
    struct ac_prompt_key key;
    long last_use;
};

struct ac_prompt_cache {
    pthread_mutex_t mu;
    int capacity;
    long clock;
    struct slot *slots;
};

int ac_prompt_cache_new(struct ac_prompt_cache **out, int capacity, char *err) {
    *out = NULL;
    if (capacity < 0) return ac_errf(err, "prompt cache: capacity %d < 0", capacity);
    struct ac_prompt_cache *pc = calloc(1, sizeof *pc);
    if (!pc || (capacity > 0 && !(pc->slots = calloc((size_t)capacity, sizeof *pc->slots)))) {
        free(pc);
        return ac_errf(err, "out of memory");
    }
    pthread_mutex_init(&pc->mu, NULL);
    pc->capacity = capacity;
    *out = pc;
    return 0;
}

void ac_prompt_cache_free(struct ac_prompt_cache *pc) {
    if (!pc) return;
    for (int i = 0; i < pc->capacity; i++) ac_context_free(pc->slots[i].ctx);
    pthread_mutex_destroy(&pc->mu);
    free(pc->slots);
    free(pc);
}

static bool same_config(const struct ac_prompt_key *a, const struct ac_prompt_key *b) {
    return a->variant == b->variant && a->prune == b->prune && a->sparsity == b->sparsity && a->load_id == b->load_id;
}

/* Under mu: slot i's context, taken out of the cache. */
static struct ac_context *take_slot(struct ac_prompt_cache *pc, int i) {
    struct ac_context *ctx = pc->slots[i].ctx;
    pc->slots[i].ctx = NULL;
    return ctx;
}

struct ac_context *ac_prompt_cache_take(struct ac_prompt_cache *pc, const struct ac_prompt_key *key,
                                        const int32_t *ids, int n_ids) {
    pthread_mutex_lock(&pc->mu);
    /* best: longest shared prefix; whole: the longest that the prompt
     * continues (it loses nothing cached; an empty one too); lru: the
     * configuration's oldest */
    int best = -1, best_len = 0, whole = -1, whole_len = -1, lru = -1, used = 0;
    for (int i = 0; i < pc->capacity; i++) {
        struct slot *s = &pc->slots[i];
        if (!s->ctx) continue;
        if (s->key.variant == key->variant && s->key.load_id != key->load_id) { /* its model is gone */
            ac_context_free(take_slot(pc, i));
            continue;
        }
        used++;
        if (!same_config(&s->key, key)) continue;
        const int len = ac_context_cached_prefix(s->ctx, ids, n_ids), n_past = ac_context_n_past(s->ctx);
        if (len > best_len) best = i, best_len = len;
        if (len > whole_len && len == (n_past < n_ids - 1 ? n_past : n_ids - 1)) whole = i, whole_len = len;
        if (lru < 0 || s->last_use < pc->slots[lru].last_use) lru = i;
    }
    /* a context the prompt continues; else, while there is room, a new one
     * (the others keep their conversations); else the best partial one */
    const int at = whole >= 0 ? whole : used < pc->capacity ? -1 : best >= 0 ? best : lru;
    struct ac_context *ctx = at >= 0 ? take_slot(pc, at) : NULL;
    pthread_mutex_unlock(&pc->mu);
    return ctx;
}

void ac_prompt_cache_put(struct ac_prompt_cache *pc, const struct ac_prompt_key *key, struct ac_context *ctx) {
    if (!ctx) return;
    pthread_mutex_lock(&pc->mu);
    int at = -1;
    for (int i = 0; i < pc->capacity; i++) {
        if (!pc->slots[i].ctx) {
            at = i;
            break;
        }
        if (at < 0 || pc->slots[i].last_use < pc->slots[at].last_use) at = i;
    }
    if (at < 0) { /* capacity 0 */
        pthread_mutex_unlock(&pc->mu);
        ac_context_free(ctx);
        return;
    }
    ac_context_free(pc->slots[at].ctx);
    pc->slots[at] = (struct slot){.ctx = ctx, .key = *key, .last_use = ++pc->clock};
    pthread_mutex_unlock(&pc->mu);
}

int ac_prompt_cache_seed(struct ac_prompt_cache *pc, const struct ac_prompt_key *key, const int32_t *ids, int n_ids,
                         struct ac_context *fresh) {
    pthread_mutex_lock(&pc->mu);
    int best = -1, best_len = 0;
    for (int i = 0; i < pc->capacity; i++) {
        const struct slot *s = &pc->slots[i];
        if (!s->ctx || !same_config(&s->key, key)) continue;
        const int len = ac_context_cached_prefix(s->ctx, ids, n_ids);
        if (len > best_len) best = i, best_len = len;
    }
    const int n = best >= 0 && ac_context_copy_prefix(fresh, pc->slots[best].ctx, best_len) == 0 ? best_len : 0;
    pthread_mutex_unlock(&pc->mu);
    return n;
}

int ac_prompt_cache_size(struct ac_prompt_cache *pc) {
    pthread_mutex_lock(&pc->mu);
    int n = 0;
    for (int i = 0; i < pc->capacity; i++) n += pc->slots[i].ctx != NULL;
    pthread_mutex_unlock(&pc->mu);
    return n;
}
