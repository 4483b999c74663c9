#!/usr/bin/env python3
"""Prints the controller ablation table from `agentcompress eval -c ... --json` outputs.

Usage: bench/ablation_table.py NAME=EVAL.json ... [--transfer-from cs+phys --transfer-domains chemistry,biology]

Per ablation: the routed system's ('agentcompress') cost reduction, quality preservation, success
rate, mean fidelity, the complexity correlations and the decision p50; then the oracle's share of
saving it captures. The transfer rows compare, on the held-out domains only, the controller trained
without them against the default one (quality preservation on those domains' stages)."""
import argparse
import json
import math


def system(ev, name):
    return next(s for s in ev["systems"] if s["name"] == name)


def pct(v):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def num(v, spec=".3f"):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def domains_metrics(ev, sysname, domains):
    """Cost reduction and quality preservation over the stages of the given domains."""
    s, f16 = system(ev, sysname), system(ev, "all-f16")
    succ = sum(s["per_domain"][d]["success_rate"] * s["per_domain"][d]["stages"] for d in domains)
    succ_f16 = sum(f16["per_domain"][d]["success_rate"] * f16["per_domain"][d]["stages"] for d in domains)
    cost = sum(s["per_domain"][d]["cost_bytes"] for d in domains)
    cost_f16 = sum(f16["per_domain"][d]["cost_bytes"] for d in domains)
    return 1 - cost / cost_f16, (succ / succ_f16 if succ_f16 else float("nan"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="NAME=EVAL.json")
    ap.add_argument("--transfer-from", default="cs+phys")
    ap.add_argument("--transfer-base", default="default")
    ap.add_argument("--transfer-domains", default="chemistry,biology")
    a = ap.parse_args()
    runs = {}
    for r in a.runs:
        name, path = r.split("=", 1)
        with open(path) as f:
            runs[name] = json.load(f)
    print("| controller | cost reduction | quality preservation | success rate | mean fidelity | "
          "oracle saving captured | pearson (rank) | spearman (rank) | pearson (1-fid) | decision p50 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, ev in runs.items():
        s, o = system(ev, "agentcompress"), system(ev, "oracle")
        captured = s["cost_reduction"] / o["cost_reduction"] if o["cost_reduction"] else float("nan")
        print(f"| {name} | {pct(s['cost_reduction'])} | {num(s['quality_preservation'])} | "
              f"{num(s['success_rate'])} | {num(s['mean_fidelity'])} | {pct(captured)} | "
              f"{num(ev.get('complexity_pearson'))} | {num(ev.get('complexity_spearman'))} | "
              f"{num(ev.get('complexity_pearson_fid'))} | {num(ev.get('controller_us_p50'), '.0f')} us |")
    if a.transfer_from in runs and a.transfer_base in runs:
        doms = a.transfer_domains.split(",")
        print(f"\nTransfer to {' + '.join(doms)} (stages of those domains only):\n")
        print("| controller | cost reduction | quality preservation |")
        print("|---|---|---|")
        for name in (a.transfer_base, a.transfer_from):
            cr, qp = domains_metrics(runs[name], "agentcompress", doms)
            print(f"| {name} | {pct(cr)} | {num(qp)} |")
        for ref in ("all-q8_0", "oracle"):
            cr, qp = domains_metrics(runs[a.transfer_base], ref, doms)
            print(f"| {ref} | {pct(cr)} | {num(qp)} |")


if __name__ == "__main__":
    main()
