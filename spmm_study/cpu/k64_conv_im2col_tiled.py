"""Rung 64 — im2col one tile at a time: a K × tile_n patch tile gathered once, then every filter reads it.

Rung 61 fused im2col into the SpMM at the finest grain: each nonzero of each filter gathers its own
``tile_n`` patch values, so a patch value is gathered once per nonzero in its column (about M·(1−s) times)
and every load is a gather. This rung fuses at the grain of a tile instead: a task gathers the patch matrix's
columns for ``tile_n`` output pixels into a private K × tile_n buffer (K·tile_n gathers: each patch value
once; 147 KB for the 56×56 layer, in L2; one buffer per thread, allocated once), then runs rung 13's register-tiled loop over the filters with
contiguous vector loads from that buffer. The full patch matrix (K × N) is never written; only one tile of
it per thread lives at a time. When there are fewer tiles than threads (the 7×7 layer has one), the filters
are split too and each part gathers its own copy of the tile.

Loop order: task‖ (tile j0, row part) → gather k → j; then i → p → j (registers).
Traffic (``movement.conv_im2col_tiled``): K·N gathered values (once per row part), the tile read nnz·N
values' worth from L2, A once per tile, C once, the padded copy of x.
Measured (same run as rung 60's figure, data/reference/conv-table3-cpu-1t.csv):
56×56 at 90% 5.13 ms, 14×14 at 90% 1.27 ms (the fastest there),
7×7 at 95% 748 µs.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study import movement
from spmm_study.conv import conv_view, padded
from spmm_study.cpu._conv import conv_tile_param, split_filters, tap_deltas, tiled_pixel_offsets
from spmm_study.cpu._simd import elem_ptr, stack_empty
from spmm_study.memory import aligned_empty
from spmm_study.registry import host_prepared, variant


@lru_cache(maxsize=None)
def kernel(tile_n: int):
    TN = int(tile_n)

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def conv_im2col_tiled(rows, bounds, indptr, indices, data, delta, pix, xflat, c, tiles_buf):
        n = c.shape[1]
        k_all = delta.size
        parts = bounds.size - 1
        tasks = ((n + TN - 1) // TN) * parts
        workers = tiles_buf.shape[0]
        for w in prange(workers):  # worker w takes tasks w, w + workers, ... with its own tile buffer
            tile = tiles_buf[w]
            acc = numba.carray(stack_empty(TN, c.dtype), TN)
            for task in range(w, tasks, workers):
                j0 = (task // parts) * TN
                part = task % parts
                for k in range(k_all):  # gather the patch tile, K × TN: each patch value once
                    d = delta[k]
                    for j in range(TN):
                        tile[k * TN + j] = xflat[pix[j0 + j] + d]
                for r in range(bounds[part], bounds[part + 1]):
                    i = rows[r]
                    for j in range(TN):
                        acc[j] = 0.0
                    for p in range(indptr[i], indptr[i + 1]):
                        v = data[p]
                        brow = numba.carray(elem_ptr(tile, np.int64(indices[p]) * TN), TN)
                        for j in range(TN):
                            acc[j] += v * brow[j]
                    for j in range(min(TN, n - j0)):
                        c[i, j0 + j] = acc[j]

    return conv_im2col_tiled


@variant("cpu.conv.im2col_tiled", loop_order="(j0,part)‖→k→j; i→p→j", movement=movement.conv_im2col_tiled,
         params=(conv_tile_param(64, (16, 64)),))
def build(problem, tile_n):
    """im2col a tile at a time: a K×tile_n patch tile gathered once per task, then the register-tiled SpMM on it."""
    g, x = conv_view(problem)
    a = problem.a
    threads = numba.get_num_threads()
    tiles = -(-g.n // tile_n)
    parts = 1 if tiles >= 2 * threads else threads  # few tiles: split the filters too
    rows, bounds, info = split_filters(problem, g, parts)
    info.update(tile_n=tile_n, tiles=tiles, row_parts=parts,
                patch_tile_bytes=g.k * tile_n * problem.dtype.itemsize)
    xp = padded(x, g)
    delta, pix = tap_deltas(g, (g.hp, g.wp)), tiled_pixel_offsets(g, tile_n)  # a whole number of tiles
    c = problem.new_output()
    k = kernel(tile_n)
    tiles_buf = aligned_empty((threads, max(1, g.k * tile_n)), problem.dtype)  # one patch tile per thread
    args = (rows, bounds, a.indptr, a.indices, a.data, delta, pix, xp.buf.reshape(-1), c, tiles_buf)

    def run():
        xp.refresh()
        k(*args)

    return host_prepared(run, c, info)
