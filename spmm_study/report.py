"""Reports from result files only (docs/ARCHITECTURE.md §8): tables as data, markdown, speedups.

The report never measures. It reads flat ``Result`` rows (``rows.jsonl``, ``results.csv`` or run
directories, from any number of machines), merges repeated measurements of the same thing (the rounds of
an interleaved ``compare``), finds each row's baseline on the *same problem* and computes speedups.

* Tables are data (``table.Table``: numbers stay numbers, a failed measurement is the string ``"FAIL"``);
  ``table.to_markdown`` and the rich renderer in ``cli.py`` format them.
* Speedup of a row = baseline median time / row median time, both on the same matrix, N, dtype and seed;
  the baseline row is taken from the same machine and thread count when there is one.
* Default baseline: the device's dense BLAS baseline (``cpu.dense.numpy``, ``gpu.dense.cublas``), else the
  first dense baseline variant found in the rows.

The plots drawn from the same rows live in ``plots.py``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from spmm_study.errors import ResultsError
from spmm_study.table import Measured, Table, finite, fmt_time, format_cell, to_markdown  # noqa: F401  (callers' names)
from spmm_study.results import parse_rows

DENSE_BASELINES = {"cpu": "cpu.dense.numpy", "gpu": "gpu.dense.cublas"}
CONV_BASELINES = {"cpu": "cpu.conv.dense_gemm", "gpu": "gpu.conv.dense_gemm"}  # dense im2col + GEMM (docs/conv.md)
FAIL = "FAIL"
PROBLEM_KEYS = ("matrix", "n", "dtype", "seed")


# ----------------------------------------------------------------------------------------------- loading


def find_result_files(path: Path | str) -> list[Path]:
    """A rows.jsonl / results.csv, a run directory, or a folder of run directories (searched recursively)."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"no such result file or directory: {path}")
    if not path.is_dir():  # a file, or a FIFO or device that the bounded reader refuses in one line
        return [path]
    if (path / "rows.jsonl").exists() or (path / "results.csv").exists():
        return [path]
    found = sorted({p.parent for p in path.rglob("rows.jsonl")} | {p.parent for p in path.rglob("results.csv")})
    if not found:
        raise ResultsError(f"{path} holds no rows.jsonl or results.csv (searched recursively)")
    return found


def load_rows(paths: Iterable[Path | str], skipped: list[str] | None = None) -> list[dict]:
    """All rows of all result files; the same row read twice (jsonl and csv of one run) is kept once.

    Result files are input like any other: a row that does not read back (not JSON, a field of the wrong
    type, a PASS row with a zero, negative or NaN time) is left out and described in ``skipped`` ("file
    line 7: ..."); without a ``skipped`` list the first bad row is a ResultsError. No row at all is one too."""
    rows, seen, bad = [], set(), []
    paths = list(paths)
    if not paths:
        raise ResultsError("no result files given")
    for p in paths:
        for f in find_result_files(p):
            good, notes = parse_rows(f)
            bad += notes
            for r in good:
                ident = (r["variant"], r["matrix"], r["n"], r["dtype"], r["seed"], r["params"], r["threads"],
                         r["tags"], r["machine"], r["timestamp"], repr(r["median_s"]))  # repr: NaN == NaN
                if ident in seen:
                    continue
                seen.add(ident)
                rows.append(r)
    what = f"{len(bad)} unreadable row{'s' if len(bad) != 1 else ''}"
    if bad and skipped is None:
        raise ResultsError(f"{what} (first: {bad[0]})")
    if not rows:
        raise ResultsError(f"no readable rows: {what} (first: {bad[0]})" if bad else
                           f"no result rows in {', '.join(map(str, paths))}")
    if skipped is not None:
        skipped += bad
    return rows


def save_rows(rows: list[dict], path: Path | str) -> Path:
    """``report --save-rows``: the rows, rounds merged, as one CSV (the small reference files of data/)."""
    from spmm_study.files import atomic_write_text
    from spmm_study.results import rows_to_csv

    path = Path(path)
    if path.suffix != ".csv":
        raise ResultsError(f"--save-rows {path}: the file must end in .csv")
    atomic_write_text(path, rows_to_csv(merge_rounds(rows)))
    return path


# ----------------------------------------------------------------------------------------------- helpers


def parse_tags(tags: str) -> dict[str, str]:
    """``"suite=study;problem=9"`` → ``{"suite": "study", "problem": "9"}``."""
    out = {}
    for part in (tags or "").split(";"):
        if part.strip():
            k, _, v = part.partition("=")
            out[k.strip()] = v.strip()
    return out


def strip_tag(tags: str, name: str) -> str:
    return ";".join(f"{k}={v}" for k, v in parse_tags(tags).items() if k != name)


def problem_key(row: dict) -> tuple:
    return tuple(row[k] for k in PROBLEM_KEYS)


def geomean(values: Sequence[float]) -> float:
    vals = [v for v in values if finite(v) and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


def params_label(row: dict) -> str:
    """Compact ``name=value`` list of a row's params ("" when the variant has none)."""
    try:
        p = json.loads(row.get("params") or "{}")
    except json.JSONDecodeError:
        return str(row.get("params", ""))
    return " ".join(f"{k}={v}" for k, v in sorted(p.items()))


DEVICE_ORDER = {"cpu": 0, "gpu": 1}


def ladder_position(row: dict) -> tuple:
    """Where a row's variant stands: device, then the rung the row records, then the id (rows of files
    written before rows carried their rung all stand at rung 100, in id order)."""
    return (DEVICE_ORDER.get(row["device"], 2), row.get("rung", 100), row["variant"])


def ladder_order(rows: list[dict]):
    """A sort key over variant ids, from the rungs these rows record (the report never loads a kernel)."""
    pos = {r["variant"]: ladder_position(r) for r in rows}
    return lambda vid: pos.get(vid, (2, 10_000, vid))


def merge_rounds(rows: list[dict]) -> list[dict]:
    """Merge repeated measurements of one configuration (the ``round=`` tags of an interleaved compare, or
    the same run repeated) into one row: median of the medians, min of the mins; rates rescaled to match.
    A configuration with any FAIL/ERROR row stays failed (its first failing row is kept)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        key = (r["machine"], r["variant"], *problem_key(r), r["params"], r["threads"], r["cache"],
               strip_tag(r["tags"], "round"))
        groups[key].append(r)
    out = []
    for group in groups.values():
        bad = [r for r in group if r["status"] in ("FAIL", "ERROR")]
        if bad:
            out.append(dict(bad[0], tags=strip_tag(bad[0]["tags"], "round")))
            continue
        ok = [r for r in group if r["status"] == "PASS"]
        if not ok:
            out.append(dict(group[0], tags=strip_tag(group[0]["tags"], "round")))
            continue
        ok.sort(key=lambda r: r["median_s"])
        mid = ok[(len(ok) - 1) // 2]
        merged = dict(mid, tags=strip_tag(mid["tags"], "round"))
        if len(ok) > 1:
            if len(ok) % 2 == 0:  # even count: true median, rates rescaled from the lower-middle row
                t = 0.5 * (ok[len(ok) // 2 - 1]["median_s"] + ok[len(ok) // 2]["median_s"])
                scale = mid["median_s"] / t
                merged["median_s"] = t
                for key in ("gflops", "gflops_dense", "gbps_compulsory", "gbps_model"):
                    merged[key] = mid[key] * scale
            merged["min_s"] = min(r["min_s"] for r in ok)
            merged["p20_s"] = min(r["p20_s"] for r in ok)
            merged["p80_s"] = max(r["p80_s"] for r in ok)
            merged["repeats"] = sum(r["repeats"] for r in ok)
            merged["rounds"] = len(ok)
        out.append(merged)
    return out


def default_baseline(rows: list[dict], device: str) -> str | None:
    ids = {r["variant"] for r in rows}
    mine = [r for r in rows if r["device"] == device]
    conv = bool(mine) and all(r["format"] == "conv" for r in mine)
    want = (CONV_BASELINES if conv else DENSE_BASELINES).get(device)
    if want in ids:
        return want
    dense = sorted({r["variant"] for r in rows if r["baseline"] and r["format"] == "dense" and r["device"] == device})
    if dense:
        return dense[0]
    others = sorted({r["variant"] for r in rows if r["baseline"] and r["device"] == device})
    return others[0] if others else None


def baseline_index(rows: list[dict]) -> dict[tuple, list[dict]]:
    idx: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["status"] == "PASS":
            idx[(r["variant"], *problem_key(r))].append(r)
    return idx


def _host(row: dict) -> str:
    """The host a row was measured on, when it says (cluster rows carry it in ``info``)."""
    try:
        return str(json.loads(row.get("info") or "{}").get("host", ""))
    except (json.JSONDecodeError, AttributeError):
        return ""


def find_baseline_row(row: dict, baseline: str, idx: dict[tuple, list[dict]]) -> dict | None:
    """The baseline's row on the same problem and machine (never another machine's: a ratio of two machines'
    times is no speedup), preferring the same host and thread count."""
    cands = [c for c in idx.get((baseline, *problem_key(row)), []) if c["machine"] == row["machine"]]
    if not cands:
        return None
    host = _host(row)

    def rank(c):
        return (bool(host) and _host(c) != host, c["threads"] != row["threads"], c["median_s"])

    return min(cands, key=rank)


def speedups(rows: list[dict], baseline: str | None = None) -> list[dict]:
    """Each row with ``speedup`` (baseline time / row time; NaN when no baseline row, ``"FAIL"`` when the
    row failed) and ``baseline_id`` added. ``baseline=None`` picks each device's dense baseline."""
    idx = baseline_index(rows)
    chosen = {dev: baseline or default_baseline(rows, dev) for dev in {r["device"] for r in rows}}
    out = []
    for r in rows:
        b = chosen.get(r["device"])
        r = dict(r, baseline_id=b or "")
        if r["status"] != "PASS":
            r["speedup"] = FAIL if r["status"] in ("FAIL", "ERROR") else r["status"]
        else:
            br = find_baseline_row(r, b, idx) if b else None
            r["speedup"] = br["median_s"] / r["median_s"] if br and r["median_s"] > 0 else float("nan")
        out.append(r)
    return out


def machines_and_dates(rows: list[dict]) -> str:
    """"AMD EPYC ... (2 cores), 2026-11-23" — every machine and date in the rows, for titles and captions."""
    machines = sorted({r["machine"] for r in rows if r["machine"]}) or ["unknown machine"]
    dates = sorted({str(r["timestamp"])[:10] for r in rows if r["timestamp"]})
    when = dates[0] if len(dates) == 1 else (f"{dates[0]} to {dates[-1]}" if dates else "undated")
    return f"{'; '.join(machines)}, {when}"


# ----------------------------------------------------------------------------------------------- tables


def _problem_title(r: dict) -> str:
    return (f"{r['matrix']} ({r['m']}×{r['k']}, nnz {r['nnz']:,}, sparsity {r['sparsity']:.3g}), "
            f"N={r['n']}, {r['dtype']}")


def roof_gflops(row: dict, ceilings: dict[str, dict] | None) -> float:
    """The roofline bound for a row: min(peak FMA rate, bandwidth × useful flop per compulsory byte), from the
    ceilings of its machine at its thread count (CPU: one thread or all; GPU: copy bandwidth, fp32 peak)."""
    c = ceilings_for(row["machine"], ceilings or {})
    if not c or not finite(row.get("intensity")):
        return float("nan")
    if c.get("device") == "gpu":
        bw, peak = c.get("copy_gbps"), c.get("fma_gflops_fp32")
    else:
        which = "1" if row["threads"] == 1 else "all"
        fp = "fp64" if row["dtype"] == "float64" else "fp32"
        bw, peak = c.get(f"stream_gbps_{which}"), c.get(f"fma_gflops_{fp}_{which}")
    if not (finite(bw) and finite(peak)):
        return float("nan")
    return min(peak, bw * row["intensity"])


LEGEND = {
    "median": "median time of the timed repeats (compile, first call and warm-up never count)",
    "GFLOP/s": "useful work rate: 2·nnz·N flops (zeros of A skipped) per median time",
    "speedup": "median time of the device's dense BLAS baseline on the same problem / this median time",
    "p20–p80": "20th to 80th percentile of the repeats: the spread; a wide one means a noisy machine",
    "GB/s comp": "compulsory bytes (A, B read once, C written once) per median time: a floor on traffic",
    "GB/s model": "bytes the variant's movement model says it moves (re-reads of B included) per median time",
    "rel err": "relative Frobenius error against the float64 reference (the check it passed or failed)",
    "setup": "build time: format conversion, allocation, copies to the device (not in the median)",
    "1st call": "the first call: JIT compile or cache load and the first check (not in the median)",
    "thr": "CPU threads the variant and BLAS ran with (not shown for GPU rows)",
    "host": "GPU rows: host time per call to enqueue the work (Python, argument marshalling, the driver call); "
            "the median is device time, this is apart from it — above the median, the call is launch-bound",
}
NARROW = ("variant", "N", "status", "median", "GFLOP/s", "speedup")
WIDE = ("p20–p80", "GB/s comp", "GB/s model", "rel err", "setup", "1st call", "thr")


def results_table(rows: list[dict], wide: bool = False) -> Table:
    """The table ``run`` prints: per row the variant, N, status, median time, GFLOP/s and speedup over the
    dense baseline when it was measured too (what reads on an 80-column terminal); ``wide`` adds the spread,
    the two bandwidths, the error, setup and first-call times and the threads (``LEGEND`` says what each
    means). The matrix goes to the title when there is one, else into a column; one thread count likewise."""
    rows = speedups(rows)
    one_matrix = len({r["matrix"] for r in rows}) == 1
    cpu_threads = sorted({r["threads"] for r in rows if r["device"] == "cpu"})
    title = ""
    if one_matrix and rows:
        r0 = rows[0]
        title = f"{r0['matrix']}  ({r0['m']}x{r0['k']}, nnz {r0['nnz']:,}, {r0['dtype']})"
    if len(cpu_threads) == 1 and not wide:
        title += f"{'  ' if title else ''}{cpu_threads[0]} CPU thread{'s' if cpu_threads[0] != 1 else ''}"
    gpu = any(r["device"] == "gpu" for r in rows)
    narrow = list(NARROW[1:])
    if gpu:  # device time and host time per call side by side (docs/ARCHITECTURE.md §5)
        narrow.insert(narrow.index("median") + 1, "host")
    cols = ["variant"] + ([] if one_matrix else ["matrix"]) + narrow + \
        (list(WIDE) if wide else (["thr"] if len(cpu_threads) > 1 else []))
    t = Table(title=title, columns=cols, formats={"median": "time", "host": "time", "setup": "time",
                                                  "1st call": "time", "speedup": "x", "rel err": "g2"})
    for r in rows:
        ok = r["status"] == "PASS"
        cell = {"variant": r["variant"], "matrix": clip(r["matrix"], 40), "N": r["n"], "status": r["status"],
                "median": r["median_s"] if ok else "-", "GFLOP/s": r["gflops"] if ok else "-",
                "host": r.get("host_dispatch_s") if ok and r["device"] == "gpu" and finite(r.get("host_dispatch_s"))
                else "-",
                "speedup": r["speedup"] if ok else "-",
                "p20–p80": f"{fmt_time(r['p20_s'])}–{fmt_time(r['p80_s'])}" if ok else "-",
                "GB/s comp": r["gbps_compulsory"], "GB/s model": r["gbps_model"], "rel err": r["rel_error"],
                "setup": r["setup_s"], "1st call": r["first_call_s"],
                "thr": r["threads"] if r["device"] == "cpu" else "-"}
        t.rows.append([cell[c] for c in cols])
    bases = sorted({r["baseline_id"] for r in rows if r["baseline_id"] and finite(r["speedup"])})
    t.caption = (f"speedup vs {', '.join(bases)}. " if bases else "speedup: no dense baseline measured. ") + \
        ("" if wide else "--wide adds the spread, bandwidths, error, setup and 1st call. ") + \
        "--explain says what each column means."
    return t


def legend_table(columns: Sequence[str] = tuple(LEGEND)) -> Table:
    """What each column of the result table means (``run --explain``; the README holds the same list)."""
    return Table(title="The columns of the result table", columns=["column", "meaning"],
                 rows=[[c, LEGEND[c]] for c in columns if c in LEGEND])


def ladder_tables(rows: list[dict], baseline: str | None = None,
                  ceilings: dict[str, dict] | None = None) -> list[Table]:
    """One table per problem (matrix, N, dtype, seed) and machine: variants in ladder order with median time,
    GFLOP/s, modelled bytes and speedup vs the baseline; with the machine's ceilings (``calibrate``) also the
    fraction of the roofline bound each variant reaches. FAIL rows stay in, marked FAIL."""
    rows = speedups(merge_rounds(rows), baseline)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(problem_key(r), r["machine"])].append(r)
    tables = []
    for (_, machine), group in groups.items():
        group.sort(key=lambda r: (ladder_position(r), r["params"], r["threads"]))
        show_params = any(params_label(r) for r in group)
        bases = sorted({r["baseline_id"] for r in group if r["baseline_id"]})
        roofed = ceilings_for(machine, ceilings or {}) is not None
        up = f"speedup vs {', '.join(bases) or 'baseline'}"
        cols = ["variant"] + (["params"] if show_params else []) + [
            "threads", "status", "median time", "GFLOP/s", "modelled bytes", "GB/s (model)", up] + \
            (["of roofline"] if roofed else [])
        t = Table(title=f"{_problem_title(group[0])} — {machine or 'unknown machine'}", columns=cols,
                  formats={"median time": "time", "modelled bytes": "bytes", up: "x", "of roofline": "pct"})
        for r in group:
            # a wrong result is FAIL, never a number; a SKIP/UNAVAILABLE row was not measured at all: "-"
            blank = FAIL if r["status"] in ("FAIL", "ERROR") else "-" if r["status"] != "PASS" else None

            def cell(value, blank=blank):
                return value if blank is None else blank

            t.rows.append([r["variant"]] + ([params_label(r)] if show_params else []) + [
                r["threads"] if r["device"] == "cpu" else "-", r["status"], cell(r["median_s"]), cell(r["gflops"]),
                r["bytes_model"], cell(r["gbps_model"]), r["speedup"]] +
                ([cell(r["gflops"] / roof_gflops(r, ceilings) if blank is None else 0.0)] if roofed else []))
        dates = machines_and_dates(group).rsplit(", ", 1)[-1]
        t.caption = (f"Measured {dates}; speedup = {', '.join(bases) or 'baseline'} median time / variant median time."
                     f"{host_dispatch_note(group)}")
        tables.append(t)
    return tables


def compare_table(rows: list[dict], variants: Sequence[str] | None = None, baseline: str | None = None) -> Table:
    """Side by side: one row per problem, one column per variant holding ``Measured(time, speedup)``
    (its best params when several were run); a failed variant shows FAIL, one not measured ``-``. Files of
    several machines combine: a variant measured on more than one machine gets one column per machine."""
    rows = speedups(merge_rounds(rows), baseline)
    want = list(variants) if variants else sorted({r["variant"] for r in rows}, key=ladder_order(rows))
    pairs = [mv for v in want for mv in sorted({(r["machine"], r["variant"]) for r in rows if r["variant"] == v})]
    several = _several_machines(pairs)
    cells: dict[tuple, dict[tuple, dict]] = defaultdict(dict)
    info: dict[tuple, dict] = {}
    for r in rows:
        key = problem_key(r)
        info.setdefault(key, r)
        mv = (r["machine"], r["variant"])
        prev = cells[key].get(mv)
        if prev is None or (r["status"] == "PASS" and (prev["status"] != "PASS" or r["median_s"] < prev["median_s"])):
            cells[key][mv] = r  # several params of one variant: its best
    bases = sorted({r["baseline_id"] for r in rows if r["baseline_id"]})
    labels = [_label(m, v, v in several) for m, v in pairs]
    cols = ["matrix", "M×K", "sparsity", "N"] + labels
    t = Table(title=f"Median time (speedup vs {', '.join(bases) or 'baseline'}) — {machines_and_dates(rows)}",
              columns=cols, formats={"sparsity": "f3"})
    for key, per in cells.items():
        r0 = info[key]
        vals = []
        for mv in pairs:
            r = per.get(mv)
            if r is None:
                vals.append("-")
            elif r["status"] != "PASS":
                vals.append(FAIL if r["status"] in ("FAIL", "ERROR") else r["status"])
            else:
                vals.append(Measured(r["median_s"], r["speedup"]))
        t.rows.append([r0["matrix"], f"{r0['m']}×{r0['k']}", r0["sparsity"], r0["n"]] + vals)
    threads = sorted({r["threads"] for r in rows if r["device"] == "cpu"})
    on = f" CPU threads: {'/'.join(map(str, threads))}." if threads else ""
    t.caption = (f"Speedup = {', '.join(bases) or 'baseline'} median time / variant median time on the same problem "
                 f"and machine.{on}{host_dispatch_note(rows)}")
    return t


def host_dispatch_note(rows: list[dict]) -> str:
    """' GPU host time per call (apart from the device times above): v 12 µs, …' — the median over a variant's
    PASS rows of its host dispatch time; '' without GPU rows."""
    per: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["device"] == "gpu" and r["status"] == "PASS" and finite(r.get("host_dispatch_s")):
            per[r["variant"]].append(r["host_dispatch_s"])
    if not per:
        return ""
    items = ", ".join(f"{v} {fmt_time(statistics.median(ts))}" for v, ts in per.items())
    return f" GPU host time per call (apart from the device times above): {items}."


def _several_machines(pairs: Sequence[tuple[str, str]]) -> set[str]:
    """Variants that appear with more than one machine (only those need the machine in their label)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for m, v in pairs:
        seen[v].add(m)
    return {v for v, ms in seen.items() if len(ms) > 1}


def best_per_variant(rows: list[dict]) -> list[dict]:
    """Keep, per (machine, variant, problem, threads), the fastest passing params (a failed one if none passed)."""
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["machine"], r["variant"], *problem_key(r), r["threads"], r["tags"])
        cur = best.get(key)
        if cur is None or (r["status"] == "PASS" and (cur["status"] != "PASS" or r["median_s"] < cur["median_s"])):
            best[key] = r
    return list(best.values())


def _variant_columns(rows: list[dict], exclude: set[str]) -> list[tuple[str, str]]:
    """(machine, variant) pairs in ladder order; the machine is part of the label only if there are several."""
    pairs = sorted({(r["machine"], r["variant"]) for r in rows if r["variant"] not in exclude},
                   key=lambda mv, pos=ladder_order(rows): (pos(mv[1]), mv[0]))
    return pairs


def _label(machine: str, variant: str, several: bool) -> str:
    return f"{variant} @ {machine}" if several else variant


def study_table(rows: list[dict], baseline: str | None = None) -> Table:
    """The course study's Table 1 for this machine: M, K, N, use case, count, sparsity, the speedup of each
    variant over the dense baseline, and the published T4 speedup (SparseRT over cuBLAS) beside it."""
    rows = [r for r in rows if parse_tags(r["tags"]).get("suite") == "study"]
    if not rows:
        raise ResultsError("no rows tagged suite=study (run experiments/study_table.toml)")
    rows = speedups(best_per_variant(merge_rounds(rows)), baseline)
    bases = {r["baseline_id"] for r in rows if r["baseline_id"]}
    passed = {(r["machine"], r["variant"]) for r in rows if r["status"] == "PASS"}
    pairs = [mv for mv in _variant_columns(rows, bases) if mv in passed]  # a column of SKIPs says nothing
    multi = _several_machines(pairs)
    lines: dict[tuple, dict] = {}
    for r in rows:
        tg = parse_tags(r["tags"])
        key = (int(tg.get("problem", 0)), float(tg.get("sparsity", r["sparsity"])))
        line = lines.setdefault(key, {"tags": tg, "row": r, "cells": {}})
        line["cells"][(r["machine"], r["variant"])] = r
    cols = ["#", "M", "K", "N", "use case", "count", "sparsity", "matrix"] + \
        [_label(m, v, v in multi) for m, v in pairs] + ["T4 published"]
    t = Table(title=f"The study table: speedup over {', '.join(sorted(bases)) or 'the dense baseline'} — "
                    f"{machines_and_dates(rows)}",
              columns=cols, formats={**{_label(m, v, v in multi): "x" for m, v in pairs}, "T4 published": "x",
                                     "sparsity": "f2"})
    per_col: dict[str, list[float]] = defaultdict(list)
    for key in sorted(lines):
        line = lines[key]
        tg, r0 = line["tags"], line["row"]
        source = "DLMC" if r0["matrix"].startswith("dlmc:") else "synthetic"
        cells = []
        for m, v in pairs:
            r = line["cells"].get((m, v))
            val = "-" if r is None else r["speedup"]
            cells.append(val)
            if finite(val):
                per_col[_label(m, v, v in multi)].append(val)
        t4 = float(tg["t4"]) if tg.get("t4") else float("nan")
        per_col["T4 published"].append(t4)
        t.rows.append([key[0], r0["m"], r0["k"], r0["n"], tg.get("use_case", ""), int(tg.get("count", 0) or 0),
                       key[1], source] + cells + [t4])
    t.rows.append(["geomean", "", "", "", "", "", "", ""] + [geomean(per_col[c]) for c in cols[8:]])
    threads = sorted({r["threads"] for r in rows if r["device"] == "cpu"})
    on = f" CPU variants and BLAS at {'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}." if threads else ""
    t.caption = ("Speedup = dense baseline median time / variant median time on the same machine (the best of the "
                 f"params measured per variant).{on} T4 published: SparseRT over cuBLAS on a Tesla T4, from the "
                 "course study's Table 1.")
    return t


def dlmc_summary(rows: list[dict]) -> Table:
    """Per suite group (model/method/sparsity, N) and variant: the geometric-mean speedup over each baseline
    of its device and the fraction of problems where the variant is faster than that baseline."""
    rows = [r for r in rows if parse_tags(r["tags"]).get("suite") == "dlmc"]
    if not rows:
        raise ResultsError("no rows tagged suite=dlmc (run experiments/dlmc_transformer.toml)")
    rows = best_per_variant(merge_rounds(rows))
    idx = baseline_index(rows)
    baselines = sorted({(r["device"], r["variant"]) for r in rows if r["baseline"]},
                       key=lambda dv: (dv[0], dv[1] not in DENSE_BASELINES.values(), dv[1]))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        tg = parse_tags(r["tags"])
        n_label = "per layer" if tg.get("model") == "rn50" else str(r["n"])
        groups[(tg.get("model", ""), tg.get("method", ""), tg.get("sparsity", ""), n_label)].append(r)
    cols = ["model", "method", "sparsity", "N", "variant", "problems", "FAIL"]
    for _, b in baselines:
        cols += [f"vs {b}", f"faster than {b}"]
    t = Table(title=f"DLMC sweep: speedups over the baselines — {machines_and_dates(rows)}", columns=cols,
              formats={**{f"vs {b}": "x" for _, b in baselines}, **{f"faster than {b}": "pct" for _, b in baselines}})

    def order(g):
        return (g[0], g[1], float(g[2]) if g[2].replace(".", "", 1).isdigit() else 0.0,
                int(g[3]) if g[3].isdigit() else 0)

    for gkey in sorted(groups, key=order):
        group = groups[gkey]
        for machine, variant in _variant_columns(group, {b for _, b in baselines}):
            mine = [r for r in group if r["variant"] == variant and r["machine"] == machine]
            device = mine[0]["device"]
            fails = sum(r["status"] in ("FAIL", "ERROR") for r in mine)
            line = [*gkey, variant, sum(r["status"] == "PASS" for r in mine), fails]
            for bdev, b in baselines:
                ups = []
                if bdev == device:
                    for r in mine:
                        br = find_baseline_row(r, b, idx) if r["status"] == "PASS" else None
                        if br is not None:
                            ups.append(br["median_s"] / r["median_s"])
                line += [geomean(ups), sum(u > 1.0 for u in ups) / len(ups) if ups else float("nan")]
            t.rows.append(line)
    t.caption = ("vs B: geometric mean over the group's problems of B's median time / the variant's, same matrix, N "
                 "and machine; faster than B: the fraction of those problems where the variant beat B.")
    return t


# the DLMC collection beyond the speedup summary: who wins each problem (``report --kind dlmc``)


def dlmc_rows(rows: list[dict]) -> list[dict]:
    rows = [r for r in rows if parse_tags(r["tags"]).get("suite") == "dlmc"]
    if not rows:
        raise ResultsError("no rows tagged suite=dlmc (run experiments/dlmc_full.toml)")
    return best_per_variant(merge_rounds(rows))


def dlmc_group(r: dict) -> tuple[str, str, str, str]:
    tg = parse_tags(r["tags"])
    method = tg.get("method", "").removesuffix("_pruning")
    n_label = "layer" if tg.get("model") == "rn50" else str(r["n"])
    return (tg.get("model", ""), method, tg.get("sparsity", ""), n_label)


def dlmc_group_order(g: tuple) -> tuple:
    def num(x):
        try:
            return float(x)
        except ValueError:
            return 0.0
    return (g[0], g[1], num(g[2]), num(g[3]))


def wins_table(rows: list[dict]) -> Table:
    """Per group and device: the share of problems on which each variant was the fastest of its device."""
    rows = dlmc_rows(rows)
    problems: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["status"] == "PASS":
            problems[(r["machine"], r["device"], *problem_key(r))].append(r)
    tally: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    count: dict[tuple, int] = defaultdict(int)
    several = len({r["machine"] for r in rows}) > 1
    for (machine, device, *_), cands in problems.items():
        best = min(cands, key=lambda r: r["median_s"])
        g = (*dlmc_group(best), machine if several else "", device)
        count[g] += 1
        tally[g][best["variant"]] += 1
        for r in cands:
            tally[g].setdefault(r["variant"], 0)
    cols = ["model", "method", "sparsity", "N"] + (["machine"] if several else []) + ["variant", "problems", "wins"]
    t = Table(title=f"DLMC: share of problems each variant wins (fastest of its device) — {machines_and_dates(rows)}",
              columns=cols, formats={"wins": "pct"})
    for g in sorted(tally, key=lambda g: (dlmc_group_order(g[:4]), g[4], g[5])):
        per = tally[g]
        for variant in sorted(per, key=lambda v: (-per[v], v)):
            t.rows.append([*g[:4], *([g[4]] if several else []), variant, count[g], per[variant] / count[g]])
    t.caption = ("A problem is one matrix at one N on one machine; its winner is the passing variant of the device "
                 "with the lowest median time (baselines included). N = layer: the RN50 layer's batch size.")
    return t


def speedup_points(rows: list[dict]) -> dict[tuple, dict[str, dict[float, float]]]:
    """(model, method, N label, machine) → variant → sparsity → geomean speedup over the dense baseline."""
    rows = dlmc_rows(rows)
    idx = baseline_index(rows)
    ups: dict[tuple, dict[str, dict[float, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        base = DENSE_BASELINES.get(r["device"])
        if r["status"] != "PASS" or r["variant"] == base or not base:
            continue
        br = find_baseline_row(r, base, idx)
        if br is None or not r["median_s"] > 0:
            continue
        model, method, sparsity, n_label = dlmc_group(r)
        try:
            s = float(sparsity)
        except ValueError:
            continue
        ups[(model, method, n_label, r["machine"])][r["variant"]][s].append(br["median_s"] / r["median_s"])
    return {k: {v: {s: geomean(x) for s, x in per.items()} for v, per in vs.items()} for k, vs in ups.items()}


def break_even_table(rows: list[dict], baseline: str | None = None) -> Table:
    """Where sparse starts to win: for each shape (M×K, N) measured at three or more sparsities, the sparsity
    at which each variant's speedup over the baseline crosses 1× (linear in sparsity, log in speedup, at the
    last crossing from below), beside its speedups at the lowest and highest sparsity measured."""
    rows = speedups(best_per_variant(merge_rounds(rows)), baseline)
    bases = {r["baseline_id"] for r in rows if r["baseline_id"]}
    fams: dict[tuple, dict[str, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["variant"] in bases or not finite(r["speedup"]):
            continue
        fams[(r["machine"], r["m"], r["k"], r["n"], r["dtype"], r["threads"])][r["variant"]][r["sparsity"]] = r["speedup"]
    t = Table(title=f"Break-even sparsity vs {', '.join(sorted(bases)) or 'baseline'} — {machines_and_dates(rows)}",
              columns=["M×K", "N", "threads", "variant", "sparsities", "speedup at lowest", "speedup at highest",
                       "sparse wins from"],
              formats={"speedup at lowest": "x", "speedup at highest": "x", "sparse wins from": "f3"})
    for (machine, m, k, n, _, threads), per in sorted(fams.items()):
        if len({s for v in per.values() for s in v}) < 3:
            continue
        for v in sorted(per, key=ladder_order(rows)):
            pts = sorted(per[v].items())
            if len(pts) < 2:
                continue
            ss = [p[0] for p in pts]
            ups = [p[1] for p in pts]
            if all(u >= 1 for u in ups):
                where: Any = f"≤ {ss[0]:.3g}"
            elif ups[-1] < 1:
                where = f"> {ss[-1]:.3g}"
            else:
                i = max(j for j in range(len(ups) - 1) if ups[j] < 1 <= ups[j + 1])
                l0, l1 = math.log(ups[i]), math.log(ups[i + 1])
                where = ss[i] + (ss[i + 1] - ss[i]) * (0 - l0) / (l1 - l0)
            t.rows.append([f"{m}×{k}", n, threads, v, len(ss), ups[0], ups[-1], where])
    if not t.rows:
        raise ResultsError("break-even needs one shape measured at three or more sparsities")
    t.caption = "Interpolated between the two measured sparsities around the crossing (log speedup, linear sparsity)."
    return t


TABLE_KINDS = ("auto", "ladder", "compare", "study", "dlmc", "break-even", "conv")


def tables_for(rows: list[dict], kind: str = "auto", baseline: str | None = None,
               ceilings: dict[str, dict] | None = None) -> list[Table]:
    """The tables ``report`` shows for these rows. ``auto``: the study table and the DLMC summary for rows
    tagged with those suites, then ladder tables (one per problem) for up to 6 other problems, else one
    side-by-side compare table."""
    if kind not in TABLE_KINDS:
        raise ResultsError(f"unknown table kind {kind!r}; choose {', '.join(TABLE_KINDS)}")
    if not rows:
        raise ResultsError("the result files hold no rows")
    if kind == "compare":
        return [compare_table(rows, baseline=baseline)]
    if kind == "ladder":
        return ladder_tables(rows, baseline, ceilings)
    if kind == "study":
        return [study_table(rows, baseline)]
    if kind == "dlmc":
        return [dlmc_summary(rows), wins_table(rows)]
    if kind == "break-even":
        return [break_even_table(rows, baseline)]
    if kind == "conv":
        return conv_tables(rows)
    suites = defaultdict(list)
    for r in rows:
        suites[parse_tags(r["tags"]).get("suite", "")].append(r)
    tables = []
    if suites.get("study"):
        tables.append(study_table(suites.pop("study"), baseline))
    if suites.get("dlmc"):
        dlmc = suites.pop("dlmc")
        tables += [dlmc_summary(dlmc), wins_table(dlmc)]
    if suites.get("conv"):  # the convolution table (docs/conv.md)
        tables += conv_tables(suites.pop("conv"))
    rest = [r for group in suites.values() for r in group]
    if rest:
        n_problems = len({(r["machine"], *problem_key(r)) for r in rest})
        tables += ladder_tables(rest, baseline, ceilings) if n_problems <= 6 else [compare_table(rest, baseline=baseline)]
        try:
            tables.append(break_even_table(rest, baseline))
        except ResultsError:
            pass  # no shape at three sparsities
    return tables


def clip(text: str, width: int = 44) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def ceilings_for(machine: str, ceilings: dict[str, dict]) -> dict | None:
    """The ceilings of a row's machine: the exact label, else the one stored label that contains it or is
    contained in it ("H100" and "NVIDIA H100 80GB HBM3"); None when absent or ambiguous."""
    if machine in ceilings:
        return ceilings[machine]
    m = machine.lower().strip()
    if not m:
        return None
    close = [c for key, c in ceilings.items() if m in key.lower() or key.lower() in m]
    return close[0] if len(close) == 1 else None


# ----------------------------------------------------------------------------------------------- conv
# The convolution table (docs/conv.md): the course study's Table 3 from result rows of ``conv:`` problems.
#
# One row per problem and device: the image and channels, the sparsity, the input and the im2col patch
# matrix (bytes, and how many times the input it is), each sparse convolution's median time, the dense
# im2col + GEMM baseline and the library convolution (torch: oneDNN or cuDNN), the best sparse time's speedup
# over both, and the study's SparseRT speedup over cuDNN on a T4 for the same problem
# (``spmm_study/data/conv_table3.csv``, from the course study's Table 3). Built from rows alone, like every
# report.

CONV_TABLE3 = Path(__file__).resolve().parent / "data" / "conv_table3.csv"
CONV_LIBRARY = {"cpu": "cpu.conv.torch", "gpu": "gpu.conv.torch"}


def study_speedups(path: Path = CONV_TABLE3) -> dict[tuple, float]:
    """(image, channels, sparsity) → the study's SparseRT speedup over cuDNN (T4)."""
    with open(path, newline="", encoding="utf-8") as f:
        return {(int(r["image"]), int(r["channels"]), round(float(r["sparsity"]), 2)): float(r["t4_speedup_vs_cudnn"])
                for r in csv.DictReader(f)}


def _conv_facts(rows: list[dict]) -> dict:
    for r in rows:
        try:
            info = json.loads(r.get("info") or "{}")
        except (json.JSONDecodeError, TypeError):
            continue
        if "geometry" in info:
            return info
    return {}


def _conv_geometry(matrix: str) -> tuple[int, int] | None:
    m = re.match(r"conv:(\d+)x(\d+)", matrix)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _conv_time(r: dict | None):
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
        dense, library = CONV_BASELINES[device], CONV_LIBRARY[device]
        sparse = sorted({r["variant"] for r in mine if not r["baseline"]}, key=ladder_order(mine))
        groups: dict[tuple, dict[str, dict]] = defaultdict(dict)
        for r in mine:
            per = groups[(r["machine"], *problem_key(r))]
            prev = per.get(r["variant"])
            if prev is None or (r["status"] == "PASS" and (prev["status"] != "PASS" or r["median_s"] < prev["median_s"])):
                per[r["variant"]] = r  # several params of one variant: its best
        names = [v.split(".", 2)[2].replace("_", " ") for v in sparse]  # headers wrap between words at 80 columns
        cols = ["image", "channels", "sparsity", "input", "patches", "inflation",
                "dense im2col+GEMM", "library conv"] + names + ["best", "vs GEMM", "vs library", "study T4 vs cuDNN"]
        formats = {c: "time" for c in ["dense im2col+GEMM", "library conv"] + names}
        formats.update({"sparsity": "f3", "input": "bytes", "patches": "bytes", "inflation": "x", "vs GEMM": "x",
                        "vs library": "x", "study T4 vs cuDNN": "x"})
        t = Table(title=f"Sparse 3×3 convolution (the study's Table 3), {device.upper()} — {machines_and_dates(mine)}",
                  columns=cols, formats=formats)
        def order(key):  # the study's order: problems 1-4 (largest image first), 90% before 95%
            r0 = next(iter(groups[key].values()))
            hw = _conv_geometry(r0["matrix"]) or (0, 0)
            return (r0["sparsity"] > 0.925, -hw[0], -hw[1], key)

        for key in sorted(groups, key=order):
            per = groups[key]
            r0 = next(iter(per.values()))
            facts = _conv_facts(per.values())
            hw = _conv_geometry(r0["matrix"])
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
                           _conv_time(per.get(dense)), _conv_time(per.get(library))] + [_conv_time(per.get(v)) for v in sparse] +
                          [best["idea"] if best else "-", ratio(dense), ratio(library), study])
        threads = sorted({r["threads"] for r in mine if r["device"] == "cpu"})
        on = f" CPU threads: {'/'.join(map(str, threads))}." if threads else ""
        t.caption = (f"Median times. vs GEMM / vs library = {dense} / {library} time over the best sparse time, same "
                     f"problem and machine; patches = the im2col matrix (K×N values), inflation = patches / input. "
                     f"Study: SparseRT im2col+SpMM over cuDNN on a T4, batch 1.{on}")
        out.append(t)
    return out
