#!/usr/bin/env python3
"""make_workflows.py - generates bench/workflows/{train,dev,test}.jsonl.

Deterministic (fixed seeds, no set iteration): running it again rewrites the
same bytes. The format is DESIGN.md's "Workflows file"; the C validator in
src/workflow/ and tests/test_workflow.c check the output.

Each domain has hand-written workflow templates. A template draws its entity
from a hand-written fact table (algorithms, constants, compounds, genes...)
and returns *groups* of stages: a group is a chain in which every stage after
the first uses {prev} (the previous stage's output); the first stage of a
group stands alone. A workflow is an ordered subset of a template's groups
with 3-6 stages in all, so the same template yields different shapes.

Every fact a stage needs is in its prompt; every check was computed here.

  python3 scripts/make_workflows.py            # write the files
  python3 scripts/make_workflows.py --stats    # also print statistics
"""
import itertools
import json
import math
import os
import random
import re
import sys

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "workflows")
PER_DOMAIN = 76
SEED = 20260124

# ---------------------------------------------------------------- helpers


def fmt(x, sig=6):
    """Short decimal text for a number (no float noise)."""
    if isinstance(x, int):
        return str(x)
    if abs(x - round(x)) < 1e-9 and abs(x) < 1e15:
        return str(int(round(x)))
    s = "%.*g" % (sig, x)
    if "e" in s:
        m, e = s.split("e")
        return "%se%d" % (m, int(e))
    return s


def sci(x, digits=3):
    """LaTeX-free scientific text, e.g. 6.02 x 10^23."""
    e = int(math.floor(math.log10(abs(x))))
    m = x / 10 ** e
    return "%.*f x 10^%d" % (digits - 1, m, e)


def stage(kind, prompt, check, max_tokens, ref=None):
    """ref: a correct answer, used only to self-check regex patterns."""
    s = {"kind": kind, "prompt": prompt, "max_tokens": max_tokens, "check": check}
    if ref is not None:
        s["_ref"] = ref
    return s


def c_exact(v, case=False):
    c = {"type": "exact", "value": v}
    if case:
        c["case"] = True
    return c


def c_contains(v, all_=None, case=False):
    c = {"type": "contains", "value": v}
    if all_ is not None:
        c["all"] = all_
    if case:
        c["case"] = True
    return c


def c_regex(p, case=False):
    c = {"type": "regex", "pattern": p}
    if case:
        c["case"] = True
    return c


def c_number(v, tol=None, rel=None):
    if isinstance(v, float):
        v = float("%.6g" % v)
        if v == int(v) and abs(v) < 1e15:
            v = int(v)
    c = {"type": "number", "value": v}
    if tol is not None:
        c["tolerance"] = tol
    if rel is not None:
        c["rel_tolerance"] = rel
    return c


def c_choice(options, answer):
    assert answer in options
    return {"type": "choice", "options": list(options), "answer": answer}


def c_json(keys):
    return {"type": "json_keys", "keys": list(keys)}


def c_none():
    return {"type": "none"}


def word_re(w):
    """ERE matching w as a whole token (not inside a longer word)."""
    return "(^|[^A-Za-z0-9])" + re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", w) + "([^A-Za-z0-9]|$)"


def pick(rng, xs):
    return xs[rng.randrange(len(xs))]


def shuffled(rng, xs):
    ys = list(xs)
    rng.shuffle(ys)
    return ys


def or_list(xs):
    xs = list(xs)
    if len(xs) == 2:
        return "%s or %s" % (xs[0], xs[1])
    return ", ".join(xs[:-1]) + " or " + xs[-1]


def yes_no(ans):
    return c_choice(["yes", "no"], "yes" if ans else "no")


def json_prompt(rng, keys, items, what=""):
    keys_txt = ", ".join('"%s"' % k for k in keys)
    data = "; ".join("%s %s" % (k, v) for k, v in zip(keys, items))
    return pick(rng, [
        "Format the following as a JSON object with the keys %s%s: %s." % (keys_txt, what, data),
        "Return a JSON object with keys %s and nothing else. Data%s: %s." % (keys_txt, what, data),
        "Convert this record%s to JSON using exactly the keys %s: %s" % (what, keys_txt, data),
        "Write JSON with the fields %s%s. Entry: %s." % (keys_txt, what, data),
    ])


NUM_ONLY = ["Reply with the number only.", "Give just the number.", "Answer with a single number.",
            "Only the number, please.", "Respond with the numeric value only."]


def num_only(rng):
    return pick(rng, NUM_ONLY)


def formula_counts(formula):
    counts = {}
    for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", formula):
        counts[el] = counts.get(el, 0) + (int(n) if n else 1)
    return counts


ATOMIC_MASS = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "Na": 22.990, "Cl": 35.45, "S": 32.06,
               "K": 39.098, "Ca": 40.078, "Mg": 24.305, "Fe": 55.845, "P": 30.974, "Zn": 65.38}


def molar_mass(formula):
    return sum(ATOMIC_MASS[el] * n for el, n in formula_counts(formula).items())


def mass_legend(formula):
    return ", ".join("%s = %s" % (el, fmt(ATOMIC_MASS[el])) for el in formula_counts(formula))


# ================================================================== CS

ALGOS = [
    # name, average, worst, stable (None: not a sort), note
    ("merge sort", "O(n log n)", "O(n log n)", True),
    ("quicksort", "O(n log n)", "O(n^2)", False),
    ("heapsort", "O(n log n)", "O(n log n)", False),
    ("insertion sort", "O(n^2)", "O(n^2)", True),
    ("bubble sort", "O(n^2)", "O(n^2)", True),
    ("selection sort", "O(n^2)", "O(n^2)", False),
    ("binary search", "O(log n)", "O(log n)", None),
    ("linear search", "O(n)", "O(n)", None),
    ("naive matrix multiplication", "O(n^3)", "O(n^3)", None),
    ("Timsort", "O(n log n)", "O(n log n)", True),
]
COMPLEXITY_OPTIONS = ["O(log n)", "O(n)", "O(n log n)", "O(n^2)", "O(n^3)"]
LATEX_OF = {"O(log n)": ["\\log n", "\\log{n}"], "O(n)": ["O(n)"], "O(n log n)": ["n \\log n", "n\\log n"],
            "O(n^2)": ["n^2", "n^{2}"], "O(n^3)": ["n^3", "n^{3}"]}


def scale_factor(bound, n1, n2):
    f = {"O(log n)": lambda n: math.log2(n), "O(n)": lambda n: n, "O(n log n)": lambda n: n * math.log2(n),
         "O(n^2)": lambda n: n * n, "O(n^3)": lambda n: n ** 3}[bound]
    return f(n2) / f(n1)


def cs_complexity(rng, i):
    name, avg, worst, stable = ALGOS[i % len(ALGOS)]
    opts = shuffled(rng, [avg] + [o for o in shuffled(rng, COMPLEXITY_OPTIONS) if o != avg][:pick(rng, [1, 2, 3])])
    g1 = [stage("classification", pick(rng, [
        "Pick the average-case time complexity of %s. Reference card: \"%s - average %s, worst case %s\". Choose one of: %s."
        % (name, name, avg, worst, ", ".join(opts)),
        "Which is the average running time of %s: %s? The textbook table lists it as %s on average and %s in the worst case."
        % (name, or_list(opts), avg, worst),
    ]), c_choice(opts, avg), 16)]
    keys = ["algorithm", "average_case"]
    g1.append(stage("formatting",
                    "Turn this into a JSON object with keys \"algorithm\" and \"average_case\". Algorithm: %s. Average case: {prev}"
                    % name, c_json(keys), 48))
    groups = [g1]
    n1 = pick(rng, [1024, 2048, 4096]) if worst != "O(n^3)" else pick(rng, [100, 200])
    k = pick(rng, [2, 4, 8]) if worst != "O(n^3)" else 2
    n2 = n1 * k
    t1 = pick(rng, [2, 3, 5, 8, 12])
    t2 = t1 * scale_factor(worst, n1, n2)
    groups.append([stage("reasoning", pick(rng, [
        "Estimate a runtime. %s (worst case %s) takes %d ms on an input of size n = %d. Assuming the time grows exactly like the worst-case bound, how many ms does it take for n = %d? Use log base 2. %s"
        % (name, worst, t1, n1, n2, num_only(rng)),
        "Predict the running time: an implementation of %s, whose worst case is %s, needs %d ms when n = %d. If the runtime follows that bound exactly (logs base 2), what is it in ms for n = %d? %s"
        % (name, worst, t1, n1, n2, num_only(rng)),
    ]), c_number(round(t2, 4), rel=0.02), 48)])
    if stable is not None:
        fact = "%s keeps equal keys in their original order" % name if stable else \
            "%s may reorder elements with equal keys" % name
        groups.append([stage("classification",
                             "Answer yes or no: is %s a stable sorting algorithm? Note: %s, and a sort is stable exactly when equal keys keep their relative order."
                             % (name, fact), yes_no(stable), 8)])
    else:
        fact = {"binary search": ("Does binary search require its input array to be sorted? Note: binary search halves a sorted range at every step.", True),
                "linear search": ("Does linear search require its input array to be sorted? Note: linear search checks every element in turn, in any order.", False),
                "naive matrix multiplication": ("Does naive multiplication of two n x n matrices use n^3 scalar multiplications? Note: each of the n^2 output entries is a dot product of length n.", True)}[name]
        groups.append([stage("classification", "Answer yes or no. " + fact[0], yes_no(fact[1]), 8)])
    groups.append([stage("formatting", pick(rng, [
        "Typeset the worst-case bound of %s, %s, as LaTeX inline math (for example $O(1)$)." % (name, worst),
        "Write %s in LaTeX math mode, the way it would appear in a paper about %s." % (worst, name),
    ]), c_contains(LATEX_OF[worst]), 24)])
    return groups


HTTP = [(400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden"), (404, "Not Found"), (409, "Conflict"),
        (429, "Too Many Requests"), (500, "Internal Server Error"), (502, "Bad Gateway"),
        (503, "Service Unavailable"), (504, "Gateway Timeout")]
PATHS = ["/api/users", "/api/orders/42", "/v1/search", "/login", "/api/upload", "/metrics", "/v2/jobs/submit",
         "/api/cart", "/healthz", "/v1/models"]


def cs_log(rng, i):
    code, reason = HTTP[i % len(HTTP)]
    paths = shuffled(rng, PATHS)[:4]
    lat = [rng.randrange(12, 240) for _ in range(4)]
    bad = rng.randrange(4)
    lines = []
    hh, mm = rng.randrange(0, 24), rng.randrange(0, 50)
    for j in range(4):
        st = code if j == bad else 200
        lines.append("2025-03-%02dT%02d:%02d:%02dZ %s %s %d %dms" % (
            10 + i % 18, hh, mm + j, rng.randrange(60), pick(rng, ["GET", "POST"]) if j != bad else "POST",
            paths[j], st, lat[j]))
    log = "\n".join(lines)
    ts = lines[bad].split()[0]
    cls = "client error" if code < 500 else "server error"
    groups = [[
        stage("extraction", pick(rng, [
            "Extract the HTTP status code of the request that failed in this access log:\n%s\n%s" % (log, num_only(rng)),
            "Find the failing request in the log below and give its status code.\n%s\nReply with the code only." % log,
        ]), c_number(code), 8),
        stage("classification",
              "Classify this HTTP status code as client error or server error (4xx codes are client errors, 5xx codes are server errors). Code: {prev}",
              c_choice(["client error", "server error"], cls), 8),
    ], [
        stage("extraction", pick(rng, [
            "Copy the URL path of the failed request from this log, nothing else:\n%s" % log,
            "Which path returned an error in this log? Give the path exactly as written.\n%s" % log,
        ]), c_contains(paths[bad], case=True), 16),
    ], [
        stage("arithmetic", pick(rng, [
            "Compute the mean latency in milliseconds of these four requests: %s. %s" % (
                ", ".join("%d ms" % x for x in lat), num_only(rng)),
            "Average the following response times (ms): %s. %s" % (", ".join(str(x) for x in lat), num_only(rng)),
        ]), c_number(sum(lat) / 4, tol=0.01), 16),
    ], [
        stage("formatting", json_prompt(rng, ["status", "path", "timestamp"], [code, paths[bad], ts],
                                        " for the incident"), c_json(["status", "path", "timestamp"]), 64),
        stage("summarization",
              "Write a one-sentence incident note for the on-call channel based on this record: {prev}",
              c_none(), 48),
    ]]
    return groups


def cs_bases(rng, i):
    n = 37 + (i * 23) % 200 + rng.randrange(0, 5)
    b, h = bin(n)[2:], "%X" % n
    groups = [[
        stage("conversion", pick(rng, [
            "Convert the decimal number %d to binary. Give only the binary digits." % n,
            "Write %d in base 2 (digits only, no prefix)." % n,
        ]), c_exact(b) if i % 2 else c_regex("(^|[^0-9])(0b)?%s([^0-9]|$)" % b), 16, ref="0b" + b),
        stage("arithmetic", "Count the 1 bits in this binary number: {prev}. %s" % num_only(rng),
              c_number(b.count("1")), 8),
    ], [
        stage("conversion", pick(rng, [
            "Convert decimal %d to hexadecimal." % n,
            "What is %d written in hexadecimal (base 16)?" % n,
        ]), c_regex("(^|[^0-9A-Fa-f])(0x)?%s([^0-9A-Fa-f]|$)" % h), 12, ref="%d is 0x%s." % (n, h.lower())),
    ], [
        stage("arithmetic", pick(rng, [
            "Shift left: what is %d << 2 in decimal? (A left shift by k multiplies by 2^k.) %s" % (n, num_only(rng)),
            "Evaluate the C expression %d >> 1 (a right shift by one divides by two, discarding the remainder). %s"
            % (n, num_only(rng)),
        ]), None, 12),
    ], [
        stage("formatting", json_prompt(rng, ["decimal", "binary", "hex"], [n, b, "0x" + h]),
              c_json(["decimal", "binary", "hex"]), 48),
    ]]
    p = groups[2][0]["prompt"]
    groups[2][0]["check"] = c_number(n << 2 if "<<" in p else n >> 1)
    return groups


FUNCS = [
    ("sum_list", "xs", "returns the sum of the numbers in the list xs",
     "def sum_list(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total",
     "sum_list([3, 5, 9, 14])", 31, "O(n)"),
    ("factorial", "n", "returns n! for a non-negative integer n",
     "def factorial(n):\n    result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result",
     "factorial(5)", 120, "O(n)"),
    ("count_vowels", "s", "returns how many characters of the string s are one of a, e, i, o, u",
     "def count_vowels(s):\n    return sum(1 for ch in s if ch in 'aeiou')", "count_vowels('education')", 5, "O(n)"),
    ("max_value", "xs", "returns the largest number in the non-empty list xs",
     "def max_value(xs):\n    best = xs[0]\n    for x in xs[1:]:\n        if x > best:\n            best = x\n    return best",
     "max_value([4, 11, 7, -2])", 11, "O(n)"),
    ("gcd", "a, b", "returns the greatest common divisor of a and b with Euclid's algorithm",
     "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a", "gcd(84, 36)", 12, "O(log n)"),
    ("fib", "n", "returns the n-th Fibonacci number, with fib(0) = 0 and fib(1) = 1, iteratively",
     "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a", "fib(10)", 55, "O(n)"),
    ("celsius_to_fahrenheit", "c", "converts a temperature from Celsius to Fahrenheit",
     "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32", "celsius_to_fahrenheit(25)", 77, "O(1)"),
    ("gc_content", "seq", "returns the fraction of characters in the DNA string seq that are G or C",
     "def gc_content(seq):\n    return (seq.count('G') + seq.count('C')) / len(seq)", "gc_content('GGCATA')", 0.5,
     "O(n)"),
    ("square_sum", "n", "returns 1^2 + 2^2 + ... + n^2",
     "def square_sum(n):\n    return sum(k * k for k in range(1, n + 1))", "square_sum(4)", 30, "O(n)"),
    ("count_pairs", "xs", "counts the pairs (i, j) with i < j and xs[i] == xs[j]",
     "def count_pairs(xs):\n    c = 0\n    for i in range(len(xs)):\n        for j in range(i + 1, len(xs)):\n            if xs[i] == xs[j]:\n                c += 1\n    return c",
     "count_pairs([1, 2, 1, 1, 2])", 4, "O(n^2)"),
    ("binary_search", "xs, target", "returns the index of target in the sorted list xs, or -1",
     "def binary_search(xs, target):\n    lo, hi = 0, len(xs) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n        if xs[mid] == target:\n            return mid\n        if xs[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n    return -1",
     "binary_search([2, 5, 8, 12, 16, 23], 16)", 4, "O(log n)"),
]


def cs_code(rng, i):
    name, args, desc, impl, call, result, cx = FUNCS[i % len(FUNCS)]
    lang = pick(rng, ["Python", "Python", "C"]) if name not in ("count_vowels", "gc_content", "binary_search") else "Python"
    if lang == "Python":
        write = stage("code", pick(rng, [
            "Write a Python function `%s(%s)` that %s. Return only the code." % (name, args, desc),
            "Implement %s(%s) in Python: it %s. No explanation, just the function." % (name, args, desc),
        ]), c_regex("def[[:space:]]+%s[[:space:]]*\\(" % name), 128, ref="```python\n" + impl + "\n```")
    else:
        write = stage("code",
                      "Write a C function named %s that %s (use int or double parameters as appropriate). Code only."
                      % (name, desc.replace("the list xs", "an array xs of length n")),
                      c_regex("(int|double|long|float|unsigned)[[:space:]*]+%s[[:space:]]*\\(" % name), 128,
                      ref="int *%s(int n) { return n; }" % name)
    test = stage("code", pick(rng, [
        "Write one assert-based unit test for this function:\n{prev}",
        "Add a single test using assert for the following code:\n{prev}",
    ]), c_regex("assert"), 64, ref="assert %s == %r" % (call, result))
    trace = stage("reasoning", pick(rng, [
        "What does %s return? Trace this code:\n```python\n%s\n```\nReply with the value only." % (call, impl),
        "Read the function below and give the value of %s.\n```python\n%s\n```\n%s" % (call, impl, num_only(rng)),
    ]), c_number(result, tol=1e-6), 32)
    opts = shuffled(rng, [cx] + [o for o in ["O(1)", "O(log n)", "O(n)", "O(n^2)"] if o != cx][:2])
    cxs = stage("classification",
                "Choose the time complexity of this function in terms of the input size n: %s.\n```python\n%s\n```"
                % (or_list(opts), impl), c_choice(opts, cx), 16)
    lang_q = stage("classification",
                   "Which programming language is this snippet written in: Python, C or JavaScript?\n```\n%s\n```" % impl,
                   c_choice(["Python", "C", "JavaScript"], "Python"), 8)
    return [[write, test], [trace], [cxs], [lang_q]]


TABLES = [
    ("employees", ["id", "name", "dept", "salary"],
     [(1, "Ada", "Research", 5200), (2, "Bo", "Sales", 3900), (3, "Chen", "Research", 6100), (4, "Dana", "Support", 3400),
      (5, "Eli", "Sales", 4300), (6, "Fay", "Research", 4800)], "dept", "salary"),
    ("students", ["id", "name", "major", "gpa"],
     [(1, "Ivo", "Physics", 3.4), (2, "Jun", "Biology", 3.9), (3, "Kai", "Physics", 2.8), (4, "Lea", "Chemistry", 3.6),
      (5, "Max", "Biology", 3.1)], "major", "gpa"),
    ("orders", ["id", "customer", "item", "amount"],
     [(1, "acme", "sensor", 120), (2, "globex", "cable", 15), (3, "acme", "board", 80), (4, "initech", "sensor", 125),
      (5, "globex", "board", 75), (6, "acme", "cable", 20)], "customer", "amount"),
    ("samples", ["id", "site", "organism", "reads"],
     [(1, "lake", "E. coli", 12000), (2, "soil", "B. subtilis", 8000), (3, "lake", "V. cholerae", 15000),
      (4, "gut", "E. coli", 22000), (5, "soil", "E. coli", 5000)], "site", "reads"),
]


def cs_sql(rng, i):
    tname, cols, rows, gcol, ncol = TABLES[i % len(TABLES)]
    gi, ni = cols.index(gcol), cols.index(ncol)
    groups_vals = []
    for r in rows:
        if r[gi] not in groups_vals:
            groups_vals.append(r[gi])
    g = groups_vals[(i // len(TABLES)) % len(groups_vals)]
    schema = "%s(%s)" % (tname, ", ".join(cols))
    rows_txt = "; ".join("(" + ", ".join(repr(v) if isinstance(v, str) else fmt(v) for v in r) + ")" for r in rows)
    thr = sorted(r[ni] for r in rows)[len(rows) // 2]
    n_above = sum(1 for r in rows if r[ni] > thr)
    sel = [r[ni] for r in rows if r[gi] == g]
    mean = sum(sel) / len(sel)
    groups = [[
        stage("code", pick(rng, [
            "Write an SQL query that returns every column of the rows of table %s whose %s is '%s'." % (schema, gcol, g),
            "SQL task: select all rows from %s where %s equals '%s'. Give the query only." % (schema, gcol, g),
        ]), c_regex("select[[:space:]].*from[[:space:]]+%s.*where.*%s" % (tname, gcol)), 48,
            ref="SELECT * FROM %s WHERE %s = '%s';" % (tname, gcol, g)),
        stage("code", "Modify this SQL query so the result is sorted by %s in descending order:\n{prev}" % ncol,
              c_regex("order[[:space:]]+by[[:space:]]+%s[[:space:]]+desc" % ncol), 48,
              ref="SELECT * FROM %s WHERE %s = '%s' ORDER BY %s DESC;" % (tname, gcol, g, ncol)),
    ], [
        stage("arithmetic", pick(rng, [
            "Table %s has these rows: %s. How many rows have %s greater than %s? %s" % (
                schema, rows_txt, ncol, fmt(thr), num_only(rng)),
            "Count the rows with %s > %s in this table %s: %s. %s" % (ncol, fmt(thr), schema, rows_txt, num_only(rng)),
        ]), c_number(n_above), 8),
    ], [
        stage("arithmetic", "What is the average %s of the rows with %s = '%s' in table %s with rows %s? %s" % (
            ncol, gcol, g, schema, rows_txt, num_only(rng)), c_number(round(mean, 4), tol=0.01), 16),
    ], [
        stage("classification", "Which SQL clause sorts a result set: ORDER BY, GROUP BY or HAVING?",
              c_choice(["ORDER BY", "GROUP BY", "HAVING"], "ORDER BY"), 8),
    ], [
        stage("formatting", json_prompt(rng, cols, rows[i % len(rows)], " (one row of %s)" % tname), c_json(cols), 64),
    ]]
    return groups


def cs_amdahl(rng, i):
    total = pick(rng, [100, 200, 250, 400, 500])
    p = pick(rng, [0.5, 0.6, 0.75, 0.8, 0.9, 0.95])
    par = total * p
    n = pick(rng, [2, 4, 8, 16])
    s = 1 / ((1 - p) + p / n)
    thr = pick(rng, [1.5, 2, 3, 4])
    groups = [[
        stage("extraction", pick(rng, [
            "Read this profiler summary and give the parallel fraction p as a decimal (parallel time / total time): \"Total runtime %s s, of which %s s is spent in the parallelizable loop.\"" % (
                fmt(total), fmt(par)),
            "From the benchmark note, compute the fraction of runtime that can run in parallel: \"%s s total; the parallel section takes %s s.\" Give a decimal." % (
                fmt(total), fmt(par)),
        ]), c_number(p, tol=0.005), 16),
        stage("arithmetic",
              "Apply Amdahl's law S = 1 / ((1 - p) + p / N) with N = %d cores and the parallel fraction p = {prev}. Round to two decimals." % n,
              c_number(round(s, 4), tol=0.02), 24),
    ], [
        stage("reasoning",
              "Using Amdahl's law, what is the largest speedup possible with unlimited cores if 1 - p = %s of the work is serial? %s" % (
                  fmt(round(1 - p, 4)), num_only(rng)), c_number(1 / (1 - p), tol=0.01), 32),
    ], [
        stage("classification", "Answer yes or no: is a speedup of %.2f on %d cores greater than %s?" % (s, n, fmt(thr)),
              yes_no(s > thr), 8),
    ], [
        stage("formatting", json_prompt(rng, ["parallel_fraction", "cores", "speedup"], [p, n, round(s, 2)]),
              c_json(["parallel_fraction", "cores", "speedup"]), 48),
    ]]
    return groups


def cs_storage(rng, i):
    mib = pick(rng, [2, 4, 8, 16, 64, 100, 256, 512])
    by = mib * 1048576
    bw = pick(rng, [10, 25, 50, 100, 125, 200])
    secs = by / (bw * 1e6)
    gb = pick(rng, [1, 2, 4])
    groups = [[
        stage("conversion", "Convert %d MiB to bytes (1 MiB = 1,048,576 bytes). %s" % (mib, num_only(rng)),
              c_number(by), 16),
        stage("arithmetic",
              "How many seconds does it take to send {prev} bytes over a link of %d MB/s, where 1 MB = 1,000,000 bytes? Round to two decimals." % bw,
              c_number(round(secs, 4), rel=0.01), 24),
    ], [
        stage("classification", "Which is larger: %d GiB or %d GB? (1 GiB = 2^30 bytes, 1 GB = 10^9 bytes.) Answer with the unit: GiB or GB." % (gb, gb),
              c_choice(["GiB", "GB"], "GiB"), 8),
    ], [
        stage("conversion", pick(rng, [
            "A disk reads %d MB/s. Convert this to gigabits per second (1 byte = 8 bits, 1 Gb = 1000 Mb). %s" % (bw * 4, num_only(rng)),
        ]), c_number(bw * 4 * 8 / 1000, tol=0.01), 16),
    ], [
        stage("formatting", json_prompt(rng, ["size_bytes", "bandwidth_mb_s", "seconds"], [by, bw, round(secs, 2)]),
              c_json(["size_bytes", "bandwidth_mb_s", "seconds"]), 48),
    ]]
    return groups


COMMITS = [("fix race in cache eviction", "a3f9e2c"), ("add retry to upload client", "7b1d04e"),
           ("bump numpy to 1.26", "c0ffee1"), ("refactor tokenizer merges", "19ab3f7"),
           ("document the HTTP API", "e4d2c90"), ("speed up Q4_0 dot product", "5a6b7c8"),
           ("remove dead SSE code", "0d1e2f3"), ("handle empty prompts", "9f8e7d6")]
FILES = ["server.log", "results.csv", "train.txt", "access.log", "notes.md", "reads.fastq"]


def cs_shell(rng, i):
    cs = shuffled(rng, COMMITS)[:3]
    target = cs[i % 3]
    log = "\n".join("commit %s\nAuthor: dev%d <dev%d@lab.org>\n    %s" % (h, k, k, m) for k, (m, h) in enumerate(cs))
    f = FILES[i % len(FILES)]
    groups = [[
        stage("extraction", pick(rng, [
            "Copy the commit hash of the commit whose message is \"%s\" from this git log:\n%s" % (target[0], log),
            "Find the short hash of the commit \"%s\" in the output below. Reply with the hash only.\n%s" % (target[0], log),
        ]), c_contains(target[1]), 16),
        stage("code", "Write the git command that shows the full diff of commit {prev}.",
              c_regex("git[[:space:]]+(show|diff|log -p)"), 24, ref="git show %s" % target[1]),
    ], [
        stage("classification", "Which git command creates a new branch and switches to it: git checkout -b, git merge or git push?",
              c_choice(["git checkout -b", "git merge", "git push"], "git checkout -b"), 16),
    ], [
        stage("code", pick(rng, [
            "Write a shell command that counts the lines of the file %s." % f,
            "Give a one-line shell command printing the number of lines in %s." % f,
        ]), c_regex("wc[[:space:]]+-l"), 24, ref="wc -l < %s" % f),
    ], [
        stage("code", "Write a shell command that prints only the lines of %s that contain the word ERROR." % f,
              c_regex("grep.*ERROR", case=True), 24, ref="grep -w ERROR %s" % f),
        stage("classification", "Does the following command modify the file it reads? Answer yes or no.\n{prev}",
              yes_no(False), 8),
    ]]
    return groups


BOOL_EXPRS = ["(True and not False) or False", "not (True or False)", "True and (False or not False)",
              "(not True) or (False and True)", "not (not True and False)", "(True or False) and not True",
              "False or (True and True)", "not False and not True"]


def truth_count(expr):
    c = 0
    for a, b, cc in itertools.product([False, True], repeat=3):
        if eval(expr, {}, {"A": a, "B": b, "C": cc}):
            c += 1
    return c


TT_EXPRS = ["A and (B or C)", "A or (B and C)", "(A and B) or (not A and C)", "not A and B", "A != B",
            "(A or B) and not C", "A and B and C", "not (A or B or C)"]


def cs_logic(rng, i):
    e = BOOL_EXPRS[i % len(BOOL_EXPRS)]
    t = TT_EXPRS[i % len(TT_EXPRS)]
    val = eval(e)
    groups = [[
        stage("reasoning", pick(rng, [
            "Evaluate the Python expression `%s`. Answer True or False." % e,
            "What is the value of %s in Python? Reply True or False." % e,
        ]), c_choice(["True", "False"], str(val)), 8),
    ], [
        stage("reasoning",
              "How many of the 8 rows of the truth table of `%s` (three boolean inputs A, B, C) evaluate to True? %s" % (
                  t, num_only(rng)), c_number(truth_count(t)), 16),
    ], [
        stage("classification",
              "By De Morgan's law, which expression is equivalent to `not (A and B)`: `not A or not B`, `not A and not B` or `A or B`?",
              c_choice(["not A or not B", "not A and not B", "A or B"], "not A or not B"), 16),
    ], [
        stage("code", "Write a Python boolean expression that is True exactly when the integer x lies between 1 and 10 inclusive.",
              c_regex("1[[:space:]]*<=[[:space:]]*x[[:space:]]*<=[[:space:]]*10|x[[:space:]]*>=[[:space:]]*1.*x[[:space:]]*<=[[:space:]]*10|x in range\\(1, ?11\\)"), 32, ref="`1 <= x <= 10`"),
        stage("reasoning", "For x = 0, is the following expression True or False?\n{prev}",
              c_choice(["True", "False"], "False"), 8),
    ]]
    return groups


PEOPLE = [("Priya Natarajan", "p.natarajan@cs.stanford.edu", True), ("Tom Weber", "tom.weber@quantlab.io", False),
          ("Aiko Sato", "asato@mit.edu", True), ("Lucas Moreau", "l.moreau@genomix.fr", False),
          ("Grace Okafor", "gokafor@berkeley.edu", True), ("Nils Berg", "nils@berg-analytics.com", False),
          ("Maria Rossi", "maria.rossi@unimi.edu", True), ("Omar Haddad", "o.haddad@photonics-lab.org", False)]


def cs_email(rng, i):
    name, email, edu = PEOPLE[i % len(PEOPLE)]
    local, domain = email.split("@")
    msg = pick(rng, [
        "Hi all, please send the cleaned dataset to %s before Friday so I can rerun the baselines. Thanks, %s" % (email, name.split()[0]),
        "Reminder: reviewer comments go to %s (%s), not to the shared inbox." % (email, name),
        "From the conference form: contact author %s <%s>, track: systems." % (name, email),
    ])
    groups = [[
        stage("extraction", pick(rng, [
            "Extract the email address from this message:\n%s" % msg,
            "Pull out the e-mail address in the text below; reply with the address only.\n%s" % msg,
        ]), c_contains(email), 24),
        stage("extraction", "Give the domain part (everything after the @) of this address: {prev}",
              c_exact(domain) if i % 2 else c_contains(domain), 16),
        stage("classification",
              "Is this an academic address? Answer yes or no; an address is academic when its domain ends in .edu. Domain: {prev}",
              yes_no(edu), 8),
    ], [
        stage("arithmetic", "How many characters are in the string '%s'? %s" % (local, num_only(rng)),
              c_number(len(local)), 8),
    ], [
        stage("formatting", json_prompt(rng, ["name", "email", "domain"], [name, email, domain], " for the contact list"),
              c_json(["name", "email", "domain"]), 64),
    ]]
    return groups


def bfs_dist(edges, a, b):
    adj = {}
    for u, v in edges:
        adj.setdefault(u, []).append(v)
        adj.setdefault(v, []).append(u)
    dist = {a: 0}
    q = [a]
    while q:
        u = q.pop(0)
        for v in sorted(adj.get(u, [])):
            if v not in dist:
                dist[v] = dist[u] + 1
                q.append(v)
    return dist.get(b)


GRAPHS = [
    [("A", "B"), ("B", "C"), ("C", "D"), ("D", "E"), ("A", "F")],
    [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("D", "E"), ("E", "F")],
    [("A", "B"), ("B", "C"), ("C", "A"), ("D", "E")],
    [("A", "C"), ("C", "E"), ("E", "B"), ("B", "D"), ("A", "D")],
    [("A", "B"), ("B", "C"), ("C", "D"), ("D", "E"), ("E", "F"), ("F", "G")],
    [("A", "B"), ("A", "C"), ("A", "D"), ("A", "E"), ("B", "F")],
]


def cs_graph(rng, i):
    edges = GRAPHS[i % len(GRAPHS)]
    nodes = sorted({x for e in edges for x in e})
    el = ", ".join("%s-%s" % e for e in edges)
    node = pick(rng, nodes)
    deg = sum(1 for e in edges if node in e)
    target = nodes[-1]
    d = bfs_dist(edges, "A", target)
    connected = all(bfs_dist(edges, "A", n) is not None for n in nodes)
    groups = [[
        stage("extraction", "Count the distinct nodes in this undirected graph given as an edge list: %s. %s" % (el, num_only(rng)),
              c_number(len(nodes)), 8),
    ], [
        stage("arithmetic", "What is the degree of node %s in the undirected graph %s? %s" % (node, el, num_only(rng)),
              c_number(deg), 8),
    ], [
        stage("reasoning", pick(rng, [
            "Find the length, in edges, of the shortest path from A to %s in the undirected graph with edges %s. If there is no path, answer none." % (target, el),
            "Run a breadth-first search from A on the undirected graph %s. How many edges are on the shortest path to %s? Answer none if it is unreachable." % (el, target),
        ]), c_number(d) if d is not None else c_contains("none"), 32),
    ], [
        stage("classification", "Is the undirected graph with edges %s connected? Answer yes or no." % el,
              yes_no(connected), 8),
    ], [
        stage("formatting", "Represent the graph %s as a JSON object with keys \"nodes\" (a list) and \"edges\" (a list of pairs)." % el,
              c_json(["nodes", "edges"]), 96),
    ]]
    return groups


CS_TEMPLATES = [cs_complexity, cs_log, cs_bases, cs_code, cs_sql, cs_amdahl, cs_storage, cs_shell, cs_logic,
                cs_email, cs_graph]


# ================================================================== physics

def phys_kinematics(rng, i):
    u = pick(rng, [0, 1.5, 2, 3, 4.5, 5])
    a = pick(rng, [0.5, 1.2, 2, 2.5, 3, 4])
    t = pick(rng, [2, 3, 4, 5, 6, 8])
    v = u + a * t
    s = u * t + 0.5 * a * t * t
    obj = pick(rng, ["cart", "glider", "trolley", "sled", "robot"])
    note = "Trial %d: the %s left the light gate at %s m/s and sped up at a steady %s m/s^2 for %s s." % (
        i + 1, obj, fmt(u), fmt(a), fmt(t))
    return [[
        stage("extraction", pick(rng, [
            "Extract the acceleration in m/s^2 from this lab note: \"%s\" %s" % (note, num_only(rng)),
            "What acceleration is reported in this note? \"%s\" Give the value in m/s^2 only." % note,
        ]), c_number(a, tol=1e-6), 12),
        stage("arithmetic",
              "Compute the final speed with $v = u + a t$ for u = %s m/s, t = %s s and the acceleration a (m/s^2) given here: {prev}. Answer in m/s." % (
                  fmt(u), fmt(t)), c_number(v, tol=0.01), 24),
    ], [
        stage("reasoning", pick(rng, [
            "How far does the %s travel? It starts at u = %s m/s and accelerates uniformly at a = %s m/s^2 for t = %s s; use $s = u t + \\frac{1}{2} a t^2$. Answer in meters." % (
                obj, fmt(u), fmt(a), fmt(t)),
            "Find the distance covered in %s s by a %s with initial speed %s m/s and constant acceleration %s m/s^2 (s = ut + at^2/2). %s" % (
                fmt(t), obj, fmt(u), fmt(a), num_only(rng)),
        ]), c_number(s, rel=0.01), 48),
    ], [
        stage("classification", "In the equation $v = u + a t$, does the symbol $u$ stand for the initial velocity or the final velocity?",
              c_choice(["initial velocity", "final velocity"], "initial velocity"), 8),
    ], [
        stage("formatting", json_prompt(rng, ["final_speed_m_s", "distance_m", "time_s"], [fmt(v), fmt(s), fmt(t)]),
              c_json(["final_speed_m_s", "distance_m", "time_s"]), 48),
        stage("summarization", "Summarize these kinematics results in one sentence for a lab report: {prev}",
              c_none(), 48),
    ]]


CONVERSIONS = [
    # (from, to, factor or function, sample values, quantity)
    ("km/h", "m/s", lambda x: x / 3.6, [36, 54, 72, 90, 108, 120], "speed"),
    ("degrees Celsius", "kelvin", lambda x: x + 273.15, [-40, 0, 25, 37, 100, 250], "temperature"),
    ("degrees Fahrenheit", "degrees Celsius", lambda x: (x - 32) * 5 / 9, [32, 50, 68, 98.6, 212, -40], "temperature"),
    ("atm", "kPa", lambda x: x * 101.325, [0.5, 1, 2, 2.5, 3], "pressure"),
    ("eV", "joules", lambda x: x * 1.602e-19, [1, 2.5, 13.6, 100], "energy"),
    ("kWh", "MJ", lambda x: x * 3.6, [1, 2, 5, 12.5], "energy"),
    ("miles", "kilometers", lambda x: x * 1.609, [1, 5, 10, 26.2], "distance"),
    ("nanometers", "meters", lambda x: x * 1e-9, [450, 532, 633, 1064], "length"),
    ("grams per cubic centimeter", "kilograms per cubic meter", lambda x: x * 1000, [0.92, 1, 2.7, 7.87, 19.3], "density"),
    ("hours", "seconds", lambda x: x * 3600, [0.5, 1.5, 2, 24], "time"),
]
FACTOR_TXT = {"km/h": "1 m/s = 3.6 km/h", "degrees Celsius": "K = °C + 273.15", "degrees Fahrenheit": "°C = (°F - 32) x 5/9",
              "atm": "1 atm = 101.325 kPa", "eV": "1 eV = 1.602 x 10^-19 J", "kWh": "1 kWh = 3.6 MJ",
              "miles": "1 mile = 1.609 km", "nanometers": "1 nm = 10^-9 m",
              "grams per cubic centimeter": "1 g/cm^3 = 1000 kg/m^3", "hours": "1 h = 3600 s"}
QUANTITIES = [("velocity", "vector"), ("speed", "scalar"), ("force", "vector"), ("mass", "scalar"), ("energy", "scalar"),
              ("momentum", "vector"), ("temperature", "scalar"), ("acceleration", "vector"), ("displacement", "vector"),
              ("work", "scalar"), ("electric field", "vector"), ("power", "scalar")]


def phys_units(rng, i):
    c1 = CONVERSIONS[i % len(CONVERSIONS)]
    c2 = CONVERSIONS[(i * 3 + 1) % len(CONVERSIONS)]
    x1, x2 = pick(rng, c1[3]), pick(rng, c2[3])
    y1, y2 = c1[2](x1), c2[2](x2)

    def conv(c, x, y):
        chk = c_number(y, rel=0.005) if abs(y) > 1e-3 or y == 0 else c_number(y, rel=0.005)
        if c[0] == "degrees Fahrenheit" and abs(y) < 1:
            chk = c_number(y, tol=0.05)
        return stage("conversion", pick(rng, [
            "Convert %s %s to %s (%s). %s" % (fmt(x), c[0], c[1], FACTOR_TXT[c[0]], num_only(rng)),
            "Unit conversion: express %s %s in %s. Use %s. %s" % (fmt(x), c[0], c[1], FACTOR_TXT[c[0]], num_only(rng)),
        ]), chk, 16)
    q, kind = QUANTITIES[i % len(QUANTITIES)]
    groups = [[conv(c1, x1, y1)], [conv(c2, x2, y2)], [
        stage("classification",
              "Is %s a scalar or a vector quantity? A vector has both magnitude and direction; a scalar has magnitude only. %s is %s." % (
                  q, q[0].upper() + q[1:], "described by a size and a direction" if kind == "vector" else "described by a size alone"),
              c_choice(["scalar", "vector"], kind), 8)]]
    if c1[0] == "km/h":
        groups[0].append(stage("conversion", "Convert this speed from m/s to cm/s: {prev}", c_number(y1 * 100, rel=0.005), 16))
    elif c1[0] == "degrees Celsius":
        groups[0].append(stage("classification",
                               "Water freezes at 273.15 K and boils at 373.15 K at 1 atm. At the temperature below (in kelvin), is water solid, liquid or gas? {prev}",
                               c_choice(["solid", "liquid", "gas"], "solid" if y1 < 273.15 else "liquid" if y1 < 373.15 else "gas"), 8))
    groups.append([stage("formatting", json_prompt(rng, ["value", "from_unit", "to_unit", "result"], [fmt(x1), c1[0], c1[1], fmt(y1, 5)]),
                         c_json(["value", "from_unit", "to_unit", "result"]), 64)])
    return groups


def phys_circuit(rng, i):
    V = pick(rng, [3, 5, 9, 12, 24, 6])
    R = pick(rng, [2, 4, 6, 10, 12, 20, 100])
    R1, R2 = pick(rng, [(4, 4), (6, 3), (10, 15), (12, 6), (20, 30), (100, 50)])
    I = V / R
    P = V * V / R
    Rp = R1 * R2 / (R1 + R2)
    desc = pick(rng, [
        "A %d V battery drives a current through a single %d ohm resistor." % (V, R),
        "The bench supply is set to %d V and connected across a %d Ω resistor." % (V, R),
    ])
    return [[
        stage("extraction", "Give the resistance in ohms from this circuit description: \"%s\" %s" % (desc, num_only(rng)),
              c_number(R), 8),
        stage("arithmetic", "Apply Ohm's law I = V / R with V = %d V and R given here in ohms: {prev}. Give the current in amperes." % V,
              c_number(I, rel=0.01), 24),
    ], [
        stage("arithmetic", pick(rng, [
            "What power does a %d Ω resistor dissipate with %d V across it? Use $P = V^2 / R$. Answer in watts." % (R, V),
            "Compute the dissipated power P = V^2/R for V = %d V and R = %d ohm. %s" % (V, R, num_only(rng)),
        ]), c_number(P, rel=0.01), 24),
    ], [
        stage("reasoning", pick(rng, [
            "Two resistors of %d Ω and %d Ω are connected in parallel. What is the equivalent resistance in ohms? ($1/R = 1/R_1 + 1/R_2$)" % (R1, R2),
            "Find the equivalent resistance of %d ohm and %d ohm in parallel, using 1/R = 1/R1 + 1/R2. %s" % (R1, R2, num_only(rng)),
        ]), c_number(Rp, rel=0.01), 48),
    ], [
        stage("classification", "Resistors of %d Ω and %d Ω are joined end to end so the same current flows through both. Are they in series or in parallel?" % (R1, R2),
              c_choice(["series", "parallel"], "series"), 8),
        stage("arithmetic", "What is the total resistance in ohms of a %d Ω and a %d Ω resistor connected as follows: {prev} (series: R = R1 + R2)" % (R1, R2),
              c_number(R1 + R2), 16),
    ], [
        stage("formatting", json_prompt(rng, ["voltage_V", "resistance_ohm", "current_A", "power_W"], [V, R, fmt(I, 4), fmt(P, 4)]),
              c_json(["voltage_V", "resistance_ohm", "current_A", "power_W"]), 64),
    ]]


def phys_energy(rng, i):
    m = pick(rng, [0.5, 1, 2, 2.5, 4, 10])
    v = pick(rng, [2, 3, 4, 5, 8, 10])
    h = pick(rng, [1.25, 2, 5, 10, 20, 45])
    KE = 0.5 * m * v * v
    PE = m * 9.8 * h
    vb = math.sqrt(2 * 9.8 * h)
    obj = pick(rng, ["ball", "block", "crate", "cart"])
    return [[
        stage("arithmetic", pick(rng, [
            "Compute the kinetic energy of a %s kg %s moving at %s m/s, with $KE = \\frac{1}{2} m v^2$. Answer in joules." % (fmt(m), obj, fmt(v)),
            "Kinetic energy: m = %s kg, v = %s m/s, KE = (1/2) m v^2. %s" % (fmt(m), fmt(v), num_only(rng)),
        ]), c_number(KE, rel=0.01), 24),
    ], [
        stage("arithmetic", "Compute the gravitational potential energy of a %s kg mass lifted %s m, with PE = m g h and g = 9.8 m/s^2. Answer in joules." % (fmt(m), fmt(h)),
              c_number(PE, rel=0.01), 24),
    ], [
        stage("reasoning", pick(rng, [
            "A %s slides without friction from rest down a height of %s m. Using energy conservation, $m g h = \\frac{1}{2} m v^2$ with g = 9.8 m/s^2, find its speed at the bottom in m/s, to two decimals." % (obj, fmt(h)),
            "Energy conservation problem: an object starts at rest %s m above the ground and falls freely (g = 9.8 m/s^2, no air resistance). What is its speed just before impact, in m/s? Round to two decimals." % fmt(h),
        ]), c_number(vb, rel=0.01), 64),
    ], [
        stage("classification", "Which is larger, the kinetic energy (%s J) or the potential energy (%s J)? Answer kinetic or potential." % (fmt(KE, 4), fmt(PE, 4)),
              c_choice(["kinetic", "potential"], "kinetic" if KE > PE else "potential"), 8),
    ], [
        stage("formatting", "Write the kinetic energy formula in LaTeX math mode.",
              c_contains(["\\frac{1}{2}", "\\frac12", "\\frac{mv^2}{2}", "\\frac{m v^2}{2}", "\\tfrac{1}{2}", "\\dfrac{1}{2}"]), 32),
        stage("extraction", "Which variable is squared in this formula? Answer with its name (mass or velocity): {prev}",
              c_choice(["mass", "velocity"], "velocity"), 8),
    ]]


LINES = [(405, "violet"), (450, "blue"), (532, "green"), (589, "yellow"), (633, "red"), (365, "ultraviolet"),
         (254, "ultraviolet"), (780, "infrared"), (850, "infrared"), (1064, "infrared"), (488, "blue"), (694, "red")]


def phys_photon(rng, i):
    lam, _ = LINES[i % len(LINES)]
    f = 3.0e8 / (lam * 1e-9)
    E = 1240.0 / lam
    region = "ultraviolet" if lam < 400 else "visible" if lam <= 700 else "infrared"
    src = pick(rng, ["laser line", "emission line", "LED", "filter passband"])
    return [[
        stage("extraction", pick(rng, [
            "Extract the wavelength in nanometers from this methods sentence: \"Samples were excited with the %d nm %s and imaged through a long-pass filter.\" %s" % (lam, src, num_only(rng)),
            "What wavelength (nm) does this sentence report? \"The %s at %d nm was used for all measurements.\" %s" % (src, lam, num_only(rng)),
        ]), c_number(lam), 8),
        stage("arithmetic", "Photon energy in electronvolts is $E \\approx 1240 / \\lambda$ with $\\lambda$ in nm. Compute E for this wavelength in nm: {prev}",
              c_number(E, rel=0.01), 24),
    ], [
        stage("arithmetic", pick(rng, [
            "Compute the frequency $f = c / \\lambda$ of light with $\\lambda$ = %d nm, taking c = 3.00 x 10^8 m/s. Give the answer in Hz in scientific notation." % lam,
            "Frequency of %d nm light in Hz? Use f = c/λ with c = 3.00e8 m/s and 1 nm = 1e-9 m." % lam,
        ]), c_number(f, rel=0.01), 32),
    ], [
        stage("classification", "Classify light of wavelength %d nm as ultraviolet (below 400 nm), visible (400 to 700 nm) or infrared (above 700 nm)." % lam,
              c_choice(["ultraviolet", "visible", "infrared"], region), 8),
    ], [
        stage("formatting", json_prompt(rng, ["wavelength_nm", "energy_eV", "region"], [lam, fmt(E, 3), region]),
              c_json(["wavelength_nm", "energy_eV", "region"]), 48),
    ]]


PARTICLES = [
    # name, charge (e), spin text, spin value, mass MeV/c^2
    ("electron", -1, "1/2", 0.5, 0.511), ("proton", 1, "1/2", 0.5, 938.272), ("neutron", 0, "1/2", 0.5, 939.565),
    ("photon", 0, "1", 1, 0.0), ("muon", -1, "1/2", 0.5, 105.66), ("W+ boson", 1, "1", 1, 80379.0),
    ("Z boson", 0, "1", 1, 91188.0), ("Higgs boson", 0, "0", 0, 125100.0), ("positron", 1, "1/2", 0.5, 0.511),
    ("tau", -1, "1/2", 0.5, 1776.86), ("charged pion", 1, "0", 0, 139.57), ("gluon", 0, "1", 1, 0.0),
    ("deuteron", 1, "1", 1, 1875.61), ("alpha particle", 2, "0", 0, 3727.38),
]


def phys_particles(rng, i):
    p = PARTICLES[i % len(PARTICLES)]
    others = [q for q in PARTICLES if q[0] != p[0]]
    tab = shuffled(rng, [p] + shuffled(rng, others)[:3])
    table = "; ".join("%s: charge %+d e, spin %s, mass %s MeV/c^2" % (q[0], q[1], q[2], fmt(q[4])) for q in tab)
    table = table.replace("+0 e", "0 e")
    stat = "fermion" if p[3] % 1 else "boson"
    heavy = max(tab, key=lambda q: q[4])
    unique_heavy = sum(1 for q in tab if q[4] == heavy[4]) == 1
    groups = [[
        stage("extraction", pick(rng, [
            "Look up the electric charge, in units of e, of the %s in this table: %s. %s" % (p[0], table, num_only(rng)),
            "From the particle data below, give the charge of the %s in units of the elementary charge. %s. %s" % (p[0], table, num_only(rng)),
        ]), c_number(p[1]), 12),
    ], [
        stage("classification",
              "Classify the %s as a fermion or a boson. Rule: particles with half-integer spin (1/2, 3/2, ...) are fermions; particles with integer spin (0, 1, 2, ...) are bosons. The %s has spin %s." % (p[0], p[0], p[2]),
              c_choice(["fermion", "boson"], stat), 8),
    ], [
        stage("reasoning", "Which of these particles is the heaviest? %s. Answer with the particle name." % table,
              c_choice([q[0] for q in tab], heavy[0]), 16),
    ]]
    if not unique_heavy:
        groups.pop()
    if p[4] > 1:
        groups.append([stage("conversion", "Convert the %s mass of %s MeV/c^2 to GeV/c^2 (1 GeV = 1000 MeV). %s" % (p[0], fmt(p[4]), num_only(rng)),
                             c_number(p[4] / 1000, rel=0.002), 16)])
    groups.append([stage("formatting", json_prompt(rng, ["particle", "charge", "spin", "statistics"], [p[0], p[1], p[2], stat]),
                         c_json(["particle", "charge", "spin", "statistics"]), 48),
                   stage("summarization", "Describe the particle in this record in one sentence for a textbook glossary: {prev}",
                         c_contains(p[0].split()[0]), 48)])
    return groups


ISOTOPES = [("iodine-131", 8.02, "days"), ("phosphorus-32", 14.3, "days"), ("technetium-99m", 6.01, "hours"),
            ("sulfur-35", 87.4, "days"), ("chromium-51", 27.7, "days"), ("cobalt-60", 5.27, "years"),
            ("carbon-14", 5730, "years"), ("fluorine-18", 109.8, "minutes"), ("radon-222", 3.82, "days"),
            ("strontium-90", 28.8, "years")]


def phys_decay(rng, i):
    iso, T, unit = ISOTOPES[i % len(ISOTOPES)]
    k = pick(rng, [2, 3, 4, 5])
    t = T * k
    m0 = pick(rng, [40, 64, 80, 100, 160, 200])
    frac = 0.5 ** k
    note = "The %s source (half-life %s %s) contained %d mg when it arrived." % (iso, fmt(T), unit, m0)
    return [[
        stage("extraction", pick(rng, [
            "Extract the half-life, in %s, from this shipping note: \"%s\" %s" % (unit, note, num_only(rng)),
            "What half-life does this note give, in %s? \"%s\" %s" % (unit, note, num_only(rng)),
        ]), c_number(T, rel=0.001), 12),
        stage("arithmetic", "How many half-lives pass in %s %s if the half-life (in %s) is: {prev}? %s" % (fmt(t), unit, unit, num_only(rng)),
              c_number(k, tol=0.01), 16),
        stage("arithmetic", "What fraction of a radioactive sample remains after this many half-lives: {prev}? Give a decimal.",
              c_number(frac, tol=0.001), 16),
    ], [
        stage("reasoning", pick(rng, [
            "A %s sample starts at %d mg; its half-life is %s %s. How many milligrams remain after %s %s? Use $m = m_0 (1/2)^{t/T}$." % (iso, m0, fmt(T), unit, fmt(t), unit),
            "Radioactive decay: m0 = %d mg, half-life %s %s, elapsed time %s %s. Compute the remaining mass in mg. %s" % (m0, fmt(T), unit, fmt(t), unit, num_only(rng)),
        ]), c_number(m0 * frac, rel=0.01), 64),
    ], [
        stage("reasoning", "A sample decays with a half-life of %s %s. After how many whole half-lives does less than 10%% of it remain? %s" % (fmt(T), unit, num_only(rng)),
              c_number(4), 32),
    ], [
        stage("formatting", json_prompt(rng, ["isotope", "half_life", "unit", "initial_mg"], [iso, fmt(T), unit, m0]),
              c_json(["isotope", "half_life", "unit", "initial_mg"]), 48),
    ]]


def phys_oscillation(rng, i):
    L = pick(rng, [0.25, 0.5, 1.0, 1.5, 2.0, 2.45])
    T = 2 * math.pi * math.sqrt(L / 9.81)
    m = pick(rng, [0.2, 0.5, 1, 2])
    k = pick(rng, [20, 50, 80, 200])
    Ts = 2 * math.pi * math.sqrt(m / k)
    return [[
        stage("arithmetic", pick(rng, [
            "Compute the period of a simple pendulum of length %s m with $T = 2\\pi\\sqrt{L/g}$ and g = 9.81 m/s^2. Give seconds to two decimals." % fmt(L),
            "Pendulum period: L = %s m, g = 9.81 m/s^2, T = 2π sqrt(L/g). %s" % (fmt(L), num_only(rng)),
        ]), c_number(T, tol=0.02), 32),
        stage("arithmetic", "A pendulum has the period given below in seconds. What is its frequency in Hz (f = 1/T)? {prev}",
              c_number(1 / T, rel=0.02), 24),
    ], [
        stage("arithmetic", "A %s kg mass hangs on a spring with stiffness k = %d N/m. Find the oscillation period $T = 2\\pi\\sqrt{m/k}$ in seconds." % (fmt(m), k),
              c_number(Ts, rel=0.01), 32),
    ], [
        stage("reasoning", "If a pendulum's length is made four times longer, what happens to its period? The period is proportional to $\\sqrt{L}$. Answer with one word: doubles, halves or unchanged.",
              c_choice(["doubles", "halves", "unchanged"], "doubles"), 8),
    ], [
        stage("formatting", json_prompt(rng, ["length_m", "period_s", "frequency_hz"], [fmt(L), fmt(T, 3), fmt(1 / T, 3)]),
              c_json(["length_m", "period_s", "frequency_hz"]), 48),
    ]]


def phys_projectile(rng, i):
    v = pick(rng, [10, 12, 15, 20, 25, 30])
    th = pick(rng, [15, 30, 45, 60, 75])
    R = v * v * math.sin(math.radians(2 * th)) / 9.81
    tf = 2 * v * math.sin(math.radians(th)) / 9.81
    H = (v * math.sin(math.radians(th))) ** 2 / (2 * 9.81)
    note = "The ball was launched at %d m/s at an angle of %d degrees above the horizontal." % (v, th)
    return [[
        stage("extraction", "Extract the launch speed in m/s from: \"%s\" %s" % (note, num_only(rng)), c_number(v), 8),
        stage("arithmetic", "Compute the range $R = v^2 \\sin(2\\theta) / g$ for $\\theta$ = %d degrees, g = 9.81 m/s^2 and the launch speed v in m/s given here: {prev}. Round to one decimal." % th,
              c_number(R, rel=0.02), 32),
    ], [
        stage("reasoning", "A projectile is launched at %d m/s, %d degrees above level ground, without air resistance. What is its time of flight, $t = 2 v \\sin\\theta / g$ with g = 9.81 m/s^2, in seconds?" % (v, th),
              c_number(tf, rel=0.02), 48),
    ], [
        stage("reasoning", "Find the maximum height reached by a projectile launched at %d m/s at %d degrees (H = (v sin θ)^2 / (2g), g = 9.81 m/s^2). Answer in meters." % (v, th),
              c_number(H, rel=0.02), 48),
    ], [
        stage("classification", "On level ground without air resistance, which launch angle gives the longest range? Answer with the angle in degrees: 30, 45 or 60.",
              c_choice(["30", "45", "60"], "45"), 8),
    ], [
        stage("formatting", json_prompt(rng, ["speed_m_s", "angle_deg", "range_m"], [v, th, fmt(R, 3)]),
              c_json(["speed_m_s", "angle_deg", "range_m"]), 48),
    ]]


def phys_thermo(rng, i):
    m = pick(rng, [0.2, 0.5, 1, 2, 3])
    dT = pick(rng, [5, 10, 20, 25, 40])
    Q = m * 4186 * dT
    tc = pick(rng, [-20, 0, 15, 27, 100])
    Th, Tc = pick(rng, [(600, 300), (500, 300), (800, 400), (373, 273), (900, 300)])
    eff = (1 - Tc / Th) * 100
    n, T, V = pick(rng, [1, 2, 0.5]), pick(rng, [273, 300, 350]), pick(rng, [0.01, 0.02, 0.05])
    P = n * 8.314 * T / V
    return [[
        stage("arithmetic", pick(rng, [
            "Compute the heat needed to warm %s kg of water by %d K: $Q = m c \\Delta T$ with c = 4186 J/(kg K). Answer in joules." % (fmt(m), dT),
            "How much heat (J) raises %s kg of water by %d degrees? Use Q = m c ΔT, c = 4186 J/(kg·K). %s" % (fmt(m), dT, num_only(rng)),
        ]), c_number(Q, rel=0.01), 24),
        stage("conversion", "Convert this amount of heat from joules to kilojoules: {prev}", c_number(Q / 1000, rel=0.01), 16),
    ], [
        stage("conversion", "Convert %d degrees Celsius to kelvin (K = °C + 273.15). %s" % (tc, num_only(rng)),
              c_number(tc + 273.15, tol=0.01), 12),
    ], [
        stage("reasoning", "A heat engine runs between a hot reservoir at %d K and a cold reservoir at %d K. What is its Carnot efficiency, $1 - T_c/T_h$, as a percentage?" % (Th, Tc),
              c_number(eff, tol=0.2), 32),
    ], [
        stage("arithmetic", "Use the ideal gas law PV = nRT with R = 8.314 J/(mol K) to find the pressure in Pa of %s mol of gas at %d K in a %s m^3 vessel." % (fmt(n), T, fmt(V)),
              c_number(P, rel=0.01), 32),
    ], [
        stage("classification", "A %d °C metal block touches a %d °C block. Heat flows from hotter to colder. Which block loses heat, the first or the second?" % (tc + 30, tc),
              c_choice(["first", "second"], "first"), 8),
    ]]


CONSTANTS = [
    ("speed of light in vacuum", "c", 2.998e8, "m/s",
     "How far does light travel in 1 ms (0.001 s) at c = 2.998 x 10^8 m/s? Answer in meters.", 2.998e5),
    ("Planck constant", "h", 6.626e-34, "J s",
     "Compute the energy E = h f of a photon with f = 5.0 x 10^14 Hz, using h = 6.626 x 10^-34 J s. Answer in joules.", 3.313e-19),
    ("Boltzmann constant", "k_B", 1.381e-23, "J/K",
     "Compute the thermal energy k_B T at T = 300 K with k_B = 1.381 x 10^-23 J/K. Answer in joules.", 4.143e-21),
    ("elementary charge", "e", 1.602e-19, "C",
     "What is the total charge of 1000 electrons in coulombs? (charge magnitude 1.602 x 10^-19 C each)", 1.602e-16),
    ("gravitational constant", "G", 6.674e-11, "N m^2/kg^2",
     "Compute the gravitational force between two 1000 kg masses 1 m apart: F = G m1 m2 / r^2 with G = 6.674 x 10^-11 N m^2/kg^2. Answer in newtons.", 6.674e-5),
    ("Avogadro constant", "N_A", 6.022e23, "1/mol",
     "How many molecules are in 2 mol of a gas? N_A = 6.022 x 10^23 per mol.", 1.2044e24),
    ("electron mass", "m_e", 9.109e-31, "kg",
     "What is the total mass in kg of 10^6 electrons, each 9.109 x 10^-31 kg?", 9.109e-25),
    ("standard gravity", "g", 9.807, "m/s^2",
     "What is the weight in newtons of a 70 kg person, with W = m g and g = 9.807 m/s^2?", 686.49),
]


def phys_constants(rng, i):
    name, sym, val, unit, q, ans = CONSTANTS[i % len(CONSTANTS)]
    tab = shuffled(rng, [CONSTANTS[i % len(CONSTANTS)]] + shuffled(rng, [c for c in CONSTANTS if c[0] != name])[:3])
    table = "\n".join("| %s | %s | %s | %s |" % (c[0], c[1], sci(c[2], 4) if c[2] < 1e-3 or c[2] > 1e4 else fmt(c[2]), c[3]) for c in tab)
    groups = [[
        stage("extraction", pick(rng, [
            "Look up the %s in this table of constants and give its value in SI units.\n| constant | symbol | value | unit |\n%s" % (name, table),
            "From the table below, what is the numerical value of the %s (%s)?\n%s" % (name, sym, table),
        ]), c_number(val, rel=0.002), 24),
        stage("formatting", "Write this value of the %s in LaTeX scientific notation, like $1.23 \\times 10^{4}$: {prev}" % name,
              c_regex("\\\\(times|cdot)[[:space:]]*10\\^") if (val < 1e-3 or val > 1e4) else c_contains(fmt(val)), 32,
              ref="$%s$" % sci(val, 4).replace(" x ", " \\times ")),
    ], [
        stage("arithmetic", q, c_number(ans, rel=0.01), 32),
    ], [
        stage("classification", "Is the %s a dimensionless number? Its SI unit is %s. Answer yes or no." % (name, unit),
              yes_no(False), 8),
    ], [
        stage("formatting", json_prompt(rng, ["name", "symbol", "value", "unit"], [name, sym, sci(val, 4) if val < 1e-3 or val > 1e4 else fmt(val), unit]),
              c_json(["name", "symbol", "value", "unit"]), 64),
    ]]
    return groups


PHYS_TEMPLATES = [phys_kinematics, phys_units, phys_circuit, phys_energy, phys_photon, phys_particles, phys_decay,
                  phys_oscillation, phys_projectile, phys_thermo, phys_constants]


# ================================================================== chemistry

COMPOUNDS = [
    # name, formula (Hill-like, as written), SMILES, functional group, aromatic
    ("ethanol", "C2H6O", "CCO", "alcohol", False),
    ("methanol", "CH4O", "CO", "alcohol", False),
    ("isopropanol", "C3H8O", "CC(C)O", "alcohol", False),
    ("1-butanol", "C4H10O", "CCCCO", "alcohol", False),
    ("acetic acid", "C2H4O2", "CC(=O)O", "carboxylic acid", False),
    ("benzoic acid", "C7H6O2", "OC(=O)c1ccccc1", "carboxylic acid", True),
    ("propanoic acid", "C3H6O2", "CCC(=O)O", "carboxylic acid", False),
    ("acetone", "C3H6O", "CC(=O)C", "ketone", False),
    ("butanone", "C4H8O", "CCC(=O)C", "ketone", False),
    ("acetophenone", "C8H8O", "CC(=O)c1ccccc1", "ketone", True),
    ("acetaldehyde", "C2H4O", "CC=O", "aldehyde", False),
    ("benzaldehyde", "C7H6O", "O=Cc1ccccc1", "aldehyde", True),
    ("diethyl ether", "C4H10O", "CCOCC", "ether", False),
    ("anisole", "C7H8O", "COc1ccccc1", "ether", True),
    ("ethylamine", "C2H7N", "CCN", "amine", False),
    ("aniline", "C6H7N", "Nc1ccccc1", "amine", True),
    ("ethyl acetate", "C4H8O2", "CCOC(C)=O", "ester", False),
    ("methyl benzoate", "C8H8O2", "COC(=O)c1ccccc1", "ester", True),
    ("propene", "C3H6", "CC=C", "alkene", False),
    ("styrene", "C8H8", "C=Cc1ccccc1", "alkene", True),
    ("1-butyne", "C4H6", "CCC#C", "alkyne", False),
    ("acetamide", "C2H5NO", "CC(N)=O", "amide", False),
    ("toluene", "C7H8", "Cc1ccccc1", "arene", True),
    ("cyclohexane", "C6H12", "C1CCCCC1", "alkane", False),
]
GROUP_GUIDE = {
    "alcohol": "alcohol = O-H on a saturated carbon (CCO)",
    "carboxylic acid": "carboxylic acid = C(=O)O with a terminal OH (CC(=O)O)",
    "ketone": "ketone = C=O between two carbons (CC(=O)C)",
    "aldehyde": "aldehyde = C=O at the end of a chain (CC=O)",
    "ether": "ether = O between two carbons (COC)",
    "amine": "amine = N bonded to carbon (CN)",
    "ester": "ester = C(=O)O-C (CC(=O)OC)",
    "alkene": "alkene = C=C double bond (C=C)",
    "alkyne": "alkyne = C#C triple bond (C#C)",
    "amide": "amide = C(=O)N (CC(N)=O)",
    "arene": "arene = aromatic ring only, no heteroatoms (c1ccccc1)",
    "alkane": "alkane = only single C-C and C-H bonds (CCC)",
}


def chem_card(rng, i):
    name, formula, smiles, group, arom = COMPOUNDS[i % len(COMPOUNDS)]
    M = molar_mass(formula)
    nC = formula_counts(formula).get("C", 0)
    entry = pick(rng, [
        "%s | SMILES %s | formula %s | M = %.2f g/mol | stored in cabinet %d" % (name, smiles, formula, M, 1 + i % 9),
        "Catalogue entry: %s (%s), molecular formula %s, molar mass %.2f g/mol." % (name, smiles, formula, M),
    ])
    distract = [g for g in shuffled(rng, list(GROUP_GUIDE)) if g != group][:2]
    opts = shuffled(rng, [group] + distract)
    guide = "; ".join(GROUP_GUIDE[g] for g in opts)
    groups = [[
        stage("extraction", pick(rng, [
            "Extract the molecular formula from this catalogue entry. Reply with the formula only.\n%s" % entry,
            "What is the molecular formula given in this record? %s" % entry,
        ]), c_exact(formula, case=True) if i % 3 == 0 else c_contains(formula, case=True), 16),
        stage("arithmetic", "How many carbon atoms are in this molecular formula? {prev} %s" % num_only(rng),
              c_number(nC), 8),
    ], [
        stage("classification", pick(rng, [
            "Which functional group does %s (SMILES %s) contain: %s? Pattern guide: %s." % (name, smiles, or_list(opts), guide),
            "Classify the main functional group of the molecule %s (%s). Options: %s. Guide: %s." % (smiles, name, or_list(opts), guide),
        ]), c_choice(opts, group), 16),
    ], [
        stage("formatting", json_prompt(rng, ["name", "formula", "smiles", "molar_mass"], [name, formula, smiles, "%.2f" % M]),
              c_json(["name", "formula", "smiles", "molar_mass"]), 64),
        stage("summarization", "Write one sentence for a lab inventory describing this compound record: {prev}",
              c_contains(formula, case=True) if i % 2 else c_none(), 48),
    ]]
    return groups


INORGANIC = [("NaCl", False), ("H2O", False), ("CO2", False), ("CH4", True), ("C6H12O6", True), ("KCl", False),
             ("C2H6", True), ("CaCO3", False)]


def chem_molar(rng, i):
    name, formula, smiles, group, arom = COMPOUNDS[(i * 5 + 3) % len(COMPOUNDS)]
    M = molar_mass(formula)
    mass = pick(rng, [5, 10, 12.5, 25, 50, 100])
    n = mass / M
    nmol = pick(rng, [0.25, 0.5, 1.5, 2, 3])
    oformula, organic = INORGANIC[i % len(INORGANIC)]
    groups = [[
        stage("arithmetic", pick(rng, [
            "Calculate the molar mass of %s in g/mol using the atomic masses %s. Round to two decimals." % (formula, mass_legend(formula)),
            "Molar mass task: add up the atomic masses (%s) for the formula %s (%s). %s" % (mass_legend(formula), formula, name, num_only(rng)),
        ]), c_number(round(M, 3), tol=0.05), 32),
        stage("arithmetic", "How many moles are in %s g of a compound whose molar mass in g/mol is given here? {prev} Round to three decimals." % fmt(mass),
              c_number(n, rel=0.01), 24),
    ], [
        stage("arithmetic", "How many molecules are in %s mol of %s? Use N_A = 6.022 x 10^23 per mol." % (fmt(nmol), name),
              c_number(nmol * 6.022e23, rel=0.01), 24),
    ], [
        stage("classification", "Is %s an organic compound? Count it as organic only if it contains carbon bonded to hydrogen. Answer yes or no." % oformula,
              yes_no(organic), 8),
    ], [
        stage("formatting", json_prompt(rng, ["formula", "molar_mass_g_mol", "mass_g", "moles"], [formula, "%.2f" % M, fmt(mass), "%.4f" % n]),
              c_json(["formula", "molar_mass_g_mol", "mass_g", "moles"]), 64),
    ]]
    return groups



def chem_ph(rng, i):
    a = pick(rng, [1.0, 2.0, 2.5, 3.2, 5.0, 6.3, 7.9])
    b = pick(rng, [2, 3, 4, 5, 8, 9, 10, 11, 12])
    h = a * 10 ** -b
    pH = -math.log10(h)
    cls = "acidic" if pH < 7 else "basic" if pH > 7 else "neutral"
    sample = "S-%03d" % (11 + i * 7)
    conc = "%se-%d" % (fmt(a), b)
    groups = [[
        stage("extraction", pick(rng, [
            "Extract the hydrogen-ion concentration in mol/L from this assay sheet line: \"Sample %s: [H+] = %s mol/L, T = 25 °C, duplicate run.\"" % (sample, conc),
            "What [H+] (mol/L) is reported here? \"%s - [H+] %s M at 25 degrees C\"" % (sample, conc),
        ]), c_number(h, rel=0.005), 24),
        stage("arithmetic", "Calculate pH = -log10[H+] for this hydrogen-ion concentration in mol/L: {prev}. Give two decimals.",
              c_number(round(pH, 4), tol=0.02), 24),
    ], [
        stage("classification", "A solution has pH %.2f. Classify it as acidic, basic or neutral (below 7 acidic, exactly 7 neutral, above 7 basic)." % pH,
              c_choice(["acidic", "basic", "neutral"], cls), 8),
    ], [
        stage("arithmetic", "What is the pOH of a solution with pH %.2f at 25 °C? (pH + pOH = 14) %s" % (pH, num_only(rng)),
              c_number(14 - round(pH, 2), tol=0.02), 16),
    ], [
        stage("formatting", json_prompt(rng, ["sample", "h_concentration", "pH", "class"], [sample, conc, "%.2f" % pH, cls]),
              c_json(["sample", "h_concentration", "pH", "class"]), 64),
    ]]
    return groups


SOLUTES = ["NaCl", "glucose", "HCl", "Tris buffer", "EDTA", "sucrose", "KCl", "MgCl2"]


def chem_dilution(rng, i):
    sol = SOLUTES[i % len(SOLUTES)]
    C1 = pick(rng, [1, 2, 5, 10])
    C2 = pick(rng, [0.05, 0.1, 0.2, 0.25, 0.5])
    V2 = pick(rng, [50, 100, 250, 500, 1000])
    V1 = C2 * V2 / C1
    Vl = pick(rng, [0.25, 0.5, 1.5, 2])
    return [[
        stage("arithmetic", pick(rng, [
            "Use $C_1 V_1 = C_2 V_2$: how many mL of a %d M %s stock are needed to make %d mL of %s M solution?" % (C1, sol, V2, fmt(C2)),
            "Dilution: stock %s at %d M, target %s M in a final volume of %d mL. What stock volume in mL is required (C1V1 = C2V2)? %s" % (sol, C1, fmt(C2), V2, num_only(rng)),
        ]), c_number(V1, rel=0.01), 32),
        stage("conversion", "Convert this volume from milliliters to liters: {prev} mL", c_number(V1 / 1000, rel=0.01), 16),
    ], [
        stage("arithmetic", "How many moles of %s are in %s L of a %s M solution? (n = C V) %s" % (sol, fmt(Vl), fmt(C2), num_only(rng)),
              c_number(Vl * C2, rel=0.01), 16),
    ], [
        stage("classification", "Which is more concentrated: the %d M stock or the %s M working solution? Answer stock or working." % (C1, fmt(C2)),
              c_choice(["stock", "working"], "stock"), 8),
    ], [
        stage("formatting", json_prompt(rng, ["solute", "stock_M", "target_M", "final_mL", "stock_mL"], [sol, C1, fmt(C2), V2, fmt(V1)]),
              c_json(["solute", "stock_M", "target_M", "final_mL", "stock_mL"]), 64),
    ]]


REACTIONS = [
    # equation, {species: coefficient}, reactants, products
    ("2 H2 + O2 -> 2 H2O", {"H2": 2, "O2": 1, "H2O": 2}, ["H2", "O2"], ["H2O"]),
    ("CH4 + 2 O2 -> CO2 + 2 H2O", {"CH4": 1, "O2": 2, "CO2": 1, "H2O": 2}, ["CH4", "O2"], ["CO2", "H2O"]),
    ("N2 + 3 H2 -> 2 NH3", {"N2": 1, "H2": 3, "NH3": 2}, ["N2", "H2"], ["NH3"]),
    ("2 Na + Cl2 -> 2 NaCl", {"Na": 2, "Cl2": 1, "NaCl": 2}, ["Na", "Cl2"], ["NaCl"]),
    ("C3H8 + 5 O2 -> 3 CO2 + 4 H2O", {"C3H8": 1, "O2": 5, "CO2": 3, "H2O": 4}, ["C3H8", "O2"], ["CO2", "H2O"]),
    ("2 Mg + O2 -> 2 MgO", {"Mg": 2, "O2": 1, "MgO": 2}, ["Mg", "O2"], ["MgO"]),
    ("CaCO3 -> CaO + CO2", {"CaCO3": 1, "CaO": 1, "CO2": 1}, ["CaCO3"], ["CaO", "CO2"]),
    ("C6H12O6 + 6 O2 -> 6 CO2 + 6 H2O", {"C6H12O6": 1, "O2": 6, "CO2": 6, "H2O": 6}, ["C6H12O6", "O2"], ["CO2", "H2O"]),
    ("Zn + 2 HCl -> ZnCl2 + H2", {"Zn": 1, "HCl": 2, "ZnCl2": 1, "H2": 1}, ["Zn", "HCl"], ["ZnCl2", "H2"]),
    ("2 H2O2 -> 2 H2O + O2", {"H2O2": 2, "H2O": 2, "O2": 1}, ["H2O2"], ["H2O", "O2"]),
]


def eq_text(coef, reactants, products):
    side = lambda xs: " + ".join(("%d %s" % (coef[x], x)) if coef[x] != 1 else x for x in xs)
    return side(reactants) + " -> " + side(products)


def balanced(coef, reactants, products):
    def atoms(xs):
        t = {}
        for x in xs:
            for el, n in formula_counts(x).items():
                t[el] = t.get(el, 0) + n * coef[x]
        return t
    return atoms(reactants) == atoms(products)


def chem_stoich(rng, i):
    eq, coef, reac, prod = REACTIONS[i % len(REACTIONS)]
    sp = pick(rng, list(coef))
    R, P = reac[0], prod[0]
    nR = pick(rng, [1, 2, 3, 4, 6])
    nP = nR * coef[P] / coef[R]
    mR = pick(rng, [4, 8, 10, 16, 32, 50])
    MR, MP = molar_mass(R), molar_mass(P)
    mP = mR / MR * coef[P] / coef[R] * MP
    bad = dict(coef)
    victim = pick(rng, list(coef))
    bad[victim] += 1
    show_bad = rng.random() < 0.5
    test_coef = bad if show_bad else coef
    groups = [[
        stage("extraction", "In the balanced equation %s, what is the coefficient of %s? %s" % (eq, sp, num_only(rng)),
              c_number(coef[sp]), 8),
    ], [
        stage("arithmetic", pick(rng, [
            "According to %s, how many moles of %s form from %d mol of %s (with the other reactants in excess)? %s" % (eq, P, nR, R, num_only(rng)),
            "Mole ratio problem: given %s, %d mol of %s react completely. How many mol of %s are produced?" % (eq, nR, R, P),
        ]), c_number(nP, rel=0.005), 24),
    ], [
        stage("reasoning", "Using %s with molar masses %s = %.2f g/mol and %s = %.2f g/mol, how many grams of %s form from %d g of %s (other reactants in excess)? Round to one decimal." % (
            eq, R, MR, P, MP, P, mR, R), c_number(mP, rel=0.02), 64),
    ], [
        stage("classification", "Is the equation %s balanced? Count each element on both sides, then answer yes or no." % eq_text(test_coef, reac, prod),
              yes_no(balanced(test_coef, reac, prod)), 16),
    ], [
        stage("formatting", json_prompt(rng, ["equation", "reactants", "products"], [eq, " + ".join(reac), " + ".join(prod)]),
              c_json(["equation", "reactants", "products"]), 64),
    ]]
    return groups


ELEMENTS = [
    # Z, symbol, name, category, mass number of the main isotope
    (1, "H", "hydrogen", "nonmetal", 1), (2, "He", "helium", "noble gas", 4), (3, "Li", "lithium", "alkali metal", 7),
    (6, "C", "carbon", "nonmetal", 12), (7, "N", "nitrogen", "nonmetal", 14), (8, "O", "oxygen", "nonmetal", 16),
    (9, "F", "fluorine", "halogen", 19), (10, "Ne", "neon", "noble gas", 20), (11, "Na", "sodium", "alkali metal", 23),
    (12, "Mg", "magnesium", "alkaline earth metal", 24), (13, "Al", "aluminium", "post-transition metal", 27),
    (15, "P", "phosphorus", "nonmetal", 31), (16, "S", "sulfur", "nonmetal", 32), (17, "Cl", "chlorine", "halogen", 35),
    (18, "Ar", "argon", "noble gas", 40), (19, "K", "potassium", "alkali metal", 39),
    (20, "Ca", "calcium", "alkaline earth metal", 40), (26, "Fe", "iron", "transition metal", 56),
    (28, "Ni", "nickel", "transition metal", 58), (29, "Cu", "copper", "transition metal", 63),
    (30, "Zn", "zinc", "transition metal", 64), (35, "Br", "bromine", "halogen", 79), (47, "Ag", "silver", "transition metal", 107),
    (53, "I", "iodine", "halogen", 127), (54, "Xe", "xenon", "noble gas", 132), (79, "Au", "gold", "transition metal", 197),
    (80, "Hg", "mercury", "transition metal", 202), (82, "Pb", "lead", "post-transition metal", 208),
    (92, "U", "uranium", "actinide metal", 238), (36, "Kr", "krypton", "noble gas", 84),
]


def broad_class(cat):
    if cat == "noble gas":
        return "noble gas"
    if cat in ("nonmetal", "halogen"):
        return "nonmetal"
    return "metal"


def chem_element(rng, i):
    Z, sym, name, cat, A = ELEMENTS[(i * 7) % len(ELEMENTS)]
    rows = shuffled(rng, [ELEMENTS[(i * 7) % len(ELEMENTS)]] + shuffled(rng, [e for e in ELEMENTS if e[0] != Z])[:4])
    table = ", ".join("%d %s (%s)" % (e[0], e[1], e[2]) for e in rows)
    names = [name] + (["aluminum"] if name == "aluminium" else [])
    groups = [[
        stage("lookup", pick(rng, [
            "Which element has atomic number %d? Use this excerpt of the periodic table: %s." % (Z, table),
            "Name the element with Z = %d, using this list: %s. Reply with the element name." % (Z, table),
        ]), c_contains(names), 12),
        stage("lookup", "Write only the chemical symbol of this element (table: %s): {prev}" % table,
              c_exact(sym, case=True) if i % 3 == 0 else c_regex(word_re(sym), case=True), 8, ref=sym),
    ], [
        stage("arithmetic", "How many neutrons are in a %s-%d nucleus? Its atomic number is %d, and neutrons = mass number - atomic number. %s" % (name, A, Z, num_only(rng)),
              c_number(A - Z), 8),
    ], [
        stage("classification", "Classify %s as a metal, nonmetal or noble gas. The reference table lists it as: %s. (Halogens count as nonmetals; alkali, alkaline earth, transition, post-transition and actinide metals count as metals.)" % (name, cat),
              c_choice(["metal", "nonmetal", "noble gas"], broad_class(cat)), 8),
    ], [
        stage("formatting", json_prompt(rng, ["symbol", "name", "atomic_number", "mass_number"], [sym, name, Z, A]),
              c_json(["symbol", "name", "atomic_number", "mass_number"]), 48),
    ]]
    return groups


def chem_gas(rng, i):
    t = pick(rng, [0, 20, 25, 37, 100, 150])
    T = t + 273.15
    P = pick(rng, [101325, 200000, 50000, 150000])
    V = pick(rng, [0.001, 0.01, 0.0224, 0.05])
    n = P * V / (8.314 * T)
    nstp = pick(rng, [0.5, 2, 3, 0.25])
    gas = pick(rng, ["nitrogen", "argon", "helium", "oxygen", "carbon dioxide"])
    return [[
        stage("conversion", "Convert %d °C to kelvin (add 273.15). %s" % (t, num_only(rng)), c_number(T, tol=0.01), 12),
        stage("arithmetic", "Compute the amount of %s gas n = PV/(RT) in mol for P = %d Pa, V = %s m^3, R = 8.314 J/(mol K) and the temperature T in kelvin given here: {prev}" % (gas, P, fmt(V)),
              c_number(n, rel=0.02), 32),
    ], [
        stage("arithmetic", "At STP one mole of an ideal gas occupies 22.4 L. What volume in liters do %s mol of %s occupy at STP? %s" % (fmt(nstp), gas, num_only(rng)),
              c_number(nstp * 22.4, rel=0.01), 16),
    ], [
        stage("reasoning", "A sealed rigid container of %s is heated so its absolute temperature doubles. By Gay-Lussac's law (P/T constant at fixed volume), what happens to the pressure? Answer doubles, halves or unchanged." % gas,
              c_choice(["doubles", "halves", "unchanged"], "doubles"), 8),
    ], [
        stage("formatting", json_prompt(rng, ["gas", "pressure_Pa", "volume_m3", "temperature_K"], [gas, P, fmt(V), fmt(T)]),
              c_json(["gas", "pressure_Pa", "volume_m3", "temperature_K"]), 64),
    ]]


def chem_smiles(rng, i):
    name, formula, smiles, group, arom = COMPOUNDS[(i * 7 + 2) % len(COMPOUNDS)]
    nC = formula_counts(formula)["C"]
    others = [c for c in COMPOUNDS if c[1] != formula]
    opts = shuffled(rng, [(name, formula)] + [(c[0], c[1]) for c in shuffled(rng, others)[:2]])
    record = pick(rng, [
        "%s; SMILES: %s; mp/bp and hazards on the safety sheet" % (name, smiles),
        "Reagent %s - structure (SMILES) %s - supplier lot %d" % (name, smiles, 4000 + i * 13),
    ])
    return [[
        stage("extraction", pick(rng, [
            "Copy the SMILES string from this reagent record, nothing else: \"%s\"" % record,
            "Extract the SMILES from the record below.\n%s" % record,
        ]), c_contains(smiles, case=True), 24),
        stage("arithmetic", "Count the carbon atoms in this SMILES string (each C or c is one carbon; Cl would be chlorine): {prev} %s" % num_only(rng),
              c_number(nC), 8),
    ], [
        stage("classification", "Does the molecule with SMILES %s contain an aromatic ring? In SMILES, aromatic atoms are written in lowercase, as in c1ccccc1. Answer yes or no." % smiles,
              yes_no(arom), 8),
    ], [
        stage("reasoning", "Which compound has the SMILES %s: %s? (Count the atoms in the SMILES and compare with the formulas.)" % (
            smiles, or_list(["%s (%s)" % o for o in opts])), c_choice([o[0] for o in opts], name), 24),
    ], [
        stage("formatting", json_prompt(rng, ["name", "smiles", "carbons", "aromatic"], [name, smiles, nC, "true" if arom else "false"]),
              c_json(["name", "smiles", "carbons", "aromatic"]), 64),
    ]]


def chem_kinetics(rng, i):
    k = pick(rng, [0.01, 0.02, 0.05, 0.1, 0.25, 0.5])
    th = math.log(2) / k
    c0 = pick(rng, [0.8, 1.0, 1.6, 2.0])
    nh = pick(rng, [1, 2, 3])
    order = pick(rng, [1, 2])
    factor = pick(rng, [2, 3, 4])
    orders = [("zero order", "M/s"), ("first order", "1/s"), ("second order", "1/(M s)")]
    o = orders[i % 3]
    return [[
        stage("arithmetic", pick(rng, [
            "A first-order reaction has rate constant k = %s s^-1. Compute its half-life $t_{1/2} = \\ln 2 / k$ in seconds." % fmt(k),
            "First-order kinetics: k = %s per second. What is the half-life in s? (t1/2 = 0.693/k)" % fmt(k),
        ]), c_number(th, rel=0.01), 24),
    ], [
        stage("arithmetic", "A first-order reactant starts at %s M. What concentration in M remains after %d half-lives? %s" % (fmt(c0), nh, num_only(rng)),
              c_number(c0 * 0.5 ** nh, rel=0.01), 16),
    ], [
        stage("reasoning", "For the rate law rate = k[A]^%d, by what factor does the rate change when [A] is multiplied by %d? %s" % (order, factor, num_only(rng)),
              c_number(factor ** order), 24),
    ], [
        stage("classification", "A rate constant has units of %s. Is the reaction zero order, first order or second order? (zero order: M/s; first order: 1/s; second order: 1/(M s))" % o[1],
              c_choice([x[0] for x in orders], o[0]), 8),
    ], [
        stage("formatting", json_prompt(rng, ["rate_constant", "units", "half_life_s"], [fmt(k), "1/s", "%.2f" % th]),
              c_json(["rate_constant", "units", "half_life_s"]), 48),
    ]]


PRODUCTS = [("aspirin", "salicylic acid"), ("acetanilide", "aniline"), ("benzoic acid", "toluene"),
            ("dibenzalacetone", "benzaldehyde"), ("methyl orange", "sulfanilic acid"),
            ("ethyl acetate", "acetic acid"), ("soap", "glyceryl tristearate"), ("biodiesel", "rapeseed oil")]


def chem_lab(rng, i):
    prod, start = PRODUCTS[i % len(PRODUCTS)]
    theo = pick(rng, [2.5, 3.2, 4.0, 5.0, 6.4])
    y = pick(rng, [0.42, 0.55, 0.68, 0.75, 0.81, 0.93])
    actual = round(theo * y, 2)
    yp = actual / theo * 100
    mp = 100 + (i * 17) % 120
    grade = "excellent" if yp >= 90 else "good" if yp >= 70 else "fair" if yp >= 50 else "poor"
    entry = "2025-02-%02d: prepared %s from %s; recrystallised from ethanol; isolated %.2f g of crystals (theoretical %.2f g); mp %d °C." % (
        3 + i % 25, prod, start, actual, theo, mp)
    return [[
        stage("extraction", pick(rng, [
            "Pull the isolated product mass in grams out of this notebook entry: \"%s\" %s" % (entry, num_only(rng)),
            "How many grams of product were isolated according to this entry? \"%s\"" % entry,
        ]), c_number(actual, tol=0.001), 12),
        stage("arithmetic", "Percent yield = actual / theoretical x 100. Compute it for a theoretical yield of %.2f g and the actual mass in grams given here: {prev}" % theo,
              c_number(yp, tol=0.2), 24),
    ], [
        stage("classification", "Classify a percent yield of %.1f%% as excellent (90%% or more), good (70-89%%), fair (50-69%%) or poor (below 50%%)." % yp,
              c_choice(["excellent", "good", "fair", "poor"], grade), 8),
    ], [
        stage("extraction", "Extract the melting point in °C from this entry: \"%s\" %s" % (entry, num_only(rng)),
              c_number(mp), 8),
    ], [
        stage("summarization", "Summarize this lab notebook entry in one sentence for the weekly group report: %s" % entry,
              c_none() if i % 2 else c_contains(prod), 48),
    ]]


CHEM_TEMPLATES = [chem_card, chem_molar, chem_ph, chem_dilution, chem_stoich, chem_element, chem_gas, chem_smiles,
                  chem_kinetics, chem_lab]


# ================================================================== biology

GENES = [
    # symbol, full name, band, category, function
    ("TP53", "tumor protein p53", "17p13.1", "tumor suppressor", "halts the cell cycle after DNA damage"),
    ("BRCA1", "BRCA1 DNA repair associated", "17q21.31", "tumor suppressor", "repairs double-strand DNA breaks by homologous recombination"),
    ("BRCA2", "BRCA2 DNA repair associated", "13q13.1", "tumor suppressor", "loads RAD51 onto DNA during homologous recombination"),
    ("RB1", "RB transcriptional corepressor 1", "13q14.2", "tumor suppressor", "blocks entry into S phase until the cell is ready"),
    ("PTEN", "phosphatase and tensin homolog", "10q23.31", "tumor suppressor", "opposes PI3K growth signalling"),
    ("KRAS", "KRAS proto-oncogene, GTPase", "12p12.1", "oncogene", "relays growth signals; activating mutations keep it switched on"),
    ("MYC", "MYC proto-oncogene", "8q24.21", "oncogene", "drives proliferation when overexpressed"),
    ("EGFR", "epidermal growth factor receptor", "7p11.2", "oncogene", "receptor tyrosine kinase that promotes growth when overactive"),
    ("BRAF", "B-Raf proto-oncogene", "7q34", "oncogene", "kinase whose V600E mutation drives melanoma growth"),
    ("CFTR", "CF transmembrane conductance regulator", "7q31.2", "ion channel", "moves chloride ions across epithelial membranes"),
    ("SCN1A", "sodium voltage-gated channel alpha subunit 1", "2q24.3", "ion channel", "conducts sodium ions in neurons"),
    ("KCNQ1", "potassium voltage-gated channel subfamily Q member 1", "11p15.5", "ion channel", "conducts potassium ions in heart muscle"),
    ("HBB", "hemoglobin subunit beta", "11p15.4", "transport protein", "carries oxygen in red blood cells"),
    ("INS", "insulin", "11p15.5", "hormone", "lowers blood glucose"),
    ("GAPDH", "glyceraldehyde-3-phosphate dehydrogenase", "12p13.31", "enzyme", "catalyses a step of glycolysis"),
    ("LCT", "lactase", "2q21.3", "enzyme", "digests lactose in the small intestine"),
    ("DMD", "dystrophin", "Xp21.2", "structural protein", "anchors the muscle cytoskeleton to the membrane"),
    ("ACTB", "actin beta", "7p22.1", "structural protein", "forms cytoskeletal microfilaments"),
    ("F8", "coagulation factor VIII", "Xq28", "clotting factor", "is needed for blood clotting"),
    ("APOE", "apolipoprotein E", "19q13.32", "transport protein", "carries cholesterol and other lipids"),
]
CATEGORY_DEF = {
    "tumor suppressor": "restrains cell growth or repairs DNA, and its loss promotes cancer",
    "oncogene": "promotes cell growth, and activating mutations drive cancer",
    "ion channel": "lets ions cross a membrane",
    "transport protein": "carries a molecule such as oxygen or lipids",
    "hormone": "is secreted to signal distant tissues",
    "enzyme": "catalyses a chemical reaction",
    "structural protein": "gives cells their shape or mechanical support",
    "clotting factor": "takes part in blood coagulation",
}


def chrom_of(band):
    return re.match(r"(\d+|X|Y)", band).group(1)


def bio_gene(rng, i):
    sym, name, band, cat, func = GENES[i % len(GENES)]
    chrom = chrom_of(band)
    entry = pick(rng, [
        "Gene: %s | Name: %s | Location: %s | Function: %s" % (sym, name, band, func),
        "%s (%s) maps to cytogenetic band %s; the protein %s." % (sym, name, band, func),
    ])
    opts = shuffled(rng, [cat] + [c for c in shuffled(rng, list(CATEGORY_DEF)) if c != cat][:2])
    defs = "; ".join("a %s %s" % (c, CATEGORY_DEF[c]) for c in opts)
    chk = c_number(int(chrom)) if chrom.isdigit() else c_regex(word_re(chrom), case=True)
    return [[
        stage("extraction", pick(rng, [
            "Extract the chromosome that %s is on from this database entry (the number or letter before p or q in the band): %s" % (sym, entry),
            "On which chromosome is %s? Read it from the band in this record: %s. Reply with the chromosome only." % (sym, entry),
        ]), chk, 12, ref="Chromosome %s." % chrom),
        stage("classification", "Is this chromosome an autosome or a sex chromosome? Chromosomes 1 to 22 are autosomes; X and Y are sex chromosomes. Chromosome: {prev}",
              c_choice(["autosome", "sex chromosome"], "autosome" if chrom.isdigit() else "sex chromosome"), 8),
    ], [
        stage("classification", pick(rng, [
            "Is %s best described as a %s? Its protein %s. Definitions: %s." % (sym, or_list(opts), func, defs),
            "Classify the gene %s (%s): %s? Function: the protein %s. Definitions: %s." % (sym, name, or_list(opts), func, defs),
        ]), c_choice(opts, cat), 12),
    ], [
        stage("formatting", json_prompt(rng, ["gene", "chromosome", "band", "function"], [sym, chrom, band, func]),
              c_json(["gene", "chromosome", "band", "function"]), 64),
        stage("summarization", "Write a one-sentence plain-language summary of this gene record: {prev}",
              c_contains(sym) if i % 2 else c_none(), 48),
    ]]


COMP = {"A": "T", "T": "A", "G": "C", "C": "G"}


def bio_dna(rng, i):
    n = 10 + (i * 3) % 11
    seq = "".join(pick(rng, "ACGT") for _ in range(n))
    comp = "".join(COMP[b] for b in seq)
    rc = comp[::-1]
    mrna = seq.replace("T", "U")
    gc = (seq.count("G") + seq.count("C")) / n * 100
    return [[
        stage("arithmetic", pick(rng, [
            "How long is this DNA sequence, in nucleotides? 5'-%s-3' %s" % (seq, num_only(rng)),
            "Count the bases in the oligo %s. %s" % (seq, num_only(rng)),
        ]), c_number(n), 8),
    ], [
        stage("arithmetic", "Compute the GC content (percentage of G and C bases) of %s. Round to one decimal." % seq,
              c_number(round(gc, 4), tol=0.5), 24),
    ], [
        stage("transformation", pick(rng, [
            "Write the complementary strand of 5'-%s-3' base by base (A pairs with T, C pairs with G), in the same left-to-right order." % seq,
            "Give the base-by-base complement of %s (A<->T, C<->G), keeping the order." % seq,
        ]), c_exact(comp) if i % 2 else c_contains(comp), 32),
    ], [
        stage("transformation", "Transcribe this DNA coding strand into mRNA by replacing every T with U: %s" % seq,
              c_contains(mrna), 32),
        stage("arithmetic", "Count the uracils (U) in this mRNA sequence: {prev} %s" % num_only(rng),
              c_number(mrna.count("U")), 8),
    ], [
        stage("reasoning", "Give the reverse complement of 5'-%s-3' (complement each base, A<->T and C<->G, then reverse the order)." % seq,
              c_contains(rc), 48),
    ]]


CODONS = {"AUG": "Met", "GCU": "Ala", "GGC": "Gly", "UUU": "Phe", "AAA": "Lys", "GAA": "Glu", "UGG": "Trp",
          "CCU": "Pro", "UCU": "Ser", "CAU": "His", "GAU": "Asp", "CGU": "Arg", "ACU": "Thr", "GUU": "Val"}
STOPS = ["UAA", "UAG", "UGA"]


def bio_translation(rng, i):
    k = 2 + i % 3
    body = [pick(rng, [c for c in CODONS if c != "AUG"]) for _ in range(k)]
    stop = pick(rng, STOPS)
    lead = "".join(pick(rng, "CG") for _ in range(1 + i % 4))
    mrna = lead + "AUG" + "".join(body) + stop
    pep = ["Met"] + [CODONS[c] for c in body]
    used = ["AUG"] + body
    table = ", ".join("%s=%s" % (c, CODONS[c]) for c in shuffled(rng, sorted(set(used)) + [pick(rng, list(CODONS))])) + ", " + "/".join(STOPS) + "=stop"
    sep = "[^A-Za-z]*"
    non_stop = [c for c in ["AUG", "GCU", "UUU", "GGC"] if c != "AUG"][:2]
    opts = shuffled(rng, [stop] + non_stop)
    return [[
        stage("extraction", "At which position (counting from 1) does the start codon AUG begin in the mRNA %s? %s" % (mrna, num_only(rng)),
              c_number(len(lead) + 1), 8),
    ], [
        stage("reasoning", pick(rng, [
            "Translate this mRNA into a peptide, starting at the first AUG and stopping at the stop codon. Use the codon table %s. Give three-letter amino acid codes separated by hyphens. mRNA: %s" % (table, mrna),
            "Using the codon table (%s), translate the open reading frame of %s from AUG to the stop codon; write the peptide as three-letter codes joined by hyphens." % (table, mrna),
        ]), c_regex(sep.join(pep)), 48, ref=" - ".join(pep) + " (stop)"),
        stage("arithmetic", "How many amino acid residues does this peptide contain? {prev} %s" % num_only(rng),
              c_number(len(pep)), 8),
    ], [
        stage("classification", "Which of these codons is a stop codon: %s? (The stop codons are UAA, UAG and UGA.)" % or_list(opts),
              c_choice(opts, stop), 8),
    ], [
        stage("formatting", json_prompt(rng, ["mrna", "peptide", "length"], [mrna, "-".join(pep), len(pep)]),
              c_json(["mrna", "peptide", "length"]), 64),
    ]]


TRAITS = [("pea seed colour", "Y", "yellow", "green"), ("flower colour", "P", "purple", "white"),
          ("seed shape", "R", "round", "wrinkled"), ("fur colour", "B", "black", "brown"),
          ("pod shape", "I", "inflated", "constricted"), ("plant height", "T", "tall", "dwarf"),
          ("eye colour in flies", "W", "red", "white"), ("coat length", "S", "short", "long")]
CROSSES = [("Aa", "Aa", 0.25), ("Aa", "aa", 0.5), ("AA", "aa", 0.0), ("aa", "aa", 1.0), ("AA", "Aa", 0.0)]


def bio_punnett(rng, i):
    trait, L, dom, rec = TRAITS[i % len(TRAITS)]
    g1, g2, frac = CROSSES[(i // 2) % len(CROSSES)]
    g1 = g1.replace("A", L).replace("a", L.lower())
    g2 = g2.replace("A", L).replace("a", L.lower())
    N = pick(rng, [40, 80, 100, 120, 200, 400])
    desc = lambda g: ("heterozygous %s" % dom) if g[0] != g[1] else ("homozygous %s" % (dom if g[0] == L else rec))
    groups = [[
        stage("extraction", pick(rng, [
            "Write the genotypes of both parents from this description, as two letters each: \"For %s, a %s plant (%s) is crossed with a %s plant (%s).\"" % (trait, desc(g1), g1, desc(g2), g2),
            "List the two parental genotypes in this cross: \"%s: parent 1 is %s (%s), parent 2 is %s (%s).\"" % (trait, g1, desc(g1), g2, desc(g2)),
        ]), c_contains([g1, g2], all_=True, case=True), 16),
    ], [
        stage("arithmetic", "In the cross %s x %s, where %s (%s) is dominant over %s (%s), what fraction of offspring are expected to be %s? Give a decimal." % (
            g1, g2, L, dom, L.lower(), rec, rec), c_number(frac, tol=0.01), 16),
        stage("conversion", "Express this fraction as a percentage: {prev} %s" % num_only(rng), c_number(frac * 100, tol=0.5), 12),
    ], [
        stage("reasoning", "A cross %s x %s (%s dominant, %s recessive) produces %d offspring. How many are expected to show the %s phenotype? %s" % (
            g1, g2, dom, rec, N, rec, num_only(rng)), c_number(N * frac, tol=0.5), 32),
    ], [
        stage("classification", "Is the genotype %s homozygous or heterozygous? (Two identical letters: homozygous; one upper and one lower case letter: heterozygous.)" % g1,
              c_choice(["homozygous", "heterozygous"], "heterozygous" if g1[0] != g1[1] else "homozygous"), 8),
    ]]
    return groups


HW = [(4, 100), (9, 100), (16, 100), (1, 100), (25, 100), (1, 2500), (36, 400), (49, 1000), (64, 400), (81, 900)]


def bio_hw(rng, i):
    k, N = HW[i % len(HW)]
    q2 = k / N
    q = math.sqrt(q2)
    p = 1 - q
    carriers = 2 * p * q
    trait = pick(rng, ["attached earlobes", "red hair", "the recessive coat colour", "albinism",
                       "cystic fibrosis", "white flowers", "short wings"])
    return [[
        stage("extraction", pick(rng, [
            "From this survey summary, give the frequency of the recessive phenotype as a decimal: \"%d of %d individuals screened showed %s.\"" % (k, N, trait),
            "Compute the proportion showing the recessive trait (%s) in this sample: %d affected out of %d screened. Give a decimal." % (trait, k, N),
        ]), c_number(q2, rel=0.005), 16),
        stage("arithmetic", "Under Hardy-Weinberg equilibrium, q^2 equals the recessive phenotype frequency. Compute q = sqrt(q^2) for q^2 = {prev}",
              c_number(q, tol=0.005), 16),
    ], [
        stage("arithmetic", "The recessive allele frequency is q = %s. Compute the dominant allele frequency p = 1 - q. %s" % (fmt(q), num_only(rng)),
              c_number(p, tol=0.001), 12),
    ], [
        stage("reasoning", "In a population in Hardy-Weinberg equilibrium, %d in %d people show the recessive trait %s. Estimate the carrier (heterozygote) frequency 2pq as a decimal." % (k, N, trait),
              c_number(carriers, rel=0.02), 64),
    ], [
        stage("formatting", json_prompt(rng, ["q_squared", "q", "p", "carrier_frequency"], [fmt(q2), fmt(q), fmt(p), fmt(carriers, 4)]),
              c_json(["q_squared", "q", "p", "carrier_frequency"]), 64),
    ]]


ORGANISMS = [("Escherichia coli", 20), ("Bacillus subtilis", 30), ("Vibrio natriegens", 10), ("Staphylococcus aureus", 30),
             ("Saccharomyces cerevisiae", 90), ("Pseudomonas aeruginosa", 40), ("Lactobacillus casei", 60)]
PHASES = [("lag", "Cell counts stay almost flat for the first two hours after inoculation while the cells adapt to the medium."),
          ("log", "Cell numbers double at a constant rate, giving a straight line on a log plot."),
          ("stationary", "After nutrients run out, the cell count stops rising and stays constant."),
          ("death", "Late in the culture, viable counts fall steadily day after day.")]


def bio_growth(rng, i):
    org, td = ORGANISMS[i % len(ORGANISMS)]
    nd = pick(rng, [3, 4, 5, 6, 8])
    t = td * nd
    N0 = pick(rng, [100, 500, 1000, 2000, 10000])
    od = pick(rng, [0.2, 0.4, 0.5, 0.8, 1.2])
    ph, desc = PHASES[i % len(PHASES)]
    return [[
        stage("arithmetic", pick(rng, [
            "A culture of %s doubles every %d minutes. How many doublings occur in %d minutes? %s" % (org, td, t, num_only(rng)),
            "%s has a doubling time of %d min. Compute the number of generations in %d min. %s" % (org, td, t, num_only(rng)),
        ]), c_number(nd), 12),
        stage("reasoning", "Starting from %d cells, how many cells are present after the number of doublings given here? Use N = N0 x 2^n. Doublings: {prev}" % N0,
              c_number(N0 * 2 ** nd, rel=0.01), 32),
    ], [
        stage("conversion", "Convert an OD600 reading of %s to cells per mL, using 1 OD600 unit = 8 x 10^8 cells/mL. %s" % (fmt(od), num_only(rng)),
              c_number(od * 8e8, rel=0.01), 24),
    ], [
        stage("classification", "%s Which growth phase is this: lag, log, stationary or death?" % desc,
              c_choice(["lag", "log", "stationary", "death"], ph), 8),
    ], [
        stage("formatting", json_prompt(rng, ["organism", "doubling_time_min", "initial_cells", "final_cells"], [org, td, N0, N0 * 2 ** nd]),
              c_json(["organism", "doubling_time_min", "initial_cells", "final_cells"]), 64),
    ]]


ORGANELLES = [("mitochondrion", "produces most of the cell's ATP by oxidative phosphorylation", True),
              ("ribosome", "translates mRNA into protein", False),
              ("nucleus", "stores the chromosomes and is where transcription happens", True),
              ("Golgi apparatus", "modifies, sorts and packages proteins for secretion", True),
              ("lysosome", "digests macromolecules with acid hydrolases", True),
              ("chloroplast", "carries out photosynthesis", True),
              ("peroxisome", "breaks down fatty acids and hydrogen peroxide", True),
              ("centrosome", "organises microtubules and the mitotic spindle", False),
              ("smooth endoplasmic reticulum", "synthesises lipids and detoxifies drugs", True)]


def bio_organelle(rng, i):
    name, func, membrane = ORGANELLES[i % len(ORGANELLES)]
    others = shuffled(rng, [o for o in ORGANELLES if o[0] != name])[:2]
    opts = shuffled(rng, [(name, func)] + [(o[0], o[1]) for o in others])
    legend = "; ".join("%s: %s" % o for o in opts)
    counts = [pick(rng, range(150, 260)) for _ in range(3)]
    counts[2] = counts[2] - (sum(counts) % 3)
    return [[
        stage("classification", pick(rng, [
            "Which organelle %s? Choose from: %s. Reference: %s." % (func, or_list(o[0] for o in opts), legend),
            "Name the organelle that %s, using this reference list: %s." % (func, legend),
        ]), c_choice([o[0] for o in opts], name), 12),
    ], [
        stage("classification", "Is the %s enclosed by a membrane? Reference: %s. Answer yes or no." % (
            name, "it is bounded by a lipid membrane" if membrane else "it is not surrounded by any membrane"), yes_no(membrane), 8),
    ], [
        stage("arithmetic", "From this microscopy note, what is the average number of mitochondria per cell? \"Cell 1: %d, cell 2: %d, cell 3: %d mitochondria.\" %s" % (
            counts[0], counts[1], counts[2], num_only(rng)), c_number(sum(counts) / 3, tol=0.01), 16),
    ], [
        stage("reasoning", "A mutation stops secretory proteins from leaving the endoplasmic reticulum. Which organelle will receive fewer of them next: the Golgi apparatus, the nucleus or the mitochondrion? (Secretory proteins travel from the ER to the Golgi apparatus.)",
              c_choice(["Golgi apparatus", "nucleus", "mitochondrion"], "Golgi apparatus"), 16),
    ], [
        stage("formatting", json_prompt(rng, ["organelle", "function", "membrane_bound"], [name, func, "true" if membrane else "false"]),
              c_json(["organelle", "function", "membrane_bound"]), 64),
        stage("summarization", "Rewrite this record as one sentence for a first-year biology glossary: {prev}",
              c_contains(name.split()[0]), 48),
    ]]


DISEASES = ["type 2 diabetes", "asthma", "psoriasis", "migraine", "hypertension", "rheumatoid arthritis", "eczema"]


def bio_abstract(rng, i):
    n1 = pick(rng, [40, 60, 80, 100, 120])
    n2 = pick(rng, [40, 60, 80, 100])
    r1 = int(n1 * pick(rng, [0.45, 0.5, 0.6, 0.65, 0.7]))
    r2 = int(n2 * pick(rng, [0.2, 0.3, 0.35, 0.4, 0.5]))
    p = pick(rng, [0.001, 0.004, 0.02, 0.03, 0.049, 0.07, 0.12, 0.3])
    dis = DISEASES[i % len(DISEASES)]
    drug = "compound %s-%d" % (pick(rng, ["AC", "XR", "BT", "LM"]), 3 + i)
    w = pick(rng, [8, 12, 16, 24])
    abstract = ("We enrolled %d adults with %s in a randomized trial of %s versus placebo. After %d weeks, %d of %d treated patients responded compared with %d of %d controls (p = %s)." % (
        n1 + n2, dis, drug, w, r1, n1, r2, n2, fmt(p)))
    return [[
        stage("extraction", pick(rng, [
            "Extract the total sample size from this abstract: %s %s" % (abstract, num_only(rng)),
            "How many participants were enrolled? Abstract: %s" % abstract,
        ]), c_number(n1 + n2), 8),
    ], [
        stage("arithmetic", "What percentage of treated patients responded in this trial? %s Round to one decimal." % abstract,
              c_number(r1 / n1 * 100, tol=0.1), 24),
    ], [
        stage("extraction", "Give the p-value reported in this abstract: %s" % abstract, c_number(p, rel=0.001), 12),
        stage("classification", "Is a result with this p-value statistically significant at alpha = 0.05 (significant when p < 0.05)? Answer yes or no. p-value: {prev}",
              yes_no(p < 0.05), 8),
    ], [
        stage("formatting", json_prompt(rng, ["n", "treated_responders", "control_responders", "p_value"], [n1 + n2, "%d/%d" % (r1, n1), "%d/%d" % (r2, n2), fmt(p)]),
              c_json(["n", "treated_responders", "control_responders", "p_value"]), 64),
        stage("summarization", "Summarize the trial outcome in one sentence for a lay audience, based on this record: {prev}",
              c_none(), 64),
    ]]


AMINO = [("A", "Ala", "alanine", "hydrophobic"), ("V", "Val", "valine", "hydrophobic"), ("L", "Leu", "leucine", "hydrophobic"),
         ("I", "Ile", "isoleucine", "hydrophobic"), ("M", "Met", "methionine", "hydrophobic"), ("F", "Phe", "phenylalanine", "hydrophobic"),
         ("W", "Trp", "tryptophan", "hydrophobic"), ("S", "Ser", "serine", "hydrophilic"), ("T", "Thr", "threonine", "hydrophilic"),
         ("N", "Asn", "asparagine", "hydrophilic"), ("Q", "Gln", "glutamine", "hydrophilic"), ("D", "Asp", "aspartate", "hydrophilic"),
         ("E", "Glu", "glutamate", "hydrophilic"), ("K", "Lys", "lysine", "hydrophilic"), ("R", "Arg", "arginine", "hydrophilic")]


def bio_protein(rng, i):
    n = 8 + (i * 5) % 15
    seq = "".join(pick(rng, [a[0] for a in AMINO]) for _ in range(n))
    aa = AMINO[i % len(AMINO)]
    legend = ", ".join("%s %s" % (a[0], a[1]) for a in shuffled(rng, AMINO)[:6] if a[0] != aa[0]) + ", %s %s" % (aa[0], aa[1])
    hyd = ", ".join(a[0] for a in AMINO if a[3] == "hydrophobic")
    phil = ", ".join(a[0] for a in AMINO if a[3] == "hydrophilic")
    return [[
        stage("arithmetic", pick(rng, [
            "How many residues are in the peptide %s (one-letter code)? %s" % (seq, num_only(rng)),
            "Count the amino acids in the sequence %s. %s" % (seq, num_only(rng)),
        ]), c_number(n), 8),
        stage("arithmetic", "Estimate the molecular weight in daltons of a peptide with this many residues, using an average of 110 Da per residue: {prev}",
              c_number(n * 110, rel=0.01), 16),
        stage("conversion", "Convert this mass from daltons to kilodaltons (1 kDa = 1000 Da): {prev}", c_number(n * 0.11, rel=0.01), 16),
    ], [
        stage("classification", "Classify the amino acid %s (%s) as hydrophobic or hydrophilic. Hydrophobic: %s. Hydrophilic: %s." % (aa[2], aa[0], hyd, phil),
              c_choice(["hydrophobic", "hydrophilic"], aa[3]), 8),
    ], [
        stage("lookup", "Write the three-letter code of the amino acid with one-letter code %s. Code table: %s. Reply with the code only." % (aa[0], legend),
              c_exact(aa[1]) if i % 2 else c_regex(word_re(aa[1])), 8, ref=aa[1] + "."),
    ], [
        stage("formatting", json_prompt(rng, ["sequence", "length", "estimated_mass_da"], [seq, n, n * 110]),
              c_json(["sequence", "length", "estimated_mass_da"]), 64),
    ]]


def bio_counting(rng, i):
    c = [pick(rng, range(20, 80)) for _ in range(4)]
    c[3] -= sum(c) % 4
    avg = sum(c) / 4
    d = pick(rng, [2, 5, 10])
    k = pick(rng, [2, 3, 4, 5, 6])
    live, dead = pick(rng, [(180, 12), (150, 30), (95, 5), (240, 60), (188, 12), (170, 25)])
    via = live / (live + dead) * 100
    return [[
        stage("arithmetic", "Average these four hemocytometer square counts: %s. %s" % (", ".join(str(x) for x in c), num_only(rng)),
              c_number(avg, tol=0.01), 12),
        stage("arithmetic", "Cells per mL = average count x dilution factor x 10^4. Compute it for a dilution factor of %d and this average count: {prev}" % d,
              c_number(avg * d * 1e4, rel=0.01), 24),
    ], [
        stage("arithmetic", "A 1:10 dilution is repeated %d times in series. What is the total dilution factor? %s" % (k, num_only(rng)),
              c_number(10 ** k), 16),
    ], [
        stage("reasoning", "Trypan blue staining gives %d live and %d dead cells. Is the viability (live / total) above 90%%? Answer yes or no." % (live, dead),
              yes_no(via > 90), 16),
    ], [
        stage("formatting", json_prompt(rng, ["counts", "average", "dilution_factor", "cells_per_ml"], ["/".join(str(x) for x in c), fmt(avg), d, fmt(avg * d * 1e4)]),
              c_json(["counts", "average", "dilution_factor", "cells_per_ml"]), 64),
    ]]


def bio_enzyme(rng, i):
    Vmax = pick(rng, [10, 20, 50, 80, 120])
    Km = pick(rng, [2, 5, 10, 25, 50])
    S = pick(rng, [1, 5, 10, 20, 50, 100])
    v = Vmax * S / (Km + S)
    enz = pick(rng, ["hexokinase", "lactate dehydrogenase", "beta-galactosidase", "trypsin", "alkaline phosphatase", "catalase"])
    note = "%s assay: Vmax = %d umol/min, Km = %d uM, substrate tested at %d uM." % (enz, Vmax, Km, S)
    inh = [("competitive", "The inhibitor raises the apparent Km but leaves Vmax unchanged."),
           ("uncompetitive", "The inhibitor lowers both the apparent Km and Vmax by the same factor.")][i % 2]
    return [[
        stage("extraction", pick(rng, [
            "Extract Km in uM from this assay summary: \"%s\" %s" % (note, num_only(rng)),
            "What Michaelis constant (uM) is reported here? %s" % note,
        ]), c_number(Km), 8),
        stage("reasoning", "At what substrate concentration (uM) does the reaction run at half of Vmax, if Km in uM is the value below? (By definition v = Vmax/2 when [S] = Km.) {prev}",
              c_number(Km), 16),
    ], [
        stage("arithmetic", "Compute the reaction velocity with the Michaelis-Menten equation $v = V_{max}[S]/(K_m + [S])$ for Vmax = %d umol/min, Km = %d uM and [S] = %d uM. Round to two decimals." % (Vmax, Km, S),
              c_number(v, rel=0.01), 32),
    ], [
        stage("classification", "%s Is this competitive or uncompetitive inhibition? (competitive: Km up, Vmax unchanged; uncompetitive: Km and Vmax both down)" % inh[1],
              c_choice(["competitive", "uncompetitive"], inh[0]), 8),
    ], [
        stage("formatting", json_prompt(rng, ["enzyme", "vmax", "km", "substrate_uM"], [enz, Vmax, Km, S]),
              c_json(["enzyme", "vmax", "km", "substrate_uM"]), 64),
    ]]


BIO_TEMPLATES = [bio_gene, bio_dna, bio_translation, bio_punnett, bio_hw, bio_growth, bio_organelle, bio_abstract,
                 bio_protein, bio_counting, bio_enzyme]


# ================================================================== assembly

DOMAINS = [("cs", "cs", CS_TEMPLATES), ("physics", "phys", PHYS_TEMPLATES), ("chemistry", "chem", CHEM_TEMPLATES),
           ("biology", "bio", BIO_TEMPLATES)]


def choose_groups(rng, groups):
    """An ordered subset of groups with 3..6 stages in all, aiming at a random size."""
    target = pick(rng, [3, 4, 4, 5, 5, 6])
    subsets = []
    for mask in range(1, 1 << len(groups)):
        sel = [g for k, g in enumerate(groups) if mask >> k & 1]
        n = sum(len(g) for g in sel)
        if 3 <= n <= 6:
            subsets.append((abs(n - target), mask, sel))
    assert subsets, "template yields no 3-6 stage workflow"
    best = min(s[0] for s in subsets)
    cands = [s for s in subsets if s[0] == best]
    return pick(rng, cands)[2]


def build():
    out = {}
    for domain, prefix, templates in DOMAINS:
        wfs = []
        seen_prompts = set()
        for i in range(PER_DOMAIN):
            rng = random.Random("%d/%s/%d" % (SEED, domain, i))
            tmpl = templates[i % len(templates)]
            inst = i // len(templates)
            groups = tmpl(rng, inst * 7 + i)
            sel = choose_groups(rng, groups)
            stages = [s for g in sel for s in g]
            wid = "%s-%03d" % (prefix, i + 1)
            lines = []
            for k, s in enumerate(stages, 1):
                assert s["check"] is not None, (wid, k)
                assert not (k == 1 and "{prev}" in s["prompt"]), wid
                line = {"workflow": wid, "domain": domain, "stage": k, "kind": s["kind"],
                        "prompt": s["prompt"], "max_tokens": s["max_tokens"], "check": s["check"]}
                if "_ref" in s:
                    line["_ref"] = s["_ref"]
                lines.append(line)
            key = "\n".join(l["prompt"] for l in lines)
            assert key not in seen_prompts, "duplicate workflow %s" % wid
            seen_prompts.add(key)
            wfs.append((wid, lines, tmpl.__name__))
        out[domain] = wfs
    return out


def split(out):
    parts = {"train": [], "dev": [], "test": []}
    for domain, wfs in out.items():
        # stratified by domain and, within it, spread over templates
        rng = random.Random("%d/split/%s" % (SEED, domain))
        by_t = {}
        for w in wfs:
            by_t.setdefault(w[2], []).append(w)
        order = []
        for t in sorted(by_t):
            order += shuffled(rng, by_t[t])
        n = len(order)
        # deal in a 3:1:1 pattern so each template lands in all three splits
        pattern = ["train", "train", "dev", "train", "test"]
        for k, w in enumerate(order):
            parts[pattern[k % 5]].append(w)
    for name in parts:
        parts[name].sort(key=lambda w: (w[0].split("-")[0], int(w[0].split("-")[1])))
    return parts


def self_check(parts):
    """Every regex check must accept its stage's reference answer (POSIX
    classes mapped to Python's); the C test checks the other types."""
    for name, wfs in parts.items():
        for wid, lines, _ in wfs:
            for l in lines:
                c = l["check"]
                if c["type"] == "regex":
                    assert "_ref" in l, (wid, l["stage"], "regex stage without a reference answer")
                    pat = re.compile(c["pattern"].replace("[:space:]", r"\s"), 0 if c.get("case") else re.I)
                    assert pat.search(l["_ref"].strip()), (wid, l["stage"], c["pattern"], l["_ref"])
                assert 1 <= l["max_tokens"] <= 512


def stats(parts):
    from collections import Counter
    tot = Counter()
    for name, wfs in parts.items():
        dom = Counter(w[1][0]["domain"] for w in wfs)
        st = sum(len(w[1]) for w in wfs)
        print("%-5s workflows %3d stages %4d  %s" % (name, len(wfs), st, dict(sorted(dom.items()))))
        for w in wfs:
            for l in w[1]:
                tot["kind:" + l["kind"]] += 1
                tot["check:" + l["check"]["type"]] += 1
                tot["prev"] += "{prev}" in l["prompt"]
                tot["stages"] += 1
                tot["len:%d" % len(w[1])] += 1.0 / len(w[1])
                tot["max_tokens"] += l["max_tokens"]
    for k in sorted(tot):
        print("  %-28s %s" % (k, fmt(float(tot[k]), 4)))


def main():
    out = build()
    parts = split(out)
    self_check(parts)
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, wfs in parts.items():
        with open(os.path.join(OUT_DIR, name + ".jsonl"), "w", encoding="utf-8") as f:
            for _, lines, _ in wfs:
                for l in lines:
                    l = {k: v for k, v in l.items() if k != "_ref"}
                    f.write(json.dumps(l, ensure_ascii=False) + "\n")
    if "--stats" in sys.argv:
        stats(parts)


if __name__ == "__main__":
    main()
