"""GPU rung 60 — sparse convolution by explicit im2col: the patch matrix in device memory, then rung 19.

The CPU rung 60's two steps on the GPU: ``_conv.im2col`` writes the K × N patch matrix (one thread per
element, coalesced), then the row-split CSR kernel of rung 19 (``gpu.csr.row_split``: the warps of a block
share a row, 32·vec columns per block) multiplies the weights by it. Both launches are timed.
What to look at: the patch matrix is ≈ 9× the input (``inflation`` in info) and is written to and read back
from HBM/L2; on the GPU that copy is cheap next to the host's, but at 95% sparsity the SpMM has so little
work that the copy is a large share of the time.
Traffic (``movement.conv_im2col`` with a panel of 32·vec columns): x once, the patches written and read
nnz·N values' worth, A once per panel, C once.
"""

from __future__ import annotations

import numpy as np

from spmm_study import movement
from spmm_study.conv import conv_info, conv_view
from spmm_study.edge import SIM_SMALL
from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu._conv import device_operands, im2col_launch
from spmm_study.gpu._row_split import kernel as row_split_kernel
from spmm_study.gpu._conv import ptx_cases as conv_ptx
from spmm_study.gpu._kit import ceil_div, check_vec, cuda_module, flat, kernel_prepared
from spmm_study.gpu.device import gpu_unavailable_reason
from spmm_study.registry import variant

SIM = (({"warps": 2, "vec": 1}, SIM_SMALL, (5,)),
       ({"warps": 2, "vec": 2}, ("n_not_multiple_of_tile", "wide"), (7,)))


def model(s, p):
    return movement.conv_im2col(s, {"tile_n": 32 * p["vec"]})


@variant("gpu.conv.im2col", loop_order="im2col e∥; (i,J)∥→w∥→p→v", movement=model,
         params=(gp.warps(4, (2, 4, 8), "warps sharing one row of the SpMM"), gp.vec(help="patch values per load")),
         available=gpu_unavailable_reason, sim=SIM, ptx=conv_ptx)
def build(problem, warps, vec):
    """Explicit im2col into device memory (K×N patches), then rung 19's row-split CSR SpMM on it."""
    check_vec(vec, problem.dtype)
    if not 1 <= warps <= 32:
        raise ParamError(f"warps={warps}: choose 1..32")
    g, x = conv_view(problem)
    (indptr, indices, data), x_dev, c = device_operands(problem, x)
    patches = cuda_module().device_array((g.k, g.n), dtype=problem.dtype)
    spmm = row_split_kernel(vec, warps, 4, problem.dtype.name)
    grid = (max(problem.m, 1), ceil_div(problem.n, 32 * vec))
    info = conv_info(g, problem.dtype.itemsize)
    info.update(grid=list(grid), block=[32 * warps])
    launches = [im2col_launch(x_dev, patches, g),
                (spmm[grid, 32 * warps], (indptr, indices, data, flat(patches), flat(c), np.int64(problem.n)))]
    return kernel_prepared(launches, c, info, kernels=[("", spmm)], keep=(indptr, indices, data, x_dev, patches))
