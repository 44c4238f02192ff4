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

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

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
