"""The register-tiled row kernel shared by rungs 13–15 (register tiling, subwarps, row swizzle) and, with the
layer epilogue switched on, rung 51 (the fused swizzle).

A *group* of ``lanes`` consecutive threads owns one row of A and one panel of
W = lanes·vec·tiles columns of C. Lane l keeps ``tiles``×``vec`` accumulators in registers, for columns
panel·W + t·lanes·vec + l·vec + (0..vec-1), t < tiles. For each nonzero (col, v) of the row — the same
address for the whole group, a broadcast load — it issues ``tiles`` loads of ``vec`` consecutive B values
(``vec``=4: one 16-byte ``ld.global.v4.f32`` through ``_vec.load4``) and tiles·vec multiply-adds.
A group of 32 lanes with vec=4 reads 512 contiguous bytes of a B row per load instruction.
``unroll``=U handles U nonzeros per iteration: U indices, then U·tiles independent B loads in flight
before the first FMA (measured on the H100, ffn_conv1 90%: unroll 1→2 took N=4096 from 266 to 224 µs).

Tails: a lane whose columns pass N, or any N not a multiple of ``vec`` (the 16-byte load would be
misaligned), takes the scalar path with bounds checks; empty rows store zeros; rows past M do nothing.
``order`` (optional) maps group g to row order[g] (the swizzle rung passes rows sorted by length).

The row loop is written once, as inline device functions (``row_parts``): ``kernel`` (rungs 13–15) and
``fused_kernel`` (rung 51) wrap it in one group's job (``_body``: its ``fuse`` is a constant at each call site,
so rung 15's PTX has no epilogue instruction); rung 18 runs it inside its persistent grid and rung 16 adds
its nonzeros with ``nonzero``. tests/test_gpu_ptx.py checks that rung 51 is rung 15 plus the epilogue.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmm_study.gpu._kit import bind_cuda
from spmm_study.gpu.device import simulator

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def row_parts(lanes: int, vec: int, tiles: int, unroll: int, dtype: str, scalar_tail: bool = False):
    """The row loop as three inline device functions, so the kernels below and rung 18's persistent grid run
    the same instructions: ``nonzero`` adds one nonzero (B row at offset off, value v) into the lane's
    ``tiles`` vec-groups; ``accumulate`` zeroes the accumulators and adds every nonzero of row i, ``unroll``
    at a time and then one by one; ``store`` writes them to C's row i. ``wide``: N % vec == 0 (aligned).

    ``scalar_tail`` (rungs 18 and 51, as they were written and measured): the fewer than ``unroll`` nonzeros
    left at the end of a row take the scalar path (4-byte loads) instead of ``nonzero``'s 16-byte one, and the
    unrolled loop runs even at unroll 1. The same sums in the same order; what changes is registers, not
    always the same way (ptxas 13.0, sm_90): rung 51 at its defaults uses 64 with it and 72 without (8
    resident blocks of 128 threads per SM instead of 7), at unroll 1 48 instead of 40; rung 18 at unroll
    2-8 the same either way."""
    bind_cuda(globals())

    from spmm_study.gpu._vec import vec_ops

    fma_vec, _, store_vec = vec_ops(vec)
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    nacc = tiles * vec
    step = lanes * vec  # columns between a lane's consecutive tiles

    @cuda.jit(device=True, inline="always")
    def nonzero(acc, off, v, bf, j0, n, wide):
        for t in range(tiles):
            j = j0 + t * step
            if wide and j + vec <= n:
                fma_vec(acc, t * vec, v, bf, off + j)
            else:
                for u in range(vec):
                    if j + u < n:
                        acc[t * vec + u] += v * bf[off + j + u]

    @cuda.jit(device=True, inline="always")
    def accumulate(indptr, indices, data, bf, n, i, j0, wide, acc):
        for q in range(nacc):
            acc[q] = zero
        start = indptr[i]
        end = indptr[i + 1]
        p = start
        if unroll > 1 or scalar_tail:
            # ``unroll`` nonzeros per iteration: their indices and values first, then all their B loads,
            # so the loads of several B rows are in flight before the first multiply-add needs one
            offs = cuda.local.array(unroll, np.int64)
            vals = cuda.local.array(unroll, np_t)
            while p + unroll <= end:
                for u in range(unroll):
                    offs[u] = indices[p + u] * n
                    vals[u] = data[p + u]
                for t in range(tiles):
                    j = j0 + t * step
                    if wide and j + vec <= n:
                        for u in range(unroll):
                            fma_vec(acc, t * vec, vals[u], bf, offs[u] + j)
                    else:
                        for u in range(unroll):
                            for w in range(vec):
                                if j + w < n:
                                    acc[t * vec + w] += vals[u] * bf[offs[u] + j + w]
                p += unroll
        while p < end:
            nonzero(acc, indices[p] * n, data[p], bf, j0, n, wide and not scalar_tail)
            p += 1

    @cuda.jit(device=True, inline="always")
    def store(cf, n, i, j0, wide, acc):
        row = i * n
        for t in range(tiles):
            j = j0 + t * step
            if wide and j + vec <= n:
                store_vec(cf, row + j, acc, t * vec)
            else:
                for u in range(vec):
                    if j + u < n:
                        cf[row + j + u] = acc[t * vec + u]

    return nonzero, accumulate, store


@lru_cache(maxsize=None)
def _body(lanes: int, vec: int, tiles: int, unroll: int, use_order: bool, dtype: str, scalar_tail: bool):
    """One group's whole job: find its row, accumulate, (``fuse``: the layer epilogue,) store. ``fuse`` is a
    constant at each call site, so the unfused kernel carries no epilogue instruction."""
    bind_cuda(globals())
    from spmm_study.gpu.epilogue import epilogue

    _, accumulate, store = row_parts(lanes, vec, tiles, unroll, dtype, scalar_tail)
    epi = epilogue(dtype)
    np_t = np.dtype(dtype).type
    nacc = tiles * vec
    width = lanes * vec * tiles  # columns of the panel

    @cuda.jit(device=True, inline="always")
    def body(indptr, indices, data, bf, cf, n, order, bias, rule, act, ymax, fuse):
        tid = cuda.threadIdx.x
        g = cuda.blockIdx.x * (cuda.blockDim.x // lanes) + tid // lanes
        lane = tid % lanes
        m = indptr.size - 1
        if g < m:
            i = order[g] if use_order else g
            j0 = cuda.blockIdx.y * width + lane * vec
            wide = (n % vec) == 0  # every lane's vec-group starts 16-byte aligned only if N % vec == 0
            acc = cuda.local.array(nacc, np_t)
            accumulate(indptr, indices, data, bf, n, i, j0, wide, acc)
            if fuse:  # rung 51: the layer epilogue in registers, before the same stores
                b = bias[i]
                for q in range(nacc):
                    acc[q] = epi(acc[q], b, rule, act, ymax)
            store(cf, n, i, j0, wide, acc)

    return body


@lru_cache(maxsize=None)
def kernel(lanes: int, vec: int, tiles: int, unroll: int, use_order: bool, dtype: str):
    """Rungs 13-15: C = A·B (``use_order``: group g takes row order[g], rung 15)."""
    bind_cuda(globals())
    body = _body(lanes, vec, tiles, unroll, use_order, dtype, False)
    no = np.int64(0)
    zero = np.dtype(dtype).type(0)

    @cuda.jit(cache=not simulator())
    def csr_rowvec(indptr, indices, data, bf, cf, n, order):
        body(indptr, indices, data, bf, cf, n, order, bf, no, no, zero, False)  # bf as the (unread) bias

    return csr_rowvec


@lru_cache(maxsize=None)
def fused_kernel(lanes: int, vec: int, tiles: int, unroll: int, dtype: str):
    """Rung 51: rung 15's kernel with C = act(A·B + bias), the epilogue codes of ``spmm_study.epilogue``."""
    bind_cuda(globals())
    body = _body(lanes, vec, tiles, unroll, True, dtype, True)  # row order, scalar tail

    @cuda.jit(cache=not simulator())
    def swizzle_fused(indptr, indices, data, bf, cf, n, order, bias, rule, act, ymax):
        body(indptr, indices, data, bf, cf, n, order, bias, rule, act, ymax, True)

    return swizzle_fused


def check_launch(dtype, lanes: int, vec: int, unroll: int, threads: int) -> None:
    """The values the row kernel is written for (ParamError otherwise)."""
    from spmm_study.errors import ParamError
    from spmm_study.gpu._kit import check_vec

    check_vec(vec, dtype)
    if lanes not in (1, 2, 4, 8, 16, 32):
        raise ParamError(f"lanes={lanes}: choose a power of two up to 32")
    if threads % lanes or threads > 1024:
        raise ParamError(f"threads={threads} must be a multiple of lanes={lanes} and at most 1024")
    if unroll not in (1, 2, 4, 8):
        raise ParamError(f"unroll={unroll}: choose 1, 2, 4 or 8")


def build_rowvec(problem, lanes: int, vec: int, tiles: int, unroll: int, threads: int, order=None):
    """Prepared for the row kernel; ``order`` (host int array of rows) or None."""
    from spmm_study.gpu._kit import ceil_div, cuda_module, device_arrays, flat, kernel_prepared

    check_launch(problem.dtype, lanes, vec, unroll, threads)
    cu = cuda_module()
    indptr, indices, data, b, c = device_arrays(problem)
    use_order = order is not None
    order_dev = cu.to_device(np.ascontiguousarray(order, dtype=np.int32) if use_order else np.zeros(1, np.int32))
    k = kernel(lanes, vec, tiles, unroll, use_order, problem.dtype.name)
    width = lanes * vec * tiles
    grid = (ceil_div(max(problem.m, 1), threads // lanes), ceil_div(problem.n, width))
    info = {"grid": list(grid), "block": [threads], "panel_cols": width}
    args = (indptr, indices, data, flat(b), flat(c), np.int64(problem.n), order_dev)
    return kernel_prepared([(k[grid, threads], args)], c, info, kernels=[("", k)],
                           keep=(indptr, indices, data, b, order_dev))
