"""The sparse transformer FFN block, y = W2·relu(W1·x + b1) + b2, fused sparse layers against dense BLAS.

W1 (hidden × model, DLMC ``ffn_conv1``) and W2 (model × hidden, ``ffn_conv2``) of one layer; x is model × N
(N tokens). The sparse path is two fused CPU layers (``cpu.csr.tiled_fused``: relu(W1·x + b1) stored once,
then W2·h + b2); the dense path is numpy's BLAS sgemm on the densified weights, then the bias and relu in
numpy (what a dense framework does). Both are checked against the float64 block before being timed, and
timed interleaved (dense, sparse, dense, ...) so that a busy machine slows both alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.formats import CSR
from spmm_study.memory import aligned_empty


@dataclass
class FfnResult:
    n: int
    sparse_s: float
    dense_s: float
    sparse_err: float
    dense_err: float

    @property
    def sparse_tokens_per_s(self) -> float:
        return self.n / self.sparse_s

    @property
    def dense_tokens_per_s(self) -> float:
        return self.n / self.dense_s

    @property
    def speedup(self) -> float:
        return self.dense_s / self.sparse_s


def reference(w1: CSR, w2: CSR, b1, b2, x) -> np.ndarray:
    h = np.maximum(np.asarray(w1.astype(np.float64).to_scipy() @ x.astype(np.float64)) + b1[:, None], 0)
    return np.asarray(w2.astype(np.float64).to_scipy() @ h) + b2[:, None]


def _rel(y, ref) -> float:
    return float(np.linalg.norm(y.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-300))


def run_block(w1: CSR, w2: CSR, n: int, repeats: int = 5, seed: int = 0, tile_n: int = 256) -> FfnResult:
    from spmm_study.cpu.k50_csr_tiled_fused import FusedLayer

    if w2.k != w1.m or w1.k != w2.m:
        raise ParamError(f"W1 is {w1.m}x{w1.k} and W2 {w2.m}x{w2.k}: not an FFN pair (W2 must be {w1.k}x{w1.m})")
    if n < 1 or repeats < 1:
        raise ParamError("tokens and repeats must be at least 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xFF]))
    b1 = (0.1 * rng.standard_normal(w1.m)).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(w2.m)).astype(np.float32)
    x = aligned_empty((w1.k, n), np.float32)
    x[...] = rng.standard_normal((w1.k, n), dtype=np.float32)
    w1f, w2f = w1.astype(np.float32), w2.astype(np.float32)
    l1 = FusedLayer(w1f, b1, "relu", "row", tile_n=tile_n)
    l2 = FusedLayer(w2f, b2, "none", "row", tile_n=tile_n)
    h = aligned_empty((w1.m, n), np.float32)
    y = aligned_empty((w2.m, n), np.float32)
    d1, d2 = w1f.to_dense(), w2f.to_dense()

    def sparse():
        t0 = time.perf_counter()
        l1(x, h)
        l2(h, y)
        return time.perf_counter() - t0

    def dense():
        t0 = time.perf_counter()
        hd = d1 @ x
        hd += b1[:, None]
        np.maximum(hd, 0, out=hd)
        yd = d2 @ hd
        yd += b2[:, None]
        dense.y = yd
        return time.perf_counter() - t0

    sparse()
    dense()
    ref = reference(w1f, w2f, b1, b2, x)
    err_s, err_d = _rel(y, ref), _rel(dense.y, ref)
    if not (err_s < 1e-4 and err_d < 1e-4):
        raise AssertionError(f"FFN block wrong: sparse rel err {err_s:.2e}, dense {err_d:.2e}")
    pairs = [(dense(), sparse()) for _ in range(repeats)]
    return FfnResult(n, float(np.median([p[1] for p in pairs])), float(np.median([p[0] for p in pairs])), err_s, err_d)
