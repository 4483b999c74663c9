/* bench.c - `agentcompress bench -V DIR`: decode speed of every variant
 * and (prune, sparsity) configuration side by side, as a ratio to f16; the
 * time to make a variant resident (swap); the controller's decision time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/common.h"
#include "compress/calibration.h"
#include "compress/compress.h"
#include "controller/controller.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"

#define C "bench"
#define N_PROMPT 32
#define N_DECODE 64

struct row {
    const char *variant;
    float prune, sparsity;
    double tok_s, mb_per_token;
};

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Greedy decode of N_DECODE tokens after a fixed prompt on each of n
 * contexts (configurations of one model) in lockstep, one token of each in
 * turn, so that a load that comes and goes falls on all of them alike:
 * tok/s from the median token time, MB/token of weights read. */
static int decode_speed(struct ac_model *m, struct ac_context **ctx, int n, double *tok_s, double *mb, char *err) {
    int32_t ids[N_PROMPT], next[3];
    double bytes0[3], *t = malloc(sizeof(double) * N_DECODE * (size_t)n);
    for (int i = 0; i < N_PROMPT; i++) ids[i] = (100 + i * 37) % m->cfg.n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)m->cfg.n_vocab);
    int rc = -1;
    if (!logits || !t || n > 3) {
        ac_errf(err, "out of memory");
        goto done;
    }
    for (int k = 0; k < n; k++) {
        ac_context_reset(ctx[k]);
        if (ac_decode(ctx[k], ids, N_PROMPT, AC_LOGITS_LAST, logits, err) != 0) goto done;
        next[k] = ac_argmax(logits, m->cfg.n_vocab);
        bytes0[k] = ac_context_weight_bytes(ctx[k]);
    }
    for (int i = 0; i < N_DECODE; i++)
        for (int k = 0; k < n; k++) {
            const double t0 = ac_time_s();
            if (ac_decode(ctx[k], &next[k], 1, AC_LOGITS_LAST, logits, err) != 0) goto done;
            t[k * N_DECODE + i] = ac_time_s() - t0;
            next[k] = ac_argmax(logits, m->cfg.n_vocab);
        }
    for (int k = 0; k < n; k++) {
        qsort(t + k * N_DECODE, N_DECODE, sizeof(double), cmp_double);
        tok_s[k] = 1.0 / t[k * N_DECODE + N_DECODE / 2];
        mb[k] = (ac_context_weight_bytes(ctx[k]) - bytes0[k]) / N_DECODE / 1e6;
    }
    rc = 0;
done:
    free(logits);
    free(t);
    return rc;
}

#define SPEC_DRAFT 4
#define SPEC_TOKENS 96
#define SPEC_ROUNDS 3
#define SPEC_MAX 3 /* plain + two drafts */

struct spec_row {
    const char *draft; /* NULL: plain */
    double tok_s, accepted;
};

/* Self-speculative decoding of the f16 variant: greedy generation of
 * SPEC_TOKENS after a fixed prompt, plain and with the q8_0 and q4_0
 * variants drafting SPEC_DRAFT tokens, one after the other SPEC_ROUNDS
 * times; tok/s of the median round. */
static int spec_speed(const char *dir, const struct ac_manifest *man, int threads, struct spec_row *rows, int *n_rows,
                      char *err) {
    const char *names[SPEC_MAX] = {"f16", "q8_0", "q4_0"};
    struct ac_model *m[SPEC_MAX] = {NULL};
    struct ac_context *ctx[SPEC_MAX] = {NULL};
    struct ac_tokenizer *tok = NULL;
    const struct ac_context_params cp = {.n_ctx = N_PROMPT + SPEC_TOKENS + 1, .n_threads = threads};
    int n = 0, rc = -1;
    char path[8192];
    *n_rows = 0;
    if (!ac_manifest_find(man, names[1]) && !ac_manifest_find(man, names[2])) return 0; /* no draft */
    for (int i = 0; i < SPEC_MAX; i++) {
        const struct ac_manifest_variant *v = ac_manifest_find(man, names[i]);
        if (!v || !v->file) {
            if (i == 0) return 0; /* no f16 variant: nothing to measure */
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, v->file);
        if (ac_model_load(&m[n], path, err) != 0 || ac_context_new(&ctx[n], m[n], &cp, err) != 0) goto done;
        rows[n++] = (struct spec_row){.draft = i ? names[i] : NULL};
    }
    if (ac_tokenizer_load(&tok, m[0]->file, err) != 0) goto done;
    int32_t ids[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) ids[i] = (100 + i * 37) % m[0]->cfg.n_vocab;
    double t[SPEC_MAX][SPEC_ROUNDS];
    for (int r = 0; r < SPEC_ROUNDS; r++)
        for (int k = 0; k < n; k++) {
            const struct ac_gen_params gp = {.n_predict = SPEC_TOKENS,
                                             .ignore_eos = true,
                                             .sampling = {.temp = 0.0f, .top_p = 1.0f},
                                             .draft = k ? ctx[k] : NULL,
                                             .n_draft = SPEC_DRAFT};
            struct ac_gen_stats st;
            if (ac_generate(ctx[0], tok, ids, N_PROMPT, &gp, NULL, NULL, &st, err) != 0) goto done;
            t[k][r] = (st.n_generated - 1) / st.decode_s;
            rows[k].accepted = st.n_drafted ? (double)st.n_accepted / st.n_drafted : 0.0;
        }
    for (int k = 0; k < n; k++) {
        qsort(t[k], SPEC_ROUNDS, sizeof(double), cmp_double);
        rows[k].tok_s = t[k][SPEC_ROUNDS / 2];
    }
    *n_rows = n;
    rc = 0;
done:
    for (int k = 0; k < SPEC_MAX; k++) {
        ac_context_free(ctx[k]);
        ac_model_free(m[k]);
    }
    ac_tokenizer_free(tok);
    return rc;
}

/* Maps the file and reads each page once (what the variant cache does),
 * after dropping it from memory where the OS lets us: the swap time. */
static double swap_ms(const char *path, char *err) {
    const double t0 = ac_time_s();
    struct ac_model *m = NULL;
    if (ac_model_load(&m, path, err) != 0) return -1;
    const volatile uint8_t *p = m->file->base;
    uint8_t sink = 0;
    for (size_t off = 0; off < m->file->size; off += 4096) sink ^= p[off];
    (void)sink;
    const double ms = (ac_time_s() - t0) * 1e3;
    ac_model_free(m);
    return ms;
}

int cmd_bench(int argc, char **argv) {
    const char *dir = NULL, *ctrl_path = NULL;
    long threads = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: agentcompress bench -V VARIANTS_DIR [-c CONTROLLER.gguf] [-t N] [--json]\n\n"
                   "Measures, side by side in one run, greedy decode tok/s (%d tokens after a %d-token\n"
                   "prompt) of every variant, plain and, where calibrated, with pruning 0.2 and sparsity\n"
                   "0.5, as a ratio to f16; the time to make each variant resident; and, with -c, the\n"
                   "controller's decision time for a 32-token prompt (p50 of 200, one thread).\n"
                   "A variant's configurations decode in lockstep (a token of each in turn) and tok/s is\n"
                   "1 / the median token time, so that a busy machine slows them alike.\n"
                   "Then self-speculative decoding: f16 greedy, %d tokens, plain and with q8_0 or q4_0\n"
                   "drafting %d tokens (generate -md), the median of %d rounds taken in turn.\n",
                   N_DECODE, N_PROMPT, SPEC_TOKENS, SPEC_DRAFT, SPEC_ROUNDS);
            return 0;
        }
        if (!strcmp(a, "-V")) {
            if (!(v = cli_value(C, argc, argv, &i))) return 1;
            dir = v;
        } else if (!strcmp(a, "-c")) {
            if (!(v = cli_value(C, argc, argv, &i))) return 1;
            ctrl_path = v;
        } else if (!strcmp(a, "-t")) {
            if (!(v = cli_value(C, argc, argv, &i)) || cli_int(C, a, v, 1, 1024, &threads)) return 1;
        } else if (!strcmp(a, "--json"))
            json = true;
        else
            return cli_fail(C, "unknown option '%s' (see --help)", a);
    }
    if (!dir) return cli_fail(C, "give -V VARIANTS_DIR");
    char err[AC_ERR_LEN], path[8192];
    struct ac_manifest *man;
    if (ac_manifest_load(&man, dir, err) != 0) return cli_fail(C, "%s", err);
    struct row rows[64];
    double swaps[16];
    int n_rows = 0, n_swaps = 0, rc = 1;
    double f16_tok_s = 0.0, decide_us = -1.0;
    for (int vi = 0; vi < man->n_variants && vi < 16; vi++) {
        const struct ac_manifest_variant *v = &man->variants[vi];
        if (!v->file) continue;
        snprintf(path, sizeof path, "%s/%s", dir, v->file);
        swaps[n_swaps] = swap_ms(path, err);
        if (swaps[n_swaps] < 0) {
            cli_fail(C, "%s", err);
            goto done;
        }
        n_swaps++;
        struct ac_model *m = NULL;
        struct ac_context *ctx[3] = {NULL, NULL, NULL};
        struct ac_context_params cp = {.n_ctx = N_PROMPT + N_DECODE + 1, .n_threads = (int)threads};
        const float configs[3][2] = {{0, 0}, {0.2f, 0}, {0, 0.5f}};
        int n_cfg = 0, status = 0;
        if (ac_model_load(&m, path, err) != 0) {
            cli_fail(C, "%s", err);
            goto done;
        }
        for (; n_cfg < 3 && n_rows + n_cfg < 64; n_cfg++) {
            if (ac_context_new(&ctx[n_cfg], m, &cp, err) != 0) {
                status = -1;
                break;
            }
            if (n_cfg > 0 && ac_variant_apply_config(m, ctx[n_cfg], dir, man, v->file, configs[n_cfg][0],
                                                     configs[n_cfg][1], err) != 0) {
                if (!json) fprintf(stderr, "bench: %s: %s: skipped\n", v->name, err);
                ac_context_free(ctx[n_cfg]);
                ctx[n_cfg] = NULL;
                break;
            }
        }
        double tok_s[3], mb[3];
        if (status == 0 && n_cfg > 0) status = decode_speed(m, ctx, n_cfg, tok_s, mb, err);
        for (int k = 0; k < 3; k++) ac_context_free(ctx[k]);
        ac_model_free(m);
        if (status != 0) {
            cli_fail(C, "%s", err);
            goto done;
        }
        for (int k = 0; k < n_cfg; k++) {
            struct row *r = &rows[n_rows++];
            *r = (struct row){.variant = v->name, .prune = configs[k][0], .sparsity = configs[k][1],
                              .tok_s = tok_s[k], .mb_per_token = mb[k]};
            if (!strcmp(v->name, "f16") && k == 0) f16_tok_s = r->tok_s;
            if (!json)
                fprintf(stderr, "bench: %s prune %.1f sparsity %.1f: %.1f tok/s\n", v->name, (double)r->prune,
                        (double)r->sparsity, r->tok_s);
        }
    }
    struct spec_row spec[SPEC_MAX];
    int n_spec = 0;
    if (spec_speed(dir, man, (int)threads, spec, &n_spec, err) != 0) {
        cli_fail(C, "speculative decoding: %s", err);
        goto done;
    }
    if (ctrl_path) {
        struct ac_controller *ctrl = NULL;
        struct ac_model *emb = NULL;
        const struct ac_manifest_variant *f16 = ac_manifest_find(man, "f16");
        snprintf(path, sizeof path, "%s/%s", dir, f16 && f16->file ? f16->file : man->variants[0].file);
        if (ac_controller_load(&ctrl, ctrl_path, err) != 0 || ac_model_load(&emb, path, err) != 0) {
            ac_controller_free(ctrl);
            cli_fail(C, "%s", err);
            goto done;
        }
        double t[200];
        int32_t ids[32];
        for (int i = 0; i < 200; i++) {
            for (int j = 0; j < 32; j++) ids[j] = (int32_t)((i * 131 + j * 17) % emb->cfg.n_vocab);
            struct ac_decision d;
            if (ac_controller_decide(ctrl, ids, 32, emb, &d, err) != 0) break;
            t[i] = d.seconds * 1e6;
        }
        qsort(t, 200, sizeof t[0], cmp_double);
        decide_us = t[100];
        ac_controller_free(ctrl);
        ac_model_free(emb);
    }
    if (json) {
        printf("{\"configs\": [");
        for (int i = 0; i < n_rows; i++)
            printf("%s{\"variant\": \"%s\", \"prune\": %g, \"sparsity\": %g, \"decode_tok_s\": %.2f, "
                   "\"ratio_to_f16\": %.4f, \"mb_per_token\": %.3f}",
                   i ? ", " : "", rows[i].variant, (double)rows[i].prune, (double)rows[i].sparsity, rows[i].tok_s,
                   f16_tok_s > 0 ? rows[i].tok_s / f16_tok_s : 0.0, rows[i].mb_per_token);
        printf("], \"swap_ms\": [");
        for (int i = 0; i < n_swaps; i++) printf("%s%.2f", i ? ", " : "", swaps[i]);
        printf("], \"speculative\": [");
        for (int i = 0; i < n_spec; i++)
            printf("%s{\"draft\": %s%s%s, \"n_draft\": %d, \"decode_tok_s\": %.2f, \"ratio_to_plain\": %.4f, "
                   "\"accepted\": %.4f}",
                   i ? ", " : "", spec[i].draft ? "\"" : "", spec[i].draft ? spec[i].draft : "null",
                   spec[i].draft ? "\"" : "", spec[i].draft ? SPEC_DRAFT : 0, spec[i].tok_s,
                   spec[i].tok_s / spec[0].tok_s, spec[i].accepted);
        printf("], \"controller_us_p50\": ");
        if (decide_us >= 0) printf("%.1f}\n", decide_us); else printf("null}\n");
    } else {
        printf("%-8s %6s %8s %10s %9s %9s\n", "variant", "prune", "sparsity", "decode/s", "vs f16", "MB/token");
        for (int i = 0; i < n_rows; i++)
            printf("%-8s %6.1f %8.2f %10.1f %8.2fx %9.1f\n", rows[i].variant, (double)rows[i].prune,
                   (double)rows[i].sparsity, rows[i].tok_s, f16_tok_s > 0 ? rows[i].tok_s / f16_tok_s : 0.0,
                   rows[i].mb_per_token);
        for (int i = 0, k = 0; i < man->n_variants && k < n_swaps; i++)
            if (man->variants[i].file) printf("swap %-8s %.1f ms\n", man->variants[i].name, swaps[k++]);
        for (int i = 0; i < n_spec; i++)
            if (spec[i].draft)
                printf("f16 drafted by %-5s %6.1f tok/s %5.2fx f16 plain (%.1f tok/s), %.0f%% of proposals kept\n",
                       spec[i].draft, spec[i].tok_s, spec[i].tok_s / spec[0].tok_s, spec[0].tok_s,
                       100.0 * spec[i].accepted);
        if (decide_us >= 0) printf("controller decision p50 %.0f us\n", decide_us);
    }
    rc = 0;
done:
    ac_manifest_free(man);
    return rc;
}
