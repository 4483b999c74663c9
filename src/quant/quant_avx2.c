/* quant_avx2.c - AVX2 + FMA + F16C kernels (no VNNI: 8-bit products go
 * through maddubs/madd). Built with -mavx2 -mfma -mf16c by the Makefile;
 * only called after ac_quant_cpu_has(AC_SIMD_AVX2).
 *
 * Dots consume whole blocks and may sum floats in another order than the
 * reference kernels; quantizers give exactly the reference's bits. */
#include "quant/quant_internal.h"

#include <immintrin.h>
#include <string.h>

/* ---- small helpers ---- */

static inline float hsum_ps256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32_256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline float h2f(ac_half h) {
    return _cvtsh_ss(h);
}

/* 16 packed bytes -> 32 bytes: low nibbles then high nibbles (q4 layout). */
static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* Sum of u8 * s8 products, 4 adjacent pairs per int32 lane. maddubs
 * saturates at +-32767: callers keep |u| * |s| * 2 below that. */
static inline __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Same for two signed operands (x may be -128, y must not be). */
static inline __m256i dot_s8s8(__m256i x, __m256i y) {
    return dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* ---- F32, F16 ---- */

static void vec_dot_f32_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const float *x = vx, *y = vy;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
    float sum = hsum_ps256(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) { /* rows may be misaligned: no float lvalues */
        float a, b;
        memcpy(&a, x + i, 4);
        memcpy(&b, y + i, 4);
        sum += a * b;
    }
    *s = sum;
}

static void vec_dot_f16_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const uint8_t *x = vx, *y = vy;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * (i + 8 * k))));
            const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + 2 * (i + 8 * k))));
            acc[k] = _mm256_fmadd_ps(a, b, acc[k]);
        }
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * i)));
        const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + 2 * i)));
        acc[0] = _mm256_fmadd_ps(a, b, acc[0]);
    }
    float sum = hsum_ps256(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) {
        uint16_t a, b;
        memcpy(&a, x + 2 * i, 2);
        memcpy(&b, y + 2 * i, 2);
        sum += h2f(a) * h2f(b);
    }
    *s = sum;
}

static void dequantize_row_f16_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const uint8_t *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * i))));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        y[i] = h2f(h);
    }
}

/* ---- Q4_0, Q4_1, Q8_0 dots ---- */

static void vec_dot_q4_0_q8_0_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i qx = _mm256_sub_epi8(nibbles_32(x[i].qs), _mm256_set1_epi8(8));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_s8s8(qx, qy)), acc);
    }
    *s = hsum_ps256(acc);
}

static void vec_dot_q4_1_q8_1_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_1 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int i = 0; i < nb; i++) {
        summs += h2f(x[i].m) * h2f(y[i].s);
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i qx = nibbles_32(x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8s8(qx, qy)), acc);
    }
    *s = hsum_ps256(acc) + summs;
}

static void vec_dot_q8_0_q8_0_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_s8s8(qx, qy)), acc);
    }
    *s = hsum_ps256(acc);
}

/* ---- Q5_0, Q5_1 ---- */

/* The 32 bits at p (little-endian) as 32 bytes: 0xFF where bit j is set, in
 * byte j. */
static inline __m256i bytes_from_bits_32(const uint8_t *p) {
    uint32_t b;
    memcpy(&b, p, sizeof b);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                            3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

static void vec_dot_q5_0_q8_0_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    const __m256i kF0 = _mm256_set1_epi8((char)0xF0);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    /* q - 16 as a signed byte: the nibble where bit 4 is set, nibble | 0xF0 where not */
    for (; i + 2 <= nb; i += 2) {
        const __m256i qx0 = _mm256_or_si256(nibbles_32(x[i].qs), _mm256_andnot_si256(bytes_from_bits_32(x[i].qh), kF0));
        const __m256i qx1 =
            _mm256_or_si256(nibbles_32(x[i + 1].qs), _mm256_andnot_si256(bytes_from_bits_32(x[i + 1].qh), kF0));
        const __m256i p0 = dot_s8s8(qx0, _mm256_loadu_si256((const __m256i *)y[i].qs));
        const __m256i p1 = dot_s8s8(qx1, _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i + 1].d) * h2f(y[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; i < nb; i++) {
        const __m256i qx = _mm256_or_si256(nibbles_32(x[i].qs), _mm256_andnot_si256(bytes_from_bits_32(x[i].qh), kF0));
        const __m256i p = dot_s8s8(qx, _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc0);
    }
    *s = hsum_ps256(_mm256_add_ps(acc0, acc1));
}

static void vec_dot_q5_1_q8_1_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_1 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    const __m256i k10 = _mm256_set1_epi8(0x10);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float summs = 0;
    int i = 0;
    for (; i + 2 <= nb; i += 2) {
        summs += h2f(x[i].m) * h2f(y[i].s) + h2f(x[i + 1].m) * h2f(y[i + 1].s);
        const __m256i qx0 = _mm256_or_si256(nibbles_32(x[i].qs), _mm256_and_si256(bytes_from_bits_32(x[i].qh), k10));
        const __m256i qx1 =
            _mm256_or_si256(nibbles_32(x[i + 1].qs), _mm256_and_si256(bytes_from_bits_32(x[i + 1].qh), k10));
        const __m256i p0 = dot_u8s8(qx0, _mm256_loadu_si256((const __m256i *)y[i].qs));
        const __m256i p1 = dot_u8s8(qx1, _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i + 1].d) * h2f(y[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; i < nb; i++) {
        summs += h2f(x[i].m) * h2f(y[i].s);
        const __m256i qx = _mm256_or_si256(nibbles_32(x[i].qs), _mm256_and_si256(bytes_from_bits_32(x[i].qh), k10));
        const __m256i p = dot_u8s8(qx, _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc0);
    }
    *s = hsum_ps256(_mm256_add_ps(acc0, acc1)) + summs;
}

/* ---- K-quant dots ---- */

/* Shuffles that spread int16 scales k (low 128-bit lane) and k+1 (high
 * lane) over all 8 int16 of their lane, for k = 0, 2, 4, 6. */
static inline __m256i scale_pair_shuffle(int k) {
    const char lo0 = (char)(2 * k), lo1 = (char)(2 * k + 1), hi0 = (char)(2 * k + 2), hi1 = (char)(2 * k + 3);
    return _mm256_setr_epi8(lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, hi0, hi1,
                            hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1);
}

/* 8 scales of 16-element groups (as int16, broadcast to both lanes) times
 * the maddubs products of 4 vectors of 32 elements, summed into int32. */
static inline __m256i scaled_sum_16x8(const __m256i p[4], __m256i sc16) {
    __m256i sum = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++)
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p[k], _mm256_shuffle_epi8(sc16, scale_pair_shuffle(2 * k))));
    return sum;
}

static void vec_dot_q2_K_q8_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float acc_min = 0;
    for (int i = 0; i < nb; i++) {
        const float dall = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0F)));
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        acc_min += dmin * (float)hsum_epi32_256(_mm256_madd_epi16(mins16, bsums));

        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, _mm_set1_epi8(0x0F)));
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q2 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const int8_t *q8 = y[i].qs + 128 * h;
            const __m256i q[4] = {_mm256_and_si256(q2, m3), _mm256_and_si256(_mm256_srli_epi16(q2, 2), m3),
                                  _mm256_and_si256(_mm256_srli_epi16(q2, 4), m3),
                                  _mm256_and_si256(_mm256_srli_epi16(q2, 6), m3)};
            __m256i p[4];
            for (int k = 0; k < 4; k++) p[k] = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(q8 + 32 * k)));
            /* groups 8h..8h+7: this half's 8 scales in both lanes */
            const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
            sumi = _mm256_add_epi32(sumi, scaled_sum_16x8(p, sch));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dall), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps256(acc) - acc_min;
}

/* The 16 six-bit scales of a Q3_K block as bytes (0..63), from one 16-byte
 * load ending at the last scale byte (it starts 4 bytes into qs, so it
 * stays inside the block). With a0, a1, a2 the scale dwords: groups 0-3
 * are (a0 & 0x0f) | (a2 & 3) << 4 bytewise, 4-7 (a1 & 0x0f) | (a2 >> 2 & 3)
 * << 4, 8-11 (a0 >> 4 & 0x0f) | (a2 >> 4 & 3) << 4, 12-15 (a1 >> 4 & 0x0f)
 * | (a2 >> 6 & 3) << 4. */
static inline __m128i q3_K_scales(const block_q3_K *b) {
    const __m128i u = _mm_loadu_si128((const __m128i *)(b->qs + sizeof b->qs - 4)); /* dwords: -, a0, a1, a2 */
    const __m128i lo = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 1)), _mm_setr_epi32(0, 0, 4, 4)),
                                     _mm_set1_epi8(0x0f));
    const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(3, 3, 3, 3)), _mm_setr_epi32(0, 2, 4, 6)),
                                     _mm_set1_epi8(0x03));
    return _mm_or_si128(lo, _mm_slli_epi32(hi, 4));
}

/* Q3_K's codes q' = q + 4 in [0, 7] go through maddubs unsigned; the
 * offset comes back out as 4 * sum_g sc_g * bsums_g. */
static void vec_dot_q3_K_q8_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q3_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(q3_K_scales(&x[i]), _mm_set1_epi8(32)));
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        /* 4 * sum_g sc_g * bsums_g, lane by lane (only the total matters) */
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 2);
        /* bit 4h + k of hmask[l] is the top bit of element 128h + 32k + l:
         * moved to bit 2 by a 16-bit shift (left 2, right k, for h = 0;
         * right 2 + k for h = 1), which never drags a neighbour's bit into
         * bit 2 of a byte */
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        const __m256i hm_lo = _mm256_slli_epi16(hm, 2);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q2 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const int8_t *q8 = y[i].qs + 128 * h;
            __m256i p[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * k), m3);
                const __m256i hb = _mm256_and_si256(h ? _mm256_srli_epi16(hm, 2 + k) : _mm256_srli_epi16(hm_lo, k), m4);
                p[k] = _mm256_maddubs_epi16(_mm256_or_si256(lo, hb), _mm256_loadu_si256((const __m256i *)(q8 + 32 * k)));
            }
            const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
            sumi = _mm256_add_epi32(sumi, scaled_sum_16x8(p, sch));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].d)), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, offset)),
                              acc);
    }
    *s = hsum_ps256(acc);
}

static void vec_dot_q4_K_q8_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        /* unpack the 6-bit scales/mins from dwords u0 u1 u2 of scales[]:
         * sc0-3 = u0 & 63, m0-3 = u1 & 63, sc4-7 = (u2 & 15) | (u0 >> 6) << 4,
         * m4-7 = (u2 >> 4) | (u1 >> 6) << 4, bytewise (the 16-byte load
         * runs into qs, inside the block) */
        const __m128i u = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m128i lo = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4)),
                                         _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
        const __m128i hi = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                                         _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
        const __m128i scm = _mm_or_si128(lo, hi); /* bytes: sc0-7, m0-7 */

        /* mins: sum_j m_j * (bsums[2j] + bsums[2j+1]) */
        const __m256i m_pairs = _mm256_cvtepu8_epi16(
            _mm_shuffle_epi8(scm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
        const __m256i pm = _mm256_madd_epi16(m_pairs, _mm256_loadu_si256((const __m256i *)y[i].bsums));
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].dmin)), _mm256_cvtepi32_ps(pm), acc_min);

        /* int16 scales 0-7 in both lanes; scale_pair_shuffle(2j) picks 2j, 2j+1 */
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scm));
        __m256i sumi0 = _mm256_setzero_si256(), sumi1 = _mm256_setzero_si256();
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(q4, m4),
                                                    _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j)));
            const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4),
                                                    _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j + 32)));
            /* the 32 elements of p0 all take scale 2j: spread it over both lanes */
            const __m256i sp = _mm256_shuffle_epi8(sc16, scale_pair_shuffle(2 * j));
            sumi0 = _mm256_add_epi32(sumi0, _mm256_madd_epi16(p0, _mm256_permute2x128_si256(sp, sp, 0x00)));
            sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(p1, _mm256_permute2x128_si256(sp, sp, 0x11)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].d)), _mm256_cvtepi32_ps(_mm256_add_epi32(sumi0, sumi1)),
                              acc);
    }
    *s = hsum_ps256(acc) - hsum_ps256(acc_min);
}

static void vec_dot_q5_K_q8_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        /* scales and mins exactly as Q4_K (same 12 bytes at the same offset) */
        const __m128i u = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m128i lo = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4)),
                                         _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
        const __m128i hi = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                                         _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
        const __m128i scm = _mm_or_si128(lo, hi); /* bytes: sc0-7, m0-7 */
        const __m256i m_pairs = _mm256_cvtepu8_epi16(
            _mm_shuffle_epi8(scm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
        const __m256i pm = _mm256_madd_epi16(m_pairs, _mm256_loadu_si256((const __m256i *)y[i].bsums));
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].dmin)), _mm256_cvtepi32_ps(pm), acc_min);

        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scm));
        /* bits 2j, 2j + 1 of qh[l] are the fifth bits of elements 64j + l,
         * 64j + 32 + l: hq holds qh >> 2j in its bits 0-1 (a 16-bit shift
         * only dirties bits 6-7 of the low byte, above what is read) */
        __m256i hq = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i sumi0 = _mm256_setzero_si256(), sumi1 = _mm256_setzero_si256();
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(q4, m4), _mm256_and_si256(_mm256_slli_epi16(hq, 4), m16));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hq, 3), m16));
            hq = _mm256_srli_epi16(hq, 2);
            const __m256i p0 = _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j)));
            const __m256i p1 = _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j + 32)));
            const __m256i sp = _mm256_shuffle_epi8(sc16, scale_pair_shuffle(2 * j));
            sumi0 = _mm256_add_epi32(sumi0, _mm256_madd_epi16(p0, _mm256_permute2x128_si256(sp, sp, 0x00)));
            sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(p1, _mm256_permute2x128_si256(sp, sp, 0x11)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].d)), _mm256_cvtepi32_ps(_mm256_add_epi32(sumi0, sumi1)),
                              acc);
    }
    *s = hsum_ps256(acc) - hsum_ps256(acc_min);
}

static void vec_dot_q6_K_q8_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q6_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * h2f(x[i].d);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        /* q is stored as q + 32 in [0, 63]: dot = sum(sc * q' * y) - 32 * sum(sc * bsum) */
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const int offset = 32 * hsum_epi32_256(_mm256_madd_epi16(sc16, bsums));

        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                   _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8((char)0xC0)), 2));
            const int8_t *q8 = y[i].qs + 128 * h;
            __m256i p[4];
            for (int k = 0; k < 4; k++) p[k] = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(q8 + 32 * k)));
            const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
            sumi = _mm256_add_epi32(sumi, scaled_sum_16x8(p, sch));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, _mm256_setr_epi32(offset, 0, 0, 0, 0, 0, 0, 0))), acc);
    }
    *s = hsum_ps256(acc);
}

/* ---- activation quantizers (bit-equal to the reference) ---- */

/* roundf() of 8 floats: round half away from zero. v - trunc(v) is exact. */
static inline __m256i round_away_epi32(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, one)));
}

/* 4 x 8 int32 (each in [-128, 127]) -> 32 int8 in order. */
static inline __m256i pack_epi32_epi8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b);
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float amax_32(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
    for (int k = 1; k < 4; k++) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)));
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* Quantizes 32 floats with 1/d = id; returns the sum of the quants. */
static inline int quantize_32_q8(const float *x, float id, int8_t *out) {
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = round_away_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid));
    _mm256_storeu_si256((__m256i *)out, pack_epi32_epi8(q[0], q[1], q[2], q[3]));
    return hsum_epi32_256(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
}

static void quantize_row_q8_0_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *restrict y = vy;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float amax = amax_32(x + QK8_0 * i);
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = ac_fp32_to_fp16(d);
        (void)quantize_32_q8(x + QK8_0 * i, id, y[i].qs);
    }
}

static void quantize_row_q8_1_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *restrict y = vy;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        const float amax = amax_32(x + QK8_1 * i);
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = ac_fp32_to_fp16(d);
        const int sum = quantize_32_q8(x + QK8_1 * i, id, y[i].qs);
        y[i].s = ac_fp32_to_fp16(sum * d);
    }
}

static void quantize_row_q8_K_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *restrict y = vy;
    const int64_t nb = n / QK_K;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QK_K / 8; k++) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)));
        __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        r = _mm_max_ps(r, _mm_movehl_ps(r, r));
        r = _mm_max_ss(r, _mm_movehdup_ps(r));
        const float amax = _mm_cvtss_f32(r);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the reference keeps the sign of the first element of largest magnitude */
        float max = 0;
        const __m256 vamax = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K / 8; k++) {
            const __m256 eq = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)), vamax, _CMP_EQ_OQ);
            const int mask = _mm256_movemask_ps(eq);
            if (mask) {
                max = x[8 * k + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        __m256i gsum[16];
        for (int g = 0; g < QK_K / 32; g++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), vis));
                q[k] = _mm256_min_epi32(v, _mm256_set1_epi32(127));
            }
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * g), pack_epi32_epi8(q[0], q[1], q[2], q[3]));
            gsum[2 * g] = _mm256_add_epi32(q[0], q[1]);
            gsum[2 * g + 1] = _mm256_add_epi32(q[2], q[3]);
        }
        for (int g = 0; g < QK_K / 16; g++) y[i].bsums[g] = (int16_t)hsum_epi32_256(gsum[g]);
        y[i].d = 1 / iscale;
    }
}

/* ---- Q2_0 (ours) ---- */

/* The 32 two-bit codes of a Q2_0 block as bytes, in element order: the
 * 8 code bytes in every 64-bit lane, lane k shifted right by 2k. */
static inline __m256i crumbs_32(const uint8_t *qs) {
    long long v;
    memcpy(&v, qs, 8);
    const __m256i sh = _mm256_srlv_epi64(_mm256_set1_epi64x(v), _mm256_setr_epi64x(0, 2, 4, 6));
    return _mm256_and_si256(sh, _mm256_set1_epi8(3));
}

static void vec_dot_q2_0_q8_1_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_0 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int i = 0; i < nb; i++) {
        summs += h2f(x[i].m) * h2f(y[i].s);
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8s8(crumbs_32(x[i].qs), qy)), acc);
    }
    *s = hsum_ps256(acc) + summs;
}

void ac_quant_install_avx2(struct ac_type_traits *t) {
    t[AC_TYPE_F32].vec_dot = vec_dot_f32_avx2;
    t[AC_TYPE_F16].vec_dot = vec_dot_f16_avx2;
    t[AC_TYPE_F16].to_float = dequantize_row_f16_avx2;
    t[AC_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0_avx2;
    t[AC_TYPE_Q4_1].vec_dot = vec_dot_q4_1_q8_1_avx2;
    t[AC_TYPE_Q5_0].vec_dot = vec_dot_q5_0_q8_0_avx2;
    t[AC_TYPE_Q5_1].vec_dot = vec_dot_q5_1_q8_1_avx2;
    t[AC_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0_avx2;
    t[AC_TYPE_Q8_0].from_float = quantize_row_q8_0_avx2;
    t[AC_TYPE_Q8_1].from_float = quantize_row_q8_1_avx2;
    t[AC_TYPE_Q2_K].vec_dot = vec_dot_q2_K_q8_K_avx2;
    t[AC_TYPE_Q3_K].vec_dot = vec_dot_q3_K_q8_K_avx2;
    t[AC_TYPE_Q4_K].vec_dot = vec_dot_q4_K_q8_K_avx2;
    t[AC_TYPE_Q5_K].vec_dot = vec_dot_q5_K_q8_K_avx2;
    t[AC_TYPE_Q6_K].vec_dot = vec_dot_q6_K_q8_K_avx2;
    t[AC_TYPE_Q8_K].from_float = quantize_row_q8_K_avx2;
    t[AC_TYPE_Q2_0].vec_dot = vec_dot_q2_0_q8_1_avx2;
}
