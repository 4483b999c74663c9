/* eval.c - `agentcompress eval`: profile what is needed (or reuse a profile),
 * route every stage, and compare the routed system with the baselines and
 * the oracle (src/eval/report.h). */
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/common.h"
#include "eval/eval.h"
#include "eval/profile.h"
#include "eval/report.h"
#include "eval/router.h"

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

static int profile_step(const char *C, const char *dir, const char *tasks, const char *db, const char *configs,
                        int threads) {
    void *prog = cli_profile_progress_new();
    struct ac_profile_params p = {.variants_dir = dir, .tasks_path = tasks, .db_path = db, .configs = configs,
                                  .n_threads = threads, .stop = &g_stop,
                                  .progress = prog ? cli_profile_progress : NULL, .user = prog};
    struct ac_profile_summary sum;
    char err[AC_ERR_LEN];
    const int rc = ac_profile_run(&p, &sum, err);
    if (prog) cli_profile_progress_end(prog);
    free(prog);
    if (rc != 0) return cli_fail(C, "%s", err);
    if (sum.rows_written)
        fprintf(stderr, "eval: profiled %ld rows in %.1f s (%ld already in the profile)\n", sum.rows_written,
                sum.seconds, sum.rows_skipped);
    if (sum.interrupted) {
        cli_fail(C, "interrupted while profiling%s", db ? "; rerun with the same --profile to resume" : "");
        return 130;
    }
    return 0;
}

/* name is one of the comma-separated items of list */
static bool in_list(const char *list, const char *name) {
    const size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        const size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncmp(p, name, n)) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

int cmd_eval(int argc, char **argv) {
    static const char *C = "eval";
    const char *dir = NULL, *ctrl = NULL, *policy = NULL, *workflows = NULL, *profile = NULL, *report = NULL,
               *configs = NULL;
    bool json = false;
    long threads = 0;
    double theta = 0.95;
    size_t budget = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = cli_value(C, argc, argv, &i))) return 1
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: agentcompress eval -V VARIANTS_DIR [-c CONTROLLER.gguf | --policy RULE]\n"
                   "                          --workflows FILE.jsonl [--profile PROFILE.sqlite] [--json]\n"
                   "                          [--report OUT.html] [--configs LIST] [--mem-budget SIZE] [-t N]\n\n"
                   "Compares, on the same workflows: all-f16, all-q8_0, all-q4_0, all-<int2>, random routing\n"
                   "at the routed system's cost, the oracle (per stage the cheapest profiled configuration\n"
                   "that succeeds where f16 does) and the routed system: the controller (-c, named\n"
                   "'agentcompress') or a built-in rule (--policy, named 'policy:RULE'; default len:40).\n"
                   "Stages run in workflow order through a simulation of the variant cache (budget: two of\n"
                   "the largest variants unless --mem-budget) so swaps count. Cost = weight bytes read per\n"
                   "processed token + bytes loaded on a swap, relative to all-f16; quality preservation =\n"
                   "success rate / all-f16's. What the profile lacks is profiled first (see 'profile').\n\n"
                   "  --policy RULE      len:N[:CHEAP[:HARD]]  user-text tokens <= N on CHEAP (q4_0), else HARD (f16)\n"
                   "                     fixed:CONFIG          every stage on CONFIG\n"
                   "  --profile FILE     profile to reuse and extend (default: a temporary one)\n"
                   "  --configs LIST     the oracle's configuration grid (default: profile's)\n"
                   "  --json             one JSON object on stdout\n"
                   "  --report OUT.html  self-contained HTML report with the cost-quality frontier\n"
                   "  --theta X          fidelity threshold of the complexity ground truth (0.95)\n"
                   "  --mem-budget SIZE  variant cache budget, e.g. 512M\n"
                   "  -t N               threads for profiling (default: cores)\n");
            return 0;
        } else if (!strcmp(a, "-V")) {
            VALUE();
            dir = v;
        } else if (!strcmp(a, "-c")) {
            VALUE();
            ctrl = v;
        } else if (!strcmp(a, "--policy")) {
            VALUE();
            policy = v;
        } else if (!strcmp(a, "--workflows")) {
            VALUE();
            workflows = v;
        } else if (!strcmp(a, "--profile")) {
            VALUE();
            profile = v;
        } else if (!strcmp(a, "--report")) {
            VALUE();
            report = v;
        } else if (!strcmp(a, "--configs")) {
            VALUE();
            configs = v;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--theta")) {
            VALUE();
            if (cli_float(C, a, v, 0, 1, &theta)) return 1;
        } else if (!strcmp(a, "--mem-budget")) {
            VALUE();
            if (cli_size(C, a, v, &budget)) return 1;
        } else if (!strcmp(a, "-t")) {
            VALUE();
            if (cli_int(C, a, v, 1, 1024, &threads)) return 1;
        } else
            return cli_fail(C, "unknown option '%s' (see --help)", a);
#undef VALUE
    }
    if (!dir || !workflows) return cli_fail(C, "give -V VARIANTS_DIR and --workflows FILE.jsonl");
    if (ctrl && policy) return cli_fail(C, "give -c CONTROLLER.gguf or --policy RULE, not both");

    char err[AC_ERR_LEN], tmp_db[64] = "";
    struct ac_router router = {0};
    struct ac_eval_data d = {0};
    struct ac_eval_result res = {0};
    int *routed = NULL;
    double *score = NULL, *route_s = NULL;
    char *missing = NULL;
    int rc = 1;
    bool has_complexity = false;

    if (ctrl ? ac_router_controller(&router, ctrl, dir, err) : ac_router_policy(&router, policy ? policy : "len:40", err)) {
        cli_fail(C, "%s", err);
        goto out;
    }
    if (!profile) {
        snprintf(tmp_db, sizeof tmp_db, "/tmp/agentcompress-eval-XXXXXX");
        const int fd = mkstemp(tmp_db);
        if (fd < 0) {
            tmp_db[0] = '\0';
            cli_fail(C, "cannot create a temporary profile");
            goto out;
        }
        close(fd);
        profile = tmp_db;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if ((rc = profile_step(C, dir, workflows, profile, configs, (int)threads)) != 0) goto out;
    rc = 1;
    if (ac_eval_load(profile, &d, err) != 0) {
        cli_fail(C, "%s", err);
        goto out;
    }
    const int ns = d.n_stages;
    routed = calloc((size_t)ns, sizeof *routed);
    score = calloc((size_t)ns, sizeof *score);
    route_s = calloc((size_t)ns, sizeof *route_s);
    missing = calloc(1, 1);
    if (!routed || !score || !route_s || !missing) {
        cli_fail(C, "out of memory");
        goto out;
    }
    /* route every stage; profile the configurations the router picked that the profile lacks */
    char (*names)[AC_CONFIG_NAME_LEN] = calloc((size_t)ns, sizeof *names);
    if (!names) {
        cli_fail(C, "out of memory");
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        struct ac_route_decision dec;
        const struct ac_eval_stage *g = &d.stages[s];
        if (router.route(router.ctx, g->ids, g->n_ids, g->n_task, g->prompt, &dec, err) != 0) {
            free(names);
            cli_fail(C, "%s/%d: %s", g->workflow, g->stage, err);
            goto out;
        }
        memcpy(names[s], dec.config, sizeof names[s]);
        score[s] = dec.score;
        route_s[s] = dec.seconds;
        has_complexity = dec.has_complexity;
        const int c = ac_eval_find_config(&d, dec.config);
        if ((c < 0 || !ac_eval_config_complete(&d, c)) && !in_list(missing, dec.config)) {
            const size_t have = strlen(missing), add = strlen(dec.config);
            char *t = realloc(missing, have + add + 2);
            if (!t) {
                free(names);
                cli_fail(C, "out of memory");
                goto out;
            }
            missing = t;
            if (have) missing[have] = ',';
            memcpy(missing + have + (have ? 1 : 0), dec.config, add + 1);
        }
    }
    if (*missing) {
        fprintf(stderr, "eval: profiling the routed configurations the profile lacks: %s\n", missing);
        ac_eval_data_free(&d);
        if ((rc = profile_step(C, dir, workflows, profile, missing, (int)threads)) != 0 ||
            ac_eval_load(profile, &d, err) != 0) {
            free(names);
            if (rc == 0) cli_fail(C, "%s", err);
            rc = rc ? rc : 1;
            goto out;
        }
        rc = 1;
    }
    for (int s = 0; s < ns; s++) routed[s] = ac_eval_find_config(&d, names[s]);
    free(names);
    struct ac_eval_inputs in = {.routed = routed, .score = score, .route_s = route_s,
                                .has_complexity = has_complexity, .is_controller = ctrl != NULL,
                                .router_name = router.name, .theta = theta};
    ac_eval_cache_params_default(&in.cache);
    in.cache.budget_bytes = (double)budget;
    if (policy && !strncmp(policy, "fixed:", 6)) in.score = NULL; /* a constant score has no sweep */
    if (ac_eval_compute(&d, &in, &res, err) != 0) {
        cli_fail(C, "%s", err);
        goto out;
    }
    res.workflows = workflows;
    res.profile = tmp_db[0] ? NULL : profile;
    if (report && ac_eval_write_html(&res, report, err) != 0) {
        cli_fail(C, "%s", err);
        goto out;
    }
    if (json) {
        char *s = ac_eval_result_json(&res);
        if (!s) {
            cli_fail(C, "out of memory");
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        ac_eval_print_table(&res, stdout);
    }
    if (report) fprintf(stderr, "eval: wrote %s\n", report);
    rc = 0;
out:
    ac_eval_result_free(&res);
    ac_eval_data_free(&d);
    ac_router_free(&router);
    free(routed);
    free(score);
    free(route_s);
    free(missing);
    if (tmp_db[0]) remove(tmp_db);
    return rc;
}
