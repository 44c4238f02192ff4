"""Running a sparse network layer by layer: Yᵀ_{l+1} = act(A_l·Yᵀ_l + b_l), A_l = W_lᵀ (see ``spdnn``).

Engines (``ENGINES``), all computing the same chain and checked against the same truth:

* ``fused`` — one fused layer kernel per layer (``cpu.csr.tiled_fused``: the bias and activation applied in
  registers before C is stored; on the GPU ``gpu.csr.row_split_fused`` / ``gpu.csr.swizzle_fused``);
* ``unfused`` — the project's SpMM (``cpu.csr.tiled``) then the elementwise epilogue in numpy: the baseline
  that shows what fusion saves (two more read+write sweeps of C per layer);
* ``scipy`` — scipy.sparse in the challenge's own orientation, Y (inputs × neurons, sparse) @ W: the
  CPU library baseline (dead inputs cost nothing there: their rows are empty);
* ``torch``, ``cupy`` — the GPU library chains (need a CUDA device and the package);
* ``champion`` — the HPEC'20 champion's single-GPU program, built from the checkout the user points to
  and run on the challenge's files converted to its layout (``champion``; its repository has no licence:
  never copied into this project). It runs through ``infer.run_engines``, not ``run_chain``.

``prune_dead`` drops the inputs whose column of Yᵀ became all zero after a layer, compacting Yᵀ as the
layers proceed (as the HPEC'20 code does); only valid when a zero input stays zero: the challenge's
``nonzero`` bias rule, no bias, or a non-positive per-row bias under relu (refused otherwise).

Edges/s follow the challenge: inputs × Σ nnz(W_l) / time. ``live_edges_per_s`` counts only the work done
on live inputs: Σ_l live_l × nnz(W_l) / time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numba
import numpy as np
from numba import njit, prange

from spmm_study.errors import DeviceUnavailable, ParamError
from spmm_study.formats import CSR
from spmm_study.nets.batch import LayerRow, dense_inputs_t
from spmm_study.epilogue import Epilogue
from spmm_study.nets.spdnn import Network
from spmm_study.memory import aligned_empty

ENGINES = ("fused", "unfused", "scipy", "torch", "cupy", "champion")


# --------------------------------------------------------------------------------------------- inputs


def replicate(y0: CSR, batch: int | None) -> np.ndarray:
    """Source image of each of the ``batch`` inputs: the first ``batch`` images, or the images repeated
    (input j is image j mod count: the challenge-sized batch is the 1200 official images 50 times)."""
    count = y0.m
    batch = count if batch is None else int(batch)
    if batch < 1:
        raise ParamError(f"--batch {batch} must be at least 1")
    return np.arange(batch, dtype=np.int64) % count


def truth_for(categories: np.ndarray, count: int, src: np.ndarray) -> np.ndarray:
    """The categories of a batch built by ``replicate`` from the categories of the ``count`` source images."""
    alive = np.zeros(count, dtype=bool)
    alive[categories[categories < count]] = True
    return np.flatnonzero(alive[src])


# --------------------------------------------------------------------------------------------- results


@dataclass
class ChainResult:
    engine: str
    device: str
    batch: int
    edges: int  # Σ nnz(W_l)
    time_s: float
    categories: np.ndarray  # 0-based input indices whose final row is not all zero
    layers: list[LayerRow] = field(default_factory=list)
    setup_s: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def edges_per_s(self) -> float:
        return self.batch * self.edges / self.time_s if self.time_s > 0 else float("nan")

    @property
    def live_edges(self) -> int:
        return int(sum(r.live_in * r.nnz for r in self.layers))

    @property
    def live_edges_per_s(self) -> float:
        return self.live_edges / self.time_s if self.time_s > 0 else float("nan")


def check_prune(net: Network, prune_dead: bool) -> None:
    if not prune_dead:
        return
    if net.rule in ("nonzero", "zero"):
        return
    if net.act != "none" and all(float(np.max(b)) <= 0 for b in net.biases):
        return
    raise ParamError("--prune-dead needs a zero input to stay zero: the 'nonzero' or 'zero' bias rule, or a "
                     "non-positive bias under relu; this network adds a positive bias to every row")


# --------------------------------------------------------------------------------------------- CPU helpers


@njit(cache=True)
def live_columns(c):
    """Per column of C (rows × n), whether any entry is nonzero; and the count."""
    rows, n = c.shape
    flags = np.zeros(n, dtype=np.uint8)
    for i in range(rows):
        for j in range(n):
            if c[i, j] != 0:
                flags[j] = 1
    return flags, int(flags.sum())


@njit(parallel=True, cache=True)
def _compact_par(c, keep, out):
    for i in prange(c.shape[0]):
        for t in range(keep.size):
            out[i, t] = c[i, keep[t]]


@njit(cache=True)
def _compact_serial(c, keep, out):
    for i in range(c.shape[0]):
        for t in range(keep.size):
            out[i, t] = c[i, keep[t]]


def compact_columns(c, keep, out):
    """out[:, t] = c[:, keep[t]]: Yᵀ without its dead inputs (serial when small: a thread-pool join costs more)."""
    if c.shape[0] * keep.size < (1 << 16) or numba.get_num_threads() == 1:
        _compact_serial(c, keep, out)
    else:
        _compact_par(c, keep, out)


def _view(buf: np.ndarray, rows: int, n: int) -> np.ndarray:
    return buf[: rows * n].reshape(rows, n)


def _run_dense_chain(net: Network, yt0: np.ndarray, apply_layer, prune_dead: bool) -> tuple[float, list, np.ndarray]:
    """The host loop shared by the CPU engines that keep Yᵀ dense: ``apply_layer(l, b_view, c_view)``."""
    width = max([yt0.shape[0], *(a.m for a in net.layers)])
    n = yt0.shape[1]
    p = aligned_empty((width * n,), yt0.dtype)
    q = aligned_empty((width * n,), yt0.dtype)
    _view(p, yt0.shape[0], n)[...] = yt0
    ids = np.arange(n, dtype=np.int64)
    rows_out = []
    live_prev = live_columns(_view(p, yt0.shape[0], n))[1] if n else 0
    t_start = time.perf_counter()
    paused = 0.0
    for l, a in enumerate(net.layers):
        t0 = time.perf_counter()
        live_in = n
        if n:
            b = _view(p, a.k, n)
            c = _view(q, a.m, n)
            apply_layer(l, b, c)
            if prune_dead:
                flags, count = live_columns(c)
                if count < n:
                    keep = np.flatnonzero(flags)
                    compact_columns(c, keep, _view(p, a.m, count))
                    ids = ids[keep]
                    n = count
                else:
                    p, q = q, p
            else:
                p, q = q, p
        dt = time.perf_counter() - t0
        if not prune_dead:  # the live count for the report, outside the layer's time: nothing is dropped
            t1 = time.perf_counter()
            live_in = live_prev
            live_prev = live_columns(_view(p, a.m, n))[1] if n else 0
            paused += time.perf_counter() - t1
        rows_out.append(LayerRow(l + 1, live_in, n if prune_dead else live_prev, a.nnz, dt))
    total = time.perf_counter() - t_start - paused
    last = _view(p, net.layers[-1].m, n)
    if prune_dead:
        flags = live_columns(last)[0] if n else np.zeros(0, np.uint8)
    else:
        flags = (last != 0).any(axis=0).astype(np.uint8) if n else np.zeros(0, np.uint8)
    return total, rows_out, np.sort(ids[flags.astype(bool)])


def _cpu_fused(net: Network, yt0: np.ndarray, prune_dead: bool, tile_n: int) -> tuple:
    from spmm_study.cpu.k50_csr_tiled_fused import FusedLayer

    t0 = time.perf_counter()
    layers = [FusedLayer(a, b, net.act, net.rule, net.ymax, tile_n=tile_n) for a, b in zip(net.layers, net.biases)]
    layers[0].warm()
    _warm(net, yt0.dtype, lambda l, b, c: layers[l](b, c))
    setup = time.perf_counter() - t0
    return setup, _run_dense_chain(net, yt0, lambda l, b, c: layers[l](b, c), prune_dead)


def _cpu_unfused(net: Network, yt0: np.ndarray, prune_dead: bool, tile_n: int) -> tuple:
    from spmm_study.cpu import k13_csr_tiled
    from spmm_study.cpu.balance import partition

    t0 = time.perf_counter()
    k = k13_csr_tiled.kernel(tile_n)
    parts = [partition(a.row_lengths(), numba.get_num_threads(), "nnz") for a in net.layers]
    eps = [Epilogue(net.act, net.rule, net.ymax, b) for b in net.biases]

    def apply(l, b, c):
        a = net.layers[l]
        rows, bounds = parts[l]
        k(rows, bounds, a.indptr, a.indices, a.data, b, c)
        eps[l].apply(c, net.biases[l], out=c)  # the unfused elementwise pass, in place

    _warm(net, yt0.dtype, apply)
    setup = time.perf_counter() - t0
    return setup, _run_dense_chain(net, yt0, apply, prune_dead)


def _warm(net: Network, dtype, apply) -> None:
    """Compile (or load from cache) every kernel the chain calls, on one-column problems, before timing."""
    a = net.layers[0]
    b = aligned_empty((a.k, 1), dtype)
    b.fill(1)
    c = aligned_empty((a.m, 1), dtype)
    apply(0, b, c)
    live_columns(c)
    for fn in (_compact_par, _compact_serial):
        fn(c, np.zeros(1, np.int64), aligned_empty((a.m, 1), dtype))


def _scipy_chain(net: Network, y0: CSR, src: np.ndarray, prune_dead: bool, dtype) -> tuple:
    """scipy.sparse: Y (inputs × neurons, CSR) @ W_l (in × out, CSR), the epilogue on the stored entries."""
    t0 = time.perf_counter()
    ws = [a.astype(dtype).to_scipy().T.tocsr() for a in net.layers]
    bias = [np.asarray(b, dtype=dtype) for b in net.biases]
    y = y0.astype(dtype).to_scipy().tocsr()[src]
    setup = time.perf_counter() - t0
    ids = np.arange(src.size, dtype=np.int64)
    rows_out = []
    live_prev = int(np.count_nonzero(np.diff(y.indptr)))
    paused = 0.0
    t_start = time.perf_counter()
    for l, w in enumerate(ws):
        t1 = time.perf_counter()
        live_in = y.shape[0]
        z = y @ w
        if net.rule == "row":  # every entry gets its bias: the product is dense
            zd = z.toarray() + bias[l][None, :]
            z = _act_dense(zd, net)
            import scipy.sparse as sp

            z = sp.csr_matrix(z)
        else:
            if net.rule == "nonzero":
                z.data += bias[l][z.indices]
            if net.act != "none":
                np.maximum(z.data, 0, out=z.data)
            if net.act == "clamp":
                np.minimum(z.data, net.ymax, out=z.data)
            z.eliminate_zeros()
        if prune_dead:
            live = np.flatnonzero(np.diff(z.indptr))
            if live.size < z.shape[0]:
                z = z[live]
                ids = ids[live]
        y = z
        dt = time.perf_counter() - t1
        if not prune_dead:  # nothing dropped: count the live rows for the report, outside the timing
            t2 = time.perf_counter()
            live_in, live_prev = live_prev, int(np.count_nonzero(np.diff(y.indptr)))
            paused += time.perf_counter() - t2
        rows_out.append(LayerRow(l + 1, live_in, y.shape[0] if prune_dead else live_prev, net.layers[l].nnz, dt))
    total = time.perf_counter() - t_start - paused
    cats = np.sort(ids[np.diff(y.indptr) > 0])
    return setup, (total, rows_out, cats)


def _act_dense(z: np.ndarray, net: Network) -> np.ndarray:
    if net.act != "none":
        np.maximum(z, 0, out=z)
    if net.act == "clamp":
        np.minimum(z, net.ymax, out=z)
    return z


def reference_categories(net: Network, y0: CSR, src: np.ndarray) -> np.ndarray:
    """The float64 truth: the scipy chain in float64 (no pruning needed: dead rows are empty)."""
    return _scipy_chain(net, y0, src, True, np.float64)[1][2]


# --------------------------------------------------------------------------------------------- GPU / champion


def on_gpu(engine: str, device: str) -> bool:
    """Where an engine runs: torch and cupy always on the GPU, scipy always on the CPU (the baseline beside
    either device), fused and unfused on ``device``."""
    return engine in ("torch", "cupy") or (device == "gpu" and engine in ("fused", "unfused"))


def gpu_engine_unavailable(engine: str) -> str | None:
    from spmm_study.gpu.device import gpu_unavailable_reason

    reason = gpu_unavailable_reason()
    if reason:
        return reason
    pkg = {"torch": "torch", "cupy": "cupy"}.get(engine)
    if pkg:
        import importlib.util

        if importlib.util.find_spec(pkg) is None:
            return f"{pkg} is not installed"
    return None


def champion_unavailable(src: str | os.PathLike | None) -> str | None:
    """Why the HPEC'20 champion cannot be built and run here, or None (``champion``)."""
    from spmm_study.nets import champion

    return champion.unavailable_reason(src)


# --------------------------------------------------------------------------------------------- entry


def preflight(engines: list[str], device: str, champion_src=None) -> tuple[list[str], list[str]]:
    """Before any network is read (reading the challenge takes seconds): unknown engines are an error; an
    unavailable one is dropped with a warning line, as every measuring command does with an unavailable
    variant. Returns (the engines that can run, the warnings); DeviceUnavailable when none can."""
    if device not in ("cpu", "gpu"):
        raise ParamError(f"unknown device {device!r}; choose cpu or gpu")
    for engine in engines:
        if engine not in ENGINES:
            raise ParamError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    kept, warnings = [], []
    for engine in dict.fromkeys(engines):
        if engine == "champion":
            reason = champion_unavailable(champion_src)
            why = f"engine champion is unavailable: {reason}" if reason else ""
        else:
            reason = gpu_engine_unavailable(engine) if on_gpu(engine, device) else None
            why = f"engine {engine} on the GPU is unavailable: {reason}" if reason else ""
        if why:
            warnings.append(why)
        else:
            kept.append(engine)
    if not kept:
        raise DeviceUnavailable(warnings[0] if len(warnings) == 1 else
                                f"no engine can run here ({'; '.join(warnings)})")
    return kept, [f"warning: {w}; skipped" for w in warnings]


def run_chain(net: Network, y0: CSR, src: np.ndarray, engine: str = "fused", device: str = "cpu",
              prune_dead: bool = False, tile_n: int = 256, champion_src=None, dtype=np.float32) -> ChainResult:
    """Run ``net`` on the batch of images ``src`` (indices into ``y0``'s rows) with one engine."""
    if engine not in ENGINES:
        raise ParamError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if y0.k != net.inputs_width:
        raise ParamError(f"the inputs have {y0.k} columns but the first layer takes {net.inputs_width}")
    check_prune(net, prune_dead)
    if engine == "champion":  # its program checks its categories against a file of the truth: see infer.run_engines
        raise ParamError("engine champion runs through infer (spmm-study infer -e champion), which holds the truth")
    if on_gpu(engine, device):
        reason = gpu_engine_unavailable(engine)
        if reason:
            raise DeviceUnavailable(f"engine {engine} on the GPU is unavailable: {reason}")
        from spmm_study.nets import chain_gpu

        setup, (total, rows, cats) = chain_gpu.run(net, y0, src, engine, prune_dead)
        return ChainResult(engine, "gpu", int(src.size), net.edges, total, cats, rows, setup)
    if device not in ("cpu", "gpu"):
        raise ParamError(f"unknown device {device!r}; choose cpu or gpu")
    if engine == "scipy":
        setup, (total, rows, cats) = _scipy_chain(net, y0, src, prune_dead, dtype)
    else:
        t0 = time.perf_counter()
        yt0 = dense_inputs_t(y0, src, dtype)
        t_in = time.perf_counter() - t0
        fn = _cpu_fused if engine == "fused" else _cpu_unfused
        setup, (total, rows, cats) = fn(net, yt0, prune_dead, tile_n)
        setup += t_in
    return ChainResult(engine, "cpu", int(src.size), net.edges, total, cats, rows, setup,
                       info={"threads": numba.get_num_threads(), "tile_n": tile_n})
