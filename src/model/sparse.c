/* sparse.c - the sparse layout, the reference kernels and dispatch (see
 * sparse.h). */
#include "model/sparse.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "model/vec.h"
#include "quant/quant.h"

static bool int_layout(uint32_t type) {
    return type == AC_TYPE_Q8_0 || type == AC_TYPE_Q4_0 || type == AC_TYPE_Q2_0;
}

/* Bytes of scales (d, and m for Q2_0) and of codes per block. */
static size_t head_bytes(uint32_t type) { return type == AC_TYPE_Q2_0 ? 4 : 2; }
static size_t code_bytes(uint32_t type) { return ac_type_traits(type)->type_size - head_bytes(type); }

/* The sum (n_out floats, chunks of up to 256 outputs rounded up), then
 * five per-block arrays padded for 16-wide loads past the last block. */
size_t ac_sparse_scratch_floats(int n_out) { return (size_t)n_out + 256 + 6 * ((size_t)n_out / 32 + 32); }

void ac_sparse_pack_row(uint32_t type, const float *src, uint8_t *dst, int64_t n, uint8_t *tmp) {
    const struct ac_type_traits *t = ac_type_traits(type);
    if (type == AC_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    if (!int_layout(type)) {
        t->from_float_ref(src, dst, n);
        return;
    }
    t->from_float_ref(src, tmp, n);
    const int64_t nb = n / 32;
    const size_t head = head_bytes(type), codes = code_bytes(type);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = tmp + (size_t)b * t->type_size;
        memcpy(dst + 2 * b, blk, 2);
        if (type == AC_TYPE_Q2_0) memcpy(dst + 2 * nb + 2 * b, blk + 2, 2);
        uint8_t *q = dst + head * (size_t)nb + (size_t)b * codes;
        memcpy(q, blk + head, codes);
        if (type == AC_TYPE_Q8_0) /* int8 q as the unsigned byte q + 128 */
            for (size_t i = 0; i < codes; i++) q[i] ^= 0x80;
    }
}

int ac_sparse_group(const int32_t *idx, int n_idx, int g, int32_t rows[AC_SPARSE_GROUP]) {
    const int part = n_idx / AC_SPARSE_GROUP;
    if (g < part) {
        for (int s = 0; s < AC_SPARSE_GROUP; s++) rows[s] = idx[g + s * part];
        return AC_SPARSE_GROUP;
    }
    const int rest = n_idx - AC_SPARSE_GROUP * part;
    for (int s = 0; s < rest; s++) rows[s] = idx[AC_SPARSE_GROUP * part + s];
    return rest;
}

/* Code j of block b of a row in the sparse layout, times its unit (the
 * power of two a SIMD kernel leaves it multiplied by: 16 for Q4_0's high
 * nibbles, 4^f for Q2_0's field f), and the unit. */
static int scaled_code(uint32_t type, const uint8_t *codes, int j, int *unit) {
    switch (type) {
    case AC_TYPE_Q8_0: *unit = 1; return codes[j];
    case AC_TYPE_Q4_0: *unit = j < 16 ? 1 : 16; return j < 16 ? codes[j] & 0x0f : codes[j - 16] & 0xf0;
    default: *unit = 1 << (2 * (j / 8)); return codes[j % 8] & (3 << (2 * (j / 8)));
    }
}

/* The integer algorithm of sparse.h, one group and block at a time. */
static void gemv_int_ref(uint32_t type, const uint8_t *rows, size_t row_bytes, const int32_t *idx, int n_idx,
                         const float *x, float *acc, int n_out, float *scratch) {
    const int nb = n_out / 32;
    const int bias = type == AC_TYPE_Q8_0 ? 128 : type == AC_TYPE_Q4_0 ? 8 : 0;
    const size_t codes = code_bytes(type), head = head_bytes(type);
    float *sum = scratch, *off = scratch + n_out;
    memset(sum, 0, sizeof(float) * (size_t)n_out);
    memset(off, 0, sizeof(float) * (size_t)nb);
    const int n_groups = (n_idx + AC_SPARSE_GROUP - 1) / AC_SPARSE_GROUP;
    for (int g = 0; g < n_groups; g++) {
        int32_t r[AC_SPARSE_GROUP];
        const int n = ac_sparse_group(idx, n_idx, g, r);
        for (int b = 0; b < nb; b++) {
            float s[AC_SPARSE_GROUP], amax = 0.0f;
            int c[AC_SPARSE_GROUP], sum_c = 0;
            for (int i = 0; i < n; i++) {
                uint16_t d;
                memcpy(&d, rows + (size_t)r[i] * row_bytes + 2 * (size_t)b, 2);
                s[i] = x[r[i]] * ac_fp16_to_fp32(d);
                amax = fmaxf(amax, fabsf(s[i]));
            }
            const float inv = amax > 0.0f ? 127.0f / amax : 0.0f, step = amax / 127.0f;
            for (int i = 0; i < n; i++) c[i] = (int)lrintf(s[i] * inv), sum_c += c[i];
            for (int j = 0; j < 32; j++) {
                int unit = 1, dot = 0;
                for (int i = 0; i < n; i++) {
                    const uint8_t *q = rows + (size_t)r[i] * row_bytes + head * (size_t)nb + (size_t)b * codes;
                    dot += c[i] * scaled_code(type, q, j, &unit);
                }
                dot -= bias * unit * sum_c;
                sum[32 * b + j] = fmaf(step * (1.0f / (float)unit), (float)dot, sum[32 * b + j]);
            }
            if (type == AC_TYPE_Q2_0)
                for (int i = 0; i < n; i++) {
                    uint16_t m;
                    memcpy(&m, rows + (size_t)r[i] * row_bytes + 2 * (size_t)(nb + b), 2);
                    off[b] += x[r[i]] * ac_fp16_to_fp32(m);
                }
        }
    }
    for (int j = 0; j < n_out; j++) acc[j] += sum[j] + off[j / 32];
}

void ac_sparse_gemv_ref(uint32_t type, const uint8_t *rows, size_t row_bytes, const int32_t *idx, int n_idx,
                        const float *x, float *acc, int n_out, float *scratch) {
    if (int_layout(type)) {
        gemv_int_ref(type, rows, row_bytes, idx, n_idx, x, acc, n_out, scratch);
        return;
    }
    const struct ac_type_traits *t = ac_type_traits(type);
    for (int k = 0; k < n_idx; k++) {
        t->to_float(rows + (size_t)idx[k] * row_bytes, scratch, n_out);
        ac_vec_mad(n_out, acc, scratch, x[idx[k]]);
    }
}

int ac_sparse_select_ref(float *x, int n, float thr, int32_t *idx) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) < thr)
            x[i] = 0.0f;
        else
            idx[k++] = i;
    }
    return k;
}

/* The CPU check once: the kernels are looked up on every sparse matmul. */
static bool has_avx512(void) {
    static int has = -1;
    if (has < 0) has = ac_quant_cpu_has(AC_SIMD_AVX512VNNI);
    return has;
}

ac_sparse_gemv_fn ac_sparse_gemv(uint32_t type) {
    ac_sparse_gemv_fn f = has_avx512() ? ac_sparse_gemv_avx512(type) : NULL;
    return f ? f : ac_sparse_gemv_ref;
}

ac_sparse_select_fn ac_sparse_select(void) { return has_avx512() ? ac_sparse_select_avx512() : ac_sparse_select_ref; }
