"""Rung 22 — CSC outer products k→p→j: each column of A times a row of B, scattered into C.

What changed from CSR row-wise (rung 10): the outer loop runs over the shared dimension k. Column k of A
(its nonzeros, in CSC) times row k of B is a rank-1 update of C. The row of B is read once and stays in L1
while all the column's nonzeros use it — B is read exactly once, the compulsory minimum — but each nonzero
now reads and writes a different row of C, scattered over all M rows: C (2 MiB for 2048×256 fp32) no longer
fits L1 or L2 and is re-read and rewritten nnz·N times from L3. The outer-product order trades B reuse for C
traffic; in SpMM C is the larger operand, so it loses. (It is the natural order when A arrives by columns,
and the order of the sparse-times-sparse literature.)

Parallel outer products would race on C (two columns hitting the same row); this rung stays serial.

Loop order: k → p → j. Traffic (``movement.csc_outer``): A once, B once, C read+written per nonzero.
What to look at: the modelled B bytes (the compulsory minimum) against the time: the C traffic decides.
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): 2.56 ms, one thread, against 2.08 ms for row-wise CSR (rung 10).
"""

from numba import njit

from spmm_study import movement
from spmm_study.formats import CSC
from spmm_study.registry import host_prepared, variant


@njit(cache=True)
def csc_outer(indptr, indices, data, b, c):
    k = indptr.size - 1
    n = b.shape[1]
    c[:, :] = 0.0
    for kk in range(k):
        brow = b[kk]
        for p in range(indptr[kk], indptr[kk + 1]):
            i = indices[p]
            v = data[p]
            for j in range(n):
                c[i, j] += v * brow[j]


@variant("cpu.csc.outer", loop_order="k→p→j", movement=movement.csc_outer)
def build(problem):
    """CSC outer products k→p→j: B read once, C rows scattered per nonzero."""
    csc = CSC.from_csr(problem.a)
    c = problem.new_output()
    return host_prepared(lambda: csc_outer(csc.indptr, csc.indices, csc.data, problem.b, c), c)
