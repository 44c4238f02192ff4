"""Rung 10 — CSR row-wise (Gustavson) order i→p→j, serial: the first rung that skips the zeros.

What changed from the dense rungs (1–4, ``cpu.dense.*``): the format. A is stored as CSR, so the loop over
the shared dimension visits only the stored nonzeros of a row; the loop order is rung 2's best, i→k→j.

For each row i of A and each stored nonzero p of that row (column k = indices[p], value v), the inner loop
adds v·B[k, :] to C[i, :]. The inner loop runs over j with unit stride in both B and C, so it vectorises;
the row of C being built stays in L1 while a row's nonzeros are processed.

Traffic (``movement.csr_rowwise``): A streamed once, one row of B (N values) re-read per nonzero, C written
once. At 90% sparsity that is 10× fewer flops than the dense rungs and B rows that are often reused from
cache across rows of A.

Loop order: i → p → j. What to look at: GFLOP/s (useful flops only) against the dense rungs and scipy;
each nonzero still loads and stores its row of C (the register-blocked rung 13 removes that).
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): 2.08 ms, 25.8 GFLOP/s, one thread — already ahead of scipy (2.41 ms) and
of numpy's dense sgemm on two threads (2.58 ms).
"""

from numba import njit

from spmm_study import movement
from spmm_study.registry import host_prepared, variant


@njit(cache=True)
def csr_rowwise(indptr, indices, data, b, c):
    m = indptr.size - 1
    n = b.shape[1]
    for i in range(m):
        for j in range(n):
            c[i, j] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            col = indices[p]
            v = data[p]
            for j in range(n):
                c[i, j] += v * b[col, j]


@variant("cpu.csr.rowwise", loop_order="i→p→j", movement=movement.csr_rowwise)
def build(problem):
    """CSR row-wise i→p→j, one thread: each nonzero scales a row of B into a row of C."""
    a = problem.a
    c = problem.new_output()
    return host_prepared(lambda: csr_rowwise(a.indptr, a.indices, a.data, problem.b, c), c)
