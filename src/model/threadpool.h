/* threadpool.h - a fork/join pool for the forward pass.
 *
 * Decode calls the pool a few hundred times per token, so a dispatch must
 * cost microseconds: workers spin briefly on an atomic generation counter
 * before falling back to a condition variable. The calling thread works as
 * thread 0. */
#ifndef AC_THREADPOOL_H
#define AC_THREADPOOL_H

/* fn(arg, ith, nth): run share ith of nth. */
typedef void (*ac_task_fn)(void *arg, int ith, int nth);

struct ac_pool;

/* n_threads >= 1 (1 = no worker threads). Returns NULL on failure. */
struct ac_pool *ac_pool_new(int n_threads);
void ac_pool_free(struct ac_pool *p);
int ac_pool_size(const struct ac_pool *p);

/* Runs fn on every thread and returns when all shares are done. */
void ac_pool_run(struct ac_pool *p, ac_task_fn fn, void *arg);

#endif
