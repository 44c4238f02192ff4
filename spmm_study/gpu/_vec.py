"""Wide loads and stores for numba-cuda: 8- and 16-byte accesses that numba does not emit by itself.

numba lowers ``b[i]`` on a float32 array to a 4-byte ``ld.global.f32``; even a complex64/complex128 view of
B is lowered field by field (two 4-byte or two 8-byte loads, read in the PTX on 2026-11-23). A warp that
reads 32×16 bytes in one instruction needs a quarter of the load instructions of the scalar version, and
the memory pipeline (LSU issue, L1 wavefronts) is what an SpMM that re-reads B from cache is bound by.
These intrinsics build the LLVM vector load directly: ``load4(a, i)`` returns ``(a[i], .., a[i+3])`` from a
1-D array as one ``ld.global.v4.f32`` (``ld.v4.f32`` on a generic pointer, e.g. shared memory). The caller
guarantees alignment: ``i`` a multiple of the width and the row length N a multiple of it too
(device allocations are 256-byte aligned).

Imported only from inside kernel factories (it imports numba.cuda). Under the simulator the same names
are plain Python functions with the same meaning, so kernels that use them run in CI.
"""

from __future__ import annotations

from functools import lru_cache

from spmm_study.gpu.device import simulator


def _python_ops():
    def load2(a, i):
        return a[i], a[i + 1]

    def load4(a, i):
        return a[i], a[i + 1], a[i + 2], a[i + 3]

    def store2(a, i, x, y):
        a[i] = x
        a[i + 1] = y

    def store4(a, i, x, y, z, w):
        a[i] = x
        a[i + 1] = y
        a[i + 2] = z
        a[i + 3] = w

    return load2, load4, store2, store4


def _intrinsic_ops():
    from llvmlite import ir
    from numba.cuda import types
    from numba.cuda.extending import intrinsic

    def vec_ptr(context, builder, aryty, ary_val, idx, width):
        ary = context.make_array(aryty)(context, builder, ary_val)
        ptr = builder.gep(ary.data, [idx])
        elem = context.get_data_type(aryty.dtype)
        vty = ir.VectorType(elem, width)
        # keep the pointer's address space (generic for global and, in numba, for shared arrays too)
        return builder.bitcast(ptr, vty.as_pointer(ptr.type.addrspace)), width * context.get_abi_sizeof(elem)

    def make_load(width):
        @intrinsic
        def load(typingctx, arr, idx):
            sig = types.UniTuple(arr.dtype, width)(arr, idx)

            def codegen(context, builder, sig, args):
                vptr, align = vec_ptr(context, builder, sig.args[0], args[0], args[1], width)
                v = builder.load(vptr, align=align)
                vals = [builder.extract_element(v, ir.IntType(32)(i)) for i in range(width)]
                return context.make_tuple(builder, sig.return_type, vals)

            return sig, codegen

        return load

    def store_codegen(width):
        def codegen(context, builder, sig, args):
            vptr, align = vec_ptr(context, builder, sig.args[0], args[0], args[1], width)
            elem = context.get_data_type(sig.args[0].dtype)
            v = ir.Constant(ir.VectorType(elem, width), ir.Undefined)
            for i in range(width):
                val = context.cast(builder, args[2 + i], sig.args[2 + i], sig.args[0].dtype)
                v = builder.insert_element(v, val, ir.IntType(32)(i))
            builder.store(v, vptr, align=align)
            return context.get_dummy_value()

        return codegen

    # explicit arities: numba's intrinsic lowering does not take *args
    @intrinsic
    def store2(typingctx, arr, idx, x, y):
        return types.void(arr, idx, x, y), store_codegen(2)

    @intrinsic
    def store4(typingctx, arr, idx, x, y, z, w):
        return types.void(arr, idx, x, y, z, w), store_codegen(4)

    return make_load(2), make_load(4), store2, store4


def smid_op():
    """``smid()``: the id of the SM the calling thread runs on (PTX %smid), for placement experiments.
    Under the simulator it returns 0."""
    if simulator():
        return lambda: 0
    from llvmlite import ir
    from numba.cuda import types
    from numba.cuda.extending import intrinsic

    @intrinsic
    def smid(typingctx):
        def codegen(context, builder, sig, args):
            fnty = ir.FunctionType(ir.IntType(32), [])
            fn = cgutils_get_or_insert(builder.module, fnty, "llvm.nvvm.read.ptx.sreg.smid")
            return builder.call(fn, [])

        return types.int32(), codegen

    return smid


def cgutils_get_or_insert(module, fnty, name):
    try:
        return module.get_global(name)
    except KeyError:
        from llvmlite import ir

        return ir.Function(module, fnty, name)


_OPS = None


def ops():
    """(load2, load4, store2, store4) for this process: intrinsics, or Python under the simulator."""
    global _OPS
    if _OPS is None:
        _OPS = _python_ops() if simulator() else _intrinsic_ops()
    return _OPS


def vec_ops(vec: int):
    """``(fma_vec, load_vec, store_vec)`` for groups of ``vec`` (1, 2 or 4) consecutive values, each one wide
    access (``load2``/``load4`` above) instead of the hand-unrolled 4/2/1 branches every kernel used to spell:

    * ``fma_vec(acc, q, v, src, i)``: ``acc[q + w] += v * src[i + w]`` for w < vec (one vec-wide load of src);
    * ``load_vec(dst, q, src, i)``: ``dst[q + w] = src[i + w]`` (one vec-wide load);
    * ``store_vec(dst, i, acc, q)``: ``dst[i + w] = acc[q + w]`` (one vec-wide store).

    ``acc``/``dst`` at ``q`` is a register array indexed by compile-time constants after unrolling, ``src``/``dst``
    at ``i`` a global or shared array (the caller guarantees the alignment, as for ``load4``). The helpers are
    device functions inlined into the kernel at numba's IR level (``inline="always"``): nothing is compiled for
    the current device on its own, so ``cuda.compile_ptx(kernel, sig, cc=(9, 0))`` works on a machine without
    a GPU, and the kernel's PTX is what the hand-written branches gave. Under the simulator they are plain
    Python functions with the same meaning."""
    return _vec_ops(int(vec))


@lru_cache(maxsize=None)
def _vec_ops(vec: int):
    if vec not in (1, 2, 4):
        raise ValueError(f"vec={vec}: 1, 2 or 4")
    load2, load4, store2, store4 = ops()
    from numba import cuda

    @cuda.jit(device=True, inline="always")
    def fma_vec(acc, q, v, src, i):
        if vec == 4:
            x, y, z, w = load4(src, i)
            acc[q] += v * x
            acc[q + 1] += v * y
            acc[q + 2] += v * z
            acc[q + 3] += v * w
        elif vec == 2:
            x, y = load2(src, i)
            acc[q] += v * x
            acc[q + 1] += v * y
        else:
            acc[q] += v * src[i]

    @cuda.jit(device=True, inline="always")
    def load_vec(dst, q, src, i):
        if vec == 4:
            x, y, z, w = load4(src, i)
            dst[q] = x
            dst[q + 1] = y
            dst[q + 2] = z
            dst[q + 3] = w
        elif vec == 2:
            x, y = load2(src, i)
            dst[q] = x
            dst[q + 1] = y
        else:
            dst[q] = src[i]

    @cuda.jit(device=True, inline="always")
    def store_vec(dst, i, acc, q):
        if vec == 4:
            store4(dst, i, acc[q], acc[q + 1], acc[q + 2], acc[q + 3])
        elif vec == 2:
            store2(dst, i, acc[q], acc[q + 1])
        else:
            dst[i] = acc[q]

    return fma_vec, load_vec, store_vec
