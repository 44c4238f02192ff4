"""Reports from result files only (DESIGN.md §8): tables as data, markdown, speedups, PNG plots.

The report never measures. It reads flat ``Result`` rows (``rows.jsonl``, ``results.csv`` or run
directories, from any number of machines), merges repeated measurements of the same thing (the rounds of
an interleaved ``compare``), finds each row's baseline on the *same problem* and computes speedups.

* ``Table`` is data: a title, column names and rows of raw values (numbers stay numbers, a failed
  measurement is the string ``"FAIL"``). ``to_markdown`` and the rich renderer in ``cli.py`` format them.
* Speedup of a row = baseline median time / row median time, both on the same matrix, N, dtype and seed;
  the baseline row is taken from the same machine and thread count when there is one.
* Default baseline: the device's dense BLAS baseline (``cpu.dense.numpy``, ``gpu.dense.cublas``), else the
  first dense baseline variant found in the rows.

Plots (``plot_*``) use matplotlib's Agg backend and write PNGs; each carries a title, axis units, and the
machine(s) and date(s) of the rows it draws.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from spmm_study.errors import ResultsError
from spmm_study.results import read_rows

DENSE_BASELINES = {"cpu": "cpu.dense.numpy", "gpu": "gpu.dense.cublas"}
FAIL = "FAIL"
PROBLEM_KEYS = ("matrix", "n", "dtype", "seed")


# ----------------------------------------------------------------------------------------------- loading


def find_result_files(path: Path | str) -> list[Path]:
    """A rows.jsonl / results.csv, a run directory, or a folder of run directories (searched recursively)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise ResultsError(f"no such result file or directory: {path}")
    if (path / "rows.jsonl").exists() or (path / "results.csv").exists():
        return [path]
    found = sorted({p.parent for p in path.rglob("rows.jsonl")} | {p.parent for p in path.rglob("results.csv")})
    if not found:
        raise ResultsError(f"{path} holds no rows.jsonl or results.csv (searched recursively)")
    return found


def load_rows(paths: Iterable[Path | str]) -> list[dict]:
    """All rows of all result files; the same row read twice (jsonl and csv of one run) is kept once."""
    rows, seen = [], set()
    paths = list(paths)
    if not paths:
        raise ResultsError("no result files given")
    for p in paths:
        for f in find_result_files(p):
            for r in read_rows(f):
                ident = (r["variant"], r["matrix"], r["n"], r["dtype"], r["seed"], r["params"], r["threads"],
                         r["tags"], r["machine"], r["timestamp"], repr(r["median_s"]))  # repr: NaN == NaN
                if ident in seen:
                    continue
                seen.add(ident)
                rows.append(r)
    return rows


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


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


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
    want = DENSE_BASELINES.get(device)
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


def find_baseline_row(row: dict, baseline: str, idx: dict[tuple, list[dict]]) -> dict | None:
    """The baseline's row on the same problem, preferring the same machine and thread count."""
    cands = idx.get((baseline, *problem_key(row)), [])
    if not cands:
        return None

    def rank(c):
        return (c["machine"] != row["machine"], c["threads"] != row["threads"], c["median_s"])

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


@dataclass
class Table:
    """A table as data: raw values in ``rows`` (floats, ints, strings; ``"FAIL"`` for failures);
    ``formats`` maps a column to how it is shown (``time``, ``x`` for a speedup, ``bytes``, ``g3``...)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    caption: str = ""

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]


def fmt_time(s: Any) -> str:
    if not finite(s):
        return s if isinstance(s, str) else "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_bytes(b: Any) -> str:
    if not finite(b):
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def format_cell(value: Any, kind: str = "") -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Measured):
        return str(value)
    if value is None:
        return "-"
    if kind == "time":
        return fmt_time(value)
    if kind == "bytes":
        return fmt_bytes(value)
    if kind == "x":
        return f"{value:.2f}×" if finite(value) else "-"
    if kind == "pct":
        if not finite(value):
            return "-"
        return f"{100 * value:.1f}%" if abs(value) < 0.1 else f"{100 * value:.0f}%"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if kind.startswith("f"):
            return f"{value:.{int(kind[1:])}f}"
        return f"{value:.3g}"
    return str(value)


def formatted_rows(table: Table) -> list[list[str]]:
    return [[format_cell(v, table.formats.get(c, "")) for c, v in zip(table.columns, row)] for row in table.rows]


def to_markdown(tables: Table | Sequence[Table]) -> str:
    if isinstance(tables, Table):
        tables = [tables]
    parts = []
    for t in tables:
        lines = []
        if t.title:
            lines.append(f"**{t.title}**\n")
        numeric = [any(isinstance(v, (int, float, Measured)) and not isinstance(v, bool) for v in t.column(c))
                   for c in t.columns]
        lines.append("| " + " | ".join(t.columns) + " |")
        lines.append("| " + " | ".join("---:" if num else "---" for num in numeric) + " |")
        for row in formatted_rows(t):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        if t.caption:
            lines.append(f"\n{t.caption}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


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
                r["threads"], r["status"], cell(r["median_s"]), cell(r["gflops"]),
                r["bytes_model"], cell(r["gbps_model"]), r["speedup"]] +
                ([cell(r["gflops"] / roof_gflops(r, ceilings) if blank is None else 0.0)] if roofed else []))
        dates = machines_and_dates(group).rsplit(", ", 1)[-1]
        t.caption = f"Measured {dates}; speedup = {', '.join(bases) or 'baseline'} median time / variant median time."
        tables.append(t)
    return tables


@dataclass(frozen=True)
class Measured:
    """A compare cell: median time and speedup vs the baseline, shown as ``53.1 µs (2.12×)``."""

    time_s: float
    speedup: float

    def __str__(self) -> str:
        up = f" ({self.speedup:.2f}×)" if finite(self.speedup) else ""
        return fmt_time(self.time_s) + up


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
                 f"and machine.{on}")
    return t


def _several_machines(pairs: Sequence[tuple[str, str]]) -> set[str]:
    """Variants that appear with more than one machine (only those need the machine in their label)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for m, v in pairs:
        seen[v].add(m)
    return {v for v, ms in seen.items() if len(ms) > 1}


def _best_per_variant(rows: list[dict]) -> list[dict]:
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
    rows = speedups(_best_per_variant(merge_rounds(rows)), baseline)
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
    rows = _best_per_variant(merge_rounds(rows))
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


def break_even_table(rows: list[dict], baseline: str | None = None) -> Table:
    """Where sparse starts to win: for each shape (M×K, N) measured at three or more sparsities, the sparsity
    at which each variant's speedup over the baseline crosses 1× (linear in sparsity, log in speedup, at the
    last crossing from below), beside its speedups at the lowest and highest sparsity measured."""
    rows = speedups(_best_per_variant(merge_rounds(rows)), baseline)
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


TABLE_KINDS = ("auto", "ladder", "compare", "study", "dlmc", "break-even")


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
        return [dlmc_summary(rows)]
    if kind == "break-even":
        return [break_even_table(rows, baseline)]
    suites = defaultdict(list)
    for r in rows:
        suites[parse_tags(r["tags"]).get("suite", "")].append(r)
    tables = []
    if suites.get("study"):
        tables.append(study_table(suites.pop("study"), baseline))
    if suites.get("dlmc"):
        tables.append(dlmc_summary(suites.pop("dlmc")))
    rest = [r for group in suites.values() for r in group]
    if rest:
        n_problems = len({(r["machine"], *problem_key(r)) for r in rest})
        tables += ladder_tables(rest, baseline, ceilings) if n_problems <= 6 else [compare_table(rest, baseline=baseline)]
        try:
            tables.append(break_even_table(rest, baseline))
        except ResultsError:
            pass  # no shape at three sparsities
    return tables


# ----------------------------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path: Path, rows: list[dict] | None = None, note: str = "") -> Path:
    """Footer with the machine(s) and date(s), then save the PNG (small: 110 dpi)."""
    import time as _time

    from spmm_study import __version__

    who = machines_and_dates(rows) if rows else f"{_this_machine()}, {_time.strftime('%Y-%m-%d')}"
    fig.text(0.01, 0.005, f"{who} · spmm-study {__version__}" + (f" · {note}" if note else ""),
             fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _this_machine() -> str:
    from spmm_study.environment import machine_label

    return machine_label("cpu")


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _clip(text: str, width: int = 44) -> str:
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


def _plain_log_ticks(ax, axis: str = "y") -> None:
    """Log axes labelled 0.1, 1, 10 rather than 10^-1, 10^0, 10^1 (students read these faster)."""
    from matplotlib.ticker import FuncFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _markers():
    return ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]


def plot_roofline(rows: list[dict], path: Path | str, ceilings: dict[str, dict] | None = None) -> Path:
    """Useful GFLOP/s against arithmetic intensity (useful flops per compulsory byte), one marker per
    variant, under the measured roofs of each machine (``calibrate``): bandwidth × intensity and the FMA
    peak, all cores solid, one core dashed."""
    plt = _pyplot()
    ok = [r for r in merge_rounds(rows) if r["status"] == "PASS" and finite(r["intensity"]) and finite(r["gflops"])]
    if not ok:
        raise ResultsError("no passing rows to draw a roofline from")
    fig, ax = plt.subplots(figsize=(7.5, 5))
    xs = [r["intensity"] for r in ok]
    lo_x, hi_x = min(xs) / 4, max(xs) * 4
    roofs_drawn = []
    for i, machine in enumerate(sorted({r["machine"] for r in ok})):
        c = ceilings_for(machine, ceilings or {})
        if not c:
            continue
        color = f"C{7 + i}" if i < 3 else "0.4"
        dtype = ok[0]["dtype"]
        if c.get("device") == "gpu":
            roofs = [("", c.get("copy_gbps"), c.get("fma_gflops_fp32"), "-")]
        else:
            fp = "fp64" if dtype == "float64" else "fp32"
            one = all(r["threads"] == 1 for r in ok if r["machine"] == machine)  # solid: the roof the rows ran under
            roofs = [(f"all {c.get('threads_all', '')} threads", c.get("stream_gbps_all"), c.get(f"fma_gflops_{fp}_all"),
                      "--" if one else "-"),
                     ("1 thread", c.get("stream_gbps_1"), c.get(f"fma_gflops_{fp}_1"), "-" if one else "--")]
        for label, bw, peak, style in roofs:
            if not (finite(bw) and finite(peak)):
                continue
            knee = peak / bw
            xr = [min(lo_x, knee / 8), knee, max(hi_x, knee * 8)]
            ax.plot(xr, [bw * xr[0], peak, peak], style, color=color, lw=1.2, alpha=0.8)
            ax.annotate(f"{machine}{' ' + label if label else ''}: {bw:,.0f} GB/s, {peak:,.0f} GFLOP/s", (xr[-1], peak),
                        fontsize=7, ha="right", va="bottom", color=color)
            roofs_drawn.append(machine)
    variants = sorted({r["variant"] for r in ok}, key=ladder_order(ok))
    for j, v in enumerate(variants):
        mine = [r for r in ok if r["variant"] == v]
        ax.scatter([r["intensity"] for r in mine], [r["gflops"] for r in mine], marker=_markers()[j % 12],
                   s=36, label=v, zorder=3, color=f"C{j % 7}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax, "x")
    _plain_log_ticks(ax, "y")
    ax.set_xlabel("arithmetic intensity (useful flop per compulsory byte)")
    ax.set_ylabel("useful GFLOP/s (2·nnz·N / median time)")
    title = "Roofline: each variant against the measured roofs"
    if not roofs_drawn:
        title = "Roofline points (no ceilings stored: run 'spmm-study calibrate')"
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    return _finish(fig, path, ok)


def plot_speedup_vs_sparsity(rows: list[dict], path: Path | str, baseline: str | None = None) -> Path:
    """Speedup over the baseline against sparsity, one line per variant (geometric mean over the problems
    at each sparsity), with the break-even line at 1×; like the figures of the SC'20 paper."""
    plt = _pyplot()
    rows = speedups(_best_per_variant(merge_rounds(rows)), baseline)
    bases = {r["baseline_id"] for r in rows if r["baseline_id"]}
    pts: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["variant"] in bases or not finite(r["speedup"]):
            continue
        pts[r["variant"]][round(r["sparsity"], 4)].append(r["speedup"])
    if len({s for per in pts.values() for s in per}) < 2:
        raise ResultsError("speedup vs sparsity needs passing rows at two or more sparsities")
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for j, v in enumerate(sorted(pts, key=ladder_order(rows))):
        xs = sorted(pts[v])
        ax.plot(xs, [geomean(pts[v][x]) for x in xs], marker=_markers()[j % 12], label=v, color=f"C{j % 7}")
    ax.axhline(1.0, color="0.3", lw=1, ls="--")
    ax.annotate("break-even with " + ", ".join(sorted(bases)), (ax.get_xlim()[1], 1.0), fontsize=7,
                va="bottom", ha="right", color="0.3")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel("sparsity (fraction of zeros in A)")
    ax.set_ylabel(f"speedup over {', '.join(sorted(bases)) or 'baseline'} (×, log scale)")
    measured = [r for r in rows if finite(r["speedup"])]
    shapes = sorted({(r["m"], r["k"], r["n"]) for r in measured})
    threads = sorted({r["threads"] for r in measured if r["device"] == "cpu"})
    what = (f"{shapes[0][0]}×{shapes[0][1]}, N={shapes[0][2]}" if len(shapes) == 1 else
            f"geometric mean over {len(shapes)} shapes per sparsity")
    if threads:
        what += f", {'/'.join(map(str, threads))} CPU thread{'s' if threads != [1] else ''}"
    ax.set_title(f"Speedup vs sparsity ({what})", fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _finish(fig, path, rows)


def _order_is_param(row: dict) -> bool:
    return "param" in row.get("loop_order", "").lower()


def plot_loop_orders(rows: list[dict], path: Path | str) -> Path:
    """Bars of useful GFLOP/s per loop nest on one problem (the one measured with the most variants), each
    bar labelled with its loop order and median time. A variant whose loop order is a Param (``order=``)
    gets one bar per order it ran; other variants one bar, their best params."""
    plt = _pyplot()
    ok = [r for r in merge_rounds(rows) if r["status"] == "PASS"]
    by_problem: dict[tuple, list[dict]] = defaultdict(list)
    for r in ok:
        by_problem[(r["machine"], *problem_key(r), r["threads"])].append(r)
    if not by_problem:
        raise ResultsError("no passing rows for a loop-order chart")
    group = max(by_problem.values(), key=lambda g: len({r["variant"] for r in g}))
    best: dict[tuple, dict] = {}
    for r in group:
        key = (r["variant"], r["params"] if _order_is_param(r) else "")
        if key not in best or r["median_s"] < best[key]["median_s"]:
            best[key] = r
    order = sorted(best, key=lambda k: (ladder_position(best[k]), k[1]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(order) + 2), 4.8))
    vals = [best[k]["gflops"] for k in order]
    bars = ax.bar(range(len(order)), vals, color=[f"C{i % 10}" for i in range(len(order))])
    for b, k in zip(bars, order):
        ax.annotate(fmt_time(best[k]["median_s"]), (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([f"{k[0]}\n{_order_label(best[k])}" for k in order], fontsize=7, rotation=20, ha="right")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_ylabel("useful GFLOP/s (log scale)")
    r0 = group[0]
    ax.set_title(f"Loop orders on {r0['matrix'].rsplit('/', 1)[-1]} ({r0['m']}×{r0['k']}, N={r0['n']}, "
                 f"{r0['threads']} thread{'s' if r0['threads'] != 1 else ''})", fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    return _finish(fig, path, group, note="bar labels: median time")


def _order_label(row: dict) -> str:
    """The loop order shown under a bar; a variant whose order is a Param shows the value it ran with."""
    order = row.get("loop_order", "")
    if not order or "param" in order.lower():
        return params_label(row) or order or row["idea"]
    return order


def plot_tile_heatmap(rows: list[dict], path: Path | str, variant: str | None = None) -> Path:
    """GFLOP/s of one variant over its two most varied numeric params (one row when it has one), on the
    problem where it was measured with the most param combinations."""
    plt = _pyplot()
    ok = [r for r in merge_rounds(rows) if r["status"] == "PASS" and (variant is None or r["variant"] == variant)]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in ok:
        groups[(r["variant"], r["machine"], *problem_key(r), r["threads"])].append(r)
    groups = {k: g for k, g in groups.items() if len({r["params"] for r in g}) >= 2}
    if not groups:
        raise ResultsError("no variant measured with two or more param values: nothing for a heatmap")
    group = max(groups.values(), key=lambda g: len({r["params"] for r in g}))
    params = [json.loads(r["params"]) for r in group]
    numeric = [k for k in params[0] if all(isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool)
                                           for p in params)]
    varied = sorted(numeric, key=lambda k: -len({p[k] for p in params}))
    varied = [k for k in varied if len({p[k] for p in params}) > 1][:2]
    if not varied:
        raise ResultsError("the params that vary are not numeric: nothing for a heatmap")
    ykey = varied[1] if len(varied) > 1 else None
    xkey = varied[0]
    xs = sorted({p[xkey] for p in params})
    ys = sorted({p[ykey] for p in params}) if ykey else [None]
    grid = [[float("nan")] * len(xs) for _ in ys]
    for r, p in zip(group, params):
        i, j = ys.index(p[ykey] if ykey else None), xs.index(p[xkey])
        if not finite(grid[i][j]) or r["gflops"] > grid[i][j]:
            grid[i][j] = r["gflops"]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(xs) + 3), 0.7 * len(ys) + 2.4))
    im = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    vals = [v for line in grid for v in line if finite(v)]
    mid = (min(vals) + max(vals)) / 2
    for i in range(len(ys)):
        for j in range(len(xs)):
            if finite(grid[i][j]):  # dark text on the bright (fast) half of viridis, white on the dark half
                ax.text(j, i, _num(grid[i][j]), ha="center", va="center", fontsize=8,
                        color="k" if grid[i][j] > mid else "w")
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([str(x) for x in xs])
    ax.set_xlabel(xkey)
    ax.set_yticks(range(len(ys)))
    ax.set_yticklabels([str(y) for y in ys] if ykey else [""])
    if ykey:
        ax.set_ylabel(ykey)
    fig.colorbar(im, ax=ax, label="useful GFLOP/s")
    r0 = group[0]
    ax.set_title(f"{r0['variant']}: GFLOP/s over {xkey}{' × ' + ykey if ykey else ''}\n"
                 f"{_clip(r0['matrix'].rsplit('/', 1)[-1])} ({r0['m']}×{r0['k']}, N={r0['n']})", fontsize=10)
    return _finish(fig, path, group, note="other params: best value per cell")


def plot_row_lengths(spec: str, path: Path | str, dlmc_root: str | None = None, bins: int = 40) -> Path:
    """Histogram of the row lengths (nonzeros per row) of a matrix: the load-balance picture. Loading a
    matrix is not measuring, so this plot is allowed in a report."""
    import numpy as np

    from spmm_study import sources

    plt = _pyplot()
    loaded = sources.load(spec, dlmc_root=dlmc_root)
    lengths = loaded.a.row_lengths()
    st = sources.row_stats(loaded.a)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.hist(lengths, bins=min(bins, max(1, int(np.ptp(lengths)) + 1)) if lengths.size else 1, color="C0",
            edgecolor="white")
    ax.axvline(st["row_mean"], color="C3", ls="--", lw=1)
    ax.annotate(f"mean {st['row_mean']:.1f}", (st["row_mean"], ax.get_ylim()[1] * 0.95), color="C3", fontsize=8)
    ax.set_xlabel("nonzeros per row")
    ax.set_ylabel("rows")
    ax.set_title(f"Row lengths of {loaded.spec.rsplit('/', 1)[-1]}\n{st['rows']}×{st['cols']}, nnz {st['nnz']:,}, "
                 f"sparsity {st['sparsity']:.3f}, CV {st['row_cv']:.2f}, max/mean {st['row_max'] / max(st['row_mean'], 1e-9):.2f}",
                 fontsize=10)
    ax.grid(True, axis="y", alpha=0.25)
    return _finish(fig, path, None, note=loaded.spec)


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80]


def plot_all(rows: list[dict], folder: Path | str, baseline: str | None = None, ceilings_path=None,
             row_hist_specs: Sequence[str] = (), dlmc_root: str | None = None) -> list[Path]:
    """Every plot the rows support, into ``folder``; plots the rows cannot support are skipped."""
    from spmm_study import calibrate

    folder = Path(folder)
    written = []
    ceilings = calibrate.load(ceilings_path)
    attempts = [("roofline.png", lambda p: plot_roofline(rows, p, ceilings)),
                ("loop_orders.png", lambda p: plot_loop_orders(rows, p)),
                ("speedup_vs_sparsity.png", lambda p: plot_speedup_vs_sparsity(rows, p, baseline))]
    tuned = sorted({r["variant"] for r in rows if r["status"] == "PASS"
                    and len({x["params"] for x in rows if x["variant"] == r["variant"]}) >= 2})
    attempts += [(f"tiles_{_slug(v)}.png", lambda p, v=v: plot_tile_heatmap(rows, p, v)) for v in tuned]
    for name, fn in attempts:
        try:
            written.append(fn(folder / name))
        except ResultsError:
            continue  # these rows do not support this plot
    for spec in row_hist_specs:
        written.append(plot_row_lengths(spec, folder / f"rows_{_slug(spec)}.png", dlmc_root))
    if not written:
        raise ResultsError("these rows support no plot (no passing rows?)")
    return written
