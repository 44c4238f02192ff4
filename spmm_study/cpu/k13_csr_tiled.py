"""Rung 13 — CSR, N-tiled and register-blocked, ``prange`` over nnz-balanced row parts: the tuned CSR kernel.

What changed from rung 12, the parallel row-wise rung (``cpu.csr.rowwise_par``): the row of C is no longer built in
memory. For each row i and each tile of ``tile_n`` columns, the partial row ``acc[0:tile_n]`` lives in a
fixed-size stack array that LLVM promotes to vector registers (``tile_n = 256`` fp32 = 16 zmm registers
of AVX-512, out of 32); every nonzero then costs ``tile_n/16`` vector loads of B and as many FMAs, with no
load or store of C at all, and C is written once per tile. The row-wise rung instead loads and stores
``C[i, j]`` for every nonzero (2 extra memory operations per FMA), so the kernel is bound by the L1
load/store ports rather than by the FMA units.

Loop order: part t (prange) → row i → column tile j0 → nonzero p → j (unrolled, in registers).

Why each choice (numbers from experiments/notes-cpu.md, AMD EPYC Zen5, DLMC ffn_conv1 at 90%, N = 256):

* ``tile_n``: the accumulator must fit in the register file and the tile width must be a compile-time
  constant (each value is its own compiled kernel). 256 covers N = 256 in one pass, so A's indices and
  values are read once; smaller tiles re-read the row's nonzeros N/tile_n times. Below 64 LLVM fully
  unrolls the j-loop *before* the loop vectoriser sees it, and the SLP vectoriser does not put the 16 or 32
  scalar accumulators back into vectors: ``experiments/cpu_asm.py`` counts 25 scalar FMAs and 4 zmm FMAs
  for tile_n = 16 against 20 zmm FMAs for 256, and the time is 6–7× worse. Kept as choices for that lesson.
* B rows are taken as 1-D slices ``b[k, j0:j0+tile_n]`` so that the index is provably non-negative;
  with ``b[k, j0 + j]`` numba's negative-index wraparound check made LLVM emit gathers (4× slower).
* ``fastmath={"contract"}`` only: a·b + c becomes one FMA (one rounding instead of two, more accurate).
  No reassociation is needed — each lane sums its nonzeros in stored order — so results are bitwise
  deterministic and independent of the thread count.
* ``balance``: see ``spmm_study.cpu._balance``; the per-thread nonzeros land in the result's ``info``.
* Columns past the last full tile (N mod tile_n) are done row-wise into C directly.

Traffic (``movement.csr_tiled``): A read ceil(N/tile_n) times, one tile-row of B per nonzero per tile
(nnz·N values in all, from L2: B is 512 KiB for K = 512, N = 256), C written exactly once.

What to look at: GFLOP/s against the row-wise rungs, and ``imbalance`` in info for the balance choices.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study import movement
from spmm_study.cpu._balance import balance_param, partition, rows_per_task_param, spread
from spmm_study.cpu._simd import stack_empty
from spmm_study.registry import Param, host_prepared, variant

TILE_CHOICES = (16, 32, 64, 128, 256)


@lru_cache(maxsize=None)
def kernel(tile_n: int):
    """The kernel for one tile width: ``TN`` is a closure constant, so the alloca and the j-loops are fixed-size."""
    TN = int(tile_n)

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def csr_tiled(rows, bounds, indptr, indices, data, b, c):
        n = b.shape[1]
        n_full = n - n % TN
        for t in prange(bounds.size - 1):
            acc = numba.carray(stack_empty(TN, b.dtype), TN)
            for r in range(bounds[t], bounds[t + 1]):
                i = rows[r]
                start = indptr[i]
                end = indptr[i + 1]
                for j0 in range(0, n_full, TN):
                    for j in range(TN):
                        acc[j] = 0.0
                    for p in range(start, end):
                        v = data[p]
                        brow = b[indices[p], j0:j0 + TN]  # a 1-D view: unit stride, index >= 0 → vector loads
                        for j in range(TN):
                            acc[j] += v * brow[j]
                    crow = c[i, j0:j0 + TN]
                    for j in range(TN):
                        crow[j] = acc[j]
                if n_full < n:  # the tail tile, accumulated in C itself (at most TN-1 columns)
                    ctail = c[i, n_full:n]
                    for j in range(n - n_full):
                        ctail[j] = 0.0
                    for p in range(start, end):
                        v = data[p]
                        btail = b[indices[p], n_full:n]
                        for j in range(n - n_full):
                            ctail[j] += v * btail[j]

    return csr_tiled


@variant(
    "cpu.csr.tiled", loop_order="t‖→i→j0→p→j", movement=movement.csr_tiled, rung=13,
    params=(
        Param("tile_n", 256, TILE_CHOICES, "columns of C held in registers per row (compile-time constant)", minimum=1),
        balance_param("nnz"),
        rows_per_task_param(),
    ),
)
def build(problem, tile_n, balance, rows_per_task):
    """CSR register-blocked over N (acc of tile_n floats in vector registers), prange with balanced rows."""
    a = problem.a
    threads = numba.get_num_threads()
    row_nnz = a.row_lengths()
    rows, bounds = partition(row_nnz, threads, balance, rows_per_task)
    info = spread(row_nnz, rows, bounds, balance, threads)
    info["tile_n"] = tile_n
    k = kernel(tile_n)
    c = problem.new_output()
    args = (rows, bounds, a.indptr, a.indices, a.data, problem.b, c)
    if balance == "dynamic":
        def run():
            with numba.parallel_chunksize(1):
                k(*args)
    else:
        def run():
            k(*args)
    return host_prepared(run, c, info)
