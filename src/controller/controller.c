/* controller.c - configuration, parameter layout, the whole network's
 * forward and backward for one task, the training loss, embeddings, and
 * inference (ac_controller_decide). Layers are in nn.c; files in
 * controller_gguf.c. */
#include "controller/controller.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "model/model.h"
#include "quant/quant.h"

/* ------------------------------------------------------------------------
 * configuration */

static void set_default_levels(struct ac_controller_config *c) {
    static const char *const quant[] = {"f16", "q8_0", "q4_0", "q2_k"};
    static const float prune[] = {0.0f, 0.1f, 0.2f}, sparsity[] = {0.0f, 0.25f, 0.5f};
    c->n_levels[AC_HEAD_QUANT] = 4;
    c->n_levels[AC_HEAD_PRUNE] = 3;
    c->n_levels[AC_HEAD_SPARSITY] = 3;
    for (int i = 0; i < 4; i++) snprintf(c->quant_names[i], AC_CTRL_NAME_LEN, "%s", quant[i]);
    for (int i = 0; i < 3; i++) {
        c->prune_levels[i] = prune[i];
        c->sparsity_levels[i] = sparsity[i];
    }
}

void ac_controller_config_default(struct ac_controller_config *c, int n_vocab, int embd_dim) {
    memset(c, 0, sizeof *c);
    c->k = 32;
    c->n_vocab = n_vocab;
    c->embd_dim = embd_dim;
    c->d_model = 64; /* 128 and 256 did no better on the benchmark (README "Controller") */
    c->n_layers = 2;
    c->n_heads = 4;
    c->ffn_dim = 256;
    c->act = AC_ACT_GELU;
    c->clp_heads = 4;
    c->clp_dim = 256;
    c->clp_hidden = 128;
    c->policy_hidden = 64;
    set_default_levels(c);
}

void ac_controller_config_paper(struct ac_controller_config *c, int n_vocab, int embd_dim) {
    ac_controller_config_default(c, n_vocab, embd_dim);
    c->d_model = 512;
    c->n_layers = 6;
    c->n_heads = 8;
    c->ffn_dim = 2048;
}

int ac_controller_config_check(const struct ac_controller_config *c, char *err) {
    if (c->k < 1 || c->k > AC_CTRL_MAX_K) return ac_errf(err, "controller: k = %d (must be 1..%d)", c->k, AC_CTRL_MAX_K);
    if (c->n_vocab < 1 || c->embd_dim < 1)
        return ac_errf(err, "controller: embedding source %d x %d is empty", c->n_vocab, c->embd_dim);
    if (c->d_model < 1 || c->d_model > 8192 || c->n_layers < 1 || c->n_layers > 64 || c->ffn_dim < 1 ||
        c->ffn_dim > 65536 || c->embd_dim > 65536)
        return ac_errf(err, "controller: sizes out of range (d_model %d, layers %d, ffn %d)", c->d_model,
                       c->n_layers, c->ffn_dim);
    if (c->n_heads < 1 || c->d_model % c->n_heads != 0)
        return ac_errf(err, "controller: %d heads do not divide d_model %d", c->n_heads, c->d_model);
    if (c->clp_dim < 1 || c->clp_dim > 8192 || c->clp_heads < 1 || c->clp_dim % c->clp_heads != 0)
        return ac_errf(err, "controller: %d predictor heads do not divide clp_dim %d", c->clp_heads, c->clp_dim);
    if (c->clp_hidden < 1 || c->clp_hidden > 8192 || c->policy_hidden < 1 || c->policy_hidden > 8192)
        return ac_errf(err, "controller: clp_hidden %d / policy_hidden %d out of range", c->clp_hidden,
                       c->policy_hidden);
    if (c->act != AC_ACT_GELU && c->act != AC_ACT_RELU) return ac_errf(err, "controller: unknown activation");
    for (int j = 0; j < AC_CTRL_N_HEADS; j++)
        if (c->n_levels[j] < 1 || c->n_levels[j] > AC_CTRL_MAX_LEVELS)
            return ac_errf(err, "controller: head %d has %d levels (must be 1..%d)", j, c->n_levels[j],
                           AC_CTRL_MAX_LEVELS);
    for (int i = 0; i < c->n_levels[AC_HEAD_QUANT]; i++)
        if (c->quant_names[i][0] == '\0' || memchr(c->quant_names[i], '\0', AC_CTRL_NAME_LEN) == NULL)
            return ac_errf(err, "controller: quantization level %d has no name", i);
    for (int i = 0; i < c->n_levels[AC_HEAD_PRUNE]; i++)
        if (!(c->prune_levels[i] >= 0.0f && c->prune_levels[i] < 1.0f))
            return ac_errf(err, "controller: prune level %g not in [0, 1)", (double)c->prune_levels[i]);
    for (int i = 0; i < c->n_levels[AC_HEAD_SPARSITY]; i++)
        if (!(c->sparsity_levels[i] >= 0.0f && c->sparsity_levels[i] < 1.0f))
            return ac_errf(err, "controller: sparsity level %g not in [0, 1)", (double)c->sparsity_levels[i]);
    return 0;
}

int ac_controller_n_configs(const struct ac_controller_config *c) {
    return c->n_levels[0] * c->n_levels[1] * c->n_levels[2];
}

void ac_controller_config_split(const struct ac_controller_config *c, int config, int levels[AC_CTRL_N_HEADS]) {
    levels[2] = config % c->n_levels[2];
    levels[1] = (config / c->n_levels[2]) % c->n_levels[1];
    levels[0] = config / (c->n_levels[2] * c->n_levels[1]);
}

/* ------------------------------------------------------------------------
 * parameter layout */

#define AC_CTRL_NAME_(n) #n,
const char *const ac_ctrl_param_names[AC_P_COUNT] = {AC_CTRL_PARAMS(AC_CTRL_NAME_)};
#undef AC_CTRL_NAME_

_Static_assert(sizeof(union ac_ctrl_params) == AC_P_COUNT * sizeof(float *), "named fields cover the array");

void ac_ctrl_layout(const struct ac_controller_config *c, struct ac_ctrl_layout *out) {
    const int d = c->d_model, E = c->embd_dim, L = c->n_layers, F = c->ffn_dim, A = c->clp_dim,
              H = c->clp_hidden, P = c->policy_hidden;
    const int shape[AC_P_COUNT][3] = {
        [AC_P_proj_w] = {E, d, 1},         [AC_P_proj_b] = {d, 1, 1},        [AC_P_pos] = {d, c->k, 1},
        [AC_P_ln1_g] = {d, 1, L},          [AC_P_ln1_b] = {d, 1, L},         [AC_P_qkv_w] = {d, 3 * d, L},
        [AC_P_qkv_b] = {3 * d, 1, L},      [AC_P_attn_o_w] = {d, d, L},      [AC_P_attn_o_b] = {d, 1, L},
        [AC_P_ln2_g] = {d, 1, L},          [AC_P_ln2_b] = {d, 1, L},         [AC_P_fc_w] = {d, F, L},
        [AC_P_fc_b] = {F, 1, L},           [AC_P_fc_o_w] = {F, d, L},        [AC_P_fc_o_b] = {d, 1, L},
        [AC_P_lnf_g] = {d, 1, 1},          [AC_P_lnf_b] = {d, 1, 1},
        [AC_P_clp_q_w] = {d, A, 1},        [AC_P_clp_q_b] = {A, 1, 1},       [AC_P_clp_kv_w] = {d, 2 * A, 1},
        [AC_P_clp_kv_b] = {2 * A, 1, 1},   [AC_P_clp_o_w] = {A, A, 1},       [AC_P_clp_o_b] = {A, 1, 1},
        [AC_P_clp_m1_w] = {A, H, 1},       [AC_P_clp_m1_b] = {H, 1, 1},      [AC_P_clp_m2_w] = {H, 1, 1},
        [AC_P_clp_m2_b] = {1, 1, 1},
        [AC_P_pol_h_w] = {d + 1, P, AC_CTRL_N_HEADS}, [AC_P_pol_h_b] = {P, 1, AC_CTRL_N_HEADS},
        [AC_P_pol_quant_w] = {P, c->n_levels[0], 1},    [AC_P_pol_quant_b] = {c->n_levels[0], 1, 1},
        [AC_P_pol_prune_w] = {P, c->n_levels[1], 1},    [AC_P_pol_prune_b] = {c->n_levels[1], 1, 1},
        [AC_P_pol_sparsity_w] = {P, c->n_levels[2], 1}, [AC_P_pol_sparsity_b] = {c->n_levels[2], 1, 1},
    };
    out->total = 0;
    for (int i = 0; i < AC_P_COUNT; i++) {
        memcpy(out->ne[i], shape[i], sizeof shape[i]);
        out->numel[i] = (size_t)shape[i][0] * (size_t)shape[i][1] * (size_t)shape[i][2];
        out->total += out->numel[i];
    }
}

void ac_ctrl_params_point(union ac_ctrl_params *p, const struct ac_controller_config *c, float *block) {
    struct ac_ctrl_layout lay;
    ac_ctrl_layout(c, &lay);
    for (int i = 0; i < AC_P_COUNT; i++) {
        p->t[i] = block;
        block += lay.numel[i];
    }
}

void ac_ctrl_params_init(const union ac_ctrl_params *p, const struct ac_controller_config *c, uint64_t seed) {
    struct ac_ctrl_layout lay;
    ac_ctrl_layout(c, &lay);
    struct ac_nn_rng rng;
    ac_nn_rng_seed(&rng, seed);
    for (int i = 0; i < AC_P_COUNT; i++) {
        const char *name = ac_ctrl_param_names[i];
        size_t n = lay.numel[i];
        size_t len = strlen(name);
        float std = 0.0f, fill = 0.0f;
        if (len > 2 && strcmp(name + len - 2, "_w") == 0) {
            std = 1.0f / sqrtf((float)lay.ne[i][0]);
            /* residual branches: keep the stream's variance from growing with depth */
            if (i == AC_P_attn_o_w || i == AC_P_fc_o_w) std /= sqrtf(2.0f * (float)c->n_layers);
            /* policy logits start near uniform, so Gumbel noise explores */
            if (i == AC_P_pol_quant_w || i == AC_P_pol_prune_w || i == AC_P_pol_sparsity_w) std *= 0.1f;
        } else if (i == AC_P_pos) {
            std = 0.02f;
        } else if (i == AC_P_ln1_g || i == AC_P_ln2_g || i == AC_P_lnf_g) {
            fill = 1.0f;
        }
        for (size_t k = 0; k < n; k++) p->t[i][k] = std > 0.0f ? std * ac_nn_rng_normal(&rng) : fill;
    }
}

/* ------------------------------------------------------------------------
 * activations */

/* Points a's arrays into block (NULL: only counts) for T = k; returns the
 * number of floats. */
static size_t acts_point(struct ac_ctrl_acts *a, const struct ac_controller_config *c, float *block) {
    const size_t T = (size_t)c->k, d = (size_t)c->d_model, L = (size_t)c->n_layers, F = (size_t)c->ffn_dim,
                 NH = (size_t)c->n_heads, A = (size_t)c->clp_dim, CH = (size_t)c->clp_heads,
                 H = (size_t)c->clp_hidden, P = (size_t)c->policy_hidden;
    size_t off = 0;
#define TAKE(field, n)                                   \
    do {                                                 \
        a->field = block ? block + off : NULL;           \
        off += ((size_t)(n) + 15) & ~(size_t)15;         \
    } while (0)
    TAKE(x0, T * d);
    TAKE(ln1, L * T * d);
    TAKE(ln1_mean, L * T);
    TAKE(ln1_rstd, L * T);
    TAKE(qkv, L * T * 3 * d);
    TAKE(att, L * NH * T * T);
    TAKE(atty, L * T * d);
    TAKE(attproj, L * T * d);
    TAKE(res1, L * T * d);
    TAKE(ln2, L * T * d);
    TAKE(ln2_mean, L * T);
    TAKE(ln2_rstd, L * T);
    TAKE(fch, L * T * F);
    TAKE(fch_act, L * T * F);
    TAKE(fcproj, L * T * d);
    TAKE(res2, L * T * d);
    TAKE(lnf, T * d);
    TAKE(lnf_mean, T);
    TAKE(lnf_rstd, T);
    TAKE(e, d);
    TAKE(cq, A);
    TAKE(ckv, T * 2 * A);
    TAKE(catt, CH * T);
    TAKE(cy, A);
    TAKE(co, A);
    TAKE(ch, H);
    TAKE(ch_act, H);
    TAKE(cz, 1);
    TAKE(c, 1);
    TAKE(u, d + 1);
    for (int j = 0; j < AC_CTRL_N_HEADS; j++) {
        TAKE(ph[j], P);
        TAKE(ph_act[j], P);
        TAKE(logits[j], c->n_levels[j]);
        TAKE(soft[j], c->n_levels[j]);
        TAKE(hard[j], c->n_levels[j]);
        TAKE(probs[j], c->n_levels[j]);
    }
#undef TAKE
    return off;
}

int ac_ctrl_work_new(struct ac_ctrl_work **out, const struct ac_controller_config *c, char *err) {
    if (ac_controller_config_check(c, err) != 0) return -1;
    struct ac_ctrl_work *w = calloc(1, sizeof *w);
    if (!w) return ac_errf(err, "controller: out of memory");
    w->cfg = *c;
    struct ac_ctrl_acts tmp;
    w->acts_floats = acts_point(&tmp, c, NULL);
    size_t emb_floats = (size_t)c->k * (size_t)c->embd_dim;
    w->block = ac_alloc_aligned(sizeof(float) * (2 * w->acts_floats + emb_floats));
    if (!w->block) {
        free(w);
        return ac_errf(err, "controller: out of memory (activations)");
    }
    memset(w->block, 0, sizeof(float) * (2 * w->acts_floats + emb_floats));
    acts_point(&w->a, c, w->block);
    acts_point(&w->da, c, w->block + w->acts_floats);
    w->emb = w->block + 2 * w->acts_floats;
    *out = w;
    return 0;
}

void ac_ctrl_work_free(struct ac_ctrl_work *w) {
    if (!w) return;
    ac_free_aligned(w->block);
    free(w);
}

/* ------------------------------------------------------------------------
 * the network: forward, then backward */

static const float *head_w(const union ac_ctrl_params *p, int j) { return p->t[AC_P_pol_quant_w + 2 * j]; }
static const float *head_b(const union ac_ctrl_params *p, int j) { return p->t[AC_P_pol_quant_b + 2 * j]; }

void ac_ctrl_forward(struct ac_ctrl_work *w, const union ac_ctrl_params *p, int T, const float *noise, float tau) {
    const struct ac_controller_config *c = &w->cfg;
    const int d = c->d_model, E = c->embd_dim, L = c->n_layers, F = c->ffn_dim, NH = c->n_heads,
              A = c->clp_dim, CH = c->clp_heads, H = c->clp_hidden, P = c->policy_hidden;
    struct ac_ctrl_acts *a = &w->a;
    const size_t Td = (size_t)T * d;
    w->T = T;

    /* token projection + learned positions */
    ac_nn_linear_forward(a->x0, w->emb, p->proj_w, p->proj_b, T, E, d);
    ac_nn_residual_forward(a->x0, a->x0, p->pos, (int)Td);

    /* encoder blocks */
    const float *x = a->x0;
    for (int l = 0; l < L; l++) {
        float *ln1 = a->ln1 + l * Td, *qkv = a->qkv + l * 3 * Td, *att = a->att + (size_t)l * NH * T * T;
        float *atty = a->atty + l * Td, *attproj = a->attproj + l * Td, *res1 = a->res1 + l * Td;
        float *ln2 = a->ln2 + l * Td, *fch = a->fch + (size_t)l * T * F, *fch_act = a->fch_act + (size_t)l * T * F;
        float *fcproj = a->fcproj + l * Td, *res2 = a->res2 + l * Td;
        ac_nn_layernorm_forward(ln1, a->ln1_mean + l * T, a->ln1_rstd + l * T, x, p->ln1_g + l * d,
                                p->ln1_b + l * d, T, d);
        ac_nn_linear_forward(qkv, ln1, p->qkv_w + (size_t)l * 3 * d * d, p->qkv_b + (size_t)l * 3 * d, T, d, 3 * d);
        ac_nn_attention_forward(atty, att, qkv, NULL, T, d, NH);
        ac_nn_linear_forward(attproj, atty, p->attn_o_w + (size_t)l * d * d, p->attn_o_b + l * d, T, d, d);
        ac_nn_residual_forward(res1, x, attproj, (int)Td);
        ac_nn_layernorm_forward(ln2, a->ln2_mean + l * T, a->ln2_rstd + l * T, res1, p->ln2_g + l * d,
                                p->ln2_b + l * d, T, d);
        ac_nn_linear_forward(fch, ln2, p->fc_w + (size_t)l * F * d, p->fc_b + (size_t)l * F, T, d, F);
        ac_nn_act_forward(fch_act, fch, T * F, c->act);
        ac_nn_linear_forward(fcproj, fch_act, p->fc_o_w + (size_t)l * d * F, p->fc_o_b + l * d, T, F, d);
        ac_nn_residual_forward(res2, res1, fcproj, (int)Td);
        x = res2;
    }
    ac_nn_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, p->lnf_g, p->lnf_b, T, d);
    ac_nn_meanpool_forward(a->e, a->lnf, NULL, T, d);

    /* cognitive-load predictor */
    ac_nn_linear_forward(a->cq, a->e, p->clp_q_w, p->clp_q_b, 1, d, A);
    ac_nn_linear_forward(a->ckv, a->lnf, p->clp_kv_w, p->clp_kv_b, T, d, 2 * A);
    ac_nn_crossattn_forward(a->cy, a->catt, a->cq, a->ckv, NULL, T, A, CH);
    ac_nn_linear_forward(a->co, a->cy, p->clp_o_w, p->clp_o_b, 1, A, A);
    ac_nn_linear_forward(a->ch, a->co, p->clp_m1_w, p->clp_m1_b, 1, A, H);
    ac_nn_act_forward(a->ch_act, a->ch, H, c->act);
    ac_nn_linear_forward(a->cz, a->ch_act, p->clp_m2_w, p->clp_m2_b, 1, H, 1);
    ac_nn_sigmoid_forward(a->c, a->cz, 1);

    /* policy heads on [e, c] */
    memcpy(a->u, a->e, sizeof(float) * (size_t)d);
    a->u[d] = a->c[0];
    for (int j = 0, off = 0; j < AC_CTRL_N_HEADS; off += c->n_levels[j], j++) {
        ac_nn_linear_forward(a->ph[j], a->u, p->pol_h_w + (size_t)j * P * (d + 1), p->pol_h_b + (size_t)j * P, 1,
                             d + 1, P);
        ac_nn_act_forward(a->ph_act[j], a->ph[j], P, c->act);
        ac_nn_linear_forward(a->logits[j], a->ph_act[j], head_w(p, j), head_b(p, j), 1, P, c->n_levels[j]);
        w->choice[j] = ac_nn_gumbel_st_forward(a->hard[j], a->soft[j], a->logits[j], noise ? noise + off : NULL, tau,
                                               c->n_levels[j]);
    }
}

float ac_ctrl_entropy(struct ac_ctrl_work *w) {
    float h = 0.0f;
    for (int j = 0; j < AC_CTRL_N_HEADS; j++) h += ac_nn_entropy_forward(w->a.probs[j], w->a.logits[j], w->cfg.n_levels[j]);
    return h;
}

void ac_ctrl_backward(struct ac_ctrl_work *w, union ac_ctrl_params *g, const union ac_ctrl_params *p, float dc,
                      float *const dy[AC_CTRL_N_HEADS], float tau, float entropy_weight) {
    const struct ac_controller_config *c = &w->cfg;
    const int T = w->T, d = c->d_model, E = c->embd_dim, L = c->n_layers, F = c->ffn_dim, NH = c->n_heads,
              A = c->clp_dim, CH = c->clp_heads, H = c->clp_hidden, P = c->policy_hidden;
    const struct ac_ctrl_acts *a = &w->a;
    struct ac_ctrl_acts *da = &w->da;
    const size_t Td = (size_t)T * d;
    memset(w->block + w->acts_floats, 0, sizeof(float) * w->acts_floats);

    /* policy heads */
    for (int j = 0; j < AC_CTRL_N_HEADS; j++) {
        const int n = c->n_levels[j];
        ac_nn_gumbel_st_backward(da->logits[j], dy[j], a->soft[j], tau, n);
        if (entropy_weight != 0.0f) {
            ac_nn_entropy_forward(a->probs[j], a->logits[j], n);
            ac_nn_entropy_backward(da->logits[j], -entropy_weight, a->probs[j], n);
        }
        ac_nn_linear_backward(da->ph_act[j], g->t[AC_P_pol_quant_w + 2 * j], g->t[AC_P_pol_quant_b + 2 * j],
                              da->logits[j], a->ph_act[j], head_w(p, j), 1, P, n);
        ac_nn_act_backward(da->ph[j], da->ph_act[j], a->ph[j], P, c->act);
        ac_nn_linear_backward(da->u, g->pol_h_w + (size_t)j * P * (d + 1), g->pol_h_b + (size_t)j * P, da->ph[j],
                              a->u, p->pol_h_w + (size_t)j * P * (d + 1), 1, d + 1, P);
    }
    ac_nn_axpy(da->e, 1.0f, da->u, d);
    da->c[0] = dc + da->u[d];

    /* cognitive-load predictor */
    ac_nn_sigmoid_backward(da->cz, da->c, a->c, 1);
    ac_nn_linear_backward(da->ch_act, g->clp_m2_w, g->clp_m2_b, da->cz, a->ch_act, p->clp_m2_w, 1, H, 1);
    ac_nn_act_backward(da->ch, da->ch_act, a->ch, H, c->act);
    ac_nn_linear_backward(da->co, g->clp_m1_w, g->clp_m1_b, da->ch, a->co, p->clp_m1_w, 1, A, H);
    ac_nn_linear_backward(da->cy, g->clp_o_w, g->clp_o_b, da->co, a->cy, p->clp_o_w, 1, A, A);
    ac_nn_crossattn_backward(da->cq, da->ckv, da->cy, a->cq, a->ckv, a->catt, NULL, T, A, CH);
    ac_nn_linear_backward(da->lnf, g->clp_kv_w, g->clp_kv_b, da->ckv, a->lnf, p->clp_kv_w, T, d, 2 * A);
    ac_nn_linear_backward(da->e, g->clp_q_w, g->clp_q_b, da->cq, a->e, p->clp_q_w, 1, d, A);

    /* pooling and the final norm */
    ac_nn_meanpool_backward(da->lnf, da->e, NULL, T, d);
    const float *x_last = L > 0 ? a->res2 + (size_t)(L - 1) * Td : a->x0;
    float *dx_last = L > 0 ? da->res2 + (size_t)(L - 1) * Td : da->x0;
    ac_nn_layernorm_backward(dx_last, g->lnf_g, g->lnf_b, da->lnf, x_last, p->lnf_g, a->lnf_mean, a->lnf_rstd, T,
                             d);

    /* encoder blocks, last first */
    for (int l = L - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->x0 : a->res2 + (size_t)(l - 1) * Td;
        float *dx = l == 0 ? da->x0 : da->res2 + (size_t)(l - 1) * Td;
        const size_t TF = (size_t)T * F;
        ac_nn_residual_backward(da->res1 + l * Td, da->fcproj + l * Td, da->res2 + l * Td, (int)Td);
        ac_nn_linear_backward(da->fch_act + l * TF, g->fc_o_w + (size_t)l * d * F, g->fc_o_b + l * d,
                              da->fcproj + l * Td, a->fch_act + l * TF, p->fc_o_w + (size_t)l * d * F, T, F, d);
        ac_nn_act_backward(da->fch + l * TF, da->fch_act + l * TF, a->fch + l * TF, (int)TF, c->act);
        ac_nn_linear_backward(da->ln2 + l * Td, g->fc_w + (size_t)l * F * d, g->fc_b + (size_t)l * F,
                              da->fch + l * TF, a->ln2 + l * Td, p->fc_w + (size_t)l * F * d, T, d, F);
        ac_nn_layernorm_backward(da->res1 + l * Td, g->ln2_g + l * d, g->ln2_b + l * d, da->ln2 + l * Td,
                                 a->res1 + l * Td, p->ln2_g + l * d, a->ln2_mean + l * T, a->ln2_rstd + l * T, T,
                                 d);
        ac_nn_residual_backward(dx, da->attproj + l * Td, da->res1 + l * Td, (int)Td);
        ac_nn_linear_backward(da->atty + l * Td, g->attn_o_w + (size_t)l * d * d, g->attn_o_b + l * d,
                              da->attproj + l * Td, a->atty + l * Td, p->attn_o_w + (size_t)l * d * d, T, d, d);
        ac_nn_attention_backward(da->qkv + l * 3 * Td, da->atty + l * Td, a->qkv + l * 3 * Td,
                                 a->att + (size_t)l * NH * T * T, NULL, T, d, NH);
        ac_nn_linear_backward(da->ln1 + l * Td, g->qkv_w + (size_t)l * 3 * d * d, g->qkv_b + (size_t)l * 3 * d,
                              da->qkv + l * 3 * Td, a->ln1 + l * Td, p->qkv_w + (size_t)l * 3 * d * d, T, d, 3 * d);
        ac_nn_layernorm_backward(dx, g->ln1_g + l * d, g->ln1_b + l * d, da->ln1 + l * Td, x, p->ln1_g + l * d,
                                 a->ln1_mean + l * T, a->ln1_rstd + l * T, T, d);
    }

    /* positions and the projection (the embeddings themselves are frozen) */
    ac_nn_axpy(g->pos, 1.0f, da->x0, (int)Td);
    ac_nn_linear_backward(NULL, g->proj_w, g->proj_b, da->x0, w->emb, p->proj_w, T, E, d);
}

/* ------------------------------------------------------------------------
 * loss */

void ac_ctrl_loss_params_default(struct ac_ctrl_loss_params *lp) {
    lp->lambda_cost = 0.3f;
    lp->lambda_fid = 0.7f;
    lp->theta = 0.95f;
    lp->lambda_aux = 0.1f;
    lp->hinge_of_mean = false;
}

#define CTRL_MAX_CONFIGS (AC_CTRL_MAX_LEVELS * AC_CTRL_MAX_LEVELS * AC_CTRL_MAX_LEVELS)

/* E[tab] over the product distribution y0 x y1 x y2; with a mask, the
 * expectation given that the configuration is a measured one:
 * sum(y known tab) / d, d = sum(y known) > 0. */
static float expect_known(float *const y[AC_CTRL_N_HEADS], const float *tab, const uint8_t *known, float d, int n0,
                          int n1, int n2) {
    if (!known) return ac_nn_expect3_forward(y[0], y[1], y[2], tab, n0, n1, n2);
    float masked[CTRL_MAX_CONFIGS];
    for (int i = 0; i < n0 * n1 * n2; i++) masked[i] = known[i] ? tab[i] : 0.0f;
    return ac_nn_expect3_forward(y[0], y[1], y[2], masked, n0, n1, n2) / d;
}

/* Adds dout * d expect_known / dy to dy; e is the expectation's value. With a
 * mask the gradient of N/d is sum known (tab - e) dP / d: an unmeasured
 * configuration counts as the measured ones' current mean (neutral). */
static void expect_known_backward(float *const dy[AC_CTRL_N_HEADS], float dout, float *const y[AC_CTRL_N_HEADS],
                                  const float *tab, const uint8_t *known, float e, float d, int n0, int n1, int n2) {
    if (!known) {
        ac_nn_expect3_backward(dy[0], dy[1], dy[2], dout, y[0], y[1], y[2], tab, n0, n1, n2);
        return;
    }
    float centred[CTRL_MAX_CONFIGS];
    for (int i = 0; i < n0 * n1 * n2; i++) centred[i] = known[i] ? tab[i] - e : 0.0f;
    ac_nn_expect3_backward(dy[0], dy[1], dy[2], dout / d, y[0], y[1], y[2], centred, n0, n1, n2);
}

float ac_ctrl_task_loss(const struct ac_controller_config *c, const struct ac_ctrl_loss_params *lp,
                        float *const y[AC_CTRL_N_HEADS], float complexity, float target, const float *cost,
                        const float *fid, const uint8_t *known, float *const dy[AC_CTRL_N_HEADS], float *dc,
                        float *exp_cost, float *exp_fid) {
    const int n0 = c->n_levels[0], n1 = c->n_levels[1], n2 = c->n_levels[2], nc = n0 * n1 * n2;
    float diff = complexity - target;
    float loss = lp->lambda_aux * diff * diff;
    if (dy)
        for (int j = 0; j < AC_CTRL_N_HEADS; j++) memset(dy[j], 0, sizeof(float) * (size_t)c->n_levels[j]);
    if (dc) *dc = 2.0f * lp->lambda_aux * diff;
    float table[CTRL_MAX_CONFIGS] = {0};
    for (int i = 0; i < nc; i++) {
        float shortfall = lp->theta - fid[i];
        table[i] = lp->lambda_cost * cost[i] + lp->lambda_fid * (shortfall > 0.0f ? shortfall : 0.0f);
    }
    float d = 1.0f;
    if (known) {
        float k[CTRL_MAX_CONFIGS];
        for (int i = 0; i < nc; i++) k[i] = known[i] ? 1.0f : 0.0f;
        d = ac_nn_expect3_forward(y[0], y[1], y[2], k, n0, n1, n2);
        if (!(d > 1e-12f)) {
            /* y weighs only unmeasured configurations: nothing is known there,
             * so the worst measured configuration bounds the loss, and there
             * is no gradient to follow */
            int worst = -1;
            for (int i = 0; i < nc; i++)
                if (known[i] && (worst < 0 || table[i] > table[worst])) worst = i;
            if (worst < 0) worst = 0;
            if (exp_cost) *exp_cost = cost[worst];
            if (exp_fid) *exp_fid = fid[worst];
            return loss + table[worst];
        }
    }
    float ec = expect_known(y, cost, known, d, n0, n1, n2);
    float ef = expect_known(y, fid, known, d, n0, n1, n2);
    if (lp->hinge_of_mean) {
        float shortfall = lp->theta - ef;
        loss += lp->lambda_cost * ec + lp->lambda_fid * (shortfall > 0.0f ? shortfall : 0.0f);
        if (dy) {
            expect_known_backward(dy, lp->lambda_cost, y, cost, known, ec, d, n0, n1, n2);
            if (shortfall > 0.0f) expect_known_backward(dy, -lp->lambda_fid, y, fid, known, ef, d, n0, n1, n2);
        }
    } else {
        const float e = expect_known(y, table, known, d, n0, n1, n2);
        loss += e;
        if (dy) expect_known_backward(dy, 1.0f, y, table, known, e, d, n0, n1, n2);
    }
    if (exp_cost) *exp_cost = ec;
    if (exp_fid) *exp_fid = ef;
    return loss;
}

/* ------------------------------------------------------------------------
 * embeddings */

void ac_embedder_from_model(struct ac_embedder *e, const struct ac_model *m) {
    e->n_vocab = m->cfg.n_vocab;
    e->dim = m->cfg.dim;
    e->type = m->tok_embd.type;
    e->row_bytes = ac_row_size(m->tok_embd.type, m->cfg.dim);
    e->data = m->tok_embd.data;
}

void ac_embedder_from_f32(struct ac_embedder *e, const float *table, int n_vocab, int dim) {
    e->n_vocab = n_vocab;
    e->dim = dim;
    e->type = AC_TYPE_F32;
    e->row_bytes = sizeof(float) * (size_t)dim;
    e->data = table;
}

int ac_embedder_lookup(const struct ac_embedder *e, const int32_t *ids, int n, float *out, char *err) {
    const struct ac_type_traits *tr = ac_type_traits(e->type);
    if (!tr || !tr->to_float) return ac_errf(err, "embeddings: type %u cannot be dequantized", e->type);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= e->n_vocab)
            return ac_errf(err, "token id %d out of range (vocabulary %d)", (int)ids[i], e->n_vocab);
        tr->to_float((const uint8_t *)e->data + (size_t)ids[i] * e->row_bytes, out + (size_t)i * e->dim, e->dim);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * the controller object */

int ac_controller_new(struct ac_controller **out, const struct ac_controller_config *c, uint64_t seed, char *err) {
    if (ac_controller_config_check(c, err) != 0) return -1;
    struct ac_controller *ctrl = calloc(1, sizeof *ctrl);
    if (!ctrl) return ac_errf(err, "controller: out of memory");
    ctrl->cfg = *c;
    ac_ctrl_layout(c, &ctrl->layout);
    ctrl->params_block = ac_alloc_aligned(sizeof(float) * ctrl->layout.total);
    if (!ctrl->params_block) {
        size_t total = ctrl->layout.total;
        free(ctrl);
        return ac_errf(err, "controller: out of memory (%zu parameters)", total);
    }
    ac_ctrl_params_point(&ctrl->p, c, ctrl->params_block);
    ac_ctrl_params_init(&ctrl->p, c, seed);
    if (ac_ctrl_work_new(&ctrl->work, c, err) != 0) {
        ac_controller_free(ctrl);
        return -1;
    }
    *out = ctrl;
    return 0;
}

int ac_controller_clone(struct ac_controller **out, const struct ac_controller *src, char *err) {
    struct ac_controller *ctrl = NULL;
    if (ac_controller_new(&ctrl, &src->cfg, 0, err) != 0 || !ctrl) return -1;
    memcpy(ctrl->params_block, src->params_block, sizeof(float) * src->layout.total);
    *out = ctrl;
    return 0;
}

void ac_controller_free(struct ac_controller *ctrl) {
    if (!ctrl) return;
    ac_ctrl_work_free(ctrl->work);
    ac_free_aligned(ctrl->params_block);
    free(ctrl);
}

size_t ac_controller_n_params(const struct ac_controller *ctrl) { return ctrl->layout.total; }

int ac_controller_decide_emb(struct ac_controller *ctrl, const int32_t *ids, int n, const struct ac_embedder *emb,
                             struct ac_decision *out, char *err) {
    const struct ac_controller_config *c = &ctrl->cfg;
    double t0 = ac_time_s();
    if (n < 1) return ac_errf(err, "controller: empty prompt (no token ids)");
    if (emb->n_vocab != c->n_vocab || emb->dim != c->embd_dim)
        return ac_errf(err,
                       "controller: trained on embeddings %d x %d, but the model has %d x %d (another base model?)",
                       c->n_vocab, c->embd_dim, emb->n_vocab, emb->dim);
    int T = n < c->k ? n : c->k;
    if (ac_embedder_lookup(emb, ids, T, ctrl->work->emb, err) != 0) return ac_err_prefix(err, "controller");
    ac_ctrl_forward(ctrl->work, &ctrl->p, T, NULL, 1.0f);
    memset(out, 0, sizeof *out);
    out->complexity = ctrl->work->a.c[0];
    for (int j = 0; j < AC_CTRL_N_HEADS; j++) {
        out->level[j] = ctrl->work->choice[j];
        memcpy(out->probs[j], ctrl->work->a.soft[j], sizeof(float) * (size_t)c->n_levels[j]);
    }
    out->config = (out->level[0] * c->n_levels[1] + out->level[1]) * c->n_levels[2] + out->level[2];
    out->quant_name = c->quant_names[out->level[0]];
    out->prune_ratio = c->prune_levels[out->level[1]];
    out->sparsity_target = c->sparsity_levels[out->level[2]];
    out->n_tokens = T;
    out->seconds = ac_time_s() - t0;
    return 0;
}

int ac_controller_decide(struct ac_controller *ctrl, const int32_t *ids, int n, const struct ac_model *embeddings_model,
                         struct ac_decision *out, char *err) {
    struct ac_embedder e;
    ac_embedder_from_model(&e, embeddings_model);
    return ac_controller_decide_emb(ctrl, ids, n, &e, out, err);
}
