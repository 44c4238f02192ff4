"""What the CPU chain (chain.py) and the GPU chain (chain_gpu.py) share: the dense transposed inputs and the
per-layer row. It stands below both, so the GPU chain no longer imports the CPU chain that dispatches to it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spmm_study.formats import CSR
from spmm_study.memory import aligned_empty


def dense_inputs_t(y0: CSR, src: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Yᵀ_0 (neurons × batch, 64-byte aligned): column j is image src[j]."""
    width = y0.k
    out = aligned_empty((width, src.size), dtype)
    out.fill(0)
    sp = y0.to_scipy().tocsr()
    rows = sp[src]  # batch × neurons, sparse
    coo = rows.tocoo()
    out[coo.col, coo.row] = coo.data.astype(dtype)
    return out


@dataclass
class LayerRow:
    layer: int
    live_in: int
    live_out: int
    nnz: int
    time_s: float
