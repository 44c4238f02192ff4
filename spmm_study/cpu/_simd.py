"""Helpers the register-blocked kernels share: a fixed-size accumulator on the stack, raw row views, the tile's
store and the tail's start, B packing, and the two Params they have in common (``tile_n``, ``pack_b``), made
here once.

Numba has no local fixed-size arrays: ``np.empty`` inside a kernel is a heap allocation that LLVM must
assume may alias B and C, so every ``acc[j] += v * b[k, j]`` would load and store ``acc`` through memory.
``stack_empty(size, dtype)`` returns a pointer to an ``alloca`` of a compile-time-constant ``size`` in the
function's entry block; wrapped with ``numba.carray`` it indexes like an array, and after the j-loop is
vectorised and unrolled LLVM's SROA pass promotes it to vector registers (16 zmm registers for 256 fp32).
``size`` must be a compile-time constant (a global or closure constant in the calling kernel), otherwise
the intrinsic refuses to type.

``store_tile`` and ``zeroed_tail`` are ``inline="always"``: numba pastes them into each kernel before typing,
so rungs 13, 30 and 32 compile to the same instructions as when each wrote these loops out (compared
mnemonic for mnemonic, tile_n 64 and 256, 2026-12-08). Numba's on-disk cache checks only a kernel's own
file: after editing anything here, touch the kernel files that use it (or clear their ``__pycache__``).
"""

import numba
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from spmm_study.problem import ALIGN, aligned_empty  # noqa: F401  (one allocator for the project; tests use it)
from spmm_study.registry import Param


# The most values a kernel may keep in one ``stack_empty`` array (its tile_n, max_vectors·16...): 4096 fp64 is
# 32 KiB, far inside any thread's stack (numba's workqueue and OpenMP threads get 2-8 MiB). A larger tile holds
# nothing in registers any more, and ``-p tile_n=2100000`` (16 MiB of fp64) overflowed the stack: a segfault.
MAX_STACK_VALUES = 4096


@intrinsic
def stack_empty(typingctx, size, dtype):
    """Pointer to ``size`` uninitialised elements of ``dtype`` on the stack (``size`` a literal int)."""
    if not isinstance(size, types.IntegerLiteral) or not isinstance(dtype, (types.DType, types.NumberClass)):
        return None
    count = size.literal_value
    if not 0 < count <= MAX_STACK_VALUES:  # the Params stop this first; a kernel's own constant must obey it too
        raise ValueError(f"stack_empty({count}): past the {MAX_STACK_VALUES} values a thread's stack safely holds")
    elem = dtype.dtype

    def codegen(context, builder, sig, args):
        ty = context.get_value_type(elem)
        return cgutils.alloca_once(builder, ty, size=context.get_constant(types.intp, count))

    return types.CPointer(elem)(size, dtype), codegen


@intrinsic
def elem_ptr(typingctx, arr, offset):
    """Pointer to element ``offset`` of a C-contiguous array's data (no bounds or wraparound checks).

    ``numba.carray(elem_ptr(b, k * n + j0), TN)`` is a fixed-size view of a row segment. Taking the same
    segment as a slice, ``b[k, j0:j0 + TN]``, makes numba clamp the slice bounds and wrap a possibly negative
    ``k`` on every call: about 20 scalar instructions per nonzero next to the 16 FMAs that do the work.
    The caller guarantees ``0 <= offset`` and ``offset + TN <= arr.size`` (validated CSR indices do)."""
    if not isinstance(arr, types.Array) or arr.layout != "C" or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.gep(ary.data, [args[1]])

    return types.CPointer(arr.dtype)(arr, offset), codegen


@njit(inline="always")
def store_tile(c, i, n, j0, acc, tn):
    """``C[i, j0:j0 + tn] = acc``: a row's register tile stored once, through a fixed-size view of C's row (C is
    row-major with ``n`` columns; ``tn`` is the caller's compile-time constant). Inlined into the kernel."""
    crow = numba.carray(elem_ptr(c, np.int64(i) * n + j0), tn)
    for j in range(tn):
        crow[j] = acc[j]


@njit(inline="always")
def zeroed_tail(c, i, n_full, n):
    """Row i's last ``n - n_full`` columns (fewer than a tile) zeroed, and that view of C: the tail accumulates
    in C itself, not in registers. Inlined into the kernel."""
    ctail = c[i, n_full:n]
    for j in range(n - n_full):
        ctail[j] = 0.0
    return ctail


def packed_operand(b: np.ndarray, pack: bool):
    """(array the kernel reads, refresh function, info) for B. A 64-byte vector load of a misaligned B row
    segment spans two cache lines (1.37x slower, notes-cpu.md). ``Problem`` hands out 64-byte-aligned B, so
    this is a no-op there; a B from elsewhere (numpy gives 16-byte alignment) is copied into an aligned buffer
    by ``refresh()``, which the variant calls at the start of every run (timed: B is an input)."""
    offset = int(b.ctypes.data % ALIGN)
    info = {"b_offset_bytes": offset, "b_packed": bool(pack and offset)}
    if not info["b_packed"]:
        return b, (lambda: None), info
    buf = aligned_empty(b.shape, b.dtype)
    return buf, (lambda: np.copyto(buf, b)), info


def tile_n_param(choices: tuple = (16, 64, 256)) -> Param:
    """Columns of C a register-blocked rung keeps in registers per row (default 256: N = 256 in one pass)."""
    return Param("tile_n", 256, choices, "columns of C held in registers per row (a compile-time constant: one "
                 "kernel per value)", minimum=1, maximum=MAX_STACK_VALUES)


def pack_b_param() -> Param:
    """Whether a misaligned B is copied to a 64-byte-aligned buffer in each call (``packed_operand``)."""
    return Param("pack_b", True, (True, False), "copy B into a 64-byte-aligned buffer in each call when it is not "
                 "aligned (the copy is timed)")
