/* profile.c - `agentcompress profile`: run every stage of a workflows file on
 * every configuration and store the results in SQLite (src/eval/profile.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/common.h"
#include "eval/profile.h"

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

struct progress_state {
    bool tty, printed;
    double last_print;
};

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "?");
        return;
    }
    const long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* Shared with eval (declared in cli.h). */
void cli_profile_progress(const struct ac_profile_progress *p, void *user) {
    struct progress_state *st = user;
    const double now = p->elapsed_s;
    const double rate = p->done > 0 ? now / (double)p->done : -1.0;
    char eta[32], el[32];
    fmt_time(eta, sizeof eta, rate > 0 ? rate * (double)(p->total - p->done) : -1.0);
    fmt_time(el, sizeof el, now);
    const double frac = p->total > 0 ? (double)p->done / (double)p->total : 1.0;
    if (st->tty) {
        char bar[31];
        const int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r\033[Kprofile [%s] %ld/%ld %3.0f%%  %s  ETA %s  %s %s/%d", bar, p->done, p->total,
                frac * 100, el, eta, p->config, p->workflow, p->stage);
        fflush(stderr);
    } else if (!st->printed || now - st->last_print >= 10.0) {
        st->printed = true;
        st->last_print = now;
        fprintf(stderr, "profile: %ld/%ld rows (%.0f%%), %s elapsed, ETA %s, now %s on %s stage %d\n", p->done,
                p->total, frac * 100, el, eta, p->config, p->workflow, p->stage);
    }
}

void cli_profile_progress_end(void *user) {
    const struct progress_state *st = user;
    if (st->tty) fputc('\n', stderr);
}

void *cli_profile_progress_new(void) {
    struct progress_state *st = calloc(1, sizeof *st);
    if (st) st->tty = isatty(STDERR_FILENO);
    return st;
}

int cmd_profile(int argc, char **argv) {
    static const char *C = "profile";
    const char *dir = NULL, *tasks = NULL, *out = NULL, *configs = NULL;
    long threads = 0, max_rows = 0, workers = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = cli_value(C, argc, argv, &i))) return 1
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: agentcompress profile -V VARIANTS_DIR --tasks FILE.jsonl -o PROFILE.sqlite\n"
                   "                             [--configs LIST] [-t N]\n\n"
                   "Runs every stage of a workflows file on every configuration and stores, per stage, the\n"
                   "F16 variant's greedy output (the reference; {prev} is filled with the F16 output of the\n"
                   "previous stage, so every configuration sees the same prompt) and, per stage and\n"
                   "configuration, its own greedy output, success (the stage's check), fidelity (teacher-\n"
                   "forced same-top-1 against the F16 output), prompt and generated tokens, bytes of weights\n"
                   "read and wall time. PROFILE is an SQLite file (tables meta, stages, configs, results;\n"
                   "query it with sqlite3). Interrupted (Ctrl-C finishes the current row), it resumes where\n"
                   "it stopped when run again with the same arguments.\n\n"
                   "  --configs LIST  comma-separated configurations VARIANT[+pRATIO][+sSPARSITY], e.g.\n"
                   "                  f16,q8_0,q4_0+p0.1,q8_0+s0.25 (pruning and sparsity need\n"
                   "                  'agentcompress calibrate'). Default: f16, q8_0, q4_0, the int2\n"
                   "                  variant, and q4_0+p0.1 when calibrated\n"
                   "  -t N            threads in all (default: cores), split over the workers\n"
                   "  --workers N     stages run concurrently, one context each (default: cores)\n"
                   "  --max-rows N    stop after N new rows (testing)\n");
            return 0;
        } else if (!strcmp(a, "-V")) {
            VALUE();
            dir = v;
        } else if (!strcmp(a, "--tasks")) {
            VALUE();
            tasks = v;
        } else if (!strcmp(a, "-o")) {
            VALUE();
            out = v;
        } else if (!strcmp(a, "--configs")) {
            VALUE();
            configs = v;
        } else if (!strcmp(a, "-t")) {
            VALUE();
            if (cli_int(C, a, v, 1, 1024, &threads)) return 1;
        } else if (!strcmp(a, "--workers")) {
            VALUE();
            if (cli_int(C, a, v, 1, 256, &workers)) return 1;
        } else if (!strcmp(a, "--max-rows")) {
            VALUE();
            if (cli_int(C, a, v, 1, 1L << 40, &max_rows)) return 1;
        } else
            return cli_fail(C, "unknown option '%s' (see --help)", a);
#undef VALUE
    }
    if (!dir || !tasks || !out) return cli_fail(C, "give -V VARIANTS_DIR, --tasks FILE.jsonl and -o PROFILE.sqlite");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    void *prog = cli_profile_progress_new();
    struct ac_profile_params p = {.variants_dir = dir, .tasks_path = tasks, .db_path = out, .configs = configs,
                                  .n_threads = (int)threads, .n_workers = (int)workers, .max_rows = max_rows, .stop = &g_stop,
                                  .progress = prog ? cli_profile_progress : NULL, .user = prog};
    struct ac_profile_summary sum;
    char err[AC_ERR_LEN];
    const int rc = ac_profile_run(&p, &sum, err);
    if (prog) cli_profile_progress_end(prog);
    free(prog);
    if (rc != 0) return cli_fail(C, "%s", err);
    fprintf(stderr, "profile: %d stages x %d configurations: %ld rows written, %ld already there, %.1f s%s\n",
            sum.n_stages, sum.n_configs, sum.rows_written, sum.rows_skipped, sum.seconds,
            sum.interrupted ? " (stopped early: run again to resume)" : "");
    if (sum.interrupted && g_stop) return 130;
    return 0;
}
