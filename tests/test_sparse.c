/* test_sparse.c - the sparse (transposed, row-skipping) matmul kernels and
 * the float axpy kernel: every SIMD version against its reference on random
 * data, odd sizes, misaligned pointers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "model/sparse.h"
#include "model/vec.h"
#include "quant/quant.h"

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void test_vec_mad(void **state) {
    (void)state;
    ac_vec_init();
    uint64_t s = 1;
    static const int sizes[] = {1, 7, 15, 16, 17, 33, 64, 1023};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int n = sizes[k];
        float *x = malloc(sizeof(float) * (n + 1)), *y = malloc(sizeof(float) * (n + 1));
        float *yr = malloc(sizeof(float) * (n + 1));
        for (int i = 0; i <= n; i++) x[i] = frand(&s), y[i] = yr[i] = frand(&s);
        ac_vec_mad(n, y + 1, x + 1, 0.37f); /* misaligned by one float */
        ac_vec_mad_ref(n, yr + 1, x + 1, 0.37f);
        assert_true(y[0] == yr[0]);
        for (int i = 1; i <= n; i++) assert_true(fabsf(y[i] - yr[i]) <= 1e-6f * (1.0f + fabsf(yr[i])));
        free(x), free(y), free(yr);
    }
}

static void test_sparse_gemv(void **state) {
    (void)state;
    ac_quant_init();
    static const uint32_t types[] = {AC_TYPE_F16, AC_TYPE_Q8_0, AC_TYPE_Q4_0, AC_TYPE_Q4_1};
    static const int widths[] = {32, 96, 576};
    uint64_t s = 7;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        ac_sparse_gemv_fn fast = ac_sparse_gemv_avx512(types[ti]);
        if (!fast || !__builtin_cpu_supports("avx512bw")) {
            printf("  %s: no fused kernel on this CPU\n", ac_type_traits(types[ti])->name);
            continue;
        }
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const int n_out = widths[wi], n_in = 37;
            const size_t row = ac_row_size(types[ti], n_out);
            uint8_t *w = malloc(row * n_in + 1);
            float *f = malloc(sizeof(float) * n_out);
            for (int r = 0; r < n_in; r++) {
                for (int i = 0; i < n_out; i++) f[i] = frand(&s);
                ac_type_traits(types[ti])->from_float_ref(f, w + 1 + row * r, n_out);
            }
            float x[37];
            int32_t idx[37];
            int n_idx = 0;
            for (int r = 0; r < n_in; r++) {
                x[r] = frand(&s);
                if (r % 3 != 1) idx[n_idx++] = r;
            }
            /* the whole row, then a block-aligned slice */
            for (int part = 0; part < 2; part++) {
                const int64_t off = part ? 32 : 0;
                const int len = part ? (n_out > 64 ? n_out - 64 : 0) : n_out;
                if (len == 0) continue;
                float *a = calloc((size_t)len, sizeof(float)), *b = calloc((size_t)len, sizeof(float));
                float *scratch = malloc(sizeof(float) * (size_t)len);
                fast(types[ti], w + 1, row, off, idx, n_idx, x, a, len, scratch);
                ac_sparse_gemv_ref(types[ti], w + 1, row, off, idx, n_idx, x, b, len, scratch);
                for (int i = 0; i < len; i++)
                    if (fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(b[i])))
                        fail_msg("%s width %d off %lld: [%d] %g vs %g", ac_type_traits(types[ti])->name, n_out,
                                 (long long)off, i, (double)a[i], (double)b[i]);
                free(a), free(b), free(scratch);
            }
            free(w), free(f);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vec_mad),
        cmocka_unit_test(test_sparse_gemv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
