"""GPU rung 62 — direct sparse convolution: a filter's nonzeros in shared memory, shifted input windows.

The Escort/Escoin idea on the GPU, with CPU rung 63's numbering: output pixels are numbered with the padded
row pitch, ``q = oh·Wp + ow``, so tap (c, r, s) of pixel q reads the padded input at
``c·Hp·Wp + r·Wp + s + stride·q`` — one offset per nonzero and no index map at all. A block owns one filter
o, one image and ``threads·pixels`` consecutive wide pixels; it stages the filter's nonzeros (value and
offset) in shared memory ``threads`` at a time, and each thread adds them into its ``pixels`` accumulators
(pixels ``threads`` apart: a warp reads consecutive input addresses at stride 1). The Wp − Wo pixels per
output row that would wrap into the next row are computed and dropped.
What changed from rung 61: the weights come from shared memory (one global load per nonzero per block
instead of one per thread) and the addresses from arithmetic instead of a gathered index map.
Traffic (``movement.conv_direct_tiled``): nnz·N input values from shifted windows, A once per block, C once.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmm_study import movement
from spmm_study.conv import conv_info, conv_view, tap_deltas
from spmm_study.edge import SIM_SMALL
from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu._conv import device_operands, padded_input
from spmm_study.gpu._kit import bind_cuda, ceil_div, cuda_module, flat, kernel_prepared, ptx_types
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(threads: int, pixels: int, dtype: str):
    bind_cuda(globals())
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    PX = int(pixels)
    T = int(threads)

    @cuda.jit(cache=not simulator())
    def conv_direct(indptr, indices, data, delta, xpf, cf, image, ho, wo, wp, stride):
        sval = cuda.shared.array(T, np_t)
        soff = cuda.shared.array(T, np.int64)
        o = cuda.blockIdx.x
        b = cuda.blockIdx.z
        tid = cuda.threadIdx.x
        nq = (ho - 1) * wp + wo
        q0 = cuda.blockIdx.y * T * PX + tid
        base = b * image
        acc = cuda.local.array(PX, np_t)
        for u in range(PX):
            acc[u] = zero
        start = indptr[o]
        end = indptr[o + 1]
        for chunk in range(start, end, T):
            p = chunk + tid
            if p < end:
                sval[tid] = data[p]
                soff[tid] = delta[indices[p]]
            cuda.syncthreads()
            count = min(T, end - chunk)
            for e in range(count):
                v = sval[e]
                off = base + soff[e]
                for u in range(PX):
                    q = q0 + u * T
                    if q < nq:
                        acc[u] += v * xpf[off + stride * q]
            cuda.syncthreads()
        n = cf.size // (indptr.size - 1)
        for u in range(PX):
            q = q0 + u * T
            if q < nq:
                oh = q // wp
                ow = q - oh * wp
                if ow < wo:
                    cf[o * n + (b * ho + oh) * wo + ow] = acc[u]

    return conv_direct


SIM = (({"threads": 32, "pixels": 1}, SIM_SMALL, (5,)),
       ({"threads": 32, "pixels": 2}, ("n_not_multiple_of_tile", "wide"), (70,)))


def ptx_cases():
    t = ptx_types()
    i = t.i64
    return [("conv_direct", kernel(128, 2, "float32"),
             (*t.csr, t.a1(t.i64), t.a1(t.f32), t.a1(t.f32), i, i, i, i, i), None)]


def model(s, p):
    return movement.conv_direct_tiled(s, {"tile_n": p["threads"] * p["pixels"]})


@variant("gpu.conv.direct", loop_order="(o,Q,b)∥→t∥→p(smem)→u", movement=model,
         params=gp.conv_block(),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, threads, pixels):
    """Direct sparse convolution: a filter's nonzeros staged in shared memory, each a shifted input window."""
    g, x = conv_view(problem)
    if g.batch > 65535:
        raise ParamError(f"batch {g.batch} is past the grid's 65535 images")
    (indptr, indices, data), x_dev, c = device_operands(problem, x)
    delta = cuda_module().to_device(tap_deltas(g, (g.hp, g.wp)).astype(np.int64))
    xpad, refresh = padded_input(x_dev, g, problem.dtype)
    k = kernel(threads, pixels, problem.dtype.name)
    nq = (g.ho - 1) * g.wp + g.wo
    grid = (max(problem.m, 1), ceil_div(nq, threads * pixels), g.batch)
    info = conv_info(g, problem.dtype.itemsize)
    info.update(grid=list(grid), block=[threads], wasted_columns=round(1 - g.wo / g.wp, 4))
    args = (indptr, indices, data, delta, xpad, flat(c), *(np.int64(v) for v in (g.c * g.hp * g.wp, g.ho, g.wo, g.wp, g.stride)))
    launches = refresh + [(k[grid, threads], args)]
    return kernel_prepared(launches, c, info, kernels=[("", k)], keep=(indptr, indices, data, delta, x_dev, xpad))
