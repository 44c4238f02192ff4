"""The sparse transformer FFN block, y = W2·relu(W1·x + b1) + b2, fused sparse layers against dense BLAS.

W1 (hidden × model, DLMC ``ffn_conv1``) and W2 (model × hidden, ``ffn_conv2``) of one layer; x is model × N
(N tokens). The sparse path is two fused CPU layers (``cpu.csr.tiled_fused``: relu(W1·x + b1) stored once,
then W2·h + b2); the dense path is numpy's BLAS sgemm on the densified weights, then the bias and relu in
numpy (what a dense framework does). Both are checked against the float64 block before being timed, and
timed interleaved (dense, sparse, dense, ...) so that a busy machine slows both alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.formats import CSR
from spmm_study.memory import aligned_empty


@dataclass
class FfnResult:
    n: int
    sparse_s: float
    dense_s: float
    sparse_err: float
    dense_err: float

    @property
    def sparse_tokens_per_s(self) -> float:
        return self.n / self.sparse_s

    @property
    def dense_tokens_per_s(self) -> float:
        return self.n / self.dense_s

    @property
    def speedup(self) -> float:
        return self.dense_s / self.sparse_s


def _w64(w: CSR):
    """W in float64 for the reference: dense (BLAS, multithreaded) while it is at most 256 MiB, else scipy CSR.
    The same numbers either way: a zero weight adds an exact zero."""
    return w.to_dense(np.float64) if w.m * w.k * 8 <= 256 << 20 else w.astype(np.float64).to_scipy()


def reference(w1: CSR, w2: CSR, b1, b2, x) -> np.ndarray:
    h = np.maximum(np.asarray(_w64(w1) @ x.astype(np.float64)) + b1[:, None], 0)
    return np.asarray(_w64(w2) @ h) + b2[:, None]


def _rel(y, ref) -> float:
    return float(np.linalg.norm(y.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-300))


def run_block(w1: CSR, w2: CSR, n: int, repeats: int = 5, seed: int = 0, tile_n: int = 256) -> FfnResult:
    from spmm_study.cpu.k50_csr_tiled_fused import FusedLayer

    if w2.k != w1.m or w1.k != w2.m:
        raise ParamError(f"W1 is {w1.m}x{w1.k} and W2 {w2.m}x{w2.k}: not an FFN pair (W2 must be {w1.k}x{w1.m})")
    if n < 1 or repeats < 1:
        raise ParamError("tokens and repeats must be at least 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xFF]))
    b1 = (0.1 * rng.standard_normal(w1.m)).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(w2.m)).astype(np.float32)
    x = aligned_empty((w1.k, n), np.float32)
    x[...] = rng.standard_normal((w1.k, n), dtype=np.float32)
    w1f, w2f = w1.astype(np.float32), w2.astype(np.float32)
    l1 = FusedLayer(w1f, b1, "relu", "row", tile_n=tile_n)
    l2 = FusedLayer(w2f, b2, "none", "row", tile_n=tile_n)
    h = aligned_empty((w1.m, n), np.float32)
    y = aligned_empty((w2.m, n), np.float32)
    d1, d2 = w1f.to_dense(), w2f.to_dense()

    def sparse():
        t0 = time.perf_counter()
        l1(x, h)
        l2(h, y)
        return time.perf_counter() - t0

    def dense():
        t0 = time.perf_counter()
        hd = d1 @ x
        hd += b1[:, None]
        np.maximum(hd, 0, out=hd)
        yd = d2 @ hd
        yd += b2[:, None]
        dense.y = yd
        return time.perf_counter() - t0

    sparse()
    dense()
    ref = reference(w1f, w2f, b1, b2, x)
    err_s, err_d = _rel(y, ref), _rel(dense.y, ref)
    if not (err_s < 1e-4 and err_d < 1e-4):
        raise AssertionError(f"FFN block wrong: sparse rel err {err_s:.2e}, dense {err_d:.2e}")
    pairs = [(dense(), sparse()) for _ in range(repeats)]
    return FfnResult(n, float(np.median([p[1] for p in pairs])), float(np.median([p[0] for p in pairs])), err_s, err_d)


# ------------------------------------------------------------------------------------ `spmm-study ffn` (issue 27)
#
# The same block as a command: paths side by side on one layer's weights, on the CPU or the GPU, every output
# checked against the float64 block before it is timed. Paths:
#   sparse — the fused rungs: relu(W1·x + b1) and W2·h + b2 each one fused kernel (CPU cpu.csr.tiled_fused;
#            GPU gpu.csr.row_split_fused up to N = 256, gpu.csr.swizzle_fused above), float32;
#   nm24   — W1 and W2 re-pruned 2:4 (the 2 largest of every 4 along a row): CPU rung cpu.nm24.tiled with
#            the bias and relu in numpy, float32; GPU cuSPARSELt through torch in --dtype (fp16/bf16 on the
#            sparse tensor cores; float32 as TF32 where torch takes it), bias and relu in torch;
#   dense  — the densified weights: CPU numpy BLAS sgemm, GPU cuBLAS through torch in --dtype.
# The 2:4 path multiplies other weights than the unstructured ones (its own pruning of the same layer), so
# each path is checked against the float64 block of the weights it ran.

PATHS = ("sparse", "nm24", "dense")
# the GPU fused layers' launch: the H100 tuning table's winners, row split at N = 256, swizzle at N = 4096
SPLIT_N = 256
ROW_SPLIT = {"warps": 4, "vec": 4, "unroll": 4}
SWIZZLE = {"lanes": 16, "vec": 4, "tiles": 2, "unroll": 4, "threads": 128}
DLMC_LAYER = "dlmc:transformer/magnitude_pruning/{sparsity}/body_encoder_layer_0_ffn_conv{i}_fully_connected"
BLOCK_TOLERANCE = 2.0  # × the dtype's rel_fro (problem.TOLERANCES): two layers, each rounded once


@dataclass
class BlockRow:
    device: str
    path: str
    n: int
    dtype: str
    status: str  # PASS, FAIL, SKIP
    engine: str = ""
    median_s: float = float("nan")
    tokens_per_s: float = float("nan")
    rel_error: float = float("nan")
    tolerance: float = float("nan")
    nnz_w1: int = 0
    nnz_w2: int = 0
    message: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def layer_weights(w1_spec: str | None, w2_spec: str | None, sparsity: str, dlmc_root, seed: int = 0):
    """W1 and W2 of one layer: the specs given, else DLMC's transformer encoder layer 0 at ``sparsity``."""
    from spmm_study import sources

    if (w1_spec is None) != (w2_spec is None):
        raise ParamError("give both --w1 and --w2, or neither (then DLMC's encoder layer 0 at --sparsity)")
    if w1_spec is None:
        w1_spec, w2_spec = (DLMC_LAYER.format(sparsity=sparsity, i=i) for i in (1, 2))
    w1 = sources.load(w1_spec, seed=seed, dlmc_root=dlmc_root).a
    w2 = sources.load(w2_spec, seed=seed, dlmc_root=dlmc_root).a
    if w2.k != w1.m or w1.k != w2.m:
        raise ParamError(f"W1 is {w1.m}x{w1.k} and W2 {w2.m}x{w2.k}: not an FFN pair (W2 must be {w1.k}x{w1.m})")
    return w1, w2, (w1_spec, w2_spec)


def prune24(w: CSR) -> CSR:
    """``w`` re-pruned 2:4: the two largest magnitudes of every group of four along a row (sources' pruning)."""
    from spmm_study.sources import parse_prune, prune_csr

    return prune_csr(w, parse_prune("2:4"), 0)


def check_paths(paths, device: str, tokens, repeats: int, tile_n: int = 256) -> list[str]:
    """The command's options checked before anything is loaded: paths, device, each N, repeats, tile_n."""
    from spmm_study.limits import MAX_REPEATS, check_count
    from spmm_study.problem import check_n

    if device not in ("cpu", "gpu"):
        raise ParamError(f"--device {device!r}: choose cpu or gpu")
    out = []
    for p in paths:
        for name in str(p).split(","):
            name = name.strip()
            if name not in PATHS:
                raise ParamError(f"unknown path {name!r}; choose from {', '.join(PATHS)}")
            if name not in out:
                out.append(name)
    for n in tokens:
        check_n(n)
    if repeats < 1:
        raise ParamError(f"--repeats {repeats} must be at least 1")
    check_count(repeats, "--repeats", MAX_REPEATS)
    if tile_n not in (16, 64, 256):  # a compile-time register tile: anything else is a typo (or a crash)
        raise ParamError(f"--tile-n {tile_n}: choose 16, 64 or 256")
    return out


def block_bytes(w1: CSR, w2: CSR, n: int) -> int:
    """Host memory one N of the block needs at its peak: x, h, y in float32 and their float64 copies for the
    reference and the check (about 40 bytes per x and y value, 24 per h value), and both weights densified
    in float64 (the dense path and the 2:4 path's reference)."""
    return n * (40 * (w1.k + w2.m) + 24 * w1.m) + 16 * w1.m * w1.k


def _block64(w1, w2, b1, b2, x):
    return reference(w1, w2, np.asarray(b1, np.float64), np.asarray(b2, np.float64), np.asarray(x, np.float64))


class _Path:
    """One path ready to run: ``run()`` computes y, ``fetch()`` returns it on the host, ``sync()`` waits."""

    def __init__(self, run, fetch, sync=lambda: None, engine="", ref=None, tol=0.0):
        self.run, self.fetch, self.sync, self.engine, self.ref, self.tol = run, fetch, sync, engine, ref, tol


def _cpu_path(path: str, w1, w2, b1, b2, x, tile_n: int) -> _Path:
    from spmm_study.problem import tolerance_of

    tol = BLOCK_TOLERANCE * tolerance_of("float32").rel_fro
    n = x.shape[1]
    y = aligned_empty((w2.m, n), np.float32)
    y.fill(np.nan)
    h = aligned_empty((w1.m, n), np.float32)
    if path == "sparse":
        from spmm_study.cpu.k50_csr_tiled_fused import FusedLayer

        l1 = FusedLayer(w1, b1, "relu", "row", tile_n=tile_n)
        l2 = FusedLayer(w2, b2, "none", "row", tile_n=tile_n)

        def run():
            l1(x, h)
            l2(h, y)
        return _Path(run, lambda: y, engine="cpu.csr.tiled_fused ×2", ref=_block64(w1, w2, b1, b2, x), tol=tol)
    if path == "nm24":
        from spmm_study.cpu.k32_nm24 import kernel as nm24_kernel
        from spmm_study.formats import NM24

        p1, p2 = prune24(w1), prune24(w2)
        a1, a2 = NM24.from_csr(p1), NM24.from_csr(p2)
        k = nm24_kernel(tile_n)

        def run():
            k(a1.data, a1.meta, x, h)
            np.add(h, b1[:, None], out=h)
            np.maximum(h, 0, out=h)
            k(a2.data, a2.meta, h, y)
            np.add(y, b2[:, None], out=y)
        path_ = _Path(run, lambda: y, engine="cpu.nm24.tiled ×2 + numpy bias/relu",
                      ref=_block64(p1, p2, b1, b2, x), tol=tol)
        path_.nnz = (p1.nnz, p2.nnz)
        return path_
    d1, d2 = w1.to_dense(), w2.to_dense()

    def run():
        np.matmul(d1, x, out=h)
        np.add(h, b1[:, None], out=h)
        np.maximum(h, 0, out=h)
        np.matmul(d2, h, out=y)
        np.add(y, b2[:, None], out=y)
    return _Path(run, lambda: y, engine="numpy BLAS sgemm ×2", ref=_block64(w1, w2, b1, b2, x), tol=tol)


def _gpu_path(path: str, w1, w2, b1, b2, x, dtype: np.dtype) -> _Path:
    from spmm_study.gpu.device import gpu_unavailable_reason, simulator
    from spmm_study.problem import PRECISIONS, tolerance_of

    reason = gpu_unavailable_reason()
    if reason:
        raise _Skip(reason)
    if path == "sparse":
        if dtype != np.float32:
            raise _Skip(f"the fused sparse rungs compute float32, not {dtype}")
        from numba import cuda

        from spmm_study.gpu.k50_csr_row_split_fused import FusedRowSplit
        from spmm_study.gpu.k51_csr_swizzle_fused import FusedSwizzle

        n = x.shape[1]
        if simulator():  # a few threads per block: the simulator runs each as a Python thread
            l1, l2 = (FusedRowSplit(w, b, a, "row", warps=1, vec=1, unroll=1)
                      for w, b, a in ((w1, b1, "relu"), (w2, b2, "none")))
            engine = "gpu.csr.row_split_fused ×2 (simulator sizes)"
        elif n <= SPLIT_N:
            l1, l2 = (FusedRowSplit(w, b, a, "row", **ROW_SPLIT) for w, b, a in ((w1, b1, "relu"), (w2, b2, "none")))
            engine = "gpu.csr.row_split_fused ×2"
        else:
            l1, l2 = (FusedSwizzle(w, b, a, "row", **SWIZZLE) for w, b, a in ((w1, b1, "relu"), (w2, b2, "none")))
            engine = "gpu.csr.swizzle_fused ×2"
        xd = cuda.to_device(np.ascontiguousarray(x).ravel())
        hd = cuda.device_array(w1.m * n, np.float32)
        yd = cuda.to_device(np.full(w2.m * n, np.nan, np.float32))

        def run():
            l1(xd, hd, n)
            l2(hd, yd, n)
        return _Path(run, lambda: yd.copy_to_host().reshape(w2.m, n), cuda.synchronize, engine,
                     _block64(w1, w2, b1, b2, x), BLOCK_TOLERANCE * tolerance_of("float32").rel_fro)
    from importlib.util import find_spec

    if simulator() or find_spec("torch") is None:
        raise _Skip("needs torch on a real GPU (cuSPARSELt and cuBLAS through torch)")
    import torch

    from spmm_study.gpu.baselines import torch_fetch, torch_tensor

    dev = torch.device("cuda")
    nm = path == "nm24"
    p1, p2 = (prune24(w1), prune24(w2)) if nm else (w1, w2)
    # the inputs as the path gets them: weights, x and biases rounded to dtype; the reference is built from these
    cast = lambda v: np.asarray(v).astype(dtype)  # noqa: E731
    d1, d2, xs, c1, c2 = cast(p1.to_dense()), cast(p2.to_dense()), cast(x), cast(b1), cast(b2)
    a1, a2 = torch_tensor(d1, dev), torch_tensor(d2, dev)
    if nm:
        from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

        SparseSemiStructuredTensor._FORCE_CUTLASS = False
        try:
            a1, a2 = to_sparse_semi_structured(a1), to_sparse_semi_structured(a2)
        except (RuntimeError, ValueError) as exc:
            raise _Skip(f"cuSPARSELt (torch {torch.__version__}) refused {dtype}: {str(exc).splitlines()[0][:120]}")
    xt, t1, t2 = torch_tensor(xs, dev), torch_tensor(c1, dev)[:, None], torch_tensor(c2, dev)[:, None]
    out = [None]
    flags = torch.backends.cuda.matmul

    def run():
        saved = flags.allow_tf32, flags.allow_fp16_reduced_precision_reduction
        flags.allow_tf32 = nm  # cuSPARSELt's float32 is TF32; dense float32 is full fp32
        flags.allow_fp16_reduced_precision_reduction = False
        try:
            h = torch.relu(torch.mm(a1, xt) + t1)
            out[0] = torch.mm(a2, h) + t2
        finally:
            flags.allow_tf32, flags.allow_fp16_reduced_precision_reduction = saved
    try:
        run()
    except (RuntimeError, ValueError, TypeError) as exc:
        raise _Skip(f"torch {torch.__version__} refused the {path} block in {dtype}: {str(exc).splitlines()[0][:120]}")
    precise = "tf32" if nm and dtype == np.float32 else ""
    tol = BLOCK_TOLERANCE * (PRECISIONS[precise] if precise else tolerance_of(dtype)).rel_fro
    engine = ("cuSPARSELt" if nm else "cuBLAS") + f" (torch {torch.__version__}) ×2, {dtype}" + (" as TF32" if precise else "")
    path_ = _Path(run, lambda: torch_fetch(out[0]), torch.cuda.synchronize, engine,
                  _block64(CSR.from_dense(d1.astype(np.float64)), CSR.from_dense(d2.astype(np.float64)), c1, c2, xs), tol)
    path_.nnz = (p1.nnz, p2.nnz)
    return path_


class _Skip(Exception):
    """A path that cannot run here or in this dtype: a SKIP row with the reason, the other paths go on."""


def run_ffn(w1: CSR, w2: CSR, tokens, paths, device: str = "cpu", dtype="float32", repeats: int = 5,
            seed: int = 0, tile_n: int = 256) -> list[BlockRow]:
    """Each N: every path built, run once and checked against its float64 block (poisoned output first), then
    timed ``repeats`` times interleaved (path A, B, C, A, B, C...); the median per path gives tokens/s = N / t."""
    from spmm_study.problem import parse_dtype

    from spmm_study.limits import check_alloc

    dtype = parse_dtype(dtype)
    if dtype.name not in ("float32", "float16", "bfloat16"):
        raise ParamError(f"the FFN block runs float32, float16 or bfloat16, not {dtype}")
    for n in tokens:  # refused before the first allocation, with the numbers
        check_alloc(block_bytes(w1, w2, n), f"the FFN block {w1.k}->{w1.m}->{w2.m} at N={n}")
    w1f, w2f = w1.astype(np.float32), w2.astype(np.float32)
    rows: list[BlockRow] = []
    for n in tokens:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xFF]))
        b1 = (0.1 * rng.standard_normal(w1.m)).astype(np.float32)
        b2 = (0.1 * rng.standard_normal(w2.m)).astype(np.float32)
        x = aligned_empty((w1.k, n), np.float32)
        x[...] = rng.standard_normal((w1.k, n), dtype=np.float32)
        ready: list[tuple[BlockRow, _Path]] = []
        for path in paths:
            row = BlockRow(device, path, n, dtype.name, "SKIP", nnz_w1=w1.nnz, nnz_w2=w2.nnz)
            rows.append(row)
            try:
                if device == "cpu":
                    if dtype != np.float32:
                        raise _Skip(f"on the CPU the block runs float32 (no half-precision rung or BLAS), not {dtype}")
                    p = _cpu_path(path, w1f, w2f, b1, b2, x, tile_n)
                else:
                    p = _gpu_path(path, w1f, w2f, b1, b2, x, dtype)
            except _Skip as exc:
                row.message = str(exc)
                continue
            row.engine = p.engine
            row.nnz_w1, row.nnz_w2 = getattr(p, "nnz", (w1.nnz, w2.nnz))
            p.run()
            p.sync()
            y = np.asarray(p.fetch(), dtype=np.float64)
            row.tolerance = p.tol
            row.rel_error = _rel(y, p.ref) if np.isfinite(y).all() else float("nan")
            if not row.rel_error <= p.tol:
                row.status = "FAIL"
                row.message = (f"rel error {row.rel_error:.3g} against the float64 block (tol {p.tol:g})"
                               if np.isfinite(row.rel_error) else "output holds NaN/Inf")
                continue
            row.status = "PASS"
            ready.append((row, p))
        times: dict[int, list[float]] = {id(r): [] for r, _ in ready}
        for _ in range(repeats):
            for r, p in ready:
                p.sync()
                t0 = time.perf_counter()
                p.run()
                p.sync()
                times[id(r)].append(time.perf_counter() - t0)
        for r, p in ready:
            r.median_s = float(np.median(times[id(r)]))
            r.tokens_per_s = n / r.median_s
            y = np.asarray(p.fetch(), dtype=np.float64)  # what the last timed run left, checked again
            err = _rel(y, p.ref) if np.isfinite(y).all() else float("nan")
            if not err <= p.tol:
                r.status, r.message = "FAIL", f"after timing: rel error {err:.3g} (tol {p.tol:g})"
    return rows


def block_table(rows: list[BlockRow], title: str):
    """Rows → a table: per N and path, the time, tokens/s and the speed against the dense path of that N."""
    from spmm_study.table import Table

    t = Table(title=title, columns=["N", "path", "status", "ms", "tokens/s", "vs dense", "rel err", "engine"],
              caption="tokens/s = N / median time of the whole block (two layers, bias, relu); each path checked "
                      "against its float64 block first")
    dense = {r.n: r.median_s for r in rows if r.path == "dense" and r.status == "PASS"}
    for r in rows:
        ok = r.status == "PASS"
        vs = f"{dense[r.n] / r.median_s:.2f}×" if ok and r.n in dense else "-"
        t.rows.append([r.n, r.path, r.status, f"{r.median_s * 1e3:.3f}" if ok else "-",
                       f"{r.tokens_per_s:,.0f}" if ok else "-", vs,
                       f"{r.rel_error:.1e}" if np.isfinite(r.rel_error) else "-", r.engine or r.message])
    return t
