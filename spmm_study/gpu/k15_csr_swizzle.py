"""GPU rung 15 — row swizzle load balancing: rows processed longest first, the order passed as an array.

The subwarp kernel of rung 14, but group g works on row order[g], where ``order`` sorts the rows by
nonzero count, longest first (computed once on the host, at build: it is part of the format, like the
CSR itself). Loop order: (g, J-panel)∥ → p → (tile, vec), with i = order[g].

What changed from rung 14: the subwarps of one warp (and the warps of one block) now get rows of nearly
equal length, so no lane idles while a neighbour finishes a long row, and the longest rows start first
instead of forming a tail at the end of the grid (Sputnik's "row swizzle"). DLMC rows vary by a
coefficient of variation of 0.2–0.5 (dlmc.csv), so expect a modest 5–20%. C is written in row
order[g]: scattered rows, each still a contiguous (coalesced) run of columns.
Measured (H100, ffn_conv1 90%, N=4096, 2026-11-23, data/reference/gpu-ladder.csv and
data/reference/gpu-bench.csv): 161 µs (16 lanes × 2 tiles, unroll 4; 66 registers, no spills),
the fastest rung at large N: 1.14× cuBLAS, 1.35× cuSPARSE through torch; it won 73 of the 180 DLMC
benchmark problems (43 of the 60 at N=4096). ncu there: L1 hit rate 54%, L2 47% busy, 4.4 of 9.7 cycles
between instructions waiting on L1TEX, occupancy 44% (limited by its 66 registers).
The kernel is rung 13's ``_rowvec.kernel``; the one changed line is ``i = order[g] if use_order else g``
there (group g takes row order[g]), switched on by passing ``order`` to ``build_rowvec`` below. The
defaults are rung 14's, so the two compare like with like.
"""

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import longest_first, ptx_types
from spmm_study.gpu._rowvec import build_rowvec
from spmm_study.gpu._rowvec import kernel as rowvec_kernel
from spmm_study.gpu.device import gpu_unavailable_reason
from spmm_study.registry import variant


SIM = (({"lanes": 2, "vec": 4, "tiles": 1, "unroll": 2, "threads": 8}, SIM_SMALL, (8, 11)),
       ({"lanes": 4, "vec": 4, "tiles": 2, "unroll": 4, "threads": 8}, SIM_SMALL, (12, 37)),
       ({"lanes": 8, "vec": 2, "tiles": 1, "unroll": 8, "threads": 16}, ("one_dense_row",), (9,)))


def ptx_cases():
    t = ptx_types()
    sig = (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64, t.a1(t.i32))
    return [("swizzle", rowvec_kernel(16, 4, 1, 2, True, "float32"), sig, 16),
            ("swizzle_u8", rowvec_kernel(16, 4, 2, 8, True, "float32"), sig, 16)]


@variant("gpu.csr.swizzle", loop_order="(order[g],J)∥→p→(t,v)",
         movement=models.csr_panel(lambda p: p["lanes"] * p["vec"] * p["tiles"]),
         params=gp.row_group(),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, lanes, vec, tiles, unroll, threads):
    """CSR subwarp kernel over rows sorted by length (row swizzle), the order passed as an array."""
    prepared = build_rowvec(problem, lanes, vec, tiles, unroll, threads, order=longest_first(problem.a.indptr))
    lengths = np.diff(problem.a.indptr)
    prepared.info["row_nnz_cv"] = round(float(lengths.std() / lengths.mean()), 3) if lengths.size and lengths.mean() else 0.0
    return prepared
