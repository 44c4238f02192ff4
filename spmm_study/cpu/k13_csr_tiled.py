"""Rung 13 — CSR, N-tiled and register-blocked, ``prange`` over nnz-balanced row parts: the tuned CSR kernel.

What changed from rung 12, the parallel row-wise rung (``cpu.csr.rowwise_par``): the row of C is no longer built in
memory. For each row i and each tile of ``tile_n`` columns, the partial row ``acc[0:tile_n]`` lives in a
fixed-size stack array that LLVM promotes to vector registers (``tile_n = 256`` fp32 = 16 zmm registers
of AVX-512, out of 32); every nonzero then costs ``tile_n/16`` vector loads of B and as many FMAs, with no
load or store of C at all, and C is written once per tile. The row-wise rung instead loads and stores
``C[i, j]`` for every nonzero (2 extra memory operations per FMA), so the kernel is bound by the L1
load/store ports rather than by the FMA units.

Loop order: part t (prange) → row i → column tile j0 → nonzero p → j (unrolled, in registers).

Why each choice (numbers from experiments/notes-cpu.md, AMD EPYC Zen5, DLMC ffn_conv1 at 90%, N = 256):

* ``tile_n`` (default 0: from the machine, ``machine_tile_n``): the widest of 256, 128, 64 that is no wider
  than N (a wider tile leaves every column to the row-wise tail loop) and whose K × tile_n panel of B fits
  this machine's L2 (sysfs). Timed (data/reference/cpu-tiled-tiles.csv: synthetic 90% FFN weights, one
  thread, warm, AMD EPYC Zen 4 KVM guest with a 1 MiB L2 per core, 2026-12-07): ffn1 at N = 100 0.98 ms with
  the default (64) against 1.23 ms at 256; ffn2 (K = 2048) at N = 1024 6.63 ms with the default (128, a 1 MiB
  panel) against 6.70 ms at 256 and 9.89 ms at 64 (A re-read 16 times), at N = 256 1.18 ms against 1.25 ms
  at 256. The README's main job (K = 512, N = 256) gets 256 on any L2 of 512 KiB
  or more. Why 256 at most: the accumulator must fit in the register file and the tile width must be a compile-time
  constant (each value is its own compiled kernel). 256 covers N = 256 in one pass, so A's indices and
  values are read once; smaller tiles re-read the row's nonzeros N/tile_n times. Below 64 LLVM fully
  unrolls the j-loop *before* the loop vectoriser sees it, and the SLP vectoriser does not put the 16 or 32
  scalar accumulators back into vectors: ``experiments/cpu_asm.py`` counts 73 scalar FMAs (41 for tile_n = 32)
  beside 4 zmm ones in the tails, against 20 zmm FMAs (16 in the main loop) for 256, and the time is 5–7×
  worse. Kept as choices for that lesson.
* B rows are taken as fixed-size views from a raw pointer (``numba.carray(elem_ptr(b, k·N + j0), tile_n)``)
  and the nonzero loop counts with an unsigned integer. Indexing ``b[k, j0 + j]`` made LLVM emit gathers
  (numba's negative-index wraparound makes each lane's address different; 4–5× slower); a slice
  ``b[k, j0:j0+tile_n]`` fixed that but still cost about 20 scalar instructions per nonzero for bounds
  clamping and index wraparound next to the 16 FMAs; the pointer view removes them: 0.94 → 0.67 ms with
  one thread (warm), 1.4× (notes-cpu.md §1).
* ``fastmath={"contract"}`` only: a·b + c becomes one FMA (one rounding instead of two, more accurate).
  No reassociation is needed — each lane sums its nonzeros in stored order — so results are bitwise
  deterministic and independent of the thread count.
* ``balance``: see ``spmm_study.cpu.balance``; the per-thread nonzeros land in the result's ``info``.
* ``pack_b``: a 64-byte vector load from B that starts 16 bytes into a cache line touches two lines: 0.74 ms
  against 0.54 ms with B on a 64-byte boundary (one thread, warm; numpy's own buffers are 16-byte aligned).
  ``Problem.make`` therefore hands out B 64-byte aligned, and then nothing is copied. Only a B from
  elsewhere that is misaligned is copied, like a BLAS packing B, into an aligned buffer at the start of each
  call (0.5 MiB here, ≈ 0.03 ms, inside the measured time); ``info`` says which (``b_offset_bytes``,
  ``b_packed``) and the model counts the copy only then (``movement.b_copy_bytes``).
* Columns past the last full tile (N mod tile_n) are done row-wise into C directly.

Traffic (``movement.csr_tiled``): A read ceil(N/tile_n) times, one tile-row of B per nonzero per tile
(nnz·N values in all, from L2: B is 512 KiB for K = 512, N = 256), C written exactly once; a copy of B
only when B was misaligned and ``pack_b`` is on.

What to look at: GFLOP/s against the row-wise rungs, and ``imbalance`` in info for the balance choices.
The README's main job (``run --variant tiled``: synthetic ffn1 at 90%, N = 256, cold, defaults, so tile_n
256), one thread, least CPU time of interleaved rounds (data/reference/cpu-tiled-main.csv, AMD EPYC Zen 4
KVM guest with 2 shared cores, 2026-12-07 21:57 UTC, load average 9–10): 1.23 ms against 2.86 ms for MKL
(2.3×) and 2.51 ms for MKL with its inspector step once (2.0×); at 2 threads (least wall time, on a loaded
machine) 0.80 ms against 3.05 and 2.81 ms. MKL's sparse kernels run far below their Intel speed on this AMD
guest: on the Intel Xeon guest of 2026-12-02 the same job was 0.88× MKL (issue 24), not re-measured here.
Measured (ffn_conv1 at 90%, N = 256, fp32, cold; AMD EPYC Zen 5, 2 shared cores, 2026-11-23,
data/reference/cpu-ladder.csv): 405 µs, 132 GFLOP/s on 2 threads (tile_n 256) against 951 µs for rung 12;
tile_n 16: 2.65 ms (the unroll-before-vectorise cliff above).

The kernel factory is in ``_tiled.py``, which rung 60 (im2col convolution) and the networks run too.
"""

from __future__ import annotations

import numba

from spmm_study import movement
from spmm_study.cpu.balance import balance_param, partition, rows_per_task_param, scheduled, spread
from spmm_study.cpu._simd import MAX_STACK_VALUES, pack_b_param, packed_operand
from spmm_study.cpu._tiled import kernel
from spmm_study.registry import Param, host_prepared, variant

TILE_CHOICES = (0, 16, 32, 64, 128, 256)
L2_FALLBACK = 1 << 20  # where sysfs does not say (the smallest per-core L2 of the machines this was measured on)


def machine_tile_n(n: int, k: int, value_bytes: int = 4, l2_bytes: int | None = None) -> int:
    """``tile_n = 0`` (the default): the widest of 256, 128, 64 that (1) is no wider than N — a wider tile
    leaves every column to the row-wise tail loop — and (2) whose panel of B (K rows × tile_n values), which
    every row of A reads from while the tile is computed, fits in this machine's L2 (``environment.cache_bytes``);
    64 when none does (below 64 the register tile falls off the unroll cliff)."""
    if l2_bytes is None:
        from spmm_study.environment import cache_bytes

        l2_bytes = cache_bytes("L2") or L2_FALLBACK
    for tile in (256, 128):
        if tile <= n and k * tile * value_bytes <= l2_bytes:
            return tile
    return 64


def resolved_tile_n(s, params: dict) -> int:
    return int(params.get("tile_n", 0)) or machine_tile_n(s.n, s.k, s.value_bytes)


def traffic(s, params: dict):
    """``movement.csr_tiled`` with the tile width the build will use (``tile_n = 0`` resolved as above)."""
    return movement.csr_tiled(s, {**params, "tile_n": resolved_tile_n(s, params)})


@variant(
    "cpu.csr.tiled", loop_order="t‖→i→j0→p→j", movement=traffic,
    params=(
        Param("tile_n", 0, TILE_CHOICES, "columns of C held in registers per row (a compile-time constant: one "
              "kernel per value); 0: the widest of 256/128/64 no wider than N whose B panel fits this machine's L2",
              minimum=0, maximum=MAX_STACK_VALUES),
        balance_param("nnz"),
        rows_per_task_param(),
        pack_b_param(),
    ),
)
def build(problem, tile_n, balance, rows_per_task, pack_b):
    """CSR register-blocked over N (acc of tile_n floats in vector registers), prange with balanced rows."""
    a = problem.a
    threads = numba.get_num_threads()
    row_nnz = a.row_lengths()
    rows, bounds = partition(row_nnz, threads, balance, rows_per_task)
    info = spread(row_nnz, rows, bounds, balance, threads)
    if tile_n == 0:
        tile_n = machine_tile_n(problem.n, problem.k, problem.b.dtype.itemsize)
        info["tile_n_from"] = "machine (N and L2)"
    info["tile_n"] = tile_n
    k = kernel(tile_n)
    c = problem.new_output()
    b_use, refresh_b, b_info = packed_operand(problem.b, pack_b)
    info.update(b_info)
    args = (rows, bounds, a.indptr, a.indices, a.data, b_use, c)

    def call():
        refresh_b()  # part of every call: B is an input and may change between calls
        k(*args)

    return host_prepared(scheduled(call, balance), c, info)
