/* sparse_avx512.c - fused dequantize-and-accumulate kernels (AVX-512F/BW).
 *
 * A kept input is one row: a 0.3-6 KB chunk at a random place. Read one
 * after another, such chunks ran at 35-55% of the streaming bandwidth of a
 * core (2-core EPYC, bench/membw.c -R): each starts with a full memory
 * latency that the hardware prefetcher does not hide, and one core keeps
 * too few misses in flight. Hence the loop's shape:
 * - the kept rows are cut into STREAMS far-apart parts walked side by
 *   side, STREAMS rows per step, so each accumulator vector is loaded and
 *   stored once per STREAMS rows (one row at a time, the accumulator round
 *   trips bound the loop);
 * - while a step reads PACE elements of its rows, it prefetches (to L2) the
 *   same elements of the rows some steps ahead, about PREFETCH_BYTES ahead
 *   in all, so the prefetches advance with the reads instead of stalling
 *   in a burst.
 * The rows of a step are summed in a fixed order, so results differ from
 * the one-row reference only by float rounding. */
#include <immintrin.h>
#include <string.h>

#include "model/sparse.h"
#include "quant/quant.h"

#define STREAMS 8
#define PACE 64
#define PREFETCH_BYTES 16384

static inline float half_to_float(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* acc[0..len) += sum over r < n of xs[r] * row r (n <= STREAMS, len <=
 * PACE): one step of a type; rows point at the step's first block. */
typedef void (*rows_fn)(const uint8_t *const *rows, const float *xs, int n, float *acc, int len);

/* One group of n rows over the slice, PACE elements at a time; next: the
 * rows to prefetch alongside, or NULL. unit_bytes: bytes of PACE elements
 * of a row. */
static inline void walk_group(const uint8_t *const *rows, const uint8_t *const *next, const float *xs, int n,
                              size_t unit_bytes, float *acc, int len, rows_fn step) {
    for (int u = 0; u * PACE < len; u++) {
        const size_t o = (size_t)u * unit_bytes;
        if (next)
            for (int s = 0; s < n; s++)
                for (size_t b = 0; b < unit_bytes; b += 64) _mm_prefetch((const char *)next[s] + o + b, _MM_HINT_T1);
        const uint8_t *part[STREAMS];
        for (int s = 0; s < n; s++) part[s] = rows[s] + o;
        step(part, xs, n, acc + u * PACE, len - u * PACE < PACE ? len - u * PACE : PACE);
    }
}

/* The kept rows idx[0..n_idx) as STREAMS parts side by side (see the top
 * of the file); the n_idx % STREAMS left over go as one last group. */
static inline void walk(const uint8_t *base, size_t row_bytes, size_t unit_bytes, const int32_t *idx, int n_idx,
                        const float *x, float *acc, int len, rows_fn step) {
    const int part = n_idx / STREAMS;
    const size_t slice_bytes = unit_bytes * (size_t)((len + PACE - 1) / PACE);
    int ahead = (int)(PREFETCH_BYTES / (STREAMS * slice_bytes));
    if (ahead < 1) ahead = 1;
    const uint8_t *rows[STREAMS], *next[STREAMS];
    float xs[STREAMS];
    for (int k = 0; k < part; k++) {
        for (int s = 0; s < STREAMS; s++) {
            const int32_t r = idx[k + s * part];
            rows[s] = base + (size_t)r * row_bytes, xs[s] = x[r];
            if (k + ahead < part) next[s] = base + (size_t)idx[k + ahead + s * part] * row_bytes;
        }
        walk_group(rows, k + ahead < part ? next : NULL, xs, STREAMS, unit_bytes, acc, len, step);
    }
    const int rest = n_idx - STREAMS * part;
    for (int s = 0; s < rest; s++) {
        const int32_t r = idx[STREAMS * part + s];
        rows[s] = base + (size_t)r * row_bytes, xs[s] = x[r];
    }
    if (rest > 0) walk_group(rows, NULL, xs, rest, unit_bytes, acc, len, step);
}

/* 16 nibbles (low or high halves of 16 bytes) as floats */
static inline __m512 nibbles_lo(__m128i b) { return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_cvtepu8_epi32(b), _mm512_set1_epi32(15))); }
static inline __m512 nibbles_hi(__m128i b) { return _mm512_cvtepi32_ps(_mm512_srli_epi32(_mm512_cvtepu8_epi32(b), 4)); }

/* Q4_0 block (18 bytes): d, 16 bytes; element j low nibble, j+16 high; x = d*(q-8) */
static inline void rows_q4_0(const uint8_t *const *rows, const float *xs, int n, float *acc, int len) {
    for (int i = 0; i < len / 32; i++) {
        float *y = acc + 32 * i;
        __m512 lo = _mm512_loadu_ps(y), hi = _mm512_loadu_ps(y + 16);
        float offset = 0.0f;
#pragma GCC unroll 8
        for (int r = 0; r < n; r++) {
            const uint8_t *b = rows[r] + 18 * (size_t)i;
            const float s = xs[r] * half_to_float(b);
            const __m512 vs = _mm512_set1_ps(s);
            const __m128i qs = _mm_loadu_si128((const __m128i *)(b + 2));
            lo = _mm512_fmadd_ps(vs, nibbles_lo(qs), lo);
            hi = _mm512_fmadd_ps(vs, nibbles_hi(qs), hi);
            offset -= 8.0f * s;
        }
        const __m512 vo = _mm512_set1_ps(offset);
        _mm512_storeu_ps(y, _mm512_add_ps(lo, vo));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(hi, vo));
    }
}

/* Q4_1 block (20 bytes): d, m, 16 bytes; x = d*q + m */
static inline void rows_q4_1(const uint8_t *const *rows, const float *xs, int n, float *acc, int len) {
    for (int i = 0; i < len / 32; i++) {
        float *y = acc + 32 * i;
        __m512 lo = _mm512_loadu_ps(y), hi = _mm512_loadu_ps(y + 16);
        float offset = 0.0f;
#pragma GCC unroll 8
        for (int r = 0; r < n; r++) {
            const uint8_t *b = rows[r] + 20 * (size_t)i;
            const __m512 vs = _mm512_set1_ps(xs[r] * half_to_float(b));
            const __m128i qs = _mm_loadu_si128((const __m128i *)(b + 4));
            lo = _mm512_fmadd_ps(vs, nibbles_lo(qs), lo);
            hi = _mm512_fmadd_ps(vs, nibbles_hi(qs), hi);
            offset += xs[r] * half_to_float(b + 2);
        }
        const __m512 vo = _mm512_set1_ps(offset);
        _mm512_storeu_ps(y, _mm512_add_ps(lo, vo));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(hi, vo));
    }
}

/* Q2_0 block (12 bytes): d, m, 8 bytes; element 8k + l is bits 2k..2k+1
 * of byte l; x = d*q + m. The 8 bytes, widened to 16 lanes twice over,
 * shifted per lane by 0/2 (elements 0-15) or 4/6 (16-31). */
static inline void rows_q2_0(const uint8_t *const *rows, const float *xs, int n, float *acc, int len) {
    const __m512i shift_lo = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i shift_hi = _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4);
    const __m512i three = _mm512_set1_epi32(3);
    for (int i = 0; i < len / 32; i++) {
        float *y = acc + 32 * i;
        __m512 lo = _mm512_loadu_ps(y), hi = _mm512_loadu_ps(y + 16);
        float offset = 0.0f;
#pragma GCC unroll 8
        for (int r = 0; r < n; r++) {
            const uint8_t *b = rows[r] + 12 * (size_t)i;
            const __m512 vs = _mm512_set1_ps(xs[r] * half_to_float(b));
            const __m256i q8 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + 4)));
            const __m512i q16 = _mm512_inserti64x4(_mm512_castsi256_si512(q8), q8, 1);
            lo = _mm512_fmadd_ps(vs, _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(q16, shift_lo), three)), lo);
            hi = _mm512_fmadd_ps(vs, _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(q16, shift_hi), three)), hi);
            offset += xs[r] * half_to_float(b + 2);
        }
        const __m512 vo = _mm512_set1_ps(offset);
        _mm512_storeu_ps(y, _mm512_add_ps(lo, vo));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(hi, vo));
    }
}

/* Q8_0 block (34 bytes): d, 32 int8; x = d*q */
static inline void rows_q8_0(const uint8_t *const *rows, const float *xs, int n, float *acc, int len) {
    for (int i = 0; i < len / 32; i++) {
        float *y = acc + 32 * i;
        __m512 lo = _mm512_loadu_ps(y), hi = _mm512_loadu_ps(y + 16);
#pragma GCC unroll 8
        for (int r = 0; r < n; r++) {
            const uint8_t *b = rows[r] + 34 * (size_t)i;
            const __m512 vs = _mm512_set1_ps(xs[r] * half_to_float(b));
            const __m128i q0 = _mm_loadu_si128((const __m128i *)(b + 2)), q1 = _mm_loadu_si128((const __m128i *)(b + 18));
            lo = _mm512_fmadd_ps(vs, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), lo);
            hi = _mm512_fmadd_ps(vs, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), hi);
        }
        _mm512_storeu_ps(y, lo);
        _mm512_storeu_ps(y + 16, hi);
    }
}

/* F16 rows: 16 halves at a time, masked tail */
static inline void rows_f16(const uint8_t *const *rows, const float *xs, int n, float *acc, int len) {
    __m512 vx[STREAMS];
    for (int r = 0; r < n; r++) vx[r] = _mm512_set1_ps(xs[r]);
    int i = 0;
    for (; i + 16 <= len; i += 16) {
        __m512 a = _mm512_loadu_ps(acc + i);
#pragma GCC unroll 8
        for (int r = 0; r < n; r++)
            a = _mm512_fmadd_ps(vx[r], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(rows[r] + 2 * (size_t)i))), a);
        _mm512_storeu_ps(acc + i, a);
    }
    if (i < len) {
        const __mmask16 m = (__mmask16)((1u << (len - i)) - 1);
        __m512 a = _mm512_maskz_loadu_ps(m, acc + i);
        for (int r = 0; r < n; r++)
            a = _mm512_fmadd_ps(vx[r], _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, rows[r] + 2 * (size_t)i)), a);
        _mm512_mask_storeu_ps(acc + i, m, a);
    }
}

/* One entry per type: the slice starts (off / 32) blocks into the row. */
#define SPARSE_KERNEL(name, step, blck, bytes)                                                                   \
    static void name(uint32_t type, const uint8_t *rows, size_t row_bytes, int64_t off, const int32_t *idx,    \
                     int n_idx, const float *x, float *acc, int len, float *scratch) {                       \
        (void)type, (void)scratch;                                                                           \
        walk(rows + (size_t)(off / (blck)) * (bytes), row_bytes, PACE / (blck) * (size_t)(bytes), idx, n_idx, \
             x, acc, len, step);                                                                             \
    }
SPARSE_KERNEL(gemv_q4_0, rows_q4_0, 32, 18)
SPARSE_KERNEL(gemv_q4_1, rows_q4_1, 32, 20)
SPARSE_KERNEL(gemv_q8_0, rows_q8_0, 32, 34)
SPARSE_KERNEL(gemv_q2_0, rows_q2_0, 32, 12)
SPARSE_KERNEL(gemv_f16, rows_f16, 1, 2)

ac_sparse_gemv_fn ac_sparse_gemv_avx512(uint32_t type) {
    switch (type) {
    case AC_TYPE_Q4_0: return gemv_q4_0;
    case AC_TYPE_Q4_1: return gemv_q4_1;
    case AC_TYPE_Q8_0: return gemv_q8_0;
    case AC_TYPE_Q2_0: return gemv_q2_0;
    case AC_TYPE_F16: return gemv_f16;
    default: return NULL;
    }
}
