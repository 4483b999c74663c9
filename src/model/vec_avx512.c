/* vec_avx512.c - AVX-512F kernels of vec.h; the tail uses a mask. */
#include <immintrin.h>
#include <math.h>

#include "model/vec.h"

void ac_vec_mad_avx512(int n, float *restrict y, const float *restrict x, float a) {
    const __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

/* e^x for x <= 0 (softmax arguments), relative error ~2e-7: 2^n * e^r with
 * n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in two
 * for exactness), e^r by its degree-6 Taylor polynomial; x below -87
 * flushes to 0 as expf underflows there. */
static inline __m512 exp_neg(__m512 x) {
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 e = _mm512_set1_ps(1.0f / 720.0f);
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 120.0f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 24.0f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 6.0f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(0.5f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f));
    e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f));
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    return _mm512_maskz_scalef_ps(live, e, n);
}

/* Heads are taken four at a time so that a K or V row, converted once,
 * serves all of them from registers. */
#define ATTN_HEADS 4
#define ATTN_VECS 16 /* d / 16 at most */

void ac_vec_attn_f16_avx512(int d, int n_q, int n_pos, const uint16_t *q16, const uint16_t *k16,
                            const uint16_t *v16, size_t stride, float scale, float *scores, float *out) {
    const int nv = d / 16;
    for (int h0 = 0; h0 < n_q; h0 += ATTN_HEADS) {
        const int nh = n_q - h0 < ATTN_HEADS ? n_q - h0 : ATTN_HEADS;
        __m512 q[ATTN_HEADS][ATTN_VECS];
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < nv; i++)
                q[h][i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q16 + (size_t)(h0 + h) * d + 16 * i)));
        /* scores */
        for (int p = 0; p < n_pos; p++) {
            const uint16_t *krow = k16 + (size_t)p * stride;
            __m512 k[ATTN_VECS];
            for (int i = 0; i < nv; i++) k[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(krow + 16 * i)));
            for (int h = 0; h < nh; h++) {
                __m512 acc = _mm512_mul_ps(k[0], q[h][0]);
                for (int i = 1; i < nv; i++) acc = _mm512_fmadd_ps(k[i], q[h][i], acc);
                scores[(size_t)(h0 + h) * n_pos + p] = _mm512_reduce_add_ps(acc) * scale;
            }
        }
        /* probabilities, rounded to F16 */
        for (int h = 0; h < nh; h++) {
            float *s = scores + (size_t)(h0 + h) * n_pos;
            __m512 vmax = _mm512_set1_ps(-INFINITY), vsum = _mm512_setzero_ps();
            for (int p = 0; p < n_pos; p += 16) {
                const __mmask16 m = (__mmask16)(n_pos - p >= 16 ? 0xFFFF : (1u << (n_pos - p)) - 1);
                vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, s + p));
            }
            const __m512 maxs = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
            for (int p = 0; p < n_pos; p += 16) {
                const __mmask16 m = (__mmask16)(n_pos - p >= 16 ? 0xFFFF : (1u << (n_pos - p)) - 1);
                const __m512 e = exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + p), maxs));
                vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
                _mm512_mask_storeu_ps(s + p, m, e);
            }
            const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
            for (int p = 0; p < n_pos; p += 16) {
                const __mmask16 m = (__mmask16)(n_pos - p >= 16 ? 0xFFFF : (1u << (n_pos - p)) - 1);
                const __m256i h16 = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + p), inv),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                _mm512_mask_storeu_ps(s + p, m, _mm512_cvtph_ps(h16));
            }
        }
        /* out = probabilities x V, accumulated in registers */
        __m512 acc[ATTN_HEADS][ATTN_VECS];
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < nv; i++) acc[h][i] = _mm512_setzero_ps();
        for (int p = 0; p < n_pos; p++) {
            const uint16_t *vrow = v16 + (size_t)p * stride;
            __m512 v[ATTN_VECS];
            for (int i = 0; i < nv; i++) v[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vrow + 16 * i)));
            for (int h = 0; h < nh; h++) {
                const __m512 prob = _mm512_set1_ps(scores[(size_t)(h0 + h) * n_pos + p]);
                for (int i = 0; i < nv; i++) acc[h][i] = _mm512_fmadd_ps(prob, v[i], acc[h][i]);
            }
        }
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < nv; i++) _mm512_storeu_ps(out + (size_t)(h0 + h) * d + 16 * i, acc[h][i]);
    }
}
