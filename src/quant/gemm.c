/* gemm.c - gemm kernel selection and the scalar reference (vec_dot_ref
 * over every (row, token) pair). The SIMD kernels are in gemm_avx2.c and
 * gemm_avx512.c. */
#include "quant/gemm_internal.h"

#include <string.h>

#include "common/common.h"

void ac_gemm_by_dot(ac_vec_dot_fn dot, int n, float *out, size_t out_stride, const void *w, size_t w_stride,
                    int n_rows, const void *x, size_t x_stride, int n_tokens, const float *bias, bool accumulate) {
    for (int t = 0; t < n_tokens; t++) {
        const uint8_t *xt = (const uint8_t *)x + (size_t)t * x_stride;
        float *o = out + (size_t)t * out_stride;
        for (int r = 0; r < n_rows; r++) {
            float s;
            dot(n, &s, (const uint8_t *)w + (size_t)r * w_stride, xt);
            if (bias) s += bias[r];
            o[r] = accumulate ? o[r] + s : s;
        }
    }
}

#define GEMM_REF(name, type)                                                                                  \
    static void gemm_ref_##name(int n, float *out, size_t out_stride, const void *w, size_t w_stride,          \
                                int n_rows, const void *x, size_t x_stride, int n_tokens, const float *bias,   \
                                bool accumulate) {                                                             \
        ac_gemm_by_dot(ac_type_traits(type)->vec_dot_ref, n, out, out_stride, w, w_stride, n_rows, x, x_stride, \
                       n_tokens, bias, accumulate);                                                            \
    }

GEMM_REF(f32, AC_TYPE_F32)
GEMM_REF(f16, AC_TYPE_F16)
GEMM_REF(q4_0, AC_TYPE_Q4_0)
GEMM_REF(q4_1, AC_TYPE_Q4_1)
GEMM_REF(q8_0, AC_TYPE_Q8_0)
GEMM_REF(q2_K, AC_TYPE_Q2_K)
GEMM_REF(q4_K, AC_TYPE_Q4_K)
GEMM_REF(q6_K, AC_TYPE_Q6_K)

static ac_gemm_fn gemm_ref(uint32_t type) {
    switch (type) {
    case AC_TYPE_F32: return gemm_ref_f32;
    case AC_TYPE_F16: return gemm_ref_f16;
    case AC_TYPE_Q4_0: return gemm_ref_q4_0;
    case AC_TYPE_Q4_1: return gemm_ref_q4_1;
    case AC_TYPE_Q8_0: return gemm_ref_q8_0;
    case AC_TYPE_Q2_K: return gemm_ref_q2_K;
    case AC_TYPE_Q4_K: return gemm_ref_q4_K;
    case AC_TYPE_Q6_K: return gemm_ref_q6_K;
    default: return NULL;
    }
}

ac_gemm_fn ac_gemm_select(uint32_t type, enum ac_simd_level level) {
    switch (level) {
    case AC_SIMD_SCALAR:
        return gemm_ref(type);
    case AC_SIMD_AVX2:
        return ac_gemm_avx2(type);
    case AC_SIMD_AVX512VNNI: {
        const ac_gemm_fn f = ac_gemm_avx512(type);
        return f ? f : ac_gemm_avx2(type);
    }
    }
    return NULL;
}

/* The level in use, as quant.c reports it (its only outward trace). */
ac_gemm_fn ac_quant_gemm(uint32_t type) {
    const char *level = ac_quant_simd_name();
    if (!strcmp(level, "avx512vnni")) return ac_gemm_select(type, AC_SIMD_AVX512VNNI);
    if (!strcmp(level, "avx2")) return ac_gemm_select(type, AC_SIMD_AVX2);
    return NULL;
}

/* ---- Q4_0 packed 16 rows at a time (layout in quant.h) ---- */

#define X16_QS_BYTES (AC_Q4_0X16_ROWS * QK4_0 / 2) /* quants of one block of a group */

size_t ac_q4_0x16_size(int64_t n_rows, int64_t n) {
    const size_t row = n > 0 ? ac_row_size(AC_TYPE_Q4_0, n) : 0;
    if (!row || n_rows < 1) return 0;
    const int64_t groups = (n_rows + AC_Q4_0X16_ROWS - 1) / AC_Q4_0X16_ROWS;
    return (size_t)groups * AC_Q4_0X16_ROWS * row;
}

int ac_q4_0x16_pack(void *dst, const void *w, size_t w_stride, int64_t n_rows, int64_t n, char *err) {
    const size_t bytes = ac_q4_0x16_size(n_rows, n);
    if (!bytes) return ac_errf(err, "q4_0x16: cannot pack %lld rows of %lld elements", (long long)n_rows, (long long)n);
    const int64_t nb = n / QK4_0;
    const size_t group = bytes / (size_t)((n_rows + AC_Q4_0X16_ROWS - 1) / AC_Q4_0X16_ROWS);
    uint8_t *g = dst;
    for (int64_t r0 = 0; r0 < n_rows; r0 += AC_Q4_0X16_ROWS, g += group) {
        uint8_t *scales = g + (size_t)nb * X16_QS_BYTES;
        for (int r = 0; r < AC_Q4_0X16_ROWS; r++) {
            const int64_t src_row = r0 + r < n_rows ? r0 + r : n_rows - 1;
            const block_q4_0 *row = (const block_q4_0 *)((const uint8_t *)w + (size_t)src_row * w_stride);
            for (int64_t b = 0; b < nb; b++) {
                for (int j = 0; j < 4; j++) memcpy(g + (size_t)b * X16_QS_BYTES + 64 * j + 4 * r, row[b].qs + 4 * j, 4);
                memcpy(scales + ((size_t)b * AC_Q4_0X16_ROWS + (size_t)r) * sizeof(ac_half), &row[b].d, sizeof(ac_half));
            }
        }
    }
    return 0;
}

/* Same sum, in the same order, as vec_dot_q4_0_q8_0_ref. */
static float dot_q4_0x16_ref(int nb, const uint8_t *group, int r, const block_q8_0 *y) {
    const uint8_t *scales = group + (size_t)nb * X16_QS_BYTES;
    float sumf = 0;
    for (int b = 0; b < nb; b++) {
        uint8_t qs[QK4_0 / 2];
        for (int j = 0; j < 4; j++) memcpy(qs + 4 * j, group + (size_t)b * X16_QS_BYTES + 64 * j + 4 * r, 4);
        ac_half d;
        memcpy(&d, scales + ((size_t)b * AC_Q4_0X16_ROWS + (size_t)r) * sizeof d, sizeof d);
        int sumi = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            sumi += ((qs[j] & 0x0F) - 8) * y[b].qs[j];
            sumi += ((qs[j] >> 4) - 8) * y[b].qs[j + QK4_0 / 2];
        }
        sumf += sumi * (ac_fp16_to_fp32(d) * ac_fp16_to_fp32(y[b].d));
    }
    return sumf;
}

void ac_gemm_q4_0x16_ref(int n, float *out, size_t out_stride, const void *w, size_t w_stride, int n_rows,
                         const void *x, size_t x_stride, int n_tokens, const float *bias, bool accumulate) {
    const int nb = n / QK4_0;
    for (int t = 0; t < n_tokens; t++) {
        const block_q8_0 *y = (const block_q8_0 *)((const uint8_t *)x + (size_t)t * x_stride);
        float *o = out + (size_t)t * out_stride;
        for (int r = 0; r < n_rows; r++) {
            const uint8_t *group = (const uint8_t *)w + (size_t)(r / AC_Q4_0X16_ROWS) * AC_Q4_0X16_ROWS * w_stride;
            float s = dot_q4_0x16_ref(nb, group, r % AC_Q4_0X16_ROWS, y);
            if (bias) s += bias[r];
            o[r] = accumulate ? o[r] + s : s;
        }
    }
}

ac_gemm_fn ac_quant_gemm_q4_0x16(void) {
    return strcmp(ac_quant_simd_name(), "avx512vnni") ? NULL : ac_gemm_q4_0x16_avx512;
}
