"""Rung 14 — CSR register-blocked for every N: explicit vectors, a tile width chosen per call, a masked tail.

What changed from rung 13 (``cpu.csr.tiled``): rung 13 keeps ``tile_n`` columns of a row of C in registers,
but ``tile_n`` is fixed (default 256), the vectors are left to LLVM's loop vectoriser (which gives up below
64 columns: scalar FMAs) and the ``N mod tile_n`` columns past the last full tile run a row-wise loop through
memory. With the default, any N below 256 runs entirely in that remainder loop (at N = 196 on the 2048×512
90% DLMC matrix: 18.7 GFLOP/s against 45.7 at N = 256, issue 12). Here:

* the vectors are spelled out (``spmm_study.cpu._vec``: one 64-byte vector = 16 fp32 lanes per call,
  fused multiply-add, masked load/store), so a register tile is any number ``Q`` of vectors;
* ``Q`` is chosen per call from N (``tile_plan``): the ``ceil(N/16)`` vectors of a row are cut into
  ``ceil(vectors/max_vectors)`` tiles of equal width, so N = 300 runs as 160 + 140 columns, not 256 + 44;
* the last vector of the last tile is masked (``N mod 16`` lanes: AVX-512 ``{k}`` masks): B past the end of
  a row is never read, C past it never written, no padded copy of either.

Each (``Q``, tail ``Qt``, masked) triple is its own compiled kernel (closure constants; ``lru_cache`` and
numba's on-disk cache): about a second the first time a shape needs it, nothing after.

Loop order: part t (prange) → column tile j0 → row i → nonzero p → vector q (unrolled, in registers). The
column tile is outside the rows (rung 13 has it inside): a tile reads a K×W panel of B (512 KiB for K = 512,
W = 256), which then stays in L2 for every row of the part instead of all of B streaming from L3 per row.
Bitwise deterministic: each lane sums its row's nonzeros in stored order with one FMA each (as rung 13).

Traffic (``movement``): A read once per column tile, one row segment of B per nonzero per tile (nnz·N values),
C written once; with ``pack_b`` one copy of B per call when it is misaligned (``Problem`` hands out aligned B).

What to look at: GFLOP/s against N (``experiments/cpu_every_n.py``): no drop at N = 255, 257 or 300 beside
256; ``tile`` in info. Below ~100 columns a row has too few accumulators to hide the FMA latency (4 cycles,
2 FMA ports: 8 independent vectors are needed): rung 15 blocks several rows. Measured (DLMC ffn_conv1 90%,
one thread, warm, Intel Xeon KVM guest with 2 shared cores, 2026-12-01, experiments/cpu_every_n.py): N = 49
31.5 useful GFLOP/s against 7.4 for rung 13 at its defaults; N = 257 34.4 against 14.7 (N = 256: 39.9).
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study.cpu.balance import balance_param, partition, rows_per_task_param, scheduled, spread
from spmm_study.cpu._simd import elem_ptr, stack_empty
from spmm_study.cpu._vec import (MAX_VECTORS_PARAM, PACK_B_PARAM, check_dtype, lanes, padded_operand, tile_plan,  # noqa: F401
                                 traffic, vfma, vfma_mask, vstore, vstore_mask, vzero)
from spmm_study.registry import host_prepared, variant


@lru_cache(maxsize=None)
def kernel(q_main: int, q_tail: int, mask_b: bool, mask_c: bool, lane_count: int):
    """The kernel for one plan: main tiles of Q vectors, one tail tile of Qt vectors whose last vector is
    masked for the loads of B (``mask_b``: B not padded) and for the stores of C (``mask_c``: N mod L ≠ 0)."""
    Q, QT, L, MASK_B, MASK_C = int(q_main), int(q_tail), int(lane_count), bool(mask_b), bool(mask_c)
    W = Q * L
    ACC = max(Q, QT) * L

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def csr_vec(rows, bounds, indptr, indices, data, b, c, n_main):
        n = c.shape[1]
        ldb = b.shape[1]
        for t in prange(bounds.size - 1):
            acc = stack_empty(ACC, b.dtype)
            # column tile outside the rows: the K×W panel of B a tile reads stays in L2 for all the rows of
            # this part (row outside the tiles would stream all of B from L3 for every row once N·K·4 > L2)
            for j0 in range(0, n_main, W):  # full tiles: Q unmasked vectors
                for r in range(bounds[t], bounds[t + 1]):
                    i = rows[r]
                    for q in range(Q):
                        vzero(acc, q)
                    p = np.uint64(indptr[i])
                    end = np.uint64(indptr[i + 1])
                    while p < end:
                        v = data[p]
                        bp = elem_ptr(b, np.int64(indices[p]) * ldb + j0)
                        for q in range(Q):
                            vfma(acc, q, bp, q, v)
                        p += np.uint64(1)
                    cp = elem_ptr(c, np.int64(i) * n + j0)
                    for q in range(Q):
                        vstore(cp, q, acc, q)
            # the tail tile: QT vectors, the last one masked to the columns left
            left = n - n_main
            for r in range(bounds[t], bounds[t + 1]):
                i = rows[r]
                for q in range(QT):
                    vzero(acc, q)
                p = np.uint64(indptr[i])
                end = np.uint64(indptr[i + 1])
                while p < end:
                    v = data[p]
                    bp = elem_ptr(b, np.int64(indices[p]) * ldb + n_main)
                    for q in range(QT - 1):
                        vfma(acc, q, bp, q, v)
                    if MASK_B:
                        vfma_mask(acc, QT - 1, bp, QT - 1, v, left)
                    else:
                        vfma(acc, QT - 1, bp, QT - 1, v)
                    p += np.uint64(1)
                cp = elem_ptr(c, np.int64(i) * n + n_main)
                for q in range(QT - 1):
                    vstore(cp, q, acc, q)
                if MASK_C:
                    vstore_mask(cp, QT - 1, acc, QT - 1, left)
                else:
                    vstore(cp, QT - 1, acc, QT - 1)

    return csr_vec


@variant(
    "cpu.csr.vec", loop_order="t‖→j0→i→p→q(vec)", movement=traffic,
    params=(
        MAX_VECTORS_PARAM,
        balance_param("nnz"),
        rows_per_task_param(),
        PACK_B_PARAM,
    ),
)
def build(problem, max_vectors, balance, rows_per_task, pack_b):
    """CSR register-blocked with explicit vectors: any N, tile width chosen per call, masked last vector."""
    a = problem.a
    check_dtype(problem.dtype)
    max_vectors = min(int(max_vectors), 24)  # 32 zmm registers: past 24 accumulators LLVM spills
    threads = numba.get_num_threads()
    row_nnz = a.row_lengths()
    rows, bounds = partition(row_nnz, threads, balance, rows_per_task)  # once per build, not per call
    info = spread(row_nnz, rows, bounds, balance, threads)
    L = lanes(problem.dtype)
    q, qt, n_main, masked = tile_plan(problem.n, L, max_vectors)
    b_use, refresh_b, b_info = padded_operand(problem.b, L, pack_b)
    info.update(b_info)
    mask_b = masked and b_use.shape[1] == problem.n
    info.update(tile=f"{n_main // (q * L)}x{q * L}+{problem.n - n_main}", q=q, q_tail=qt, mask_b=mask_b,
                mask_c=masked)
    k = kernel(q, qt, mask_b, masked, L)
    c = problem.new_output()
    args = (rows, bounds, a.indptr, a.indices, a.data, b_use, c, np.int64(n_main))

    def call():
        refresh_b()
        k(*args)

    return host_prepared(scheduled(call, balance), c, info)
