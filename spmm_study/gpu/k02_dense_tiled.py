"""GPU rung 2 — shared-memory tiled GEMM: the classic data-reuse lesson, still dense.

Each block of T×T threads computes a T×T tile of C. For every K-chunk of width T the block copies a
T×T tile of A and one of B into shared memory (one load per thread each), synchronises, and each thread
does T multiply-adds from shared memory. Loop order: (I, J) tiles parallel → K0 chunks → k in chunk.

What changed from rung 1: each value fetched from L2 now feeds T threads, so requested bytes fall by T
(``models.dense_tiled``: A read N/T times, B M/T times). Still multiplies every zero of A.
What to look at: time against rung 1 (expect several ×), and against cuBLAS (register tiling, wide
loads, double buffering and tensor-core-free FFMA scheduling still separate them).
"""

from functools import lru_cache

import numpy as np

from spmm_study.gpu import models
from spmm_study.gpu._kit import bind_cuda, ceil_div, cuda_module, device_bc, kernel_prepared, ptx_types
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import Param, variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(tile: int, dtype: str):
    bind_cuda(globals())

    np_t = np.dtype(dtype).type
    zero = np_t(0)

    @cuda.jit(cache=not simulator())
    def dense_tiled(a, b, c):
        sa = cuda.shared.array((tile, tile), np_t)
        sb = cuda.shared.array((tile, tile), np_t)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        j = cuda.blockIdx.x * tile + tx
        i = cuda.blockIdx.y * tile + ty
        m, k = a.shape
        n = b.shape[1]
        acc = zero
        for k0 in range(0, k, tile):
            # out-of-range entries load as zero, so the inner loop needs no bounds checks
            sa[ty, tx] = a[i, k0 + tx] if i < m and k0 + tx < k else zero
            sb[ty, tx] = b[k0 + ty, j] if k0 + ty < k and j < n else zero
            cuda.syncthreads()
            for kk in range(tile):
                acc += sa[ty, kk] * sb[kk, tx]
            cuda.syncthreads()
        if i < m and j < n:
            c[i, j] = acc

    return dense_tiled


SIM = (({"tile": 8}, ("n_not_multiple_of_tile", "1x1"), (5, 11)),)


def ptx_cases():
    t = ptx_types()
    return [("dense_tiled", kernel(16, "float32"), (t.a2(t.f32),) * 3, None)]


@variant("gpu.dense.tiled", loop_order="(I,J)∥→K0→k", movement=models.dense_tiled,
         params=(Param("tile", 16, (8, 16, 32), "tile edge T (T×T threads per block)", strict=True, maximum=32),),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, tile):
    """Shared-memory tiled dense GEMM: T×T tiles of A and B staged per K-chunk."""
    cu = cuda_module()
    a = cu.to_device(problem.a.to_dense())
    b, c = device_bc(problem)
    k = kernel(tile, problem.dtype.name)
    grid = (ceil_div(problem.n, tile), ceil_div(problem.m, tile))
    info = {"grid": list(grid), "block": [tile, tile]}
    return kernel_prepared([(k[grid, (tile, tile)], (a, b, c))], c, info, kernels=[("", k)], keep=(a, b))
