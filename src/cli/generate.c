/* generate.c - `agentcompress generate`: load a GGUF, stream a completion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/common.h"
#include "compress/calibration.h"
#include "compress/compress.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"

#define CMD "generate"

static void help(void) {
    printf("usage: agentcompress generate -m MODEL.gguf -p TEXT [options]\n\n"
           "Generates text from a LLaMA-architecture GGUF model, streaming it to stdout.\n"
           "Prefill and decode speed are printed on stderr.\n\n"
           "  -m, --model FILE     GGUF model (default: " CLI_DEFAULT_MODEL ")\n"
           "  -p, --prompt TEXT    prompt text\n"
           "  -f, --file FILE      read the prompt from FILE\n"
           "  -n, --n-predict N    tokens to generate (default 128)\n"
           "      --temp T         temperature, 0 = greedy (default 0.8)\n"
           "      --top-k K        keep the K most likely tokens, 0 = all (default 40)\n"
           "      --top-p P        nucleus sampling threshold, 1 = off (default 0.95)\n"
           "      --seed S         RNG seed (default: from the clock)\n"
           "  -t, --threads N      threads (default: number of cores)\n"
           "  -c, --ctx-size N     context positions (default: prompt + N, up to the model's)\n"
           "      --chat           wrap the prompt in the model's ChatML template\n"
           "      --system TEXT    system message for --chat (default: the model's)\n"
           "      --ignore-eos     keep generating past end-of-generation tokens\n"
           "  -md, --model-draft FILE\n"
           "                       self-speculative decoding: FILE, a cheaper variant of the same\n"
           "                       model (e.g. variants/q8_0.gguf for variants/f16.gguf), proposes\n"
           "                       tokens that MODEL checks in batches; the output is exactly\n"
           "                       MODEL's output without it (same sampler and seed)\n"
           "      --draft-max N    tokens the draft proposes per batch (default 4)\n"
           "      --prune R        skip the ceil(R x layers) lowest-influence layers\n"
           "      --sparsity S     zero matmul inputs below the calibrated threshold for S\n"
           "                       (both need 'agentcompress calibrate' on the variants directory\n"
           "                       that holds MODEL: its manifest.json is read)\n"
           "  -h, --help           show this help\n");
}

/* Applies a (pruning ratio, sparsity) pair from the calibration stored in
 * the manifest.json beside the model file. Prints the error itself. */
static int apply_compression(struct ac_model *model, struct ac_context *ctx, const char *model_path, double prune,
                             double sparsity) {
    char dir[4096], err[AC_ERR_LEN];
    snprintf(dir, sizeof dir, "%s", model_path);
    char *slash = strrchr(dir, '/');
    const char *file = slash ? slash + 1 : model_path;
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct ac_manifest *man = NULL;
    if (ac_manifest_load(&man, dir, err) != 0)
        return cli_fail(CMD, "--prune/--sparsity need a calibrated variants directory: %s", err);
    const int rc = ac_variant_apply_config(model, ctx, dir, man, file, (float)prune, (float)sparsity, err);
    ac_manifest_free(man);
    return rc != 0 ? cli_fail(CMD, "%s", err) : 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model_path = CLI_DEFAULT_MODEL, *prompt = NULL, *prompt_file = NULL, *system = NULL, *draft_path = NULL;
    long n_predict = 128, top_k = 40, threads = 0, n_ctx = 0, seed = -1, draft_max = 4;
    double temp = 0.8, top_p = 0.95, prune = 0.0, sparsity = 0.0;
    bool chat = false, ignore_eos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = cli_value(CMD, argc, argv, &i))) return 1
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VALUE(); model_path = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { VALUE(); prompt = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { VALUE(); prompt_file = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) { VALUE(); if (cli_int(CMD, a, v, 1, 1 << 24, &n_predict)) return 1; }
        else if (!strcmp(a, "--temp")) { VALUE(); if (cli_float(CMD, a, v, 0, 100, &temp)) return 1; }
        else if (!strcmp(a, "--top-k")) { VALUE(); if (cli_int(CMD, a, v, 0, 1 << 24, &top_k)) return 1; }
        else if (!strcmp(a, "--top-p")) { VALUE(); if (cli_float(CMD, a, v, 1e-6, 1, &top_p)) return 1; }
        else if (!strcmp(a, "--seed")) { VALUE(); if (cli_int(CMD, a, v, 0, 0x7fffffffL, &seed)) return 1; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VALUE(); if (cli_int(CMD, a, v, 1, 1024, &threads)) return 1; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { VALUE(); if (cli_int(CMD, a, v, 1, 1 << 24, &n_ctx)) return 1; }
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "--system")) { VALUE(); system = v; }
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = true;
        else if (!strcmp(a, "-md") || !strcmp(a, "--model-draft")) { VALUE(); draft_path = v; }
        else if (!strcmp(a, "--draft-max")) { VALUE(); if (cli_int(CMD, a, v, 1, 64, &draft_max)) return 1; }
        else if (!strcmp(a, "--prune")) { VALUE(); if (cli_float(CMD, a, v, 0, 0.95, &prune)) return 1; }
        else if (!strcmp(a, "--sparsity")) { VALUE(); if (cli_float(CMD, a, v, 0, 0.95, &sparsity)) return 1; }
        else return cli_fail(CMD, "unknown option '%s' (see --help)", a);
#undef VALUE
    }
    if (prompt && prompt_file) return cli_fail(CMD, "give the prompt with -p or -f, not both");
    char *file_text = NULL;
    if (prompt_file && !(prompt = file_text = cli_read_file(prompt_file, NULL)))
        return cli_fail(CMD, "%s: cannot read the prompt file", prompt_file);
    if (!prompt || !*prompt) {
        free(file_text);
        return cli_fail(CMD, "empty prompt (give one with -p TEXT or -f FILE)");
    }

    char err[AC_ERR_LEN];
    int rc = 1;
    struct ac_model *model = NULL, *draft = NULL;
    struct ac_tokenizer *tok = NULL;
    struct ac_context *ctx = NULL, *draft_ctx = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    if (ac_model_load(&model, model_path, err) != 0 || ac_tokenizer_load(&tok, model->file, err) != 0) {
        cli_fail(CMD, "%s", err);
        goto done;
    }
    if (chat && !(text = ac_chat_format_chatml(system, prompt))) {
        cli_fail(CMD, "out of memory");
        goto done;
    }
    const char *input = text ? text : prompt;
    int n_ids = ac_tokenize(tok, input, strlen(input), true, true, NULL, 0, err);
    if (n_ids < 0 || !(ids = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof *ids)) ||
        ac_tokenize(tok, input, strlen(input), true, true, ids, n_ids, err) != n_ids) {
        cli_fail(CMD, "%s", n_ids < 0 ? err : "out of memory");
        goto done;
    }
    if (n_ids == 0) {
        cli_fail(CMD, "the prompt has no tokens");
        goto done;
    }
    const int ctx_max = n_ctx ? (int)n_ctx : model->cfg.ctx_train;
    if (n_ids >= ctx_max) {
        cli_fail(CMD, "prompt of %d tokens does not fit in the context of %d", n_ids, ctx_max);
        goto done;
    }
    struct ac_context_params cp = {
        .n_ctx = n_ctx ? (int)n_ctx : (n_ids + n_predict < ctx_max ? n_ids + (int)n_predict : ctx_max),
        .n_threads = (int)threads,
    };
    if (ac_context_new(&ctx, model, &cp, err) != 0) {
        cli_fail(CMD, "%s", err);
        goto done;
    }
    if ((prune > 0.0 || sparsity > 0.0) && apply_compression(model, ctx, model_path, prune, sparsity) != 0) goto done;
    if (draft_path && (ac_model_load(&draft, draft_path, err) != 0 || ac_context_new(&draft_ctx, draft, &cp, err) != 0)) {
        cli_fail(CMD, "draft model: %s", err);
        goto done;
    }
    struct ac_gen_params gp = {
        .n_predict = (int)n_predict,
        .ignore_eos = ignore_eos,
        .sampling = {.temp = (float)temp, .top_k = (int)top_k, .top_p = (float)top_p,
                     .seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL)},
        .draft = draft_ctx,
        .n_draft = (int)draft_max,
    };
    struct ac_gen_stats st;
    if (ac_generate(ctx, tok, ids, n_ids, &gp, cli_print_token, (void *)tok, &st, err) != 0) {
        fputc('\n', stdout);
        cli_fail(CMD, "%s", err);
        goto done;
    }
    fputc('\n', stdout);
    fflush(stdout);
    cli_print_stats(&st);
    if (st.hit_ctx_end) fprintf(stderr, "note: stopped at the end of the context (%d positions)\n", cp.n_ctx);
    rc = 0;
done:
    free(ids);
    free(text);
    free(file_text);
    ac_context_free(draft_ctx);
    ac_model_free(draft);
    ac_context_free(ctx);
    ac_tokenizer_free(tok);
    ac_model_free(model);
    return rc;
}
