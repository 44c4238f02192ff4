"""The epilogue of a fused layer, C = act(A·B + bias), and the problem a fused variant is checked on.

Two bias rules:

* ``row`` — Sputnik's convention: ``bias[i]`` is added to every entry of output row i (A is out × in, so a
  row of C is one output neuron over the N columns of B: tokens, or the inputs of a batch);
* ``nonzero`` — the Sparse DNN Graph Challenge's rule, ``Y = h(Z + b·[Z ≠ 0])``: the bias is added only where
  the product is nonzero (GraphBLAS adds it to the stored entries of the sparse product);
* ``zero`` — no bias (the plain SpMM followed by an activation).

Activations: ``none``, ``relu`` (max(x, 0)) and ``clamp`` (min(max(x, 0), ymax); the challenge uses 32).

``LayerProblem`` is a ``Problem`` whose float64 reference applies the epilogue. The check's bound per entry
is ``elem·(|A|·|B| + |bias|)`` (adding the bias rounds once more; relu and the clamp are 1-Lipschitz, so they
never enlarge an error). Under the ``nonzero`` rule an entry whose float64 product is within its rounding
bound of zero may be exactly zero in float32 (the kernel then adds no bias) or not; there both answers pass.
An entry with no term at all (an empty row of A) is exact: 0 under ``nonzero``, act(bias) under ``row``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.problem import Problem
from spmm_study.registry import Param

ACTS = ("none", "relu", "clamp")
RULES = ("row", "nonzero", "zero")
ACT_CODE = {a: i for i, a in enumerate(ACTS)}
RULE_CODE = {r: i for i, r in enumerate(RULES)}
CHALLENGE_YMAX = 32.0


def epilogue_params(act: str = "relu", rule: str = "row", ymax: float = CHALLENGE_YMAX) -> tuple[Param, ...]:
    """The three Params every fused variant takes."""
    return (
        Param("act", act, ACTS, "activation after the bias: none, relu, or relu clamped at ymax", strict=True),
        Param("bias", rule, RULES, "bias per output row (Sputnik), only where the product is nonzero (the "
              "Sparse DNN challenge), or none", strict=True),
        Param("ymax", ymax, (1.0, CHALLENGE_YMAX), "upper clamp for act=clamp (the challenge uses 32)", minimum=0.0),
    )


@dataclass(frozen=True, eq=False)
class Epilogue:
    act: str = "relu"
    rule: str = "row"
    ymax: float = CHALLENGE_YMAX
    bias: np.ndarray | None = None  # per output row; None with rule 'zero'

    def __post_init__(self):
        if self.act not in ACTS:
            raise ParamError(f"unknown activation {self.act!r}; choose one of {', '.join(ACTS)}")
        if self.rule not in RULES:
            raise ParamError(f"unknown bias rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if not np.isfinite(self.ymax) or self.ymax < 0:
            raise ParamError(f"ymax {self.ymax!r} must be a finite number >= 0")

    def bias_vector(self, m: int, dtype) -> np.ndarray:
        """The bias as the kernels take it: one value per output row (zeros for rule 'zero')."""
        if self.rule == "zero" or self.bias is None:
            return np.zeros(m, dtype=dtype)
        b = np.asarray(self.bias, dtype=dtype)
        if b.shape != (m,):
            raise ParamError(f"bias has shape {b.shape}; expected ({m},), one value per output row")
        if not np.isfinite(b).all():
            raise ParamError("bias holds NaN or Inf values")
        return np.ascontiguousarray(b)

    def apply(self, z: np.ndarray, bias: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The unfused elementwise pass on a product ``z`` (numpy; also the float64 reference's epilogue)."""
        out = np.array(z, copy=True) if out is None else out
        if out is not z:
            np.copyto(out, z)
        if self.rule == "row":
            out += bias[:, None]
        elif self.rule == "nonzero":
            np.add(out, bias[:, None], out=out, where=z != 0)
        if self.act != "none":
            np.maximum(out, 0, out=out)
        if self.act == "clamp":
            np.minimum(out, self.ymax, out=out)
        return out


def seeded_bias(m: int, seed: int, dtype) -> np.ndarray:
    """Bias for a problem that brings none: normal with scale 0.5, from the problem seed, so relu zeroes some
    entries and keeps others."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB1A5]))
    return (0.5 * rng.standard_normal(m)).astype(dtype)


@dataclass(eq=False)
class LayerProblem(Problem):
    """C = act(A·B + bias): the reference applies the epilogue in float64 (see the module docstring)."""

    epilogue: Epilogue = field(default_factory=Epilogue)

    @cached_property
    def bias(self) -> np.ndarray:
        return self.epilogue.bias_vector(self.m, self.dtype)

    @cached_property
    def product(self) -> np.ndarray:
        return Problem.reference.func(self)

    @cached_property
    def reference(self) -> np.ndarray:
        return self.epilogue.apply(self.product, self.bias.astype(np.float64))

    @cached_property
    def bound_scale(self) -> np.ndarray:
        scale = np.array(Problem.bound_scale.func(self), copy=True)
        ep = self.epilogue
        b = np.abs(self.bias.astype(np.float64))[:, None]
        if ep.rule == "row":
            scale += b
        elif ep.rule == "nonzero":
            elem = self.tolerance.elem
            z = self.product
            near_zero = (scale > 0) & (np.abs(z) <= elem * scale)  # may be exactly 0 in the kernel's precision
            scale += np.where(near_zero, b / elem, b) * (scale > 0)
        return scale


def layer_problem(problem: Problem, params: dict) -> LayerProblem:
    """The problem a fused variant solves for ``params`` (act, bias, ymax): the problem's own epilogue if it is
    a LayerProblem whose epilogue matches, else a seeded bias from the problem seed."""
    act, rule, ymax = params["act"], params["bias"], float(params["ymax"])
    if isinstance(problem, LayerProblem):
        ep = problem.epilogue
        if (ep.act, ep.rule, ep.ymax) == (act, rule, ymax):
            return problem
        bias = problem.epilogue.bias
    else:
        bias = None
    if bias is None and rule != "zero":
        bias = seeded_bias(problem.m, problem.seed, problem.dtype)
    return LayerProblem(problem.a, problem.b, seed=problem.seed, matrix=problem.matrix,
                        epilogue=Epilogue(act=act, rule=rule, ymax=ymax, bias=bias))
