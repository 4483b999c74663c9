/* test_cache.c - the variant cache: eviction follows the priority rule
 * (0.7 frequency + 0.3 recency), a variant in use is never evicted,
 * prefetch never evicts something more valuable, and the counters add up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "compress/compress.h"
#include "runtime/cache.h"

static char dir[64] = "/tmp/ac_cache_XXXXXX";

static int setup(void **state) {
    (void)state;
    if (!mkdtemp(dir)) return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "for v in a b c; do cp tests/fixtures/tiny_llama.gguf %s/$v.gguf; done && printf '%%s' "
             "'{\"base\": \"tiny\", \"variants\": ["
             "{\"name\": \"a\", \"file\": \"a.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1},"
             "{\"name\": \"b\", \"file\": \"b.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1},"
             "{\"name\": \"c\", \"file\": \"c.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1}]}'"
             " > %s/manifest.json",
             dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void use(struct ac_variant_cache *c, const char *name, bool want_hit) {
    struct ac_model *m = NULL;
    bool hit = !want_hit;
    char err[AC_ERR_LEN];
    if (ac_cache_acquire(c, name, &m, &hit, err) != 0) fail_msg("acquire %s: %s", name, err);
    assert_non_null(m);
    if (hit != want_hit) fail_msg("%s: hit %d, expected %d", name, hit, want_hit);
    ac_cache_release(c, name);
}

static void test_priority_eviction(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct ac_manifest *man;
    assert_int_equal(ac_manifest_load(&man, dir, err), 0);
    struct ac_cache_params p;
    ac_cache_params_default(&p);
    p.window = 8;
    struct ac_variant_cache *probe;
    assert_int_equal(ac_cache_new(&probe, dir, man, &p, err), 0);
    struct ac_cache_stats st;
    ac_cache_get_stats(probe, &st);
    ac_cache_free(probe);
    /* room for two of the three equal-size variants */
    char path[128];
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    p.budget_bytes = 2 * (size_t)ftell(f) + 100;
    fclose(f);
    struct ac_variant_cache *c;
    assert_int_equal(ac_cache_new(&c, dir, man, &p, err), 0);
    use(c, "a", false);
    use(c, "b", false);
    use(c, "a", true);
    use(c, "a", true);
    use(c, "a", true); /* a: frequent; b: older and rarer */
    assert_true(ac_cache_priority(c, "a") > ac_cache_priority(c, "b"));
    use(c, "c", false); /* evicts b, the lowest priority */
    assert_true(ac_cache_is_resident(c, "a"));
    assert_false(ac_cache_is_resident(c, "b"));
    assert_true(ac_cache_is_resident(c, "c"));

    /* pinned variants are never evicted: with a and c in use, b cannot load */
    struct ac_model *ma, *mc, *mb;
    bool hit;
    assert_int_equal(ac_cache_acquire(c, "a", &ma, &hit, err), 0);
    assert_int_equal(ac_cache_acquire(c, "c", &mc, &hit, err), 0);
    assert_int_equal(ac_cache_acquire(c, "b", &mb, &hit, err), -1);
    assert_non_null(strstr(err, "does not fit"));
    assert_true(ac_cache_is_resident(c, "a") && ac_cache_is_resident(c, "c"));
    ac_cache_release(c, "a");
    ac_cache_release(c, "c");

    /* the failed request still counts as demand for b; after eight uses of
     * a and c, b has left the window: its prefetch evicts nothing */
    for (int k = 0; k < 4; k++) use(c, "a", true), use(c, "c", true);
    assert_true(ac_cache_priority(c, "b") == 0.0);
    assert_int_equal(ac_cache_prefetch(c, "b", err), 0);
    assert_false(ac_cache_is_resident(c, "b"));
    assert_int_equal(ac_cache_prefetch(c, "nope", err), -1);
    assert_int_equal(ac_cache_acquire(c, "nope", &mb, &hit, err), -1);
    assert_non_null(strstr(err, "unknown variant"));

    ac_cache_get_stats(c, &st);
    assert_int_equal(st.hits + st.misses, 16); /* successful acquisitions */
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.evictions, 1);
    assert_true(st.swap_seconds > 0.0 && st.resident_bytes <= p.budget_bytes);
    ac_cache_free(c);
    ac_manifest_free(man);
}

/* prefetch into free room loads without counting a request; the next
 * request for it is a hit */
static void test_prefetch_loads(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct ac_manifest *man;
    assert_int_equal(ac_manifest_load(&man, dir, err), 0);
    struct ac_variant_cache *c;
    assert_int_equal(ac_cache_new(&c, dir, man, NULL, err), 0); /* default budget: two variants */
    assert_int_equal(ac_cache_prefetch(c, "b", err), 0);
    assert_true(ac_cache_is_resident(c, "b"));
    use(c, "b", true);
    struct ac_cache_stats st;
    ac_cache_get_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 0);
    ac_cache_free(c);
    ac_manifest_free(man);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_priority_eviction), cmocka_unit_test(test_prefetch_loads)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
