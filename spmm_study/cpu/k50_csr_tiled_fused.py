"""Rung 50 — the fused layer: C = act(A·B + bias) with the epilogue applied in registers (rung 13's loop nest).

What changed from rung 13 (``cpu.csr.tiled``): nothing in the loop nest (its two inner loops, a row's
register tile and a row's tail, are ``_tiled.py``'s own, called here); when a row's tile of
``tile_n`` accumulators is complete in vector registers, the bias is added (per output row — Sputnik's
convention — or, under the Sparse DNN challenge's rule, only where the accumulated product is nonzero),
then relu or relu clamped at ``ymax``, and only then is the tile stored. The activation, the bias rule and
the tile width: the width is a compile-time constant, the rule and activation loop-invariant run-time
integers (LLVM unswitches the store loop on them), so the epilogue is a few vector instructions per 16
outputs (a compare-and-blend for the nonzero rule, a max, a min).

The lesson is the traffic it saves. A layer of a network computed unfused is an SpMM that writes C, then an
elementwise pass that reads C and writes it again (numpy: ``C += b[:, None]; np.maximum(C, 0, out=C)``,
which is two passes: read+write each). Fused, C is written exactly once. For the Sparse DNN challenge's
1024-neuron layers (32 nonzeros per row) an output row costs 32 row-reads of B (from cache) and one write
of C; the unfused epilogue adds 2·2 = 4 more M×N memory sweeps, from DRAM once C outgrows the caches.

Second change, for large N: the column panel loop is outside the row loop. Rung 13 walks, for each row,
all N columns (j0 inside i), so each row touches nnz_i·N values of B: for the DLMC FFN's second layer
(K = 2048) at N = 2048 that is a 16 MiB B swept from L3 by every row. Here each thread takes a panel of
``tile_n`` columns and runs all its rows over it, so the panel (K·tile_n values: 512 KiB at K = 512,
2 MiB at K = 2048) is reused from L2 across rows. For N ≤ tile_n the two orders are the same loop.
And with several panels the panel is first copied into the thread's own contiguous buffer (K rows of
tile_n values): read in place, B's rows sit N values apart, and for N = 2048 that power-of-two stride
(8 KiB) maps every row's segment onto the same few cache sets, so the panel did not stay in L2 after all.
Packing took the FFN block (DLMC encoder layer 0, N = 2048, one thread) from 0.79 s to 0.36 s at 80% and
from 0.41 s to 0.15 s at 90% (Intel Xeon 2-core VM, loaded: ratios, not absolute times).

Loop order: part t (prange) → column tile j0 → row i → nonzero p → j (in registers) → epilogue → store.

Traffic (``fused_tiled`` below): rung 13's model plus the bias (M values); the unfused chain's model is
rung 13's plus 4·M·N values (``unfused_epilogue_bytes``). Results are bitwise independent of the thread
count (each lane sums its nonzeros in stored order, as in rung 13).

What to look at: time against ``cpu.csr.tiled`` on the same problem (the epilogue should be nearly free),
and against the unfused chain (``spmm-study infer --engine scipy`` or the ``chain`` baseline of
``spmm_study.nets.chain``). Measured figure: see docs/infer.md (the challenge's 1024 × 120
network, 1200 inputs, fused chain against scipy's, with the machine and date of its run).
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from spmm_study import movement
from spmm_study.cpu.balance import balance_param, partition, spread
from spmm_study.cpu._simd import MAX_STACK_VALUES, elem_ptr, packed_operand, stack_empty
from spmm_study.cpu._tiled import accumulate_tail, accumulate_tile
from spmm_study.problem import aligned_empty
from spmm_study.epilogue import ACT_CODE, RULE_CODE, epilogue_params, layer_problem
from spmm_study.registry import Param, host_prepared, variant

TILE_CHOICES = (16, 64, 256)
_PANELS: dict = {}
_EMPTY = {"float32": np.zeros(1, np.float32), "float64": np.zeros(1, np.float64)}
SERIAL_WORK = 1 << 20  # nonzeros × columns below which FusedLayer runs the serial kernel (≈ 0.1 ms of FMAs)


def fused_tiled(s, params=None) -> movement.Bytes:
    """Rung 13's traffic (A per column tile, one tile-row of B per nonzero, C written once) plus the bias and,
    with several panels, the packing of each panel (B read and written once per thread)."""
    base = movement.csr_tiled(s, params)
    tile = (params or {}).get("tile_n", 256)
    pack = 2 * s.k * s.n * s.value_bytes if s.n > tile else 0
    return movement.Bytes(base.a + s.m * s.value_bytes, base.b + pack, base.c)


def unfused_epilogue_bytes(m: int, n: int, value_bytes: int) -> int:
    """What the unfused elementwise pass adds: bias add (read + write C) and activation (read + write C)."""
    return 4 * m * n * value_bytes


@njit(inline="always")
def epi(x, bias_i, rule, act, ymax, zero):
    """The epilogue of one output: the bias by its rule, then the activation (all in registers)."""
    if rule == 0:  # row: Sputnik
        x += bias_i
    elif rule == 1:  # nonzero: the Sparse DNN challenge, Z + b·[Z != 0]
        if x != 0:
            x += bias_i
    if act >= 1:
        x = max(x, zero)
    if act == 2:
        x = min(x, ymax)
    return x


@lru_cache(maxsize=None)
def kernel(tile_n: int, parallel: bool = True):
    """One compiled kernel per tile width (a closure constant). The bias rule and the activation are run-time
    integers: they are loop-invariant, so LLVM unswitches the store loop on them, and one compiled kernel
    serves the nine combinations (a compile-time constant each cost a parallel compile of ~7 s apiece)."""
    TN = int(tile_n)
    PARALLEL = bool(parallel)

    @njit(parallel=PARALLEL, fastmath={"contract"}, cache=True)
    def csr_tiled_fused(rows, bounds, indptr, indices, data, b, c, bias, rule, act, ymax, panel):
        # numba's on-disk cache keys a kernel on its bytecode and closure values, not on njit's options: naming
        # PARALLEL in the body keeps the serial and the parallel build apart (without it, whichever was compiled
        # first was loaded for both, and the rung could run the serial code at two threads)
        serial = not PARALLEL  # noqa: F841
        n = b.shape[1]
        kb = b.shape[0]
        n_full = n - n % TN
        ym = c.dtype.type(ymax)
        z0 = c.dtype.type(0.0)  # a float64 literal would promote the epilogue to float64
        bflat = b.reshape(b.size)  # 1-D like the panel buffer (one type for ``src``)
        pack = n > TN  # several panels: B's rows are n values apart, a power-of-two stride that aliases in cache
        for t in prange(bounds.size - 1):
            acc = numba.carray(stack_empty(TN, b.dtype), TN)
            # column panel outermost: the panel B[:, j0:j0+TN] (K·TN values, 512 KiB for K = 512) stays in
            # L2 while every row of this part reads it, instead of each row sweeping all of B's N columns
            for j0 in range(0, n_full, TN):
                src = bflat
                stride = n
                off = j0
                if pack:  # copy the panel to this thread's contiguous buffer: rows TN values apart
                    for kk in range(kb):
                        dst = numba.carray(elem_ptr(panel, np.int64(t) * kb * TN + kk * TN), TN)
                        sv = numba.carray(elem_ptr(b, np.int64(kk) * n + j0), TN)
                        for j in range(TN):
                            dst[j] = sv[j]
                    src = panel
                    stride = TN
                    off = np.int64(t) * kb * TN
                for r in range(bounds[t], bounds[t + 1]):
                    i = rows[r]
                    bi = bias[i]
                    accumulate_tile(acc, TN, data, indices, np.uint64(indptr[i]), np.uint64(indptr[i + 1]), src,
                                    stride, off)
                    crow = numba.carray(elem_ptr(c, np.int64(i) * n + j0), TN)
                    for j in range(TN):
                        crow[j] = epi(acc[j], bi, rule, act, ym, z0)
            if n_full < n:  # the tail, accumulated in C, then the epilogue in place
                for r in range(bounds[t], bounds[t + 1]):
                    i = rows[r]
                    bi = bias[i]
                    ctail = accumulate_tail(c, i, n_full, n, indptr, indices, data, b)
                    for j in range(n - n_full):
                        ctail[j] = epi(ctail[j], bi, rule, act, ym, z0)

    return csr_tiled_fused


class FusedLayer:
    """A layer A prepared once (partition, compiled kernel) and applied to any B with N columns: what
    ``infer`` calls per layer, and what the variant's ``run`` calls."""

    def __init__(self, a, bias: np.ndarray, act: str = "relu", rule: str = "row", ymax: float = 32.0,
                 tile_n: int = 256, balance: str = "nnz", threads: int | None = None, serial_below: int = SERIAL_WORK):
        self.a = a
        self.bias = np.ascontiguousarray(bias, dtype=a.dtype)
        self.ymax = float(ymax)
        threads = threads or numba.get_num_threads()
        row_nnz = a.row_lengths()
        self.rows, self.bounds = partition(row_nnz, threads, balance, 64)
        self.info = spread(row_nnz, self.rows, self.bounds, balance, threads)
        self.k = kernel(tile_n)
        self.tile_n = tile_n
        self.serial_rows, self.serial_bounds = partition(row_nnz, 1, "static")
        self.parallel = threads > 1
        self.serial_below = serial_below
        self.rule, self.act = RULE_CODE[rule], ACT_CODE[act]

    def panel(self, parts: int, n: int) -> np.ndarray:
        """This layer's per-thread panel buffers (parts × K·tile_n), shared by layers of the same K: one
        64-byte-aligned allocation per shape for the process, not one per call (first touch costs page faults)."""
        if n <= self.tile_n:
            return _EMPTY[self.a.dtype.name]
        key = (parts, self.a.k, self.tile_n, self.a.dtype.name)
        buf = _PANELS.get(key)
        if buf is None:
            buf = _PANELS[key] = aligned_empty((parts * self.a.k * self.tile_n,), self.a.dtype)
        return buf

    def warm(self) -> None:
        """Compile (or load from numba's cache) both the parallel and the serial kernel, on one column."""
        a = self.a
        b = np.zeros((a.k, 1), a.dtype)
        c = np.empty((a.m, 1), a.dtype)
        for k, rows, bounds in ((self.k, self.rows, self.bounds),
                                (kernel(self.tile_n, False), self.serial_rows, self.serial_bounds)):
            k(rows, bounds, a.indptr, a.indices, a.data, b, c, self.bias, self.rule, self.act, self.ymax,
              _EMPTY[a.dtype.name])

    def __call__(self, b: np.ndarray, c: np.ndarray) -> None:
        a = self.a
        if self.parallel and b.shape[1] * a.nnz < self.serial_below:
            # a few live inputs: a layer is microseconds of work, less than waking and joining the thread pool
            # (on a shared 2-core VM the join can wait a whole scheduler slice); run it on this thread
            kernel(self.tile_n, False)(self.serial_rows, self.serial_bounds, a.indptr, a.indices, a.data, b, c,
                                       self.bias, self.rule, self.act, self.ymax, self.panel(1, b.shape[1]))
            return
        self.k(self.rows, self.bounds, a.indptr, a.indices, a.data, b, c, self.bias, self.rule, self.act, self.ymax,
               self.panel(self.bounds.size - 1, b.shape[1]))


@variant(
    "cpu.csr.tiled_fused", loop_order="t‖→j0→i→p→j→epi", movement=fused_tiled,
    params=(
        Param("tile_n", 256, TILE_CHOICES, "columns of C held in registers per row (compile-time constant)", minimum=1,
              maximum=MAX_STACK_VALUES),
        *epilogue_params(),
        Param("balance", "nnz", ("static", "nnz", "sorted"), "how rows are split across threads", strict=True),
        Param("pack_b", True, (True, False), "copy a misaligned B into a 64-byte-aligned buffer (timed)"),
    ),
    problem_for=layer_problem,
)
def build(problem, tile_n, act, bias, ymax, balance, pack_b):
    """CSR register-blocked layer C = act(A·B + bias): rung 13 with the bias and activation applied in registers."""
    problem = layer_problem(problem, {"act": act, "bias": bias, "ymax": ymax})  # as the harness gives it
    layer = FusedLayer(problem.a, problem.bias, act, bias, ymax, tile_n, balance, serial_below=0)  # the rung as it is
    c = problem.new_output()
    b_use, refresh_b, b_info = packed_operand(problem.b, pack_b)
    info = dict(layer.info, tile_n=tile_n, act=act, bias=bias, **b_info)

    def run():
        refresh_b()
        layer(b_use, c)

    return host_prepared(run, c, info)
