"""Work partitions for ``prange`` kernels: which rows each thread gets (load balance, a lesson of its own).

Numba's ``prange`` over ``parts`` iterations with ``parts == threads`` gives each thread exactly one
iteration (static schedule), so a partition *is* the per-thread assignment. Four ways to cut M rows:

* ``static`` — equal row counts, ``M/threads`` consecutive rows each. Fast to build, blind to row lengths:
  DLMC rows at 90% vary by a coefficient of variation of 0.2–0.5, and random matrices less.
* ``nnz`` — equal *work*: a prefix sum over (row length + ``ROW_COST``) cut at equal targets, consecutive
  rows kept together (C rows written in order, B rows reused between neighbours).
* ``sorted`` — the "row swizzle" of Gale et al. (SC'20): rows sorted by length, longest first, then dealt
  round-robin to the threads, so each thread gets the same mix of long and short rows. Balances well but
  scatters the C rows each thread writes.
* ``dynamic`` — consecutive tasks of ``rows_per_task`` rows handed out one at a time at run time
  (``numba.parallel_chunksize(1)``): balance without a model of the cost, paid for with scheduling.

``scheduled`` turns a kernel call into the variant's ``run``, under that chunk size when the balance is
``dynamic``. ``spread`` returns what goes in ``Prepared.info``: the nonzeros each part holds and max/mean ("imbalance";
1.0 is perfect, 1.3 means the slowest thread does 30% more than the average and the others wait).
"""

from __future__ import annotations

import numba
import numpy as np

from spmm_study.registry import Param

BALANCES = ("static", "nnz", "sorted", "dynamic")
# Per-row fixed cost in units of one nonzero's work: writing a row of C (N stores) costs about as much as one
# nonzero's N loads + N FMAs, and a row's loop set-up is small beside that.
ROW_COST = 1.0


def balance_param(default: str = "nnz") -> Param:
    return Param("balance", default, BALANCES, "how rows are split across threads: static row chunks, "
                 "nnz-balanced prefix sums, sorted round-robin (row swizzle), or dynamic tasks", strict=True)


def rows_per_task_param(default: int = 64) -> Param:
    return Param("rows_per_task", default, (16, 64, 256), "rows per task for balance=dynamic", minimum=1,
                 maximum=1 << 24)


def partition(row_nnz: np.ndarray, parts: int, how: str, rows_per_task: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(rows, bounds): part t processes rows[bounds[t]:bounds[t+1]] (int32 rows, int64 bounds)."""
    m = int(row_nnz.size)
    parts = max(1, int(parts))
    if how == "static":
        rows = np.arange(m, dtype=np.int32)
        bounds = np.linspace(0, m, parts + 1).round().astype(np.int64)
    elif how == "nnz":
        rows = np.arange(m, dtype=np.int32)
        cum = np.zeros(m + 1, dtype=np.float64)
        np.cumsum(row_nnz + ROW_COST, out=cum[1:])
        targets = cum[-1] * np.arange(parts + 1) / parts
        bounds = np.searchsorted(cum, targets, side="left").astype(np.int64)
        bounds[0], bounds[-1] = 0, m
        bounds = np.maximum.accumulate(bounds)
    elif how == "sorted":
        order = np.argsort(-row_nnz, kind="stable").astype(np.int32)
        chunks = [order[t::parts] for t in range(parts)]
        rows = np.concatenate(chunks) if chunks else order
        bounds = np.zeros(parts + 1, dtype=np.int64)
        np.cumsum([c.size for c in chunks], out=bounds[1:])
    elif how == "dynamic":
        rows = np.arange(m, dtype=np.int32)
        bounds = np.append(np.arange(0, m, max(1, rows_per_task), dtype=np.int64), m)
        if bounds.size == 1:
            bounds = np.array([0, 0], dtype=np.int64)
    else:
        raise ValueError(f"unknown balance {how!r}")
    return rows, bounds


def scheduled(call, how: str):
    """``call`` (no arguments) as a variant's ``run``: inside ``numba.parallel_chunksize(1)`` for ``dynamic``,
    so the prange hands its tasks out one at a time; as it is for the other balances."""
    if how != "dynamic":
        return call

    def run():
        with numba.parallel_chunksize(1):
            call()

    return run


def spread(row_nnz: np.ndarray, rows: np.ndarray, bounds: np.ndarray, how: str, threads: int) -> dict:
    """Per-part work (nonzeros) and the imbalance max/mean, for ``Prepared.info``."""
    csum = np.concatenate(([0], np.cumsum(row_nnz[rows], dtype=np.int64)))
    per_part = (csum[bounds[1:]] - csum[bounds[:-1]]).astype(np.int64)
    info = {"balance": how, "threads": int(threads), "parts": int(per_part.size)}
    if how == "dynamic":
        info["task_nnz_max"] = int(per_part.max()) if per_part.size else 0
        return info
    mean = float(per_part.mean()) if per_part.size else 0.0
    info["work_nnz_per_thread"] = per_part.tolist()
    info["work_rows_per_thread"] = np.diff(bounds).tolist()
    info["imbalance"] = round(float(per_part.max()) / mean, 4) if mean > 0 else 1.0
    return info
