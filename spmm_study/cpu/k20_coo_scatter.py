"""Rung 20 — COO scatter, one thread: every nonzero is an independent update C[row, :] += v·B[col, :].

What changed from CSR row-wise (rung 10): there are no row offsets. Each nonzero carries its own row index,
so the loop is one flat pass over the triplets and the kernel cannot know a row is finished: C must be
zeroed first and every nonzero reads and writes its row of C (the row-wise rung also does that, but the
next nonzero of the same row finds the row in L1; here that still holds because the triplets are sorted by
row, which ``COO.from_csr`` guarantees). One more index per nonzero is read (8 instead of 4 bytes of index).

The lesson is the parallel one (rung 21): a flat loop over nonzeros is trivially split across threads, but
two threads may then update the same row of C at once.

Loop order: p → j (scatter). Traffic (``movement.coo_scatter``): triplets once, a row of B per nonzero, a
row of C read and written per nonzero, plus zeroing C.
What to look at: time against rung 10 (the same inner loop without row offsets).
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): 1.85 ms, one thread, against 2.08 ms for rung 10 — level: the sorted
triplets keep each row of C in L1 just as CSR does.
"""

from numba import njit

from spmm_study import movement
from spmm_study.formats import COO
from spmm_study.registry import host_prepared, variant


@njit(cache=True)
def coo_scatter(rows, cols, data, b, c):
    n = b.shape[1]
    c[:, :] = 0.0
    for p in range(rows.size):
        i = rows[p]
        k = cols[p]
        v = data[p]
        for j in range(n):
            c[i, j] += v * b[k, j]


@variant("cpu.coo.scatter", loop_order="p→j", movement=movement.coo_scatter)
def build(problem):
    """COO scatter C[row,:] += v·B[col,:] over sorted triplets, one thread."""
    coo = COO.from_csr(problem.a)
    c = problem.new_output()
    return host_prepared(lambda: coo_scatter(coo.rows, coo.cols, coo.data, problem.b, c), c)
