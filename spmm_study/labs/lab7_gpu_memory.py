"""Lab 7 — GPU memory hierarchy: one thread per output vs coalesced rows vs shared memory vs wide loads."""

from __future__ import annotations

from spmm_study.labs import matrices
from spmm_study.labs.common import Lab, Outcome, Question, Run, fmt_bytes, fmt_time

SIZES = {"tiny": ((32, 32), 16),  # tiny: the CUDA simulator runs every thread in Python
          "quick": ((2048, 512), 256), "full": ((4096, 4096), 512)}


class GpuMemory(Lab):
    id = 7
    title = "GPU memory hierarchy"
    device = "gpu"
    quick_minutes = 0.3  # 14 s (models only, no GPU) on the shared 2-core VM, 2026-12-01
    questions = [
        Question("row_thread_over_row_col", "time of one thread per row (i∥→j→p) over one thread per output, "
                 "coalesced along j", answer=lambda o, s: o.ratio(s, "row_thread", "row_col")),
        Question("smem_over_row_col", "time of the shared-memory panel kernel over coalesced row_col",
                 answer=lambda o, s: o.ratio(s, "block_smem", "row_col")),
        Question("vec1_over_vec4", "time of warp_vec with 4-byte loads over 16-byte (float4) loads",
                 answer=lambda o, s: o.ratio(s, "warp_vec1", "warp_vec4")),
    ]

    def matrices(self, size):
        (m, k), n = SIZES[size]
        return {"m": matrices.magnitude(m, k, 0.9)}

    def runs(self, size):
        (m, k), n = SIZES[size]
        return [Run("row_thread", "gpu.csr.row_thread", "m", n, sim=False),
                Run("row_col", "gpu.csr.row_col", "m", n, sim=False),
                Run("block_smem", "gpu.csr.block_smem", "m", n, sim=False),
                Run("warp_vec1", "gpu.csr.warp_vec", "m", n, {"vec": 1}, sim=False),
                Run("warp_vec4", "gpu.csr.warp_vec", "m", n, {"vec": 4}, sim=False)]

    def intro(self, out: Outcome):
        s = out.shapes["row_col"]
        return [f"A: {s.m}x{s.k} magnitude-pruned to 90% (nnz {s.nnz:,}), N={s.n}.",
                "Model bytes through the GPU's L2 (spmm_study/gpu/models.py: a warp's loads counted in 32-byte "
                "sectors; a panel kernel reads A once per panel of columns): " +
                ", ".join(f"{r.key} {fmt_bytes(out.model_total(r.key))}B" for r in out.runs) + "."]

    def explain(self, out: Outcome):
        lines = []
        if not out.measured_here:
            r = out.ratio_model("row_thread", "row_col")
            lines.append(f"Model only: one thread per row reads {r:.2f}x the bytes of row_col; its neighbours in a warp "
                         "read B rows of *different* nonzeros, so each load is its own 32-byte sector, where row_col's "
                         "warp reads 32 consecutive floats of one B row: one 128-byte line, fully used.")
            return lines
        ts = {r.key: out.time(r.key) for r in out.runs if out.time(r.key)}
        if ts:
            lines.append("Measured, fastest first: " + " < ".join(f"{k} {fmt_time(t)}" for k, t in sorted(ts.items(), key=lambda x: x[1])) + ".")
        r = out.ratio_time("warp_vec1", "warp_vec4")
        if r:
            lines.append(f"16-byte loads: {r:.2f}x faster than 4-byte ones — the same bytes in a quarter of the load "
                         "instructions; " + ("the load units, not DRAM, were the limit." if r > 1.2 else
                                               "DRAM bandwidth, not the instruction count, was the limit."))
        return lines


LAB = GpuMemory()
