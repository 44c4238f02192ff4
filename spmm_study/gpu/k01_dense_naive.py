"""GPU rung 1 — dense naive GEMM: one thread per output C[i, j], A treated as dense.

The starting point of every CUDA course. Thread (i, j) walks k = 0..K-1 and reads A[i, k] and B[k, j].
Loop order: (i, j) parallel → k. threadIdx.x runs along j, so a warp reads 32 consecutive B[k, j]
(one 128-byte line) and writes 32 consecutive C[i, j]: coalesced; A[i, k] is the same address for the
whole warp (a broadcast). It multiplies every zero of A: at 90% sparsity nine flops in ten are wasted.

Traffic (``models.dense_naive``): each thread requests K values of A and K of B — M·N·K each — served
almost entirely by L1/L2; against the compulsory bytes the GB/s looks enormous and the time is poor.
What to look at: gflops_dense (the rate counting zeros) against cuBLAS; the 10× flop waste.
"""

from functools import lru_cache

import numpy as np

from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import bind_cuda, ceil_div, cuda_module, device_bc, kernel_prepared, ptx_types
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(dtype: str):
    bind_cuda(globals())

    zero = np.dtype(dtype).type(0)

    @cuda.jit(cache=not simulator())
    def dense_naive(a, b, c):
        j, i = cuda.grid(2)  # x → column j: consecutive threads touch consecutive B and C entries
        m, k = a.shape
        n = b.shape[1]
        if i < m and j < n:
            acc = zero
            for kk in range(k):
                acc += a[i, kk] * b[kk, j]
            c[i, j] = acc

    return dense_naive


SIM = (({"block_x": 8, "block_y": 4}, ("empty_rows", "1x1"), (5, 11)),)


def ptx_cases():
    t = ptx_types()
    return [("dense_naive", kernel("float32"), (t.a2(t.f32),) * 3, None)]


@variant("gpu.dense.naive", loop_order="(i,j)∥→k", movement=models.dense_naive,
         params=(gp.block_x(32, (32, 64, 128)),
                 gp.block_y(8, (1, 4, 8), "threads along M")),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, block_x, block_y):
    """Dense naive GEMM: a thread per C entry, A densified, zeros multiplied."""
    cu = cuda_module()
    a = cu.to_device(problem.a.to_dense())
    b, c = device_bc(problem)
    k = kernel(problem.dtype.name)
    grid = (ceil_div(problem.n, block_x), ceil_div(problem.m, block_y))
    launch = k[grid, (block_x, block_y)]
    info = {"grid": list(grid), "block": [block_x, block_y]}
    return kernel_prepared([(launch, (a, b, c))], c, info, kernels=[("", k)], keep=(a, b))
