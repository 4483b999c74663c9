/* threadpool.h - a fork/join pool for the forward pass.
 *
 * Decode calls the pool a few hundred times per token, so a dispatch must
 * cost microseconds: workers spin briefly on an atomic generation counter
 * before falling back to a condition variable. The calling thread works
 * too. Shares are claimed by whichever thread is free, so a worker that the
 * OS deschedules (other processes want the cores) does not hold the others
 * up unless it is inside a share. */
#ifndef AC_THREADPOOL_H
#define AC_THREADPOOL_H

/* fn(arg, ith, nth): run share ith of nth (each exactly once, on some
 * thread of the pool, maybe several shares on one thread in turn). */
typedef void (*ac_task_fn)(void *arg, int ith, int nth);

struct ac_pool;

/* n_threads >= 1 (1 = no worker threads). Returns NULL on failure. */
struct ac_pool *ac_pool_new(int n_threads);
void ac_pool_free(struct ac_pool *p);
int ac_pool_size(const struct ac_pool *p);

/* Runs fn's nth = pool size shares and returns when all are done. */
void ac_pool_run(struct ac_pool *p, ac_task_fn fn, void *arg);

#endif
