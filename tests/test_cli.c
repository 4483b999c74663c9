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
#include <math.h>

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

int main(void) {
    const char *build = getenv("AC_BUILD");
    snprintf(cli, sizeof cli, "%s/agentcompress", build ? build : "build");
    if (!mkdtemp(tdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_greedy_matches_reference),
        cmocka_unit_test(test_calibrate_kld),
        cmocka_unit_test(test_train_route_run),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    sh("rm -rf \"$T\"");
    return failed;
}
