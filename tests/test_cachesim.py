"""The cache simulator on cases small enough to count by hand, and the traces against the kernels' own source."""

import numpy as np
import pytest

from spmm_study.cachesim import CacheLevel, machine_levels, simulate
from spmm_study.errors import ParamError, SpmmError
from spmm_study.cpu import traces as tr

L = 64


def one(size_lines, ways, name="L1"):
    return CacheLevel(name, size_lines * L, ways, L)


def test_direct_mapped_conflicts_counted_by_hand():
    # 2 sets x 1 way: lines 0 and 2 share set 0 and evict each other; line 1 sits in set 1
    lines = [0, 2, 0, 1, 1, 2]
    st = simulate(np.array(lines) * L, levels=[one(2, 1)])
    # 0 miss, 2 miss (evicts 0), 0 miss (evicts 2), 1 miss, 1 hit, 2 miss
    assert st.misses == [5] and st.hits == [1] and st.writebacks == [0]
    assert st.bytes_in == [5 * L]


def test_lru_keeps_the_recently_used_way():
    # 1 set x 2 ways: a b a c -> c evicts b (least recently used), so a hits and b misses
    a, b, c = 0, 1, 2
    st = simulate(np.array([a, b, a, c, a, b]) * L, levels=[one(2, 2)])
    # a miss, b miss, a hit, c miss (evict b), a hit, b miss (evict c)
    assert st.misses == [4] and st.hits == [2]


def test_bytes_within_a_line_hit():
    st = simulate(np.arange(0, 2 * L, 4), levels=[one(4, 4)])  # 32 floats over two lines
    assert st.misses == [2] and st.hits == [30] and st.accesses == 32


def test_dirty_lines_are_written_back_once_each():
    # 1 line of cache: write line 0, read line 1 (evicts dirty 0: one write-back), read 0 (clean 1 out)
    st = simulate(np.array([0, L, 0]), np.array([1, 0, 0]), levels=[one(1, 1)])
    assert st.misses == [3] and st.writebacks == [1]
    assert st.memory_bytes == 3 * L + 1 * L


def test_repeated_accesses_to_one_line_take_the_fast_path_and_keep_their_dirt():
    # read then write line 0 (the write hits on the fast path and must dirty the line), then evict it
    st = simulate(np.array([0, 4, 8, L]), np.array([0, 1, 0, 0]), levels=[one(1, 1)])
    assert st.misses == [2] and st.hits == [2] and st.writebacks == [1]
    # a line evicted between two accesses to it is not taken for a hit
    st = simulate(np.array([0, 2 * L, 0]), levels=[one(2, 1)])
    assert st.misses == [3]


def test_two_levels_second_level_catches_first_level_misses():
    # L1: 1 line; L2: 4 lines fully associative. Lines 0 1 0 1: L1 misses all 4, L2 misses only the first 2
    st = simulate(np.array([0, 1, 0, 1]) * L, levels=[one(1, 1), one(4, 4, "L2")])
    assert st.misses == [4, 2] and st.hits == [0, 2]
    # a dirty L1 victim goes into L2 (which holds it: no memory traffic)
    st = simulate(np.array([0, 1, 0]) * L, np.array([1, 0, 0]), levels=[one(1, 1), one(4, 4, "L2")])
    assert st.writebacks == [2, 0] or st.writebacks == [1, 0]
    assert st.writebacks[1] == 0 and st.misses == [3, 2]


def test_streaming_twice_the_cache_misses_every_line_each_pass():
    lines = np.arange(16)  # 16 lines through an 8-line LRU cache, twice: LRU keeps none of the next pass
    st = simulate(np.concatenate([lines, lines]) * L, levels=[one(8, 8)])
    assert st.misses == [32]
    lines = np.arange(8)  # 8 lines fit: only the first pass misses
    st = simulate(np.concatenate([lines, lines]) * L, levels=[one(8, 8)])
    assert st.misses == [8]


def test_bad_configuration_and_traces_are_param_errors():
    with pytest.raises(ParamError):
        CacheLevel("L1", 100, 3, 64)
    with pytest.raises(ParamError):
        CacheLevel("L1", 4096, 4, 48)
    with pytest.raises(SpmmError):
        simulate(np.array([-64]), levels=[one(2, 1)])
    with pytest.raises(SpmmError):
        simulate(np.array([0, 64]), np.array([1]), levels=[one(2, 1)])


def test_machine_levels_are_read_and_sane():
    levels, source = machine_levels()
    assert [lv.name for lv in levels] == sorted(lv.name for lv in levels)
    assert all(lv.size >= lv.line * lv.ways for lv in levels) and levels[0].line in (32, 64, 128)


# --------------------------------------------------------------------------------- traces vs the kernels


class Rec(np.ndarray):
    """A numpy array that records the byte address of every element read or written through it."""

    log: list

    def __array_finalize__(self, obj):
        self.log = getattr(obj, "log", None)

    def _addr(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        if len(idx) != self.ndim or not all(isinstance(i, (int, np.integer)) for i in idx):
            return None
        base = self.__array_interface__["data"][0]
        return base + sum(int(i if i >= 0 else i + d) * s for i, d, s in zip(idx, self.shape, self.strides))

    def __getitem__(self, idx):
        addr = self._addr(idx)
        out = super().__getitem__(idx)
        if addr is not None:
            self.log.append((addr, 0))
            return out.item() if hasattr(out, "item") else out
        return out

    def __setitem__(self, idx, value):
        addr = self._addr(idx)
        if addr is not None:
            self.log.append((addr, 1))
        else:
            view = super().__getitem__(idx).view(np.ndarray)
            base = view.__array_interface__["data"][0] if view.size else 0
            for pos in np.ndindex(*view.shape):  # a slice store writes every element in C order
                self.log.append((base + sum(p * s for p, s in zip(pos, view.strides)), 1))
        np.ndarray.__setitem__(self.view(np.ndarray), idx, value)


def rec(x, log):
    r = np.ascontiguousarray(x).view(Rec)
    r.log = log
    return r


def tiny_csr(m=5, k=7, seed=1):
    from spmm_study.formats import CSR
    import scipy.sparse as sp

    d = sp.random(m, k, density=0.4, random_state=seed, dtype=np.float32).toarray()
    d[2, :] = 0  # an empty row
    a = sp.csr_matrix(d)
    a.data[:] = np.arange(1, a.nnz + 1, dtype=np.float32)
    return CSR((m, k), a.indptr.astype(np.int32), a.indices.astype(np.int32), a.data.astype(np.float32))


def check_same(log, addrs, writes, c, expect):
    assert np.allclose(np.asarray(c, dtype=np.float64), expect, atol=1e-4)  # the recorded run computed A@B
    got = list(zip(addrs.tolist(), writes.tolist()))
    assert len(got) == len(log) and got == log


@pytest.mark.parametrize("order", tr.ORDERS)
def test_dense_order_trace_is_the_kernels_accesses(order):
    from spmm_study.cpu.k02_dense_order import KERNELS

    rng = np.random.default_rng(0)
    m, k, n = 3, 4, 5
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    log = []
    A, B, C = rec(a, log), rec(b, log), rec(np.full((m, n), np.nan, np.float32), log)
    KERNELS[order].py_func(A, B, C)
    addrs, writes = tr.dense_order(m, k, n, order, 4, tr.Layout.of(a=A, b=B, c=C))
    check_same(log, addrs, writes, C.view(np.ndarray), a.astype(np.float64) @ b)


def test_dense_tiled_trace_is_the_kernels_accesses():
    from spmm_study.cpu import k03_dense_tiled as kt

    rng = np.random.default_rng(1)
    m, k, n = 5, 6, 7
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    log = []
    A, B, C = rec(a, log), rec(b, log), rec(np.full((m, n), np.nan, np.float32), log)
    tile = kt.dense_tile.py_func
    # dense_tiled calls the jitted dense_tile: run its loop with the Python tile instead
    m_, k_ = A.shape
    C[:, :] = 0.0
    for i0 in range(0, m_, 2):
        for k0 in range(0, k_, 4):
            tile(A, B, C, i0, min(i0 + 2, m_), k0, min(k0 + 4, k_), 3)
    addrs, writes = tr.dense_tiled(m, k, n, 2, 4, 3, 4, tr.Layout.of(a=A, b=B, c=C))
    check_same(log, addrs, writes, C.view(np.ndarray), a.astype(np.float64) @ b)


def _csr_case(n=6):
    a = tiny_csr()
    b = np.random.default_rng(2).standard_normal((a.k, n)).astype(np.float32)
    return a, b, a.to_dense().astype(np.float64) @ b


@pytest.mark.parametrize("name", ["rowwise", "dot"])
def test_csr_traces_are_the_kernels_accesses(name):
    from spmm_study.cpu.k10_csr_rowwise import csr_rowwise
    from spmm_study.cpu.k11_csr_dot import csr_dot

    a, b, expect = _csr_case()
    log = []
    ip, ix, d = rec(a.indptr, log), rec(a.indices, log), rec(a.data, log)
    B, C = rec(b, log), rec(np.full((a.m, b.shape[1]), np.nan, np.float32), log)
    (csr_rowwise if name == "rowwise" else csr_dot).py_func(ip, ix, d, B, C)
    lay = tr.Layout.of(indptr=ip, indices=ix, data=d, b=B, c=C)
    addrs, writes = (tr.csr_rowwise if name == "rowwise" else tr.csr_dot)(a, b.shape[1], 4, lay)
    check_same(log, addrs, writes, C.view(np.ndarray), expect)


@pytest.mark.parametrize("tile_n", [1, 4, 6, 8])
def test_csr_tiled_trace_follows_the_register_blocked_loop(tile_n):
    # the register tile uses raw pointers (elem_ptr/carray), so its Python source cannot run on recording arrays:
    # this is its loop nest line for line (spmm_study/cpu/_tiled.py), acc held in a Python list; the tail is
    # slices, so the kernel's own tail function runs here
    from spmm_study.cpu._tiled import accumulate_tail

    a, b, expect = _csr_case(n=6)
    n = b.shape[1]
    log = []
    rows = rec(np.arange(a.m, dtype=np.int64), log)
    ip, ix, d = rec(a.indptr, log), rec(a.indices, log), rec(a.data, log)
    B, C = rec(b, log), rec(np.full((a.m, n), np.nan, np.float32), log)
    n_full = n - n % tile_n
    for r in range(rows.size):
        i = rows[r]
        start, end = ip[i], ip[i + 1]
        for j0 in range(0, n_full, tile_n):
            acc = [0.0] * tile_n
            for p in range(start, end):
                v = d[p]
                col = ix[p]
                for j in range(tile_n):
                    acc[j] += v * B[col, j0 + j]
            for j in range(tile_n):
                C[i, j0 + j] = acc[j]
        if n_full < n:
            accumulate_tail.py_func(C, i, n_full, n, ip, ix, d, B)
    lay = tr.Layout.of(rows=rows, indptr=ip, indices=ix, data=d, b=B, c=C)
    addrs, writes = tr.csr_tiled(a, n, tile_n, 4, lay)
    check_same(log, addrs, writes, C.view(np.ndarray), expect)


def test_coo_csc_bsr_traces_are_the_kernels_accesses():
    from spmm_study.cpu.k20_coo_scatter import coo_scatter
    from spmm_study.cpu.k22_csc_outer import csc_outer
    from spmm_study.cpu.k31_bsr import bsr_rows
    from spmm_study.formats import BSR, COO, CSC

    a, b, expect = _csr_case()
    n = b.shape[1]
    coo = COO.from_csr(a)
    log = []
    R, Co, D, B, C = (rec(coo.rows, log), rec(coo.cols, log), rec(coo.data, log), rec(b, log),
                      rec(np.full((a.m, n), np.nan, np.float32), log))
    coo_scatter.py_func(R, Co, D, B, C)
    addrs, writes = tr.coo_scatter(coo, n, 4, tr.Layout.of(rows=R, cols=Co, data=D, b=B, c=C))
    check_same(log, addrs, writes, C.view(np.ndarray), expect)

    csc = CSC.from_csr(a)
    log = []
    ip, ix, D, B, C = (rec(csc.indptr, log), rec(csc.indices, log), rec(csc.data, log), rec(b, log),
                       rec(np.full((a.m, n), np.nan, np.float32), log))
    csc_outer.py_func(ip, ix, D, B, C)
    addrs, writes = tr.csc_outer(csc, n, 4, tr.Layout.of(indptr=ip, indices=ix, data=D, b=B, c=C))
    check_same(log, addrs, writes, C.view(np.ndarray), expect)

    for br, bc in ((2, 3), (1, 1), (4, 4)):
        bm = BSR.from_csr(a, br, bc)
        log = []
        ip, ix, D, B, C = (rec(bm.indptr, log), rec(bm.indices, log), rec(bm.data, log), rec(b, log),
                           rec(np.full((a.m, n), np.nan, np.float32), log))
        bsr_rows.py_func(a.m, a.k, br, bc, ip, ix, D, B, C)
        addrs, writes = tr.bsr(bm, n, 4, tr.Layout.of(indptr=ip, indices=ix, data=D, b=B, c=C))
        check_same(log, addrs, writes, C.view(np.ndarray), expect)


def test_row_order_costs_what_the_loop_order_says_on_this_machines_caches():
    # end to end on the real hierarchy: B walked down columns (i->j->p) misses L1 far more than i->p->j
    # once a row of A touches more lines of B than L1 holds (2048 lines here; 48 KiB is 768 lines)
    from spmm_study.sources import synthetic

    a = synthetic("uniform", (16, 4096), 0.5, seed=0)
    levels, _ = machine_levels()
    row = simulate(*tr.csr_rowwise(a, 16), levels=levels)
    dot = simulate(*tr.csr_dot(a, 16), levels=levels)
    if a.nnz // a.m * 64 > levels[0].size:
        assert dot.misses[0] > 4 * row.misses[0]
    assert dot.misses[0] > row.misses[0]
    assert tr.for_variant("cpu.dense.numpy", a, 8, {}) is None
