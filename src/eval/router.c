/* router.c - built-in routing rules and the controller adapter (router.h). */
#include "eval/router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "compress/compress.h"
#include "controller/controller.h"
#include "model/model.h"

struct policy {
    enum { POLICY_FIXED, POLICY_LEN } kind;
    long n;
    char cheap[AC_CONFIG_NAME_LEN], hard[AC_CONFIG_NAME_LEN];
};

static int policy_route(void *ctx, const int32_t *first_ids, int n, int n_total, const char *prompt,
                        struct ac_route_decision *out, char *err) {
    (void)first_ids, (void)n, (void)prompt, (void)err;
    const struct policy *p = ctx;
    const double t0 = ac_time_s();
    memset(out, 0, sizeof *out);
    if (p->kind == POLICY_FIXED) {
        snprintf(out->config, sizeof out->config, "%s", p->cheap);
    } else {
        out->score = n_total;
        snprintf(out->config, sizeof out->config, "%s", n_total <= p->n ? p->cheap : p->hard);
    }
    out->seconds = ac_time_s() - t0;
    return 0;
}

static int canon(const char *name, char *out, char *err) {
    struct ac_config_spec sp;
    if (ac_config_parse(name, &sp, err) != 0) return -1;
    ac_config_name(&sp, out, AC_CONFIG_NAME_LEN);
    return 0;
}

int ac_router_policy(struct ac_router *r, const char *rule, char *err) {
    memset(r, 0, sizeof *r);
    struct policy *p = calloc(1, sizeof *p);
    if (!p) return ac_errf(err, "out of memory");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", rule);
    char *save = NULL, *kind = strtok_r(buf, ":", &save);
    int rc = -1;
    if (kind && !strcmp(kind, "fixed")) {
        const char *c = strtok_r(NULL, ":", &save);
        p->kind = POLICY_FIXED;
        if (!c || strtok_r(NULL, ":", &save)) {
            ac_errf(err, "--policy fixed:CONFIG, got '%s'", rule);
            goto out;
        }
        if (canon(c, p->cheap, err) != 0) goto out;
    } else if (kind && !strcmp(kind, "len")) {
        const char *num = strtok_r(NULL, ":", &save), *cheap = strtok_r(NULL, ":", &save),
                   *hard = strtok_r(NULL, ":", &save);
        char *end;
        errno = 0;
        p->kind = POLICY_LEN;
        p->n = num ? strtol(num, &end, 10) : -1;
        if (!num || errno || *end || p->n < 0 || strtok_r(NULL, ":", &save)) {
            ac_errf(err, "--policy len:N[:CHEAP[:HARD]], got '%s'", rule);
            goto out;
        }
        if (canon(cheap ? cheap : "q4_0", p->cheap, err) != 0 || canon(hard ? hard : "f16", p->hard, err) != 0)
            goto out;
    } else {
        ac_errf(err, "unknown --policy '%s' (fixed:CONFIG or len:N[:CHEAP[:HARD]])", rule);
        goto out;
    }
    snprintf(r->name, sizeof r->name, "policy:%s", rule);
    r->ctx = p;
    r->route = policy_route;
    r->free = free;
    return 0;
out:
    free(p);
    return rc;
}

struct ctrl_router {
    struct ac_controller *ctrl;
    struct ac_model *f16;
};

static int ctrl_route(void *ctx, const int32_t *first_ids, int n, int n_total, const char *prompt,
                      struct ac_route_decision *out, char *err) {
    (void)n_total, (void)prompt;
    struct ctrl_router *c = ctx;
    struct ac_decision d;
    memset(out, 0, sizeof *out);
    if (n < 1) return ac_errf(err, "empty task");
    const double t0 = ac_time_s();
    if (ac_controller_decide(c->ctrl, first_ids, n, c->f16, &d, err) != 0) return -1;
    out->seconds = ac_time_s() - t0;
    struct ac_config_spec sp = {.prune = d.prune_ratio, .sparsity = d.sparsity_target};
    snprintf(sp.variant, sizeof sp.variant, "%s", d.quant_name);
    ac_config_name(&sp, out->config, sizeof out->config);
    out->score = d.complexity;
    out->has_complexity = true;
    return 0;
}

static void ctrl_free(void *ctx) {
    struct ctrl_router *c = ctx;
    if (!c) return;
    ac_controller_free(c->ctrl);
    ac_model_free(c->f16);
    free(c);
}

int ac_controller_open(const char *ctrl_path, const char *variants_dir, struct ac_manifest **man,
                       struct ac_controller **ctrl, struct ac_model **f16, char *err) {
    *man = NULL, *ctrl = NULL, *f16 = NULL;
    char path[4096];
    if (ac_manifest_load(man, variants_dir, err) != 0) goto fail;
    const struct ac_manifest_variant *v = ac_manifest_find(*man, "f16");
    if (!v || !v->file) {
        ac_errf(err, "%s: the manifest has no local f16 variant", variants_dir);
        goto fail;
    }
    if (snprintf(path, sizeof path, "%s/%s", variants_dir, v->file) >= (int)sizeof path) {
        ac_errf(err, "%s: path too long", variants_dir);
        goto fail;
    }
    if (ac_controller_load(ctrl, ctrl_path, err) != 0 || ac_model_load(f16, path, err) != 0) goto fail;
    for (int q = 0; q < (*ctrl)->cfg.n_levels[0]; q++)
        if (!ac_manifest_find(*man, (*ctrl)->cfg.quant_names[q])) {
            ac_errf(err, "%s: the controller routes to variant '%s', which %s/manifest.json lacks "
                         "(a controller trained for another variant set?)",
                    ctrl_path, (*ctrl)->cfg.quant_names[q], variants_dir);
            goto fail;
        }
    return 0;
fail:
    ac_model_free(*f16);
    ac_controller_free(*ctrl);
    ac_manifest_free(*man);
    *man = NULL, *ctrl = NULL, *f16 = NULL;
    return -1;
}

int ac_router_controller(struct ac_router *r, const char *ctrl_path, const char *variants_dir, char *err) {
    memset(r, 0, sizeof *r);
    struct ctrl_router *c = calloc(1, sizeof *c);
    if (!c) return ac_errf(err, "out of memory");
    struct ac_manifest *man;
    if (ac_controller_open(ctrl_path, variants_dir, &man, &c->ctrl, &c->f16, err) != 0) {
        free(c);
        return -1;
    }
    ac_manifest_free(man);
    snprintf(r->name, sizeof r->name, "agentcompress");
    r->ctx = c;
    r->route = ctrl_route;
    r->free = ctrl_free;
    return 0;
}

void ac_router_free(struct ac_router *r) {
    if (r->free && r->ctx) r->free(r->ctx);
    memset(r, 0, sizeof *r);
}
