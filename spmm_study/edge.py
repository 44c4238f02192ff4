"""The edge matrices every variant must pass, and the checker that runs a variant over them.

``edge_matrices()`` are small matrices that hit the corners (docs/ARCHITECTURE.md §10): a 1×1, an all-zero matrix,
empty rows, one dense row, tall and wide shapes, sizes that are no multiple of any tile, and two 2:4
matrices for the structured rungs. ``check_variant`` builds a problem, poisons C with NaN, runs, checks
against the float64 reference, poisons and runs again, checks again and, for a deterministic variant,
demands the same bits twice. A matrix the variant does not accept (``Variant.accepts``) must be refused with
a ``SpmmError`` (a SKIP row in a sweep), never answered with a wrong C.

``run_checks`` is what ``spmm-study check -v ID`` prints, one line per case, for students writing a rung:
a CPU variant runs at its defaults (or the given params) on every edge matrix at N in ``EDGE_N``; a GPU
rung runs the small configurations it declares next to its Params (``sim=``: tails, several blocks, split
rows and K-tiles on tiny inputs, fast enough for the CUDA simulator), or the given params on every matrix.
The test suite uses the same functions (tests/conftest.py, tests/test_gpu_sim.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from spmm_study.errors import ParamError, SpmmError
from spmm_study.formats import CSR
from spmm_study.problem import Problem

EDGE_N = (1, 7, 37)
# the edge matrices most GPU rungs declare in their simulator configurations (``sim=``)
SIM_SMALL = ("empty_rows", "n_not_multiple_of_tile", "1x1", "all_zero", "one_dense_row")


class CheckFailed(Exception):
    """A variant gave a wrong C, different bits on a re-run, or took a matrix it declares it refuses."""


def _random_csr(m: int, k: int, density: float, seed: int, empty_rows=()) -> CSR:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((m, k)) < density, rng.standard_normal((m, k)), 0.0)
    for r in empty_rows:
        dense[r, :] = 0.0
    return CSR.from_dense(dense.astype(np.float32))


def nm24_matrix(m: int, k: int, seed: int) -> CSR:
    """A random 2:4 matrix (two of every four consecutive columns kept) with row 2 empty."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((m, k)).astype(np.float32)
    for i in range(m):
        for g in range(0, k, 4):
            width = min(4, k - g)
            keep = rng.choice(width, size=min(2, width), replace=False)
            d[i, [g + x for x in range(width) if x not in keep]] = 0.0
    d[min(2, m - 1), :] = 0.0
    return CSR.from_dense(d)


def edge_matrices() -> dict[str, CSR]:
    """Small matrices that hit the corners: every kernel must pass all of them (or refuse those it does not
    accept)."""
    one_dense = _random_csr(9, 21, 0.15, 3)
    d = one_dense.to_dense()
    d[4, :] = np.random.default_rng(4).standard_normal(21).astype(np.float32)
    return {
        "1x1": CSR.from_dense(np.array([[1.5]], dtype=np.float32)),
        "all_zero": CSR.from_dense(np.zeros((6, 5), dtype=np.float32)),
        "single_nonzero": CSR.from_dense(np.pad(np.array([[2.0]], np.float32), ((3, 4), (2, 5)))),
        "empty_rows": _random_csr(13, 11, 0.4, 1, empty_rows=(0, 5, 6, 12)),
        "one_dense_row": CSR.from_dense(d),
        "tall": _random_csr(67, 5, 0.5, 5),
        "wide": _random_csr(5, 67, 0.3, 6),
        "n_not_multiple_of_tile": _random_csr(23, 19, 0.25, 7),
        "random": _random_csr(40, 33, 0.1, 8),
    }


def structured_matrices() -> dict[str, CSR]:
    """The 2:4 edge matrices (K a multiple of 4 and not; more than 16 rows, the tensor-core tile), for the
    rungs that take only 2:4."""
    return {"nm24": nm24_matrix(7, 10, 1), "nm24_wide": nm24_matrix(3, 17, 2), "nm24_tall": nm24_matrix(37, 20, 3)}


def all_matrices() -> dict[str, CSR]:
    return {**edge_matrices(), **structured_matrices()}


def check_variant(variant, a: CSR, n: int, params: dict | None = None, dtype="float32", seed: int = 0,
                  label: str = "") -> str:
    """Run ``variant`` on ``a`` with N = ``n`` as described above; CheckFailed with the variant, matrix and
    params in the message when it is wrong. Returns "" or, for a matrix it refuses as declared, the reason."""
    params = variant.resolve_params(params or {})
    problem = variant.problem(Problem.make(a, n, dtype, seed, matrix=label), params)
    return check_on(variant, problem, params, f"{variant.id} {params} on {label} N={n}")


def check_on(variant, problem, params: dict, where: str) -> str:
    """``check_variant`` on a problem already built (a convolution, ``spmm_study.conv``): resolved ``params``."""
    a = problem.a
    if not variant.accepts(a):
        try:
            prepared = variant.build(problem, **params)
        except SpmmError as exc:
            return str(exc)
        prepared.release()
        raise CheckFailed(f"{where}: built for a matrix it declares it does not accept")
    prepared = variant.build(problem, **params)
    outs = []
    try:
        for attempt in range(2):
            prepared.poison()
            prepared.run()
            prepared.sync()
            c = np.array(prepared.fetch(), copy=True)
            res = problem.check(c, problem.tolerance_for(prepared.precision))
            if not res.ok:
                raise CheckFailed(f"{where} run {attempt + 1}: {res.message}")
            outs.append(c)
    finally:
        prepared.release()
    if variant.deterministic and not np.array_equal(outs[0], outs[1]):
        raise CheckFailed(f"{where}: bits differ between runs")
    return ""


def parse_params(items: list[str]) -> dict[str, str]:
    """``["tile_n=16", "balance=static"]`` → ``{"tile_n": "16", ...}``; one value each (check runs one config)."""
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip() or "," in value:
            raise ParamError(f"--param {item!r} must look like name=value (one value)")
        out[name.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Case:
    params: dict
    matrix: str
    n: int
    dtype: str = "float32"

    def label(self) -> str:
        p = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.matrix} N={self.n}" + (f" {self.dtype}" if self.dtype != "float32" else "") + (f" {p}" if p else "")


def default_dtype(variant) -> str:
    """The type a variant is checked in when none is named: the first it declares (float32 for most; float16
    for the sparse-tensor-core rung and cuSPARSELt, whose float32 torch may refuse)."""
    return variant.dtypes[0]


def cases_for(variant, params: dict | None = None) -> list[Case]:
    """The cases ``check`` runs: the GPU rung's declared simulator configurations when no params are given,
    else the given (or default) params on every matrix at N in EDGE_N."""
    if params is None and variant.sim:  # entries (params, matrices, Ns) or (params, matrices, Ns, dtype)
        return [Case(dict(e[0]), name, n, e[3] if len(e) > 3 else default_dtype(variant))
                for e in variant.sim for name in e[1] for n in e[2]]
    names = list(all_matrices())
    cases = [Case(dict(params or {}), name, n, default_dtype(variant)) for name in names for n in EDGE_N]
    if variant.format == "conv":  # a convolution rung: the 3×3 edge convolutions too (docs/conv.md)
        from spmm_study.conv import edge_convolutions

        cases += [Case(dict(params or {}), f"{CONV}{name}", g.n, default_dtype(variant))
                  for name, (a, g) in edge_convolutions().items()]
    return cases


CONV = "conv-edge:"  # the matrix name of a case on spmm_study.conv's edge convolutions


@dataclass(frozen=True)
class Outcome:
    case: Case
    status: str  # PASS, FAIL or ERROR
    message: str
    seconds: float


def run_checks(variant, params: dict | None = None) -> Iterator[Outcome]:
    """Each case of ``cases_for`` run through ``check_variant``; a crash is an ERROR outcome, not an exception.
    Bad params (``ParamError``) are raised before the first case runs."""
    cases = cases_for(variant, params)
    for case in {tuple(sorted(c.params.items())): c for c in cases}.values():
        variant.resolve_params(case.params)  # a typo in --param is bad input: exit 2, not a column of FAILs
    mats = all_matrices()
    for case in cases:
        t0 = time.perf_counter()
        try:
            if case.matrix.startswith(CONV):
                from spmm_study.conv import edge_problem

                params = variant.resolve_params(case.params)
                problem = edge_problem(case.matrix[len(CONV):], case.dtype)
                refused = check_on(variant, problem, params, f"{variant.id} {params} on {case.matrix}")
            else:
                refused = check_variant(variant, mats[case.matrix], case.n, case.params, case.dtype,
                                        label=case.matrix)
            status, msg = "PASS", (f"refused as declared: {refused}" if refused else "")
        except CheckFailed as exc:
            status, msg = "FAIL", str(exc)
        except Exception as exc:  # noqa: BLE001 - a crashing kernel is a failed case, reported like one
            text = str(exc).strip().splitlines()
            status, msg = "ERROR", f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
        yield Outcome(case, status, msg, time.perf_counter() - t0)
