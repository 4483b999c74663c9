/* quantize.c - `agentcompress quantize`: make the variants directory
 * (f16, q8_0, q4_0 and a 2-bit variant of a base GGUF, plus manifest.json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "common/common.h"
#include "compress/compress.h"
#include "quant/quant.h"

#define CMD "quantize"

static void help(void) {
    printf("usage: agentcompress quantize -m BASE.gguf -o VARIANTS_DIR [options]\n\n"
           "Writes one GGUF per variant and VARIANTS_DIR/manifest.json. Every base tensor is\n"
           "dequantized exactly to f32 and quantized by the variant's recipe (1-D tensors stay f32):\n"
           "  f16    matrices f16 (the base's dequantization rounded to nearest f16)\n"
           "  q8_0   matrices q8_0\n"
           "  q4_0   layer matrices q4_0, token_embd/output q8_0\n"
           "  int2   layer matrices q2_K where rows are a multiple of 256, else q2_0 (ours:\n"
           "         32-element blocks, 3.0 bits/weight, not loadable by llama.cpp);\n"
           "         token_embd/output q4_0. Named q2_0 if any tensor uses it, else q2_k.\n\n"
           "  -m, --model FILE     base GGUF model\n"
           "  -o, --out DIR        variants directory to create\n"
           "      --types LIST     comma-separated: f16,q8_0,q4_0,int2 (q2_0 and q2_k mean int2)\n"
           "                       (default: all four)\n"
           "      --force          replace an existing variants directory\n"
           "  -t, --threads N      threads (default: number of cores)\n"
           "  -h, --help           show this help\n");
}

struct progress {
    bool tty;
    double t0;
};

static void on_tensor(void *user, const char *variant, int index, int count, const char *tensor, uint32_t type) {
    const struct progress *pr = user;
    const struct ac_type_traits *tr = ac_type_traits(type);
    if (pr->tty) {
        const int width = 30, done = (index + 1) * width / count;
        fprintf(stderr, "\r%-5s [%.*s%*s] %3d/%d %-24.24s", variant, done, "##############################",
                width - done, "", index + 1, count, tensor);
        if (index + 1 == count) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: [%d/%d] %s -> %s\n", variant, index + 1, count, tensor, tr ? tr->name : "?");
    }
}

int cmd_quantize(int argc, char **argv) {
    const char *base = NULL, *out = NULL, *types = NULL;
    long threads = 0;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = cli_value(CMD, argc, argv, &i))) return 1
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VALUE(); base = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { VALUE(); out = v; }
        else if (!strcmp(a, "--types")) { VALUE(); types = v; }
        else if (!strcmp(a, "--force")) force = true;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VALUE(); if (cli_int(CMD, a, v, 1, 1024, &threads)) return 1; }
        else return cli_fail(CMD, "unknown option '%s' (see --help)", a);
#undef VALUE
    }
    if (!base) return cli_fail(CMD, "no base model (give -m BASE.gguf)");
    if (!out || !*out) return cli_fail(CMD, "no output directory (give -o DIR)");

    enum ac_variant_kind kinds[AC_VARIANT_COUNT];
    int n_kinds = 0;
    if (types) {
        char *list = strdup(types), *save = NULL;
        if (!list) return cli_fail(CMD, "out of memory");
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            const int k = ac_variant_parse(t);
            if (k < 0) {
                cli_fail(CMD, "--types: unknown type '%s' (f16, q8_0, q4_0, int2 / q2_0 / q2_k)", t);
                free(list);
                return 1;
            }
            bool dup = false;
            for (int j = 0; j < n_kinds; j++) dup |= kinds[j] == (enum ac_variant_kind)k;
            if (!dup) kinds[n_kinds++] = (enum ac_variant_kind)k;
        }
        free(list);
        if (n_kinds == 0) return cli_fail(CMD, "--types: empty list");
    }

    struct progress pr = {.tty = isatty(STDERR_FILENO) != 0, .t0 = ac_time_s()};
    const struct ac_quantize_params params = {
        .base_path = base, .out_dir = out, .kinds = n_kinds ? kinds : NULL, .n_kinds = n_kinds,
        .force = force, .n_threads = (int)threads, .progress = on_tensor, .progress_user = &pr,
    };
    char err[AC_ERR_LEN];
    if (ac_quantize(&params, err) != 0) return cli_fail(CMD, "%s", err);

    struct ac_manifest *m = NULL;
    if (ac_manifest_load(&m, out, err) != 0) return cli_fail(CMD, "%s", err);
    fprintf(stderr, "wrote %d variants to %s in %.1f s\n", m->n_variants, out, ac_time_s() - pr.t0);
    for (int i = 0; i < m->n_variants; i++) {
        const struct ac_manifest_variant *v = &m->variants[i];
        fprintf(stderr, "  %-5s %-10s %6.3f bits/weight %10llu bytes  relative cost %.3f%s\n", v->name, v->file,
                v->bits_per_weight, (unsigned long long)v->bytes, v->relative_cost,
                v->llama_cpp_compatible ? "" : "  (not loadable by llama.cpp)");
    }
    ac_manifest_free(m);
    return 0;
}
