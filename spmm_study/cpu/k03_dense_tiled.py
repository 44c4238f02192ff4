"""Rung 3 — dense GEMM, blocked (tiled) over i, k and j so the working set fits the caches.

What changed from rung 2 (``cpu.dense.order`` with ``order=ikj``): the i-k-j loop nest is cut into tiles of
``tile_i`` rows × ``tile_k`` of the shared dimension × ``tile_j`` columns. Inside a tile the order is still
i→k→j (unit stride, vectorised over j), but a tile of B (tile_k × tile_j: 64 × 256 fp32 = 64 KiB, about the
L1+L2 sweet spot here) is reused by all tile_i rows before it is evicted, and a row of the C tile stays in L1
across the tile_k updates. Without tiling, ikj streams all of B (K×N) through the caches once per row of A.

Loop order: i0 → k0 → j0 (tiles) → i → k → j; the tile (j0 → i → k → j) is ``dense_tile`` in ``_dense.py``,
which rung 4 runs too. C is zeroed first and accumulated tile by tile.
``fastmath={"contract"}``: a·b + c as one FMA; no reassociation, so the result is deterministic.

Traffic (``movement.dense_tiled``): A re-read once per column tile, B once per row tile, C read and written
once per k tile. Still 2·M·K·N flops: at 90% sparsity nine tenths of them multiply zeros.

What to look at: time against rung 2 at ``order=ikj`` — tiling pays only when B does not fit the caches.
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): 15.4 ms at the default 64×64×256 tiles against 10.7 ms for plain ikj: B is
512 KiB and already sits in L2, so blocking has nothing to save here and its loop overhead shows.
"""

from numba import njit

from spmm_study import movement
from spmm_study.cpu._dense import TILE_PARAMS, dense_tile
from spmm_study.registry import host_prepared, variant


@njit(fastmath={"contract"}, cache=True)
def dense_tiled(a, b, c, tile_i, tile_k, tile_j):
    m, k = a.shape
    c[:, :] = 0.0
    for i0 in range(0, m, tile_i):
        for k0 in range(0, k, tile_k):
            dense_tile(a, b, c, i0, min(i0 + tile_i, m), k0, min(k0 + tile_k, k), tile_j)


@variant("cpu.dense.tiled", loop_order="i0→k0→j0→i→k→j", movement=movement.dense_tiled, params=TILE_PARAMS)
def build(problem, tile_i, tile_k, tile_j):
    """Dense GEMM blocked over i, k, j (tile sizes as Params), one thread."""
    a = problem.a.to_dense()
    b = problem.b
    c = problem.new_output()
    return host_prepared(lambda: dense_tiled(a, b, c, tile_i, tile_k, tile_j), c)
