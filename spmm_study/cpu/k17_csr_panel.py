"""Rung 17 — CSR over packed panels of B: B copied per call into narrow contiguous column tiles, A in column blocks.

What changed from rung 14 (``cpu.csr.vec``): rung 14 reads B where the caller put it. A column tile of W
columns then reads a K×W panel whose rows lie N·4 bytes apart: at W = 256 and K = 512 that is 512 KiB over
128 pages, and a power-of-two N puts every row of the panel into the same few cache sets (rung 14 on the
2048×512 DLMC ffn_conv1 at 90%, one thread: 25.4 GFLOP/s at N = 4000, 8.6 at N = 4096, in
data/reference/cpu-every-n.csv). Here:

* B is packed in every call (timed: B is the activations and changes every call) into column tiles of
  W = 16·``max_vectors`` columns (default 64), each one contiguous K × W block, zero-padded past N: a tile of
  the DLMC transformer layers is 128 KiB of consecutive pages, no load of B needs a mask, and the stride of
  the caller's B no longer matters;
* A is cut at build time (once per matrix) into column blocks of Kb columns so that a Kb × W panel is at most
  ``panel_kib`` KiB (default 128: one block for K = 512, four for K = 2048); per block only the rows with
  nonzeros in it are listed (an entry per (part, block, row), not a pointer array of blocks × M);
* a row of C is finished in pieces: per block its W columns are read back into registers (written the
  first time), the block's nonzeros added, and stored.

A narrow tile costs more passes over A (A is read once per column tile) and a copy of B per call; it pays
when each column of A is used often enough (nnz/K nonzeros per row of B): ``auto`` decides by N and row
length. Cutting K further, so a panel fits the 48 KiB L1 (``panel_kib=32``), lost here: at 90% sparsity a
row has ~13 nonzeros per 128-column block, and reading and writing its 64 columns of C per block cost more
than L1 saves (N = 256: 24.9 GFLOP/s against 37.9 with one block).

Loop order: part t (prange) → column tile j → column block b → row i (those with nonzeros in b) →
nonzero p → vector q (unrolled, in registers). The panel (tile j, block b) is reused by all rows of the part;
the part's C tile (its rows × W) stays in L2 across the blocks.

Bitwise equal to rungs 13–15: blocks run in column order and a row's nonzeros are sorted by column, so each
lane still sums its row's nonzeros in stored order with one FMA each (C round-trips in the working
precision: exact).

Traffic (``traffic``): A once per column tile; B read once (K·N) and written once into the panels
(K·tiles·W) per call, then one panel row per nonzero per tile; C written once, plus one read and one write
of W values per (row, block) pair past the row's first, per tile.

What to look at: GFLOP/s at N ≥ 256 and at the powers of two against rung 14 and MKL
(``experiments/cpu_every_n.py``); ``tile``, ``kb``, ``blocks`` and ``row_blocks_per_row`` in info. Measured
(the every-N run in docs/cpu.md, data/reference/cpu-every-n.csv: one thread, Intel Xeon KVM guest with 2 cores,
2026-12-02 01:02 UTC; this rung / rung 14 / MKL with its inspector step once): DLMC ffn_conv1 90%
(2048×512) N = 1024 31.4 / 21.7 / 30.2, N = 2048 36.6 / 10.0 / 13.6, N = 4096 30.9 / 8.6 / 10.9 GFLOP/s. In a
separate interleaved run (experiments/notes-cpu.md §7 try 6): ffn_conv2 90% (512×2048) N = 1024 27.6 / 8.6 /
9.3; but the 98% attention q matrix (512×512, 10 nonzeros per row) at N = 256 13.5 / 32.8 / 34.7: there
the copy of B is most of the work.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study.cpu.balance import partition, spread
from spmm_study.cpu._simd import aligned_empty, elem_ptr, stack_empty
from spmm_study.cpu._vec import lanes, vfma, vload, vload_mask, vstore, vstore_mask, vzero
from spmm_study.cpu._vec import check_dtype, tile_plan
from spmm_study.movement import Bytes, Shape
from spmm_study.registry import Param, host_prepared, variant

MAX_VECTORS_PARAM = Param("max_vectors", 4, (2, 4, 8), "most 64-byte vectors of a row of C per column tile "
                          "(4 = 64 fp32 columns); the panel of B a tile reads is Kb rows of this width",
                          minimum=1, maximum=64)
PANEL_PARAM = Param("panel_kib", 128, (32, 64, 128, 256), "most KiB of a panel of B (Kb = this / (W·4 bytes) "
                    "columns of A per block): what the rows of a part reuse before the next block", minimum=1,
                    maximum=1 << 16)


def block_rows(kib: int, width: int, itemsize: int, k: int) -> int:
    """Kb: columns of A per block, so that Kb × width values of B fill ``kib`` KiB (at least 1, at most K)."""
    return int(max(1, min(max(k, 1), (int(kib) * 1024) // (width * itemsize))))


def column_blocks(indptr, indices, data, rows, bounds, kb: int, width: int):
    """The blocked copy of A, built once per matrix. Nonzeros reordered part-major, then block, then the
    part's row order (a row's nonzeros keep their stored order); one *entry* per (part, block, row) that has
    nonzeros: ``seg[t·nb + b] : seg[t·nb + b + 1]`` are the entries of part t in block b, entry e covers
    nonzeros ``start[e] : start[e + 1]`` of row ``erow[e]``, and ``first[e]`` is 1 when it is the row's first
    block (C is written, not read back). ``offs`` are element offsets into a Kb × width panel. Rows with no
    nonzeros at all are listed per part in ``empty`` (``empty_ptr``): the kernel zeroes them."""
    m = indptr.size - 1
    k_cols = int(indices.max()) + 1 if indices.size else 1
    nb = -(-k_cols // kb)
    parts = bounds.size - 1
    row_nnz = np.diff(indptr).astype(np.int64)
    part_of = np.zeros(m, np.int64)
    pos = np.zeros(m, np.int64)
    for t in range(parts):
        mine = rows[bounds[t]:bounds[t + 1]]
        part_of[mine] = t
        pos[mine] = np.arange(mine.size)
    nz_row = np.repeat(np.arange(m, dtype=np.int64), row_nnz)
    col = indices.astype(np.int64)
    blk = col // kb
    key = (part_of[nz_row] * nb + blk) * max(m, 1) + pos[nz_row]
    order = np.argsort(key, kind="stable")
    skey = key[order]
    new = np.ones(skey.size, bool)
    new[1:] = skey[1:] != skey[:-1]
    starts = np.flatnonzero(new)
    erow = nz_row[order][starts].astype(np.int32)
    eseg = skey[starts] // max(m, 1)  # t·nb + b of each entry
    seg = np.searchsorted(eseg, np.arange(parts * nb + 1), side="left").astype(np.int64)
    first = np.zeros(starts.size, np.uint8)
    if starts.size:
        by_row = np.lexsort((eseg, erow))  # per row, its entries by block
        lead = np.ones(by_row.size, bool)
        lead[1:] = erow[by_row][1:] != erow[by_row][:-1]
        first[by_row[lead]] = 1
    start = np.concatenate((starts, [skey.size])).astype(np.int64)
    offs = ((col - blk * kb) * width)[order].astype(np.int32)
    vals = np.ascontiguousarray(data[order])
    empty_rows, empty_ptr = [], [0]
    for t in range(parts):
        mine = rows[bounds[t]:bounds[t + 1]]
        gone = mine[row_nnz[mine] == 0]
        empty_rows.append(gone)
        empty_ptr.append(empty_ptr[-1] + gone.size)
    empty = np.concatenate(empty_rows).astype(np.int32) if empty_rows else np.zeros(0, np.int32)
    return {"seg": seg, "erow": erow, "first": first, "start": start, "offs": offs, "vals": vals,
            "empty_ptr": np.asarray(empty_ptr, np.int64), "empty": empty, "nb": int(nb), "entries": int(starts.size)}


@njit(parallel=True, cache=True)
def pack_panels(bp, b, width):
    """bp[j, r·W + x] = B[r, j·W + x], zero past N: column tile j of B as one contiguous K × W block.
    Branch-free inner loops (full tiles, then the last tile's columns and its zero padding), so LLVM turns
    them into vector copies."""
    k, n = b.shape
    full = n // width
    rem = n - full * width
    for r in prange(k):
        base = r * width
        for jt in range(full):
            j0 = jt * width
            for x in range(width):
                bp[jt, base + x] = b[r, j0 + x]
        if rem:
            j0 = full * width
            for x in range(rem):
                bp[full, base + x] = b[r, j0 + x]
            for x in range(rem, width):
                bp[full, base + x] = 0


@lru_cache(maxsize=None)
def kernel(q: int, lane_count: int):
    """The kernel for column tiles of Q vectors."""
    Q, L = int(q), int(lane_count)
    W = Q * L

    @njit(parallel=True, fastmath={"contract"}, cache=True)
    def csr_panel(seg, erow, first, start, offs, vals, empty_ptr, empty, bp, c, kb, nb):
        n = c.shape[1]
        kw = bp.shape[1]  # K·W values per column tile
        for t in prange(empty_ptr.size - 1):
            acc = stack_empty(W, c.dtype)
            for jt in range(bp.shape[0]):
                j0 = jt * W
                left = n - j0
                for blk in range(nb):
                    base = np.int64(jt) * kw + np.int64(blk) * kb * W
                    s = t * nb + blk
                    for e in range(seg[s], seg[s + 1]):
                        cp = elem_ptr(c, np.int64(erow[e]) * n + j0)
                        if first[e]:
                            for x in range(Q):
                                vzero(acc, x)
                        elif left >= W:
                            for x in range(Q):
                                vload(acc, x, cp, x)
                        else:
                            for x in range(Q):
                                vload_mask(acc, x, cp, x, left)
                        p = np.uint64(start[e])
                        end = np.uint64(start[e + 1])
                        while p < end:
                            v = vals[p]
                            bq = elem_ptr(bp, base + np.int64(offs[p]))
                            for x in range(Q):
                                vfma(acc, x, bq, x, v)
                            p += np.uint64(1)
                        if left >= W:
                            for x in range(Q):
                                vstore(cp, x, acc, x)
                        else:
                            for x in range(Q):
                                vstore_mask(cp, x, acc, x, left)
            for r in range(empty_ptr[t], empty_ptr[t + 1]):  # rows without nonzeros: C = 0
                i = empty[r]
                for j in range(n):
                    c[i, j] = 0

    return csr_panel


def plan(n: int, k: int, itemsize: int, max_vectors: int, panel_kib: int) -> tuple[int, int, int]:
    """(Q, tiles, Kb): tiles of Q vectors (equal widths, the last one zero-padded), Kb columns per block."""
    lane_count = 64 // itemsize
    q, _, main, _ = tile_plan(n, lane_count, max(1, min(int(max_vectors), 24)))
    tiles = main // (q * lane_count) + 1
    return q, tiles, block_rows(panel_kib, q * lane_count, itemsize, k)


def traffic(s: Shape, params: dict) -> Bytes:
    """A (values + 4-byte offsets) once per column tile; B read once (K·N) and written once into the panels
    (K·tiles·W), then one panel row per nonzero per tile (nnz·tiles·W values, from L1); C written once, plus
    one read and one write of W values per (row, block) pair past the row's first, per tile — that pair
    count is estimated as if the nonzeros of a row were spread evenly over the blocks."""
    params = {p.name: p.default for p in (MAX_VECTORS_PARAM, PANEL_PARAM)} | dict(params)
    q, tiles, kb = plan(s.n, s.k, s.value_bytes, params["max_vectors"], params["panel_kib"])
    w = q * 64 // s.value_bytes
    nb = -(-max(s.k, 1) // kb)
    per_row = s.nnz / max(s.m, 1)
    pairs = s.m * min(nb, per_row) if s.nnz else 0.0  # (row, block) pairs with nonzeros, at most
    extra = max(0.0, pairs - s.m) * tiles * w * s.value_bytes  # round trips past the first block
    return Bytes(tiles * s.nnz * (s.value_bytes + 4) + 8 * s.m,
                 s.k * s.n * s.value_bytes + s.nnz * tiles * w * s.value_bytes + extra,
                 s.m * s.n * s.value_bytes + s.k * tiles * w * s.value_bytes + extra)


@variant(
    "cpu.csr.panel", loop_order="t‖→j→b→i→p→q(vec)", movement=traffic,
    params=(MAX_VECTORS_PARAM, PANEL_PARAM),
)
def build(problem, max_vectors, panel_kib):
    """CSR over packed B: B copied per call into contiguous column tiles, A cut into column blocks (once)."""
    a = problem.a
    check_dtype(problem.dtype)
    itemsize = np.dtype(problem.dtype).itemsize
    L = lanes(problem.dtype)
    q, tiles, kb = plan(problem.n, a.k, itemsize, max_vectors, panel_kib)
    w = q * L
    threads = numba.get_num_threads()
    row_nnz = a.row_lengths()
    rows, bounds = partition(row_nnz, threads, "nnz")
    info = spread(row_nnz, rows, bounds, "nnz", threads)
    blocked = column_blocks(a.indptr, a.indices, a.data, rows, bounds, kb, w)  # once per matrix
    nb = blocked["nb"]
    b = problem.b
    direct = tiles == 1 and problem.n == w and b.flags.c_contiguous and b.ctypes.data % 64 == 0  # B is its own panel: no copy
    bp = b.reshape(1, a.k * w) if direct else aligned_empty((tiles, a.k * w), problem.dtype)
    info.update(tile=f"{tiles}x{w}", kb=kb, blocks=nb, panel_bytes=kb * w * itemsize,
                row_blocks_per_row=round(blocked["entries"] / max(a.m, 1), 2), b_packed=not direct)
    k = kernel(q, L)
    c = problem.new_output()
    args = (blocked["seg"], blocked["erow"], blocked["first"], blocked["start"], blocked["offs"],
            blocked["vals"], blocked["empty_ptr"], blocked["empty"], bp, c, np.int64(kb), np.int64(nb))

    def run():
        if not direct:
            pack_panels(bp, b, w)
        k(*args)

    return host_prepared(run, c, info)
