/* eval.c - systems, cache simulation and metrics over a profile (eval.h). */
#include "eval/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "runtime/cache.h"

/* ---------------------------------------------------------------- data */

int ac_eval_data_alloc(struct ac_eval_data *d, int n_stages, int n_configs, char *err) {
    memset(d, 0, sizeof *d);
    d->n_stages = n_stages;
    d->n_configs = n_configs;
    d->f16 = -1;
    const size_t n = (size_t)(n_stages > 0 ? n_stages : 1) * (size_t)(n_configs > 0 ? n_configs : 1);
    d->stages = calloc((size_t)(n_stages > 0 ? n_stages : 1), sizeof *d->stages);
    d->configs = calloc((size_t)(n_configs > 0 ? n_configs : 1), sizeof *d->configs);
    d->have = calloc(n, sizeof *d->have);
    d->success = calloc(n, sizeof *d->success);
    d->fidelity = calloc(n, sizeof *d->fidelity);
    d->bytes = calloc(n, sizeof *d->bytes);
    d->wall = calloc(n, sizeof *d->wall);
    if (!d->stages || !d->configs || !d->have || !d->success || !d->fidelity || !d->bytes || !d->wall) {
        ac_eval_data_free(d);
        return ac_errf(err, "out of memory");
    }
    return 0;
}

void ac_eval_data_free(struct ac_eval_data *d) {
    for (int s = 0; s < d->n_stages && d->stages; s++) {
        free(d->stages[s].workflow);
        free(d->stages[s].domain);
        free(d->stages[s].kind);
        free(d->stages[s].prompt);
    }
    free(d->stages);
    free(d->configs);
    free(d->have);
    free(d->success);
    free(d->fidelity);
    free(d->bytes);
    free(d->wall);
    memset(d, 0, sizeof *d);
    d->f16 = -1;
}

int ac_eval_find_config(const struct ac_eval_data *d, const char *name) {
    for (int c = 0; c < d->n_configs; c++)
        if (!strcmp(d->configs[c].name, name)) return c;
    return -1;
}

bool ac_eval_config_complete(const struct ac_eval_data *d, int c) {
    for (int s = 0; s < d->n_stages; s++)
        if (!d->have[ac_eval_at(d, s, c)]) return false;
    return true;
}

static char *dup_col(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

static void parse_ids(const char *json, struct ac_eval_stage *s) {
    s->n_ids = 0;
    if (!json) return;
    const char *p = strchr(json, '[');
    if (!p) return;
    p++;
    while (*p && s->n_ids < AC_TASK_IDS) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        s->ids[s->n_ids++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
}

int ac_eval_load(const char *db_path, struct ac_eval_data *out, char *err) {
    memset(out, 0, sizeof *out);
    out->f16 = -1;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        ac_errf(err, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "cannot open");
        goto out;
    }
    int ns = 0, nc = 0, max_sid = 0, max_cid = 0;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*), MAX(id) FROM stages", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        ac_errf(err, "%s: not a profile (%s)", db_path, sqlite3_errmsg(db));
        goto out;
    }
    ns = sqlite3_column_int(st, 0);
    max_sid = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*), MAX(id) FROM configs", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        ac_errf(err, "%s: not a profile (%s)", db_path, sqlite3_errmsg(db));
        goto out;
    }
    nc = sqlite3_column_int(st, 0);
    max_cid = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (ns == 0 || nc == 0 || max_sid != ns) {
        ac_errf(err, "%s: no stages or configurations profiled", db_path);
        goto out;
    }
    if (ac_eval_data_alloc(out, ns, nc, err) != 0) goto out;
    int *cmap = calloc((size_t)max_cid + 1, sizeof *cmap);
    if (!cmap) {
        ac_errf(err, "out of memory");
        goto out;
    }
    for (int i = 0; i <= max_cid; i++) cmap[i] = -1;
    sqlite3_prepare_v2(db, "SELECT id, name, variant, prune, sparsity, file_bytes, load_s FROM configs ORDER BY id", -1,
                       &st, NULL);
    for (int c = 0; st && sqlite3_step(st) == SQLITE_ROW && c < nc; c++) {
        struct ac_eval_config *k = &out->configs[c];
        cmap[sqlite3_column_int(st, 0)] = c;
        snprintf(k->name, sizeof k->name, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(k->variant, sizeof k->variant, "%s", (const char *)sqlite3_column_text(st, 2));
        k->prune = (float)sqlite3_column_double(st, 3);
        k->sparsity = (float)sqlite3_column_double(st, 4);
        k->file_bytes = sqlite3_column_double(st, 5);
        k->load_s = sqlite3_column_double(st, 6);
        if (!strcmp(k->name, "f16")) out->f16 = c;
    }
    sqlite3_finalize(st);
    st = NULL;
    sqlite3_prepare_v2(db,
                       "SELECT id, workflow, stage, domain, kind, prompt, task_ids, f16_output IS NOT NULL, n_task "
                       "FROM stages ORDER BY id",
                       -1, &st, NULL);
    int missing_ref = 0;
    for (int s = 0; st && sqlite3_step(st) == SQLITE_ROW && s < ns; s++) {
        struct ac_eval_stage *g = &out->stages[s];
        g->workflow = dup_col(st, 1);
        g->stage = sqlite3_column_int(st, 2);
        g->domain = dup_col(st, 3);
        g->kind = dup_col(st, 4);
        g->prompt = dup_col(st, 5);
        parse_ids((const char *)sqlite3_column_text(st, 6), g);
        missing_ref += !sqlite3_column_int(st, 7);
        g->n_task = sqlite3_column_int(st, 8);
        if (!g->workflow || !g->domain || !g->kind || !g->prompt) {
            free(cmap);
            ac_errf(err, "out of memory");
            goto out;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (missing_ref) {
        free(cmap);
        ac_errf(err, "%s: %d stages have no F16 reference yet (finish the profile first)", db_path, missing_ref);
        goto out;
    }
    sqlite3_prepare_v2(db, "SELECT stage_id, config_id, success, fidelity, weight_bytes, wall_s FROM results", -1, &st,
                       NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const int s = sqlite3_column_int(st, 0) - 1, cid = sqlite3_column_int(st, 1);
        if (s < 0 || s >= ns || cid < 0 || cid > max_cid || cmap[cid] < 0) continue;
        const size_t i = ac_eval_at(out, s, cmap[cid]);
        out->have[i] = true;
        out->success[i] = sqlite3_column_int(st, 2) != 0;
        out->fidelity[i] = (float)sqlite3_column_double(st, 3);
        out->bytes[i] = sqlite3_column_double(st, 4);
        out->wall[i] = sqlite3_column_double(st, 5);
    }
    free(cmap);
    rc = 0;
out:
    sqlite3_finalize(st);
    if (db) sqlite3_close(db);
    if (rc != 0) ac_eval_data_free(out);
    return rc;
}

/* ---------------------------------------------------------------- cache simulation */

void ac_eval_cache_params_default(struct ac_eval_cache_params *p) {
    p->budget_bytes = 0;
    p->w_freq = 0.7;
    p->w_recency = 0.3;
    p->window = 64;
}

int ac_eval_trace_alloc(struct ac_eval_trace *t, int n_stages, char *err) {
    const size_t n = (size_t)(n_stages > 0 ? n_stages : 1);
    t->cost = calloc(n, sizeof *t->cost);
    t->wall = calloc(n, sizeof *t->wall);
    t->swap = calloc(n, sizeof *t->swap);
    if (!t->cost || !t->wall || !t->swap) {
        ac_eval_trace_free(t);
        return ac_errf(err, "out of memory");
    }
    return 0;
}

void ac_eval_trace_free(struct ac_eval_trace *t) {
    free(t->cost);
    free(t->wall);
    free(t->swap);
    memset(t, 0, sizeof *t);
}

struct sim_entry {
    const char *variant;
    double bytes, load_s;
    bool resident;
    long last_use;
};

int ac_eval_simulate(const struct ac_eval_data *d, const int *decision, const double *route_s,
                     const struct ac_eval_cache_params *cp, struct ac_eval_trace *t, char *err) {
    struct ac_eval_cache_params p;
    if (cp)
        p = *cp;
    else
        ac_eval_cache_params_default(&p);
    if (p.window < 1) p.window = 1;
    /* the runtime cache's rule (src/runtime/cache.c), so the simulation evicts what serving would */
    const struct ac_cache_params rule = {.w_freq = p.w_freq, .w_recency = p.w_recency, .window = p.window};
    struct sim_entry *e = calloc((size_t)d->n_configs, sizeof *e);
    int *ent_of = calloc((size_t)d->n_configs, sizeof *ent_of);
    int *history = calloc((size_t)p.window, sizeof *history);
    int ne = 0, rc = -1;
    if (!e || !ent_of || !history) {
        ac_errf(err, "out of memory");
        goto out;
    }
    double largest = 0;
    for (int c = 0; c < d->n_configs; c++) {
        int k = 0;
        while (k < ne && strcmp(e[k].variant, d->configs[c].variant) != 0) k++;
        if (k == ne) {
            e[ne++] = (struct sim_entry){.variant = d->configs[c].variant, .bytes = d->configs[c].file_bytes,
                                         .load_s = d->configs[c].load_s, .last_use = -1};
            if (d->configs[c].file_bytes > largest) largest = d->configs[c].file_bytes;
        }
        ent_of[c] = k;
    }
    const double budget = p.budget_bytes > 0 ? p.budget_bytes : 2 * largest;
    double resident = 0;
    long clock = 0;
    for (int s = 0; s < d->n_stages; s++) {
        const int c = decision[s];
        if (c < 0 || c >= d->n_configs || !d->have[ac_eval_at(d, s, c)]) {
            ac_errf(err, "stage %d (%s/%d): no profile row for configuration '%s'", s + 1, d->stages[s].workflow,
                    d->stages[s].stage, c >= 0 && c < d->n_configs ? d->configs[c].name : "?");
            goto out;
        }
        const int i = ent_of[c];
        history[clock % p.window] = i;
        e[i].last_use = clock++;
        const size_t at = ac_eval_at(d, s, c);
        t->cost[s] = d->bytes[at];
        t->wall[s] = d->wall[at] + (route_s ? route_s[s] : 0.0);
        t->swap[s] = !e[i].resident;
        if (!e[i].resident) {
            while (resident + e[i].bytes > budget) {
                int victim = -1;
                double best = 0;
                for (int k = 0; k < ne; k++) {
                    if (k == i || !e[k].resident) continue;
                    const double pr = ac_cache_policy_priority(&rule, history, clock, k, e[k].last_use);
                    if (victim < 0 || pr < best) victim = k, best = pr;
                }
                if (victim < 0) {
                    ac_errf(err, "variant '%s' (%.0f bytes) does not fit the %.0f-byte budget", e[i].variant,
                            e[i].bytes, budget);
                    goto out;
                }
                e[victim].resident = false;
                resident -= e[victim].bytes;
            }
            e[i].resident = true;
            resident += e[i].bytes;
            t->cost[s] += e[i].bytes;
            t->wall[s] += e[i].load_s;
        }
    }
    rc = 0;
out:
    free(e);
    free(ent_of);
    free(history);
    return rc;
}

void ac_eval_totals(const struct ac_eval_data *d, const int *decision, const struct ac_eval_trace *t,
                    const bool *mask, struct ac_eval_totals *out) {
    memset(out, 0, sizeof *out);
    for (int s = 0; s < d->n_stages; s++) {
        if (mask && !mask[s]) continue;
        const size_t at = ac_eval_at(d, s, decision[s]);
        out->n++;
        out->cost += t->cost[s];
        out->wall += t->wall[s];
        out->success += d->success[at];
        out->fidelity += d->fidelity[at];
        out->swaps += t->swap[s];
        out->hits += !t->swap[s];
    }
}

void ac_eval_metrics(const struct ac_eval_totals *sys, const struct ac_eval_totals *ref, struct ac_eval_metrics *m) {
    memset(m, 0, sizeof *m);
    m->n = sys->n;
    if (sys->n == 0) {
        m->cost_reduction = m->quality_preservation = m->success_rate = m->mean_fidelity = NAN;
        m->cache_hit_rate = NAN;
        return;
    }
    m->cost = sys->cost;
    m->cost_reduction = ref->cost > 0 ? 1.0 - sys->cost / ref->cost : NAN;
    m->success_rate = sys->success / sys->n;
    m->quality_preservation = ref->success > 0 ? sys->success / ref->success : NAN;
    m->mean_fidelity = sys->fidelity / sys->n;
    m->swaps = sys->swaps;
    m->cache_hit_rate = sys->hits / sys->n;
    m->wall_s = sys->wall;
}

/* ---------------------------------------------------------------- decisions */

void ac_eval_decide_all(const struct ac_eval_data *d, int config, int *decision) {
    for (int s = 0; s < d->n_stages; s++) decision[s] = config;
}

static bool usable(const struct ac_eval_data *d, const bool *allowed, int s, int c) {
    return (!allowed || allowed[c]) && d->have[ac_eval_at(d, s, c)];
}

void ac_eval_decide_oracle(const struct ac_eval_data *d, const bool *allowed, int *decision) {
    for (int s = 0; s < d->n_stages; s++) {
        const bool need = d->f16 >= 0 && d->have[ac_eval_at(d, s, d->f16)] && d->success[ac_eval_at(d, s, d->f16)];
        int best = -1, cheapest = -1;
        for (int c = 0; c < d->n_configs; c++) {
            if (!usable(d, allowed, s, c)) continue;
            const double b = d->bytes[ac_eval_at(d, s, c)];
            if (cheapest < 0 || b < d->bytes[ac_eval_at(d, s, cheapest)]) cheapest = c;
            if (d->success[ac_eval_at(d, s, c)] && (best < 0 || b < d->bytes[ac_eval_at(d, s, best)])) best = c;
        }
        decision[s] = need && best >= 0 ? best : cheapest;
    }
}

void ac_eval_decide_theta(const struct ac_eval_data *d, const bool *allowed, double theta, int *decision) {
    for (int s = 0; s < d->n_stages; s++) {
        int best = -1;
        for (int c = 0; c < d->n_configs; c++) {
            if (!usable(d, allowed, s, c)) continue;
            const size_t at = ac_eval_at(d, s, c);
            const double fid = c == d->f16 ? 1.0 : d->fidelity[at];
            if (fid + 1e-9 >= theta && (best < 0 || d->bytes[at] < d->bytes[ac_eval_at(d, s, best)])) best = c;
        }
        decision[s] = best >= 0 ? best : d->f16;
    }
}

struct scored {
    double score;
    int s;
};

static int cmp_scored_desc(const void *a, const void *b) {
    const struct scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->s - y->s;
}

void ac_eval_decide_split(const struct ac_eval_data *d, const double *score, double frac, int easy, int hard,
                          int *decision) {
    struct scored *v = malloc(sizeof *v * (size_t)(d->n_stages > 0 ? d->n_stages : 1));
    if (!v) {
        ac_eval_decide_all(d, hard, decision);
        return;
    }
    for (int s = 0; s < d->n_stages; s++) v[s] = (struct scored){score[s], s};
    qsort(v, (size_t)d->n_stages, sizeof *v, cmp_scored_desc);
    const int n_hard = (int)lround(frac * d->n_stages);
    for (int k = 0; k < d->n_stages; k++) decision[v[k].s] = k < n_hard ? hard : easy;
    free(v);
}

int ac_eval_random_pair(const struct ac_eval_data *d, const bool *allowed, double target, int *lo, int *hi,
                        double *p_hi) {
    *lo = *hi = -1;
    double tlo = 0, thi = 0;
    for (int c = 0; c < d->n_configs; c++) {
        if ((allowed && !allowed[c]) || !ac_eval_config_complete(d, c)) continue;
        double tot = 0;
        for (int s = 0; s < d->n_stages; s++) tot += d->bytes[ac_eval_at(d, s, c)];
        if (tot <= target && (*lo < 0 || tot > tlo)) *lo = c, tlo = tot;
        if (tot >= target && (*hi < 0 || tot < thi)) *hi = c, thi = tot;
    }
    if (*lo < 0 && *hi < 0) return -1;
    if (*lo < 0) { /* target below every config: the cheapest */
        *lo = *hi;
        *p_hi = 0;
        return 0;
    }
    if (*hi < 0) {
        *hi = *lo;
        *p_hi = 1;
        return 0;
    }
    *p_hi = thi > tlo ? (target - tlo) / (thi - tlo) : 0.0;
    return 0;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ac_eval_decide_random(const struct ac_eval_data *d, int lo, int hi, double p_hi, uint64_t seed, int *decision) {
    uint64_t st = seed * 0x2545f4914f6cdd1dull + 1;
    for (int s = 0; s < d->n_stages; s++) {
        const double u = (double)(splitmix(&st) >> 11) / 9007199254740992.0;
        decision[s] = u < p_hi ? hi : lo;
    }
}

/* ---------------------------------------------------------------- correlation */

double ac_pearson(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0 || syy <= 0) return NAN;
    return sxy / sqrt(sxx * syy);
}

static const double *g_rank_src;
static int cmp_idx(const void *a, const void *b) {
    const double x = g_rank_src[*(const int *)a], y = g_rank_src[*(const int *)b];
    return (x > y) - (x < y);
}

/* Average ranks (ties share the mean rank). */
static int ranks(const double *x, int n, double *r) {
    int *idx = malloc(sizeof *idx * (size_t)n);
    if (!idx) return -1;
    for (int i = 0; i < n; i++) idx[i] = i;
    g_rank_src = x;
    qsort(idx, (size_t)n, sizeof *idx, cmp_idx);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && x[idx[j + 1]] == x[idx[i]]) j++;
        for (int k = i; k <= j; k++) r[idx[k]] = (i + j) / 2.0;
        i = j + 1;
    }
    free(idx);
    return 0;
}

double ac_spearman(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double *rx = malloc(sizeof *rx * (size_t)n), *ry = malloc(sizeof *ry * (size_t)n);
    double r = NAN;
    if (rx && ry && ranks(x, n, rx) == 0 && ranks(y, n, ry) == 0) r = ac_pearson(rx, ry, n);
    free(rx);
    free(ry);
    return r;
}

double ac_eval_target_rank(const struct ac_eval_data *d, const bool *allowed, int s, double theta) {
    /* configs sorted by stage bytes; rank of the cheapest with fidelity >= theta */
    int n = 0, rank = -1, count_cheaper = 0;
    double best_b = 0;
    for (int c = 0; c < d->n_configs; c++) {
        if (!usable(d, allowed, s, c)) continue;
        n++;
        const size_t at = ac_eval_at(d, s, c);
        const double fid = c == d->f16 ? 1.0 : d->fidelity[at];
        if (fid + 1e-9 >= theta && (rank < 0 || d->bytes[at] < best_b)) rank = c, best_b = d->bytes[at];
    }
    if (n < 2) return 0.0;
    if (rank < 0) return 1.0;
    for (int c = 0; c < d->n_configs; c++)
        if (usable(d, allowed, s, c) && d->bytes[ac_eval_at(d, s, c)] < best_b) count_cheaper++;
    return (double)count_cheaper / (n - 1);
}

double ac_eval_target_fid(const struct ac_eval_data *d, const bool *allowed, int s) {
    int cheapest = -1;
    for (int c = 0; c < d->n_configs; c++)
        if (usable(d, allowed, s, c) &&
            (cheapest < 0 || d->bytes[ac_eval_at(d, s, c)] < d->bytes[ac_eval_at(d, s, cheapest)]))
            cheapest = c;
    return cheapest < 0 ? 0.0 : 1.0 - d->fidelity[ac_eval_at(d, s, cheapest)];
}
