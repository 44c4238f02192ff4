"""Formats: every broken invariant is a FormatError that carries the numbers; conversions round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from spmm_study.errors import FormatError, ResourceError
from spmm_study.formats import COO, CSC, CSR, INT32_MAX, index_dtype_for

I32 = np.int32


def csr(shape, indptr, indices, data=None, it=I32, dt=np.float32):
    indices = np.asarray(indices, dtype=it)
    data = np.arange(1, indices.size + 1, dtype=dt) if data is None else np.asarray(data, dtype=dt)
    return CSR(shape, np.asarray(indptr, dtype=it), indices, data)


def random_csr(m, k, density, seed, dt=np.float32):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((m, k)) < density, rng.standard_normal((m, k)), 0.0).astype(dt)
    return CSR.from_dense(dense), dense


# ------------------------------------------------------------------------------------ construction checks


@pytest.mark.parametrize(
    "args, pattern",
    [
        (((3, 4), [0, 1, 2], [0, 1]), r"indptr has 3 entries; expected 4"),
        (((2, 4), [0, 1, 3], [0, 1]), r"indptr ends at 3; expected nnz = 2"),
        (((-1, 4), [0], []), r"non-negative, got -1x4"),
        (((2,), [0, 1, 2], [0, 1]), r"shape must be two integers"),
    ],
)
def test_cheap_checks_at_construction(args, pattern):
    with pytest.raises(FormatError, match=pattern):
        csr(*args)


def test_values_and_indices_length_and_dtypes():
    with pytest.raises(FormatError, match=r"3 column indices but 2 values"):
        CSR((2, 4), np.array([0, 1, 3], I32), np.array([0, 1, 2], I32), np.ones(2, np.float32))
    with pytest.raises(FormatError, match=r"int16"):  # a problem's types only (float16, bfloat16, int8 included)
        CSR((1, 2), np.array([0, 1], I32), np.array([0], I32), np.ones(1, np.int16))
    assert CSR((1, 2), np.array([0, 1], I32), np.array([0], I32), np.ones(1, np.float16)).dtype == np.float16
    with pytest.raises(FormatError, match=r"indices has dtype float64; expected integers"):
        CSR((1, 2), np.array([0, 1], I32), np.array([0.0]), np.ones(1, np.float32))
    with pytest.raises(FormatError, match=r"1-D"):
        CSR((1, 2), np.array([[0, 1]], I32), np.array([0], I32), np.ones(1, np.float32))


# ------------------------------------------------------------------------------------ full validation


@pytest.mark.parametrize(
    "shape, indptr, indices, pattern",
    [
        ((2, 4), [1, 1, 2], [0], None),  # built below: indptr must start at 0
        ((3, 4), [0, 2, 1, 3], [0, 1, 2], r"not monotone: row 1 has offsets 2 -> 1"),
        ((3, 4), [0, 1, 2, 3], [0, 1, 4], r"column index 4 in row 2 is out of range for 4 columns"),
        ((3, 4), [0, 1, 2, 3], [0, -3, 1], r"column index -3 in row 1 is out of range for 4 columns"),
        ((2, 5), [0, 3, 4], [1, 0, 2, 3], r"row 0 are not sorted \(1 before 0\)"),
        ((2, 5), [0, 2, 4], [1, 2, 3, 3], r"duplicate entry \(1, 3\)"),
    ],
)
def test_validate_reports_each_broken_invariant(shape, indptr, indices, pattern):
    if pattern is None:  # indptr[0] != 0 with a consistent end: lengths fit, the start does not
        a = CSR((2, 4), np.array([1, 1, 1], I32), np.zeros(1, I32), np.ones(1, np.float32))
        with pytest.raises(FormatError, match=r"indptr starts at 1; expected 0"):
            a.validate()
        return
    with pytest.raises(FormatError, match=pattern):
        csr(shape, indptr, indices).validate()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_validate_rejects_non_finite_values_with_position(bad):
    a = csr((2, 3), [0, 2, 3], [0, 2, 1], [1.0, bad, 2.0])
    with pytest.raises(FormatError, match=r"1 values are NaN or Inf \(first at position 1"):
        a.validate()


def test_canonicalize_sorts_rows_and_keeps_pairs():
    a = csr((2, 5), [0, 3, 5], [4, 0, 2, 3, 1], [40, 0.5, 20, 31, 11])
    b = a.validate(canonicalize=True)
    assert b.indices.tolist() == [0, 2, 4, 1, 3]
    assert b.data.tolist() == [0.5, 20, 40, 11, 31]
    assert b.indptr is a.indptr
    np.testing.assert_array_equal(b.to_dense(), a.to_scipy().toarray())


def test_canonicalize_still_rejects_duplicates():
    a = csr((1, 5), [0, 3], [3, 1, 3])
    with pytest.raises(FormatError, match=r"duplicate entry \(0, 3\)"):
        a.validate(canonicalize=True)


def test_validate_accepts_valid_matrix_and_empty_rows():
    a = csr((4, 3), [0, 0, 2, 2, 3], [0, 2, 1])
    assert a.validate() is a
    assert a.row_lengths().tolist() == [0, 2, 0, 1]
    empty = csr((0, 0), [0], [])
    assert empty.validate().nnz == 0


def test_from_coo_arrays_range_checks_before_scipy():
    with pytest.raises(FormatError, match=r"row index 3 is out of range for 3 rows"):
        CSR.from_coo_arrays((3, 3), [0, 3], [0, 0], [1.0, 1.0])
    with pytest.raises(FormatError, match=r"column index -1 is out of range for 3 columns"):
        CSR.from_coo_arrays((3, 3), [0, 1], [0, -1], [1.0, 1.0])
    with pytest.raises(FormatError, match=r"1 rows, 2 cols, 2 values"):
        CSR.from_coo_arrays((3, 3), [0], [0, 1], [1.0, 1.0])
    with pytest.raises(FormatError, match=r"duplicate entry \(1, 2\)"):
        CSR.from_coo_arrays((3, 3), [1, 0, 1], [2, 0, 2], [1.0, 1.0, 1.0])


def test_from_scipy_rejects_duplicates_rather_than_summing():
    coo = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(2, 2))
    with pytest.raises(FormatError, match=r"duplicate entry \(0, 1\)"):
        CSR.from_scipy(coo)


def test_index_dtype_int32_while_it_fits():
    assert index_dtype_for(10, 10, 10) == np.int32
    assert index_dtype_for(INT32_MAX, 1, 0) == np.int32
    assert index_dtype_for(INT32_MAX + 1, 1, 0) == np.int64
    assert index_dtype_for(1, 1, INT32_MAX + 1) == np.int64
    a, _ = random_csr(5, 7, 0.5, 0)
    assert a.indices.dtype == np.int32 and a.indptr.dtype == np.int32


def test_int32_refused_past_int32_with_numbers():
    # one nonzero in a 1 x 3e9 matrix: column index 2999999999 needs int64; a kernel wanting int32 must refuse
    k = 3_000_000_000
    a = CSR((1, k), np.array([0, 1], np.int64), np.array([k - 1], np.int64), np.ones(1, np.float32)).validate()
    with pytest.raises(ResourceError, match=r"1x3000000000 with 1 nonzeros does not fit int32"):
        a.with_index_dtype(np.int32)
    assert a.with_index_dtype(np.int64).indices.dtype == np.int64


# ------------------------------------------------------------------------------------ conversions


@pytest.mark.parametrize("m, k, density", [(1, 1, 1.0), (13, 11, 0.3), (40, 7, 0.05), (6, 5, 0.0)])
def test_coo_and_csc_round_trip(m, k, density):
    a, dense = random_csr(m, k, density, m * k)
    coo = COO.from_csr(a)
    assert coo.nnz == a.nnz and coo.rows.dtype == a.indices.dtype
    back = CSR.from_coo_arrays(coo.shape, coo.rows, coo.cols, coo.data)
    for x, y in ((back.indptr, a.indptr), (back.indices, a.indices), (back.data, a.data)):
        np.testing.assert_array_equal(x, y)
    csc = CSC.from_csr(a)
    ref = sp.csc_matrix(dense)
    np.testing.assert_array_equal(csc.indptr, ref.indptr)
    np.testing.assert_array_equal(csc.indices, ref.indices)  # stable: row indices sorted in each column
    np.testing.assert_array_equal(csc.data, ref.data)
    # CSC of A is the CSR of A^T: converting that back by transposing again gives A
    at = CSR((k, m), csc.indptr, csc.indices, csc.data).validate()
    np.testing.assert_array_equal(at.to_dense().T, dense)
    np.testing.assert_array_equal(a.to_dense(), dense)
    np.testing.assert_array_equal(a.to_scipy().toarray(), dense)


def test_coo_and_csc_cheap_checks():
    with pytest.raises(FormatError, match=r"COO arrays differ in length: 2, 1, 1"):
        COO((2, 2), np.array([0, 1], I32), np.array([0], I32), np.ones(1, np.float32))
    with pytest.raises(FormatError, match=r"CSC indptr has 2 entries; expected 4 \(columns \+ 1\)"):
        CSC((2, 3), np.array([0, 1], I32), np.array([0], I32), np.ones(1, np.float32))


def test_astype_and_dense_round_trip():
    a, dense = random_csr(9, 8, 0.4, 1, dt=np.float64)
    assert a.dtype == np.float64
    b = a.astype(np.float32)
    assert b.dtype == np.float32 and b.indices is a.indices
    np.testing.assert_array_equal(CSR.from_dense(b.to_dense()).data, b.data)


# ------------------------------------------------------------------------------------ properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 25), k=st.integers(0, 25), density=st.floats(0, 1), seed=st.integers(0, 2**16),
       shuffle=st.booleans())
def test_property_triplets_csr_coo_csc_agree(m, k, density, seed, shuffle):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((m, k)) < density, rng.standard_normal((m, k)), 0.0).astype(np.float32)
    rows, cols = np.nonzero(dense)
    vals = dense[rows, cols]
    if shuffle:  # triplets in any order give the same canonical CSR
        p = rng.permutation(rows.size)
        rows, cols, vals = rows[p], cols[p], vals[p]
    a = CSR.from_coo_arrays((m, k), rows, cols, vals)
    assert a.validate() is a  # canonical already: sorted, no duplicates
    np.testing.assert_array_equal(a.to_dense(), dense)
    ref = sp.csr_matrix(dense)
    np.testing.assert_array_equal(a.indptr, ref.indptr)
    np.testing.assert_array_equal(a.indices, ref.indices)
    coo = COO.from_csr(a)
    np.testing.assert_array_equal(coo.rows, rows[np.lexsort((cols, rows))])
    csc = CSC.from_csr(a)
    np.testing.assert_array_equal(CSR((k, m), csc.indptr, csc.indices, csc.data).validate().to_dense(), dense.T)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 12), k=st.integers(1, 12), nnz=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_property_validate_finds_every_corruption(m, k, nnz, seed):
    """Random index corruption: validate either accepts a still-valid CSR or raises FormatError; never
    anything else, and never accepts an index out of range."""
    rng = np.random.default_rng(seed)
    indptr = np.sort(rng.integers(0, nnz + 1, m + 1))
    indptr[0], indptr[-1] = 0, nnz
    indices = rng.integers(-2, k + 2, nnz).astype(np.int32)
    a = CSR((m, k), indptr.astype(np.int32), indices, np.ones(nnz, np.float32))
    try:
        b = a.validate(canonicalize=bool(seed % 2))
    except FormatError as exc:
        assert any(ch.isdigit() for ch in str(exc))  # the message carries numbers
        return
    assert b.indices.min() >= 0 and b.indices.max() < k
    for r in range(m):
        row = b.indices[b.indptr[r]:b.indptr[r + 1]]
        assert (np.diff(row) > 0).all()
