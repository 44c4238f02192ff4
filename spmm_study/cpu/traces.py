"""Address traces of the CPU kernels' loop nests, for the cache simulator (``spmm_study.cachesim``).

Each generator replays one kernel's loop nest — the same loops, in the same order, as the ``@njit`` function
in ``spmm_study/cpu/`` — and records the byte address of every array element the source reads or writes, in
Python's evaluation order (``c[i, j] += v * b[col, j]`` reads C, then B, then writes C). Scalars the source
keeps in locals (``acc``, ``v``) and the register accumulator of the tiled kernels are not memory accesses.
tests/test_cachesim.py runs each kernel's own Python source (``py_func``) on recording arrays and checks
that the trace below is *exactly* that sequence, on tiny inputs.

Simplifications, stated: a parallel kernel is traced as its loop nest on one thread (rows in order); the
tiled kernels' optional copy of B into an aligned buffer (``pack_b``) is not traced; a trace never
includes the instruction stream (``cpu.csr.codegen`` puts A's indices there: no trace).

Arrays get page-aligned base addresses one page apart (``Layout``), as a fresh allocation would. Every
generator writes its accesses with the four recording steps below (``_rec``, ``_read2``, ``_update``,
``_zero``), so each reads as the statement of the kernel it replays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from spmm_study.cachesim import MAX_ACCESSES
from spmm_study.errors import ParamError, ResourceError

PAGE = 4096
ORDERS = ("ijk", "ikj", "jik", "jki", "kij", "kji")


@dataclass
class Layout:
    """Base address and element size of each array a kernel touches."""

    bases: dict
    sizes: dict

    @classmethod
    def synthetic(cls, arrays: dict[str, tuple[int, int]]) -> "Layout":
        """``{name: (elements, itemsize)}`` laid out page-aligned, one empty page between arrays."""
        bases, sizes, at = {}, {}, PAGE
        for name, (count, isz) in arrays.items():
            bases[name] = at
            sizes[name] = isz
            at += -(-max(1, count) * isz // PAGE) * PAGE + PAGE
        return cls(bases, sizes)

    @classmethod
    def of(cls, **arrays: np.ndarray) -> "Layout":
        """The real addresses of numpy arrays (tests compare against a recording of the kernel)."""
        return cls({k: int(v.ctypes.data) for k, v in arrays.items()}, {k: int(v.itemsize) for k, v in arrays.items()})

    def b(self, name: str) -> int:
        return self.bases[name]

    def s(self, name: str) -> int:
        return self.sizes[name]


def _alloc(count: int):
    if count > MAX_ACCESSES:
        raise ResourceError(f"a trace of {count:,} accesses is past the simulator's {MAX_ACCESSES:,}: simulate a smaller problem")
    return np.empty(count, np.int64), np.empty(count, np.uint8)


# ---------------------------------------------------------------------------------------------- recording
# Each takes the trace (``out`` addresses, ``w`` 1 for a store) and the next free slot ``t``, and returns the
# slot after what it wrote. inline="always": pasted into each generator before typing (no call per access).


@njit(inline="always")
def _rec(out, w, t, addr, write):
    """One access: ``addr`` loaded (``write`` 0) or stored (1)."""
    out[t] = addr
    w[t] = write
    return t + 1


@njit(inline="always")
def _read2(out, w, t, first, second):
    """Two loads in order: ``indptr[i]`` then ``indptr[i + 1]``, or a nonzero's index then its value."""
    out[t] = first
    w[t] = 0
    out[t + 1] = second
    w[t + 1] = 0
    return t + 2


@njit(inline="always")
def _update(out, w, t, dst, src):
    """``c[...] += v * x[...]`` in Python's order: load the C element, load the operand, store the C element."""
    out[t] = dst
    w[t] = 0
    out[t + 1] = src
    w[t + 1] = 0
    out[t + 2] = dst
    w[t + 2] = 1
    return t + 3


@njit(inline="always")
def _zero(out, w, t, base, count, va):
    """``c[...] = 0.0`` over ``count`` consecutive elements of ``va`` bytes from address ``base``: stores only."""
    for q in range(count):
        out[t] = base + q * va
        w[t] = 1
        t += 1
    return t


# ------------------------------------------------------------------------------------------- dense orders


@njit(cache=True)
def _dense_order(code, m, k, n, ba, bb, bc, va, out, w):
    """code: 0 ijk, 1 ikj, 2 jik, 3 jki, 4 kij, 5 kji (see spmm_study/cpu/k02_dense_order.py)."""
    t = 0
    if code == 0 or code == 2:
        outer = m if code == 0 else n
        mid = n if code == 0 else m
        for x in range(outer):
            for y in range(mid):
                i = x if code == 0 else y
                j = y if code == 0 else x
                for p in range(k):
                    t = _read2(out, w, t, ba + (i * k + p) * va, bb + (p * n + j) * va)
                t = _rec(out, w, t, bc + (i * n + j) * va, 1)
        return t
    t = _zero(out, w, t, bc, m * n, va)  # c[:, :] = 0.0
    if code == 1 or code == 4:  # ikj / kij: v = a[i, p]; c[i, j] += v * b[p, j]
        o1 = m if code == 1 else k
        o2 = k if code == 1 else m
        for x in range(o1):
            for y in range(o2):
                i = x if code == 1 else y
                p = y if code == 1 else x
                t = _rec(out, w, t, ba + (i * k + p) * va, 0)
                for j in range(n):
                    t = _update(out, w, t, bc + (i * n + j) * va, bb + (p * n + j) * va)
        return t
    # jki / kji: v = b[p, j]; c[i, j] += a[i, p] * v
    o1 = n if code == 3 else k
    o2 = k if code == 3 else n
    for x in range(o1):
        for y in range(o2):
            j = x if code == 3 else y
            p = y if code == 3 else x
            t = _rec(out, w, t, bb + (p * n + j) * va, 0)
            for i in range(m):
                t = _update(out, w, t, bc + (i * n + j) * va, ba + (i * k + p) * va)
    return t


def dense_order(m: int, k: int, n: int, order: str, itemsize: int = 4, layout: Layout | None = None):
    if order not in ORDERS:
        raise ParamError(f"order {order!r} is not one of {', '.join(ORDERS)}")
    layout = layout or Layout.synthetic({"a": (m * k, itemsize), "b": (k * n, itemsize), "c": (m * n, itemsize)})
    code = ORDERS.index(order)
    if code in (0, 2):
        count = m * n * (2 * k + 1)
    elif code in (1, 4):
        count = m * n + m * k * (1 + 3 * n)
    else:
        count = m * n + n * k * (1 + 3 * m)
    out, w = _alloc(count)
    got = _dense_order(code, m, k, n, layout.b("a"), layout.b("b"), layout.b("c"), itemsize, out, w)
    assert got == count
    return out, w


@njit(cache=True)
def _dense_tiled(m, k, n, ti, tk, tj, ba, bb, bc, va, out, w):
    t = _zero(out, w, 0, bc, m * n, va)
    for i0 in range(0, m, ti):
        i1 = min(i0 + ti, m)
        for k0 in range(0, k, tk):
            k1 = min(k0 + tk, k)
            for j0 in range(0, n, tj):
                j1 = min(j0 + tj, n)
                for i in range(i0, i1):
                    for p in range(k0, k1):
                        t = _rec(out, w, t, ba + (i * k + p) * va, 0)
                        for j in range(j0, j1):
                            t = _update(out, w, t, bc + (i * n + j) * va, bb + (p * n + j) * va)
    return t


def dense_tiled(m: int, k: int, n: int, tile_i: int, tile_k: int, tile_j: int, itemsize: int = 4,
                layout: Layout | None = None):
    layout = layout or Layout.synthetic({"a": (m * k, itemsize), "b": (k * n, itemsize), "c": (m * n, itemsize)})
    count = m * n + m * k * (-(-n // tile_j)) + 3 * m * k * n
    out, w = _alloc(count)
    got = _dense_tiled(m, k, n, tile_i, tile_k, tile_j, layout.b("a"), layout.b("b"), layout.b("c"), itemsize, out, w)
    assert got == count
    return out, w


# ---------------------------------------------------------------------------------------------- CSR & co


def _csr_layout(a, n, itemsize, layout, extra=()):
    return layout or Layout.synthetic({
        "indptr": (a.indptr.size, a.indptr.itemsize), "indices": (a.indices.size, a.indices.itemsize),
        "data": (a.data.size, itemsize), "b": (a.k * n, itemsize), "c": (a.m * n, itemsize), **dict(extra)})


@njit(cache=True)
def _csr_rowwise(indptr, indices, n, bp, sp, bi, si, bd, vd, bb, bc, va, out, w):
    t = 0
    m = indptr.size - 1
    for i in range(m):
        t = _zero(out, w, t, bc + i * n * va, n, va)
        t = _read2(out, w, t, bp + i * sp, bp + (i + 1) * sp)
        for p in range(indptr[i], indptr[i + 1]):
            col = indices[p]
            t = _read2(out, w, t, bi + p * si, bd + p * vd)
            for j in range(n):
                t = _update(out, w, t, bc + (i * n + j) * va, bb + (col * n + j) * va)
    return t


def csr_rowwise(a, n: int, itemsize: int = 4, layout: Layout | None = None):
    """cpu.csr.rowwise (i→p→j): zero C's row, then per nonzero a row of B into the row of C."""
    lay = _csr_layout(a, n, itemsize, layout)
    count = a.m * (n + 2) + a.nnz * (2 + 3 * n)
    out, w = _alloc(count)
    got = _csr_rowwise(a.indptr, a.indices, n, lay.b("indptr"), lay.s("indptr"), lay.b("indices"), lay.s("indices"),
                       lay.b("data"), itemsize, lay.b("b"), lay.b("c"), itemsize, out, w)
    assert got == count
    return out, w


@njit(cache=True)
def _csr_dot(indptr, indices, n, bp, sp, bi, si, bd, vd, bb, bc, va, out, w):
    t = 0
    m = indptr.size - 1
    for i in range(m):
        t = _read2(out, w, t, bp + i * sp, bp + (i + 1) * sp)
        for j in range(n):
            for p in range(indptr[i], indptr[i + 1]):
                t = _read2(out, w, t, bd + p * vd, bi + p * si)
                t = _rec(out, w, t, bb + (indices[p] * n + j) * va, 0)
            t = _rec(out, w, t, bc + (i * n + j) * va, 1)
    return t


def csr_dot(a, n: int, itemsize: int = 4, layout: Layout | None = None):
    """cpu.csr.dot (i→j→p): the row's nonzeros once per output column, B down a column."""
    lay = _csr_layout(a, n, itemsize, layout)
    count = 2 * a.m + 3 * a.nnz * n + a.m * n
    out, w = _alloc(count)
    got = _csr_dot(a.indptr, a.indices, n, lay.b("indptr"), lay.s("indptr"), lay.b("indices"), lay.s("indices"),
                   lay.b("data"), itemsize, lay.b("b"), lay.b("c"), itemsize, out, w)
    assert got == count
    return out, w


@njit(cache=True)
def _csr_tiled(rows, indptr, indices, n, tn, br, sr, bp, sp, bi, si, bd, vd, bb, bc, va, out, w):
    t = 0
    n_full = n - n % tn
    for r in range(rows.size):
        t = _rec(out, w, t, br + r * sr, 0)
        i = rows[r]
        t = _read2(out, w, t, bp + i * sp, bp + (i + 1) * sp)
        for j0 in range(0, n_full, tn):
            for p in range(indptr[i], indptr[i + 1]):
                t = _read2(out, w, t, bd + p * vd, bi + p * si)
                col = indices[p]
                for j in range(tn):
                    t = _rec(out, w, t, bb + (col * n + j0 + j) * va, 0)
            for j in range(tn):  # the register tile stored
                t = _rec(out, w, t, bc + (i * n + j0 + j) * va, 1)
        if n_full < n:  # the tail, accumulated in C
            t = _zero(out, w, t, bc + (i * n + n_full) * va, n - n_full, va)
            t = _read2(out, w, t, bp + i * sp, bp + (i + 1) * sp)
            for p in range(indptr[i], indptr[i + 1]):
                t = _read2(out, w, t, bd + p * vd, bi + p * si)
                col = indices[p]
                for j in range(n_full, n):
                    t = _update(out, w, t, bc + (i * n + j) * va, bb + (col * n + j) * va)
    return t


def csr_tiled(a, n: int, tile_n: int, itemsize: int = 4, layout: Layout | None = None, rows: np.ndarray | None = None):
    """cpu.csr.tiled (i→j0→p→j): per row and column tile, tile_n values of B per nonzero into registers,
    the C tile written once; the tail (N mod tile_n columns) accumulates in C itself."""
    if tile_n < 1:
        raise ParamError(f"tile_n {tile_n} must be >= 1")
    rows = np.arange(a.m, dtype=np.int64) if rows is None else rows
    lay = _csr_layout(a, n, itemsize, layout, extra={"rows": (rows.size, rows.itemsize)})
    n_full = n - n % tile_n
    tiles, tail = n_full // tile_n, n - n_full
    count = 3 * a.m + tiles * (a.nnz * (2 + tile_n) + a.m * tile_n)
    if tail:
        count += a.m * (tail + 2) + a.nnz * (2 + 3 * tail)
    out, w = _alloc(count)
    got = _csr_tiled(rows, a.indptr, a.indices, n, tile_n, lay.b("rows"), lay.s("rows"), lay.b("indptr"), lay.s("indptr"),
                     lay.b("indices"), lay.s("indices"), lay.b("data"), itemsize, lay.b("b"), lay.b("c"), itemsize, out, w)
    assert got == count
    return out, w


@njit(cache=True)
def _coo(rows, cols, m, n, br, sr, bcol, scol, bd, vd, bb, bc, va, out, w):
    t = _zero(out, w, 0, bc, m * n, va)
    for p in range(rows.size):
        t = _read2(out, w, t, br + p * sr, bcol + p * scol)
        t = _rec(out, w, t, bd + p * vd, 0)
        i = rows[p]
        kk = cols[p]
        for j in range(n):
            t = _update(out, w, t, bc + (i * n + j) * va, bb + (kk * n + j) * va)
    return t


def coo_scatter(coo, n: int, itemsize: int = 4, layout: Layout | None = None):
    """cpu.coo.scatter (p→j): zero C, then per triplet a row of B added into a row of C."""
    m, k = coo.shape
    lay = layout or Layout.synthetic({"rows": (coo.rows.size, coo.rows.itemsize), "cols": (coo.cols.size, coo.cols.itemsize),
                                      "data": (coo.data.size, itemsize), "b": (k * n, itemsize), "c": (m * n, itemsize)})
    nnz = coo.rows.size
    count = m * n + nnz * (3 + 3 * n)
    out, w = _alloc(count)
    got = _coo(coo.rows, coo.cols, m, n, lay.b("rows"), lay.s("rows"), lay.b("cols"), lay.s("cols"), lay.b("data"), itemsize,
               lay.b("b"), lay.b("c"), itemsize, out, w)
    assert got == count
    return out, w


@njit(cache=True)
def _csc(indptr, indices, m, n, bp, sp, bi, si, bd, vd, bb, bc, va, out, w):
    t = _zero(out, w, 0, bc, m * n, va)
    for kk in range(indptr.size - 1):
        t = _read2(out, w, t, bp + kk * sp, bp + (kk + 1) * sp)
        for p in range(indptr[kk], indptr[kk + 1]):
            t = _read2(out, w, t, bi + p * si, bd + p * vd)
            i = indices[p]
            for j in range(n):
                t = _update(out, w, t, bc + (i * n + j) * va, bb + (kk * n + j) * va)
    return t


def csc_outer(csc, n: int, itemsize: int = 4, layout: Layout | None = None):
    """cpu.csc.outer (k→p→j): zero C, then per column of A its row of B scattered into rows of C."""
    m, k = csc.shape
    lay = layout or Layout.synthetic({"indptr": (csc.indptr.size, csc.indptr.itemsize),
                                      "indices": (csc.indices.size, csc.indices.itemsize),
                                      "data": (csc.data.size, itemsize), "b": (k * n, itemsize), "c": (m * n, itemsize)})
    nnz = csc.indices.size
    count = m * n + 2 * k + nnz * (2 + 3 * n)
    out, w = _alloc(count)
    got = _csc(csc.indptr, csc.indices, m, n, lay.b("indptr"), lay.s("indptr"), lay.b("indices"), lay.s("indices"),
               lay.b("data"), itemsize, lay.b("b"), lay.b("c"), itemsize, out, w)
    assert got == count
    return out, w


@njit(cache=True)
def _bsr(indptr, indices, m, k, n, br_, bc_, bp, sp, bi, si, bd, vd, bb, bc, va, out, w):
    t = 0
    for blk_row in range(indptr.size - 1):
        r0 = blk_row * br_
        r1 = min(r0 + br_, m)
        t = _zero(out, w, t, bc + r0 * n * va, (r1 - r0) * n, va)  # c[r0:r1, :] = 0.0
        t = _read2(out, w, t, bp + blk_row * sp, bp + (blk_row + 1) * sp)
        for q in range(indptr[blk_row], indptr[blk_row + 1]):
            t = _rec(out, w, t, bi + q * si, 0)
            k0 = indices[q] * bc_
            k1 = min(k0 + bc_, k)
            for rr in range(r1 - r0):
                for cc in range(k1 - k0):
                    t = _rec(out, w, t, bd + ((q * br_ + rr) * bc_ + cc) * vd, 0)
                    for j in range(n):
                        t = _update(out, w, t, bc + ((r0 + rr) * n + j) * va, bb + ((k0 + cc) * n + j) * va)
    return t


def bsr(b_mat, n: int, itemsize: int = 4, layout: Layout | None = None):
    """cpu.bsr.rowwise (I→q→r→c→j): per block row zero C's rows, then every stored block's values (zeros
    filled in) each scale a row of B into a row of C."""
    m, k = b_mat.shape
    br, bc = b_mat.br, b_mat.bc
    lay = layout or Layout.synthetic({"indptr": (b_mat.indptr.size, b_mat.indptr.itemsize),
                                      "indices": (b_mat.indices.size, b_mat.indices.itemsize),
                                      "data": (b_mat.data.size, itemsize), "b": (k * n, itemsize), "c": (m * n, itemsize)})
    nblk_rows = b_mat.indptr.size - 1
    # every block: one index read, then per (rr, cc) inside the matrix one value and 3n accesses
    rows_in = np.minimum(br, m - np.repeat(np.arange(nblk_rows) * br, np.diff(b_mat.indptr)))
    cols_in = np.minimum(bc, k - b_mat.indices.astype(np.int64) * bc)
    cells = int((rows_in * cols_in).sum())
    count = m * n + 2 * nblk_rows + b_mat.indices.size + cells * (1 + 3 * n)
    out, w = _alloc(count)
    got = _bsr(b_mat.indptr, b_mat.indices, m, k, n, br, bc, lay.b("indptr"), lay.s("indptr"), lay.b("indices"),
               lay.s("indices"), lay.b("data"), itemsize, lay.b("b"), lay.b("c"), itemsize, out, w)
    assert got == count
    return out, w


# ------------------------------------------------------------------------------------------ by variant id

TRACED = {
    "cpu.dense.naive": "dense_order", "cpu.dense.order": "dense_order", "cpu.dense.tiled": "dense_tiled",
    "cpu.dense.tiled_par": "dense_tiled", "cpu.csr.rowwise": "csr_rowwise", "cpu.csr.rowwise_par": "csr_rowwise",
    "cpu.csr.dot": "csr_dot", "cpu.csr.tiled": "csr_tiled", "cpu.coo.scatter": "coo_scatter",
    "cpu.coo.par": "coo_scatter", "cpu.csc.outer": "csc_outer", "cpu.bsr.rowwise": "bsr",
}


def for_variant(variant_id: str, a, n: int, params: dict, itemsize: int = 4):
    """The trace of ``variant_id``'s loop nest on CSR ``a`` with N columns, or None when there is none
    (BLAS and library baselines, SELL, 2:4, code generation: their access pattern is not in Python here)."""
    kind = TRACED.get(variant_id)
    if kind is None:
        return None
    if kind == "dense_order":
        order = params.get("order", "ijk") if variant_id == "cpu.dense.order" else "ijk"
        return dense_order(a.m, a.k, n, order, itemsize)
    if kind == "dense_tiled":
        return dense_tiled(a.m, a.k, n, params.get("tile_i", 64), params.get("tile_k", 64), params.get("tile_j", 256), itemsize)
    if kind == "csr_rowwise":
        return csr_rowwise(a, n, itemsize)
    if kind == "csr_dot":
        return csr_dot(a, n, itemsize)
    if kind == "csr_tiled":
        return csr_tiled(a, n, params.get("tile_n", 256), itemsize)
    if kind == "coo_scatter":
        from spmm_study.formats import COO

        return coo_scatter(COO.from_csr(a), n, itemsize)
    if kind == "csc_outer":
        from spmm_study.formats import CSC

        return csc_outer(CSC.from_csr(a), n, itemsize)
    from spmm_study.formats import BSR

    return bsr(BSR.from_csr(a, params.get("br", 4), params.get("bc", 4)), n, itemsize)
