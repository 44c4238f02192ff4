"""Rung 4 — dense tiled GEMM across threads: ``prange`` over row tiles.

What changed from rung 3 (``cpu.dense.tiled``): the outer loop over row tiles (i0) runs in parallel. Row
tiles write disjoint rows of C, so there is no race and no atomics; each thread streams its own tiles of A
and shares B through L3. The k-tile loop stays inside a row tile, so each thread accumulates into its own C
rows in a fixed order: the result is bitwise the same for any thread count. Equal row tiles carry equal
work (A is dense here), so a static split balances perfectly when the tile count divides evenly.

Loop order: i0 (prange) → k0 → j0 → i → k → j. Traffic: as rung 3 (``movement.dense_tiled``).
"""

import numba
from numba import njit, prange

from spmm_study import movement
from spmm_study.cpu.k03_dense_tiled import TILE_PARAMS, dense_tile
from spmm_study.registry import host_prepared, variant


@njit(parallel=True, fastmath={"contract"}, cache=True)
def dense_tiled_par(a, b, c, tile_i, tile_k, tile_j):
    m, k = a.shape
    n_tiles = (m + tile_i - 1) // tile_i
    for t in prange(n_tiles):
        i0 = t * tile_i
        i1 = min(i0 + tile_i, m)
        c[i0:i1, :] = 0.0
        for k0 in range(0, k, tile_k):
            dense_tile(a, b, c, i0, i1, k0, min(k0 + tile_k, k), tile_j)


@variant("cpu.dense.tiled_par", loop_order="i0‖→k0→j0→i→k→j", movement=movement.dense_tiled,
         params=TILE_PARAMS)
def build(problem, tile_i, tile_k, tile_j):
    """Dense tiled GEMM with prange over row tiles."""
    a = problem.a.to_dense()
    b = problem.b
    c = problem.new_output()
    info = {"threads": numba.get_num_threads(), "row_tiles": -(-problem.m // tile_i)}
    return host_prepared(lambda: dense_tiled_par(a, b, c, tile_i, tile_k, tile_j), c, info)
