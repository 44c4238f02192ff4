"""GPU rung 50 — the fused layer on the row-split kernel: C = act(A·B + bias), epilogue in registers.

What changed from rung 19 (``gpu.csr.row_split``, the N = 256 winner on the H100): after the first warp has
added the ``warps`` partial sums of its (row, panel) in the fixed order, it adds the row's bias (every entry,
or only where the sum is nonzero: the Sparse DNN challenge's rule), applies relu or relu clamped at ``ymax``
(``gpu/epilogue.py``), and only then stores C — one 16-byte store per lane, as before. The bias is one value
per row, read once per block. Loop order and traffic are rung 19's plus M bias values; the unfused chain
(rung 19, then an elementwise kernel: read C, write C) moves 2·M·N values more per layer, which is what
fusion saves (``spmm-study infer --engine unfused`` is that chain on the CPU).
The kernel is rung 19's own (``gpu/_row_split.py``): one row loop, the epilogue a compile-time switch, so
the two rungs cannot drift apart and the unfused rung carries no epilogue instruction.
Measured: no device time in the committed reference data (data/reference/ holds no row of this rung); checked
in the CUDA simulator and compiled to PTX for sm_90.
"""

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import ceil_div, check_vec, device_arrays, device_csr, flat, kernel_prepared, ptx_types
from spmm_study.gpu._row_split import fused_kernel
from spmm_study.gpu.device import gpu_unavailable_reason
from spmm_study.epilogue import ACT_CODE, RULE_CODE, epilogue_params, layer_problem
from spmm_study.registry import variant

kernel = fused_kernel  # rung 19's row loop with the epilogue switched on (gpu/_row_split.py)


class FusedRowSplit:
    """One layer on the device, applied to any B (K×N device array) into C (M×N): what ``infer`` calls."""

    def __init__(self, a, bias, act="relu", rule="row", ymax=32.0, warps=4, vec=4, unroll=4):
        from numba import cuda

        self.m = a.m
        self.indptr, self.indices, self.data = device_csr(a)
        self.bias = cuda.to_device(np.ascontiguousarray(bias, dtype=a.dtype))
        self.codes = (np.int64(RULE_CODE[rule]), np.int64(ACT_CODE[act]), a.dtype.type(ymax))
        self.vec, self.warps = vec, warps
        self.k = kernel(vec, warps, unroll, a.dtype.name)

    def __call__(self, b_flat, c_flat, n: int) -> None:
        if n == 0 or self.m == 0:
            return
        grid = (self.m, ceil_div(n, 32 * self.vec))
        self.k[grid, 32 * self.warps](self.indptr, self.indices, self.data, b_flat, c_flat, np.int64(n), self.bias,
                                     *self.codes)


# the epilogue on empty rows, N tails and a dense row (the loop nest is rung 19's)
SIM = (({"warps": 2, "vec": 4, "unroll": 2, "act": "clamp", "bias": "nonzero", "ymax": 1.0},
        ("empty_rows", "n_not_multiple_of_tile"), (6, 8)),
       ({"warps": 3, "vec": 2, "unroll": 4, "act": "relu", "bias": "row"}, ("one_dense_row", "1x1", "all_zero"), (5,)))


def ptx_cases():
    t = ptx_types()
    epi = (t.a1(t.f32), t.i64, t.i64, t.f32)  # bias, rule, act, ymax
    return [("row_split_fused", kernel(4, 4, 4, "float32"), (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64, *epi), 16)]


@variant("gpu.csr.row_split_fused", loop_order="(i,J)∥→w∥→p→v; Σw→epi",
         movement=models.csr_panel(lambda p: 32 * p["vec"]),
         params=(gp.warps(4, (2, 4, 8), "warps sharing one row (slices of its nonzeros)"),
                 gp.vec(help="B values per load; panel = 32·vec columns"),
                 gp.unroll(),
                 *epilogue_params()),
         available=gpu_unavailable_reason, problem_for=layer_problem, sim=SIM, ptx=ptx_cases)
def build(problem, warps, vec, unroll, act, bias, ymax):
    """Row split with the layer epilogue fused: C = act(A·B + bias) stored once."""
    check_vec(vec, problem.dtype)
    if warps < 1 or warps > 32:
        raise ParamError(f"warps={warps}: choose 1..32")
    if unroll not in (1, 2, 4, 8):
        raise ParamError(f"unroll={unroll}: choose 1, 2, 4 or 8")
    if problem.n > 32 * vec * 65535:
        raise ParamError(f"N={problem.n} needs more than 65535 column panels of {32 * vec}")
    from numba import cuda

    problem = layer_problem(problem, {"act": act, "bias": bias, "ymax": ymax})
    indptr, indices, data, b, c = device_arrays(problem)
    bias_dev = cuda.to_device(problem.bias)
    k = kernel(vec, warps, unroll, problem.dtype.name)
    grid = (max(problem.m, 1), ceil_div(problem.n, 32 * vec))
    info = {"grid": list(grid), "block": [32 * warps], "act": act, "bias": bias}
    args = (indptr, indices, data, flat(b), flat(c), np.int64(problem.n), bias_dev, np.int64(RULE_CODE[bias]),
            np.int64(ACT_CODE[act]), problem.dtype.type(ymax))
    if problem.m == 0:
        return kernel_prepared([], c, info, keep=(indptr, indices, data, b, bias_dev))
    return kernel_prepared([(k[grid, 32 * warps], args)], c, info, kernels=[("", k)],
                           keep=(indptr, indices, data, b, bias_dev))
