/* test_controller.c - every layer's backward against central finite
 * differences, one layer at a time and then the whole network end to end;
 * masks; Gumbel straight-through; decisions and their errors.
 *
 * Each check prints "max rel err" = max over checked values of
 * |analytic - numeric| / max(|analytic|, |numeric|, FLOOR): relative for
 * gradients that matter, absolute below FLOOR. The forward is float32, the
 * objective sum(R * out) is accumulated in double. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "controller/controller.h"
#include "controller/nn.h"

#define FLOOR 1e-2
#define TOL 1e-2

static struct ac_nn_rng rng;

static float *alloc_rand(int n, float scale) {
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    assert_non_null(x);
    for (int i = 0; i < n; i++) x[i] = scale * ac_nn_rng_normal(&rng);
    return x;
}

static float *alloc_zero(int n) {
    float *x = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    assert_non_null(x);
    return x;
}

static double weighted_sum(const float *r, const float *out, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)r[i] * (double)out[i];
    return s;
}

typedef double (*objective_fn)(void *ctx);

/* Compares g (the analytic gradient of f w.r.t. x) with central differences
 * at up to max_checks positions of x spread over its n values. */
static double fd_check(const char *what, objective_fn f, void *ctx, float *x, const float *g, int n, int max_checks,
                       float h) {
    int count = n < max_checks ? n : max_checks;
    double worst = 0.0;
    for (int k = 0; k < count; k++) {
        int i = count == n ? k : (int)((long long)k * n / count);
        float old = x[i], xp = old + h, xm = old - h;
        x[i] = xp;
        double fp = f(ctx);
        x[i] = xm;
        double fm = f(ctx);
        x[i] = old;
        double num = (fp - fm) / ((double)xp - (double)xm);
        double a = g[i];
        double den = fmax(fmax(fabs(a), fabs(num)), FLOOR);
        double e = fabs(a - num) / den;
        if (e > worst) worst = e;
        if (e > TOL) printf("    %s[%d]: analytic %.6g numeric %.6g\n", what, i, a, num);
    }
    printf("  %-34s max rel err %.2e  (%d values)\n", what, worst, count);
    return worst;
}

/* ------------------------------------------------------------------------
 * linear */

struct lin_ctx {
    int T, C, OC;
    float *inp, *w, *b, *out, *r;
};

static double lin_obj(void *p) {
    struct lin_ctx *c = p;
    ac_nn_linear_forward(c->out, c->inp, c->w, c->b, c->T, c->C, c->OC);
    return weighted_sum(c->r, c->out, c->T * c->OC);
}

static void test_fd_linear(void **state) {
    (void)state;
    struct lin_ctx c = {.T = 3, .C = 7, .OC = 5};
    c.inp = alloc_rand(c.T * c.C, 1.0f);
    c.w = alloc_rand(c.OC * c.C, 0.5f);
    c.b = alloc_rand(c.OC, 0.5f);
    c.out = alloc_zero(c.T * c.OC);
    c.r = alloc_rand(c.T * c.OC, 1.0f);
    float *dinp = alloc_zero(c.T * c.C), *dw = alloc_zero(c.OC * c.C), *db = alloc_zero(c.OC);
    lin_obj(&c);
    ac_nn_linear_backward(dinp, dw, db, c.r, c.inp, c.w, c.T, c.C, c.OC);
    assert_true(fd_check("linear dinp", lin_obj, &c, c.inp, dinp, c.T * c.C, 1000, 1e-2f) < TOL);
    assert_true(fd_check("linear dw", lin_obj, &c, c.w, dw, c.OC * c.C, 1000, 1e-2f) < TOL);
    assert_true(fd_check("linear db", lin_obj, &c, c.b, db, c.OC, 1000, 1e-2f) < TOL);
    /* accumulation: a second backward doubles the gradient */
    float before = dw[3];
    ac_nn_linear_backward(NULL, dw, NULL, c.r, c.inp, c.w, c.T, c.C, c.OC);
    assert_true(fabsf(dw[3] - 2.0f * before) <= 1e-5f * fabsf(before) + 1e-6f);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.r), free(dinp), free(dw), free(db);
}

/* The AVX2 forward against the scalar reference, odd sizes, misaligned. */
static void test_linear_simd(void **state) {
    (void)state;
    if (!ac_nn_have_avx2()) {
        printf("  no AVX2/FMA: skipped\n");
        skip();
    }
    static const int sizes[][3] = {{1, 1, 1}, {3, 7, 5}, {2, 33, 9}, {5, 576, 131}, {32, 128, 384}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int T = sizes[k][0], C = sizes[k][1], OC = sizes[k][2];
        float *x = alloc_rand(T * C + 1, 1.0f), *w = alloc_rand(OC * C + 1, 0.5f), *b = alloc_rand(OC, 0.5f);
        float *o1 = alloc_zero(T * OC), *o2 = alloc_zero(T * OC);
        ac_nn_linear_forward_ref(o1, x + 1, w + 1, b, T, C, OC);
        ac_nn_linear_forward_avx2(o2, x + 1, w + 1, b, T, C, OC);
        double worst = 0.0;
        for (int i = 0; i < T * OC; i++) {
            double e = fabs((double)o1[i] - o2[i]) / fmax(1.0, fabs((double)o1[i]));
            if (e > worst) worst = e;
        }
        printf("  linear avx2 vs ref T=%d C=%d OC=%d: max rel diff %.2e\n", T, C, OC, worst);
        assert_true(worst < 1e-5 * sqrt((double)C));
        ac_nn_linear_forward_avx2(o2, x + 1, w + 1, NULL, T, C, OC);
        ac_nn_linear_forward_ref(o1, x + 1, w + 1, NULL, T, C, OC);
        for (int i = 0; i < T * OC; i++) assert_true(fabsf(o1[i] - o2[i]) <= 1e-5f * sqrtf((float)C) * fmaxf(1.0f, fabsf(o1[i])));
        free(x), free(w), free(b), free(o1), free(o2);
    }
}

/* ------------------------------------------------------------------------
 * layernorm */

struct ln_ctx {
    int T, C;
    float *inp, *g, *b, *out, *mean, *rstd, *r;
};

static double ln_obj(void *p) {
    struct ln_ctx *c = p;
    ac_nn_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->g, c->b, c->T, c->C);
    return weighted_sum(c->r, c->out, c->T * c->C);
}

static void test_fd_layernorm(void **state) {
    (void)state;
    struct ln_ctx c = {.T = 3, .C = 9};
    c.inp = alloc_rand(c.T * c.C, 1.5f);
    c.g = alloc_rand(c.C, 1.0f);
    c.b = alloc_rand(c.C, 1.0f);
    c.out = alloc_zero(c.T * c.C);
    c.mean = alloc_zero(c.T);
    c.rstd = alloc_zero(c.T);
    c.r = alloc_rand(c.T * c.C, 1.0f);
    float *dinp = alloc_zero(c.T * c.C), *dg = alloc_zero(c.C), *db = alloc_zero(c.C);
    ln_obj(&c);
    ac_nn_layernorm_backward(dinp, dg, db, c.r, c.inp, c.g, c.mean, c.rstd, c.T, c.C);
    assert_true(fd_check("layernorm dinp", ln_obj, &c, c.inp, dinp, c.T * c.C, 1000, 1e-2f) < TOL);
    assert_true(fd_check("layernorm dg", ln_obj, &c, c.g, dg, c.C, 1000, 1e-2f) < TOL);
    assert_true(fd_check("layernorm db", ln_obj, &c, c.b, db, c.C, 1000, 1e-2f) < TOL);
    free(c.inp), free(c.g), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.r), free(dinp), free(dg),
        free(db);
}

/* ------------------------------------------------------------------------
 * self-attention with a padding mask */

struct att_ctx {
    int T, C, NH;
    const uint8_t *mask;
    float *qkv, *att, *out, *r;
};

static double att_obj(void *p) {
    struct att_ctx *c = p;
    ac_nn_attention_forward(c->out, c->att, c->qkv, c->mask, c->T, c->C, c->NH);
    return weighted_sum(c->r, c->out, c->T * c->C);
}

static void check_attention(const uint8_t *mask, const char *what) {
    struct att_ctx c = {.T = 5, .C = 8, .NH = 2, .mask = mask};
    c.qkv = alloc_rand(c.T * 3 * c.C, 1.0f);
    c.att = alloc_zero(c.NH * c.T * c.T);
    c.out = alloc_zero(c.T * c.C);
    c.r = alloc_rand(c.T * c.C, 1.0f);
    float *dqkv = alloc_zero(c.T * 3 * c.C);
    att_obj(&c);
    ac_nn_attention_backward(dqkv, c.r, c.qkv, c.att, c.mask, c.T, c.C, c.NH);
    assert_true(fd_check(what, att_obj, &c, c.qkv, dqkv, c.T * 3 * c.C, 1000, 1e-2f) < TOL);
    if (mask) /* masked keys: zero probability, zero key/value gradient */
        for (int t = 0; t < c.T; t++) {
            if (mask[t]) continue;
            for (int h = 0; h < c.NH; h++)
                for (int t1 = 0; t1 < c.T; t1++) assert_true(c.att[(h * c.T + t1) * c.T + t] == 0.0f);
            for (int i = c.C; i < 3 * c.C; i++) assert_true(dqkv[t * 3 * c.C + i] == 0.0f);
        }
    free(c.qkv), free(c.att), free(c.out), free(c.r), free(dqkv);
}

static void test_fd_attention(void **state) {
    (void)state;
    static const uint8_t holes[5] = {1, 0, 1, 1, 0};
    check_attention(NULL, "attention dqkv (no mask)");
    check_attention(holes, "attention dqkv (mask 10110)");
}

/* Padding is a suffix: the masked length-k run equals the unmasked prefix
 * run on every real row - why the network runs on the prefix only. */
static void test_attention_mask_is_prefix(void **state) {
    (void)state;
    const int T = 6, n = 4, C = 8, NH = 2;
    const uint8_t mask[6] = {1, 1, 1, 1, 0, 0};
    float *qkv = alloc_rand(T * 3 * C, 1.0f);
    float *att_a = alloc_zero(NH * T * T), *out_a = alloc_zero(T * C);
    float *att_b = alloc_zero(NH * n * n), *out_b = alloc_zero(n * C);
    ac_nn_attention_forward(out_a, att_a, qkv, mask, T, C, NH);
    ac_nn_attention_forward(out_b, att_b, qkv, NULL, n, C, NH);
    for (int i = 0; i < n * C; i++) assert_true(fabsf(out_a[i] - out_b[i]) < 1e-6f);
    float pa[8], pb[8];
    ac_nn_meanpool_forward(pa, out_a, mask, T, C);
    ac_nn_meanpool_forward(pb, out_b, NULL, n, C);
    for (int i = 0; i < C; i++) assert_true(fabsf(pa[i] - pb[i]) < 1e-6f);
    free(qkv), free(att_a), free(out_a), free(att_b), free(out_b);
}

/* ------------------------------------------------------------------------
 * cross-attention (the cognitive-load predictor's query over tokens) */

struct xatt_ctx {
    int T, C, NH;
    const uint8_t *mask;
    float *q, *kv, *att, *out, *r;
};

static double xatt_obj(void *p) {
    struct xatt_ctx *c = p;
    ac_nn_crossattn_forward(c->out, c->att, c->q, c->kv, c->mask, c->T, c->C, c->NH);
    return weighted_sum(c->r, c->out, c->C);
}

static void test_fd_crossattn(void **state) {
    (void)state;
    static const uint8_t mask[6] = {1, 1, 0, 1, 1, 0};
    struct xatt_ctx c = {.T = 6, .C = 8, .NH = 4, .mask = mask};
    c.q = alloc_rand(c.C, 1.0f);
    c.kv = alloc_rand(c.T * 2 * c.C, 1.0f);
    c.att = alloc_zero(c.NH * c.T);
    c.out = alloc_zero(c.C);
    c.r = alloc_rand(c.C, 1.0f);
    float *dq = alloc_zero(c.C), *dkv = alloc_zero(c.T * 2 * c.C);
    xatt_obj(&c);
    ac_nn_crossattn_backward(dq, dkv, c.r, c.q, c.kv, c.att, c.mask, c.T, c.C, c.NH);
    assert_true(fd_check("crossattn dq (masked)", xatt_obj, &c, c.q, dq, c.C, 1000, 1e-2f) < TOL);
    assert_true(fd_check("crossattn dkv (masked)", xatt_obj, &c, c.kv, dkv, c.T * 2 * c.C, 1000, 1e-2f) < TOL);
    free(c.q), free(c.kv), free(c.att), free(c.out), free(c.r), free(dq), free(dkv);
}

/* ------------------------------------------------------------------------
 * elementwise layers and pooling */

struct ew_ctx {
    int N, T, C, kind; /* 0 gelu, 1 relu, 2 sigmoid, 3 residual, 4 meanpool */
    const uint8_t *mask;
    float *a, *b, *out, *r;
};

static double ew_obj(void *p) {
    struct ew_ctx *c = p;
    switch (c->kind) {
    case 0: ac_nn_gelu_forward(c->out, c->a, c->N); break;
    case 1: ac_nn_relu_forward(c->out, c->a, c->N); break;
    case 2: ac_nn_sigmoid_forward(c->out, c->a, c->N); break;
    case 3: ac_nn_residual_forward(c->out, c->a, c->b, c->N); break;
    default: ac_nn_meanpool_forward(c->out, c->a, c->mask, c->T, c->C); return weighted_sum(c->r, c->out, c->C);
    }
    return weighted_sum(c->r, c->out, c->N);
}

static void test_fd_elementwise(void **state) {
    (void)state;
    static const uint8_t mask[5] = {1, 0, 1, 1, 0};
    static const char *const names[] = {"gelu", "relu", "sigmoid", "residual da", "meanpool (mask 10110)"};
    for (int kind = 0; kind < 5; kind++) {
        struct ew_ctx c = {.N = 40, .T = 5, .C = 8, .kind = kind, .mask = mask};
        c.a = alloc_rand(c.N, 2.0f);
        if (kind == 1) /* ReLU: keep inputs away from the kink */
            for (int i = 0; i < c.N; i++) c.a[i] += c.a[i] >= 0.0f ? 0.1f : -0.1f;
        c.b = alloc_rand(c.N, 1.0f);
        c.out = alloc_zero(c.N);
        c.r = alloc_rand(c.N, 1.0f);
        float *da = alloc_zero(c.N), *db = alloc_zero(c.N);
        ew_obj(&c);
        switch (kind) {
        case 0: ac_nn_gelu_backward(da, c.r, c.a, c.N); break;
        case 1: ac_nn_relu_backward(da, c.r, c.a, c.N); break;
        case 2: ac_nn_sigmoid_backward(da, c.r, c.out, c.N); break;
        case 3: ac_nn_residual_backward(da, db, c.r, c.N); break;
        default: ac_nn_meanpool_backward(da, c.r, c.mask, c.T, c.C); break;
        }
        assert_true(fd_check(names[kind], ew_obj, &c, c.a, da, c.N, 1000, 1e-2f) < TOL);
        if (kind == 3) assert_true(fd_check("residual db", ew_obj, &c, c.b, db, c.N, 1000, 1e-2f) < TOL);
        free(c.a), free(c.b), free(c.out), free(c.r), free(da), free(db);
    }
}

/* ------------------------------------------------------------------------
 * softmax, Gumbel straight-through, expectation over configurations */

struct sm_ctx {
    int N;
    float tau;
    float *logits, *noise, *soft, *hard, *r;
};

static double sm_obj(void *p) {
    struct sm_ctx *c = p;
    ac_nn_gumbel_st_forward(c->hard, c->soft, c->logits, c->noise, c->tau, c->N);
    return weighted_sum(c->r, c->soft, c->N);
}

static void test_fd_softmax_gumbel(void **state) {
    (void)state;
    struct sm_ctx c = {.N = 4, .tau = 0.7f};
    c.logits = alloc_rand(c.N, 1.0f);
    c.noise = alloc_zero(c.N);
    for (int i = 0; i < c.N; i++) c.noise[i] = ac_nn_rng_gumbel(&rng);
    c.soft = alloc_zero(c.N);
    c.hard = alloc_zero(c.N);
    c.r = alloc_rand(c.N, 1.0f);
    float *dl = alloc_zero(c.N), *dl_st = alloc_zero(c.N), *p = alloc_zero(c.N), *dl_sm = alloc_zero(c.N);
    int arg = ac_nn_gumbel_st_forward(c.hard, c.soft, c.logits, c.noise, c.tau, c.N);
    /* the forward value is the one-hot of argmax(logits + noise) */
    for (int i = 0; i < c.N; i++) {
        assert_true(c.hard[i] == (i == arg ? 1.0f : 0.0f));
        assert_true(c.logits[i] + c.noise[i] <= c.logits[arg] + c.noise[arg]);
    }
    /* soft path: the real gradient of softmax((l + g) / tau) */
    ac_nn_softmax_backward(dl, c.r, c.soft, c.tau, c.N);
    assert_true(fd_check("gumbel-softmax dlogits (soft path)", sm_obj, &c, c.logits, dl, c.N, 1000, 1e-3f) < TOL);
    /* straight-through: dhard is passed to the soft path unchanged */
    sm_obj(&c); /* the check left soft at a perturbed point */
    ac_nn_gumbel_st_backward(dl_st, c.r, c.soft, c.tau, c.N);
    for (int i = 0; i < c.N; i++) assert_true(dl_st[i] == dl[i]);
    /* plain softmax with temperature = no noise */
    struct sm_ctx c2 = c;
    c2.noise = NULL;
    sm_obj(&c2);
    ac_nn_softmax_forward(p, c.logits, c.tau, c.N);
    for (int i = 0; i < c.N; i++) assert_true(fabsf(p[i] - c2.soft[i]) < 1e-7f);
    ac_nn_softmax_backward(dl_sm, c.r, p, c.tau, c.N);
    assert_true(fd_check("softmax dlogits (tau 0.7)", sm_obj, &c2, c.logits, dl_sm, c.N, 1000, 1e-3f) < TOL);
    free(c.logits), free(c.noise), free(c.soft), free(c.hard), free(c.r), free(dl), free(dl_st), free(p),
        free(dl_sm);
}

struct ent_ctx {
    int N;
    float *logits, *probs;
};

static double ent_obj(void *p) {
    struct ent_ctx *c = p;
    return ac_nn_entropy_forward(c->probs, c->logits, c->N);
}

static void test_fd_entropy(void **state) {
    (void)state;
    struct ent_ctx c = {.N = 5};
    c.logits = alloc_rand(c.N, 1.5f);
    c.probs = alloc_zero(c.N);
    float *dl = alloc_zero(c.N);
    ent_obj(&c);
    ac_nn_entropy_backward(dl, 1.0f, c.probs, c.N);
    assert_true(fd_check("entropy dlogits", ent_obj, &c, c.logits, dl, c.N, 100, 1e-2f) < TOL);
    free(c.logits), free(c.probs), free(dl);
}

struct ex_ctx {
    int n0, n1, n2;
    float *y0, *y1, *y2, *tab;
};

static double ex_obj(void *p) {
    struct ex_ctx *c = p;
    return ac_nn_expect3_forward(c->y0, c->y1, c->y2, c->tab, c->n0, c->n1, c->n2);
}

static void test_fd_expect3(void **state) {
    (void)state;
    struct ex_ctx c = {.n0 = 4, .n1 = 3, .n2 = 2};
    c.y0 = alloc_rand(c.n0, 1.0f);
    c.y1 = alloc_rand(c.n1, 1.0f);
    c.y2 = alloc_rand(c.n2, 1.0f);
    c.tab = alloc_rand(c.n0 * c.n1 * c.n2, 1.0f);
    float *d0 = alloc_zero(c.n0), *d1 = alloc_zero(c.n1), *d2 = alloc_zero(c.n2);
    ac_nn_expect3_backward(d0, d1, d2, 1.0f, c.y0, c.y1, c.y2, c.tab, c.n0, c.n1, c.n2);
    assert_true(fd_check("expected cost dy (quant head)", ex_obj, &c, c.y0, d0, c.n0, 1000, 1e-2f) < TOL);
    assert_true(fd_check("expected cost dy (prune head)", ex_obj, &c, c.y1, d1, c.n1, 1000, 1e-2f) < TOL);
    assert_true(fd_check("expected cost dy (sparsity head)", ex_obj, &c, c.y2, d2, c.n2, 1000, 1e-2f) < TOL);
    free(c.y0), free(c.y1), free(c.y2), free(c.tab), free(d0), free(d1), free(d2);
}

/* ------------------------------------------------------------------------
 * one policy head: u -> act(W1 u + b1) -> W2 . + b2 -> softmax */

struct head_ctx {
    int U, P, N;
    float tau;
    float *u, *w1, *b1, *h, *ha, *w2, *b2, *logits, *soft, *hard, *r;
};

static double head_obj(void *p) {
    struct head_ctx *c = p;
    ac_nn_linear_forward(c->h, c->u, c->w1, c->b1, 1, c->U, c->P);
    ac_nn_gelu_forward(c->ha, c->h, c->P);
    ac_nn_linear_forward(c->logits, c->ha, c->w2, c->b2, 1, c->P, c->N);
    ac_nn_gumbel_st_forward(c->hard, c->soft, c->logits, NULL, c->tau, c->N);
    return weighted_sum(c->r, c->soft, c->N);
}

static void test_fd_policy_head(void **state) {
    (void)state;
    struct head_ctx c = {.U = 9, .P = 6, .N = 4, .tau = 0.8f};
    c.u = alloc_rand(c.U, 1.0f);
    c.w1 = alloc_rand(c.P * c.U, 0.4f);
    c.b1 = alloc_rand(c.P, 0.2f);
    c.h = alloc_zero(c.P);
    c.ha = alloc_zero(c.P);
    c.w2 = alloc_rand(c.N * c.P, 0.5f);
    c.b2 = alloc_rand(c.N, 0.2f);
    c.logits = alloc_zero(c.N);
    c.soft = alloc_zero(c.N);
    c.hard = alloc_zero(c.N);
    c.r = alloc_rand(c.N, 1.0f);
    float *du = alloc_zero(c.U), *dw1 = alloc_zero(c.P * c.U), *db1 = alloc_zero(c.P), *dh = alloc_zero(c.P),
          *dha = alloc_zero(c.P), *dw2 = alloc_zero(c.N * c.P), *db2 = alloc_zero(c.N), *dl = alloc_zero(c.N);
    head_obj(&c);
    ac_nn_gumbel_st_backward(dl, c.r, c.soft, c.tau, c.N);
    ac_nn_linear_backward(dha, dw2, db2, dl, c.ha, c.w2, 1, c.P, c.N);
    ac_nn_gelu_backward(dh, dha, c.h, c.P);
    ac_nn_linear_backward(du, dw1, db1, dh, c.u, c.w1, 1, c.U, c.P);
    assert_true(fd_check("policy head du", head_obj, &c, c.u, du, c.U, 1000, 1e-2f) < TOL);
    assert_true(fd_check("policy head dW1", head_obj, &c, c.w1, dw1, c.P * c.U, 1000, 1e-2f) < TOL);
    assert_true(fd_check("policy head db1", head_obj, &c, c.b1, db1, c.P, 1000, 1e-2f) < TOL);
    assert_true(fd_check("policy head dW2", head_obj, &c, c.w2, dw2, c.N * c.P, 1000, 1e-2f) < TOL);
    assert_true(fd_check("policy head db2", head_obj, &c, c.b2, db2, c.N, 1000, 1e-2f) < TOL);
    free(c.u), free(c.w1), free(c.b1), free(c.h), free(c.ha), free(c.w2), free(c.b2), free(c.logits), free(c.soft),
        free(c.hard), free(c.r), free(du), free(dw1), free(db1), free(dh), free(dha), free(dw2), free(db2), free(dl);
}

/* ------------------------------------------------------------------------
 * the whole network, end to end, through the training loss */

static void tiny_config(struct ac_controller_config *c, enum ac_nn_act act) {
    ac_controller_config_default(c, 50, 6);
    c->k = 7;
    c->d_model = 8;
    c->n_layers = 2;
    c->n_heads = 2;
    c->ffn_dim = 12;
    c->act = act;
    c->clp_heads = 2;
    c->clp_dim = 8;
    c->clp_hidden = 6;
    c->policy_hidden = 5;
    c->n_levels[0] = 3;
    c->n_levels[1] = 2;
    c->n_levels[2] = 2;
}

struct net_ctx {
    struct ac_controller_config cfg;
    struct ac_ctrl_work *w;
    union ac_ctrl_params p, g;
    struct ac_ctrl_loss_params lp;
    float *noise, *cost, *fid, tau, target, entropy_weight;
    int T;
};

static double net_obj(void *v) {
    struct net_ctx *c = v;
    ac_ctrl_forward(c->w, &c->p, c->T, c->noise, c->tau);
    return ac_ctrl_task_loss(&c->cfg, &c->lp, c->w->a.soft, c->w->a.c[0], c->target, c->cost, c->fid, NULL, NULL, NULL,
                             NULL, NULL) -
           (double)c->entropy_weight * ac_ctrl_entropy(c->w);
}

static void test_fd_network(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct net_ctx c = {.tau = 0.8f, .target = 0.8f, .T = 5, .entropy_weight = 0.1f};
    tiny_config(&c.cfg, AC_ACT_GELU);
    ac_ctrl_loss_params_default(&c.lp);
    c.lp.lambda_aux = 1.0f; /* make the predictor's path weigh as much as the policy's */
    assert_int_equal(ac_ctrl_work_new(&c.w, &c.cfg, err), 0);
    struct ac_ctrl_layout lay;
    ac_ctrl_layout(&c.cfg, &lay);
    float *pb = alloc_zero((int)lay.total), *gb = alloc_zero((int)lay.total);
    ac_ctrl_params_point(&c.p, &c.cfg, pb);
    ac_ctrl_params_point(&c.g, &c.cfg, gb);
    ac_ctrl_params_init(&c.p, &c.cfg, 7);
    /* larger policy weights than the init, so the heads' gradients are not tiny */
    for (int j = AC_P_pol_h_w; j < AC_P_COUNT; j++)
        for (size_t i = 0; i < lay.numel[j]; i++) c.p.t[j][i] = 0.5f * ac_nn_rng_normal(&rng);
    int nc = ac_controller_n_configs(&c.cfg);
    c.cost = alloc_zero(nc);
    c.fid = alloc_zero(nc);
    for (int i = 0; i < nc; i++) {
        c.cost[i] = ac_nn_rng_uniform(&rng);
        c.fid[i] = 0.3f + 0.5f * ac_nn_rng_uniform(&rng); /* below theta: the hinge is active */
    }
    c.noise = alloc_zero(8 + 2 + 2);
    for (int i = 0; i < 12; i++) c.noise[i] = ac_nn_rng_gumbel(&rng);
    for (int i = 0; i < c.T * c.cfg.embd_dim; i++) c.w->emb[i] = ac_nn_rng_normal(&rng);

    float dyb[3][AC_CTRL_MAX_LEVELS], dc;
    float *dy[3] = {dyb[0], dyb[1], dyb[2]};
    ac_ctrl_forward(c.w, &c.p, c.T, c.noise, c.tau);
    float loss = ac_ctrl_task_loss(&c.cfg, &c.lp, c.w->a.soft, c.w->a.c[0], c.target, c.cost, c.fid, NULL, dy, &dc,
                                   NULL, NULL);
    printf("  whole network (tiny, T=%d of k=%d; per-config loss + aux + entropy bonus): loss %.4f, c %.3f\n", c.T, c.cfg.k, (double)loss,
           (double)c.w->a.c[0]);
    ac_ctrl_backward(c.w, &c.g, &c.p, dc, dy, c.tau, c.entropy_weight);
    double worst = 0.0;
    for (int i = 0; i < AC_P_COUNT; i++) {
        char what[64];
        snprintf(what, sizeof what, "network d%s", ac_ctrl_param_names[i]);
        double e = fd_check(what, net_obj, &c, c.p.t[i], c.g.t[i], (int)lay.numel[i], 24, 1e-2f);
        if (e > worst) worst = e;
    }
    /* positions past T never enter the forward: zero gradient */
    for (int i = c.T * c.cfg.d_model; i < c.cfg.k * c.cfg.d_model; i++) assert_true(c.g.pos[i] == 0.0f);
    printf("  whole network: max rel err over all %d tensors %.2e\n", AC_P_COUNT, worst);
    assert_true(worst < TOL);
    ac_ctrl_work_free(c.w);
    free(pb), free(gb), free(c.cost), free(c.fid), free(c.noise);
}

/* The loss's own gradient w.r.t. the heads' outputs and c. */
struct loss_ctx {
    struct ac_controller_config cfg;
    struct ac_ctrl_loss_params lp;
    float *y[3], *cost, *fid, c, target;
};

static double loss_obj(void *v) {
    struct loss_ctx *c = v;
    return ac_ctrl_task_loss(&c->cfg, &c->lp, c->y, c->c, c->target, c->cost, c->fid, NULL, NULL, NULL, NULL, NULL);
}

static void test_fd_loss(void **state) {
    (void)state;
    struct loss_ctx c = {.c = 0.3f, .target = 0.7f};
    ac_controller_config_default(&c.cfg, 10, 4);
    ac_ctrl_loss_params_default(&c.lp);
    int nc = ac_controller_n_configs(&c.cfg);
    for (int j = 0; j < 3; j++) {
        float *logits = alloc_rand(c.cfg.n_levels[j], 1.0f);
        c.y[j] = alloc_zero(c.cfg.n_levels[j]);
        ac_nn_softmax_forward(c.y[j], logits, 1.0f, c.cfg.n_levels[j]);
        free(logits);
    }
    c.cost = alloc_rand(nc, 0.3f);
    c.fid = alloc_zero(nc);
    for (int i = 0; i < nc; i++) c.fid[i] = 0.5f * ac_nn_rng_uniform(&rng);
    float dyb[3][AC_CTRL_MAX_LEVELS] = {{0}}, dc;
    float *dy[3] = {dyb[0], dyb[1], dyb[2]};
    for (int mode = 0; mode < 2; mode++) {
        c.lp.hinge_of_mean = mode == 1;
        const char *m = mode ? "hinge of mean" : "per-config hinge";
        char what[64];
        ac_ctrl_task_loss(&c.cfg, &c.lp, c.y, c.c, c.target, c.cost, c.fid, NULL, dy, &dc, NULL, NULL);
        static const char *const head[3] = {"quant", "prune", "sparsity"};
        for (int j = 0; j < 3; j++) {
            snprintf(what, sizeof what, "loss (%s) dy %s", m, head[j]);
            assert_true(fd_check(what, loss_obj, &c, c.y[j], dy[j], c.cfg.n_levels[j], 100, 1e-2f) < TOL);
        }
        snprintf(what, sizeof what, "loss (%s) dc", m);
        assert_true(fd_check(what, loss_obj, &c, &c.c, &dc, 1, 100, 1e-2f) < TOL);
    }
    /* on one-hot inputs the two forms agree */
    float oh[3][AC_CTRL_MAX_LEVELS] = {{0, 0, 1, 0}, {0, 1, 0}, {1, 0, 0}};
    float *ohp[3] = {oh[0], oh[1], oh[2]};
    c.lp.hinge_of_mean = false;
    float l1 = ac_ctrl_task_loss(&c.cfg, &c.lp, ohp, c.c, c.target, c.cost, c.fid, NULL, NULL, NULL, NULL, NULL);
    c.lp.hinge_of_mean = true;
    float l2 = ac_ctrl_task_loss(&c.cfg, &c.lp, ohp, c.c, c.target, c.cost, c.fid, NULL, NULL, NULL, NULL, NULL);
    assert_true(fabsf(l1 - l2) < 1e-6f);
    for (int j = 0; j < 3; j++) free(c.y[j]);
    free(c.cost), free(c.fid);
}

/* ------------------------------------------------------------------------
 * decisions */

static void test_decide(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct ac_controller_config cfg;
    tiny_config(&cfg, AC_ACT_RELU);
    struct ac_controller *ctrl;
    assert_int_equal(ac_controller_new(&ctrl, &cfg, 1, err), 0);
    float *table = alloc_rand(cfg.n_vocab * cfg.embd_dim, 1.0f);
    struct ac_embedder emb;
    ac_embedder_from_f32(&emb, table, cfg.n_vocab, cfg.embd_dim);
    int32_t ids[12] = {1, 5, 9, 2, 33, 7, 8, 41, 3, 3, 3, 3};
    struct ac_decision d, d2;
    assert_int_equal(ac_controller_decide_emb(ctrl, ids, 12, &emb, &d, err), 0);
    assert_int_equal(d.n_tokens, cfg.k);
    assert_true(d.complexity >= 0.0f && d.complexity <= 1.0f);
    for (int j = 0; j < 3; j++) {
        assert_true(d.level[j] >= 0 && d.level[j] < cfg.n_levels[j]);
        float s = 0.0f;
        for (int i = 0; i < cfg.n_levels[j]; i++) {
            s += d.probs[j][i];
            assert_true(d.probs[j][i] <= d.probs[j][d.level[j]]);
        }
        assert_true(fabsf(s - 1.0f) < 1e-5f);
    }
    assert_string_equal(d.quant_name, cfg.quant_names[d.level[0]]);
    int lv[3];
    ac_controller_config_split(&cfg, d.config, lv);
    assert_memory_equal(lv, d.level, sizeof lv);
    /* only the first k ids matter */
    ids[10] = 49;
    assert_int_equal(ac_controller_decide_emb(ctrl, ids, 12, &emb, &d2, err), 0);
    assert_true(d2.complexity == d.complexity && d2.config == d.config);
    /* a short prompt */
    assert_int_equal(ac_controller_decide_emb(ctrl, ids, 2, &emb, &d2, err), 0);
    assert_int_equal(d2.n_tokens, 2);
    /* errors */
    assert_int_equal(ac_controller_decide_emb(ctrl, ids, 0, &emb, &d2, err), -1);
    printf("  empty prompt: %s\n", err);
    ids[0] = 50;
    assert_int_equal(ac_controller_decide_emb(ctrl, ids, 3, &emb, &d2, err), -1);
    printf("  bad id: %s\n", err);
    assert_non_null(strstr(err, "out of range"));
    struct ac_embedder other;
    ac_embedder_from_f32(&other, table, cfg.n_vocab - 1, cfg.embd_dim);
    assert_int_equal(ac_controller_decide_emb(ctrl, ids, 3, &other, &d2, err), -1);
    printf("  other model: %s\n", err);
    assert_non_null(strstr(err, "another base model"));
    ac_controller_free(ctrl);
    free(table);
}

static void test_config_check(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct ac_controller_config c;
    ac_controller_config_default(&c, 49152, 576);
    assert_int_equal(ac_controller_config_check(&c, err), 0);
    assert_int_equal(ac_controller_n_configs(&c), 36);
    struct ac_controller *ctrl;
    assert_int_equal(ac_controller_new(&ctrl, &c, 1, err), 0);
    printf("  default (2x64x4, E=576): %zu parameters\n", ac_controller_n_params(ctrl));
    ac_controller_free(ctrl);
    struct ac_ctrl_layout lay;
    ac_controller_config_paper(&c, 49152, 576);
    ac_ctrl_layout(&c, &lay);
    printf("  paper scale (6x512x8, E=576): %zu parameters\n", lay.total);
    c.n_heads = 7;
    assert_int_equal(ac_controller_config_check(&c, err), -1);
    printf("  %s\n", err);
    ac_controller_config_default(&c, 10, 4);
    c.n_levels[1] = 0;
    assert_int_equal(ac_controller_config_check(&c, err), -1);
    ac_controller_config_default(&c, 10, 4);
    c.quant_names[2][0] = '\0';
    assert_int_equal(ac_controller_config_check(&c, err), -1);
    ac_controller_config_default(&c, 10, 4);
    c.prune_levels[1] = 1.5f;
    assert_int_equal(ac_controller_config_check(&c, err), -1);
}

int main(void) {
    ac_nn_rng_seed(&rng, 12345);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_linear),
        cmocka_unit_test(test_linear_simd),
        cmocka_unit_test(test_fd_layernorm),
        cmocka_unit_test(test_fd_attention),
        cmocka_unit_test(test_attention_mask_is_prefix),
        cmocka_unit_test(test_fd_crossattn),
        cmocka_unit_test(test_fd_elementwise),
        cmocka_unit_test(test_fd_softmax_gumbel),
        cmocka_unit_test(test_fd_expect3),
        cmocka_unit_test(test_fd_entropy),
        cmocka_unit_test(test_fd_policy_head),
        cmocka_unit_test(test_fd_loss),
        cmocka_unit_test(test_fd_network),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_config_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
