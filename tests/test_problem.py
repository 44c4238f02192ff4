"""The problem: seeded B, float64 reference with sparse semantics, shape facts, and the checker."""

from __future__ import annotations

import numpy as np
import pytest

from spmm_study.errors import ParamError, ResourceError
from spmm_study.formats import CSR
from spmm_study.problem import TOLERANCES, Problem, check_size, estimate_bytes, parse_dtype


def random_csr(m, k, density, seed, empty_rows=()):
    rng = np.random.default_rng(seed)
    d = np.where(rng.random((m, k)) < density, rng.standard_normal((m, k)), 0.0).astype(np.float32)
    d[list(empty_rows), :] = 0.0
    return CSR.from_dense(d)


@pytest.fixture(scope="module")
def large():
    """2000x512 at 90%, N=64: 128,000 outputs, so one wrong entry is 1 in 10^5 of the Frobenius norm."""
    return Problem.make(random_csr(2000, 512, 0.1, 0, empty_rows=(3, 1999)), 64, "float32", seed=1)


def test_make_seeds_b_and_computes_shape():
    a = random_csr(30, 20, 0.2, 2, empty_rows=(0, 7))
    p = Problem.make(a, 9, "fp32", seed=5, matrix="x")
    q = Problem.make(a, 9, "float32", seed=5)
    np.testing.assert_array_equal(p.b, q.b)
    assert not np.array_equal(p.b, Problem.make(a, 9, "float32", seed=6).b)
    assert p.b.shape == (20, 9) and p.b.dtype == np.float32 and p.b.flags.c_contiguous
    s = p.shape
    assert (s.m, s.k, s.n, s.nnz) == (30, 20, 9, a.nnz)
    assert s.rows_nonempty == int((a.row_lengths() > 0).sum()) and s.rows_nonempty <= 28
    assert s.k_touched == len(set(a.indices.tolist()))
    assert (s.value_bytes, s.index_bytes) == (4, 4)
    assert s.flops == 2 * a.nnz * 9 and s.dense_flops == 2 * 30 * 20 * 9
    assert s.sparsity == pytest.approx(1 - a.nnz / 600)
    p64 = Problem.make(a, 9, "float64", seed=5)
    assert p64.dtype == np.float64 and p64.shape.value_bytes == 8 and p64.b.dtype == np.float64


def test_reference_is_float64_sparse_product():
    a = random_csr(15, 12, 0.3, 3, empty_rows=(4,))
    p = Problem.make(a, 5, "float32", seed=0)
    ref = p.reference
    assert ref.dtype == np.float64
    np.testing.assert_allclose(ref, a.to_dense().astype(np.float64) @ p.b.astype(np.float64), rtol=1e-12)
    assert (ref[4] == 0).all()


def test_check_passes_correct_float32_result(large):
    c = (large.a.to_scipy() @ large.b).astype(np.float32)  # float32 arithmetic, another summation order
    res = large.check(c)
    assert res.ok, res.message
    assert 0 < res.rel_error < 1e-6


def test_check_fails_one_wrong_entry_in_a_large_matrix(large):
    c = large.reference.astype(np.float32)
    i, j = 1234, 17
    c[i, j] *= 1.01  # 1% off in one of 128,000 entries: about 3e-5 of the Frobenius norm, under rel_fro
    res = large.check(c)
    assert not res.ok
    assert res.rel_error < TOLERANCES['float32'].rel_fro  # caught by the per-entry bound
    assert f"C[{i},{j}]" in res.message and "1 entries past bound" in res.message


def test_check_fails_nan_and_names_where(large):
    c = large.reference.astype(np.float32)
    c[5, 6] = np.nan
    res = large.check(c)
    assert not res.ok and "1 entries are NaN/Inf" in res.message and "(5,6)" in res.message
    c[5, 6] = np.inf
    assert not large.check(c).ok
    assert not large.check(large.new_output()).ok  # the poisoned buffer itself
    assert np.isnan(large.new_output()).all()


def test_check_empty_rows_must_be_exact_zeros(large):
    c = large.reference.astype(np.float32)
    assert (c[3] == 0).all() and (c[1999] == 0).all()
    c[3, 10] = 1e-31  # tiny garbage where every term is zero: not a rounding error
    res = large.check(c)
    assert not res.ok and "C[3,10]" in res.message
    c[3, 10] = -0.0
    assert large.check(c).ok


def test_check_wrong_shape(large):
    res = large.check(np.zeros((2000, 63), np.float32))
    assert not res.ok and "output shape (2000, 63)" in res.message


def test_tolerance_per_dtype():
    a = random_csr(200, 300, 0.2, 4)
    p64 = Problem.make(a, 16, "float64", seed=0)
    p32 = Problem.make(a, 16, "float32", seed=0)
    assert p64.tolerance.rel_fro < 1e-10 < p32.tolerance.rel_fro
    # a float32-accurate answer passes the float32 problem and fails the float64 one
    assert p32.check((a.to_scipy() @ p32.b).astype(np.float32)).ok
    c32_for_64 = (a.astype(np.float32).to_scipy() @ p64.b.astype(np.float32)).astype(np.float64)
    res = p64.check(c32_for_64)
    assert not res.ok and 1e-9 < res.rel_error < 1e-5
    # a float64 answer in another summation order passes float64
    c64 = np.zeros_like(p64.reference)
    for r in range(a.m):
        lo, hi = a.indptr[r], a.indptr[r + 1]
        for p in range(hi - 1, lo - 1, -1):  # reversed order
            c64[r] += np.float64(a.data[p]) * p64.b[a.indices[p]]
    assert p64.check(c64).ok
    # TF32-like error (1e-3 relative per product) fails float32
    noisy = p32.reference * (1 + 1e-3 * np.random.default_rng(0).standard_normal(p32.reference.shape))
    assert not p32.check(noisy.astype(np.float32)).ok


def test_sizes_and_dtypes_refused_before_allocating(monkeypatch):
    a = random_csr(4, 4, 0.5, 0)
    for n in (0, -3):
        with pytest.raises(ParamError, match=f"N must be positive, got {n}"):
            Problem.make(a, n)
    with pytest.raises(ParamError, match=r"N = 100000000 is past the limit of 16777216"):
        Problem.make(a, 100_000_000)
    with pytest.raises(ParamError, match=r"unknown dtype 'float8'; choose one of float32, float64, float16, "
                                         r"bfloat16, int8"):
        parse_dtype("float8")
    # 10^7 columns with a 50000x50000 A: B alone is 2 TB; refused by the estimate with the numbers
    with pytest.raises(ResourceError, match=r"M=50000 K=50000 N=10000000 nnz=1000 needs about \d+\.\d GiB; "
                                            r"[\d.]+ GiB is available"):
        check_size(50_000, 50_000, 10_000_000, 1000, np.float32)
    assert estimate_bytes(10, 20, 30, 40, np.float32) == 20 * 30 * 12 + 10 * 30 * 48 + 40 * 28
    monkeypatch.setattr("spmm_study.problem.available_memory_bytes", lambda: 1 << 20)
    with pytest.raises(ResourceError, match=r"0\.0 GiB is available"):
        Problem.make(a, 100_000)


def test_problem_rejects_mismatched_b():
    a = random_csr(4, 6, 0.5, 0)
    with pytest.raises(ParamError, match=r"shape mismatch: A is 4x6 but B is 5x3"):
        Problem(a, np.ones((5, 3), np.float32))
    with pytest.raises(ParamError, match=r"dtype mismatch"):
        Problem(a, np.ones((6, 3), np.float64))
    with pytest.raises(ParamError, match=r"B holds NaN or Inf"):
        Problem(a, np.full((6, 3), np.nan, np.float32))


def test_values_past_float32_are_refused_not_failed():
    a = CSR.from_dense(np.array([[-1e39, 0.0], [0.0, 2.0]]))
    with pytest.raises(ParamError, match=r"a value of magnitude 1e\+39 does not fit float32; use --dtype float64"):
        Problem.make(a, 3, "float32")
    assert Problem.make(a, 3, "float64").check(a.to_dense() @ Problem.make(a, 3, "float64").b).ok
