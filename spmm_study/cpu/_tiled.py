"""Rung 13's register-blocked CSR kernel (``cpu.csr.tiled``; its lesson is ``k13_csr_tiled.py``), kept here
because rung 60 runs it on the im2col patch matrix and the networks' CPU chain on each layer.

For each row, per tile of ``TN`` columns: the ``TN`` accumulators live in a fixed-size stack array that LLVM
keeps in vector registers, every nonzero adds ``v · B[k, j0:j0+TN]`` to them, and the tile is stored to C
once; the last ``N mod TN`` columns accumulate in C itself. Rows come in the order and task bounds of
``balance.partition``.

The two inner loops — one row's register tile and one row's tail — are ``inline="always"`` functions of their
own, because rung 50 (``k50_csr_tiled_fused.py``) runs exactly these loops and differs only around them (its
panel order, its packed B, the epilogue before each store). Numba pastes them into each kernel before typing,
and the tile width arrives as the caller's closure constant, so the compiled loops are those of the code
written out in place (rung 13's x86 assembly around every FMA is instruction for instruction what it was when
the loops were written inline; rung 50's instruction counts are unchanged; 2026-12-08, AMD EPYC). Numba's on-disk cache checks only the
kernel's own file: after editing these two functions, touch ``k50_csr_tiled_fused.py`` too (or clear its
``__pycache__``), or rung 50 keeps running the cached old loops.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study.cpu._simd import elem_ptr, stack_empty, store_tile


@njit(inline="always")
def accumulate_tile(acc, tn, data, indices, start, end, src, stride, off):
    """acc[0:tn] = the sum over nonzeros p in [start, end) of data[p] · src[indices[p]·stride + off :][:tn]:
    one row's tile of ``tn`` columns, in registers. ``start``/``end`` are unsigned (no negative-index
    wraparound code per access); B's segment is a fixed-size view from a raw pointer: unit stride, constant
    length (``tn`` is the caller's compile-time constant)."""
    for j in range(tn):
        acc[j] = 0.0
    p = start
    while p < end:
        v = data[p]
        brow = numba.carray(elem_ptr(src, np.int64(indices[p]) * stride + off), tn)
        for j in range(tn):
            acc[j] += v * brow[j]
        p += np.uint64(1)


@njit(inline="always")
def accumulate_tail(c, i, n_full, n, indptr, indices, data, b):
    """Row i's last ``n - n_full`` columns (fewer than a tile), accumulated in C itself; returns that view."""
    ctail = c[i, n_full:n]
    for j in range(n - n_full):
        ctail[j] = 0.0
    for p in range(indptr[i], indptr[i + 1]):
        v = data[p]
        btail = b[indices[p], n_full:n]
        for j in range(n - n_full):
            ctail[j] += v * btail[j]
    return ctail


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
                start = np.uint64(indptr[i])
                end = np.uint64(indptr[i + 1])
                for j0 in range(0, n_full, TN):
                    accumulate_tile(acc, TN, data, indices, start, end, b, n, j0)
                    store_tile(c, i, n, j0, acc, TN)
                if n_full < n:  # the tail tile, accumulated in C itself (at most TN-1 columns)
                    accumulate_tail(c, i, n_full, n, indptr, indices, data, b)

    return csr_tiled
