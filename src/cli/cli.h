/* cli.h - shared pieces of the agentcompress subcommands. The CLI is thin:
 * it parses flags, calls the library, prints results and errors. */
#ifndef AC_CLI_H
#define AC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The embedded defaults: what `scripts/setup.sh` fetches, `make run` quantizes
 * and the repository ships (controllers/README.md says how it was trained). */
#define CLI_DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define CLI_DEFAULT_VARIANTS "variants"
#define CLI_DEFAULT_CONTROLLER "controllers/default.gguf"

/* Prints "agentcompress: <cmd>: <message>" on stderr; returns 1 (the exit code). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing for flag values: the whole string must be a number
 * in [lo, hi]. Return 0 or, after printing an error, -1. */
int cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
int cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out);

/* A byte size: a number with an optional K, M or G suffix (powers of 1024). */
int cli_size(const char *cmd, const char *flag, const char *s, size_t *out);

/* The value after flag argv[*i]; advances *i. Prints an error and returns
 * NULL when the flag is last. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
char *cli_read_file(const char *path, size_t *len);

struct ac_gen_stats;

/* ac_generate callback: writes the token's text to stdout as it comes
 * (user: the const struct ac_tokenizer *). Never stops generation. */
bool cli_print_token(void *user, int32_t id);
/* The prefill and decode speed lines on stderr (bench scripts parse them). */
void cli_print_stats(const struct ac_gen_stats *st);

int cmd_generate(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_kld(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* profile's progress display (a bar on a terminal, a line every 10 s
 * otherwise), shared by profile and eval. */
struct ac_profile_progress;
void *cli_profile_progress_new(void);
void cli_profile_progress(const struct ac_profile_progress *p, void *user);
void cli_profile_progress_end(void *user);

#endif
