/* cache.h - the variant cache (the paper's Compression Variant Cache): the
 * variants of a directory loaded on demand under a memory budget, evicted
 * by priority = w_freq * frequency + w_recency * recency (both in [0, 1]
 * over a window of the last `window` acquisitions), never while in use.
 *
 * A loaded variant is memory-mapped and pre-faulted (every page read once)
 * so that its first token does not pay the page faults; the time of that
 * load is the swap time. Thread-safe: one mutex guards the table. */
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
    double bytes_loaded;
    double swap_seconds; /* total time spent loading */
    double last_swap_seconds;
    size_t resident_bytes;
};

void ac_cache_params_default(struct ac_cache_params *p);

/* dir and man must outlive the cache. */
int ac_cache_new(struct ac_variant_cache **out, const char *dir, const struct ac_manifest *man,
                 const struct ac_cache_params *p, char *err);
void ac_cache_free(struct ac_variant_cache *c);

/* The model of variant `name`, loaded if needed (evicting unpinned variants
 * by lowest priority until it fits), and pinned until ac_cache_release.
 * *hit says whether it was resident. Fails if the variant is unknown or
 * cannot fit beside the variants in use. */
int ac_cache_acquire(struct ac_variant_cache *c, const char *name, struct ac_model **model, bool *hit, char *err);
void ac_cache_release(struct ac_variant_cache *c, const char *name);

/* Loads name if it fits without evicting anything in use or with a higher
 * priority than its own; a no-op when resident. For the queue head while
 * the current request runs. */
int ac_cache_prefetch(struct ac_variant_cache *c, const char *name, char *err);

bool ac_cache_is_resident(struct ac_variant_cache *c, const char *name);
/* Current priority of a variant (0 if never used). */
double ac_cache_priority(struct ac_variant_cache *c, const char *name);
void ac_cache_get_stats(struct ac_variant_cache *c, struct ac_cache_stats *out);

#endif
