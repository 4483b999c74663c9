/* cache.h - the variant cache (the paper's Compression Variant Cache): the
 * variants of a directory loaded on demand under a memory budget, evicted
 * by priority = w_freq * frequency + w_recency * recency (both in [0, 1]
 * over a window of the last `window` acquisitions), never while in use.
 *
 * A loaded variant is memory-mapped and pre-faulted (every page read once)
 * so that its first token does not pay the page faults; the time of that
 * load is the swap time. Thread-safe: one mutex guards the table, and is
 * not held while a file loads, so a load never holds up requests for
 * other variants. Prefetches load on the cache's own thread. */
#ifndef AC_CACHE_H
#define AC_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ac_model;
struct ac_manifest;
struct ac_variant_cache;

struct ac_cache_params {
    size_t budget_bytes; /* 0: two of the largest variants */
    double w_freq;       /* 0.7 */
    double w_recency;    /* 0.3 */
    int window;          /* acquisitions the frequency and recency look back over (64) */
};

struct ac_cache_stats {
    long hits, misses, evictions;
    long prefetches;    /* variants loaded ahead of the request that needs them */
    long prefetch_hits; /* acquisitions that found a prefetched variant (resident or loading) */
    double bytes_loaded;
    double swap_seconds; /* total time spent loading */
    double last_swap_seconds;
    size_t resident_bytes; /* resident and being loaded */
};

void ac_cache_params_default(struct ac_cache_params *p);

/* The eviction priority of entry i: w_freq * (its share of the last
 * min(clock, window) acquisitions) + w_recency * (1 - its age / window, 0
 * past the window). history: ring of the acquired entries' indices (slot
 * clock % window); clock: acquisitions so far; last_use: clock of i's last
 * acquisition, -1 never. The cache's rule, shared with eval's simulation. */
double ac_cache_policy_priority(const struct ac_cache_params *p, const int *history, long clock, int i,
                                long last_use);

/* dir and man must outlive the cache. */
int ac_cache_new(struct ac_variant_cache **out, const char *dir, const struct ac_manifest *man,
                 const struct ac_cache_params *p, char *err);
void ac_cache_free(struct ac_variant_cache *c);

/* The model of variant `name`, loaded if needed (evicting unpinned variants
 * by lowest priority until it fits), and pinned until ac_cache_release.
 * *hit says whether this call did not have to start the load: the variant
 * was resident, or being loaded (by a prefetch or another caller: then it
 * waits for that load). Fails if the variant is unknown or cannot fit
 * beside the variants in use and being loaded. */
int ac_cache_acquire(struct ac_variant_cache *c, const char *name, struct ac_model **model, bool *hit, char *err);
void ac_cache_release(struct ac_variant_cache *c, const char *name);

/* Starts loading name in the background (the cache's thread) if it fits
 * without evicting anything in use or with a higher priority than its own,
 * and if the variants being loaded, this one included, leave room for the
 * largest variant: a later acquisition of any variant then never waits
 * for or fails because of a prefetch. The decision and the room are taken
 * now; the load runs after the call returns. *started (may be NULL) says
 * whether a load began; resident, loading or remote variants are a no-op.
 * For the variant of the queue's next request while the current one runs. */
int ac_cache_prefetch(struct ac_variant_cache *c, const char *name, bool *started, char *err);

bool ac_cache_is_resident(struct ac_variant_cache *c, const char *name);
/* Which load of variant name is resident: a number no other load of any
 * variant has (0: not resident). A holder of state tied to a model it
 * acquired earlier (a context) tells by it whether that model is the one
 * resident now or was evicted since (and maybe reloaded at the same
 * address). */
long ac_cache_load_id(struct ac_variant_cache *c, const char *name);
/* Current priority of a variant (0 if never used). */
double ac_cache_priority(struct ac_variant_cache *c, const char *name);
void ac_cache_get_stats(struct ac_variant_cache *c, struct ac_cache_stats *out);

#endif
