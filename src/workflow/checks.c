/* checks.c - stage checkers and {prev} substitution (see workflow.h). */
#include "workflow/workflow.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[AC_CHECK_TYPE_COUNT] = {
    [AC_CHECK_NONE] = "none",         [AC_CHECK_EXACT] = "exact",   [AC_CHECK_CONTAINS] = "contains",
    [AC_CHECK_REGEX] = "regex",       [AC_CHECK_NUMBER] = "number", [AC_CHECK_CHOICE] = "choice",
    [AC_CHECK_JSON_KEYS] = "json_keys",
};

const char *ac_check_type_name(enum ac_check_type t) {
    if ((int)t < 0 || t >= AC_CHECK_TYPE_COUNT) return "?";
    return type_names[t];
}

int ac_check_type_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < AC_CHECK_TYPE_COUNT; i++)
        if (strcmp(type_names[i], name) == 0) return i;
    return -1;
}

/* ---- small string helpers (ASCII only: locale-independent) ---- */

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_word(unsigned char c) { return is_alpha(c) || is_digit(c) || c == '_'; }
static unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c; }

/* Trimmed view of s: *len bytes from the returned pointer. */
static const char *trim(const char *s, size_t *len) {
    if (!s) s = "";
    size_t n = strlen(s);
    while (n > 0 && is_space((unsigned char)s[n - 1])) n--;
    size_t b = 0;
    while (b < n && is_space((unsigned char)s[b])) b++;
    *len = n - b;
    return s + b;
}

static bool bytes_eq(const char *a, const char *b, size_t n, bool cs) {
    if (cs) return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return false;
    return true;
}

/* First occurrence of needle (nlen > 0) in hay at or after from; SIZE_MAX if none. */
static size_t find(const char *hay, size_t hlen, const char *needle, size_t nlen, size_t from, bool cs) {
    if (nlen == 0 || nlen > hlen) return (size_t)-1;
    for (size_t i = from; i + nlen <= hlen; i++)
        if (bytes_eq(hay + i, needle, nlen, cs)) return i;
    return (size_t)-1;
}

/* ---- {prev} ---- */

char *ac_prompt_fill(const char *prompt, const char *prev) {
    static const char key[] = "{prev}";
    const size_t klen = sizeof key - 1;
    if (!prompt) prompt = "";
    if (!prev) prev = "";
    size_t plen = strlen(prev), n = 0;
    for (const char *p = strstr(prompt, key); p; p = strstr(p + klen, key)) n++;
    size_t len = strlen(prompt) - n * klen + n * plen;
    char *out = malloc(len + 1), *o = out;
    if (!out) return NULL;
    const char *s = prompt;
    for (const char *p = strstr(s, key); p; p = strstr(s, key)) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, prev, plen);
        o += plen;
        s = p + klen;
    }
    size_t rest = strlen(s);
    memcpy(o, s, rest + 1);
    return out;
}

/* ---- number ---- */

/* UTF-8 superscript digit / sign at s: returns its byte length and sets *d
 * (0-9, or -1 for minus, -2 for plus); 0 if none. */
static int superscript(const unsigned char *s, int *d) {
    if (s[0] == 0xC2 && (s[1] == 0xB9 || s[1] == 0xB2 || s[1] == 0xB3)) {
        *d = s[1] == 0xB9 ? 1 : s[1] == 0xB2 ? 2 : 3;
        return 2;
    }
    if (s[0] == 0xE2 && s[1] == 0x81) {
        if (s[2] == 0xB0) { *d = 0; return 3; }
        if (s[2] >= 0xB4 && s[2] <= 0xB9) { *d = 4 + (s[2] - 0xB4); return 3; }
        if (s[2] == 0xBB) { *d = -1; return 3; }
        if (s[2] == 0xBA) { *d = -2; return 3; }
    }
    return 0;
}

static bool is_minus_sign(const unsigned char *s, size_t *len) {
    if (s[0] == '-') { *len = 1; return true; }
    if (s[0] == 0xE2 && s[1] == 0x88 && s[2] == 0x92) { *len = 3; return true; } /* U+2212 */
    return false;
}

/* Parses a power-of-ten exponent after "10" at s: ^N, ^{N}, ^(N), **N, or
 * superscripts. Returns bytes consumed (0 if none) and the exponent in *e. */
static size_t pow10_exponent(const unsigned char *s, int *e) {
    size_t i = 0;
    bool brace = false, paren = false;
    if (s[0] == '^') {
        i = 1;
        if (s[i] == '{') { brace = true; i++; }
        else if (s[i] == '(') { paren = true; i++; }
    } else if (s[0] == '*' && s[1] == '*') {
        i = 2;
    } else {
        int d, sign = 1, v = 0, nd = 0;
        size_t k;
        while ((k = (size_t)superscript(s + i, &d)) > 0) {
            if (d == -1 || d == -2) {
                if (nd > 0 || sign != 1 || i > 0) break;
                if (d == -1) sign = -1;
            } else {
                if (v < 10000) v = v * 10 + d;
                nd++;
            }
            i += k;
        }
        if (nd == 0) return 0;
        *e = sign * v;
        return i;
    }
    int sign = 1;
    size_t ml;
    if (is_minus_sign(s + i, &ml)) { sign = -1; i += ml; }
    else if (s[i] == '+') i++;
    if (!is_digit(s[i])) return 0;
    int v = 0;
    while (is_digit(s[i])) {
        if (v < 10000) v = v * 10 + (s[i] - '0');
        i++;
    }
    if (brace) { if (s[i] != '}') return 0; i++; }
    if (paren) { if (s[i] != ')') return 0; i++; }
    *e = sign * v;
    return i;
}

/* After a mantissa ending at s: [spaces] multiplier [spaces] 10 exponent.
 * Returns bytes consumed (0 if none). */
static size_t times_pow10(const unsigned char *s, int *e) {
    size_t i = 0;
    while (s[i] == ' ') i++;
    if (s[i] == 0xC3 && s[i + 1] == 0x97) i += 2;                          /* × */
    else if (s[i] == 0xC2 && s[i + 1] == 0xB7) i += 2;                     /* · */
    else if (s[i] == 0xE2 && s[i + 1] == 0x8B && s[i + 2] == 0x85) i += 3; /* ⋅ */
    else if (s[i] == 'x' || s[i] == 'X') i += 1;
    else if (s[i] == '*' && s[i + 1] != '*') i += 1;
    else if (strncmp((const char *)s + i, "\\times", 6) == 0) i += 6;
    else if (strncmp((const char *)s + i, "\\cdot", 5) == 0) i += 5;
    else return 0;
    while (s[i] == ' ') i++;
    if (s[i] != '1' || s[i + 1] != '0') return 0;
    i += 2;
    size_t k = pow10_exponent(s + i, e);
    if (k == 0) return 0;
    return i + k;
}

bool ac_first_number(const char *str, double *out) {
    if (!str) return false;
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    size_t p = 0;
    while (p < n) {
        bool starts = is_digit(s[p]) || (s[p] == '.' && is_digit(s[p + 1]));
        if (!starts) { p++; continue; }
        if (p > 0 && (is_alpha(s[p - 1]) || s[p - 1] == '_')) {
            /* glued to a name or formula (H2O, x1, v2.0): skip the token */
            while (p < n && (is_word(s[p]) || s[p] == '.')) p++;
            continue;
        }
        /* sign directly before, not a hyphen inside a word */
        bool neg = false;
        if (p >= 1 && (s[p - 1] == '-' || s[p - 1] == '+')) {
            if (p < 2 || !is_word(s[p - 2])) neg = s[p - 1] == '-';
        } else if (p >= 3 && s[p - 3] == 0xE2 && s[p - 2] == 0x88 && s[p - 1] == 0x92) {
            neg = true;
        }
        char buf[128];
        size_t b = 0, q = p;
        /* integer part with optional thousands separators */
        size_t first_group = 0;
        while (q < n && is_digit(s[q])) {
            if (b < 60) buf[b++] = (char)s[q];
            q++;
            first_group++;
        }
        if (first_group >= 1 && first_group <= 3) {
            while (s[q] == ',' && is_digit(s[q + 1]) && is_digit(s[q + 2]) && is_digit(s[q + 3]) &&
                   !is_digit(s[q + 4])) {
                if (b < 60) { buf[b++] = (char)s[q + 1]; buf[b++] = (char)s[q + 2]; buf[b++] = (char)s[q + 3]; }
                q += 4;
            }
        }
        if (b == 0) buf[b++] = '0';
        if (s[q] == '.' && is_digit(s[q + 1])) {
            buf[b++] = '.';
            q++;
            while (q < n && is_digit(s[q])) {
                if (b < 120) buf[b++] = (char)s[q];
                q++;
            }
        }
        buf[b] = '\0';
        double v = strtod(buf, NULL);
        /* exponent: e23, E-5 (not "2eV": needs digits) */
        if ((s[q] == 'e' || s[q] == 'E') &&
            (is_digit(s[q + 1]) || ((s[q + 1] == '-' || s[q + 1] == '+') && is_digit(s[q + 2])))) {
            size_t r = q + 1;
            int esign = 1, ev = 0;
            if (s[r] == '-') { esign = -1; r++; }
            else if (s[r] == '+') r++;
            while (is_digit(s[r])) {
                if (ev < 10000) ev = ev * 10 + (s[r] - '0');
                r++;
            }
            v *= pow(10.0, esign * ev);
        } else {
            int e;
            size_t k = times_pow10(s + q, &e);
            if (k > 0) {
                v *= pow(10.0, e);
            } else if (strcmp(buf, "10") == 0 && pow10_exponent(s + q, &e) > 0) {
                v = pow(10.0, e); /* "10^5" on its own */
            }
        }
        *out = neg ? -v : v;
        return true;
    }
    return false;
}

/* ---- choice ---- */

struct occ {
    size_t start, end, opt;
};

static bool choice_pass(const struct ac_check *c, const char *text, size_t tlen) {
    size_t cap = 16, n = 0;
    struct occ *occ = malloc(cap * sizeof *occ);
    if (!occ) return false;
    bool ok = true;
    for (size_t o = 0; o < c->n_values && ok; o++) {
        size_t olen;
        const char *opt = trim(c->values[o], &olen);
        if (olen == 0) continue;
        bool wb_start = is_word((unsigned char)opt[0]), wb_end = is_word((unsigned char)opt[olen - 1]);
        for (size_t at = find(text, tlen, opt, olen, 0, c->case_sensitive); at != (size_t)-1;
             at = find(text, tlen, opt, olen, at + 1, c->case_sensitive)) {
            if (wb_start && at > 0 && is_word((unsigned char)text[at - 1])) continue;
            if (wb_end && at + olen < tlen && is_word((unsigned char)text[at + olen])) continue;
            if (n == cap) {
                cap *= 2;
                struct occ *t = realloc(occ, cap * sizeof *occ);
                if (!t) { ok = false; break; }
                occ = t;
            }
            occ[n++] = (struct occ){at, at + olen, o};
        }
    }
    bool answer_found = false, other_found = false;
    for (size_t i = 0; i < n && ok; i++) {
        bool inside_longer = false;
        for (size_t j = 0; j < n; j++) {
            if (occ[j].opt == occ[i].opt) continue;
            if (occ[j].start <= occ[i].start && occ[j].end >= occ[i].end &&
                occ[j].end - occ[j].start > occ[i].end - occ[i].start) {
                inside_longer = true;
                break;
            }
        }
        if (inside_longer) continue;
        if (occ[i].opt == c->answer) answer_found = true;
        else other_found = true;
    }
    free(occ);
    return ok && answer_found && !other_found;
}

/* ---- json_keys ---- */

static bool object_has_keys(const cJSON *obj, const struct ac_check *c) {
    for (size_t k = 0; k < c->n_values; k++) {
        const cJSON *item = c->case_sensitive ? cJSON_GetObjectItemCaseSensitive(obj, c->values[k])
                                              : cJSON_GetObjectItem(obj, c->values[k]);
        if (!item) return false;
    }
    return true;
}

static bool json_keys_pass(const struct ac_check *c, const char *text) {
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{')) {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(p, &end, 0);
        if (!j) continue;
        bool ok = cJSON_IsObject(j) && object_has_keys(j, c);
        cJSON_Delete(j);
        if (ok) return true;
    }
    return false;
}

/* ---- regex ---- */

static bool regex_pass(const struct ac_check *c, const char *text, size_t tlen) {
    regex_t re;
    int flags = REG_EXTENDED | REG_NOSUB | (c->case_sensitive ? 0 : REG_ICASE);
    if (!c->pattern || regcomp(&re, c->pattern, flags) != 0) return false;
    char *copy = malloc(tlen + 1);
    bool ok = false;
    if (copy) {
        memcpy(copy, text, tlen);
        copy[tlen] = '\0';
        ok = regexec(&re, copy, 0, NULL, 0) == 0;
        free(copy);
    }
    regfree(&re);
    return ok;
}

/* ---- dispatch ---- */

bool ac_check_pass(const struct ac_check *c, const char *output) {
    if (!c) return false;
    size_t tlen;
    const char *text = trim(output, &tlen);
    bool cs = c->case_sensitive;
    switch (c->type) {
    case AC_CHECK_NONE:
        return true;
    case AC_CHECK_EXACT: {
        if (c->n_values < 1) return false;
        size_t vlen;
        const char *v = trim(c->values[0], &vlen);
        return vlen == tlen && bytes_eq(text, v, tlen, cs);
    }
    case AC_CHECK_CONTAINS: {
        if (c->n_values < 1) return false;
        size_t hits = 0;
        for (size_t i = 0; i < c->n_values; i++) {
            size_t vlen;
            const char *v = trim(c->values[i], &vlen);
            if (vlen == 0 || find(text, tlen, v, vlen, 0, cs) != (size_t)-1) hits++;
        }
        return c->all ? hits == c->n_values : hits > 0;
    }
    case AC_CHECK_REGEX:
        return regex_pass(c, text, tlen);
    case AC_CHECK_NUMBER: {
        double x;
        if (!ac_first_number(text, &x) || !isfinite(x)) return false;
        double tol = c->tolerance;
        double rel = c->rel_tolerance * fabs(c->number);
        if (rel > tol) tol = rel;
        tol += 1e-9 * fmax(1.0, fabs(c->number));
        return fabs(x - c->number) <= tol;
    }
    case AC_CHECK_CHOICE:
        if (c->answer >= c->n_values) return false;
        return choice_pass(c, text, tlen);
    case AC_CHECK_JSON_KEYS:
        if (c->n_values < 1) return false;
        return json_keys_pass(c, output ? output : "");
    default:
        return false;
    }
}
