"""Plots from result rows only (docs/ARCHITECTURE.md §8): PNGs through matplotlib's Agg backend, each with a title, axis
units, and the machine(s) and date(s) of the rows it draws.

Nothing here reads a file or measures: rows come from ``report.load_rows``, the machine's ceilings from
``calibrate.load`` and a matrix's row lengths and statistics from ``sources``, all passed in by the caller.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from spmm_study.errors import ResultsError
from spmm_study.files import ForeignFileError
from spmm_study.report import (best_per_variant, ceilings_for, clip, dlmc_group_order, dlmc_rows, geomean,
                               ladder_order, ladder_position, machines_and_dates, merge_rounds, params_label,
                               problem_key, speedup_points, speedups)
from spmm_study.table import finite, fmt_time


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path: Path, rows: list[dict] | None = None, note: str = "") -> Path:
    """Footer with the machine(s) and date(s), then save the PNG (small: 110 dpi)."""
    import time as _time

    from spmm_study.version import __version__

    who = machines_and_dates(rows) if rows else _time.strftime("%Y-%m-%d")
    fig.text(0.01, 0.005, f"{who} · spmm-study {__version__}" + (f" · {note}" if note else ""),
             fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    from spmm_study.files import atomic_save

    path = Path(path)
    try:  # a temporary file renamed over the name: never written through a link at the PNG's name
        atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        _pyplot().close(fig)
    return path


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _plain_log_ticks(ax, axis: str = "y") -> None:
    """Log axes labelled 0.1, 1, 10 rather than 10^-1, 10^0, 10^1 (students read these faster)."""
    from matplotlib.ticker import FuncFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _colours(count: int) -> list:
    """``count`` distinct colours: matplotlib's ten-colour cycle repeats past ten series (two variants
    looked the same), so past ten take tab20, past twenty evenly spaced hues of a perceptual map."""
    import matplotlib

    if count <= 10:
        return [f"C{i}" for i in range(count)]
    if count <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [cmap(i) for i in range(count)]
    cmap = matplotlib.colormaps["turbo"]
    return [cmap(0.05 + 0.9 * i / (count - 1)) for i in range(count)]


def _log_ticks_with_labels(ax, values, axis: str = "y") -> None:
    """A log axis labelled with plain numbers, also when fewer than two powers of ten fall inside the data
    (then 2 and 5 times each power are labelled too: such a chart had one y label, or none)."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator

    _plain_log_ticks(ax, axis)
    vals = [v for v in values if finite(v) and v > 0]
    if vals and math.floor(math.log10(max(vals))) - math.ceil(math.log10(min(vals))) + 1 < 2:
        target = ax.yaxis if axis == "y" else ax.xaxis
        target.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        target.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


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
    # One problem has one compulsory intensity: every variant stood in one column. There, each variant
    # stands at its own modelled intensity (useful flops per byte its movement model moves) instead.
    modelled = len({round(r["intensity"], 9) for r in ok}) == 1 and \
        all(finite(r["bytes_model"]) and r["bytes_model"] > 0 for r in ok)

    def x_of(r):
        return r["intensity"] * r["bytes_compulsory"] / r["bytes_model"] if modelled else r["intensity"]

    fig, ax = plt.subplots(figsize=(10, 5))
    xs = [x_of(r) for r in ok]
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
            # named in a legend of their own: labels written at the roofs' ends fell on top of each other
            # when the 1-thread and all-thread peaks were close (a busy machine, or a memory-bound core)
            roofs_drawn.append(ax.plot(xr, [bw * xr[0], peak, peak], style, color=color, lw=1.2, alpha=0.8,
                                       label=f"{machine}{' ' + label if label else ''}: {bw:,.0f} GB/s, "
                                             f"{peak:,.0f} GFLOP/s")[0])
    variants = sorted({r["variant"] for r in ok}, key=ladder_order(ok))
    colours = _colours(len(variants))
    for j, v in enumerate(variants):
        mine = [r for r in ok if r["variant"] == v]
        ax.scatter([x_of(r) for r in mine], [r["gflops"] for r in mine], marker=_markers()[j % 12],
                   s=36, label=v, zorder=3, color=colours[j])
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_ticks_with_labels(ax, xs, "x")
    _log_ticks_with_labels(ax, [r["gflops"] for r in ok], "y")
    ax.set_xlabel("arithmetic intensity (useful flop per byte the variant's model moves; one problem)" if modelled
                  else "arithmetic intensity (useful flop per compulsory byte)")
    ax.set_ylabel("useful GFLOP/s (2·nnz·N / median time)")
    title = "Roofline: each variant against the measured roofs"
    if not roofs_drawn:
        title = "Roofline points (no ceilings stored: run 'spmm-study calibrate')"
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    # both legends beside the axes, where they cover no point and no roof
    dots = ax.legend(handles=ax.collections[:], fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0),
                     borderaxespad=0)
    if roofs_drawn:
        ax.add_artist(dots)
        ax.legend(handles=roofs_drawn, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                  title="roofs (calibrate)", title_fontsize=7)
    return _finish(fig, path, ok)


def plot_speedup_vs_sparsity(rows: list[dict], path: Path | str, baseline: str | None = None) -> Path:
    """Speedup over the baseline against sparsity, one line per variant (geometric mean over the problems
    at each sparsity), with the break-even line at 1×; like the figures of the SC'20 paper."""
    plt = _pyplot()
    rows = speedups(best_per_variant(merge_rounds(rows)), baseline)
    bases = {r["baseline_id"] for r in rows if r["baseline_id"]}
    pts: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["variant"] in bases or not finite(r["speedup"]):
            continue
        pts[r["variant"]][round(r["sparsity"], 4)].append(r["speedup"])
    if len({s for per in pts.values() for s in per}) < 2:
        raise ResultsError("speedup vs sparsity needs passing rows at two or more sparsities")
    fig, ax = plt.subplots(figsize=(9, 4.8))
    series = sorted(pts, key=ladder_order(rows))
    for j, (v, colour) in enumerate(zip(series, _colours(len(series)))):
        xs = sorted(pts[v])
        ax.plot(xs, [geomean(pts[v][x]) for x in xs], marker=_markers()[j % 12], label=v, color=colour)
    ax.axhline(1.0, color="0.3", lw=1, ls="--")
    ax.annotate("break-even with " + ", ".join(sorted(bases)), (ax.get_xlim()[1], 1.0), fontsize=7,
                va="bottom", ha="right", color="0.3")
    ax.set_yscale("log")
    _log_ticks_with_labels(ax, [geomean(x) for per in pts.values() for x in per.values()] + [1.0])
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
    gets one bar per order it ran; other variants one bar, their best params. Drawn only where loop orders
    were compared: two or more nests of one format beside any baseline (a folder of one variant and its
    baseline has no loop-order question). The axis is linear from zero: on a log axis a bar's height says
    nothing (420 GFLOP/s looked like a stub beside 760)."""
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
    nests = defaultdict(set)
    for k in order:
        if not best[k].get("baseline"):
            nests[best[k]["format"]].add(_order_label(best[k]))
    if max(map(len, nests.values()), default=0) < 2:
        raise ResultsError("no loop orders to compare: a loop-order chart needs two or more loop nests of one "
                           "format on one problem (experiments/loop_orders.toml)")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(order) + 2), 4.8))
    vals = [best[k]["gflops"] for k in order]
    bars = ax.bar(range(len(order)), vals, color=_colours(len(order)))
    for b, k in zip(bars, order):
        ax.annotate(fmt_time(best[k]["median_s"]), (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([f"{k[0]}\n{_order_label(best[k])}" for k in order], fontsize=7, rotation=20, ha="right")
    ax.set_ylim(0, max(vals) * 1.12)  # room for the time labels above the bars
    ax.set_ylabel("useful GFLOP/s")
    r0 = group[0]
    on = f"{r0['threads']} thread{'s' if r0['threads'] != 1 else ''}" if r0["device"] == "cpu" else r0["machine"] or "GPU"
    ax.set_title(f"Loop orders on {r0['matrix'].rsplit('/', 1)[-1]} ({r0['m']}×{r0['k']}, N={r0['n']}, {on})",
                 fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    return _finish(fig, path, group, note="bar labels: median time")


def _order_label(row: dict) -> str:
    """The loop order shown under a bar; a variant whose order is a Param shows the value it ran with."""
    order = row.get("loop_order", "")
    if not order or "param" in order.lower():
        return params_label(row) or order or row["idea"]
    return order


def plot_tile_heatmap(rows: list[dict], path: Path | str, variant: str | None = None) -> Path:
    """GFLOP/s of one variant over its two most varied numeric params (bars when only one varies), on the
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
    r0 = group[0]
    where = f"{clip(r0['matrix'].rsplit('/', 1)[-1])} ({r0['m']}×{r0['k']}, N={r0['n']})"
    if ykey is None:  # one param varies: bars, not a heatmap one cell high (it rendered as a thin strip)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(xs) + 3), 4.2))
        bars = ax.bar(range(len(xs)), grid[0], color=_colours(1)[0])
        for bar, v in zip(bars, grid[0]):
            if finite(v):
                ax.annotate(_num(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=8)
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([str(x) for x in xs])
        ax.set_xlabel(xkey)
        ax.set_ylabel("useful GFLOP/s")
        ax.grid(True, axis="y", alpha=0.25)
        ax.set_title(f"{r0['variant']}: GFLOP/s over {xkey}\n{where}", fontsize=10)
        return _finish(fig, path, group, note="other params: best value per bar")
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(xs) + 3), max(3.6, 0.7 * len(ys) + 2.4)))
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
    ax.set_yticklabels([str(y) for y in ys])
    ax.set_ylabel(ykey)
    fig.colorbar(im, ax=ax, label="useful GFLOP/s")
    ax.set_title(f"{r0['variant']}: GFLOP/s over {xkey} × {ykey}\n{where}", fontsize=10)
    return _finish(fig, path, group, note="other params: best value per cell")


def plot_row_lengths(spec: str, lengths, stats: dict, path: Path | str, bins: int = 40) -> Path:
    """Histogram of the row lengths (nonzeros per row) of a matrix: the load-balance picture. ``lengths``
    and ``stats`` (``sources.row_stats``) come from the caller, which loaded the matrix ``spec``."""
    import numpy as np

    plt = _pyplot()
    st = stats
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.hist(lengths, bins=min(bins, max(1, int(np.ptp(lengths)) + 1)) if lengths.size else 1, color="C0",
            edgecolor="white")
    ax.axvline(st["row_mean"], color="C3", ls="--", lw=1)
    ax.annotate(f"mean {st['row_mean']:.1f}", (st["row_mean"], ax.get_ylim()[1] * 0.95), color="C3", fontsize=8)
    ax.set_xlabel("nonzeros per row")
    ax.set_ylabel("rows")
    ax.set_title(f"Row lengths of {spec.rsplit('/', 1)[-1]}\n{st['rows']}×{st['cols']}, nnz {st['nnz']:,}, "
                 f"sparsity {st['sparsity']:.3f}, CV {st['row_cv']:.2f}, max/mean {st['row_max'] / max(st['row_mean'], 1e-9):.2f}",
                 fontsize=10)
    ax.grid(True, axis="y", alpha=0.25)
    return _finish(fig, path, None, note=spec)


def plot_dlmc(rows: list[dict], path: Path | str) -> Path:
    """Geomean speedup over the dense baseline against sparsity; a panel per model/method/N and machine."""
    pts = speedup_points(rows)
    if not pts:
        raise ResultsError("no DLMC rows with a dense baseline on the same problem and machine to plot")
    plt = _pyplot()
    panels = sorted(pts, key=lambda k: (dlmc_group_order((k[0], k[1], "0", k[2])), k[3]))[:12]
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.4 * nrows + 0.6), squeeze=False)
    several = len({k[3] for k in panels}) > 1
    for ax, key in zip(axes.flat, panels):
        model, method, n_label, machine = key
        series = sorted(pts[key].items())
        for (variant, per), colour in zip(series, _colours(len(series))):
            xs = sorted(per)
            ax.plot(xs, [per[x] for x in xs], marker="o", label=variant, color=colour)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        _plain_log_ticks(ax, "y")
        from matplotlib.ticker import LogLocator

        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # ticks inside a 1x-8x range too
        ax.set_xlabel("sparsity")
        ax.set_ylabel("geomean speedup over dense (×)")
        title = f"{model} {method}, N={n_label}" + (f"\n{machine[:40]}" if several else "")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("DLMC: geomean speedup over the dense baseline\n(each problem against its own machine's)",
                 fontsize=10)
    return _finish(fig, Path(path), dlmc_rows(rows))


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80]


def plot_all(rows: list[dict], folder: Path | str, baseline: str | None = None,
             ceilings: dict[str, dict] | None = None, row_lengths: Sequence[tuple] = ()) -> list[Path]:
    """Every plot the rows support, into ``folder``; plots the rows cannot support are skipped.
    ``ceilings``: ``calibrate.load()``; ``row_lengths``: (spec, lengths, ``sources.row_stats``) of each
    matrix whose row-length histogram to draw."""
    folder = Path(folder)
    written = []
    attempts = [("roofline.png", lambda p: plot_roofline(rows, p, ceilings)),
                ("loop_orders.png", lambda p: plot_loop_orders(rows, p)),
                ("speedup_vs_sparsity.png", lambda p: plot_speedup_vs_sparsity(rows, p, baseline))]

    attempts.append(("dlmc.png", lambda p: plot_dlmc(rows, p)))
    tuned = sorted({r["variant"] for r in rows if r["status"] == "PASS"
                    and len({x["params"] for x in rows if x["variant"] == r["variant"]}) >= 2})
    attempts += [(f"tiles_{_slug(v)}.png", lambda p, v=v: plot_tile_heatmap(rows, p, v)) for v in tuned]
    for name, fn in attempts:
        try:
            written.append(fn(folder / name))
        except ForeignFileError:
            raise  # a link or a device at the PNG's name: refused, never skipped in silence
        except ResultsError:
            continue  # these rows do not support this plot
    for spec, lengths, stats in row_lengths:
        written.append(plot_row_lengths(spec, lengths, stats, folder / f"rows_{_slug(spec)}.png"))
    if not written:
        raise ResultsError("these rows support no plot (no passing rows?)")
    return written
