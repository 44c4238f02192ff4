"""GPU rung 13 — CSR register tiling with 16-byte loads: one warp per row, several columns per thread.

A warp owns a row and a panel of 32·vec·tiles columns; each lane keeps vec·tiles accumulators in
registers and, per nonzero, issues ``tiles`` 16-byte loads of B (``ld.global.v4.f32``, see ``_vec``) and
vec·tiles multiply-adds. Loop order: (i, J-panel)∥ → p → (tile, vec) in registers.

What changed from rung 12: (1) a thread computes vec·tiles outputs, so the row's index and value are
loaded once per 4·tiles multiply-adds instead of once per multiply-add; (2) B moves in 16-byte
vectors — a quarter of the load instructions (numba alone emits only 4-byte loads for float32); (3) no
shared memory and no barriers: the row's (index, value) are warp-uniform broadcast loads from L1;
(4) ``unroll``=U keeps U B rows in flight. Expect 2–4× over rung 12 at large N.
Traffic (``models.csr_panel``): A once per panel, one B row segment per nonzero (through L1/L2), C once
(16-byte stores). What to look at: registers per thread and local bytes (must be 0: the accumulators
stay in registers only because every index into them is a compile-time constant).
Measured (H100, ffn_conv1 90%, N=4096, 2026-11-23, data/reference/gpu-ladder.csv): 187 µs with vec 4, tiles
1, unroll 4 (48 registers,
no local memory) against 610 µs for rung 12; in the tuning run (experiments/notes-gpu.md) unroll 1 → 2 → 4
gave 266 → 224 → 186 microseconds: latency, not bandwidth.
The kernel is ``_rowvec.kernel``, shared with rungs 14 and 15 (``_rowvec.py`` reads as this lesson); this
rung calls it with ``lanes=32`` (a warp per row) and no row order.
"""

from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import ptx_types
from spmm_study.gpu._rowvec import build_rowvec
from spmm_study.gpu._rowvec import kernel as rowvec_kernel
from spmm_study.gpu.device import gpu_unavailable_reason
from spmm_study.registry import variant


SIM = (({"vec": 4, "tiles": 2, "unroll": 2, "threads": 64}, ("empty_rows", "one_dense_row", "1x1"), (9, 12)),
       ({"vec": 1, "tiles": 1, "unroll": 1, "threads": 32}, ("all_zero",), (3,)))


def ptx_cases():
    t = ptx_types()
    sig = (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64, t.a1(t.i32))
    f64 = (t.a1(t.i32), t.a1(t.i32), t.a1(t.f64), t.a1(t.f64), t.a1(t.f64), t.i64, t.a1(t.i32))
    return [("warp_vec", rowvec_kernel(32, 4, 2, 2, False, "float32"), sig, 16),
            ("warp_vec_u4", rowvec_kernel(32, 4, 1, 4, False, "float32"), sig, 16),
            ("rowvec_f64", rowvec_kernel(32, 2, 2, 2, False, "float64"), f64, 16)]


@variant("gpu.csr.warp_vec", loop_order="(i,J)∥→p→(t,v)",
         movement=models.csr_panel(lambda p: 32 * p["vec"] * p["tiles"]),
         params=(gp.vec(),
                 gp.tiles(),
                 gp.unroll(),
                 gp.threads(help="threads per block (a warp per row)")),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, vec, tiles, unroll, threads):
    """CSR register tiling: a warp per row, vec·tiles outputs per thread, 16-byte B loads."""
    return build_rowvec(problem, 32, vec, tiles, unroll, threads)
