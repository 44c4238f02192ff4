"""``spmm-study infer``: a sparse network run end to end, engines side by side, checked against its truth.

Networks: ``spdnn:N`` (the challenge's files under ``--spdnn-root`` / ``$SPMM_STUDY_SPDNN``),
``generated:NxL[:seed=S]`` (``generate``), or a list of matrix specs (each A_l = W_lᵀ, out × in, chained).
Truth: the official categories file when the root has one for this depth, else the float64 scipy chain.
Writes ``layers.csv`` (per engine and layer: live inputs in and out, nnz, time), ``summary.json`` and
``live_inputs.png`` into the output folder (atomically; an existing one needs ``--force``).
"""

from __future__ import annotations

import json
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spmm_study.errors import DeviceUnavailable, ParamError, ResultsError, SourceError
from spmm_study.formats import CSR
from spmm_study.limits import MAX_PARTS, MAX_BATCH, MAX_LAYERS, MAX_NEURONS, MAX_REPEATS, check_count
from spmm_study.nets import chain, generate, spdnn
from spmm_study.epilogue import ACTS, RULES

SPDNN_ENV = "SPMM_STUDY_SPDNN"


def spdnn_root(root: str | os.PathLike | None) -> Path:
    """The challenge folder the user points to: the option, else $SPMM_STUDY_SPDNN (the project ships no challenge files)."""
    for cand in (root, os.environ.get(SPDNN_ENV)):
        if cand:
            p = Path(cand)
            if not p.is_dir():
                raise SourceError(f"--spdnn-root {p} is not a folder")
            return p
    raise SourceError("no Sparse DNN challenge folder: pass --spdnn-root DIR or set $SPMM_STUDY_SPDNN "
                      "(it holds neuron1024/n1024-l1.tsv... and sparse-images-1024.tsv)")


@dataclass
class InferSetup:
    net: spdnn.Network
    y0: CSR
    src: np.ndarray
    truth: np.ndarray | None
    truth_kind: str
    label: str
    meta: dict = field(default_factory=dict)


def parse_net(text: str) -> tuple[str, dict]:
    m = re.fullmatch(r"spdnn(?::(\d{1,19}))?", text)
    if m:
        return "spdnn", {"neurons": int(m.group(1) or 1024)}
    m = re.fullmatch(r"generated:(\d{1,19})x(\d{1,19})((?::seed=\d{1,19})?)", text)
    if m:  # 19 digits: int64 at most, checked against the stated maxima before anything is built
        seed = int(m.group(3)[6:]) if m.group(3) else 0
        neurons = check_count(int(m.group(1)), f"--net {text}: neurons", MAX_NEURONS)
        layers = check_count(int(m.group(2)), f"--net {text}: layers", MAX_LAYERS)
        return "generated", {"neurons": neurons, "layers": layers, "seed": seed}
    raise ParamError(f"--net {text[:60]!r}: expected spdnn[:NEURONS] or generated:NEURONSxLAYERS[:seed=S]")


def check_options(engines: list[str], device: str, tile_n: int, repeats: int, bias: float, ymax: float,
                  parts: int, seed: int, champion_src) -> tuple[list[str], list[str]]:
    """Every option of ``infer`` checked before a network is read (one ParamError naming the option). Returns
    the engines that can run here and a warning line for each one that cannot (``chain.preflight``)."""
    import math

    from spmm_study.problem import check_seed

    if device not in ("cpu", "gpu"):
        raise ParamError(f"--device {device!r}: choose cpu or gpu")
    if tile_n not in (16, 64, 256):
        raise ParamError(f"--tile-n {tile_n}: choose 16, 64 or 256")
    check_count(repeats, "--repeats", MAX_REPEATS)
    if not math.isfinite(bias) or not math.isfinite(ymax) or ymax < 0:
        raise ParamError("--bias and --ymax must be finite numbers (ymax >= 0)")
    if parts > 1 and device != "cpu":
        raise ParamError("--parts splits the inputs across CPU processes; several GPUs (--gpus) are not built yet")
    kept = chain.preflight(engines, device, champion_src)  # before reading a network: unknown or unavailable
    check_seed(seed)
    check_count(parts, "--parts", MAX_PARTS)
    return kept


def summary_table(setup: "InferSetup", rows: list[dict], threads, machine: str):
    """The engines side by side (a rich Table: time, edges/s, live edges/s, modelled MB, categories, truth)."""
    import math

    from rich.markup import escape
    from rich.table import Table

    from spmm_study.table import fmt_time

    t = Table(title=f"{escape(setup.label)}: {setup.src.size} inputs, {setup.net.depth} layers, "
              f"{threads} thread(s), {escape(machine)}", header_style="bold")
    for col in ("engine", "time", "edges/s", "live edges/s", "MB moved", "categories", "truth"):
        t.add_column(col, justify="left" if col == "engine" else "right")
    for r in rows:
        mb = r.get("bytes_model", float("nan"))
        t.add_row(r["engine"], fmt_time(r["time_s"]), f"{r['edges_per_s']:.3g}",
                  f"{r['live_edges_per_s']:.3g}" if math.isfinite(r["live_edges_per_s"]) else "-",
                  f"{mb / 1e6:.4g}" if math.isfinite(mb) else "-",
                  str(r.get("category_count", len(r["categories"]))), "match" if r["match"] else "[bold red]DIFFER[/]")
    return t


def summary_lines(setup: "InferSetup", rows: list[dict]) -> list[str]:
    """The lines under the table: each part of a split run, the categories found, and what the columns mean."""
    from rich.markup import escape

    from spmm_study.table import fmt_time

    lines = []
    for r in rows:
        if r["engine"] == "champion":
            from spmm_study.nets.champion import summary_line

            lines.append(summary_line(r))
        for p in r.get("parts", []):
            lines.append(f"  {r['engine']} part {p['part']}: inputs {p['start'] + 1}-{p['end']}, {p['input_nnz']} "
                         f"input nonzeros, {fmt_time(p['time_s'])}, {p['edges_per_s']:.3g} edges/s")
    cats = next((r for r in rows if r["match"]), rows[0])["categories"]
    shown = " ".join(map(str, cats if len(cats) <= 100 else cats[:20]))
    lines.append(f"categories ({len(cats)}, 1-based){' first 20' if len(cats) > 100 else ''}: {shown}")
    lines.append(f"[dim]truth: {escape(setup.truth_kind)}; edges/s = inputs x sum nnz(W) / time; live: edges over "
                 f"live inputs only; MB moved: compulsory bytes of the layers run (unfused adds its elementwise "
                 f"pass: 4 M x live values per layer)[/]")
    return lines


def build_setup(net_spec: str | None, matrices: list[str] | None, root, layers: int | None, batch: int | None,
                bias: float, rule: str, act: str, ymax: float, seed: int = 0, dlmc_root=None) -> InferSetup:
    if batch is not None:  # stated maxima first: nothing below allocates from these numbers unchecked
        check_count(batch, "--batch", MAX_BATCH)
    if layers is not None:
        check_count(layers, "--layers", MAX_LAYERS)
    if matrices:
        if net_spec:
            raise ParamError("give either --net or --matrix specs, not both")
        return _spec_setup(matrices, layers, batch, bias, rule, act, ymax, seed, dlmc_root)
    kind, args = parse_net(net_spec or "spdnn:1024")
    if kind == "generated":
        n, depth = args["neurons"], layers or args["layers"]
        count = batch or 1200
        net = generate.network(n, depth, seed=args["seed"], batch=count)
        y0 = generate.inputs(n, count, seed=args["seed"])
        src = chain.replicate(y0, count)
        truth = chain.reference_categories(net, y0, src)
        return InferSetup(net, y0, src, truth, "float64 reference", net.name)
    r = spdnn_root(root)
    n = args["neurons"]
    in_path = spdnn.inputs_path(r, n)
    if batch is not None:  # the batch's buffers, before the inputs are read and replicated into it
        spdnn.check_fits(n, [n], 32 * n, batch, f"the {n}-neuron network")
    y0 = spdnn.read_inputs(in_path, n)
    src = chain.replicate(y0, batch)
    net = spdnn.load_network(r, n, layers, batch=int(src.size))
    cat_path = spdnn.categories_path(r, n, net.depth)
    if cat_path is not None:
        cats = spdnn.read_categories(cat_path)
        truth, kind_t = chain.truth_for(cats, y0.m, src), f"official ({cat_path.name})"
    else:
        truth, kind_t = chain.reference_categories(net, y0, src), "float64 reference"
    return InferSetup(net, y0, src, truth, kind_t, net.name, {"inputs_file": str(in_path), "root": str(r)})


def _spec_setup(matrices, layers, batch, bias, rule, act, ymax, seed, dlmc_root) -> InferSetup:
    from spmm_study import sources

    if rule not in RULES or act not in ACTS:
        raise ParamError(f"--rule must be one of {', '.join(RULES)} and --act one of {', '.join(ACTS)}")
    mats = [sources.load(spec, seed=seed, dlmc_root=dlmc_root).a.astype(np.float32) for spec in matrices]
    if layers is not None:
        if layers > len(mats):
            raise ParamError(f"--layers {layers} but only {len(mats)} matrix specs were given")
        mats = mats[:layers]
    widths = [a.m for a in mats]
    count = batch or 256
    spdnn.check_fits(mats[0].k, widths, sum(a.nnz for a in mats), count, "this chain of matrices")
    biases = [np.full(a.m, bias, dtype=np.float32) for a in mats]
    net = spdnn.Network(mats, biases, name="specs:" + ",".join(matrices), rule=rule, act=act, ymax=ymax)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1B]))
    dense = np.abs(rng.standard_normal((count, mats[0].k))).astype(np.float32)
    y0 = CSR.from_dense(dense)
    src = np.arange(count, dtype=np.int64)
    return InferSetup(net, y0, src, chain.reference_categories(net, y0, src), "float64 reference", net.name)


def run_engines(setup: InferSetup, engines: list[str], device: str, prune_dead: bool, repeats: int,
                tile_n: int, champion_src=None, parts: int = 1, warnings: list | None = None) -> list[dict]:
    """One summary per engine: median time over ``repeats`` chains, edges/s, categories and their check.
    ``parts`` > 1: the batch split into contiguous nnz-balanced parts, one process each (``partition``).
    An engine that turns out unavailable while running (the champion's build failing, a device lost) is a
    line in ``warnings`` and the others go on; DeviceUnavailable only when none ran."""
    check_count(repeats, "--repeats", MAX_REPEATS)
    if parts > 1:
        return [_run_parts(setup, eng, device, prune_dead, repeats, parts) for eng in engines]
    out, lost = [], []
    for eng in engines:
        try:
            out.append(_run_engine(setup, eng, device, prune_dead, repeats, tile_n, champion_src))
        except DeviceUnavailable as exc:
            lost.append(str(exc))
            if warnings is not None:
                warnings.append(f"warning: {exc}; skipped")
    if not out and lost:
        raise DeviceUnavailable(lost[0])
    return out


def _run_engine(setup: InferSetup, eng: str, device: str, prune_dead: bool, repeats: int, tile_n: int,
                champion_src) -> dict:
    if eng == "champion":  # a program of its own, run on files: nets/champion.py
        from spmm_study.nets import champion

        return champion.run_engine(setup, repeats, champion_src)
    runs = [chain.run_chain(setup.net, setup.y0, setup.src, eng, device, prune_dead, tile_n, champion_src)
            for _ in range(repeats)]
    times = [r.time_s for r in runs]
    med = statistics.median(times)
    best = min(runs, key=lambda r: abs(r.time_s - med))
    ok = setup.truth is not None and all(np.array_equal(r.categories, setup.truth) for r in runs)
    return {"engine": eng, "device": best.device, "time_s": med, "times_s": times,
            "bytes_model": modelled_bytes(setup.net, best.layers, eng),
            "edges_per_s": best.batch * best.edges / med, "live_edges_per_s": best.live_edges / med,
            "edges": best.edges, "batch": best.batch, "setup_s": best.setup_s,
            "categories": (best.categories + 1).tolist(), "match": bool(ok), "info": best.info,
            "layers": [vars(x) for x in best.layers]}


def modelled_bytes(net, layers, engine: str) -> float:
    """Compulsory bytes of the dense-Yᵀ chains over the layers actually run: per layer A (values, int32 indices,
    offsets), the bias, Yᵀ read once (K × live inputs) and C written once; the unfused chain adds its
    elementwise pass, 4·M·live values (bias: read + write C; activation: read + write C). NaN for the
    library chains, whose traffic this model does not describe."""
    if engine not in ("fused", "unfused"):
        return float("nan")
    total = 0.0
    for row, a in zip(layers, net.layers):
        total += a.nnz * 8 + (a.m + 1) * 4 + a.m * 4 + (a.k + a.m) * row.live_in * 4
        if engine == "unfused":
            total += 4 * a.m * row.live_in * 4
    return total


def write_outputs(folder: Path, setup: InferSetup, rows: list[dict], meta: dict, force: bool) -> list[Path]:
    from spmm_study.files import atomic_write_text, claim_folder

    folder = Path(folder)
    names = ("layers.csv", "summary.json", "live_inputs.png")
    targets = [folder / n for n in names]
    # only a folder spmm-study made (its marker) has files it may replace, and only with --force
    if claim_folder(folder, names, what="infer folder") and not force:
        raise ResultsError(f"{folder} already holds an infer run; pass --force to replace it or --out elsewhere")
    lines = ["engine,layer,live_in,live_out,nnz,time_s"]
    for r in rows:
        for x in r["layers"]:
            lines.append(f"{r['engine']},{x['layer']},{x['live_in']},{x['live_out']},{x['nnz']},{x['time_s']:.9g}")
    atomic_write_text(targets[0], "\n".join(lines) + "\n")
    summary = {**meta, "network": setup.label, "truth": setup.truth_kind,
               "engines": [{k: v for k, v in r.items() if k != "layers"} for r in rows]}
    atomic_write_text(targets[1], json.dumps(summary, indent=2, default=str) + "\n")
    _plot(targets[2], setup, rows)
    return targets


def _plot(path: Path, setup: InferSetup, rows: list[dict]) -> None:
    import matplotlib

    from spmm_study.files import atomic_save

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    styles = ("-", "--", ":", "-.")
    traced = [r for r in rows if r["layers"]]  # the champion and split runs report no per-layer counts
    for k, r in enumerate(traced):  # engines agree on the live counts: distinct line styles keep each visible
        layers = [x["layer"] for x in r["layers"]]
        ax.plot(layers, [x["live_out"] for x in r["layers"]], label=r["engine"], drawstyle="steps-post",
                linestyle=styles[k % len(styles)], linewidth=2.5 - 0.5 * (k % 3))
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("live inputs after the layer")
    ax.set_title(f"{setup.label}: {setup.src.size} inputs")
    ax.grid(True, which="both", alpha=0.3)
    if traced:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no engine of this run reports live inputs per layer", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    try:
        atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


def _run_parts(setup: InferSetup, eng: str, device: str, prune_dead: bool, repeats: int, parts: int) -> dict:
    from spmm_study.nets import partition

    if device != "cpu":
        raise ParamError("--parts splits the inputs across CPU processes; several GPUs (--gpus) are not built yet")
    if eng not in ("fused", "unfused", "scipy"):
        raise ParamError(f"--parts runs the CPU engines (fused, unfused, scipy), not {eng}")
    partition.split(np.diff(setup.y0.indptr)[setup.src], parts)  # refuse bad counts before starting processes
    from spmm_study import tiny

    # under SPMM_STUDY_TINY=1 the parts run one after the other in this process (starting processes that
    # import numba is most of a tiny run's time); the split, the gathering and the sums are the same code
    runs = [partition.run_parts(setup.net, setup.y0, setup.src, parts, eng, prune_dead, processes=not tiny.active())
            for _ in range(repeats)]
    # the parts run at the same time: the chain's time is its slowest part's (process start-up excluded)
    times = [max(r.time_s for r in res) for _, res in runs]
    med = statistics.median(times)
    _, res = runs[min(range(repeats), key=lambda i: abs(times[i] - med))]
    # live edges: the parts' work added up, over the time of the whole split run (its slowest part), as the
    # edges/s beside it; a split run used to print NaN here because the parts returned no layer counts
    live_edges = sum(r.live_edges for r in res)
    cats = partition.gather(res)
    ok = setup.truth is not None and all(np.array_equal(partition.gather(r), setup.truth) for _, r in runs)
    edges = setup.net.edges
    return {"engine": f"{eng} x{parts}", "device": "cpu", "time_s": med, "times_s": times,
            "edges_per_s": setup.src.size * edges / med, "live_edges_per_s": live_edges / med if med > 0 else float("nan"),
            "edges": edges,
            "batch": int(setup.src.size), "setup_s": 0.0, "categories": (cats + 1).tolist(), "match": bool(ok),
            "info": {"parts": parts, "wall_s": [w for w, _ in runs]},
            "parts": [{"part": r.part, "start": r.start, "end": r.end, "input_nnz": r.nnz, "time_s": r.time_s,
                       "edges_per_s": (r.end - r.start) * edges / r.time_s if r.time_s > 0 else float("nan")}
                      for r in res],
            "layers": []}
