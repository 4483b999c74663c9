/* threadpool.c - spin-then-sleep fork/join pool (see threadpool.h). */
#include "model/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Waiting escalates: pause-spin (a dispatch costs well under a microsecond
 * on an idle machine), then sched_yield (another process wants the core:
 * spinning would steal the time slice the other thread of the pool needs),
 * then, for a worker, sleep on the condition variable. */
#define SPIN_ITERS 4096
#define YIELD_ITERS 2000

struct ac_pool {
    int n;
    pthread_t *threads;
    ac_task_fn fn;
    void *arg;
    atomic_uint generation; /* bumped once per ac_pool_run */
    /* (generation << 32) | next unclaimed share: shares are claimed, not
     * assigned, so that when a worker is descheduled (a busy machine) the
     * others run its share instead of waiting for it */
    _Atomic uint64_t claim;
    atomic_int done; /* shares finished in the current run */
    atomic_int sleepers;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

struct worker_arg {
    struct ac_pool *p;
    int ith;
};

/* Claims and runs shares of run `gen` until none is left. */
static void run_shares(struct ac_pool *p, unsigned gen) {
    uint64_t cur = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        if ((unsigned)(cur >> 32) != gen || (int)(uint32_t)cur >= p->n) return;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &cur, cur + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        p->fn(p->arg, (int)(uint32_t)cur, p->n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel);
        cur = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

static void *worker_main(void *v) {
    struct worker_arg wa = *(struct worker_arg *)v;
    free(v);
    struct ac_pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            if (spins < SPIN_ITERS + YIELD_ITERS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        run_shares(p, g);
    }
}

struct ac_pool *ac_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    struct ac_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) goto fail;
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto fail_threads;
        wa->p = p;
        wa->ith = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            goto fail_threads;
        }
        continue;
    fail_threads:
        p->n = i; /* only threads 1..i-1 exist */
        ac_pool_free(p);
        return NULL;
    }
    return p;
fail:
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p);
    return NULL;
}

void ac_pool_free(struct ac_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

int ac_pool_size(const struct ac_pool *p) { return p->n; }

void ac_pool_run(struct ac_pool *p, ac_task_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    const unsigned gen = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&p->claim, (uint64_t)gen << 32, memory_order_release);
    atomic_fetch_add(&p->generation, 1); /* seq_cst: ordered before the sleepers check */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_shares(p, gen);
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < p->n; spins++) {
        if (spins < SPIN_ITERS)
            cpu_relax();
        else
            sched_yield();
    }
}
