/* controller.h - the AgentCompress controller (paper Sections 3.2-3.3):
 * complexity predictor + policy network, float32, hand-written backward.
 *
 * Data path for one task (T = number of real tokens, 1..k; the padding of a
 * shorter prompt is a suffix, so running on the T-token prefix is exactly
 * "pad to k and mask the padding": no real position ever sees a pad):
 *
 *   ids (T) -> frozen base-model embeddings emb (T, E)        [struct ac_embedder]
 *   x = emb @ Wp^T + bp + pos[0..T)                            (T, d)
 *   n_layers x pre-norm encoder block:
 *       x += Wo . MHA(LN1(x))            (NH heads, key padding mask)
 *       x += W2 . act(W1 . LN2(x))       (act = GELU or ReLU, hidden ffn_dim)
 *   h = LNf(x)                                                  (T, d)
 *   e = masked mean over tokens of h                            (d)      task embedding
 *   cognitive-load predictor (our reading of "MHA (4 heads, 256-dim
 *   projections) then MLP 256->128->1" for a single pooled vector):
 *       q = Wq e, [K|V] = h @ Wkv^T  (A = clp_dim, CH = clp_heads)
 *       a = Wco . CrossAttn(q; K, V)                             (A)
 *       c = sigmoid(w2 . act(W1 a))     (A -> clp_hidden -> 1)   complexity in [0,1]
 *   policy: u = [e, c] (d + 1); three heads, each act(Wh1 u) -> logits (n_j)
 *       j = 0 quantization level, 1 pruning ratio, 2 sparsity target
 *   training: y_j = Gumbel-softmax straight-through (hard one-hot forward,
 *   soft gradient), temperature tau; inference: argmax of the logits.
 *
 * Parameters live in one float block laid out by a table (ac_ctrl_layout);
 * gradients and Adam moments use blocks of the same layout. The
 * configuration index of (quant a, prune b, sparsity c) is (a*n1 + b)*n2 + c.
 *
 * Thread safety: a struct ac_controller holds the scratch of ac_controller_decide;
 * use one controller per thread (ac_controller_clone) or serialize calls. */
#ifndef AC_CONTROLLER_H
#define AC_CONTROLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/nn.h"

struct ac_model;

#define AC_CTRL_MAX_K 512
#define AC_CTRL_MAX_LEVELS 8
#define AC_CTRL_NAME_LEN 16
#define AC_CTRL_N_HEADS 3

enum ac_ctrl_head { AC_HEAD_QUANT = 0, AC_HEAD_PRUNE = 1, AC_HEAD_SPARSITY = 2 };

struct ac_controller_config {
    int k;        /* tokens read from the start of a prompt (32) */
    int n_vocab;  /* embedding source: vocabulary size ... */
    int embd_dim; /* ... and width (576 for SmolLM2-135M) */
    int d_model, n_layers, n_heads, ffn_dim;
    enum ac_nn_act act;
    int clp_heads, clp_dim, clp_hidden; /* cognitive-load predictor: 4, 256, 128 */
    int policy_hidden;                  /* hidden width of each policy head */
    int n_levels[AC_CTRL_N_HEADS];      /* quant, prune, sparsity level counts */
    char quant_names[AC_CTRL_MAX_LEVELS][AC_CTRL_NAME_LEN]; /* variant names: f16, q8_0, ... */
    float prune_levels[AC_CTRL_MAX_LEVELS];                  /* ratios, e.g. 0, 0.1, 0.2 */
    float sparsity_levels[AC_CTRL_MAX_LEVELS];               /* targets, e.g. 0, 0.25, 0.5 */
};

/* Defaults: k 32, 2 layers x 128 wide x 4 heads, ffn 256, GELU, predictor
 * 4 heads x 256 -> 128 -> 1, policy heads 64 wide; levels f16,q8_0,q4_0,q2_k
 * x {0,0.1,0.2} x {0,0.25,0.5}. */
void ac_controller_config_default(struct ac_controller_config *c, int n_vocab, int embd_dim);
/* The paper's scale: 6 layers x 512 wide x 8 heads, ffn 2048. */
void ac_controller_config_paper(struct ac_controller_config *c, int n_vocab, int embd_dim);
/* Checks every field (positive sizes, heads divide widths, level counts,
 * names non-empty). 0 or -1 with a message. */
int ac_controller_config_check(const struct ac_controller_config *c, char *err);
/* Number of configurations: n_levels[0] * n_levels[1] * n_levels[2]. */
int ac_controller_n_configs(const struct ac_controller_config *c);
/* Splits a configuration index into its three level indices. */
void ac_controller_config_split(const struct ac_controller_config *c, int config, int levels[AC_CTRL_N_HEADS]);

/* ---- parameter layout ---- */

#define AC_CTRL_PARAMS(X)                                                                                          \
    X(proj_w) X(proj_b) X(pos)                                                                                     \
    X(ln1_g) X(ln1_b) X(qkv_w) X(qkv_b) X(attn_o_w) X(attn_o_b)                                                    \
    X(ln2_g) X(ln2_b) X(fc_w) X(fc_b) X(fc_o_w) X(fc_o_b)                                                          \
    X(lnf_g) X(lnf_b)                                                                                              \
    X(clp_q_w) X(clp_q_b) X(clp_kv_w) X(clp_kv_b) X(clp_o_w) X(clp_o_b)                                            \
    X(clp_m1_w) X(clp_m1_b) X(clp_m2_w) X(clp_m2_b)                                                                \
    X(pol_h_w) X(pol_h_b)                                                                                          \
    X(pol_quant_w) X(pol_quant_b) X(pol_prune_w) X(pol_prune_b) X(pol_sparsity_w) X(pol_sparsity_b)

#define AC_CTRL_ENUM_(n) AC_P_##n,
enum ac_ctrl_param { AC_CTRL_PARAMS(AC_CTRL_ENUM_) AC_P_COUNT };
#undef AC_CTRL_ENUM_

/* Pointers into one block; named fields and an array view of the same
 * pointers. Shapes (outermost first), d = d_model, E = embd_dim, L =
 * n_layers, F = ffn_dim, A = clp_dim, H = clp_hidden, P = policy_hidden:
 *   proj_w (d, E)  proj_b (d)  pos (k, d)
 *   ln1_g, ln1_b (L, d)  qkv_w (L, 3d, d)  qkv_b (L, 3d)  attn_o_w (L, d, d)  attn_o_b (L, d)
 *   ln2_g, ln2_b (L, d)  fc_w (L, F, d)  fc_b (L, F)  fc_o_w (L, d, F)  fc_o_b (L, d)
 *   lnf_g, lnf_b (d)
 *   clp_q_w (A, d) clp_q_b (A)  clp_kv_w (2A, d) clp_kv_b (2A)  clp_o_w (A, A) clp_o_b (A)
 *   clp_m1_w (H, A) clp_m1_b (H)  clp_m2_w (1, H) clp_m2_b (1)
 *   pol_h_w (3, P, d+1)  pol_h_b (3, P)
 *   pol_quant_w (n0, P) pol_quant_b (n0)  pol_prune_w (n1, P) ...  pol_sparsity_w (n2, P) ... */
#define AC_CTRL_FIELD_(n) float *n;
union ac_ctrl_params {
    struct {
        AC_CTRL_PARAMS(AC_CTRL_FIELD_)
    };
    float *t[AC_P_COUNT];
};
#undef AC_CTRL_FIELD_

struct ac_ctrl_layout {
    size_t numel[AC_P_COUNT];
    int ne[AC_P_COUNT][3]; /* ne[0] innermost (row length), unused dims 1 */
    size_t total;          /* floats in the block */
};

extern const char *const ac_ctrl_param_names[AC_P_COUNT];

void ac_ctrl_layout(const struct ac_controller_config *c, struct ac_ctrl_layout *out);
/* Points every tensor of p into block (layout of c). */
void ac_ctrl_params_point(union ac_ctrl_params *p, const struct ac_controller_config *c, float *block);
/* Initial values: normal(0, 1/sqrt(fan_in)) weights (residual outputs scaled
 * by 1/sqrt(2L)), zero biases, unit LayerNorm gains, positions N(0, 0.02). */
void ac_ctrl_params_init(const union ac_ctrl_params *p, const struct ac_controller_config *c, uint64_t seed);

/* ---- per-task forward / backward (training and tests) ---- */

/* Activations of one task, sized for k tokens (layers stacked, stride by T). */
struct ac_ctrl_acts {
    float *x0;                                   /* (T, d) */
    float *ln1, *ln1_mean, *ln1_rstd;            /* (L, T, d), (L, T), (L, T) */
    float *qkv, *att, *atty, *attproj, *res1;    /* (L,T,3d), (L,NH,T,T), (L,T,d) x3 */
    float *ln2, *ln2_mean, *ln2_rstd;            /* (L, T, d), (L, T), (L, T) */
    float *fch, *fch_act, *fcproj, *res2;        /* (L,T,F) x2, (L,T,d) x2 */
    float *lnf, *lnf_mean, *lnf_rstd;            /* (T, d), (T), (T) */
    float *e;                                    /* (d) */
    float *cq, *ckv, *catt, *cy, *co;            /* (A), (T, 2A), (CH, T), (A), (A) */
    float *ch, *ch_act, *cz, *c;                 /* (H), (H), (1), (1) */
    float *u;                                    /* (d + 1) */
    float *ph[AC_CTRL_N_HEADS], *ph_act[AC_CTRL_N_HEADS]; /* (P) each */
    float *logits[AC_CTRL_N_HEADS];              /* (n_j) */
    float *soft[AC_CTRL_N_HEADS], *hard[AC_CTRL_N_HEADS]; /* (n_j) */
    float *probs[AC_CTRL_N_HEADS];               /* (n_j) softmax(logits), for the entropy */
};

struct ac_ctrl_work {
    struct ac_controller_config cfg;
    struct ac_ctrl_acts a, da; /* values and their gradients, same layout */
    float *block;              /* a then da */
    size_t acts_floats;        /* floats in one of the two */
    float *emb;                /* (k, E) embedding rows of the current task */
    int T;                     /* tokens of the last forward */
    int choice[AC_CTRL_N_HEADS];
};

int ac_ctrl_work_new(struct ac_ctrl_work **out, const struct ac_controller_config *c, char *err);
void ac_ctrl_work_free(struct ac_ctrl_work *w);

/* Runs the network on w->emb[0..T) (T in 1..k). noise: Gumbel noise for
 * the three heads, concatenated (n0 + n1 + n2 floats), or NULL; tau > 0.
 * Fills w->a (soft/hard per head) and w->choice (the argmax per head). */
void ac_ctrl_forward(struct ac_ctrl_work *w, const union ac_ctrl_params *p, int T, const float *noise, float tau);

/* Backward of the last forward. dc: dLoss/dc; dy[j]: dLoss/dy_j where y_j
 * is what the loss used (hard one-hot: straight-through; soft: plain
 * softmax gradient - both flow through soft). entropy_weight: the loss
 * also holds -entropy_weight * sum_j H(softmax(logits_j)) (an exploration
 * bonus; 0: none). Accumulates into g. */
void ac_ctrl_backward(struct ac_ctrl_work *w, union ac_ctrl_params *g, const union ac_ctrl_params *p, float dc,
                      float *const dy[AC_CTRL_N_HEADS], float tau, float entropy_weight);
/* sum_j H(softmax(logits_j)) of the last forward (nats). */
float ac_ctrl_entropy(struct ac_ctrl_work *w);

/* ---- the training loss of one task ----
 * The paper's loss, per task, with y_j the three heads' outputs (one-hot
 * under straight-through, probabilities otherwise) and E over the product
 * distribution y_0 x y_1 x y_2 of configurations:
 *
 *   hinge_of_mean = false (default): E[ l(config) ],
 *       l(config) = lambda_cost * cost + lambda_fid * max(0, theta - fid)
 *   hinge_of_mean = true:  lambda_cost * E[cost] + lambda_fid * max(0, theta - E[fid])
 *   plus lambda_aux * (c - target)^2 in both.
 *
 * For a one-hot y (a sampled configuration) both are the same number; they
 * differ in the gradient. The per-configuration form tells each head what
 * switching it would cost INCLUDING the fidelity penalty of the
 * configuration it would switch to; the hinge of the mean sees only the
 * current point's slope (at a feasible config: cost alone, which pushes
 * every head toward cheaper, infeasible levels), and over probabilities
 * its minimum can be a mixture of an infeasible and a feasible config.
 * cost/fid: the task's per-configuration table. known: NULL, or which
 * configurations were measured (a profile from telemetry observes only some):
 * then every expectation is taken given that the configuration is a measured
 * one, E[x | known] = sum(P known x) / sum(P known), so an unmeasured entry
 * neither attracts nor repels; where y puts no weight on a measured one the
 * loss is the worst measured configuration's, without gradient. Returns L;
 * writes dL/dy_j into dy (overwritten) and dL/dc (either may be NULL). */
struct ac_ctrl_loss_params {
    float lambda_cost, lambda_fid, theta, lambda_aux;
    bool hinge_of_mean;
};
void ac_ctrl_loss_params_default(struct ac_ctrl_loss_params *lp); /* 0.3, 0.7, 0.95, 0.1, per config */

float ac_ctrl_task_loss(const struct ac_controller_config *c, const struct ac_ctrl_loss_params *lp,
                        float *const y[AC_CTRL_N_HEADS], float complexity, float target, const float *cost,
                        const float *fid, const uint8_t *known, float *const dy[AC_CTRL_N_HEADS], float *dc,
                        float *exp_cost, float *exp_fid);

/* ---- embeddings (frozen inputs) ---- */

/* A row table: the base model's token embeddings (any quantized type) or a
 * plain float table. Does not own data. */
struct ac_embedder {
    int n_vocab, dim;
    uint32_t type; /* enum ac_type */
    size_t row_bytes;
    const void *data;
};
void ac_embedder_from_model(struct ac_embedder *e, const struct ac_model *m);
void ac_embedder_from_f32(struct ac_embedder *e, const float *table, int n_vocab, int dim);
/* Dequantizes rows ids[0..n) into out (n, dim). -1 on an id out of range. */
int ac_embedder_lookup(const struct ac_embedder *e, const int32_t *ids, int n, float *out, char *err);

/* ---- the controller object ---- */

struct ac_controller {
    struct ac_controller_config cfg;
    struct ac_ctrl_layout layout;
    float *params_block; /* layout.total floats */
    union ac_ctrl_params p;
    struct ac_ctrl_work *work; /* inference scratch */
};

/* Allocates a controller with initialised parameters (ac_ctrl_params_init). */
int ac_controller_new(struct ac_controller **out, const struct ac_controller_config *c, uint64_t seed, char *err);
int ac_controller_clone(struct ac_controller **out, const struct ac_controller *src, char *err);
void ac_controller_free(struct ac_controller *ctrl);
size_t ac_controller_n_params(const struct ac_controller *ctrl);

struct ac_decision {
    float complexity;               /* c in [0, 1] */
    int level[AC_CTRL_N_HEADS];     /* chosen index per head */
    int config;                     /* (quant * n1 + prune) * n2 + sparsity */
    const char *quant_name;         /* points into the controller's config */
    float prune_ratio, sparsity_target;
    float probs[AC_CTRL_N_HEADS][AC_CTRL_MAX_LEVELS]; /* softmax of each head (tau 1) */
    int n_tokens;                   /* ids used (min(n, k)) */
    double seconds;                 /* embedding lookup + forward */
};

/* Decides the configuration for a prompt's token ids (the first k are used;
 * n >= 1). The embedder must match the controller's n_vocab and embd_dim.
 * Uses the controller's scratch (not reentrant). */
int ac_controller_decide_emb(struct ac_controller *ctrl, const int32_t *ids, int n, const struct ac_embedder *emb,
                             struct ac_decision *out, char *err);
/* The same with the base model's token embeddings. */
int ac_controller_decide(struct ac_controller *ctrl, const int32_t *ids, int n, const struct ac_model *embeddings_model,
                         struct ac_decision *out, char *err);

/* ---- files (GGUF; config in agentcompress.controller.*, parameters F32) ---- */

int ac_controller_save(const struct ac_controller *ctrl, const char *path, char *err);
int ac_controller_load(struct ac_controller **out, const char *path, char *err);

#endif
