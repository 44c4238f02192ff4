"""Explicit SIMD vectors for the every-N rungs: one 64-byte vector (16 fp32 / 8 fp64 lanes) per call.

Rung 13 writes ``for j in range(TN): acc[j] += v * brow[j]`` and leaves the vectors to LLVM's loop
vectoriser. That works for TN ≥ 64 but not below (LLVM fully unrolls a 16- or 32-trip loop before the
vectoriser runs, and the SLP vectoriser does not rebuild the vectors: scalar FMAs, 5–7× slower), and a width
that is not a multiple of the tile falls back to a row-wise loop through memory. Here the vector is spelled
out in LLVM IR, so the width of a register tile is any number ``Q`` of vectors and the last vector of a row
may be partial:

* ``vzero(acc, slot)`` / ``vfma(acc, slot, bptr, q, v)`` / ``vstore(cptr, q, acc, slot)``: vector ``slot``
  of the stack accumulator ``acc`` (an ``alloca`` from ``_simd.stack_empty``) is zeroed, gets
  ``v · bptr[qL : qL+L]`` added with one fused multiply-add, or is stored to ``cptr[qL : qL+L]``. ``slot``
  and ``q`` come from ``range`` loops with compile-time trip counts: LLVM unrolls them, the offsets become
  constants and SROA promotes the accumulator vectors to registers.
* ``vfma_mask(acc, slot, bptr, q, v, count)`` / ``vstore_mask(cptr, q, acc, slot, count)``: the same for a
  vector of which only the lanes l with ``q·L + l < count`` are inside the row (``llvm.masked.load``/``masked.store``:
  AVX-512 ``{k}``-masked moves). Masked-off lanes of B are never read (no fault past the end of B) and
  masked-off lanes of C are never written, so no padded copy of B or C is needed for any N.

The caller guarantees the pointers and the lanes it asks for lie inside the arrays (validated CSR indices
and ``count`` = columns left in the row do).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from spmm_study.cpu._simd import ALIGN, aligned_empty
from spmm_study.movement import Bytes, Shape
from spmm_study.registry import Param


VECTOR_BYTES = 64  # one zmm register


def lanes(dtype) -> int:
    """Elements per 64-byte vector for a numpy dtype (16 for float32, 8 for float64)."""
    import numpy as np

    return VECTOR_BYTES // np.dtype(dtype).itemsize


def _vec_type(context, ptr_type):
    elem = context.get_value_type(ptr_type.dtype)
    n = VECTOR_BYTES // (4 if isinstance(elem, ir.FloatType) else 8)
    return elem, ir.VectorType(elem, n), n


def _vec_ptr(builder, base, offset, vty):
    return builder.bitcast(builder.gep(base, [offset]), vty.as_pointer())


def _is_fptr(t) -> bool:
    return isinstance(t, types.CPointer) and isinstance(t.dtype, types.Float)


def _mask(builder, n, q, count):
    """<n x i1>: lane l is on when q·n + l < count."""
    i64 = ir.IntType(64)
    start = builder.mul(builder.sext(q, i64) if q.type.width < 64 else q, ir.Constant(i64, n))
    left = builder.sub(builder.sext(count, i64) if count.type.width < 64 else count, start)
    splat = builder.insert_element(ir.Constant(ir.VectorType(i64, n), None), left, ir.Constant(ir.IntType(32), 0))
    splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(ir.IntType(32), n), None))
    lanes_ = ir.Constant(ir.VectorType(i64, n), list(range(n)))
    return builder.icmp_signed("<", lanes_, splat)


def _vname(vty) -> str:
    return f"v{vty.count}{'f32' if isinstance(vty.element, ir.FloatType) else 'f64'}"


def _masked_load(builder, ptr, vty, mask):
    fnty = ir.FunctionType(vty, [ptr.type, ir.IntType(32), mask.type, vty])
    fn = builder.module.declare_intrinsic(f"llvm.masked.load.{_vname(vty)}.p0", fnty=fnty)
    return builder.call(fn, [ptr, ir.Constant(ir.IntType(32), 4), mask, ir.Constant(vty, None)])


def _masked_store(builder, value, ptr, mask):
    fnty = ir.FunctionType(ir.VoidType(), [value.type, ptr.type, ir.IntType(32), mask.type])
    fn = builder.module.declare_intrinsic(f"llvm.masked.store.{_vname(value.type)}.p0", fnty=fnty)
    builder.call(fn, [value, ptr, ir.Constant(ir.IntType(32), 4), mask])


def _splat(builder, value, vty, n):
    v = builder.insert_element(ir.Constant(vty, None), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), n), None))


def _fma(builder, a, b, c, vty):
    fn = builder.module.declare_intrinsic(f"llvm.fma.{_vname(vty)}", fnty=ir.FunctionType(vty, [vty, vty, vty]))
    return builder.call(fn, [a, b, c])


def _offset(builder, q, n):
    i64 = ir.IntType(64)
    q64 = builder.sext(q, i64) if q.type.width < 64 else q
    return builder.mul(q64, ir.Constant(i64, n))


@intrinsic
def vzero(typingctx, acc, q):
    """acc[qL : qL+L] = 0."""
    if not _is_fptr(acc) or not isinstance(q, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        _, vty, n = _vec_type(context, sig.args[0])
        builder.store(ir.Constant(vty, None), _vec_ptr(builder, args[0], _offset(builder, args[1], n), vty), align=4)
        return context.get_dummy_value()

    return types.void(acc, q), codegen


@intrinsic
def vfma(typingctx, acc, slot, bptr, q, v):
    """acc[slot·L : slot·L+L] += v · bptr[qL : qL+L] (one fused multiply-add, one rounding)."""
    if not (_is_fptr(acc) and _is_fptr(bptr) and acc.dtype == bptr.dtype and isinstance(slot, types.Integer)
            and isinstance(q, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        elem, vty, n = _vec_type(context, sig.args[0])
        pa = _vec_ptr(builder, args[0], _offset(builder, args[1], n), vty)
        b = builder.load(_vec_ptr(builder, args[2], _offset(builder, args[3], n), vty), align=4)
        v = context.cast(builder, args[4], sig.args[4], sig.args[0].dtype)
        builder.store(_fma(builder, _splat(builder, v, vty, n), b, builder.load(pa, align=4), vty), pa, align=4)
        return context.get_dummy_value()

    return types.void(acc, slot, bptr, q, v), codegen


@intrinsic
def vfma_mask(typingctx, acc, slot, bptr, q, v, count):
    """vfma on the lanes l with qL + l < count; the other lanes of B are not read (their acc lanes get v·0)."""
    if not (_is_fptr(acc) and _is_fptr(bptr) and acc.dtype == bptr.dtype and isinstance(slot, types.Integer)
            and isinstance(q, types.Integer) and isinstance(count, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        elem, vty, n = _vec_type(context, sig.args[0])
        pa = _vec_ptr(builder, args[0], _offset(builder, args[1], n), vty)
        pb = _vec_ptr(builder, args[2], _offset(builder, args[3], n), vty)
        b = _masked_load(builder, pb, vty, _mask(builder, n, args[3], args[5]))
        v = context.cast(builder, args[4], sig.args[4], sig.args[0].dtype)
        builder.store(_fma(builder, _splat(builder, v, vty, n), b, builder.load(pa, align=4), vty), pa, align=4)
        return context.get_dummy_value()

    return types.void(acc, slot, bptr, q, v, count), codegen


@intrinsic
def vstore(typingctx, cptr, q, acc, slot):
    """cptr[qL : qL+L] = acc[slot·L : slot·L+L]."""
    if not (_is_fptr(acc) and _is_fptr(cptr) and acc.dtype == cptr.dtype and isinstance(q, types.Integer)
            and isinstance(slot, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _, vty, n = _vec_type(context, sig.args[2])
        value = builder.load(_vec_ptr(builder, args[2], _offset(builder, args[3], n), vty), align=4)
        builder.store(value, _vec_ptr(builder, args[0], _offset(builder, args[1], n), vty), align=4)
        return context.get_dummy_value()

    return types.void(cptr, q, acc, slot), codegen


@intrinsic
def vstore_mask(typingctx, cptr, q, acc, slot, count):
    """vstore on the lanes l with qL + l < count only (the rest of C is not touched)."""
    if not (_is_fptr(acc) and _is_fptr(cptr) and acc.dtype == cptr.dtype and isinstance(q, types.Integer)
            and isinstance(slot, types.Integer) and isinstance(count, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _, vty, n = _vec_type(context, sig.args[2])
        value = builder.load(_vec_ptr(builder, args[2], _offset(builder, args[3], n), vty), align=4)
        _masked_store(builder, value, _vec_ptr(builder, args[0], _offset(builder, args[1], n), vty),
                      _mask(builder, n, args[1], args[4]))
        return context.get_dummy_value()

    return types.void(cptr, q, acc, slot, count), codegen


@intrinsic
def vload(typingctx, acc, slot, cptr, q):
    """acc[slot·L : slot·L+L] = cptr[qL : qL+L] (a partial sum of C read back into registers)."""
    if not (_is_fptr(acc) and _is_fptr(cptr) and acc.dtype == cptr.dtype and isinstance(slot, types.Integer)
            and isinstance(q, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _, vty, n = _vec_type(context, sig.args[0])
        value = builder.load(_vec_ptr(builder, args[2], _offset(builder, args[3], n), vty), align=4)
        builder.store(value, _vec_ptr(builder, args[0], _offset(builder, args[1], n), vty), align=4)
        return context.get_dummy_value()

    return types.void(acc, slot, cptr, q), codegen


@intrinsic
def vload_mask(typingctx, acc, slot, cptr, q, count):
    """vload on the lanes l with qL + l < count; the other lanes of C are not read (their acc lanes get 0)."""
    if not (_is_fptr(acc) and _is_fptr(cptr) and acc.dtype == cptr.dtype and isinstance(slot, types.Integer)
            and isinstance(q, types.Integer) and isinstance(count, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _, vty, n = _vec_type(context, sig.args[0])
        pc = _vec_ptr(builder, args[2], _offset(builder, args[3], n), vty)
        value = _masked_load(builder, pc, vty, _mask(builder, n, args[3], args[4]))
        builder.store(value, _vec_ptr(builder, args[0], _offset(builder, args[1], n), vty), align=4)
        return context.get_dummy_value()

    return types.void(acc, slot, cptr, q, count), codegen


# ----------------------------------------------------------------------------------------------- the every-N rungs' plan
# What rungs 14 (``k14_csr_vec``), 15, 16 and 17 share besides the vectors: how a row of C is cut into
# register tiles, the copy of B into padded rows, the traffic model, the Params and the dtype check.

MAX_VECTORS = (4, 8, 12, 16)


def tile_plan(n: int, lane_count: int, max_vectors: int) -> tuple[int, int, int, bool]:
    """(Q, Qt, main_columns, masked): ``main_columns // (Q·L)`` tiles of Q full vectors, then one tile of Qt
    vectors whose last one is masked when N is not a multiple of the lane count."""
    n = max(int(n), 1)
    vectors = -(-n // lane_count)
    tiles = -(-vectors // max_vectors)
    q = -(-vectors // tiles)
    qt = vectors - (tiles - 1) * q
    return q, qt, (tiles - 1) * q * lane_count, n % lane_count != 0


@njit(parallel=True, cache=True)
def copy_into(dst, src):
    """dst[:, :N] = src, rows split across the threads (the copy is per call: serial, it would cap 2-thread
    scaling by Amdahl's law)."""
    n = src.shape[1]
    for r in prange(src.shape[0]):
        for j in range(n):
            dst[r, j] = src[r, j]


def rows_misaligned(b: np.ndarray, lane_count: int) -> bool:
    """Whether some row of B does not start on a 64-byte boundary (N mod ``lane_count`` != 0 or the buffer is
    misaligned): then ``pack_b`` copies B in every call."""
    return b.shape[1] % lane_count != 0 or int(b.ctypes.data % ALIGN) != 0


def padded_operand(b: np.ndarray, lane_count: int, pad: bool):
    """(array the kernel reads, refresh, info) for B. With ``pad`` and a B whose rows do not all start on a
    64-byte boundary (N not a multiple of 16 fp32, or a misaligned buffer), B is copied in every call into a
    64-byte-aligned buffer whose rows are padded to a multiple of 16 columns with zeros: every vector load of B
    then touches one cache line (a split load costs 1.4×, notes-cpu.md §1 try 5) and needs no mask. The
    padding columns are zeroed once and never written; their results are never stored."""
    k, n = b.shape
    ld = -(-max(n, 1) // lane_count) * lane_count
    offset = int(b.ctypes.data % ALIGN)
    info = {"b_offset_bytes": offset, "ldb": n, "b_packed": False}
    if not pad or not rows_misaligned(b, lane_count):
        return b, (lambda: None), info
    buf = aligned_empty((k, ld), b.dtype)
    buf[:, n:] = 0
    info.update(ldb=ld, b_packed=True)
    return buf, (lambda: copy_into(buf, b)), info


MAX_VECTORS_PARAM = Param("max_vectors", 16, MAX_VECTORS, "most 64-byte vectors of a row of C in registers per "
                          "tile (16 = 256 fp32 columns); tiles are then cut to equal widths for this N", minimum=1,
                          maximum=64)
PACK_B_PARAM = Param("pack_b", True, (True, False), "copy B in each call into a 64-byte-aligned buffer with rows "
                     "padded to 16 fp32 when its rows are not all aligned (N mod 16 != 0 or a misaligned buffer; "
                     "timed)")


def traffic(s: Shape, params: dict) -> Bytes:
    """A (values + indices) once per column tile, one row segment of B per nonzero per tile (nnz·N values in
    all), C written once; with ``pack_b``, when B's rows do not all start on a 64-byte boundary (N not a
    multiple of 16 fp32, or a misaligned buffer: ``padded_operand``), the copy of B into padded rows (read K·N,
    write K·ldb values) — only then. Rungs 15 and 16 use this model without these Params: theirs are the
    Params' own defaults (read from the Params, not repeated)."""
    params = {p.name: p.default for p in (MAX_VECTORS_PARAM, PACK_B_PARAM)} | dict(params)
    lane_count = 64 // s.value_bytes
    q, qt, main, _ = tile_plan(s.n, lane_count, params["max_vectors"])
    tiles = main // (q * lane_count) + 1
    ld = -(-max(s.n, 1) // lane_count) * lane_count
    copied = params["pack_b"] and not (s.b_aligned and ld == s.n)
    pack = s.k * (s.n + ld) * s.value_bytes if copied else 0
    return Bytes(tiles * s.nnz * (s.value_bytes + s.index_bytes) + (s.m + 1) * s.index_bytes,
                 s.nnz * s.n * s.value_bytes + pack, s.m * s.n * s.value_bytes)


def check_dtype(dtype) -> None:
    from spmm_study.errors import ParamError

    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ParamError(f"explicit-vector rungs support float32 and float64, not {np.dtype(dtype)}")
