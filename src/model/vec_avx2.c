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

#define ATTN_HEADS 4
#define ATTN_VECS 32 /* d / 8 at most */

void ac_vec_attn_f16_avx2(int d, int n_q, int n_pos, const uint16_t *q16, const uint16_t *k16, const uint16_t *v16,
                          size_t stride, float scale, float *scores, float *out) {
    const int nv = d / 8;
    for (int h0 = 0; h0 < n_q; h0 += ATTN_HEADS) {
        const int nh = n_q - h0 < ATTN_HEADS ? n_q - h0 : ATTN_HEADS;
        __m256 q[ATTN_HEADS][ATTN_VECS];
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < nv; i++)
                q[h][i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(q16 + (size_t)(h0 + h) * d + 8 * i)));
        for (int p = 0; p < n_pos; p++) {
            const uint16_t *krow = k16 + (size_t)p * stride;
            __m256 k[ATTN_VECS];
            for (int i = 0; i < nv; i++) k[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(krow + 8 * i)));
            for (int h = 0; h < nh; h++) {
                __m256 acc = _mm256_mul_ps(k[0], q[h][0]);
                for (int i = 1; i < nv; i++) acc = _mm256_fmadd_ps(k[i], q[h][i], acc);
                scores[(size_t)(h0 + h) * n_pos + p] = hsum(acc) * scale;
            }
        }
        for (int h = 0; h < nh; h++) {
            float *s = scores + (size_t)(h0 + h) * n_pos;
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
                const __m128i h16 = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_maskload_ps(s + p, m), inv),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                _mm256_maskstore_ps(s + p, m, _mm256_cvtph_ps(h16));
            }
        }
        __m256 acc[ATTN_HEADS][ATTN_VECS];
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < nv; i++) acc[h][i] = _mm256_setzero_ps();
        for (int p = 0; p < n_pos; p++) {
            const uint16_t *vrow = v16 + (size_t)p * stride;
            __m256 v[ATTN_VECS];
            for (int i = 0; i < nv; i++) v[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vrow + 8 * i)));
            for (int h = 0; h < nh; h++) {
                const __m256 prob = _mm256_set1_ps(scores[(size_t)(h0 + h) * n_pos + p]);
                for (int i = 0; i < nv; i++) acc[h][i] = _mm256_fmadd_ps(prob, v[i], acc[h][i]);
            }
        }
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < nv; i++) _mm256_storeu_ps(out + (size_t)(h0 + h) * d + 8 * i, acc[h][i]);
    }
}
