/* workflow.c - workflows file parser and validator (see workflow.h). */
#include "workflow/workflow.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool ieq(const char *a, const char *b, bool cs) {
    if (!a || !b) return a == b;
    if (cs) return strcmp(a, b) == 0;
    for (; *a && *b; a++, b++) {
        int ca = (*a >= 'A' && *a <= 'Z') ? *a - 'A' + 'a' : *a;
        int cb = (*b >= 'A' && *b <= 'Z') ? *b - 'A' + 'a' : *b;
        if (ca != cb) return false;
    }
    return *a == *b;
}

static bool blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return false;
    return true;
}

/* Duplicate keys make the meaning of a line ambiguous: reject them. */
static int no_duplicate_keys(const cJSON *obj, const char *what, char *err) {
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0)
                return ac_errf(err, "%sduplicate key \"%s\"", what, a->string);
    return 0;
}

/* The failures return -1 themselves rather than ac_errf's value: ac_errf
 * is defined in another file, and clang's analyzer would otherwise follow
 * an unset *dst into the caller's success path. */
static int get_string(const cJSON *obj, const char *key, const char *what, char **dst, char *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) {
        ac_errf(err, "missing field \"%s%s\"", what, key);
        return -1;
    }
    if (!cJSON_IsString(it) || !it->valuestring) {
        ac_errf(err, "field \"%s%s\" must be a string", what, key);
        return -1;
    }
    if (blank(it->valuestring)) {
        ac_errf(err, "field \"%s%s\" is empty", what, key);
        return -1;
    }
    *dst = dup_str(it->valuestring);
    if (!*dst) {
        ac_errf(err, "out of memory");
        return -1;
    }
    return 0;
}

static int get_int(const cJSON *obj, const char *key, int lo, int hi, int *dst, char *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return ac_errf(err, "missing field \"%s\"", key);
    if (!cJSON_IsNumber(it)) return ac_errf(err, "field \"%s\" must be an integer", key);
    double v = it->valuedouble;
    if (!isfinite(v) || v != floor(v)) return ac_errf(err, "field \"%s\" must be an integer", key);
    if (v < lo || v > hi) {
        if (hi == 0x7fffffff) return ac_errf(err, "field \"%s\" is %.0f, must be >= %d", key, v, lo);
        return ac_errf(err, "field \"%s\" is %.0f, must be in %d..%d", key, v, lo, hi);
    }
    *dst = (int)v;
    return 0;
}

static int get_number(const cJSON *obj, const char *key, bool required, bool nonneg, double *dst, char *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) {
        if (required) return ac_errf(err, "check type \"number\" needs \"%s\"", key);
        return 0;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) return ac_errf(err, "check.%s must be a number", key);
    if (nonneg && it->valuedouble < 0) return ac_errf(err, "check.%s must be >= 0", key);
    *dst = it->valuedouble;
    return 0;
}

/* Reads a non-empty array of non-empty strings (or, if allow_single, one string). */
static int get_string_list(const cJSON *chk, const char *key, const char *type, bool allow_single, size_t min_n,
                           struct ac_check *c, char *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(chk, key);
    if (!it) return ac_errf(err, "check type \"%s\" needs \"%s\"", type, key);
    if (allow_single && cJSON_IsString(it)) {
        if (!it->valuestring || blank(it->valuestring)) return ac_errf(err, "check.%s is empty", key);
        c->values = calloc(1, sizeof *c->values);
        if (!c->values || !(c->values[0] = dup_str(it->valuestring))) return ac_errf(err, "out of memory");
        c->n_values = 1;
        return 0;
    }
    if (!cJSON_IsArray(it))
        return ac_errf(err, "check.%s must be %s", key, allow_single ? "a string or a list of strings" : "a list of strings");
    size_t n = (size_t)cJSON_GetArraySize(it);
    if (n < min_n) return ac_errf(err, "check.%s needs at least %zu entr%s", key, min_n, min_n == 1 ? "y" : "ies");
    c->values = calloc(n, sizeof *c->values);
    if (!c->values) return ac_errf(err, "out of memory");
    size_t i = 0;
    for (const cJSON *e = it->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || !e->valuestring) return ac_errf(err, "check.%s[%zu] must be a string", key, i);
        if (blank(e->valuestring)) return ac_errf(err, "check.%s[%zu] is empty", key, i);
        if (!(c->values[i] = dup_str(e->valuestring))) return ac_errf(err, "out of memory");
        c->n_values = i + 1;
    }
    return 0;
}

static void check_free(struct ac_check *c) {
    for (size_t i = 0; i < c->n_values; i++) free(c->values[i]);
    free(c->values);
    free(c->pattern);
    memset(c, 0, sizeof *c);
}

static int parse_check(const cJSON *chk, struct ac_check *c, char *err) {
    memset(c, 0, sizeof *c);
    if (!chk) return ac_errf(err, "missing field \"check\"");
    if (!cJSON_IsObject(chk)) return ac_errf(err, "field \"check\" must be an object");
    if (no_duplicate_keys(chk, "check: ", err)) return -1;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(chk, "type");
    if (!ty) return ac_errf(err, "missing field \"check.type\"");
    if (!cJSON_IsString(ty) || !ty->valuestring) return ac_errf(err, "field \"check.type\" must be a string");
    int t = ac_check_type_from_name(ty->valuestring);
    if (t < 0)
        return ac_errf(err, "unknown check type \"%s\" (exact, contains, regex, number, choice, json_keys, none)",
                       ty->valuestring);
    c->type = (enum ac_check_type)t;
    const char *tname = ac_check_type_name(c->type);

    /* allowed keys per type */
    static const char *const allowed[AC_CHECK_TYPE_COUNT][5] = {
        [AC_CHECK_NONE] = {NULL},
        [AC_CHECK_EXACT] = {"value", NULL},
        [AC_CHECK_CONTAINS] = {"value", "all", NULL},
        [AC_CHECK_REGEX] = {"pattern", NULL},
        [AC_CHECK_NUMBER] = {"value", "tolerance", "rel_tolerance", NULL},
        [AC_CHECK_CHOICE] = {"options", "answer", NULL},
        [AC_CHECK_JSON_KEYS] = {"keys", NULL},
    };
    for (const cJSON *k = chk->child; k; k = k->next) {
        if (strcmp(k->string, "type") == 0 || strcmp(k->string, "case") == 0) continue;
        bool ok = false;
        for (int i = 0; allowed[t][i]; i++)
            if (strcmp(allowed[t][i], k->string) == 0) ok = true;
        if (!ok) return ac_errf(err, "check type \"%s\" takes no parameter \"%s\"", tname, k->string);
    }
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(chk, "case");
    if (cs) {
        if (!cJSON_IsBool(cs)) return ac_errf(err, "check.case must be true or false");
        c->case_sensitive = cJSON_IsTrue(cs);
    }

    switch (c->type) {
    case AC_CHECK_NONE:
        return 0;
    case AC_CHECK_EXACT: {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(chk, "value");
        if (!v) return ac_errf(err, "check type \"exact\" needs \"value\"");
        if (!cJSON_IsString(v)) return ac_errf(err, "check.value must be a string");
        return get_string_list(chk, "value", tname, true, 1, c, err);
    }
    case AC_CHECK_CONTAINS: {
        const cJSON *all = cJSON_GetObjectItemCaseSensitive(chk, "all");
        if (all) {
            if (!cJSON_IsBool(all)) return ac_errf(err, "check.all must be true or false");
            c->all = cJSON_IsTrue(all);
        }
        return get_string_list(chk, "value", tname, true, 1, c, err);
    }
    case AC_CHECK_REGEX: {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(chk, "pattern");
        if (!p) return ac_errf(err, "check type \"regex\" needs \"pattern\"");
        if (!cJSON_IsString(p) || !p->valuestring) return ac_errf(err, "check.pattern must be a string");
        if (p->valuestring[0] == '\0') return ac_errf(err, "check.pattern is empty");
        regex_t re;
        int flags = REG_EXTENDED | REG_NOSUB | (c->case_sensitive ? 0 : REG_ICASE);
        int rc = regcomp(&re, p->valuestring, flags);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &re, msg, sizeof msg);
            return ac_errf(err, "check.pattern does not compile: %s", msg);
        }
        regfree(&re);
        if (!(c->pattern = dup_str(p->valuestring))) return ac_errf(err, "out of memory");
        return 0;
    }
    case AC_CHECK_NUMBER: {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(chk, "value");
        if (v && !cJSON_IsNumber(v)) return ac_errf(err, "check.value must be a number");
        if (get_number(chk, "value", true, false, &c->number, err)) return -1;
        if (get_number(chk, "tolerance", false, true, &c->tolerance, err)) return -1;
        return get_number(chk, "rel_tolerance", false, true, &c->rel_tolerance, err);
    }
    case AC_CHECK_CHOICE: {
        if (get_string_list(chk, "options", tname, false, 2, c, err)) return -1;
        for (size_t i = 0; i < c->n_values; i++)
            for (size_t j = i + 1; j < c->n_values; j++)
                if (ieq(c->values[i], c->values[j], c->case_sensitive))
                    return ac_errf(err, "check.options lists \"%s\" twice", c->values[i]);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(chk, "answer");
        if (!a) return ac_errf(err, "check type \"choice\" needs \"answer\"");
        if (!cJSON_IsString(a) || !a->valuestring) return ac_errf(err, "check.answer must be a string");
        for (size_t i = 0; i < c->n_values; i++)
            if (ieq(c->values[i], a->valuestring, c->case_sensitive)) {
                c->answer = i;
                return 0;
            }
        return ac_errf(err, "check.answer \"%s\" is not one of check.options", a->valuestring);
    }
    case AC_CHECK_JSON_KEYS:
        return get_string_list(chk, "keys", tname, false, 1, c, err);
    default:
        return ac_errf(err, "unknown check type");
    }
}

void ac_stage_free(struct ac_stage *s) {
    if (!s) return;
    free(s->workflow);
    free(s->domain);
    free(s->kind);
    free(s->prompt);
    check_free(&s->check);
    memset(s, 0, sizeof *s);
}

int ac_stage_parse(const char *line, struct ac_stage *out, char *err) {
    memset(out, 0, sizeof *out);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(line, &end, 1);
    if (!j) {
        long col = end ? (long)(end - line) + 1 : 0;
        if (col > 0) return ac_errf(err, "bad JSON near column %ld", col);
        return ac_errf(err, "bad JSON");
    }
    int rc = -1;
    if (!cJSON_IsObject(j)) {
        ac_errf(err, "line is not a JSON object");
        goto done;
    }
    if (no_duplicate_keys(j, "", err)) goto done;
    if (get_string(j, "workflow", "", &out->workflow, err)) goto done;
    if (get_string(j, "domain", "", &out->domain, err)) goto done;
    if (get_int(j, "stage", 1, 0x7fffffff, &out->stage, err)) goto done;
    if (get_string(j, "kind", "", &out->kind, err)) goto done;
    if (get_string(j, "prompt", "", &out->prompt, err)) goto done;
    if (get_int(j, "max_tokens", 1, AC_MAX_TOKENS_LIMIT, &out->max_tokens, err)) goto done;
    if (parse_check(cJSON_GetObjectItemCaseSensitive(j, "check"), &out->check, err)) goto done;
    if (out->stage == 1 && strstr(out->prompt, "{prev}")) {
        ac_errf(err, "stage 1 uses {prev} but has no previous stage");
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    if (rc) ac_stage_free(out);
    return rc;
}

void ac_workflows_free(struct ac_workflow_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->n_stages; i++) ac_stage_free(&set->stages[i]);
    free(set->stages);
    free(set->workflows);
    memset(set, 0, sizeof *set);
}

const struct ac_workflow *ac_workflows_find(const struct ac_workflow_set *set, const char *id) {
    for (size_t i = 0; i < set->n_workflows; i++)
        if (strcmp(set->workflows[i].id, id) == 0) return &set->workflows[i];
    return NULL;
}

/* True when name is one of the comma-separated items of list (items trimmed of spaces). */
static bool in_list(const char *list, const char *name) {
    const size_t n = strlen(name);
    for (const char *p = list;;) {
        while (*p == ' ') p++;
        const char *end = strchr(p, ',');
        const char *next = end ? end + 1 : NULL;
        if (!end) end = p + strlen(p);
        while (end > p && end[-1] == ' ') end--;
        if ((size_t)(end - p) == n && strncmp(p, name, n) == 0) return true;
        if (!next) return false;
        p = next;
    }
}

int ac_workflows_check_domains(const struct ac_workflow_set *set, const char *name, const char *allowed, char *err) {
    for (size_t w = 0; w < set->n_workflows; w++) {
        const struct ac_workflow *wf = &set->workflows[w];
        if (!in_list(allowed, wf->domain))
            return ac_errf(err, "%s:%d: unknown domain \"%s\" (allowed: %s)", name, set->stages[wf->first].line,
                           wf->domain, allowed);
    }
    return 0;
}

int ac_workflows_check_disjoint(const struct ac_workflow_set *a, const char *name_a, const struct ac_workflow_set *b,
                                const char *name_b, char *err) {
    for (size_t w = 0; w < b->n_workflows; w++) {
        const struct ac_workflow *wb = &b->workflows[w];
        const struct ac_workflow *wa = ac_workflows_find(a, wb->id);
        if (wa)
            return ac_errf(err, "%s:%d: workflow \"%s\" is also in %s (line %d)", name_b,
                           b->stages[wb->first].line, wb->id, name_a, a->stages[wa->first].line);
    }
    return 0;
}

/* Cross-line rules for stage s (already parsed) given the set so far. */
static int check_order(const struct ac_workflow_set *set, const struct ac_stage *s, char *err) {
    const struct ac_workflow *cur = set->n_workflows ? &set->workflows[set->n_workflows - 1] : NULL;
    if (cur && strcmp(cur->id, s->workflow) == 0) {
        const struct ac_stage *last = &set->stages[cur->first + cur->n_stages - 1];
        if (strcmp(s->domain, cur->domain) != 0)
            return ac_errf(err, "workflow \"%s\": domain \"%s\" differs from \"%s\" on line %d", s->workflow,
                           s->domain, cur->domain, set->stages[cur->first].line);
        if (s->stage == last->stage + 1) return 0;
        for (size_t i = 0; i < cur->n_stages; i++)
            if (set->stages[cur->first + i].stage == s->stage)
                return ac_errf(err, "workflow \"%s\": duplicate stage %d (first on line %d)", s->workflow, s->stage,
                               set->stages[cur->first + i].line);
        return ac_errf(err, "workflow \"%s\": stage %d out of order (expected %d)", s->workflow, s->stage,
                       last->stage + 1);
    }
    for (size_t w = 0; w < set->n_workflows; w++) {
        const struct ac_workflow *o = &set->workflows[w];
        if (strcmp(o->id, s->workflow) == 0)
            return ac_errf(err, "workflow \"%s\" appears again after line %d; its stages must be contiguous",
                           s->workflow, set->stages[o->first + o->n_stages - 1].line);
    }
    if (s->stage != 1)
        return ac_errf(err, "workflow \"%s\" starts at stage %d (expected 1)", s->workflow, s->stage);
    return 0;
}

/* Moves *s into the set (zeroing *s) and records its workflow. Failures
 * return -1 themselves (see get_string); the caller frees s and the set. */
static int push_stage(struct ac_workflow_set *set, size_t *cap_s, size_t *cap_w, struct ac_stage *s, char *err) {
    if (set->n_stages == *cap_s) {
        size_t nc = *cap_s ? *cap_s * 2 : 64;
        struct ac_stage *t = realloc(set->stages, nc * sizeof *t);
        if (!t) {
            ac_errf(err, "out of memory");
            return -1;
        }
        set->stages = t;
        *cap_s = nc;
    }
    size_t idx = set->n_stages;
    set->stages[set->n_stages++] = *s;
    memset(s, 0, sizeof *s);
    const struct ac_stage *st = &set->stages[idx];
    struct ac_workflow *cur = set->n_workflows ? &set->workflows[set->n_workflows - 1] : NULL;
    if (cur && strcmp(cur->id, st->workflow) == 0) {
        cur->n_stages++;
    } else {
        if (set->n_workflows == *cap_w) {
            size_t nc = *cap_w ? *cap_w * 2 : 16;
            struct ac_workflow *t = realloc(set->workflows, nc * sizeof *t);
            if (!t) {
                ac_errf(err, "out of memory");
                return -1;
            }
            set->workflows = t;
            *cap_w = nc;
        }
        set->workflows[set->n_workflows++] = (struct ac_workflow){st->workflow, st->domain, idx, 1};
    }
    return 0;
}

int ac_workflows_parse(const char *text, size_t len, const char *name, struct ac_workflow_set *out, char *err) {
    memset(out, 0, sizeof *out);
    struct ac_workflow_set set = {0}; /* built here, published to *out when complete */
    if (!name) name = "<workflows>";
    size_t cap_s = 0, cap_w = 0, pos = 0;
    int lineno = 0;
    char *buf = malloc(len + 1); /* each line, NUL-terminated for the JSON parser; the longest fits */
    if (!buf) {
        ac_errf(err, "%s: out of memory", name);
        goto fail;
    }
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *line = text + pos;
        pos += ll + (nl ? 1 : 0);
        if (ll > 0 && line[ll - 1] == '\r') ll--;
        if (memchr(line, '\0', ll)) {
            ac_errf(err, "%s:%d: NUL byte in line", name, lineno);
            goto fail;
        }
        memcpy(buf, line, ll);
        buf[ll] = '\0';
        if (blank(buf)) continue;
        struct ac_stage s;
        if (ac_stage_parse(buf, &s, err)) {
            ac_err_prefix(err, "%s:%d", name, lineno);
            goto fail;
        }
        s.line = lineno;
        if (check_order(&set, &s, err) || push_stage(&set, &cap_s, &cap_w, &s, err)) {
            ac_stage_free(&s);
            ac_err_prefix(err, "%s:%d", name, lineno);
            goto fail;
        }
    }
    free(buf);
    if (set.n_stages == 0) {
        ac_errf(err, "%s: no stages", name);
        return -1;
    }
    *out = set;
    return 0;
fail:
    free(buf);
    ac_workflows_free(&set);
    return -1;
}

int ac_workflows_load(const char *path, struct ac_workflow_set *out, char *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return ac_errf(err, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *data = malloc(cap);
    if (!data) {
        fclose(f);
        return ac_errf(err, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            char *t = realloc(data, cap * 2);
            if (!t) {
                free(data);
                fclose(f);
                return ac_errf(err, "%s: out of memory", path);
            }
            data = t;
            cap *= 2;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        return ac_errf(err, "%s: read error", path);
    }
    int rc = ac_workflows_parse(data, n, path, out, err);
    free(data);
    return rc;
}
