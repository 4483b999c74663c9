/* main.c - agentcompress: subcommand dispatch, shared flag helpers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"

#define AC_VERSION "0.1.0"

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "agentcompress: %s: ", cmd);
    vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start above (analyzer false positive)
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return cli_fail(cmd, "%s: expected an integer, got '%s'", flag, s), -1;
    if (v < lo || v > hi) return cli_fail(cmd, "%s: %ld is out of range [%ld, %ld]", flag, v, lo, hi), -1;
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) return cli_fail(cmd, "%s: expected a number, got '%s'", flag, s), -1;
    if (v < lo || v > hi) return cli_fail(cmd, "%s: %g is out of range [%g, %g]", flag, v, lo, hi), -1;
    *out = v;
    return 0;
}

int cli_size(const char *cmd, const char *flag, const char *s, size_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mult = 1.0;
    if (*end == 'K' || *end == 'k') mult = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mult = 1024.0 * 1024.0, end++;
    else if (*end == 'G' || *end == 'g') mult = 1024.0 * 1024.0 * 1024.0, end++;
    if (errno || end == s || *end || !(v > 0) || v * mult > 1e15)
        return cli_fail(cmd, "%s: expected a size such as 512M, got '%s'", flag, s), -1;
    *out = (size_t)(v * mult);
    return 0;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_fail(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (ferror(f)) break;
        if (feof(f)) {
            buf[n] = '\0';
            fclose(f);
            if (len) *len = n;
            return buf;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) break;
        buf = bigger;
        cap *= 2;
    }
    free(buf);
    fclose(f);
    return NULL;
}

bool cli_print_token(void *user, int32_t id) {
    char buf[512];
    int n = ac_token_to_piece(user, id, buf, (int)sizeof buf, false);
    if (n > (int)sizeof buf) n = (int)sizeof buf;
    if (n > 0) fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
    return false;
}

void cli_print_stats(const struct ac_gen_stats *st) {
    fflush(stdout); /* the text's last newline before the stats when both go to one pipe */
    fprintf(stderr, "prefill: %d tokens in %.3f s (%.1f tok/s)\n", st->n_prompt, st->prefill_s,
            st->prefill_s > 0 ? st->n_prompt / st->prefill_s : 0.0);
    /* tokens produced after the first (which comes from the prompt's pass) */
    const int after_first = st->n_drafted ? st->n_generated - 1 : st->n_decoded;
    fprintf(stderr, "decode: %d tokens in %.3f s (%.1f tok/s)\n", after_first, st->decode_s,
            st->decode_s > 0 ? after_first / st->decode_s : 0.0);
    if (st->n_drafted)
        fprintf(stderr, "draft: %d of %d proposed tokens accepted (%.1f%%), %d passes of the model\n", st->n_accepted,
                st->n_drafted, 100.0 * st->n_accepted / st->n_drafted, st->n_decoded);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"generate", cmd_generate, "generate text from a GGUF model"},
    {"serve", cmd_serve, "serve a model over an OpenAI-compatible HTTP API"},
    {"quantize", cmd_quantize, "write the f16/q8_0/q4_0/int2 variants of a model and their manifest"},
    {"calibrate", cmd_calibrate, "measure layer influence and sparsity thresholds of each variant"},
    {"train", cmd_train, "train the complexity controller on a profile"},
    {"route", cmd_route, "print the controller's decision for a prompt"},
    {"run", cmd_run, "route a prompt and generate on the chosen configuration"},
    {"validate", cmd_validate, "check workflows files (format, domains, splits disjoint) and count them"},
    {"profile", cmd_profile, "run every workflow stage on every configuration into an SQLite profile"},
    {"eval", cmd_eval, "compare routing systems, baselines and the oracle on workflows"},
    {"bench", cmd_bench, "decode speed of every configuration, swap time, controller latency"},
    {"kld", cmd_kld, "score every configuration against the f16 variant (PPL, KLD, same top-1)"},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: agentcompress <command> [options]\n\n"
            "Task-aware compressed LLM inference for agents.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'agentcompress <command> --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("agentcompress %s\n", AC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "agentcompress: unknown command '%s' (see 'agentcompress --help')\n", argv[1]);
    return 2;
}
