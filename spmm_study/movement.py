"""Data-movement models: pure functions of (Shape, params) returning the bytes each operand moves.

``compulsory`` is the floor: read A once (values, indices, offsets), read each *touched* row of B once,
write C once. Every variant also has a model of the traffic its loop nest generates *through the cache
hierarchy* (loads and stores the kernel issues, counting a re-read each time), so a student can set the
measured time beside what the loop order predicts. Each model's docstring states its assumption.

Functions take the problem's ``Shape`` and the variant's resolved params and return ``Bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from spmm_study.problem import Shape


@dataclass(frozen=True)
class Bytes:
    a: float
    b: float
    c: float

    @property
    def total(self) -> float:
        return self.a + self.b + self.c


def csr_a_bytes(s: Shape) -> float:
    """A in CSR: values and column indices per nonzero, plus M+1 row offsets."""
    return s.nnz * (s.value_bytes + s.index_bytes) + (s.m + 1) * s.index_bytes


def dense_a_bytes(s: Shape) -> float:
    return s.m * s.k * s.value_bytes


def compulsory(s: Shape, params: dict | None = None) -> Bytes:
    """The floor: A once, the touched rows of B once, C written once (no cache can do better)."""
    return Bytes(csr_a_bytes(s), s.k_touched * s.n * s.value_bytes, s.m * s.n * s.value_bytes)


def dense_ijk(s: Shape, params: dict | None = None) -> Bytes:
    """i→j→k over dense A: for every (i, j) a row of A and a *column* of B (stride N) are read; with no
    reuse from the cache, B is read M times in full and A N times. C is written once (kept in a register)."""
    v = s.value_bytes
    return Bytes(s.m * s.n * s.k * v, s.m * s.n * s.k * v, s.m * s.n * v)


def csr_rowwise(s: Shape, params: dict | None = None) -> Bytes:
    """i→p→j over CSR: A is streamed once; each nonzero re-reads one row of B (N values); each row of C is
    written once. Reuse of B rows between nonzeros comes only from the caches, which this model ignores."""
    return Bytes(csr_a_bytes(s), s.nnz * s.n * s.value_bytes, s.m * s.n * s.value_bytes)


def dense_blas(s: Shape, params: dict | None = None) -> Bytes:
    """A tuned BLAS GEMM over dense A: assume ideal blocking, so each operand moves once (A dense: M·K)."""
    v = s.value_bytes
    return Bytes(s.m * s.k * v, s.k * s.n * v, s.m * s.n * v)
