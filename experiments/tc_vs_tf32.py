"""Where do tensor cores on sparse windows beat dense TF32? Rung 22 against cuBLAS TF32, by sparsity and N.

    PYTHONPATH=. python experiments/tc_vs_tf32.py --rows <out>/gpu-bench.csv [--rows ...]

Reads harness rows (one machine, cold L2, PASS only) of gpu.csr.tc_window and gpu.dense.cublas_tf32 measured
on the same problems (h200_round2.py writes them) and prints, for each split of the rung (tf32 / 3xtf32)
and each N, the geometric mean of t(cuBLAS TF32) / t(rung 22) per sparsity, the problems won, and the
lowest sparsity from which the rung wins in the geomean at every sparsity above it: the issue's question
("the sparsity at which it starts to win"; target: faster on the 95% and 98% slices at N=2048).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

RUNG, DENSE = "gpu.csr.tc_window", "gpu.dense.cublas_tf32"


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def table(rows: list[dict]) -> tuple[list[str], dict]:
    dense, rung = {}, defaultdict(dict)
    machines = {r.get("machine", "") for r in rows}
    if len(machines) > 1:
        raise ValueError(f"rows from several machines: {sorted(machines)}")
    for r in rows:
        if r.get("status") != "PASS" or r.get("cache", "cold") != "cold":
            continue
        key = (r["matrix"], int(r["n"]))
        t = float(r["median_s"])
        if r["variant"] == DENSE:
            dense[key] = min(t, dense.get(key, t))
        elif r["variant"] == RUNG:
            split = json.loads(r["params"]).get("split", "tf32")
            rung[split][key] = min(t, rung[split].get(key, t))
    lines, out = [], {}
    for split in sorted(rung):
        by = defaultdict(list)
        for key, t in rung[split].items():
            if key in dense:
                sp = float(key[0].split("/")[-2]) if key[0].count("/") >= 2 else float("nan")
                by[(key[1], sp)].append(dense[key] / t)
        for n in sorted({n for n, _ in by}):
            sps = sorted(sp for m, sp in by if m == n)
            ratios = {sp: geomean(by[(n, sp)]) for sp in sps}
            start = None
            for sp in reversed(sps):  # the lowest sparsity from which every slice above wins
                if ratios[sp] > 1:
                    start = sp
                else:
                    break
            cells = "  ".join(f"{sp:g}: {ratios[sp]:.2f}× ({sum(x > 1 for x in by[(n, sp)])}/{len(by[(n, sp)])})"
                              for sp in sps)
            lines.append(f"split={split:6s} N={n:5d}  {cells}  wins from {start if start is not None else 'nowhere'}")
            out[f"{split} N={n}"] = {"by_sparsity": ratios, "wins_from": start}
    return lines, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", action="append", type=Path, required=True)
    args = ap.parse_args()
    try:
        rows = []
        for p in args.rows:
            with open(p, newline="") as f:
                rows += list(csv.DictReader(f))
        lines, _ = table(rows)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines) if lines else f"no problem has both {RUNG} and {DENSE} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
