/* train.c - controller training: the per-task loss (controller.c) summed
 * over batches, plain mini-batch training or first-order MAML over domains,
 * Adam on one flat array, early stopping on dev.
 *
 * First-order MAML (Finn et al. 2017, first-order variant), one meta-step:
 *   pick a domain uniformly (domains with >= 2 tasks), draw a support and a
 *   disjoint query batch from it; fast = meta weights; inner_steps times
 *   fast -= inner_lr * grad_support(fast); then meta <- Adam(meta,
 *   grad_query(fast)). The second-order term (d fast / d meta) is dropped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "train/train.h"

#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.999f
#define ADAM_EPS 1e-8f

void ac_train_params_default(struct ac_train_params *p) {
    memset(p, 0, sizeof *p);
    ac_ctrl_loss_params_default(&p->loss);
    p->target = AC_TARGET_RANK;
    p->meta = AC_META_FOMAML;
    p->epochs = 30;
    p->batch = 16;
    p->lr = 3e-4f; /* 1e-3 flips the argmax decisions of whole task groups between epochs */
    p->support = 8;
    p->query = 8;
    p->inner_steps = 1;
    p->inner_lr = 1e-2f;
    p->gumbel = true;
    p->tau_start = 1.0f;
    p->tau_end = 0.3f;
    p->entropy = 0.05f;
    p->patience = 8;
    p->seed = 1;
}

/* ------------------------------------------------------------------------
 * state */

struct trainer {
    struct ac_controller *ctrl;
    const struct ac_train_params *p;
    const struct ac_embedder *emb;
    size_t n;                      /* parameters */
    float *block;                  /* fast, grad, m, v, best: five blocks of n */
    float *fast, *grad, *m, *v, *best;
    union ac_ctrl_params fast_p, grad_p;
    struct ac_nn_rng rng;
    long adam_t;
    float tau;
};

/* Gradient of the mean loss over tasks idx[0..n) at parameters p, added to
 * tr->grad; returns the summed loss in *loss_sum. */
static int batch_grad(struct trainer *tr, const struct ac_train_dataset *ds, const union ac_ctrl_params *p,
                      const int *idx, int n, double *loss_sum, char *err) {
    struct ac_controller *ctrl = tr->ctrl;
    const struct ac_controller_config *c = &ctrl->cfg;
    struct ac_ctrl_work *w = ctrl->work;
    const struct ac_train_params *tp = tr->p;
    const int n_noise = c->n_levels[0] + c->n_levels[1] + c->n_levels[2];
    float noise[AC_CTRL_N_HEADS * AC_CTRL_MAX_LEVELS];
    float dyb[AC_CTRL_N_HEADS][AC_CTRL_MAX_LEVELS];
    float *const dy[AC_CTRL_N_HEADS] = {dyb[0], dyb[1], dyb[2]};
    const float scale = 1.0f / (float)n;
    for (int i = 0; i < n; i++) {
        const int t = idx[i];
        const int T = ds->tasks[t].n_ids < c->k ? ds->tasks[t].n_ids : c->k;
        if (ac_embedder_lookup(tr->emb, ac_train_task_ids(ds, t), T, w->emb, err) != 0) return -1;
        if (tp->gumbel)
            for (int j = 0; j < n_noise; j++) noise[j] = ac_nn_rng_gumbel(&tr->rng);
        ac_ctrl_forward(w, p, T, tp->gumbel ? noise : NULL, tr->tau);
        float *const *y = tp->gumbel ? w->a.hard : w->a.soft;
        float target = ac_train_task_target(ds, t, tp->loss.theta, tp->target);
        float dc;
        const size_t row = (size_t)t * (size_t)ds->n_configs;
        *loss_sum += ac_ctrl_task_loss(c, &tp->loss, y, w->a.c[0], target, ds->cost + row, ds->fid + row,
                                       ds->known + row, dy, &dc, NULL, NULL);
        for (int j = 0; j < AC_CTRL_N_HEADS; j++)
            for (int l = 0; l < c->n_levels[j]; l++) dy[j][l] *= scale;
        ac_ctrl_backward(w, &tr->grad_p, p, dc * scale, dy, tr->tau, tp->entropy * scale);
    }
    return 0;
}

static void adam_step(struct trainer *tr) {
    tr->adam_t++;
    const float lr = tr->p->lr;
    const float b1c = 1.0f - powf(ADAM_BETA1, (float)tr->adam_t), b2c = 1.0f - powf(ADAM_BETA2, (float)tr->adam_t);
    float *param = tr->ctrl->params_block;
    for (size_t i = 0; i < tr->n; i++) {
        float g = tr->grad[i];
        tr->m[i] = ADAM_BETA1 * tr->m[i] + (1.0f - ADAM_BETA1) * g;
        tr->v[i] = ADAM_BETA2 * tr->v[i] + (1.0f - ADAM_BETA2) * g * g;
        param[i] -= lr * (tr->m[i] / b1c) / (sqrtf(tr->v[i] / b2c) + ADAM_EPS);
    }
}

static void sgd_step(float *param, const float *grad, float lr, size_t n) {
    for (size_t i = 0; i < n; i++) param[i] -= lr * grad[i];
}

static void zero_grad(struct trainer *tr) { memset(tr->grad, 0, sizeof(float) * tr->n); }

static void shuffle(int *a, int n, struct ac_nn_rng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)ac_nn_rng_below(rng, (uint32_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ------------------------------------------------------------------------
 * evaluation */

static double pearson(const double *x, const double *y, int n) {
    if (n < 2) return 0.0;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n, my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0.0;
}

int ac_train_evaluate(struct ac_controller *ctrl, const struct ac_train_dataset *ds, const struct ac_embedder *emb,
                      const struct ac_ctrl_loss_params *lp, enum ac_target_kind target, struct ac_train_metrics *m,
                      char *err) {
    memset(m, 0, sizeof *m);
    if (ds->n_tasks == 0) return 0;
    if (ac_train_dataset_check(ds, &ctrl->cfg, err) != 0) return -1;
    const struct ac_controller_config *c = &ctrl->cfg;
    struct ac_ctrl_work *w = ctrl->work;
    double *cs = malloc(sizeof(double) * 3 * (size_t)ds->n_tasks);
    if (!cs) return ac_errf(err, "out of memory");
    double *tr = cs + ds->n_tasks, *tf = tr + ds->n_tasks;
    for (int t = 0; t < ds->n_tasks; t++) {
        const int T = ds->tasks[t].n_ids < c->k ? ds->tasks[t].n_ids : c->k;
        if (ac_embedder_lookup(emb, ac_train_task_ids(ds, t), T, w->emb, err) != 0) {
            free(cs);
            return -1;
        }
        ac_ctrl_forward(w, &ctrl->p, T, NULL, 1.0f);
        const size_t row = (size_t)t * (size_t)ds->n_configs;
        float tgt = ac_train_task_target(ds, t, lp->theta, target);
        m->loss += ac_ctrl_task_loss(c, lp, w->a.hard, w->a.c[0], tgt, ds->cost + row, ds->fid + row,
                                     ds->known + row, NULL, NULL, NULL, NULL);
        int cfg = (w->choice[0] * c->n_levels[1] + w->choice[1]) * c->n_levels[2] + w->choice[2];
        int best = ac_train_task_best(ds, t, lp->theta);
        m->accuracy += cfg == best;
        if (ds->known[row + cfg]) {
            m->observed++;
            m->mean_cost += ds->cost[row + cfg];
            m->mean_fid += ds->fid[row + cfg];
            m->feasible += ds->fid[row + cfg] >= lp->theta;
        }
        m->oracle_cost += ds->cost[row + best];
        cs[t] = w->a.c[0];
        tr[t] = ac_train_task_target(ds, t, lp->theta, AC_TARGET_RANK);
        tf[t] = ac_train_task_target(ds, t, lp->theta, AC_TARGET_FID);
    }
    const double n = ds->n_tasks;
    m->n = ds->n_tasks;
    m->loss /= n;
    m->accuracy /= n;
    if (m->observed > 0) {
        m->mean_cost /= m->observed;
        m->mean_fid /= m->observed;
        m->feasible /= m->observed;
    }
    m->observed /= n;
    m->oracle_cost /= n;
    m->pearson_rank = pearson(cs, tr, ds->n_tasks);
    m->pearson_fid = pearson(cs, tf, ds->n_tasks);
    free(cs);
    return 0;
}

void ac_train_format_epoch(char *buf, size_t n, const struct ac_train_epoch *ep) {
    int k = snprintf(buf, n, "epoch %3d/%d  tau %.3f  train loss %.4f", ep->epoch, ep->epochs, (double)ep->tau,
                     ep->train_loss);
    if (k < 0 || (size_t)k >= n) return;
    char observed[32] = ""; /* shown when some decisions fall on unmeasured configurations */
    if (ep->has_dev && ep->dev.observed < 1.0) snprintf(observed, sizeof observed, "  measured %.3f", ep->dev.observed);
    if (ep->has_dev)
        snprintf(buf + k, n - (size_t)k,
                 "  dev loss %.4f  acc %.3f  cost %.3f (oracle %.3f)  fid %.3f  ok %.3f%s  r(c) %.3f/%.3f%s  %.1fs",
                 ep->dev.loss, ep->dev.accuracy, ep->dev.mean_cost, ep->dev.oracle_cost, ep->dev.mean_fid,
                 ep->dev.feasible, observed, ep->dev.pearson_rank, ep->dev.pearson_fid, ep->improved ? "  *" : "",
                 ep->seconds);
    else
        snprintf(buf + k, n - (size_t)k, "  %.1fs", ep->seconds);
}

/* ------------------------------------------------------------------------
 * the loops */

/* One epoch of plain mini-batch training: every task once, shuffled. */
static int epoch_plain(struct trainer *tr, const struct ac_train_dataset *ds, int *order, double *loss, long *count,
                       char *err) {
    const int n = ds->n_tasks, B = tr->p->batch;
    for (int i = 0; i < n; i++) order[i] = i;
    shuffle(order, n, &tr->rng);
    for (int s = 0; s < n; s += B) {
        int nb = n - s < B ? n - s : B;
        zero_grad(tr);
        if (batch_grad(tr, ds, &tr->ctrl->p, order + s, nb, loss, err) != 0) return -1;
        *count += nb;
        adam_step(tr);
    }
    return 0;
}

struct domains {
    int n;        /* domains in use */
    int *start;   /* n + 1 offsets into idx */
    int *idx;     /* task indices grouped by domain */
};

static int domains_build(struct domains *d, const struct ac_train_dataset *ds, char *err) {
    memset(d, 0, sizeof *d);
    int nd = ds->n_domains;
    int *count = calloc((size_t)nd + 1, sizeof(int));
    d->start = calloc((size_t)nd + 2, sizeof(int));
    d->idx = malloc(sizeof(int) * ((size_t)ds->n_tasks + 1));
    if (!count || !d->start || !d->idx) {
        free(count);
        return ac_errf(err, "out of memory");
    }
    for (int t = 0; t < ds->n_tasks; t++) count[ds->tasks[t].domain]++;
    /* domains with a single task cannot give a support and a query batch */
    int used = 0, pos = 0;
    for (int k = 0; k < nd; k++) {
        if (count[k] < 2) continue;
        d->start[used] = pos;
        for (int t = 0; t < ds->n_tasks; t++)
            if (ds->tasks[t].domain == k) d->idx[pos++] = t;
        used++;
    }
    if (used == 0) { /* no usable domain: one meta-task over everything */
        for (int t = 0; t < ds->n_tasks; t++) d->idx[t] = t;
        d->start[0] = 0;
        pos = ds->n_tasks;
        used = 1;
    }
    d->start[used] = pos;
    d->n = used;
    free(count);
    return 0;
}

static void domains_free(struct domains *d) {
    free(d->start);
    free(d->idx);
}

/* One epoch of first-order MAML: about n_tasks / (support + query) meta-steps. */
static int epoch_fomaml(struct trainer *tr, const struct ac_train_dataset *ds, struct domains *dm, double *loss,
                        long *count, char *err) {
    const struct ac_train_params *p = tr->p;
    int steps = ds->n_tasks / (p->support + p->query);
    if (steps < 1) steps = 1;
    for (int s = 0; s < steps; s++) {
        int k = (int)ac_nn_rng_below(&tr->rng, (uint32_t)dm->n);
        int *pool = dm->idx + dm->start[k], m = dm->start[k + 1] - dm->start[k];
        int ns = p->support < m - 1 ? p->support : m - 1;
        if (ns < 1) ns = 1;
        int nq = p->query < m - ns ? p->query : m - ns;
        if (nq < 1) { /* a one-task pool: support and query are the same task */
            ns = nq = 1;
        }
        /* partial Fisher-Yates: the first ns + nq entries become the draw */
        int take = ns + nq <= m ? ns + nq : m;
        for (int i = 0; i < take; i++) {
            int j = i + (int)ac_nn_rng_below(&tr->rng, (uint32_t)(m - i));
            int t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
        }
        const int *support = pool, *query = ns + nq <= m ? pool + ns : pool;
        memcpy(tr->fast, tr->ctrl->params_block, sizeof(float) * tr->n);
        for (int it = 0; it < p->inner_steps; it++) {
            double inner_loss = 0.0;
            zero_grad(tr);
            if (batch_grad(tr, ds, &tr->fast_p, support, ns, &inner_loss, err) != 0) return -1;
            sgd_step(tr->fast, tr->grad, p->inner_lr, tr->n);
        }
        zero_grad(tr);
        if (batch_grad(tr, ds, &tr->fast_p, query, nq, loss, err) != 0) return -1;
        *count += nq;
        adam_step(tr);
    }
    return 0;
}

static int check_params(const struct ac_train_params *p, char *err) {
    if (p->epochs < 1) return ac_errf(err, "train: epochs must be >= 1");
    if (p->batch < 1 || p->support < 1 || p->query < 1 || p->inner_steps < 0)
        return ac_errf(err, "train: batch, support and query sizes must be >= 1");
    if (!(p->lr > 0.0f) || !(p->inner_lr >= 0.0f)) return ac_errf(err, "train: learning rates must be positive");
    if (!(p->tau_start > 0.0f) || !(p->tau_end > 0.0f)) return ac_errf(err, "train: temperatures must be positive");
    if (p->meta != AC_META_FOMAML && p->meta != AC_META_NONE) return ac_errf(err, "train: unknown meta mode");
    if (!(p->loss.theta >= 0.0f && p->loss.theta <= 1.0f)) return ac_errf(err, "train: theta must be in [0, 1]");
    return 0;
}

int ac_train(struct ac_controller *ctrl, const struct ac_train_dataset *train, const struct ac_train_dataset *dev,
             const struct ac_embedder *emb, const struct ac_train_params *p, struct ac_train_result *res, char *err) {
    const struct ac_controller_config *c = &ctrl->cfg;
    memset(res, 0, sizeof *res);
    if (check_params(p, err) != 0) return -1;
    if (!train || train->n_tasks == 0) return ac_errf(err, "train: the training set is empty");
    if (ac_train_dataset_check(train, c, err) != 0) return ac_err_prefix(err, "train");
    if (dev && dev->n_tasks > 0 && ac_train_dataset_check(dev, c, err) != 0) return ac_err_prefix(err, "train: dev");
    if (emb->n_vocab != c->n_vocab || emb->dim != c->embd_dim)
        return ac_errf(err, "train: the controller expects embeddings %d x %d, the model has %d x %d", c->n_vocab,
                       c->embd_dim, emb->n_vocab, emb->dim);

    struct trainer tr = {.ctrl = ctrl, .p = p, .emb = emb, .n = ctrl->layout.total};
    struct domains dm = {0};
    int *order = malloc(sizeof(int) * ((size_t)train->n_tasks + 1));
    tr.block = ac_alloc_aligned(sizeof(float) * 5 * tr.n);
    if (!order || !tr.block) {
        free(order);
        ac_free_aligned(tr.block);
        return ac_errf(err, "train: out of memory (%zu parameters)", tr.n);
    }
    memset(tr.block, 0, sizeof(float) * 5 * tr.n);
    tr.fast = tr.block;
    tr.grad = tr.block + tr.n;
    tr.m = tr.block + 2 * tr.n;
    tr.v = tr.block + 3 * tr.n;
    tr.best = tr.block + 4 * tr.n;
    ac_ctrl_params_point(&tr.fast_p, c, tr.fast);
    ac_ctrl_params_point(&tr.grad_p, c, tr.grad);
    ac_nn_rng_seed(&tr.rng, p->seed);
    memcpy(tr.best, ctrl->params_block, sizeof(float) * tr.n);

    int rc = -1;
    if (p->meta == AC_META_FOMAML && domains_build(&dm, train, err) != 0) goto done;
    const bool has_dev = dev && dev->n_tasks > 0;
    res->has_dev = has_dev;
    double best_loss = INFINITY;
    int bad_epochs = 0;
    for (int e = 0; e < p->epochs; e++) {
        double t0 = ac_time_s();
        float frac = p->epochs > 1 ? (float)e / (float)(p->epochs - 1) : 1.0f;
        tr.tau = p->tau_start * powf(p->tau_end / p->tau_start, frac);
        double loss = 0.0;
        long count = 0;
        int r = p->meta == AC_META_FOMAML ? epoch_fomaml(&tr, train, &dm, &loss, &count, err)
                                          : epoch_plain(&tr, train, order, &loss, &count, err);
        if (r != 0) goto done;
        struct ac_train_epoch ep = {.epoch = e + 1, .epochs = p->epochs, .tau = tr.tau,
                                    .train_loss = count ? loss / (double)count : 0.0, .has_dev = has_dev};
        if (!isfinite(ep.train_loss)) {
            ac_errf(err, "train: the loss diverged at epoch %d (lower the learning rate)", e + 1);
            goto done;
        }
        if (e == 0) res->first_train_loss = ep.train_loss;
        res->last_train_loss = ep.train_loss;
        res->epochs_run = e + 1;
        if (has_dev) {
            if (ac_train_evaluate(ctrl, dev, emb, &p->loss, p->target, &ep.dev, err) != 0) goto done;
            if (ep.dev.loss < best_loss) {
                best_loss = ep.dev.loss;
                ep.improved = true;
                res->best_epoch = e + 1;
                res->best_dev = ep.dev;
                memcpy(tr.best, ctrl->params_block, sizeof(float) * tr.n);
                bad_epochs = 0;
            } else {
                bad_epochs++;
            }
        } else {
            res->best_epoch = e + 1;
        }
        ep.seconds = ac_time_s() - t0;
        if (p->on_epoch) p->on_epoch(&ep, p->user);
        if (has_dev && p->patience > 0 && bad_epochs >= p->patience) break;
    }
    if (has_dev) memcpy(ctrl->params_block, tr.best, sizeof(float) * tr.n);
    rc = 0;
done:
    domains_free(&dm);
    free(order);
    ac_free_aligned(tr.block);
    return rc;
}
