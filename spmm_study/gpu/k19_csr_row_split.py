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
Measured (H100, fp32, cold L2, data/reference/gpu-bench.csv and gpu-ladder.csv): it is the N=256 rung —
ffn_conv2 80%, N=256: 36.6 µs (8 warps) against 121 µs for rung 15 and 26.8 µs for cuBLAS; ffn_conv1 90%,
N=256: 24.0 µs (4 warps), cuBLAS 25.2, torch's cuSPARSE 22.7; it won 58 of the 60 N=256 DLMC benchmark problems. At N=4096 it does not help (ffn_conv2
80%: 390 µs against 404 for rung 15): more chains in flight do not cut the B re-reads that bound it there.

The kernel factory is in ``_row_split.py``, which rung 60 (im2col convolution) runs too.
"""

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import ceil_div, check_vec, device_arrays, flat, kernel_prepared, ptx_types
from spmm_study.gpu._row_split import kernel
from spmm_study.gpu.device import gpu_unavailable_reason
from spmm_study.registry import variant

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
