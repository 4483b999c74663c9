/* vec_avx2.c - AVX2 + FMA kernels of vec.h. */
#include <immintrin.h>

#include "model/vec.h"

void ac_vec_mad_avx2(int n, float *restrict y, const float *restrict x, float a) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
