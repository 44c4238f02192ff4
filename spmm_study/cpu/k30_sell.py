"""Rung 30 — SELL-C-σ (sliced ELLPACK): rows padded to equal length inside slices of C rows.

What changed from the register-blocked CSR rung (``cpu.csr.tiled``): the format. ELLPACK pads every row to
the longest one so that all rows have the same trip count and the entries of C neighbouring rows can be
stored interleaved (column-major inside a slice) — the layout SIMD-across-rows and GPU kernels want.
SELL-C-σ limits the padding: rows are first sorted by length inside windows of σ rows, then cut into slices
of C rows, each padded only to its own longest row. Padding entries have value 0 and point at row 0 of B,
so they cost a full multiply-add each and produce nothing.

On a CPU SpMM the vectors already run along N (the columns of B and C), so the interleaving buys nothing
here; what remains is the cost of the padding (``padding`` in info: stored entries per nonzero) and the
benefit of equal trip counts. With σ > 1 rows are processed out of order (``perm``), which scatters the C
rows a thread writes. Expect it at or a little behind ``cpu.csr.tiled`` — and far behind on matrices with
a long-tailed row-length distribution, where one long row pads its whole slice.

The inner loop is built like ``cpu.csr.tiled``'s (raw-pointer row views, B packed to 64-byte alignment).

Loop order: slice s (prange) → row r of the slice → column tile j0 → w (padded width) → j (in registers).
Traffic (``movement.sell``): as ``csr_tiled`` but over the padded entries (the model assumes no padding;
``info`` holds the real ratio). Slices are split statically across threads.
What to look at: ``padding`` in info next to the time, for σ = 1 (no sorting) against σ = 256.
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold, 2 threads; AMD EPYC Zen 5, 2 shared cores,
2026-11-23, data/reference/cpu-ladder.csv): SELL-8-256 392 µs (padding 1.04) against 405 µs for
``cpu.csr.tiled``; SELL-32-1 521 µs (padding 1.62).
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study import movement
from spmm_study.cpu._simd import (elem_ptr, pack_b_param, packed_operand, stack_empty, store_tile, tile_n_param,
                                  zeroed_tail)
from spmm_study.formats import SELL
from spmm_study.registry import Param, host_prepared, variant


@lru_cache(maxsize=None)
def kernel(tile_n: int):
    TN = int(tile_n)

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def sell_tiled(c_rows, perm, slice_ptr, widths, cols, data, b, c):
        m = perm.size
        n = b.shape[1]
        n_full = n - n % TN
        for s in prange(widths.size):
            acc = numba.carray(stack_empty(TN, b.dtype), TN)
            base = slice_ptr[s]
            width = widths[s]
            for r in range(c_rows):
                q = s * c_rows + r
                if q >= m:
                    break
                i = perm[q]
                for j0 in range(0, n_full, TN):
                    for j in range(TN):
                        acc[j] = 0.0
                    for w in range(width):
                        pos = np.uint64(base + w * c_rows + r)  # unsigned: no wraparound code
                        v = data[pos]
                        brow = numba.carray(elem_ptr(b, np.int64(cols[pos]) * n + j0), TN)
                        for j in range(TN):
                            acc[j] += v * brow[j]
                    store_tile(c, i, n, j0, acc, TN)
                if n_full < n:
                    ctail = zeroed_tail(c, i, n_full, n)
                    for w in range(width):
                        pos = base + w * c_rows + r
                        v = data[pos]
                        btail = b[cols[pos], n_full:n]
                        for j in range(n - n_full):
                            ctail[j] += v * btail[j]

    return sell_tiled


@variant("cpu.sell.tiled", loop_order="s‖→r→j0→w→j", movement=movement.sell, params=(
    Param("c", 8, (1, 4, 8, 32), "rows per slice (C); C = M with sigma = 1 is plain ELLPACK", minimum=1, maximum=1 << 24),
    Param("sigma", 256, (1, 64, 256), "sorting window (σ rows); 1 = no sorting", minimum=1, maximum=1 << 30),
    tile_n_param(),
    pack_b_param(),
))
def build(problem, c, sigma, tile_n, pack_b):
    """SELL-C-σ: rows sorted in windows of σ, padded per slice of C rows; register-blocked over N."""
    sell = SELL.from_csr(problem.a, c, sigma)
    out = problem.new_output()
    k = kernel(tile_n)
    b_use, refresh_b, b_info = packed_operand(problem.b, pack_b)
    info = {"padding": round(sell.padding, 4), "stored": sell.stored, "slices": int(sell.widths.size),
            "threads": numba.get_num_threads(), "tile_n": tile_n, **b_info}
    args = (sell.c, sell.perm, sell.slice_ptr, sell.widths, sell.cols, sell.data, b_use, out)

    def run():
        refresh_b()
        k(*args)

    return host_prepared(run, out, info)
