"""Rung 61 — im2col fused into the SpMM: each patch value gathered from the input when it is needed.

What changed from rung 60: the patch matrix is never written. Its value ``P[k, j]`` is the padded input
at ``pix[j] + delta[k]``: ``pix[j]`` is where output pixel j's window starts (one int per pixel: the
whole index map is N integers, where P was K·N values) and ``delta[k]`` where tap k = (channel, r, s)
sits inside a window. The loop nest is rung 13's — a row of C in register tiles of ``tile_n`` pixels, the
row's nonzeros streamed — except that a nonzero's ``tile_n`` values of B are a *gather*
(``xpad[pix[j0 + j] + delta[k]]``) instead of a contiguous row segment. The input is copied into a
zero-padded buffer once per call (timed) so that no index needs a bounds test.

What to look at: the replication bytes are gone (``bytes_model`` against rung 60), but every value of B is now
a gather through the index map (per lane an index load, an add and an indexed load, where rung 13 has one
contiguous vector load per 16 lanes), and each patch value is gathered once per nonzero in its column rather than written
once. Rung 64 gathers a tile of patches once and reads it contiguously; rung 63 needs no gather at all.

Loop order: t‖ → i → j0 → p → j (gather).
Traffic (``movement.conv_fused``): nnz·N gathered values, the N-entry index map per row pass, A once per
tile, C once, the padded copy of x.
Measured (same run as rung 60's figure, data/reference/conv-table3-cpu-1t.csv):
56×56 at 90% 23.5 ms, 7×7 at 95% 13.8 ms: the slowest rung at
every size.
"""

from __future__ import annotations

from functools import lru_cache

import numba
from numba import njit, prange

from spmm_study import movement
from spmm_study.conv import conv_view, padded
from spmm_study.cpu._conv import conv_tile_param, split_filters, tap_deltas, tiled_pixel_offsets
from spmm_study.cpu._simd import stack_empty
from spmm_study.registry import host_prepared, variant


@lru_cache(maxsize=None)
def kernel(tile_n: int):
    TN = int(tile_n)

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def conv_fused(rows, bounds, indptr, indices, data, delta, pix, xflat, c):
        n = c.shape[1]  # pix holds a whole number of tiles: the last one padded with offset 0 (gathered, not stored)
        for t in prange(bounds.size - 1):
            acc = numba.carray(stack_empty(TN, c.dtype), TN)
            for r in range(bounds[t], bounds[t + 1]):
                i = rows[r]
                for j0 in range(0, n, TN):
                    for j in range(TN):
                        acc[j] = 0.0
                    for p in range(indptr[i], indptr[i + 1]):
                        v = data[p]
                        d = delta[indices[p]]
                        for j in range(TN):
                            acc[j] += v * xflat[pix[j0 + j] + d]
                    for j in range(min(TN, n - j0)):
                        c[i, j0 + j] = acc[j]

    return conv_fused


@variant("cpu.conv.im2col_fused", loop_order="t‖→i→j0→p→j (gather)", movement=movement.conv_fused,
         params=(conv_tile_param(64, (16, 64)),))
def build(problem, tile_n):
    """im2col fused into the tiled CSR SpMM: patch values gathered through an N-entry index map, never stored."""
    g, x = conv_view(problem)
    a = problem.a
    rows, bounds, info = split_filters(problem, g)
    info.update(tile_n=tile_n, index_map_bytes=g.n * 8)
    xp = padded(x, g)
    xflat = xp.buf.reshape(-1)
    delta, pix = tap_deltas(g, (g.hp, g.wp)), tiled_pixel_offsets(g, tile_n)  # a whole number of tiles
    c = problem.new_output()
    k = kernel(tile_n)
    args = (rows, bounds, a.indptr, a.indices, a.data, delta, pix, xflat, c)

    def run():
        xp.refresh()
        k(*args)

    return host_prepared(run, c, info)
