"""Lab 8 — GPU load balance and launch cost: row swizzle and row split, device time vs host dispatch, N."""

from __future__ import annotations

from spmm_study.labs import matrices
from spmm_study.labs.common import Lab, Outcome, Question, Run, fmt_bytes, fmt_time

SIZES = {"tiny": ((32, 32, 4), (4, 16)),  # tiny: the CUDA simulator runs every thread in Python
          "quick": ((16384, 1024, 48), (16, 512)), "full": ((65536, 2048, 64), (16, 512))}


def dispatch_share(out: Outcome, key: str) -> float | None:
    r = out.results.get(key)
    if r is None or r.status != "PASS" or not r.host_dispatch_s == r.host_dispatch_s:
        return None
    return 100 * r.host_dispatch_s / (r.host_dispatch_s + r.median_s)


class GpuBalance(Lab):
    id = 8
    title = "GPU load balance and launch cost"
    device = "gpu"
    quick_minutes = 0.3  # 17 s (models only, no GPU) on the shared 2-core VM, 2026-12-01
    questions = [
        Question("swizzle_over_subwarp", "time of the row-swizzled kernel over plain subwarp rows, skewed matrix, large N",
                 answer=lambda o, s: o.ratio(s, "swizzle_bigN", "subwarp_bigN")),
        Question("row_split_over_subwarp", "time of row split (warps share long rows) over subwarp rows, large N",
                 answer=lambda o, s: o.ratio(s, "row_split_bigN", "subwarp_bigN")),
        Question("dispatch_share_smallN", "host dispatch as % of dispatch + device time at small N (subwarp)", unit="%",
                 kind="absolute", tol=15, answer=lambda o, s: dispatch_share(o, "subwarp_smallN") if s == "measured" else None),
    ]

    def matrices(self, size):
        (m, k, mean), _ = SIZES[size]
        return {"skew": matrices.powerlaw(m, k, mean)}

    def runs(self, size):
        _, (small, big) = SIZES[size]
        runs = []
        for tag, n in (("smallN", small), ("bigN", big)):
            runs += [Run(f"subwarp_{tag}", "gpu.csr.subwarp", "skew", n, sim=False),
                     Run(f"swizzle_{tag}", "gpu.csr.swizzle", "skew", n, sim=False),
                     Run(f"row_split_{tag}", "gpu.csr.row_split", "skew", n, sim=False)]
        return runs

    def intro(self, out: Outcome):
        a = out.matrices["skew"]
        lens = a.row_lengths()
        return [f"Skewed matrix {a.m}x{a.k} (row lengths ∝ 1/rank^1.1: longest {int(lens.max())}, median "
                f"{int(lens[lens.argsort()[lens.size // 2]])}), N small {out.runs[0].n} and large {out.runs[3].n}.",
                "The models count the same bytes for the three kernels (balance moves work between SMs, not bytes): " +
                ", ".join(f"{r.key} {fmt_bytes(out.model_total(r.key))}B" for r in out.runs) + ".",
                "A kernel launch costs the host a few microseconds whatever the size: at small N the device time can "
                "fall below it."]

    def explain(self, out: Outcome):
        if not out.measured_here:
            return ["Model only: every kernel here moves the same bytes; what differs is how long the slowest warp "
                    "works (a row of thousands of nonzeros on one warp) and, at small N, the fixed launch cost — "
                    "neither is in a byte count, which is why this lab needs the GPU to answer."]
        lines = []
        for tag in ("smallN", "bigN"):
            ts = {k: out.time(f"{k}_{tag}") for k in ("subwarp", "swizzle", "row_split") if out.time(f"{k}_{tag}")}
            if ts:
                lines.append(f"{tag}: " + ", ".join(f"{k} {fmt_time(t)}" for k, t in ts.items()) + ".")
        d = dispatch_share(out, "subwarp_smallN")
        if d is not None:
            lines.append(f"At small N the host dispatch is {d:.0f}% of the total: " +
                         ("launches, not the kernel, decide; batch more columns or fuse layers." if d > 30 else
                          "the kernel still dominates."))
        return lines


LAB = GpuBalance()
