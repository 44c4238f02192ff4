"""Lab 9 — sparse 3×3 convolution: what im2col replicates, and which of im2col, fused and direct wins.

The course study's Table 3 in the small (docs/conv.md): the first and the last of its layers — a large image
with few channels (56×56, 64→64) and a small image with many (7×7, 512→512) — at 90% and 95%, each
convolved four ways (``cpu.conv.im2col``, ``im2col_fused``, ``direct``, ``direct_tiled``) beside dense im2col
+ GEMM. The graded quantities are deterministic (how much bigger the patch matrix is than the input and
than the weights; the simulated cache traffic of im2col against direct) except the two winners, which are
measured and re-timed until they are decided.
"""

from __future__ import annotations

from spmm_study.conv import ConvProblem, Geometry, with_channels
from spmm_study.labs import matrices
from spmm_study.labs.common import Lab, Outcome, Question, Run, fmt_bytes, fmt_time

# label -> (image side, channels), per size; the simulated problems keep the image and cut the channels
SIZES = {"tiny": {"big": (10, 4), "small": (3, 16)},
         "quick": {"big": (56, 64), "small": (7, 512)},
         "full": {"big": (56, 64), "small": (7, 512)}}
SIM = {"tiny": {"big": (10, 4), "small": (3, 16)},
       "quick": {"big": (56, 16), "small": (7, 128)},
       "full": {"big": (56, 32), "small": (7, 256)}}
RUNGS = {"im2col": "cpu.conv.im2col", "fused": "cpu.conv.im2col_fused", "direct": "cpu.conv.direct",
         "tiled": "cpu.conv.direct_tiled"}
CODES = {"im2col": 1, "fused": 2, "direct": 3, "tiled": 4}
SPARSITIES = (0.9, 0.95)


def _label(image: str, s: float) -> str:
    return f"{image}{int(round(s * 100))}"


def _geometry(a, n: int) -> Geometry:
    """The lab's convolutions: a square image of n pixels (N = n at stride 1, pad 1), 3x3 filters."""
    side = int(round(n ** 0.5))
    return with_channels(Geometry(h=side, w=side, kh=3, kw=3, pad=1, stride=1, batch=1), a)


def _measured(o: Outcome, label: str) -> Geometry:
    return _geometry(o.matrices[label], SIZES[o.size][label.rstrip("0123456789")][0] ** 2)


def patch_bytes(o: Outcome, label: str) -> float:
    return _measured(o, label).patch_values() * 4.0


def input_bytes(o: Outcome, label: str) -> float:
    return _measured(o, label).input_values() * 4.0


def csr_bytes(a) -> float:
    return a.nnz * 8.0 + (a.m + 1) * 4.0


def winner(o: Outcome, s: float) -> float | None:
    times = {k: o.time(f"{k}_big{int(round(s * 100))}") for k in RUNGS}
    if any(t is None for t in times.values()):
        return None
    return float(CODES[min(times, key=times.get)])


def sim_ratio(o: Outcome, image: str) -> float | None:
    return o.ratio_sim(f"im2col_{image}90", f"tiled_{image}90", level=1)


class Convolution(Lab):
    id = 9
    title = "sparse 3x3 convolution"
    device = "cpu"
    quick_minutes = 0.4  # 19-22 s measured on the shared 2-core VM (load 8), 2026-12-07
    questions = [
        Question("inflation", "bytes of the im2col patch matrix over the bytes of the input, 56x56 image, 3x3, pad 1",
                 kind="ratio", tol=1.2, basis="count",
                 answer=lambda o, s: patch_bytes(o, "big90") / input_bytes(o, "big90") if s == "measured" else None),
        Question("patch_over_weights_big", "patch matrix bytes over the weights' CSR bytes, 56x56, 64->64, 90%",
                 kind="ratio", tol=2.0, basis="count",
                 answer=lambda o, s: patch_bytes(o, "big90") / csr_bytes(o.matrices["big90"]) if s == "measured" else None),
        Question("patch_over_weights_small", "patch matrix bytes over the weights' CSR bytes, 7x7, 512->512, 90%",
                 kind="ratio", tol=2.0, basis="count",
                 answer=lambda o, s: patch_bytes(o, "small90") / csr_bytes(o.matrices["small90"]) if s == "measured" else None),
        Question("sim_im2col_over_direct_big", "simulated L2<->L3 bytes of im2col over direct_tiled, 56x56 image, 90%",
                 kind="ratio", tol=1.5, basis="sim", answer=lambda o, s: sim_ratio(o, "big") if s == "sim" else None),
        Question("sim_im2col_over_direct_small", "simulated L2<->L3 bytes of im2col over direct_tiled, 7x7 image, 90%",
                 kind="ratio", tol=1.5, basis="sim", answer=lambda o, s: sim_ratio(o, "small") if s == "sim" else None),
        Question("winner_90", "fastest at 56x56, 90%: 1 im2col, 2 fused, 3 direct, 4 direct_tiled", unit="", kind="exact",
                 answer=lambda o, s: winner(o, 0.9) if s == "measured" else None),
        Question("winner_95", "fastest at 56x56, 95%: 1 im2col, 2 fused, 3 direct, 4 direct_tiled", unit="", kind="exact",
                 answer=lambda o, s: winner(o, 0.95) if s == "measured" else None),
    ]

    def matrices(self, size):
        sides = SIZES[size]
        return {_label(img, s): matrices.magnitude(c, 9 * c, s) for img, (side, c) in sides.items() for s in SPARSITIES}

    def sim_matrices(self, size):
        out = {}
        for img, (side, c) in SIM[size].items():
            for s in SPARSITIES:
                a = matrices.magnitude(c, 9 * c, s)
                out[_label(img, s)] = (a, side * side)
        return out

    def runs(self, size):
        runs = []
        for img in ("big", "small"):
            for s in SPARSITIES:
                label = _label(img, s)
                n = SIZES[size][img][0] ** 2
                runs += [Run(f"{k}_{label}", v, label, n, {}, threads=None, sim=(s == 0.9)) for k, v in RUNGS.items()]
                runs.append(Run(f"gemm_{label}", "cpu.conv.dense_gemm", label, n, {}, threads=None, sim=False))
        return runs

    # a run's matrix is a filter bank: the problem, shape and trace are those of its convolution
    def problem(self, label, a, n):
        return ConvProblem.make(a, _geometry(a, n), "float32", 0, matrix=f"lab9:{label}")

    def shape(self, label, a, n):
        from spmm_study.conv import ConvShape

        g = _geometry(a, n)
        s = super().shape(label, a, g.n)
        return ConvShape(**{**s.__dict__, "batch": g.batch, "c": g.c, "h": g.h, "w": g.w, "kh": g.kh, "kw": g.kw,
                            "pad": g.pad, "stride": g.stride})

    def trace(self, label, variant_id, a, n, params):
        from spmm_study.cpu import conv_traces

        return conv_traces.for_variant(variant_id, a, _geometry(a, n), params)

    def intro(self, out: Outcome):
        lines = []
        for img in ("big", "small"):
            a = out.matrices[f"{img}90"]
            g = _measured(out, f"{img}90")
            lines.append(f"{img}: a {g.h}x{g.w} image of {g.c} channels, {a.m} filters of 3x3x{g.c} (pad 1), "
                         f"magnitude-pruned to 90% and 95%; N = {g.n} output pixels; both threads.")
        lines.append("Runs: im2col (patch matrix written, then the tiled CSR SpMM), fused (patches gathered on the "
                     "fly), direct (each nonzero adds a shifted input plane into the output plane), tiled (direct with "
                     "the output in registers), gemm (dense im2col + BLAS).")
        return lines

    def explain(self, out: Outcome):
        lines = []
        for img in ("big", "small"):
            for s in SPARSITIES:
                label = _label(img, s)
                times = {k: out.time(f"{k}_{label}") for k in list(RUNGS) + ["gemm"]}
                if all(times.values()):
                    best = min(RUNGS, key=times.get)
                    lines.append(f"{label}: " + ", ".join(f"{k} {fmt_time(t)}" for k, t in times.items()) +
                                 f"; fastest sparse: {best}, {times['gemm'] / times[best]:.1f}x dense im2col + GEMM.")
        a = out.matrices["big90"]
        lines.append(f"The patch matrix of the big image is {fmt_bytes(patch_bytes(out, 'big90'))}B for "
                     f"{fmt_bytes(input_bytes(out, 'big90'))}B of input (each value in up to 9 windows) and "
                     f"{fmt_bytes(csr_bytes(a))}B of weights: im2col multiplies the data the convolution reads. For the "
                     f"small image it is {fmt_bytes(patch_bytes(out, 'small90'))}B beside "
                     f"{fmt_bytes(csr_bytes(out.matrices['small90']))}B of weights: the copy is cheap there, and the "
                     "SpMM over a contiguous patch matrix can win.")
        for img in ("big", "small"):
            r = sim_ratio(out, img)
            if r is not None:
                lines.append(f"Simulated L2<->L3 traffic, im2col over direct_tiled ({img}, 90%): {r:.2f}x.")
        return lines


LAB = Convolution()
