"""Rung 2 — dense GEMM, loop interchange: the same three loops in any of the six orders.

What changed from rung 1 (``cpu.dense.naive``, i→j→k): nothing but the nesting order of the loops over
i (rows of A and C), j (columns of B and C) and k (the shared dimension). The arithmetic is identical —
2·M·K·N flops on A expanded to dense — yet the time changes by an order of magnitude, because the
innermost loop decides the memory access pattern (C is row-major, so j is the unit-stride index of B and C,
k the unit-stride index of A):

=====  ============================================  ==========================================
order  innermost loop walks                          expect
=====  ============================================  ==========================================
ijk    A row (unit), B column (stride N)             a 64-byte line per B element; a reduction
jik    same as ijk, C filled column by column         about as slow as ijk
ikj    B row and C row (both unit stride)            vectorises; B streamed M times: fastest
kij    B row and C row (unit stride)                 like ikj, C re-read K times from cache
jki    A column and C column (stride K and N)        two lines per element: slowest
kji    A column and C column                         like jki
=====  ============================================  ==========================================

Why ``order`` is a Param and not six variants (docs/ARCHITECTURE.md §4: "if the loop nest changes it is a new
variant"): the six are one loop nest permuted — the body, the operands and the traffic formula
(``movement.dense_order``) are the same, only the nesting is chosen. One entry with a strict six-way choice
keeps ``list`` readable and lets a sweep put the orders on one axis (``--param order=jki``). The orders that
accumulate (all but ijk and jik) zero C first; that pass is part of the measured time.

Compiled without fastmath, so the k-innermost orders do not vectorise their reduction (that would
reassociate the sum): this rung is about the order, not about the compiler's licence.

Loop order: the ``order`` Param, outer to inner. Traffic: ``movement.dense_order`` (the innermost loop's
strides, a 64-byte line per strided element). What to look at: time against the modelled bytes across the
six orders — the model ranks them as the clock does.
Measured (ffn_conv1 at 90%, 2048×512, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): ikj 10.7 ms, kij 16.4 ms, ijk 298 ms, jik 350 ms, kji 1.19 s, jki 1.93 s —
180× between the best and the worst order of the same arithmetic.
"""

from numba import njit

from spmm_study import movement
from spmm_study.registry import Param, host_prepared, variant

ORDERS = ("ijk", "ikj", "jik", "jki", "kij", "kji")


@njit(cache=True)
def dense_ijk(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    for i in range(m):
        for j in range(n):
            acc = 0.0
            for p in range(k):
                acc += a[i, p] * b[p, j]
            c[i, j] = acc


@njit(cache=True)
def dense_jik(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    for j in range(n):
        for i in range(m):
            acc = 0.0
            for p in range(k):
                acc += a[i, p] * b[p, j]
            c[i, j] = acc


@njit(cache=True)
def dense_ikj(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    c[:, :] = 0.0
    for i in range(m):
        for p in range(k):
            v = a[i, p]
            for j in range(n):
                c[i, j] += v * b[p, j]


@njit(cache=True)
def dense_kij(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    c[:, :] = 0.0
    for p in range(k):
        for i in range(m):
            v = a[i, p]
            for j in range(n):
                c[i, j] += v * b[p, j]


@njit(cache=True)
def dense_jki(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    c[:, :] = 0.0
    for j in range(n):
        for p in range(k):
            v = b[p, j]
            for i in range(m):
                c[i, j] += a[i, p] * v


@njit(cache=True)
def dense_kji(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    c[:, :] = 0.0
    for p in range(k):
        for j in range(n):
            v = b[p, j]
            for i in range(m):
                c[i, j] += a[i, p] * v


KERNELS = {"ijk": dense_ijk, "ikj": dense_ikj, "jik": dense_jik, "jki": dense_jki, "kij": dense_kij, "kji": dense_kji}


@variant("cpu.dense.order", loop_order="order (Param)", movement=movement.dense_order,
         params=(Param("order", "ikj", ORDERS, "nesting of the i, j, k loops, outer to inner", strict=True),))
def build(problem, order):
    """Dense GEMM in any of the six loop orders (Param order): same flops, different strides."""
    a = problem.a.to_dense()
    b = problem.b
    c = problem.new_output()
    kern = KERNELS[order]
    return host_prepared(lambda: kern(a, b, c), c, {"order": order})
