"""GPU rung 19's kernel (``gpu.csr.row_split``; its lesson is ``k19_csr_row_split.py``), kept here because rung
60 runs it on the im2col patch matrix and rung 50 is the same kernel with the layer epilogue switched on: each
row of A is split across ``warps`` warps, each lane holds ``vec`` columns of C, and the warps' partial sums
meet in shared memory before one store.

One row loop serves both: ``_body`` is an inline device function taking ``fuse``; ``kernel`` calls it with
``fuse=False`` and no epilogue arguments, ``fused_kernel`` with ``fuse=True`` and the bias and codes. ``fuse``
is a constant at each call site, so after inlining the compiler drops the branch it does not take: rung 19's
PTX has no epilogue instruction and rung 50's is rung 19's plus the epilogue (tests/test_gpu_ptx.py).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmm_study.gpu.device import bind_cuda, simulator

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def _body(vec: int, warps: int, unroll: int, dtype: str):
    bind_cuda(globals())
    from spmm_study.gpu._vec import vec_ops
    from spmm_study.gpu.epilogue import epilogue

    fma_vec, _, store_vec = vec_ops(vec)
    epi = epilogue(dtype)
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    width = 32 * vec
    red_size = warps * width  # a plain int: shared.array needs a compile-time size

    @cuda.jit(device=True, inline="always")
    def body(indptr, indices, data, bf, cf, n, bias, rule, act, ymax, fuse):
        red = cuda.shared.array(red_size, np_t)
        tid = cuda.threadIdx.x
        w_id = tid // 32
        lane = tid % 32
        i = cuda.blockIdx.x
        j = cuda.blockIdx.y * width + lane * vec
        wide = (n % vec) == 0 and j + vec <= n
        start = indptr[i]
        end = indptr[i + 1]
        seg = (end - start + warps - 1) // warps
        p = start + w_id * seg
        stop = min(end, p + seg)
        acc = cuda.local.array(vec, np_t)
        for u in range(vec):
            acc[u] = zero
        offs = cuda.local.array(unroll, np.int64)
        vals = cuda.local.array(unroll, np_t)
        while p + unroll <= stop:
            for u in range(unroll):
                offs[u] = indices[p + u] * n
                vals[u] = data[p + u]
            if wide:
                for u in range(unroll):
                    fma_vec(acc, 0, vals[u], bf, offs[u] + j)
            else:
                for u in range(unroll):
                    for c in range(vec):
                        if j + c < n:
                            acc[c] += vals[u] * bf[offs[u] + j + c]
            p += unroll
        while p < stop:
            off0 = indices[p] * n
            v0 = data[p]
            for c in range(vec):
                if j + c < n:
                    acc[c] += v0 * bf[off0 + j + c]
            p += 1
        base = w_id * width + lane * vec
        for c in range(vec):
            red[base + c] = acc[c]
        cuda.syncthreads()
        if w_id == 0:
            for c in range(vec):
                s = red[lane * vec + c]
                for w in range(1, warps):  # fixed order: the same bits every run
                    s += red[w * width + lane * vec + c]
                if fuse:  # rung 50: the layer epilogue in registers, before the one store
                    s = epi(s, bias[i], rule, act, ymax)
                acc[c] = s
            row = i * n
            if wide:
                store_vec(cf, row + j, acc, 0)
            else:
                for c in range(vec):
                    if j + c < n:
                        cf[row + j + c] = acc[c]

    return body


@lru_cache(maxsize=None)
def kernel(vec: int, warps: int, unroll: int, dtype: str):
    """Rung 19: C = A·B."""
    bind_cuda(globals())
    body = _body(vec, warps, unroll, dtype)
    no = np.int64(0)
    zero = np.dtype(dtype).type(0)

    @cuda.jit(cache=not simulator())
    def row_split(indptr, indices, data, bf, cf, n):
        body(indptr, indices, data, bf, cf, n, bf, no, no, zero, False)  # bf as the (unread) bias

    return row_split


@lru_cache(maxsize=None)
def fused_kernel(vec: int, warps: int, unroll: int, dtype: str):
    """Rung 50: C = act(A·B + bias), the epilogue codes of ``spmm_study.epilogue`` as arguments."""
    bind_cuda(globals())
    body = _body(vec, warps, unroll, dtype)

    @cuda.jit(cache=not simulator())
    def row_split_fused(indptr, indices, data, bf, cf, n, bias, rule, act, ymax):
        body(indptr, indices, data, bf, cf, n, bias, rule, act, ymax, True)

    return row_split_fused
