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
    bool loading;           /* its bytes are counted, its file is being read */
    bool queued;            /* a prefetch the loader thread has not started */
    bool prefetched;        /* loaded by a prefetch, not acquired since */
    long load_id;           /* which load put model in place (ac_cache_load_id) */
};

struct ac_variant_cache {
    pthread_mutex_t mu;
    pthread_cond_t loaded_cv; /* a load finished (or failed) */
    pthread_cond_t work_cv;   /* the loader: a prefetch was queued, or stop */
    char dir[4096];
    struct ac_cache_params p;
    int n;
    struct entry *e;
    size_t largest;       /* bytes of the largest local variant */
    size_t loading_bytes; /* of the variants being loaded */
    int *history; /* ring of the last `window` acquired entry indices */
    long clock;   /* acquisitions so far */
    long loads;   /* loads completed so far */
    struct ac_cache_stats st;
    pthread_t loader;
    bool loader_started, stopping;
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
double ac_cache_policy_priority(const struct ac_cache_params *p, const int *history, long clock, int i,
                                long last_use) {
    const long w = p->window, seen = clock < w ? clock : w;
    if (seen == 0 || last_use < 0) return 0.0;
    long count = 0;
    for (long k = 0; k < seen; k++) count += history[k] == i;
    const double freq = (double)count / (double)seen;
    const long age = clock - 1 - last_use;
    const double rec = age >= w ? 0.0 : 1.0 - (double)age / (double)w;
    return p->w_freq * freq + p->w_recency * rec;
}

static double priority(const struct ac_variant_cache *c, int i) {
    return ac_cache_policy_priority(&c->p, c->history, c->clock, i, c->e[i].last_use);
}

int ac_cache_new(struct ac_variant_cache **out, const char *dir, const struct ac_manifest *man,
                 const struct ac_cache_params *p, char *err) {
    struct ac_variant_cache *c = calloc(1, sizeof *c);
    if (!c) return ac_errf(err, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->loaded_cv, NULL);
    pthread_cond_init(&c->work_cv, NULL);
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
        if (c->e[i].bytes > c->largest) c->largest = c->e[i].bytes;
    }
    if (c->p.budget_bytes == 0) c->p.budget_bytes = 2 * c->largest;
    *out = c;
    return 0;
}

void ac_cache_free(struct ac_variant_cache *c) {
    if (!c) return;
    if (c->loader_started) { /* a load in progress finishes; queued ones are dropped */
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_signal(&c->work_cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->loader, NULL);
    }
    for (int i = 0; i < c->n && c->e; i++) ac_model_free(c->e[i].model);
    pthread_cond_destroy(&c->work_cv);
    pthread_cond_destroy(&c->loaded_cv);
    pthread_mutex_destroy(&c->mu);
    free(c->e);
    free(c->history);
    free(c);
}

/* Maps and validates the file, then reads every page the model will read
 * once, so the first tokens run at memory speed (a mapped file otherwise
 * faults per page). Runs without the mutex: it reads only what never
 * changes. */
static int load_file(const struct ac_variant_cache *c, int i, struct ac_model **model, double *seconds, char *err) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", c->dir, c->e[i].v->file);
    const double t0 = ac_time_s();
    if (ac_model_load(model, path, err) != 0) return -1;
    if (ac_model_prefault(*model, err) != 0) {
        ac_model_free(*model);
        *model = NULL;
        return -1;
    }
    *seconds = ac_time_s() - t0;
    return 0;
}

/* Counts entry i's bytes and marks it loading (under mu): from here on it
 * cannot be evicted, and others wait for it instead of loading it twice. */
static void begin_load(struct ac_variant_cache *c, int i) {
    c->e[i].loading = true;
    c->st.resident_bytes += c->e[i].bytes;
    c->loading_bytes += c->e[i].bytes;
}

/* Under mu: installs the result of a load begun by begin_load (model NULL:
 * it failed, its bytes are given back) and wakes whoever waits for it. */
static void end_load(struct ac_variant_cache *c, int i, struct ac_model *model, double seconds) {
    c->e[i].loading = false;
    c->loading_bytes -= c->e[i].bytes;
    if (model) {
        c->e[i].model = model;
        c->e[i].load_id = ++c->loads;
        c->st.last_swap_seconds = seconds;
        c->st.swap_seconds += seconds;
        c->st.bytes_loaded += (double)c->e[i].bytes;
    } else {
        c->st.resident_bytes -= c->e[i].bytes;
    }
    pthread_cond_broadcast(&c->loaded_cv);
}

static void evict(struct ac_variant_cache *c, int i) {
    ac_model_free(c->e[i].model);
    c->e[i].model = NULL;
    c->e[i].prefetched = false;
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
    struct entry *e = &c->e[i];
    bool loaded_here = false;
    while (!e->model) {
        /* another load of it (a prefetch, another caller) is in flight: wait for
         * it; a load of another variant holds its room until it ends, so wait
         * for that when it is what stands in the way (rare: see ac_cache_prefetch) */
        if (!e->loading && make_room(c, e->bytes, i, 2.0)) {
            begin_load(c, i);
            pthread_mutex_unlock(&c->mu);
            struct ac_model *m = NULL;
            double seconds = 0.0;
            const int lrc = load_file(c, i, &m, &seconds, err);
            pthread_mutex_lock(&c->mu);
            end_load(c, i, lrc == 0 ? m : NULL, seconds);
            if (lrc != 0) goto done;
            loaded_here = true;
        } else if (e->loading || c->loading_bytes > 0) {
            pthread_cond_wait(&c->loaded_cv, &c->mu);
        } else {
            ac_errf(err, "variant '%s' (%zu bytes) does not fit the %zu-byte budget beside the variants in use", name,
                    e->bytes, c->p.budget_bytes);
            goto done;
        }
    }
    if (loaded_here) {
        c->st.misses++;
    } else {
        c->st.hits++;
        c->st.prefetch_hits += e->prefetched;
    }
    e->prefetched = false;
    e->pins++;
    *model = e->model;
    if (hit) *hit = !loaded_here;
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

/* The cache's loader thread: runs the queued prefetches one at a time. */
static void *loader_main(void *arg) {
    struct ac_variant_cache *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        int i = 0;
        while (i < c->n && !c->e[i].queued) i++;
        if (c->stopping) break;
        if (i == c->n) {
            pthread_cond_wait(&c->work_cv, &c->mu);
            continue;
        }
        c->e[i].queued = false;
        pthread_mutex_unlock(&c->mu);
        struct ac_model *m = NULL;
        double seconds = 0.0;
        char err[AC_ERR_LEN]; /* a failed prefetch only means the request loads it itself */
        const int rc = load_file(c, i, &m, &seconds, err);
        pthread_mutex_lock(&c->mu);
        end_load(c, i, rc == 0 ? m : NULL, seconds);
        if (rc == 0) {
            c->e[i].prefetched = true;
            c->st.prefetches++;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int ac_cache_prefetch(struct ac_variant_cache *c, const char *name, bool *started, char *err) {
    if (started) *started = false;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    const int i = find(c, name);
    if (i < 0) {
        rc = ac_errf(err, "unknown variant '%s'", name);
        goto done;
    }
    struct entry *e = &c->e[i];
    if (!e->v->file || e->model || e->loading || c->stopping) goto done;
    if (c->loading_bytes + e->bytes + c->largest > c->p.budget_bytes) goto done;
    if (!c->loader_started) {
        if (pthread_create(&c->loader, NULL, loader_main, c) != 0) {
            rc = ac_errf(err, "cannot start the prefetch thread");
            goto done;
        }
        c->loader_started = true;
    }
    if (!make_room(c, e->bytes, i, priority(c, i))) goto done;
    begin_load(c, i);
    e->queued = true;
    pthread_cond_signal(&c->work_cv);
    if (started) *started = true;
done:
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

long ac_cache_load_id(struct ac_variant_cache *c, const char *name) {
    pthread_mutex_lock(&c->mu);
    const int i = find(c, name);
    const long id = i >= 0 && c->e[i].model ? c->e[i].load_id : 0;
    pthread_mutex_unlock(&c->mu);
    return id;
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
