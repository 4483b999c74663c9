/* controller_cmds.c - `agentcompress train`, `route` and `run`: training the
 * complexity controller on a profile, and routing prompts with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/common.h"
#include "compress/calibration.h"
#include "compress/compress.h"
#include "controller/controller.h"
#include "eval/router.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

/* ---------------------------------------------------------------- train */

static void print_epoch(const struct ac_train_epoch *ep, void *user) {
    (void)user;
    char line[512];
    ac_train_format_epoch(line, sizeof line, ep);
    fprintf(stderr, "train: %s\n", line);
}

int cmd_train(int argc, char **argv) {
    static const char *C = "train";
    const char *profile = NULL, *dev_profile = NULL, *out = NULL, *model_path = CLI_DEFAULT_MODEL, *domains = NULL;
    long seed = 1, epochs = -1, patience = -1, d_model = 0, layers = 0, heads = 0;
    double dev_frac = 0.2, lambda_cost = -1, lambda_fid = -1, theta = -1, lr = -1;
    bool paper = false;
    struct ac_train_params tp;
    ac_train_params_default(&tp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = cli_value(C, argc, argv, &i))) return 1
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: agentcompress train --profile PROFILE -o CONTROLLER.gguf [options]\n\n"
                   "Trains the complexity controller (encoder over the first 32 prompt tokens' frozen\n"
                   "embeddings, cognitive-load predictor, three policy heads) on a profile: per task, the\n"
                   "cost and fidelity of every configuration. The loss is lambda_cost * E[cost] +\n"
                   "lambda_fid * E[max(0, theta - fidelity)] + an auxiliary complexity term.\n\n"
                   "  --profile FILE       what to learn from: a profile ('agentcompress profile'), a\n"
                   "                       telemetry file ('serve --telemetry') or a .jsonl dataset\n"
                   "                       (format in src/train/train.h)\n"
                   "  -o FILE              controller to write (GGUF)\n"
                   "  -m MODEL             model whose token embeddings the controller reads\n"
                   "                       (default " CLI_DEFAULT_MODEL ")\n"
                   "  --meta fomaml|none   first-order MAML over domains (default) or plain mini-batches\n"
                   "  --train-domains a,b  train on these domains only\n"
                   "  --dev PROFILE        early stopping on this profile (e.g. the dev split's) instead of\n"
                   "                       a held-out share of --profile\n"
                   "  --dev-frac F         share of tasks held out for early stopping (default 0.2)\n"
                   "  --epochs N           (default 30)    --seed S (default 1)\n"
                   "  --patience N         epochs without a better dev loss before stopping (default 8; 0: never)\n"
                   "  --lr X               Adam step size (default 3e-4)\n"
                   "  --lambda-cost X      (default 0.3)   --lambda-fid X (default 0.7)   --theta X (default 0.95)\n"
                   "  --d-model N --layers N --heads N     encoder size (default 64 x 2 x 4)\n"
                   "  --paper-scale        6 layers x 512 x 8 heads, as the paper\n");
            return 0;
        }
        else if (!strcmp(a, "--profile")) { VALUE(); profile = v; }
        else if (!strcmp(a, "--dev")) { VALUE(); dev_profile = v; }
        else if (!strcmp(a, "-o")) { VALUE(); out = v; }
        else if (!strcmp(a, "-m")) { VALUE(); model_path = v; }
        else if (!strcmp(a, "--train-domains")) { VALUE(); domains = v; }
        else if (!strcmp(a, "--meta")) {
            VALUE();
            if (!strcmp(v, "fomaml")) tp.meta = AC_META_FOMAML;
            else if (!strcmp(v, "none")) tp.meta = AC_META_NONE;
            else return cli_fail(C, "--meta: expected fomaml or none, got '%s'", v);
        }
        else if (!strcmp(a, "--dev-frac")) { VALUE(); if (cli_float(C, a, v, 0, 0.9, &dev_frac)) return 1; }
        else if (!strcmp(a, "--epochs")) { VALUE(); if (cli_int(C, a, v, 1, 100000, &epochs)) return 1; }
        else if (!strcmp(a, "--patience")) { VALUE(); if (cli_int(C, a, v, 0, 100000, &patience)) return 1; }
        else if (!strcmp(a, "--lr")) { VALUE(); if (cli_float(C, a, v, 1e-7, 1, &lr)) return 1; }
        else if (!strcmp(a, "--seed")) { VALUE(); if (cli_int(C, a, v, 0, 0x7fffffffL, &seed)) return 1; }
        else if (!strcmp(a, "--lambda-cost")) { VALUE(); if (cli_float(C, a, v, 0, 100, &lambda_cost)) return 1; }
        else if (!strcmp(a, "--lambda-fid")) { VALUE(); if (cli_float(C, a, v, 0, 100, &lambda_fid)) return 1; }
        else if (!strcmp(a, "--theta")) { VALUE(); if (cli_float(C, a, v, 0, 1, &theta)) return 1; }
        else if (!strcmp(a, "--d-model")) { VALUE(); if (cli_int(C, a, v, 8, 4096, &d_model)) return 1; }
        else if (!strcmp(a, "--layers")) { VALUE(); if (cli_int(C, a, v, 1, 64, &layers)) return 1; }
        else if (!strcmp(a, "--heads")) { VALUE(); if (cli_int(C, a, v, 1, 64, &heads)) return 1; }
        else if (!strcmp(a, "--paper-scale")) paper = true;
        else return cli_fail(C, "unknown option '%s' (see --help)", a);
#undef VALUE
    }
    if (!profile || !out) return cli_fail(C, "give --profile FILE and -o CONTROLLER.gguf");
    if (epochs > 0) tp.epochs = (int)epochs;
    if (patience >= 0) tp.patience = (int)patience;
    if (lr > 0) tp.lr = (float)lr;
    if (lambda_cost >= 0) tp.loss.lambda_cost = (float)lambda_cost;
    if (lambda_fid >= 0) tp.loss.lambda_fid = (float)lambda_fid;
    if (theta >= 0) tp.loss.theta = (float)theta;
    tp.seed = (uint64_t)seed;
    tp.on_epoch = print_epoch;

    char err[AC_ERR_LEN];
    int rc = 1;
    struct ac_train_dataset *all = NULL, *picked = NULL, *train = NULL, *dev = NULL;
    struct ac_model *model = NULL;
    struct ac_controller *ctrl = NULL;
    if (ac_train_load_profile(&all, profile, err) != 0 || ac_model_load(&model, model_path, err) != 0) {
        cli_fail(C, "%s", err);
        goto done;
    }
    if (all->n_tasks == 0) {
        cli_fail(C, "%s: the profile has no tasks", profile);
        goto done;
    }
    if (domains && ac_train_dataset_filter_domains(&picked, all, domains, err) != 0) {
        cli_fail(C, "%s", err);
        goto done;
    }
    const struct ac_train_dataset *src = picked ? picked : all;
    if (dev_profile) {
        /* the dev set obeys --train-domains too: early stopping must not see held-out domains */
        struct ac_train_dataset *dev_all = NULL, *none = NULL;
        int bad = ac_train_load_profile(&dev_all, dev_profile, err) != 0 ||
                  (domains && ac_train_dataset_filter_domains(&dev, dev_all, domains, err) != 0) ||
                  ac_train_dataset_split(src, 0, (uint64_t)seed, &train, &none, err) != 0;
        if (!bad && !domains) dev = dev_all, dev_all = NULL;
        ac_train_dataset_free(dev_all);
        ac_train_dataset_free(none);
        if (bad) {
            cli_fail(C, "%s", err);
            goto done;
        }
    } else if (ac_train_dataset_split(src, (float)dev_frac, (uint64_t)seed, &train, &dev, err) != 0) {
        cli_fail(C, "%s", err);
        goto done;
    }
    struct ac_controller_config cfg;
    if (paper)
        ac_controller_config_paper(&cfg, model->cfg.n_vocab, model->cfg.dim);
    else
        ac_controller_config_default(&cfg, model->cfg.n_vocab, model->cfg.dim);
    if (d_model) cfg.d_model = (int)d_model;
    if (layers) cfg.n_layers = (int)layers;
    if (heads) cfg.n_heads = (int)heads;
    ac_train_levels_to_config(&cfg, &src->levels);
    if (ac_controller_config_check(&cfg, err) != 0 || ac_controller_new(&ctrl, &cfg, (uint64_t)seed, err) != 0 ||
        ac_train_dataset_check(train, &cfg, err) != 0 || (dev && ac_train_dataset_check(dev, &cfg, err) != 0)) {
        cli_fail(C, "%s", err);
        goto done;
    }
    fprintf(stderr, "train: %d tasks (%d train, %d dev), %d configurations, %zu parameters, meta %s\n",
            src->n_tasks, train->n_tasks, dev ? dev->n_tasks : 0, src->n_configs, ac_controller_n_params(ctrl),
            tp.meta == AC_META_FOMAML ? "fomaml" : "none");
    struct ac_embedder emb;
    ac_embedder_from_model(&emb, model);
    struct ac_train_result res;
    if (ac_train(ctrl, train, dev, &emb, &tp, &res, err) != 0 || ac_controller_save(ctrl, out, err) != 0) {
        cli_fail(C, "%s", err);
        goto done;
    }
    fprintf(stderr, "train: wrote %s (best epoch %d of %d)\n", out, res.best_epoch, res.epochs_run);
    rc = 0;
done:
    ac_controller_free(ctrl);
    ac_model_free(model);
    ac_train_dataset_free(all);
    ac_train_dataset_free(picked);
    ac_train_dataset_free(train);
    ac_train_dataset_free(dev);
    return rc;
}

/* ---------------------------------------------------------------- route / run */

/* What route and run share: the variants directory, the controller and the
 * f16 variant whose embeddings and tokenizer it reads. */
struct router {
    struct ac_manifest *man;
    struct ac_controller *ctrl;
    struct ac_model *f16;
    struct ac_tokenizer *tok;
};

static void router_free(struct router *r) {
    ac_tokenizer_free(r->tok);
    ac_model_free(r->f16);
    ac_controller_free(r->ctrl);
    ac_manifest_free(r->man);
}

static int router_open(const char *cmd, const char *dir, const char *ctrl_path, struct router *r) {
    char err[AC_ERR_LEN];
    memset(r, 0, sizeof *r);
    if (ac_controller_open(ctrl_path, dir, &r->man, &r->ctrl, &r->f16, err) != 0 ||
        ac_tokenizer_load(&r->tok, r->f16->file, err) != 0)
        return cli_fail(cmd, "%s", err);
    return 0;
}

/* The controller reads the task's own first tokens (no chat template, whose
 * constant prefix would fill the 32-token window). */
static int router_decide(const char *cmd, struct router *r, const char *prompt, struct ac_decision *d) {
    char err[AC_ERR_LEN];
    int32_t ids[AC_CTRL_MAX_K];
    int n = ac_tokenize(r->tok, prompt, strlen(prompt), false, false, ids, AC_CTRL_MAX_K, err);
    if (n < 0) return cli_fail(cmd, "%s", err);
    if (n == 0) return cli_fail(cmd, "empty prompt");
    if (n > AC_CTRL_MAX_K) n = AC_CTRL_MAX_K;
    if (ac_controller_decide(r->ctrl, ids, n, r->f16, d, err) != 0) return cli_fail(cmd, "%s", err);
    return 0;
}

static int route_args(const char *cmd, int argc, char **argv, int *i, const char **dir, const char **ctrl,
                      const char **prompt) {
    const char *a = argv[*i];
    if (!strcmp(a, "-V")) return (*dir = cli_value(cmd, argc, argv, i)) ? 1 : -1;
    if (!strcmp(a, "-c")) return (*ctrl = cli_value(cmd, argc, argv, i)) ? 1 : -1;
    if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) return (*prompt = cli_value(cmd, argc, argv, i)) ? 1 : -1;
    return 0;
}

int cmd_route(int argc, char **argv) {
    static const char *C = "route";
    const char *dir = CLI_DEFAULT_VARIANTS, *ctrl_path = CLI_DEFAULT_CONTROLLER, *prompt = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        int took = route_args(C, argc, argv, &i, &dir, &ctrl_path, &prompt);
        if (took < 0) return 1;
        if (took) continue;
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: agentcompress route [-V VARIANTS_DIR] [-c CONTROLLER.gguf] -p TEXT [--json]\n\n"
                   "Prints the controller's decision for a prompt: its complexity estimate, the chosen\n"
                   "configuration (variant, pruning ratio, sparsity) and the decision time.\n\n"
                   "  -V DIR   variants (default " CLI_DEFAULT_VARIANTS ")\n"
                   "  -c FILE  controller (default " CLI_DEFAULT_CONTROLLER ", trained for the default model)\n");
            return 0;
        } else
            return cli_fail(C, "unknown option '%s' (see --help)", argv[i]);
    }
    if (!prompt) return cli_fail(C, "give -p TEXT (see --help)");
    struct router r;
    struct ac_decision d = {0};
    int rc = router_open(C, dir, ctrl_path, &r) || router_decide(C, &r, prompt, &d);
    if (!rc) {
        if (json)
            printf("{\"complexity\": %.6f, \"variant\": \"%s\", \"prune\": %g, \"sparsity\": %g, \"config\": %d, "
                   "\"tokens\": %d, \"decision_us\": %.1f}\n",
                   (double)d.complexity, d.quant_name, (double)d.prune_ratio, (double)d.sparsity_target, d.config,
                   d.n_tokens, d.seconds * 1e6);
        else
            printf("complexity %.3f -> %s, prune %.2f, sparsity %.2f (%d tokens read, %.0f us)\n",
                   (double)d.complexity, d.quant_name, (double)d.prune_ratio, (double)d.sparsity_target, d.n_tokens,
                   d.seconds * 1e6);
    }
    router_free(&r);
    return rc;
}

int cmd_run(int argc, char **argv) {
    static const char *C = "run";
    const char *dir = CLI_DEFAULT_VARIANTS, *ctrl_path = CLI_DEFAULT_CONTROLLER, *prompt = NULL;
    long n_predict = 128, threads = 0, seed = -1;
    double temp = 0.0;
    for (int i = 1; i < argc; i++) {
        int took = route_args(C, argc, argv, &i, &dir, &ctrl_path, &prompt);
        if (took < 0) return 1;
        if (took) continue;
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: agentcompress run [-V VARIANTS_DIR] [-c CONTROLLER.gguf] -p TEXT [-n N] [--temp T]\n"
                   "                         [--seed S] [-t N]\n\n"
                   "Routes the prompt with the controller, then generates on the chosen configuration with\n"
                   "the model's chat template (greedy unless --temp). The decision goes to stderr.\n\n"
                   "  -V DIR   variants (default " CLI_DEFAULT_VARIANTS ")\n"
                   "  -c FILE  controller (default " CLI_DEFAULT_CONTROLLER ", trained for the default model)\n"
                   "  -n N     tokens to generate (default 128)\n");
            return 0;
        } else if (!strcmp(a, "-n")) {
            if (!(v = cli_value(C, argc, argv, &i)) || cli_int(C, a, v, 1, 1 << 24, &n_predict)) return 1;
        } else if (!strcmp(a, "--temp")) {
            if (!(v = cli_value(C, argc, argv, &i)) || cli_float(C, a, v, 0, 100, &temp)) return 1;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = cli_value(C, argc, argv, &i)) || cli_int(C, a, v, 0, 0x7fffffffL, &seed)) return 1;
        } else if (!strcmp(a, "-t")) {
            if (!(v = cli_value(C, argc, argv, &i)) || cli_int(C, a, v, 1, 1024, &threads)) return 1;
        } else
            return cli_fail(C, "unknown option '%s' (see --help)", a);
    }
    if (!prompt) return cli_fail(C, "give -p TEXT (see --help)");
    struct router r;
    struct ac_decision d = {0};
    char err[AC_ERR_LEN], path[4096];
    struct ac_model *model = NULL;
    struct ac_context *ctx = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    if (router_open(C, dir, ctrl_path, &r) || router_decide(C, &r, prompt, &d)) goto done;
    fprintf(stderr, "run: complexity %.3f -> %s, prune %.2f, sparsity %.2f (%.0f us)\n", (double)d.complexity,
            d.quant_name, (double)d.prune_ratio, (double)d.sparsity_target, d.seconds * 1e6);
    const struct ac_manifest_variant *var = ac_manifest_find(r.man, d.quant_name);
    if (!var->file) {
        cli_fail(C, "variant '%s' is remote (%s): serve the directory to forward to it", var->name, var->remote_url);
        goto done;
    }
    if (snprintf(path, sizeof path, "%s/%s", dir, var->file) >= (int)sizeof path) {
        cli_fail(C, "path too long");
        goto done;
    }
    if (ac_model_load(&model, path, err) != 0) {
        cli_fail(C, "%s", err);
        goto done;
    }
    text = ac_chat_format_chatml(NULL, prompt);
    int n = text ? ac_tokenize(r.tok, text, strlen(text), true, true, NULL, 0, err) : -1;
    if (n <= 0 || !(ids = malloc(sizeof *ids * (size_t)n)) ||
        ac_tokenize(r.tok, text, strlen(text), true, true, ids, n, err) != n) {
        cli_fail(C, "%s", n < 0 ? err : "cannot tokenize the prompt");
        goto done;
    }
    struct ac_context_params cp = {.n_ctx = n + (int)n_predict < model->cfg.ctx_train ? n + (int)n_predict
                                                                                       : model->cfg.ctx_train,
                                   .n_threads = (int)threads};
    if (ac_context_new(&ctx, model, &cp, err) != 0 ||
        ((d.prune_ratio > 0 || d.sparsity_target > 0) &&
         ac_variant_apply_config(model, ctx, dir, r.man, var->file, d.prune_ratio, d.sparsity_target, err) != 0)) {
        cli_fail(C, "%s", err);
        goto done;
    }
    struct ac_gen_params gp = {.n_predict = (int)n_predict,
                               .sampling = {.temp = (float)temp, .top_k = 40, .top_p = 0.95f,
                                            .seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL)}};
    struct ac_gen_stats st;
    if (ac_generate(ctx, r.tok, ids, n, &gp, cli_print_token, (void *)r.tok, &st, err) != 0) {
        fputc('\n', stdout);
        cli_fail(C, "%s", err);
        goto done;
    }
    fputc('\n', stdout);
    cli_print_stats(&st);
    rc = 0;
done:
    free(ids);
    free(text);
    ac_context_free(ctx);
    ac_model_free(model);
    router_free(&r);
    return rc;
}
