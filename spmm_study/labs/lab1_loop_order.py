"""Lab 1 — loop order: the same flops in six orders, and CSR i→p→j against i→j→p."""

from __future__ import annotations

from spmm_study.labs import matrices
from spmm_study.labs.common import Lab, Outcome, Question, Run, fmt_bytes, fmt_time, ranking_sentence

ORDERS = ("ijk", "ikj", "jik", "jki", "kij", "kji")
# (dense M=K=N, CSR M, K, sparsity, N); the CSR rows (about 800 nonzeros) touch more lines of B than L1 holds
SIZES = {"tiny": (12, (32, 256, 0.9, 8)), "quick": (160, (128, 8192, 0.9, 32)), "full": (512, (512, 8192, 0.9, 128))}
SIM = {"full": (160, (128, 8192, 0.9, 32))}


class LoopOrder(Lab):
    id = 1
    title = "loop order"
    device = "cpu"
    quick_minutes = 0.8  # 42-48 s measured on the shared 2-core VM, 2026-12-01
    questions = [
        Question("ijk_over_ikj", "time of dense i,j,k over time of i,k,j (k innermost vs j innermost)",
                 answer=lambda o, s: o.ratio(s, "ijk", "ikj")),
        Question("jki_over_ikj", "time of dense j,k,i over time of i,k,j (i innermost: strided A and C)",
                 answer=lambda o, s: o.ratio(s, "jki", "ikj")),
        Question("dot_over_rowwise", "time of CSR i→j→p (dot) over CSR i→p→j (row-wise)",
                 answer=lambda o, s: o.ratio(s, "csr_dot", "csr_row")),
    ]

    def matrices(self, size):
        d, (m, k, sp, n) = SIZES[size]
        return {"dense": matrices.dense(d, d), "csr": matrices.uniform(m, k, sp)}

    def sim_matrices(self, size):
        if size not in SIM:
            return None
        d, (m, k, sp, n) = SIM[size]
        return {"dense": (matrices.dense(d, d), d), "csr": (matrices.uniform(m, k, sp), n)}

    def runs(self, size):
        d, (m, k, sp, n) = SIZES[size]
        runs = [Run(o, "cpu.dense.order", "dense", d, {"order": o}) for o in ORDERS]
        return runs + [Run("csr_row", "cpu.csr.rowwise", "csr", n), Run("csr_dot", "cpu.csr.dot", "csr", n)]

    def intro(self, out: Outcome):
        d = out.shapes["ijk"]
        c = out.shapes["csr_row"]
        return [f"Dense: M=K=N={d.m}, {2 * d.m * d.k * d.n / 1e6:.3g} Mflop in every order; CSR: {c.m}x{c.k}, "
                f"nnz {c.nnz:,}, N={c.n}.",
                "The model counts the loads each loop nest issues, a strided element costing a whole 64-byte line, "
                "and assumes no reuse from the caches: " +
                ", ".join(f"{k} {fmt_bytes(out.model_total(k))}B" for k in [r.key for r in out.runs]) + "."]

    def explain(self, out: Outcome):
        lines = []
        d = out.shapes["ijk"]
        b_bytes = d.k * d.n * d.value_bytes
        l1 = out.levels[0].size if out.levels else 48 * 1024
        l2 = out.levels[1].size if len(out.levels) > 1 else 2 * 1024 * 1024
        where = "L1" if b_bytes <= l1 else "L2" if b_bytes <= l2 else "L3 or memory"
        assumption = (f"the model assumes nothing is reused from the caches, but B ({b_bytes // 1024} KiB) fits in {where}, "
                      "so a strided walk re-uses lines that are still cached; and only the j-innermost orders (ikj, kij) "
                      "vectorise (unit stride in B and C), which no byte count sees.")
        lines += ranking_sentence(out, list(ORDERS), assumption)
        r = out.ratio_time("csr_dot", "csr_row")
        if r is not None:
            m = out.ratio_model("csr_dot", "csr_row")
            c = out.shapes["csr_row"]
            row_lines = c.nnz / max(1, c.m) * 64  # bytes of B lines one row's column walk touches
            if r <= 1.5:
                why = ("The caches held the lines a row touches across the N columns, so the strided walk cost less "
                       "than the model's line per value.")
            elif row_lines > l1:
                why = (f"A row's nonzeros touch {row_lines / 1024:.0f} KiB of B lines, more than L1 ({l1 // 1024} KiB) "
                       "holds, so the column walk misses L1 for every value; the row-wise order streams whole rows "
                       "of B and C.")
            else:
                why = (f"A row's B lines ({row_lines / 1024:.1f} KiB) fit in L1, so the gap is not the caches: the dot "
                       "order is a scalar gather-reduction, the row-wise update a vectorised stream.")
            lines.append(f"CSR: the dot order took {r:.2f}x the row-wise time (model: {m:.2f}x the bytes). " + why)
        t_best = min((out.time(o) or float("inf")) for o in ORDERS)
        best = [o for o in ORDERS if out.time(o) == t_best]
        if best:
            lines.append(f"Fastest dense order: {best[0]} ({fmt_time(t_best)}).")
        return lines


LAB = LoopOrder()
