/* sparse.h - the matmul kernel of activation sparsity: weights stored
 * transposed (one row per input feature), and only the rows of the inputs
 * that survived thresholding are read:
 *     acc[0..n_out) += sum over k of x[idx[k]] * row idx[k]
 *
 * Rows of Q8_0, Q4_0 and Q2_0 are kept in the sparse layout: a row's fp16
 * block scales (d[nb], then for Q2_0 the offsets m[nb]) first, then its
 * codes (Q8_0: q + 128 as bytes; Q4_0 and Q2_0: the blocks' qs bytes
 * unchanged), so that a kernel reads the scales of 16 blocks with one load.
 * Other types keep their ggml rows.
 *
 * The integer kernels (Q8_0, Q4_0, Q2_0) work on groups of
 * AC_SPARSE_GROUP kept rows: the list is cut into AC_SPARSE_GROUP parts,
 * group g takes the g-th row of each part (rows far apart in memory, read
 * side by side); the n_idx % AC_SPARSE_GROUP left over form one last group.
 * Per group and block b, each row's coefficient s_r = x_r * d_rb is
 * rounded to an int8 c_r on the group's common step S = max|s_r| / 127;
 * sum_r c_r * q_rj is exact in int32, and the block adds S times it to a
 * float sum (fmaf), group after group. Quantizing the coefficients is the
 * only approximation (like the Q8 activations of a dense quantized matmul,
 * on 8 values instead of 32). Q2_0's offsets add sum_r x_r * m_rb in float.
 * ac_sparse_gemv_ref computes exactly this in scalar code, and the SIMD
 * kernels of these types match it bit for bit. */
#ifndef AC_SPARSE_H
#define AC_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#define AC_SPARSE_GROUP 8

/* rows: the transposed matrix; row_bytes: bytes of one row; scratch:
 * ac_sparse_scratch_floats(n_out) floats, any alignment. */
typedef void (*ac_sparse_gemv_fn)(uint32_t type, const uint8_t *rows, size_t row_bytes, const int32_t *idx,
                                  int n_idx, const float *x, float *acc, int n_out, float *scratch);

/* Scalar reference: the integer algorithm above for Q8_0, Q4_0 and Q2_0;
 * for other types, dequantize each kept row and add x times it. */
void ac_sparse_gemv_ref(uint32_t type, const uint8_t *rows, size_t row_bytes, const int32_t *idx, int n_idx,
                        const float *x, float *acc, int n_out, float *scratch);

/* The fastest kernel for type on this CPU (the reference if none is fused). */
ac_sparse_gemv_fn ac_sparse_gemv(uint32_t type);
/* Fused AVX-512 kernel for type, or NULL (tests). */
ac_sparse_gemv_fn ac_sparse_gemv_avx512(uint32_t type);

/* Floats of scratch a kernel needs for n_out outputs. */
size_t ac_sparse_scratch_floats(int n_out);

/* Thresholding: zeroes the x[i] with |x[i]| < thr, writes the indices of
 * the others (in order) to idx and returns how many. idx needs room for
 * n + 16 entries (the SIMD version stores 16 at a time). */
typedef int (*ac_sparse_select_fn)(float *x, int n, float thr, int32_t *idx);
int ac_sparse_select_ref(float *x, int n, float thr, int32_t *idx);
ac_sparse_select_fn ac_sparse_select(void);
ac_sparse_select_fn ac_sparse_select_avx512(void);

/* Writes src[0..n) as one row of type in the sparse layout; tmp: bytes of
 * one ggml row of type (ac_row_size). n must fit the type's blocks. */
void ac_sparse_pack_row(uint32_t type, const float *src, uint8_t *dst, int64_t n, uint8_t *tmp);

/* The kept inputs of group g (see above) into rows[]; returns how many
 * (AC_SPARSE_GROUP except in the last group). */
int ac_sparse_group(const int32_t *idx, int n_idx, int g, int32_t rows[AC_SPARSE_GROUP]);

#endif
