"""Rung 63 — direct sparse convolution with the output in registers: shifted windows, no gathers.

Rung 62 accumulates each output plane in memory; rung 61 keeps the output in registers but gathers its
inputs. This rung has both advantages. Number the output pixels of one image ``q = oh·Wp + ow``, with the
row pitch Wp of the *padded* input rather than Wo. Then tap (c, r, s) of pixel q reads the padded input at
``c·Hp·Wp + r·Wp + s + stride·q``: one offset per nonzero plus the pixel number, so a run of consecutive
q is a run of consecutive inputs (stride 1) and every nonzero's ``tile_n`` values are one contiguous vector
load — rung 13's loop nest exactly, with B's row k replaced by the input shifted by tap k. The price is
Wp − Wo wasted columns per output row (the pixels whose window would wrap into the next row: 2 of 58 at
56×56, 2 of 9 at 7×7) that are computed and thrown away; at stride 2 the loads are strided and half of the
columns are wasted. The last, partial tile is loaded whole too (the padded buffer has ``tile_n`` zeros of
slack after it) and its extra lanes are dropped: a 16-wide tail tile would be unrolled into scalar code before
the vectoriser sees it (rung 13's lesson), and a 7×7 image (61 wide pixels) would be nothing but tails.

Loop order: t‖ → o → b → q0 → p → q (registers).
Traffic (``movement.conv_direct_tiled``): nnz·N input values from shifted windows, A once per tile,
C written once, the padded copy of x.
Measured (same run as rung 60's figure, data/reference/conv-table3-cpu-1t.csv):
56×56 at 90% 3.64 ms, 7×7 at 95% 631 µs (24× dense im2col +
GEMM, 28× torch's oneDNN conv2d on that run).
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study import movement
from spmm_study.conv import conv_view, padded
from spmm_study.cpu._conv import conv_tile_param, split_filters, tap_deltas
from spmm_study.cpu._simd import elem_ptr, stack_empty
from spmm_study.registry import host_prepared, variant


@njit(inline="always")
def _store(c, i, col0, acc, q0, width, wo, wp):
    """Write the valid pixels of a wide tile (q = oh·wp + ow, ow < wo) into C's row i."""
    for j in range(width):
        q = q0 + j
        oh = q // wp
        ow = q - oh * wp
        if ow < wo:
            c[i, col0 + oh * wo + ow] = acc[j]


@lru_cache(maxsize=None)
def kernel(tile_n: int):
    TN = int(tile_n)

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def conv_direct_tiled(rows, bounds, indptr, indices, data, delta, xflat, image, c, ho, wo, wp, stride):
        batch = c.shape[1] // (ho * wo)
        nq = (ho - 1) * wp + wo  # wide pixel numbers 0..nq-1 (q = oh·wp + ow); ow >= wo are thrown away
        for t in prange(bounds.size - 1):
            acc = numba.carray(stack_empty(TN, c.dtype), TN)
            for r in range(bounds[t], bounds[t + 1]):
                i = rows[r]
                start = indptr[i]
                end = indptr[i + 1]
                for b in range(batch):
                    base = np.uint64(b) * np.uint64(image)
                    col0 = b * ho * wo
                    for q0 in range(0, nq, TN):
                        # a whole tile even when fewer than TN pixels are left: the lanes past the last pixel
                        # read the next image or the buffer's zero slack, and are not stored
                        for j in range(TN):
                            acc[j] = 0.0
                        if stride == 1:
                            for p in range(start, end):
                                v = data[p]
                                win = numba.carray(elem_ptr(xflat, base + delta[indices[p]] + np.uint64(q0)), TN)
                                for j in range(TN):
                                    acc[j] += v * win[j]
                        else:
                            for p in range(start, end):
                                v = data[p]
                                off = base + delta[indices[p]] + np.uint64(stride * q0)
                                for j in range(min(TN, nq - q0)):
                                    acc[j] += v * xflat[off + np.uint64(stride * j)]
                        _store(c, i, col0, acc, q0, min(TN, nq - q0), wo, wp)

    return conv_direct_tiled


@variant("cpu.conv.direct_tiled", loop_order="t‖→o→b→q0→p→q", movement=movement.conv_direct_tiled,
         params=(conv_tile_param(64, (16, 64)),))
def build(problem, tile_n):
    """Direct sparse convolution, output tiles in registers: each nonzero one contiguous shifted input window."""
    g, x = conv_view(problem)
    a = problem.a
    rows, bounds, info = split_filters(problem, g)
    info.update(tile_n=tile_n, wasted_columns=round(1 - g.wo / g.wp, 4) if g.wp else 0.0)
    xp = padded(x, g, slack=tile_n)
    xflat = xp.flat
    delta = tap_deltas(g, (g.hp, g.wp))
    c = problem.new_output()
    k = kernel(tile_n)
    args = (rows, bounds, a.indptr, a.indices, a.data, delta, xflat, np.int64(g.c * g.hp * g.wp), c,
            np.int64(g.ho), np.int64(g.wo), np.int64(g.wp), np.int64(g.stride))

    def run():
        xp.refresh()
        k(*args)

    return host_prepared(run, c, info)
