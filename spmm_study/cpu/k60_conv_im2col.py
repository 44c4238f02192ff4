"""Rung 60 — sparse convolution by explicit im2col: build the patch matrix, then the tiled CSR SpMM (rung 13).

A 3×3 convolution is an SpMM only after im2col (docs/conv.md): B = the patch matrix, one column per output
pixel holding the C·9 input values its filter window covers. This rung does exactly that, in two timed
steps: ``_conv.im2col`` writes P (K × N, parallel over its K rows), then rung 13's register-blocked kernel
(``cpu.csr.tiled``, from ``_tiled.py``) multiplies the weight CSR by P. Both steps are in the measured time: the patch matrix
is part of the convolution, not a free input.

What to look at: the bytes. The input is C·H·W values; P is C·9·Ho·Wo, about 9× larger at stride 1
(``inflation`` in the row's info): for RN50's 56×56×64 layer, 0.8 MB of input becomes 7.2 MB of patches,
written and then read back (``bytes_model`` counts both), which no longer fits the L2 of a 2-core VM. At 90%
sparsity the SpMM itself does a tenth of the dense GEMM's flops, so the im2col copy, which sparsity does not
shrink, becomes a large share of the time: the next two rungs remove it.

Loop order: im2col k‖ → b → oh → ow; then SpMM t‖ → i → j0 → p → j (rung 13).
Traffic (``movement.conv_im2col``): x once, P written once and read nnz·N values' worth, A once per tile,
C once.
Measured (RN50 DLMC weights, 1 thread, AMD EPYC 2-core VM under a load of ~12, 2026-12-07,
data/reference/conv-table3-cpu-1t.csv): 56×56 at 90% 2.65 ms, 7×7 at 95% 3.05 ms; dense im2col + GEMM 13 and
14.9 ms.
"""

from __future__ import annotations

import numpy as np

from spmm_study import movement
from spmm_study.conv import conv_view
from spmm_study.cpu._conv import conv_tile_param, im2col, split_filters
from spmm_study.cpu._tiled import kernel as tiled_kernel
from spmm_study.memory import aligned_empty
from spmm_study.registry import host_prepared, variant


@variant("cpu.conv.im2col", loop_order="im2col k‖→b→oh→ow; t‖→i→j0→p→j",
         movement=movement.conv_im2col, params=(conv_tile_param(64, (16, 64)),))
def build(problem, tile_n):
    """Explicit im2col (patch matrix materialised, K×N) then rung 13's tiled CSR SpMM on it."""
    g, x = conv_view(problem)
    a = problem.a
    rows, bounds, info = split_filters(problem, g)
    info.update(tile_n=tile_n)
    patches = aligned_empty((g.k, g.n), problem.dtype)
    c = problem.new_output()
    spmm = tiled_kernel(tile_n)
    args = (rows, bounds, a.indptr, a.indices, a.data, patches, c)
    geo = (np.int64(g.kh), np.int64(g.kw), np.int64(g.pad), np.int64(g.stride), np.int64(g.ho), np.int64(g.wo))

    def run():
        im2col(x, patches, *geo)
        spmm(*args)

    return host_prepared(run, c, info)
