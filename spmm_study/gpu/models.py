"""Data-movement models of the GPU rungs: pure functions of (Shape, params) -> Bytes (no numba import).

Each model takes the variant's *resolved* params (every Param present) and counts the bytes the kernel *requests* from the memory system (L1/L2/HBM), counting a re-read
each time, so the measured GB/s against the model says how well the caches served the re-reads. They sit
here rather than in ``spmm_study/movement.py`` so the GPU ladder owns them; ``compulsory`` (the floor) is
the shared one.
"""

from __future__ import annotations

from spmm_study.movement import Bytes, csr_a_bytes
from spmm_study.problem import Shape


def _panels(n: int, width: int) -> int:
    return max(1, -(-n // max(1, width)))


def dense_naive(s: Shape, p: dict | None = None) -> Bytes:
    """One thread per C entry over dense A: each thread reads a row of A (K values) and a column of B."""
    v = s.value_bytes
    return Bytes(s.m * s.n * s.k * v, s.m * s.n * s.k * v, s.m * s.n * v)


def dense_tiled(s: Shape, p: dict) -> Bytes:
    """Shared-memory tiles of T×T: A is read N/T times, B M/T times (each tile load feeds T threads)."""
    v, t = s.value_bytes, p["tile"]
    return Bytes(s.m * s.k * v * _panels(s.n, t), s.k * s.n * v * _panels(s.m, t), s.m * s.n * v)


def csr_row_thread(s: Shape, p: dict | None = None) -> Bytes:
    """Thread per row, i→j→p: the row of A is re-read for each of the N columns; B once per nonzero."""
    return Bytes(csr_a_bytes(s) * s.n, s.nnz * s.n * s.value_bytes, s.m * s.n * s.value_bytes)


def csr_panel(width_of):
    """Row-wise CSR kernels whose block covers a panel of ``width_of(p)`` columns: A re-read once per
    panel, one B row segment per nonzero (reuse between rows only through L1/L2), C written once."""

    def model(s: Shape, p: dict) -> Bytes:
        w = width_of(p)
        return Bytes(csr_a_bytes(s) * _panels(s.n, w), s.nnz * s.n * s.value_bytes, s.m * s.n * s.value_bytes)

    model.__doc__ = csr_panel.__doc__
    return model


def csr_densify(s: Shape, p: dict) -> Bytes:
    """Densify-and-tile: each block copies dense B tiles (all K rows, its panel) once into shared memory for
    its ``rows`` rows, so B moves ceil(M/rows)·K·N; A once per panel; C once."""
    rows = p["warps"] * p["rows_per_warp"]
    width = 32 * p["vec"]
    return Bytes(csr_a_bytes(s) * _panels(s.n, width), _panels(s.m, rows) * s.k * s.n * s.value_bytes,
                 s.m * s.n * s.value_bytes)


def coo_atomic(s: Shape, p: dict) -> Bytes:
    """COO, a thread per (nonzero, column): row, column and value per nonzero re-read per column block;
    B once per nonzero; C zeroed once, then read-modify-written by an atomic per nonzero per column."""
    width = p["block_x"]
    a = s.nnz * (s.value_bytes + 2 * s.index_bytes) * _panels(s.n, width)
    return Bytes(a, s.nnz * s.n * s.value_bytes, s.m * s.n * s.value_bytes * 1 + 2 * s.nnz * s.n * s.value_bytes)


def structured24(s: Shape, p: dict) -> Bytes:
    """2:4: values M·K/2 and one byte of metadata per value, re-read per column panel; every slot reads a
    B row segment (padding slots too); C once."""
    width = p["block_x"] * p["vec"]
    slots = s.m * (-(-s.k // 4)) * 2
    return Bytes(slots * (s.value_bytes + 1) * _panels(s.n, width), slots * s.n * s.value_bytes,
                 s.m * s.n * s.value_bytes)


def nm24_library(s: Shape, p: dict | None = None) -> Bytes:
    """cuSPARSELt on a 2:4 matrix: not modelled from its source; assume ideal blocking, each operand moved once,
    A compressed (M·K/2 values and 2 bits of position each)."""
    v = s.value_bytes
    slots = s.m * (-(-s.k // 4)) * 2
    return Bytes(slots * v + slots / 4, s.k * s.n * v, s.m * s.n * v)


def dense_library(s: Shape, p: dict | None = None) -> Bytes:
    """cuBLAS on dense A: assume ideal blocking, each operand moved once (A dense M·K)."""
    v = s.value_bytes
    return Bytes(s.m * s.k * v, s.k * s.n * v, s.m * s.n * v)


def sparse_library(s: Shape, p: dict | None = None) -> Bytes:
    """cuSPARSE CSR SpMM: not modelled from its source; the compulsory bytes stand in."""
    return Bytes(csr_a_bytes(s), s.k_touched * s.n * s.value_bytes, s.m * s.n * s.value_bytes)
