/* compress_cmds.c - `agentcompress calibrate` and `agentcompress kld`: the
 * variant-quality side of a variants directory. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/common.h"
#include "compress/calibration.h"
#include "compress/compress.h"
#include "compress/kld.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* A variants directory with its manifest and the text, tokenized by the
 * f16 variant's tokenizer. */
struct session {
    struct ac_manifest *man;
    int32_t *tokens;
    int n_tokens;
};

static void session_free(struct session *s) {
    ac_manifest_free(s->man);
    free(s->tokens);
}

static struct ac_model *load_variant(const char *cmd, const char *dir, const struct ac_manifest_variant *v) {
    char path[4096], err[AC_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, v->file);
    struct ac_model *m = NULL;
    if (ac_model_load(&m, path, err) != 0) cli_fail(cmd, "%s", err);
    return m;
}

static int session_open(const char *cmd, const char *dir, const char *text_path, int max_tokens, struct session *s) {
    char err[AC_ERR_LEN];
    memset(s, 0, sizeof *s);
    if (ac_manifest_load(&s->man, dir, err) != 0) return cli_fail(cmd, "%s", err);
    const struct ac_manifest_variant *f16 = ac_manifest_find(s->man, "f16");
    if (!f16 || !f16->file) return cli_fail(cmd, "%s: the manifest has no local f16 variant (the reference)", dir);
    size_t len;
    char *text = cli_read_file(text_path, &len);
    if (!text) return cli_fail(cmd, "%s: cannot read the text", text_path);
    struct ac_model *m = load_variant(cmd, dir, f16);
    struct ac_tokenizer *tok = NULL;
    int rc = 1;
    if (!m) goto done;
    if (ac_tokenizer_load(&tok, m->file, err) != 0) {
        cli_fail(cmd, "%s", err);
        goto done;
    }
    int n = ac_tokenize(tok, text, len, true, false, NULL, 0, err);
    if (n < 2) {
        cli_fail(cmd, "%s: %s", text_path, n < 0 ? err : "the text has fewer than 2 tokens");
        goto done;
    }
    s->tokens = malloc(sizeof(int32_t) * (size_t)n);
    if (!s->tokens || ac_tokenize(tok, text, len, true, false, s->tokens, n, err) != n) {
        cli_fail(cmd, "out of memory");
        goto done;
    }
    s->n_tokens = n < max_tokens ? n : max_tokens;
    rc = 0;
done:
    free(text);
    ac_tokenizer_free(tok);
    ac_model_free(m);
    return rc;
}

static cJSON *variant_json(const struct ac_manifest *man, const char *name) {
    cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(man->json, "variants")) {
        const cJSON *n = cJSON_GetObjectItem(v, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return v;
    }
    return NULL;
}

#define CAL "calibrate"

int cmd_calibrate(int argc, char **argv) {
    const char *dir = NULL, *text = NULL;
    long max_tokens = 4096, threads = 0, window = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: agentcompress calibrate -V VARIANTS_DIR --text FILE [--tokens N] [--window N] [-t N]\n\n"
                   "Measures, on each variant over the text, every layer's Block Influence (1 - mean cosine of\n"
                   "its input and output hidden states; the pruning order is lowest first) and the activation\n"
                   "magnitudes below which 25%%, 40%% and 50%% of each matmul's inputs fall (sparsity\n"
                   "thresholds), and stores both under each variant in VARIANTS_DIR/manifest.json.\n\n"
                   "  --tokens N   use the first N tokens of the text (default 4096)\n"
                   "  --window N   tokens per forward window (default 512)\n"
                   "  -t N         threads (default: cores)\n");
            return 0;
        }
        if (!strcmp(a, "-V")) {
            if (!(v = cli_value(CAL, argc, argv, &i))) return 1;
            dir = v;
        } else if (!strcmp(a, "--text")) {
            if (!(v = cli_value(CAL, argc, argv, &i))) return 1;
            text = v;
        } else if (!strcmp(a, "--tokens")) {
            if (!(v = cli_value(CAL, argc, argv, &i)) || cli_int(CAL, a, v, 2, 1 << 24, &max_tokens)) return 1;
        } else if (!strcmp(a, "--window")) {
            if (!(v = cli_value(CAL, argc, argv, &i)) || cli_int(CAL, a, v, 2, 1 << 16, &window)) return 1;
        } else if (!strcmp(a, "-t")) {
            if (!(v = cli_value(CAL, argc, argv, &i)) || cli_int(CAL, a, v, 1, 1024, &threads)) return 1;
        } else
            return cli_fail(CAL, "unknown option '%s' (see --help)", a);
    }
    if (!dir || !text) return cli_fail(CAL, "give -V VARIANTS_DIR and --text FILE");
    struct session s;
    if (session_open(CAL, dir, text, (int)max_tokens, &s) != 0) {
        session_free(&s);
        return 1;
    }
    char err[AC_ERR_LEN];
    int rc = 1;
    for (int i = 0; i < s.man->n_variants; i++) {
        const struct ac_manifest_variant *v = &s.man->variants[i];
        if (!v->file) continue; /* remote: calibrated where it runs */
        fprintf(stderr, "calibrate: %s (%d tokens)\n", v->name, s.n_tokens);
        struct ac_model *m = load_variant(CAL, dir, v);
        if (!m) goto done;
        struct ac_calibration cal;
        const int win = (int)window < m->cfg.ctx_train ? (int)window : m->cfg.ctx_train;
        if (ac_calibration_compute(m, s.tokens, s.n_tokens, win, (int)threads, ac_calib_default_levels, 4, &cal,
                                   err) != 0) {
            ac_model_free(m);
            cli_fail(CAL, "%s: %s", v->name, err);
            goto done;
        }
        cJSON *vj = variant_json(s.man, v->name);
        cJSON_DeleteItemFromObject(vj, "calibration");
        cJSON *cj = ac_calibration_to_json(&cal);
        cJSON_AddStringToObject(cj, "text", text);
        cJSON_AddItemToObject(vj, "calibration", cj);
        fprintf(stderr, "calibrate: %s: lowest-influence layers", v->name);
        for (int l = 0; l < cal.n_layers && l < 3; l++) fprintf(stderr, " %d", cal.prune_order[l]);
        fputc('\n', stderr);
        ac_calibration_free(&cal);
        ac_model_free(m);
    }
    if (ac_manifest_write_json(s.man->json, dir, err) != 0) {
        cli_fail(CAL, "%s", err);
        goto done;
    }
    rc = 0;
done:
    session_free(&s);
    return rc;
}

#define KLD "kld"

static const float prune_levels[] = {0.1f, 0.2f};
static const float sparsity_levels[] = {0.25f, 0.5f};

int cmd_kld(int argc, char **argv) {
    const char *dir = NULL, *text = NULL;
    long max_tokens = 1024, threads = 0, window = 256;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: agentcompress kld -V VARIANTS_DIR --text FILE [--json] [--tokens N] [--window N] [-t N]\n\n"
                   "Scores every configuration against the f16 variant over the text: perplexity, mean\n"
                   "KL divergence, same-top-1 fraction and weight bytes read per token. Configurations: each\n"
                   "variant alone and, when calibrated, with pruning 0.1 / 0.2 and sparsity 0.25 / 0.5.\n\n"
                   "  --json       one JSON object on stdout: {\"configs\": [...]}\n"
                   "  --tokens N   use the first N tokens of the text (default 1024)\n"
                   "  --window N   tokens per window, each from an empty cache (default 256)\n"
                   "  -t N         threads (default: cores)\n");
            return 0;
        }
        if (!strcmp(a, "-V")) {
            if (!(v = cli_value(KLD, argc, argv, &i))) return 1;
            dir = v;
        } else if (!strcmp(a, "--text")) {
            if (!(v = cli_value(KLD, argc, argv, &i))) return 1;
            text = v;
        } else if (!strcmp(a, "--json"))
            json = true;
        else if (!strcmp(a, "--tokens")) {
            if (!(v = cli_value(KLD, argc, argv, &i)) || cli_int(KLD, a, v, 2, 1 << 24, &max_tokens)) return 1;
        } else if (!strcmp(a, "--window")) {
            if (!(v = cli_value(KLD, argc, argv, &i)) || cli_int(KLD, a, v, 2, 1 << 16, &window)) return 1;
        } else if (!strcmp(a, "-t")) {
            if (!(v = cli_value(KLD, argc, argv, &i)) || cli_int(KLD, a, v, 1, 1024, &threads)) return 1;
        } else
            return cli_fail(KLD, "unknown option '%s' (see --help)", a);
    }
    if (!dir || !text) return cli_fail(KLD, "give -V VARIANTS_DIR and --text FILE");
    struct session s;
    if (session_open(KLD, dir, text, (int)max_tokens, &s) != 0) {
        session_free(&s);
        return 1;
    }
    char err[AC_ERR_LEN];
    int rc = 1;
    struct ac_kld_reference ref = {0};
    cJSON *out = cJSON_CreateObject(), *configs = cJSON_AddArrayToObject(out, "configs");
    struct ac_model *f16 = load_variant(KLD, dir, ac_manifest_find(s.man, "f16"));
    if (!f16) goto done;
    fprintf(stderr, "kld: reference f16 over %d tokens\n", s.n_tokens);
    if (ac_kld_reference_build(f16, s.tokens, s.n_tokens, (int)window, (int)threads, &ref, err) != 0) {
        cli_fail(KLD, "%s", err);
        goto done;
    }
    if (!json) printf("%-8s %6s %8s %9s %9s %10s %10s\n", "variant", "prune", "sparsity", "ppl", "kld", "same_top1",
                      "MB/token");
    for (int i = 0; i < s.man->n_variants; i++) {
        const struct ac_manifest_variant *v = &s.man->variants[i];
        if (!v->file) continue; /* remote: its logits are not ours to read */
        struct ac_model *m = load_variant(KLD, dir, v);
        if (!m) goto done;
        struct ac_calibration cal = {0};
        const cJSON *cj = cJSON_GetObjectItem(variant_json(s.man, v->name), "calibration");
        const bool calibrated = cj && ac_calibration_from_json(cj, m->cfg.n_layers, &cal, err) == 0;
        if (!calibrated) fprintf(stderr, "kld: %s is not calibrated: plain variant only (run calibrate)\n", v->name);
        /* (prune, sparsity) pairs: plain, each pruning ratio, each sparsity */
        float pairs[5][2] = {{0, 0}, {prune_levels[0], 0}, {prune_levels[1], 0}, {0, sparsity_levels[0]},
                             {0, sparsity_levels[1]}};
        for (int k = 0; k < (calibrated ? 5 : 1); k++) {
            bool *skip = calloc((size_t)m->cfg.n_layers, sizeof(bool));
            float *thr = calloc((size_t)m->cfg.n_layers * AC_SITE_COUNT, sizeof(float));
            struct ac_run_config runc = {0};
            struct ac_kld_result r;
            int bad = !skip || !thr;
            if (!bad && calibrated)
                bad = ac_calibration_run_config(&cal, pairs[k][0], pairs[k][1], skip, thr, &runc, err) != 0;
            /* transposed copies quantized once from the exact f16 values */
            if (!bad && runc.sparse_threshold) bad = ac_model_prepare_sparse_from(m, f16, err) != 0;
            fprintf(stderr, "kld: %s prune %.2f sparsity %.2f\n", v->name, (double)pairs[k][0], (double)pairs[k][1]);
            if (!bad) bad = ac_kld_measure(m, &runc, &ref, (int)threads, &r, err) != 0;
            free(skip);
            free(thr);
            if (bad) {
                ac_calibration_free(&cal);
                ac_model_free(m);
                cli_fail(KLD, "%s: %s", v->name, err);
                goto done;
            }
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "variant", v->name);
            cJSON_AddNumberToObject(c, "prune", pairs[k][0]);
            cJSON_AddNumberToObject(c, "sparsity", pairs[k][1]);
            cJSON_AddNumberToObject(c, "ppl", r.ppl);
            cJSON_AddNumberToObject(c, "kld", r.kld);
            cJSON_AddNumberToObject(c, "same_top1", r.same_top1);
            cJSON_AddNumberToObject(c, "bytes_per_token", r.bytes_per_token);
            cJSON_AddItemToArray(configs, c);
            if (!json)
                printf("%-8s %6.2f %8.2f %9.3f %9.5f %10.4f %10.2f\n", v->name, (double)pairs[k][0],
                       (double)pairs[k][1], r.ppl, r.kld, r.same_top1, r.bytes_per_token / 1e6);
            fflush(stdout);
        }
        ac_calibration_free(&cal);
        ac_model_free(m);
    }
    if (json) {
        char *txt = cJSON_PrintUnformatted(out);
        printf("%s\n", txt);
        free(txt);
    }
    rc = 0;
done:
    cJSON_Delete(out);
    ac_kld_reference_free(&ref);
    ac_model_free(f16);
    session_free(&s);
    return rc;
}
