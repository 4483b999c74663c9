/* test_train.c - controller training on synthetic profiles whose right
 * answer is known: the loss falls, held-out tasks are routed correctly,
 * runs are bit-for-bit deterministic, save -> load keeps every decision,
 * the real model's embeddings work, bad input fails cleanly.
 *
 * The synthetic task: the first token id (0..3) is the task's class, the
 * other ids are filler (>= 4). Class q tolerates compression up to a
 * corner of the configuration space; configurations inside it have
 * fidelity >= 0.96, the rest fall with the number of levels by which they
 * overshoot the corner (0.65, then -0.15 per extra level), like real
 * profiles, where fidelity drops step by step with compression. Every
 * infeasible config's fidelity penalty (lambda_fid * shortfall) outweighs
 * its cost saving (lambda_cost * saving) by >= 0.04, so the cheapest
 * feasible config (the corner) is the loss's minimum:
 *   class 0: f16 only            class 1: q8_0, prune 0, sparsity 0.25
 *   class 2: q4_0, 0.1, 0.25     class 3: q2_k, 0.2, 0.5 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "controller/controller.h"
#include "model/model.h"
#include "server/telemetry.h"
#include "train/train.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static const char *const domain_names[4] = {"cs", "physics", "chemistry", "biology"};
static const int class_max[4][3] = {{0, 0, 0}, {1, 0, 1}, {2, 1, 1}, {3, 2, 2}};
static const float quant_cost[4] = {1.0f, 0.53f, 0.28f, 0.16f};

/* The class's best configuration index under the default level lists. */
static int class_best(int cls) { return (class_max[cls][0] * 3 + class_max[cls][1]) * 3 + class_max[cls][2]; }

/* n tasks; class tokens are cls_ids[0..4), filler ids from [fill_lo, fill_hi). */
static struct ac_train_dataset *make_synthetic(int n, uint64_t seed, const int32_t cls_ids[4], int fill_lo,
                                               int fill_hi) {
    char err[AC_ERR_LEN];
    struct ac_controller_config cfg;
    ac_controller_config_default(&cfg, 1, 1);
    struct ac_train_levels lv;
    ac_train_levels_from_config(&lv, &cfg);
    struct ac_train_dataset *ds;
    assert_int_equal(ac_train_dataset_new(&ds, &lv, err), 0);
    struct ac_nn_rng rng;
    ac_nn_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        int cls = (int)ac_nn_rng_below(&rng, 4);
        int n_ids = 3 + (int)ac_nn_rng_below(&rng, 10);
        int32_t ids[16];
        ids[0] = cls_ids[cls];
        for (int k = 1; k < n_ids; k++) ids[k] = fill_lo + (int32_t)ac_nn_rng_below(&rng, (uint32_t)(fill_hi - fill_lo));
        float cost[36], fid[36];
        for (int q = 0; q < 4; q++)
            for (int pr = 0; pr < 3; pr++)
                for (int s = 0; s < 3; s++) {
                    int c = (q * 3 + pr) * 3 + s;
                    cost[c] = quant_cost[q] * (1.0f - cfg.prune_levels[pr]) * (1.0f - 0.4f * cfg.sparsity_levels[s]);
                    int excess = (q > class_max[cls][0] ? q - class_max[cls][0] : 0) +
                                 (pr > class_max[cls][1] ? pr - class_max[cls][1] : 0) +
                                 (s > class_max[cls][2] ? s - class_max[cls][2] : 0);
                    float u = ac_nn_rng_uniform(&rng);
                    fid[c] = excess == 0 ? 0.96f + 0.04f * u : fmaxf(0.0f, 0.65f - 0.15f * (float)(excess - 1) - 0.05f * u);
                }
        const char *dom = domain_names[ac_nn_rng_below(&rng, 4)];
        assert_int_equal(ac_train_dataset_add(ds, ids, n_ids, dom, cost, fid, NULL, NULL, err), 0);
        assert_int_equal(ac_train_task_best(ds, ds->n_tasks - 1, 0.95f), class_best(cls));
    }
    return ds;
}

static void tiny_config(struct ac_controller_config *c, int n_vocab, int embd_dim) {
    ac_controller_config_default(c, n_vocab, embd_dim);
    c->k = 8;
    c->d_model = 16;
    c->n_layers = 1;
    c->n_heads = 2;
    c->ffn_dim = 32;
    c->clp_heads = 2;
    c->clp_dim = 16;
    c->clp_hidden = 16;
    c->policy_hidden = 16;
}

static void print_epoch(const struct ac_train_epoch *ep, void *user) {
    (void)user;
    char line[512];
    ac_train_format_epoch(line, sizeof line, ep);
    printf("    %s\n", line);
}

struct synth {
    float *table;
    struct ac_embedder emb;
    struct ac_train_dataset *train, *dev, *test;
};

#define SYN_VOCAB 64
#define SYN_DIM 16

static void synth_setup(struct synth *s) {
    static const int32_t cls[4] = {0, 1, 2, 3};
    struct ac_nn_rng rng;
    ac_nn_rng_seed(&rng, 99);
    s->table = malloc(sizeof(float) * SYN_VOCAB * SYN_DIM);
    assert_non_null(s->table);
    for (int i = 0; i < SYN_VOCAB * SYN_DIM; i++) s->table[i] = ac_nn_rng_normal(&rng);
    ac_embedder_from_f32(&s->emb, s->table, SYN_VOCAB, SYN_DIM);
    s->train = make_synthetic(400, 1, cls, 4, SYN_VOCAB);
    s->dev = make_synthetic(100, 2, cls, 4, SYN_VOCAB);
    s->test = make_synthetic(200, 3, cls, 4, SYN_VOCAB);
}

static void synth_teardown(struct synth *s) {
    ac_train_dataset_free(s->train);
    ac_train_dataset_free(s->dev);
    ac_train_dataset_free(s->test);
    free(s->table);
}

static void test_params(struct ac_train_params *p, enum ac_meta meta) {
    ac_train_params_default(p);
    p->meta = meta;
    p->epochs = 25;
    p->lr = 3e-3f;
    p->inner_lr = 3e-2f;
    p->patience = 8;
    p->seed = 7;
    p->on_epoch = print_epoch;
}

static void train_and_route(enum ac_meta meta) {
    char err[AC_ERR_LEN];
    struct synth s;
    synth_setup(&s);
    struct ac_controller_config cfg;
    tiny_config(&cfg, SYN_VOCAB, SYN_DIM);
    struct ac_controller *ctrl;
    assert_int_equal(ac_controller_new(&ctrl, &cfg, 5, err), 0);
    struct ac_train_params p;
    test_params(&p, meta);
    struct ac_ctrl_loss_params lp = p.loss;
    struct ac_train_metrics before, after;
    assert_int_equal(ac_train_evaluate(ctrl, s.test, &s.emb, &lp, AC_TARGET_RANK, &before, err), 0);
    struct ac_train_result res;
    double t0 = ac_time_s();
    int rc = ac_train(ctrl, s.train, s.dev, &s.emb, &p, &res, err);
    if (rc != 0) printf("  %s\n", err);
    assert_int_equal(rc, 0);
    double secs = ac_time_s() - t0;
    assert_int_equal(ac_train_evaluate(ctrl, s.test, &s.emb, &lp, AC_TARGET_RANK, &after, err), 0);
    printf("  meta %s: %zu params, %d epochs (best %d) in %.1fs; train loss %.4f -> %.4f\n",
           meta == AC_META_FOMAML ? "fomaml" : "none", ac_controller_n_params(ctrl), res.epochs_run, res.best_epoch,
           secs, res.first_train_loss, res.last_train_loss);
    printf("  held-out: loss %.4f -> %.4f, routed correctly %.1f%% (before %.1f%%), cost %.3f (oracle %.3f), "
           "fidelity >= theta %.1f%%, pearson(c, rank) %.3f, pearson(c, 1-fid) %.3f\n",
           before.loss, after.loss, 100 * after.accuracy, 100 * before.accuracy, after.mean_cost, after.oracle_cost,
           100 * after.feasible, after.pearson_rank, after.pearson_fid);
    assert_true(res.last_train_loss < res.first_train_loss);
    assert_true(after.loss < before.loss);
    assert_true(after.accuracy >= 0.9);
    ac_controller_free(ctrl);
    synth_teardown(&s);
}

static void test_train_fomaml(void **state) {
    (void)state;
    train_and_route(AC_META_FOMAML);
}

static void test_train_plain(void **state) {
    (void)state;
    train_and_route(AC_META_NONE);
}

/* Same seed -> the same weights, bit for bit; another seed -> others. */
static void test_determinism(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct synth s;
    synth_setup(&s);
    struct ac_controller_config cfg;
    tiny_config(&cfg, SYN_VOCAB, SYN_DIM);
    struct ac_controller *a, *b, *c;
    assert_int_equal(ac_controller_new(&a, &cfg, 5, err), 0);
    assert_int_equal(ac_controller_new(&b, &cfg, 5, err), 0);
    assert_int_equal(ac_controller_new(&c, &cfg, 5, err), 0);
    struct ac_train_params p;
    test_params(&p, AC_META_FOMAML);
    p.epochs = 3;
    p.on_epoch = NULL;
    struct ac_train_result r;
    assert_int_equal(ac_train(a, s.train, s.dev, &s.emb, &p, &r, err), 0);
    assert_int_equal(ac_train(b, s.train, s.dev, &s.emb, &p, &r, err), 0);
    p.seed = 8;
    assert_int_equal(ac_train(c, s.train, s.dev, &s.emb, &p, &r, err), 0);
    size_t bytes = sizeof(float) * ac_controller_n_params(a);
    assert_memory_equal(a->params_block, b->params_block, bytes);
    assert_memory_not_equal(a->params_block, c->params_block, bytes);
    ac_controller_free(a);
    ac_controller_free(b);
    ac_controller_free(c);
    synth_teardown(&s);
}

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "/tmp/ac_test_train_%ld_%s", (long)getpid(), name);
}

/* save -> load: the same configuration, parameters and decisions. */
static void test_save_load(void **state) {
    (void)state;
    char err[AC_ERR_LEN], path[256];
    struct synth s;
    synth_setup(&s);
    struct ac_controller_config cfg;
    tiny_config(&cfg, SYN_VOCAB, SYN_DIM);
    cfg.act = AC_ACT_RELU;
    snprintf(cfg.quant_names[3], AC_CTRL_NAME_LEN, "q2_0");
    struct ac_controller *ctrl, *back;
    assert_int_equal(ac_controller_new(&ctrl, &cfg, 5, err), 0);
    struct ac_train_params p;
    test_params(&p, AC_META_NONE);
    p.epochs = 2;
    p.on_epoch = NULL;
    struct ac_train_result r;
    /* the dataset's levels must match: rename there too */
    snprintf(s.train->levels.quant_names[3], AC_CTRL_NAME_LEN, "q2_0");
    snprintf(s.test->levels.quant_names[3], AC_CTRL_NAME_LEN, "q2_0");
    assert_int_equal(ac_train(ctrl, s.train, NULL, &s.emb, &p, &r, err), 0);
    tmp_path(path, sizeof path, "ctrl.gguf");
    int rc = ac_controller_save(ctrl, path, err);
    if (rc != 0) printf("  %s\n", err);
    assert_int_equal(rc, 0);
    rc = ac_controller_load(&back, path, err);
    if (rc != 0) printf("  %s\n", err);
    assert_int_equal(rc, 0);
    assert_memory_equal(&back->cfg, &ctrl->cfg, sizeof cfg);
    assert_int_equal(ac_controller_n_params(back), ac_controller_n_params(ctrl));
    assert_memory_equal(back->params_block, ctrl->params_block, sizeof(float) * ac_controller_n_params(ctrl));
    for (int t = 0; t < s.test->n_tasks; t++) {
        struct ac_decision d1, d2;
        const int32_t *ids = ac_train_task_ids(s.test, t);
        int n = s.test->tasks[t].n_ids;
        assert_int_equal(ac_controller_decide_emb(ctrl, ids, n, &s.emb, &d1, err), 0);
        assert_int_equal(ac_controller_decide_emb(back, ids, n, &s.emb, &d2, err), 0);
        assert_int_equal(d1.config, d2.config);
        assert_true(d1.complexity == d2.complexity);
        assert_string_equal(d2.quant_name, cfg.quant_names[d2.level[0]]);
    }
    printf("  saved %s: %zu parameters, %d decisions identical after load\n", path, ac_controller_n_params(back),
           s.test->n_tasks);
    ac_controller_free(back);
    remove(path);
    /* not a controller */
    assert_int_equal(ac_controller_load(&back, MODEL_PATH, err), -1);
    printf("  load a model as a controller: %s\n", err);
    assert_int_equal(ac_controller_load(&back, "/nonexistent/ctrl.gguf", err), -1);
    ac_controller_free(ctrl);
    synth_teardown(&s);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_jsonl(void **state) {
    (void)state;
    char err[AC_ERR_LEN], path[256], path2[256];
    static const int32_t cls[4] = {0, 1, 2, 3};
    struct ac_train_dataset *ds = make_synthetic(20, 4, cls, 4, 64), *back;
    tmp_path(path, sizeof path, "ds.jsonl");
    assert_int_equal(ac_train_dataset_save_jsonl(ds, path, err), 0);
    assert_int_equal(ac_train_load_profile(&back, path, err), 0);
    assert_int_equal(back->n_tasks, ds->n_tasks);
    assert_int_equal(back->n_configs, 36);
    assert_int_equal(back->n_domains, ds->n_domains);
    for (int t = 0; t < ds->n_tasks; t++) {
        assert_int_equal(back->tasks[t].n_ids, ds->tasks[t].n_ids);
        assert_memory_equal(ac_train_task_ids(back, t), ac_train_task_ids(ds, t), sizeof(int32_t) * ds->tasks[t].n_ids);
        assert_string_equal(back->domains[back->tasks[t].domain], ds->domains[ds->tasks[t].domain]);
        assert_int_equal(ac_train_task_best(back, t, 0.95f), ac_train_task_best(ds, t, 0.95f));
    }
    for (int i = 0; i < 36 * ds->n_tasks; i++) {
        assert_true(back->cost[i] == ds->cost[i]); /* %.9g-free cJSON numbers round-trip floats */
        assert_true(back->fid[i] == ds->fid[i]);
    }
    ac_train_dataset_free(back);
    /* domain filter and split */
    struct ac_train_dataset *cs, *tr, *dv;
    assert_int_equal(ac_train_dataset_filter_domains(&cs, ds, "cs,physics", err), 0);
    for (int t = 0; t < cs->n_tasks; t++) {
        const char *d = cs->domains[cs->tasks[t].domain];
        assert_true(strcmp(d, "cs") == 0 || strcmp(d, "physics") == 0);
    }
    assert_int_equal(ac_train_dataset_filter_domains(&back, ds, "astrology", err), -1);
    assert_int_equal(ac_train_dataset_split(ds, 0.25f, 3, &tr, &dv, err), 0);
    assert_int_equal(tr->n_tasks + dv->n_tasks, ds->n_tasks);
    assert_int_equal(dv->n_tasks, 5);
    ac_train_dataset_free(cs);
    ac_train_dataset_free(tr);
    ac_train_dataset_free(dv);

    /* targets: class 0 needs the most expensive config (rank target 1),
     * class 3 the cheapest (0) */
    for (int t = 0; t < ds->n_tasks; t++) {
        int k = ac_train_task_ids(ds, t)[0];
        float r = ac_train_task_target(ds, t, 0.95f, AC_TARGET_RANK);
        if (k == 0) assert_true(r == 1.0f);
        if (k == 3) assert_true(r == 0.0f);
        float f = ac_train_task_target(ds, t, 0.95f, AC_TARGET_FID);
        assert_true(k == 3 ? f < 0.05f : f > 0.35f);
    }

    /* broken files: each rejected with FILE:LINE */
    static const char *const bad[] = {
        "",
        "{\"tasks\": []}\n",
        "{\"levels\": {\"quant\": [\"f16\"], \"prune\": [0], \"sparsity\": [0, 0.5]}}\n"
        "{\"domain\": \"cs\", \"ids\": [1], \"cost\": [1], \"fidelity\": [1, 1]}\n",
        "{\"levels\": {\"quant\": [\"f16\"], \"prune\": [0], \"sparsity\": [0]}}\n"
        "{\"domain\": \"cs\", \"ids\": [], \"cost\": [1], \"fidelity\": [1]}\n",
        "{\"levels\": {\"quant\": [\"f16\"], \"prune\": [0], \"sparsity\": [0]}}\n"
        "{\"domain\": \"cs\", \"ids\": [1], \"cost\": [1], \"fidelity\": [1.5]}\n",
        "{\"levels\": {\"quant\": [\"f16\"], \"prune\": [0], \"sparsity\": [0]}}\n"
        "{\"domain\": \"cs\", \"ids\": [-3], \"cost\": [1], \"fidelity\": [1]}\n",
        "{\"levels\": {\"quant\": [\"f16\"], \"prune\": [1.5], \"sparsity\": [0]}}\n",
        "{\"levels\": {\"quant\": [\"f16\"], \"prune\": [0], \"sparsity\": [0]}}\n{not json\n",
    };
    tmp_path(path2, sizeof path2, "bad.jsonl");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path2, bad[i]);
        assert_int_equal(ac_train_load_profile(&back, path2, err), -1);
        printf("  bad file %zu: %s\n", i, err);
    }
    assert_int_equal(ac_train_load_profile(&back, "profile.sqlite", err), -1);
    printf("  %s\n", err);
    remove(path);
    remove(path2);
    ac_train_dataset_free(ds);
}

static void test_bad_input(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct synth s;
    synth_setup(&s);
    struct ac_controller_config cfg;
    tiny_config(&cfg, SYN_VOCAB, SYN_DIM);
    struct ac_controller *ctrl;
    assert_int_equal(ac_controller_new(&ctrl, &cfg, 5, err), 0);
    struct ac_train_params p;
    test_params(&p, AC_META_FOMAML);
    p.on_epoch = NULL;
    struct ac_train_result r;
    /* empty dataset */
    struct ac_train_dataset *empty;
    struct ac_train_levels lv;
    ac_train_levels_from_config(&lv, &cfg);
    assert_int_equal(ac_train_dataset_new(&empty, &lv, err), 0);
    assert_int_equal(ac_train(ctrl, empty, NULL, &s.emb, &p, &r, err), -1);
    printf("  empty: %s\n", err);
    assert_non_null(strstr(err, "empty"));
    /* another configuration space (a profile of another variant set) */
    struct ac_train_dataset *other;
    lv.n[2] = 2;
    assert_int_equal(ac_train_dataset_new(&other, &lv, err), 0);
    float cost[24], fid[24];
    for (int i = 0; i < 24; i++) cost[i] = fid[i] = 1.0f;
    int32_t ids[2] = {1, 2};
    assert_int_equal(ac_train_dataset_add(other, ids, 2, "cs", cost, fid, NULL, NULL, err), 0);
    assert_int_equal(ac_train(ctrl, other, NULL, &s.emb, &p, &r, err), -1);
    printf("  mismatched configs: %s\n", err);
    assert_non_null(strstr(err, "24 configurations"));
    /* same count, other names */
    snprintf(s.dev->levels.quant_names[1], AC_CTRL_NAME_LEN, "q6_k");
    assert_int_equal(ac_train(ctrl, s.train, s.dev, &s.emb, &p, &r, err), -1);
    printf("  other variants: %s\n", err);
    /* embeddings of another model */
    struct ac_embedder small;
    ac_embedder_from_f32(&small, s.table, SYN_VOCAB, SYN_DIM / 2);
    assert_int_equal(ac_train(ctrl, s.train, NULL, &small, &p, &r, err), -1);
    printf("  other embeddings: %s\n", err);
    /* ids beyond the vocabulary */
    int32_t big[3] = {0, 5, SYN_VOCAB + 3};
    float c36[36], f36[36];
    for (int i = 0; i < 36; i++) c36[i] = f36[i] = 0.5f;
    struct ac_train_dataset *oov;
    ac_train_levels_from_config(&lv, &cfg);
    assert_int_equal(ac_train_dataset_new(&oov, &lv, err), 0);
    assert_int_equal(ac_train_dataset_add(oov, big, 3, "cs", c36, f36, NULL, NULL, err), 0);
    assert_int_equal(ac_train(ctrl, oov, NULL, &s.emb, &p, &r, err), -1);
    printf("  out-of-vocabulary id: %s\n", err);
    /* bad values */
    f36[4] = 1.5f;
    assert_int_equal(ac_train_dataset_add(oov, big, 3, "cs", c36, f36, NULL, NULL, err), -1);
    f36[4] = 0.5f;
    assert_int_equal(ac_train_dataset_add(oov, big, 0, "cs", c36, f36, NULL, NULL, err), -1);
    assert_int_equal(ac_train_dataset_add(oov, big, 3, "", c36, f36, NULL, NULL, err), -1);
    p.epochs = 0;
    assert_int_equal(ac_train(ctrl, s.train, NULL, &s.emb, &p, &r, err), -1);
    ac_train_dataset_free(oov);
    ac_train_dataset_free(other);
    ac_train_dataset_free(empty);
    ac_controller_free(ctrl);
    synth_teardown(&s);
}

/* The base model's own (Q4_1-dequantized) embeddings: class tokens are
 * real ids, filler the rest of the vocabulary. Also times one decision of
 * the default-size controller on 32 tokens (printed, not asserted). */
static void test_real_embeddings(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    if (access(MODEL_PATH, R_OK) != 0) {
        printf("  %s missing (make setup): skipped\n", MODEL_PATH);
        skip();
    }
    struct ac_model *m;
    assert_int_equal(ac_model_load(&m, MODEL_PATH, err), 0);
    struct ac_embedder emb;
    ac_embedder_from_model(&emb, m);
    static const int32_t cls[4] = {1000, 2000, 3000, 4000};
    struct ac_train_dataset *train = make_synthetic(300, 11, cls, 5000, m->cfg.n_vocab),
                            *dev = make_synthetic(100, 13, cls, 5000, m->cfg.n_vocab),
                            *test = make_synthetic(200, 12, cls, 5000, m->cfg.n_vocab);
    struct ac_controller_config cfg;
    tiny_config(&cfg, m->cfg.n_vocab, m->cfg.dim);
    struct ac_controller *ctrl;
    assert_int_equal(ac_controller_new(&ctrl, &cfg, 5, err), 0);
    struct ac_train_params p;
    test_params(&p, AC_META_FOMAML);
    p.epochs = 40;
    struct ac_train_result res;
    double t0 = ac_time_s();
    assert_int_equal(ac_train(ctrl, train, dev, &emb, &p, &res, err), 0);
    struct ac_train_metrics mt;
    assert_int_equal(ac_train_evaluate(ctrl, test, &emb, &p.loss, AC_TARGET_RANK, &mt, err), 0);
    printf("  real embeddings (%d x %d, %s): %.1fs, train loss %.4f -> %.4f, held-out routed correctly %.1f%%\n",
           m->cfg.n_vocab, m->cfg.dim, "q4_1", ac_time_s() - t0, res.first_train_loss, res.last_train_loss,
           100 * mt.accuracy);
    assert_true(mt.accuracy >= 0.9);
    ac_controller_free(ctrl);

    /* decision latency of the default controller (2 x 128 x 4) */
    ac_controller_config_default(&cfg, m->cfg.n_vocab, m->cfg.dim);
    assert_int_equal(ac_controller_new(&ctrl, &cfg, 5, err), 0);
    int32_t ids[32];
    for (int i = 0; i < 32; i++) ids[i] = 100 + 37 * i;
    struct ac_decision d;
    double best = 1e9, total = 0;
    const int reps = 50;
    for (int i = 0; i < reps; i++) {
        assert_int_equal(ac_controller_decide(ctrl, ids, 32, m, &d, err), 0);
        total += d.seconds;
        if (d.seconds < best) best = d.seconds;
    }
    printf("  default controller (%zu params): decision on 32 tokens: best %.0f us, mean %.0f us\n",
           ac_controller_n_params(ctrl), best * 1e6, total / reps * 1e6);
    ac_controller_free(ctrl);
    ac_train_dataset_free(train);
    ac_train_dataset_free(dev);
    ac_train_dataset_free(test);
    ac_model_free(m);
}

/* A profile as `agentcompress profile` writes it (SQLite): levels from the
 * configs table, per-stage cost from the measured weight bytes, fidelity and
 * success; configurations outside the profiled set are never preferred. */
static void test_sqlite_profile(void **state) {
    (void)state;
    char path[] = "/tmp/ac_profile_XXXXXX.sqlite";
    const int fd = mkstemps(path, 7);
    assert_true(fd >= 0);
    close(fd);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s \""
             "CREATE TABLE stages (id INTEGER PRIMARY KEY, domain TEXT, task_ids TEXT, f16_weight_bytes REAL);"
             "CREATE TABLE configs (id INTEGER PRIMARY KEY, name TEXT, variant TEXT, prune REAL, sparsity REAL,"
             " relative_cost REAL);"
             "CREATE TABLE results (stage_id INTEGER, config_id INTEGER, success INTEGER, fidelity REAL,"
             " weight_bytes REAL);"
             "INSERT INTO configs VALUES (1, 'f16', 'f16', 0, 0, 1.0), (2, 'q4_0', 'q4_0', 0, 0, 0.33),"
             " (3, 'q4_0-p0.2', 'q4_0', 0.2, 0, 0.27);"
             "INSERT INTO stages VALUES (1, 'cs', '[5, 6, 7]', 1000), (2, 'biology', '[8]', 2000),"
             " (3, 'cs', NULL, 0);"
             "INSERT INTO results VALUES (1, 1, 1, 1.0, 1000), (1, 2, 1, 0.9, 300), (1, 3, 0, 0.5, 250),"
             " (2, 1, 1, 1.0, 2000), (2, 2, 0, 0.4, 700);\"",
             path);
    assert_int_equal(system(cmd), 0);
    struct ac_train_dataset *ds;
    char err[AC_ERR_LEN];
    if (ac_train_load_profile(&ds, path, err) != 0) fail_msg("%s", err);
    assert_int_equal(ds->levels.n[0], 2);
    assert_string_equal(ds->levels.quant_names[1], "q4_0");
    assert_int_equal(ds->levels.n[1], 2); /* prune 0, 0.2 */
    assert_int_equal(ds->levels.n[2], 1);
    assert_int_equal(ds->n_configs, 4);
    assert_int_equal(ds->n_tasks, 2); /* the stage without task ids is skipped */
    assert_int_equal(ds->tasks[0].n_ids, 3);
    /* task 0: config (q4_0, prune 0) is index 2; (f16, prune 0.2) was never profiled */
    assert_true(fabsf(ds->cost[2] - 0.3f) < 1e-6f && fabsf(ds->fid[2] - 0.9f) < 1e-6f && ds->success[2] == 1);
    assert_true(ds->cost[1] >= 1e3f && ds->fid[1] == 0.0f && ds->success[1] == -1);
    assert_true(fabsf(ds->cost[3] - 0.25f) < 1e-6f && ds->success[3] == 0);
    assert_true(fabsf(ds->cost[4 + 2] - 0.35f) < 1e-6f); /* task 1: 700 / 2000 */
    ac_train_dataset_free(ds);
    assert_int_equal(ac_train_load_profile(&ds, "README.md", err), -1);
    assert_non_null(strstr(err, "not a profile"));
    unlink(path);
}

/* ------------------------------------------------------------------------
 * unmeasured configurations (telemetry) */

/* The masked loss: its gradient matches finite differences in both modes;
 * with every configuration measured it equals the plain loss; where y
 * weighs only unmeasured configurations it is the worst measured one's,
 * without gradient. */
struct masked_ctx {
    struct ac_controller_config cfg;
    struct ac_ctrl_loss_params lp;
    float y[3][AC_CTRL_MAX_LEVELS], cost[64], fid[64];
    uint8_t known[64];
};

static float masked_loss(struct masked_ctx *m, float *const dy[3]) {
    float *const y[3] = {m->y[0], m->y[1], m->y[2]};
    return ac_ctrl_task_loss(&m->cfg, &m->lp, y, 0.4f, 0.5f, m->cost, m->fid, m->known, dy, NULL, NULL, NULL);
}

static void test_masked_loss(void **state) {
    (void)state;
    struct masked_ctx m;
    memset(&m, 0, sizeof m);
    ac_controller_config_default(&m.cfg, 1, 1);
    m.cfg.n_levels[0] = 3, m.cfg.n_levels[1] = 2, m.cfg.n_levels[2] = 2;
    ac_ctrl_loss_params_default(&m.lp);
    struct ac_nn_rng rng;
    ac_nn_rng_seed(&rng, 3);
    for (int i = 0; i < 12; i++) {
        m.cost[i] = ac_nn_rng_uniform(&rng);
        m.fid[i] = 0.5f + 0.5f * ac_nn_rng_uniform(&rng);
        m.known[i] = i % 3 != 1;
    }
    float dyb[3][AC_CTRL_MAX_LEVELS];
    float *const dy[3] = {dyb[0], dyb[1], dyb[2]};
    for (int mode = 0; mode < 2; mode++) {
        m.lp.hinge_of_mean = mode == 1;
        for (int j = 0; j < 3; j++)
            for (int l = 0; l < m.cfg.n_levels[j]; l++) m.y[j][l] = 0.2f + ac_nn_rng_uniform(&rng);
        masked_loss(&m, dy);
        for (int j = 0; j < 3; j++)
            for (int l = 0; l < m.cfg.n_levels[j]; l++) {
                const float keep = m.y[j][l], h = 1e-3f;
                m.y[j][l] = keep + h;
                const float up = masked_loss(&m, NULL);
                m.y[j][l] = keep - h;
                const float down = masked_loss(&m, NULL);
                m.y[j][l] = keep;
                const float fd = (up - down) / (2 * h);
                if (fabsf(fd - dy[j][l]) > 2e-3f) fail_msg("mode %d head %d level %d: dy %g, fd %g", mode, j, l, (double)dy[j][l], (double)fd);
            }
    }
    /* every configuration measured: the plain loss (y distributions, as the heads' are) */
    m.lp.hinge_of_mean = false;
    memset(m.known, 1, sizeof m.known);
    for (int j = 0; j < 3; j++) {
        float total = 0.0f;
        for (int l = 0; l < m.cfg.n_levels[j]; l++) total += m.y[j][l];
        for (int l = 0; l < m.cfg.n_levels[j]; l++) m.y[j][l] /= total;
    }
    float *const y[3] = {m.y[0], m.y[1], m.y[2]};
    const float plain = ac_ctrl_task_loss(&m.cfg, &m.lp, y, 0.4f, 0.5f, m.cost, m.fid, NULL, NULL, NULL, NULL, NULL);
    assert_true(fabsf(masked_loss(&m, NULL) - plain) < 1e-5f);
    /* a one-hot y on an unmeasured configuration */
    memset(m.y, 0, sizeof m.y);
    m.y[0][1] = m.y[1][0] = m.y[2][0] = 1.0f; /* config (1, 0, 0) = 4 */
    memset(m.known, 0, sizeof m.known);
    m.known[0] = m.known[11] = 1;
    float worst = 0.0f;
    for (int i = 0; i < 12; i += 11) {
        const float t = m.lp.lambda_cost * m.cost[i] + m.lp.lambda_fid * fmaxf(0.0f, m.lp.theta - m.fid[i]);
        worst = fmaxf(worst, t);
    }
    const float aux = m.lp.lambda_aux * 0.1f * 0.1f;
    assert_true(fabsf(masked_loss(&m, dy) - (aux + worst)) < 1e-5f);
    for (int j = 0; j < 3; j++)
        for (int l = 0; l < m.cfg.n_levels[j]; l++) assert_true(dy[j][l] == 0.0f);
}

/* A telemetry file made through the telemetry module itself, with a fake
 * measurement standing in for the server's. */
struct fake_measure {
    double fid, rel;
};

static int fake_measure_fn(void *user, void *item, double *fidelity, double *relative_cost, char *err) {
    (void)user, (void)err;
    const struct fake_measure *f = item;
    *fidelity = f->fid;
    *relative_cost = f->rel;
    return 0;
}

static void fake_release(void *user, void *item) { (void)user, (void)item; }

struct fake_request {
    const char *variant;
    float prune;
    int32_t head[4];
    int n_head;
    struct fake_measure m;
};

static void write_telemetry(const char *path, const char *const *variants, int n_variants, double rate,
                            const struct fake_request *reqs, int n) {
    char err[AC_ERR_LEN];
    const struct ac_telemetry_fidelity fid = {.rate = rate, .measure = fake_measure_fn, .release = fake_release};
    struct ac_telemetry *t;
    if (ac_telemetry_open(&t, path, variants, n_variants, &fid, err) != 0) fail_msg("%s", err);
    for (int i = 0; i < n; i++) {
        const struct ac_telemetry_row row = {.endpoint = "chat", .model = "agentcompress", .variant = reqs[i].variant,
                                             .prune = reqs[i].prune, .complexity = -1, .prompt_tokens = 10,
                                             .completion_tokens = 5, .cost_bytes = 1e6, .cache_hit = 1,
                                             .finish = "stop", .head_ids = reqs[i].head, .n_head = reqs[i].n_head};
        assert_int_equal(ac_telemetry_log(t, &row, (void *)&reqs[i].m, err), 0);
    }
    ac_telemetry_close(t);
}

static void test_telemetry_profile(void **state) {
    (void)state;
    char dir[] = "/tmp/ac_telemetry_XXXXXX", path[96], cmd[512], err[AC_ERR_LEN];
    assert_non_null(mkdtemp(dir));
    static const char *const variants[] = {"f16", "q8_0", "q4_0"};
    static const struct fake_request reqs[] = {
        {"q4_0", 0.0f, {1, 2, 3}, 3, {0.99, 0.33}},
        {"q8_0", 0.0f, {1, 2, 3}, 3, {1.0, 0.53}},
        {"q4_0", 0.0f, {4, 5}, 2, {0.5, 0.33}},
        {"q4_0", 0.0f, {4, 5}, 2, {0.7, 0.35}},
        {"f16", 0.0f, {6}, 1, {1.0, 1.0}},   /* only the reference: compares nothing */
        {"q4_0", 0.0f, {0}, 0, {0.8, 0.3}},  /* no task ids */
        {"q4_0", 0.1f, {7, 8}, 2, {0.6, 0.3}},
    };
    snprintf(path, sizeof path, "%s/t.sqlite", dir);
    write_telemetry(path, variants, 3, 1.0, reqs, 7);
    struct ac_train_dataset *ds;
    if (ac_train_load_profile(&ds, path, err) != 0) fail_msg("%s", err);
    /* quant f16, q8_0, q4_0 (the server's order) x prune 0, 0.1 x sparsity 0 */
    assert_int_equal(ds->levels.n[0], 3);
    assert_string_equal(ds->levels.quant_names[2], "q4_0");
    assert_int_equal(ds->levels.n[1], 2);
    assert_int_equal(ds->n_configs, 6);
    assert_int_equal(ds->n_tasks, 3);
    /* tasks come sorted by their ids' text: [1,2,3], [4,5], [7,8] */
    static const uint8_t known[3][6] = {{1, 0, 1, 0, 1, 0}, {1, 0, 0, 0, 1, 0}, {1, 0, 0, 0, 0, 1}};
    for (int t = 0; t < 3; t++)
        for (int c = 0; c < 6; c++) assert_int_equal(ds->known[t * 6 + c], known[t][c]);
    assert_true(ds->fid[0] == 1.0f && ds->cost[0] == 1.0f); /* the reference */
    assert_true(fabsf(ds->fid[4] - 0.99f) < 1e-6f && fabsf(ds->cost[2] - 0.53f) < 1e-6f);
    assert_true(fabsf(ds->fid[6 + 4] - 0.6f) < 1e-6f && fabsf(ds->cost[6 + 4] - 0.34f) < 1e-6f); /* means */
    assert_true(fabsf(ds->fid[12 + 5] - 0.6f) < 1e-6f);
    assert_int_equal(ac_train_task_best(ds, 0, 0.95f), 4);  /* q4_0 */
    assert_int_equal(ac_train_task_best(ds, 1, 0.95f), 0);  /* only f16 is good enough */
    assert_true(ac_train_task_target(ds, 0, 0.95f, AC_TARGET_RANK) == 0.0f);
    assert_true(ac_train_task_target(ds, 1, 0.95f, AC_TARGET_RANK) == 1.0f);

    /* the JSONL form keeps the unmeasured entries as null */
    snprintf(cmd, sizeof cmd, "%s/t.jsonl", dir);
    assert_int_equal(ac_train_dataset_save_jsonl(ds, cmd, err), 0);
    struct ac_train_dataset *back;
    if (ac_train_load_profile(&back, cmd, err) != 0) fail_msg("%s", err);
    assert_memory_equal(back->known, ds->known, 18);
    assert_memory_equal(back->fid, ds->fid, sizeof(float) * 18);
    ac_train_dataset_free(back);

    /* one epoch of training on it */
    struct ac_nn_rng rng;
    ac_nn_rng_seed(&rng, 5);
    float table[SYN_VOCAB * SYN_DIM];
    for (int i = 0; i < SYN_VOCAB * SYN_DIM; i++) table[i] = ac_nn_rng_normal(&rng);
    struct ac_embedder emb;
    ac_embedder_from_f32(&emb, table, SYN_VOCAB, SYN_DIM);
    struct ac_controller_config cfg;
    tiny_config(&cfg, SYN_VOCAB, SYN_DIM);
    ac_train_levels_to_config(&cfg, &ds->levels);
    struct ac_controller *ctrl;
    assert_int_equal(ac_controller_new(&ctrl, &cfg, 5, err), 0);
    struct ac_train_params p;
    test_params(&p, AC_META_NONE);
    p.epochs = 1;
    struct ac_train_result res;
    if (ac_train(ctrl, ds, ds, &emb, &p, &res, err) != 0) fail_msg("%s", err);
    assert_int_equal(res.epochs_run, 1);
    assert_true(isfinite(res.last_train_loss) && res.best_dev.observed >= 0.0 && res.best_dev.observed <= 1.0);
    ac_controller_free(ctrl);
    ac_train_dataset_free(ds);

    /* bad inputs, one clear error each */
    snprintf(path, sizeof path, "%s/none.sqlite", dir); /* no sampling */
    write_telemetry(path, variants, 3, 0.0, reqs, 3);
    assert_int_equal(ac_train_load_profile(&ds, path, err), -1);
    assert_non_null(strstr(err, "no request has a fidelity sample"));
    snprintf(path, sizeof path, "%s/f16.sqlite", dir); /* only the reference */
    write_telemetry(path, variants, 3, 1.0, reqs + 4, 1);
    assert_int_equal(ac_train_load_profile(&ds, path, err), -1);
    assert_non_null(strstr(err, "nothing to compare"));
    snprintf(path, sizeof path, "%s/mixed.sqlite", dir); /* two deployments */
    write_telemetry(path, variants, 3, 1.0, reqs, 2);
    write_telemetry(path, variants, 2, 1.0, reqs + 1, 1);
    assert_int_equal(ac_train_load_profile(&ds, path, err), -1);
    assert_non_null(strstr(err, "different variant sets"));
    snprintf(path, sizeof path, "%s/old.sqlite", dir); /* written before fidelity sampling */
    snprintf(cmd, sizeof cmd, "sqlite3 %s 'CREATE TABLE requests (id INTEGER PRIMARY KEY, variant TEXT)'", path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ac_train_load_profile(&ds, path, err), -1);
    assert_non_null(strstr(err, "without fidelity samples"));
    snprintf(path, sizeof path, "%s/bad.jsonl", dir); /* a null cost beside a measured fidelity */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"levels\": {\"quant\": [\"f16\", \"q4_0\"], \"prune\": [0], \"sparsity\": [0]}}\n"
               "{\"domain\": \"cs\", \"ids\": [1], \"cost\": [1, null], \"fidelity\": [1, 0.5]}\n");
    fclose(f);
    assert_int_equal(ac_train_load_profile(&ds, path, err), -1);
    assert_non_null(strstr(err, "is null but"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The bounded queue: with one slot and a measurement in progress, a third
 * sampled request is dropped and counted. */
struct gated {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
};

static int gated_measure(void *user, void *item, double *fidelity, double *relative_cost, char *err) {
    (void)item, (void)err;
    struct gated *g = user;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    *fidelity = 0.5;
    *relative_cost = 0.5;
    return 0;
}

static void test_telemetry_queue(void **state) {
    (void)state;
    char dir[] = "/tmp/ac_telemetry_XXXXXX", path[96], cmd[512], err[AC_ERR_LEN];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.sqlite", dir);
    struct gated g = {.entered = false, .open = false};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    static const char *const variants[] = {"f16", "q4_0"};
    const struct ac_telemetry_fidelity fid = {
        .rate = 1.0, .max_queue = 1, .measure = gated_measure, .release = fake_release, .user = &g};
    struct ac_telemetry *t;
    assert_int_equal(ac_telemetry_open(&t, path, variants, 2, &fid, err), 0);
    const int32_t head[1] = {3};
    const struct ac_telemetry_row row = {.endpoint = "chat", .variant = "q4_0", .complexity = -1, .cache_hit = -1,
                                         .finish = "stop", .head_ids = head, .n_head = 1};
    int item = 0;
    assert_int_equal(ac_telemetry_log(t, &row, &item, err), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    assert_int_equal(ac_telemetry_log(t, &row, &item, err), 0); /* queued */
    assert_int_equal(ac_telemetry_log(t, &row, &item, err), 0); /* dropped */
    assert_int_equal(ac_telemetry_log(t, &row, NULL, err), 0);  /* nothing to measure */
    struct ac_telemetry_stats st;
    ac_telemetry_get_stats(t, &st);
    assert_int_equal(st.sampled, 3);
    assert_int_equal(st.dropped, 1);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    ac_telemetry_close(t); /* measures the queued one first */
    snprintf(cmd, sizeof cmd,
             "test \"$(sqlite3 %s 'SELECT count(*), count(fidelity) FROM requests; "
             "SELECT fidelity_sampled, fidelity_measured, fidelity_dropped FROM servers')\" = \"$(printf '4|2\\n3|2|1')\"",
             path);
    assert_int_equal(system(cmd), 0);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_fomaml),
        cmocka_unit_test(test_train_plain),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_real_embeddings),
        cmocka_unit_test(test_sqlite_profile),
        cmocka_unit_test(test_masked_loss),
        cmocka_unit_test(test_telemetry_profile),
        cmocka_unit_test(test_telemetry_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
