/* vec.h - float vector kernels of the forward pass that are not tied to a
 * weight format: a scalar reference and SIMD versions chosen at run time. */
#ifndef AC_VEC_H
#define AC_VEC_H

#include <stdbool.h>

/* y[i] += a * x[i] for i < n */
void ac_vec_mad(int n, float *restrict y, const float *restrict x, float a);
void ac_vec_mad_ref(int n, float *restrict y, const float *restrict x, float a);

/* Picks the SIMD kernels (idempotent); ac_vec_mad works before it too. */
void ac_vec_init(void);
/* Forces the reference kernels (tests). */
void ac_vec_force_scalar(bool on);

/* SIMD implementations, defined in vec_avx2.c / vec_avx512.c. */
void ac_vec_mad_avx2(int n, float *restrict y, const float *restrict x, float a);
void ac_vec_mad_avx512(int n, float *restrict y, const float *restrict x, float a);

#endif
