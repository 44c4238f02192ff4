"""The convolution table (docs/conv.md): the course study's Table 3 from result rows of ``conv:`` problems.

One row per problem and device: the image and channels, the sparsity, the input and the im2col patch
matrix (bytes, and how many times the input it is), each sparse convolution's median time, the dense
im2col + GEMM baseline and the library convolution (torch: oneDNN or cuDNN), the best sparse time's speedup
over both, and the study's SparseRT speedup over cuDNN on a T4 for the same problem
(``spmm_study/data/conv_table3.csv``, from the course study's Table 3). Built from rows alone, like every
report.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from pathlib import Path

from spmm_study.report import CONV_BASELINES, FAIL, ladder_order, machines_and_dates, merge_rounds, problem_key
from spmm_study.table import Table

TABLE3 = Path(__file__).resolve().parent / "data" / "conv_table3.csv"
LIBRARY = {"cpu": "cpu.conv.torch", "gpu": "gpu.conv.torch"}


def study_speedups(path: Path = TABLE3) -> dict[tuple, float]:
    """(image, channels, sparsity) → the study's SparseRT speedup over cuDNN (T4)."""
    with open(path, newline="", encoding="utf-8") as f:
        return {(int(r["image"]), int(r["channels"]), round(float(r["sparsity"]), 2)): float(r["t4_speedup_vs_cudnn"])
                for r in csv.DictReader(f)}


def _facts(rows: list[dict]) -> dict:
    for r in rows:
        try:
            info = json.loads(r.get("info") or "{}")
        except (json.JSONDecodeError, TypeError):
            continue
        if "geometry" in info:
            return info
    return {}


def _geometry(matrix: str) -> tuple[int, int] | None:
    m = re.match(r"conv:(\d+)x(\d+)", matrix)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _time(r: dict | None):
    if r is None:
        return "-"
    if r["status"] != "PASS":
        return FAIL if r["status"] in ("FAIL", "ERROR") else r["status"]
    return r["median_s"]


def conv_tables(rows: list[dict]) -> list[Table]:
    """One Table-3 table per device over the rows of ``conv:`` problems (others are ignored)."""
    rows = [r for r in merge_rounds(rows) if str(r["matrix"]).startswith("conv:")]
    paper = study_speedups()
    out = []
    for device in sorted({r["device"] for r in rows}):
        mine = [r for r in rows if r["device"] == device]
        dense, library = CONV_BASELINES[device], LIBRARY[device]
        sparse = sorted({r["variant"] for r in mine if not r["baseline"]}, key=ladder_order(mine))
        groups: dict[tuple, dict[str, dict]] = defaultdict(dict)
        for r in mine:
            per = groups[(r["machine"], *problem_key(r))]
            prev = per.get(r["variant"])
            if prev is None or (r["status"] == "PASS" and (prev["status"] != "PASS" or r["median_s"] < prev["median_s"])):
                per[r["variant"]] = r  # several params of one variant: its best
        cols = ["image", "channels", "sparsity", "input", "patches", "inflation",
                "dense im2col+GEMM", "library conv"] + [v.split(".", 2)[2] for v in sparse] + \
               ["best", "vs GEMM", "vs library", "study T4 vs cuDNN"]
        formats = {c: "time" for c in ["dense im2col+GEMM", "library conv"] + [v.split(".", 2)[2] for v in sparse]}
        formats.update({"sparsity": "f3", "input": "bytes", "patches": "bytes", "inflation": "x", "vs GEMM": "x",
                        "vs library": "x", "study T4 vs cuDNN": "x"})
        t = Table(title=f"Sparse 3×3 convolution (the study's Table 3), {device.upper()} — {machines_and_dates(mine)}",
                  columns=cols, formats=formats)
        def order(key):  # the study's order: problems 1-4 (largest image first), 90% before 95%
            r0 = next(iter(groups[key].values()))
            hw = _geometry(r0["matrix"]) or (0, 0)
            return (r0["sparsity"] > 0.925, -hw[0], -hw[1], key)

        for key in sorted(groups, key=order):
            per = groups[key]
            r0 = next(iter(per.values()))
            facts = _facts(per.values())
            hw = _geometry(r0["matrix"])
            cin = int(facts.get("channels_in", 0)) or None
            passed = [per[v] for v in sparse if v in per and per[v]["status"] == "PASS"]
            best = min(passed, key=lambda r: r["median_s"]) if passed else None

            def ratio(base_id):
                b = per.get(base_id)
                if best is None or b is None or b["status"] != "PASS":
                    return float("nan")
                return b["median_s"] / best["median_s"]

            image = f"{hw[0]}×{hw[1]}" if hw else "?"
            study = paper.get((hw[0], cin, round(r0["sparsity"], 2)), float("nan")) if hw and cin == r0["m"] else float("nan")
            t.rows.append([image, f"{cin or '?'}→{r0['m']}", r0["sparsity"], facts.get("input_bytes", math.nan),
                           facts.get("patch_bytes", math.nan), facts.get("inflation", math.nan),
                           _time(per.get(dense)), _time(per.get(library))] + [_time(per.get(v)) for v in sparse] +
                          [best["idea"] if best else "-", ratio(dense), ratio(library), study])
        threads = sorted({r["threads"] for r in mine if r["device"] == "cpu"})
        on = f" CPU threads: {'/'.join(map(str, threads))}." if threads else ""
        t.caption = (f"Median times. vs GEMM / vs library = {dense} / {library} time over the best sparse time, same "
                     f"problem and machine; patches = the im2col matrix (K×N values), inflation = patches / input. "
                     f"Study: SparseRT im2col+SpMM over cuDNN on a T4, batch 1.{on}")
        out.append(t)
    return out
