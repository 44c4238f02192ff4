"""Rung 15 — CSR for small N: R rows of A at once, their nonzeros broadcast into a register tile of R × N.

What changed from rung 14 (``cpu.csr.vec``): rung 14 keeps one row of C in ``Q = ceil(N/16)`` vector
registers. At N ≤ 64 that is 1–4 accumulators, and each nonzero adds one FMA to each of them: the FMAs of a
row form ``Q`` dependency chains, each waiting the FMA latency (4 cycles) for the one before, while the core
could start two FMAs per cycle — 8 independent chains are needed to keep both FMA ports busy. On top of that
every nonzero pays the same index load, value broadcast, address arithmetic and loop branch for only ``Q``
FMAs. Here ``R`` rows are processed together: their s-th nonzeros are taken in one step, so the loop body
holds ``R·Q`` independent FMAs (``R = 4, Q = 4``: 16 chains) and one loop branch serves R nonzeros.

Rows have different lengths. At build time (once per matrix, not per call) the rows are sorted by length,
longest first, and cut into groups of R consecutive rows — rows of nearly equal length, as SELL-C-σ does
(Kreutzer et al., SIAM J. Sci. Comput. 2014). A group runs the common length ``min(len)`` interleaved; each
row's few remaining nonzeros then run on their own accumulators. The groups are split across threads by
nonzeros (prefix sums over groups). Rows are written in sorted order, each row of C whole.

Bitwise deterministic and equal to rungs 13/14: each lane still sums its own row's nonzeros in stored order
with one FMA each (interleaving rows does not reorder any row's sum).

Loop order: part t (prange) → group g of R rows → column tile j0 → s (common nonzeros) → row r → vector q;
then r → its remaining nonzeros → q.

Traffic: as rung 14 (A once per column tile, one row segment of B per nonzero, C once); B rows touched by the
R rows of a group are interleaved, which changes the order of the L1/L2 accesses but not their count.

What to look at: GFLOP/s at N = 16–64 against rung 14 (``experiments/cpu_every_n.py``); ``rows`` and
``common_fraction`` (share of nonzeros run interleaved) in info. Measured (DLMC ffn_conv1 90%, one thread, warm,
Intel Xeon KVM guest with 2 shared cores, 2026-12-02, data/reference/cpu-every-n.csv): N = 32 41.2 GFLOP/s
against 40.6 for rung 14; but N = 49 31.5 against 36.1 and N = 64 35.3 against 41.1 — on this machine the
gain is confined to N ≤ 32.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study.cpu._simd import ALIGN, aligned_empty, elem_ptr, stack_empty
from spmm_study.cpu._vec import lanes, vfma, vstore, vstore_mask, vzero
from spmm_study.cpu._vec import check_dtype, copy_into, tile_plan, traffic
from spmm_study.registry import Param, host_prepared, variant

ROWS = (2, 4, 8)  # each (R, Q) is a compile: the test grid tries every choice
REGISTER_BUDGET = 24  # accumulator vectors out of 32 zmm registers (the rest: broadcast value, B, addresses)


def group_partition(row_nnz: np.ndarray, rows_per_group: int, parts: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(order, bounds, info): rows sorted by length (longest first, stable), part t processes
    order[bounds[t]:bounds[t+1]] in groups of R (the last group of the matrix may be shorter); bounds are cut
    at group boundaries with nonzeros balanced. Computed once per matrix at build time."""
    m = int(row_nnz.size)
    r = max(1, int(rows_per_group))
    order = np.argsort(-row_nnz, kind="stable").astype(np.int32)
    lengths = row_nnz[order].astype(np.int64)
    groups = -(-m // r)
    gnnz = np.add.reduceat(lengths, np.arange(0, m, r)) if m else np.zeros(0, np.int64)
    cum = np.concatenate(([0.0], np.cumsum(gnnz + r, dtype=np.float64)))
    targets = cum[-1] * np.arange(parts + 1) / max(parts, 1)
    gb = np.searchsorted(cum, targets, side="left").astype(np.int64)
    gb[0], gb[-1] = 0, groups
    gb = np.maximum.accumulate(gb)
    bounds = (gb * r).astype(np.int64)  # group starts in the padded order (see below)
    full = (m // r) * r
    if full:
        mins = lengths[:full].reshape(-1, r).min(axis=1)
        common = float(mins.sum() * r) / max(float(lengths.sum()), 1.0)
    else:
        common = 0.0
    per_part = [int(lengths[bounds[t]:bounds[t + 1]].sum()) for t in range(bounds.size - 1)]
    if m % r:  # pad the last group with repeats of its last row: same bits stored twice by one thread
        order = np.concatenate((order, np.full(r - m % r, order[-1], np.int32)))
    assert bounds[-1] == order.size and not (bounds % r).any()
    mean = float(np.mean(per_part)) if per_part else 0.0
    info = {"rows": r, "groups": int(groups), "common_fraction": round(common, 4), "threads": int(parts),
            "work_nnz_per_thread": per_part,
            "imbalance": round(max(per_part) / mean, 4) if mean > 0 else 1.0}
    return order, bounds, info


@lru_cache(maxsize=None)
def kernel(rows_per_group: int, q: int, lane_count: int):
    """The kernel for R rows per group and column tiles of Q vectors (B padded to a whole number of tiles)."""
    R, Q, L = int(rows_per_group), int(q), int(lane_count)
    W = Q * L
    ACC = R * Q * L

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def csr_rowblock(order, bounds, indptr, indices, data, b, c):
        n = c.shape[1]
        ldb = b.shape[1]  # a multiple of W: the last tile reads zero padding, never past B
        for t in prange(bounds.size - 1):
            acc = stack_empty(ACC, b.dtype)
            st = stack_empty(R, np.uint64)
            ln = stack_empty(R, np.uint64)
            for g in range(bounds[t], bounds[t + 1], R):  # groups of R rows (the last one padded by repeats)
                common = np.uint64(1) << np.uint64(62)
                for rr in range(R):
                    i = order[g + rr]
                    st[rr] = np.uint64(indptr[i])  # unsigned: no negative-index wraparound code per access
                    ln[rr] = np.uint64(indptr[i + 1] - indptr[i])
                    common = min(common, ln[rr])
                for j0 in range(0, ldb, W):
                    for x in range(R * Q):
                        vzero(acc, x)
                    s = np.uint64(0)
                    while s < common:  # the s-th nonzero of every row of the group
                        for rr in range(R):
                            p = st[rr] + s
                            v = data[p]
                            bp = elem_ptr(b, np.int64(indices[p]) * ldb + j0)
                            for q in range(Q):
                                vfma(acc, rr * Q + q, bp, q, v)
                        s += np.uint64(1)
                    for rr in range(R):  # what each row has past the common length
                        p = st[rr] + common
                        end = st[rr] + ln[rr]
                        while p < end:
                            v = data[p]
                            bp = elem_ptr(b, np.int64(indices[p]) * ldb + j0)
                            for q in range(Q):
                                vfma(acc, rr * Q + q, bp, q, v)
                            p += np.uint64(1)
                    left = n - j0  # C is not padded: the stores of the last tile are masked
                    for rr in range(R):
                        cp = elem_ptr(c, np.int64(order[g + rr]) * n + j0)
                        if left >= W:
                            for q in range(Q):
                                vstore(cp, q, acc, rr * Q + q)
                        else:
                            for q in range(Q):
                                vstore_mask(cp, q, acc, rr * Q + q, left)

    return csr_rowblock


def tile_padded_b(b: np.ndarray, width: int):
    """(array the kernel reads, refresh, info): B copied in every call (timed) into a 64-byte-aligned buffer
    whose rows are padded with zeros to a whole number of column tiles, unless B already is one. The padding
    is zeroed once and never written; the results it produces are never stored."""
    k, n = b.shape
    ld = -(-max(n, 1) // width) * width
    offset = int(b.ctypes.data % ALIGN)
    info = {"b_offset_bytes": offset, "ldb": ld, "b_packed": False}
    if offset == 0 and ld == n:
        return b, (lambda: None), info
    buf = aligned_empty((k, ld), b.dtype)
    buf[:, n:] = 0
    info["b_packed"] = True
    return buf, (lambda: copy_into(buf, b)), info


def default_rows(n: int, lane_count: int = 16) -> int:
    """R for ``rows=0`` (auto): as many rows as keep R·ceil(N/L) accumulators within the register budget."""
    q = min(-(-max(n, 1) // lane_count), REGISTER_BUDGET)
    return max(1, min(8, REGISTER_BUDGET // q))


@variant(
    "cpu.csr.rowblock", loop_order="t‖→g→j0→s→r→q(vec)", movement=traffic,
    params=(
        Param("rows", 0, ROWS, "rows of A per register tile (0: as many as fit 24 accumulator vectors)", minimum=0,
              maximum=64),
    ),
)
def build(problem, rows):
    """CSR small-N: R length-sorted rows at once, their nonzeros broadcast into an R × N register tile."""
    a = problem.a
    check_dtype(problem.dtype)
    L = lanes(problem.dtype)
    r = min(int(rows) or default_rows(problem.n, L), 8)
    q, _, _, _ = tile_plan(problem.n, L, max(1, REGISTER_BUDGET // r))
    threads = numba.get_num_threads()
    order, bounds, info = group_partition(a.row_lengths(), r, threads)  # once per matrix, not per call
    b_use, refresh_b, b_info = tile_padded_b(problem.b, q * L)
    info.update(b_info)
    info.update(tile=f"{b_use.shape[1] // (q * L)}x{q * L}", q=q)
    k = kernel(r, q, L)
    c = problem.new_output()
    args = (order, bounds, a.indptr, a.indices, a.data, b_use, c)

    def run():
        refresh_b()
        k(*args)

    return host_prepared(run, c, info)
