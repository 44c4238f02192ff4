"""Lab 3 — skipping the zeros and choosing a format: dense vs CSR/COO/CSC/SELL/BSR/2:4, bytes per nonzero,
the break-even sparsity."""

from __future__ import annotations

import math

import numpy as np

from spmm_study.labs import matrices
from spmm_study.labs.common import Lab, Outcome, Question, Run, fmt_time, ranking_sentence

# (M=K, N, sparsities of the break-even sweep)
# the sweep's 0.9 point is the "csr" run itself
SIZES = {"tiny": (32, 16, (0.5,)), "quick": (1024, 128, (0.5, 0.8, 0.95)),
         "full": (2048, 256, (0.5, 0.7, 0.8, 0.95, 0.98))}
SIM = {"tiny": (32, 16), "quick": (384, 64), "full": (384, 64)}
FORMATS = ("csr_row", "coo", "csc", "bsr", "sell", "csr")


def bytes_per_nnz(a, fmt: str, value_bytes: int = 4) -> float:
    """The bytes a format stores per nonzero of ``a`` (values, indices, offsets, padding, metadata)."""
    from spmm_study.formats import BSR, NM24

    nnz = max(1, a.nnz)
    ib = a.indices.itemsize
    if fmt == "csr":
        return (a.nnz * (value_bytes + ib) + (a.m + 1) * ib) / nnz
    if fmt == "coo":
        return value_bytes + 2 * ib
    if fmt == "bsr":
        b = BSR.from_csr(a, 4, 4)
        return (b.blocks * (16 * value_bytes + ib) + b.indptr.size * ib) / nnz
    if fmt == "nm24":
        n = NM24.from_csr(a)
        return (n.data.size * value_bytes + n.meta.size) / nnz
    raise KeyError(fmt)


def break_even(out: Outcome, source: str) -> float | None:
    """Sparsity where CSR (register-blocked) takes as long as dense BLAS. Measured: fit t = c·density to the
    sweep; model: where CSR's A (value + index per nonzero) moves as many bytes as dense A (value per cell)."""
    if source == "model":
        s = out.shapes["csr"]
        return 1 - s.value_bytes / (s.value_bytes + s.index_bytes)
    if source != "measured":
        return None
    td = out.time("dense")
    pts = [(1 - out.shapes[k].sparsity, out.time(k)) for k in out.extra.get("sweep", []) if out.time(k)]
    if not td or not pts:
        return None
    c = math.exp(np.mean([math.log(t / d) for d, t in pts]))  # geometric fit of t = c·density
    lo, hi = sweep_range(out)
    return min(hi, max(lo, 1 - td / c))  # inside the measured range only: outside it, the end it lies beyond


def sweep_range(out: Outcome) -> tuple[float, float]:
    """The lowest and highest sparsity the CSR sweep measured (the break-even is stated only inside it)."""
    sps = [out.shapes[k].sparsity for k in out.extra.get("sweep", []) if k in out.shapes]
    return (min(sps), max(sps)) if sps else (0.0, 1.0)


class Formats(Lab):
    id = 3
    title = "skipping the zeros and choosing a format"
    device = "cpu"
    quick_minutes = 0.6  # 32-38 s measured on the shared 2-core VM, 2026-12-01
    questions = [
        Question("csr_bytes_per_nnz", "bytes CSR stores per nonzero (float32 values, int32 indices)", unit="B",
                 kind="absolute", tol=0.5, basis="count",
                 answer=lambda o, s: bytes_per_nnz(o.matrices["m"], "csr") if s in ("model", "measured") else None),
        Question("bsr_bytes_per_nnz", "bytes BSR 4x4 stores per nonzero of this (unstructured) matrix", unit="B",
                 kind="ratio", tol=1.3, basis="count",
                 answer=lambda o, s: (bytes_per_nnz(o.matrices["m"], "bsr") if s == "measured" else
                                      (4 * 16 + 4) if s == "model" else None)),
        Question("break_even", "sparsity where CSR becomes as fast as dense BLAS (0..1)", unit="", kind="absolute",
                 tol=0.05, answer=break_even, measured_range=sweep_range),
        Question("coo_over_csr", "time of COO scatter over CSR row-wise (same loop, triplets)",
                 answer=lambda o, s: o.ratio(s, "coo", "csr_row")),
    ]

    def matrices(self, size):
        m, n, sweep = SIZES[size]
        mats = {"m": matrices.uniform(m, m, 0.9, seed=1), "nm": matrices.nm24(m, m, seed=1)}
        for sp in sweep:
            mats[f"s{sp:g}"] = matrices.uniform(m, m, sp, seed=1)
        return mats

    def sim_matrices(self, size):
        m, n = SIM[size]
        return {"m": (matrices.uniform(m, m, 0.9, seed=1), n), "nm": (matrices.nm24(m, m, seed=1), n)}

    def runs(self, size):
        m, n, sweep = SIZES[size]
        tn = min(n, 128)
        runs = [Run("dense", "cpu.dense.numpy", "m", n),
                Run("csr_row", "cpu.csr.rowwise", "m", n), Run("coo", "cpu.coo.scatter", "m", n),
                Run("csc", "cpu.csc.outer", "m", n), Run("bsr", "cpu.bsr.rowwise", "m", n, {"br": 4, "bc": 4}),
                Run("sell", "cpu.sell.tiled", "m", n, {"tile_n": tn}),
                Run("csr", "cpu.csr.tiled", "m", n, {"tile_n": tn}),
                Run("nm24", "cpu.nm24.tiled", "nm", n, {"tile_n": tn}), Run("csr_2:4", "cpu.csr.tiled", "nm", n, {"tile_n": tn})]
        runs += [Run(f"csr@{sp:g}", "cpu.csr.tiled", f"s{sp:g}", n, {"tile_n": tn}, sim=False) for sp in sweep]
        return runs

    def intro(self, out: Outcome):
        a = out.matrices["m"]
        self_sweep = [r.key for r in out.runs if r.key.startswith("csr@")] + ["csr"]
        out.extra["sweep"] = self_sweep
        return [f"A: {a.m}x{a.k} uniform at 90% sparsity (nnz {a.nnz:,}); the 2:4 runs use a {a.m}x{a.k} 2:4 matrix "
                f"(50%); N={out.shapes['csr'].n}; one thread everywhere; float32 values, int32 indices.",
                f"The CSR sweep for the break-even (run@sparsity; csr is the 90% matrix): {', '.join(self_sweep)}."]

    def explain(self, out: Outcome):
        a = out.matrices["m"]
        lines = ["Bytes stored per nonzero: " + ", ".join(f"{f} {bytes_per_nnz(a, f):.2f}" for f in ("csr", "coo", "bsr"))
                 + f", 2:4 {bytes_per_nnz(out.matrices['nm'], 'nm24'):.2f} (on the 2:4 matrix); dense: "
                 f"{4 / (1 - out.shapes['csr'].sparsity):.0f} per nonzero at this sparsity. Break-even by bytes alone "
                 f"(CSR's value+index against dense's value per cell): sparsity {break_even(out, 'model'):.2f}."]
        be = break_even(out, "measured")
        lo, hi = sweep_range(out)
        if be is not None and be <= lo:
            lines.append(f"CSR beat dense BLAS at every sparsity measured, down to {lo:.2f}: the break-even lies below "
                         "that, outside what this lab measured (a prediction at or below it is right). Dense BLAS on "
                         "one thread did not reach the flop rate that would make it win: check 'spmm-study calibrate' "
                         "against the dense row's GFLOP/s.")
        elif be is not None and be >= hi:
            lines.append(f"Dense BLAS beat CSR at every sparsity measured, up to {hi:.2f}: the break-even lies above "
                         "that, outside what this lab measured (a prediction at or above it is right).")
        elif be is not None:
            model = break_even(out, "model")
            lines.append(f"Measured break-even near sparsity {be:.2f}, against {model:.2f} from bytes alone: "
                         + ("dense BLAS runs at a far higher flop rate (blocked for registers and caches, vectorised "
                            "over K) than a kernel that gathers rows of B by index, so CSR must skip many more zeros "
                            "than its index overhead suggests." if be > model + 0.05 else
                            "here the sparse kernel's flop rate is close enough to BLAS that bytes decide."))
        lines += ranking_sentence(out, list(FORMATS), (
            "the model counts every load the loop nest issues with no reuse (a row of B per nonzero, a row of C per "
            "nonzero for COO and CSC), but those rows come back from L1 and L2, and what separates the kernels is "
            "how many instructions each nonzero costs (register blocking, vector width), not bytes."))
        fmts = [k for k in FORMATS if out.time(k)]
        if fmts:
            best = min(fmts, key=lambda k: out.time(k))
            lines.append("Formats on the 90% matrix, fastest first: " + " < ".join(
                f"{k} {fmt_time(out.time(k))}" for k in sorted(fmts, key=lambda k: out.time(k))) + f"; {best} wins.")
        if out.time("bsr") and out.time("csr"):
            lines.append(f"BSR 4x4 stores {bytes_per_nnz(out.matrices['m'], 'bsr'):.1f} bytes per nonzero here: a random "
                         "pattern fills few of each block's 16 slots, and every filled-in zero is multiplied.")
        if out.time("nm24") and out.time("csr_2:4"):
            lines.append(f"On the 2:4 matrix the 2:4 kernel took {out.time('nm24') / out.time('csr_2:4'):.2f}x the CSR "
                         "time: 2-bit positions instead of 32-bit indices, and a fixed K/2 per row.")
        return lines


LAB = Formats()
