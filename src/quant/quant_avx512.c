/* quant_avx512.c - AVX-512 (F/BW/VL/DQ) + VNNI kernels. Built with the
 * Makefile's AVX-512 flags; only called after
 * ac_quant_cpu_has(AC_SIMD_AVX512VNNI).
 *
 * The 32-block dots convert the fp16 scales of four blocks with one
 * vcvtph2ps and work on one or two blocks per register. vpdpbusd
 * multiplies unsigned by signed bytes, so signed weights are offset into
 * unsigned range and the offset is taken back out with a second vpdpbusd
 * against the activations. */
#include "quant/quant_internal.h"

#include <immintrin.h>
#include <string.h>

static inline float h2f(ac_half h) {
    return _cvtsh_ss(h);
}

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

/* Four fp16 values at p, p + stride, p + 2*stride, p + 3*stride (bytes)
 * as the low four lanes of a float vector. */
static inline __m128 load4_f16(const uint8_t *p, size_t stride) {
    uint16_t a, b, c, d;
    memcpy(&a, p, 2);
    memcpy(&b, p + stride, 2);
    memcpy(&c, p + 2 * stride, 2);
    memcpy(&d, p + 3 * stride, 2);
    const uint64_t v = (uint64_t)a | (uint64_t)b << 16 | (uint64_t)c << 32 | (uint64_t)d << 48;
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

/* Two 32-byte runs as one 512-bit vector. */
static inline __m512i load_2x256(const void *a, const void *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* Nibbles of two q4 blocks (16 bytes each) as 64 bytes: block a's low
 * nibbles, a's high nibbles, b's low, b's high. */
static inline __m512i nibbles_2x32(const uint8_t *a, const uint8_t *b) {
    const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                              _mm_loadu_si128((const __m128i *)b), 1);
    const __m512i z = _mm512_castsi256_si512(t);
    const __m512i dup = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0));
    const __m512i sh = _mm512_mask_srli_epi16(dup, 0xFF00FF00u, dup, 4);
    return _mm512_and_si512(sh, _mm512_set1_epi8(0x0F));
}

static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* Same, loading the 16 bytes into both lanes (a load, no shuffle) and
 * shifting the upper lane by a blend. */
static inline __m256i nibbles_32_bcast(const uint8_t *p) {
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_and_si256(_mm256_blend_epi32(b, _mm256_srli_epi16(b, 4), 0xF0), _mm256_set1_epi8(0x0F));
}

/* Lane index vectors spreading float lane a over lanes 0-7, b over 8-15. */
#define SPREAD(a, b) _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b)

/* ---- F32, F16 ---- */

static void vec_dot_f32_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const float *x = vx, *y = vy;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), acc1);
    }
    if (i < n) { /* masked tail, up to 31 elements */
        const int r = n - i;
        const __mmask16 k0 = (__mmask16)(r >= 16 ? 0xFFFF : (1u << r) - 1);
        const __mmask16 k1 = (__mmask16)(r > 16 ? (1u << (r - 16)) - 1 : 0);
        acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k0, x + i), _mm512_maskz_loadu_ps(k0, y + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k1, x + i + 16), _mm512_maskz_loadu_ps(k1, y + i + 16), acc1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static void vec_dot_f16_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const uint16_t *x = vx, *y = vy;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i)));
        const __m512 b0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i)));
        const __m512 a1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16)));
        const __m512 b1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i + 16)));
        acc0 = _mm512_fmadd_ps(a0, b0, acc0);
        acc1 = _mm512_fmadd_ps(a1, b1, acc1);
    }
    for (; i < n; i += 16) { /* masked tail */
        const int r = n - i;
        const __mmask16 k = (__mmask16)(r >= 16 ? 0xFFFF : (1u << r) - 1);
        const __m512 a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, x + i));
        const __m512 b = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, y + i));
        acc0 = _mm512_fmadd_ps(a, b, acc0);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static void dequantize_row_f16_avx512(const void *restrict vx, float *restrict y, int64_t n) {
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, x + i)));
    }
}

/* ---- Q4_0, Q4_1, Q8_0 dots ---- */

static void vec_dot_q4_0_q8_0_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    const __m512i eights = _mm512_set1_epi8(8);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    /* sum (q - 8) * y = dpbusd(q, y) - dpbusd(8, y) */
    for (; i + 4 <= nb; i += 4) {
        const __m128 dx = load4_f16((const uint8_t *)&x[i].d, sizeof(block_q4_0));
        const __m128 dy = load4_f16((const uint8_t *)&y[i].d, sizeof(block_q8_0));
        const __m512 d = _mm512_castps128_ps512(_mm_mul_ps(dx, dy));
        const __m512i qx01 = nibbles_2x32(x[i].qs, x[i + 1].qs);
        const __m512i qx23 = nibbles_2x32(x[i + 2].qs, x[i + 3].qs);
        const __m512i qy01 = load_2x256(y[i].qs, y[i + 1].qs);
        const __m512i qy23 = load_2x256(y[i + 2].qs, y[i + 3].qs);
        const __m512i z = _mm512_setzero_si512();
        const __m512i p01 = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, qx01, qy01), _mm512_dpbusd_epi32(z, eights, qy01));
        const __m512i p23 = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, qx23, qy23), _mm512_dpbusd_epi32(z, eights, qy23));
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(SPREAD(0, 1), d), _mm512_cvtepi32_ps(p01), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(SPREAD(2, 3), d), _mm512_cvtepi32_ps(p23), acc1);
    }
    __m256 acc = _mm256_add_ps(_mm512_castps512_ps256(_mm512_add_ps(acc0, acc1)),
                               _mm512_extractf32x8_ps(_mm512_add_ps(acc0, acc1), 1));
    for (; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256i z = _mm256_setzero_si256();
        const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(z, nibbles_32(x[i].qs), qy),
                                           _mm256_dpbusd_epi32(z, _mm256_set1_epi8(8), qy));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum_ps256(acc);
}

static void vec_dot_q4_1_q8_1_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_1 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    /* the (d, m) / (d, s) dwords of 4 consecutive blocks: x's at dword
     * 0, 5, 10, 15 of its first 64 bytes, y's at 0, 9, 18, 27 of 128 */
    const __m512i idx_x = _mm512_setr_epi32(0, 5, 10, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i idx_y = _mm512_setr_epi32(0, 9, 18, 27, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    /* 256-bit, one block per register: on cores that split 512-bit ops
     * (Zen 4) this avoids the lane shuffles a two-block layout needs, and
     * each block's scale comes by a broadcast load, not a shuffle. */
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc_ms = _mm256_setzero_ps(); /* odd lanes: m * s */
    int i = 0;
    for (; i + 4 <= nb; i += 4) {
        const uint8_t *xb = (const uint8_t *)(x + i), *yb = (const uint8_t *)(y + i);
        const __m512i xdm = _mm512_permutexvar_epi32(idx_x, _mm512_loadu_si512(xb));
        const __m512i ydm = _mm512_permutex2var_epi32(_mm512_loadu_si512(yb), idx_y, _mm512_loadu_si512(yb + 64));
        /* dx mx ... times dy sy ... = dx*dy, m*s per block */
        const __m256 prod = _mm256_mul_ps(_mm256_cvtph_ps(_mm512_castsi512_si128(xdm)),
                                          _mm256_cvtph_ps(_mm512_castsi512_si128(ydm)));
        acc_ms = _mm256_add_ps(acc_ms, prod);
        float d[8];
        _mm256_storeu_ps(d, prod);
        const __m256i p0 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_32_bcast(x[i].qs),
                                               _mm256_loadu_si256((const __m256i *)y[i].qs));
        const __m256i p1 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_32_bcast(x[i + 1].qs),
                                               _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        const __m256i p2 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_32_bcast(x[i + 2].qs),
                                               _mm256_loadu_si256((const __m256i *)y[i + 2].qs));
        const __m256i p3 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_32_bcast(x[i + 3].qs),
                                               _mm256_loadu_si256((const __m256i *)y[i + 3].qs));
        acc0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[0]), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[2]), _mm256_cvtepi32_ps(p1), acc1);
        acc0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[4]), _mm256_cvtepi32_ps(p2), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[6]), _mm256_cvtepi32_ps(p3), acc1);
    }
    __m256 acc = _mm256_add_ps(acc0, acc1);
    /* keep the odd (m * s) lanes of acc_ms */
    float summs = hsum_ps256(_mm256_and_ps(acc_ms, _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1))));
    for (; i < nb; i++) {
        summs += h2f(x[i].m) * h2f(y[i].s);
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_32(x[i].qs), qy);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum_ps256(acc) + summs;
}

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Q5: nibbles as Q4, plus 16 on the bytes whose qh bit is set (a masked
 * add from the 32-bit qh of each block, no byte spreading). */
static void vec_dot_q5_0_q8_0_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    const __m512i k16 = _mm512_set1_epi8(16);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    /* sum (q - 16) * y = dpbusd(q, y) - dpbusd(16, y) */
    for (; i + 4 <= nb; i += 4) {
        const __m128 dx = load4_f16((const uint8_t *)&x[i].d, sizeof(block_q5_0));
        const __m128 dy = load4_f16((const uint8_t *)&y[i].d, sizeof(block_q8_0));
        const __m512 d = _mm512_castps128_ps512(_mm_mul_ps(dx, dy));
        const __mmask64 h01 = _cvtu64_mask64((uint64_t)load_u32(x[i].qh) | (uint64_t)load_u32(x[i + 1].qh) << 32);
        const __mmask64 h23 = _cvtu64_mask64((uint64_t)load_u32(x[i + 2].qh) | (uint64_t)load_u32(x[i + 3].qh) << 32);
        __m512i qx01 = nibbles_2x32(x[i].qs, x[i + 1].qs);
        __m512i qx23 = nibbles_2x32(x[i + 2].qs, x[i + 3].qs);
        qx01 = _mm512_mask_add_epi8(qx01, h01, qx01, k16);
        qx23 = _mm512_mask_add_epi8(qx23, h23, qx23, k16);
        const __m512i qy01 = load_2x256(y[i].qs, y[i + 1].qs);
        const __m512i qy23 = load_2x256(y[i + 2].qs, y[i + 3].qs);
        const __m512i z = _mm512_setzero_si512();
        const __m512i p01 = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, qx01, qy01), _mm512_dpbusd_epi32(z, k16, qy01));
        const __m512i p23 = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, qx23, qy23), _mm512_dpbusd_epi32(z, k16, qy23));
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(SPREAD(0, 1), d), _mm512_cvtepi32_ps(p01), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(SPREAD(2, 3), d), _mm512_cvtepi32_ps(p23), acc1);
    }
    __m256 acc = _mm256_add_ps(_mm512_castps512_ps256(_mm512_add_ps(acc0, acc1)),
                               _mm512_extractf32x8_ps(_mm512_add_ps(acc0, acc1), 1));
    for (; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i k = _mm256_set1_epi8(16);
        __m256i qx = nibbles_32(x[i].qs);
        qx = _mm256_mask_add_epi8(qx, _cvtu32_mask32(load_u32(x[i].qh)), qx, k);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256i z = _mm256_setzero_si256();
        const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(z, qx, qy), _mm256_dpbusd_epi32(z, k, qy));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum_ps256(acc);
}

/* As Q5_0's, with unsigned codes (one vpdpbusd per pair of blocks) and
 * the m * s terms of 4 blocks in one vector. */
static void vec_dot_q5_1_q8_1_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_1 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    const __m512i k16 = _mm512_set1_epi8(16);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m128 acc_ms = _mm_setzero_ps();
    int i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m128 dx = load4_f16((const uint8_t *)&x[i].d, sizeof(block_q5_1));
        const __m128 dy = load4_f16((const uint8_t *)&y[i].d, sizeof(block_q8_1));
        const __m128 mx = load4_f16((const uint8_t *)&x[i].m, sizeof(block_q5_1));
        const __m128 sy = load4_f16((const uint8_t *)&y[i].s, sizeof(block_q8_1));
        acc_ms = _mm_fmadd_ps(mx, sy, acc_ms);
        const __m512 d = _mm512_castps128_ps512(_mm_mul_ps(dx, dy));
        const __mmask64 h01 = _cvtu64_mask64((uint64_t)load_u32(x[i].qh) | (uint64_t)load_u32(x[i + 1].qh) << 32);
        const __mmask64 h23 = _cvtu64_mask64((uint64_t)load_u32(x[i + 2].qh) | (uint64_t)load_u32(x[i + 3].qh) << 32);
        __m512i qx01 = nibbles_2x32(x[i].qs, x[i + 1].qs);
        __m512i qx23 = nibbles_2x32(x[i + 2].qs, x[i + 3].qs);
        qx01 = _mm512_mask_add_epi8(qx01, h01, qx01, k16);
        qx23 = _mm512_mask_add_epi8(qx23, h23, qx23, k16);
        const __m512i p01 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx01, load_2x256(y[i].qs, y[i + 1].qs));
        const __m512i p23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx23, load_2x256(y[i + 2].qs, y[i + 3].qs));
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(SPREAD(0, 1), d), _mm512_cvtepi32_ps(p01), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(SPREAD(2, 3), d), _mm512_cvtepi32_ps(p23), acc1);
    }
    const __m512 acc01 = _mm512_add_ps(acc0, acc1);
    __m256 acc = _mm256_add_ps(_mm512_castps512_ps256(acc01), _mm512_extractf32x8_ps(acc01, 1));
    acc_ms = _mm_add_ps(acc_ms, _mm_movehl_ps(acc_ms, acc_ms));
    float summs = _mm_cvtss_f32(_mm_add_ss(acc_ms, _mm_movehdup_ps(acc_ms)));
    for (; i < nb; i++) {
        summs += h2f(x[i].m) * h2f(y[i].s);
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        __m256i q = nibbles_32(x[i].qs);
        q = _mm256_mask_add_epi8(q, _cvtu32_mask32(load_u32(x[i].qh)), q, _mm256_set1_epi8(16));
        const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum_ps256(acc) + summs;
}

static void vec_dot_q8_0_q8_0_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_0 *restrict x = vx;
    const block_q8_0 *restrict y = vy;
    const int nb = n / QK8_0;
    /* x ^ 0x80 = x + 128 as unsigned: sum x*y = dpbusd(x ^ 0x80, y) - dpbusd(128, y) */
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m128 dx = load4_f16((const uint8_t *)&x[i].d, sizeof(block_q8_0));
        const __m128 dy = load4_f16((const uint8_t *)&y[i].d, sizeof(block_q8_0));
        const __m512 d = _mm512_castps128_ps512(_mm_mul_ps(dx, dy));
        const __m512i qx01 = _mm512_xor_si512(load_2x256(x[i].qs, x[i + 1].qs), k80);
        const __m512i qx23 = _mm512_xor_si512(load_2x256(x[i + 2].qs, x[i + 3].qs), k80);
        const __m512i qy01 = load_2x256(y[i].qs, y[i + 1].qs);
        const __m512i qy23 = load_2x256(y[i + 2].qs, y[i + 3].qs);
        const __m512i z = _mm512_setzero_si512();
        const __m512i p01 = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, qx01, qy01), _mm512_dpbusd_epi32(z, k80, qy01));
        const __m512i p23 = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, qx23, qy23), _mm512_dpbusd_epi32(z, k80, qy23));
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(SPREAD(0, 1), d), _mm512_cvtepi32_ps(p01), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(SPREAD(2, 3), d), _mm512_cvtepi32_ps(p23), acc1);
    }
    const __m512 acc01 = _mm512_add_ps(acc0, acc1);
    __m256 acc = _mm256_add_ps(_mm512_castps512_ps256(acc01), _mm512_extractf32x8_ps(acc01, 1));
    for (; i < nb; i++) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i k = _mm256_set1_epi8((char)0x80);
        const __m256i qx = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[i].qs), k);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256i z = _mm256_setzero_si256();
        const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(z, qx, qy), _mm256_dpbusd_epi32(z, k, qy));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum_ps256(acc);
}

/* ---- K-quant dots ----
 * maddubs (u8 quants x s8 activations -> int16 pair sums, no saturation:
 * at most 2 * 63 * 127) then vpdpwssd against int16 group scales, which
 * multiplies and accumulates into int32 in one instruction. */

/* Spreads int16 scale g of sc16 (16 scales) over 8 int16 lanes, four
 * groups per 512-bit vector: vector k covers groups 4k..4k+3. */
#define GROUP4_W(a)                                                                                          \
    _mm512_set_epi16(a + 3, a + 3, a + 3, a + 3, a + 3, a + 3, a + 3, a + 3, a + 2, a + 2, a + 2, a + 2, a + 2, \
                     a + 2, a + 2, a + 2, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a + 1, a, a, a, a, a, a, \
                     a, a)

/* sum over the 16 groups of 16 of scale_g * dot_g, given 4 vectors of 64
 * unsigned quants (elements 64k..64k+63) and the group scales as int16. */
static inline __m512i scaled_dot_256(const __m512i q[4], const int8_t *q8, __m512i sc16) {
    /* two accumulators: vpdpwssd's latency would otherwise serialise */
    __m512i s0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(q[0], _mm512_loadu_si512(q8)),
                                     _mm512_permutexvar_epi16(GROUP4_W(0), sc16));
    __m512i s1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(q[1], _mm512_loadu_si512(q8 + 64)),
                                     _mm512_permutexvar_epi16(GROUP4_W(4), sc16));
    s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(q[2], _mm512_loadu_si512(q8 + 128)),
                             _mm512_permutexvar_epi16(GROUP4_W(8), sc16));
    s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(q[3], _mm512_loadu_si512(q8 + 192)),
                             _mm512_permutexvar_epi16(GROUP4_W(12), sc16));
    return _mm512_add_epi32(s0, s1);
}

static void vec_dot_q2_K_q8_K_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_min = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0F)));
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].dmin)),
                                  _mm256_cvtepi32_ps(_mm256_madd_epi16(mins16, bsums)), acc_min);

        const __m512i sc16 =
            _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sc8, _mm_set1_epi8(0x0F))));
        /* element 128h + 32j + l is (qs[32h + l] >> 2j) & 3: the 64-element
         * vector 2h + j/2 pairs shifts 2j and 2j + 2 */
        __m512i q[4];
        for (int h = 0; h < 2; h++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const __m512i r2 = _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 2), 1);
            q[2 * h] = _mm512_and_si512(r2, m3);
            q[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(r2, 4), m3);
        }
        const __m512i sumi = scaled_dot_256(q, y[i].qs, sc16);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * h2f(x[i].d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum_ps256(acc_min);
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

/* Q2_K's 2-bit layout plus a third bit from hmask, added as 4 by a masked
 * byte add; codes q' = q + 4 in [0, 7] go through maddubs unsigned and the
 * offset 4 * sum_g sc_g * bsums_g comes out at the end (as Q6_K's 32). */
static void vec_dot_q3_K_q8_K_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q3_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m512i m3 = _mm512_set1_epi8(3), k4 = _mm512_set1_epi8(4);
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(q3_K_scales(&x[i]), _mm_set1_epi8(32)));
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        /* 4 * sum_g sc_g * bsums_g, lane by lane (only the total matters) */
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 2);
        /* vector 2h + c holds elements 128h + 64c + 0..63, whose top bits
         * are bits 4h + 2c (first 32) and 4h + 2c + 1 (last 32) of hmask[l]:
         * hm2 = [hmask, hmask >> 1] lines both up at bit 4h + 2c (the 16-bit
         * shift only dirties bit 7, never tested) */
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        const __m512i hm2 = _mm512_inserti64x4(_mm512_castsi256_si512(hm), _mm256_srli_epi16(hm, 1), 1);
        __m512i q[4];
        for (int h = 0; h < 2; h++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const __m512i r2 = _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 2), 1);
            const __m512i q0 = _mm512_and_si512(r2, m3);
            const __m512i q1 = _mm512_and_si512(_mm512_srli_epi16(r2, 4), m3);
            const __mmask64 b0 = _mm512_test_epi8_mask(hm2, _mm512_set1_epi8((char)(1 << (4 * h))));
            const __mmask64 b1 = _mm512_test_epi8_mask(hm2, _mm512_set1_epi8((char)(1 << (4 * h + 2))));
            q[2 * h] = _mm512_mask_add_epi8(q0, b0, q0, k4);
            q[2 * h + 1] = _mm512_mask_add_epi8(q1, b1, q1, k4);
        }
        const __m512i sumi =
            _mm512_sub_epi32(scaled_dot_256(q, y[i].qs, _mm512_castsi256_si512(sc16)), _mm512_zextsi256_si512(offset));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * h2f(x[i].d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}

static void vec_dot_q4_K_q8_K_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    /* vpshufb patterns putting int16 scale 2j in 128-bit lanes 0-1 and
     * 2j + 1 in lanes 2-3 (the low / high nibble halves of vector j) */
    const __m512i sc_pair[4] = {
        _mm512_set_epi64(0x0302030203020302ll, 0x0302030203020302ll, 0x0302030203020302ll, 0x0302030203020302ll,
                         0x0100010001000100ll, 0x0100010001000100ll, 0x0100010001000100ll, 0x0100010001000100ll),
        _mm512_set_epi64(0x0706070607060706ll, 0x0706070607060706ll, 0x0706070607060706ll, 0x0706070607060706ll,
                         0x0504050405040504ll, 0x0504050405040504ll, 0x0504050405040504ll, 0x0504050405040504ll),
        _mm512_set_epi64(0x0b0a0b0a0b0a0b0all, 0x0b0a0b0a0b0a0b0all, 0x0b0a0b0a0b0a0b0all, 0x0b0a0b0a0b0a0b0all,
                         0x0908090809080908ll, 0x0908090809080908ll, 0x0908090809080908ll, 0x0908090809080908ll),
        _mm512_set_epi64(0x0f0e0f0e0f0e0f0ell, 0x0f0e0f0e0f0e0f0ell, 0x0f0e0f0e0f0e0f0ell, 0x0f0e0f0e0f0e0f0ell,
                         0x0d0c0d0c0d0c0d0cll, 0x0d0c0d0c0d0c0d0cll, 0x0d0c0d0c0d0c0d0cll, 0x0d0c0d0c0d0c0d0cll),
    };
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_min = _mm256_setzero_ps();
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

        const __m512i sc16 = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(scm)); /* sc0-7 as int16, every lane */
        /* two accumulators: vpdpwssd's latency would otherwise serialise */
        __m512i sumi[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 4
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m512i q = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
            const __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512(y[i].qs + 64 * j));
            sumi[j & 1] = _mm512_dpwssd_epi32(sumi[j & 1], p, _mm512_shuffle_epi8(sc16, sc_pair[j]));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * h2f(x[i].d)), _mm512_cvtepi32_ps(_mm512_add_epi32(sumi[0], sumi[1])), acc);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum_ps256(acc_min);
}

static void vec_dot_q5_K_q8_K_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F), k16 = _mm512_set1_epi8(16);
    /* vpshufb patterns putting int16 scale 2j in 128-bit lanes 0-1 and
     * 2j + 1 in lanes 2-3 (as in the Q4_K kernel) */
    const __m512i sc_pair[4] = {
        _mm512_set_epi64(0x0302030203020302ll, 0x0302030203020302ll, 0x0302030203020302ll, 0x0302030203020302ll,
                         0x0100010001000100ll, 0x0100010001000100ll, 0x0100010001000100ll, 0x0100010001000100ll),
        _mm512_set_epi64(0x0706070607060706ll, 0x0706070607060706ll, 0x0706070607060706ll, 0x0706070607060706ll,
                         0x0504050405040504ll, 0x0504050405040504ll, 0x0504050405040504ll, 0x0504050405040504ll),
        _mm512_set_epi64(0x0b0a0b0a0b0a0b0all, 0x0b0a0b0a0b0a0b0all, 0x0b0a0b0a0b0a0b0all, 0x0b0a0b0a0b0a0b0all,
                         0x0908090809080908ll, 0x0908090809080908ll, 0x0908090809080908ll, 0x0908090809080908ll),
        _mm512_set_epi64(0x0f0e0f0e0f0e0f0ell, 0x0f0e0f0e0f0e0f0ell, 0x0f0e0f0e0f0e0f0ell, 0x0f0e0f0e0f0e0f0ell,
                         0x0d0c0d0c0d0c0d0cll, 0x0d0c0d0c0d0c0d0cll, 0x0d0c0d0c0d0c0d0cll, 0x0d0c0d0c0d0c0d0cll),
    };
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_min = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        /* scales and mins exactly as Q4_K (same 12 bytes, same offset) */
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

        const __m512i sc16 = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(scm));
        /* vector j holds elements 64j + 0..63; their fifth bits are bits 2j
         * (first 32) and 2j + 1 (last 32) of qh[l]: qh2 = [qh, qh >> 1]
         * lines both up at bit 2j (the shift only dirties bit 7) */
        const __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
        const __m512i qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 1), 1);
        __m512i sumi[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 4
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            __m512i q = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
            q = _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(qh2, _mm512_set1_epi8((char)(1 << (2 * j)))), q, k16);
            const __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512(y[i].qs + 64 * j));
            sumi[j & 1] = _mm512_dpwssd_epi32(sumi[j & 1], p, _mm512_shuffle_epi8(sc16, sc_pair[j]));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * h2f(x[i].d)), _mm512_cvtepi32_ps(_mm512_add_epi32(sumi[0], sumi[1])), acc);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum_ps256(acc_min);
}

static void vec_dot_q6_K_q8_K_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q6_K *restrict x = vx;
    const block_q8_K *restrict y = vy;
    const int nb = n / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m6 = _mm512_set1_epi8(0x3F);
    __m512 acc = _mm512_setzero_ps();
    float acc_offset = 0;
    for (int i = 0; i < nb; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        /* stored q' = q + 32: sum sc*q*y = sum sc*q'*y - 32 * sum sc*bsum */
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const int offset = 32 * hsum_epi32_256(_mm256_madd_epi16(sc16, bsums));

        __m512i q[4];
        for (int h = 0; h < 2; h++) {
            /* half h: the low nibbles of ql[64h..64h+63] are elements 0-63,
             * the high nibbles 64-127; bits 2k..2k+1 of qh[32h + l] are the
             * top of element 32k + l. hz = [qh, qh >> 2] lines those bits up
             * at bits 0-1 (vector 2h, shifted up by 4) and 4-5 (vector 2h+1). */
            const __m512i ql = _mm512_loadu_si512(x[i].ql + 64 * h);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            const __m512i hz = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
            /* 0xCA: bitwise m4 ? low : high, then keep 6 bits */
            q[2 * h] = _mm512_and_si512(_mm512_ternarylogic_epi32(m4, ql, _mm512_slli_epi16(hz, 4), 0xCA), m6);
            q[2 * h + 1] = _mm512_and_si512(_mm512_ternarylogic_epi32(m4, _mm512_srli_epi16(ql, 4), hz, 0xCA), m6);
        }
        const __m512i sumi = scaled_dot_256(q, y[i].qs, _mm512_castsi256_si512(sc16));
        const float d = y[i].d * h2f(x[i].d);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        acc_offset += d * (float)offset;
    }
    *s = _mm512_reduce_add_ps(acc) - acc_offset;
}

/* ---- activation quantizers (bit-equal to the reference) ---- */

/* roundf() of 16 floats as int32: round half away from zero. */
static inline __m512i round_away_epi32(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
    return _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, one));
}

/* Quantizes one 32-float block to y_qs; returns amax-derived d, sum of quants. */
static inline float quantize_block_q8(const float *x, int8_t *qs, int *sum) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = round_away_epi32(_mm512_mul_ps(v0, vid));
    const __m512i q1 = round_away_epi32(_mm512_mul_ps(v1, vid));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(q1));
    if (sum) *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    return d;
}

static void quantize_row_q8_0_avx512(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *restrict y = vy;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = quantize_block_q8(x + QK8_0 * i, y[i].qs, NULL);
        y[i].d = ac_fp32_to_fp16(d);
    }
}

static void quantize_row_q8_1_avx512(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *restrict y = vy;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        int sum;
        const float d = quantize_block_q8(x + QK8_1 * i, y[i].qs, &sum);
        y[i].d = ac_fp32_to_fp16(d);
        y[i].s = ac_fp32_to_fp16(sum * d);
    }
}

static void quantize_row_q8_K_avx512(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *restrict y = vy;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        __m512 m = _mm512_setzero_ps();
        for (int k = 0; k < QK_K / 16; k++) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)));
        const float amax = _mm512_reduce_max_ps(m);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the reference keeps the sign of the first element of largest magnitude */
        float max = 0;
        const __m512 vamax = _mm512_set1_ps(amax);
        for (int k = 0; k < QK_K / 16; k++) {
            const __mmask16 eq = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)), vamax, _CMP_EQ_OQ);
            if (eq) {
                max = x[16 * k + __builtin_ctz((unsigned)eq)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 vis = _mm512_set1_ps(iscale);
        for (int g = 0; g < QK_K / 16; g++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), vis));
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(y[i].qs + 16 * g), _mm512_cvtepi32_epi8(q));
            y[i].bsums[g] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- Q2_0 (ours) ---- */

/* The 32 two-bit codes of a Q2_0 block as bytes, in element order (see
 * block_q2_0: 64-bit lane k of the broadcast code bytes shifted by 2k). */
static inline __m256i crumbs_32(const uint8_t *qs) {
    long long v;
    memcpy(&v, qs, 8);
    const __m256i sh = _mm256_srlv_epi64(_mm256_set1_epi64x(v), _mm256_setr_epi64x(0, 2, 4, 6));
    return _mm256_and_si256(sh, _mm256_set1_epi8(3));
}

/* Two blocks per iteration into two accumulators; codes are unsigned, so
 * one vpdpbusd per block and no offset correction. */
static void vec_dot_q2_0_q8_1_avx512(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_0 *restrict x = vx;
    const block_q8_1 *restrict y = vy;
    const int nb = n / QK8_1;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float summs = 0;
    int i = 0;
    for (; i + 2 <= nb; i += 2) {
        summs += h2f(x[i].m) * h2f(y[i].s) + h2f(x[i + 1].m) * h2f(y[i + 1].s);
        const __m256i p0 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), crumbs_32(x[i].qs),
                                               _mm256_loadu_si256((const __m256i *)y[i].qs));
        const __m256i p1 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), crumbs_32(x[i + 1].qs),
                                               _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i + 1].d) * h2f(y[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; i < nb; i++) {
        summs += h2f(x[i].m) * h2f(y[i].s);
        const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), crumbs_32(x[i].qs),
                                              _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc0);
    }
    *s = hsum_ps256(_mm256_add_ps(acc0, acc1)) + summs;
}

/* ---- dequantizers ---- */

static void dequantize_row_q4_1_avx512(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_1 *restrict x = vx;
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const __m512 d = _mm512_set1_ps(h2f(x[i].d));
        const __m512 m = _mm512_set1_ps(h2f(x[i].m));
        const __m128i t = _mm_loadu_si128((const __m128i *)x[i].qs);
        const __m128i lo = _mm_and_si128(t, _mm_set1_epi8(0x0F));
        const __m128i hi = _mm_and_si128(_mm_srli_epi16(t, 4), _mm_set1_epi8(0x0F));
        _mm512_storeu_ps(y + QK4_1 * i, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), d, m));
        _mm512_storeu_ps(y + QK4_1 * i + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), d, m));
    }
}

static void dequantize_row_q8_0_avx512(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_0 *restrict x = vx;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const __m512 d = _mm512_set1_ps(h2f(x[i].d));
        for (int k = 0; k < 2; k++) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(x[i].qs + 16 * k));
            _mm512_storeu_ps(y + QK8_0 * i + 16 * k, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d));
        }
    }
}

void ac_quant_install_avx512(struct ac_type_traits *t) {
    t[AC_TYPE_F32].vec_dot = vec_dot_f32_avx512;
    t[AC_TYPE_F16].vec_dot = vec_dot_f16_avx512;
    t[AC_TYPE_F16].to_float = dequantize_row_f16_avx512;
    t[AC_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0_avx512;
    t[AC_TYPE_Q4_1].vec_dot = vec_dot_q4_1_q8_1_avx512;
    t[AC_TYPE_Q4_1].to_float = dequantize_row_q4_1_avx512;
    t[AC_TYPE_Q5_0].vec_dot = vec_dot_q5_0_q8_0_avx512;
    t[AC_TYPE_Q5_1].vec_dot = vec_dot_q5_1_q8_1_avx512;
    t[AC_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0_avx512;
    t[AC_TYPE_Q8_0].to_float = dequantize_row_q8_0_avx512;
    t[AC_TYPE_Q8_0].from_float = quantize_row_q8_0_avx512;
    t[AC_TYPE_Q8_1].from_float = quantize_row_q8_1_avx512;
    t[AC_TYPE_Q2_K].vec_dot = vec_dot_q2_K_q8_K_avx512;
    t[AC_TYPE_Q3_K].vec_dot = vec_dot_q3_K_q8_K_avx512;
    t[AC_TYPE_Q4_K].vec_dot = vec_dot_q4_K_q8_K_avx512;
    t[AC_TYPE_Q5_K].vec_dot = vec_dot_q5_K_q8_K_avx512;
    t[AC_TYPE_Q6_K].vec_dot = vec_dot_q6_K_q8_K_avx512;
    t[AC_TYPE_Q8_K].from_float = quantize_row_q8_K_avx512;
    t[AC_TYPE_Q2_0].vec_dot = vec_dot_q2_0_q8_1_avx512;
}
