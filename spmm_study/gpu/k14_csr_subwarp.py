"""GPU rung 14 — CSR subwarp tiling (as in Sputnik): several rows per warp.

Same register-tiled inner loop as rung 13, but a row is owned by a *subwarp* of ``lanes`` threads
(4, 8, 16), so a warp works on 32/lanes rows at once. Loop order: (i, J-panel)∥ → p → (tile, vec).

What changed from rung 13: when N is small (N=256 is 64 float4s: a full warp with tiles=2 covers a row
twice over) a warp per row leaves lanes idle or panels tiny, and rows of ~50 nonzeros give each warp a
short serial chain; with subwarps the panel width lanes·vec·tiles fits N and the warp has 32/lanes
independent rows in flight. At large N it is a wash (same loads, same registers).
Traffic: as rung 13 with panels of lanes·vec·tiles columns. What to look at: N=256 against rung 13.
The kernel is rung 13's ``_rowvec.kernel``; the one changed line is in ``build`` below: ``lanes`` is a
Param passed to ``build_rowvec`` (rung 13 passes 32). The defaults (16 lanes × vec 4 × 2 tiles) keep rung
13's 128-column panel and are rung 15's, so comparing rung 14 with rung 15 at defaults changes only the row
order.
Measured (H100, ffn_conv1 90%, fp32, cold L2, 2026-11-23, data/reference/gpu-ladder.csv; at tiles=1, the
default then): 37–39 µs at N=256 and 206 µs at N=4096, against 161 µs for rung 15 at 2 tiles.
"""

from spmm_study.edge import SIM_SMALL
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import ptx_types
from spmm_study.gpu._rowvec import build_rowvec
from spmm_study.gpu._rowvec import kernel as rowvec_kernel
from spmm_study.gpu.device import gpu_unavailable_reason
from spmm_study.registry import variant


SIM = (({"lanes": 4, "vec": 2, "tiles": 2, "unroll": 2, "threads": 16}, SIM_SMALL, (6, 7, 19)),)


def ptx_cases():
    t = ptx_types()
    sig = (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64, t.a1(t.i32))
    return [("subwarp_v2", rowvec_kernel(8, 2, 1, 1, False, "float32"), sig, 8)]


@variant("gpu.csr.subwarp", loop_order="(i,J)∥→p→(t,v)",
         movement=models.csr_panel(lambda p: p["lanes"] * p["vec"] * p["tiles"]),
         params=gp.row_group(),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, lanes, vec, tiles, unroll, threads):
    """CSR subwarp tiling: a subwarp of `lanes` threads per row, several rows per warp (Sputnik)."""
    return build_rowvec(problem, lanes, vec, tiles, unroll, threads)
