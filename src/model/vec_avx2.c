/* vec_avx2.c - AVX2 + FMA kernels of vec.h. */
#include <immintrin.h>
#include <math.h>

#include "model/vec.h"

void ac_vec_mad_avx2(int n, float *restrict y, const float *restrict x, float a) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* e^x for x <= 0, as exp_neg in vec_avx512.c; 2^n is built in the exponent
 * bits (n >= -126 where x >= -87; below, the result is 0). */
static inline __m256 exp_neg(__m256 x) {
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 e = _mm256_set1_ps(1.0f / 720.0f);
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f / 120.0f));
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f / 24.0f));
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f / 6.0f));
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(0.5f));
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f));
    e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f));
    const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(_mm256_and_ps(n, live)), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(e, _mm256_castsi256_ps(bits)), live);
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

static inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

/* The first n (< 8) lanes set. */
static inline __m256i lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define ATTN_ROWS 2 /* query rows per pass over the keys (16 registers) */
#define ATTN_VECS 32 /* d / 8 at most */

/* Scores of nr rows against one tile of 16 positions (two 8-wide halves),
 * even and odd dimensions in two sums as in vec_avx512.c. */
static inline __attribute__((always_inline)) void score_tile(int d, int nr, const float (*q)[256],
                                                              const uint16_t *tile, __m256 (*acc)[2]) {
    __m256 odd[ATTN_ROWS][2];
    for (int r = 0; r < nr; r++) acc[r][0] = acc[r][1] = odd[r][0] = odd[r][1] = _mm256_setzero_ps();
    for (int i = 0; i < d; i += 2) {
        const uint16_t *k16 = tile + (size_t)i * AC_ATTN_TILE;
        const __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)k16));
        const __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k16 + 8)));
        const __m256 k2 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k16 + AC_ATTN_TILE)));
        const __m256 k3 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k16 + AC_ATTN_TILE + 8)));
        for (int r = 0; r < nr; r++) {
            /* q[r][0 .. d) is set: the callers take d as a positive multiple of 16 */
            const __m256 qe = _mm256_set1_ps(q[r][i]), qo = _mm256_set1_ps(q[r][i + 1]); // NOLINT(clang-analyzer-core.CallAndMessage)
            acc[r][0] = _mm256_fmadd_ps(qe, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(qe, k1, acc[r][1]);
            odd[r][0] = _mm256_fmadd_ps(qo, k2, odd[r][0]);
            odd[r][1] = _mm256_fmadd_ps(qo, k3, odd[r][1]);
        }
    }
    for (int r = 0; r < nr; r++) {
        acc[r][0] = _mm256_add_ps(acc[r][0], odd[r][0]);
        acc[r][1] = _mm256_add_ps(acc[r][1], odd[r][1]);
    }
}

/* Stores the first n (<= 8) floats of v. */
static inline void store_first(float *dst, __m256 v, int n) {
    if (n >= 8)
        _mm256_storeu_ps(dst, v);
    else if (n > 0)
        _mm256_maskstore_ps(dst, lanes(n), v);
}

static void softmax_f16(float *s, int n_pos) {
    const int full = n_pos & ~7;
    const __m256i tail = lanes(n_pos - full);
    __m256 vmax = _mm256_set1_ps(-INFINITY), vsum = _mm256_setzero_ps();
    for (int p = 0; p < full; p += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + p));
    if (full < n_pos)
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(s + full, tail),
                                                     _mm256_castsi256_ps(tail)));
    const __m256 maxs = _mm256_set1_ps(hmax(vmax));
    for (int p = 0; p < n_pos; p += 8) {
        const __m256i m = p < full ? _mm256_set1_epi32(-1) : tail;
        const __m256 e = _mm256_and_ps(exp_neg(_mm256_sub_ps(_mm256_maskload_ps(s + p, m), maxs)), _mm256_castsi256_ps(m));
        vsum = _mm256_add_ps(vsum, e);
        _mm256_maskstore_ps(s + p, m, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(vsum));
    for (int p = 0; p < n_pos; p += 8) {
        const __m256i m = p < full ? _mm256_set1_epi32(-1) : tail;
        const __m128i h16 =
            _mm256_cvtps_ph(_mm256_mul_ps(_mm256_maskload_ps(s + p, m), inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_maskstore_ps(s + p, m, _mm256_cvtph_ps(h16));
    }
}

void ac_vec_attn_f16_avx2(const struct ac_attn_rows *rows, const uint16_t *k_tiles, const uint16_t *v16, float scale,
                          float *scores) {
    const int d = rows->d, nv = d / 8, n_rows = rows->n_tokens * rows->group;
    const size_t n_stride = ac_attn_scores_stride(rows);
    const __m256 vscale = _mm256_set1_ps(scale);
    float q[ATTN_ROWS][256];
    int n_pos[ATTN_ROWS];
    for (int r0 = 0; r0 < n_rows; r0 += ATTN_ROWS) {
        const int nr = n_rows - r0 < ATTN_ROWS ? n_rows - r0 : ATTN_ROWS;
        for (int r = 0; r < nr; r++) {
            const int t = (r0 + r) / rows->group, g = (r0 + r) % rows->group;
            const uint16_t *q16 = rows->q16 + (size_t)t * rows->q_stride + (size_t)g * d;
            for (int i = 0; i < nv; i++) _mm256_storeu_ps(q[r] + 8 * i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(q16 + 8 * i))));
            n_pos[r] = rows->n_pos0 + t;
        }
        float *s = scores + (size_t)r0 * n_stride;
        for (int pb = 0; pb < n_pos[nr - 1]; pb += AC_ATTN_TILE) {
            const uint16_t *tile = k_tiles + (size_t)(pb / AC_ATTN_TILE) * d * AC_ATTN_TILE;
            __m256 acc[ATTN_ROWS][2];
            switch (nr) { /* constant row counts, so that acc stays in registers */
            case 1: score_tile(d, 1, (const float(*)[256])q, tile, acc); break;
            default: score_tile(d, 2, (const float(*)[256])q, tile, acc); break;
            }
            for (int r = 0; r < nr; r++) {
                float *dst = s + (size_t)r * n_stride + pb;
                store_first(dst, _mm256_mul_ps(acc[r][0], vscale), n_pos[r] - pb);
                store_first(dst + 8, _mm256_mul_ps(acc[r][1], vscale), n_pos[r] - pb - 8);
            }
        }
        for (int r = 0; r < nr; r++) {
            const float *probs = s + (size_t)r * n_stride;
            softmax_f16(s + (size_t)r * n_stride, n_pos[r]);
            const int t = (r0 + r) / rows->group, g = (r0 + r) % rows->group;
            float *out = rows->out + (size_t)t * rows->out_stride + (size_t)g * d;
            __m256 acc[ATTN_VECS];
            for (int i = 0; i < nv; i++) acc[i] = _mm256_setzero_ps();
            for (int p = 0; p < n_pos[r]; p++) {
                const __m256 prob = _mm256_set1_ps(probs[p]);
                const uint16_t *vrow = v16 + (size_t)p * d;
                for (int i = 0; i < nv; i++)
                    acc[i] = _mm256_fmadd_ps(prob, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vrow + 8 * i))), acc[i]);
            }
            for (int i = 0; i < nv; i++) _mm256_storeu_ps(out + 8 * i, acc[i]);
        }
    }
}
