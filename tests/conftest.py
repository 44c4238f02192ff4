"""Shared fixtures: the named edge matrices of docs/ARCHITECTURE.md §10 and a variant checker used by every ladder.

``check_variant(variant, a, n, params)`` builds the problem, poisons C with NaN, runs, checks against the
float64 reference, poisons and runs again, checks again, and (for deterministic variants) demands the same
bits twice. It fails with the variant, matrix and params in the message.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from spmm_study.formats import CSR
from spmm_study.problem import Problem

SHARED_DLMC = Path(__file__).resolve().parents[2] / "shared" / "dlmc"


def dlmc_root() -> Path | None:
    env = os.environ.get("SPMM_STUDY_DLMC")
    for cand in (Path(env) if env else None, SHARED_DLMC):
        if cand is not None and cand.is_dir():
            return cand
    return None


@pytest.fixture
def dlmc():
    root = dlmc_root()
    if root is None:
        pytest.skip("DLMC subset not found (set SPMM_STUDY_DLMC or place it at ../shared/dlmc)")
    return root


def _random_csr(m, k, density, seed, empty_rows=()):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((m, k)) < density, rng.standard_normal((m, k)), 0.0)
    for r in empty_rows:
        dense[r, :] = 0.0
    return CSR.from_dense(dense.astype(np.float32))


def edge_matrices() -> dict[str, CSR]:
    """Small matrices that hit the corners: every kernel must pass all of them."""
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


EDGE_N = (1, 7, 37)


def check_variant(variant, a: CSR, n: int, params: dict | None = None, dtype="float32", seed: int = 0,
                  label: str = "") -> None:
    params = variant.resolve_params(params or {})
    problem = variant.problem(Problem.make(a, n, dtype, seed, matrix=label), params)
    prepared = variant.build(problem, **params)
    outs = []
    try:
        for attempt in range(2):
            prepared.poison()
            prepared.run()
            prepared.sync()
            c = np.array(prepared.fetch(), copy=True)
            res = problem.check(c, problem.tolerance_for(prepared.precision))
            assert res.ok, f"{variant.id} {params} on {label} N={n} run {attempt + 1}: {res.message}"
            outs.append(c)
    finally:
        prepared.release()
    if variant.deterministic:
        assert np.array_equal(outs[0], outs[1]), f"{variant.id} {params} on {label}: bits differ between runs"
