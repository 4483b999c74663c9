/* dataset.c - training datasets: building, JSONL files, subsets, ground
 * truth per task. Format and ownership: train.h. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "train/train.h"

#define MAX_IDS_PER_TASK 65536
#define MAX_LINE_BYTES (16u << 20)

/* ------------------------------------------------------------------------
 * levels */

void ac_train_levels_from_config(struct ac_train_levels *lv, const struct ac_controller_config *c) {
    memset(lv, 0, sizeof *lv);
    memcpy(lv->n, c->n_levels, sizeof lv->n);
    memcpy(lv->quant_names, c->quant_names, sizeof lv->quant_names);
    memcpy(lv->prune, c->prune_levels, sizeof lv->prune);
    memcpy(lv->sparsity, c->sparsity_levels, sizeof lv->sparsity);
}

void ac_train_levels_to_config(struct ac_controller_config *c, const struct ac_train_levels *lv) {
    memcpy(c->n_levels, lv->n, sizeof lv->n);
    memcpy(c->quant_names, lv->quant_names, sizeof lv->quant_names);
    memcpy(c->prune_levels, lv->prune, sizeof lv->prune);
    memcpy(c->sparsity_levels, lv->sparsity, sizeof lv->sparsity);
}

int ac_train_levels_n_configs(const struct ac_train_levels *lv) { return lv->n[0] * lv->n[1] * lv->n[2]; }

static int levels_check(const struct ac_train_levels *lv, char *err) {
    for (int j = 0; j < AC_CTRL_N_HEADS; j++)
        if (lv->n[j] < 1 || lv->n[j] > AC_CTRL_MAX_LEVELS)
            return ac_errf(err, "level list %d has %d entries (must be 1..%d)", j, lv->n[j], AC_CTRL_MAX_LEVELS);
    for (int i = 0; i < lv->n[0]; i++)
        if (lv->quant_names[i][0] == '\0') return ac_errf(err, "quantization level %d has no name", i);
    return 0;
}

/* ------------------------------------------------------------------------
 * building */

int ac_train_dataset_new(struct ac_train_dataset **out, const struct ac_train_levels *lv, char *err) {
    if (levels_check(lv, err) != 0) return -1;
    struct ac_train_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return ac_errf(err, "dataset: out of memory");
    ds->levels = *lv;
    ds->n_configs = ac_train_levels_n_configs(lv);
    *out = ds;
    return 0;
}

void ac_train_dataset_free(struct ac_train_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n_domains; i++) free(ds->domains[i]);
    free(ds->domains);
    free(ds->tasks);
    free(ds->ids);
    free(ds->cost);
    free(ds->fid);
    free(ds->success);
    free(ds->known);
    free(ds);
}

static int find_or_add_domain(struct ac_train_dataset *ds, const char *name, char *err) {
    for (int i = 0; i < ds->n_domains; i++)
        if (strcmp(ds->domains[i], name) == 0) return i;
    char **d = realloc(ds->domains, sizeof *d * (size_t)(ds->n_domains + 1));
    if (!d) return ac_errf(err, "dataset: out of memory");
    ds->domains = d;
    d[ds->n_domains] = strdup(name);
    if (!d[ds->n_domains]) return ac_errf(err, "dataset: out of memory");
    return ds->n_domains++;
}

static int grow(void **p, size_t elem, size_t need, size_t *cap) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, elem * n);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

int ac_train_dataset_add(struct ac_train_dataset *ds, const int32_t *ids, int n_ids, const char *domain,
                         const float *cost, const float *fid, const int8_t *success, const uint8_t *known,
                         char *err) {
    if (n_ids < 1 || n_ids > MAX_IDS_PER_TASK) return ac_errf(err, "task has %d token ids (must be 1..%d)", n_ids, MAX_IDS_PER_TASK);
    if (!domain || !domain[0]) return ac_errf(err, "task has no domain");
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < 0) return ac_errf(err, "token id %d is negative", (int)ids[i]);
    int n_known = 0;
    for (int i = 0; i < ds->n_configs; i++) {
        if (known && !known[i]) continue;
        n_known++;
        if (!isfinite(cost[i]) || cost[i] < 0.0f) return ac_errf(err, "cost[%d] = %g is not a finite number >= 0", i, (double)cost[i]);
        if (!(fid[i] >= 0.0f && fid[i] <= 1.0f)) return ac_errf(err, "fidelity[%d] = %g is not in [0, 1]", i, (double)fid[i]);
    }
    if (n_known == 0) return ac_errf(err, "task has no measured configuration");
    size_t cap = (size_t)ds->cap, nc = (size_t)ds->n_configs, n = (size_t)ds->n_tasks + 1;
    if (n > cap) {
        size_t new_cap = cap;
        if (grow((void **)&ds->tasks, sizeof *ds->tasks, n, &new_cap) != 0) return ac_errf(err, "dataset: out of memory");
        float *c = realloc(ds->cost, sizeof(float) * nc * new_cap);
        if (c) ds->cost = c;
        float *f = realloc(ds->fid, sizeof(float) * nc * new_cap);
        if (f) ds->fid = f;
        int8_t *s = realloc(ds->success, nc * new_cap);
        if (s) ds->success = s;
        uint8_t *k = realloc(ds->known, nc * new_cap);
        if (k) ds->known = k;
        if (!c || !f || !s || !k) return ac_errf(err, "dataset: out of memory");
        ds->cap = (int)new_cap;
    }
    if (grow((void **)&ds->ids, sizeof(int32_t), ds->n_ids + (size_t)n_ids, &ds->ids_cap) != 0)
        return ac_errf(err, "dataset: out of memory");
    int dom = find_or_add_domain(ds, domain, err);
    if (dom < 0) return -1;
    struct ac_train_task *t = &ds->tasks[ds->n_tasks];
    t->ids_off = ds->n_ids;
    t->n_ids = n_ids;
    t->domain = dom;
    memcpy(ds->ids + ds->n_ids, ids, sizeof(int32_t) * (size_t)n_ids);
    ds->n_ids += (size_t)n_ids;
    size_t row = (size_t)ds->n_tasks * nc;
    for (size_t i = 0; i < nc; i++) {
        ds->known[row + i] = !known || known[i];
        ds->cost[row + i] = ds->known[row + i] ? cost[i] : 0.0f;
        ds->fid[row + i] = ds->known[row + i] ? fid[i] : 0.0f;
    }
    if (success)
        memcpy(ds->success + row, success, nc);
    else
        memset(ds->success + row, -1, nc);
    ds->n_tasks++;
    return 0;
}

/* ------------------------------------------------------------------------
 * JSONL */

/* The failures return -1 themselves rather than ac_errf's value: ac_errf
 * is defined in another file, and clang's analyzer would otherwise follow a
 * half-filled lv into ac_train_dataset_new. */
static int parse_levels(const cJSON *root, struct ac_train_levels *lv, char *err) {
    const cJSON *levels = cJSON_GetObjectItemCaseSensitive(root, "levels");
    if (!cJSON_IsObject(levels)) {
        ac_errf(err, "the first line must be {\"levels\": {...}}");
        return -1;
    }
    memset(lv, 0, sizeof *lv);
    static const char *const keys[AC_CTRL_N_HEADS] = {"quant", "prune", "sparsity"};
    for (int j = 0; j < AC_CTRL_N_HEADS; j++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(levels, keys[j]);
        if (!cJSON_IsArray(arr)) {
            ac_errf(err, "levels.%s must be an array", keys[j]);
            return -1;
        }
        int n = cJSON_GetArraySize(arr);
        if (n < 1 || n > AC_CTRL_MAX_LEVELS) {
            ac_errf(err, "levels.%s has %d entries (must be 1..%d)", keys[j], n, AC_CTRL_MAX_LEVELS);
            return -1;
        }
        lv->n[j] = n;
        int i = 0;
        for (const cJSON *it = arr->child; it; it = it->next, i++) {
            if (j == 0) {
                if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= AC_CTRL_NAME_LEN) {
                    ac_errf(err, "levels.quant[%d] must be a name of 1..%d characters", i, AC_CTRL_NAME_LEN - 1);
                    return -1;
                }
                snprintf(lv->quant_names[i], AC_CTRL_NAME_LEN, "%s", it->valuestring);
            } else {
                if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0.0 && it->valuedouble < 1.0)) {
                    ac_errf(err, "levels.%s[%d] must be a number in [0, 1)", keys[j], i);
                    return -1;
                }
                (j == 1 ? lv->prune : lv->sparsity)[i] = (float)it->valuedouble;
            }
        }
    }
    return 0;
}

/* nulls: NULL (a null entry is an error), or per entry 1 where it is null. */
static int parse_numbers(const cJSON *obj, const char *key, int n, float *out, bool required, bool *present,
                         uint8_t *nulls, char *err) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (present) *present = arr != NULL;
    if (!arr) return required ? ac_errf(err, "missing \"%s\"", key) : 0;
    if (!cJSON_IsArray(arr)) return ac_errf(err, "\"%s\" must be an array", key);
    int got = cJSON_GetArraySize(arr);
    if (got != n)
        return ac_errf(err, "\"%s\" has %d values, the levels define %d configurations", key, got, n);
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        if (nulls) nulls[i] = cJSON_IsNull(it);
        if (nulls && nulls[i])
            out[i] = 0.0f;
        else if (cJSON_IsBool(it))
            out[i] = cJSON_IsTrue(it) ? 1.0f : 0.0f;
        else if (cJSON_IsNumber(it))
            out[i] = (float)it->valuedouble;
        else
            return ac_errf(err, "\"%s\"[%d] is not a number", key, i);
    }
    return 0;
}

/* succ: 3 * n_configs bytes of scratch (success flags, then null marks). */
static int parse_task(struct ac_train_dataset *ds, const cJSON *root, float *cost, float *fid, float *succ_f,
                      int8_t *succ, char *err) {
    const cJSON *dom = cJSON_GetObjectItemCaseSensitive(root, "domain");
    if (!cJSON_IsString(dom) || !dom->valuestring[0]) return ac_errf(err, "\"domain\" must be a non-empty string");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
    if (!cJSON_IsArray(ids)) return ac_errf(err, "\"ids\" must be an array of token ids");
    int n = cJSON_GetArraySize(ids);
    if (n < 1 || n > MAX_IDS_PER_TASK) return ac_errf(err, "\"ids\" has %d entries (must be 1..%d)", n, MAX_IDS_PER_TASK);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)n);
    if (!v) return ac_errf(err, "out of memory");
    int i = 0;
    for (const cJSON *it = ids->child; it; it = it->next, i++) {
        double x = it->valuedouble;
        if (!cJSON_IsNumber(it) || x < 0 || x > 2147483647.0 || x != floor(x)) {
            free(v);
            return ac_errf(err, "\"ids\"[%d] is not a token id", i);
        }
        v[i] = (int32_t)x;
    }
    bool has_success = false;
    int rc = -1;
    const int nc = ds->n_configs;
    uint8_t *cost_null = (uint8_t *)succ + nc, *known = (uint8_t *)succ + 2 * nc;
    if (parse_numbers(root, "cost", nc, cost, true, NULL, cost_null, err) != 0 ||
        parse_numbers(root, "fidelity", nc, fid, true, NULL, known, err) != 0 ||
        parse_numbers(root, "success", nc, succ_f, false, &has_success, NULL, err) != 0)
        goto done;
    for (int c = 0; c < nc; c++) {
        if (cost_null[c] && !known[c]) {
            ac_errf(err, "\"cost\"[%d] is null but \"fidelity\"[%d] is not", c, c);
            goto done;
        }
        known[c] = !known[c]; /* the null marks become the measured flags */
        succ[c] = (int8_t)(succ_f[c] != 0.0f);
    }
    rc = ac_train_dataset_add(ds, v, n, dom->valuestring, cost, fid, has_success ? succ : NULL, known, err);
done:
    free(v);
    return rc;
}

int ac_train_dataset_load_jsonl(struct ac_train_dataset **out, const char *path, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return ac_errf(err, "%s: %s", path, strerror(errno));
    struct ac_train_dataset *ds = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    float *buf = NULL;
    int8_t *succ = NULL;
    int rc = -1;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t k = (size_t)len;
        while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t')) k--;
        size_t s = 0;
        while (s < k && (line[s] == ' ' || line[s] == '\t')) s++;
        if (s == k) continue;
        if (k > MAX_LINE_BYTES) {
            ac_errf(err, "%s:%ld: line longer than %u bytes", path, lineno, MAX_LINE_BYTES);
            goto done;
        }
        cJSON *root = cJSON_ParseWithLength(line + s, k - s);
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            ac_errf(err, "%s:%ld: not a JSON object", path, lineno);
            goto done;
        }
        int r;
        if (!ds) {
            struct ac_train_levels lv;
            r = parse_levels(root, &lv, err);
            if (r == 0) r = ac_train_dataset_new(&ds, &lv, err);
            if (r == 0 && ds) {
                buf = malloc(sizeof(float) * 3 * (size_t)ds->n_configs);
                succ = malloc(3 * (size_t)ds->n_configs);
                if (!buf || !succ) r = ac_errf(err, "out of memory");
            }
        } else {
            r = parse_task(ds, root, buf, buf + ds->n_configs, buf + 2 * ds->n_configs, succ, err);
        }
        cJSON_Delete(root);
        if (r != 0) {
            ac_err_prefix(err, "%s:%ld", path, lineno);
            goto done;
        }
    }
    if (ferror(f)) {
        ac_errf(err, "%s: read error", path);
        goto done;
    }
    if (!ds) {
        ac_errf(err, "%s: empty file (no levels line)", path);
        goto done;
    }
    *out = ds;
    ds = NULL;
    rc = 0;
done:
    free(line);
    free(buf);
    free(succ);
    fclose(f);
    ac_train_dataset_free(ds);
    return rc;
}

int ac_train_dataset_save_jsonl(const struct ac_train_dataset *ds, const char *path, char *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) return ac_errf(err, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return ac_errf(err, "%s: %s", tmp, strerror(errno));
    const struct ac_train_levels *lv = &ds->levels;
    fprintf(f, "{\"levels\": {\"quant\": [");
    for (int i = 0; i < lv->n[0]; i++) fprintf(f, "%s\"%s\"", i ? ", " : "", lv->quant_names[i]);
    fprintf(f, "], \"prune\": [");
    for (int i = 0; i < lv->n[1]; i++) fprintf(f, "%s%.9g", i ? ", " : "", (double)lv->prune[i]);
    fprintf(f, "], \"sparsity\": [");
    for (int i = 0; i < lv->n[2]; i++) fprintf(f, "%s%.9g", i ? ", " : "", (double)lv->sparsity[i]);
    fprintf(f, "]}}\n");
    for (int t = 0; t < ds->n_tasks; t++) {
        const size_t row = (size_t)t * (size_t)ds->n_configs;
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddStringToObject(o, "domain", ds->domains[ds->tasks[t].domain]);
        cJSON *ids = cJSON_AddArrayToObject(o, "ids");
        for (int i = 0; ids && i < ds->tasks[t].n_ids; i++)
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(ac_train_task_ids(ds, t)[i]));
        cJSON *cost = cJSON_AddArrayToObject(o, "cost"), *fid = cJSON_AddArrayToObject(o, "fidelity");
        bool known = ds->success[row] >= 0;
        cJSON *succ = known ? cJSON_AddArrayToObject(o, "success") : NULL;
        for (int c = 0; c < ds->n_configs; c++) {
            const bool measured = ds->known[row + c];
            if (cost) cJSON_AddItemToArray(cost, measured ? cJSON_CreateNumber(ds->cost[row + c]) : cJSON_CreateNull());
            if (fid) cJSON_AddItemToArray(fid, measured ? cJSON_CreateNumber(ds->fid[row + c]) : cJSON_CreateNull());
            if (succ) cJSON_AddItemToArray(succ, cJSON_CreateBool(ds->success[row + c] > 0));
        }
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s) break;
        fprintf(f, "%s\n", s);
        cJSON_free(s);
    }
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return ac_errf(err, "%s: write failed", path);
    }
    return 0;
}

/* Distinct values of a column, in first-appearance order (names) or
 * ascending (ratios). */
static int add_level_name(char names[][AC_CTRL_NAME_LEN], int *n, const char *v) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], v)) return i;
    if (*n >= AC_CTRL_MAX_LEVELS || strlen(v) >= AC_CTRL_NAME_LEN) return -1;
    snprintf(names[*n], AC_CTRL_NAME_LEN, "%s", v);
    return (*n)++;
}

static int add_level_value(float *vals, int *n, float v) {
    for (int i = 0; i < *n; i++)
        if (fabsf(vals[i] - v) < 1e-6f) return i;
    if (*n >= AC_CTRL_MAX_LEVELS) return -1;
    int i = (*n)++;
    while (i > 0 && vals[i - 1] > v) vals[i] = vals[i - 1], i--;
    vals[i] = v;
    return i;
}

static int level_of_name(char names[][AC_CTRL_NAME_LEN], int n, const char *v) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], v)) return i;
    return -1;
}

static int level_of(const float *vals, int n, float v) {
    for (int i = 0; i < n; i++)
        if (fabsf(vals[i] - v) < 1e-6f) return i;
    return -1;
}

/* The token ids of a stored JSON array ("[1,504,28]"), at most AC_CTRL_MAX_K. */
static int parse_id_list(const char *json, int32_t *ids) {
    int n = 0;
    for (const char *p = json; p && *p && n < AC_CTRL_MAX_K;) {
        char *end;
        const long v = strtol(p, &end, 10);
        if (end != p) {
            ids[n++] = (int32_t)v;
            p = end;
        } else {
            p++;
        }
    }
    return n;
}

/* A profile written by `agentcompress profile` (SQLite): every stage with
 * its task's first token ids becomes a task; every profiled configuration
 * its cost (the stage's weight bytes / the F16 reference's, else the
 * config's relative cost), fidelity and success. Configurations of the
 * quant x prune x sparsity grid that were not profiled get fidelity 0 and
 * cost 1e3, so training never prefers them. */
static int load_sqlite_profile(struct ac_train_dataset **out, const char *path, char *err) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct ac_train_dataset *ds = NULL;
    struct ac_train_levels lv;
    memset(&lv, 0, sizeof lv);
    int rc = -1, n_cfg_rows = 0, cfg_id[256], cfg_index[256];
    float cfg_rel[256];
    float *cost = NULL, *fid = NULL;
    int8_t *succ = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        ac_errf(err, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        goto done;
    }
    /* the level lists first, then each config's place in the grid */
    struct {
        int id;
        char variant[AC_CTRL_NAME_LEN];
        float prune, sparsity, rel;
    } cfg[256];
    if (sqlite3_prepare_v2(db, "SELECT id, variant, prune, sparsity, relative_cost FROM configs ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK) {
        ac_errf(err, "%s: not a profile (%s)", path, sqlite3_errmsg(db));
        goto done;
    }
    while (sqlite3_step(st) == SQLITE_ROW && n_cfg_rows < 256) {
        const char *v = (const char *)sqlite3_column_text(st, 1);
        cfg[n_cfg_rows].id = sqlite3_column_int(st, 0);
        snprintf(cfg[n_cfg_rows].variant, AC_CTRL_NAME_LEN, "%s", v ? v : "");
        cfg[n_cfg_rows].prune = (float)sqlite3_column_double(st, 2);
        cfg[n_cfg_rows].sparsity = (float)sqlite3_column_double(st, 3);
        cfg[n_cfg_rows].rel = (float)sqlite3_column_double(st, 4);
        if (add_level_name(lv.quant_names, &lv.n[0], cfg[n_cfg_rows].variant) < 0 ||
            add_level_value(lv.prune, &lv.n[1], cfg[n_cfg_rows].prune) < 0 ||
            add_level_value(lv.sparsity, &lv.n[2], cfg[n_cfg_rows].sparsity) < 0) {
            ac_errf(err, "%s: more than %d levels of a kind", path, AC_CTRL_MAX_LEVELS);
            goto done;
        }
        n_cfg_rows++;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (n_cfg_rows == 0) {
        ac_errf(err, "%s: the profile has no configurations", path);
        goto done;
    }
    for (int i = 0; i < n_cfg_rows; i++) {
        int q = 0;
        while (strcmp(lv.quant_names[q], cfg[i].variant) != 0) q++;
        cfg_id[i] = cfg[i].id;
        cfg_rel[i] = cfg[i].rel;
        cfg_index[i] = (q * lv.n[1] + level_of(lv.prune, lv.n[1], cfg[i].prune)) * lv.n[2] +
                       level_of(lv.sparsity, lv.n[2], cfg[i].sparsity);
    }
    if (ac_train_dataset_new(&ds, &lv, err) != 0 || !ds) goto done;
    const int nc = ds->n_configs;
    cost = malloc(sizeof(float) * (size_t)nc);
    fid = malloc(sizeof(float) * (size_t)nc);
    succ = malloc((size_t)nc);
    if (!cost || !fid || !succ) {
        ac_errf(err, "out of memory");
        goto done;
    }
    sqlite3_stmt *stages = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, domain, task_ids, f16_weight_bytes FROM stages WHERE task_ids IS NOT NULL "
                           "ORDER BY id",
                           -1, &stages, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT config_id, success, fidelity, weight_bytes FROM results WHERE stage_id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(stages);
        ac_errf(err, "%s: not a profile (%s)", path, sqlite3_errmsg(db));
        goto done;
    }
    while (sqlite3_step(stages) == SQLITE_ROW) {
        const int stage_id = sqlite3_column_int(stages, 0);
        const char *domain = (const char *)sqlite3_column_text(stages, 1);
        const char *ids_json = (const char *)sqlite3_column_text(stages, 2);
        const double f16_bytes = sqlite3_column_double(stages, 3);
        int32_t ids[AC_CTRL_MAX_K];
        const int n_ids = parse_id_list(ids_json, ids);
        if (n_ids == 0) continue;
        for (int k = 0; k < nc; k++) cost[k] = 1e3f, fid[k] = 0.0f, succ[k] = -1;
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, stage_id);
        int seen = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const int cid = sqlite3_column_int(st, 0);
            int i = 0;
            while (i < n_cfg_rows && cfg_id[i] != cid) i++;
            if (i == n_cfg_rows) continue;
            const int k = cfg_index[i];
            const double wb = sqlite3_column_double(st, 3);
            cost[k] = f16_bytes > 0 && wb > 0 ? (float)(wb / f16_bytes) : cfg_rel[i];
            fid[k] = (float)sqlite3_column_double(st, 2);
            succ[k] = (int8_t)(sqlite3_column_int(st, 1) != 0);
            seen++;
        }
        if (seen == 0) continue; /* not profiled yet (an interrupted profile) */
        if (ac_train_dataset_add(ds, ids, n_ids, domain ? domain : "", cost, fid, succ, NULL, err) != 0) {
            sqlite3_finalize(stages);
            goto done;
        }
    }
    sqlite3_finalize(stages);
    *out = ds;
    ds = NULL;
    rc = 0;
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    ac_train_dataset_free(ds);
    free(cost);
    free(fid);
    free(succ);
    return rc;
}

/* One measured request of a telemetry file. */
struct telemetry_row {
    char head[32 * 12 + 8]; /* the task's first ids as stored: the grouping key */
    int32_t ids[AC_CTRL_MAX_K];
    int n_ids;
    int variant; /* index into the server's variant list */
    float prune, sparsity;
    double fid, rel;
    long order;
};

static int compare_rows(const void *a, const void *b) {
    const struct telemetry_row *x = a, *y = b;
    const int c = strcmp(x->head, y->head);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* The distinct variant lists of the servers whose requests were measured:
 * exactly one, parsed into names (n_names), or an error. */
static int telemetry_variants(sqlite3 *db, const char *path, char names[][AC_CTRL_NAME_LEN], int *n_names,
                              char *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT DISTINCT s.variants FROM servers s JOIN requests r ON r.server_id = s.id "
                           "WHERE r.fidelity IS NOT NULL",
                           -1, &st, NULL) != SQLITE_OK)
        return ac_errf(err, "%s: telemetry without fidelity samples (serve with --telemetry-fidelity RATE)", path);
    char first[1024] = "";
    int n_sets = 0, rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (n_sets++ == 0)
            snprintf(first, sizeof first, "%s", v ? v : "");
        else
            rc = ac_errf(err, "%s: requests measured on different variant sets (%s and %s); train on one deployment's "
                         "telemetry", path, first, v ? v : "");
    }
    sqlite3_finalize(st);
    if (rc != 0) return -1;
    if (n_sets == 0)
        return ac_errf(err, "%s: no request has a fidelity sample (serve with --telemetry-fidelity RATE)", path);
    cJSON *arr = cJSON_Parse(first);
    *n_names = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it) || add_level_name(names, n_names, it->valuestring) < 0) {
            cJSON_Delete(arr);
            return ac_errf(err, "%s: the servers table's variant list %s is not one of 1..%d names", path, first,
                           AC_CTRL_MAX_LEVELS);
        }
    }
    cJSON_Delete(arr);
    if (level_of_name(names, *n_names, "f16") < 0)
        return ac_errf(err, "%s: its variants %s have no f16, the reference of fidelity", path, first);
    return 0;
}

/* A server's telemetry (src/server/telemetry.h): measured requests grouped
 * by the task's first ids; per group, each configuration seen gets its mean
 * relative cost and fidelity, plain f16 cost 1 and fidelity 1 (the
 * reference), everything else is unmeasured. The grid is the variants seen
 * (in the server's order) x the pruning ratios x the sparsities seen. A
 * group that measured nothing but plain f16 compares nothing: skipped. */
static int load_telemetry(struct ac_train_dataset **out, sqlite3 *db, const char *path, char *err) {
    char names[AC_CTRL_MAX_LEVELS][AC_CTRL_NAME_LEN];
    int n_names = 0;
    if (telemetry_variants(db, path, names, &n_names, err) != 0) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, variant, prune, sparsity, fidelity, relative_cost, head_ids FROM requests "
                           "WHERE fidelity IS NOT NULL ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return ac_errf(err, "%s: not a telemetry file (%s)", path, sqlite3_errmsg(db));
    struct telemetry_row *rows = NULL;
    size_t n_rows = 0, cap = 0;
    bool seen[AC_CTRL_MAX_LEVELS] = {false};
    struct ac_train_levels lv;
    memset(&lv, 0, sizeof lv);
    add_level_value(lv.prune, &lv.n[1], 0.0f); /* plain f16 is always in the grid */
    add_level_value(lv.sparsity, &lv.n[2], 0.0f);
    seen[level_of_name(names, n_names, "f16")] = true;
    struct ac_train_dataset *ds = NULL;
    float *cost = NULL, *fid = NULL;
    double *sum = NULL;
    uint8_t *known = NULL;
    int rc = -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *variant = (const char *)sqlite3_column_text(st, 1), *head = (const char *)sqlite3_column_text(st, 6);
        struct telemetry_row r = {.prune = (float)sqlite3_column_double(st, 2),
                                  .sparsity = (float)sqlite3_column_double(st, 3),
                                  .fid = sqlite3_column_double(st, 4),
                                  .rel = sqlite3_column_double(st, 5),
                                  .order = (long)n_rows};
        r.n_ids = parse_id_list(head, r.ids);
        if (r.n_ids == 0) continue; /* the task's text was empty */
        snprintf(r.head, sizeof r.head, "%s", head);
        r.variant = variant ? level_of_name(names, n_names, variant) : -1;
        if (r.variant < 0) {
            ac_errf(err, "%s: request %lld ran on '%s', which is not one of its server's variants", path,
                    (long long)sqlite3_column_int64(st, 0), variant ? variant : "(none)");
            goto done;
        }
        if (!(r.fid >= 0.0 && r.fid <= 1.0) || !(r.rel >= 0.0) || !isfinite(r.rel)) {
            ac_errf(err, "%s: request %lld has fidelity %g and relative cost %g", path,
                    (long long)sqlite3_column_int64(st, 0), r.fid, r.rel);
            goto done;
        }
        if (add_level_value(lv.prune, &lv.n[1], r.prune) < 0 || add_level_value(lv.sparsity, &lv.n[2], r.sparsity) < 0) {
            ac_errf(err, "%s: more than %d pruning ratios or sparsities", path, AC_CTRL_MAX_LEVELS);
            goto done;
        }
        seen[r.variant] = true;
        if (grow((void **)&rows, sizeof *rows, n_rows + 1, &cap) != 0) {
            ac_errf(err, "out of memory");
            goto done;
        }
        rows[n_rows++] = r;
    }
    if (n_rows == 0) {
        ac_errf(err, "%s: no measured request has task token ids", path);
        goto done;
    }
    int quant_of[AC_CTRL_MAX_LEVELS]; /* server variant -> quant level */
    for (int i = 0; i < n_names; i++) {
        quant_of[i] = seen[i] ? lv.n[0] : -1;
        if (seen[i]) snprintf(lv.quant_names[lv.n[0]++], AC_CTRL_NAME_LEN, "%s", names[i]);
    }
    if (ac_train_dataset_new(&ds, &lv, err) != 0) goto done;
    const int nc = ds->n_configs;
    const int ref = (quant_of[level_of_name(names, n_names, "f16")] * lv.n[1] + 0) * lv.n[2] + 0;
    cost = malloc(sizeof(float) * (size_t)nc);
    fid = malloc(sizeof(float) * (size_t)nc);
    sum = malloc(sizeof(double) * 3 * (size_t)nc); /* fidelity, cost, count */
    known = malloc((size_t)nc);
    if (!cost || !fid || !sum || !known) {
        ac_errf(err, "out of memory");
        goto done;
    }
    qsort(rows, n_rows, sizeof *rows, compare_rows);
    for (size_t g = 0; g < n_rows;) {
        size_t end = g;
        while (end < n_rows && !strcmp(rows[end].head, rows[g].head)) end++;
        memset(sum, 0, sizeof(double) * 3 * (size_t)nc);
        bool compares = false;
        for (size_t i = g; i < end; i++) {
            const int k = (quant_of[rows[i].variant] * lv.n[1] + level_of(lv.prune, lv.n[1], rows[i].prune)) * lv.n[2] +
                          level_of(lv.sparsity, lv.n[2], rows[i].sparsity);
            sum[k] += rows[i].fid;
            sum[nc + k] += rows[i].rel;
            sum[2 * nc + k] += 1.0;
            compares |= k != ref;
        }
        for (int k = 0; k < nc; k++) {
            const double n = sum[2 * nc + k];
            known[k] = n > 0.0 || k == ref;
            fid[k] = k == ref ? 1.0f : n > 0.0 ? (float)(sum[k] / n) : 0.0f;
            cost[k] = k == ref ? 1.0f : n > 0.0 ? (float)(sum[nc + k] / n) : 0.0f;
        }
        if (compares &&
            ac_train_dataset_add(ds, rows[g].ids, rows[g].n_ids, "telemetry", cost, fid, NULL, known, err) != 0)
            goto done;
        g = end;
    }
    if (ds->n_tasks == 0) {
        ac_errf(err, "%s: every measured request ran on plain f16 (the reference): nothing to compare", path);
        goto done;
    }
    *out = ds;
    ds = NULL;
    rc = 0;
done:
    sqlite3_finalize(st);
    ac_train_dataset_free(ds);
    free(rows);
    free(cost);
    free(fid);
    free(sum);
    free(known);
    return rc;
}

/* An SQLite file: a profile (table configs) or a server's telemetry (table requests). */
static int load_sqlite(struct ac_train_dataset **out, const char *path, char *err) {
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        ac_errf(err, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    bool profile = false, telemetry = false;
    if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            profile |= name && !strcmp(name, "configs");
            telemetry |= name && !strcmp(name, "requests");
        }
    sqlite3_finalize(st);
    int rc;
    if (profile || !telemetry) {
        sqlite3_close(db);
        return load_sqlite_profile(out, path, err);
    }
    rc = load_telemetry(out, db, path, err);
    sqlite3_close(db);
    return rc;
}

int ac_train_load_profile(struct ac_train_dataset **out, const char *path, char *err) {
    size_t n = strlen(path);
    if (n >= 6 && strcmp(path + n - 6, ".jsonl") == 0) return ac_train_dataset_load_jsonl(out, path, err);
    char magic[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return ac_errf(err, "%s: %s", path, strerror(errno));
    const size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got == sizeof magic && !memcmp(magic, "SQLite format 3", 16)) return load_sqlite(out, path, err);
    return ac_errf(err, "%s: not a profile (an `agentcompress profile` SQLite file, a server's telemetry or a "
                   ".jsonl dataset)", path);
}

/* ------------------------------------------------------------------------
 * subsets */

int ac_train_dataset_select(struct ac_train_dataset **out, const struct ac_train_dataset *src, const int *idx, int n,
                            char *err) {
    struct ac_train_dataset *ds = NULL;
    if (ac_train_dataset_new(&ds, &src->levels, err) != 0 || !ds) return -1;
    const size_t nc = (size_t)src->n_configs;
    for (int i = 0; i < n; i++) {
        int t = idx[i];
        if (t < 0 || t >= src->n_tasks) {
            ac_train_dataset_free(ds);
            return ac_errf(err, "dataset: task index %d out of range", t);
        }
        if (ac_train_dataset_add(ds, ac_train_task_ids(src, t), src->tasks[t].n_ids, src->domains[src->tasks[t].domain],
                                 src->cost + t * nc, src->fid + t * nc, src->success[t * nc] >= 0 ? src->success + t * nc : NULL,
                                 src->known + t * nc, err) != 0) {
            ac_train_dataset_free(ds);
            return -1;
        }
    }
    *out = ds;
    return 0;
}

static bool in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

int ac_train_dataset_filter_domains(struct ac_train_dataset **out, const struct ac_train_dataset *src,
                                    const char *domains, char *err) {
    int *idx = malloc(sizeof(int) * (size_t)(src->n_tasks + 1));
    if (!idx) return ac_errf(err, "out of memory");
    int n = 0;
    for (int t = 0; t < src->n_tasks; t++)
        if (in_list(domains, src->domains[src->tasks[t].domain])) idx[n++] = t;
    int rc = n == 0 ? ac_errf(err, "no task has a domain in \"%s\"", domains) : ac_train_dataset_select(out, src, idx, n, err);
    free(idx);
    return rc;
}

int ac_train_dataset_split(const struct ac_train_dataset *src, float dev_frac, uint64_t seed,
                           struct ac_train_dataset **train, struct ac_train_dataset **dev, char *err) {
    if (!(dev_frac >= 0.0f && dev_frac < 1.0f)) return ac_errf(err, "dev fraction %g not in [0, 1)", (double)dev_frac);
    int n = src->n_tasks;
    int *idx = malloc(sizeof(int) * (size_t)(n + 1));
    if (!idx) return ac_errf(err, "out of memory");
    for (int i = 0; i < n; i++) idx[i] = i;
    struct ac_nn_rng rng;
    ac_nn_rng_seed(&rng, seed);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)ac_nn_rng_below(&rng, (uint32_t)i + 1);
        int tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
    }
    int n_dev = (int)lroundf(dev_frac * (float)n);
    if (dev_frac > 0.0f && n >= 2 && n_dev < 1) n_dev = 1;
    if (n_dev >= n) n_dev = n - 1;
    if (n_dev < 0) n_dev = 0;
    struct ac_train_dataset *a = NULL, *b = NULL;
    int rc = -1;
    if (ac_train_dataset_select(&b, src, idx, n_dev, err) == 0 &&
        ac_train_dataset_select(&a, src, idx + n_dev, n - n_dev, err) == 0) {
        *train = a;
        *dev = b;
        a = b = NULL;
        rc = 0;
    }
    ac_train_dataset_free(a);
    ac_train_dataset_free(b);
    free(idx);
    return rc;
}

int ac_train_dataset_check(const struct ac_train_dataset *ds, const struct ac_controller_config *c, char *err) {
    const struct ac_train_levels *lv = &ds->levels;
    int nc = ac_controller_n_configs(c);
    if (ds->n_configs != nc)
        return ac_errf(err, "the profile has %d configurations (%dx%dx%d), the controller %d (%dx%dx%d)", ds->n_configs,
                       lv->n[0], lv->n[1], lv->n[2], nc, c->n_levels[0], c->n_levels[1], c->n_levels[2]);
    for (int j = 0; j < AC_CTRL_N_HEADS; j++)
        if (lv->n[j] != c->n_levels[j]) return ac_errf(err, "the profile's level lists differ from the controller's");
    for (int i = 0; i < lv->n[0]; i++)
        if (strcmp(lv->quant_names[i], c->quant_names[i]) != 0)
            return ac_errf(err, "quantization level %d: the profile has %s, the controller %s", i, lv->quant_names[i],
                           c->quant_names[i]);
    for (int i = 0; i < lv->n[1]; i++)
        if (fabsf(lv->prune[i] - c->prune_levels[i]) > 1e-6f) return ac_errf(err, "prune level %d differs", i);
    for (int i = 0; i < lv->n[2]; i++)
        if (fabsf(lv->sparsity[i] - c->sparsity_levels[i]) > 1e-6f) return ac_errf(err, "sparsity level %d differs", i);
    return 0;
}

/* ------------------------------------------------------------------------
 * ground truth */

int ac_train_task_best(const struct ac_train_dataset *ds, int task, float theta) {
    const size_t row = (size_t)task * ds->n_configs;
    const float *cost = ds->cost + row, *fid = ds->fid + row;
    const uint8_t *known = ds->known + row;
    int best = -1, most_faithful = -1;
    for (int c = 0; c < ds->n_configs; c++) {
        if (!known[c]) continue;
        if (most_faithful < 0 || fid[c] > fid[most_faithful]) most_faithful = c;
        if (fid[c] >= theta && (best < 0 || cost[c] < cost[best])) best = c;
    }
    return best >= 0 ? best : most_faithful;
}

float ac_train_task_target(const struct ac_train_dataset *ds, int task, float theta, enum ac_target_kind kind) {
    const int nc = ds->n_configs;
    const size_t row = (size_t)task * nc;
    const float *cost = ds->cost + row, *fid = ds->fid + row;
    const uint8_t *known = ds->known + row;
    if (kind == AC_TARGET_FID) {
        int cheapest = -1;
        for (int c = 0; c < nc; c++)
            if (known[c] && (cheapest < 0 || cost[c] < cost[cheapest])) cheapest = c;
        return 1.0f - fid[cheapest];
    }
    int n_known = 0;
    for (int c = 0; c < nc; c++) n_known += known[c];
    if (n_known == 1) return 0.0f;
    int best = ac_train_task_best(ds, task, theta);
    if (fid[best] < theta) return 1.0f;
    /* rank of best in cost order among the measured (ties broken by index, as in _best) */
    int rank = 0;
    for (int c = 0; c < nc; c++)
        if (known[c] && (cost[c] < cost[best] || (c < best && cost[c] == cost[best]))) rank++;
    return (float)rank / (float)(n_known - 1);
}
