"""What the GPU convolution rungs share (docs/conv.md): im2col and padding kernels, the operands on the device.

``im2col`` writes the patch matrix (K × N, row-major) with one thread per element, consecutive threads on
consecutive pixels (coalesced stores); ``pad`` copies the input into the interior of a zero-bordered buffer
(batch × C × Hp × Wp) whose border was zeroed once when it was allocated. Both are grid-stride loops, so a
few thousand threads cover any size (and a few dozen in the simulator).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmm_study.gpu._kit import bind_cuda, ceil_div, cuda_module, device_csr, fill, flat
from spmm_study.gpu.device import simulator

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def im2col_kernel(dtype: str):
    bind_cuda(globals())
    zero = np.dtype(dtype).type(0)

    @cuda.jit(cache=not simulator())
    def im2col(xf, pf, c, h, w, kh, kw, pad, stride, ho, wo, n):
        start, step = cuda.grid(1), cuda.gridsize(1)
        taps = kh * kw
        for e in range(start, c * taps * n, step):
            k = e // n
            j = e - k * n
            ci = k // taps
            r = (k // kw) % kh
            s = k % kw
            b = j // (ho * wo)
            rest = j - b * ho * wo
            oh = rest // wo
            ow = rest - oh * wo
            ih = oh * stride + r - pad
            iw = ow * stride + s - pad
            if ih >= 0 and ih < h and iw >= 0 and iw < w:
                pf[e] = xf[((b * c + ci) * h + ih) * w + iw]
            else:
                pf[e] = zero

    return im2col


@lru_cache(maxsize=None)
def pad_kernel(dtype: str):
    bind_cuda(globals())

    @cuda.jit(cache=not simulator())
    def pad_copy(xf, xpf, h, w, pad, total):
        start, step = cuda.grid(1), cuda.gridsize(1)
        hp = h + 2 * pad
        wp = w + 2 * pad
        for e in range(start, total, step):
            plane = e // (h * w)
            rest = e - plane * h * w
            ih = rest // w
            iw = rest - ih * w
            xpf[(plane * hp + ih + pad) * wp + iw + pad] = xf[e]

    return pad_copy


def launch_1d(total: int) -> tuple[int, int]:
    threads = 256 if not simulator() else 32
    return max(1, min(ceil_div(max(total, 1), threads), 4096 if not simulator() else 4)), threads


def device_input(x: np.ndarray):
    """x on the device, flat (batch·C·H·W)."""
    return cuda_module().to_device(np.ascontiguousarray(x).reshape(-1))


def device_operands(problem, x):
    """((indptr, indices, data) of the weights, the input x, C poisoned with NaN), all on the device: what every
    GPU convolution rung starts from (``x`` from ``conv.conv_view``)."""
    x_dev = device_input(x)
    c = cuda_module().device_array((problem.m, problem.n), dtype=problem.dtype)
    fill(flat(c), np.nan)
    return device_csr(problem.a), x_dev, c


def padded_input(x_dev, g, dtype):
    """(padded buffer, [(launch, args)] refreshing its interior): the buffer's border zeroed once here."""
    cu = cuda_module()
    buf = cu.device_array(g.batch * g.c * g.hp * g.wp, dtype=dtype)
    fill(buf, 0.0)
    total = g.batch * g.c * g.h * g.w
    if total == 0:
        return buf, []
    k = pad_kernel(np.dtype(dtype).name)
    grid, threads = launch_1d(total)
    return buf, [(k[grid, threads], (x_dev, buf, np.int64(g.h), np.int64(g.w), np.int64(g.pad), np.int64(total)))]


def im2col_launch(x_dev, patches, g):
    k = im2col_kernel(np.dtype(patches.dtype).name)
    grid, threads = launch_1d(g.k * g.n)
    args = (x_dev, flat(patches), *(np.int64(v) for v in (g.c, g.h, g.w, g.kh, g.kw, g.pad, g.stride, g.ho, g.wo, g.n)))
    return k[grid, threads], args


def ptx_cases():
    from spmm_study.gpu._kit import ptx_types

    t = ptx_types()
    i = t.i64
    return [("im2col", im2col_kernel("float32"), (t.a1(t.f32), t.a1(t.f32), *([i] * 10)), None),
            ("pad", pad_kernel("float32"), (t.a1(t.f32), t.a1(t.f32), i, i, i, i), None)]
