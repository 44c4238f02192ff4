"""The CPU ladder's formats and work partitions: round trips to dense, cheap checks, refusals, balance."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import edge_matrices
from spmm_study import sources
from spmm_study.cpu.balance import BALANCES, partition, spread
from spmm_study.cpu.k21_coo_par import row_aligned_cuts
from spmm_study.errors import FormatError, ResourceError
from spmm_study.formats import BSR, COO, CSR, NM24, SELL

EDGES = edge_matrices()


def sell_dense(s: SELL) -> np.ndarray:
    out = np.zeros(s.shape, dtype=s.data.dtype)
    m = s.shape[0]
    for sl in range(s.widths.size):
        for w in range(int(s.widths[sl])):
            for r in range(s.c):
                q = sl * s.c + r
                if q < m:
                    pos = s.slice_ptr[sl] + w * s.c + r
                    out[s.perm[q], s.cols[pos]] += s.data[pos]
    return out


@pytest.mark.parametrize("name", list(EDGES))
@pytest.mark.parametrize("c, sigma", [(1, 1), (4, 1), (4, 8), (32, 256)])
def test_sell_round_trip(name, c, sigma):
    a = EDGES[name]
    s = SELL.from_csr(a, c, sigma)
    assert np.array_equal(sell_dense(s), a.to_dense())
    assert s.stored >= a.nnz and sorted(s.perm.tolist()) == list(range(a.m))


@pytest.mark.parametrize("name", list(EDGES))
@pytest.mark.parametrize("br, bc", [(1, 1), (2, 4), (4, 4), (8, 3)])
def test_bsr_round_trip(name, br, bc):
    a = EDGES[name]
    b = BSR.from_csr(a, br, bc)
    m, k = a.shape
    out = np.zeros((-(-m // br) * br, -(-k // bc) * bc), dtype=a.dtype)
    for blk_row in range(b.indptr.size - 1):
        for q in range(b.indptr[blk_row], b.indptr[blk_row + 1]):
            out[blk_row * br:(blk_row + 1) * br, b.indices[q] * bc:(b.indices[q] + 1) * bc] += b.data[q]
    assert np.array_equal(out[:m, :k], a.to_dense())
    assert not out[m:, :].any() and not out[:, k:].any()


def test_bsr_refuses_hopeless_fill():
    a = sources.load("synthetic:uniform:64x64:0.99").a
    with pytest.raises(ResourceError, match="would store"):
        BSR.from_csr(a, 16, 16, max_fill=8)


@pytest.mark.parametrize("spec", ["synthetic:nm:16x24", "synthetic:nm:9x11", "synthetic:nm:5x1", "synthetic:nm:7x6"])
def test_nm24_round_trip_and_metadata_in_range(spec):
    a = sources.load(spec).a
    nm = NM24.from_csr(a)
    m, k = a.shape
    out = np.zeros((m, k), dtype=a.dtype)
    for i in range(m):
        for s in range(nm.data.shape[1]):
            code = (int(nm.meta[i, s // 4]) >> (2 * (s % 4))) & 3
            col = (s // 2) * 4 + code
            assert col < k  # padding slots point at a column that exists
            out[i, col] += nm.data[i, s]
    assert np.array_equal(out, a.to_dense())
    assert nm.meta.nbytes * 16 <= max(16, nm.data.nbytes * 2)  # 2 bits per slot


def test_nm24_names_the_first_bad_group():
    d = np.zeros((3, 8), np.float32)
    d[2, 4:7] = 1.0
    with pytest.raises(FormatError, match=r"row 2, columns 4\.\.7 hold 3"):
        NM24.from_csr(CSR.from_dense(d))


def test_cheap_checks_catch_inconsistent_bundles():
    a = EDGES["random"]
    s = SELL.from_csr(a, 4, 1)
    with pytest.raises(FormatError):
        SELL(s.shape, s.c, s.sigma, s.perm[:-1], s.slice_ptr, s.widths, s.cols, s.data, s.nnz)
    b = BSR.from_csr(a, 2, 2)
    with pytest.raises(FormatError):
        BSR(b.shape, b.br, b.bc, b.indptr[:-1], b.indices, b.data, b.nnz)
    nm = NM24.from_csr(sources.load("synthetic:nm:8x8").a)
    with pytest.raises(FormatError):
        NM24((8, 12), nm.data, nm.meta, nm.nnz)


@pytest.mark.parametrize("how", BALANCES)
@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_partitions_cover_every_row_once(how, parts):
    lens = np.random.default_rng(1).integers(0, 50, 101)
    rows, bounds = partition(lens, parts, how, rows_per_task=16)
    assert sorted(rows.tolist()) == list(range(101))
    assert bounds[0] == 0 and bounds[-1] == 101 and np.all(np.diff(bounds) >= 0)
    info = spread(lens, rows, bounds, how, parts)
    if how != "dynamic":
        assert sum(info["work_nnz_per_thread"]) == lens.sum() and len(info["work_nnz_per_thread"]) == parts


def test_nnz_balance_beats_static_on_skewed_rows():
    lens = np.concatenate([np.full(50, 100), np.full(50, 1)])  # all the work in the first half
    imb = {how: spread(lens, *partition(lens, 2, how), how, 2)["imbalance"] for how in ("static", "nnz", "sorted")}
    assert imb["static"] > 1.9 and imb["nnz"] < 1.05 and imb["sorted"] < 1.05


def test_coo_cuts_fall_on_row_boundaries():
    a = EDGES["one_dense_row"]
    coo = COO.from_csr(a)
    for parts in (1, 2, 3, 5):
        cuts, row_cuts = row_aligned_cuts(coo.rows, a.m, parts)
        assert cuts[0] == 0 and cuts[-1] == a.nnz and row_cuts[-1] == a.m
        for t in range(1, parts):
            if 0 < cuts[t] < a.nnz:
                assert coo.rows[cuts[t] - 1] != coo.rows[cuts[t]]  # no row split between two threads
                assert row_cuts[t] == coo.rows[cuts[t]]
