/* test_workflow.c - workflows-file parser/validator and the shipped dataset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "workflow/workflow.h"

/* A line with every field; check and the rest substituted. */
#define L(wf, dom, st, prompt, check)                                                                              \
    "{\"workflow\":\"" wf "\",\"domain\":\"" dom "\",\"stage\":" #st ",\"kind\":\"extraction\",\"prompt\":\"" prompt \
    "\",\"max_tokens\":16,\"check\":" check "}\n"
#define NONE "{\"type\":\"none\"}"

static char *write_temp(const char *text) {
    char *path = strdup("/tmp/ac_test_workflow_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

struct bad_case {
    const char *text;
    int line;           /* expected line number in the message */
    const char *reason; /* expected substring */
};

static const struct bad_case bad_cases[] = {
    {L("a", "cs", 1, "p", NONE) "{\"workflow\": \"a\", \"stage\": 2,\n", 2, "bad JSON"},
    {L("a", "cs", 1, "p", NONE) L("a", "cs", 2, "p", NONE) "{\"workflow\":\"a\"} trailing\n", 3, "bad JSON"},
    {"[1, 2, 3]\n", 1, "not a JSON object"},
    {"{\"workflow\":\"a\",\"domain\":\"cs\",\"stage\":1,\"kind\":\"k\",\"max_tokens\":8,\"check\":" NONE "}\n", 1,
     "missing field \"prompt\""},
    {"{\"workflow\":\"a\",\"domain\":\"cs\",\"stage\":\"1\",\"kind\":\"k\",\"prompt\":\"p\",\"max_tokens\":8,"
     "\"check\":" NONE "}\n",
     1, "\"stage\" must be an integer"},
    {"{\"workflow\":\"a\",\"domain\":\"cs\",\"stage\":1.5,\"kind\":\"k\",\"prompt\":\"p\",\"max_tokens\":8,"
     "\"check\":" NONE "}\n",
     1, "\"stage\" must be an integer"},
    {"{\"workflow\":\"a\",\"domain\":\"cs\",\"stage\":1,\"kind\":\"k\",\"prompt\":\"p\",\"max_tokens\":8}\n", 1,
     "missing field \"check\""},
    {"{\"workflow\":\"a\",\"domain\":\"cs\",\"stage\":1,\"kind\":\"k\",\"prompt\":\"p\",\"max_tokens\":8,"
     "\"check\":\"none\"}\n",
     1, "\"check\" must be an object"},
    {"{\"workflow\":7,\"domain\":\"cs\",\"stage\":1,\"kind\":\"k\",\"prompt\":\"p\",\"max_tokens\":8,\"check\":" NONE
     "}\n",
     1, "\"workflow\" must be a string"},
    {L("a", "", 1, "p", NONE), 1, "\"domain\" is empty"},
    {L("a", "cs", 1, "  ", NONE), 1, "\"prompt\" is empty"},
    {L("a", "cs", 1, "p", "{\"type\":\"fuzzy\"}"), 1, "unknown check type \"fuzzy\""},
    {L("a", "cs", 1, "p", "{\"value\":\"x\"}"), 1, "missing field \"check.type\""},
    {L("a", "cs", 1, "p", "{\"type\":\"number\",\"tolerance\":1}"), 1, "needs \"value\""},
    {L("a", "cs", 1, "p", "{\"type\":\"number\",\"value\":\"3\"}"), 1, "check.value must be a number"},
    {L("a", "cs", 1, "p", "{\"type\":\"number\",\"value\":3,\"tolerance\":-1}"), 1, "tolerance must be >= 0"},
    {L("a", "cs", 1, "p", "{\"type\":\"number\",\"value\":3,\"tolerence\":1}"), 1, "no parameter \"tolerence\""},
    {L("a", "cs", 1, "p", "{\"type\":\"exact\"}"), 1, "needs \"value\""},
    {L("a", "cs", 1, "p", "{\"type\":\"exact\",\"value\":[\"x\"]}"), 1, "value must be a string"},
    {L("a", "cs", 1, "p", "{\"type\":\"contains\",\"value\":[]}"), 1, "at least 1"},
    {L("a", "cs", 1, "p", "{\"type\":\"contains\",\"value\":[\"a\",3]}"), 1, "value[1] must be a string"},
    {L("a", "cs", 1, "p", "{\"type\":\"contains\",\"value\":\"a\",\"all\":\"yes\"}"), 1, "all must be true or false"},
    {L("a", "cs", 1, "p", "{\"type\":\"regex\"}"), 1, "needs \"pattern\""},
    {L("a", "cs", 1, "p", "{\"type\":\"regex\",\"pattern\":\"([a-z\"}"), 1, "does not compile"},
    {L("a", "cs", 1, "p", "{\"type\":\"choice\",\"options\":[\"x\",\"y\"]}"), 1, "needs \"answer\""},
    {L("a", "cs", 1, "p", "{\"type\":\"choice\",\"options\":[\"x\"],\"answer\":\"x\"}"), 1, "at least 2"},
    {L("a", "cs", 1, "p", "{\"type\":\"choice\",\"options\":[\"x\",\"y\"],\"answer\":\"z\"}"), 1,
     "not one of check.options"},
    {L("a", "cs", 1, "p", "{\"type\":\"choice\",\"options\":[\"x\",\"X\"],\"answer\":\"x\"}"), 1, "twice"},
    {L("a", "cs", 1, "p", "{\"type\":\"json_keys\"}"), 1, "needs \"keys\""},
    {L("a", "cs", 1, "p", "{\"type\":\"json_keys\",\"keys\":\"name\"}"), 1, "must be a list of strings"},
    {L("a", "cs", 1, "p", "{\"type\":\"none\",\"case\":1}"), 1, "case must be true or false"},
    {L("a", "cs", 1, "p", "{\"type\":\"none\",\"value\":1}"), 1, "no parameter \"value\""},
    {L("a", "cs", 1, "p", "{\"type\":\"none\",\"type\":\"exact\"}"), 1, "duplicate key \"type\""},
    {"{\"workflow\":\"a\",\"workflow\":\"b\",\"domain\":\"cs\",\"stage\":1,\"kind\":\"k\",\"prompt\":\"p\","
     "\"max_tokens\":8,\"check\":" NONE "}\n",
     1, "duplicate key \"workflow\""},
    {"{\"workflow\":\"a\",\"domain\":\"cs\",\"stage\":1,\"kind\":\"k\",\"prompt\":\"p\",\"max_tokens\":0,"
     "\"check\":" NONE "}\n",
     1, "\"max_tokens\" is 0, must be in 1..4096"},
    {"{\"workflow\":\"a\",\"domain\":\"cs\",\"stage\":1,\"kind\":\"k\",\"prompt\":\"p\",\"max_tokens\":5000,"
     "\"check\":" NONE "}\n",
     1, "must be in 1..4096"},
    {L("a", "cs", 1, "Use {prev} here", NONE), 1, "stage 1 uses {prev}"},
    {L("a", "cs", 1, "p", NONE) L("a", "cs", 3, "p", NONE), 2, "stage 3 out of order (expected 2)"},
    {L("a", "cs", 1, "p", NONE) L("a", "cs", 2, "p", NONE) L("a", "cs", 2, "p", NONE), 3,
     "duplicate stage 2 (first on line 2)"},
    {L("a", "cs", 2, "p", NONE), 1, "starts at stage 2"},
    {L("a", "cs", 0, "p", NONE), 1, "\"stage\" is 0"},
    {L("a", "cs", 1, "p", NONE) L("b", "cs", 1, "p", NONE) L("a", "cs", 2, "p", NONE), 3,
     "must be contiguous"},
    {L("a", "cs", 1, "p", NONE) L("a", "physics", 2, "p", NONE), 2, "differs"},
    {L("a", "cs", 1, "p", NONE) "\n   \n" L("a", "cs", 2, "p", "{\"type\":\"bogus\"}"), 4, "unknown check type"},
};

static void test_bad_lines(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char *path = write_temp(bad_cases[i].text);
        struct ac_workflow_set set;
        char err[AC_ERR_LEN] = "", want[512];
        int rc = ac_workflows_load(path, &set, err);
        snprintf(want, sizeof want, "%s:%d: ", path, bad_cases[i].line);
        bool ok = rc == -1 && strncmp(err, want, strlen(want)) == 0 && strstr(err, bad_cases[i].reason) &&
                  set.n_stages == 0 && set.stages == NULL && set.workflows == NULL;
        if (!ok) fprintf(stderr, "bad case %zu: rc=%d err=\"%s\", want \"%s...%s\"\n", i, rc, err, want,
                         bad_cases[i].reason);
        assert_true(ok);
        unlink(path);
        free(path);
    }
}

static void test_good_file(void **state) {
    (void)state;
    const char *text =
        L("chem-1", "chemistry", 1, "Give the formula of water: H2O", "{\"type\":\"exact\",\"value\":\"H2O\"}")
        "\r\n"
        L("chem-1", "chemistry", 2, "Write {prev} as JSON with keys \\\"formula\\\" and \\\"atoms\\\": {a: b}",
          "{\"type\":\"json_keys\",\"keys\":[\"formula\",\"atoms\"]}")
        "\n" L("astro-1", "astronomy", 1, "p", "{\"type\":\"number\",\"value\":1.5,\"rel_tolerance\":0.1}")
        "{\"workflow\":\"astro-1\",\"domain\":\"astronomy\",\"stage\":2,\"kind\":\"reasoning\",\"prompt\":\"q\","
        "\"max_tokens\":4096,\"check\":{\"type\":\"choice\",\"options\":[\"Red\",\"red giant\"],"
        "\"answer\":\"RED GIANT\"},\"notes\":\"extra keys are ignored\"}";
    char *path = write_temp(text);
    struct ac_workflow_set set;
    char err[AC_ERR_LEN] = "";
    int rc = ac_workflows_load(path, &set, err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(set.n_stages, 4);
    assert_int_equal(set.n_workflows, 2);
    assert_string_equal(set.workflows[0].id, "chem-1");
    assert_string_equal(set.workflows[0].domain, "chemistry");
    assert_int_equal(set.workflows[0].n_stages, 2);
    assert_int_equal(set.workflows[1].first, 2);
    assert_int_equal(set.stages[1].line, 3); /* line 2 is blank */
    assert_int_equal(set.stages[1].stage, 2);
    assert_string_equal(set.stages[1].prompt, "Write {prev} as JSON with keys \"formula\" and \"atoms\": {a: b}");
    assert_int_equal(set.stages[1].check.type, AC_CHECK_JSON_KEYS);
    assert_int_equal(set.stages[1].check.n_values, 2);
    assert_int_equal(set.stages[2].check.type, AC_CHECK_NUMBER);
    assert_true(set.stages[2].check.rel_tolerance == 0.1);
    assert_int_equal(set.stages[3].max_tokens, 4096);
    assert_int_equal(set.stages[3].check.answer, 1);
    assert_true(ac_check_pass(&set.stages[3].check, "It is a red giant."));
    assert_false(ac_check_pass(&set.stages[3].check, "Red."));
    assert_true(ac_check_pass(&set.stages[0].check, "h2o"));

    const struct ac_workflow *w = ac_workflows_find(&set, "astro-1");
    assert_non_null(w);
    assert_int_equal(w->first, 2);
    assert_null(ac_workflows_find(&set, "nope"));

    char *filled = ac_prompt_fill(set.stages[1].prompt, "H2O");
    assert_string_equal(filled, "Write H2O as JSON with keys \"formula\" and \"atoms\": {a: b}");
    free(filled);
    ac_workflows_free(&set);
    ac_workflows_free(&set); /* idempotent */
    unlink(path);
    free(path);
}

static void test_empty_and_missing(void **state) {
    (void)state;
    struct ac_workflow_set set;
    char err[AC_ERR_LEN] = "";
    char *path = write_temp("\n \n");
    assert_int_equal(ac_workflows_load(path, &set, err), -1);
    assert_non_null(strstr(err, "no stages"));
    unlink(path);
    free(path);
    assert_int_equal(ac_workflows_load("/nonexistent/dir/wf.jsonl", &set, err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir/wf.jsonl: "));
    /* a NUL byte inside a line */
    const char text[] = L("a", "cs", 1, "p", NONE) "{\"x\0\"}\n";
    assert_int_equal(ac_workflows_parse(text, sizeof text - 1, "mem", &set, err), -1);
    assert_string_equal(err, "mem:2: NUL byte in line");
    /* single-line API: no prefix */
    struct ac_stage s;
    assert_int_equal(ac_stage_parse("{\"workflow\": 1}", &s, err), -1);
    assert_string_equal(err, "field \"workflow\" must be a string");
    assert_null(s.workflow);
}

/* The loader accepts any domain; the domain check and the split check give
 * the line of the offending workflow's first stage. */
static void test_domains_and_disjoint(void **state) {
    (void)state;
    const char text_a[] = L("a1", "cs", 1, "p", NONE) L("a1", "cs", 2, "p", NONE) L("a2", "astronomy", 1, "p", NONE);
    const char text_b[] = L("b1", "biology", 1, "p", NONE) L("a2", "astronomy", 1, "p", NONE);
    struct ac_workflow_set a, b;
    char err[AC_ERR_LEN] = "";
    assert_int_equal(ac_workflows_parse(text_a, sizeof text_a - 1, "A", &a, err), 0);
    assert_int_equal(ac_workflows_parse(text_b, sizeof text_b - 1, "B", &b, err), 0);
    assert_int_equal(ac_workflows_check_domains(&a, "A", AC_BENCH_DOMAINS, err), -1);
    assert_string_equal(err, "A:3: unknown domain \"astronomy\" (allowed: cs,physics,chemistry,biology)");
    assert_int_equal(ac_workflows_check_domains(&a, "A", " astronomy , cs", err), 0);
    assert_int_equal(ac_workflows_check_domains(&a, "A", "astro,cs", err), -1); /* names match whole */
    assert_int_equal(ac_workflows_check_domains(&b, "B", "biology,astronomy", err), 0);
    assert_int_equal(ac_workflows_check_disjoint(&a, "A", &b, "B", err), -1);
    assert_string_equal(err, "B:2: workflow \"a2\" is also in A (line 3)");
    assert_int_equal(ac_workflows_check_disjoint(&a, "A", &a, "A", err), -1);
    ac_workflows_free(&b);
    const char text_c[] = L("c1", "physics", 1, "p", NONE);
    assert_int_equal(ac_workflows_parse(text_c, sizeof text_c - 1, "C", &b, err), 0);
    assert_int_equal(ac_workflows_check_disjoint(&a, "A", &b, "C", err), 0);
    ac_workflows_free(&a);
    ac_workflows_free(&b);
}

/* ---- the shipped dataset ---- */

static const char *const splits[] = {"bench/workflows/train.jsonl", "bench/workflows/dev.jsonl",
                                     "bench/workflows/test.jsonl"};
static const char *const domains[] = {"cs", "physics", "chemistry", "biology"};

static int domain_index(const char *d) {
    for (int i = 0; i < 4; i++)
        if (strcmp(d, domains[i]) == 0) return i;
    return -1;
}

/* A correct answer synthesised from the check (regex: see make_workflows.py,
 * which checks its patterns against reference answers). Returns false when
 * the type has no synthetic answer. */
static bool ideal_output(const struct ac_check *c, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    switch (c->type) {
    case AC_CHECK_EXACT:
        snprintf(buf, n, "%s", c->values[0]);
        return true;
    case AC_CHECK_CONTAINS:
        for (size_t i = 0; i < (c->all ? c->n_values : 1); i++)
            len += (size_t)snprintf(buf + len, n - len, "%s ", c->values[i]);
        return true;
    case AC_CHECK_NUMBER:
        snprintf(buf, n, "The answer is %.10g units.", c->number);
        return true;
    case AC_CHECK_CHOICE:
        snprintf(buf, n, "It is %s.", c->values[c->answer]);
        return true;
    case AC_CHECK_JSON_KEYS:
        len = (size_t)snprintf(buf, n, "Here you go: ```json\n{");
        for (size_t i = 0; i < c->n_values; i++)
            len += (size_t)snprintf(buf + len, n - len, "%s\"%s\": %zu", i ? ", " : "", c->values[i], i);
        snprintf(buf + len, n - len, "}\n```");
        return true;
    default:
        return false;
    }
}

static void test_shipped_dataset(void **state) {
    (void)state;
    struct ac_workflow_set sets[3];
    size_t total_wf = 0, total_stages = 0, per_split[3] = {0}, per_domain[4] = {0}, per_split_domain[3][4] = {{0}};
    size_t type_count[AC_CHECK_TYPE_COUNT] = {0}, prev_uses = 0;
    for (int s = 0; s < 3; s++) {
        char err[AC_ERR_LEN] = "";
        int rc = ac_workflows_load(splits[s], &sets[s], err);
        if (rc == 0) rc = ac_workflows_check_domains(&sets[s], splits[s], AC_BENCH_DOMAINS, err);
        if (rc) fprintf(stderr, "%s\n", err);
        assert_int_equal(rc, 0);
        for (size_t w = 0; w < sets[s].n_workflows; w++) {
            const struct ac_workflow *wf = &sets[s].workflows[w];
            assert_true(wf->n_stages >= 3 && wf->n_stages <= 6);
            int d = domain_index(wf->domain);
            assert_true(d >= 0);
            per_domain[d]++;
            per_split_domain[s][d]++;
            /* no workflow id twice, within or across splits */
            for (int s2 = 0; s2 <= s; s2++)
                for (size_t w2 = 0; w2 < (s2 == s ? w : sets[s2].n_workflows); w2++)
                    assert_string_not_equal(sets[s2].workflows[w2].id, wf->id);
        }
        for (size_t i = 0; i < sets[s].n_stages; i++) {
            const struct ac_stage *st = &sets[s].stages[i];
            type_count[st->check.type]++;
            if (strstr(st->prompt, "{prev}")) prev_uses++;
            assert_true(st->max_tokens <= 512);
            /* every check is satisfiable, and no wrong option passes */
            char ideal[1024];
            if (ideal_output(&st->check, ideal, sizeof ideal)) {
                if (!ac_check_pass(&st->check, ideal))
                    fprintf(stderr, "%s:%d: check rejects its ideal answer \"%s\"\n", splits[s], st->line, ideal);
                assert_true(ac_check_pass(&st->check, ideal));
            }
            if (st->check.type == AC_CHECK_CHOICE)
                for (size_t o = 0; o < st->check.n_values; o++)
                    if (o != st->check.answer) assert_false(ac_check_pass(&st->check, st->check.values[o]));
            if (st->check.type == AC_CHECK_NUMBER) assert_false(ac_check_pass(&st->check, "no number here"));
        }
        per_split[s] = sets[s].n_workflows;
        total_wf += sets[s].n_workflows;
        total_stages += sets[s].n_stages;
    }
    fprintf(stderr, "dataset: %zu workflows (%zu/%zu/%zu), %zu stages, %zu use {prev}\n", total_wf, per_split[0],
            per_split[1], per_split[2], total_stages, prev_uses);
    assert_true(total_wf >= 290);
    for (int d = 0; d < 4; d++) {
        /* balanced: each domain within 20..30% of the workflows, in every split too */
        assert_true(per_domain[d] * 100 >= total_wf * 20 && per_domain[d] * 100 <= total_wf * 30);
        for (int s = 0; s < 3; s++)
            assert_true(per_split_domain[s][d] * 100 >= per_split[s] * 18 &&
                        per_split_domain[s][d] * 100 <= per_split[s] * 32);
    }
    /* about 60/20/20 */
    assert_true(per_split[0] * 100 >= total_wf * 55 && per_split[0] * 100 <= total_wf * 65);
    assert_true(per_split[1] * 100 >= total_wf * 15 && per_split[1] * 100 <= total_wf * 25);
    assert_true(per_split[2] * 100 >= total_wf * 15 && per_split[2] * 100 <= total_wf * 25);
    for (int t = 0; t < AC_CHECK_TYPE_COUNT; t++) {
        if (type_count[t] == 0) fprintf(stderr, "check type %s missing\n", ac_check_type_name((enum ac_check_type)t));
        assert_true(type_count[t] > 0);
    }
    assert_true(prev_uses * 10 >= total_stages); /* chaining is common, not rare */
    for (int s = 0; s < 3; s++) ac_workflows_free(&sets[s]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_domains_and_disjoint),
        cmocka_unit_test(test_shipped_dataset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
