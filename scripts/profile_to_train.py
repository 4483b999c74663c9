#!/usr/bin/env python3
"""Converts an `agentcompress profile` SQLite file into the training-data
JSON Lines that `agentcompress train --profile` reads (src/train/train.h):
a first line with the configuration space, then one task per stage with its
first token ids, domain, and per configuration the relative cost (weight
bytes of the stage / f16's), fidelity and success.

The controller's space is a cross product quant x prune x sparsity: the
largest one whose every configuration is complete in the profile is used
(with the default grid: the four plain variants).

Usage: scripts/profile_to_train.py PROFILE.sqlite OUT.jsonl"""
import itertools
import json
import sqlite3
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    n_stages = db.execute("SELECT COUNT(*) FROM stages").fetchone()[0]
    complete = {name: (variant, prune, sparsity) for name, variant, prune, sparsity, n in db.execute(
        "SELECT c.name, c.variant, round(c.prune, 4), round(c.sparsity, 4), COUNT(r.stage_id) FROM configs c "
        "LEFT JOIN results r ON r.config_id = c.id GROUP BY c.id ORDER BY c.id") if n == n_stages}
    if "f16" not in complete:
        sys.exit(f"profile_to_train: {sys.argv[1]}: the f16 configuration is incomplete")
    by_key = {v: k for k, v in complete.items()}
    quants = list(dict.fromkeys(v for v, _, _ in complete.values()))
    prunes = sorted({p for _, p, _ in complete.values()})
    sparsities = sorted({s for _, _, s in complete.values()})
    # shrink to the largest complete cross product: drop levels that leave holes
    best = None
    for np_ in range(len(prunes), 0, -1):
        for ps in itertools.combinations(prunes, np_):
            if 0.0 not in ps:
                continue
            for ns in range(len(sparsities), 0, -1):
                for ss in itertools.combinations(sparsities, ns):
                    if 0.0 not in ss:
                        continue
                    qs = [q for q in quants if all((q, p, s) in by_key for p in ps for s in ss)]
                    size = len(qs) * len(ps) * len(ss)
                    if "f16" in qs and (best is None or size > best[0]):
                        best = (size, qs, list(ps), list(ss))
    _, qs, ps, ss = best
    names = [by_key[(q, p, s)] for q in qs for p in ps for s in ss]
    ids = {n: db.execute("SELECT id FROM configs WHERE name = ?", (n,)).fetchone()[0] for n in names}
    rows = {}
    for sid, cid, succ, fid, wb in db.execute("SELECT stage_id, config_id, success, fidelity, weight_bytes FROM results"):
        rows[(sid, cid)] = (succ, fid, wb)
    out = open(sys.argv[2] + ".tmp", "w", encoding="utf-8")
    out.write(json.dumps({"levels": {"quant": qs, "prune": ps, "sparsity": ss}}) + "\n")
    n = 0
    for sid, wf, stage, domain, task_ids in db.execute(
            "SELECT id, workflow, stage, domain, task_ids FROM stages ORDER BY id"):
        tids = json.loads(task_ids or "[]")
        if not tids:
            continue
        f16 = rows[(sid, ids["f16"])][2]
        cells = [rows[(sid, ids[c])] for c in names]
        out.write(json.dumps({"name": f"{wf}/{stage}", "domain": domain, "ids": tids,
                              "cost": [round(c[2] / f16, 6) for c in cells],
                              "fidelity": [min(1.0, max(0.0, c[1])) for c in cells],
                              "success": [bool(c[0]) for c in cells]}) + "\n")
        n += 1
    out.close()
    import os
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
    print(f"profile_to_train: {n} tasks, {len(names)} configurations ({', '.join(names)})", file=sys.stderr)


if __name__ == "__main__":
    main()
