#!/usr/bin/env python3
"""Checks a variants directory (made by `agentcompress quantize`) against the
reference tools:

  * every variant file is read with the `gguf` Python package's GGUFReader:
    tensor count, types and the metadata the manifest describes; a variant
    holding q2_0 tensors (our type id 100) is expected to be rejected;
  * every variant whose manifest entry says llama_cpp_compatible is loaded
    in llama.cpp (llama-cpp-python) and prints a short greedy continuation,
    with the base model's beside it; with --engine, our CLI's greedy
    continuation of the same file is printed too.

    scripts/check_variants_llamacpp.py VARIANTS_DIR [--prompt TEXT] [-n N]
        [--engine build/agentcompress]

Exits non-zero if a file that should load does not.
"""
import argparse
import json
import os
import subprocess
import sys


def check_gguf(path, entry):
    from gguf import GGUFReader

    try:
        r = GGUFReader(path)
    except (ValueError, KeyError) as e:
        return not entry.get("llama_cpp_compatible", True), f"gguf reader rejects it ({type(e).__name__}: {e})"
    types = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    field = r.fields.get("agentcompress.variant")
    name = bytes(field.parts[field.data[0]]).decode() if field else None
    ok = name == entry["name"] and entry.get("llama_cpp_compatible", False)
    return ok, f"gguf reader: {len(r.tensors)} tensors {types}, agentcompress.variant={name!r}"


def llama_greedy(path, prompt, n):
    from llama_cpp import Llama

    llm = Llama(model_path=path, verbose=False, n_threads=2, n_ctx=256)
    ids = []
    for t in llm.generate(llm.tokenize(prompt.encode()), temp=0.0):
        ids.append(t)
        if len(ids) == n:
            break
    return ids, llm.detokenize(ids).decode("utf-8", "replace")


def engine_greedy(cli, path, prompt, n):
    out = subprocess.run([cli, "generate", "-m", path, "-p", prompt, "-n", str(n), "--temp", "0", "-t", "2"],
                         capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else f"(failed: {out.stderr.strip()})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--prompt", default="The capital of France is")
    ap.add_argument("-n", type=int, default=12)
    ap.add_argument("--engine", help="path of agentcompress, to print its continuation too")
    a = ap.parse_args()
    with open(os.path.join(a.dir, "manifest.json")) as f:
        man = json.load(f)
    failures = 0
    rows = [("base", man["base"], {"name": "base", "llama_cpp_compatible": True})]
    rows += [(v["name"], os.path.join(a.dir, v["file"]), v) for v in man["variants"]]
    for name, path, entry in rows:
        print(f"== {name}: {path}")
        if name != "base":
            ok, msg = check_gguf(path, entry)
            print(f"   {msg}")
            failures += not ok
        if not entry.get("llama_cpp_compatible"):
            print("   llama.cpp: skipped (holds q2_0 tensors, a type llama.cpp does not have)")
        else:
            try:
                ids, text = llama_greedy(path, a.prompt, a.n)
                print(f"   llama.cpp greedy: {text!r}\n   ids: {ids}")
            except Exception as e:  # a load failure is what this script reports
                print(f"   llama.cpp: FAILED to load/run: {e}")
                failures += 1
        if a.engine:
            print(f"   agentcompress greedy: {engine_greedy(a.engine, path, a.prompt, a.n)!r}")
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
