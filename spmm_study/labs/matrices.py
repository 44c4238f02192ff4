"""Matrices the labs build: seeded synthetic ones (``sources.synthetic``), the power-law skew matrix, DLMC."""

from __future__ import annotations

import numpy as np

from spmm_study.errors import SpmmError
from spmm_study.formats import CSR


def uniform(m: int, k: int, sparsity: float, seed: int = 0) -> CSR:
    from spmm_study.sources import synthetic

    return synthetic("uniform", (m, k), sparsity, seed=seed)


def magnitude(m: int, k: int, sparsity: float, seed: int = 0) -> CSR:
    from spmm_study.sources import synthetic

    return synthetic("magnitude", (m, k), sparsity, seed=seed)


def nm24(m: int, k: int, seed: int = 0) -> CSR:
    from spmm_study.sources import synthetic

    return synthetic("nm", (m, k), 0.5, seed=seed)


def dense(m: int, k: int, seed: int = 0) -> CSR:
    """A dense operand stored as CSR with every entry present (the dense rungs expand it)."""
    from spmm_study.sources import synthetic

    return synthetic("uniform", (m, k), 0.0, seed=seed)


def powerlaw(m: int, k: int, mean_nnz: float, alpha: float = 1.1, seed: int = 0) -> CSR:
    """Row lengths ∝ 1/rank^alpha (a few very long rows, many short ones), scaled to ``mean_nnz`` per row
    and capped at K; rows are shuffled so the long ones are not all at the top; columns uniform per row."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    ranks = np.arange(1, m + 1, dtype=np.float64)
    w = ranks ** -alpha
    lengths = np.minimum(k, np.maximum(1, np.round(w / w.sum() * mean_nnz * m))).astype(np.int64)
    # the long rows sit in the first quarter, where a static split gives them all to thread 0
    head = max(1, m // 4)
    order = np.concatenate([rng.permutation(head), head + rng.permutation(m - head)])
    lengths = lengths[np.argsort(order, kind="stable")]
    indptr = np.zeros(m + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), np.int32)
    for i in range(m):
        cols = rng.choice(k, int(lengths[i]), replace=False)
        cols.sort()
        indices[indptr[i]:indptr[i + 1]] = cols
    data = rng.standard_normal(indices.size).astype(np.float32)
    return CSR((m, k), indptr.astype(np.int32), indices, data)


DLMC_FFN = "transformer/magnitude_pruning/0.9/body_decoder_layer_0_ffn_conv1_fully_connected"


DLMC_ROOT: str | None = None  # ``lab --dlmc-root``; None: $SPMM_STUDY_DLMC


def dlmc(path: str = DLMC_FFN) -> tuple[CSR | None, str]:
    """A DLMC matrix when the collection is here (``--dlmc-root`` or $SPMM_STUDY_DLMC), else (None, the reason)."""
    from spmm_study.sources import load

    try:
        return load(f"dlmc:{path}", dlmc_root=DLMC_ROOT).a, f"dlmc:{path}"
    except SpmmError as exc:
        return None, str(exc)
