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

/* Keys are cached in tiles of AC_ATTN_TILE positions, each tile head_dim
 * rows of AC_ATTN_TILE F16 values (position-contiguous): a score kernel
 * reads 16 positions per load and needs no horizontal sums. Key (p, i) of a
 * head is at k_tiles[(p / 16) * head_dim * 16 + i * 16 + p % 16]. */
#define AC_ATTN_TILE 16

/* The query rows of one attention call: n_tokens consecutive tokens times
 * the group of query heads that share one KV head (GQA). Row (t, g) reads
 * q16 + t * q_stride + g * d (F16) and writes out + t * out_stride + g * d;
 * token t attends to positions 0 .. n_pos0 + t - 1 (causal). */
struct ac_attn_rows {
    int d, group, n_tokens, n_pos0;
    const uint16_t *q16;
    size_t q_stride;
    float *out;
    size_t out_stride;
};

/* Floats between consecutive rows of the scores scratch. */
static inline size_t ac_attn_scores_stride(const struct ac_attn_rows *rows) {
    return (size_t)(rows->n_pos0 + rows->n_tokens - 1 + AC_ATTN_TILE - 1) / AC_ATTN_TILE * AC_ATTN_TILE;
}

/* Attention as llama.cpp computes it: score = scale * (q . k) with q in
 * F16, probabilities = softmax over the positions rounded to F16, out =
 * sum over p of prob[p] * v[p]. k_tiles: the head's key tiles; v16: its
 * values, row p at v16 + p * d. scores: n_tokens * group *
 * ac_attn_scores_stride floats of scratch. A row's result does not depend
 * on the other rows (a token alone or in a batch gives the same bits). */
void ac_vec_attn_f16(const struct ac_attn_rows *rows, const uint16_t *k_tiles, const uint16_t *v16, float scale,
                     float *scores);
void ac_vec_attn_f16_ref(const struct ac_attn_rows *rows, const uint16_t *k_tiles, const uint16_t *v16, float scale,
                         float *scores);
/* Writes key vector k (d values) of position p into the tiles. */
void ac_attn_store_key(int d, uint16_t *k_tiles, int p, const uint16_t *k);

/* Picks the SIMD kernels (idempotent); the kernels above work before it
 * too, as the scalar references. */
void ac_vec_init(void);
/* Forces the reference kernels (tests). */
void ac_vec_force_scalar(bool on);
/* Caps the SIMD level at AVX2 (tests of the AVX2 kernels on AVX-512 CPUs). */
void ac_vec_force_avx2(bool on);

/* SIMD implementations, defined in vec_avx2.c / vec_avx512.c. */
void ac_vec_mad_avx2(int n, float *restrict y, const float *restrict x, float a);
void ac_vec_mad_avx512(int n, float *restrict y, const float *restrict x, float a);
/* d must be a multiple of 16 and at most 256 (others take the reference) */
void ac_vec_attn_f16_avx2(const struct ac_attn_rows *rows, const uint16_t *k_tiles, const uint16_t *v16, float scale,
                          float *scores);
void ac_vec_attn_f16_avx512(const struct ac_attn_rows *rows, const uint16_t *k_tiles, const uint16_t *v16,
                            float scale, float *scores);

#endif
