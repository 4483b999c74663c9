/* workflow.h - the workflows file (JSON Lines, one stage a line): parser,
 * validator, {prev} substitution and the stage checkers.
 *
 * Format: DESIGN.md "Workflows file". One line:
 *   {"workflow": "chem-017", "domain": "chemistry", "stage": 2, "kind": "formatting",
 *    "prompt": "...", "max_tokens": 48, "check": {"type": "json_keys", "keys": [...]}}
 *
 * Validation (ac_workflows_load rejects the whole file on the first bad line,
 * with "FILE:LINE: reason" in err; nothing is returned half-loaded):
 *   - the line is one JSON object; blank lines are skipped;
 *   - workflow, domain, kind, prompt: non-empty strings (any domain name is
 *     accepted: other tools read these files with domains of their own;
 *     ac_workflows_check_domains restricts them, as `agentcompress validate`
 *     does by default to the benchmark's AC_BENCH_DOMAINS);
 *   - stage: integer >= 1; max_tokens: integer in 1..4096;
 *   - a workflow's lines are contiguous, numbered 1, 2, ..., n in order, all
 *     with the same domain; "{prev}" may not appear in stage 1;
 *   - check: an object with a known "type" and its parameters (below); an
 *     unknown key inside "check" is an error (catches typos such as
 *     "tolerence"); unknown top-level keys are ignored.
 *
 * Check parameters (all types accept "case": bool, default false):
 *   exact     value: string
 *   contains  value: string or non-empty list of strings; all: bool (default
 *             false: any one of the list suffices)
 *   regex     pattern: POSIX extended regex (must compile)
 *   number    value: number; tolerance: number >= 0 (absolute, default 0);
 *             rel_tolerance: number >= 0 (relative to |value|, default 0).
 *             Passes when |x - value| <= max(tolerance, rel_tolerance*|value|)
 *             (plus 1e-9*max(1,|value|) for float round-off).
 *   choice    options: list of >= 2 distinct strings; answer: one of them
 *   json_keys keys: non-empty list of strings
 *   none      no parameters; always passes (the stage is scored by fidelity)
 *
 * Checker semantics (ac_check_pass):
 *   - Output and expected strings are trimmed of ASCII whitespace; matching is
 *     ASCII case-insensitive unless "case": true.
 *   - exact: trimmed output equals value.
 *   - contains: value occurs as a substring (any / all of a list).
 *   - regex: regexec searches anywhere in the trimmed output
 *     (REG_EXTENDED, plus REG_ICASE unless case).
 *   - number: the first number in the output (see ac_first_number).
 *   - choice: the answer occurs as a whole word/phrase (the characters either
 *     side are not ASCII letters, digits or '_') and no other option does.
 *     An occurrence lying inside an occurrence of a longer option does not
 *     count ("acid" inside "weak acid" when both are options).
 *   - json_keys: some '{' in the output starts a strict-JSON object (prose
 *     around it and ``` fences are fine; nested objects count) holding every
 *     key (key names compared per the case flag).
 *
 * Ownership: a struct ac_workflow_set owns every string and array inside it;
 * free it with ac_workflows_free. ac_stage_parse fills a struct ac_stage
 * that owns its strings; free with ac_stage_free. Strings returned by
 * ac_prompt_fill belong to the caller (free()). */
#ifndef AC_WORKFLOW_H
#define AC_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>

#define AC_MAX_TOKENS_LIMIT 4096

enum ac_check_type {
    AC_CHECK_NONE = 0,
    AC_CHECK_EXACT,
    AC_CHECK_CONTAINS,
    AC_CHECK_REGEX,
    AC_CHECK_NUMBER,
    AC_CHECK_CHOICE,
    AC_CHECK_JSON_KEYS,
    AC_CHECK_TYPE_COUNT
};

struct ac_check {
    enum ac_check_type type;
    bool case_sensitive; /* "case" */
    bool all;            /* contains: every string must occur */
    /* exact: values[0]; contains: the strings; choice: the options;
     * json_keys: the keys. */
    char **values;
    size_t n_values;
    size_t answer;         /* choice: index of the answer in values */
    char *pattern;         /* regex */
    double number;         /* number: expected value */
    double tolerance;      /* number: absolute tolerance */
    double rel_tolerance;  /* number: relative tolerance */
};

struct ac_stage {
    char *workflow;
    char *domain;
    char *kind;
    char *prompt; /* may contain {prev} (stage >= 2) */
    int stage;    /* 1-based */
    int max_tokens;
    int line;     /* 1-based line in the source file (0 if parsed alone) */
    struct ac_check check;
};

/* One workflow: stages[first .. first+n_stages-1] of its set, in order. */
struct ac_workflow {
    const char *id;     /* points into the first stage */
    const char *domain; /* points into the first stage */
    size_t first;
    size_t n_stages;
};

struct ac_workflow_set {
    struct ac_stage *stages; /* file order: workflows contiguous, stages 1..n */
    size_t n_stages;
    struct ac_workflow *workflows;
    size_t n_workflows;
};

/* Names <-> types ("exact", "contains", ...). from_name returns -1 if unknown. */
const char *ac_check_type_name(enum ac_check_type t);
int ac_check_type_from_name(const char *name);

/* Parses one JSON line into out (zeroed first). Checks everything that can be
 * checked on one line (fields, types, check parameters, regex compiles,
 * {prev} not in stage 1). err gets the reason without a FILE:LINE prefix. */
int ac_stage_parse(const char *line, struct ac_stage *out, char *err);
void ac_stage_free(struct ac_stage *s);

/* Parses a whole JSONL text (len bytes, need not be NUL-terminated); name
 * prefixes errors ("NAME:LINE: reason"). On failure out is left empty. */
int ac_workflows_parse(const char *text, size_t len, const char *name, struct ac_workflow_set *out,
                       char *err);
/* Reads and parses a file ("PATH:LINE: reason" on error). */
int ac_workflows_load(const char *path, struct ac_workflow_set *out, char *err);
void ac_workflows_free(struct ac_workflow_set *set);

/* The benchmark's domains (DESIGN.md), comma-separated. */
#define AC_BENCH_DOMAINS "cs,physics,chemistry,biology"

/* Checks that every workflow's domain is one of allowed, a comma-separated
 * list of names (spaces around a name are ignored; matching is exact). The
 * first workflow in file order that fails gives "NAME:LINE: unknown domain
 * "x" (allowed: ...)", LINE being that workflow's first stage. */
int ac_workflows_check_domains(const struct ac_workflow_set *set, const char *name, const char *allowed, char *err);

/* Checks that no workflow id of b also occurs in a (the benchmark's splits
 * are by workflow). The first of b's workflows in file order that does gives
 * "NAME_B:LINE: workflow "x" is also in NAME_A (line N)". */
int ac_workflows_check_disjoint(const struct ac_workflow_set *a, const char *name_a, const struct ac_workflow_set *b,
                                const char *name_b, char *err);

/* The workflow with this id, or NULL. Linear scan. */
const struct ac_workflow *ac_workflows_find(const struct ac_workflow_set *set, const char *id);

/* Returns a malloc'd copy of prompt with every "{prev}" replaced by prev
 * (NULL counts as ""). Plain string replacement: other braces are untouched.
 * NULL only when out of memory. */
char *ac_prompt_fill(const char *prompt, const char *prev);

/* True when output (NULL counts as "") passes the check. */
bool ac_check_pass(const struct ac_check *c, const char *output);

/* Finds the first number in s and stores it in *out; returns false if none.
 * Recognised: optional sign (+, -, U+2212 minus) directly before the digits;
 * digits with thousands separators "1,234,567" (a comma followed by exactly
 * three digits; "3,14" reads as 3); a decimal part ".5", "3.25"; exponents
 * "6.02e23", "6.02E-23", and powers of ten written "6.02×10^23",
 * "6.02 x 10^23", "6.02*10**23", "6.02·10^23", "6.02 \times 10^{23}",
 * "6.02×10²³" (spaces allowed around the multiplier; "10^5" alone reads as
 * 100000). Digits glued to a preceding letter or underscore belong to a name
 * or formula and are skipped ("H2O", "CO2", "x1"). Units after the number
 * are ignored ("9.8 m/s^2" -> 9.8; "45%" -> 45). */
bool ac_first_number(const char *s, double *out);

#endif
