"""GPU rung 10 — CSR, one thread per row: the first sparse kernel, and the uncoalesced-access lesson.

Thread i owns row i of C. For each column j it walks the row's nonzeros p and sums data[p]·B[indices[p], j].
Loop order: i∥ → j → p. Only the nonzeros are multiplied (10× fewer flops than rung 1 at 90%).

But the 32 threads of a warp hold 32 different rows: at each step they read 32 B rows (32 different
128-byte lines for one useful 4-byte word each) and write C[i, j] 32 rows apart. Each warp load moves
32 sectors instead of 4, and there are only M threads (2048 for ffn_conv1: 1.5% of an H100's 270k
resident threads). The row of A is re-read N times (from L1). Expect this to be *slower* than the dense
naive rung despite doing a tenth of the flops: coalescing beats flop count on a GPU.
Measured (H100, ffn_conv1 90%, N=4096, 2026-11-23, data/reference/gpu-ladder.csv): 110 ms, against 6.5 ms for
the dense naive rung.
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
    def csr_row_thread(indptr, indices, data, b, c):
        i = cuda.grid(1)
        m = indptr.size - 1
        n = b.shape[1]
        if i < m:
            start = indptr[i]
            end = indptr[i + 1]
            for j in range(n):
                acc = zero
                for p in range(start, end):
                    acc += data[p] * b[indices[p], j]
                c[i, j] = acc

    return csr_row_thread


SIM = (({"threads": 32}, SIM_SMALL + ("tall",), (3, 9)),)


def ptx_cases():
    t = ptx_types()
    return [("row_thread", kernel("float32"), (*t.csr, t.a2(t.f32), t.a2(t.f32)), None)]


@variant("gpu.csr.row_thread", loop_order="i∥→j→p", movement=models.csr_row_thread,
         params=(gp.threads(),), available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, threads):
    """CSR, one thread per row: skips zeros, but a warp's loads hit 32 different rows (uncoalesced)."""
    indptr, indices, data, b, c = device_arrays(problem)
    k = kernel(problem.dtype.name)
    grid = ceil_div(problem.m, threads)
    info = {"grid": [grid], "block": [threads]}
    return kernel_prepared([(k[grid, threads], (indptr, indices, data, b, c))], c, info, kernels=[("", k)],
                           keep=(indptr, indices, data, b))
