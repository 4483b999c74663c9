/* backend_routed.c - the variants backend: a variants directory served
 * through the variant cache, each request routed by the controller (or to
 * a fixed variant), or to the variant its `model` names. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "compress/calibration.h"
#include "compress/compress.h"
#include "controller/controller.h"
#include "model/model.h"
#include "runtime/cache.h"
#include "runtime/prompt_cache.h"
#include "server/fidelity.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

struct routed {
    struct ac_backend base;
    char dir[4096];
    struct ac_manifest *man;
    struct ac_variant_cache *cache;
    struct ac_controller *ctrl; /* NULL: every routed request goes to fixed */
    pthread_mutex_t ctrl_mu;    /* the controller's scratch is single-threaded */
    pthread_mutex_t config_mu;  /* ac_variant_apply_config may prepare a shared model: one at a time */
    struct ac_model *f16;       /* embeddings the controller reads, and the tokenizer's source */
    struct ac_tokenizer *tok;
    int fixed;                  /* variant index for routed requests without a controller */
    int n_ctx, n_threads;
    pthread_mutex_t pf_mu;
    int pf_next;    /* variant of the request expected next (-1: none) */
    int pf_running; /* variant the current run holds (-1: none yet) */
    struct ac_prompt_cache *prompts; /* contexts kept by configuration and load of its variant */
};

struct ac_prepared {
    int32_t *ids;
    int n_ids;
    int32_t task_ids[32]; /* what the router read */
    int n_task_ids;
    int variant;
    float prune, sparsity, complexity;
    double route_us;
};

static int routed_n_models(const struct ac_backend *b) { return 1 + ((const struct routed *)b)->man->n_variants; }

static const char *routed_model_name(const struct ac_backend *b, int i) {
    const struct routed *r = (const struct routed *)b;
    return i == 0 ? AC_ROUTER_NAME : r->man->variants[i - 1].name;
}

static int variant_index(const struct routed *r, const char *name) {
    for (int i = 0; i < r->man->n_variants; i++)
        if (!strcmp(r->man->variants[i].name, name)) return i;
    return -1;
}

/* The text the controller reads: the last user message (the task itself,
 * without the template), or the completion prompt. */
static const char *task_text(const struct ac_gen_request *req) {
    if (req->kind == AC_API_COMPLETION) return req->prompt;
    for (int i = req->n_messages - 1; i >= 0; i--)
        if (!strcmp(req->messages[i].role, "user")) return req->messages[i].content;
    return req->messages[req->n_messages - 1].content;
}

static int route(struct routed *r, const struct ac_gen_request *req, struct ac_prepared *p, struct ac_api_error *e) {
    p->complexity = -1.0f;
    if (!r->ctrl) {
        p->variant = r->fixed;
        return 0;
    }
    const char *text = task_text(req);
    int32_t ids[AC_CTRL_MAX_K];
    char err[AC_ERR_LEN];
    int n = ac_tokenize(r->tok, text, strlen(text), false, false, ids, AC_CTRL_MAX_K, err);
    if (n > AC_CTRL_MAX_K) n = AC_CTRL_MAX_K;
    p->n_task_ids = n < 32 ? (n > 0 ? n : 0) : 32;
    memcpy(p->task_ids, ids, sizeof(int32_t) * (size_t)p->n_task_ids);
    if (n <= 0) { /* nothing to read: the safe choice */
        p->variant = variant_index(r, "f16") >= 0 ? variant_index(r, "f16") : r->fixed;
        return 0;
    }
    struct ac_decision d;
    pthread_mutex_lock(&r->ctrl_mu);
    const int rc = ac_controller_decide(r->ctrl, ids, n, r->f16, &d, err);
    pthread_mutex_unlock(&r->ctrl_mu);
    if (rc != 0) return ac_api_errorf(e, 500, "server_error", NULL, NULL, "routing failed: %s", err);
    p->variant = variant_index(r, d.quant_name);
    p->prune = d.prune_ratio;
    p->sparsity = d.sparsity_target;
    p->complexity = d.complexity;
    p->route_us = d.seconds * 1e6;
    return 0;
}

static int routed_prepare(struct ac_backend *b, const struct ac_gen_request *req, struct ac_prepared **out,
                          struct ac_api_error *e) {
    struct routed *r = (struct routed *)b;
    *out = NULL;
    struct ac_prepared *p = calloc(1, sizeof *p);
    if (!p) return ac_api_errorf(e, 500, "server_error", NULL, NULL, "out of memory");
    int rc = 0;
    const char *named = req->variant ? req->variant : req->model;
    if (!named || !strcmp(named, AC_ROUTER_NAME)) {
        rc = route(r, req, p, e);
    } else {
        p->variant = variant_index(r, named);
        p->complexity = -1.0f;
        if (p->variant < 0)
            rc = req->variant ? ac_api_errorf(e, 400, "invalid_request_error", "model_not_found",
                                              "agentcompress.variant", "no variant '%.64s' (GET /v1/models lists them)",
                                              req->variant)
                              : ac_backend_model_not_found(req, e);
    }
    if (rc == 0 && p->n_task_ids == 0) { /* telemetry records the task's head whoever chose */
        const char *text = task_text(req);
        char err[AC_ERR_LEN];
        const int n = ac_tokenize(r->tok, text, strlen(text), false, false, p->task_ids, 32, err);
        p->n_task_ids = n < 0 ? 0 : n < 32 ? n : 32;
    }
    if (rc == 0) rc = ac_backend_prompt_ids(r->tok, req, r->n_ctx, &p->ids, &p->n_ids, e);
    if (rc != 0) {
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

static int routed_n_prompt(const struct ac_prepared *p) { return p->n_ids; }

/* Starts loading variant `next` in the background unless it is the one
 * running or remote; the cache decides whether it fits (ac_cache_prefetch). */
static void prefetch_variant(struct routed *r, int next, int running) {
    if (next < 0 || next >= r->man->n_variants || next == running || !r->man->variants[next].file) return;
    char err[AC_ERR_LEN]; /* a prefetch that cannot start only means the request loads it itself */
    (void)ac_cache_prefetch(r->cache, r->man->variants[next].name, NULL, err);
}

/* The next request's variant loads once the current run holds its own: a
 * prefetch then never evicts it nor delays its load. */
static void routed_prefetch(struct ac_backend *b, int next_group) {
    struct routed *r = (struct routed *)b;
    pthread_mutex_lock(&r->pf_mu);
    r->pf_next = next_group;
    const int running = r->pf_running;
    pthread_mutex_unlock(&r->pf_mu);
    if (running >= 0) prefetch_variant(r, next_group, running);
}

static void routed_cache_stats(struct ac_backend *b, struct ac_cache_stats *out) {
    ac_cache_get_stats(((struct routed *)b)->cache, out);
}

static int routed_run(struct ac_backend *b, struct ac_prepared *p, const struct ac_gen_request *req, ac_text_fn emit,
                      void *user, struct ac_run_result *res, char *err) {
    struct routed *r = (struct routed *)b;
    const struct ac_manifest_variant *v = &r->man->variants[p->variant];
    if (v->remote_url) {
        if (ac_remote_run(v->remote_url, v->remote_model, req, emit, user, res, err) != 0) return -1;
        /* its weights are read elsewhere: cost by the manifest's estimate */
        const struct ac_manifest_variant *f16 = ac_manifest_find(r->man, "f16");
        const double per_token = v->bytes_per_token ? (double)v->bytes_per_token
                                 : f16 ? v->relative_cost * (double)f16->bytes_per_token : 0.0;
        res->cost_bytes = per_token * (res->n_prompt + res->n_generated);
        res->variant = v->name;
        res->complexity = p->complexity;
        res->route_us = p->route_us;
        return 0;
    }
    struct ac_model *model;
    bool hit;
    if (ac_cache_acquire(r->cache, v->name, &model, &hit, err) != 0) return -1;
    pthread_mutex_lock(&r->pf_mu);
    r->pf_running = p->variant;
    const int next = r->pf_next;
    pthread_mutex_unlock(&r->pf_mu);
    prefetch_variant(r, next, p->variant);
    const struct ac_prompt_key key = {
        .variant = p->variant, .prune = p->prune, .sparsity = p->sparsity, .load_id = ac_cache_load_id(r->cache, v->name)};
    struct ac_context *ctx = ac_prompt_cache_take(r->prompts, &key, p->ids, p->n_ids);
    int rc = 0;
    if (!ctx) {
        struct ac_context_params cp = {.n_ctx = r->n_ctx, .n_threads = r->n_threads};
        rc = ac_context_new(&ctx, model, &cp, err);
        if (rc == 0 && (p->prune > 0.0f || p->sparsity > 0.0f)) {
            pthread_mutex_lock(&r->config_mu);
            rc = ac_variant_apply_config(model, ctx, r->dir, r->man, v->file, p->prune, p->sparsity, err);
            pthread_mutex_unlock(&r->config_mu);
        }
        if (rc == 0) ac_prompt_cache_seed(r->prompts, &key, p->ids, p->n_ids, ctx);
    }
    if (rc == 0) rc = ac_backend_generate(ctx, r->tok, p->ids, p->n_ids, req, emit, user, res, err);
    if (rc == 0)
        ac_prompt_cache_put(r->prompts, &key, ctx);
    else
        ac_context_free(ctx);
    pthread_mutex_lock(&r->pf_mu);
    r->pf_running = -1;
    pthread_mutex_unlock(&r->pf_mu);
    ac_cache_release(r->cache, v->name);
    if (rc != 0) return -1;
    res->variant = v->name;
    res->prune = p->prune;
    res->sparsity = p->sparsity;
    res->complexity = p->complexity;
    res->cache_hit = hit ? 1 : 0;
    res->route_us = p->route_us;
    res->n_task_ids = p->n_task_ids;
    memcpy(res->task_ids, p->task_ids, sizeof(int32_t) * (size_t)p->n_task_ids);
    return 0;
}

static int routed_group(const struct ac_prepared *p) { return p->variant; }

static int routed_fidelity(struct ac_backend *b, const struct ac_prepared *p, int n_generated, double *fidelity,
                           double *relative_cost, char *err) {
    struct routed *r = (struct routed *)b;
    const struct ac_manifest_variant *v = &r->man->variants[p->variant];
    if (v->remote_url || n_generated < 1) return 1;
    const struct ac_fidelity_env env = {
        .cache = r->cache, .dir = r->dir, .man = r->man, .tok = r->tok, .config_mu = &r->config_mu};
    return ac_fidelity_measure(&env, p->ids, p->n_ids, n_generated, v->name, p->prune, p->sparsity, fidelity,
                               relative_cost, err);
}

static void routed_prepared_free(struct ac_prepared *p) {
    if (!p) return;
    free(p->ids);
    free(p);
}

static void routed_free(struct ac_backend *b) {
    struct routed *r = (struct routed *)b;
    ac_prompt_cache_free(r->prompts);
    ac_cache_free(r->cache);
    ac_controller_free(r->ctrl);
    ac_tokenizer_free(r->tok);
    ac_model_free(r->f16);
    ac_manifest_free(r->man);
    pthread_mutex_destroy(&r->ctrl_mu);
    pthread_mutex_destroy(&r->config_mu);
    pthread_mutex_destroy(&r->pf_mu);
    free(r);
}

static const struct ac_backend_ops ROUTED_OPS = {
    .n_models = routed_n_models,
    .model_name = routed_model_name,
    .prepare = routed_prepare,
    .n_prompt = routed_n_prompt,
    .fidelity = routed_fidelity,
    .run = routed_run,
    .prepared_free = routed_prepared_free,
    .group = routed_group,
    .prefetch = routed_prefetch,
    .cache_stats = routed_cache_stats,
    .free = routed_free,
};

int ac_backend_routed_new(struct ac_backend **out, const struct ac_routed_params *p, char *err) {
    *out = NULL;
    struct routed *r = calloc(1, sizeof *r);
    if (!r) return ac_errf(err, "out of memory");
    r->base.ops = &ROUTED_OPS;
    pthread_mutex_init(&r->ctrl_mu, NULL);
    pthread_mutex_init(&r->config_mu, NULL);
    pthread_mutex_init(&r->pf_mu, NULL);
    r->pf_next = r->pf_running = -1;
    snprintf(r->dir, sizeof r->dir, "%s", p->dir);
    r->n_threads = p->n_threads;
    if (ac_prompt_cache_new(&r->prompts, p->prompt_cache, err) != 0) goto fail;
    char path[8192];
    if (ac_manifest_load(&r->man, p->dir, err) != 0) goto fail;
    /* embeddings and tokenizer: the f16 variant, else the first */
    const struct ac_manifest_variant *src = ac_manifest_find(r->man, "f16");
    for (int i = 0; (!src || !src->file) && i < r->man->n_variants; i++) src = &r->man->variants[i];
    if (!src || !src->file) {
        ac_errf(err, "%s/manifest.json has no local variant (the tokenizer and embeddings come from one)", p->dir);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/%s", p->dir, src->file);
    if (ac_model_load(&r->f16, path, err) != 0 || ac_tokenizer_load(&r->tok, r->f16->file, err) != 0) goto fail;
    r->n_ctx = p->n_ctx > 0 ? p->n_ctx : (r->f16->cfg.ctx_train < 4096 ? r->f16->cfg.ctx_train : 4096);
    r->fixed = 0;
    if (p->fixed_variant && (r->fixed = variant_index(r, p->fixed_variant)) < 0) {
        ac_errf(err, "%s/manifest.json has no variant '%s'", p->dir, p->fixed_variant);
        goto fail;
    }
    if (p->controller_path) {
        if (ac_controller_load(&r->ctrl, p->controller_path, err) != 0) goto fail;
        for (int q = 0; q < r->ctrl->cfg.n_levels[0]; q++)
            if (variant_index(r, r->ctrl->cfg.quant_names[q]) < 0) {
                ac_errf(err, "%s routes to variant '%s', which %s/manifest.json lacks", p->controller_path,
                        r->ctrl->cfg.quant_names[q], p->dir);
                goto fail;
            }
    }
    uint64_t largest = 0;
    for (int i = 0; i < r->man->n_variants; i++)
        if (r->man->variants[i].file && r->man->variants[i].bytes > largest) largest = r->man->variants[i].bytes;
    if (p->measure_fidelity && p->mem_budget && p->mem_budget < 2 * largest) {
        /* a measurement holds one variant while a request holds another */
        ac_errf(err, "measuring fidelity needs a memory budget of two of the largest variants (%.0f MB)",
                2.0 * (double)largest / 1e6);
        goto fail;
    }
    struct ac_cache_params cparams;
    ac_cache_params_default(&cparams);
    cparams.budget_bytes = p->mem_budget;
    if (ac_cache_new(&r->cache, p->dir, r->man, &cparams, err) != 0) goto fail;
    *out = &r->base;
    return 0;
fail:
    routed_free(&r->base);
    return -1;
}
