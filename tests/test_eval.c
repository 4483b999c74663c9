/* test_eval.c - eval's invariants on a hand-made profile (oracle bounds,
 * all-f16 = reference, random at matched cost, cache accounting), and
 * profile on the tiny model: interrupted and resumed, it ends with the same
 * rows as an uninterrupted run and no duplicates. */
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
#include <sqlite3.h>

#include "common/common.h"
#include "eval/eval.h"
#include "eval/profile.h"
#include "eval/report.h"

#define NS 240
enum { F16, Q8, Q4, Q2, NC };
static const char *names[NC] = {"f16", "q8_0", "q4_0", "q2_0"};

static uint64_t rng = 42;
static double urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Stages of growing difficulty; cheaper configs succeed on easier ones. */
static void make_fixture(struct ac_eval_data *d, double file_bytes) {
    char err[AC_ERR_LEN];
    assert_int_equal(ac_eval_data_alloc(d, NS, NC, err), 0);
    static const double bpt[NC] = {100, 53, 33, 20};
    for (int c = 0; c < NC; c++) {
        snprintf(d->configs[c].name, sizeof d->configs[c].name, "%s", names[c]);
        snprintf(d->configs[c].variant, sizeof d->configs[c].variant, "%s", names[c]);
        d->configs[c].file_bytes = file_bytes * bpt[c];
        d->configs[c].load_s = 0.01;
    }
    d->f16 = F16;
    static const char *domains[] = {"cs", "physics", "chemistry", "biology"};
    static const char *kinds[] = {"formatting", "reasoning", "arithmetic"};
    for (int s = 0; s < NS; s++) {
        struct ac_eval_stage *g = &d->stages[s];
        char wf[32];
        snprintf(wf, sizeof wf, "w%03d", s / 4);
        g->workflow = strdup(wf);
        g->domain = strdup(domains[(s / 4) % 4]);
        g->kind = strdup(kinds[s % 3]);
        g->prompt = strdup("x");
        g->stage = s % 4 + 1;
        g->n_task = 10 + (int)(urand() * 60);
        const double hard = urand();
        const int tokens = 20 + (int)(urand() * 100);
        for (int c = 0; c < NC; c++) {
            const size_t i = ac_eval_at(d, s, c);
            d->have[i] = true;
            d->bytes[i] = bpt[c] * tokens;
            d->wall[i] = bpt[c] * tokens * 1e-4;
            d->fidelity[i] = c == F16 ? 1.0f : (float)(1.0 - hard * c / 3.0);
            d->success[i] = hard < 0.9 - 0.25 * c || (c > 0 && urand() < 0.05);
        }
    }
}

static void check_invariants(const struct ac_eval_result *r, const char *routed_name) {
    const struct ac_eval_system *f16 = ac_eval_result_find(r, "all-f16"), *oracle = ac_eval_result_find(r, "oracle"),
                                *rnd = ac_eval_result_find(r, "random"), *routed = ac_eval_result_find(r, routed_name);
    assert_non_null(f16);
    assert_non_null(oracle);
    assert_non_null(rnd);
    assert_non_null(routed);
    assert_non_null(ac_eval_result_find(r, "all-q8_0"));
    assert_non_null(ac_eval_result_find(r, "all-q4_0"));
    assert_non_null(ac_eval_result_find(r, "all-q2_0"));
    assert_true(f16->all.cost_reduction == 0.0);
    assert_true(f16->all.quality_preservation == 1.0);
    assert_true(oracle->all.quality_preservation >= 1.0);
    for (int i = 0; i < r->n_systems; i++) {
        const struct ac_eval_system *s = &r->systems[i];
        /* the oracle is at least as cheap as anything at least as good */
        if (s->all.quality_preservation >= oracle->all.quality_preservation)
            assert_true(oracle->all.cost_reduction >= s->all.cost_reduction - 1e-9);
        /* every stage is a hit or a swap */
        assert_true(fabs(s->all.swaps + s->all.cache_hit_rate * s->all.n - s->all.n) < 1e-6);
        for (int k = 0; k < r->n_domains; k++) {
            const struct ac_eval_metrics *m = &s->per_domain[k];
            assert_true(fabs(m->swaps + m->cache_hit_rate * m->n - m->n) < 1e-6);
        }
    }
    /* random routing at the routed system's cost (swaps are bytes too: 2%) */
    const double cr = 1 - routed->all.cost_reduction, cn = 1 - rnd->all.cost_reduction;
    if (fabs(cr - cn) > 0.02 * cr) fail_msg("random cost %.4f vs routed %.4f", cn, cr);
}

static void test_invariants(void **state) {
    (void)state;
    struct ac_eval_data d;
    make_fixture(&d, 1.0);
    int routed[NS];
    double score[NS], route_s[NS];
    for (int s = 0; s < NS; s++) {
        score[s] = d.stages[s].n_task;
        routed[s] = score[s] > 40 ? F16 : (score[s] > 25 ? Q8 : Q4);
        route_s[s] = 1e-4;
    }
    struct ac_eval_inputs in = {.routed = routed, .score = score, .route_s = route_s, .has_complexity = true,
                                .is_controller = true, .router_name = "agentcompress", .theta = 0.95};
    ac_eval_cache_params_default(&in.cache);
    struct ac_eval_result r;
    char err[AC_ERR_LEN];
    assert_int_equal(ac_eval_compute(&d, &in, &r, err), 0);
    check_invariants(&r, "agentcompress");
    assert_int_equal(r.n_domains, 4);
    assert_int_equal(r.n_kinds, 3);
    assert_true(r.n_oracle_sweep > 5 && r.n_router_sweep == 11);
    /* sweep ends: all on the cheap config (fraction 0) and all on f16 (fraction 1) */
    assert_true(fabs(r.router_sweep[10].cost_reduction) < 1e-9);
    assert_true(fabs(r.controller_us_p50 - 100) < 1e-6);
    assert_true(isfinite(r.complexity_pearson) && isfinite(r.complexity_spearman));
    /* JSON: the keys DESIGN.md promises */
    char *js = ac_eval_result_json(&r);
    cJSON *j = cJSON_Parse(js);
    assert_non_null(j);
    const cJSON *systems = cJSON_GetObjectItem(j, "systems");
    assert_int_equal(cJSON_GetArraySize(systems), 7);
    static const char *keys[] = {"name", "cost_reduction", "quality_preservation", "success_rate", "mean_fidelity",
                                 "swaps", "cache_hit_rate", "wall_s"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(systems, 0), keys[k]));
    assert_non_null(cJSON_GetObjectItem(j, "complexity_pearson"));
    assert_non_null(cJSON_GetObjectItem(j, "complexity_spearman"));
    assert_non_null(cJSON_GetObjectItem(j, "controller_us_p50"));
    cJSON_Delete(j);
    free(js);
    /* HTML: self-contained, with the chart */
    char path[] = "/tmp/ac_eval_html_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ac_eval_write_html(&r, path, err), 0);
    FILE *f = fopen(path, "r");
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    remove(path);
    assert_non_null(strstr(buf, "<svg"));
    assert_non_null(strstr(buf, "<polyline"));
    assert_null(strstr(buf, "http://") ? strstr(strstr(buf, "http://") + 1, "http://") : NULL); /* only the SVG xmlns */
    ac_eval_result_free(&r);

    /* a policy without complexity: correlations and latency are null */
    for (int s = 0; s < NS; s++) routed[s] = (s % 5) ? Q8 : F16;
    in.has_complexity = false;
    in.is_controller = false;
    in.router_name = "policy:test";
    assert_int_equal(ac_eval_compute(&d, &in, &r, err), 0);
    check_invariants(&r, "policy:test");
    assert_true(isnan(r.complexity_pearson) && isnan(r.controller_us_p50));
    ac_eval_result_free(&r);
    ac_eval_data_free(&d);
}

static void test_cache_simulation(void **state) {
    (void)state;
    struct ac_eval_data d;
    make_fixture(&d, 1.0);
    struct ac_eval_trace t;
    char err[AC_ERR_LEN];
    assert_int_equal(ac_eval_trace_alloc(&t, NS, err), 0);
    int dec[NS];
    /* a budget for f16 alone: alternating f16 / q8_0 swaps every stage */
    struct ac_eval_cache_params cp;
    ac_eval_cache_params_default(&cp);
    cp.budget_bytes = 100;
    for (int s = 0; s < NS; s++) dec[s] = s % 2 ? Q8 : F16;
    assert_int_equal(ac_eval_simulate(&d, dec, NULL, &cp, &t, err), 0);
    struct ac_eval_totals tot;
    ac_eval_totals(&d, dec, &t, NULL, &tot);
    assert_true(tot.swaps == NS && tot.hits == 0);
    /* the default budget (two f16s) holds both: two loads, the rest hits */
    cp.budget_bytes = 0;
    assert_int_equal(ac_eval_simulate(&d, dec, NULL, &cp, &t, err), 0);
    ac_eval_totals(&d, dec, &t, NULL, &tot);
    assert_true(tot.swaps == 2 && tot.hits == NS - 2);
    assert_true(t.swap[0] && t.swap[1] && !t.swap[2]);
    assert_true(t.cost[0] == d.bytes[ac_eval_at(&d, 0, F16)] + d.configs[F16].file_bytes);
    /* a budget that fits nothing is an error */
    cp.budget_bytes = 10;
    assert_int_equal(ac_eval_simulate(&d, dec, NULL, &cp, &t, err), -1);
    /* a missing row is an error */
    cp.budget_bytes = 0;
    d.have[ac_eval_at(&d, 3, Q8)] = false;
    assert_int_equal(ac_eval_simulate(&d, dec, NULL, &cp, &t, err), -1);
    assert_non_null(strstr(err, "no profile row"));
    ac_eval_trace_free(&t);
    ac_eval_data_free(&d);
}

static void test_correlation(void **state) {
    (void)state;
    const double x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 6, 8, 10}, z[] = {1, 4, 9, 16, 100}, c[] = {3, 3, 3, 3, 3};
    assert_true(fabs(ac_pearson(x, y, 5) - 1) < 1e-12);
    assert_true(fabs(ac_spearman(x, z, 5) - 1) < 1e-12);
    assert_true(ac_pearson(x, z, 5) < 0.99);
    assert_true(isnan(ac_pearson(x, c, 5)));
}

static void test_config_names(void **state) {
    (void)state;
    struct ac_config_spec sp;
    char err[AC_ERR_LEN], buf[AC_CONFIG_NAME_LEN];
    assert_int_equal(ac_config_parse("q4_0+p0.1+s0.25", &sp, err), 0);
    assert_string_equal(sp.variant, "q4_0");
    assert_true(fabsf(sp.prune - 0.1f) < 1e-6f && fabsf(sp.sparsity - 0.25f) < 1e-6f);
    ac_config_name(&sp, buf, sizeof buf);
    assert_string_equal(buf, "q4_0+p0.1+s0.25");
    assert_int_equal(ac_config_parse("f16", &sp, err), 0);
    ac_config_name(&sp, buf, sizeof buf);
    assert_string_equal(buf, "f16");
    assert_int_equal(ac_config_parse("q4_0+x1", &sp, err), -1);
    assert_int_equal(ac_config_parse("q4_0+p1.5", &sp, err), -1);
    assert_int_equal(ac_config_parse("+p0.1", &sp, err), -1);
}

/* ---------------------------------------------------------------- profile on the tiny model */

static char tdir[64] = "/tmp/ac_eval_XXXXXX";

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *TASKS =
    "{\"workflow\": \"w1\", \"domain\": \"cs\", \"stage\": 1, \"kind\": \"extraction\", \"prompt\": \"hello world\", "
    "\"max_tokens\": 4, \"check\": {\"type\": \"none\"}}\n"
    "{\"workflow\": \"w1\", \"domain\": \"cs\", \"stage\": 2, \"kind\": \"formatting\", \"prompt\": \"repeat: {prev}\", "
    "\"max_tokens\": 3, \"check\": {\"type\": \"contains\", \"value\": \"zzz\"}}\n"
    "{\"workflow\": \"w2\", \"domain\": \"physics\", \"stage\": 1, \"kind\": \"reasoning\", \"prompt\": \"a b c\", "
    "\"max_tokens\": 5, \"check\": {\"type\": \"none\"}}\n";

static long q_long(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The results as text without wall times, ordered. */
static char *dump(const char *db_path) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT s.workflow, s.stage, c.name, r.output, r.success, r.fidelity, "
                                        "r.n_prompt, r.n_generated, r.weight_bytes, s.prompt FROM results r JOIN "
                                        "stages s ON s.id = r.stage_id JOIN configs c ON c.id = r.config_id "
                                        "ORDER BY s.id, c.name",
                                        -1, &st, NULL),
                     SQLITE_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    while (sqlite3_step(st) == SQLITE_ROW) {
        len += (size_t)snprintf(out + len, cap - len, "%s|%d|%s|%s|%d|%.6f|%d|%d|%.0f|%s\n",
                                (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
                                (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3),
                                sqlite3_column_int(st, 4), sqlite3_column_double(st, 5), sqlite3_column_int(st, 6),
                                sqlite3_column_int(st, 7), sqlite3_column_double(st, 8),
                                (const char *)sqlite3_column_text(st, 9));
        assert_true(len < cap);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static volatile sig_atomic_t stop_flag;
static void stop_after_two(const struct ac_profile_progress *p, void *user) {
    (void)user;
    if (p->done >= 2) stop_flag = 1; /* as the SIGINT handler does: the current row still finishes */
}

static void test_profile_resume(void **state) {
    (void)state;
    char vdir[128], tasks[128], full[128], part[128], man[160], err[AC_ERR_LEN];
    snprintf(vdir, sizeof vdir, "%s/v", tdir);
    snprintf(tasks, sizeof tasks, "%s/tasks.jsonl", tdir);
    snprintf(full, sizeof full, "%s/full.sqlite", tdir);
    snprintf(part, sizeof part, "%s/part.sqlite", tdir);
    snprintf(man, sizeof man, "%s/manifest.json", vdir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp tests/fixtures/tiny_llama.gguf %s/f16.gguf && cp tests/fixtures/tiny_llama.gguf "
             "%s/lite.gguf",
             vdir, vdir, vdir);
    assert_int_equal(system(cmd), 0);
    write_file(man, "{\"base\": \"tiny\", \"variants\": ["
                    "{\"name\": \"f16\", \"file\": \"f16.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1},"
                    "{\"name\": \"lite\", \"file\": \"lite.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 0.5}]}");
    write_file(tasks, TASKS);

    struct ac_profile_params p = {.variants_dir = vdir, .tasks_path = tasks, .db_path = full, .configs = "f16,lite",
                                  .n_threads = 1, .n_workers = 1};
    struct ac_profile_summary sum;
    if (ac_profile_run(&p, &sum, err) != 0) fail_msg("profile: %s", err);
    assert_false(sum.interrupted);
    assert_int_equal(sum.rows_written, 6); /* 3 references (with the f16 rows) + 3 lite rows */
    char *want = dump(full);

    /* interrupted by the stop flag (SIGINT), then by the row limit, then finished */
    p.db_path = part;
    p.stop = &stop_flag;
    p.progress = stop_after_two;
    assert_int_equal(ac_profile_run(&p, &sum, err), 0);
    assert_true(sum.interrupted);
    assert_int_equal(sum.rows_written, 3);
    stop_flag = 0;
    p.progress = NULL;
    p.max_rows = 1;
    assert_int_equal(ac_profile_run(&p, &sum, err), 0);
    assert_true(sum.interrupted);
    assert_int_equal(sum.rows_written, 1);
    assert_int_equal(sum.rows_skipped, 3);
    p.max_rows = 0;
    assert_int_equal(ac_profile_run(&p, &sum, err), 0);
    assert_false(sum.interrupted);
    assert_int_equal(sum.rows_written, 2);
    char *got = dump(part);
    assert_string_equal(got, want);
    free(got);
    /* two workers: the same rows */
    char two[128];
    snprintf(two, sizeof two, "%s/two.sqlite", tdir);
    struct ac_profile_params p2 = p;
    p2.db_path = two;
    p2.n_workers = 2;
    p2.stop = NULL;
    if (ac_profile_run(&p2, &sum, err) != 0) fail_msg("profile: %s", err);
    got = dump(two);
    assert_string_equal(got, want);
    /* once more: nothing to do */
    assert_int_equal(ac_profile_run(&p, &sum, err), 0);
    assert_int_equal(sum.rows_written, 0);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(part, &db), SQLITE_OK);
    assert_int_equal(q_long(db, "SELECT COUNT(*) FROM results"), 6);
    assert_int_equal(q_long(db, "SELECT COUNT(*) FROM (SELECT DISTINCT stage_id, config_id FROM results)"), 6);
    assert_int_equal(q_long(db, "SELECT COUNT(*) FROM stages WHERE f16_output IS NULL"), 0);
    /* the stored reference ids are the f16 row's generated tokens */
    assert_int_equal(q_long(db, "SELECT COUNT(*) FROM stages s JOIN results r ON r.stage_id = s.id JOIN configs c ON "
                                "c.id = r.config_id WHERE c.name = 'f16' AND (s.f16_ids IS NULL OR "
                                "length(s.f16_ids) != 4 * r.n_generated OR r.n_generated < 1)"),
                     0);
    assert_int_equal(q_long(db, "SELECT COUNT(*) FROM meta WHERE key IN ('manifest_fnv1a64', 'tasks_fnv1a64', "
                                "'variants_dir')"),
                     3);
    /* {prev} was filled with the F16 output of stage 1 */
    assert_int_equal(q_long(db, "SELECT COUNT(*) FROM stages WHERE workflow = 'w1' AND stage = 2 AND prompt = "
                                "'repeat: ' || (SELECT f16_output FROM stages WHERE workflow = 'w1' AND stage = 1)"),
                     1);
    sqlite3_close(db);

    /* the profile loads into eval data, and eval runs on it */
    struct ac_eval_data d;
    if (ac_eval_load(part, &d, err) != 0) fail_msg("load: %s", err);
    assert_int_equal(d.n_stages, 3);
    assert_int_equal(d.n_configs, 2);
    assert_true(d.f16 >= 0 && ac_eval_config_complete(&d, 0) && ac_eval_config_complete(&d, 1));
    assert_true(d.stages[0].n_ids > 0 && d.stages[0].n_task == d.stages[0].n_ids);
    ac_eval_data_free(&d);

    /* another tasks file is refused */
    write_file(tasks, "{\"workflow\": \"w9\", \"domain\": \"cs\", \"stage\": 1, \"kind\": \"x\", \"prompt\": \"hi\", "
                      "\"max_tokens\": 2, \"check\": {\"type\": \"none\"}}\n");
    assert_int_equal(ac_profile_run(&p, &sum, err), -1);
    assert_non_null(strstr(err, "another tasks file"));
    /* an unknown variant is refused */
    p.db_path = full;
    write_file(tasks, TASKS);
    p.configs = "f16,nope";
    assert_int_equal(ac_profile_run(&p, &sum, err), -1);
    assert_non_null(strstr(err, "nope"));
    free(want);
    free(got);
}

/* The CLI: profile with a row limit then resumed (exit codes, one line of
 * errors), and eval --json / --report on the result. Reuses the files of
 * test_profile_resume. */
static int run_cli(const char *args, char *out, size_t n) {
    const char *build = getenv("AC_BUILD");
    char cmd[2048], outp[128];
    snprintf(outp, sizeof outp, "%s/cli_out.txt", tdir);
    snprintf(cmd, sizeof cmd, "%s/agentcompress %s >%s 2>%s/cli_err.txt </dev/null", build ? build : "build", args,
             outp, tdir);
    const int st = system(cmd);
    FILE *f = fopen(outp, "r");
    size_t k = f ? fread(out, 1, n - 1, f) : 0;
    out[k] = '\0';
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_cli_profile_eval(void **state) {
    (void)state;
    char args[1024], out[1 << 16];
    snprintf(args, sizeof args, "profile -V %s/v --tasks %s/tasks.jsonl -o %s/cli.sqlite --configs f16,lite -t 1 --max-rows 2",
             tdir, tdir, tdir);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    snprintf(args, sizeof args, "profile -V %s/v --tasks %s/tasks.jsonl -o %s/cli.sqlite --configs f16,lite -t 1", tdir,
             tdir, tdir);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    char db[160];
    snprintf(db, sizeof db, "%s/cli.sqlite", tdir);
    char *got = dump(db);
    snprintf(db, sizeof db, "%s/full.sqlite", tdir);
    char *want = dump(db);
    assert_string_equal(got, want);
    free(got);
    free(want);
    snprintf(args, sizeof args,
             "eval -V %s/v --workflows %s/tasks.jsonl --profile %s/cli.sqlite --policy len:3:lite --json "
             "--report %s/r.html -t 1",
             tdir, tdir, tdir, tdir);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    cJSON *j = cJSON_Parse(out);
    if (!j) fail_msg("eval --json: not one JSON object: %s", out);
    const cJSON *systems = cJSON_GetObjectItem(j, "systems");
    bool seen_policy = false, seen_oracle = false;
    const cJSON *s;
    cJSON_ArrayForEach(s, systems) {
        const char *name = cJSON_GetObjectItem(s, "name")->valuestring;
        seen_policy |= !strcmp(name, "policy:len:3:lite");
        seen_oracle |= !strcmp(name, "oracle");
        if (!strcmp(name, "all-f16"))
            assert_true(cJSON_GetObjectItem(s, "cost_reduction")->valuedouble == 0.0);
    }
    assert_true(seen_policy && seen_oracle);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "controller_us_p50")));
    cJSON_Delete(j);
    /* without --profile: a temporary one, profiled then removed */
    snprintf(args, sizeof args, "eval -V %s/v --workflows %s/tasks.jsonl --policy fixed:lite -t 1", tdir, tdir);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "policy:fixed:lite"));
    /* errors: one line, non-zero */
    snprintf(args, sizeof args, "eval -V %s/v --workflows %s/tasks.jsonl --policy bogus", tdir, tdir);
    assert_int_not_equal(run_cli(args, out, sizeof out), 0);
    snprintf(args, sizeof args, "profile -V %s/v --tasks %s/tasks.jsonl -o %s/x.sqlite --configs f16,q4_0+p0.1", tdir,
             tdir, tdir);
    assert_int_not_equal(run_cli(args, out, sizeof out), 0);
}

int main(void) {
    if (!mkdtemp(tdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_names),
        cmocka_unit_test(test_correlation),
        cmocka_unit_test(test_cache_simulation),
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_profile_resume),
        cmocka_unit_test(test_cli_profile_eval),
    };
    const int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tdir);
    if (system(cmd) != 0) return 1;
    return rc;
}
