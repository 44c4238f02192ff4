"""Sparse formats as plain bundles of numpy arrays (docs/ARCHITECTURE.md §3): CSR (canonical), COO and CSC.

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
VALUE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what loaders produce
# what a problem may hold (spmm_study/dtypes.py): also float16, bfloat16 (its numpy kind is 'V') and int8
COMPUTE_DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16", "int8")


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


def _set_shape(fmt) -> tuple[int, int]:
    """Check a format's shape and store it as a tuple of two ints (the dataclasses are frozen)."""
    m, k = _check_shape(fmt.shape)
    object.__setattr__(fmt, "shape", (m, k))
    return m, k


def _check_1d(name: str, arr: np.ndarray, kinds: str) -> None:
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        raise FormatError(f"{name} must be a 1-D numpy array")
    if arr.dtype.kind not in kinds:
        raise FormatError(f"{name} has dtype {arr.dtype}; expected {'integers' if kinds == 'iu' else 'floats'}")


def _check_values(data: np.ndarray) -> None:
    if data.dtype.name not in COMPUTE_DTYPE_NAMES or data.dtype.kind not in "fiV":
        raise FormatError(f"values have dtype {data.dtype}; expected one of {', '.join(COMPUTE_DTYPE_NAMES)}")


def _check_finite(data: np.ndarray) -> None:
    finite = np.isfinite(data)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise FormatError(f"{bad.size} values are NaN or Inf (first at position {int(bad[0])}: {data[bad[0]]})")


def _check_compressed(fmt, lines: int, line_name: str, index_name: str, prefix: str = "") -> None:
    """The cheap checks CSR and CSC share (the same format, rows and columns swapped): 1-D integer offsets and
    indices, the values, one offset per line plus one, one index per value."""
    _check_1d("indptr", fmt.indptr, "iu")
    _check_1d("indices", fmt.indices, "iu")
    _check_1d("values", fmt.data, "fiV")
    _check_values(fmt.data)
    if fmt.indptr.size != lines + 1:
        raise FormatError(f"{prefix}indptr has {fmt.indptr.size} entries; expected {lines + 1} ({line_name} + 1)")
    if fmt.indices.size != fmt.data.size:
        raise FormatError(f"{fmt.indices.size} {index_name} indices but {fmt.data.size} values")


@dataclass(frozen=True, eq=False)
class CSR:
    """Compressed sparse rows: row i holds ``indices[indptr[i]:indptr[i+1]]`` with ``data`` alongside."""

    shape: tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    def __post_init__(self):
        m, k = _set_shape(self)
        _check_compressed(self, m, "rows", "column")
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
        m, k = _set_shape(self)
        for name, arr in (("rows", self.rows), ("cols", self.cols)):
            _check_1d(name, arr, "iu")
        _check_1d("values", self.data, "fiV")
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
        m, k = _set_shape(self)
        _check_compressed(self, k, "columns", "row", prefix="CSC ")

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


# ------------------------------------------------------------------------------ formats of the CPU ladder
# Padded and structured formats. Each holds numpy arrays only, checks its lengths cheaply at construction
# and converts from CSR (``from_csr``); the conversion is what a variant's ``build`` times as setup.


@dataclass(frozen=True, eq=False)
class SELL:
    """SELL-C-σ (sliced ELLPACK): rows sorted by length inside windows of σ rows (``perm``), cut into slices of
    C rows; every row of a slice is padded to the slice's longest row. Slice s holds ``widths[s]`` columns
    of C entries each, stored column-major from ``slice_ptr[s]``: entry (row r of the slice, column w) is at
    ``slice_ptr[s] + w*C + r``. Padding has value 0 and column index 0 (a valid row of B, so no branch).
    ELLPACK is the special case C = M, σ = 1."""

    shape: tuple[int, int]
    c: int
    sigma: int
    perm: np.ndarray        # perm[q] = original row stored at position q (length M)
    slice_ptr: np.ndarray   # nslices + 1 offsets into cols/data
    widths: np.ndarray      # nslices
    cols: np.ndarray
    data: np.ndarray
    nnz: int

    def __post_init__(self):
        m, k = _set_shape(self)
        for name, arr in (("perm", self.perm), ("slice_ptr", self.slice_ptr), ("widths", self.widths),
                          ("cols", self.cols)):
            _check_1d(name, arr, "iu")
        _check_1d("values", self.data, "f")
        nslices = -(-m // self.c) if self.c > 0 else 0
        if self.c < 1 or self.sigma < 1:
            raise FormatError(f"SELL needs C >= 1 and sigma >= 1, got C={self.c} sigma={self.sigma}")
        if self.perm.size != m or self.widths.size != nslices or self.slice_ptr.size != nslices + 1:
            raise FormatError(f"SELL arrays: perm {self.perm.size} (expected {m}), widths {self.widths.size} and "
                              f"slice_ptr {self.slice_ptr.size} (expected {nslices} and {nslices + 1})")
        if self.cols.size != self.data.size or int(self.slice_ptr[-1]) != self.data.size:
            raise FormatError(f"SELL holds {self.cols.size} columns and {self.data.size} values; slice_ptr ends "
                              f"at {int(self.slice_ptr[-1])}")

    @property
    def stored(self) -> int:
        return int(self.data.size)

    @property
    def padding(self) -> float:
        """Stored entries per nonzero (1.0 = no padding)."""
        return self.stored / self.nnz if self.nnz else 1.0

    @classmethod
    def from_csr(cls, a: CSR, c: int = 8, sigma: int = 1) -> "SELL":
        m, k = a.shape
        if c < 1 or sigma < 1:
            raise FormatError(f"SELL needs C >= 1 and sigma >= 1, got C={c} sigma={sigma}")
        it = a.indices.dtype
        lens = a.row_lengths()
        perm = np.arange(m, dtype=np.int64)
        if sigma > 1:  # sort by length, longest first, inside each window of sigma rows
            for w0 in range(0, m, sigma):
                win = perm[w0:w0 + sigma]
                perm[w0:w0 + sigma] = win[np.argsort(-lens[win], kind="stable")]
        nslices = -(-m // c)
        plens = np.zeros(nslices * c, dtype=np.int64)
        plens[:m] = lens[perm]
        widths = plens.reshape(nslices, c).max(axis=1) if nslices else np.zeros(0, np.int64)
        slice_ptr = np.zeros(nslices + 1, dtype=np.int64)
        np.cumsum(widths * c, out=slice_ptr[1:])
        total = int(slice_ptr[-1])
        if max(total, m, k) > INT32_MAX:
            raise ResourceError(f"SELL-{c}-{sigma} of this matrix stores {total} entries; past int32 offsets")
        cols = np.zeros(total, dtype=it)
        data = np.zeros(total, dtype=a.dtype)
        # position of every nonzero: its row's slot q = position in perm; slice q // c, lane q % c, column w
        inv = np.empty(m, dtype=np.int64)
        inv[perm] = np.arange(m)
        row_of = np.repeat(np.arange(m, dtype=np.int64), lens)
        w = np.arange(a.nnz, dtype=np.int64) - np.repeat(a.indptr[:-1].astype(np.int64), lens)
        q = inv[row_of]
        pos = slice_ptr[q // c] + w * c + q % c
        cols[pos] = a.indices
        data[pos] = a.data
        return cls((m, k), int(c), int(sigma), perm.astype(it), slice_ptr.astype(it), widths.astype(it), cols, data,
                   a.nnz)


@dataclass(frozen=True, eq=False)
class BSR:
    """Block sparse rows with br×bc dense blocks: block row I holds blocks ``indptr[I]:indptr[I+1]``, block
    column ``indices[q]`` and values ``data[q]`` (br×bc, zeros filled in). The grid covers ceil(M/br) ×
    ceil(K/bc) blocks; blocks on the bottom and right edges are cut by the kernel (rows >= M, columns >= K
    hold zeros and are never touched)."""

    shape: tuple[int, int]
    br: int
    bc: int
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray  # (nblocks, br, bc)
    nnz: int

    def __post_init__(self):
        m, k = _set_shape(self)
        if self.br < 1 or self.bc < 1:
            raise FormatError(f"BSR blocks must be at least 1x1, got {self.br}x{self.bc}")
        _check_1d("indptr", self.indptr, "iu")
        _check_1d("indices", self.indices, "iu")
        mb = -(-m // self.br)
        if self.indptr.size != mb + 1:
            raise FormatError(f"BSR indptr has {self.indptr.size} entries; expected {mb + 1} (block rows + 1)")
        if self.data.ndim != 3 or self.data.shape[1:] != (self.br, self.bc) or self.data.shape[0] != self.indices.size:
            raise FormatError(f"BSR data has shape {self.data.shape}; expected ({self.indices.size}, {self.br}, {self.bc})")

    @property
    def blocks(self) -> int:
        return int(self.indices.size)

    @property
    def fill(self) -> float:
        """Stored values per nonzero (1.0 = every block full)."""
        return self.blocks * self.br * self.bc / self.nnz if self.nnz else 1.0

    @classmethod
    def from_csr(cls, a: CSR, br: int = 4, bc: int = 4, max_fill: float = 64.0) -> "BSR":
        m, k = a.shape
        if br < 1 or bc < 1:
            raise FormatError(f"BSR blocks must be at least 1x1, got {br}x{bc}")
        it = a.indices.dtype
        mb, kb = -(-m // br), -(-k // bc)
        rows = np.repeat(np.arange(m, dtype=np.int64), a.row_lengths())
        cols = a.indices.astype(np.int64)
        keys = (rows // br) * kb + cols // bc
        uniq, inv = np.unique(keys, return_inverse=True)
        stored = uniq.size * br * bc
        if a.nnz and stored > max_fill * a.nnz:
            raise ResourceError(f"BSR {br}x{bc} would store {stored} values for {a.nnz} nonzeros "
                                f"({stored / a.nnz:.0f}x, limit {max_fill:g}x)")
        data = np.zeros((uniq.size, br, bc), dtype=a.dtype)
        data[inv, rows % br, cols % bc] = a.data
        indptr = np.zeros(mb + 1, dtype=np.int64)
        np.cumsum(np.bincount(uniq // kb, minlength=mb), out=indptr[1:])
        return cls((m, k), int(br), int(bc), indptr.astype(it), (uniq % kb).astype(it), data, a.nnz)


@dataclass(frozen=True, eq=False)
class NM24:
    """2:4 structured sparsity, compressed as sparse tensor cores store it: every group of 4 consecutive columns
    of a row keeps at most 2 entries, so a row holds exactly G = ceil(K/4) groups × 2 slots. ``data`` is M × 2G
    (zeros fill slots of groups with fewer than 2 entries); ``meta`` packs the 2-bit position (0..3) of each
    slot inside its group, four slots per byte (slot s in bits 2·(s%4)..2·(s%4)+1 of byte s//4): M × ceil(2G/4).
    A padding slot points at a column that exists (position 0, or the group's other column)."""

    shape: tuple[int, int]
    data: np.ndarray  # (M, 2G)
    meta: np.ndarray  # (M, ceil(2G/4)) uint8
    nnz: int

    def __post_init__(self):
        m, k = _set_shape(self)
        groups = -(-k // 4)
        if self.data.shape != (m, 2 * groups):
            raise FormatError(f"2:4 values have shape {self.data.shape}; expected {(m, 2 * groups)}")
        if self.meta.dtype != np.uint8 or self.meta.shape != (m, -(-2 * groups // 4)):
            raise FormatError(f"2:4 metadata has shape {self.meta.shape} {self.meta.dtype}; expected "
                              f"{(m, -(-2 * groups // 4))} uint8")

    @staticmethod
    def violation(a: CSR) -> str | None:
        """None when every group of 4 consecutive columns of every row holds at most 2 entries, else one line
        naming the first group that holds more (what ``from_csr`` refuses with)."""
        m, k = a.shape
        groups = -(-k // 4)
        rows = np.repeat(np.arange(m, dtype=np.int64), a.row_lengths())
        counts = np.bincount(rows * groups + a.indices.astype(np.int64) // 4, minlength=m * groups) if a.nnz \
            else np.zeros(m * groups, np.int64)
        if counts.size and counts.max() > 2:
            bad = int(np.argmax(counts > 2))
            r, gg = divmod(bad, groups)
            return (f"matrix is not 2:4: row {r}, columns {4 * gg}..{min(4 * gg + 3, k - 1)} hold "
                    f"{int(counts[bad])} nonzeros (prune with --prune 2:4 or use synthetic:nm)")
        return None

    @classmethod
    def from_csr(cls, a: CSR) -> "NM24":
        """Compress; a FormatError (the variant's SKIP) names the first group holding more than 2 entries."""
        reason = cls.violation(a)
        if reason:
            raise FormatError(reason)
        m, k = a.shape
        groups = -(-k // 4)
        rows = np.repeat(np.arange(m, dtype=np.int64), a.row_lengths())
        cols = a.indices.astype(np.int64)
        g = cols // 4
        key = rows * groups + g
        # slot of each nonzero inside its group: 0 for the first, 1 for the second (CSR rows are sorted), and a
        # lone entry at position q >= 1 goes to slot 1 behind a padding zero at position 0: the two positions
        # of a group stay distinct and ascending, as mma.sp's metadata requires
        first = np.ones(a.nnz, dtype=bool)
        first[1:] = key[1:] != key[:-1]
        slot = np.where(first, 0, 1)
        lone = np.bincount(key, minlength=m * groups)[key] == 1 if a.nnz else np.zeros(0, bool)
        slot[lone & (cols % 4 > 0)] = 1
        pos = np.zeros((m, 2 * groups), dtype=np.uint8)
        # padding slots: position 0 in slot 0, position 1 in slot 1 (a lone entry at 0 is followed by a zero at 1)
        pos[:, 1::2] = 1
        data = np.zeros((m, 2 * groups), dtype=a.dtype)
        flat = g * 2 + slot
        data[rows, flat] = a.data
        pos[rows, flat] = (cols % 4).astype(np.uint8)
        # the padding position of a last partial group must stay below K
        if k % 4:
            last = groups - 1
            for s in (0, 1):
                col = pos[:, 2 * last + s].astype(np.int64) + 4 * last
                over = col >= k
                pos[over, 2 * last + s] = 0
        nslots = 2 * groups
        padded = np.zeros((m, -(-nslots // 4) * 4), dtype=np.uint8)
        padded[:, :nslots] = pos
        quads = padded.reshape(m, -1, 4).astype(np.uint8)
        meta = (quads[:, :, 0] | (quads[:, :, 1] << 2) | (quads[:, :, 2] << 4) | (quads[:, :, 3] << 6)).astype(np.uint8)
        return cls((m, k), data, np.ascontiguousarray(meta), a.nnz)
