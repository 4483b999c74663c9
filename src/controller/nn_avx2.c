/* nn_avx2.c - the linear layer's forward with AVX2 + FMA (compiled with
 * -mavx2 -mfma; called only when ac_nn_have_avx2()). Same contract as
 * ac_nn_linear_forward_ref, which the tests compare it with; the sums are
 * ordered differently, so results differ from it in the last bits. */
#include <immintrin.h>

#include "controller/nn.h"

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Two input rows x four weight rows per pass: 8 accumulators, 6 loads per
 * 8 FMAs. The C % 8 tail is scalar. */
void ac_nn_linear_forward_avx2(float *out, const float *inp, const float *w, const float *b, int T, int C, int OC) {
    const int C8 = C & ~7;
    int t = 0;
    for (; t + 2 <= T; t += 2) {
        const float *x0 = inp + (size_t)t * C, *x1 = x0 + C;
        float *o0 = out + (size_t)t * OC, *o1 = o0 + OC;
        int j = 0;
        for (; j + 4 <= OC; j += 4) {
            const float *w0 = w + (size_t)j * C, *w1 = w0 + C, *w2 = w1 + C, *w3 = w2 + C;
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
            __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            for (int i = 0; i < C8; i += 8) {
                __m256 u = _mm256_loadu_ps(x0 + i), v = _mm256_loadu_ps(x1 + i);
                __m256 k0 = _mm256_loadu_ps(w0 + i), k1 = _mm256_loadu_ps(w1 + i);
                __m256 k2 = _mm256_loadu_ps(w2 + i), k3 = _mm256_loadu_ps(w3 + i);
                a00 = _mm256_fmadd_ps(u, k0, a00);
                a01 = _mm256_fmadd_ps(u, k1, a01);
                a02 = _mm256_fmadd_ps(u, k2, a02);
                a03 = _mm256_fmadd_ps(u, k3, a03);
                a10 = _mm256_fmadd_ps(v, k0, a10);
                a11 = _mm256_fmadd_ps(v, k1, a11);
                a12 = _mm256_fmadd_ps(v, k2, a12);
                a13 = _mm256_fmadd_ps(v, k3, a13);
            }
            float s[8] = {hsum(a00), hsum(a01), hsum(a02), hsum(a03), hsum(a10), hsum(a11), hsum(a12), hsum(a13)};
            for (int i = C8; i < C; i++) {
                s[0] += x0[i] * w0[i], s[1] += x0[i] * w1[i], s[2] += x0[i] * w2[i], s[3] += x0[i] * w3[i];
                s[4] += x1[i] * w0[i], s[5] += x1[i] * w1[i], s[6] += x1[i] * w2[i], s[7] += x1[i] * w3[i];
            }
            for (int k = 0; k < 4; k++) {
                float bias = b ? b[j + k] : 0.0f;
                o0[j + k] = bias + s[k];
                o1[j + k] = bias + s[4 + k];
            }
        }
        for (; j < OC; j++) {
            o0[j] = (b ? b[j] : 0.0f) + ac_nn_dot(x0, w + (size_t)j * C, C);
            o1[j] = (b ? b[j] : 0.0f) + ac_nn_dot(x1, w + (size_t)j * C, C);
        }
    }
    if (t < T) { /* one row left: one input row x one weight row */
        const float *x = inp + (size_t)t * C;
        float *o = out + (size_t)t * OC;
        for (int j = 0; j < OC; j++) {
            const float *wr = w + (size_t)j * C;
            __m256 a = _mm256_setzero_ps();
            for (int i = 0; i < C8; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(wr + i), a);
            float s = hsum(a);
            for (int i = C8; i < C; i++) s += x[i] * wr[i];
            o[j] = (b ? b[j] : 0.0f) + s;
        }
    }
}
