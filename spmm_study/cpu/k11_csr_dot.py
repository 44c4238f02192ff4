"""Rung 11 — CSR in dot-product order i→j→p: the right format in the wrong loop order.

What changed from rung 10 (``cpu.csr.rowwise``, i→p→j): the two inner loops are swapped. Each C[i, j] is
now a dot product of row i of A (its stored nonzeros) with column j of B, accumulated in a register and
written once. It looks tidy, but the innermost loop walks B down a column: B[k, j] for the row's column
indices k, stride N·4 bytes = 1 KiB apart for N = 256, so every multiply-add touches a different cache line
and nothing vectorises (the j-loop, the only unit-stride one, is now outside). And the row's indices and
values are re-read N times.

Loop order: i → j → p. Traffic (``movement.csr_dot``): A read N times; a 64-byte line of B per useful
multiply-add. Expect it several times slower than rung 10 on the same flops.
What to look at: the modelled bytes (18× rung 10's) against the time ratio.
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): 29.1 ms against 2.08 ms for rung 10 — 14× slower, the same arithmetic.
"""

from numba import njit

from spmm_study import movement
from spmm_study.registry import host_prepared, variant


@njit(cache=True)
def csr_dot(indptr, indices, data, b, c):
    m = indptr.size - 1
    n = b.shape[1]
    for i in range(m):
        start = indptr[i]
        end = indptr[i + 1]
        for j in range(n):
            acc = 0.0
            for p in range(start, end):
                acc += data[p] * b[indices[p], j]
            c[i, j] = acc


@variant("cpu.csr.dot", loop_order="i→j→p", movement=movement.csr_dot)
def build(problem):
    """CSR in dot-product order i→j→p: B walked down its columns (the cost of a bad order)."""
    a = problem.a
    c = problem.new_output()
    return host_prepared(lambda: csr_dot(a.indptr, a.indices, a.data, problem.b, c), c)
