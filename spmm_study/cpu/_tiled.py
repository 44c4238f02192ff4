"""Rung 13's register-blocked CSR kernel (``cpu.csr.tiled``; its lesson is ``k13_csr_tiled.py``), kept here
because rung 60 runs it on the im2col patch matrix and the networks' CPU chain on each layer.

For each row, per tile of ``TN`` columns: the ``TN`` accumulators live in a fixed-size stack array that LLVM
keeps in vector registers, every nonzero adds ``v · B[k, j0:j0+TN]`` to them, and the tile is stored to C
once; the last ``N mod TN`` columns accumulate in C itself. Rows come in the order and task bounds of
``balance.partition``.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study.cpu._simd import elem_ptr, stack_empty


@lru_cache(maxsize=None)
def kernel(tile_n: int):
    """The kernel for one tile width: ``TN`` is a closure constant, so the alloca and the j-loops are fixed-size."""
    TN = int(tile_n)

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def csr_tiled(rows, bounds, indptr, indices, data, b, c):
        n = b.shape[1]
        n_full = n - n % TN
        for t in prange(bounds.size - 1):
            acc = numba.carray(stack_empty(TN, b.dtype), TN)
            for r in range(bounds[t], bounds[t + 1]):
                i = rows[r]
                start = np.uint64(indptr[i])  # unsigned: no negative-index wraparound code per access
                end = np.uint64(indptr[i + 1])
                for j0 in range(0, n_full, TN):
                    for j in range(TN):
                        acc[j] = 0.0
                    p = start
                    while p < end:
                        v = data[p]
                        # a fixed-size view of B[k, j0:j0+TN] from a raw pointer: unit stride, constant length
                        brow = numba.carray(elem_ptr(b, np.int64(indices[p]) * n + j0), TN)
                        for j in range(TN):
                            acc[j] += v * brow[j]
                        p += np.uint64(1)
                    crow = numba.carray(elem_ptr(c, np.int64(i) * n + j0), TN)
                    for j in range(TN):
                        crow[j] = acc[j]
                if n_full < n:  # the tail tile, accumulated in C itself (at most TN-1 columns)
                    ctail = c[i, n_full:n]
                    for j in range(n - n_full):
                        ctail[j] = 0.0
                    for p in range(indptr[i], indptr[i + 1]):
                        v = data[p]
                        btail = b[indices[p], n_full:n]
                        for j in range(n - n_full):
                            ctail[j] += v * btail[j]

    return csr_tiled
