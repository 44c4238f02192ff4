"""What the CPU convolution rungs share (docs/conv.md): the im2col kernel, the padded input, the tile param.

``im2col`` writes the patch matrix P (K × N, K = C·kh·kw rows in (channel, r, s) order, N = batch·Ho·Wo
columns in (image, output row, output column) order): ``P[k, j]`` is the input value filter tap k of output
pixel j sees, zero where the window hangs over the padding. It runs in parallel over the rows of P (each a
strided copy of one shifted input plane), and it is the whole cost of the replication: K·N values written
for C·H·W read (≈ 9× for a 3×3 filter at stride 1).
"""

from __future__ import annotations

from numba import njit, prange

from spmm_study.conv import tap_deltas  # noqa: F401  (the kernels here take it from conv.py, the GPU's too)
from spmm_study.cpu._simd import MAX_STACK_VALUES
from spmm_study.registry import Param


@njit(parallel=True, cache=True)
def im2col(x, p, kh, kw, pad, stride, ho, wo):
    batch, c, h, w = x.shape
    taps = kh * kw
    for k in prange(c * taps):
        ci = k // taps
        r = (k // kw) % kh
        s = k % kw
        row = p[k]
        for b in range(batch):
            for oh in range(ho):
                ih = oh * stride + r - pad
                base = (b * ho + oh) * wo
                if ih < 0 or ih >= h:
                    for ow in range(wo):
                        row[base + ow] = 0.0
                    continue
                src = x[b, ci, ih]
                for ow in range(wo):
                    iw = ow * stride + s - pad
                    row[base + ow] = src[iw] if 0 <= iw < w else 0.0


def conv_tile_param(default: int, choices: tuple) -> Param:
    return Param("tile_n", default, choices, "output pixels held in registers per filter (a compile-time constant: "
                 "one kernel per value)", minimum=1, maximum=MAX_STACK_VALUES)
