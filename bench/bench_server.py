#!/usr/bin/env python3
"""Load on an OpenAI-compatible server: N concurrent clients for a fixed time.

usage: bench_server.py URL [--clients N] [--seconds S] [--max-tokens T] [--stream-every K] [--api-key KEY]

Each client loops: POST /v1/chat/completions (greedy, a prompt from a small
fixed set; every K-th request streamed), until the time is up. Prints
requests/s, generated tokens/s (streamed answers count their text chunks),
p50/p90/p99 latency, failures (any non-200,
bad JSON, a stream without [DONE]), then the agentcompress_* lines of
/metrics. Standard library only. Exit status 1 when any request failed.
"""
import argparse
import json
import threading
import time
import urllib.error
import urllib.request

PROMPTS = [
    "Write water as JSON with keys name and formula.",
    "What is 12 times 7?",
    "Name the largest planet in the solar system.",
    "Summarize in one sentence: the mitochondria produce most of the cell's energy.",
    "Classify the sentiment of 'I love this phone': positive or negative?",
]


def call(url, key, body, timeout):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": "Bearer " + key} if key else {})})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def client(args, idx, deadline, out, lock):
    n = 0
    while time.monotonic() < deadline:
        stream = args.stream_every > 0 and n % args.stream_every == args.stream_every - 1
        body = {"messages": [{"role": "user", "content": PROMPTS[(idx + n) % len(PROMPTS)]}],
                "temperature": 0, "max_tokens": args.max_tokens, "stream": stream}
        t0 = time.monotonic()
        ok, tokens = False, 0
        try:
            status, data = call(args.url + "/v1/chat/completions", args.api_key, body, args.timeout)
            if status == 200 and stream:
                text = data.decode()
                ok = text.rstrip().endswith("data: [DONE]")
                tokens = sum(1 for line in text.splitlines() if '"content"' in line) - 1
            elif status == 200:
                tokens = json.loads(data)["usage"]["completion_tokens"]
                ok = True
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            ok = False
            with lock:
                out["errors"].append(repr(e)[:120])
        dt = time.monotonic() - t0
        with lock:
            out["lat"].append(dt)
            out["tokens"] += max(tokens, 0)
            out["fail"] += 0 if ok else 1
        n += 1


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--stream-every", type=int, default=3)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    args.url = args.url.rstrip("/")

    out, lock = {"lat": [], "tokens": 0, "fail": 0, "errors": []}, threading.Lock()
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    threads = [threading.Thread(target=client, args=(args, i, deadline, out, lock)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    n = len(out["lat"])
    print(f"clients {args.clients}, {wall:.1f} s: {n} requests ({n / wall:.2f}/s), "
          f"{out['tokens']} tokens generated ({out['tokens'] / wall:.1f}/s), failures {out['fail']}")
    print(f"latency p50 {pct(out['lat'], 50) * 1000:.0f} ms, p90 {pct(out['lat'], 90) * 1000:.0f} ms, "
          f"p99 {pct(out['lat'], 99) * 1000:.0f} ms, max {max(out['lat'], default=0) * 1000:.0f} ms")
    for e in sorted(set(out["errors"]))[:5]:
        print("  error:", e)
    req = urllib.request.Request(args.url + "/metrics",
                                 headers={"Authorization": "Bearer " + args.api_key} if args.api_key else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("agentcompress_") and "_bucket" not in line:
                print("  " + line)
    return 1 if out["fail"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
