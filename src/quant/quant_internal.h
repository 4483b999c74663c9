/* quant_internal.h - block layouts and kernel declarations shared by the
 * quant module's files (quant.c, quant_avx2.c, quant_avx512.c) and its
 * tests. Other modules should only need quant.h.
 *
 * Layouts are ggml's, byte for byte: fp16 fields are raw IEEE half bits
 * (uint16_t), blocks have no padding, and nothing is aligned beyond 1 or 2
 * bytes, so every kernel uses unaligned loads. */
#ifndef AC_QUANT_INTERNAL_H
#define AC_QUANT_INTERNAL_H

#include <assert.h>
#include <stdint.h>

#include "quant/quant.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t ac_half; /* IEEE binary16 bits */

/* Rows live at any byte address (a GGUF tensor offset, a caller's buffer):
 * packing gives every block alignment 1 so member access never assumes
 * more. The layouts have no padding either way. */
#define AC_PACKED __attribute__((packed))

/* 4.5 bits per weight: x = d * (q - 8), q in [0, 15] */
typedef struct AC_PACKED {
    ac_half d;
    uint8_t qs[QK4_0 / 2]; /* element j in the low nibble of qs[j], j+16 in the high one */
} block_q4_0;
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

/* 5 bits per weight: x = d * q + m, q in [0, 15] */
typedef struct AC_PACKED {
    ac_half d;
    ac_half m;
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");

/* 5.5 bits per weight: x = d * (q - 16), q in [0, 31]. The low 4 bits are
 * laid out as in Q4_0; bit 4 of element j is bit j of qh (a little-endian
 * uint32). */
typedef struct AC_PACKED {
    ac_half d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");

/* 6 bits per weight: x = d * q + m, q in [0, 31]; bits as in Q5_0 */
typedef struct AC_PACKED {
    ac_half d;
    ac_half m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");

/* 8.5 bits per weight: x = d * q */
typedef struct AC_PACKED {
    ac_half d;
    int8_t qs[QK8_0];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

/* 9 bits per weight: x = d * q; s = d * sum(q) (activations of Q4_1) */
typedef struct AC_PACKED {
    ac_half d;
    ac_half s;
    int8_t qs[QK8_1];
} block_q8_1;
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");

/* 2.625 bits per weight: 16 groups of 16, x = d*sc*q - dmin*m, q in [0, 3],
 * sc and m 4 bits each (low/high nibble of scales[group]). */
typedef struct AC_PACKED {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4]; /* element 128n + 32j + l: (qs[32n + l] >> 2j) & 3 */
    ac_half d;
    ac_half dmin;
} block_q2_K;
static_assert(sizeof(block_q2_K) == 84, "block_q2_K size");

/* 3.4375 bits per weight: 16 groups of 16, x = d * (sc - 32) * (q - 4),
 * q in [0, 7], sc 6 bits. Element e = 128n + 32j + l (n < 2, j < 4, l < 32):
 * low 2 bits (qs[32n + l] >> 2j) & 3 (Q2_K's layout), bit 2 in bit e / 32
 * of hmask[e % 32]. Scale g: low 4 bits in the low (g < 8) or high (g >= 8)
 * nibble of scales[g % 8], high 2 bits in bits 2(g / 4).. of scales[8 + g % 4]. */
typedef struct AC_PACKED {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    ac_half d;
} block_q3_K;
static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");

/* 4.5 bits per weight: 8 groups of 32, x = d*sc*q - dmin*m, q in [0, 15],
 * sc and m 6 bits each, packed into 12 bytes (see q4_K_scale_min). */
typedef struct AC_PACKED {
    ac_half d;
    ac_half dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2]; /* element 64j + l: low nibble of qs[32j + l], 64j + 32 + l: high */
} block_q4_K;
static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

/* 5.5 bits per weight: Q4_K plus a fifth bit, x = d*sc*q - dmin*m, q in
 * [0, 31]. Low 4 bits as Q4_K's qs; bit 4 of element e in bit e / 32 of
 * qh[e % 32]. */
typedef struct AC_PACKED {
    ac_half d;
    ac_half dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

/* 6.5625 bits per weight: 16 groups of 16, x = d * sc * (q - 32), q 6 bits */
typedef struct AC_PACKED {
    uint8_t ql[QK_K / 2]; /* low 4 bits */
    uint8_t qh[QK_K / 4]; /* high 2 bits */
    int8_t scales[QK_K / 16];
    ac_half d;
} block_q6_K;
static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

/* 9.125 bits per weight: activations of the K-quants. x = d * q; bsums are
 * the sums of each group of 16 quants (the K-quant dots use them for the
 * min / offset terms). */
typedef struct AC_PACKED {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* 3 bits per weight (2-bit codes + fp16 scale and offset per 32; ours, no
 * ggml equivalent): x = d * q + m, q in [0, 3]. Element 8k + l sits in bits
 * 2k..2k+1 of qs[l], so one 64-bit load shifted by 0, 2, 4, 6 gives the
 * codes of elements 0-7, 8-15, 16-23, 24-31. Pairs with Q8_1 activations
 * (m times the block's activation sum is Q8_1's s), as Q4_1 does. */
#define QK2_0 32
typedef struct AC_PACKED {
    ac_half d;
    ac_half m;
    uint8_t qs[QK2_0 / 4];
} block_q2_0;
static_assert(sizeof(block_q2_0) == 12, "block_q2_0 size");

/* ---- scalar kernels (quant.c) ---- */
void ac_quantize_row_q8_0_ref(const float *restrict x, void *restrict y, int64_t n);
void ac_quantize_row_q8_1_ref(const float *restrict x, void *restrict y, int64_t n);
void ac_quantize_row_q8_K_ref(const float *restrict x, void *restrict y, int64_t n);

/* ---- SIMD levels (enum ac_simd_level and ac_quant_cpu_has: quant.h) ---- */

/* Each ISA file overrides the entries of the traits table (indexed by type
 * id, AC_TYPE_COUNT long) that it accelerates. Call only when the CPU has
 * the ISA. */
void ac_quant_install_avx2(struct ac_type_traits *table);
void ac_quant_install_avx512(struct ac_type_traits *table);

/* Switches every traits entry to the kernels of one level (tests and
 * benchmarks compare levels side by side). Returns false, changing nothing,
 * if the CPU lacks the level. Not thread-safe against concurrent kernel use. */
bool ac_quant_use_level(enum ac_simd_level level);

#endif
