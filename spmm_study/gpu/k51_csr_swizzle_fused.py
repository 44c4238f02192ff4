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
The kernel is rung 15's own (``_rowvec.fused_kernel``): one row loop, the epilogue a compile-time switch, so
the two rungs cannot drift apart; the fewer than ``unroll`` nonzeros left at a row's end take the scalar path
(``scalar_tail``: 64 registers at the defaults instead of rung 15's loop's 72 with the epilogue).
Measured: no device time in the committed reference data (data/reference/ holds no row of this rung); checked
in the CUDA simulator and compiled to PTX for sm_90.
"""

import numpy as np

from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import ceil_div, device_arrays, device_csr, flat, kernel_prepared, longest_first, ptx_types
from spmm_study.gpu._rowvec import check_launch, fused_kernel
from spmm_study.gpu.device import gpu_unavailable_reason
from spmm_study.epilogue import ACT_CODE, RULE_CODE, epilogue_params, layer_problem
from spmm_study.registry import variant

kernel = fused_kernel  # rung 15's row loop with the epilogue switched on (gpu/_rowvec.py)


class FusedSwizzle:
    """One layer on the device, applied to any B (K×N device array) into C (M×N): what ``infer`` calls."""

    def __init__(self, a, bias, act="relu", rule="row", ymax=32.0, lanes=16, vec=4, tiles=2, unroll=4, threads=128):
        from numba import cuda

        self.m = a.m
        self.indptr, self.indices, self.data = device_csr(a)
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
    check_launch(problem.dtype, lanes, vec, unroll, threads)
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
