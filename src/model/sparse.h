/* sparse.h - the matmul kernel of activation sparsity: weights stored
 * transposed (one row per input feature), and only the rows of the inputs
 * that survived thresholding are read:
 *     acc[0..len) += sum over k of x[idx[k]] * dequant(row idx[k])[off..off+len)
 * A generic reference (dequantize a row slice, then axpy) serves every type;
 * fused SIMD kernels cover the variant types. */
#ifndef AC_SPARSE_H
#define AC_SPARSE_H

#include <stddef.h>
#include <stdint.h>

/* rows: the transposed matrix; row_bytes: bytes of one row; off: first
 * element of the slice (a multiple of the type's block size); scratch:
 * len floats (used by the generic kernel only). */
typedef void (*ac_sparse_gemv_fn)(uint32_t type, const uint8_t *rows, size_t row_bytes, int64_t off,
                                  const int32_t *idx, int n_idx, const float *x, float *acc, int len,
                                  float *scratch);

void ac_sparse_gemv_ref(uint32_t type, const uint8_t *rows, size_t row_bytes, int64_t off, const int32_t *idx,
                        int n_idx, const float *x, float *acc, int len, float *scratch);

/* The fastest kernel for type on this CPU (the reference if none is fused). */
ac_sparse_gemv_fn ac_sparse_gemv(uint32_t type);
/* Fused AVX-512 kernel for type, or NULL (tests). */
ac_sparse_gemv_fn ac_sparse_gemv_avx512(uint32_t type);

#endif
