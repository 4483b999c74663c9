/* test_cli.c - agentcompress as a user meets it: greedy generation equals
 * llama.cpp's text, and every bad input is one error line on stderr with a
 * non-zero exit, never a crash. Runs $AC_BUILD/agentcompress. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <time.h>

#define MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static char cli[256];
/* A directory of this process's own (tests may run concurrently): shell
 * commands see it as $T. */
static char tdir[64] = "/tmp/ac_cli_XXXXXX";

static const char *tpath(const char *name) {
    static char buf[2][256];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tdir, name);
    return buf[k];
}

static int sh(const char *command) {
    char full[4096];
    snprintf(full, sizeof full, "T='%s'; %s", tdir, command);
    return system(full);
}

struct result {
    int status; /* exit code, or 128 + signal */
    char *out, *err;
};

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc(1, (size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) b[0] = '\0';
    fclose(f);
    return b;
}

/* Runs "agentcompress ARGS" through the shell (args are trusted test text). */
static struct result run(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "T='%s'; %s %s >\"$T/out.txt\" 2>\"$T/err.txt\" </dev/null", tdir, cli, args);
    int st = system(cmd);
    struct result r = {0};
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = slurp(tpath("out.txt"));
    r.err = slurp(tpath("err.txt"));
    return r;
}

static void free_result(struct result *r) {
    free(r->out);
    free(r->err);
}

/* Non-zero exit (not a signal: the shell reports those as 128+N), exactly
 * one line on stderr, prefixed and containing needle. */
static void expect_fail(const char *args, const char *needle) {
    struct result r = run(args);
    if (r.status == 0 || r.status >= 128) fail_msg("'%s' exited %d", args, r.status);
    const char *nl = strchr(r.err, '\n');
    if (!nl || nl[1] != '\0') fail_msg("'%s': expected one stderr line, got:\n%s", args, r.err);
    if (strncmp(r.err, "agentcompress: ", 15) != 0 || !strstr(r.err, needle))
        fail_msg("'%s': stderr '%s' lacks '%s'", args, r.err, needle);
    free_result(&r);
}

static void test_help(void **state) {
    (void)state;
    struct result r = run("--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "generate"));
    free_result(&r);
    r = run("generate --help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "--temp"));
    free_result(&r);
    r = run("");
    assert_int_equal(r.status, 2);
    free_result(&r);
}

static void test_bad_inputs(void **state) {
    (void)state;
    expect_fail("generate -m /nonexistent.gguf -p hi", "No such file");
    expect_fail("generate -m README.md -p hi", "bad magic");
    expect_fail("generate -m " MODEL " -p ''", "empty prompt");
    expect_fail("generate -m " MODEL, "empty prompt");
    expect_fail("generate -m " MODEL " -p hi -n 0", "out of range");
    expect_fail("generate -m " MODEL " -p hi -n abc", "expected an integer");
    expect_fail("generate -m " MODEL " -p hi --temp", "needs a value");
    expect_fail("generate -m " MODEL " -p hi --bogus", "unknown option");
    expect_fail("generate -m " MODEL " -f /nonexistent.txt", "cannot read");
    expect_fail("generate -m " MODEL " -p hi -md /nonexistent.gguf", "draft model: ");
    expect_fail("generate -m " MODEL " -p hi -n 8 -md tests/fixtures/tiny_llama.gguf", "vocabulary");
    expect_fail("generate -m " MODEL " -p hi -md " MODEL " --draft-max 0", "out of range");
    expect_fail("generate -m " MODEL " -c 8 -p 'one two three four five six seven eight nine ten'", "does not fit");
    expect_fail("bogus", "unknown command");
    /* a truncated copy of the real model */
    assert_int_equal(sh("head -c 3000000 " MODEL " > $T/ac_trunc.gguf"), 0);
    expect_fail("generate -m $T/ac_trunc.gguf -p hi", "past the end");
    unlink(tpath("ac_trunc.gguf"));
}

/* Greedy text through the CLI equals llama.cpp's for every plain reference
 * prompt, up to the first step where llama.cpp's own top-2 logit margin is
 * below the numeric noise of 8-bit activations (see test_model.c). */
#define MARGIN_SAFE 0.5

static void test_greedy_matches_reference(void **state) {
    (void)state;
    char *json = slurp("tests/fixtures/ref_smollm2.json");
    cJSON *ref = cJSON_Parse(json);
    assert_non_null(ref);
    const cJSON *prompts = cJSON_GetObjectItem(ref, "prompts");
    int checked = 0;
    for (int i = 0; i < cJSON_GetArraySize(prompts); i++) {
        const cJSON *e = cJSON_GetArrayItem(prompts, i);
        if (strcmp(cJSON_GetObjectItem(e, "kind")->valuestring, "plain") != 0) continue;
        const char *user = cJSON_GetObjectItem(e, "user")->valuestring;
        if (strchr(user, '\'') || strlen(user) > 1000) continue;
        const cJSON *pieces = cJSON_GetObjectItem(e, "generated_pieces");
        const cJSON *margins = cJSON_GetObjectItem(e, "step_top2_margin");
        char want[4096] = "";
        int steps = 0;
        for (; steps < cJSON_GetArraySize(pieces); steps++) {
            if (cJSON_GetArrayItem(margins, steps)->valuedouble < MARGIN_SAFE) break;
            strncat(want, cJSON_GetArrayItem(pieces, steps)->valuestring, sizeof want - strlen(want) - 1);
        }
        char args[4096];
        snprintf(args, sizeof args, "generate -m " MODEL " --temp 0 --ignore-eos -n %d -p '%s'",
                 cJSON_GetArraySize(pieces), user);
        struct result r = run(args);
        assert_int_equal(r.status, 0);
        if (strncmp(r.out, want, strlen(want)) != 0)
            fail_msg("prompt '%.40s': first %d steps differ\n ours: %s\n ref:  %s", user, steps, r.out, want);
        printf("  '%.30s...': llama.cpp's first %d tokens reproduced\n", user, steps);
        assert_non_null(strstr(r.err, "decode: "));
        free_result(&r);
        checked++;
    }
    assert_true(checked >= 3);
    cJSON_Delete(ref);
    free(json);
}

/* -md: the same text, sampled with a seed, as without a draft; the draft's
 * acceptance on stderr */
static void test_generate_with_draft(void **state) {
    (void)state;
    struct result plain = run("generate -m " MODEL " --seed 3 --ignore-eos -n 20 -p 'Water boils at'");
    struct result spec = run("generate -m " MODEL " --seed 3 --ignore-eos -n 20 -p 'Water boils at' -md " MODEL
                             " --draft-max 3");
    assert_int_equal(plain.status, 0);
    assert_int_equal(spec.status, 0);
    assert_string_equal(spec.out, plain.out);
    assert_non_null(strstr(spec.err, "draft: "));
    free_result(&plain);
    free_result(&spec);
}

/* calibrate + kld on a one-variant directory made of the tiny F32 model */
static void test_calibrate_kld(void **state) {
    (void)state;
    assert_int_equal(sh("rm -rf $T/ac_vdir && mkdir -p $T/ac_vdir && "
                            "cp tests/fixtures/tiny_llama.gguf $T/ac_vdir/f16.gguf && "
                            "printf '%s' '{\"base\": \"tiny\", \"variants\": [{\"name\": \"f16\", "
                            "\"file\": \"f16.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, "
                            "\"relative_cost\": 1}]}' > $T/ac_vdir/manifest.json && "
                            "cp README.md $T/ac_text.txt"),
                     0);
    struct result r = run("calibrate -V $T/ac_vdir --text $T/ac_text.txt --tokens 200 --window 64");
    if (r.status != 0) fail_msg("calibrate: %s", r.err);
    free_result(&r);
    char *man = slurp(tpath("ac_vdir/manifest.json"));
    assert_non_null(strstr(man, "\"prune_order\""));
    free(man);
    r = run("kld -V $T/ac_vdir --text $T/ac_text.txt --tokens 128 --window 64 --json");
    if (r.status != 0) fail_msg("kld: %s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    const cJSON *configs = cJSON_GetObjectItem(j, "configs");
    assert_int_equal(cJSON_GetArraySize(configs), 5);
    const cJSON *plain = cJSON_GetArrayItem(configs, 0);
    assert_true(cJSON_GetObjectItem(plain, "same_top1")->valuedouble == 1.0);
    assert_true(fabs(cJSON_GetObjectItem(plain, "kld")->valuedouble) < 1e-3);
    /* pruning 0.2 (one of two layers... ceil(0.2 * 2) = 1) reads fewer bytes */
    const double b0 = cJSON_GetObjectItem(plain, "bytes_per_token")->valuedouble;
    const double b2 = cJSON_GetObjectItem(cJSON_GetArrayItem(configs, 2), "bytes_per_token")->valuedouble;
    assert_true(b2 < b0);
    cJSON_Delete(j);
    free_result(&r);
    /* bench: plain, pruned and sparse configurations of the calibrated variant */
    r = run("bench -V $T/ac_vdir -t 1 --json");
    if (r.status != 0) fail_msg("bench: %s", r.err);
    j = cJSON_Parse(r.out);
    assert_non_null(j);
    const cJSON *rows = cJSON_GetObjectItem(j, "configs");
    assert_int_equal(cJSON_GetArraySize(rows), 3);
    assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "ratio_to_f16")->valuedouble == 1.0);
    assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 1), "mb_per_token")->valuedouble <
                cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "mb_per_token")->valuedouble);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "swap_ms")), 1);
    cJSON_Delete(j);
    free_result(&r);
    expect_fail("kld -V /nonexistent --text README.md", "manifest.json");
    expect_fail("calibrate -V $T/ac_vdir", "give -V");
    assert_int_equal(sh("rm -rf $T/ac_vdir $T/ac_text.txt"), 0);
}

/* train -> route -> run on a two-variant directory of the tiny model and a
 * synthetic profile where the first token decides the cheap variant */
static void test_train_route_run(void **state) {
    (void)state;
    FILE *f = fopen(tpath("ac_profile.jsonl"), "w");
    assert_non_null(f);
    fprintf(f, "{\"levels\": {\"quant\": [\"f16\", \"lite\"], \"prune\": [0], \"sparsity\": [0]}}\n");
    for (int i = 0; i < 40; i++) {
        const int hard = i % 2;
        fprintf(f, "{\"domain\": \"%s\", \"ids\": [%d, %d, %d], \"cost\": [1.0, 0.5], \"fidelity\": [1.0, %s]}\n",
                i % 4 < 2 ? "cs" : "physics", hard ? 10 : 20, 30 + i, 40 + i, hard ? "0.5" : "0.99");
    }
    fclose(f);
    assert_int_equal(sh("rm -rf $T/ac_vdir2 && mkdir -p $T/ac_vdir2 && "
                            "cp tests/fixtures/tiny_llama.gguf $T/ac_vdir2/f16.gguf && "
                            "cp tests/fixtures/tiny_llama.gguf $T/ac_vdir2/lite.gguf && "
                            "printf '%s' '{\"base\": \"tiny\", \"variants\": ["
                            "{\"name\": \"f16\", \"file\": \"f16.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1}, "
                            "{\"name\": \"lite\", \"file\": \"lite.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 0.5}"
                            "]}' > $T/ac_vdir2/manifest.json"),
                     0);
    struct result r = run("train --profile $T/ac_profile.jsonl -o $T/ac_ctrl.gguf -m $T/ac_vdir2/f16.gguf "
                          "--epochs 3 --d-model 32 --layers 1 --heads 2");
    if (r.status != 0) fail_msg("train: %s", r.err);
    free_result(&r);
    r = run("route -V $T/ac_vdir2 -c $T/ac_ctrl.gguf -p 'hello world' --json");
    if (r.status != 0) fail_msg("route: %s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    const double c = cJSON_GetObjectItem(j, "complexity")->valuedouble;
    assert_true(c >= 0.0 && c <= 1.0);
    assert_non_null(cJSON_GetObjectItem(j, "variant"));
    cJSON_Delete(j);
    free_result(&r);
    r = run("run -V $T/ac_vdir2 -c $T/ac_ctrl.gguf -p 'hello world' -n 4");
    if (r.status != 0) fail_msg("run: %s", r.err);
    assert_non_null(strstr(r.err, "run: complexity"));
    free_result(&r);
    /* a controller whose variants the directory lacks */
    assert_int_equal(sh("sed -i 's/lite/other/g' $T/ac_vdir2/manifest.json"), 0);
    expect_fail("route -V $T/ac_vdir2 -c $T/ac_ctrl.gguf -p hi", "another variant set");
    expect_fail("route -V $T/ac_vdir2 -c README.md -p hi", "bad magic");
    expect_fail("train --profile /nonexistent.jsonl -o \"$T/x.gguf\"", "nonexistent");
    assert_int_equal(sh("rm -rf $T/ac_vdir2 $T/ac_ctrl.gguf $T/ac_profile.jsonl"), 0);
}

/* ---------------------------------------------------------------- validate */

static void write_text(const char *name, const char *text) {
    FILE *f = fopen(tpath(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define WF_LINE(wf, dom, st, prompt, check)                                                                        \
    "{\"workflow\": \"" wf "\", \"domain\": \"" dom "\", \"stage\": " #st ", \"kind\": \"extraction\", "           \
    "\"prompt\": \"" prompt "\", \"max_tokens\": 8, \"check\": " check "}\n"
#define NONE "{\"type\": \"none\"}"

/* Every malformed line is one "FILE:LINE: reason" error and exit status 1;
 * a good file is one summary line and 0. */
static void test_validate(void **state) {
    (void)state;
    static const struct {
        const char *text;
        const char *needle; /* after "FILE:" */
    } bad[] = {
        {WF_LINE("a", "cs", 1, "p", NONE) "{\"workflow\": \"a\", \"stage\": 2,\n", "2: bad JSON"},
        {WF_LINE("a", "cs", 1, "p", NONE) WF_LINE("a", "cs", 2, "p", NONE)
             WF_LINE("b", "cs", 1, "p", "{\"type\": \"fuzzy\"}"),
         "3: unknown check type \"fuzzy\""},
        {"{\"workflow\": \"a\", \"domain\": \"cs\", \"stage\": 1, \"kind\": \"k\", \"max_tokens\": 8, \"check\": " NONE
         "}\n",
         "1: missing field \"prompt\""},
        {WF_LINE("a", "cs", 1, "p", NONE) "\n" WF_LINE("b", "physics", 1, "then {prev}", NONE),
         "3: stage 1 uses {prev}"},
        {WF_LINE("a", "cs", 1, "p", NONE) WF_LINE("b", "astronomy", 1, "p", NONE), "2: unknown domain \"astronomy\""},
    };
    char needle[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text("bad.jsonl", bad[i].text);
        snprintf(needle, sizeof needle, "%s:%s", tpath("bad.jsonl"), bad[i].needle);
        struct result r = run("validate $T/bad.jsonl");
        assert_int_equal(r.status, 1);
        free_result(&r);
        expect_fail("validate $T/bad.jsonl", needle);
    }
    /* the domain set is the user's: any, or a list */
    struct result r = run("validate $T/bad.jsonl --domains any");
    assert_int_equal(r.status, 0);
    free_result(&r);
    r = run("validate $T/bad.jsonl --domains 'cs, astronomy'");
    assert_int_equal(r.status, 0);
    free_result(&r);
    expect_fail("validate $T/bad.jsonl --domains cs,", "empty name");

    write_text("good.jsonl",
               WF_LINE("chem-1", "chemistry", 1, "Formula of water?", "{\"type\": \"exact\", \"value\": \"H2O\"}")
                   WF_LINE("chem-1", "chemistry", 2, "As JSON: {prev}", "{\"type\": \"json_keys\", \"keys\": [\"f\"]}")
                       WF_LINE("cs-1", "cs", 1, "p", NONE));
    r = run("validate $T/good.jsonl");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    snprintf(needle, sizeof needle,
             "%s: 2 workflows, 3 stages (1-2 per workflow); domains: chemistry 1, cs 1; kinds: extraction 3; checks: "
             "exact 1, json_keys 1, none 1\n",
             tpath("good.jsonl"));
    assert_string_equal(r.out, needle);
    free_result(&r);
    /* splits are by workflow: one in two files is an error */
    write_text("other.jsonl", WF_LINE("bio-1", "biology", 1, "p", NONE) WF_LINE("cs-1", "cs", 1, "p", NONE));
    snprintf(needle, sizeof needle, "other.jsonl:2: workflow \"cs-1\" is also in %s (line 3)", tpath("good.jsonl"));
    expect_fail("validate $T/good.jsonl $T/other.jsonl", needle);
    expect_fail("validate", "give one or more");
    expect_fail("validate $T/nonexistent.jsonl", "No such file");
    /* the shipped splits */
    r = run("validate bench/workflows/train.jsonl bench/workflows/dev.jsonl bench/workflows/test.jsonl");
    if (r.status != 0) fail_msg("the shipped splits do not validate: %s", r.err);
    assert_non_null(strstr(r.out, "3 files: "));
    free_result(&r);
    r = run("--help");
    assert_non_null(strstr(r.out, "validate"));
    free_result(&r);
    sh("rm -f $T/bad.jsonl $T/good.jsonl $T/other.jsonl");
}

/* ---------------------------------------------------------------- profile and SIGINT */

extern char **environ;

/* The rows of a profile without wall times, in a fixed order, as text. */
static char *profile_rows(const char *db_path) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT r.stage_id, r.config_id, c.name, r.output, r.success, r.fidelity, r.n_prompt, "
                           "r.n_generated, r.weight_bytes, s.workflow, s.stage, s.prompt, s.f16_output, "
                           "hex(s.f16_ids), s.f16_success FROM results r JOIN stages s ON s.id = r.stage_id "
                           "JOIN configs c ON c.id = r.config_id ORDER BY r.stage_id, c.name",
                           -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", db_path, sqlite3_errmsg(db));
    size_t cap = 1 << 12, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *v = (const char *)sqlite3_column_text(st, c);
            const size_t n = strlen(v ? v : "NULL") + 2;
            if (len + n >= cap) {
                cap = 2 * (len + n);
                out = realloc(out, cap);
                assert_non_null(out);
            }
            len += (size_t)snprintf(out + len, cap - len, "%s%c", v ? v : "NULL",
                                    c + 1 < sqlite3_column_count(st) ? '|' : '\n');
        }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static long profile_count(const char *db_path, const char *sql) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long v = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pause_us(long us) {
    const struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

/* Waits at most timeout_s for the child; its exit status (128 + N for a
 * signal), or -1 after killing it at the deadline. */
static int wait_child(pid_t pid, double timeout_s) {
    const double deadline = now_s() + timeout_s;
    int st;
    for (;;) {
        const pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (got < 0) return -1;
        if (now_s() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        pause_us(5000);
    }
}

/* While the child profiles into db_path: takes the database's write lock
 * (BEGIN IMMEDIATE) once the results table holds a row, so that the child
 * can commit nothing more until the lock is released; returns the rows
 * counted, 0 if the child ended first, -1 at the deadline. Between polls the
 * lock is free, so the child runs; a collision costs it SQLite's busy wait,
 * never an error (its busy timeout is 5 s, a poll holds the lock for
 * microseconds). A poll that finds the lock taken gives up at once and comes
 * back 0.5 ms later: SQLite's own busy wait backs off up to 100 ms a try, in
 * which the child would commit many rows. */
static long lock_once_rows_exist(pid_t pid, const char *db_path, sqlite3 **locked, double timeout_s) {
    const double deadline = now_s() + timeout_s;
    while (now_s() < deadline) {
        if (waitpid(pid, &(int){0}, WNOHANG) != 0) return 0;
        sqlite3 *db = NULL;
        if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
            sqlite3_stmt *st = NULL;
            long n = 0;
            if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
                sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM results", -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
            if (n > 0) {
                *locked = db;
                return n;
            }
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
        sqlite3_close(db);
        pause_us(500);
    }
    return -1;
}

/* profile interrupted with SIGINT once rows exist, then run again, ends with
 * the rows of an uninterrupted run: the same values, none twice. */
static void test_profile_sigint_resume(void **state) {
    (void)state;
    enum { N_WORKFLOWS = 12, N_CONFIGS = 2 };
    const long total = 2L * N_WORKFLOWS * N_CONFIGS; /* two stages a workflow */
    assert_int_equal(sh("rm -rf $T/ac_sig && mkdir -p $T/ac_sig/v && "
                        "cp tests/fixtures/tiny_llama.gguf $T/ac_sig/v/f16.gguf && "
                        "cp tests/fixtures/tiny_llama.gguf $T/ac_sig/v/lite.gguf && "
                        "printf '%s' '{\"base\": \"tiny\", \"variants\": ["
                        "{\"name\": \"f16\", \"file\": \"f16.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, "
                        "\"relative_cost\": 1}, {\"name\": \"lite\", \"file\": \"lite.gguf\", "
                        "\"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 0.5}]}' > $T/ac_sig/v/manifest.json"),
                     0);
    FILE *f = fopen(tpath("ac_sig/tasks.jsonl"), "w");
    assert_non_null(f);
    for (int w = 0; w < N_WORKFLOWS; w++) {
        fprintf(f, "{\"workflow\": \"w%d\", \"domain\": \"cs\", \"stage\": 1, \"kind\": \"x\", \"prompt\": "
                   "\"count %d %d %d\", \"max_tokens\": 8, \"check\": {\"type\": \"none\"}}\n", w, w, w + 1, w + 2);
        fprintf(f, "{\"workflow\": \"w%d\", \"domain\": \"cs\", \"stage\": 2, \"kind\": \"x\", \"prompt\": "
                   "\"repeat: {prev}\", \"max_tokens\": 6, \"check\": {\"type\": \"contains\", \"value\": \"a\"}}\n", w);
    }
    fclose(f);

    /* the interrupted run: a child of ours, so that it gets the SIGINT itself */
    char cli_arg[256], vdir[256], tasks[256], part[256], errp[256];
    snprintf(cli_arg, sizeof cli_arg, "%s", cli);
    snprintf(vdir, sizeof vdir, "%s", tpath("ac_sig/v"));
    snprintf(tasks, sizeof tasks, "%s", tpath("ac_sig/tasks.jsonl"));
    snprintf(part, sizeof part, "%s", tpath("ac_sig/part.sqlite"));
    snprintf(errp, sizeof errp, "%s", tpath("ac_sig/part_err.txt"));
    char *argv[] = {cli_arg, "profile", "-V", vdir, "--tasks", tasks, "-o", part, "--configs", "f16,lite",
                    "-t", "1", "--workers", "1", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, cli_arg, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    sqlite3 *lock = NULL;
    const long rows_at_signal = lock_once_rows_exist(pid, part, &lock, 60.0);
    if (rows_at_signal > 0) kill(pid, SIGINT);
    sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(lock);
    const int status = wait_child(pid, 60.0);
    char *err = slurp(errp);
    if (rows_at_signal <= 0) fail_msg("profile ended or stalled before any row (%ld): %s", rows_at_signal, err);
    if (rows_at_signal >= total) fail_msg("profile wrote all %ld rows before the SIGINT: make the tasks longer", total);
    /* a clean stop: the row in progress finished, the rest left for later */
    if (status != 130 || !strstr(err, "stopped early")) fail_msg("interrupted profile: exit %d, stderr:\n%s", status, err);
    free(err);
    const long rows_after_stop = profile_count(part, "SELECT COUNT(*) FROM results");
    assert_true(rows_after_stop >= rows_at_signal && rows_after_stop < total);

    /* restarted, it does only what is left; an uninterrupted run into another file */
    struct result r = run("profile -V $T/ac_sig/v --tasks $T/ac_sig/tasks.jsonl -o $T/ac_sig/part.sqlite "
                          "--configs f16,lite -t 1 --workers 1");
    if (r.status != 0) fail_msg("resumed profile: %s", r.err);
    char done_line[128];
    snprintf(done_line, sizeof done_line, "%ld rows written, %ld already there", total - rows_after_stop,
             rows_after_stop);
    if (!strstr(r.err, done_line)) fail_msg("resumed profile: '%s' not in:\n%s", done_line, r.err);
    free_result(&r);
    r = run("profile -V $T/ac_sig/v --tasks $T/ac_sig/tasks.jsonl -o $T/ac_sig/full.sqlite "
            "--configs f16,lite -t 1 --workers 1");
    if (r.status != 0) fail_msg("profile: %s", r.err);
    free_result(&r);
    assert_int_equal(profile_count(part, "SELECT COUNT(*) FROM results"), total);
    assert_int_equal(profile_count(part, "SELECT COUNT(*) FROM (SELECT DISTINCT stage_id, config_id FROM results)"),
                     total);
    char *got = profile_rows(part), *want = profile_rows(tpath("ac_sig/full.sqlite"));
    assert_string_equal(got, want);
    printf("  SIGINT after %ld of %ld rows, %ld stored at the stop; resumed: the uninterrupted run's rows\n",
           rows_at_signal, total, rows_after_stop);
    free(got);
    free(want);
    assert_int_equal(sh("rm -rf $T/ac_sig"), 0);
}

int main(void) {
    const char *build = getenv("AC_BUILD");
    snprintf(cli, sizeof cli, "%s/agentcompress", build ? build : "build");
    if (!mkdtemp(tdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_greedy_matches_reference),
        cmocka_unit_test(test_generate_with_draft),
        cmocka_unit_test(test_calibrate_kld),
        cmocka_unit_test(test_train_route_run),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_profile_sigint_resume),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    sh("rm -rf \"$T\"");
    return failed;
}
