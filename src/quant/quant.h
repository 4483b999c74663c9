/* quant.h - tensor number formats: ggml-compatible block layouts, a scalar
 * reference kernel per type, SIMD kernels selected at run time.
 *
 * Type ids are ggml's (they are what GGUF files store). Every quantized
 * weight type has a vec_dot against activations in its vec_dot_type, as
 * ggml pairs them: Q4_0/Q8_0 -> Q8_0, Q4_1 -> Q8_1, K-quants -> Q8_K,
 * F16 -> F16, F32 -> F32.
 *
 * One type is our own: Q2_0 (id 100, outside ggml's id range), a 2-bit
 * format with 32-element blocks for rows whose length is not a multiple of
 * 256 (where Q2_K cannot go). llama.cpp cannot load tensors of that type. */
#ifndef AC_QUANT_H
#define AC_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ac_type {
    AC_TYPE_F32 = 0,
    AC_TYPE_F16 = 1,
    AC_TYPE_Q4_0 = 2,
    AC_TYPE_Q4_1 = 3,
    AC_TYPE_Q5_0 = 6,
    AC_TYPE_Q5_1 = 7,
    AC_TYPE_Q8_0 = 8,
    AC_TYPE_Q8_1 = 9,
    AC_TYPE_Q2_K = 10,
    AC_TYPE_Q3_K = 11,
    AC_TYPE_Q4_K = 12,
    AC_TYPE_Q5_K = 13,
    AC_TYPE_Q6_K = 14,
    AC_TYPE_Q8_K = 15,
    AC_TYPE_Q2_0 = 100, /* ours, not ggml's: llama.cpp cannot load it */
    AC_TYPE_COUNT = 101, /* size of the id space the traits table covers */
};

/* x: one row of n elements in the type's layout; y: n floats. */
typedef void (*ac_to_float_fn)(const void *restrict x, float *restrict y, int64_t n);
/* x: n floats; y: one row in the type's layout. n is a multiple of the block size. */
typedef void (*ac_from_float_fn)(const float *restrict x, void *restrict y, int64_t n);
/* *s = dot(x, y) over n elements; x in this type, y in its vec_dot_type.
 * n is a multiple of the block size. Pointers need no particular alignment. */
typedef void (*ac_vec_dot_fn)(int n, float *restrict s, const void *restrict x, const void *restrict y);

struct ac_type_traits {
    const char *name;          /* "q4_0", as ggml names it */
    int blck_size;             /* elements per block */
    size_t type_size;          /* bytes per block */
    bool is_quantized;
    ac_to_float_fn to_float;           /* dequantize (fastest available) */
    ac_from_float_fn from_float_ref;   /* deterministic reference quantizer, bit-equal to ggml's *_ref */
    ac_from_float_fn from_float;       /* fastest quantizer (used for activations); same bits as _ref */
    ac_vec_dot_fn vec_dot;             /* fastest available, chosen by ac_quant_init() */
    ac_vec_dot_fn vec_dot_ref;         /* scalar reference */
    enum ac_type vec_dot_type;         /* layout the activations must be in */
};

/* Selects SIMD kernels by CPU features (AVX2, AVX-512/VNNI). Idempotent and
 * thread-safe to call more than once; every other function works before it
 * too (with reference kernels). */
void ac_quant_init(void);

/* SIMD levels: every kernel file of the project (quant, model) targets one. */
enum ac_simd_level {
    AC_SIMD_SCALAR = 0,
    AC_SIMD_AVX2 = 1,       /* AVX2 + FMA + F16C */
    AC_SIMD_AVX512VNNI = 2, /* AVX-512 F/BW/VL/DQ + VNNI */
};

/* True if this CPU (and OS) can run the level. */
bool ac_quant_cpu_has(enum ac_simd_level level);

/* Name of the SIMD level in use: "scalar", "avx2", "avx512", "avx512vnni". */
const char *ac_quant_simd_name(void);

/* Forces the reference kernels (tests, debugging). */
void ac_quant_force_scalar(bool on);

/* Traits of a type, or NULL if the id is unknown/unsupported. */
const struct ac_type_traits *ac_type_traits(uint32_t type);

/* Bytes of one row of n elements; 0 if n is not a multiple of the block size
 * or the type is unsupported. */
size_t ac_row_size(uint32_t type, int64_t n);

/* IEEE half <-> float, bit-exact as ggml (round to nearest even). */
float ac_fp16_to_fp32(uint16_t h);
uint16_t ac_fp32_to_fp16(float f);

/* Register-blocked matrix product: for every token t < n_tokens
 * and weight row r < n_rows,
 *     v = dot(row r of w, token t of x) (+ bias[r] when bias is not NULL)
 *     out[t * out_stride + r] = v, or += v when accumulate
 * w: n_rows rows of n elements in the weight type, w_stride bytes apart;
 * x: n_tokens rows of n elements in its vec_dot_type, x_stride bytes apart;
 * out_stride counts floats. Results equal vec_dot's up to float
 * reassociation, and each output's bits depend only on its row and token
 * (not on n_rows, n_tokens or where the row range starts), so a token gives
 * the same result alone as in a batch. No pointer needs any alignment;
 * kernels are thread-safe (scratch is per call; if it cannot be allocated
 * the kernel falls back to vec_dot). */
typedef void (*ac_gemm_fn)(int n, float *out, size_t out_stride, const void *w, size_t w_stride, int n_rows,
                           const void *x, size_t x_stride, int n_tokens, const float *bias, bool accumulate);

/* The gemm kernel of a weight type at the SIMD level in use, or NULL where
 * there is none (callers then loop over vec_dot). */
ac_gemm_fn ac_quant_gemm(uint32_t type);

/* Weights interleaved 16 rows at a time ("x16" layouts), for the decode
 * path: the 16-row gemv otherwise transposes the rows' quants and gathers
 * each block's fp16 scale from the plain blocks on every call. Types that
 * have one: Q4_0, Q4_1, Q8_0, Q2_0 and Q2_K ("q4_0x16" ...). A group of 16
 * rows (a ragged last group repeats its last row) holds, for each block b,
 * the block's quants of the 16 rows, dword j of row r's qs at byte
 * 64 * j + 4 * r (Q4_0, Q4_1: 4 dwords, 256 bytes; Q2_0: 2 dwords, 128
 * bytes; Q8_0: 8 dwords, 512 bytes, each quant stored + 128 as an unsigned
 * byte, x ^ 0x80, as VNNI's unsigned operand wants it), and after all nb
 * blocks the scales (row r of block b at half 16 * b + r), for Q4_1 and
 * Q2_0 followed by the mins likewise. Q2_K keeps each superblock of the 16
 * rows together: their qs as 16 dwords (as above), then scale byte g of
 * row r at 1024 + 16 * g + r, then the 16 d and the 16 dmin halves. A
 * group is 16 row sizes long, so row r0 (a multiple of 16) starts at
 * r0 * ac_row_size(type, n) as in the plain layout. */
#define AC_X16_ROWS 16

/* Whether type has an x16 layout (whatever the SIMD level). */
bool ac_x16_has(uint32_t type);

/* Bytes of the packed copy of n_rows rows of n elements of type (rows
 * rounded up to whole groups); 0 if type has no x16 layout, n is not a
 * multiple of its block size or either size is < 1. */
size_t ac_x16_size(uint32_t type, int64_t n_rows, int64_t n);

/* Packs n_rows rows of type of n elements (w_stride bytes apart) into dst,
 * ac_x16_size bytes. Returns 0, or -1 with err set on bad sizes or types. */
int ac_x16_pack(uint32_t type, void *dst, const void *w, size_t w_stride, int64_t n_rows, int64_t n, char *err);

/* The gemm kernel for packed weights of type (ac_gemm_fn's contract,
 * w_stride the plain row size, w at a group's start), with the same bits
 * as the plain kernel of the level in use (Q2_0 and Q2_K, which have no
 * plain gemm kernel: vec_dot_ref's bits); NULL where that level has none
 * (callers then use the plain rows). */
ac_gemm_fn ac_quant_gemm_x16(uint32_t type);

/* Scalar reference of the packed kernel of type (NULL for a type without an
 * x16 layout): vec_dot_ref's sum of every (row, token) pair, its blocks
 * read from the packed layout. */
ac_gemm_fn ac_gemm_x16_ref(uint32_t type);

#endif
