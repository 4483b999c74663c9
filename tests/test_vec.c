/* test_vec.c - the attention kernel: SIMD (AVX-512 and AVX2, where the CPU
 * has them) against the scalar reference at head sizes, group sizes, token
 * runs and context lengths around the tile and vector widths; a row's
 * result equal alone and among others; the key tile layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "model/vec.h"
#include "quant/quant.h"
#include "sample/sample.h"

/* The kernels differ in exp (a polynomial vs expf, ~1e-7 relative) and in
 * summation order; rounding the probabilities to F16 can then move one by
 * F16 ulp (at most 2^-11 for probabilities up to 1) where they straddle a
 * rounding boundary, times |v| <= 1. Measured: up to 6e-5. */
#define ATTN_TOL 5e-4f

static void fill_f16(uint16_t *x, size_t n, float amp, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) x[i] = ac_fp32_to_fp16(amp * (2.0f * ac_rng_uniform(rng) - 1.0f));
}

struct attn_case {
    int d, group, n_tokens, n_pos0;
    uint16_t *q, *keys, *k_tiles, *v;
    float *scores, *want, *got;
};

/* Random queries, keys (scores spread over ~10 nats) and values; keys go
 * into the tiles with ac_attn_store_key. */
static void case_init(struct attn_case *c, int d, int group, int n_tokens, int n_pos0, uint64_t *rng) {
    const int n_pos = n_pos0 + n_tokens - 1, n_rows = n_tokens * group;
    const size_t padded = (size_t)(n_pos + AC_ATTN_TILE - 1) / AC_ATTN_TILE * AC_ATTN_TILE;
    *c = (struct attn_case){.d = d, .group = group, .n_tokens = n_tokens, .n_pos0 = n_pos0};
    c->q = malloc(sizeof *c->q * (size_t)n_rows * d);
    c->keys = malloc(sizeof *c->keys * (size_t)n_pos * d);
    c->k_tiles = calloc(padded * d, sizeof *c->k_tiles);
    c->v = malloc(sizeof *c->v * (size_t)n_pos * d);
    c->scores = malloc(sizeof(float) * (size_t)n_rows * padded);
    c->want = malloc(sizeof(float) * (size_t)n_rows * d);
    c->got = malloc(sizeof(float) * (size_t)n_rows * d);
    fill_f16(c->q, (size_t)n_rows * d, 1.0f, rng);
    fill_f16(c->keys, (size_t)n_pos * d, 2.0f, rng);
    fill_f16(c->v, (size_t)n_pos * d, 1.0f, rng);
    for (int p = 0; p < n_pos; p++) ac_attn_store_key(d, c->k_tiles, p, c->keys + (size_t)p * d);
}

static void case_free(struct attn_case *c) {
    free(c->q);
    free(c->keys);
    free(c->k_tiles);
    free(c->v);
    free(c->scores);
    free(c->want);
    free(c->got);
}

static void case_run(const struct attn_case *c, bool reference, float *out) {
    const struct ac_attn_rows rows = {.d = c->d,
                                      .group = c->group,
                                      .n_tokens = c->n_tokens,
                                      .n_pos0 = c->n_pos0,
                                      .q16 = c->q,
                                      .q_stride = (size_t)c->group * c->d,
                                      .out = out,
                                      .out_stride = (size_t)c->group * c->d};
    const float scale = 1.0f / sqrtf((float)c->d);
    (reference ? ac_vec_attn_f16_ref : ac_vec_attn_f16)(&rows, c->k_tiles, c->v, scale, c->scores);
}

static void test_key_tiles(void **state) {
    (void)state;
    uint16_t tiles[2 * 3 * AC_ATTN_TILE] = {0}, k[3];
    for (int p = 0; p < 2 * AC_ATTN_TILE; p++) {
        for (int i = 0; i < 3; i++) k[i] = (uint16_t)(100 * p + i);
        ac_attn_store_key(3, tiles, p, k);
    }
    for (int p = 0; p < 2 * AC_ATTN_TILE; p++)
        for (int i = 0; i < 3; i++)
            assert_int_equal(tiles[(p / AC_ATTN_TILE) * 3 * AC_ATTN_TILE + i * AC_ATTN_TILE + p % AC_ATTN_TILE], 100 * p + i);
}

static void test_attn_simd_matches_reference(void **state) {
    (void)state;
    const int dims[] = {16, 64, 80, 128};
    const int groups[] = {1, 3, 4, 5, 8};
    const int runs[] = {1, 2, 5};
    const int positions[] = {1, 15, 16, 17, 100, 777};
    uint64_t rng = 11;
    float worst = 0.0f;
    for (size_t a = 0; a < sizeof dims / sizeof *dims; a++)
        for (size_t b = 0; b < sizeof groups / sizeof *groups; b++)
            for (size_t r = 0; r < sizeof runs / sizeof *runs; r++)
                for (size_t e = 0; e < sizeof positions / sizeof *positions; e++) {
                    struct attn_case c;
                    case_init(&c, dims[a], groups[b], runs[r], positions[e], &rng);
                    const int n_out = c.n_tokens * c.group * c.d;
                    case_run(&c, true, c.want);
                    for (int avx2 = 0; avx2 <= 1; avx2++) {
                        ac_vec_force_avx2(avx2);
                        case_run(&c, false, c.got);
                        for (int i = 0; i < n_out; i++) {
                            worst = fmaxf(worst, fabsf(c.got[i] - c.want[i]));
                            if (!(fabsf(c.got[i] - c.want[i]) <= ATTN_TOL))
                                fail_msg("%s d=%d group=%d tokens=%d n_pos0=%d: out[%d] = %g, reference %g",
                                         avx2 ? "avx2" : "best", c.d, c.group, c.n_tokens, c.n_pos0, i,
                                         (double)c.got[i], (double)c.want[i]);
                        }
                    }
                    ac_vec_force_avx2(false);
                    case_free(&c);
                }
    printf("  max |SIMD - reference| %.2e\n", (double)worst);
}

/* Every row of a run of tokens equals the same row computed alone (the
 * last token of a shorter run, one head at a time): decode and batched
 * prefill give the same bits. */
static void test_attn_row_independent(void **state) {
    (void)state;
    uint64_t rng = 5;
    for (int avx2 = 0; avx2 <= 1; avx2++) {
        ac_vec_force_avx2(avx2);
        struct attn_case c;
        case_init(&c, 64, 3, 5, 30, &rng);
        case_run(&c, false, c.got);
        for (int t = 0; t < c.n_tokens; t++)
            for (int g = 0; g < c.group; g++) {
                float alone[64];
                const struct ac_attn_rows rows = {.d = 64,
                                                  .group = 1,
                                                  .n_tokens = 1,
                                                  .n_pos0 = c.n_pos0 + t,
                                                  .q16 = c.q + ((size_t)t * c.group + g) * 64,
                                                  .q_stride = 64,
                                                  .out = alone,
                                                  .out_stride = 64};
                ac_vec_attn_f16(&rows, c.k_tiles, c.v, 1.0f / 8.0f, c.scores);
                assert_memory_equal(alone, c.got + ((size_t)t * c.group + g) * 64, sizeof alone);
            }
        case_free(&c);
    }
    ac_vec_force_avx2(false);
}

/* One position: the output is that V row, exactly (probability 1). */
static void test_attn_single_position(void **state) {
    (void)state;
    uint64_t rng = 3;
    struct attn_case c;
    case_init(&c, 64, 1, 1, 1, &rng);
    case_run(&c, false, c.got);
    for (int i = 0; i < 64; i++) assert_true(c.got[i] == ac_fp16_to_fp32(c.v[i]));
    case_free(&c);
}

int main(void) {
    ac_vec_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_tiles),
        cmocka_unit_test(test_attn_simd_matches_reference),
        cmocka_unit_test(test_attn_row_independent),
        cmocka_unit_test(test_attn_single_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
