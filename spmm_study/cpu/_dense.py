"""The dense tile rungs 3 and 4 share: their tile sizes as Params, and the work of one tile.

``dense_tile`` updates C[i0:i1, :] += A[i0:i1, k0:k1] · B[k0:k1, :] column tile by column tile
(j0 → i → k → j: unit stride, vectorised over j, a row of the C tile held in L1 across the k updates).
Rung 3 (``k03_dense_tiled``) walks the tiles on one thread, rung 4 (``k04_dense_tiled_par``) its row tiles
in parallel; the lesson of each is in its own file.
"""

from numba import njit

from spmm_study.registry import Param


TILE_PARAMS = (
    Param("tile_i", 64, (8, 64, 256), "rows of A/C per tile", minimum=1, maximum=1 << 20),
    Param("tile_k", 64, (8, 64, 256), "shared dimension per tile", minimum=1, maximum=1 << 20),
    Param("tile_j", 256, (16, 256, 1024), "columns of B/C per tile", minimum=1, maximum=1 << 20),
)


@njit(fastmath={"contract"}, cache=True)
def dense_tile(a, b, c, i0, i1, k0, k1, tile_j):
    n = b.shape[1]
    for j0 in range(0, n, tile_j):
        j1 = min(j0 + tile_j, n)
        for i in range(i0, i1):
            crow = c[i, j0:j1]
            for p in range(k0, k1):
                v = a[i, p]
                brow = b[p, j0:j1]
                for j in range(j1 - j0):
                    crow[j] += v * brow[j]
