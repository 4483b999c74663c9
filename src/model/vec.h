/* vec.h - float vector kernels of the forward pass that are not tied to a
 * weight format: a scalar reference and SIMD versions chosen at run time. */
#ifndef AC_VEC_H
#define AC_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* y[i] += a * x[i] for i < n */
void ac_vec_mad(int n, float *restrict y, const float *restrict x, float a);
void ac_vec_mad_ref(int n, float *restrict y, const float *restrict x, float a);

/* Attention of the n_q query heads that share one KV head (GQA) over its
 * n_pos cached F16 rows, as llama.cpp computes it: score = scale * (q . k)
 * with q in F16, probabilities = softmax over the positions rounded to F16,
 * out[h] = sum over p of prob[h][p] * v[p]. q16: n_q rows of d F16 values;
 * row p of K and V at k16 + p * stride, v16 + p * stride; scores: n_q * n_pos
 * floats of scratch; out: n_q rows of d floats. Each head's result does not
 * depend on n_q (a head alone or in its group gives the same bits). */
void ac_vec_attn_f16(int d, int n_q, int n_pos, const uint16_t *q16, const uint16_t *k16, const uint16_t *v16,
                     size_t stride, float scale, float *scores, float *out);
void ac_vec_attn_f16_ref(int d, int n_q, int n_pos, const uint16_t *q16, const uint16_t *k16, const uint16_t *v16,
                         size_t stride, float scale, float *scores, float *out);

/* Picks the SIMD kernels (idempotent); ac_vec_mad works before it too. */
void ac_vec_init(void);
/* Forces the reference kernels (tests). */
void ac_vec_force_scalar(bool on);
/* Caps the SIMD level at AVX2 (tests of the AVX2 kernels on AVX-512 CPUs). */
void ac_vec_force_avx2(bool on);

/* SIMD implementations, defined in vec_avx2.c / vec_avx512.c. */
void ac_vec_mad_avx2(int n, float *restrict y, const float *restrict x, float a);
void ac_vec_mad_avx512(int n, float *restrict y, const float *restrict x, float a);
/* d must be a multiple of 16 and at most 256 (others take the reference) */
void ac_vec_attn_f16_avx2(int d, int n_q, int n_pos, const uint16_t *q16, const uint16_t *k16, const uint16_t *v16,
                          size_t stride, float scale, float *scores, float *out);
void ac_vec_attn_f16_avx512(int d, int n_q, int n_pos, const uint16_t *q16, const uint16_t *k16,
                            const uint16_t *v16, size_t stride, float scale, float *scores, float *out);

#endif
