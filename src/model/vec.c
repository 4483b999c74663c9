/* vec.c - reference kernels and run-time dispatch (see vec.h). */
#include "model/vec.h"

#include <cpuid.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "quant/quant.h"

typedef void (*mad_fn)(int, float *restrict, const float *restrict, float);

typedef void (*attn_fn)(int, int, int, const uint16_t *, const uint16_t *, const uint16_t *, size_t, float, float *,
                        float *);

static mad_fn mad_best = ac_vec_mad_ref;
static attn_fn attn_best = ac_vec_attn_f16_ref;
static bool force_scalar, force_avx2;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

void ac_vec_mad_ref(int n, float *restrict y, const float *restrict x, float a) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void ac_vec_attn_f16_ref(int d, int n_q, int n_pos, const uint16_t *q16, const uint16_t *k16, const uint16_t *v16,
                         size_t stride, float scale, float *scores, float *out) {
    for (int h = 0; h < n_q; h++) {
        const uint16_t *q = q16 + (size_t)h * d;
        float *s = scores + (size_t)h * n_pos, *o = out + (size_t)h * d, maxs = -INFINITY, sum = 0.0f;
        for (int p = 0; p < n_pos; p++) {
            const uint16_t *k = k16 + (size_t)p * stride;
            float dot = 0.0f;
            for (int i = 0; i < d; i++) dot += ac_fp16_to_fp32(k[i]) * ac_fp16_to_fp32(q[i]);
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
            const uint16_t *v = v16 + (size_t)p * stride;
            for (int i = 0; i < d; i++) o[i] += prob * ac_fp16_to_fp32(v[i]);
        }
    }
}

/* __builtin_cpu_supports does not name F16C: CPUID leaf 1, ECX bit 29. */
static bool has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

static void pick(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        mad_best = ac_vec_mad_avx512, attn_best = ac_vec_attn_f16_avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        mad_best = ac_vec_mad_avx2, attn_best = ac_vec_attn_f16_avx2;
}

void ac_vec_init(void) { pthread_once(&init_once, pick); }

void ac_vec_force_scalar(bool on) { force_scalar = on; }

void ac_vec_force_avx2(bool on) { force_avx2 = on; }

void ac_vec_mad(int n, float *restrict y, const float *restrict x, float a) {
    (force_scalar ? ac_vec_mad_ref : mad_best)(n, y, x, a);
}

void ac_vec_attn_f16(int d, int n_q, int n_pos, const uint16_t *q16, const uint16_t *k16, const uint16_t *v16,
                     size_t stride, float scale, float *scores, float *out) {
    ac_vec_init();
    const bool simd = !force_scalar && d % 16 == 0 && d <= 256;
    attn_fn f = simd ? attn_best : ac_vec_attn_f16_ref;
    if (simd && force_avx2 && f == ac_vec_attn_f16_avx512) f = ac_vec_attn_f16_avx2;
    f(d, n_q, n_pos, q16, k16, v16, stride, scale, scores, out);
}
