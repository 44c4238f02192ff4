"""GPU rung 19 — row split: the warps of a block share one row, each taking a slice of its nonzeros.

A block of ``warps`` warps owns one row i and one panel of 32·vec columns. Warp w takes the w-th contiguous
slice of the row's nonzeros, accumulates its partial sums in registers with the unrolled 16-byte-load loop
of rungs 13–15, and writes them to shared memory; after one barrier the first warp adds the ``warps``
partials in a fixed order and stores C (deterministic: no atomics).
Loop order: (i, J-panel)∥ → w∥ → p in slice → (vec); then Σ_w.

What changed from rung 15: a row's nonzeros are no longer one serial chain per group. For short matrices
with long rows (ffn_conv2: 512 rows of ~410 nonzeros at 80%) rung 15 has only 512 groups per panel, each
walking hundreds of nonzeros; here each row is walked by ``warps`` chains of len/warps, so there are more
loads in flight — at the price of a barrier and a small shared-memory reduction per (row, panel).
Traffic: as rung 13 (one B row segment per nonzero, A once per panel, C once) plus warps·32·vec·4 bytes of
shared memory per block.
Measured (H100, fp32, cold L2): it is the N=256 rung — ffn_conv2 80%, N=256: 36.6 µs (8 warps) against
121 µs for rung 15 and 26.8 µs for cuBLAS; ffn_conv1 90%, N=256: 24.0 µs (4 warps), cuBLAS 25.2, torch's
cuSPARSE 22.7; it won 58 of the 60 N=256 DLMC benchmark problems. At N=4096 it does not help (ffn_conv2
80%: 390 µs against 404 for rung 15): more chains in flight do not cut the B re-reads that bound it there.
"""

from functools import lru_cache

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import bind_cuda, ceil_div, check_vec, device_arrays, flat, kernel_prepared, ptx_types
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(vec: int, warps: int, unroll: int, dtype: str):
    bind_cuda(globals())
    from spmm_study.gpu._vec import vec_ops

    fma_vec, _, store_vec = vec_ops(vec)
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    width = 32 * vec
    red_size = warps * width  # a plain int: shared.array needs a compile-time size

    @cuda.jit(cache=not simulator())
    def row_split(indptr, indices, data, bf, cf, n):
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
                acc[c] = s
            row = i * n
            if wide:
                store_vec(cf, row + j, acc, 0)
            else:
                for c in range(vec):
                    if j + c < n:
                        cf[row + j + c] = acc[c]

    return row_split


SIM = (({"warps": 2, "vec": 4, "unroll": 2}, SIM_SMALL, (6, 8)),
       ({"warps": 3, "vec": 2, "unroll": 4}, ("one_dense_row", "n_not_multiple_of_tile"), (64, 5)))


def ptx_cases():
    t = ptx_types()
    return [("row_split", kernel(4, 4, 4, "float32"), (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64), 16)]


@variant("gpu.csr.row_split", loop_order="(i,J)∥→w∥→p→v; Σw",
         movement=models.csr_panel(lambda p: 32 * p["vec"]),
         params=(gp.warps(4, (2, 4, 8), "warps sharing one row (slices of its nonzeros)"),
                 gp.vec(help="B values per load; panel = 32·vec columns"),
                 gp.unroll()),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, warps, vec, unroll):
    """CSR row split: the warps of a block take slices of one row, partial sums reduced in shared memory."""
    check_vec(vec, problem.dtype)
    if warps < 1 or warps > 32:
        raise ParamError(f"warps={warps}: choose 1..32")
    if unroll not in (1, 2, 4, 8):
        raise ParamError(f"unroll={unroll}: choose 1, 2, 4 or 8")
    if problem.n > 32 * vec * 65535:
        raise ParamError(f"N={problem.n} needs more than 65535 column panels of {32 * vec}")
    indptr, indices, data, b, c = device_arrays(problem)
    k = kernel(vec, warps, unroll, problem.dtype.name)
    grid = (max(problem.m, 1), ceil_div(problem.n, 32 * vec))
    info = {"grid": list(grid), "block": [32 * warps], "smem_reduce_bytes": warps * 32 * vec * problem.dtype.itemsize}
    return kernel_prepared([(k[grid, 32 * warps], (indptr, indices, data, flat(b), flat(c), np.int64(problem.n)))],
                           c, info, kernels=[("", k)], keep=(indptr, indices, data, b))
