"""Fit the GPU chooser's decision table (``gpu.csr.auto``) from measured rows, and say what it is worth.

    PYTHONPATH=. python experiments/fit_gpu_chooser.py --rows data/reference/gpu-bench-h200.csv \
        --dlmc-root ../shared/dlmc --out spmm_study/gpu/chooser_h200.json

Input: harness result rows (CSV, as gpu_bench.py / h200_round2.py write them) of the layer-0 DLMC set, one
machine, cold L2. A *problem* is (matrix, N); its candidates are the project's own rungs' rows that PASSed
(baselines, gpu.csr.auto and reduced-precision rows such as plain TF32 are not candidates); the per-problem *oracle* is the fastest candidate.
Features come from the matrices themselves (read from --dlmc-root), never from the rows.

What it prints, per N and over all N, as geometric means of (baseline time / time):
  chooser (held out)  every problem decided by a table fitted with its weight matrix left out (all its
                      sparsities and N together: grouped k-fold) — the number a user gets on a new matrix
  oracle              the best candidate measured on the problem itself (not reachable by any user)
  measured auto       rows of gpu.csr.auto, when the input has them (the chooser as actually run)
against every baseline present (cuBLAS fp32 and TF32, both cuSPARSE paths, Sputnik).
The table written with --out is then fitted on all problems.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmm_study import sources  # noqa: E402
from spmm_study.errors import SpmmError  # noqa: E402
from spmm_study.gpu import chooser  # noqa: E402

csv.field_size_limit(1 << 24)

# Parameters that rows written before the parameter existed did not record, and the value the code of that
# time used (rung 17 had two B buffers until "buffers" became a Param with default 1, 2026-11-23).
LEGACY = {"gpu.csr.densify_tile": {"buffers": 2}}


def group_of(matrix: str) -> str:
    """The weight matrix a problem comes from: the spec's last path part (the same weights pruned to several
    sparsities or by several methods are one group, so none of them is seen when another is tested)."""
    return matrix.rsplit("/", 1)[-1]


def read_rows(paths: list[Path], machine: str) -> list[dict]:
    rows = []
    for path in paths:
        with open(path, newline="") as f:
            rows += [r for r in csv.DictReader(f) if r.get("status") == "PASS" and r.get("cache", "cold") == "cold"]
    if machine:
        rows = [r for r in rows if machine.lower() in r.get("machine", "").lower()]
    machines = sorted({r.get("machine", "") for r in rows})
    if len(machines) != 1:
        raise SpmmError(f"the rows must come from one machine (found {machines or 'none'}); pick one with --machine")
    return rows


def resolved(vid: str, params: dict) -> dict:
    """The row's params completed with the registry's defaults (after LEGACY), so a table built from them
    names every parameter and builds exactly the configuration that was measured."""
    from spmm_study import registry

    return registry.get(vid).resolve_params({**LEGACY.get(vid, {}), **params})


def problems_from_rows(rows: list[dict], dlmc_root: str | None):
    """(problems, baselines[(matrix, n)][variant] = s, measured_auto[(matrix, n)] = s)."""
    times: dict = defaultdict(dict)
    base: dict = defaultdict(dict)
    auto: dict = {}
    for r in rows:
        key = (r["matrix"], int(r["n"]))
        t = float(r["median_s"])
        if r["variant"] != "gpu.csr.auto" and not r["baseline"] in ("True", "true", "1") and \
                json.loads(r.get("info") or "{}").get("precision"):
            continue  # reduced precision (plain TF32): not a candidate for an fp32 result
        if r["variant"] == "gpu.csr.auto":
            auto[key] = min(t, auto.get(key, t))
        elif r["baseline"] in ("True", "true", "1"):
            name = r["variant"] + ("" if r["params"] in ("", "{}") else r["params"])
            base[key][name] = min(t, base[key].get(name, t))
        else:
            c = chooser.config_key(r["variant"], resolved(r["variant"], json.loads(r["params"])))
            times[key][c] = min(t, times[key].get(c, t))
    feats_of: dict = {}
    problems = []
    for (matrix, n), ts in sorted(times.items()):
        if matrix not in feats_of:
            a = sources.load(matrix, dlmc_root=dlmc_root).a
            feats_of[matrix] = (a.indptr, a.m, a.k)
        indptr, m, k = feats_of[matrix]
        problems.append(chooser.Measured(f"{matrix}@{n}", group_of(matrix), chooser.features(indptr, m, k, n), ts))
    return problems, base, auto


def summarize(problems, picks, base, auto) -> tuple[list[str], dict]:
    """Lines of the report (80 columns) and the numbers for the table's ``cv`` entry."""
    by_n: dict = defaultdict(list)
    for p, pick in zip(problems, picks):
        by_n[int(p.feats["n"])].append((p, pick))
    names = sorted({b for d in base.values() for b in d})
    lines = [f"{'N':>6} {'problems':>8} {'misses':>6} {'chooser/oracle':>15}"]
    table_lines = [f"{'speed-up against':32} {'N':>5} {'chooser':>8} {'oracle':>8} {'auto run':>9}"]
    out = {}
    for n in sorted(by_n) + [0]:
        items = [x for m_, xs in by_n.items() if n in (0, m_) for x in xs]
        misses = sum(1 for _, pick in items if pick is None)
        ch = {p.key: p.times[pick] for p, pick in items if pick is not None}
        orc = {p.key: min(p.times.values()) for p, _ in items}
        ratio = chooser.geomean([orc[p.key] / ch[p.key] for p, _ in items if p.key in ch])
        label = "all" if n == 0 else f"N={n}"
        row = {"problems": len(items), "misses": misses, "chooser_over_oracle": round(ratio, 4)}
        lines.append(f"{'all' if n == 0 else n:>6} {len(items):>8} {misses:>6} {ratio:>15.3f}")
        for b in names:
            def gm(times: dict) -> float:
                vals = []
                for p, _ in items:
                    mn, nn = p.key.rsplit("@", 1)
                    tb, t = base.get((mn, int(nn)), {}).get(b), times.get(p.key)
                    if tb is not None and t is not None:
                        vals.append(tb / t)
                return chooser.geomean(vals)

            measured = {f"{m}@{nn}": t for (m, nn), t in auto.items()}
            c, o, a = gm(ch), gm(orc), gm(measured)
            row[b] = {"chooser": round(c, 3), "oracle": round(o, 3), "measured_auto": None if a != a else round(a, 3)}
            table_lines.append(f"{b[:32]:32} {'all' if n == 0 else n:>5} {c:7.2f}× {o:7.2f}× "
                               + (f"{a:8.2f}×" if a == a else f"{'-':>9}"))
        out[label] = row
    return lines + [""] + table_lines, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", action="append", type=Path, help="result CSV (repeatable)")
    ap.add_argument("--dlmc-root", default=os.environ.get("SPMM_STUDY_DLMC"))
    ap.add_argument("--machine", default="", help="keep rows whose machine contains this")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-depth", type=int, default=3)
    ap.add_argument("--min-leaf", type=int, default=6)
    ap.add_argument("--out", type=Path, help="write the table fitted on all problems here")
    ap.add_argument("--label", default="", help="'interim' note written into the table")
    args = ap.parse_args()
    paths = args.rows or [Path("data/reference/gpu-bench.csv")]
    try:
        rows = read_rows(paths, args.machine)
        problems, base, auto = problems_from_rows(rows, args.dlmc_root)
        fit_args = {"max_depth": args.max_depth, "min_leaf": args.min_leaf}
        picks = chooser.cross_validate(problems, k=args.folds, seed=args.seed, **fit_args)
        table = chooser.fit(problems, **fit_args)
    except SpmmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    machine = rows[0]["machine"]
    print(f"{len(problems)} problems ({len({p.group for p in problems})} weight matrices) from {machine}; "
          f"{len({c for p in problems for c in p.times})} candidate configs; {args.folds}-fold, held out by matrix")
    lines, cv = summarize(problems, picks, base, auto)
    print("\n".join(lines))
    in_sample = [chooser.config_key(*table.choose(p.feats)[1:]) for p in problems]
    in_sample = [k if k in p.times else None for k, p in zip(in_sample, problems)]
    ins = chooser.geomean([min(p.times.values()) / p.times[k] for p, k in zip(problems, in_sample) if k])
    print(f"table fitted on all problems: {len(table.rules)} rules, {ins:.3f} of the oracle in-sample")
    for r in table.rules:
        print(f"  {r.describe():60s} -> {r.variant} {json.dumps(r.params, sort_keys=True)}")
    if args.out:
        meta = {"machine": machine, "label": args.label, "fitted": time.strftime("%Y-%m-%d"),
                "rows": [str(p) for p in paths], "cv": {"folds": args.folds, "seed": args.seed, **cv},
                "fit": table.meta["fit"]}
        out = chooser.Table(table.rules, table.default, meta).to_json()
        args.out.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
