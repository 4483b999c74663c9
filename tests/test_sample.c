/* test_sample.c - samplers: greedy ties, top-k/top-p truncation driven by
 * chosen coins, temperature limits, RNG determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <math.h>

#include "sample/sample.h"

static void test_argmax(void **state) {
    (void)state;
    const float l[] = {1.0f, 3.0f, -2.0f, 3.0f};
    assert_int_equal(ac_argmax(l, 4), 1); /* lowest id wins a tie */
    const float one[] = {-5.0f};
    assert_int_equal(ac_argmax(one, 1), 0);
    /* every length around the 16-wide runs, the maximum (tied) anywhere */
    float l2[70];
    uint64_t rng = 5;
    for (int n = 1; n <= 70; n++)
        for (int round = 0; round < 20; round++) {
            for (int i = 0; i < n; i++) l2[i] = (float)(int)(8.0f * ac_rng_uniform(&rng)); /* many ties */
            int32_t want = 0;
            for (int i = 1; i < n; i++)
                if (l2[i] > l2[want]) want = i;
            assert_int_equal(ac_argmax(l2, n), want);
        }
}

static void test_pick(void **state) {
    (void)state;
    /* probabilities at temp 1: ~0.64, 0.24, 0.09, 0.03 */
    const float l[] = {0.0f, 2.0f, 1.0f, 3.0f};
    struct ac_prob_item items[4];
    struct ac_sampler_params p = {.temp = 1.0f, .top_k = 0, .top_p = 1.0f};
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.0f, items), 3);
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.70f, items), 1);
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.999f, items), 0);
    p.top_k = 1; /* only the best survives, whatever the coin */
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.999f, items), 3);
    p.top_k = 2;
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.999f, items), 1);
    p.top_k = 0;
    p.top_p = 0.5f; /* the top token alone already covers 0.64 */
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.999f, items), 3);
    p.top_p = 0.8f; /* top two */
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.999f, items), 1);
    p.top_p = 1.0f;
    p.temp = 0.0f; /* greedy */
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.999f, items), 3);
    p.temp = 1e-4f; /* near-greedy: all mass on the best */
    assert_int_equal(ac_sample_pick(l, 4, &p, 0.999f, items), 3);
}

/* The straightforward definition: sort everything, softmax the top k at
 * temp, cut at top-p, walk the coin. */
static int cmp_desc(const void *a, const void *b) {
    const struct ac_prob_item *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

static int32_t pick_by_full_sort(const float *l, int n, const struct ac_sampler_params *p, float coin) {
    struct ac_prob_item *it = malloc(sizeof *it * (size_t)n);
    for (int i = 0; i < n; i++) it[i].p = l[i], it[i].id = i;
    qsort(it, (size_t)n, sizeof *it, cmp_desc);
    const int k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    double sum = 0.0;
    for (int i = 0; i < k; i++) sum += exp((double)(it[i].p - it[0].p) / p->temp);
    int keep = k;
    double cum = 0.0;
    for (int i = 0; i < k && p->top_p < 1.0f; i++) {
        cum += exp((double)(it[i].p - it[0].p) / p->temp) / sum;
        if (cum >= p->top_p) {
            keep = i + 1;
            break;
        }
    }
    double kept = 0.0, acc = 0.0;
    for (int i = 0; i < keep; i++) kept += exp((double)(it[i].p - it[0].p) / p->temp);
    int32_t id = it[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        acc += exp((double)(it[i].p - it[0].p) / p->temp);
        if ((double)coin * kept < acc) {
            id = it[i].id;
            break;
        }
    }
    free(it);
    return id;
}

/* Partial selection gives the same token as sorting everything. */
static void test_pick_matches_full_sort(void **state) {
    (void)state;
    const int n = 5000;
    float *l = malloc(sizeof(float) * n);
    struct ac_prob_item *items = malloc(sizeof *items * n);
    uint64_t rng = 99;
    const float temps[] = {0.3f, 0.8f, 1.5f};
    const int ks[] = {0, 1, 17, 40, 4999};
    const float tps[] = {0.5f, 0.95f, 1.0f};
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < n; i++) l[i] = 6.0f * ac_rng_uniform(&rng) - (float)(i % 7); /* with ties */
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 5; b++)
                for (int c = 0; c < 3; c++) {
                    const struct ac_sampler_params p = {.temp = temps[a], .top_k = ks[b], .top_p = tps[c]};
                    for (int d = 0; d < 5; d++) {
                        const float coin = ac_rng_uniform(&rng);
                        assert_int_equal(ac_sample_pick(l, n, &p, coin, items), pick_by_full_sort(l, n, &p, coin));
                    }
                }
    }
    free(l);
    free(items);
}

static void test_sampler_determinism(void **state) {
    (void)state;
    float l[100];
    for (int i = 0; i < 100; i++) l[i] = (float)(i % 10) * 0.3f;
    struct ac_sampler_params p = {.temp = 1.5f, .top_k = 50, .top_p = 0.9f, .seed = 42};
    struct ac_sampler a, b, c;
    assert_int_equal(ac_sampler_init(&a, &p, 100, NULL), 0);
    assert_int_equal(ac_sampler_init(&b, &p, 100, NULL), 0);
    p.seed = 43;
    assert_int_equal(ac_sampler_init(&c, &p, 100, NULL), 0);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = ac_sample(&a, l), y = ac_sample(&b, l), z = ac_sample(&c, l);
        assert_true(x >= 0 && x < 100);
        same_ab += x == y;
        same_ac += x == z;
    }
    assert_int_equal(same_ab, 200);
    assert_true(same_ac < 200);
    ac_sampler_free(&a);
    ac_sampler_free(&b);
    ac_sampler_free(&c);
    uint64_t s = 1;
    for (int i = 0; i < 10000; i++) {
        float u = ac_rng_uniform(&s);
        assert_true(u >= 0.0f && u < 1.0f);
    }
}

static void test_bad_params(void **state) {
    (void)state;
    struct ac_sampler s;
    struct ac_sampler_params p = {.temp = 1.0f, .top_p = 0.0f};
    assert_int_equal(ac_sampler_init(&s, &p, 10, NULL), -1);
    p.top_p = 1.0f;
    assert_int_equal(ac_sampler_init(&s, &p, 0, NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_pick_matches_full_sort),
        cmocka_unit_test(test_sampler_determinism),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
