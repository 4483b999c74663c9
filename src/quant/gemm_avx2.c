/* gemm_avx2.c - AVX2 gemm kernels for Q4_0 x Q8_0, Q4_1 x Q8_1 and
 * Q8_0 x Q8_0, the layout of gemm_avx512.c at half the width: weight rows
 * are repacked 8 at a time so that dword lane r holds 4 consecutive quants
 * of row r (8 vectors per block, then the 8 rows' scales, and mins for
 * Q4_1), and a tile is 8 rows x 4 tokens.
 *
 * Without VNNI, products go through maddubs (u8 x s8 -> int16 pairs):
 * Q4 quants (<= 15) keep the eight pair sums of a block within int16, so
 * they are added as int16 and widened once per block; Q8_0 uses |w| and
 * sign(y, w) and widens every step. Q4_0's -8 offset comes back as
 * -8 * sum(y), per token and block, from a table built once per call. */
#include "quant/gemm_internal.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define GR 8 /* weight rows per group: one per dword lane */
#define NT 4 /* tokens per register tile */

enum kind { K_Q4_0, K_Q4_1, K_Q8_0 };

struct act {
    float d;
    union {
        int32_t c;
        float s;
    };
};

#define AI __attribute__((always_inline)) static inline

AI size_t w_block(enum kind k) {
    return k == K_Q4_0 ? sizeof(block_q4_0) : k == K_Q4_1 ? sizeof(block_q4_1) : sizeof(block_q8_0);
}
AI size_t w_qs(enum kind k) {
    return k == K_Q4_0 ? offsetof(block_q4_0, qs) : k == K_Q4_1 ? offsetof(block_q4_1, qs) : offsetof(block_q8_0, qs);
}
AI size_t x_block(enum kind k) {
    return k == K_Q4_1 ? sizeof(block_q8_1) : sizeof(block_q8_0);
}
AI size_t x_qs(enum kind k) {
    return k == K_Q4_1 ? offsetof(block_q8_1, qs) : offsetof(block_q8_0, qs);
}
AI size_t p_block(enum kind k) {
    return 8 * 32 + 32 + (k == K_Q4_1 ? 32 : 0);
}
AI uint32_t type_of(enum kind k) {
    return k == K_Q4_0 ? AC_TYPE_Q4_0 : k == K_Q4_1 ? AC_TYPE_Q4_1 : AC_TYPE_Q8_0;
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
    for (int t = 0; t < n_tokens; t++) {
        const uint8_t *xt = x + (size_t)t * x_stride;
        for (int b = 0; b < nb; b++, A++) {
            const uint8_t *p = xt + (size_t)b * x_block(k);
            A->d = _cvtsh_ss(ld16(p));
            if (k == K_Q4_1) {
                A->s = _cvtsh_ss(ld16(p + offsetof(block_q8_1, s)));
            } else if (k == K_Q4_0) {
                const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + x_qs(k))),
                                                   _mm256_set1_epi8((char)0x80));
                const __m256i sad = _mm256_sad_epu8(v, _mm256_setzero_si256());
                __m128i s = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
                s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
                A->c = -8 * (_mm_cvtsi128_si32(s) - 32 * 128);
            } else {
                A->c = 0;
            }
        }
    }
}

AI void repack(enum kind k, const uint8_t *w, size_t w_stride, int rows, int nb, uint8_t *P) {
    const uint8_t *rp[GR];
    for (int r = 0; r < GR; r++) rp[r] = w + (size_t)(r < rows ? r : rows - 1) * w_stride;
    for (int b = 0; b < nb; b++, P += p_block(k)) {
        const size_t off = (size_t)b * w_block(k);
        __m256i a[8];
#pragma GCC unroll 16
        for (int r = 0; r < 8; r++) {
            const uint8_t *p = rp[r] + off + w_qs(k);
            if (k == K_Q8_0) {
                a[r] = _mm256_loadu_si256((const __m256i *)p);
            } else {
                const __m128i q = _mm_loadu_si128((const __m128i *)p);
                a[r] = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
                                        _mm256_set1_epi8(0x0F));
            }
        }
        __m256i t[8], u[8];
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            const int i = 4 * h;
            t[i] = _mm256_unpacklo_epi32(a[i], a[i + 1]);
            t[i + 1] = _mm256_unpackhi_epi32(a[i], a[i + 1]);
            t[i + 2] = _mm256_unpacklo_epi32(a[i + 2], a[i + 3]);
            t[i + 3] = _mm256_unpackhi_epi32(a[i + 2], a[i + 3]);
            u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
            u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
            u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
            u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
        }
#pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
            _mm256_store_si256((__m256i *)(P + 32 * j), _mm256_permute2x128_si256(u[j], u[j + 4], 0x20));
            _mm256_store_si256((__m256i *)(P + 32 * (j + 4)), _mm256_permute2x128_si256(u[j], u[j + 4], 0x31));
        }
        uint16_t h[GR];
        for (int r = 0; r < GR; r++) h[r] = ld16(rp[r] + off);
        _mm256_store_ps((void *)(P + 256), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
        if (k == K_Q4_1) {
            for (int r = 0; r < GR; r++) h[r] = ld16(rp[r] + off + offsetof(block_q4_1, m));
            _mm256_store_ps((void *)(P + 288), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
        }
    }
}

AI __m256 maskz_load(int rows, const float *p) {
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

AI void tile(enum kind k, int nt, const uint8_t *P, int nb, const uint8_t *x, size_t x_stride, const struct act *A,
             float *out, size_t out_stride, int rows, const float *bias, bool accumulate) {
    __m256 acc[NT];
#pragma GCC unroll 16
    for (int i = 0; i < nt; i++) acc[i] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++) {
        const uint8_t *pb = P + (size_t)b * p_block(k);
        const __m256 dx = _mm256_load_ps((const void *)(pb + 256));
#pragma GCC unroll 4
        for (int i = 0; i < nt; i++) {
            const struct act *a = A + (size_t)i * nb + b;
            const uint8_t *q = x + (size_t)i * x_stride + (size_t)b * x_block(k) + x_qs(k);
            __m256i s;
            if (k == K_Q8_0) {
                s = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    const __m256i wg = _mm256_load_si256((const __m256i *)(pb + 32 * g));
                    const __m256i y = _mm256_set1_epi32(ld32(q + 4 * g));
                    s = _mm256_add_epi32(
                        s, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wg), _mm256_sign_epi8(y, wg)), ones));
                }
            } else {
                __m256i s16 = _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)pb), _mm256_set1_epi32(ld32(q)));
#pragma GCC unroll 8
                for (int g = 1; g < 8; g++)
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(pb + 32 * g)),
                                                                     _mm256_set1_epi32(ld32(q + 4 * g))));
                s = _mm256_madd_epi16(s16, ones);
                if (k == K_Q4_0) s = _mm256_add_epi32(s, _mm256_set1_epi32(a->c));
            }
            acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(a->d)), _mm256_cvtepi32_ps(s), acc[i]);
        }
    }
    if (k == K_Q4_1) { /* sum of m * s, kept apart from the d terms as ggml does, then added */
        __m256 ms[NT];
#pragma GCC unroll 16
        for (int i = 0; i < nt; i++) ms[i] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const __m256 m = _mm256_load_ps((const void *)(P + (size_t)b * p_block(k) + 288));
#pragma GCC unroll 16
            for (int i = 0; i < nt; i++) ms[i] = _mm256_fmadd_ps(m, _mm256_set1_ps(A[(size_t)i * nb + b].s), ms[i]);
        }
#pragma GCC unroll 16
        for (int i = 0; i < nt; i++) acc[i] = _mm256_add_ps(acc[i], ms[i]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < nt; i++) {
        float *o = out + (size_t)i * out_stride;
        __m256 v = acc[i];
        if (bias) v = _mm256_add_ps(v, maskz_load(rows, bias));
        if (accumulate) v = _mm256_add_ps(maskz_load(rows, o), v);
        if (rows == GR) {
            _mm256_storeu_ps(o, v);
        } else {
            float tmp[GR];
            _mm256_storeu_ps(tmp, v);
            memcpy(o, tmp, (size_t)rows * sizeof(float));
        }
    }
}

/* 8 rows x 4 dwords (16 bytes at p[r] + off) -> T[j]: dword j of every
 * row, row r in lane r (rows i and 4 + i share vector i, then a 4x4
 * transpose inside each 128-bit lane). */
AI void transpose_8x4(const uint8_t *const *p, size_t off, __m256i T[4]) {
    __m256i z[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        z[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p[i] + off))),
                                       _mm_loadu_si128((const __m128i *)(p[4 + i] + off)), 1);
    const __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    T[0] = _mm256_unpacklo_epi64(t0, t2);
    T[1] = _mm256_unpackhi_epi64(t0, t2);
    T[2] = _mm256_unpacklo_epi64(t1, t3);
    T[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* Blocks per row up to which gemv keeps its activation table on the stack. */
#define GEMV_MAX_BLOCKS 512

/* One token: each group of 8 rows is transposed straight into registers,
 * with the same arithmetic per (row, block) as tile() (integer block dots
 * are exact however they are summed), so a token gives the same bits alone
 * as in a batch. The next group is prefetched a slice per block. */
AI void gemv(enum kind k, int nb, float *out, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
             const struct act *A, const float *bias, bool accumulate) {
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0F);
    /* the groups the in-loop prefetches do not reach (matrices here are
     * small, one per call, so the stream starts cold every time) */
    const size_t head = (size_t)(n_rows < 5 * GR ? n_rows : 5 * GR) * w_stride;
    for (size_t o = 0; o < head; o += 64) _mm_prefetch((const char *)(w + o), _MM_HINT_T1);
    for (int r0 = 0; r0 < n_rows; r0 += GR) {
        const int rows = n_rows - r0 < GR ? n_rows - r0 : GR;
        const uint8_t *rp[GR];
        for (int r = 0; r < GR; r++) rp[r] = w + (size_t)(r0 + (r < rows ? r : rows - 1)) * w_stride;
        const uint8_t *pf = w + (size_t)(r0 + GR) * w_stride;
        const size_t pf_len = r0 + 2 * GR <= n_rows ? (size_t)GR * w_stride
                              : r0 + GR < n_rows   ? (size_t)(n_rows - r0 - GR) * w_stride
                                                   : 0;
        const size_t pf_step = (pf_len + (size_t)nb - 1) / (size_t)nb;
        /* and the same slice of the group 4 further on into L2 (prefetches
         * never fault; past the matrix end they only waste a fetch) */
        const size_t pf_far = (size_t)4 * GR * w_stride;
        __m256 acc = _mm256_setzero_ps(), ms = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            for (size_t o = (size_t)b * pf_step; o < (size_t)(b + 1) * pf_step && o < pf_len; o += 64) {
                _mm_prefetch((const char *)(pf + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(pf + o + pf_far), _MM_HINT_T1);
            }
            const size_t off = (size_t)b * w_block(k);
            const uint8_t *y = x + (size_t)b * x_block(k) + x_qs(k);
            __m256i T[4], s;
            transpose_8x4(rp, off + w_qs(k), T);
            if (k == K_Q8_0) {
                __m256i s1 = _mm256_setzero_si256();
                s = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    const __m256i yj = _mm256_set1_epi32(ld32(y + 4 * j));
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(T[j]), _mm256_sign_epi8(yj, T[j])), ones));
                }
                transpose_8x4(rp, off + w_qs(k) + 16, T);
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    const __m256i yj = _mm256_set1_epi32(ld32(y + 16 + 4 * j));
                    s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(T[j]), _mm256_sign_epi8(yj, T[j])), ones));
                }
                s = _mm256_add_epi32(s, s1);
            } else {
                __m256i s16 = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_and_si256(T[j], m4),
                                                                     _mm256_set1_epi32(ld32(y + 4 * j))));
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(T[j], 4), m4),
                                                                     _mm256_set1_epi32(ld32(y + 16 + 4 * j))));
                }
                s = _mm256_madd_epi16(s16, ones);
                if (k == K_Q4_0) s = _mm256_add_epi32(s, _mm256_set1_epi32(A[b].c));
            }
            uint32_t h[GR]; /* d in the low half, m (Q4_1) in the high one */
#pragma GCC unroll 8
            for (int r = 0; r < GR; r++) memcpy(&h[r], rp[r] + off, 4);
            const __m256i hv = _mm256_loadu_si256((const __m256i *)h);
            /* low halves of the 8 dwords -> 8 halves */
            const __m256i lo = _mm256_permute4x64_epi64(_mm256_packus_epi32(_mm256_and_si256(hv, _mm256_set1_epi32(0xFFFF)),
                                                                            _mm256_setzero_si256()), 0x08);
            const __m256 dx = _mm256_cvtph_ps(_mm256_castsi256_si128(lo));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(A[b].d)), _mm256_cvtepi32_ps(s), acc);
            if (k == K_Q4_1) {
                const __m256i hi = _mm256_permute4x64_epi64(_mm256_packus_epi32(_mm256_srli_epi32(hv, 16), _mm256_setzero_si256()), 0x08);
                ms = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(hi)), _mm256_set1_ps(A[b].s), ms);
            }
        }
        if (k == K_Q4_1) acc = _mm256_add_ps(acc, ms);
        float *o = out + r0;
        if (bias) acc = _mm256_add_ps(acc, maskz_load(rows, bias + r0));
        if (accumulate) acc = _mm256_add_ps(maskz_load(rows, o), acc);
        if (rows == GR) {
            _mm256_storeu_ps(o, acc);
        } else {
            float tmp[GR];
            _mm256_storeu_ps(tmp, acc);
            memcpy(o, tmp, (size_t)rows * sizeof(float));
        }
    }
}

AI void gemm(enum kind k, int n, float *out, size_t out_stride, const void *vw, size_t w_stride, int n_rows,
             const void *vx, size_t x_stride, int n_tokens, const float *bias, bool accumulate) {
    if (n_rows <= 0 || n_tokens <= 0) return;
    const int nb = n / QK8_0;
    const uint8_t *w = vw, *x = vx;
    if (n_tokens == 1 && nb <= GEMV_MAX_BLOCKS) {
        struct act A[GEMV_MAX_BLOCKS];
        act_table(k, x, x_stride, 1, nb, A);
        gemv(k, nb, out, w, w_stride, n_rows, x, A, bias, accumulate);
        return;
    }
    const size_t psize = (size_t)nb * p_block(k), asize = (size_t)n_tokens * nb * sizeof(struct act);
    uint8_t *buf = nb ? aligned_alloc(64, (psize + asize + 63) / 64 * 64) : NULL;
    if (!buf) {
        ac_gemm_by_dot(ac_type_traits(type_of(k))->vec_dot, n, out, out_stride, vw, w_stride, n_rows, vx, x_stride,
                       n_tokens, bias, accumulate);
        return;
    }
    struct act *A = (struct act *)(buf + psize);
    act_table(k, x, x_stride, n_tokens, nb, A);
    for (int r0 = 0; r0 < n_rows; r0 += GR) {
        const int rows = n_rows - r0 < GR ? n_rows - r0 : GR;
        const float *br = bias ? bias + r0 : NULL;
        repack(k, w + (size_t)r0 * w_stride, w_stride, rows, nb, buf);
        int t0 = 0;
        for (; t0 + NT <= n_tokens; t0 += NT)
            tile(k, NT, buf, nb, x + (size_t)t0 * x_stride, x_stride, A + (size_t)t0 * nb, out + (size_t)t0 * out_stride + r0,
                 out_stride, rows, br, accumulate);
        const uint8_t *xt = x + (size_t)t0 * x_stride;
        const struct act *At = A + (size_t)t0 * nb;
        float *ot = out + (size_t)t0 * out_stride + r0;
        switch (n_tokens - t0) {
        case 1: tile(k, 1, buf, nb, xt, x_stride, At, ot, out_stride, rows, br, accumulate); break;
        case 2: tile(k, 2, buf, nb, xt, x_stride, At, ot, out_stride, rows, br, accumulate); break;
        case 3: tile(k, 3, buf, nb, xt, x_stride, At, ot, out_stride, rows, br, accumulate); break;
        default: break;
        }
    }
    free(buf);
}

#define GEMM_FN(name, kind)                                                                                  \
    static void gemm_##name##_avx2(int n, float *out, size_t out_stride, const void *w, size_t w_stride,      \
                                   int n_rows, const void *x, size_t x_stride, int n_tokens, const float *bias, \
                                   bool accumulate) {                                                         \
        gemm(kind, n, out, out_stride, w, w_stride, n_rows, x, x_stride, n_tokens, bias, accumulate);         \
    }

GEMM_FN(q4_0, K_Q4_0)
GEMM_FN(q4_1, K_Q4_1)
GEMM_FN(q8_0, K_Q8_0)

ac_gemm_fn ac_gemm_avx2(uint32_t type) {
    switch (type) {
    case AC_TYPE_Q4_0: return gemm_q4_0_avx2;
    case AC_TYPE_Q4_1: return gemm_q4_1_avx2;
    case AC_TYPE_Q8_0: return gemm_q8_0_avx2;
    default: return NULL;
    }
}
