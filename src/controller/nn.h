/* nn.h - the controller's layers, llm.c style: each *_forward sits directly
 * above its *_backward and takes the same arguments in the same order
 * (outputs, inputs, sizes); a backward's outputs are the gradients of its
 * forward's inputs, then come dout and what the forward saved.
 *
 * Conventions:
 *   - float32 everywhere, row-major; a weight matrix W (OC, C) maps C inputs
 *     to OC outputs (the PyTorch / llm.c layout).
 *   - every backward ACCUMULATES (+=) into its gradient outputs, so callers
 *     zero gradients once (one memset) and layers that share an input add up;
 *     a NULL gradient output is skipped (e.g. the gradient of a frozen input).
 *   - a mask is uint8 per position (1 = real token, 0 = padding) or NULL for
 *     "all positions real"; masked keys get zero attention, masked rows do
 *     not enter a pooled mean.
 *   - no allocation, no failure: sizes are the caller's contract. */
#ifndef AC_CONTROLLER_NN_H
#define AC_CONTROLLER_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ac_nn_act { AC_ACT_GELU = 0, AC_ACT_RELU = 1 };

#define AC_NN_LN_EPS 1e-5f

/* ---- dense kernels ---- */

/* dot(a, b) over n floats, several accumulators (vectorisable). */
float ac_nn_dot(const float *a, const float *b, int n);
/* y += alpha * x over n floats. */
void ac_nn_axpy(float *y, float alpha, const float *x, int n);

/* ---- linear: out (T, OC) = inp (T, C) @ W (OC, C)^T + b (OC); b may be NULL ----
 * The forward uses the AVX2/FMA kernel when the CPU has it, else the
 * scalar reference; both are exported for the test that compares them. */
void ac_nn_linear_forward(float *out, const float *inp, const float *w, const float *b, int T, int C, int OC);
void ac_nn_linear_forward_ref(float *out, const float *inp, const float *w, const float *b, int T, int C, int OC);
void ac_nn_linear_forward_avx2(float *out, const float *inp, const float *w, const float *b, int T, int C, int OC);
bool ac_nn_have_avx2(void);
void ac_nn_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           int T, int C, int OC);

/* ---- layernorm over the last dim; saves mean (T) and 1/std (T) ---- */
void ac_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *g,
                             const float *b, int T, int C);
void ac_nn_layernorm_backward(float *dinp, float *dg, float *db, const float *dout, const float *inp,
                              const float *g, const float *mean, const float *rstd, int T, int C);

/* ---- bidirectional multi-head self-attention with a key padding mask ----
 * qkv (T, 3C): each row is [q | k | v], head h using columns h*hs..(h+1)*hs
 * of each third (hs = C / NH); att (NH, T, T) saves the probabilities
 * (zero on masked keys); out (T, C). A row whose keys are all masked gets
 * zero output. */
void ac_nn_attention_forward(float *out, float *att, const float *qkv, const uint8_t *mask, int T, int C, int NH);
void ac_nn_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                              const uint8_t *mask, int T, int C, int NH);

/* ---- cross-attention of one query vector over T keys/values ----
 * q (C), kv (T, 2C) rows [k | v], att (NH, T), out (C). */
void ac_nn_crossattn_forward(float *out, float *att, const float *q, const float *kv, const uint8_t *mask, int T,
                             int C, int NH);
void ac_nn_crossattn_backward(float *dq, float *dkv, const float *dout, const float *q, const float *kv,
                              const float *att, const uint8_t *mask, int T, int C, int NH);

/* ---- activations (elementwise over N) ---- */
void ac_nn_gelu_forward(float *out, const float *inp, int N); /* tanh approximation */
void ac_nn_gelu_backward(float *dinp, const float *dout, const float *inp, int N);
void ac_nn_relu_forward(float *out, const float *inp, int N);
void ac_nn_relu_backward(float *dinp, const float *dout, const float *inp, int N);
void ac_nn_act_forward(float *out, const float *inp, int N, enum ac_nn_act act);
void ac_nn_act_backward(float *dinp, const float *dout, const float *inp, int N, enum ac_nn_act act);

/* ---- sigmoid (backward reads the saved output) ---- */
void ac_nn_sigmoid_forward(float *out, const float *inp, int N);
void ac_nn_sigmoid_backward(float *dinp, const float *dout, const float *out, int N);

/* ---- residual: out = a + b ---- */
void ac_nn_residual_forward(float *out, const float *a, const float *b, int N);
void ac_nn_residual_backward(float *da, float *db, const float *dout, int N);

/* ---- masked mean over T rows: out (C) = mean of unmasked rows of inp (T, C) ---- */
void ac_nn_meanpool_forward(float *out, const float *inp, const uint8_t *mask, int T, int C);
void ac_nn_meanpool_backward(float *dinp, const float *dout, const uint8_t *mask, int T, int C);

/* ---- softmax with temperature: probs = softmax(logits / tau) ---- */
void ac_nn_softmax_forward(float *probs, const float *logits, float tau, int N);
void ac_nn_softmax_backward(float *dlogits, const float *dprobs, const float *probs, float tau, int N);

/* ---- entropy of softmax(logits): H = -sum p log p; probs (N) saved ---- */
float ac_nn_entropy_forward(float *probs, const float *logits, int N);
void ac_nn_entropy_backward(float *dlogits, float dout, const float *probs, int N);

/* ---- Gumbel-softmax, straight-through ----
 * soft = softmax((logits + noise) / tau) (noise NULL: none), hard = the
 * one-hot of soft's argmax (lowest index on ties). The forward value a
 * straight-through layer passes on is hard; its backward treats dhard as
 * the gradient of soft (the straight-through estimator). Returns the
 * argmax. */
int ac_nn_gumbel_st_forward(float *hard, float *soft, const float *logits, const float *noise, float tau, int N);
void ac_nn_gumbel_st_backward(float *dlogits, const float *dhard, const float *soft, float tau, int N);

/* ---- expectation of a per-configuration table under three independent
 * categorical choices: E = sum_{a,b,c} y0[a] y1[b] y2[c] tab[(a*n1+b)*n2+c]
 * (y one-hot in the straight-through case, probabilities otherwise). ---- */
float ac_nn_expect3_forward(const float *y0, const float *y1, const float *y2, const float *tab, int n0, int n1,
                            int n2);
void ac_nn_expect3_backward(float *dy0, float *dy1, float *dy2, float dout, const float *y0, const float *y1,
                            const float *y2, const float *tab, int n0, int n1, int n2);

/* ---- a seeded random number generator (splitmix64); owned by its user ---- */
struct ac_nn_rng {
    uint64_t s;
};
void ac_nn_rng_seed(struct ac_nn_rng *r, uint64_t seed);
uint64_t ac_nn_rng_u64(struct ac_nn_rng *r);
float ac_nn_rng_uniform(struct ac_nn_rng *r); /* (0, 1), never 0 or 1 */
float ac_nn_rng_normal(struct ac_nn_rng *r);  /* N(0, 1) */
float ac_nn_rng_gumbel(struct ac_nn_rng *r);  /* -log(-log(U)) */
uint32_t ac_nn_rng_below(struct ac_nn_rng *r, uint32_t n); /* uniform in [0, n), n > 0 */

#endif
