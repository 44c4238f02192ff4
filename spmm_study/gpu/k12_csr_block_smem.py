"""GPU rung 12 — CSR, one block per (row, column panel), the row staged in shared memory.

The block's threads first copy up to ``threads`` of the row's (index, value) pairs into shared memory with
one coalesced load each, synchronise, and then every thread (one column j each) walks the staged pairs
from shared memory; longer rows are staged in chunks. Loop order: (i, J-panel)∥ → p-chunk → p → (j).

What changed from rung 11: the row of A is fetched once per block by a coalesced load instead of as a
broadcast by every warp; the dependent chain "load index → load B" now starts from shared memory.
This is the "plain numba shared-memory CSR" of the issue (597 µs for ffn_conv1 90% at N=4096 on the H100).
Traffic (``models.csr_panel``): A once per panel of ``threads`` columns, one B row segment per nonzero.
What to look at: the two barriers per chunk and one 4-byte B load per multiply-add: the load pipeline,
not DRAM, is the limit (GB/s against the compulsory bytes stays far under 3 TB/s).
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
def kernel(threads: int, dtype: str, index_dtype: str):
    bind_cuda(globals())

    np_t = np.dtype(dtype).type
    idx_t = np.dtype(index_dtype).type
    zero = np_t(0)

    @cuda.jit(cache=not simulator())
    def csr_block_smem(indptr, indices, data, b, c):
        s_col = cuda.shared.array(threads, idx_t)
        s_val = cuda.shared.array(threads, np_t)
        i = cuda.blockIdx.x
        t = cuda.threadIdx.x
        j = cuda.blockIdx.y * threads + t
        n = b.shape[1]
        start = indptr[i]
        end = indptr[i + 1]
        acc = zero
        for p0 in range(start, end, threads):
            cnt = min(threads, end - p0)
            if t < cnt:
                s_col[t] = indices[p0 + t]
                s_val[t] = data[p0 + t]
            cuda.syncthreads()
            if j < n:
                for q in range(cnt):
                    acc += s_val[q] * b[s_col[q], j]
            cuda.syncthreads()
        if j < n:
            c[i, j] = acc

    return csr_block_smem


SIM = (({"threads": 8}, SIM_SMALL, (5, 11)),)


def ptx_cases():
    t = ptx_types()
    return [("block_smem", kernel(128, "float32", "int32"), (*t.csr, t.a2(t.f32), t.a2(t.f32)), None)]


@variant("gpu.csr.block_smem", loop_order="(i,J)∥→p0→p→j", movement=models.csr_panel(lambda p: p["threads"]),
         params=(gp.threads(128, (32, 64, 128, 256), "threads per block = columns per panel"),),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, threads):
    """CSR, a block per (row, column panel), the row's indices and values staged in shared memory."""
    indptr, indices, data, b, c = device_arrays(problem)
    k = kernel(threads, problem.dtype.name, problem.a.indices.dtype.name)
    grid = (max(problem.m, 1), ceil_div(problem.n, threads))
    info = {"grid": list(grid), "block": [threads]}
    return kernel_prepared([(k[grid, threads], (indptr, indices, data, b, c))], c, info, kernels=[("", k)],
                           keep=(indptr, indices, data, b))
