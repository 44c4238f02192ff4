"""Rung 1 — dense naive GEMM in i→j→k order: the "normal matrix multiplication" every study starts from.

A is expanded to a dense M×K array and multiplied as if nothing were zero: 2·M·K·N flops, ten times the
useful work at 90% sparsity. For each output C[i, j] the inner loop walks row i of A (contiguous) and
column j of B (stride N: one cache line per element), so B is streamed from memory again and again.

What changed from the rung before: nothing — this is the baseline lesson every later rung is set against.
Loop order: i → j → k. Traffic (``movement.dense_ijk``): with no reuse from the caches, A and B move M·N·K
values each (a row of A and a column of B per output), C is written once from a register.

What to look at: GFLOP/s far below the machine's FMA peak and modelled bytes (``dense_ijk``) that dwarf the
compulsory ones; the loop-order rung shows how much just reordering the loops gives back.
Measured (DLMC transformer ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores,
2026-11-23, data/reference/cpu-ladder.csv): 327 ms, 0.16 useful GFLOP/s — 127× slower than numpy's sgemm
(2.58 ms) on the same dense product.
"""

from numba import njit

from spmm_study import movement
from spmm_study.registry import host_prepared, variant


@njit(cache=True, fastmath=False)
def dense_ijk(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    for i in range(m):
        for j in range(n):
            acc = 0.0
            for p in range(k):
                acc += a[i, p] * b[p, j]
            c[i, j] = acc


@variant("cpu.dense.naive", loop_order="i→j→k", movement=movement.dense_ijk)
def build(problem):
    """Dense i→j→k GEMM with A expanded to dense: the baseline lesson of the study."""
    a = problem.a.to_dense()
    b = problem.b
    c = problem.new_output()
    return host_prepared(lambda: dense_ijk(a, b, c), c)
