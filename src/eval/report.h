/* report.h - eval's comparison of systems on one profile: computing every
 * system (eval.h), and printing it as a table, JSON (`eval --json`) and a
 * self-contained HTML report with an SVG cost-quality frontier. */
#ifndef AC_EVAL_REPORT_H
#define AC_EVAL_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "eval/eval.h"

#define AC_EVAL_MAX_SYSTEMS 12
#define AC_EVAL_MAX_SWEEP 32
#define AC_EVAL_RANDOM_SEEDS 32

struct ac_eval_system {
    char name[96];
    struct ac_eval_metrics all;
    struct ac_eval_metrics *per_domain, *per_kind; /* (n_domains), (n_kinds) */
};

struct ac_eval_point {
    double param; /* theta or fraction routed to the expensive config */
    double cost_reduction, quality_preservation;
};

struct ac_eval_result {
    int n_stages;
    int n_systems;
    struct ac_eval_system systems[AC_EVAL_MAX_SYSTEMS];
    int n_domains, n_kinds;
    char **domains, **kinds;
    int n_oracle_sweep, n_router_sweep;
    struct ac_eval_point oracle_sweep[AC_EVAL_MAX_SWEEP], router_sweep[AC_EVAL_MAX_SWEEP];
    char sweep_easy[AC_CONFIG_NAME_LEN], sweep_hard[AC_CONFIG_NAME_LEN];
    char random_lo[AC_CONFIG_NAME_LEN], random_hi[AC_CONFIG_NAME_LEN];
    double random_p_hi;
    double complexity_pearson, complexity_spearman; /* NaN: no complexity (null in JSON) */
    double complexity_pearson_fid, complexity_spearman_fid;
    double controller_us_p50; /* NaN: no controller */
    double budget_bytes;
    double theta;
    const char *workflows, *profile; /* borrowed, for the report */
};

struct ac_eval_inputs {
    const int *routed;       /* config index per stage (the routed system) */
    const double *score;     /* per stage, higher = harder (sweep order); NULL: no sweep */
    const double *route_s;   /* per stage decision time, or NULL */
    bool has_complexity;     /* score is the controller's complexity */
    bool is_controller;      /* report controller_us_p50 */
    const char *router_name; /* "agentcompress" / "policy:..." */
    struct ac_eval_cache_params cache;
    double theta;            /* for the rank complexity target (0.95) */
};

/* Every system, overall and per domain and kind, the sweeps and the
 * correlations. Fails if a needed profile row is missing. */
int ac_eval_compute(const struct ac_eval_data *d, const struct ac_eval_inputs *in, struct ac_eval_result *out,
                    char *err);
void ac_eval_result_free(struct ac_eval_result *r);

const struct ac_eval_system *ac_eval_result_find(const struct ac_eval_result *r, const char *name);

void ac_eval_print_table(const struct ac_eval_result *r, FILE *f);
/* The --json document (malloc'd string). */
char *ac_eval_result_json(const struct ac_eval_result *r);
int ac_eval_write_html(const struct ac_eval_result *r, const char *path, char *err);

#endif
