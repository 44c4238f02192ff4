"""Rung 32 — 2:4 structured sparsity, compressed values plus 2-bit positions (the sparse-tensor-core layout).

What changed from the register-blocked CSR rung (``cpu.csr.tiled``): the format knows the structure. In a
2:4 matrix every group of four consecutive columns holds at most two nonzeros, so every row has exactly
K/2 slots: no row offsets at all, equal work per row (perfect static balance), and instead of a 32-bit
column index per value a 2-bit position inside its group — 16× less index data (A moves 4.25 bytes per
value instead of 8). The column is rebuilt as 4·group + position with a shift and a mask.

The variant refuses (a SKIP row with the first offending group) any matrix that is not 2:4: prune one with
``--prune 2:4`` or use ``synthetic:nm:ffn1``. Rows with fewer than two entries in a group carry explicit
zeros, so on a 2:4 matrix at exactly 50% the stored slots equal nnz.

The inner loop is built like ``cpu.csr.tiled``'s (raw-pointer row views, B packed to 64-byte alignment), so
the two rungs differ only in the format.

Loop order: row i (prange) → column tile j0 → slot s (K/2 of them) → j (in registers).
Traffic (``movement.nm_structured``): values + 2 bits each, a row of B per slot, C written once.
What to look at: time against ``cpu.csr.tiled`` on the same 2:4 matrix (index bytes saved vs time saved).
Measured (``synthetic:nm:ffn1``, 2048×512 at 50%, N = 256, fp32, cold, 2 threads; AMD EPYC Zen 5, 2 shared
cores, 2026-11-23, data/reference/cpu-nm24.csv): 2.19 ms against 2.13 ms for ``cpu.csr.tiled`` — a tie: the
index bytes it saves are not what bounds the kernel.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study import movement
from spmm_study.cpu._simd import (elem_ptr, pack_b_param, packed_operand, stack_empty, store_tile, tile_n_param,
                                  zeroed_tail)
from spmm_study.formats import NM24
from spmm_study.registry import host_prepared, variant


@lru_cache(maxsize=None)
def kernel(tile_n: int):
    TN = int(tile_n)

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def nm24_tiled(data, meta, b, c):
        m, slots = data.shape
        n = b.shape[1]
        n_full = n - n % TN
        for i in prange(m):
            acc = numba.carray(stack_empty(TN, b.dtype), TN)
            for j0 in range(0, n_full, TN):
                for j in range(TN):
                    acc[j] = 0.0
                for s in range(slots):
                    pos = (meta[i, s >> 2] >> ((s & 3) * 2)) & 3
                    v = data[i, s]
                    # fixed-size view from a raw pointer (see cpu.csr.tiled): no slice clamping per slot
                    brow = numba.carray(elem_ptr(b, np.int64((s >> 1) * 4 + pos) * n + j0), TN)
                    for j in range(TN):
                        acc[j] += v * brow[j]
                store_tile(c, i, n, j0, acc, TN)
            if n_full < n:
                ctail = zeroed_tail(c, i, n_full, n)
                for s in range(slots):
                    pos = (meta[i, s >> 2] >> ((s & 3) * 2)) & 3
                    v = data[i, s]
                    btail = b[(s >> 1) * 4 + pos, n_full:n]
                    for j in range(n - n_full):
                        ctail[j] += v * btail[j]

    return nm24_tiled


@variant("cpu.nm24.tiled", loop_order="i‖→j0→s→j", movement=movement.nm_structured,
         accepts=lambda a: NM24.violation(a) is None, params=(
    tile_n_param(),
    pack_b_param(),
))
def build(problem, tile_n, pack_b):
    """2:4 structured: K/2 values per row with 2-bit positions, register-blocked; SKIP if A is not 2:4."""
    a = NM24.from_csr(problem.a)
    c = problem.new_output()
    k = kernel(tile_n)
    b_use, refresh_b, b_info = packed_operand(problem.b, pack_b)
    info = {"slots_per_nnz": round(a.data.size / a.nnz, 4) if a.nnz else 1.0, "meta_bytes": int(a.meta.size),
            "threads": numba.get_num_threads(), "tile_n": tile_n, **b_info}

    def run():
        refresh_b()
        k(a.data, a.meta, b_use, c)

    return host_prepared(run, c, info)
