/* test_vec.c - the attention kernel: SIMD (AVX-512 and AVX2, where the CPU
 * has them) against the scalar reference at
 * head sizes, group sizes and context lengths around the vector widths, and
 * a head computed alone equal to the same head in its group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <math.h>

#include "model/vec.h"
#include "quant/quant.h"
#include "sample/sample.h"

/* The kernels differ in exp (a polynomial vs expf, ~1e-7 relative) and in
 * summation order; rounding the probabilities to F16 can then move one by
 * an F16 ulp where they straddle a rounding boundary. Measured: 7.3e-6. */
#define ATTN_TOL 1e-4f

static void fill_f16(uint16_t *x, size_t n, float amp, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) x[i] = ac_fp32_to_fp16(amp * (2.0f * ac_rng_uniform(rng) - 1.0f));
}

static void test_attn_simd_matches_reference(void **state) {
    (void)state;
    const int dims[] = {16, 64, 80, 128};
    const int groups[] = {1, 3, 4, 5, 8};
    const int positions[] = {1, 15, 16, 17, 100, 777};
    uint64_t rng = 11;
    float worst = 0.0f;
    for (size_t a = 0; a < sizeof dims / sizeof *dims; a++)
        for (size_t b = 0; b < sizeof groups / sizeof *groups; b++)
            for (size_t c = 0; c < sizeof positions / sizeof *positions; c++) {
                const int d = dims[a], n_q = groups[b], n_pos = positions[c];
                const size_t stride = (size_t)d + 16; /* rows need not be contiguous */
                uint16_t *q = malloc(sizeof *q * (size_t)n_q * d);
                uint16_t *k = malloc(sizeof *k * stride * n_pos), *v = malloc(sizeof *v * stride * n_pos);
                float *scores = malloc(sizeof(float) * (size_t)n_q * n_pos);
                float *want = malloc(sizeof(float) * (size_t)n_q * d), *got = malloc(sizeof(float) * (size_t)n_q * d);
                fill_f16(q, (size_t)n_q * d, 1.0f, &rng);
                fill_f16(k, stride * n_pos, 2.0f, &rng); /* scores spread over ~10 nats */
                fill_f16(v, stride * n_pos, 1.0f, &rng);
                const float scale = 1.0f / sqrtf((float)d);
                ac_vec_attn_f16_ref(d, n_q, n_pos, q, k, v, stride, scale, scores, want);
                for (int avx2 = 0; avx2 <= 1; avx2++) {
                ac_vec_force_avx2(avx2);
                ac_vec_attn_f16(d, n_q, n_pos, q, k, v, stride, scale, scores, got);
                for (int i = 0; i < n_q * d; i++) {
                    worst = fmaxf(worst, fabsf(got[i] - want[i]));
                    if (!(fabsf(got[i] - want[i]) <= ATTN_TOL))
                        fail_msg("d=%d n_q=%d n_pos=%d: out[%d] = %g, reference %g", d, n_q, n_pos, i,
                                 (double)got[i], (double)want[i]);
                }
                /* each head alone gives its bits in the group */
                for (int h = 0; h < n_q; h++) {
                    float alone[128];
                    ac_vec_attn_f16(d, 1, n_pos, q + (size_t)h * d, k, v, stride, scale, scores, alone);
                    assert_memory_equal(alone, got + (size_t)h * d, sizeof(float) * (size_t)d);
                }
                }
                ac_vec_force_avx2(false);
                free(q);
                free(k);
                free(v);
                free(scores);
                free(want);
                free(got);
            }
    printf("  max |SIMD - reference| %.2e\n", (double)worst);
}

/* One position: the output is that V row, exactly (probability 1). */
static void test_attn_single_position(void **state) {
    (void)state;
    uint64_t rng = 3;
    uint16_t q[64], k[64], v[64];
    float scores[1], out[64];
    fill_f16(q, 64, 1.0f, &rng);
    fill_f16(k, 64, 1.0f, &rng);
    fill_f16(v, 64, 1.0f, &rng);
    ac_vec_attn_f16(64, 1, 1, q, k, v, 64, 0.125f, scores, out);
    for (int i = 0; i < 64; i++) assert_true(out[i] == ac_fp16_to_fp32(v[i]));
}

int main(void) {
    ac_vec_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attn_simd_matches_reference),
        cmocka_unit_test(test_attn_single_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
