/* eval.h - scoring routing systems on a profile (DESIGN.md "Metrics").
 *
 * The input is a profile (src/eval/profile.h) loaded into struct
 * ac_eval_data: per stage and configuration, success, fidelity, the weight
 * bytes a greedy run read and its wall time. A system is one decision per
 * stage (a configuration index). Stages run in file (= workflow) order
 * through a simulation of the variant cache (src/runtime/cache.h: memory
 * budget in bytes, eviction by lowest priority w_freq * frequency +
 * w_recency * recency over the last `window` acquisitions), so swaps and
 * hits are counted. Cost of a stage = its weight bytes + the file bytes of
 * its variant when that had to be loaded (a swap; the first load counts).
 *
 * Systems compared by eval (names exact): all-<variant> for f16, q8_0, q4_0
 * and the int2 variant; random (each stage independently on one of the two
 * configurations whose total costs bracket the routed system's, mixed so
 * that the expected cost equals it; metrics averaged over seeds); oracle
 * (per stage: the cheapest configuration that succeeds where F16 succeeds,
 * the cheapest outright where F16 fails); the routed system
 * ("agentcompress" for a controller, "policy:<rule>" for a built-in rule).
 *
 * Ownership: ac_eval_data owns everything inside; free with ac_eval_data_free. */
#ifndef AC_EVAL_H
#define AC_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eval/profile.h"

struct ac_eval_stage {
    char *workflow, *domain, *kind, *prompt; /* prompt: the filled user text (may be NULL) */
    int stage;
    int32_t ids[AC_TASK_IDS]; /* first tokens of the user text */
    int n_ids;
    int n_task; /* tokens of the user text */
};

struct ac_eval_config {
    char name[AC_CONFIG_NAME_LEN];
    char variant[32];
    float prune, sparsity;
    double file_bytes; /* what a swap loads */
    double load_s;     /* measured load time of the variant (0 if unknown) */
};

struct ac_eval_data {
    int n_stages, n_configs;
    struct ac_eval_stage *stages;
    struct ac_eval_config *configs;
    /* (n_stages, n_configs), row-major */
    bool *have, *success;
    float *fidelity;
    double *bytes, *wall;
    int f16; /* index of the "f16" configuration, -1 if absent */
};

static inline size_t ac_eval_at(const struct ac_eval_data *d, int s, int c) {
    return (size_t)s * (size_t)d->n_configs + (size_t)c;
}

/* Reads a profile file. Stages without an F16 reference are an error. */
int ac_eval_load(const char *db_path, struct ac_eval_data *out, char *err);
/* Empty data of the given shape (tests): every array zeroed, strings NULL. */
int ac_eval_data_alloc(struct ac_eval_data *d, int n_stages, int n_configs, char *err);
void ac_eval_data_free(struct ac_eval_data *d);
int ac_eval_find_config(const struct ac_eval_data *d, const char *name);
/* True when every stage has a row for configuration c. */
bool ac_eval_config_complete(const struct ac_eval_data *d, int c);

struct ac_eval_cache_params {
    double budget_bytes; /* 0: two of the largest variants (as the runtime cache) */
    double w_freq, w_recency;
    int window;
};
void ac_eval_cache_params_default(struct ac_eval_cache_params *p);

/* Per-stage outcome of a run of decisions through the cache. */
struct ac_eval_trace {
    double *cost;  /* weight bytes + bytes loaded by a swap at this stage */
    double *wall;  /* greedy wall time + load time on a swap + routing time */
    bool *swap;    /* the variant had to be loaded */
};
int ac_eval_trace_alloc(struct ac_eval_trace *t, int n_stages, char *err);
void ac_eval_trace_free(struct ac_eval_trace *t);

/* Runs decision[s] (config index per stage; every row must exist) through
 * the cache. route_s: per-stage routing time (may be NULL). -1 when a
 * variant cannot fit the budget or a row is missing. */
int ac_eval_simulate(const struct ac_eval_data *d, const int *decision, const double *route_s,
                     const struct ac_eval_cache_params *cp, struct ac_eval_trace *t, char *err);

/* Totals over the stages where mask[s] (NULL: all). */
struct ac_eval_totals {
    int n;
    double cost, success, fidelity, wall, swaps, hits; /* sums (success: count) */
};
void ac_eval_totals(const struct ac_eval_data *d, const int *decision, const struct ac_eval_trace *t,
                    const bool *mask, struct ac_eval_totals *out);

/* A system's metrics relative to a reference (all-f16) over the same stages. */
struct ac_eval_metrics {
    int n;
    double cost_reduction, quality_preservation, success_rate, mean_fidelity;
    double swaps, cache_hit_rate, wall_s, cost; /* cost: bytes */
};
void ac_eval_metrics(const struct ac_eval_totals *sys, const struct ac_eval_totals *ref, struct ac_eval_metrics *m);

/* Decisions of the fixed systems. */
void ac_eval_decide_all(const struct ac_eval_data *d, int config, int *decision);
/* Oracle: cheapest (stage bytes) config that succeeds if F16 succeeds on the
 * stage, the cheapest one outright otherwise. Only configs with allowed[c]
 * (NULL: all) are considered. */
void ac_eval_decide_oracle(const struct ac_eval_data *d, const bool *allowed, int *decision);
/* Cheapest config with fidelity >= theta (F16 has 1). */
void ac_eval_decide_theta(const struct ac_eval_data *d, const bool *allowed, double theta, int *decision);
/* The fraction `frac` of stages with the highest score on `hard`, the rest
 * on `easy` (ties broken by stage order). */
void ac_eval_decide_split(const struct ac_eval_data *d, const double *score, double frac, int easy, int hard,
                          int *decision);

/* Random routing matched to a target total token cost (Σ bytes, without
 * swaps): two configurations lo, hi (by total bytes over the stages) with
 * total(lo) <= target <= total(hi) (clamped at the ends), each stage on hi
 * with probability p so that the expected total equals target. Fills
 * decision for one seed; *p_hi and the pair are returned for reporting. */
int ac_eval_random_pair(const struct ac_eval_data *d, const bool *allowed, double target, int *lo, int *hi,
                        double *p_hi);
void ac_eval_decide_random(const struct ac_eval_data *d, int lo, int hi, double p_hi, uint64_t seed, int *decision);

/* Pearson and Spearman correlation of x and y (n >= 2); NaN when undefined. */
double ac_pearson(const double *x, const double *y, int n);
double ac_spearman(const double *x, const double *y, int n);

/* Complexity ground truth of stage s (DESIGN.md): rank target = position of
 * the cheapest config (by stage bytes) with fidelity >= theta among the
 * allowed configs sorted by stage bytes, / (count - 1); fid target = 1 -
 * fidelity of the cheapest allowed config. */
double ac_eval_target_rank(const struct ac_eval_data *d, const bool *allowed, int s, double theta);
double ac_eval_target_fid(const struct ac_eval_data *d, const bool *allowed, int s);

#endif
