#!/usr/bin/env python3
"""Measurement half of bench/bench_llamacpp.sh (run that script; it builds what this needs).

For every GGUF (the shipped base model, then bench/out/models/<stem>.{Q8_0,Q4_0,Q2_K,F16}.gguf)
and every thread count, side by side, interleaved file by file:
  * llama.cpp: llama-bench -p N -n 0 (prefill tok/s) and -p 0 -n 64 -d N (decode tok/s with the
    N prompt tokens already in the context), -r REPS, best repetition; N = --ctx (128 or 1024);
  * ours: build/agentcompress generate -m FILE -p <N-token prompt> -n 64 -t T --ignore-eos --temp 0
    (greedy: llama-bench samples nothing either),
    REPS runs, best prefill and best decode tok/s parsed from its stderr lines
      prefill: <N> tokens in <S> s (<R> tok/s)
      decode: <N> tokens in <S> s (<R> tok/s)
    ("n/a" when the binary is missing or fails on that file);
  * bytes of weights read per decoded token (from the GGUF tensor directory: every tensor once,
    plus one row of token_embd for the lookup; with tied embeddings the output head reads the
    whole token_embd) and the roofline tok/s = read bandwidth / bytes per token, the bandwidth
    (bench/out/membw, same thread count) being the median over probes taken at the start and
    after every file (the better page mode's median of 10 repetitions in each probe): this VM's
    bandwidth drifts by +-20% over seconds, so one probe is not enough.
Prints a table and writes bench/out/bench_llamacpp.json (bench_llamacpp_ctx1024.json with --ctx 1024).
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# prompts of exactly 128 and 1024 SmolLM2 tokens (as `generate -p "$(cat FILE)"` passes them)
PROMPT_FILES = {n: os.path.join(ROOT, "bench", f"prompt_{n}.txt") for n in (128, 1024)}
RE_PREFILL = re.compile(r"^prefill:\s*(\d+)\s+tokens in\s+([0-9.eE+-]+)\s*s\s*\(([0-9.eE+-]+)\s*tok/s\)", re.M)
RE_DECODE = re.compile(r"^decode:\s*(\d+)\s+tokens in\s+([0-9.eE+-]+)\s*s\s*\(([0-9.eE+-]+)\s*tok/s\)", re.M)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cpu_busy(interval=0.5):
    """Fraction of all CPUs busy over `interval` seconds (this process sleeps meanwhile)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        t0, i0 = snap()
    except OSError:
        return 0.0
    time.sleep(interval)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


QUIET = {"waits": 0, "waited_s": 0.0, "not_quiet": []}


def wait_quiet(what, max_wait=None, thresh=0.15):
    """Waits (up to QUIET_WAIT s) until other processes use < 15% of the CPUs, so that two
    measurements side by side see the same machine; records when it gave up."""
    max_wait = float(os.environ.get("QUIET_WAIT", "60")) if max_wait is None else max_wait
    t0 = time.time()
    busy = cpu_busy()
    while busy > thresh and time.time() - t0 < max_wait:
        time.sleep(1.0)
        busy = cpu_busy()
    waited = time.time() - t0
    if waited > 1.0:
        QUIET["waits"] += 1
        QUIET["waited_s"] += waited
    if busy > thresh:
        QUIET["not_quiet"].append({"what": what, "busy": round(busy, 3)})
        log(f"  machine still {100 * busy:.0f}% busy after {waited:.0f} s: measuring {what} anyway")
    return busy


def gguf_info(path):
    """Tensor-type histogram and bytes of weights read per decoded token."""
    import gguf
    r = gguf.GGUFReader(path)
    hist, total, emb, out = {}, 0, None, None
    for t in r.tensors:
        tn = t.tensor_type.name
        hist.setdefault(tn, [0, 0])
        hist[tn][0] += 1
        hist[tn][1] += int(t.n_bytes)
        total += int(t.n_bytes)
        if t.name == "token_embd.weight":
            emb = t
        if t.name == "output.weight":
            out = t
    tied = out is None
    emb_bytes = int(emb.n_bytes)
    emb_row = emb_bytes // int(emb.shape[1])
    # every tensor once (token_embd included, as the output head when tied) + one embedding row;
    # untied: token_embd contributes only the looked-up row
    per_tok = total + emb_row if tied else total - emb_bytes + emb_row
    by_name = {}
    for t in r.tensors:
        key = re.sub(r"^blk\.\d+\.", "blk.*.", t.name)
        by_name.setdefault(key, set()).add(t.tensor_type.name)
    ft = r.fields.get("general.file_type")
    return {
        "file_bytes": os.path.getsize(path),
        "tensor_bytes": total,
        "tied_embeddings": tied,
        "bytes_per_token": per_tok,
        "general.file_type": int(ft.contents()) if ft is not None else None,
        "tensor_types": {k: {"count": v[0], "bytes": v[1]} for k, v in sorted(hist.items())},
        "types_by_tensor": {k: sorted(v) for k, v in sorted(by_name.items())},
    }


def membw(exe, threads):
    """Read bandwidth per thread count, 4 KiB pages and transparent huge pages (10 repetitions
    each). The roofline uses the better page mode's median: what an engine could sustain with its
    weights in huge pages (the best single repetition is recorded too, but on this VM it
    occasionally spikes far above what any longer run sees)."""
    bw = {t: {} for t in threads}
    for huge in (False, True):
        args = [exe, "-m", "1024", "-r", "10"] + (["-H"] if huge else [])
        for t in threads:
            args += ["-t", str(t)]
        wait_quiet("membw")
        res = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise RuntimeError(f"membw failed: {res.stderr.strip()}")
        for line in res.stdout.splitlines():
            m = re.search(r"threads=(\d+) bytes=(\d+) hugepages=(\d) best_gbps=([0-9.]+) "
                          r"median_gbps=([0-9.]+)", line)
            if m and int(m.group(1)) in bw:
                key = "hugepages" if huge else "4k_pages"
                bw[int(m.group(1))][key] = {"best_gbps": float(m.group(4)),
                                            "median_gbps": float(m.group(5)),
                                            "buffer_bytes": int(m.group(2))}
    for t in threads:
        modes = [v for v in bw[t].values() if isinstance(v, dict)]
        bw[t]["best_gbps"] = max(v["best_gbps"] for v in modes)
        bw[t]["roofline_gbps"] = max(v["median_gbps"] for v in modes)
    return bw


def llama_bench(bin_dir, path, threads, reps, n_prompt):
    """Prefill of an n_prompt-token prompt (pp at depth 0), and 64 tokens decoded after n_prompt
    tokens already in the context (tg at depth n_prompt): what `generate` does with the prompt."""
    exe = os.path.join(bin_dir, "llama-bench")
    out, cmds = {}, []
    for test in (["-p", str(n_prompt), "-n", "0"], ["-p", "0", "-n", "64", "-d", str(n_prompt)]):
        args = [exe, "-m", path, "-t", str(threads)] + test + ["-r", str(reps), "-o", "json"]
        wait_quiet(f"llama-bench {os.path.basename(path)} t={threads}")
        res = subprocess.run(args, capture_output=True, text=True, timeout=1800)
        if res.returncode != 0:
            raise RuntimeError(f"llama-bench failed on {path}: {res.stderr.strip()[-500:]}")
        cmds.append(" ".join(args[1:]))
        for rec in json.loads(res.stdout):
            samples = rec.get("samples_ts") or [rec["avg_ts"]]
            key = "pp" if rec["n_prompt"] > 0 and rec["n_gen"] == 0 else "tg"
            out[key] = {"best_ts": max(samples), "avg_ts": rec["avg_ts"], "stddev_ts": rec["stddev_ts"],
                        "samples_ts": samples, "n_prompt": rec["n_prompt"], "n_gen": rec["n_gen"],
                        "n_depth": rec.get("n_depth", 0)}
            for k in ("build_commit", "build_number", "cpu_info", "backends", "flash_attn", "type_k", "n_batch",
                      "n_ubatch"):
                out[k] = rec.get(k)
    out["cmd"] = " ; ".join(cmds)
    return out


def ours(exe, path, threads, reps, prompt_file):
    prompt = open(prompt_file, encoding="utf-8").read().strip()
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return {"error": f"{rel(exe)} not built (run make)"}
    runs, err = [], None
    args = [exe, "generate", "-m", path, "-p", prompt, "-n", "64", "-t", str(threads), "--ignore-eos", "--temp", "0"]
    for _ in range(reps):
        wait_quiet(f"ours {os.path.basename(path)} t={threads}")
        try:
            res = subprocess.run(args, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            err = "timed out after 600 s"
            break
        mp, md = RE_PREFILL.search(res.stderr), RE_DECODE.search(res.stderr)
        if res.returncode != 0 or not mp or not md:
            lines = [l for l in res.stderr.strip().splitlines() if l.strip()]
            err = f"exit {res.returncode}: {lines[-1] if lines else 'no timing lines on stderr'}"
            break
        runs.append({"prefill_tokens": int(mp.group(1)), "prefill_s": float(mp.group(2)),
                     "prefill_ts": float(mp.group(3)), "decode_tokens": int(md.group(1)),
                     "decode_s": float(md.group(2)), "decode_ts": float(md.group(3))})
    if not runs:
        return {"error": err or "no runs"}
    return {"pp": {"best_ts": max(r["prefill_ts"] for r in runs), "n_prompt": runs[0]["prefill_tokens"]},
            "tg": {"best_ts": max(r["decode_ts"] for r in runs), "n_gen": runs[0]["decode_tokens"]},
            "runs": runs, "cmd": " ".join(os.path.relpath(a, ROOT) if a in (exe, path) else
                                          (a if a != prompt else f"<{rel(prompt_file)}>") for a in args[1:])}


def rel(p):
    r = os.path.relpath(p, ROOT)
    return p if r.startswith("..") else r


def fmt(x, spec="{:.1f}"):
    return "n/a" if x is None else spec.format(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--ours", default=os.environ.get("OURS", os.path.join(ROOT, "build", "agentcompress")))
    ap.add_argument("--threads", default=os.environ.get("THREADS", "1 2"))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("REPS", "3")))
    ap.add_argument("--ctx", type=int, choices=sorted(PROMPT_FILES), default=int(os.environ.get("CTX", "128")),
                    help="prompt length in tokens; decode runs after it (llama-bench -d)")
    ap.add_argument("--types", default="Q4_1,Q8_0,Q4_0,Q2_K,F16",
                    help="first = the model as shipped, the others from bench/out/models/")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.replace(",", " ").split()]
    prompt_file = PROMPT_FILES[args.ctx]
    prompt = open(prompt_file, encoding="utf-8").read().strip()

    base = os.path.basename(args.model)[: -len(".gguf")]
    stem = base.rsplit(".", 1)[0]
    files = []
    for i, t in enumerate(args.types.split(",")):
        p = args.model if i == 0 else os.path.join(args.out, "models", f"{stem}.{t}.gguf")
        if os.path.isfile(p):
            files.append((t, p))
        else:
            log(f"{p} missing, skipped")

    src = {}
    sj = os.path.join(args.out, "llama.cpp", "source.json")
    if os.path.isfile(sj):
        src = json.load(open(sj))

    load0 = os.getloadavg()  # noqa
    if load0[0] > 0.5:
        log(f"warning: load average {load0[0]:.2f} before starting: other work on the machine "
            f"will lower (and add noise to) every number")
    exe_bw = os.path.join(args.out, "membw")
    probes = []

    def probe(when):
        b = membw(exe_bw, threads)
        probes.append({"when": when, "per_threads": {str(t): b[t] for t in threads}})
        log("  bandwidth " + ", ".join(f"{t}t {b[t]['roofline_gbps']:.1f} GB/s (4k "
                                       f"{b[t]['4k_pages']['median_gbps']:.1f}, huge "
                                       f"{b[t]['hugepages']['median_gbps']:.1f})" for t in threads))

    log("memory bandwidth probe (1 GiB buffer; repeated after every file: this VM's bandwidth drifts)")
    probe("start")

    infos, rows = {}, []
    for name, path in files:
        infos[name] = gguf_info(path)
        for t in threads:
            log(f"{name} t={t}: llama-bench")
            lb = llama_bench(args.llama_bin, path, t, args.reps, args.ctx)
            log(f"{name} t={t}: ours")
            ou = ours(args.ours, path, t, args.reps, prompt_file)
            if "error" in ou:
                log(f"  ours: {ou['error']}")
            l_pp, l_tg = lb["pp"]["best_ts"], lb["tg"]["best_ts"]
            o_pp = ou["pp"]["best_ts"] if "pp" in ou else None
            o_tg = ou["tg"]["best_ts"] if "tg" in ou else None
            rows.append({
                "file": name, "path": os.path.relpath(path, ROOT), "threads": t,
                "llama_pp_ts": l_pp, "llama_tg_ts": l_tg,
                "ours_pp_ts": o_pp, "ours_tg_ts": o_tg,
                "ratio_pp": o_pp / l_pp if o_pp else None,
                "ratio_tg": o_tg / l_tg if o_tg else None,
                "bytes_per_token": infos[name]["bytes_per_token"],
                "llama": lb, "ours": ou,
            })
        probe(f"after {name}")

    # roofline bandwidth: per probe the better page mode's median of 10 repetitions; across the
    # probes their median (the spread is recorded: min / max)
    bw = {}
    for t in threads:
        vals = sorted(p["per_threads"][str(t)]["roofline_gbps"] for p in probes)
        bw[t] = {"roofline_gbps": vals[len(vals) // 2] if len(vals) % 2 else
                 0.5 * (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]),
                 "min_gbps": vals[0], "max_gbps": vals[-1], "n_probes": len(vals)}
    for r in rows:
        t = r["threads"]
        roof = bw[t]["roofline_gbps"] * 1e9 / r["bytes_per_token"]
        r["bandwidth_gbps"] = bw[t]["roofline_gbps"]
        r["roofline_tg_ts"] = roof
        r["llama_tg_pct_roofline"] = 100.0 * r["llama_tg_ts"] / roof
        r["ours_tg_pct_roofline"] = 100.0 * r["ours_tg_ts"] / roof if r["ours_tg_ts"] else None

    hdr = (f"{'file':6s} {'thr':>3s} | {'llama pp':>9s} {'llama tg':>9s} | {'ours pp':>9s} {'ours tg':>9s} | "
           f"{'pp o/l':>6s} {'tg o/l':>6s} | {'MB/tok':>7s} {'roof tg':>8s} {'llama%':>6s} {'ours%':>6s}")
    print()
    print(f"llama.cpp {src.get('llama_cpp_commit', '?')} (llama-cpp-python {src.get('llama_cpp_python', '?')}) "
          f"vs {rel(args.ours)}; prefill = {len(prompt.split())}-word / {args.ctx}-token prompt, "
          f"decode = 64 tokens after it; best of {args.reps}; tok/s")
    print(f"read bandwidth for the roofline (median of {len(probes)} probes; range): " + ", ".join(
        f"{t} thread(s) {bw[t]['roofline_gbps']:.1f} GB/s ({bw[t]['min_gbps']:.1f}-{bw[t]['max_gbps']:.1f})"
        for t in threads))
    if QUIET["not_quiet"]:
        print(f"warning: {len(QUIET['not_quiet'])} measurement(s) ran while other processes kept the "
              f"machine busy: {', '.join(q['what'] for q in QUIET['not_quiet'])}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['file']:6s} {r['threads']:>3d} | {r['llama_pp_ts']:9.1f} {r['llama_tg_ts']:9.1f} | "
              f"{fmt(r['ours_pp_ts']):>9s} {fmt(r['ours_tg_ts']):>9s} | "
              f"{fmt(r['ratio_pp'], '{:.2f}'):>6s} {fmt(r['ratio_tg'], '{:.2f}'):>6s} | "
              f"{r['bytes_per_token'] / 1e6:7.1f} {r['roofline_tg_ts']:8.1f} "
              f"{r['llama_tg_pct_roofline']:5.0f}% {fmt(r['ours_tg_pct_roofline'], '{:.0f}%'):>6s}")
    print()
    for name, info in infos.items():
        types = ", ".join(f"{k}×{v['count']}" for k, v in info["tensor_types"].items())
        print(f"{name:6s} {info['file_bytes'] / 1e6:6.1f} MB file, {info['bytes_per_token'] / 1e6:6.1f} MB/token; tensors: {types}")
    errs = {(r["file"], r["threads"]): r["ours"]["error"] for r in rows if "error" in r["ours"]}
    if errs:
        print()
        for (f, t), e in errs.items():
            print(f"ours n/a on {f} t={t}: {e}")

    doc = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "loadavg_start": load0, "loadavg_end": os.getloadavg(),
                 "cpu_info": rows[0]["llama"].get("cpu_info") if rows else None},
        "llama_cpp": dict(src, build_commit_reported=rows[0]["llama"].get("build_commit") if rows else None),
        "ours_binary": rel(args.ours),
        "prompt_file": os.path.relpath(prompt_file, ROOT), "prompt_tokens": args.ctx,
        "n_decode": 64, "reps": args.reps, "threads": threads,
        "bandwidth": {str(t): bw[t] for t in threads},
        "bandwidth_probes": probes,
        "quiet": QUIET,
        "bytes_per_token_definition": "sum of the bytes of every tensor in the GGUF once plus one "
                                      "token_embd row (tied embeddings: the output head reads all of "
                                      "token_embd); KV cache and activations not counted",
        "roofline_definition": "read bandwidth at the same thread count (median of 10 repetitions, "
                               "the better of 4 KiB and huge pages) / bytes_per_token",
        "files": infos,
        "results": rows,
    }
    out_json = os.path.join(args.out, "bench_llamacpp.json" if args.ctx == 128 else f"bench_llamacpp_ctx{args.ctx}.json")
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)
    log(f"wrote {os.path.relpath(out_json, ROOT)}")


if __name__ == "__main__":
    main()
