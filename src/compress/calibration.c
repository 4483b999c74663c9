/* calibration.c - see calibration.h. */
#include "compress/calibration.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "compress/compress.h"

const float ac_calib_default_levels[4] = {0.0f, 0.25f, 0.4f, 0.5f};

void ac_calibration_free(struct ac_calibration *c) {
    free(c->block_influence);
    free(c->prune_order);
    free(c->thresholds);
    memset(c, 0, sizeof *c);
}

static int alloc_arrays(struct ac_calibration *c, int n_layers, int n_levels, char *err) {
    c->n_layers = n_layers;
    c->n_levels = n_levels;
    c->block_influence = calloc((size_t)n_layers, sizeof(float));
    c->prune_order = calloc((size_t)n_layers, sizeof(int));
    c->thresholds = calloc((size_t)n_layers * AC_SITE_COUNT * n_levels, sizeof(float));
    if (!c->block_influence || !c->prune_order || !c->thresholds) {
        ac_calibration_free(c);
        return ac_errf(err, "out of memory");
    }
    return 0;
}

/* prune_order: layers sorted by influence, ties by id (stable) */
static void order_layers(struct ac_calibration *c) {
    for (int i = 0; i < c->n_layers; i++) c->prune_order[i] = i;
    for (int i = 1; i < c->n_layers; i++)
        for (int j = i; j > 0; j--) {
            const int a = c->prune_order[j - 1], b = c->prune_order[j];
            if (c->block_influence[b] >= c->block_influence[a]) break;
            c->prune_order[j - 1] = b;
            c->prune_order[j] = a;
        }
}

int ac_calibration_compute(const struct ac_model *m, const int32_t *tokens, int n_tokens, int n_ctx, int n_threads,
                           const float *levels, int n_levels, struct ac_calibration *out, char *err) {
    memset(out, 0, sizeof *out);
    if (n_levels < 1 || n_levels > AC_CALIB_MAX_LEVELS || levels[0] != 0.0f)
        return ac_errf(err, "sparsity levels: 1 to %d values starting at 0", AC_CALIB_MAX_LEVELS);
    for (int k = 1; k < n_levels; k++)
        if (!(levels[k] > levels[k - 1] && levels[k] < 1.0f))
            return ac_errf(err, "sparsity levels must ascend within [0, 1)");
    if (alloc_arrays(out, m->cfg.n_layers, n_levels, err) != 0) return -1;
    memcpy(out->levels, levels, sizeof(float) * (size_t)n_levels);
    if (ac_calibrate(m, tokens, n_tokens, n_ctx, n_threads, levels, n_levels, out->block_influence, out->thresholds,
                     err) != 0) {
        ac_calibration_free(out);
        return -1;
    }
    out->n_tokens = n_tokens;
    order_layers(out);
    return 0;
}

static const char *const site_names[AC_SITE_COUNT] = {"attn_in", "attn_out", "ffn_in", "ffn_down"};

cJSON *ac_calibration_to_json(const struct ac_calibration *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "n_tokens", c->n_tokens);
    cJSON *bi = cJSON_AddArrayToObject(j, "block_influence");
    cJSON *order = cJSON_AddArrayToObject(j, "prune_order");
    for (int l = 0; l < c->n_layers; l++) {
        cJSON_AddItemToArray(bi, cJSON_CreateNumber(c->block_influence[l]));
        cJSON_AddItemToArray(order, cJSON_CreateNumber(c->prune_order[l]));
    }
    cJSON *lv = cJSON_AddArrayToObject(j, "sparsity_levels");
    for (int k = 0; k < c->n_levels; k++) cJSON_AddItemToArray(lv, cJSON_CreateNumber(c->levels[k]));
    cJSON *sites = cJSON_AddArrayToObject(j, "sites");
    for (int s = 0; s < AC_SITE_COUNT; s++) cJSON_AddItemToArray(sites, cJSON_CreateString(site_names[s]));
    /* thresholds[layer][site][level] */
    cJSON *th = cJSON_AddArrayToObject(j, "thresholds");
    for (int l = 0; l < c->n_layers; l++) {
        cJSON *per_layer = cJSON_CreateArray();
        for (int s = 0; s < AC_SITE_COUNT; s++) {
            cJSON *per_site = cJSON_CreateArray();
            for (int k = 0; k < c->n_levels; k++)
                cJSON_AddItemToArray(per_site, cJSON_CreateNumber(
                                                   c->thresholds[((size_t)l * AC_SITE_COUNT + s) * c->n_levels + k]));
            cJSON_AddItemToArray(per_layer, per_site);
        }
        cJSON_AddItemToArray(th, per_layer);
    }
    return j;
}

static int number_array(const cJSON *a, int n, const char *what, char *err) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return ac_errf(err, "calibration: '%s' must be an array of %d", what, n);
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (!cJSON_IsNumber(e)) return ac_errf(err, "calibration: '%s' holds a non-number", what);
    return 0;
}

int ac_calibration_from_json(const cJSON *j, int n_layers, struct ac_calibration *out, char *err) {
    memset(out, 0, sizeof *out);
    const cJSON *bi = cJSON_GetObjectItem(j, "block_influence"), *order = cJSON_GetObjectItem(j, "prune_order");
    const cJSON *lv = cJSON_GetObjectItem(j, "sparsity_levels"), *th = cJSON_GetObjectItem(j, "thresholds");
    const int n_levels = cJSON_GetArraySize(lv);
    if (n_levels < 1 || n_levels > AC_CALIB_MAX_LEVELS) return ac_errf(err, "calibration: bad 'sparsity_levels'");
    if (number_array(bi, n_layers, "block_influence", err) || number_array(order, n_layers, "prune_order", err) ||
        number_array(lv, n_levels, "sparsity_levels", err))
        return -1;
    if (!cJSON_IsArray(th) || cJSON_GetArraySize(th) != n_layers)
        return ac_errf(err, "calibration: 'thresholds' must hold %d layers", n_layers);
    if (alloc_arrays(out, n_layers, n_levels, err) != 0 || !out->block_influence) return -1;
    bool *seen = calloc((size_t)n_layers, 1);
    for (int l = 0; l < n_layers; l++) {
        out->block_influence[l] = (float)cJSON_GetArrayItem(bi, l)->valuedouble;
        const int o = (int)cJSON_GetArrayItem(order, l)->valuedouble;
        if (!seen || o < 0 || o >= n_layers || seen[o]) {
            free(seen);
            ac_calibration_free(out);
            return ac_errf(err, "calibration: 'prune_order' is not a permutation of the layers");
        }
        seen[o] = true;
        out->prune_order[l] = o;
        const cJSON *per_layer = cJSON_GetArrayItem(th, l);
        for (int s = 0; s < AC_SITE_COUNT; s++) {
            const cJSON *per_site = cJSON_GetArrayItem(per_layer, s);
            if (number_array(per_site, n_levels, "thresholds", err) != 0) {
                free(seen);
                ac_calibration_free(out);
                return -1;
            }
            for (int k = 0; k < n_levels; k++)
                out->thresholds[((size_t)l * AC_SITE_COUNT + s) * n_levels + k] =
                    (float)cJSON_GetArrayItem(per_site, k)->valuedouble;
        }
    }
    free(seen);
    for (int k = 0; k < n_levels; k++) out->levels[k] = (float)cJSON_GetArrayItem(lv, k)->valuedouble;
    const cJSON *nt = cJSON_GetObjectItem(j, "n_tokens");
    out->n_tokens = cJSON_IsNumber(nt) ? (int)nt->valuedouble : 0;
    return 0;
}

int ac_calibration_run_config(const struct ac_calibration *c, float prune, float sparsity, bool *skip,
                              float *thresholds, struct ac_run_config *rc, char *err) {
    memset(rc, 0, sizeof *rc);
    if (!(prune >= 0.0f && prune < 1.0f)) return ac_errf(err, "pruning ratio %g is outside [0, 1)", (double)prune);
    const int n_skip = (int)ceilf(prune * (float)c->n_layers - 1e-6f);
    if (n_skip > 0) {
        for (int l = 0; l < c->n_layers; l++) skip[l] = false;
        for (int k = 0; k < n_skip; k++) skip[c->prune_order[k]] = true;
        rc->skip_layer = skip;
    }
    if (sparsity > 0.0f) {
        int level = -1;
        for (int k = 0; k < c->n_levels; k++)
            if (fabsf(c->levels[k] - sparsity) < 1e-4f) level = k;
        if (level < 0) return ac_errf(err, "sparsity %g was not calibrated (run calibrate with that level)", (double)sparsity);
        for (int l = 0; l < c->n_layers; l++)
            for (int s = 0; s < AC_SITE_COUNT; s++)
                thresholds[l * AC_SITE_COUNT + s] = c->thresholds[((size_t)l * AC_SITE_COUNT + s) * c->n_levels + level];
        rc->sparse_threshold = thresholds;
    }
    return 0;
}

/* Transposed weights for sparse decode, from the f16 variant when there is one. */
static int prepare_sparse(struct ac_model *model, const char *dir, const struct ac_manifest *man, char *err) {
    const struct ac_manifest_variant *f16 = ac_manifest_find(man, "f16");
    if (!f16 || !f16->file) return ac_model_prepare_sparse(model, err);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, f16->file) >= (int)sizeof path) return ac_errf(err, "path too long");
    struct ac_model *source = NULL;
    if (ac_model_load(&source, path, err) != 0) return -1;
    const int rc = ac_model_prepare_sparse_from(model, source, err);
    ac_model_free(source);
    return rc;
}

int ac_variant_apply_config(struct ac_model *model, struct ac_context *ctx, const char *dir,
                            const struct ac_manifest *man, const char *file, float prune, float sparsity, char *err) {
    const cJSON *cal_json = NULL, *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(man->json, "variants")) {
        const cJSON *f = cJSON_GetObjectItem(v, "file");
        if (cJSON_IsString(f) && !strcmp(f->valuestring, file)) cal_json = cJSON_GetObjectItem(v, "calibration");
    }
    if (!cal_json) return ac_errf(err, "%s is not calibrated (run: agentcompress calibrate -V %s --text FILE)", file, dir);
    struct ac_calibration cal = {0};
    bool *skip = calloc((size_t)model->cfg.n_layers, sizeof(bool));
    float *thr = calloc((size_t)model->cfg.n_layers * AC_SITE_COUNT, sizeof(float));
    struct ac_run_config rc;
    int status = -1;
    if (!skip || !thr)
        ac_errf(err, "out of memory");
    else if (ac_calibration_from_json(cal_json, model->cfg.n_layers, &cal, err) == 0 &&
             ac_calibration_run_config(&cal, prune, sparsity, skip, thr, &rc, err) == 0 &&
             (!rc.sparse_threshold || prepare_sparse(model, dir, man, err) == 0) &&
             ac_context_set_run_config(ctx, &rc, err) == 0)
        status = 0;
    ac_calibration_free(&cal);
    free(skip);
    free(thr);
    return status;
}
