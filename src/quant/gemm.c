/* gemm.c - gemm kernel selection and the scalar reference (vec_dot_ref
 * over every (row, token) pair). The SIMD kernels are in gemm_avx2.c and
 * gemm_avx512.c. */
#include "quant/gemm_internal.h"

#include <string.h>

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
