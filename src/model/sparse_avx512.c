/* sparse_avx512.c - fused dequantize-and-accumulate kernels (AVX-512F/BW).
 * Each input row's slice is decoded block by block straight into FMAs on
 * the accumulator, which stays in L1 across rows. */
#include <immintrin.h>
#include <string.h>

#include "model/sparse.h"
#include "quant/quant.h"

static inline float half_to_float(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* 16 nibbles (low or high halves of 16 bytes) as floats */
static inline __m512 nibbles_lo(__m128i b) { return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_cvtepu8_epi32(b), _mm512_set1_epi32(15))); }
static inline __m512 nibbles_hi(__m128i b) { return _mm512_cvtepi32_ps(_mm512_srli_epi32(_mm512_cvtepu8_epi32(b), 4)); }

/* Q4_0 block (18 bytes): d, 16 bytes; element j low nibble, j+16 high; x = d*(q-8) */
static void gemv_q4_0(uint32_t type, const uint8_t *rows, size_t row_bytes, int64_t off, const int32_t *idx, int n_idx,
                      const float *x, float *acc, int len, float *scratch) {
    (void)type, (void)scratch;
    const int nb = len / 32;
    const uint8_t *base = rows + (size_t)(off / 32) * 18;
    for (int k = 0; k < n_idx; k++) {
        const uint8_t *b = base + (size_t)idx[k] * row_bytes;
        const float xv = x[idx[k]];
        for (int i = 0; i < nb; i++, b += 18) {
            const float s = xv * half_to_float(b);
            const __m512 vs = _mm512_set1_ps(s), vo = _mm512_set1_ps(-8.0f * s);
            const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
            float *y = acc + 32 * i;
            _mm512_storeu_ps(y, _mm512_add_ps(_mm512_fmadd_ps(vs, nibbles_lo(q), _mm512_loadu_ps(y)), vo));
            _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_fmadd_ps(vs, nibbles_hi(q), _mm512_loadu_ps(y + 16)), vo));
        }
    }
}

/* Q4_1 block (20 bytes): d, m, 16 bytes; x = d*q + m */
static void gemv_q4_1(uint32_t type, const uint8_t *rows, size_t row_bytes, int64_t off, const int32_t *idx, int n_idx,
                      const float *x, float *acc, int len, float *scratch) {
    (void)type, (void)scratch;
    const int nb = len / 32;
    const uint8_t *base = rows + (size_t)(off / 32) * 20;
    for (int k = 0; k < n_idx; k++) {
        const uint8_t *b = base + (size_t)idx[k] * row_bytes;
        const float xv = x[idx[k]];
        for (int i = 0; i < nb; i++, b += 20) {
            const __m512 vs = _mm512_set1_ps(xv * half_to_float(b)), vm = _mm512_set1_ps(xv * half_to_float(b + 2));
            const __m128i q = _mm_loadu_si128((const __m128i *)(b + 4));
            float *y = acc + 32 * i;
            _mm512_storeu_ps(y, _mm512_add_ps(_mm512_fmadd_ps(vs, nibbles_lo(q), _mm512_loadu_ps(y)), vm));
            _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_fmadd_ps(vs, nibbles_hi(q), _mm512_loadu_ps(y + 16)), vm));
        }
    }
}

/* Q8_0 block (34 bytes): d, 32 int8; x = d*q */
static void gemv_q8_0(uint32_t type, const uint8_t *rows, size_t row_bytes, int64_t off, const int32_t *idx, int n_idx,
                      const float *x, float *acc, int len, float *scratch) {
    (void)type, (void)scratch;
    const int nb = len / 32;
    const uint8_t *base = rows + (size_t)(off / 32) * 34;
    for (int k = 0; k < n_idx; k++) {
        const uint8_t *b = base + (size_t)idx[k] * row_bytes;
        const float xv = x[idx[k]];
        for (int i = 0; i < nb; i++, b += 34) {
            const __m512 vs = _mm512_set1_ps(xv * half_to_float(b));
            const __m128i q0 = _mm_loadu_si128((const __m128i *)(b + 2)), q1 = _mm_loadu_si128((const __m128i *)(b + 18));
            float *y = acc + 32 * i;
            _mm512_storeu_ps(y, _mm512_fmadd_ps(vs, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), _mm512_loadu_ps(y)));
            _mm512_storeu_ps(y + 16,
                             _mm512_fmadd_ps(vs, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), _mm512_loadu_ps(y + 16)));
        }
    }
}

/* F16 rows: 16 halves at a time, masked tail */
static void gemv_f16(uint32_t type, const uint8_t *rows, size_t row_bytes, int64_t off, const int32_t *idx, int n_idx,
                     const float *x, float *acc, int len, float *scratch) {
    (void)type, (void)scratch;
    const uint8_t *base = rows + (size_t)off * 2;
    for (int k = 0; k < n_idx; k++) {
        const uint16_t *h = (const uint16_t *)(const void *)(base + (size_t)idx[k] * row_bytes);
        const __m512 vx = _mm512_set1_ps(x[idx[k]]);
        int i = 0;
        for (; i + 16 <= len; i += 16)
            _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(vx, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))),
                                                      _mm512_loadu_ps(acc + i)));
        if (i < len) {
            const __mmask16 m = (__mmask16)((1u << (len - i)) - 1);
            const __m512 w = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i));
            _mm512_mask_storeu_ps(acc + i, m, _mm512_fmadd_ps(vx, w, _mm512_maskz_loadu_ps(m, acc + i)));
        }
    }
}

ac_sparse_gemv_fn ac_sparse_gemv_avx512(uint32_t type) {
    switch (type) {
    case AC_TYPE_Q4_0: return gemv_q4_0;
    case AC_TYPE_Q4_1: return gemv_q4_1;
    case AC_TYPE_Q8_0: return gemv_q8_0;
    case AC_TYPE_F16: return gemv_f16;
    default: return NULL;
    }
}
