"""GPU rung 51 — the fused layer on the row-swizzle kernel (the large-N winner): C = act(A·B + bias).

What changed from rung 15 (``gpu.csr.swizzle``: groups of ``lanes`` threads per row, rows taken longest
first, ``tiles``×``vec`` accumulators per lane, ``unroll`` nonzeros' B loads in flight): when a lane's
accumulators are complete, the row's bias is added (every entry, or only where the sum is nonzero: the
Sparse DNN challenge's rule) and relu or relu clamped at ``ymax`` applied in registers (``gpu/epilogue.py``)
before the same 16-byte stores. One bias load per row per lane.
Loop order: (order[g], J)∥ → p → (t, v) → epi. Traffic: rung 15's plus M bias values; the unfused chain
adds 2·M·N values per layer (read and write C once more in an elementwise kernel). For the Sparse DNN
challenge at 60000 inputs (N = 60000, M = 1024) that is 0.5 GB per layer saved before dead inputs are
dropped.
Measured: no device time in the committed reference data (data/reference/ holds no row of this rung); checked
in the CUDA simulator and compiled to PTX for sm_90.
"""

from functools import lru_cache

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import (bind_cuda, ceil_div, check_vec, device_arrays, flat, kernel_prepared, longest_first,
                                 ptx_types)
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.epilogue import ACT_CODE, RULE_CODE, epilogue_params, layer_problem
from spmm_study.registry import variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(lanes: int, vec: int, tiles: int, unroll: int, dtype: str):
    bind_cuda(globals())
    from spmm_study.gpu.epilogue import epilogue
    from spmm_study.gpu._vec import vec_ops

    fma_vec, _, store_vec = vec_ops(vec)
    epi = epilogue(dtype)
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    nacc = tiles * vec
    step = lanes * vec
    width = lanes * vec * tiles

    @cuda.jit(cache=not simulator())
    def swizzle_fused(indptr, indices, data, bf, cf, n, order, bias, rule, act, ymax):
        tid = cuda.threadIdx.x
        g = cuda.blockIdx.x * (cuda.blockDim.x // lanes) + tid // lanes
        lane = tid % lanes
        m = indptr.size - 1
        if g >= m:
            return
        i = order[g]
        j0 = cuda.blockIdx.y * width + lane * vec
        wide = (n % vec) == 0
        acc = cuda.local.array(nacc, np_t)
        for q in range(nacc):
            acc[q] = zero
        p = indptr[i]
        end = indptr[i + 1]
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
            off0 = indices[p] * n
            v0 = data[p]
            for t in range(tiles):
                j = j0 + t * step
                for u in range(vec):
                    if j + u < n:
                        acc[t * vec + u] += v0 * bf[off0 + j + u]
            p += 1
        b = bias[i]
        for q in range(nacc):
            acc[q] = epi(acc[q], b, rule, act, ymax)  # the fused epilogue, in registers
        row = i * n
        for t in range(tiles):
            j = j0 + t * step
            if wide and j + vec <= n:
                store_vec(cf, row + j, acc, t * vec)
            else:
                for u in range(vec):
                    if j + u < n:
                        cf[row + j + u] = acc[t * vec + u]

    return swizzle_fused


class FusedSwizzle:
    """One layer on the device, applied to any B (K×N device array) into C (M×N): what ``infer`` calls."""

    def __init__(self, a, bias, act="relu", rule="row", ymax=32.0, lanes=16, vec=4, tiles=2, unroll=4, threads=128):
        from numba import cuda

        self.m = a.m
        self.indptr = cuda.to_device(np.ascontiguousarray(a.indptr))
        self.indices = cuda.to_device(np.ascontiguousarray(a.indices) if a.nnz else np.zeros(1, a.indices.dtype))
        self.data = cuda.to_device(np.ascontiguousarray(a.data) if a.nnz else np.zeros(1, a.dtype))
        self.order = cuda.to_device(longest_first(a.indptr))
        self.bias = cuda.to_device(np.ascontiguousarray(bias, dtype=a.dtype))
        self.codes = (np.int64(RULE_CODE[rule]), np.int64(ACT_CODE[act]), a.dtype.type(ymax))
        self.lanes, self.width, self.threads = lanes, lanes * vec * tiles, threads
        self.k = kernel(lanes, vec, tiles, unroll, a.dtype.name)

    def __call__(self, b_flat, c_flat, n: int) -> None:
        if n == 0 or self.m == 0:
            return
        grid = (ceil_div(self.m, self.threads // self.lanes), ceil_div(n, self.width))
        self.k[grid, self.threads](self.indptr, self.indices, self.data, b_flat, c_flat, np.int64(n), self.order,
                                   self.bias, *self.codes)


# the epilogue on empty rows, N tails and a dense row (the loop nest is rung 15's)
SIM = (({"lanes": 4, "vec": 4, "tiles": 2, "unroll": 2, "threads": 8, "act": "clamp", "bias": "row", "ymax": 1.0},
        ("empty_rows", "n_not_multiple_of_tile"), (9, 12)),
       ({"lanes": 2, "vec": 1, "tiles": 1, "unroll": 1, "threads": 8, "act": "relu", "bias": "nonzero"},
        ("one_dense_row", "1x1", "all_zero"), (3,)))


def ptx_cases():
    t = ptx_types()
    epi = (t.a1(t.f32), t.i64, t.i64, t.f32)  # bias, rule, act, ymax
    return [("swizzle_fused", kernel(16, 4, 2, 4, "float32"), (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64, t.a1(t.i32), *epi),
             16)]


@variant("gpu.csr.swizzle_fused", loop_order="(order[g],J)∥→p→(t,v)→epi",
         movement=models.csr_panel(lambda p: p["lanes"] * p["vec"] * p["tiles"]),
         params=(*gp.row_group(),
                 *epilogue_params()),
         available=gpu_unavailable_reason, problem_for=layer_problem, sim=SIM, ptx=ptx_cases)
def build(problem, lanes, vec, tiles, unroll, threads, act, bias, ymax):
    """Row swizzle with the layer epilogue fused: C = act(A·B + bias) stored once."""
    check_vec(vec, problem.dtype)
    if lanes not in (1, 2, 4, 8, 16, 32):
        raise ParamError(f"lanes={lanes}: choose a power of two up to 32")
    if threads % lanes or threads > 1024:
        raise ParamError(f"threads={threads} must be a multiple of lanes={lanes} and at most 1024")
    if unroll not in (1, 2, 4, 8):
        raise ParamError(f"unroll={unroll}: choose 1, 2, 4 or 8")
    from numba import cuda

    problem = layer_problem(problem, {"act": act, "bias": bias, "ymax": ymax})
    indptr, indices, data, b, c = device_arrays(problem)
    order = cuda.to_device(longest_first(problem.a.indptr))
    bias_dev = cuda.to_device(problem.bias)
    k = kernel(lanes, vec, tiles, unroll, problem.dtype.name)
    width = lanes * vec * tiles
    grid = (ceil_div(max(problem.m, 1), threads // lanes), ceil_div(problem.n, width))
    info = {"grid": list(grid), "block": [threads], "panel_cols": width, "act": act, "bias": bias}
    args = (indptr, indices, data, flat(b), flat(c), np.int64(problem.n), order, bias_dev,
            np.int64(RULE_CODE[bias]), np.int64(ACT_CODE[act]), problem.dtype.type(ymax))
    return kernel_prepared([(k[grid, threads], args)], c, info, kernels=[("", k)],
                           keep=(indptr, indices, data, b, order, bias_dev))
