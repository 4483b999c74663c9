/* cache.c - see cache.h. */
#include "runtime/cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "compress/compress.h"
#include "gguf/gguf.h"
#include "model/model.h"

struct entry {
    const struct ac_manifest_variant *v;
    size_t bytes;          /* file size: what residency costs */
    struct ac_model *model; /* NULL when not resident */
    int pins;
    long last_use;          /* acquisition clock of the last use, -1 never */
};

struct ac_variant_cache {
    pthread_mutex_t mu;
    char dir[4096];
    struct ac_cache_params p;
    int n;
    struct entry *e;
    int *history; /* ring of the last `window` acquired entry indices */
    long clock;   /* acquisitions so far */
    struct ac_cache_stats st;
};

void ac_cache_params_default(struct ac_cache_params *p) {
    p->budget_bytes = 0;
    p->w_freq = 0.7;
    p->w_recency = 0.3;
    p->window = 64;
}

static int find(const struct ac_variant_cache *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].v->name, name)) return i;
    return -1;
}

/* frequency: share of the window's acquisitions; recency: 1 for the last
 * acquisition, falling linearly to 0 at the window's edge */
static double priority(const struct ac_variant_cache *c, int i) {
    const long w = c->p.window, seen = c->clock < w ? c->clock : w;
    if (seen == 0 || c->e[i].last_use < 0) return 0.0;
    long count = 0;
    for (long k = 0; k < seen; k++) count += c->history[k] == i;
    const double freq = (double)count / (double)seen;
    const long age = c->clock - 1 - c->e[i].last_use;
    const double rec = age >= w ? 0.0 : 1.0 - (double)age / (double)w;
    return c->p.w_freq * freq + c->p.w_recency * rec;
}

int ac_cache_new(struct ac_variant_cache **out, const char *dir, const struct ac_manifest *man,
                 const struct ac_cache_params *p, char *err) {
    struct ac_variant_cache *c = calloc(1, sizeof *c);
    if (!c) return ac_errf(err, "out of memory");
    if (p)
        c->p = *p;
    else
        ac_cache_params_default(&c->p);
    if (c->p.window < 1) c->p.window = 1;
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    c->n = man->n_variants;
    c->e = calloc((size_t)c->n, sizeof *c->e);
    c->history = calloc((size_t)c->p.window, sizeof *c->history);
    if (!c->e || !c->history) {
        ac_cache_free(c);
        return ac_errf(err, "out of memory");
    }
    size_t largest = 0;
    for (int i = 0; i < c->n; i++) {
        char path[8192];
        struct stat sb;
        c->e[i] = (struct entry){.v = &man->variants[i], .last_use = -1};
        if (!man->variants[i].file) continue; /* remote: nothing to load */
        snprintf(path, sizeof path, "%s/%s", dir, man->variants[i].file);
        if (stat(path, &sb) != 0) {
            ac_cache_free(c);
            return ac_errf(err, "%s: variant '%s' has no file", path, man->variants[i].name);
        }
        c->e[i].bytes = (size_t)sb.st_size;
        if (c->e[i].bytes > largest) largest = c->e[i].bytes;
    }
    if (c->p.budget_bytes == 0) c->p.budget_bytes = 2 * largest;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

void ac_cache_free(struct ac_variant_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n && c->e; i++) ac_model_free(c->e[i].model);
    if (c->e) pthread_mutex_destroy(&c->mu);
    free(c->e);
    free(c->history);
    free(c);
}

/* Maps and validates the file, then reads every page once so the first
 * tokens run at memory speed (a mapped file otherwise faults per page). */
static int load(struct ac_variant_cache *c, int i, char *err) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", c->dir, c->e[i].v->file);
    const double t0 = ac_time_s();
    if (ac_model_load(&c->e[i].model, path, err) != 0) return -1;
    const volatile uint8_t *base = c->e[i].model->file->base;
    const size_t size = c->e[i].model->file->size;
    uint8_t sink = 0;
    for (size_t off = 0; off < size; off += 4096) sink ^= base[off];
    (void)sink;
    c->st.last_swap_seconds = ac_time_s() - t0;
    c->st.swap_seconds += c->st.last_swap_seconds;
    c->st.bytes_loaded += (double)c->e[i].bytes;
    c->st.resident_bytes += c->e[i].bytes;
    return 0;
}

static void evict(struct ac_variant_cache *c, int i) {
    ac_model_free(c->e[i].model);
    c->e[i].model = NULL;
    c->st.resident_bytes -= c->e[i].bytes;
    c->st.evictions++;
}

/* Evicts unpinned variants, lowest priority first, until need bytes fit; a
 * variant with priority above `keep_above` is kept (prefetch never evicts
 * something more valuable than what it loads). */
static bool make_room(struct ac_variant_cache *c, size_t need, int except, double keep_above) {
    while (c->st.resident_bytes + need > c->p.budget_bytes) {
        int victim = -1;
        double best = 0.0;
        for (int i = 0; i < c->n; i++) {
            if (i == except || !c->e[i].model || c->e[i].pins > 0) continue;
            const double pr = priority(c, i);
            if (pr > keep_above) continue;
            if (victim < 0 || pr < best) victim = i, best = pr;
        }
        if (victim < 0) return false;
        evict(c, victim);
    }
    return true;
}

int ac_cache_acquire(struct ac_variant_cache *c, const char *name, struct ac_model **model, bool *hit, char *err) {
    pthread_mutex_lock(&c->mu);
    int rc = -1;
    const int i = find(c, name);
    if (i < 0 || !c->e[i].v->file) {
        ac_errf(err, i < 0 ? "unknown variant '%s'" : "variant '%s' is remote: nothing to load", name);
        goto done;
    }
    c->history[c->clock % c->p.window] = i;
    c->e[i].last_use = c->clock++;
    const bool resident = c->e[i].model != NULL;
    if (!resident) {
        if (!make_room(c, c->e[i].bytes, i, 2.0)) {
            ac_errf(err, "variant '%s' (%zu bytes) does not fit the %zu-byte budget beside the variants in use", name,
                    c->e[i].bytes, c->p.budget_bytes);
            goto done;
        }
        if (load(c, i, err) != 0) goto done;
        c->st.misses++;
    } else {
        c->st.hits++;
    }
    c->e[i].pins++;
    *model = c->e[i].model;
    if (hit) *hit = resident;
    rc = 0;
done:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void ac_cache_release(struct ac_variant_cache *c, const char *name) {
    pthread_mutex_lock(&c->mu);
    const int i = find(c, name);
    if (i >= 0 && c->e[i].pins > 0) c->e[i].pins--;
    pthread_mutex_unlock(&c->mu);
}

int ac_cache_prefetch(struct ac_variant_cache *c, const char *name, char *err) {
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    const int i = find(c, name);
    if (i < 0)
        rc = ac_errf(err, "unknown variant '%s'", name);
    else if (!c->e[i].v->file)
        rc = 0;
    else if (!c->e[i].model && make_room(c, c->e[i].bytes, i, priority(c, i)))
        rc = load(c, i, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

bool ac_cache_is_resident(struct ac_variant_cache *c, const char *name) {
    pthread_mutex_lock(&c->mu);
    const int i = find(c, name);
    const bool r = i >= 0 && c->e[i].model != NULL;
    pthread_mutex_unlock(&c->mu);
    return r;
}

double ac_cache_priority(struct ac_variant_cache *c, const char *name) {
    pthread_mutex_lock(&c->mu);
    const int i = find(c, name);
    const double pr = i >= 0 ? priority(c, i) : 0.0;
    pthread_mutex_unlock(&c->mu);
    return pr;
}

void ac_cache_get_stats(struct ac_variant_cache *c, struct ac_cache_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}
