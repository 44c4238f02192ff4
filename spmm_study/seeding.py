"""Seeds and seeded data: the one place that turns a seed into numbers.

Pattern-only matrices (DLMC ``.smtx``) get standard-normal values from the matrix seed (``seeded_values``);
the dense operand B of every problem is standard normal from the problem seed (``seeded_b``). Separate
streams (``SeedSequence([seed, 0xA])`` and ``[seed, 0xB]``) keep A's values and B independent.
"""

from __future__ import annotations

import numpy as np

from spmm_study.dtypes import quantize_int8
from spmm_study.errors import ParamError
from spmm_study.memory import aligned_full


def check_seed(seed) -> int:
    """Seeds feed numpy's SeedSequence, which takes non-negative integers only."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParamError(f"seed {seed!r} must be a non-negative integer")
    return int(seed)


def seeded_values(nnz: int, seed: int, dtype) -> np.ndarray:
    """Values for pattern-only matrices: standard normal, from the matrix seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA]))
    return rng.standard_normal(nnz).astype(dtype)


def seeded_b(k: int, n: int, seed: int, dtype) -> np.ndarray:
    """The dense operand B (K×N, row-major, 64-byte aligned), standard normal, from the problem seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB]))
    b = aligned_full((k, n), 0, dtype)
    normal = rng.standard_normal((k, n), dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)
    b[...] = quantize_int8(normal) if np.dtype(dtype).kind in "iu" else normal  # half types: rounded to nearest
    return b
