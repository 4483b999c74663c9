/* nn.c - the controller's layers: forward above backward, backward += .
 * See nn.h for the conventions. */
#include "controller/nn.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * dense kernels */

float ac_nn_dot(const float *a, const float *b, int n) {
    /* eight independent sums: no loop-carried add chain, and GCC turns the
     * body into vector code without -ffast-math */
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float tail = 0.0f;
    for (; i < n; i++) tail += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

void ac_nn_axpy(float *y, float alpha, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* ------------------------------------------------------------------------
 * linear */

bool ac_nn_have_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

void ac_nn_linear_forward(float *out, const float *inp, const float *w, const float *b, int T, int C, int OC) {
    if (ac_nn_have_avx2())
        ac_nn_linear_forward_avx2(out, inp, w, b, T, C, OC);
    else
        ac_nn_linear_forward_ref(out, inp, w, b, T, C, OC);
}

void ac_nn_linear_forward_ref(float *out, const float *inp, const float *w, const float *b, int T, int C, int OC) {
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *o = out + (size_t)t * OC;
        for (int j = 0; j < OC; j++) o[j] = (b ? b[j] : 0.0f) + ac_nn_dot(x, w + (size_t)j * C, C);
    }
}

void ac_nn_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           int T, int C, int OC) {
    for (int t = 0; t < T; t++) {
        const float *d = dout + (size_t)t * OC;
        for (int j = 0; j < OC; j++) {
            if (d[j] == 0.0f) continue; /* ReLU zeros, one-hot straight-through rows */
            if (dinp) ac_nn_axpy(dinp + (size_t)t * C, d[j], w + (size_t)j * C, C);
            if (dw) ac_nn_axpy(dw + (size_t)j * C, d[j], inp + (size_t)t * C, C);
            if (db) db[j] += d[j];
        }
    }
}

/* ------------------------------------------------------------------------
 * layernorm */

void ac_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *g,
                             const float *b, int T, int C) {
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *o = out + (size_t)t * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= (float)C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= (float)C;
        float r = 1.0f / sqrtf(v + AC_NN_LN_EPS);
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * r * g[i] + b[i];
        mean[t] = m;
        rstd[t] = r;
    }
}

void ac_nn_layernorm_backward(float *dinp, float *dg, float *db, const float *dout, const float *inp,
                              const float *g, const float *mean, const float *rstd, int T, int C) {
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        const float *d = dout + (size_t)t * C;
        float m = mean[t], r = rstd[t];
        /* the two reductions of the normalisation's Jacobian */
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * r;
            dnorm_mean += g[i] * d[i];
            dnorm_norm_mean += g[i] * d[i] * norm;
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * r;
            if (db) db[i] += d[i];
            if (dg) dg[i] += norm * d[i];
            if (dinp) dinp[(size_t)t * C + i] += (g[i] * d[i] - dnorm_mean - norm * dnorm_norm_mean) * r;
        }
    }
}

/* ------------------------------------------------------------------------
 * self-attention */

/* Softmax in place over the unmasked entries of s[0..T); masked entries
 * become 0. All masked: all 0. */
static void masked_softmax_inplace(float *s, const uint8_t *mask, int T) {
    float mx = -INFINITY;
    for (int i = 0; i < T; i++)
        if ((!mask || mask[i]) && s[i] > mx) mx = s[i];
    float sum = 0.0f;
    for (int i = 0; i < T; i++) {
        if (mask && !mask[i]) {
            s[i] = 0.0f;
            continue;
        }
        s[i] = expf(s[i] - mx);
        sum += s[i];
    }
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int i = 0; i < T; i++) s[i] *= inv;
}

void ac_nn_attention_forward(float *out, float *att, const float *qkv, const uint8_t *mask, int T, int C, int NH) {
    const int hs = C / NH;
    const size_t C3 = (size_t)3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + t * C3 + (size_t)h * hs;
            float *a = att + ((size_t)h * T + t) * T;
            for (int t2 = 0; t2 < T; t2++)
                a[t2] = (mask && !mask[t2]) ? 0.0f : ac_nn_dot(q, qkv + t2 * C3 + C + (size_t)h * hs, hs) * scale;
            masked_softmax_inplace(a, mask, T);
            float *o = out + (size_t)t * C + (size_t)h * hs;
            memset(o, 0, sizeof(float) * (size_t)hs);
            for (int t2 = 0; t2 < T; t2++)
                if (a[t2] != 0.0f) ac_nn_axpy(o, a[t2], qkv + t2 * C3 + 2 * (size_t)C + (size_t)h * hs, hs);
        }
    }
}

void ac_nn_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                              const uint8_t *mask, int T, int C, int NH) {
    const int hs = C / NH;
    const size_t C3 = (size_t)3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < NH; h++) {
            const size_t qo = t * C3 + (size_t)h * hs, ko = C + (size_t)h * hs, vo = 2 * (size_t)C + (size_t)h * hs;
            const float *a = att + ((size_t)h * T + t) * T;
            const float *d = dout + (size_t)t * C + (size_t)h * hs;
            /* softmax backward needs sum_t2 p * dp first; dp = dout . v is
             * recomputed in the second pass instead of kept in scratch */
            float pdp = 0.0f;
            for (int t2 = 0; t2 < T; t2++)
                if (!mask || mask[t2]) pdp += a[t2] * ac_nn_dot(d, qkv + t2 * C3 + vo, hs);
            for (int t2 = 0; t2 < T; t2++) {
                if (mask && !mask[t2]) continue;
                float dp = ac_nn_dot(d, qkv + t2 * C3 + vo, hs);
                ac_nn_axpy(dqkv + t2 * C3 + vo, a[t2], d, hs);
                float ds = a[t2] * (dp - pdp) * scale;
                ac_nn_axpy(dqkv + qo, ds, qkv + t2 * C3 + ko, hs);
                ac_nn_axpy(dqkv + t2 * C3 + ko, ds, qkv + qo, hs);
            }
        }
    }
}

/* ------------------------------------------------------------------------
 * cross-attention of one query */

void ac_nn_crossattn_forward(float *out, float *att, const float *q, const float *kv, const uint8_t *mask, int T,
                             int C, int NH) {
    const int hs = C / NH;
    const size_t C2 = (size_t)2 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < NH; h++) {
        float *a = att + (size_t)h * T;
        const float *qh = q + (size_t)h * hs;
        for (int t = 0; t < T; t++)
            a[t] = (mask && !mask[t]) ? 0.0f : ac_nn_dot(qh, kv + t * C2 + (size_t)h * hs, hs) * scale;
        masked_softmax_inplace(a, mask, T);
        float *o = out + (size_t)h * hs;
        memset(o, 0, sizeof(float) * (size_t)hs);
        for (int t = 0; t < T; t++)
            if (a[t] != 0.0f) ac_nn_axpy(o, a[t], kv + t * C2 + C + (size_t)h * hs, hs);
    }
}

void ac_nn_crossattn_backward(float *dq, float *dkv, const float *dout, const float *q, const float *kv,
                              const float *att, const uint8_t *mask, int T, int C, int NH) {
    const int hs = C / NH;
    const size_t C2 = (size_t)2 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < NH; h++) {
        const float *a = att + (size_t)h * T;
        const float *d = dout + (size_t)h * hs;
        const size_t ko = (size_t)h * hs, vo = C + (size_t)h * hs;
        float pdp = 0.0f;
        for (int t = 0; t < T; t++)
            if (!mask || mask[t]) pdp += a[t] * ac_nn_dot(d, kv + t * C2 + vo, hs);
        for (int t = 0; t < T; t++) {
            if (mask && !mask[t]) continue;
            float dp = ac_nn_dot(d, kv + t * C2 + vo, hs);
            ac_nn_axpy(dkv + t * C2 + vo, a[t], d, hs);
            float ds = a[t] * (dp - pdp) * scale;
            if (dq) ac_nn_axpy(dq + (size_t)h * hs, ds, kv + t * C2 + ko, hs);
            ac_nn_axpy(dkv + t * C2 + ko, ds, q + (size_t)h * hs, hs);
        }
    }
}

/* ------------------------------------------------------------------------
 * activations */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */

void ac_nn_gelu_forward(float *out, const float *inp, int N) {
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

void ac_nn_gelu_backward(float *dinp, const float *dout, const float *inp, int N) {
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_K * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += grad * dout[i];
    }
}

void ac_nn_relu_forward(float *out, const float *inp, int N) {
    for (int i = 0; i < N; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void ac_nn_relu_backward(float *dinp, const float *dout, const float *inp, int N) {
    for (int i = 0; i < N; i++)
        if (inp[i] > 0.0f) dinp[i] += dout[i];
}

void ac_nn_act_forward(float *out, const float *inp, int N, enum ac_nn_act act) {
    if (act == AC_ACT_RELU)
        ac_nn_relu_forward(out, inp, N);
    else
        ac_nn_gelu_forward(out, inp, N);
}

void ac_nn_act_backward(float *dinp, const float *dout, const float *inp, int N, enum ac_nn_act act) {
    if (act == AC_ACT_RELU)
        ac_nn_relu_backward(dinp, dout, inp, N);
    else
        ac_nn_gelu_backward(dinp, dout, inp, N);
}

/* ------------------------------------------------------------------------
 * sigmoid, residual, mean pooling */

void ac_nn_sigmoid_forward(float *out, const float *inp, int N) {
    for (int i = 0; i < N; i++) out[i] = 1.0f / (1.0f + expf(-inp[i]));
}

void ac_nn_sigmoid_backward(float *dinp, const float *dout, const float *out, int N) {
    for (int i = 0; i < N; i++) dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
}

void ac_nn_residual_forward(float *out, const float *a, const float *b, int N) {
    for (int i = 0; i < N; i++) out[i] = a[i] + b[i];
}

void ac_nn_residual_backward(float *da, float *db, const float *dout, int N) {
    for (int i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

static int mask_count(const uint8_t *mask, int T) {
    if (!mask) return T;
    int n = 0;
    for (int t = 0; t < T; t++) n += mask[t] != 0;
    return n;
}

void ac_nn_meanpool_forward(float *out, const float *inp, const uint8_t *mask, int T, int C) {
    memset(out, 0, sizeof(float) * (size_t)C);
    int n = mask_count(mask, T);
    if (n == 0) return;
    for (int t = 0; t < T; t++)
        if (!mask || mask[t]) ac_nn_axpy(out, 1.0f, inp + (size_t)t * C, C);
    for (int i = 0; i < C; i++) out[i] /= (float)n;
}

void ac_nn_meanpool_backward(float *dinp, const float *dout, const uint8_t *mask, int T, int C) {
    int n = mask_count(mask, T);
    if (n == 0) return;
    for (int t = 0; t < T; t++)
        if (!mask || mask[t]) ac_nn_axpy(dinp + (size_t)t * C, 1.0f / (float)n, dout, C);
}

/* ------------------------------------------------------------------------
 * softmax, Gumbel straight-through */

void ac_nn_softmax_forward(float *probs, const float *logits, float tau, int N) {
    for (int i = 0; i < N; i++) probs[i] = logits[i] / tau;
    masked_softmax_inplace(probs, NULL, N);
}

void ac_nn_softmax_backward(float *dlogits, const float *dprobs, const float *probs, float tau, int N) {
    float pd = 0.0f;
    for (int i = 0; i < N; i++) pd += probs[i] * dprobs[i];
    for (int i = 0; i < N; i++) dlogits[i] += probs[i] * (dprobs[i] - pd) / tau;
}

float ac_nn_entropy_forward(float *probs, const float *logits, int N) {
    ac_nn_softmax_forward(probs, logits, 1.0f, N);
    float h = 0.0f;
    for (int i = 0; i < N; i++)
        if (probs[i] > 0.0f) h -= probs[i] * logf(probs[i]);
    return h;
}

void ac_nn_entropy_backward(float *dlogits, float dout, const float *probs, int N) {
    /* dH/dl_i = -p_i (log p_i + H) */
    float h = 0.0f;
    for (int i = 0; i < N; i++)
        if (probs[i] > 0.0f) h -= probs[i] * logf(probs[i]);
    for (int i = 0; i < N; i++)
        if (probs[i] > 0.0f) dlogits[i] += -dout * probs[i] * (logf(probs[i]) + h);
}

int ac_nn_gumbel_st_forward(float *hard, float *soft, const float *logits, const float *noise, float tau, int N) {
    for (int i = 0; i < N; i++) soft[i] = (logits[i] + (noise ? noise[i] : 0.0f)) / tau;
    masked_softmax_inplace(soft, NULL, N);
    int best = 0;
    for (int i = 1; i < N; i++)
        if (soft[i] > soft[best]) best = i;
    for (int i = 0; i < N; i++) hard[i] = i == best ? 1.0f : 0.0f;
    return best;
}

void ac_nn_gumbel_st_backward(float *dlogits, const float *dhard, const float *soft, float tau, int N) {
    ac_nn_softmax_backward(dlogits, dhard, soft, tau, N);
}

/* ------------------------------------------------------------------------
 * expectation over three categorical choices */

float ac_nn_expect3_forward(const float *y0, const float *y1, const float *y2, const float *tab, int n0, int n1,
                            int n2) {
    float e = 0.0f;
    for (int a = 0; a < n0; a++) {
        if (y0[a] == 0.0f) continue;
        for (int b = 0; b < n1; b++) {
            float w = y0[a] * y1[b];
            if (w == 0.0f) continue;
            const float *row = tab + ((size_t)a * n1 + b) * n2;
            for (int c = 0; c < n2; c++) e += w * y2[c] * row[c];
        }
    }
    return e;
}

void ac_nn_expect3_backward(float *dy0, float *dy1, float *dy2, float dout, const float *y0, const float *y1,
                            const float *y2, const float *tab, int n0, int n1, int n2) {
    for (int a = 0; a < n0; a++)
        for (int b = 0; b < n1; b++)
            for (int c = 0; c < n2; c++) {
                float v = dout * tab[((size_t)a * n1 + b) * n2 + c];
                dy0[a] += v * y1[b] * y2[c];
                dy1[b] += v * y0[a] * y2[c];
                dy2[c] += v * y0[a] * y1[b];
            }
}

/* ------------------------------------------------------------------------
 * random numbers */

void ac_nn_rng_seed(struct ac_nn_rng *r, uint64_t seed) { r->s = seed ^ 0x5DEECE66D2545F49ull; }

uint64_t ac_nn_rng_u64(struct ac_nn_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float ac_nn_rng_uniform(struct ac_nn_rng *r) {
    return ((float)(ac_nn_rng_u64(r) >> 40) + 0.5f) / 16777216.0f;
}

float ac_nn_rng_normal(struct ac_nn_rng *r) {
    float u1 = ac_nn_rng_uniform(r), u2 = ac_nn_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

float ac_nn_rng_gumbel(struct ac_nn_rng *r) { return -logf(-logf(ac_nn_rng_uniform(r))); }

uint32_t ac_nn_rng_below(struct ac_nn_rng *r, uint32_t n) { return (uint32_t)(ac_nn_rng_u64(r) % n); }
