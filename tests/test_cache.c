/* test_cache.c - the variant cache: eviction follows the priority rule
 * (0.7 frequency + 0.3 recency), a variant in use is never evicted,
 * prefetch never evicts something more valuable, loads in the background
 * and leaves room for any variant, the counters add up, and eval's cache
 * simulation hits and misses exactly where the cache does. */
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
#include "eval/eval.h"
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
    assert_int_equal(ac_cache_load_id(c, "a"), 0); /* not resident */
    use(c, "a", false);
    use(c, "b", false);
    const long b_load = ac_cache_load_id(c, "b");
    assert_true(b_load > 0 && b_load != ac_cache_load_id(c, "a"));
    use(c, "a", true);
    use(c, "a", true);
    use(c, "a", true); /* a: frequent; b: older and rarer */
    assert_true(ac_cache_priority(c, "a") > ac_cache_priority(c, "b"));
    use(c, "c", false); /* evicts b, the lowest priority */
    assert_true(ac_cache_is_resident(c, "a"));
    assert_false(ac_cache_is_resident(c, "b"));
    assert_true(ac_cache_is_resident(c, "c"));
    assert_int_equal(ac_cache_load_id(c, "b"), 0);

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
    bool started = true;
    assert_int_equal(ac_cache_prefetch(c, "b", &started, err), 0);
    assert_false(started);
    assert_false(ac_cache_is_resident(c, "b"));
    assert_int_equal(ac_cache_prefetch(c, "nope", &started, err), -1);
    assert_int_equal(ac_cache_acquire(c, "nope", &mb, &hit, err), -1);
    assert_non_null(strstr(err, "unknown variant"));

    ac_cache_get_stats(c, &st);
    assert_int_equal(st.hits + st.misses, 16); /* successful acquisitions */
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.evictions, 1);
    /* b back after its eviction: a new load, whatever address it gets */
    const long a_load = ac_cache_load_id(c, "a");
    use(c, "b", false);
    assert_true(ac_cache_load_id(c, "b") > b_load);
    assert_true(ac_cache_load_id(c, "b") != a_load && ac_cache_load_id(c, "b") != ac_cache_load_id(c, "c"));
    assert_true(st.swap_seconds > 0.0 && st.resident_bytes <= p.budget_bytes);
    ac_cache_free(c);
    ac_manifest_free(man);
}

static size_t file_size(const char *d, const char *name) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", d, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fclose(f);
    return (size_t)n;
}

/* Prefetch into free room, while another variant is in use, loads in the
 * background without counting a request; the next request for it is a hit
 * (waiting for the load if it is still going) and a prefetch hit. */
static void test_prefetch_loads(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct ac_manifest *man;
    assert_int_equal(ac_manifest_load(&man, dir, err), 0);
    struct ac_variant_cache *c;
    assert_int_equal(ac_cache_new(&c, dir, man, NULL, err), 0); /* default budget: two variants */
    struct ac_model *ma;
    bool hit = true, started = false;
    assert_int_equal(ac_cache_acquire(c, "a", &ma, &hit, err), 0);
    assert_false(hit);
    assert_int_equal(ac_cache_prefetch(c, "b", &started, err), 0);
    assert_true(started);
    assert_int_equal(ac_cache_prefetch(c, "b", &started, err), 0); /* already on its way */
    assert_false(started);
    use(c, "b", true);
    ac_cache_release(c, "a");
    use(c, "b", true); /* a plain hit now */
    struct ac_cache_stats st;
    ac_cache_get_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.prefetches, 1);
    assert_int_equal(st.prefetch_hits, 1);
    assert_int_equal(st.resident_bytes, 2 * file_size(dir, "a.gguf"));
    ac_cache_free(c);

    /* a budget of one and a half variants: a prefetch would leave no room
     * for a request's variant beside it, so none starts; the request loads */
    struct ac_cache_params p;
    ac_cache_params_default(&p);
    p.budget_bytes = file_size(dir, "a.gguf") * 3 / 2;
    assert_int_equal(ac_cache_new(&c, dir, man, &p, err), 0);
    assert_int_equal(ac_cache_prefetch(c, "b", &started, err), 0);
    assert_false(started);
    use(c, "b", false);
    ac_cache_get_stats(c, &st);
    assert_int_equal(st.prefetches, 0);
    ac_cache_free(c);
    ac_manifest_free(man);
}

/* eval's cache simulation (src/eval/eval.c, a copy of the policy without
 * files) against the cache itself: variants of different sizes, a budget
 * that holds two of them, a short window and a long random sequence of
 * requests: every request hits or misses in both alike. */
static void test_eval_simulation_matches(void **state) {
    (void)state;
    char d[] = "/tmp/ac_cache_sim_XXXXXX", cmd[1024], err[AC_ERR_LEN];
    assert_non_null(mkdtemp(d));
    snprintf(cmd, sizeof cmd,
             "cp tests/fixtures/tiny_llama.gguf %s/a.gguf && cp tests/fixtures/tiny_qwen2.gguf %s/b.gguf && "
             "cp tests/fixtures/tiny_llama.gguf %s/c.gguf && printf '%%s' '{\"base\": \"tiny\", \"variants\": ["
             "{\"name\": \"a\", \"file\": \"a.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1},"
             "{\"name\": \"b\", \"file\": \"b.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1},"
             "{\"name\": \"c\", \"file\": \"c.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1}]}'"
             " > %s/manifest.json",
             d, d, d, d);
    assert_int_equal(system(cmd), 0);
    static const char *const names[] = {"a", "b", "c"};
    size_t bytes[3];
    for (int v = 0; v < 3; v++) {
        char f[16];
        snprintf(f, sizeof f, "%s.gguf", names[v]);
        bytes[v] = file_size(d, f);
    }
    assert_true(bytes[1] != bytes[0]);
    struct ac_manifest *man;
    assert_int_equal(ac_manifest_load(&man, d, err), 0);
    struct ac_cache_params p;
    ac_cache_params_default(&p);
    p.window = 6;
    p.budget_bytes = bytes[0] + bytes[1] + 16;
    struct ac_variant_cache *c;
    assert_int_equal(ac_cache_new(&c, d, man, &p, err), 0);

    enum { N = 240 };
    struct ac_eval_data data;
    assert_int_equal(ac_eval_data_alloc(&data, N, 3, err), 0);
    for (int v = 0; v < 3; v++) {
        snprintf(data.configs[v].name, sizeof data.configs[v].name, "%s", names[v]);
        snprintf(data.configs[v].variant, sizeof data.configs[v].variant, "%s", names[v]);
        data.configs[v].file_bytes = (double)bytes[v];
    }
    int decision[N];
    bool hit[N];
    uint64_t x = 12345;
    for (int s = 0; s < N; s++) {
        for (int v = 0; v < 3; v++) data.have[ac_eval_at(&data, s, v)] = true;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        /* skewed, so that frequency matters: a half, b and c a quarter each */
        const unsigned r = (unsigned)(x >> 60);
        decision[s] = r < 8 ? 0 : r < 12 ? 1 : 2;
        struct ac_model *m;
        assert_int_equal(ac_cache_acquire(c, names[decision[s]], &m, &hit[s], err), 0);
        ac_cache_release(c, names[decision[s]]);
    }
    struct ac_eval_cache_params cp = {.budget_bytes = (double)p.budget_bytes, .w_freq = p.w_freq,
                                      .w_recency = p.w_recency, .window = p.window};
    struct ac_eval_trace t;
    assert_int_equal(ac_eval_trace_alloc(&t, N, err), 0);
    assert_int_equal(ac_eval_simulate(&data, decision, NULL, &cp, &t, err), 0);
    int misses = 0;
    for (int s = 0; s < N; s++) {
        if (hit[s] == t.swap[s]) fail_msg("request %d (%s): cache hit %d, simulation swap %d", s, names[decision[s]],
                                          hit[s], t.swap[s]);
        misses += !hit[s];
    }
    struct ac_cache_stats st;
    ac_cache_get_stats(c, &st);
    assert_int_equal(st.misses, misses);
    assert_true(st.evictions > 10); /* the sequence did exercise eviction */
    ac_eval_trace_free(&t);
    ac_eval_data_free(&data);
    ac_cache_free(c);
    ac_manifest_free(man);
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_priority_eviction), cmocka_unit_test(test_prefetch_loads),
                                       cmocka_unit_test(test_eval_simulation_matches)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
