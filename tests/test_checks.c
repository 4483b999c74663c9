/* test_checks.c - table-driven tests of the stage checkers (workflow.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "workflow/workflow.h"

struct check_case {
    const char *check; /* the "check" object, JSON */
    const char *output;
    bool pass;
};

static const struct check_case cases[] = {
    /* none */
    {"{\"type\":\"none\"}", "anything at all", true},
    {"{\"type\":\"none\"}", "", true},

    /* exact: trimmed, case-insensitive unless case */
    {"{\"type\":\"exact\",\"value\":\"H2O\"}", "H2O", true},
    {"{\"type\":\"exact\",\"value\":\"H2O\"}", "  h2o \n", true},
    {"{\"type\":\"exact\",\"value\":\"H2O\"}", "H2O.", false},
    {"{\"type\":\"exact\",\"value\":\"H2O\"}", "The formula is H2O", false},
    {"{\"type\":\"exact\",\"value\":\"H2O\",\"case\":true}", "h2o", false},
    {"{\"type\":\"exact\",\"value\":\"H2O\",\"case\":true}", "\tH2O\n", true},
    {"{\"type\":\"exact\",\"value\":\"ATGC\"}", "", false},
    {"{\"type\":\"exact\",\"value\":\"  GAUUACA \"}", "gauuaca", true},

    /* contains: string or list, any / all */
    {"{\"type\":\"contains\",\"value\":\"TP53\"}", "The gene is tp53 on chromosome 17.", true},
    {"{\"type\":\"contains\",\"value\":\"TP53\",\"case\":true}", "The gene is tp53.", false},
    {"{\"type\":\"contains\",\"value\":\"TP53\"}", "The gene is BRCA1.", false},
    {"{\"type\":\"contains\",\"value\":[\"kelvin\",\"K\"]}", "It is 300 K", true},
    {"{\"type\":\"contains\",\"value\":[\"mitochondria\",\"mitochondrion\"]}", "in the MITOCHONDRION", true},
    {"{\"type\":\"contains\",\"value\":[\"O(n log n)\",\"n log n\"],\"all\":true}", "O(n log n) time", true},
    {"{\"type\":\"contains\",\"value\":[\"O(n log n)\",\"stable\"],\"all\":true}", "O(n log n) time", false},
    {"{\"type\":\"contains\",\"value\":[\"O(n log n)\",\"stable\"],\"all\":false}", "it is stable", true},
    {"{\"type\":\"contains\",\"value\":\"\\\\frac{1}{2}\"}", "$E = \\frac{1}{2} m v^2$", true},
    {"{\"type\":\"contains\",\"value\":\"c1ccccc1\"}", "SMILES: Cc1ccccc1", true},
    {"{\"type\":\"contains\",\"value\":\"x\"}", "", false},

    /* regex: POSIX ERE, searched anywhere */
    {"{\"type\":\"regex\",\"pattern\":\"def[[:space:]]+gc_content[[:space:]]*\\\\(\"}",
     "```python\ndef gc_content(seq):\n    return 0\n```", true},
    {"{\"type\":\"regex\",\"pattern\":\"def[[:space:]]+gc_content[[:space:]]*\\\\(\"}", "function gc_content(seq) {}",
     false},
    {"{\"type\":\"regex\",\"pattern\":\"^[ACGU]+$\"}", "  augGCU \n", true},
    {"{\"type\":\"regex\",\"pattern\":\"^[ACGU]+$\",\"case\":true}", "augGCU", false},
    {"{\"type\":\"regex\",\"pattern\":\"^[ACGU]+$\"}", "AUG GCU", false},
    {"{\"type\":\"regex\",\"pattern\":\"select .* from users\"}", "Query: SELECT name FROM users;", true},
    {"{\"type\":\"regex\",\"pattern\":\"(yes|no)\"}", "", false},
    {"{\"type\":\"regex\",\"pattern\":\"[0-9]{3}\"}", "code 404", true},

    /* number: first number, tolerance */
    {"{\"type\":\"number\",\"value\":9.8,\"tolerance\":0.05}", "9.8 m/s^2", true},
    {"{\"type\":\"number\",\"value\":9.8,\"tolerance\":0.05}", "g = 9.81 m/s²", true},
    {"{\"type\":\"number\",\"value\":9.8,\"tolerance\":0.05}", "about 9.9 m/s^2", false},
    {"{\"type\":\"number\",\"value\":298.15,\"tolerance\":0.01}", "The temperature is 298.15 K.", true},
    {"{\"type\":\"number\",\"value\":-40}", "-40 degrees", true},
    {"{\"type\":\"number\",\"value\":-40}", "40 degrees", false},
    {"{\"type\":\"number\",\"value\":-3.5}", "x = \xe2\x88\x92" "3.5", true},
    {"{\"type\":\"number\",\"value\":6.02e23,\"rel_tolerance\":0.001}", "6.02e23", true},
    {"{\"type\":\"number\",\"value\":6.02e23,\"rel_tolerance\":0.001}", "N_A = 6.022 \xc3\x97 10^23 per mol", true},
    {"{\"type\":\"number\",\"value\":6.02e23,\"rel_tolerance\":0.001}", "6.02 x 10^23", true},
    {"{\"type\":\"number\",\"value\":6.02e23,\"rel_tolerance\":0.001}", "6.02*10^23", true},
    {"{\"type\":\"number\",\"value\":6.02e23,\"rel_tolerance\":0.001}", "$6.02 \\times 10^{23}$", true},
    {"{\"type\":\"number\",\"value\":6.02e23,\"rel_tolerance\":0.001}", "6.02\xc3\x97" "10\xc2\xb2\xc2\xb3", true},
    {"{\"type\":\"number\",\"value\":6.02e23,\"rel_tolerance\":0.001}", "6.02", false},
    {"{\"type\":\"number\",\"value\":1.6e-19,\"rel_tolerance\":0.01}", "1.602E-19 C", true},
    {"{\"type\":\"number\",\"value\":1.6e-19,\"rel_tolerance\":0.01}", "1.6 x 10^-19 C", true},
    {"{\"type\":\"number\",\"value\":1000}", "1,000 molecules", true},
    {"{\"type\":\"number\",\"value\":1234567.5}", "1,234,567.5", true},
    {"{\"type\":\"number\",\"value\":3}", "3,14", true},
    {"{\"type\":\"number\",\"value\":18.02,\"tolerance\":0.01}", "H2O has a molar mass of 18.02 g/mol", true},
    {"{\"type\":\"number\",\"value\":44.01,\"tolerance\":0.01}", "CO2: 44.01 g/mol", true},
    {"{\"type\":\"number\",\"value\":45}", "45%", true},
    {"{\"type\":\"number\",\"value\":0.5}", ".5", true},
    {"{\"type\":\"number\",\"value\":2}", "2 eV", true},
    {"{\"type\":\"number\",\"value\":2}", "2eV", true},
    {"{\"type\":\"number\",\"value\":100000}", "10^5", true},
    {"{\"type\":\"number\",\"value\":12,\"tolerance\":0.5}", "12.5", true},
    {"{\"type\":\"number\",\"value\":12,\"tolerance\":0.5}", "12.51", false},
    {"{\"type\":\"number\",\"value\":12,\"tolerance\":0.5}", "11.5", true},
    {"{\"type\":\"number\",\"value\":0.1}", "0.30000000000000004", false},
    {"{\"type\":\"number\",\"value\":0.3}", "0.30000000000000004", true},
    {"{\"type\":\"number\",\"value\":7}", "seven", false},
    {"{\"type\":\"number\",\"value\":7}", "", false},
    {"{\"type\":\"number\",\"value\":5}", "Step 1: compute. Answer: 5", false},
    {"{\"type\":\"number\",\"value\":19}", "COVID-19", true},
    {"{\"type\":\"number\",\"value\":200,\"rel_tolerance\":0.05}", "205 ms", true},
    {"{\"type\":\"number\",\"value\":200,\"rel_tolerance\":0.05}", "211 ms", false},
    {"{\"type\":\"number\",\"value\":3e8,\"rel_tolerance\":0.01}", "c = 3.00 \xc3\x97 10^8 m/s", true},
    {"{\"type\":\"number\",\"value\":-273.15}", "\xe2\x88\x92" "273.15 \xc2\xb0" "C", true},
    {"{\"type\":\"number\",\"value\":-57.3,\"tolerance\":0.1}", "\xce\x94H = -57.3 kJ/mol", true},
    {"{\"type\":\"number\",\"value\":7.4}", "pH 7.4 at 37 \xc2\xb0" "C", true},
    {"{\"type\":\"number\",\"value\":50}", "The flow is 5 mL/min, not 50", false},

    /* choice: whole word / phrase, no other option */
    {"{\"type\":\"choice\",\"options\":[\"acid\",\"base\",\"salt\"],\"answer\":\"acid\"}", "It is an acid.", true},
    {"{\"type\":\"choice\",\"options\":[\"acid\",\"base\",\"salt\"],\"answer\":\"acid\"}", "The solution is acidic.",
     false},
    {"{\"type\":\"choice\",\"options\":[\"acid\",\"base\",\"salt\"],\"answer\":\"acid\"}",
     "It is an acid, not a base.", false},
    {"{\"type\":\"choice\",\"options\":[\"acid\",\"base\",\"salt\"],\"answer\":\"acid\"}", "ACID", true},
    {"{\"type\":\"choice\",\"options\":[\"acid\",\"base\",\"salt\"],\"answer\":\"base\"}", "acid", false},
    {"{\"type\":\"choice\",\"options\":[\"acid\",\"base\",\"salt\"],\"answer\":\"salt\"}", "", false},
    {"{\"type\":\"choice\",\"options\":[\"acid\",\"weak acid\"],\"answer\":\"weak acid\"}", "a weak acid", true},
    {"{\"type\":\"choice\",\"options\":[\"acid\",\"weak acid\"],\"answer\":\"acid\"}", "a weak acid", false},
    {"{\"type\":\"choice\",\"options\":[\"yes\",\"no\"],\"answer\":\"yes\"}", "Yes.", true},
    {"{\"type\":\"choice\",\"options\":[\"yes\",\"no\"],\"answer\":\"yes\"}", "Yes, there is no doubt.", false},
    {"{\"type\":\"choice\",\"options\":[\"yes\",\"no\"],\"answer\":\"no\"}", "Nope, not at all", false},
    {"{\"type\":\"choice\",\"options\":[\"sp2\",\"sp3\"],\"answer\":\"sp3\"}", "sp3-hybridized carbon", true},
    {"{\"type\":\"choice\",\"options\":[\"sp2\",\"sp3\"],\"answer\":\"sp3\"}", "sp23", false},
    {"{\"type\":\"choice\",\"options\":[\"O(n)\",\"O(n^2)\",\"O(log n)\"],\"answer\":\"O(log n)\"}",
     "Binary search runs in O(log n).", true},
    {"{\"type\":\"choice\",\"options\":[\"O(n)\",\"O(n^2)\",\"O(log n)\"],\"answer\":\"O(n)\"}", "O(n^2)", false},
    {"{\"type\":\"choice\",\"options\":[\"fermion\",\"boson\"],\"answer\":\"boson\",\"case\":true}", "Boson", false},
    {"{\"type\":\"choice\",\"options\":[\"fermion\",\"boson\"],\"answer\":\"boson\",\"case\":true}", "a boson",
     true},
    {"{\"type\":\"choice\",\"options\":[\"mitosis\",\"meiosis\"],\"answer\":\"meiosis\"}",
     "**Meiosis** (two divisions)", true},
    {"{\"type\":\"choice\",\"options\":[\"exothermic\",\"endothermic\"],\"answer\":\"exothermic\"}",
     "Exothermic: an endothermic reaction would absorb heat instead.", false},
    {"{\"type\":\"choice\",\"options\":[\"prokaryote\",\"eukaryote\"],\"answer\":\"eukaryote\"}",
     "Unlike prokaryotes, yeast is a eukaryote.", true},
    {"{\"type\":\"choice\",\"options\":[\"TCP\",\"UDP\"],\"answer\":\"UDP\"}",
     "DNS queries normally use UDP (port 53).", true},

    /* json_keys: an object anywhere, prose and fences allowed */
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"formula\"]}", "{\"name\": \"water\", \"formula\": \"H2O\"}", true},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"formula\"]}",
     "Sure! Here it is:\n```json\n{\"name\": \"water\", \"formula\": \"H2O\"}\n```\nHope that helps.", true},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"formula\"]}", "{\"name\": \"water\"}", false},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"formula\"]}", "{\"name\": \"water\", \"formula\": }", false},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"formula\"]}", "{'name': 'water', 'formula': 'H2O'}", false},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"formula\"]}", "name: water, formula: H2O", false},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"formula\"]}", "{\"Name\": \"water\", \"FORMULA\": \"H2O\"}", true},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"formula\"],\"case\":true}",
     "{\"Name\": \"water\", \"FORMULA\": \"H2O\"}", false},
    {"{\"type\":\"json_keys\",\"keys\":[\"gene\"]}", "{\"result\": {\"gene\": \"TP53\"}}", true},
    {"{\"type\":\"json_keys\",\"keys\":[\"gene\"]}", "Use {braces} like {this}; then {\"gene\": 1}", true},
    {"{\"type\":\"json_keys\",\"keys\":[\"gene\"]}", "[{\"gene\": 1}]", true},
    {"{\"type\":\"json_keys\",\"keys\":[\"gene\"]}", "[\"gene\"]", false},
    {"{\"type\":\"json_keys\",\"keys\":[\"gene\"]}", "{{{{", false},
    {"{\"type\":\"json_keys\",\"keys\":[\"gene\"]}", "", false},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"band\"]}",
     "The gene is {\"name\": \"TP53\", \"band\": \"17p13.1\"}, as requested.", true},
    {"{\"type\":\"json_keys\",\"keys\":[\"name\",\"band\"]}", "First {\"name\": \"TP53\"} then {\"band\": \"17p13.1\"}",
     false},
    {"{\"type\":\"json_keys\",\"keys\":[\"smiles\",\"note\"]}",
     "Benzene: {\"smiles\": \"C1=CC=CC=C1\", \"note\": \"ring }{ closes\"} (aromatic)", true},
};

static void build_line(char *buf, size_t n, const char *check) {
    snprintf(buf, n,
             "{\"workflow\":\"t-1\",\"domain\":\"cs\",\"stage\":1,\"kind\":\"test\",\"prompt\":\"p\","
             "\"max_tokens\":8,\"check\":%s}",
             check);
}

static void test_table(void **state) {
    (void)state;
    size_t n = sizeof cases / sizeof cases[0];
    assert_true(n >= 60);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        char line[1024], err[AC_ERR_LEN] = "";
        build_line(line, sizeof line, cases[i].check);
        struct ac_stage s;
        if (ac_stage_parse(line, &s, err) != 0) {
            fprintf(stderr, "case %zu: check %s does not parse: %s\n", i, cases[i].check, err);
            failures++;
            continue;
        }
        bool got = ac_check_pass(&s.check, cases[i].output);
        if (got != cases[i].pass) {
            fprintf(stderr, "case %zu: %s on \"%s\": got %s, want %s\n", i, cases[i].check, cases[i].output,
                    got ? "pass" : "fail", cases[i].pass ? "pass" : "fail");
            failures++;
        }
        ac_stage_free(&s);
    }
    assert_int_equal(failures, 0);
}

static void test_table_covers_types(void **state) {
    (void)state;
    int seen[AC_CHECK_TYPE_COUNT][2] = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[1024], err[AC_ERR_LEN];
        build_line(line, sizeof line, cases[i].check);
        struct ac_stage s;
        assert_int_equal(ac_stage_parse(line, &s, err), 0);
        seen[s.check.type][cases[i].pass ? 1 : 0]++;
        ac_stage_free(&s);
    }
    for (int t = 0; t < AC_CHECK_TYPE_COUNT; t++) {
        assert_true(seen[t][1] > 0);
        if (t != AC_CHECK_NONE) assert_true(seen[t][0] > 0);
    }
}

struct num_case {
    const char *text;
    bool found;
    double value;
};

static const struct num_case num_cases[] = {
    {"42", true, 42},
    {"The answer is -7.5 units", true, -7.5},
    {"+3", true, 3},
    {"a-3", true, 3},
    {"(\xe2\x88\x92" "2)", true, -2},
    {"H2O then 18", true, 18},
    {"x1 = 4", true, 4},
    {"v2.0.1 build 77", true, 77},
    {"1,000,000 cells", true, 1e6},
    {"12345,678", true, 12345},
    {"1,2,3", true, 1},
    {"6.626e-34 J s", true, 6.626e-34},
    {"3E8", true, 3e8},
    {"2 eggs", true, 2},
    {"1.5 \\cdot 10^{-3}", true, 1.5e-3},
    {"2.5\xc2\xb7" "10^4", true, 2.5e4},
    {"3 x 4 matrix", true, 3},
    {"5*10**2", true, 500},
    {"4\xc3\x97" "10\xe2\x81\xbb\xc2\xb3", true, 4e-3},
    {"10^(3)", true, 1000},
    {"no digits here", false, 0},
    {"", false, 0},
    {"CO2 and H2O", false, 0},
    {".25", true, 0.25},
    {"7.", true, 7},
};

static void test_first_number(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof num_cases / sizeof num_cases[0]; i++) {
        double v = 0;
        bool f = ac_first_number(num_cases[i].text, &v);
        if (f != num_cases[i].found) fprintf(stderr, "number case \"%s\": found=%d\n", num_cases[i].text, f);
        assert_int_equal(f, num_cases[i].found);
        if (f) {
            double want = num_cases[i].value;
            if (fabs(v - want) > 1e-9 * fmax(1.0, fabs(want)))
                fprintf(stderr, "number case \"%s\": got %.17g want %.17g\n", num_cases[i].text, v, want);
            assert_true(fabs(v - want) <= 1e-9 * fmax(1.0, fabs(want)));
        }
    }
    assert_false(ac_first_number(NULL, &(double){0}));
}

static void test_prompt_fill(void **state) {
    (void)state;
    char *s = ac_prompt_fill("Convert {prev} to K; keep $\\frac{a}{b}$ and {x} and {prev}.", "25 C");
    assert_non_null(s);
    assert_string_equal(s, "Convert 25 C to K; keep $\\frac{a}{b}$ and {x} and 25 C.");
    free(s);
    s = ac_prompt_fill("no placeholder {pre} {prev", "X");
    assert_string_equal(s, "no placeholder {pre} {prev");
    free(s);
    s = ac_prompt_fill("{prev}{prev}", NULL);
    assert_string_equal(s, "");
    free(s);
    s = ac_prompt_fill("a {prev} b", "{prev}");
    assert_string_equal(s, "a {prev} b"); /* no recursive expansion */
    free(s);
}

static void test_type_names(void **state) {
    (void)state;
    for (int t = 0; t < AC_CHECK_TYPE_COUNT; t++)
        assert_int_equal(ac_check_type_from_name(ac_check_type_name((enum ac_check_type)t)), t);
    assert_int_equal(ac_check_type_from_name("regexp"), -1);
    assert_int_equal(ac_check_type_from_name(NULL), -1);
    assert_false(ac_check_pass(NULL, "x"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_covers_types),
        cmocka_unit_test(test_first_number),
        cmocka_unit_test(test_prompt_fill),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
