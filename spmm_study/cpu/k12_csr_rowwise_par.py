"""Rung 12 — CSR row-wise i→p→j across threads (``prange``), with a choice of how rows are split.

What changed from rung 10 (``cpu.csr.rowwise``; rung 11 is the dot-product detour): the row loop is split
into one part per thread. Rows of C are disjoint, so the threads never write the same element: no atomics,
no races, same bits as one thread.
The inner loops are unchanged, so the gain is at most the thread count, and only if the parts carry equal
work: that is what ``balance`` is about (static row chunks, nnz-balanced prefix sums, sorted round-robin
"row swizzle", or dynamic tasks; see ``spmm_study.cpu.balance``). The nonzeros each thread got and the
imbalance (max/mean) are recorded in the result's ``info``.

Loop order: part t (prange) → row i → nonzero p → j. Each nonzero loads and stores the C row it updates
(in L1), so this kernel is bound by loads/stores, not by FMAs: the next rung keeps the row in registers.

Traffic (``movement.csr_rowwise``): as the serial rung; the threads share B in L3 and each has its own L2.
What to look at: ``imbalance`` in info next to the time of each ``balance``.
Measured (DLMC ffn_conv1 90%, N = 256, 2 threads, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): 0.94–0.99 ms for every ``balance`` against 2.08 ms for the serial rung — the
2× the thread count allows, because the rows are even (imbalance ≤ 1.003).
"""

from __future__ import annotations

import numba
from numba import njit, prange

from spmm_study import movement
from spmm_study.cpu.balance import balance_param, partition, rows_per_task_param, scheduled, spread
from spmm_study.registry import host_prepared, variant


@njit(parallel=True, cache=True)
def csr_rowwise_par(rows, bounds, indptr, indices, data, b, c):
    n = b.shape[1]
    for t in prange(bounds.size - 1):
        for r in range(bounds[t], bounds[t + 1]):
            i = rows[r]
            for j in range(n):
                c[i, j] = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                col = indices[p]
                v = data[p]
                for j in range(n):
                    c[i, j] += v * b[col, j]


@variant("cpu.csr.rowwise_par", loop_order="t‖→i→p→j", movement=movement.csr_rowwise,
         params=(balance_param("nnz"), rows_per_task_param()))
def build(problem, balance, rows_per_task):
    """CSR row-wise i→p→j over threads (prange); balance picks how rows are split."""
    a = problem.a
    threads = numba.get_num_threads()
    row_nnz = a.row_lengths()
    rows, bounds = partition(row_nnz, threads, balance, rows_per_task)
    c = problem.new_output()
    args = (rows, bounds, a.indptr, a.indices, a.data, problem.b, c)
    return host_prepared(scheduled(lambda: csr_rowwise_par(*args), balance), c,
                         spread(row_nnz, rows, bounds, balance, threads))
