/* gemm_internal.h - the gemm kernels of each SIMD level (gemm.c,
 * gemm_avx2.c, gemm_avx512.c) and what they share. See ac_gemm_fn in
 * quant.h for the contract. */
#ifndef AC_GEMM_INTERNAL_H
#define AC_GEMM_INTERNAL_H

#include "quant/quant_internal.h"

/* Q2_K's x16 superblock of a group (quant.h): the 16 rows' qs as 16
 * dwords, then scale byte g of row r at Q2K_X16_SCALES + 16 * g + r, then
 * the rows' d and dmin halves; the whole is 16 plain blocks long. */
#define Q2K_X16_SCALES (AC_X16_ROWS * QK_K / 4)
#define Q2K_X16_D (Q2K_X16_SCALES + AC_X16_ROWS * QK_K / 16)
#define Q2K_X16_DMIN (Q2K_X16_D + AC_X16_ROWS * (int)sizeof(ac_half))
static_assert(Q2K_X16_DMIN + AC_X16_ROWS * sizeof(ac_half) == AC_X16_ROWS * sizeof(block_q2_K),
              "q2_Kx16 superblock size");

/* The kernel of one type at one level, or NULL where that level has none
 * (the scalar level has one for every type: vec_dot_ref in a loop). Call a
 * SIMD level's only when ac_quant_cpu_has(level). */
ac_gemm_fn ac_gemm_select(uint32_t type, enum ac_simd_level level);
ac_gemm_fn ac_gemm_avx2(uint32_t type);
ac_gemm_fn ac_gemm_avx512(uint32_t type);
/* The AVX-512 VNNI kernel on type's x16 layout (quant.h), NULL for a type
 * without one. */
ac_gemm_fn ac_gemm_x16_avx512(uint32_t type);

/* The fallback of every kernel: the dot of each (row, token) pair with dot,
 * writing as ac_gemm_fn says. */
void ac_gemm_by_dot(ac_vec_dot_fn dot, int n, float *out, size_t out_stride, const void *w, size_t w_stride,
                    int n_rows, const void *x, size_t x_stride, int n_tokens, const float *bias, bool accumulate);

#endif
