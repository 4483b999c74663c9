/* router.h - what eval routes with: one decision per stage from the task's
 * first tokens (and, for built-in rules, its text). A controller plugs in
 * through struct ac_router; built-in --policy rules give baselines.
 *
 * Built-in rules (ac_router_policy), names as eval prints them ("policy:RULE"):
 *   fixed:CONFIG            every stage on CONFIG (e.g. fixed:q8_0+p0.1)
 *   len:N[:CHEAP[:HARD]]    user-text tokens <= N on CHEAP (default q4_0),
 *                           longer prompts on HARD (default f16); score = length
 * The controller (ac_router_controller): the argmax configuration of an
 * `agentcompress train` controller; score = its complexity c. */
#ifndef AC_EVAL_ROUTER_H
#define AC_EVAL_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "eval/profile.h"

struct ac_route_decision {
    char config[AC_CONFIG_NAME_LEN]; /* a configuration name (profile.h) */
    double score;                    /* higher = harder (complexity, length, ...) */
    double seconds;                  /* time the decision took */
    bool has_complexity;             /* score is a complexity estimate in [0, 1] */
};

struct ac_router {
    char name[80]; /* "agentcompress" or "policy:RULE" */
    void *ctx;
    /* first_ids: the first (at most 32) token ids of the task's user text
     * (no chat template); n_total: the text's full token count. */
    int (*route)(void *ctx, const int32_t *first_ids, int n, int n_total, const char *prompt,
                 struct ac_route_decision *out, char *err);
    void (*free)(void *ctx);
};

int ac_router_policy(struct ac_router *r, const char *rule, char *err);
struct ac_manifest;
struct ac_controller;
struct ac_model;

/* What routing with a controller needs, for variants_dir: its manifest, the
 * controller at ctrl_path and the f16 variant whose embeddings it reads.
 * Fails (nothing left open) if the manifest lacks a variant the controller
 * routes to. */
int ac_controller_open(const char *ctrl_path, const char *variants_dir, struct ac_manifest **man,
                       struct ac_controller **ctrl, struct ac_model **f16, char *err);
/* The controller at ctrl_path, reading the f16 variant's embeddings. */
int ac_router_controller(struct ac_router *r, const char *ctrl_path, const char *variants_dir, char *err);
void ac_router_free(struct ac_router *r);

#endif
