/* quant.c - fp16 conversion, reference quantizers (bit-equal to ggml's
 * quantize_row_*_ref), dequantizers, scalar dot products, the traits table
 * and run-time kernel selection. Compiled for baseline x86-64: no
 * intrinsics here; the SIMD kernels live in quant_avx2.c / quant_avx512.c.
 *
 * The reference quantizers reproduce ggml's float arithmetic operation by
 * operation (same expressions, same evaluation order), which is what makes
 * their output bit-identical; do not "simplify" them. */
#include "quant/quant_internal.h"

#include <cpuid.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Below this, ggml treats a group as all zeros. */
#define GROUP_MAX_EPS 1e-15f

/* ======================================================================
 * fp16 <-> fp32
 * ====================================================================== */

static inline float f32_from_bits(uint32_t w) {
    float f;
    memcpy(&f, &w, sizeof f);
    return f;
}

static inline uint32_t f32_to_bits(float f) {
    uint32_t w;
    memcpy(&w, &f, sizeof w);
    return w;
}

/* Exact; NaNs come back quiet (as hardware conversion does). */
float ac_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf, nan */
        return f32_from_bits(sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0));
    if (exp == 0) { /* zero, subnormal: man * 2^-24, exact in fp32 */
        const float v = (float)man * 0x1p-24f;
        return f32_from_bits(sign | f32_to_bits(v));
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

/* Round to nearest, ties to even; overflow to inf; every NaN becomes the
 * quiet NaN 0x7e00 with the input's sign (what ggml's portable path does). */
uint16_t ac_fp32_to_fp16(float f) {
    const uint32_t w = f32_to_bits(f);
    const uint16_t sign = (uint16_t)((w >> 16) & 0x8000u);
    uint32_t a = w & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00u;
    if (a >= 0x477ff000u) /* >= 65520: rounds to inf */
        return sign | 0x7c00u;
    if (a < 0x38800000u) {
        /* Below the smallest normal half (2^-14): adding 0.5 (ulp 2^-24)
         * rounds |f| to a multiple of 2^-24, ties to even, in the FPU. */
        const float v = f32_from_bits(a) + 0.5f;
        return sign | (uint16_t)(f32_to_bits(v) - 0x3f000000u);
    }
    a += 0xfffu + ((a >> 13) & 1u); /* ties to even; a carry bumps the exponent */
    return sign | (uint16_t)((a - (112u << 23)) >> 13);
}

#define FP16_TO_FP32(h) ac_fp16_to_fp32(h)
#define FP32_TO_FP16(f) ac_fp32_to_fp16(f)

/* ggml's round-half-even float -> int for |fval| < 2^22 (the magic number
 * is 1.5 * 2^23: adding it leaves the rounded integer in the mantissa). */
static inline int nearest_int(float fval) {
    const float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* ======================================================================
 * F32, F16
 * ====================================================================== */

static void copy_row_f32(const void *restrict x, float *restrict y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

static void from_float_f32(const float *restrict x, void *restrict y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

static void dequantize_row_f16(const void *restrict vx, float *restrict y, int64_t n) {
    const uint8_t *x = vx;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        y[i] = ac_fp16_to_fp32(h);
    }
}

static void quantize_row_f16(const float *restrict x, void *restrict vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = ac_fp32_to_fp16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

/* Accumulates in double: this is the yardstick the SIMD kernels are held to. */
static void vec_dot_f32_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const uint8_t *x = vx, *y = vy;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float a, b;
        memcpy(&a, x + 4 * i, 4);
        memcpy(&b, y + 4 * i, 4);
        sum += (double)a * b;
    }
    *s = (float)sum;
}

static void vec_dot_f16_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const uint8_t *x = vx, *y = vy;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        uint16_t a, b;
        memcpy(&a, x + 2 * i, 2);
        memcpy(&b, y + 2 * i, 2);
        sum += (double)ac_fp16_to_fp32(a) * ac_fp16_to_fp32(b);
    }
    *s = (float)sum;
}

/* ======================================================================
 * Q4_0, Q4_1, Q8_0, Q8_1: one scale per block of 32
 * ====================================================================== */

static void quantize_row_q4_0_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_0 *restrict y = vy;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f; /* the element of largest magnitude, sign kept */
        float max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            const float v = x[i * QK4_0 + j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = FP32_TO_FP16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[i * QK4_0 + j] * id;
            const float x1 = x[i * QK4_0 + QK4_0 / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)MIN(15, (int8_t)(x0 + 8.5f));
            const uint8_t xi1 = (uint8_t)MIN(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void quantize_row_q4_1_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_1 *restrict y = vy;
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        float min = FLT_MAX;
        float max = -FLT_MAX;
        for (int j = 0; j < QK4_1; j++) {
            const float v = x[i * QK4_1 + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = FP32_TO_FP16(d);
        y[i].m = FP32_TO_FP16(min);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const float x0 = (x[i * QK4_1 + j] - min) * id;
            const float x1 = (x[i * QK4_1 + QK4_1 / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)MIN(15, (int8_t)(x0 + 0.5f));
            const uint8_t xi1 = (uint8_t)MIN(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

void ac_quantize_row_q8_0_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *restrict y = vy;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = MAX(amax, fabsf(x[i * QK8_0 + j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = FP32_TO_FP16(d);
        for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = (int8_t)roundf(x[i * QK8_0 + j] * id);
    }
}

void ac_quantize_row_q8_1_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *restrict y = vy;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) amax = MAX(amax, fabsf(x[i * QK8_1 + j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = FP32_TO_FP16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; ++j) {
            y[i].qs[j] = (int8_t)roundf(x[i * QK8_1 + j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = FP32_TO_FP16(sum * d);
    }
}

static void dequantize_row_q4_0(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_0 *restrict x = vx;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            y[i * QK4_0 + j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * QK4_0 + j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequantize_row_q4_1(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_1 *restrict x = vx;
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        const float m = FP16_TO_FP32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            y[i * QK4_1 + j] = (x[i].qs[j] & 0x0F) * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static void dequantize_row_q8_0(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_0 *restrict x = vx;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        for (int j = 0; j < QK8_0; ++j) y[i * QK8_0 + j] = x[i].qs[j] * d;
    }
}

static void dequantize_row_q8_1(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_1 *restrict x = vx;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        for (int j = 0; j < QK8_1; ++j) y[i * QK8_1 + j] = x[i].qs[j] * d;
    }
}

static void vec_dot_q4_0_q8_0_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_0 / 2; ++j) {
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        }
        sumf += sumi * (FP16_TO_FP32(x[i].d) * FP16_TO_FP32(y[i].d));
    }
    *s = sumf;
}

static void vec_dot_q4_1_q8_1_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_1 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_1 / 2; ++j) {
            sumi += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
        }
        /* x = d*q + m, so dot = dx*dy*sum(q*qy) + m * (dy*sum(qy)) = ... + m*s */
        sumf += sumi * (FP16_TO_FP32(x[i].d) * FP16_TO_FP32(y[i].d)) + FP16_TO_FP32(x[i].m) * FP16_TO_FP32(y[i].s);
    }
    *s = sumf;
}

static void vec_dot_q8_0_q8_0_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; ++j) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += sumi * (FP16_TO_FP32(x[i].d) * FP16_TO_FP32(y[i].d));
    }
    *s = sumf;
}

/* ======================================================================
 * Q5_0, Q5_1: Q4_0 / Q4_1 with a fifth bit per element (qh)
 * ====================================================================== */

static void quantize_row_q5_0_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_0 *restrict y = vy;
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f; /* the element of largest magnitude, sign kept */
        float max = 0.0f;
        for (int j = 0; j < QK5_0; j++) {
            const float v = x[i * QK5_0 + j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = FP32_TO_FP16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const float x0 = x[i * QK5_0 + j] * id;
            const float x1 = x[i * QK5_0 + QK5_0 / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)MIN(31, (int8_t)(x0 + 16.5f));
            const uint8_t xi1 = (uint8_t)MIN(31, (int8_t)(x1 + 16.5f));
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << j;
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        memcpy(y[i].qh, &qh, sizeof qh);
    }
}

static void quantize_row_q5_1_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_1 *restrict y = vy;
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; i++) {
        float min = FLT_MAX;
        float max = -FLT_MAX;
        for (int j = 0; j < QK5_1; j++) {
            const float v = x[i * QK5_1 + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = FP32_TO_FP16(d);
        y[i].m = FP32_TO_FP16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const float x0 = (x[i * QK5_1 + j] - min) * id;
            const float x1 = (x[i * QK5_1 + QK5_1 / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)(x0 + 0.5f);
            const uint8_t xi1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << j;
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_1 / 2);
        }
        memcpy(y[i].qh, &qh, sizeof qh);
    }
}

/* 5-bit code (0..31) of element j of a Q5_0 / Q5_1 block. */
static inline int q5_code(const uint8_t *qs, const uint8_t *qh, int j) {
    uint32_t h;
    memcpy(&h, qh, sizeof h);
    const int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
    return lo | (int)(((h >> j) & 1u) << 4);
}

static void dequantize_row_q5_0(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_0 *restrict x = vx;
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        for (int j = 0; j < QK5_0; ++j) y[i * QK5_0 + j] = (q5_code(x[i].qs, x[i].qh, j) - 16) * d;
    }
}

static void dequantize_row_q5_1(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_1 *restrict x = vx;
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        const float m = FP16_TO_FP32(x[i].m);
        for (int j = 0; j < QK5_1; ++j) y[i * QK5_1 + j] = q5_code(x[i].qs, x[i].qh, j) * d + m;
    }
}

static void vec_dot_q5_0_q8_0_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        int sumi = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            sumi += (((x[i].qs[j] & 0x0F) | (int)(((qh >> j) & 1u) << 4)) - 16) * y[i].qs[j];
            sumi += (((x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4)) - 16) * y[i].qs[j + 16];
        }
        sumf += sumi * (FP16_TO_FP32(x[i].d) * FP16_TO_FP32(y[i].d));
    }
    *s = sumf;
}

static void vec_dot_q5_1_q8_1_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_1 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        int sumi = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            sumi += ((x[i].qs[j] & 0x0F) | (int)(((qh >> j) & 1u) << 4)) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4)) * y[i].qs[j + 16];
        }
        /* x = d*q + m: dot = dx*dy*sum(q*qy) + m*s, as Q4_1 */
        sumf += sumi * (FP16_TO_FP32(x[i].d) * FP16_TO_FP32(y[i].d)) + FP16_TO_FP32(x[i].m) * FP16_TO_FP32(y[i].s);
    }
    *s = sumf;
}

/* ======================================================================
 * K-quant helpers (ggml's make_*_quants, reference path: no imatrix)
 * ====================================================================== */

/* Symmetric quants in [-nmax, nmax-1] (stored + nmax) for one group, with
 * the rmse_type 1 scale search (weights x^2) used by Q6_K. Returns the scale. */
static float make_qx_quants(int n, int nmax, const float *restrict x, int8_t *restrict L) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = MAX(-nmax, MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = MAX(-nmax, MIN(nmax - 1, l));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + MAX(-nmax, MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Asymmetric quants in [0, nmax] with a min, for one group: tries nstep+1
 * scales around nmax/(max-min) and keeps the one with the least weighted
 * error (absolute if use_mad, squared otherwise). Returns the scale;
 * *the_min receives -min (>= 0). */
static float make_qkx2_quants(int n, int nmax, const float *restrict x, const float *restrict weights,
                              uint8_t *restrict L, float *restrict the_min, uint8_t *restrict Laux, float rmin,
                              float rdelta, int nstep, bool use_mad) {
    float min = x[0];
    float max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAX(0, MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = MAX(0, MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* The 6-bit scale and min of group j (0..7) from Q4_K's 12 packed bytes:
 * groups 0-3 keep theirs in the low 6 bits of bytes 0-3 / 4-7; groups 4-7
 * keep the low 4 bits in bytes 8-11 and the top 2 in bits 6-7 of 0-7. */
static inline void q4_K_scale_min(int j, const uint8_t *restrict q, uint8_t *restrict d, uint8_t *restrict m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* ======================================================================
 * Q2_K
 * ====================================================================== */

static void quantize_row_q2_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q2_K *restrict y = vy;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];
    const float q4scale = 15.f;

    for (int64_t i = 0; i < nb; i++) {
        float max_scale = 0; /* the min is subtracted, so scales are >= 0 */
        float max_min = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = FP32_TO_FP16(max_scale / q4scale);
        } else {
            for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = 0;
            y[i].d = FP32_TO_FP16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; ++j) {
                const int l = nearest_int(iscale * mins[j]);
                y[i].scales[j] |= (uint8_t)(l << 4);
            }
            y[i].dmin = FP32_TO_FP16(max_min / q4scale);
        } else {
            y[i].dmin = FP32_TO_FP16(0.f);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = FP16_TO_FP32(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = FP16_TO_FP32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int((x[16 * j + ii] + dm) / d);
                l = MAX(0, MIN(3, l));
                L[16 * j + ii] = (uint8_t)l;
            }
        }
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                y[i].qs[j / 4 + l] =
                    (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
        x += QK_K;
    }
}

static void dequantize_row_q2_K(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q2_K *restrict x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        const float dmin = FP16_TO_FP32(x[i].dmin);
        for (int e = 0; e < QK_K; e++) {
            const int g = e / 16;
            const int q = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            y[i * QK_K + e] = d * (x[i].scales[g] & 0xF) * q - dmin * (x[i].scales[g] >> 4);
        }
    }
}

static void vec_dot_q2_K_q8_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        int summs = 0;
        for (int g = 0; g < QK_K / 16; g++) summs += (x[i].scales[g] >> 4) * y[i].bsums[g];
        int isum = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int sumi = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                const int q = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
                sumi += q * y[i].qs[e];
            }
            isum += (x[i].scales[g] & 0xF) * sumi;
        }
        const float dall = y[i].d * FP16_TO_FP32(x[i].d);
        const float dmin = y[i].d * FP16_TO_FP32(x[i].dmin);
        sumf += dall * isum - dmin * summs;
    }
    *s = sumf;
}

/* ======================================================================
 * Q3_K
 * ====================================================================== */

/* Symmetric quants in [-nmax, nmax-1] for one group (Q3_K), stored + nmax.
 * With do_rmse, up to 5 passes move single quants wherever that raises
 * the weighted (x^2) fit sumlx^2 / suml2. Returns the scale. */
static float make_q3_quants(int n, int nmax, const float *restrict x, int8_t *restrict L, bool do_rmse) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float iscale = -nmax / max;
    if (do_rmse) {
        float sumlx = 0;
        float suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = MAX(-nmax, MIN(nmax - 1, l));
            L[i] = (int8_t)l;
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; ++itry) {
            int n_changed = 0;
            for (int i = 0; i < n; ++i) {
                const float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx > 0) {
                    float sl2 = suml2 - w * L[i] * L[i];
                    int new_l = nearest_int(x[i] * sl2 / slx);
                    new_l = MAX(-nmax, MIN(nmax - 1, new_l));
                    if (new_l != L[i]) {
                        slx += w * x[i] * new_l;
                        sl2 += w * new_l * new_l;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = (int8_t)new_l;
                            sumlx = slx;
                            suml2 = sl2;
                            ++n_changed;
                        }
                    }
                }
            }
            if (!n_changed) break;
        }
        for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = MAX(-nmax, MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
    }
    return 1 / iscale;
}

/* The signed scale (sc - 32, in [-32, 31]) of group g (0..15) of a Q3_K block. */
static inline int q3_K_scale(const uint8_t *restrict scales, int g) {
    const int lo = g < 8 ? (scales[g] & 0xF) : (scales[g - 8] >> 4);
    const int hi = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* Element e (0..255) of a Q3_K block as a signed value q - 4, in [-4, 3]. */
static inline int q3_K_value(const block_q3_K *b, int e) {
    const int low2 = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const int high = (b->hmask[e % 32] >> (e / 32)) & 1;
    return (low2 | (high << 2)) - 4;
}

static void quantize_row_q3_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q3_K *restrict y = vy;
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++) {
        float max_scale = 0;
        float amax = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
            const float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(MAX(-32, MIN(31, l)) + 32);
                if (j < 8)
                    y[i].scales[j] = (uint8_t)(l & 0xF);
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l = (int8_t)(l >> 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = FP32_TO_FP16(1 / iscale);
        } else {
            y[i].d = FP32_TO_FP16(0.f);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = FP16_TO_FP32(y[i].d) * q3_K_scale(y[i].scales, j);
            if (!d) continue; /* keeps make_q3_quants' codes, as ggml does */
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = MAX(-4, MIN(3, l));
                L[16 * j + ii] = (int8_t)(l + 4);
            }
        }
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int j = 0; j < QK_K; ++j) {
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                L[j] = (int8_t)(L[j] - 4);
            }
        }
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                y[i].qs[j / 4 + l] =
                    (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
        x += QK_K;
    }
}

static void dequantize_row_q3_K(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q3_K *restrict x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = FP16_TO_FP32(x[i].d);
        for (int g = 0; g < QK_K / 16; g++) {
            const float dl = d_all * q3_K_scale(x[i].scales, g);
            for (int e = 16 * g; e < 16 * g + 16; e++) y[i * QK_K + e] = dl * q3_K_value(&x[i], e);
        }
    }
}

static void vec_dot_q3_K_q8_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q3_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        /* element 128h + 32k + l: low bits (qs[32h + l] >> 2k) & 3, top bit
         * (hmask[l] >> (4h + k)) & 1; groups of 16 run along l */
        int isum = 0;
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < 4; k++) {
                const int8_t *q8 = y[i].qs + 128 * h + 32 * k;
                for (int half = 0; half < 2; half++) {
                    int sumi = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        const int low2 = (x[i].qs[32 * h + l] >> (2 * k)) & 3;
                        const int high = (x[i].hmask[l] >> (4 * h + k)) & 1;
                        sumi += ((low2 | (high << 2)) - 4) * q8[l];
                    }
                    isum += q3_K_scale(x[i].scales, 8 * h + 2 * k + half) * sumi;
                }
            }
        }
        sumf += FP16_TO_FP32(x[i].d) * y[i].d * isum;
    }
    *s = sumf;
}

/* ======================================================================
 * Q4_K
 * ====================================================================== */

/* What Q4_K and Q5_K share, as ggml's reference quantizers do it: each
 * group of 32 gets a scale and a min from make_qkx2_quants (codes 0..nmax,
 * with ggml's rmin and step count for the type), the 8 scales and 8 mins
 * are quantized to 6 bits against the super-block's d and dmin and packed
 * into scales[], and every element gets its final code in L. */
static void quantize_superblock_k(const float *restrict x, int nmax, float rmin, int nstep,
                                  uint8_t packed[K_SCALE_SIZE], ac_half *d_out, ac_half *dmin_out, uint8_t L[QK_K]) {
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep,
                                     false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = MIN(63, ls);
        lm = MIN(63, lm);
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = FP32_TO_FP16(max_scale / 63.f);
    *dmin_out = FP32_TO_FP16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        q4_K_scale_min(j, packed, &sc, &m);
        const float d = FP16_TO_FP32(*d_out) * sc;
        if (!d) continue;
        const float dm = FP16_TO_FP32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            l = MAX(0, MIN(nmax, l));
            L[32 * j + ii] = (uint8_t)l;
        }
    }
}

static void quantize_row_q4_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_K *restrict y = vy;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++) {
        ac_half d, dmin; /* the block is packed: no pointers to its members */
        quantize_superblock_k(x, 15, -1.f, 20, y[i].scales, &d, &dmin, L);
        y[i].d = d;
        y[i].dmin = dmin;
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
        x += QK_K;
    }
}

static void dequantize_row_q4_K(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_K *restrict x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        const float min = FP16_TO_FP32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int j = 0; j < QK_K / 64; ++j) {
            uint8_t sc, m;
            q4_K_scale_min(2 * j, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            q4_K_scale_min(2 * j + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
        }
    }
}

static void vec_dot_q4_K_q8_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        int isum = 0, summs = 0;
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            q4_K_scale_min(j, x[i].scales, &sc, &m);
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int sumi = 0;
            for (int l = 0; l < 32; l++) sumi += ((q[l] >> shift) & 0xF) * y[i].qs[32 * j + l];
            isum += sc * sumi;
            summs += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        const float d = y[i].d * FP16_TO_FP32(x[i].d);
        const float dmin = y[i].d * FP16_TO_FP32(x[i].dmin);
        sumf += d * isum - dmin * summs;
    }
    *s = sumf;
}

/* ======================================================================
 * Q5_K
 * ====================================================================== */

static void quantize_row_q5_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_K *restrict y = vy;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++) {
        ac_half d, dmin; /* the block is packed: no pointers to its members */
        quantize_superblock_k(x, 31, -0.5f, 15, y[i].scales, &d, &dmin, L);
        y[i].d = d;
        y[i].dmin = dmin;
        memset(y[i].qh, 0, sizeof y[i].qh);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) {
                const int l1 = L[j + l], l2 = L[j + l + 32];
                y[i].qh[l] |= (uint8_t)(((l1 >> 4) << (j / 32)) | ((l2 >> 4) << (j / 32 + 1)));
                q[l] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
            }
            q += 32;
        }
        x += QK_K;
    }
}

/* Element e (0..255) of a Q5_K block as its 5-bit code. */
static inline int q5_K_code(const block_q5_K *b, int e) {
    const uint8_t lo = b->qs[32 * (e / 64) + e % 32];
    const int low4 = (e % 64) < 32 ? (lo & 0xF) : (lo >> 4);
    return low4 | (((b->qh[e % 32] >> (e / 32)) & 1) << 4);
}

static void dequantize_row_q5_K(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_K *restrict x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        const float min = FP16_TO_FP32(x[i].dmin);
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            q4_K_scale_min(j, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            for (int e = 32 * j; e < 32 * j + 32; e++) y[i * QK_K + e] = d1 * q5_K_code(&x[i], e) - m1;
        }
    }
}

static void vec_dot_q5_K_q8_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        int isum = 0, summs = 0;
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            q4_K_scale_min(j, x[i].scales, &sc, &m);
            /* element 32j + l: nibble j % 2 of qs[32(j / 2) + l], top bit
             * (qh[l] >> j) & 1 */
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int sumi = 0;
            for (int l = 0; l < 32; l++)
                sumi += (((q[l] >> shift) & 0xF) | (((x[i].qh[l] >> j) & 1) << 4)) * y[i].qs[32 * j + l];
            isum += sc * sumi;
            summs += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        const float d = y[i].d * FP16_TO_FP32(x[i].d);
        const float dmin = y[i].d * FP16_TO_FP32(x[i].dmin);
        sumf += d * isum - dmin * summs;
    }
    *s = sumf;
}

/* ======================================================================
 * Q6_K
 * ====================================================================== */

static void quantize_row_q6_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q6_K *restrict y = vy;
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++) {
        float max_scale = 0;
        float max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(block_q6_K));
            y[i].d = FP32_TO_FP16(0.f);
            x += QK_K;
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = FP32_TO_FP16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib) y[i].scales[ib] = (int8_t)MIN(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = FP16_TO_FP32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = MAX(-32, MIN(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *restrict ql = y[i].ql;
        uint8_t *restrict qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
        x += QK_K;
    }
}

/* Element e (0..255) of a Q6_K block as a signed 6-bit value q - 32. */
static inline int q6_K_value(const block_q6_K *b, int e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b->ql[64 * h + 32 * (k & 1) + l];
    const int low4 = k < 2 ? (lo & 0xF) : (lo >> 4);
    const int high2 = (b->qh[32 * h + l] >> (2 * k)) & 3;
    return (low4 | (high2 << 4)) - 32;
}

static void dequantize_row_q6_K(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q6_K *restrict x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        for (int e = 0; e < QK_K; e++) y[i * QK_K + e] = d * x[i].scales[e / 16] * q6_K_value(&x[i], e);
    }
}

static void vec_dot_q6_K_q8_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q6_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        int isum = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int sumi = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) sumi += q6_K_value(&x[i], e) * y[i].qs[e];
            isum += x[i].scales[g] * sumi;
        }
        sumf += FP16_TO_FP32(x[i].d) * y[i].d * isum;
    }
    *s = sumf;
}

/* ======================================================================
 * Q8_K
 * ====================================================================== */

/* Unlike ggml, an all-zero block also gets zero bsums (ggml leaves them
 * unwritten), so the output is fully deterministic. */
void ac_quantize_row_q8_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *restrict y = vy;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        float max = 0;
        float amax = 0;
        for (int j = 0; j < QK_K; ++j) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            x += QK_K;
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) {
            const int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)MIN(127, v);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
        x += QK_K;
    }
}

static void dequantize_row_q8_K(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_K *restrict x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < QK_K; ++j) y[i * QK_K + j] = x[i].d * x[i].qs[j];
}

/* ======================================================================
 * Q2_0 (ours): 2-bit codes, fp16 scale and offset per block of 32
 * ====================================================================== */

/* Scales tried per block: (3 + Q2_0_RMIN + Q2_0_RDELTA * is) / (max - min)
 * for is = 0..Q2_0_NSTEP, i.e. 2.6 to 3.4 steps over the block's range,
 * each with its least-squares scale and offset. */
#define Q2_0_NSTEP 4
#define Q2_0_RMIN (-0.4f)
#define Q2_0_RDELTA 0.2f
#define Q2_0_ROUNDS 4

/* Sums over a block for codes L: sum L, sum L^2 (exact integers), sum L*x. */
struct q2_0_sums {
    int sl, sl2;
    float slx;
};

/* Least-squares d, m for the codes behind s (sx = sum x): minimises
 * sum (d * L[i] + m - x[i])^2. False unless d > 0. */
static bool q2_0_fit(const struct q2_0_sums *s, float sx, float *d, float *m) {
    const float D = (float)(QK2_0 * s->sl2 - s->sl * s->sl);
    if (D <= 0) return false;
    *d = (QK2_0 * s->slx - s->sl * sx) / D;
    *m = (s->sl2 * sx - s->sl * s->slx) / D;
    return *d > 0;
}

/* Codes for a block stored with fp16 scale dh and offset mh: nearest level,
 * clamped to [0, 3]. Returns the squared error of the block as stored. */
static float q2_0_assign(const float *restrict x, ac_half dh, ac_half mh, uint8_t *restrict L,
                         struct q2_0_sums *s) {
    const float d = FP16_TO_FP32(dh), m = FP16_TO_FP32(mh);
    const float id = d > 0 ? 1.0f / d : 0.0f;
    float err = 0;
    *s = (struct q2_0_sums){0, 0, 0};
    for (int i = 0; i < QK2_0; i++) {
        const int l = nearest_int(MAX(0.0f, MIN(3.0f, (x[i] - m) * id)));
        L[i] = (uint8_t)l;
        s->sl += l;
        s->sl2 += l * l;
        s->slx += l * x[i];
        const float diff = l * d + m - x[i];
        err += diff * diff;
    }
    return err;
}

/* Deterministic reference quantizer, no ggml counterpart. Per block: codes
 * from Q2_0_NSTEP + 1 scales around the min-max one, each scored by the
 * residual of its least-squares (d, m); from the best fit, Q2_0_ROUNDS
 * rounds of (round to fp16, reassign codes, refit), keeping whichever
 * stored (d, m) gives the least squared error, the min-max one included.
 * On N(0,1) data: relative RMSE 0.305 (Q2_K: 0.297 at 2.625 bits). */
static void quantize_row_q2_0_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q2_0 *restrict y = vy;
    const int64_t nb = n / QK2_0;
    uint8_t L[QK2_0], Lbest[QK2_0];
    for (int64_t i = 0; i < nb; i++, x += QK2_0) {
        float min = x[0], max = x[0], sx = 0, sx2 = 0;
        for (int j = 0; j < QK2_0; j++) {
            min = MIN(min, x[j]);
            max = MAX(max, x[j]);
            sx += x[j];
            sx2 += x[j] * x[j];
        }
        ac_half dbest = FP32_TO_FP16((max - min) / 3), mbest = FP32_TO_FP16(min);
        struct q2_0_sums s;
        float best = q2_0_assign(x, dbest, mbest, Lbest, &s);
        float fit_best = INFINITY, dfit = 0, mfit = 0;
        for (int is = 0; max > min && is <= Q2_0_NSTEP; is++) {
            const float iscale = (3 + Q2_0_RMIN + Q2_0_RDELTA * is) / (max - min);
            s = (struct q2_0_sums){0, 0, 0};
            for (int j = 0; j < QK2_0; j++) {
                const int l = nearest_int(MIN(3.0f, iscale * (x[j] - min)));
                s.sl += l;
                s.sl2 += l * l;
                s.slx += l * x[j];
            }
            float d, m;
            if (!q2_0_fit(&s, sx, &d, &m)) continue;
            const float resid = sx2 - d * s.slx - m * sx; /* least-squares residual */
            if (resid < fit_best) {
                fit_best = resid;
                dfit = d;
                mfit = m;
            }
        }
        for (int round = 0; round < Q2_0_ROUNDS && fit_best < INFINITY; round++) {
            const ac_half dh = FP32_TO_FP16(dfit), mh = FP32_TO_FP16(mfit);
            const float err = q2_0_assign(x, dh, mh, L, &s);
            if (err < best) {
                best = err;
                dbest = dh;
                mbest = mh;
                memcpy(Lbest, L, sizeof L);
            }
            if (!q2_0_fit(&s, sx, &dfit, &mfit)) break;
        }
        y[i].d = dbest;
        y[i].m = mbest;
        for (int l = 0; l < QK2_0 / 4; l++)
            y[i].qs[l] = (uint8_t)(Lbest[l] | (Lbest[l + 8] << 2) | (Lbest[l + 16] << 4) | (Lbest[l + 24] << 6));
    }
}

static void dequantize_row_q2_0(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q2_0 *restrict x = vx;
    const int64_t nb = n / QK2_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16_TO_FP32(x[i].d);
        const float m = FP16_TO_FP32(x[i].m);
        for (int j = 0; j < QK2_0; ++j) y[i * QK2_0 + j] = ((x[i].qs[j % 8] >> (2 * (j / 8))) & 3) * d + m;
    }
}

static void vec_dot_q2_0_q8_1_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_0 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    float sumf = 0;
    for (int i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < QK2_0; ++j) sumi += ((x[i].qs[j % 8] >> (2 * (j / 8))) & 3) * y[i].qs[j];
        /* x = d*q + m: dot = dx*dy*sum(q*qy) + m * (dy*sum(qy)) = ... + m*s */
        sumf += sumi * (FP16_TO_FP32(x[i].d) * FP16_TO_FP32(y[i].d)) + FP16_TO_FP32(x[i].m) * FP16_TO_FP32(y[i].s);
    }
    *s = sumf;
}

/* ======================================================================
 * Traits table and kernel selection
 * ====================================================================== */

/* The reference kernels of every type. The live table starts as a copy (so
 * everything works before ac_quant_init) and the ISA files override
 * to_float / from_float / vec_dot in it. */
#define REFERENCE_TRAITS                                                                                      \
    {                                                                                                         \
        [AC_TYPE_F32] = {.name = "f32", .blck_size = 1, .type_size = sizeof(float), .is_quantized = false,    \
                         .to_float = copy_row_f32, .from_float_ref = from_float_f32,                          \
                         .from_float = from_float_f32, .vec_dot = vec_dot_f32_ref,                            \
                         .vec_dot_ref = vec_dot_f32_ref, .vec_dot_type = AC_TYPE_F32},                        \
        [AC_TYPE_F16] = {.name = "f16", .blck_size = 1, .type_size = sizeof(ac_half), .is_quantized = false,  \
                         .to_float = dequantize_row_f16, .from_float_ref = quantize_row_f16,                  \
                         .from_float = quantize_row_f16, .vec_dot = vec_dot_f16_ref,                          \
                         .vec_dot_ref = vec_dot_f16_ref, .vec_dot_type = AC_TYPE_F16},                        \
        [AC_TYPE_Q4_0] = {.name = "q4_0", .blck_size = QK4_0, .type_size = sizeof(block_q4_0),                \
                          .is_quantized = true, .to_float = dequantize_row_q4_0,                              \
                          .from_float_ref = quantize_row_q4_0_ref, .from_float = quantize_row_q4_0_ref,       \
                          .vec_dot = vec_dot_q4_0_q8_0_ref, .vec_dot_ref = vec_dot_q4_0_q8_0_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_0},                                                      \
        [AC_TYPE_Q4_1] = {.name = "q4_1", .blck_size = QK4_1, .type_size = sizeof(block_q4_1),                \
                          .is_quantized = true, .to_float = dequantize_row_q4_1,                              \
                          .from_float_ref = quantize_row_q4_1_ref, .from_float = quantize_row_q4_1_ref,       \
                          .vec_dot = vec_dot_q4_1_q8_1_ref, .vec_dot_ref = vec_dot_q4_1_q8_1_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_1},                                                      \
        [AC_TYPE_Q5_0] = {.name = "q5_0", .blck_size = QK5_0, .type_size = sizeof(block_q5_0),                \
                          .is_quantized = true, .to_float = dequantize_row_q5_0,                              \
                          .from_float_ref = quantize_row_q5_0_ref, .from_float = quantize_row_q5_0_ref,       \
                          .vec_dot = vec_dot_q5_0_q8_0_ref, .vec_dot_ref = vec_dot_q5_0_q8_0_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_0},                                                      \
        [AC_TYPE_Q5_1] = {.name = "q5_1", .blck_size = QK5_1, .type_size = sizeof(block_q5_1),                \
                          .is_quantized = true, .to_float = dequantize_row_q5_1,                              \
                          .from_float_ref = quantize_row_q5_1_ref, .from_float = quantize_row_q5_1_ref,       \
                          .vec_dot = vec_dot_q5_1_q8_1_ref, .vec_dot_ref = vec_dot_q5_1_q8_1_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_1},                                                      \
        [AC_TYPE_Q8_0] = {.name = "q8_0", .blck_size = QK8_0, .type_size = sizeof(block_q8_0),                \
                          .is_quantized = true, .to_float = dequantize_row_q8_0,                              \
                          .from_float_ref = ac_quantize_row_q8_0_ref, .from_float = ac_quantize_row_q8_0_ref, \
                          .vec_dot = vec_dot_q8_0_q8_0_ref, .vec_dot_ref = vec_dot_q8_0_q8_0_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_0},                                                      \
        [AC_TYPE_Q8_1] = {.name = "q8_1", .blck_size = QK8_1, .type_size = sizeof(block_q8_1),                \
                          .is_quantized = true, .to_float = dequantize_row_q8_1,                              \
                          .from_float_ref = ac_quantize_row_q8_1_ref, .from_float = ac_quantize_row_q8_1_ref, \
                          .vec_dot_type = AC_TYPE_Q8_1},                                                      \
        [AC_TYPE_Q2_K] = {.name = "q2_K", .blck_size = QK_K, .type_size = sizeof(block_q2_K),                 \
                          .is_quantized = true, .to_float = dequantize_row_q2_K,                              \
                          .from_float_ref = quantize_row_q2_K_ref, .from_float = quantize_row_q2_K_ref,       \
                          .vec_dot = vec_dot_q2_K_q8_K_ref, .vec_dot_ref = vec_dot_q2_K_q8_K_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_K},                                                      \
        [AC_TYPE_Q3_K] = {.name = "q3_K", .blck_size = QK_K, .type_size = sizeof(block_q3_K),                 \
                          .is_quantized = true, .to_float = dequantize_row_q3_K,                              \
                          .from_float_ref = quantize_row_q3_K_ref, .from_float = quantize_row_q3_K_ref,       \
                          .vec_dot = vec_dot_q3_K_q8_K_ref, .vec_dot_ref = vec_dot_q3_K_q8_K_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_K},                                                      \
        [AC_TYPE_Q4_K] = {.name = "q4_K", .blck_size = QK_K, .type_size = sizeof(block_q4_K),                 \
                          .is_quantized = true, .to_float = dequantize_row_q4_K,                              \
                          .from_float_ref = quantize_row_q4_K_ref, .from_float = quantize_row_q4_K_ref,       \
                          .vec_dot = vec_dot_q4_K_q8_K_ref, .vec_dot_ref = vec_dot_q4_K_q8_K_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_K},                                                      \
        [AC_TYPE_Q5_K] = {.name = "q5_K", .blck_size = QK_K, .type_size = sizeof(block_q5_K),                 \
                          .is_quantized = true, .to_float = dequantize_row_q5_K,                              \
                          .from_float_ref = quantize_row_q5_K_ref, .from_float = quantize_row_q5_K_ref,       \
                          .vec_dot = vec_dot_q5_K_q8_K_ref, .vec_dot_ref = vec_dot_q5_K_q8_K_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_K},                                                      \
        [AC_TYPE_Q6_K] = {.name = "q6_K", .blck_size = QK_K, .type_size = sizeof(block_q6_K),                 \
                          .is_quantized = true, .to_float = dequantize_row_q6_K,                              \
                          .from_float_ref = quantize_row_q6_K_ref, .from_float = quantize_row_q6_K_ref,       \
                          .vec_dot = vec_dot_q6_K_q8_K_ref, .vec_dot_ref = vec_dot_q6_K_q8_K_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_K},                                                      \
        [AC_TYPE_Q8_K] = {.name = "q8_K", .blck_size = QK_K, .type_size = sizeof(block_q8_K),                 \
                          .is_quantized = true, .to_float = dequantize_row_q8_K,                              \
                          .from_float_ref = ac_quantize_row_q8_K_ref, .from_float = ac_quantize_row_q8_K_ref, \
                          .vec_dot_type = AC_TYPE_Q8_K},                                                      \
        [AC_TYPE_Q2_0] = {.name = "q2_0", .blck_size = QK2_0, .type_size = sizeof(block_q2_0),                \
                          .is_quantized = true, .to_float = dequantize_row_q2_0,                              \
                          .from_float_ref = quantize_row_q2_0_ref, .from_float = quantize_row_q2_0_ref,       \
                          .vec_dot = vec_dot_q2_0_q8_1_ref, .vec_dot_ref = vec_dot_q2_0_q8_1_ref,             \
                          .vec_dot_type = AC_TYPE_Q8_1},                                                      \
    }

static const struct ac_type_traits reference_traits[AC_TYPE_COUNT] = REFERENCE_TRAITS;
static struct ac_type_traits live_traits[AC_TYPE_COUNT] = REFERENCE_TRAITS;

static enum ac_simd_level best_level = AC_SIMD_SCALAR;
static enum ac_simd_level current_level = AC_SIMD_SCALAR;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* An ECX feature bit of CPUID leaf (leaf, 0). For the features clang's
 * __builtin_cpu_supports does not name: F16C (leaf 1, bit 29) and
 * AVX512-VNNI (leaf 7, bit 11). */
static bool cpuid_ecx_bit(unsigned leaf, unsigned bit) {
    unsigned a, b, c, d;
    return __get_cpuid_count(leaf, 0, &a, &b, &c, &d) && (c >> bit & 1u);
}

bool ac_quant_cpu_has(enum ac_simd_level level) {
    __builtin_cpu_init();
    switch (level) {
    case AC_SIMD_SCALAR:
        return true;
    case AC_SIMD_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_ecx_bit(1, 29);
    case AC_SIMD_AVX512VNNI:
        return ac_quant_cpu_has(AC_SIMD_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && cpuid_ecx_bit(7, 11);
    }
    return false;
}

bool ac_quant_use_level(enum ac_simd_level level) {
    if (!ac_quant_cpu_has(level)) return false;
    /* Field by field, so a concurrent reader never sees a torn name/size. */
    for (int t = 0; t < AC_TYPE_COUNT; t++) {
        live_traits[t].to_float = reference_traits[t].to_float;
        live_traits[t].from_float = reference_traits[t].from_float;
        live_traits[t].vec_dot = reference_traits[t].vec_dot;
    }
    if (level >= AC_SIMD_AVX2) ac_quant_install_avx2(live_traits);
    if (level >= AC_SIMD_AVX512VNNI) ac_quant_install_avx512(live_traits);
    current_level = level;
    return true;
}

static void init_best_level(void) {
    best_level = AC_SIMD_SCALAR;
    if (ac_quant_cpu_has(AC_SIMD_AVX512VNNI))
        best_level = AC_SIMD_AVX512VNNI;
    else if (ac_quant_cpu_has(AC_SIMD_AVX2))
        best_level = AC_SIMD_AVX2;
    ac_quant_use_level(best_level);
}

void ac_quant_init(void) {
    pthread_once(&init_once, init_best_level);
}

void ac_quant_force_scalar(bool on) {
    ac_quant_init();
    ac_quant_use_level(on ? AC_SIMD_SCALAR : best_level);
}

const char *ac_quant_simd_name(void) {
    switch (current_level) {
    case AC_SIMD_AVX2:
        return "avx2";
    case AC_SIMD_AVX512VNNI:
        return "avx512vnni";
    case AC_SIMD_SCALAR:
        break;
    }
    return "scalar";
}

const struct ac_type_traits *ac_type_traits(uint32_t type) {
    if (type >= AC_TYPE_COUNT || !live_traits[type].name) return NULL;
    return &live_traits[type];
}

size_t ac_row_size(uint32_t type, int64_t n) {
    const struct ac_type_traits *t = ac_type_traits(type);
    if (!t || n < 0 || n % t->blck_size) return 0;
    return (size_t)(n / t->blck_size) * t->type_size;
}
