"""``report --kind dlmc`` beyond the speedup summary: who wins each DLMC problem, and one plot of the collection.

Rows come from ``experiments/dlmc_full.toml`` (or any sweep over ``suite = "dlmc"``), from one machine or many
(several clusters' folders combine). A *problem* is one matrix at one N on one machine; on it, the variant
that *wins* is the fastest passing one of its device, baselines included. Ratios are only ever taken between
rows of the same machine (``report.find_baseline_row``), and the machine is part of every group.

* ``wins_table``: per model/method/sparsity/N and device, each variant's share of the problems it won.
* ``plot_dlmc``: geomean speedup over the device's dense baseline against sparsity, one panel per model/N
  and method, one line per variant.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from spmm_study.errors import ResultsError
from spmm_study.report import (DENSE_BASELINES, Table, baseline_index, best_per_variant, find_baseline_row, geomean,
                               machines_and_dates, merge_rounds, parse_tags, problem_key)


def _dlmc_rows(rows: list[dict]) -> list[dict]:
    rows = [r for r in rows if parse_tags(r["tags"]).get("suite") == "dlmc"]
    if not rows:
        raise ResultsError("no rows tagged suite=dlmc (run experiments/dlmc_full.toml)")
    return best_per_variant(merge_rounds(rows))


def _group(r: dict) -> tuple[str, str, str, str]:
    tg = parse_tags(r["tags"])
    method = tg.get("method", "").removesuffix("_pruning")
    n_label = "layer" if tg.get("model") == "rn50" else str(r["n"])
    return (tg.get("model", ""), method, tg.get("sparsity", ""), n_label)


def _order(g: tuple) -> tuple:
    def num(x):
        try:
            return float(x)
        except ValueError:
            return 0.0
    return (g[0], g[1], num(g[2]), num(g[3]))


def wins_table(rows: list[dict]) -> Table:
    """Per group and device: the share of problems on which each variant was the fastest of its device."""
    rows = _dlmc_rows(rows)
    problems: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["status"] == "PASS":
            problems[(r["machine"], r["device"], *problem_key(r))].append(r)
    tally: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    count: dict[tuple, int] = defaultdict(int)
    several = len({r["machine"] for r in rows}) > 1
    for (machine, device, *_), cands in problems.items():
        best = min(cands, key=lambda r: r["median_s"])
        g = (*_group(best), machine if several else "", device)
        count[g] += 1
        tally[g][best["variant"]] += 1
        for r in cands:
            tally[g].setdefault(r["variant"], 0)
    cols = ["model", "method", "sparsity", "N"] + (["machine"] if several else []) + ["variant", "problems", "wins"]
    t = Table(title=f"DLMC: share of problems each variant wins (fastest of its device) — {machines_and_dates(rows)}",
              columns=cols, formats={"wins": "pct"})
    for g in sorted(tally, key=lambda g: (_order(g[:4]), g[4], g[5])):
        per = tally[g]
        for variant in sorted(per, key=lambda v: (-per[v], v)):
            t.rows.append([*g[:4], *([g[4]] if several else []), variant, count[g], per[variant] / count[g]])
    t.caption = ("A problem is one matrix at one N on one machine; its winner is the passing variant of the device "
                 "with the lowest median time (baselines included). N = layer: the RN50 layer's batch size.")
    return t


def speedup_points(rows: list[dict]) -> dict[tuple, dict[str, dict[float, float]]]:
    """(model, method, N label, machine) → variant → sparsity → geomean speedup over the dense baseline."""
    rows = _dlmc_rows(rows)
    idx = baseline_index(rows)
    ups: dict[tuple, dict[str, dict[float, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        base = DENSE_BASELINES.get(r["device"])
        if r["status"] != "PASS" or r["variant"] == base or not base:
            continue
        br = find_baseline_row(r, base, idx)
        if br is None or not r["median_s"] > 0:
            continue
        model, method, sparsity, n_label = _group(r)
        try:
            s = float(sparsity)
        except ValueError:
            continue
        ups[(model, method, n_label, r["machine"])][r["variant"]][s].append(br["median_s"] / r["median_s"])
    return {k: {v: {s: geomean(x) for s, x in per.items()} for v, per in vs.items()} for k, vs in ups.items()}


def plot_dlmc(rows: list[dict], path: Path | str) -> Path:
    """Geomean speedup over the dense baseline against sparsity; a panel per model/method/N and machine."""
    from spmm_study.plots import _finish, _pyplot

    pts = speedup_points(rows)
    if not pts:
        raise ResultsError("no DLMC rows with a dense baseline on the same problem and machine to plot")
    plt = _pyplot()
    panels = sorted(pts, key=lambda k: (_order((k[0], k[1], "0", k[2])), k[3]))[:12]
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.4 * nrows + 0.6), squeeze=False)
    several = len({k[3] for k in panels}) > 1
    for ax, key in zip(axes.flat, panels):
        model, method, n_label, machine = key
        for variant, per in sorted(pts[key].items()):
            xs = sorted(per)
            ax.plot(xs, [per[x] for x in xs], marker="o", label=variant)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel("sparsity")
        ax.set_ylabel("geomean speedup over dense (×)")
        title = f"{model} {method}, N={n_label}" + (f"\n{machine[:40]}" if several else "")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("DLMC: geomean speedup over the dense baseline, same problem and machine", fontsize=10)
    return _finish(fig, Path(path), _dlmc_rows(rows))
