"""GPU rung 20 — COO with atomics: a thread per (nonzero, column), results added to C atomically.

The format with no rows at all: nonzero p carries (row, col, value). Thread (p, j) computes
value·B[col, j] and does ``atomicAdd(C[row, j])``. C is zeroed by a launch first. Loop order: (p, j)∥.

What changed from rung 11: parallel over nonzeros instead of rows — perfect balance whatever the row
lengths, and no per-row loop — paid for by a read-modify-write of C per nonzero per column (C traffic
grows from M·N to ~2·nnz·N values, ``models.coo_atomic``) and contended atomics when a warp's nonzeros
share a row. The order of the additions varies between runs: bits differ (flagged non-deterministic).
What to look at: GB/s against the model; repeatable=false in info.
Measured (H100, ffn_conv1 90%, N=4096, 2026-11-23, data/reference/gpu-ladder.csv): 1476 µs, 2.2× slower than rung 11.
"""

from functools import lru_cache

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.formats import COO
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import bind_cuda, ceil_div, cuda_module, device_bc, fill, flat, kernel_prepared, ptx_types
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(dtype: str):
    bind_cuda(globals())

    @cuda.jit(cache=not simulator())
    def coo_atomic(rows, cols, vals, b, cf, nnz):
        # threadIdx.x along j (coalesced B and C); nonzeros along grid x (y is capped at 65535 blocks)
        j = cuda.blockIdx.y * cuda.blockDim.x + cuda.threadIdx.x
        p = cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y
        n = b.shape[1]
        if p < nnz and j < n:
            cuda.atomic.add(cf, rows[p] * n + j, vals[p] * b[cols[p], j])

    return coo_atomic


SIM = (({"block_x": 8, "block_y": 4}, SIM_SMALL, (5, 11)),)


def ptx_cases():
    t = ptx_types()
    return [("coo_atomic", kernel("float32"),
             (t.a1(t.i32), t.a1(t.i32), t.a1(t.f32), t.a2(t.f32), t.a1(t.f32), t.i64), None)]


@variant("gpu.coo.atomic", loop_order="(p,j)∥ atomic", movement=models.coo_atomic, deterministic=False,
         params=(gp.block_x(128, (32, 64, 128, 256)),
                 gp.block_y(2, (1, 2, 4, 8), "nonzeros per block")),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, block_x, block_y):
    """COO, a thread per (nonzero, column), atomicAdd into a zeroed C (non-deterministic)."""
    cu = cuda_module()
    coo = COO.from_csr(problem.a)
    nnz = coo.nnz
    pad = (lambda x: x if nnz else np.zeros(1, x.dtype))
    rows = cu.to_device(np.ascontiguousarray(pad(coo.rows)))
    cols = cu.to_device(np.ascontiguousarray(pad(coo.cols)))
    vals = cu.to_device(np.ascontiguousarray(pad(coo.data)))
    b, c = device_bc(problem)
    cf = flat(c)
    k = kernel(problem.dtype.name)
    grid = (max(1, ceil_div(nnz, block_y)), ceil_div(problem.n, block_x))
    info = {"grid": list(grid), "block": [block_x, block_y]}
    return kernel_prepared([(k[grid, (block_x, block_y)], (rows, cols, vals, b, cf, np.int64(nnz)))], c, info,
                           kernels=[("", k)], keep=(rows, cols, vals, b), before=(lambda: fill(cf, 0.0),))
