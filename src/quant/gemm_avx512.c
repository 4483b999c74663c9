/* gemm_avx512.c - AVX-512 VNNI gemm kernels for Q4_0 x Q8_0, Q4_1 x Q8_1
 * and Q8_0 x Q8_0; Q2_0 x Q8_1 and Q2_K x Q8_K on their x16 layouts only
 * (and F16 x F16, see the end of the file). Built with the Makefile's AVX-512 flags; only called
 * after ac_quant_cpu_has(AC_SIMD_AVX512VNNI).
 *
 * Weight rows are taken 16 at a time and repacked into a scratch buffer,
 * block by block, so that dword lane r of a vector holds 4 consecutive
 * quants of row r: for block b, vector g (g = 0..7) holds elements
 * 4g..4g+3 of the 16 rows (as unsigned bytes), followed by the 16 rows'
 * scales as floats (and, for Q4_1, their mins). One vpdpbusd against the
 * broadcast dword g of a token's block then adds 4 products to each of 16
 * rows, and 8 of them give the block's integer dots of 16 rows; the scales
 * are applied once per block with one fma. The 8 weight vectors stay in
 * registers while 8 tokens go by (16 rows x 8 tokens per register tile).
 *
 * vpdpbusd takes unsigned x signed bytes: Q4 quants are unsigned already;
 * Q8_0 weights are stored + 128 (x ^ 0x80). The offset (8 for Q4_0, 128 for
 * Q8_0) times the sum of the block's activations is taken back out by
 * starting the integer sum at -offset * sum(y), per token and block, from a
 * table built once per call. */
#include "quant/gemm_internal.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define GR 16 /* weight rows per group: one per dword lane */
#define NT 8  /* tokens per register tile */

enum kind { K_Q4_0, K_Q4_1, K_Q8_0, K_Q2_0 };

/* Per token and block: the activation scale and the integer start value
 * (-offset * sum of quants), or for Q4_1 and Q2_0 Q8_1's s. */
struct act {
    float d;
    union {
        int32_t c;
        float s;
    };
};

#define AI __attribute__((always_inline)) static inline

/* Q4_1 and Q2_0 have mins (x = d * q + m) and take Q8_1 activations. */
AI bool has_mins(enum kind k) {
    return k == K_Q4_1 || k == K_Q2_0;
}
/* The plain layout's block (Q2_0 has no plain-layout kernel here). */
AI size_t w_block(enum kind k) {
    return k == K_Q4_0 ? sizeof(block_q4_0) : k == K_Q4_1 ? sizeof(block_q4_1) : sizeof(block_q8_0);
}
AI size_t w_qs(enum kind k) {
    return k == K_Q4_0 ? offsetof(block_q4_0, qs) : k == K_Q4_1 ? offsetof(block_q4_1, qs) : offsetof(block_q8_0, qs);
}
AI size_t x_block(enum kind k) {
    return has_mins(k) ? sizeof(block_q8_1) : sizeof(block_q8_0);
}
AI size_t x_qs(enum kind k) {
    return has_mins(k) ? offsetof(block_q8_1, qs) : offsetof(block_q8_0, qs);
}
/* Bytes of one repacked block of GR rows: 8 quant vectors, scales, mins. */
AI size_t p_block(enum kind k) {
    return 8 * 64 + 64 + (has_mins(k) ? 64 : 0);
}
AI uint32_t type_of(enum kind k) {
    return k == K_Q4_0 ? AC_TYPE_Q4_0 : k == K_Q4_1 ? AC_TYPE_Q4_1 : k == K_Q8_0 ? AC_TYPE_Q8_0 : AC_TYPE_Q2_0;
}

static inline uint16_t ld16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline int32_t ld32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

AI void act_table(enum kind k, const uint8_t *x, size_t x_stride, int n_tokens, int nb, struct act *A) {
    const int offset = k == K_Q4_0 ? 8 : 128;
    for (int t = 0; t < n_tokens; t++) {
        const uint8_t *xt = x + (size_t)t * x_stride;
        for (int b = 0; b < nb; b++, A++) {
            const uint8_t *p = xt + (size_t)b * x_block(k);
            A->d = _cvtsh_ss(ld16(p));
            if (has_mins(k)) {
                A->s = _cvtsh_ss(ld16(p + offsetof(block_q8_1, s)));
            } else {
                /* sum of 32 signed bytes: sad of (y + 128) against 0, less 32 * 128 */
                const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + x_qs(k))),
                                                   _mm256_set1_epi8((char)0x80));
                const __m256i sad = _mm256_sad_epu8(v, _mm256_setzero_si256());
                __m128i s = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
                s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
                A->c = -offset * (_mm_cvtsi128_si32(s) - 32 * 128);
            }
        }
    }
}

/* 16 rows x 4 dwords (16 bytes at p[r] + off, r = 0..15) -> T[j]: dword j
 * of every row, row r in lane r. Vector i first gathers rows i, 4 + i,
 * 8 + i, 12 + i, one per 128-bit lane; a 4x4 transpose inside each lane
 * then leaves lane L with rows 4L..4L+3. */
AI void transpose_16x4(const uint8_t *const *p, size_t off, __m512i T[4]) {
    __m512i z[4];
#pragma GCC unroll 16
    for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[i] + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[4 + i] + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[8 + i] + off)), 2);
        z[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[12 + i] + off)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    T[0] = _mm512_unpacklo_epi64(t0, t2);
    T[1] = _mm512_unpackhi_epi64(t0, t2);
    T[2] = _mm512_unpacklo_epi64(t1, t3);
    T[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* 16 rows x 8 dwords (32 bytes at p[r] + off) -> T[j]: dword j of every
 * row, row r in lane r. Vector j first holds row lo(j) in its low 256 bits
 * and row lo(j) + 4 in its high ones, lo(j) = j < 4 ? j : j + 4; two 8x8
 * transposes (one per 256-bit half) and a lane shuffle then put the rows in
 * lane order. */
AI void transpose_16x8(const uint8_t *const *p, size_t off, __m512i T[8]) {
    __m512i a[8], t[8], u[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        const int lo = j < 4 ? j : j + 4;
        a[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p[lo] + off))),
                                  _mm256_loadu_si256((const __m256i *)(p[lo + 4] + off)), 1);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const int i = 4 * h;
        t[i] = _mm512_unpacklo_epi32(a[i], a[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(a[i], a[i + 1]);
        t[i + 2] = _mm512_unpacklo_epi32(a[i + 2], a[i + 3]);
        t[i + 3] = _mm512_unpackhi_epi32(a[i + 2], a[i + 3]);
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);     /* dwords 0, 4 */
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]); /* dwords 1, 5 */
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        T[j] = _mm512_shuffle_i32x4(u[j], u[j + 4], _MM_SHUFFLE(2, 0, 2, 0));
        T[j + 4] = _mm512_shuffle_i32x4(u[j], u[j + 4], _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* The 8 quant vectors of block b of 16 rows (row pointers rp), as the
 * header comment describes. */
AI void load_quants(enum kind k, const uint8_t *const *rp, int b, __m512i w[8]) {
    const size_t off = (size_t)b * w_block(k) + w_qs(k);
    if (k == K_Q8_0) { /* 32 bytes a row: one 16x8 transpose, then + 128 */
        transpose_16x8(rp, off, w);
        const __m512i k80 = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) w[j] = _mm512_xor_si512(w[j], k80);
        return;
    }
    /* dword j of the packed nibbles: low nibbles are elements 4j..4j+3,
     * high ones 16 + 4j.. (group j + 4) */
    __m512i T[4];
    transpose_16x4(rp, off, T);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        w[j] = _mm512_and_si512(T[j], m4);
        w[4 + j] = _mm512_and_si512(_mm512_srli_epi16(T[j], 4), m4);
    }
}

/* Byte offsets of rows 0..15 (missing rows repeat the last one). */
static inline __m512i row_index(size_t w_stride, int rows) {
    const __m512i r = _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                       _mm512_set1_epi32(rows - 1));
    return _mm512_mullo_epi32(r, _mm512_set1_epi32((int)w_stride));
}

/* Repacks rows [0, rows) (rows <= GR; missing rows repeat the last one) of
 * all nb blocks into P, as the header comment describes. */
AI void repack(enum kind k, const uint8_t *w, size_t w_stride, int rows, int nb, uint8_t *P) {
    const uint8_t *rp[GR];
    for (int r = 0; r < GR; r++) rp[r] = w + (size_t)(r < rows ? r : rows - 1) * w_stride;
    const __m512i vindex = row_index(w_stride, rows);
    for (int b = 0; b < nb; b++, P += p_block(k)) {
        __m512i q[8];
        load_quants(k, rp, b, q);
#pragma GCC unroll 16
        for (int g = 0; g < 8; g++) _mm512_store_si512((__m512i *)(P + 64 * g), q[g]);
        /* d in the low half of each dword, m (Q4_1) in the high one */
        const __m512i h = _mm512_i32gather_epi32(vindex, w + (size_t)b * w_block(k), 1);
        _mm512_store_ps(P + 512, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h)));
        if (k == K_Q4_1) _mm512_store_ps(P + 576, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16))));
    }
}

/* A block's integer dots s (16 rows) into the row sums: Q2_0 adds
 * s * (dx * dy) + m * s_y with separate roundings, as its vec_dot_ref sums
 * a block (so its kernels give the reference's bits); the others take one
 * fma, Q4_1's m * s summed apart in ms by the caller. */
AI __m512 add_block(enum kind k, __m512i s, __m512 dx, __m512 mins, const struct act *a, __m512 acc) {
    const __m512 scale = _mm512_mul_ps(dx, _mm512_set1_ps(a->d));
    if (k == K_Q2_0)
        return _mm512_add_ps(acc, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), scale),
                                                _mm512_mul_ps(mins, _mm512_set1_ps(a->s))));
    return _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), acc);
}

/* Where a block's integer sum starts: -offset * sum(y) for the signed
 * formats' offset, 0 where the quants are taken as they are. */
AI __m512i sum_start(enum kind k, const struct act *a) {
    return has_mins(k) ? _mm512_setzero_si512() : _mm512_set1_epi32(a->c);
}

/* One block of a group of 16 rows (quants q, scales dx, mins) against one
 * token's block y: the same arithmetic per (row, block) as tile(), shared
 * by gemv and gemv_x16 so that all give the same bits. */
AI void block_dot(enum kind k, const __m512i q[8], __m512 dx, __m512 mins, const uint8_t *y, const struct act *a,
                  __m512 *acc, __m512 *ms) {
    /* two chains: integer sums, so the split changes no bits */
    __m512i s0 = sum_start(k, a), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        s0 = _mm512_dpbusd_epi32(s0, q[g], _mm512_set1_epi32(ld32(y + 4 * g)));
        s1 = _mm512_dpbusd_epi32(s1, q[g + 4], _mm512_set1_epi32(ld32(y + 16 + 4 * g)));
    }
    *acc = add_block(k, _mm512_add_epi32(s0, s1), dx, mins, a, *acc);
    if (k == K_Q4_1) *ms = _mm512_fmadd_ps(mins, _mm512_set1_ps(a->s), *ms);
}

/* A group's 16 sums (Q4_1: plus its m * s sums, kept apart as ggml does)
 * into out's rows of mask, with bias and accumulate. */
AI void store_group(enum kind k, __m512 acc, __m512 ms, float *o, const float *bias, __mmask16 mask,
                    bool accumulate) {
    if (k == K_Q4_1) acc = _mm512_add_ps(acc, ms);
    if (bias) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, bias));
    if (accumulate) acc = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), acc);
    _mm512_mask_storeu_ps(o, mask, acc);
}

/* nt tokens (nt <= NT) against one repacked group of GR rows; writes the
 * rows of mask. */
AI void tile(enum kind k, int nt, const uint8_t *P, int nb, const uint8_t *x, size_t x_stride, const struct act *A,
             float *out, size_t out_stride, __mmask16 mask, const float *bias, bool accumulate) {
    __m512 acc[NT];
#pragma GCC unroll 16
    for (int i = 0; i < nt; i++) acc[i] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *pb = P + (size_t)b * p_block(k);
        __m512i w[8];
#pragma GCC unroll 16
        for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512((const __m512i *)(pb + 64 * g));
        const __m512 dx = _mm512_load_ps(pb + 512);
        const __m512 mins = k == K_Q2_0 ? _mm512_load_ps(pb + 576) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int i = 0; i < nt; i++) {
            const struct act *a = A + (size_t)i * nb + b;
            const uint8_t *q = x + (size_t)i * x_stride + (size_t)b * x_block(k) + x_qs(k);
            __m512i s = sum_start(k, a);
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(ld32(q + 4 * g)));
            acc[i] = add_block(k, s, dx, mins, a, acc[i]);
        }
    }
    __m512 ms[NT]; /* Q4_1: sum of m * s, kept apart from the d terms as ggml does */
#pragma GCC unroll 16
    for (int i = 0; i < nt; i++) ms[i] = _mm512_setzero_ps();
    if (k == K_Q4_1)
        for (int b = 0; b < nb; b++) {
            const __m512 m = _mm512_load_ps(P + (size_t)b * p_block(k) + 576);
#pragma GCC unroll 16
            for (int i = 0; i < nt; i++) ms[i] = _mm512_fmadd_ps(m, _mm512_set1_ps(A[(size_t)i * nb + b].s), ms[i]);
        }
#pragma GCC unroll 16
    for (int i = 0; i < nt; i++) store_group(k, acc[i], ms[i], out + (size_t)i * out_stride, bias, mask, accumulate);
}

/* Blocks per row up to which gemv keeps its activation table on the stack;
 * longer rows take the buffered path. */
#define GEMV_MAX_BLOCKS 512

/* One token: each group of 16 rows is transposed straight into registers
 * (no scratch buffer), with the same arithmetic per (row, block) as tile(),
 * so a token gives the same bits alone as in a batch. */
AI void gemv(enum kind k, int nb, float *out, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
             const struct act *A, const float *bias, bool accumulate) {
    /* the groups the in-loop prefetches do not reach (matrices here are
     * small, one per call, so the stream starts cold every time) */
    const size_t head = (size_t)(n_rows < 5 * GR ? n_rows : 5 * GR) * w_stride;
    for (size_t o = 0; o < head; o += 64) _mm_prefetch((const char *)(w + o), _MM_HINT_T1);
    for (int r0 = 0; r0 < n_rows; r0 += GR) {
        const int rows = n_rows - r0 < GR ? n_rows - r0 : GR;
        const __mmask16 mask = (__mmask16)((1u << rows) - 1);
        const uint8_t *rp[GR];
        for (int r = 0; r < GR; r++) rp[r] = w + (size_t)(r0 + (r < rows ? r : rows - 1)) * w_stride;
        const __m512i vindex = row_index(w_stride, rows);
        __m512 acc = _mm512_setzero_ps(), ms = _mm512_setzero_ps();
        /* The 16 rows are read a block at a time each, 16 streams the
         * hardware prefetchers follow poorly: fetch the next group's bytes
         * ahead, a slice per block. */
        const int pr = r0 + GR; /* first row to prefetch */
        const uint8_t *pf = w + (size_t)pr * w_stride;
        const size_t pf_len = pr + GR <= n_rows ? (size_t)GR * w_stride
                              : pr < n_rows     ? (size_t)(n_rows - pr) * w_stride
                                                : 0;
        const size_t pf_step = (pf_len + (size_t)nb - 1) / (size_t)nb;
        /* and the same slice of the group 4 further on into L2 (prefetches
         * never fault; past the matrix end they only waste a fetch) */
        const size_t pf_far = (size_t)4 * GR * w_stride;
        for (int b = 0; b < nb; b++) {
            for (size_t o = (size_t)b * pf_step; o < (size_t)(b + 1) * pf_step && o < pf_len; o += 64) {
                _mm_prefetch((const char *)(pf + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(pf + o + pf_far), _MM_HINT_T1);
            }
            __m512i q[8];
            load_quants(k, rp, b, q);
            /* d in the low half of each dword, m (Q4_1) in the high one */
            const __m512i h = _mm512_i32gather_epi32(vindex, rp[0] + (size_t)b * w_block(k), 1);
            const __m512 dx = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h));
            const __m512 mins = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16)));
            block_dot(k, q, dx, mins, x + (size_t)b * x_block(k) + x_qs(k), &A[b], &acc, &ms);
        }
        store_group(k, acc, ms, out + r0, bias ? bias + r0 : NULL, mask, accumulate);
    }
}

/* ---- Q4_0, Q4_1, Q8_0 and Q2_0 on the x16 layouts (quant.h) ----
 * The layout's block of a group is load_quants' transposed vectors as
 * stored (Q4_0: before the nibbles are split; Q8_0: after the + 128) and
 * its scales are 16 consecutive halves, so the kernels below are gemv and
 * repack with those two steps replaced by plain loads: same arithmetic,
 * same bits. Q2_0 has only this layout: its 8 code bytes a row are two
 * dwords, and dword j's bits 2i..2i+1 of every byte are elements
 * 8i + 4j .. 8i + 4j + 3 (block_q2_0's order), i.e. activation dword
 * 2i + j. */

AI size_t x16_qs(enum kind k) { /* quant bytes of one block of a group */
    return k == K_Q8_0 ? 512 : k == K_Q2_0 ? 128 : 256;
}

AI void load_quants_x16(enum kind k, const uint8_t *qb, __m512i w[8]) {
    if (k == K_Q8_0) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) w[j] = _mm512_loadu_si512((const void *)(qb + 64 * j));
        return;
    }
    if (k == K_Q2_0) {
        const __m512i m2 = _mm512_set1_epi8(3);
        const __m512i c0 = _mm512_loadu_si512((const void *)qb), c1 = _mm512_loadu_si512((const void *)(qb + 64));
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            w[2 * i] = _mm512_and_si512(_mm512_srli_epi32(c0, 2 * i), m2);
            w[2 * i + 1] = _mm512_and_si512(_mm512_srli_epi32(c1, 2 * i), m2);
        }
        return;
    }
    const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512i T = _mm512_loadu_si512((const void *)(qb + 64 * j));
        w[j] = _mm512_and_si512(T, m4);
        w[4 + j] = _mm512_and_si512(_mm512_srli_epi16(T, 4), m4);
    }
}

AI __m512 load_scales_x16(enum kind k, const uint8_t *g, int nb, int b) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + (size_t)nb * x16_qs(k) + 32 * (size_t)b)));
}

/* Q4_1's mins: the plane after the scales. */
AI __m512 load_mins_x16(enum kind k, const uint8_t *g, int nb, int b) {
    return _mm512_cvtph_ps(
        _mm256_loadu_si256((const __m256i *)(g + (size_t)nb * x16_qs(k) + 32 * (size_t)nb + 32 * (size_t)b)));
}

/* The weights of a one-token kernel on x16 groups are one stream, but it
 * starts cold on every call and runs at DRAM speed: as gemv, the first
 * groups go to L2 at the start, and while a group is read the next goes
 * into L1 and the one 4 further into L2, a slice per block (prefetches
 * never fault; past the end they only waste a fetch). */
AI void x16_prefetch_start(const uint8_t *w, size_t group, int n_rows) {
    const size_t end = (size_t)((n_rows + GR - 1) / GR) * group;
    for (size_t o = 0; o < (end < 5 * group ? end : 5 * group); o += 64) _mm_prefetch((const char *)(w + o), _MM_HINT_T1);
}
AI void x16_prefetch_slice(const uint8_t *w, size_t group, size_t slice, int b) {
    for (size_t o = group + (size_t)b * slice; o < group + (size_t)(b + 1) * slice; o += 64) {
        _mm_prefetch((const char *)(w + o), _MM_HINT_T0);
        _mm_prefetch((const char *)(w + o + 4 * group), _MM_HINT_T1);
    }
}

/* One token against x16 groups (w at the first group). */
AI void gemv_x16(enum kind k, int nb, float *out, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                 const struct act *A, const float *bias, bool accumulate) {
    const size_t group = (size_t)GR * w_stride, slice = (group + (size_t)nb - 1) / (size_t)nb;
    x16_prefetch_start(w, group, n_rows);
    for (int r0 = 0; r0 < n_rows; r0 += GR, w += group) {
        const int rows = n_rows - r0 < GR ? n_rows - r0 : GR;
        const __mmask16 mask = (__mmask16)((1u << rows) - 1);
        __m512 acc = _mm512_setzero_ps(), ms = _mm512_setzero_ps();
        for (int b = 0; b < nb; b++) {
            x16_prefetch_slice(w, group, slice, b);
            __m512i q[8];
            load_quants_x16(k, w + (size_t)b * x16_qs(k), q);
            const __m512 mins = has_mins(k) ? load_mins_x16(k, w, nb, b) : _mm512_setzero_ps();
            block_dot(k, q, load_scales_x16(k, w, nb, b), mins, x + (size_t)b * x_block(k) + x_qs(k), &A[b], &acc,
                      &ms);
        }
        store_group(k, acc, ms, out + r0, bias ? bias + r0 : NULL, mask, accumulate);
    }
}

/* One packed group (g) of all nb blocks into tile()'s layout P. */
AI void repack_x16(enum kind k, const uint8_t *g, int nb, uint8_t *P) {
    for (int b = 0; b < nb; b++, P += p_block(k)) {
        __m512i q[8];
        load_quants_x16(k, g + (size_t)b * x16_qs(k), q);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) _mm512_store_si512((__m512i *)(P + 64 * j), q[j]);
        _mm512_store_ps(P + 512, load_scales_x16(k, g, nb, b));
        if (has_mins(k)) _mm512_store_ps(P + 576, load_mins_x16(k, g, nb, b));
    }
}

/* x16: w is in k's x16 layout. */
AI void gemm(enum kind k, bool x16, int n, float *out, size_t out_stride, const void *vw, size_t w_stride,
             int n_rows, const void *vx, size_t x_stride, int n_tokens, const float *bias, bool accumulate) {
    if (n_rows <= 0 || n_tokens <= 0) return;
    const int nb = n / QK8_0;
    const uint8_t *w = vw, *x = vx;
    if (n_tokens == 1 && nb <= GEMV_MAX_BLOCKS) {
        struct act A[GEMV_MAX_BLOCKS];
        act_table(k, x, x_stride, 1, nb, A);
        if (x16)
            gemv_x16(k, nb, out, w, w_stride, n_rows, x, A, bias, accumulate);
        else
            gemv(k, nb, out, w, w_stride, n_rows, x, A, bias, accumulate);
        return;
    }
    const size_t psize = (size_t)nb * p_block(k), asize = (size_t)n_tokens * nb * sizeof(struct act);
    uint8_t *buf = nb ? aligned_alloc(64, (psize + asize + 63) / 64 * 64) : NULL;
    if (!buf) {
        if (x16)
            ac_gemm_x16_ref(type_of(k))(n, out, out_stride, vw, w_stride, n_rows, vx, x_stride, n_tokens, bias,
                                        accumulate);
        else
            ac_gemm_by_dot(ac_type_traits(type_of(k))->vec_dot, n, out, out_stride, vw, w_stride, n_rows, vx,
                           x_stride, n_tokens, bias, accumulate);
        return;
    }
    struct act *A = (struct act *)(buf + psize);
    act_table(k, x, x_stride, n_tokens, nb, A);
    for (int r0 = 0; r0 < n_rows; r0 += GR) {
        const int rows = n_rows - r0 < GR ? n_rows - r0 : GR;
        const __mmask16 mask = (__mmask16)((1u << rows) - 1);
        const float *br = bias ? bias + r0 : NULL;
        if (x16) /* r0 is a multiple of GR: the group's start */
            repack_x16(k, w + (size_t)r0 * w_stride, nb, buf);
        else
            repack(k, w + (size_t)r0 * w_stride, w_stride, rows, nb, buf);
        int t0 = 0;
        for (; t0 + NT <= n_tokens; t0 += NT)
            tile(k, NT, buf, nb, x + (size_t)t0 * x_stride, x_stride, A + (size_t)t0 * nb, out + (size_t)t0 * out_stride + r0,
                 out_stride, mask, br, accumulate);
        const uint8_t *xt = x + (size_t)t0 * x_stride;
        const struct act *At = A + (size_t)t0 * nb;
        float *ot = out + (size_t)t0 * out_stride + r0;
        switch (n_tokens - t0) {
        case 1: tile(k, 1, buf, nb, xt, x_stride, At, ot, out_stride, mask, br, accumulate); break;
        case 2: tile(k, 2, buf, nb, xt, x_stride, At, ot, out_stride, mask, br, accumulate); break;
        case 3: tile(k, 3, buf, nb, xt, x_stride, At, ot, out_stride, mask, br, accumulate); break;
        case 4: tile(k, 4, buf, nb, xt, x_stride, At, ot, out_stride, mask, br, accumulate); break;
        case 5: tile(k, 5, buf, nb, xt, x_stride, At, ot, out_stride, mask, br, accumulate); break;
        case 6: tile(k, 6, buf, nb, xt, x_stride, At, ot, out_stride, mask, br, accumulate); break;
        case 7: tile(k, 7, buf, nb, xt, x_stride, At, ot, out_stride, mask, br, accumulate); break;
        default: break;
        }
    }
    free(buf);
}

/* gemm_<name>_avx512 on the plain layout, gemm_<name>x16_avx512 on x16 */
#define GEMM_FN(name, kind, x16)                                                                             \
    static void gemm_##name##_avx512(int n, float *out, size_t out_stride, const void *w, size_t w_stride,    \
                                     int n_rows, const void *x, size_t x_stride, int n_tokens,                \
                                     const float *bias, bool accumulate) {                                    \
        gemm(kind, x16, n, out, out_stride, w, w_stride, n_rows, x, x_stride, n_tokens, bias, accumulate);   \
    }

GEMM_FN(q4_0, K_Q4_0, false)
GEMM_FN(q4_1, K_Q4_1, false)
GEMM_FN(q8_0, K_Q8_0, false)
GEMM_FN(q4_0x16, K_Q4_0, true)
GEMM_FN(q4_1x16, K_Q4_1, true)
GEMM_FN(q8_0x16, K_Q8_0, true)
GEMM_FN(q2_0x16, K_Q2_0, true)

/* ---- Q2_K x Q8_K on its x16 layout (quant.h) ----
 * A superblock of a group holds the 16 rows' qs as 16 dwords (dword j of
 * row r at 64 * j + 4 * r), then their 16 scale bytes (scale g of row r at
 * Q2K_X16_SCALES + 16 * g + r), then d and dmin (16 halves each). Dword j's field s
 * (bits 2s..2s+1 of each byte) holds elements 128 h + 32 s + 4 (j % 8) ..
 * + 3, h = j / 8: sub-block g = 8 h + 2 s + (j % 8) / 4. Each sub-block's
 * 16 products are one int32 per row (4 vpdpbusd), times its 4-bit scale
 * (vpmulld); the mins' sum takes Q8_K's bsums; both sums are exact, and
 * the superblock adds dall * isum - dmin * summs as vec_dot_ref does, so
 * the kernel gives the reference's bits. One token at a time: a batch is
 * one gemv per token (the matrices that use Q2_K here are a few hundred
 * KB and stay in L2 across tokens). */
#define Q2K_SB (GR * sizeof(block_q2_K))

static void gemv_q2_K_x16(int nb, float *out, const uint8_t *w, size_t w_stride, int n_rows, const block_q8_K *y,
                          const float *bias, bool accumulate) {
    const size_t group = (size_t)GR * w_stride, slice = (group + (size_t)nb - 1) / (size_t)nb;
    x16_prefetch_start(w, group, n_rows);
    const __m512i m2 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi32(15);
    for (int r0 = 0; r0 < n_rows; r0 += GR, w += group) {
        const int rows = n_rows - r0 < GR ? n_rows - r0 : GR;
        const __mmask16 mask = (__mmask16)((1u << rows) - 1);
        __m512 acc = _mm512_setzero_ps();
        for (int b = 0; b < nb; b++) {
            x16_prefetch_slice(w, group, slice, b);
            const uint8_t *sb = w + (size_t)b * Q2K_SB;
            const int8_t *yq = y[b].qs;
            __m512i isum = _mm512_setzero_si512(), summs = _mm512_setzero_si512();
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++)
#pragma GCC unroll 2
                for (int half = 0; half < 2; half++) {
                    __m512i q[4];
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++)
                        q[k] = _mm512_loadu_si512((const void *)(sb + 64 * (8 * h + 4 * half + k)));
#pragma GCC unroll 4
                    for (int f = 0; f < 4; f++) {
                        const int g = 8 * h + 2 * f + half;
                        __m512i dot = _mm512_setzero_si512();
#pragma GCC unroll 4
                        for (int k = 0; k < 4; k++)
                            dot = _mm512_dpbusd_epi32(
                                dot, _mm512_and_si512(_mm512_srli_epi32(q[k], 2 * f), m2),
                                _mm512_set1_epi32(ld32((const uint8_t *)yq + 128 * h + 32 * f + 16 * half + 4 * k)));
                        const __m512i sc =
                            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(sb + Q2K_X16_SCALES + 16 * (size_t)g)));
                        isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dot, _mm512_and_si512(sc, m4)));
                        summs = _mm512_add_epi32(
                            summs, _mm512_mullo_epi32(_mm512_srli_epi32(sc, 4), _mm512_set1_epi32(y[b].bsums[g])));
                    }
                }
            const __m512 yd = _mm512_set1_ps(y[b].d);
            const __m512 dall = _mm512_mul_ps(yd, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sb + Q2K_X16_D))));
            const __m512 dmin = _mm512_mul_ps(yd, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sb + Q2K_X16_DMIN))));
            acc = _mm512_add_ps(acc, _mm512_sub_ps(_mm512_mul_ps(dall, _mm512_cvtepi32_ps(isum)),
                                                   _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(summs))));
        }
        /* a kind without Q4_1's separate mins sum: the store alone */
        store_group(K_Q2_0, acc, _mm512_setzero_ps(), out + r0, bias ? bias + r0 : NULL, mask, accumulate);
    }
}

static void gemm_q2_Kx16_avx512(int n, float *out, size_t out_stride, const void *w, size_t w_stride, int n_rows,
                                const void *x, size_t x_stride, int n_tokens, const float *bias, bool accumulate) {
    for (int t = 0; t < n_tokens; t++)
        gemv_q2_K_x16(n / QK_K, out + (size_t)t * out_stride, w, w_stride, n_rows,
                      (const block_q8_K *)(const void *)((const uint8_t *)x + (size_t)t * x_stride), bias, accumulate);
}

ac_gemm_fn ac_gemm_x16_avx512(uint32_t type) {
    return type == AC_TYPE_Q4_0   ? gemm_q4_0x16_avx512
           : type == AC_TYPE_Q4_1 ? gemm_q4_1x16_avx512
           : type == AC_TYPE_Q8_0 ? gemm_q8_0x16_avx512
           : type == AC_TYPE_Q2_0 ? gemm_q2_0x16_avx512
           : type == AC_TYPE_Q2_K ? gemm_q2_Kx16_avx512
                                  : NULL;
}

/* ---- F16 x F16 ----
 * Natural layout, 3 rows x 3 tokens per register tile, each (row, token)
 * summed exactly as vec_dot_f16_avx512 sums it (16-lane partial sums over
 * 32-element steps, even halves in one accumulator and odd in another, a
 * masked 16-element tail into the first, then one reduce): results equal
 * that vec_dot bit for bit, so one token simply takes the vec_dot. The
 * tile's rows are converted to float once (exact) and reused by every
 * token; tokens are converted as they are loaded. */
#define FR 3
#define FT 3

AI void f16_tile(int nr, int nt, int n, const float *W, const uint16_t *x, size_t x_stride, float *out,
                 size_t out_stride, const float *bias, bool accumulate) {
    __m512 a0[FR][FT], a1[FR][FT];
#pragma GCC unroll 3
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) a0[r][t] = a1[r][t] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 w0[FR], w1[FR];
#pragma GCC unroll 3
        for (int r = 0; r < nr; r++) {
            w0[r] = _mm512_loadu_ps(W + (size_t)r * n + i);
            w1[r] = _mm512_loadu_ps(W + (size_t)r * n + i + 16);
        }
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) {
            const uint16_t *xt = (const uint16_t *)((const uint8_t *)x + (size_t)t * x_stride);
            const __m512 x0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(xt + i)));
            const __m512 x1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(xt + i + 16)));
#pragma GCC unroll 3
            for (int r = 0; r < nr; r++) {
                a0[r][t] = _mm512_fmadd_ps(w0[r], x0, a0[r][t]);
                a1[r][t] = _mm512_fmadd_ps(w1[r], x1, a1[r][t]);
            }
        }
    }
    for (; i < n; i += 16) {
        const int rem = n - i;
        const __mmask16 k = (__mmask16)(rem >= 16 ? 0xFFFF : (1u << rem) - 1);
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) {
            const uint16_t *xt = (const uint16_t *)((const uint8_t *)x + (size_t)t * x_stride);
            const __m512 xv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, xt + i));
#pragma GCC unroll 3
            for (int r = 0; r < nr; r++)
                a0[r][t] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, W + (size_t)r * n + i), xv, a0[r][t]);
        }
    }
#pragma GCC unroll 3
    for (int t = 0; t < nt; t++) {
        float *o = out + (size_t)t * out_stride;
#pragma GCC unroll 3
        for (int r = 0; r < nr; r++) {
            float v = _mm512_reduce_add_ps(_mm512_add_ps(a0[r][t], a1[r][t]));
            if (bias) v += bias[r];
            o[r] = accumulate ? o[r] + v : v;
        }
    }
}

AI void f16_rows(int nr, int n, float *out, size_t out_stride, const float *W, const uint8_t *x, size_t x_stride,
                 int n_tokens, const float *bias, bool accumulate) {
    int t0 = 0;
    for (; t0 + FT <= n_tokens; t0 += FT)
        f16_tile(nr, FT, n, W, (const uint16_t *)(x + (size_t)t0 * x_stride), x_stride, out + (size_t)t0 * out_stride,
                 out_stride, bias, accumulate);
    if (n_tokens - t0 == 2)
        f16_tile(nr, 2, n, W, (const uint16_t *)(x + (size_t)t0 * x_stride), x_stride, out + (size_t)t0 * out_stride,
                 out_stride, bias, accumulate);
    else if (n_tokens - t0 == 1)
        f16_tile(nr, 1, n, W, (const uint16_t *)(x + (size_t)t0 * x_stride), x_stride, out + (size_t)t0 * out_stride,
                 out_stride, bias, accumulate);
}

static void gemm_f16_avx512(int n, float *out, size_t out_stride, const void *vw, size_t w_stride, int n_rows,
                            const void *vx, size_t x_stride, int n_tokens, const float *bias, bool accumulate) {
    if (n_rows <= 0 || n_tokens <= 0) return;
    float *W = n_tokens > 1 ? aligned_alloc(64, ((size_t)FR * n * sizeof(float) + 63) / 64 * 64) : NULL;
    if (!W) { /* one token (or no memory): the vec_dot itself */
        ac_gemm_by_dot(ac_type_traits(AC_TYPE_F16)->vec_dot, n, out, out_stride, vw, w_stride, n_rows, vx, x_stride,
                       n_tokens, bias, accumulate);
        return;
    }
    const uint8_t *w = vw;
    for (int r0 = 0; r0 < n_rows; r0 += FR) {
        const int nr = n_rows - r0 < FR ? n_rows - r0 : FR;
        for (int r = 0; r < nr; r++) {
            const uint16_t *wr = (const uint16_t *)(w + (size_t)(r0 + r) * w_stride);
            int i = 0;
            for (; i + 16 <= n; i += 16)
                _mm512_storeu_ps(W + (size_t)r * n + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + i))));
            if (i < n) {
                const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
                _mm512_mask_storeu_ps(W + (size_t)r * n + i, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, wr + i)));
            }
        }
        const float *br = bias ? bias + r0 : NULL;
        if (nr == FR)
            f16_rows(FR, n, out + r0, out_stride, W, vx, x_stride, n_tokens, br, accumulate);
        else if (nr == 2)
            f16_rows(2, n, out + r0, out_stride, W, vx, x_stride, n_tokens, br, accumulate);
        else
            f16_rows(1, n, out + r0, out_stride, W, vx, x_stride, n_tokens, br, accumulate);
    }
    free(W);
}

ac_gemm_fn ac_gemm_avx512(uint32_t type) {
    switch (type) {
    case AC_TYPE_Q4_0: return gemm_q4_0_avx512;
    case AC_TYPE_Q4_1: return gemm_q4_1_avx512;
    case AC_TYPE_Q8_0: return gemm_q8_0_avx512;
    case AC_TYPE_F16: return gemm_f16_avx512;
    default: return NULL;
    }
}
