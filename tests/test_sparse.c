/* test_sparse.c - the sparse (transposed, row-skipping) matmul kernels and
 * the float axpy kernel: every SIMD version against its reference on random
 * data, odd sizes, misaligned pointers; the transposed weights of a model
 * and the sparse engine against the plain one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "common/common.h"
#include "model/model.h"
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

/* Every fused kernel against the reference: row widths of the model's
 * sites (q|k|v 960, gate|up 3072) and odd block counts (a Q4_0 chunk is 4
 * blocks, Q2_0's 8, the scales go 16 blocks at a time), kept-row counts
 * around the group size (8) and its remainder, a misaligned matrix. The
 * integer kernels must equal their reference bit for bit, the float ones
 * up to summation order; the integer reference must stay within its
 * coefficient rounding of the exact sum: each term's error is at most half
 * a step, a step at most max|x_r d_rb| / 127. */
static void test_sparse_gemv(void **state) {
    (void)state;
    ac_quant_init();
    static const uint32_t types[] = {AC_TYPE_F16, AC_TYPE_Q8_0, AC_TYPE_Q4_0, AC_TYPE_Q4_1, AC_TYPE_Q2_0};
    static const int widths[] = {32, 64, 96, 160, 288, 544, 576, 960, 3072, 17, 100};
    static const int counts[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 150};
    enum { N_IN = 160 };
    uint64_t s = 7;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        const bool is_int = type == AC_TYPE_Q8_0 || type == AC_TYPE_Q4_0 || type == AC_TYPE_Q2_0;
        const float q_max = type == AC_TYPE_Q8_0 ? 127.0f : type == AC_TYPE_Q4_0 ? 8.0f : 3.0f;
        ac_sparse_gemv_fn fast = ac_sparse_gemv_avx512(type);
        const bool has_fast = fast && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
        if (!has_fast) printf("  %s: no fused kernel on this CPU\n", ac_type_traits(type)->name);
        const struct ac_type_traits *t = ac_type_traits(type);
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const int n_out = widths[wi];
            if (n_out % t->blck_size) continue;
            const size_t row = ac_row_size(type, n_out);
            uint8_t *w = malloc(row * N_IN + 1), *tmp = malloc(row);
            float *f = malloc(sizeof(float) * n_out), *deq = malloc(sizeof(float) * n_out * N_IN);
            float scale_max[N_IN]; /* max |d_rb| of each row */
            for (int r = 0; r < N_IN; r++) {
                for (int i = 0; i < n_out; i++) f[i] = frand(&s);
                ac_sparse_pack_row(type, f, w + 1 + row * r, n_out, tmp);
                t->from_float_ref(f, tmp, n_out);
                t->to_float(tmp, deq + (size_t)r * n_out, n_out);
                scale_max[r] = 0.0f;
                for (int b = 0; is_int && b < n_out / 32; b++) {
                    uint16_t d;
                    memcpy(&d, tmp + (size_t)b * t->type_size, 2);
                    scale_max[r] = fmaxf(scale_max[r], fabsf(ac_fp16_to_fp32(d)));
                }
            }
            float x[N_IN];
            for (int r = 0; r < N_IN; r++) x[r] = frand(&s);
            for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
                /* counts[ci] distinct rows in increasing order, spread over the matrix */
                int32_t idx[N_IN];
                const int n_idx = counts[ci];
                for (int k = 0; k < n_idx; k++) idx[k] = (int32_t)((long)k * N_IN / (n_idx > 0 ? n_idx : 1));
                float *a = malloc(sizeof(float) * n_out), *b = malloc(sizeof(float) * n_out);
                float *scratch = malloc(sizeof(float) * ac_sparse_scratch_floats(n_out));
                for (int i = 0; i < n_out; i++) a[i] = b[i] = 0.25f * (float)(i % 5);
                ac_sparse_gemv_ref(type, w + 1, row, idx, n_idx, x, b, n_out, scratch);
                if (has_fast) {
                    fast(type, w + 1, row, idx, n_idx, x, a, n_out, scratch);
                    for (int i = 0; i < n_out; i++)
                        if (is_int ? a[i] != b[i] : fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(b[i])))
                            fail_msg("%s width %d rows %d: [%d] %g vs %g", t->name, n_out, n_idx, i, (double)a[i],
                                     (double)b[i]);
                }
                float term_max = 0.0f;
                for (int k = 0; k < n_idx; k++) term_max = fmaxf(term_max, fabsf(x[idx[k]]) * scale_max[idx[k]]);
                for (int i = 0; i < n_out; i++) {
                    double exact = 0.25 * (i % 5), mag = 1.0;
                    for (int k = 0; k < n_idx; k++) {
                        exact += (double)x[idx[k]] * deq[(size_t)idx[k] * n_out + i];
                        mag += fabs((double)x[idx[k]] * deq[(size_t)idx[k] * n_out + i]);
                    }
                    const double bound = (is_int ? n_idx * 0.5 / 127.0 * term_max * q_max : 0.0) + 1e-5 * mag;
                    if (fabs(b[i] - exact) > bound)
                        fail_msg("%s width %d rows %d: reference [%d] %g vs exact %g (bound %g)", t->name, n_out,
                                 n_idx, i, (double)b[i], exact, bound);
                }
                free(a), free(b), free(scratch);
            }
            free(w), free(tmp), free(f), free(deq);
        }
    }
}

/* Thresholding, SIMD against scalar: sizes around the vector width,
 * thresholds keeping none, some and all, a NaN (kept, as in the
 * reference), exact zeros. */
static void test_sparse_select(void **state) {
    (void)state;
    if (!__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vnni")) {
        printf("  no AVX-512 on this CPU\n");
        return;
    }
    const ac_sparse_select_fn fast = ac_sparse_select_avx512();
    static const int sizes[] = {1, 7, 15, 16, 17, 33, 576, 1023, 1536};
    static const float thrs[] = {0.0f, 0.3f, 0.7f, 2.0f};
    uint64_t s = 3;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ti = 0; ti < sizeof thrs / sizeof thrs[0]; ti++) {
            const int n = sizes[si];
            float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
            int32_t *ia = malloc(sizeof(int32_t) * (n + 16)), *ib = malloc(sizeof(int32_t) * (n + 16));
            for (int i = 0; i < n; i++) a[i] = b[i] = i % 11 == 3 ? 0.0f : frand(&s);
            if (n > 5) a[5] = b[5] = NAN;
            const int ka = fast(a, n, thrs[ti], ia), kb = ac_sparse_select_ref(b, n, thrs[ti], ib);
            assert_int_equal(ka, kb);
            assert_memory_equal(ia, ib, sizeof(int32_t) * (size_t)kb);
            assert_memory_equal(a, b, sizeof(float) * (size_t)n);
            free(a), free(b), free(ia), free(ib);
        }
}

/* The transposed weights of the tiny F32 models (stored exactly): each
 * site's row c holds column c of its matrices side by side, and decoding
 * with all-zero thresholds (every nonzero input kept, so every row read)
 * gives the plain engine's logits up to float summation order, q/k/v
 * biases included (qwen2). */
static void test_sparse_engine(void **state) {
    (void)state;
    static const char *const files[] = {"tests/fixtures/tiny_llama.gguf", "tests/fixtures/tiny_qwen2.gguf"};
    char err[AC_ERR_LEN];
    for (int fi = 0; fi < 2; fi++) {
        struct ac_model *m;
        assert_int_equal(ac_model_load(&m, files[fi], err), 0);
        assert_int_equal(ac_model_prepare_sparse(m, err), 0);
        const struct ac_model_config *cfg = &m->cfg;
        for (int l = 0; l < cfg->n_layers; l++) {
            const struct ac_layer *L = &m->layers[l];
            const struct ac_tensor *site[AC_SITE_COUNT][3] = {
                {&L->wq, &L->wk, &L->wv}, {&L->wo, NULL, NULL}, {&L->w_gate, &L->w_up, NULL}, {&L->w_down, NULL, NULL}};
            for (int st = 0; st < AC_SITE_COUNT; st++) {
                const struct ac_tensor *wt = &L->sparse_t[st];
                assert_int_equal(wt->type, AC_TYPE_F32);
                assert_int_equal(wt->rows, site[st][0]->cols);
                const float *tf = wt->data;
                int64_t seg = 0;
                for (int k = 0; k < 3 && site[st][k]; k++) {
                    const struct ac_tensor *w = site[st][k];
                    assert_int_equal(w->type, AC_TYPE_F32);
                    const float *wf = w->data;
                    for (int64_t r = 0; r < w->rows; r++)
                        for (int64_t c = 0; c < w->cols; c++)
                            assert_true(tf[c * wt->cols + seg + r] == wf[r * w->cols + c]);
                    seg += w->rows;
                }
                assert_int_equal(seg, wt->cols);
            }
        }
        const int32_t ids[6] = {5, 17, 3, 42, 8, 11};
        const int n_vocab = cfg->n_vocab;
        float *plain = malloc(sizeof(float) * 6 * n_vocab), *got = malloc(sizeof(float) * 6 * n_vocab);
        float *thr = calloc((size_t)cfg->n_layers * AC_SITE_COUNT, sizeof(float));
        struct ac_context *ctx;
        struct ac_context_params cp = {.n_ctx = 16, .n_threads = 2};
        assert_int_equal(ac_context_new(&ctx, m, &cp, err), 0);
        assert_int_equal(ac_decode(ctx, ids, 6, AC_LOGITS_ALL, plain, err), 0);
        const double dense_bytes = ac_context_weight_bytes(ctx);
        struct ac_run_config rc = {.sparse_threshold = thr};
        assert_int_equal(ac_context_set_run_config(ctx, &rc, err), 0);
        assert_int_equal(ac_decode(ctx, ids, 6, AC_LOGITS_ALL, got, err), 0);
        for (int i = 0; i < 6 * n_vocab; i++)
            if (fabsf(got[i] - plain[i]) > 1e-4f * (1.0f + fabsf(plain[i])))
                fail_msg("%s: logit %d: sparse %g vs dense %g", files[fi], i, (double)got[i], (double)plain[i]);
        /* the sparse rows of all inputs are the dense matrices' bytes */
        assert_true(fabs(ac_context_weight_bytes(ctx) - dense_bytes) < 1e-6 * dense_bytes);
        ac_context_free(ctx);
        free(plain), free(got), free(thr);
        ac_model_free(m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vec_mad),
        cmocka_unit_test(test_sparse_gemv),
        cmocka_unit_test(test_sparse_select),
        cmocka_unit_test(test_sparse_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
