"""Rung 4 — dense tiled GEMM across threads: ``prange`` over row tiles.

What changed from rung 3 (``cpu.dense.tiled``): the outer loop over row tiles (i0) runs in parallel. Row
tiles write disjoint rows of C, so there is no race and no atomics; each thread streams its own tiles of A
and shares B through L3. The k-tile loop stays inside a row tile, so each thread accumulates into its own C
rows in a fixed order: the result is bitwise the same for any thread count. Equal row tiles carry equal
work (A is dense here), so a static split balances perfectly when the tile count divides evenly.

The tile itself is rung 3's ``dense_tile`` (in ``_dense.py``, the kit the two rungs share); the one changed line is the
row-tile loop, ``for t in prange(n_tiles)`` in ``dense_tiled_par`` below (rung 3: ``for i0 in range(0, m,
tile_i)``), with C zeroed per row tile instead of once.

Loop order: i0 (prange) → k0 → j0 → i → k → j. Traffic: as rung 3 (``movement.dense_tiled``).
What to look at: time against rung 3 at the same tiles (at most the thread count), ``row_tiles`` in info.
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): 8.9 ms on 2 threads against 15.4 ms for rung 3 (1.7×).
"""

import numba
from numba import njit, prange

from spmm_study import movement
from spmm_study.cpu._dense import TILE_PARAMS, dense_tile
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
