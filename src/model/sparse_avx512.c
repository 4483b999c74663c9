/* sparse_avx512.c - sparse matmul kernels (AVX-512F/BW/VNNI): fused
 * dequantize-and-accumulate float kernels (F16, Q4_1), the integer kernels
 * of sparse.h (Q8_0, Q4_0, Q2_0; see their section), and thresholding.
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
 * The rows of a step are summed in a fixed order, so the float kernels
 * differ from the one-row reference only by float rounding. The integer
 * kernels walk the same groups (ac_sparse_group) and prefetch the same way. */
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

/* One entry per float kernel (see the top of the file). */
#define SPARSE_FLOAT_KERNEL(name, step, blck, bytes)                                                          \
    static void name(uint32_t type, const uint8_t *rows, size_t row_bytes, const int32_t *idx, int n_idx,    \
                     const float *x, float *acc, int n_out, float *scratch) {                                \
        (void)type, (void)scratch;                                                                           \
        walk(rows, row_bytes, PACE / (blck) * (size_t)(bytes), idx, n_idx, x, acc, n_out, step);             \
    }
SPARSE_FLOAT_KERNEL(gemv_q4_1, rows_q4_1, 32, 20)
SPARSE_FLOAT_KERNEL(gemv_f16, rows_f16, 1, 2)

/* ---------------------------------------------------------------- integer kernels
 *
 * Q8_0, Q4_0 and Q2_0 in the sparse layout, the algorithm of sparse.h.
 * Per group of 8 rows, the scales of 16 blocks at a time become, per
 * block, the int8 coefficients of rows 0-3 and 4-7 packed in one int32
 * each, the step S and the int32 start of the dot products. Then 64 code
 * bytes of 4 rows at a time (4 Q4_0 blocks, 2 Q8_0 or 8 Q2_0 blocks) are
 * interleaved with in-lane unpacks so that each int32 lane holds one
 * output's code byte of the 4 rows, and vpdpbusd multiplies them by the
 * packed coefficients of their block: 64 products per instruction instead
 * of a convert and an FMA per 16 weights. Q4_0's high nibbles and Q2_0's
 * upper fields are used in place (masked, not shifted): their products
 * come out times 16 or 4^f, and the step is divided by as much, exactly.
 *
 * One core (bench/bench_sparse.c), GB/s of rows read, from L2 / memory:
 * Q4_0 8.0 / 7.0 with float FMAs, 14.8 / 14.4 so; Q8_0 17.9 / 14.0 ->
 * 23.8 / 15.9; Q2_0 4.4 / 4.0 -> 10.0 / 10.5: still compute-bound.
 *
 * The unpacks leave a lane's 4 int32 holding outputs 4k..4k+3 of one
 * 16-byte lane, so the sums are kept in that order (slot by slot, 16
 * floats each) in scratch and put in place once at the end of the call. */

#define GROUP AC_SPARSE_GROUP

struct int_scratch {
    float *sum;         /* the chunks' sums, in slot order */
    int32_t *pc0, *pc1; /* per block: the coefficients of rows 0-3, 4-7 as bytes */
    int32_t *init;      /* per block: -bias times the sum of the coefficients */
    float *step;        /* per block: S */
    float *off;         /* per block: sum of x * m (Q2_0) */
};

static struct int_scratch int_scratch(float *scratch, int n_out) {
    /* the int32 arrays share the float scratch (loaded and stored by intrinsics only) */
    const size_t nb = (size_t)n_out / 32 + 32, sum = (size_t)n_out + 256;
    void *ints = scratch + sum;
    return (struct int_scratch){.sum = scratch,
                                .pc0 = ints,
                                .pc1 = (int32_t *)ints + nb,
                                .init = (int32_t *)ints + 2 * nb,
                                .step = scratch + sum + 3 * nb,
                                .off = scratch + sum + 4 * nb};
}

/* Low bytes of c0..c3 as the bytes of one int32 per lane (bitwise
 * selects: 0xd8 takes the second operand where the third one has a 1 bit,
 * else the first). */
static inline __m512i pack_bytes(__m512i c0, __m512i c1, __m512i c2, __m512i c3) {
    const __m512i lo = _mm512_ternarylogic_epi32(_mm512_slli_epi32(c1, 8), c0, _mm512_set1_epi32(0xff), 0xd8);
    const __m512i hi = _mm512_ternarylogic_epi32(_mm512_slli_epi32(c3, 24), _mm512_slli_epi32(c2, 16),
                                                 _mm512_set1_epi32(0xff0000), 0xd8);
    return _mm512_ternarylogic_epi32(hi, lo, _mm512_set1_epi32(0xffff), 0xd8);
}

/* The per-block values of one group (rows: its 8 rows, xs 0 for padding)
 * for blocks 0..nb, 16 at a time; Q2_0 (has_m) adds x * m to off. */
static inline void group_scales(const uint8_t *const *row, const float *xs, int nb, int bias, int has_m,
                                const struct int_scratch *s) {
    const __m512 zero = _mm512_setzero_ps(), v127 = _mm512_set1_ps(127.0f);
    for (int b = 0; b < nb; b += 16) {
        const __mmask16 m = nb - b >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (nb - b)) - 1);
        __m512 sv[GROUP], amax = zero;
        #pragma GCC unroll 8
        for (int r = 0; r < GROUP; r++) {
            const __m512 d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row[r] + 2 * (size_t)b));
            sv[r] = _mm512_mul_ps(_mm512_set1_ps(xs[r]), d);
            amax = _mm512_max_ps(amax, _mm512_abs_ps(sv[r]));
        }
        const __m512 inv = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(amax, zero, _CMP_GT_OQ), v127, amax);
        __m512i c[GROUP];
        #pragma GCC unroll 8
        for (int r = 0; r < GROUP; r++) c[r] = _mm512_cvtps_epi32(_mm512_mul_ps(sv[r], inv));
        const __m512i pc0 = pack_bytes(c[0], c[1], c[2], c[3]), pc1 = pack_bytes(c[4], c[5], c[6], c[7]);
        _mm512_storeu_si512(s->pc0 + b, pc0);
        _mm512_storeu_si512(s->pc1 + b, pc1);
        /* -bias * sum of c: the packed coefficients dotted with bias bytes */
        const __m512i vb = _mm512_set1_epi8((char)bias);
        const __m512i bias_c = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), vb, pc0), vb, pc1);
        _mm512_storeu_si512(s->init + b, _mm512_sub_epi32(_mm512_setzero_si512(), bias_c));
        _mm512_storeu_ps(s->step + b, _mm512_div_ps(amax, v127));
        if (has_m) {
            __m512 off = _mm512_loadu_ps(s->off + b);
            #pragma GCC unroll 8
            for (int r = 0; r < GROUP; r++) {
                const __m512 mv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row[r] + 2 * (size_t)(nb + b)));
                off = _mm512_add_ps(off, _mm512_mul_ps(_mm512_set1_ps(xs[r]), mv));
            }
            _mm512_storeu_ps(s->off + b, off);
        }
    }
}

/* 64 code bytes of 4 rows as v[k]: lane L, int32 d = byte 16L + 4k + d of
 * rows 0-3 (v[0], v[1] from bytes 0-7 of each lane, v[2], v[3] from 8-15). */
static inline void interleave4(const uint8_t *const *row, size_t at, __mmask64 m, int first, int n_k, __m512i *v) {
    const __m512i r0 = _mm512_maskz_loadu_epi8(m, row[0] + at), r1 = _mm512_maskz_loadu_epi8(m, row[1] + at);
    const __m512i r2 = _mm512_maskz_loadu_epi8(m, row[2] + at), r3 = _mm512_maskz_loadu_epi8(m, row[3] + at);
    #pragma GCC unroll 8
    for (int half = first / 2; half * 2 < first + n_k; half++) {
        const __m512i a = half ? _mm512_unpackhi_epi8(r0, r1) : _mm512_unpacklo_epi8(r0, r1);
        const __m512i b = half ? _mm512_unpackhi_epi8(r2, r3) : _mm512_unpacklo_epi8(r2, r3);
        v[2 * half - first] = _mm512_unpacklo_epi16(a, b);
        v[2 * half + 1 - first] = _mm512_unpackhi_epi16(a, b);
    }
}

/* The 16 lanes of a per-block array where lane L of a chunk reads block
 * lane_block(L) (16 int32 or floats from a + first block of the chunk). */
static inline __m512i by_lane(const int32_t *a, __m512i pattern) {
    return _mm512_permutexvar_epi32(pattern, _mm512_loadu_si512(a));
}
static inline __m512 by_lane_ps(const float *a, __m512i pattern) {
    return _mm512_permutexvar_ps(pattern, _mm512_loadu_ps(a));
}

/* Q4_0 chunk c: blocks 4c..4c+3, one per lane. Slot 2k + h holds outputs
 * 16h + 4k + d of the lane's block (h: high nibbles). */
static inline void chunk_q4_0(const uint8_t *const *row, size_t at, __mmask64 m, const struct int_scratch *s, int c) {
    const __m512i pat = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i p0 = by_lane(s->pc0 + 4 * c, pat), p1 = by_lane(s->pc1 + 4 * c, pat);
    const __m512i init = by_lane(s->init + 4 * c, pat);
    const __m512 step = by_lane_ps(s->step + 4 * c, pat), step16 = _mm512_mul_ps(step, _mm512_set1_ps(1.0f / 16));
    const __m512i lo_mask = _mm512_set1_epi8(0x0f), hi_mask = _mm512_set1_epi8((char)0xf0);
    __m512i lo[4], hi[4];
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++) lo[k] = init, hi[k] = _mm512_slli_epi32(init, 4);
    #pragma GCC unroll 8
    for (int sub = 0; sub < 2; sub++) {
        __m512i v[4];
        interleave4(row + 4 * sub, at, m, 0, 4, v);
        const __m512i p = sub ? p1 : p0;
        #pragma GCC unroll 8
        for (int k = 0; k < 4; k++) {
            lo[k] = _mm512_dpbusd_epi32(lo[k], _mm512_and_si512(v[k], lo_mask), p);
            hi[k] = _mm512_dpbusd_epi32(hi[k], _mm512_and_si512(v[k], hi_mask), p);
        }
    }
    float *sum = s->sum + 128 * (size_t)c;
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++) {
        float *a = sum + 32 * k, *b = a + 16;
        _mm512_storeu_ps(a, _mm512_fmadd_ps(step, _mm512_cvtepi32_ps(lo[k]), _mm512_loadu_ps(a)));
        _mm512_storeu_ps(b, _mm512_fmadd_ps(step16, _mm512_cvtepi32_ps(hi[k]), _mm512_loadu_ps(b)));
    }
}

/* Q8_0 chunk c: blocks 2c, 2c+1, two lanes each. Slot k holds outputs
 * 16L + 4k + d of the chunk. */
static inline void chunk_q8_0(const uint8_t *const *row, size_t at, __mmask64 m, const struct int_scratch *s, int c) {
    const __m512i pat = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i p0 = by_lane(s->pc0 + 2 * c, pat), p1 = by_lane(s->pc1 + 2 * c, pat);
    const __m512i init = by_lane(s->init + 2 * c, pat);
    const __m512 step = by_lane_ps(s->step + 2 * c, pat);
    __m512i acc[4] = {init, init, init, init};
    #pragma GCC unroll 8
    for (int sub = 0; sub < 2; sub++) {
        __m512i v[4];
        interleave4(row + 4 * sub, at, m, 0, 4, v);
        #pragma GCC unroll 8
        for (int k = 0; k < 4; k++) acc[k] = _mm512_dpbusd_epi32(acc[k], v[k], sub ? p1 : p0);
    }
    float *sum = s->sum + 64 * (size_t)c;
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++)
        _mm512_storeu_ps(sum + 16 * k, _mm512_fmadd_ps(step, _mm512_cvtepi32_ps(acc[k]), _mm512_loadu_ps(sum + 16 * k)));
}

/* Q2_0 chunk c: blocks 8c..8c+7, lane L holding blocks 2L (k = 0, 1) and
 * 2L+1 (k = 2, 3), one half after the other. Slot 8e + 4kk + f holds
 * elements 8f + 4kk + d of block 8c + 2L + e. */
static inline void chunk_q2_0(const uint8_t *const *row, size_t at, __mmask64 m, const struct int_scratch *s, int c) {
    #pragma GCC unroll 8
    for (int e = 0; e < 2; e++) {
        const __m512i pat = _mm512_add_epi32(_mm512_set_epi32(6, 6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0),
                                             _mm512_set1_epi32(e));
        const __m512i p0 = by_lane(s->pc0 + 8 * c, pat), p1 = by_lane(s->pc1 + 8 * c, pat);
        const __m512 step = by_lane_ps(s->step + 8 * c, pat);
        __m512i acc[2][4];
        #pragma GCC unroll 8
        for (int kk = 0; kk < 2; kk++)
            #pragma GCC unroll 8
            for (int f = 0; f < 4; f++) acc[kk][f] = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int sub = 0; sub < 2; sub++) {
            __m512i v[2];
            interleave4(row + 4 * sub, at, m, 2 * e, 2, v);
            #pragma GCC unroll 8
            for (int kk = 0; kk < 2; kk++)
                #pragma GCC unroll 8
                for (int f = 0; f < 4; f++)
                    acc[kk][f] = _mm512_dpbusd_epi32(acc[kk][f], _mm512_and_si512(v[kk], _mm512_set1_epi8((char)(3 << (2 * f)))),
                                                     sub ? p1 : p0);
        }
        float *sum = s->sum + 256 * (size_t)c + 128 * (size_t)e;
        #pragma GCC unroll 8
        for (int kk = 0; kk < 2; kk++)
            #pragma GCC unroll 8
            for (int f = 0; f < 4; f++) {
                const __m512 st = _mm512_mul_ps(step, _mm512_set1_ps(1.0f / (float)(1 << (2 * f))));
                float *a = sum + 16 * (4 * kk + f);
                _mm512_storeu_ps(a, _mm512_fmadd_ps(st, _mm512_cvtepi32_ps(acc[kk][f]), _mm512_loadu_ps(a)));
            }
    }
}

typedef void (*chunk_fn)(const uint8_t *const *row, size_t at, __mmask64 m, const struct int_scratch *s, int c);

/* The groups of sparse.h in order; while a group's chunks are read, the
 * rows of the group some steps ahead are prefetched in as many paces.
 * Every chunk is 64 code bytes: blocks_per_chunk * code_bytes. */
static inline void walk_int(const uint8_t *base, size_t row_bytes, const int32_t *idx, int n_idx, const float *x,
                            int n_out, int bias, int has_m, int blocks_per_chunk, const struct int_scratch *s,
                            chunk_fn chunk) {
    const int nb = n_out / 32, n_chunks = (nb + blocks_per_chunk - 1) / blocks_per_chunk;
    const int code_bytes = 64 / blocks_per_chunk, n_groups = (n_idx + GROUP - 1) / GROUP;
    const size_t codes_at = (size_t)nb * (has_m ? 4 : 2);
    const int lines = (int)((row_bytes + 127) / 64); /* cache lines a row may touch */
    int ahead = (int)(PREFETCH_BYTES / (GROUP * row_bytes));
    if (ahead < 1) ahead = 1;
    for (int g = 0; g < n_groups; g++) {
        int32_t r[GROUP], rn[GROUP];
        const int n = ac_sparse_group(idx, n_idx, g, r);
        const int n_next = g + ahead < n_groups ? ac_sparse_group(idx, n_idx, g + ahead, rn) : 0;
        const uint8_t *row[GROUP];
        const char *next[GROUP];
        float xs[GROUP];
        for (int i = 0; i < GROUP; i++) {
            row[i] = base + (size_t)r[i < n ? i : 0] * row_bytes;
            xs[i] = i < n ? x[r[i]] : 0.0f;
        }
        for (int i = 0; i < n_next; i++) next[i] = (const char *)base + (size_t)rn[i] * row_bytes;
        group_scales(row, xs, nb, bias, has_m, s);
        for (int c = 0; c < n_chunks; c++) {
            const int l0 = c * lines / n_chunks, l1 = (c + 1) * lines / n_chunks;
            for (int i = 0; i < n_next; i++)
                for (int l = l0; l < l1; l++) _mm_prefetch(next[i] + 64 * l, _MM_HINT_T1);
            const int left = (nb - c * blocks_per_chunk) * code_bytes;
            const __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
            chunk(row, codes_at + 64 * (size_t)c, m, s, c);
        }
    }
}

/* acc += the sums put back in output order (and Q2_0's offsets). */
static void finish_q4_0(float *acc, int nb, const struct int_scratch *s) {
    for (int blk = 0; blk < nb; blk++) {
        const float *sum = s->sum + 128 * (size_t)(blk / 4) + 4 * (blk % 4);
        for (int slot = 0; slot < 8; slot++) {
            float *a = acc + 32 * blk + 16 * (slot % 2) + 4 * (slot / 2);
            _mm_storeu_ps(a, _mm_add_ps(_mm_loadu_ps(a), _mm_loadu_ps(sum + 16 * slot)));
        }
    }
}
static void finish_q8_0(float *acc, int nb, const struct int_scratch *s) {
    for (int lane = 0; lane < 2 * nb; lane++) {
        const float *sum = s->sum + 64 * (size_t)(lane / 4) + 4 * (lane % 4);
        for (int k = 0; k < 4; k++) {
            float *a = acc + 16 * lane + 4 * k;
            _mm_storeu_ps(a, _mm_add_ps(_mm_loadu_ps(a), _mm_loadu_ps(sum + 16 * k)));
        }
    }
}
static void finish_q2_0(float *acc, int nb, const struct int_scratch *s) {
    for (int blk = 0; blk < nb; blk++) {
        const int e = blk % 2, lane = (blk % 8) / 2;
        const float *sum = s->sum + 256 * (size_t)(blk / 8) + 128 * e + 4 * lane;
        const __m128 off = _mm_set1_ps(s->off[blk]);
        for (int slot = 0; slot < 8; slot++) {
            float *a = acc + 32 * blk + 8 * (slot % 4) + 4 * (slot / 4);
            _mm_storeu_ps(a, _mm_add_ps(_mm_loadu_ps(a), _mm_add_ps(_mm_loadu_ps(sum + 16 * slot), off)));
        }
    }
}

#define SPARSE_INT_KERNEL(name, chunk, finish, bias, has_m, blocks_per_chunk)                                   \
    static void name(uint32_t type, const uint8_t *rows, size_t row_bytes, const int32_t *idx, int n_idx,     \
                     const float *x, float *acc, int n_out, float *scratch) {                                 \
        (void)type;                                                                                           \
        const struct int_scratch s = int_scratch(scratch, n_out);                                             \
        const int nb = n_out / 32, n_chunks = (nb + (blocks_per_chunk)-1) / (blocks_per_chunk);                \
        memset(s.sum, 0, sizeof(float) * 32 * (blocks_per_chunk) * (size_t)n_chunks);                         \
        memset(s.off, 0, sizeof(float) * (size_t)(nb + 16));                                                  \
        walk_int(rows, row_bytes, idx, n_idx, x, n_out, bias, has_m, blocks_per_chunk, &s, chunk);            \
        finish(acc, nb, &s);                                                                                  \
    }
SPARSE_INT_KERNEL(gemv_q8_0, chunk_q8_0, finish_q8_0, 128, 0, 2)
SPARSE_INT_KERNEL(gemv_q4_0, chunk_q4_0, finish_q4_0, 8, 0, 4)
SPARSE_INT_KERNEL(gemv_q2_0, chunk_q2_0, finish_q2_0, 0, 1, 8)

/* ---------------------------------------------------------------- thresholding */

/* 16 inputs at a time: the kept ones' indices compressed in a register and
 * stored whole (a compressing store to memory is microcoded and slow on
 * Zen 4), the next store starting where the kept ones end. */
static int select_avx512(float *x, int n, float thr, int32_t *idx) {
    const __m512 vt = _mm512_set1_ps(thr);
    __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    int k = 0;
    for (int i = 0; i < n; i += 16, iota = _mm512_add_epi32(iota, _mm512_set1_epi32(16))) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __mmask16 keep = _mm512_mask_cmp_ps_mask(m, _mm512_abs_ps(v), vt, _CMP_NLT_UQ);
        _mm512_mask_storeu_ps(x + i, m, _mm512_maskz_mov_ps(keep, v));
        _mm512_storeu_si512(idx + k, _mm512_maskz_compress_epi32(keep, iota));
        k += __builtin_popcount(keep);
    }
    return k;
}

ac_sparse_select_fn ac_sparse_select_avx512(void) { return select_avx512; }

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
