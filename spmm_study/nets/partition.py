"""Inputs split across workers (issue 15, the CPU side): contiguous parts balanced by nonzeros, one process
per part, each running the same chain (with dead-input pruning) on its part; categories gathered.

The SpDNN challenge paper (Hidayetoğlu et al., HPEC'20) duplicates the weights on every GPU and statically splits
the inputs; this is that scheme with processes standing in for GPUs, so the logic is covered on CPU-only CI
and ``--gpus`` can reuse it (one process per GPU with its own CUDA_VISIBLE_DEVICES — not built yet).

``split`` cuts the batch into ``parts`` contiguous ranges whose nonzero counts differ from the ideal
total/parts by at most one input's nonzeros (a prefix sum cut at equal targets). Every input is in exactly
one part; results are independent of the number of parts (each input's chain is computed alone: the
kernels never mix columns), which the tests check for 1, 2 and 3 parts.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.formats import CSR


def split(input_nnz: np.ndarray, parts: int) -> np.ndarray:
    """Bounds (parts + 1 offsets) of contiguous ranges balanced by nonzeros; every part gets an input when
    there are at least ``parts`` inputs."""
    count = int(input_nnz.size)
    if parts < 1:
        raise ParamError(f"--parts {parts} must be at least 1")
    if parts > count:
        raise ParamError(f"--parts {parts} is more than the {count} inputs")
    cum = np.concatenate(([0], np.cumsum(input_nnz, dtype=np.int64)))
    targets = cum[-1] * np.arange(parts + 1) / parts
    bounds = np.searchsorted(cum, targets, side="left").astype(np.int64)
    # the cut nearest each target: searchsorted gives the first prefix >= target; the one before may be closer
    for t in range(1, parts):
        b = bounds[t]
        if b > 0 and abs(cum[b - 1] - targets[t]) < abs(cum[b] - targets[t]):
            bounds[t] = b - 1
    bounds[0], bounds[-1] = 0, count
    for t in range(1, parts + 1):  # non-empty parts, still increasing
        bounds[t] = max(bounds[t], bounds[t - 1] + 1)
    for t in range(parts - 1, 0, -1):
        bounds[t] = min(bounds[t], bounds[t + 1] - 1)
    return bounds


@dataclass
class PartResult:
    part: int
    start: int
    end: int
    nnz: int
    time_s: float
    categories: np.ndarray
    live_edges: int = 0  # Σ over layers of live inputs × nnz(W_l): the work this part really did


def _worker(args):
    net, y0, src, start, end, part, engine, prune_dead, threads = args
    import numba

    from spmm_study.harness import apply_threads
    from spmm_study.nets.chain import run_chain

    apply_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    r = run_chain(net, y0, src[start:end], engine, prune_dead=prune_dead)
    return part, r.time_s, r.categories + start, r.live_edges


def run_parts(net, y0: CSR, src: np.ndarray, parts: int, engine: str = "fused", prune_dead: bool = True,
              processes: bool = True, threads_per_part: int | None = None) -> tuple[float, list[PartResult]]:
    """Run the chain on ``parts`` contiguous parts of the batch (in parallel processes, or one after the other
    in this process with ``processes=False``); returns the wall time and one result per part."""
    row_nnz = np.diff(y0.indptr)[src]
    bounds = split(row_nnz, parts)
    threads = threads_per_part or max(1, (os.cpu_count() or 1) // parts)
    jobs = [(net, y0, src, int(bounds[t]), int(bounds[t + 1]), t, engine, prune_dead, threads) for t in range(parts)]
    t0 = time.perf_counter()
    if processes and parts > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=parts, mp_context=mp.get_context("spawn")) as pool:
            outs = list(pool.map(_worker, jobs))
    else:
        outs = [_worker(j) for j in jobs]
    wall = time.perf_counter() - t0
    results = []
    for part, t, cats, live in sorted(outs, key=lambda o: o[0]):
        s, e = int(bounds[part]), int(bounds[part + 1])
        results.append(PartResult(part, s, e, int(row_nnz[s:e].sum()), t, np.asarray(cats), int(live)))
    return wall, results


def gather(results: list[PartResult]) -> np.ndarray:
    return np.sort(np.concatenate([r.categories for r in results])) if results else np.zeros(0, np.int64)
