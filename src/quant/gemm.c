/* gemm.c - gemm kernel selection and the scalar reference (vec_dot_ref
 * over every (row, token) pair). The SIMD kernels are in gemm_avx2.c and
 * gemm_avx512.c. */
#include "quant/gemm_internal.h"

#include <string.h>

#include "common/common.h"

void ac_gemm_by_dot(ac_vec_dot_fn dot, int n, float *out, size_t out_stride, const void *w, size_t w_stride,
                    int n_rows, const void *x, size_t x_stride, int n_tokens, const float *bias, bool accumulate) {
    for (int t = 0; t < n_tokens; t++) {
        const uint8_t *xt = (const uint8_t *)x + (size_t)t * x_stride;
        float *o = out + (size_t)t * out_stride;
        for (int r = 0; r < n_rows; r++) {
            float s;
            dot(n, &s, (const uint8_t *)w + (size_t)r * w_stride, xt);
            if (bias) s += bias[r];
            o[r] = accumulate ? o[r] + s : s;
        }
    }
}

#define GEMM_REF(name, type)                                                                                  \
    static void gemm_ref_##name(int n, float *out, size_t out_stride, const void *w, size_t w_stride,          \
                                int n_rows, const void *x, size_t x_stride, int n_tokens, const float *bias,   \
                                bool accumulate) {                                                             \
        ac_gemm_by_dot(ac_type_traits(type)->vec_dot_ref, n, out, out_stride, w, w_stride, n_rows, x, x_stride, \
                       n_tokens, bias, accumulate);                                                            \
    }

GEMM_REF(f32, AC_TYPE_F32)
GEMM_REF(f16, AC_TYPE_F16)
GEMM_REF(q4_0, AC_TYPE_Q4_0)
GEMM_REF(q4_1, AC_TYPE_Q4_1)
GEMM_REF(q8_0, AC_TYPE_Q8_0)
GEMM_REF(q2_K, AC_TYPE_Q2_K)
GEMM_REF(q4_K, AC_TYPE_Q4_K)
GEMM_REF(q6_K, AC_TYPE_Q6_K)

static ac_gemm_fn gemm_ref(uint32_t type) {
    switch (type) {
    case AC_TYPE_F32: return gemm_ref_f32;
    case AC_TYPE_F16: return gemm_ref_f16;
    case AC_TYPE_Q4_0: return gemm_ref_q4_0;
    case AC_TYPE_Q4_1: return gemm_ref_q4_1;
    case AC_TYPE_Q8_0: return gemm_ref_q8_0;
    case AC_TYPE_Q2_K: return gemm_ref_q2_K;
    case AC_TYPE_Q4_K: return gemm_ref_q4_K;
    case AC_TYPE_Q6_K: return gemm_ref_q6_K;
    default: return NULL;
    }
}

ac_gemm_fn ac_gemm_select(uint32_t type, enum ac_simd_level level) {
    switch (level) {
    case AC_SIMD_SCALAR:
        return gemm_ref(type);
    case AC_SIMD_AVX2:
        return ac_gemm_avx2(type);
    case AC_SIMD_AVX512VNNI: {
        const ac_gemm_fn f = ac_gemm_avx512(type);
        return f ? f : ac_gemm_avx2(type);
    }
    }
    return NULL;
}

/* The level in use, as quant.c reports it (its only outward trace). */
ac_gemm_fn ac_quant_gemm(uint32_t type) {
    const char *level = ac_quant_simd_name();
    if (!strcmp(level, "avx512vnni")) return ac_gemm_select(type, AC_SIMD_AVX512VNNI);
    if (!strcmp(level, "avx2")) return ac_gemm_select(type, AC_SIMD_AVX2);
    return NULL;
}

/* ---- x16 layouts: Q4_0, Q4_1, Q8_0, Q2_0 and Q2_K packed 16 rows at a time (quant.h) ----
 * The first four types' blocks are fp16 halves (d; Q4_1, Q2_0: d, m)
 * followed by the quants (16 bytes of nibbles, 32 signed bytes, 8 bytes of
 * 2-bit codes), so one packer serves them; Q8_0's quants are stored + 128.
 * Q2_K's superblocks (scales, qs, d, dmin) have their own. */

bool ac_x16_has(uint32_t type) {
    return type == AC_TYPE_Q4_0 || type == AC_TYPE_Q4_1 || type == AC_TYPE_Q8_0 || type == AC_TYPE_Q2_0 ||
           type == AC_TYPE_Q2_K;
}

/* Halves before a block's quants: d, and the m of Q4_1 and Q2_0. */
static size_t x16_halves(uint32_t type) {
    return type == AC_TYPE_Q4_1 || type == AC_TYPE_Q2_0 ? 2 : 1;
}

/* Quant bytes of one row's block, and what each is stored xor'ed with. */
static size_t x16_row_qs(uint32_t type) {
    return type == AC_TYPE_Q8_0 ? QK8_0 : type == AC_TYPE_Q2_0 ? QK2_0 / 4 : QK4_0 / 2;
}
static uint8_t x16_bias(uint32_t type) {
    return type == AC_TYPE_Q8_0 ? 0x80 : 0;
}

size_t ac_x16_size(uint32_t type, int64_t n_rows, int64_t n) {
    const size_t row = ac_x16_has(type) && n > 0 ? ac_row_size(type, n) : 0;
    if (!row || n_rows < 1) return 0;
    const int64_t groups = (n_rows + AC_X16_ROWS - 1) / AC_X16_ROWS;
    return (size_t)groups * AC_X16_ROWS * row;
}

/* Offset in a group of block b's quants; the scales start at b = nb (then,
 * for Q4_1 and Q2_0, the mins: 16 * nb halves further). */
static size_t x16_qs_at(uint32_t type, int64_t b) {
    return (size_t)b * AC_X16_ROWS * x16_row_qs(type);
}

/* Row r's block of a group's superblock sb <-> the plain block_q2_K. */
static void q2_K_x16_put(uint8_t *sb, int r, const block_q2_K *blk) {
    for (int j = 0; j < QK_K / 16; j++) memcpy(sb + 64 * j + 4 * r, blk->qs + 4 * j, 4);
    for (int g = 0; g < QK_K / 16; g++) sb[Q2K_X16_SCALES + AC_X16_ROWS * g + r] = blk->scales[g];
    memcpy(sb + Q2K_X16_D + 2 * r, &blk->d, 2);
    memcpy(sb + Q2K_X16_DMIN + 2 * r, &blk->dmin, 2);
}
static void q2_K_x16_get(const uint8_t *sb, int r, block_q2_K *blk) {
    for (int j = 0; j < QK_K / 16; j++) memcpy(blk->qs + 4 * j, sb + 64 * j + 4 * r, 4);
    for (int g = 0; g < QK_K / 16; g++) blk->scales[g] = sb[Q2K_X16_SCALES + AC_X16_ROWS * g + r];
    memcpy(&blk->d, sb + Q2K_X16_D + 2 * r, 2);
    memcpy(&blk->dmin, sb + Q2K_X16_DMIN + 2 * r, 2);
}

int ac_x16_pack(uint32_t type, void *dst, const void *w, size_t w_stride, int64_t n_rows, int64_t n, char *err) {
    const size_t bytes = ac_x16_size(type, n_rows, n);
    if (!bytes)
        return ac_errf(err, "x16 layout: cannot pack %lld rows of %lld elements of type %u", (long long)n_rows,
                       (long long)n, (unsigned)type);
    if (type == AC_TYPE_Q2_K) {
        const int64_t nb = n / QK_K;
        uint8_t *g = dst;
        for (int64_t r0 = 0; r0 < n_rows; r0 += AC_X16_ROWS, g += AC_X16_ROWS * (size_t)nb * sizeof(block_q2_K))
            for (int r = 0; r < AC_X16_ROWS; r++) {
                const int64_t src_row = r0 + r < n_rows ? r0 + r : n_rows - 1;
                const block_q2_K *row = (const void *)((const uint8_t *)w + (size_t)src_row * w_stride);
                for (int64_t b = 0; b < nb; b++)
                    q2_K_x16_put(g + (size_t)b * AC_X16_ROWS * sizeof(block_q2_K), r, &row[b]);
            }
        return 0;
    }
    const size_t blk = ac_type_traits(type)->type_size, qs = x16_row_qs(type);
    const int64_t nb = n / ac_type_traits(type)->blck_size;
    const size_t group = AC_X16_ROWS * ac_row_size(type, n);
    const uint32_t bias = x16_bias(type) * 0x01010101u; /* per byte of a dword */
    uint8_t *g = dst;
    for (int64_t r0 = 0; r0 < n_rows; r0 += AC_X16_ROWS, g += group) {
        uint8_t *scales = g + x16_qs_at(type, nb);
        const size_t halves = x16_halves(type), plane = (size_t)nb * AC_X16_ROWS * sizeof(ac_half);
        for (int r = 0; r < AC_X16_ROWS; r++) {
            const int64_t src_row = r0 + r < n_rows ? r0 + r : n_rows - 1;
            const uint8_t *row = (const uint8_t *)w + (size_t)src_row * w_stride;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *src = row + (size_t)b * blk; /* the halves, then qs */
                uint8_t *q = g + x16_qs_at(type, b) + 4 * r;
                for (size_t j = 0; j < qs / 4; j++) {
                    uint32_t v;
                    memcpy(&v, src + halves * sizeof(ac_half) + 4 * j, 4);
                    v ^= bias;
                    memcpy(q + 64 * j, &v, 4);
                }
                for (size_t h = 0; h < halves; h++)
                    memcpy(scales + h * plane + ((size_t)b * AC_X16_ROWS + (size_t)r) * sizeof(ac_half),
                           src + h * sizeof(ac_half), sizeof(ac_half));
            }
        }
    }
    return 0;
}

/* Row r's block b of a packed group, back in the plain layout (blk). */
static void x16_unpack_block(uint32_t type, const uint8_t *group, int64_t nb, int r, int64_t b, uint8_t *blk) {
    if (type == AC_TYPE_Q2_K) {
        block_q2_K q;
        q2_K_x16_get(group + (size_t)b * AC_X16_ROWS * sizeof(block_q2_K), r, &q);
        memcpy(blk, &q, sizeof q);
        return;
    }
    const uint8_t bias = x16_bias(type);
    const uint8_t *q = group + x16_qs_at(type, b) + 4 * r;
    const size_t halves = x16_halves(type), plane = (size_t)nb * AC_X16_ROWS * sizeof(ac_half);
    for (size_t h = 0; h < halves; h++)
        memcpy(blk + h * sizeof(ac_half),
               group + x16_qs_at(type, nb) + h * plane + ((size_t)b * AC_X16_ROWS + (size_t)r) * sizeof(ac_half),
               sizeof(ac_half));
    for (size_t i = 0; i < x16_row_qs(type); i++) blk[halves * sizeof(ac_half) + i] = q[64 * (i / 4) + i % 4] ^ bias;
}

/* vec_dot_ref block by block, summed in block order: vec_dot_ref's own sum
 * (sumf += each block's product), so the same bits. */
static void gemm_x16_ref(uint32_t type, int n, float *out, size_t out_stride, const void *w, size_t w_stride,
                         int n_rows, const void *x, size_t x_stride, int n_tokens, const float *bias, bool accumulate) {
    const struct ac_type_traits *wt = ac_type_traits(type);
    const size_t yblk = ac_type_traits(wt->vec_dot_type)->type_size;
    const int bs = wt->blck_size, nb = n / bs;
    uint8_t blk[sizeof(block_q2_K)]; /* the largest block of an x16 type */
    for (int t = 0; t < n_tokens; t++) {
        const uint8_t *y = (const uint8_t *)x + (size_t)t * x_stride;
        float *o = out + (size_t)t * out_stride;
        for (int r = 0; r < n_rows; r++) {
            const uint8_t *group = (const uint8_t *)w + (size_t)(r / AC_X16_ROWS) * AC_X16_ROWS * w_stride;
            float s = 0;
            for (int b = 0; b < nb; b++) {
                float sb;
                x16_unpack_block(type, group, nb, r % AC_X16_ROWS, b, blk);
                wt->vec_dot_ref(bs, &sb, blk, y + (size_t)b * yblk);
                s += sb;
            }
            if (bias) s += bias[r];
            o[r] = accumulate ? o[r] + s : s;
        }
    }
}

#define GEMM_X16_REF(name, type)                                                                              \
    static void gemm_x16_ref_##name(int n, float *out, size_t out_stride, const void *w, size_t w_stride,      \
                                    int n_rows, const void *x, size_t x_stride, int n_tokens, const float *bias, \
                                    bool accumulate) {                                                         \
        gemm_x16_ref(type, n, out, out_stride, w, w_stride, n_rows, x, x_stride, n_tokens, bias, accumulate);  \
    }

GEMM_X16_REF(q4_0, AC_TYPE_Q4_0)
GEMM_X16_REF(q4_1, AC_TYPE_Q4_1)
GEMM_X16_REF(q8_0, AC_TYPE_Q8_0)
GEMM_X16_REF(q2_0, AC_TYPE_Q2_0)
GEMM_X16_REF(q2_K, AC_TYPE_Q2_K)

ac_gemm_fn ac_gemm_x16_ref(uint32_t type) {
    return type == AC_TYPE_Q4_0 ? gemm_x16_ref_q4_0
           : type == AC_TYPE_Q4_1 ? gemm_x16_ref_q4_1
           : type == AC_TYPE_Q8_0 ? gemm_x16_ref_q8_0
           : type == AC_TYPE_Q2_0 ? gemm_x16_ref_q2_0
           : type == AC_TYPE_Q2_K ? gemm_x16_ref_q2_K
                                  : NULL;
}

ac_gemm_fn ac_quant_gemm_x16(uint32_t type) {
    return strcmp(ac_quant_simd_name(), "avx512vnni") ? NULL : ac_gemm_x16_avx512(type);
}
