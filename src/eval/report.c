/* report.c - eval's systems and their table / JSON / HTML (report.h). */
#include "eval/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/common.h"

/* ---------------------------------------------------------------- compute */

static int intern(char ***list, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*list)[i], s)) return i;
    char **t = realloc(*list, sizeof *t * (size_t)(*n + 1));
    if (!t) return -1;
    *list = t;
    if (!(t[*n] = strdup(s))) return -1;
    return (*n)++;
}

struct group_ctx {
    const struct ac_eval_data *d;
    int *dom, *kind; /* per stage */
    bool *mask;
};

/* Totals overall, per domain, per kind of one decision vector. */
struct totals_set {
    struct ac_eval_totals all, *dom, *kind;
};

static void totals_set_free(struct totals_set *t) {
    free(t->dom);
    free(t->kind);
    t->dom = NULL;
    t->kind = NULL;
}

static int totals_set_alloc(struct totals_set *t, int nd, int nk) {
    memset(t, 0, sizeof *t);
    t->dom = calloc((size_t)nd + 1, sizeof *t->dom);
    t->kind = calloc((size_t)nk + 1, sizeof *t->kind);
    if (t->dom && t->kind) return 0;
    totals_set_free(t);
    return -1;
}

static void add_totals(struct ac_eval_totals *a, const struct ac_eval_totals *b) {
    a->n = b->n;
    a->cost += b->cost;
    a->success += b->success;
    a->fidelity += b->fidelity;
    a->wall += b->wall;
    a->swaps += b->swaps;
    a->hits += b->hits;
}

static void scale_totals(struct ac_eval_totals *a, double k) {
    a->cost *= k;
    a->success *= k;
    a->fidelity *= k;
    a->wall *= k;
    a->swaps *= k;
    a->hits *= k;
}

static int run_totals(const struct ac_eval_result *r, struct group_ctx *g, const int *decision, const double *route_s,
                      const struct ac_eval_cache_params *cp, struct ac_eval_trace *tr, struct totals_set *out,
                      bool accumulate, char *err) {
    const struct ac_eval_data *d = g->d;
    if (ac_eval_simulate(d, decision, route_s, cp, tr, err) != 0) return -1;
    struct ac_eval_totals t;
    ac_eval_totals(d, decision, tr, NULL, &t);
    if (accumulate)
        add_totals(&out->all, &t);
    else
        out->all = t;
    for (int k = 0; k < r->n_domains; k++) {
        for (int s = 0; s < d->n_stages; s++) g->mask[s] = g->dom[s] == k;
        ac_eval_totals(d, decision, tr, g->mask, &t);
        if (accumulate)
            add_totals(&out->dom[k], &t);
        else
            out->dom[k] = t;
    }
    for (int k = 0; k < r->n_kinds; k++) {
        for (int s = 0; s < d->n_stages; s++) g->mask[s] = g->kind[s] == k;
        ac_eval_totals(d, decision, tr, g->mask, &t);
        if (accumulate)
            add_totals(&out->kind[k], &t);
        else
            out->kind[k] = t;
    }
    return 0;
}

static int add_system(struct ac_eval_result *r, const char *name, const struct totals_set *t,
                      const struct totals_set *ref, char *err) {
    if (r->n_systems >= AC_EVAL_MAX_SYSTEMS) return ac_errf(err, "too many systems");
    struct ac_eval_system *s = &r->systems[r->n_systems];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->per_domain = calloc((size_t)r->n_domains + 1, sizeof *s->per_domain);
    s->per_kind = calloc((size_t)r->n_kinds + 1, sizeof *s->per_kind);
    if (!s->per_domain || !s->per_kind) {
        free(s->per_domain);
        free(s->per_kind);
        return ac_errf(err, "out of memory");
    }
    ac_eval_metrics(&t->all, &ref->all, &s->all);
    for (int k = 0; k < r->n_domains; k++) ac_eval_metrics(&t->dom[k], &ref->dom[k], &s->per_domain[k]);
    for (int k = 0; k < r->n_kinds; k++) ac_eval_metrics(&t->kind[k], &ref->kind[k], &s->per_kind[k]);
    r->n_systems++;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The int2 variant: a plain config whose variant is not f16/q8_0/q4_0 and
 * whose name starts with "q2" (q2_0, q2_k) or "int2". */
static bool is_int2(const struct ac_eval_config *c) {
    return c->prune == 0 && c->sparsity == 0 && (!strncmp(c->variant, "q2", 2) || !strncmp(c->variant, "int2", 4));
}

int ac_eval_compute(const struct ac_eval_data *d, const struct ac_eval_inputs *in, struct ac_eval_result *r,
                    char *err) {
    memset(r, 0, sizeof *r);
    r->n_stages = d->n_stages;
    r->complexity_pearson = r->complexity_spearman = NAN;
    r->complexity_pearson_fid = r->complexity_spearman_fid = NAN;
    r->controller_us_p50 = NAN;
    r->theta = in->theta > 0 ? in->theta : 0.95;
    if (d->f16 < 0 || !ac_eval_config_complete(d, d->f16)) return ac_errf(err, "the profile lacks f16 rows");
    const int ns = d->n_stages;
    struct group_ctx g = {.d = d};
    g.dom = calloc((size_t)ns, sizeof *g.dom);
    g.kind = calloc((size_t)ns, sizeof *g.kind);
    g.mask = calloc((size_t)ns, sizeof *g.mask);
    int *dec = calloc((size_t)ns, sizeof *dec);
    bool *allowed = calloc((size_t)d->n_configs, sizeof *allowed);
    double *x = calloc((size_t)ns, sizeof *x), *y = calloc((size_t)ns, sizeof *y);
    struct ac_eval_trace tr = {0};
    struct totals_set ref = {0}, cur = {0};
    int rc = -1;
    if (!g.dom || !g.kind || !g.mask || !dec || !allowed || !x || !y || ac_eval_trace_alloc(&tr, ns, err) != 0) {
        ac_errf(err, "out of memory");
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        g.dom[s] = intern(&r->domains, &r->n_domains, d->stages[s].domain);
        g.kind[s] = intern(&r->kinds, &r->n_kinds, d->stages[s].kind);
        if (g.dom[s] < 0 || g.kind[s] < 0) {
            ac_errf(err, "out of memory");
            goto out;
        }
    }
    if (totals_set_alloc(&ref, r->n_domains, r->n_kinds) != 0 ||
        totals_set_alloc(&cur, r->n_domains, r->n_kinds) != 0) {
        ac_errf(err, "out of memory");
        goto out;
    }
    for (int c = 0; c < d->n_configs; c++) allowed[c] = ac_eval_config_complete(d, c);
    {
        struct ac_eval_cache_params cp = in->cache;
        if (cp.budget_bytes <= 0) {
            double largest = 0;
            for (int c = 0; c < d->n_configs; c++)
                if (d->configs[c].file_bytes > largest) largest = d->configs[c].file_bytes;
            cp.budget_bytes = 2 * largest;
        }
        r->budget_bytes = cp.budget_bytes;

        /* all-f16 first: the reference */
        ac_eval_decide_all(d, d->f16, dec);
        if (run_totals(r, &g, dec, NULL, &cp, &tr, &ref, false, err) != 0) goto out;
        if (add_system(r, "all-f16", &ref, &ref, err) != 0) goto out;
        static const char *plain[] = {"q8_0", "q4_0"};
        for (int k = 0; k < 2; k++) {
            const int c = ac_eval_find_config(d, plain[k]);
            if (c < 0 || !allowed[c]) continue;
            char name[96];
            snprintf(name, sizeof name, "all-%s", plain[k]);
            ac_eval_decide_all(d, c, dec);
            if (run_totals(r, &g, dec, NULL, &cp, &tr, &cur, false, err) != 0 || add_system(r, name, &cur, &ref, err))
                goto out;
        }
        for (int c = 0; c < d->n_configs; c++) {
            if (!allowed[c] || !is_int2(&d->configs[c])) continue;
            char name[96];
            snprintf(name, sizeof name, "all-%s", d->configs[c].name);
            ac_eval_decide_all(d, c, dec);
            if (run_totals(r, &g, dec, NULL, &cp, &tr, &cur, false, err) != 0 || add_system(r, name, &cur, &ref, err))
                goto out;
            break;
        }
        /* the routed system */
        struct totals_set routed = {0};
        if (totals_set_alloc(&routed, r->n_domains, r->n_kinds) != 0) {
            ac_errf(err, "out of memory");
            goto out;
        }
        if (run_totals(r, &g, in->routed, in->route_s, &cp, &tr, &routed, false, err) != 0) {
            totals_set_free(&routed);
            goto out;
        }
        double routed_tokens = 0; /* Σ stage bytes without swaps: what random matches */
        for (int s = 0; s < ns; s++) routed_tokens += d->bytes[ac_eval_at(d, s, in->routed[s])];
        /* random at the routed system's cost */
        int lo, hi;
        double p_hi = 0;
        if (ac_eval_random_pair(d, allowed, routed_tokens, &lo, &hi, &p_hi) != 0) {
            totals_set_free(&routed);
            ac_errf(err, "no complete configuration for random routing");
            goto out;
        }
        snprintf(r->random_lo, sizeof r->random_lo, "%s", d->configs[lo].name);
        snprintf(r->random_hi, sizeof r->random_hi, "%s", d->configs[hi].name);
        r->random_p_hi = p_hi;
        struct totals_set rnd = {0};
        if (totals_set_alloc(&rnd, r->n_domains, r->n_kinds) != 0) {
            totals_set_free(&routed);
            ac_errf(err, "out of memory");
            goto out;
        }
        for (int seed = 0; seed < AC_EVAL_RANDOM_SEEDS; seed++) {
            ac_eval_decide_random(d, lo, hi, p_hi, (uint64_t)seed + 1, dec);
            if (run_totals(r, &g, dec, NULL, &cp, &tr, &rnd, seed > 0, err) != 0) {
                totals_set_free(&routed);
                totals_set_free(&rnd);
                goto out;
            }
        }
        scale_totals(&rnd.all, 1.0 / AC_EVAL_RANDOM_SEEDS);
        for (int k = 0; k < r->n_domains; k++) scale_totals(&rnd.dom[k], 1.0 / AC_EVAL_RANDOM_SEEDS);
        for (int k = 0; k < r->n_kinds; k++) scale_totals(&rnd.kind[k], 1.0 / AC_EVAL_RANDOM_SEEDS);
        int arc = add_system(r, "random", &rnd, &ref, err);
        totals_set_free(&rnd);
        /* oracle */
        if (arc == 0) {
            ac_eval_decide_oracle(d, allowed, dec);
            arc = run_totals(r, &g, dec, NULL, &cp, &tr, &cur, false, err);
            if (arc == 0) arc = add_system(r, "oracle", &cur, &ref, err);
        }
        if (arc == 0) arc = add_system(r, in->router_name ? in->router_name : "routed", &routed, &ref, err);
        totals_set_free(&routed);
        if (arc != 0) goto out;

        /* oracle theta sweep */
        static const double thetas[] = {0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0};
        for (size_t k = 0; k < sizeof thetas / sizeof thetas[0]; k++) {
            ac_eval_decide_theta(d, allowed, thetas[k], dec);
            if (run_totals(r, &g, dec, NULL, &cp, &tr, &cur, false, err) != 0) goto out;
            struct ac_eval_metrics m;
            ac_eval_metrics(&cur.all, &ref.all, &m);
            r->oracle_sweep[r->n_oracle_sweep++] = (struct ac_eval_point){thetas[k], m.cost_reduction,
                                                                          m.quality_preservation};
        }
        /* router sweep: the hardest fraction (by score) on f16, the rest on the cheap config */
        if (in->score) {
            int easy = -1;
            for (int s = 0; s < ns && easy < 0; s++)
                if (in->routed[s] != d->f16 && allowed[in->routed[s]]) easy = in->routed[s];
            if (easy < 0) easy = ac_eval_find_config(d, "q4_0");
            if (easy >= 0 && allowed[easy]) {
                snprintf(r->sweep_easy, sizeof r->sweep_easy, "%s", d->configs[easy].name);
                snprintf(r->sweep_hard, sizeof r->sweep_hard, "%s", d->configs[d->f16].name);
                for (int k = 0; k <= 10; k++) {
                    ac_eval_decide_split(d, in->score, k / 10.0, easy, d->f16, dec);
                    if (run_totals(r, &g, dec, NULL, &cp, &tr, &cur, false, err) != 0) goto out;
                    struct ac_eval_metrics m;
                    ac_eval_metrics(&cur.all, &ref.all, &m);
                    r->router_sweep[r->n_router_sweep++] = (struct ac_eval_point){k / 10.0, m.cost_reduction,
                                                                                  m.quality_preservation};
                }
            }
        }
    }
    /* complexity correlations and controller latency */
    if (in->has_complexity && in->score) {
        for (int s = 0; s < ns; s++) x[s] = in->score[s], y[s] = ac_eval_target_rank(d, allowed, s, r->theta);
        r->complexity_pearson = ac_pearson(x, y, ns);
        r->complexity_spearman = ac_spearman(x, y, ns);
        for (int s = 0; s < ns; s++) y[s] = ac_eval_target_fid(d, allowed, s);
        r->complexity_pearson_fid = ac_pearson(x, y, ns);
        r->complexity_spearman_fid = ac_spearman(x, y, ns);
    }
    if (in->is_controller && in->route_s && ns > 0) {
        for (int s = 0; s < ns; s++) x[s] = in->route_s[s] * 1e6;
        qsort(x, (size_t)ns, sizeof *x, cmp_double);
        r->controller_us_p50 = ns % 2 ? x[ns / 2] : 0.5 * (x[ns / 2 - 1] + x[ns / 2]);
    }
    rc = 0;
out:
    totals_set_free(&ref);
    totals_set_free(&cur);
    ac_eval_trace_free(&tr);
    free(g.dom);
    free(g.kind);
    free(g.mask);
    free(dec);
    free(allowed);
    free(x);
    free(y);
    if (rc != 0) ac_eval_result_free(r);
    return rc;
}

void ac_eval_result_free(struct ac_eval_result *r) {
    for (int i = 0; i < r->n_systems; i++) {
        free(r->systems[i].per_domain);
        free(r->systems[i].per_kind);
    }
    for (int i = 0; i < r->n_domains; i++) free(r->domains[i]);
    for (int i = 0; i < r->n_kinds; i++) free(r->kinds[i]);
    free(r->domains);
    free(r->kinds);
    memset(r, 0, sizeof *r);
}

const struct ac_eval_system *ac_eval_result_find(const struct ac_eval_result *r, const char *name) {
    for (int i = 0; i < r->n_systems; i++)
        if (!strcmp(r->systems[i].name, name)) return &r->systems[i];
    return NULL;
}

/* ---------------------------------------------------------------- table */

static void print_rows(FILE *f, const struct ac_eval_result *r, int group, int which) {
    for (int i = 0; i < r->n_systems; i++) {
        const struct ac_eval_system *s = &r->systems[i];
        const struct ac_eval_metrics *m =
            which == 0 ? &s->all : which == 1 ? &s->per_domain[group] : &s->per_kind[group];
        char q[16];
        if (isfinite(m->quality_preservation))
            snprintf(q, sizeof q, "%.3f", m->quality_preservation);
        else
            snprintf(q, sizeof q, "-"); /* f16 never succeeds here */
        fprintf(f, "  %-22s %8.1f%% %8s %8.3f %8.3f %7.1f %7.1f%% %9.1f\n", s->name, 100 * m->cost_reduction, q,
                m->success_rate, m->mean_fidelity, m->swaps, 100 * m->cache_hit_rate, m->wall_s);
    }
}

void ac_eval_print_table(const struct ac_eval_result *r, FILE *f) {
    static const char *hdr = "  %-22s %9s %8s %8s %8s %7s %8s %9s\n";
    fprintf(f, "%d stages; cache budget %.0f MB; random mixes %s and %s (p %.3f)\n\n", r->n_stages,
            r->budget_bytes / 1e6, r->random_lo, r->random_hi, r->random_p_hi);
    fprintf(f, "overall\n");
    fprintf(f, hdr, "system", "cost red.", "quality", "success", "fidelity", "swaps", "hit rate", "wall s");
    print_rows(f, r, 0, 0);
    for (int k = 0; k < r->n_domains; k++) {
        fprintf(f, "\ndomain %s (%d stages)\n", r->domains[k], r->systems[0].per_domain[k].n);
        print_rows(f, r, k, 1);
    }
    for (int k = 0; k < r->n_kinds; k++) {
        fprintf(f, "\nkind %s (%d stages)\n", r->kinds[k], r->systems[0].per_kind[k].n);
        print_rows(f, r, k, 2);
    }
    if (!isnan(r->complexity_pearson))
        fprintf(f, "\ncomplexity vs ground truth: pearson %.3f, spearman %.3f (rank target); pearson %.3f (1 - fid)\n",
                r->complexity_pearson, r->complexity_spearman, r->complexity_pearson_fid);
    if (!isnan(r->controller_us_p50)) fprintf(f, "controller decision p50: %.1f us\n", r->controller_us_p50);
}

/* ---------------------------------------------------------------- json */

static cJSON *num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static cJSON *metrics_json(const char *name, const struct ac_eval_metrics *m) {
    cJSON *o = cJSON_CreateObject();
    if (name) cJSON_AddStringToObject(o, "name", name);
    cJSON_AddItemToObject(o, "cost_reduction", num(m->cost_reduction));
    cJSON_AddItemToObject(o, "quality_preservation", num(m->quality_preservation));
    cJSON_AddItemToObject(o, "success_rate", num(m->success_rate));
    cJSON_AddItemToObject(o, "mean_fidelity", num(m->mean_fidelity));
    cJSON_AddItemToObject(o, "swaps", num(m->swaps));
    cJSON_AddItemToObject(o, "cache_hit_rate", num(m->cache_hit_rate));
    cJSON_AddItemToObject(o, "wall_s", num(m->wall_s));
    cJSON_AddItemToObject(o, "cost_bytes", num(m->cost));
    cJSON_AddNumberToObject(o, "stages", m->n);
    return o;
}

static cJSON *sweep_json(const struct ac_eval_point *p, int n, const char *param) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, param, num(p[i].param));
        cJSON_AddItemToObject(o, "cost_reduction", num(p[i].cost_reduction));
        cJSON_AddItemToObject(o, "quality_preservation", num(p[i].quality_preservation));
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

char *ac_eval_result_json(const struct ac_eval_result *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON *systems = cJSON_AddArrayToObject(root, "systems");
    for (int i = 0; i < r->n_systems; i++) {
        const struct ac_eval_system *s = &r->systems[i];
        cJSON *o = metrics_json(s->name, &s->all);
        cJSON *pd = cJSON_AddObjectToObject(o, "per_domain");
        for (int k = 0; k < r->n_domains; k++) cJSON_AddItemToObject(pd, r->domains[k], metrics_json(NULL, &s->per_domain[k]));
        cJSON *pk = cJSON_AddObjectToObject(o, "per_kind");
        for (int k = 0; k < r->n_kinds; k++) cJSON_AddItemToObject(pk, r->kinds[k], metrics_json(NULL, &s->per_kind[k]));
        cJSON_AddItemToArray(systems, o);
    }
    cJSON_AddItemToObject(root, "complexity_pearson", num(r->complexity_pearson));
    cJSON_AddItemToObject(root, "complexity_spearman", num(r->complexity_spearman));
    cJSON_AddItemToObject(root, "complexity_pearson_fid", num(r->complexity_pearson_fid));
    cJSON_AddItemToObject(root, "complexity_spearman_fid", num(r->complexity_spearman_fid));
    cJSON_AddItemToObject(root, "controller_us_p50", num(r->controller_us_p50));
    cJSON_AddNumberToObject(root, "stages", r->n_stages);
    cJSON_AddNumberToObject(root, "theta", r->theta);
    cJSON_AddNumberToObject(root, "cache_budget_bytes", r->budget_bytes);
    cJSON *rnd = cJSON_AddObjectToObject(root, "random");
    cJSON_AddStringToObject(rnd, "lo", r->random_lo);
    cJSON_AddStringToObject(rnd, "hi", r->random_hi);
    cJSON_AddNumberToObject(rnd, "p_hi", r->random_p_hi);
    cJSON_AddNumberToObject(rnd, "seeds", AC_EVAL_RANDOM_SEEDS);
    cJSON_AddItemToObject(root, "oracle_sweep", sweep_json(r->oracle_sweep, r->n_oracle_sweep, "theta"));
    cJSON *rs = cJSON_AddObjectToObject(root, "router_sweep");
    cJSON_AddStringToObject(rs, "easy", r->sweep_easy);
    cJSON_AddStringToObject(rs, "hard", r->sweep_hard);
    cJSON_AddItemToObject(rs, "points", sweep_json(r->router_sweep, r->n_router_sweep, "hard_fraction"));
    if (r->workflows) cJSON_AddStringToObject(root, "workflows", r->workflows);
    if (r->profile) cJSON_AddStringToObject(root, "profile", r->profile);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* ---------------------------------------------------------------- html */

static void html_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static void html_num(FILE *f, double v, const char *fmt) {
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs("&ndash;", f);
}

static void html_table(FILE *f, const struct ac_eval_result *r, int group, int which) {
    fputs("<table><tr><th>system</th><th>cost reduction</th><th>quality preservation</th><th>success rate</th>"
          "<th>mean fidelity</th><th>swaps</th><th>cache hit rate</th><th>wall s</th></tr>\n",
          f);
    for (int i = 0; i < r->n_systems; i++) {
        const struct ac_eval_system *s = &r->systems[i];
        const struct ac_eval_metrics *m =
            which == 0 ? &s->all : which == 1 ? &s->per_domain[group] : &s->per_kind[group];
        fputs("<tr><td>", f);
        html_escape(f, s->name);
        fputs("</td><td>", f);
        html_num(f, 100 * m->cost_reduction, "%.1f%%");
        fputs("</td><td>", f);
        html_num(f, m->quality_preservation, "%.3f");
        fputs("</td><td>", f);
        html_num(f, m->success_rate, "%.3f");
        fputs("</td><td>", f);
        html_num(f, m->mean_fidelity, "%.3f");
        fputs("</td><td>", f);
        html_num(f, m->swaps, "%.1f");
        fputs("</td><td>", f);
        html_num(f, 100 * m->cache_hit_rate, "%.1f%%");
        fputs("</td><td>", f);
        html_num(f, m->wall_s, "%.1f");
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* x: relative cost (1 - cost reduction), y: quality preservation */
static void svg_chart(FILE *f, const struct ac_eval_result *r) {
    const double W = 720, H = 460, L = 70, R = 190, T = 20, B = 50;
    double xmax = 1.05, ymax = 1.1;
    for (int i = 0; i < r->n_systems; i++) {
        const struct ac_eval_metrics *m = &r->systems[i].all;
        if (isfinite(m->cost_reduction) && 1 - m->cost_reduction > xmax) xmax = 1 - m->cost_reduction;
        if (isfinite(m->quality_preservation) && m->quality_preservation > ymax) ymax = m->quality_preservation;
    }
    for (int i = 0; i < r->n_oracle_sweep; i++)
        if (isfinite(r->oracle_sweep[i].quality_preservation) && r->oracle_sweep[i].quality_preservation > ymax)
            ymax = r->oracle_sweep[i].quality_preservation;
    ymax = ceil(ymax * 10) / 10;
    const double pw = W - L - R, ph = H - T - B;
#define PX(v) (L + (v) / xmax * pw)
#define PY(v) (T + ph - (v) / ymax * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
               "font-size=\"11\">\n", W, H);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" stroke=\"#999\"/>\n", L, T,
            pw, ph);
    for (int k = 0; k <= 10; k++) {
        const double xv = xmax * k / 10, yv = ymax * k / 10;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>", PX(xv), (double)T,
                PX(xv), T + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>\n", PX(xv), T + ph + 14, xv);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>", (double)L, PY(yv),
                L + pw, PY(yv));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", L - 4, PY(yv) + 4, yv);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">cost relative to all-f16 (1 - cost reduction)</text>\n",
            L + pw / 2, H - 12);
    fprintf(f, "<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">quality preservation</text>\n",
            T + ph / 2);
    const struct {
        const struct ac_eval_point *p;
        int n;
        const char *color, *label;
    } curves[] = {{r->oracle_sweep, r->n_oracle_sweep, "#2a9d8f", "oracle, fidelity &#8805; &#952; sweep"},
                  {r->router_sweep, r->n_router_sweep, "#e76f51", "router, threshold sweep"}};
    for (int c = 0; c < 2; c++) {
        if (curves[c].n == 0) continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", curves[c].color);
        for (int i = 0; i < curves[c].n; i++) {
            const struct ac_eval_point *p = &curves[c].p[i];
            if (isfinite(p->cost_reduction) && isfinite(p->quality_preservation))
                fprintf(f, "%.1f,%.1f ", PX(1 - p->cost_reduction), PY(p->quality_preservation));
        }
        fputs("\"/>\n", f);
        for (int i = 0; i < curves[c].n; i++) {
            const struct ac_eval_point *p = &curves[c].p[i];
            if (isfinite(p->cost_reduction) && isfinite(p->quality_preservation))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\"><title>%.2f</title></circle>\n",
                        PX(1 - p->cost_reduction), PY(p->quality_preservation), curves[c].color, p->param);
        }
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\"/>"
                   "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                L + pw + 10, T + 14.0 + 16 * c, L + pw + 30, T + 14.0 + 16 * c, curves[c].color, L + pw + 34,
                T + 18.0 + 16 * c, curves[c].label);
    }
    for (int i = 0; i < r->n_systems; i++) {
        const struct ac_eval_metrics *m = &r->systems[i].all;
        if (!isfinite(m->cost_reduction) || !isfinite(m->quality_preservation)) continue;
        const double px = PX(1 - m->cost_reduction), py = PY(m->quality_preservation);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"#264653\"/><text x=\"%.1f\" y=\"%.1f\">", px, py,
                px + 7, py - 5);
        html_escape(f, r->systems[i].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
}

int ac_eval_write_html(const struct ac_eval_result *r, const char *path, char *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return ac_errf(err, "path too long");
    FILE *f = fopen(tmp, "w");
    if (!f) return ac_errf(err, "%s: cannot write", tmp);
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>AgentCompress eval</title>\n<style>"
          "body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;margin:0.5em 0 1.5em}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
          "th{background:#f0f0f0}h2{margin-top:1.5em}</style></head><body>\n<h1>AgentCompress evaluation</h1>\n",
          f);
    fputs("<p>", f);
    if (r->workflows) {
        fputs("Workflows <code>", f);
        html_escape(f, r->workflows);
        fputs("</code>, ", f);
    }
    fprintf(f, "%d stages. Cost: bytes of weights read per processed token plus bytes loaded on a variant swap "
               "(cache budget %.0f MB, priority 0.7&#183;frequency + 0.3&#183;recency), relative to all-f16. "
               "Quality preservation: success rate &#247; all-f16's. Random routing mixes <code>",
            r->n_stages, r->budget_bytes / 1e6);
    html_escape(f, r->random_lo);
    fputs("</code> and <code>", f);
    html_escape(f, r->random_hi);
    fprintf(f, "</code> (p = %.3f) at the routed system's cost, averaged over %d seeds. The oracle takes, per stage, "
               "the cheapest configuration that succeeds where f16 does.</p>\n",
            r->random_p_hi, AC_EVAL_RANDOM_SEEDS);
    fputs("<h2>Cost&#8211;quality frontier</h2>\n", f);
    svg_chart(f, r);
    if (r->n_router_sweep) {
        fputs("<p>Router sweep: the hardest fraction of stages (by the router's score) on <code>", f);
        html_escape(f, r->sweep_hard);
        fputs("</code>, the rest on <code>", f);
        html_escape(f, r->sweep_easy);
        fputs("</code>, fraction 0 to 1 in steps of 0.1.</p>\n", f);
    }
    fputs("<h2>Overall</h2>\n", f);
    html_table(f, r, 0, 0);
    if (isfinite(r->complexity_pearson))
        fprintf(f, "<p>Complexity vs ground truth: Pearson %.3f, Spearman %.3f (rank of the cheapest configuration "
                   "with fidelity &#8805; %.2f); Pearson %.3f, Spearman %.3f (1 &#8722; fidelity of the cheapest).</p>\n",
                r->complexity_pearson, r->complexity_spearman, r->theta, r->complexity_pearson_fid,
                r->complexity_spearman_fid);
    if (isfinite(r->controller_us_p50))
        fprintf(f, "<p>Controller decision time p50: %.1f &#181;s.</p>\n", r->controller_us_p50);
    for (int k = 0; k < r->n_domains; k++) {
        fputs("<h2>Domain ", f);
        html_escape(f, r->domains[k]);
        fprintf(f, " (%d stages)</h2>\n", r->systems[0].per_domain[k].n);
        html_table(f, r, k, 1);
    }
    for (int k = 0; k < r->n_kinds; k++) {
        fputs("<h2>Kind ", f);
        html_escape(f, r->kinds[k]);
        fprintf(f, " (%d stages)</h2>\n", r->systems[0].per_kind[k].n);
        html_table(f, r, k, 2);
    }
    fputs("</body></html>\n", f);
    const bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        remove(tmp);
        return ac_errf(err, "%s: write error", tmp);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return ac_errf(err, "%s: cannot rename into place", path);
    }
    return 0;
}
