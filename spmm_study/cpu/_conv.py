"""What the CPU convolution rungs share (docs/conv.md): the im2col kernel, the filter split, the index map padded
to whole tiles, the tile param.

``im2col`` writes the patch matrix P (K × N, K = C·kh·kw rows in (channel, r, s) order, N = batch·Ho·Wo
columns in (image, output row, output column) order): ``P[k, j]`` is the input value filter tap k of output
pixel j sees, zero where the window hangs over the padding. It runs in parallel over the rows of P (each a
strided copy of one shifted input plane), and it is the whole cost of the replication: K·N values written
for C·H·W read (≈ 9× for a 3×3 filter at stride 1).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from spmm_study.conv import conv_info, pixel_offsets
from spmm_study.conv import tap_deltas  # noqa: F401  (the kernels here take it from conv.py, the GPU's too)
from spmm_study.cpu.balance import partition, spread
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


def split_filters(problem, g, parts: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(rows, bounds, info): the filters (A's rows) in ``parts`` nnz-balanced parts (default: one per thread), the
    parts' spread and the convolution's replication facts (``conv_info``) for the row's info. Every CPU conv rung
    parallelises over filters this way; only rung 64 chooses another number of parts."""
    parts = numba.get_num_threads() if parts is None else parts
    row_nnz = problem.a.row_lengths()
    rows, bounds = partition(row_nnz, parts, "nnz")
    info = spread(row_nnz, rows, bounds, "nnz", parts)
    info.update(conv_info(g, problem.dtype.itemsize))
    return rows, bounds, info


def tiled_pixel_offsets(g, tile_n: int) -> np.ndarray:
    """``pixel_offsets(g)`` padded with offset 0 to a whole number of ``tile_n`` tiles: a kernel gathers whole
    tiles (the extra lanes read the input's first value and are never stored)."""
    pix = pixel_offsets(g)
    return np.concatenate([pix, np.zeros(-g.n % tile_n, pix.dtype)])
