/* test_threadpool.c - the fork/join pool: every share of every run is run
 * exactly once and its writes are visible when ac_pool_run returns, with 1
 * to 4 threads, over many runs back to back (workers spinning, yielding
 * and sleeping between them) and with shares that sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "model/threadpool.h"

#define MAX_SHARES 4

struct job {
    int runs[MAX_SHARES]; /* plain ints: the pool's join must publish them */
    int nth_seen[MAX_SHARES];
    int sleep_share; /* this share sleeps 1 ms first (a descheduled thread), or -1 */
};

static void task(void *arg, int ith, int nth) {
    struct job *j = arg;
    if (ith == j->sleep_share) nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    j->runs[ith]++;
    j->nth_seen[ith] = nth;
}

static void test_every_share_once(void **state) {
    (void)state;
    for (int n = 1; n <= MAX_SHARES; n++) {
        struct ac_pool *p = ac_pool_new(n);
        assert_non_null(p);
        assert_int_equal(ac_pool_size(p), n);
        for (int r = 0; r < 20000; r++) {
            struct job j = {.sleep_share = r % 500 == 0 ? r / 500 % n : -1};
            ac_pool_run(p, task, &j);
            for (int s = 0; s < n; s++) {
                assert_int_equal(j.runs[s], 1);
                assert_int_equal(j.nth_seen[s], n);
            }
            if (r % 5000 == 4999) nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL); /* workers go to sleep */
        }
        ac_pool_free(p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_share_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
