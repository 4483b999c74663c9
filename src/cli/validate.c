/* validate.c - `agentcompress validate`: check workflows files the way the
 * benchmark needs them (the loader's rules, the benchmark's domains, splits
 * disjoint by workflow) and print what they hold. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/common.h"
#include "workflow/workflow.h"

/* How often each name occurs; names point into a workflow set. */
struct count {
    const char *name;
    size_t n;
};

struct tally {
    struct count *items;
    size_t n, cap;
};

static int tally_add(struct tally *t, const char *name, char *err) {
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->items[i].name, name) == 0) {
            t->items[i].n++;
            return 0;
        }
    if (t->n == t->cap) {
        const size_t cap = t->cap ? 2 * t->cap : 8;
        struct count *items = realloc(t->items, cap * sizeof *items);
        if (!items) return ac_errf(err, "out of memory");
        t->items = items;
        t->cap = cap;
    }
    t->items[t->n++] = (struct count){name, 1};
    return 0;
}

/* The most frequent first, ties by name. */
static int by_count(const void *pa, const void *pb) {
    const struct count *a = pa, *b = pb;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* "label: a 12, b 7, c 7"; sorts t. */
static void tally_print(const char *label, struct tally *t) {
    if (t->n) qsort(t->items, t->n, sizeof *t->items, by_count);
    printf("%s:", label);
    for (size_t i = 0; i < t->n; i++) printf("%s %s %zu", i ? "," : "", t->items[i].name, t->items[i].n);
}

/* One line: workflows, stages, and counts per domain (workflows), kind and
 * check type (stages). */
static int print_summary(const char *path, const struct ac_workflow_set *set, char *err) {
    struct tally domains = {0}, kinds = {0}, checks = {0};
    size_t min_stages = (size_t)-1, max_stages = 0;
    int rc = -1;
    for (size_t w = 0; w < set->n_workflows; w++) {
        const struct ac_workflow *wf = &set->workflows[w];
        if (tally_add(&domains, wf->domain, err)) goto out;
        if (wf->n_stages < min_stages) min_stages = wf->n_stages;
        if (wf->n_stages > max_stages) max_stages = wf->n_stages;
    }
    for (size_t i = 0; i < set->n_stages; i++)
        if (tally_add(&kinds, set->stages[i].kind, err) ||
            tally_add(&checks, ac_check_type_name(set->stages[i].check.type), err))
            goto out;
    printf("%s: %zu workflows, %zu stages (%zu-%zu per workflow); ", path, set->n_workflows, set->n_stages,
           min_stages, max_stages);
    tally_print("domains", &domains);
    printf("; ");
    tally_print("kinds", &kinds);
    printf("; ");
    tally_print("checks", &checks);
    printf("\n");
    rc = 0;
out:
    free(domains.items);
    free(kinds.items);
    free(checks.items);
    return rc;
}

/* A --domains value: "any" or a comma-separated list without empty names. */
static int domains_valid(const char *list, char *err) {
    if (strcmp(list, "any") == 0) return 0;
    bool empty = true; /* the name being read has no character but spaces so far */
    for (const char *p = list;; p++) {
        if (*p == ',' || *p == '\0') {
            if (empty) return ac_errf(err, "--domains: empty name in '%s'", list);
            if (*p == '\0') return 0;
            empty = true;
        } else if (*p != ' ') {
            empty = false;
        }
    }
}

int cmd_validate(int argc, char **argv) {
    static const char *C = "validate";
    const char *domains = AC_BENCH_DOMAINS;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    if (!paths) return cli_fail(C, "out of memory");
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: agentcompress validate FILE.jsonl [FILE.jsonl ...] [--domains LIST|any]\n\n"
                   "Checks workflows files (DESIGN.md \"Workflows file\"; the rules are in\n"
                   "src/workflow/workflow.h) and prints one summary line per file: workflows, stages,\n"
                   "workflows per domain, stages per kind and per check type. The first problem is one\n"
                   "error line \"FILE:LINE: reason\" and exit status 1. Each file is checked in full\n"
                   "(format, then domains); with several files (the train, dev and test splits), no\n"
                   "workflow may appear in two of them.\n\n"
                   "  --domains LIST  the domains allowed, comma-separated (default: %s);\n"
                   "                  'any' allows every domain, as profile and eval do\n",
                   AC_BENCH_DOMAINS);
            free(paths);
            return 0;
        } else if (!strcmp(a, "--domains")) {
            if (!(domains = cli_value(C, argc, argv, &i))) {
                free(paths);
                return 1;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            free(paths);
            return cli_fail(C, "unknown option '%s' (see --help)", a);
        } else {
            paths[n_paths++] = a;
        }
    }
    char err[AC_ERR_LEN];
    int rc = 1;
    struct ac_workflow_set *sets = calloc((size_t)(n_paths ? n_paths : 1), sizeof *sets);
    if (!sets) {
        cli_fail(C, "out of memory");
        goto out;
    }
    if (n_paths == 0) {
        cli_fail(C, "give one or more workflows files (see --help)");
        goto out;
    }
    if (domains_valid(domains, err)) {
        cli_fail(C, "%s", err);
        goto out;
    }
    for (int f = 0; f < n_paths; f++) {
        if (ac_workflows_load(paths[f], &sets[f], err) ||
            (strcmp(domains, "any") != 0 && ac_workflows_check_domains(&sets[f], paths[f], domains, err))) {
            cli_fail(C, "%s", err);
            goto out;
        }
        for (int g = 0; g < f; g++)
            if (ac_workflows_check_disjoint(&sets[g], paths[g], &sets[f], paths[f], err)) {
                cli_fail(C, "%s", err);
                goto out;
            }
    }
    size_t n_workflows = 0, n_stages = 0;
    for (int f = 0; f < n_paths; f++) {
        if (print_summary(paths[f], &sets[f], err)) {
            cli_fail(C, "%s", err);
            goto out;
        }
        n_workflows += sets[f].n_workflows;
        n_stages += sets[f].n_stages;
    }
    if (n_paths > 1)
        printf("%d files: %zu workflows, %zu stages; no workflow in two files\n", n_paths, n_workflows, n_stages);
    rc = 0;
out:
    for (int f = 0; sets && f < n_paths; f++) ac_workflows_free(&sets[f]);
    free(sets);
    free(paths);
    return rc;
}
