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

/* The first n lanes (all 16 for n >= 16). */
static inline __mmask16 first_lanes(int n) { return (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1); }

#define ATTN_ROWS 8 /* query rows per pass over the keys */
#define ATTN_PV_ROWS 4 /* query rows per pass over the values (accumulators in registers) */
#define ATTN_VECS 16 /* d / 16 at most */

/* Scores of nr rows against one tile of 16 positions: per key dimension i
 * one conversion of the tile's row and nr FMAs with q[r][i] broadcast; even
 * and odd dimensions in two sums (a shorter chain, and a smaller rounding
 * error than one sum of d terms). */
static inline __attribute__((always_inline)) void score_tile(int d, int nr, const float (*q)[256],
                                                              const uint16_t *tile, __m512 *acc) {
    __m512 odd[ATTN_ROWS];
    for (int r = 0; r < nr; r++) acc[r] = odd[r] = _mm512_setzero_ps();
    for (int i = 0; i < d; i += 2) {
        const __m512 k0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(tile + (size_t)i * AC_ATTN_TILE)));
        const __m512 k1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(tile + (size_t)(i + 1) * AC_ATTN_TILE)));
        for (int r = 0; r < nr; r++) {
            /* q[r][0 .. d) is set: the callers take d as a positive multiple of 16 */
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][i]), k0, acc[r]); // NOLINT(clang-analyzer-core.CallAndMessage)
            odd[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][i + 1]), k1, odd[r]);
        }
    }
    for (int r = 0; r < nr; r++) acc[r] = _mm512_add_ps(acc[r], odd[r]);
}

static void scores_rows(int d, int nr, const float (*q)[256], const int *n_pos, const uint16_t *k_tiles, float scale,
                        float *scores, size_t n_stride) {
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int pb = 0; pb < n_pos[nr - 1]; pb += AC_ATTN_TILE) {
        const uint16_t *tile = k_tiles + (size_t)(pb / AC_ATTN_TILE) * d * AC_ATTN_TILE;
        __m512 acc[ATTN_ROWS];
        switch (nr) { /* constant row counts, so that acc stays in registers */
        case 1: score_tile(d, 1, q, tile, acc); break;
        case 2: score_tile(d, 2, q, tile, acc); break;
        case 3: score_tile(d, 3, q, tile, acc); break;
        case 4: score_tile(d, 4, q, tile, acc); break;
        case 5: score_tile(d, 5, q, tile, acc); break;
        case 6: score_tile(d, 6, q, tile, acc); break;
        case 7: score_tile(d, 7, q, tile, acc); break;
        default: score_tile(d, 8, q, tile, acc); break;
        }
        for (int r = 0; r < nr; r++) {
            const int left = n_pos[r] - pb;
            if (left <= 0) continue;
            const __mmask16 m = first_lanes(left);
            _mm512_mask_storeu_ps(scores + (size_t)r * n_stride + pb, m, _mm512_mul_ps(acc[r], vscale));
        }
    }
}

/* In place: scores -> softmax probabilities rounded to F16. */
static void softmax_f16(float *s, int n_pos) {
    __m512 vmax = _mm512_set1_ps(-INFINITY), vsum = _mm512_setzero_ps();
    for (int p = 0; p < n_pos; p += 16) {
        const __mmask16 m = first_lanes(n_pos - p);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, s + p));
    }
    const __m512 maxs = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    for (int p = 0; p < n_pos; p += 16) {
        const __mmask16 m = first_lanes(n_pos - p);
        const __m512 e = exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + p), maxs));
        vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
        _mm512_mask_storeu_ps(s + p, m, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int p = 0; p < n_pos; p += 16) {
        const __mmask16 m = first_lanes(n_pos - p);
        const __m256i h16 =
            _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + p), inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_storeu_ps(s + p, m, _mm512_cvtph_ps(h16));
    }
}

/* out[r] = sum over p < n_pos[r] of probs[r][p] * v[p], for nr <= 4 rows,
 * each V row converted once for all of them. */
static inline __attribute__((always_inline)) void pv_rows(int nv, int nr, const int *n_pos, const float *probs,
                                                           size_t n_stride, const uint16_t *v16, float *const *out) {
    __m512 acc[ATTN_PV_ROWS][ATTN_VECS];
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < nv; i++) acc[r][i] = _mm512_setzero_ps();
    for (int p = 0; p < n_pos[nr - 1]; p++) {
        const uint16_t *vrow = v16 + (size_t)p * nv * 16;
        __m512 v[ATTN_VECS];
        for (int i = 0; i < nv; i++) v[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vrow + 16 * i)));
        for (int r = 0; r < nr; r++) {
            if (p >= n_pos[r]) continue;
            const __m512 prob = _mm512_set1_ps(probs[(size_t)r * n_stride + p]);
            for (int i = 0; i < nv; i++) acc[r][i] = _mm512_fmadd_ps(prob, v[i], acc[r][i]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < nv; i++) _mm512_storeu_ps(out[r] + 16 * i, acc[r][i]);
}

void ac_vec_attn_f16_avx512(const struct ac_attn_rows *rows, const uint16_t *k_tiles, const uint16_t *v16,
                            float scale, float *scores) {
    const int d = rows->d, nv = d / 16, n_rows = rows->n_tokens * rows->group;
    const size_t n_stride = ac_attn_scores_stride(rows);
    float q[ATTN_ROWS][256];
    int n_pos[ATTN_ROWS];
    float *out[ATTN_ROWS];
    for (int r0 = 0; r0 < n_rows; r0 += ATTN_ROWS) {
        const int nr = n_rows - r0 < ATTN_ROWS ? n_rows - r0 : ATTN_ROWS;
        for (int r = 0; r < nr; r++) {
            const int t = (r0 + r) / rows->group, g = (r0 + r) % rows->group;
            const uint16_t *q16 = rows->q16 + (size_t)t * rows->q_stride + (size_t)g * d;
            for (int i = 0; i < nv; i++)
                _mm512_storeu_ps(q[r] + 16 * i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q16 + 16 * i))));
            n_pos[r] = rows->n_pos0 + t;
            out[r] = rows->out + (size_t)t * rows->out_stride + (size_t)g * d;
        }
        float *s = scores + (size_t)r0 * n_stride;
        scores_rows(d, nr, (const float(*)[256])q, n_pos, k_tiles, scale, s, n_stride);
        for (int r = 0; r < nr; r++) softmax_f16(s + (size_t)r * n_stride, n_pos[r]);
        for (int r = 0; r < nr; r += ATTN_PV_ROWS) {
            const int np = nr - r < ATTN_PV_ROWS ? nr - r : ATTN_PV_ROWS;
            const float *probs = s + (size_t)r * n_stride;
            if (nv == 4) /* head_dim 64, the common case: a constant, fully unrolled */
                pv_rows(4, np, n_pos + r, probs, n_stride, v16, out + r);
            else
                pv_rows(nv, np, n_pos + r, probs, n_stride, v16, out + r);
        }
    }
}
