"""Lab 6 — the roofline: each rung under this machine's measured roofs; which are memory-bound and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spmm_study.labs import common, matrices
from spmm_study.labs.common import Lab, Outcome, Question, Run, plot_runs

SIZES = {"tiny": ((64, 64), 16), "quick": ((2048, 512), 256), "full": ((2048, 2048), 512)}
SIM = {"tiny": ((64, 64), 16), "quick": ((512, 512), 64), "full": ((512, 512), 64)}
RUNGS = (("dense_tiled", "cpu.dense.tiled", {}), ("numpy", "cpu.dense.numpy", {}), ("csr_dot", "cpu.csr.dot", {}),
         ("csr_row", "cpu.csr.rowwise", {}), ("coo", "cpu.coo.scatter", {}), ("csr_tiled", "cpu.csr.tiled", {}),
         ("scipy", "cpu.csr.scipy", {}))


def ceilings(out: Outcome) -> dict | None:
    """This machine's 1-thread roofs: stored by 'spmm-study calibrate', else measured now (and not stored)."""
    if "ceil" in out.extra:
        return out.extra["ceil"]
    from spmm_study import calibrate
    from spmm_study.environment import machine_label
    from spmm_study.errors import SpmmError

    entry = None
    try:
        entry = calibrate.load().get(machine_label("cpu"))
    except SpmmError:
        entry = None
    source = "stored by 'spmm-study calibrate'"
    if not entry or "stream_gbps_1" not in entry:
        if out.size == "tiny":
            entry = {"stream_gbps_1": 20.0, "fma_gflops_fp32_1": 100.0}
            source = "placeholders (tiny size: no calibration)"
        else:
            quick = out.size == "quick"  # 3 x 64 MiB triad arrays: past most L3s, a second or two
            bw = calibrate.cpu_stream_gbps(1, (1 << 23) if quick else None, 3)
            peak = calibrate.cpu_fma_gflops(1, "float32", 200_000 if quick else 2_000_000, 3)
            entry = {"stream_gbps_1": bw, "fma_gflops_fp32_1": peak}
            source = "measured now (run 'spmm-study calibrate' to store them)"
    out.extra["ceil"] = {"bw": float(entry["stream_gbps_1"]), "peak": float(entry["fma_gflops_fp32_1"]), "source": source}
    return out.extra["ceil"]


def intensity(out: Outcome, key: str) -> float:
    from spmm_study import movement

    s = out.shapes[key]
    return s.flops / movement.compulsory(s).total


def model_intensity(out: Outcome, key: str) -> float:
    """Useful flops per byte of the rung's own modelled traffic (``movement.py``): where its loop nest, not
    the problem, puts it on the roofline. Rungs that re-read B or C per nonzero sit far left of the
    compulsory intensity."""
    s = out.shapes[key]
    m = out.model_total(key)
    return s.flops / m if m else intensity(out, key)


def roof(out: Outcome, key: str, inten: float | None = None) -> float:
    c = ceilings(out)
    return min(c["peak"], c["bw"] * (inten if inten is not None else intensity(out, key)))


def gflops(out: Outcome, key: str) -> float | None:
    """Useful GFLOP/s, 2·nnz·N over the time (``out.time``: the re-timed rounds read it too)."""
    t = out.time(key)
    return out.shapes[key].flops / t / 1e9 if t and key in out.shapes else None


def memory_bound_count(out: Outcome, source: str) -> float | None:
    c = ceilings(out)
    keys = [k for k, _, _ in RUNGS if k in out.shapes]
    if source == "model":  # under the ridge: the roofline says memory decides
        return float(sum(intensity(out, k) < c["peak"] / c["bw"] for k in keys))
    if source == "measured":  # reaches at least half of the memory roof at its intensity
        got = [(k, gflops(out, k)) for k in keys]
        if any(g is None for _, g in got):
            return None
        return float(sum(g >= 0.5 * c["bw"] * intensity(out, k) for k, g in got))
    return None


def attainable(out: Outcome, key: str, source: str) -> float | None:
    if source == "model":
        return roof(out, key)
    if source == "measured":
        return gflops(out, key)
    sim = out.sims.get(key)
    if sim is None:
        return None
    s = out.sim_shapes[key]
    return roof(out, key, s.flops / max(1, sim.memory_bytes))


class Roofline(Lab):
    id = 6
    title = "the roofline"
    device = "cpu"
    quick_minutes = 0.5  # 28-32 s measured on the shared 2-core VM, 2026-12-01
    questions = [
        Question("csr_tiled_gflops", "GFLOP/s (useful, 2·nnz·N/t) of cpu.csr.tiled on one thread", unit="",
                 answer=lambda o, s: attainable(o, "csr_tiled", s)),
        Question("csr_row_gflops", "GFLOP/s of cpu.csr.rowwise on one thread", unit="",
                 answer=lambda o, s: attainable(o, "csr_row", s)),
        Question("memory_bound", f"how many of the {len(RUNGS)} rungs reach half of the memory roof", unit="",
                 kind="exact", answer=memory_bound_count),
    ]

    def matrices(self, size):
        (m, k), n = SIZES[size]
        return {"m": matrices.magnitude(m, k, 0.9)}

    def sim_matrices(self, size):
        (m, k), n = SIM[size]
        return {"m": (matrices.magnitude(m, k, 0.9), n)}

    def runs(self, size):
        (m, k), n = SIZES[size]
        return [Run(key, vid, "m", n, p) for key, vid, p in RUNGS]

    def intro(self, out: Outcome):
        c = ceilings(out)
        ridge = c["peak"] / c["bw"]
        s = out.shapes["csr_row"]
        return [f"Roofs (one thread, {c['source']}): memory {c['bw']:.1f} GB/s, fp32 FMA {c['peak']:.0f} GFLOP/s; "
                f"ridge at {ridge:.1f} flop/byte.",
                f"A: {s.m}x{s.k} magnitude-pruned to 90%, N={s.n}. Useful flops 2·nnz·N = {s.flops / 1e6:.3g} M; "
                f"compulsory bytes {intensity(out, 'csr_row') and s.flops / intensity(out, 'csr_row') / 1e6:.3g} MB; "
                f"intensity {intensity(out, 'csr_row'):.2f} flop/byte (useful flops per compulsory byte)."]

    def explain(self, out: Outcome):
        """One sentence per kind of finding, not per rung: each rung is placed at its own modelled intensity
        (useful flops per byte its loop nest moves in the model), under the roof that applies there, and
        grouped with the rungs that fare alike."""
        c = ceilings(out)
        ridge = c["peak"] / c["bw"]
        ic = intensity(out, "csr_row")
        lines = [f"Every rung does the same useful flops on the same bytes: its compulsory intensity is {ic:.1f} "
                 f"flop/byte, {'right' if ic >= ridge else 'left'} of the ridge ({ridge:.1f}), so the best any "
                 f"of them can do is {roof(out, 'csr_row'):.1f} GFLOP/s ("
                 + ("the FMA peak" if ic >= ridge else "the memory roof there") + ")."]
        groups: dict[str, list[str]] = {}
        for key, _, _ in RUNGS:
            g = gflops(out, key)
            if g is None:
                continue
            im = model_intensity(out, key)
            top = roof(out, key, im)
            kind = "FMA peak" if im >= ridge else "memory roof"
            frac = g / top
            dense = key in ("numpy", "dense_tiled")
            if frac > 1.05:
                why = (f"above the {kind} at their modelled intensity, which no kernel can be: the model counts "
                       "every re-read as a trip to memory, and the caches served most of them — their true intensity "
                       "lies further right")
            elif frac >= 0.5:
                why = (f"near the {kind} at their modelled intensity: "
                       + ("bandwidth decides; fewer bytes per flop is the only way up" if kind == "memory roof"
                          else "the FMA units decide"))
            elif dense:
                why = ("far under the roof at their own intensity because they compute every zero: their useful "
                       "GFLOP/s count only the nonzeros' flops")
            elif kind == "memory roof":
                why = ("under the memory roof at their modelled intensity, by more than half: the bytes the model "
                       "counts come from the caches, not memory, and what limits them is the latency of gathering "
                       "rows of B by index and the instruction count")
            else:
                why = ("right of the ridge at their modelled intensity, yet far under the FMA peak: neither roof "
                       "limits them; the loop's instructions per nonzero do")
            groups.setdefault(why, []).append(f"{key} {g:.1f} GFLOP/s at {im:.2g} flop/B ({frac * 100:.0f}% of "
                                              f"{top:.1f})")
        for why, items in groups.items():
            lines.append("; ".join(items) + " — " + why + ".")
        lines.append("The roofline says what cannot be beaten, not what is reached.")
        return lines

    def plot(self, out: Outcome, folder: Path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from spmm_study.environment import machine_label
        from spmm_study.labs.common import log_axis

        paths = [plot_runs(out, folder)]
        c = ceilings(out)
        fig, ax = plt.subplots(figsize=(8.5, 5))
        xs_pts = {k: model_intensity(out, k) for k, _, _ in RUNGS if k in out.shapes}
        lo = min([c["peak"] / c["bw"] / 10, *xs_pts.values()]) / 2
        hi = max([c["peak"] / c["bw"] * 10, *xs_pts.values()]) * 2
        xs = np.logspace(np.log10(lo), np.log10(hi), 200)
        ax.plot(xs, np.minimum(c["peak"], c["bw"] * xs), "k-", label=f"roof: {c['bw']:.0f} GB/s, {c['peak']:.0f} GFLOP/s")
        ic = intensity(out, "csr_row")
        ax.axvline(ic, color="k", ls=":", lw=1, label=f"compulsory intensity {ic:.1f} (all rungs)")
        ys = [c["peak"], c["bw"] * lo]
        for i, (key, _, _) in enumerate(RUNGS):
            if key not in xs_pts:
                continue
            g = gflops(out, key)
            y = g if g else roof(out, key, xs_pts[key])
            ys.append(y)
            ax.plot([xs_pts[key]], [y], "o" if g else "x", color=f"C{i}", ms=8,
                    label=f"{key}{'' if g else ' (not measured: its roof)'}")
        log_axis(ax, xs, "x")
        log_axis(ax, ys, "y")
        ax.set_xlabel("intensity: useful flops per byte the rung moves in the model")
        ax.set_ylabel("useful GFLOP/s")
        ax.set_title(f"lab 6 roofline — {machine_label('cpu')}, 1 thread\n(rungs whose models move the same "
                     "bytes share an intensity)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        fig.tight_layout()
        p = folder / "lab6_roofline.png"
        common.save_png(fig, p)
        return paths + [p]


LAB = Roofline()
