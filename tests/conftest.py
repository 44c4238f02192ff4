"""Shared fixtures: the DLMC subset, and the edge matrices and variant checker of ``spmm_study.edge``.

``check_variant(variant, a, n, params)`` builds the problem, poisons C with NaN, runs, checks against the
float64 reference, poisons and runs again, checks again, and (for deterministic variants) demands the same
bits twice; a matrix the variant does not accept must be refused. It fails (``CheckFailed``) with the
variant, matrix and params in the message.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# the edge matrices and the checker live in the package, so `spmm-study check` runs exactly what the tests run
from spmm_study.edge import EDGE_N, check_variant, edge_matrices  # noqa: F401  (re-exported for the tests)

SHARED_DLMC = Path(__file__).resolve().parents[2] / "shared" / "dlmc"

# cpu.csr.auto remembers its inspections in a per-user cache: the tests (and the CLI they start) use one of
# their own, never the user's
if "SPMM_STUDY_AUTO_CACHE" not in os.environ:
    import tempfile

    os.environ["SPMM_STUDY_AUTO_CACHE"] = str(Path(tempfile.mkdtemp(prefix="spmm-auto-")) / "auto-inspect.json")


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
