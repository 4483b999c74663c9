/* vec.c - reference kernels and run-time dispatch (see vec.h). */
#include "model/vec.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "quant/quant.h"

typedef void (*mad_fn)(int, float *restrict, const float *restrict, float);

typedef void (*attn_fn)(const struct ac_attn_rows *, const uint16_t *, const uint16_t *, float, float *);

static mad_fn mad_best = ac_vec_mad_ref;
static attn_fn attn_best = ac_vec_attn_f16_ref;
static bool force_scalar, force_avx2;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

void ac_vec_mad_ref(int n, float *restrict y, const float *restrict x, float a) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* Dimension 0 of position p's key in the tiles (dimension i is i * AC_ATTN_TILE further). */
static size_t key_at(int d, int p) {
    return (size_t)(p / AC_ATTN_TILE) * d * AC_ATTN_TILE + p % AC_ATTN_TILE;
}

void ac_attn_store_key(int d, uint16_t *k_tiles, int p, const uint16_t *k) {
    uint16_t *key = k_tiles + key_at(d, p);
    for (int i = 0; i < d; i++) key[(size_t)i * AC_ATTN_TILE] = k[i];
}

void ac_vec_attn_f16_ref(const struct ac_attn_rows *rows, const uint16_t *k_tiles, const uint16_t *v16, float scale,
                         float *scores) {
    const int d = rows->d;
    const size_t n_stride = ac_attn_scores_stride(rows);
    for (int t = 0; t < rows->n_tokens; t++)
        for (int g = 0; g < rows->group; g++) {
            const int n_pos = rows->n_pos0 + t;
            const uint16_t *q = rows->q16 + (size_t)t * rows->q_stride + (size_t)g * d;
            float *s = scores + ((size_t)t * rows->group + g) * n_stride, maxs = -INFINITY, sum = 0.0f;
            float *o = rows->out + (size_t)t * rows->out_stride + (size_t)g * d;
            for (int p = 0; p < n_pos; p++) {
                const uint16_t *key = k_tiles + key_at(d, p);
                float dot = 0.0f;
                for (int i = 0; i < d; i++) dot += ac_fp16_to_fp32(key[(size_t)i * AC_ATTN_TILE]) * ac_fp16_to_fp32(q[i]);
                s[p] = dot * scale;
                if (s[p] > maxs) maxs = s[p];
            }
            for (int p = 0; p < n_pos; p++) {
                s[p] = expf(s[p] - maxs);
                sum += s[p];
            }
            const float inv = 1.0f / sum;
            memset(o, 0, (size_t)d * sizeof(float));
            for (int p = 0; p < n_pos; p++) {
                const float prob = ac_fp16_to_fp32(ac_fp32_to_fp16(s[p] * inv));
                const uint16_t *v = v16 + (size_t)p * d;
                for (int i = 0; i < d; i++) o[i] += prob * ac_fp16_to_fp32(v[i]);
            }
        }
}

static void pick(void) {
    if (ac_quant_cpu_has(AC_SIMD_AVX512VNNI))
        mad_best = ac_vec_mad_avx512, attn_best = ac_vec_attn_f16_avx512;
    else if (ac_quant_cpu_has(AC_SIMD_AVX2))
        mad_best = ac_vec_mad_avx2, attn_best = ac_vec_attn_f16_avx2;
}

void ac_vec_init(void) { pthread_once(&init_once, pick); }

void ac_vec_force_scalar(bool on) { force_scalar = on; }

void ac_vec_force_avx2(bool on) { force_avx2 = on; }

void ac_vec_mad(int n, float *restrict y, const float *restrict x, float a) {
    (force_scalar ? ac_vec_mad_ref : mad_best)(n, y, x, a);
}

void ac_vec_attn_f16(const struct ac_attn_rows *rows, const uint16_t *k_tiles, const uint16_t *v16, float scale,
                     float *scores) {
    const bool simd = !force_scalar && rows->d % 16 == 0 && rows->d <= 256;
    attn_fn f = simd ? attn_best : ac_vec_attn_f16_ref;
    if (simd && force_avx2 && f == ac_vec_attn_f16_avx512) f = ac_vec_attn_f16_avx2;
    f(rows, k_tiles, v16, scale, scores);
}
