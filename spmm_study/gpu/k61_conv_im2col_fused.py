"""GPU rung 61 — im2col fused into the SpMM: each thread gathers its pixels' patch values as it needs them.

A block owns one filter (row i of the weights) and ``threads·pixels`` output pixels; each thread keeps
``pixels`` accumulators (pixels ``threads`` apart, so a warp's loads stay consecutive) and walks the filter's
nonzeros: for nonzero (value, k) it adds ``value · xpad[pix[j] + delta[k]]``, where ``pix[j]`` (one int
per output pixel: the whole index map is N integers) locates pixel j's window in the zero-padded input and
``delta[k]`` locates tap k inside a window. No patch matrix is written; the padded copy of the input is
refreshed by a kernel at each call (timed). The filter's nonzeros are read by every thread of the warp at
once (a broadcast), the input values by consecutive threads from consecutive addresses (coalesced, except
where a warp's pixels cross an output row).
Traffic (``movement.conv_fused``): nnz·N gathered values through L1/L2, the index map, A once per block.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmm_study import movement
from spmm_study.conv import conv_info, conv_view, pixel_offsets, tap_deltas
from spmm_study.edge import SIM_SMALL
from spmm_study.gpu import _params as gp
from spmm_study.gpu._conv import device_operands, padded_input
from spmm_study.gpu._kit import bind_cuda, ceil_div, cuda_module, flat, kernel_prepared, ptx_types
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(pixels: int, dtype: str):
    bind_cuda(globals())
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    PX = int(pixels)

    @cuda.jit(cache=not simulator())
    def conv_fused(indptr, indices, data, delta, pix, xpf, cf, n):
        i = cuda.blockIdx.x
        bx = cuda.blockDim.x
        j0 = cuda.blockIdx.y * bx * PX + cuda.threadIdx.x
        acc = cuda.local.array(PX, np_t)
        base = cuda.local.array(PX, np.int64)
        for u in range(PX):
            acc[u] = zero
            j = j0 + u * bx
            base[u] = pix[j] if j < n else 0
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            d = delta[indices[p]]
            for u in range(PX):
                if j0 + u * bx < n:
                    acc[u] += v * xpf[base[u] + d]
        for u in range(PX):
            j = j0 + u * bx
            if j < n:
                cf[i * n + j] = acc[u]

    return conv_fused


SIM = (({"threads": 32, "pixels": 1}, SIM_SMALL, (5,)),
       ({"threads": 32, "pixels": 2}, ("n_not_multiple_of_tile", "wide"), (70,)))


def ptx_cases():
    t = ptx_types()
    return [("conv_fused", kernel(2, "float32"),
             (*t.csr, t.a1(t.i64), t.a1(t.i64), t.a1(t.f32), t.a1(t.f32), t.i64), None)]


def model(s, p):
    return movement.conv_fused(s, {"tile_n": p["threads"] * p["pixels"]})


@variant("gpu.conv.im2col_fused", loop_order="(i,J)∥→t∥→p→u (gather)", movement=model,
         params=gp.conv_block(),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, threads, pixels):
    """im2col fused: patch values gathered through an N-entry index map by consecutive threads, never stored."""
    g, x = conv_view(problem)
    (indptr, indices, data), x_dev, c = device_operands(problem, x)
    cu = cuda_module()
    delta = cu.to_device(tap_deltas(g, (g.hp, g.wp)).astype(np.int64))
    pix = cu.to_device(pixel_offsets(g).astype(np.int64))
    xpad, refresh = padded_input(x_dev, g, problem.dtype)
    k = kernel(pixels, problem.dtype.name)
    grid = (max(problem.m, 1), ceil_div(problem.n, threads * pixels))
    info = conv_info(g, problem.dtype.itemsize)
    info.update(grid=list(grid), block=[threads], index_map_bytes=g.n * 8)
    launches = refresh + [(k[grid, threads], (indptr, indices, data, delta, pix, xpad, flat(c), np.int64(problem.n)))]
    return kernel_prepared(launches, c, info, kernels=[("", k)], keep=(indptr, indices, data, delta, pix, x_dev, xpad))
