"""Sparse formats as plain bundles of numpy arrays (DESIGN.md §3): CSR (canonical), COO and CSC.

Kernels see arrays only; these classes only hold, check and convert them. Two levels of checking:

* cheap checks at construction (dtypes, 1-D arrays, lengths, the shape) are always done;
* ``validate()`` is the full O(nnz) pass used on everything loaded from outside: offsets start at 0, are
  monotone and end at nnz; every index is in range; indices are sorted inside each row; no duplicates;
  values are finite.

Policy (documented choice): **duplicates are rejected**, not summed. A duplicate (row, col) in a weight
matrix is almost always a broken file, and summing it silently would make a kernel's nnz-based numbers
(GFLOP/s, bytes) wrong. Unsorted column indices inside a row are rejected too unless the caller asks for
``canonicalize=True``, which sorts them (``sources`` does this for formats that carry no order, such as
Matrix Market coordinate files).

Indices are int32 while every index and offset fits (M, K, nnz < 2**31), int64 beyond. Values are float32
or float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spmm_study.errors import FormatError, ResourceError

INT32_MAX = np.iinfo(np.int32).max
VALUE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def index_dtype_for(m: int, k: int, nnz: int) -> np.dtype:
    """int32 while every row/column index and offset fits, int64 beyond."""
    return np.dtype(np.int32) if max(m, k, nnz) <= INT32_MAX else np.dtype(np.int64)


def _check_shape(shape) -> tuple[int, int]:
    try:
        m, k = (int(shape[0]), int(shape[1]))
    except (TypeError, ValueError, IndexError):
        raise FormatError(f"shape must be two integers, got {shape!r}") from None
    if m < 0 or k < 0:
        raise FormatError(f"shape must be non-negative, got {m}x{k}")
    return m, k


def _check_1d(name: str, arr: np.ndarray, kinds: str) -> None:
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        raise FormatError(f"{name} must be a 1-D numpy array")
    if arr.dtype.kind not in kinds:
        raise FormatError(f"{name} has dtype {arr.dtype}; expected {'integers' if kinds == 'iu' else 'floats'}")


def _check_values(data: np.ndarray) -> None:
    if data.dtype not in VALUE_DTYPES:
        raise FormatError(f"values have dtype {data.dtype}; expected float32 or float64")


def _check_finite(data: np.ndarray) -> None:
    finite = np.isfinite(data)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise FormatError(f"{bad.size} values are NaN or Inf (first at position {int(bad[0])}: {data[bad[0]]})")


@dataclass(frozen=True, eq=False)
class CSR:
    """Compressed sparse rows: row i holds ``indices[indptr[i]:indptr[i+1]]`` with ``data`` alongside."""

    shape: tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    def __post_init__(self):
        m, k = _check_shape(self.shape)
        object.__setattr__(self, "shape", (m, k))
        _check_1d("indptr", self.indptr, "iu")
        _check_1d("indices", self.indices, "iu")
        _check_1d("values", self.data, "f")
        _check_values(self.data)
        if self.indptr.size != m + 1:
            raise FormatError(f"indptr has {self.indptr.size} entries; expected {m + 1} (rows + 1)")
        if self.indices.size != self.data.size:
            raise FormatError(f"{self.indices.size} column indices but {self.data.size} values")
        if self.indptr.size and int(self.indptr[-1]) != self.indices.size:
            raise FormatError(f"indptr ends at {int(self.indptr[-1])}; expected nnz = {self.indices.size}")

    @property
    def m(self) -> int:
        return self.shape[0]

    @property
    def k(self) -> int:
        return self.shape[1]

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def row_lengths(self) -> np.ndarray:
        return np.diff(self.indptr).astype(np.int64)

    def validate(self, canonicalize: bool = False) -> "CSR":
        """Full O(nnz) check; returns self, or a sorted copy when ``canonicalize`` and rows were unsorted."""
        m, k = self.shape
        indptr = self.indptr.astype(np.int64, copy=False)
        if indptr[0] != 0:
            raise FormatError(f"indptr starts at {int(indptr[0])}; expected 0")
        steps = np.diff(indptr)
        if (steps < 0).any():
            row = int(np.flatnonzero(steps < 0)[0])
            raise FormatError(
                f"indptr is not monotone: row {row} has offsets {int(indptr[row])} -> {int(indptr[row + 1])}"
            )
        idx = self.indices.astype(np.int64, copy=False)
        if idx.size:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= k:
                bad = lo if lo < 0 else hi
                pos = int(np.flatnonzero(idx == bad)[0])
                row = int(np.searchsorted(indptr, pos, side="right") - 1)
                raise FormatError(f"column index {bad} in row {row} is out of range for {k} columns")
        _check_finite(self.data)
        csr = self
        if idx.size > 1:
            row_of = np.repeat(np.arange(m, dtype=np.int64), steps)
            same_row = row_of[1:] == row_of[:-1]
            d = np.diff(idx)
            if (same_row & (d < 0)).any():
                if not canonicalize:
                    pos = int(np.flatnonzero(same_row & (d < 0))[0])
                    raise FormatError(
                        f"column indices of row {int(row_of[pos])} are not sorted "
                        f"({int(idx[pos])} before {int(idx[pos + 1])}); pass canonicalize to sort them"
                    )
                order = np.lexsort((idx, row_of))
                csr = CSR(self.shape, self.indptr, self.indices[order], self.data[order])
                idx = csr.indices.astype(np.int64, copy=False)
                d = np.diff(idx)
            dup = same_row & (d == 0)
            if dup.any():
                pos = int(np.flatnonzero(dup)[0])
                raise FormatError(
                    f"duplicate entry ({int(row_of[pos])}, {int(idx[pos])}): duplicates are rejected, not summed"
                )
        return csr

    def astype(self, dtype) -> "CSR":
        return CSR(self.shape, self.indptr, self.indices, self.data.astype(dtype, copy=False))

    def with_index_dtype(self, dtype) -> "CSR":
        dtype = np.dtype(dtype)
        if dtype == np.int32 and max(self.m, self.k, self.nnz) > INT32_MAX:
            raise ResourceError(
                f"matrix {self.m}x{self.k} with {self.nnz} nonzeros does not fit int32 indices (max {INT32_MAX})"
            )
        return CSR(self.shape, self.indptr.astype(dtype, copy=False), self.indices.astype(dtype, copy=False), self.data)

    def to_scipy(self):
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def to_dense(self, dtype=None) -> np.ndarray:
        out = np.zeros(self.shape, dtype=dtype or self.dtype)
        rows = np.repeat(np.arange(self.m), self.row_lengths())
        out[rows, self.indices] = self.data
        return out

    @classmethod
    def from_scipy(cls, mat, canonicalize: bool = True) -> "CSR":
        """From any scipy.sparse matrix/array; the result is validated (duplicates rejected)."""
        import scipy.sparse as sp

        if not sp.issparse(mat):
            raise FormatError(f"expected a scipy.sparse matrix, got {type(mat).__name__}")
        if mat.dtype.kind not in "fiub":
            raise FormatError(f"values have dtype {mat.dtype}; expected real numbers")
        if mat.format == "coo":
            # COO -> CSR in scipy sums duplicate triplets silently; go through the triplets so the
            # duplicate policy (rejected) holds for Matrix Market and coo npz files too.
            return cls.from_coo_arrays(mat.shape, mat.row, mat.col, mat.data, canonicalize=canonicalize)
        csr = mat.tocsr()
        m, k = csr.shape
        nnz = csr.nnz
        it = index_dtype_for(m, k, nnz)
        data = csr.data
        if data.dtype not in VALUE_DTYPES:
            if data.dtype.kind not in "fiub":
                raise FormatError(f"values have dtype {data.dtype}; expected real numbers")
            data = data.astype(np.float64)
        return cls((m, k), csr.indptr.astype(it), csr.indices.astype(it), data).validate(canonicalize=canonicalize)

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "CSR":
        dense = np.asarray(dense)
        if dense.ndim != 2:
            raise FormatError(f"a dense matrix must be 2-D, got {dense.ndim}-D")
        rows, cols = np.nonzero(dense)
        m, k = dense.shape
        it = index_dtype_for(m, k, rows.size)
        indptr = np.zeros(m + 1, dtype=it)
        np.cumsum(np.bincount(rows, minlength=m), out=indptr[1:])
        vals = dense[rows, cols]
        if vals.dtype not in VALUE_DTYPES:
            vals = vals.astype(np.float64)
        return cls((m, k), indptr, cols.astype(it), vals)

    @classmethod
    def from_coo_arrays(cls, shape, rows, cols, vals, canonicalize: bool = True) -> "CSR":
        """Build from unordered triplets; range-checks before touching scipy (which does not check)."""
        m, k = _check_shape(shape)
        rows = np.asarray(rows)
        cols = np.asarray(cols)
        vals = np.asarray(vals)
        if not (rows.shape == cols.shape == vals.shape) or rows.ndim != 1:
            raise FormatError(f"triplet arrays differ in length: {rows.size} rows, {cols.size} cols, {vals.size} values")
        for name, arr in (("row", rows), ("column", cols)):
            if arr.dtype.kind not in "iu":  # a float index would be truncated silently by astype
                raise FormatError(f"{name} indices have dtype {arr.dtype}; expected integers")
        for name, arr, lim in (("row", rows, m), ("column", cols, k)):
            if arr.size and (arr.min() < 0 or arr.max() >= lim):
                bad = arr.min() if arr.min() < 0 else arr.max()
                raise FormatError(f"{name} index {int(bad)} is out of range for {lim} {name}s")
        it = index_dtype_for(m, k, rows.size)
        order = np.lexsort((cols, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows.astype(np.int64), minlength=m), out=indptr[1:])
        if vals.dtype not in VALUE_DTYPES:
            vals = vals.astype(np.float64)
        return cls((m, k), indptr.astype(it), cols.astype(it), vals).validate(canonicalize=canonicalize)


@dataclass(frozen=True, eq=False)
class COO:
    """Coordinate triplets, sorted by (row, col): the format of scatter kernels."""

    shape: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    data: np.ndarray

    def __post_init__(self):
        m, k = _check_shape(self.shape)
        object.__setattr__(self, "shape", (m, k))
        for name, arr in (("rows", self.rows), ("cols", self.cols)):
            _check_1d(name, arr, "iu")
        _check_1d("values", self.data, "f")
        _check_values(self.data)
        if not (self.rows.size == self.cols.size == self.data.size):
            raise FormatError(f"COO arrays differ in length: {self.rows.size}, {self.cols.size}, {self.data.size}")

    @property
    def nnz(self) -> int:
        return int(self.rows.size)

    @classmethod
    def from_csr(cls, a: CSR) -> "COO":
        rows = np.repeat(np.arange(a.m, dtype=a.indices.dtype), np.diff(a.indptr))
        return cls(a.shape, rows, a.indices.copy(), a.data.copy())


@dataclass(frozen=True, eq=False)
class CSC:
    """Compressed sparse columns: column j holds ``indices[indptr[j]:indptr[j+1]]`` (row indices)."""

    shape: tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    def __post_init__(self):
        m, k = _check_shape(self.shape)
        object.__setattr__(self, "shape", (m, k))
        _check_1d("indptr", self.indptr, "iu")
        _check_1d("indices", self.indices, "iu")
        _check_1d("values", self.data, "f")
        _check_values(self.data)
        if self.indptr.size != k + 1:
            raise FormatError(f"CSC indptr has {self.indptr.size} entries; expected {k + 1} (columns + 1)")
        if self.indices.size != self.data.size:
            raise FormatError(f"{self.indices.size} row indices but {self.data.size} values")

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    @classmethod
    def from_csr(cls, a: CSR) -> "CSC":
        """Stable counting-sort transpose: row indices stay sorted inside each column."""
        m, k = a.shape
        it = a.indices.dtype
        counts = np.bincount(a.indices.astype(np.int64), minlength=k)
        indptr = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        order = np.argsort(a.indices, kind="stable")
        rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(a.indptr))
        return cls(a.shape, indptr.astype(it), rows[order].astype(it), a.data[order])
