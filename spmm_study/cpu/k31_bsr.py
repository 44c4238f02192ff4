"""Rung 31 — BSR (block sparse rows): dense br×bc blocks, one index per block.

What changed from CSR row-wise (rung 12, parallel): nonzeros are grouped into small dense blocks. One
column index now serves br·bc values, and inside a block the loops are dense (no index load per value);
a block row's br rows of C stay in L1 while its blocks are applied. That pays off when the pattern *is*
blocky (structured pruning, ``synthetic:block``). On unstructured magnitude pruning most blocks hold one
or two nonzeros, and the zeros filled in cost full multiply-adds: ``fill`` in info is the stored values per
nonzero (1.0 = full blocks; about 10 for 4×4 blocks on DLMC at 90%). The converter refuses (a SKIP row) when
the fill passes 64×.

Loop order: block row I (prange) → block q → r (row in block) → c (column in block) → j.
Traffic (``movement.bsr``): every stored value reads a row of B; C rows of a block row stay in L1.
What to look at: ``fill`` in info against the time; ``synthetic:block`` matrices against DLMC ones.
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold, 2 threads; AMD EPYC Zen 5, 2 shared cores,
2026-11-23, data/reference/cpu-ladder.csv): 4×4 blocks 6.95 ms (fill 8.1), 1×4 blocks 3.29 ms (fill 3.4),
against 0.95 ms for the parallel row-wise CSR rung — magnitude pruning is not blocky.
"""

import numba
from numba import njit, prange

from spmm_study import movement
from spmm_study.formats import BSR
from spmm_study.registry import Param, host_prepared, variant


@njit(parallel=True, fastmath={"contract"}, cache=True)
def bsr_rows(m, k, br, bc, indptr, indices, data, b, c):
    n = b.shape[1]
    for blk_row in prange(indptr.size - 1):
        r0 = blk_row * br
        r1 = min(r0 + br, m)
        c[r0:r1, :] = 0.0
        for q in range(indptr[blk_row], indptr[blk_row + 1]):
            k0 = indices[q] * bc
            k1 = min(k0 + bc, k)
            for rr in range(r1 - r0):
                crow = c[r0 + rr]
                for cc in range(k1 - k0):
                    v = data[q, rr, cc]
                    brow = b[k0 + cc]
                    for j in range(n):
                        crow[j] += v * brow[j]


@variant("cpu.bsr.rowwise", loop_order="I‖→q→r→c→j", movement=movement.bsr, params=(
    Param("br", 4, (1, 2, 4, 8), "block rows", minimum=1, maximum=64),
    Param("bc", 4, (1, 2, 4, 8), "block columns", minimum=1, maximum=64),
))
def build(problem, br, bc):
    """BSR with br×bc dense blocks (block sizes as Params), prange over block rows."""
    a = BSR.from_csr(problem.a, br, bc)
    c = problem.new_output()
    info = {"blocks": a.blocks, "fill": round(a.fill, 4), "threads": numba.get_num_threads()}
    m, k = problem.a.shape
    return host_prepared(lambda: bsr_rows(m, k, br, bc, a.indptr, a.indices, a.data, problem.b, c), c, info)
