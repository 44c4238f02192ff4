"""GPU rung 11 — CSR, one thread per (row, column): coalesced B and C.

Thread (i, j) sums data[p]·B[indices[p], j] over the nonzeros p of row i. threadIdx.x runs along j, so a
warp now reads 32 consecutive floats of one B row (one 128-byte line) and writes 32 consecutive C
entries: every byte fetched is used. The row's indices and values are the same address for the whole
warp (broadcast loads, served by L1). Loop order: (i, j)∥ → p. There are M·N threads: plenty of
parallelism at any N.

What changed from rung 10: the thread → data mapping, not the arithmetic; expect ~10× or more.
Traffic (``models.csr_panel``): A re-read once per column block (block_x columns), one B row segment per
nonzero, C once. What to look at: GB/s against the model (how much of the B re-reads L1/L2 absorb).
Measured (H100, ffn_conv1 90%, N=4096, 2026-11-23, data/reference/gpu-ladder.csv): 682 µs — 160× faster
than rung 10.
"""

from functools import lru_cache

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import bind_cuda, ceil_div, device_arrays, kernel_prepared, ptx_types
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(dtype: str):
    bind_cuda(globals())

    zero = np.dtype(dtype).type(0)

    @cuda.jit(cache=not simulator())
    def csr_row_col(indptr, indices, data, b, c):
        j, i = cuda.grid(2)
        m = indptr.size - 1
        n = b.shape[1]
        if i < m and j < n:
            acc = zero
            for p in range(indptr[i], indptr[i + 1]):
                acc += data[p] * b[indices[p], j]
            c[i, j] = acc

    return csr_row_col


SIM = (({"block_x": 8, "block_y": 4}, SIM_SMALL, (5, 11)),)


def ptx_cases():
    t = ptx_types()
    return [("row_col", kernel("float32"), (*t.csr, t.a2(t.f32), t.a2(t.f32)), None)]


@variant("gpu.csr.row_col", loop_order="(i,j)∥→p", movement=models.csr_panel(lambda p: p["block_x"]),
         params=(gp.block_x(128, (32, 64, 128, 256)),
                 gp.block_y(2, (1, 2, 4), "rows per block")),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, block_x, block_y):
    """CSR, a thread per (row, column): warps read whole 128-byte lines of B and write lines of C."""
    indptr, indices, data, b, c = device_arrays(problem)
    k = kernel(problem.dtype.name)
    grid = (ceil_div(problem.n, block_x), ceil_div(problem.m, block_y))
    info = {"grid": list(grid), "block": [block_x, block_y]}
    return kernel_prepared([(k[grid, (block_x, block_y)], (indptr, indices, data, b, c))], c, info,
                           kernels=[("", k)], keep=(indptr, indices, data, b))
