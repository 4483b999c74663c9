/* train.h - training data (profiles) and controller training: first-order
 * MAML over domains or plain mini-batches, Adam, early stopping on dev.
 *
 * A dataset is a list of tasks; each task has up to any number of token ids
 * (the controller reads the first k), a domain, and for every
 * configuration (quant x prune x sparsity, index (a*n1 + b)*n2 + c in the
 * order of the level lists) its relative cost (bytes per token / F16's),
 * fidelity in [0, 1] (DESIGN.md "Metrics") and optionally a success flag.
 * A configuration may be unmeasured for a task (known = 0): the loss then
 * takes its expectations over the measured ones (controller.h).
 *
 * Profiles written by `agentcompress profile` (SQLite) and the telemetry of
 * `agentcompress serve --telemetry-fidelity` are read by
 * ac_train_load_profile too. JSON Lines file format (ac_train_dataset_load_jsonl), blank lines skipped:
 *   line 1, the configuration space:
 *     {"levels": {"quant": ["f16", "q8_0", "q4_0", "q2_k"],
 *                 "prune": [0, 0.1, 0.2], "sparsity": [0, 0.25, 0.5]}}
 *   then one task a line:
 *     {"domain": "cs", "ids": [1, 504, 28], "cost": [1.0, ...], "fidelity": [1.0, ...],
 *      "success": [true, ...], "name": "cs-003/2"}
 *   ids: non-empty, each 0 <= id < 2^31; cost (finite, >= 0) and fidelity
 *   (in [0, 1]) hold exactly n_quant*n_prune*n_sparsity numbers; success
 *   (same length, booleans) and name are optional; unknown keys are
 *   ignored. A null fidelity marks an unmeasured configuration (its cost
 *   may be null too); every task needs at least one measured one. Any bad line rejects the whole file with "PATH:LINE: reason".
 *
 * Ownership: a dataset owns all its memory; free it with
 * ac_train_dataset_free. Every function returns 0 or -1 with one line in err. */
#ifndef AC_TRAIN_H
#define AC_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/controller.h"

/* ---- the configuration space ---- */

struct ac_train_levels {
    int n[AC_CTRL_N_HEADS];
    char quant_names[AC_CTRL_MAX_LEVELS][AC_CTRL_NAME_LEN];
    float prune[AC_CTRL_MAX_LEVELS];
    float sparsity[AC_CTRL_MAX_LEVELS];
};

/* The controller's level lists <-> a level set. */
void ac_train_levels_from_config(struct ac_train_levels *lv, const struct ac_controller_config *c);
void ac_train_levels_to_config(struct ac_controller_config *c, const struct ac_train_levels *lv);
int ac_train_levels_n_configs(const struct ac_train_levels *lv);

/* ---- datasets ---- */

struct ac_train_task {
    size_t ids_off; /* into the dataset's id pool */
    int n_ids;
    int domain;     /* index into domains */
};

struct ac_train_dataset {
    struct ac_train_levels levels;
    int n_configs;
    int n_tasks, cap;
    struct ac_train_task *tasks;
    int32_t *ids;       /* id pool */
    size_t n_ids, ids_cap;
    float *cost, *fid;  /* (n_tasks, n_configs) */
    int8_t *success;    /* (n_tasks, n_configs): 1, 0, or -1 unknown */
    uint8_t *known;     /* (n_tasks, n_configs): 1 measured, 0 not (cost and fid then 0) */
    char **domains;
    int n_domains;
};

int ac_train_dataset_new(struct ac_train_dataset **out, const struct ac_train_levels *lv, char *err);
void ac_train_dataset_free(struct ac_train_dataset *ds);
/* Appends a task (copies everything). success may be NULL (unknown);
 * known may be NULL (every configuration measured). */
int ac_train_dataset_add(struct ac_train_dataset *ds, const int32_t *ids, int n_ids, const char *domain,
                         const float *cost, const float *fid, const int8_t *success, const uint8_t *known,
                         char *err);
static inline const int32_t *ac_train_task_ids(const struct ac_train_dataset *ds, int i) {
    return ds->ids + ds->tasks[i].ids_off;
}
int ac_train_dataset_load_jsonl(struct ac_train_dataset **out, const char *path, char *err);
/* Writes the JSONL format above (atomically: PATH.tmp, then rename). */
int ac_train_dataset_save_jsonl(const struct ac_train_dataset *ds, const char *path, char *err);
/* The training input of `agentcompress train --profile PROFILE`: a .jsonl
 * file in the format above, an `agentcompress profile` SQLite file, or a
 * server's telemetry (SQLite, table `requests`; see
 * src/server/telemetry.h for how its requests become tasks). */
int ac_train_load_profile(struct ac_train_dataset **out, const char *path, char *err);

/* New dataset of the tasks idx[0..n) of src (same levels). */
int ac_train_dataset_select(struct ac_train_dataset **out, const struct ac_train_dataset *src, const int *idx, int n,
                            char *err);
/* Tasks whose domain is in a comma-separated list ("cs,physics"). */
int ac_train_dataset_filter_domains(struct ac_train_dataset **out, const struct ac_train_dataset *src,
                                    const char *domains, char *err);
/* A seeded random split: dev gets round(dev_frac * n) tasks (at least one
 * when dev_frac > 0 and n >= 2), train the rest. */
int ac_train_dataset_split(const struct ac_train_dataset *src, float dev_frac, uint64_t seed,
                           struct ac_train_dataset **train, struct ac_train_dataset **dev, char *err);
/* The dataset's configuration space must be the controller's. */
int ac_train_dataset_check(const struct ac_train_dataset *ds, const struct ac_controller_config *c, char *err);

/* ---- ground truth per task ---- */

/* The cheapest measured configuration with fidelity >= theta (lowest index
 * on equal cost); if none reaches theta, the measured one with the highest
 * fidelity. */
int ac_train_task_best(const struct ac_train_dataset *ds, int task, float theta);

enum ac_target_kind {
    /* rank of the cheapest config with fidelity >= theta among the measured
     * configs sorted by cost (cheapest first), / (measured - 1): 0 = the
     * cheapest config is good enough, 1 = only the most expensive one is */
    AC_TARGET_RANK = 0,
    /* 1 - fidelity of the cheapest measured configuration */
    AC_TARGET_FID = 1,
};
float ac_train_task_target(const struct ac_train_dataset *ds, int task, float theta, enum ac_target_kind kind);

/* ---- training ---- */

enum ac_meta { AC_META_FOMAML = 0, AC_META_NONE = 1 };

struct ac_train_metrics {
    int n;
    double loss;          /* mean loss of the argmax decisions */
    double accuracy;      /* decision == ac_train_task_best */
    double observed;      /* fraction of decisions on a measured configuration */
    double mean_cost;     /* relative cost of the decisions (the measured ones) */
    double mean_fid;
    double feasible;      /* fraction with fidelity >= theta (of the measured ones) */
    double pearson_rank;  /* corr(c, AC_TARGET_RANK target) */
    double pearson_fid;   /* corr(c, AC_TARGET_FID target) */
    double oracle_cost;   /* mean cost of ac_train_task_best */
};

struct ac_train_epoch {
    int epoch, epochs;
    float tau;
    double train_loss; /* mean over the epoch's (query) batches */
    bool has_dev;
    struct ac_train_metrics dev;
    bool improved;     /* new best dev loss (kept) */
    double seconds;
};

struct ac_train_params {
    struct ac_ctrl_loss_params loss; /* lambda_cost 0.3, lambda_fid 0.7, theta 0.95, lambda_aux 0.1 */
    enum ac_target_kind target;      /* the aux loss's target: AC_TARGET_RANK */
    enum ac_meta meta;               /* AC_META_FOMAML */
    int epochs;                      /* 30 */
    int batch;                       /* meta none: mini-batch size (16) */
    float lr;                        /* Adam (3e-4), beta1 0.9, beta2 0.999, eps 1e-8 */
    int support, query;              /* fomaml: tasks per support / query batch (8, 8) */
    int inner_steps;                 /* fomaml: SGD steps on the support batch (1) */
    float inner_lr;                  /* fomaml: SGD step size (1e-2) */
    bool gumbel;                     /* true: Gumbel-softmax straight-through; false: exact
                                        expectation over the heads' softmax */
    float tau_start, tau_end;        /* temperature, annealed geometrically over epochs (1.0 -> 0.3) */
    float entropy;                   /* exploration bonus: the loss gets -entropy * sum of the heads'
                                        softmax entropies (0.05); without it a head that collapses
                                        early onto a level good for most tasks never recovers */
    int patience;                    /* epochs without a better dev loss before stopping (8); 0: never */
    uint64_t seed;                   /* everything random (order, noise, domains) derives from it */
    void (*on_epoch)(const struct ac_train_epoch *ep, void *user);
    void *user;
};

void ac_train_params_default(struct ac_train_params *p);

struct ac_train_result {
    int epochs_run, best_epoch;
    double first_train_loss, last_train_loss;
    bool has_dev;
    struct ac_train_metrics best_dev;
};

/* Trains ctrl's parameters in place on train (dev may be NULL or empty: no
 * early stopping, the last weights are kept; otherwise the best-dev-loss
 * weights are). Deterministic for a given seed, controller and data. emb
 * supplies the frozen embeddings. */
int ac_train(struct ac_controller *ctrl, const struct ac_train_dataset *train, const struct ac_train_dataset *dev,
             const struct ac_embedder *emb, const struct ac_train_params *p, struct ac_train_result *res, char *err);

/* Argmax decisions of ctrl on every task of ds, scored. */
int ac_train_evaluate(struct ac_controller *ctrl, const struct ac_train_dataset *ds, const struct ac_embedder *emb,
                      const struct ac_ctrl_loss_params *lp, enum ac_target_kind target, struct ac_train_metrics *m,
                      char *err);

/* One progress line (no newline) for an epoch. */
void ac_train_format_epoch(char *buf, size_t n, const struct ac_train_epoch *ep);

#endif
