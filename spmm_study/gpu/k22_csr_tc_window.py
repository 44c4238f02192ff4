"""GPU rung 22 — tensor cores on unstructured sparsity: 16-row windows condensed to their nonzero columns.

The published idea of TC-GNN, DTC-SpMM and SMaT, in its plainest form. The rows are cut into windows of 16;
each window keeps only the columns where any of its 16 rows has a nonzero (the union, sorted), padded to a
multiple of 8. That condensed 16×(8·nkb) block is *dense*, so it can go through the tensor cores: one warp
instruction ``mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32`` multiplies a 16×8 slice of it by the
8×8 block of B made of the 8 B rows those columns name (a gather) and 8 columns of C's panel.
Loop order: (window, J-panel)∥ → warp∥ (8·ntiles columns each) → k-block → mma per 8-column tile.

What changed from the CSR rungs: the multiply-adds leave the FP32 pipes (67 TFLOP/s of FFMA on an H100)
for the tensor cores (~495 TFLOP/s TF32, dense), at the price of multiplying the zeros the condensing keeps
(tile fill = nnz / slots, in ``info``) and of TF32 rounding. B is read once per k-block and panel
(8 rows × 8 columns per tile), not once per nonzero: with a fill of f, the B traffic is f·16 times lower
than one B row segment per nonzero when a window's rows share columns, and never higher than rung 13's.
Format, built on the host at build (``condense``): ``kb_ptr`` (k-blocks of each window), ``cols`` (8 column
indices per k-block), ``vals`` (a 16×8 row-major tile per k-block), ``rowmap`` (the matrix row of each
window slot, -1 for padding). ``reorder=True`` first clusters rows with similar column sets (MinHash over
the column set: rows sharing columns get equal hashes with probability = their Jaccard similarity), so a
window's union is smaller; C is still written in the original row order.

Arithmetic (``split``): ``tf32`` rounds A and B to TF32 (10-bit mantissa) and is checked against TF32's
own tolerance (``problem.PRECISIONS``); ``3xtf32`` splits each operand into hi + lo TF32 parts and sums
hi·hi + hi·lo + lo·hi — three mma, fp32-level accuracy, checked against fp32's tolerance.
Engines: ``mma`` calls the two device functions of ``csrc/mma_tf32.cu`` (numba cannot emit mma.sync;
NVRTC compiles them and numba links them: ``cuda.declare_device(..., link=...)``); ``fma`` is the same
format on FP32 FMAs in pure numba, with the same rounding emulated (Veltkamp splitting, round to nearest;
cvt.rna rounds exact ties away from zero, the only difference). The simulator cannot call linked code, so
there ``mma`` runs as ``fma`` (``info["engine"]`` says so).
``stage=True`` copies each k-block's 8 gathered B rows × the block's panel into shared memory (coalesced
along the rows, a padded pitch so the fragment reads are conflict-free), double-buffered: the next
k-block's loads are issued before this one's mma. Within one block each staged B element still feeds
exactly one warp's mma, so what staging buys is coalescing and loads in flight, not reuse; whether that
beats the direct 32-byte fragment loads is for the device to say. Not done: cp.async for the copy (a
linked device function, as for mma) and ldmatrix for A.
What to look at: ``tile_fill`` against the time; at which sparsity this beats cuBLAS TF32 dense (the
issue's target: faster on the 95% and 98% slices at N=2048).
Measured (NVIDIA H200, 2026-12-02, fp32 data, cold L2, the best of its measured configurations per problem,
64 layer-0 magnitude-pruned DLMC transformer matrices, data/reference/gpu-bench-h200.csv): it beats cuBLAS TF32
dense on none of them; geometric means at N = 2048 are 0.14× cuBLAS TF32 at 80% and 0.36× at 98% (against
cuBLAS fp32: 0.40× and 1.05×). On ffn_conv1 90%, N = 2048: 221.6 µs against 27.9 µs for cuBLAS TF32 and
92.5 µs for cuBLAS fp32. The target is missed: see experiments/tc_vs_tf32.py for the slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.errors import ParamError, ResourceError
from spmm_study.gpu import _params as gp
from spmm_study.gpu._kit import bind_cuda, ceil_div, cuda_module, device_bc, flat, kernel_prepared, link_ltoir
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.movement import Bytes
from spmm_study.registry import Param, variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None

WINDOW = 16  # rows per window: the M of m16n8k8
KB = 8  # condensed columns per k-block: the K of m16n8k8
TILE = KB * WINDOW  # values per k-block tile
MMA_SOURCE = Path(__file__).with_name("csrc") / "mma_tf32.cu"
MMA_FUNCS = {"tf32": "spmm_mma_tf32", "3xtf32": "spmm_mma_3xtf32"}


@dataclass(frozen=True)
class Windows:
    kb_ptr: np.ndarray  # int32, windows + 1: k-blocks of window w are kb_ptr[w]..kb_ptr[w+1]-1
    cols: np.ndarray  # int32, 8 per k-block: the B row of each condensed column (padding: 0, with zero values)
    vals: np.ndarray  # 16×8 row-major tile per k-block
    rowmap: np.ndarray  # int32, 16 per window: the row of A (and C) in each slot, -1 past the last row
    nnz: int

    @property
    def windows(self) -> int:
        return self.kb_ptr.size - 1

    @property
    def slots(self) -> int:
        return self.vals.size

    @property
    def fill(self) -> float:
        return self.nnz / self.slots if self.slots else 1.0


def minhash_order(a, seed: int = 0) -> np.ndarray:
    """Rows ordered so that rows with similar column sets are neighbours: by two MinHash values of the set
    (a random hash of every column, the minimum over the row), then by the first column; empty rows last."""
    m = a.m
    lengths = np.diff(np.asarray(a.indptr, dtype=np.int64))
    if m == 0 or a.nnz == 0:
        return np.arange(m, dtype=np.int64)
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(m), lengths)
    keys = []
    for _ in range(2):
        h = rng.permutation(a.k).astype(np.int64)[np.asarray(a.indices, dtype=np.int64)]
        mh = np.full(m, a.k, dtype=np.int64)
        np.minimum.at(mh, rows, h)
        keys.append(mh)
    first = np.full(m, a.k, dtype=np.int64)
    nonempty = lengths > 0
    first[nonempty] = np.asarray(a.indices, dtype=np.int64)[np.asarray(a.indptr[:-1], dtype=np.int64)[nonempty]]
    return np.lexsort((np.arange(m), first, keys[1], keys[0]))


def condense(a, order=None, dtype=np.float32) -> Windows:
    """The windowed format of CSR ``a`` (rows taken in ``order``, default 0..M-1). Vectorised: O(nnz log nnz)."""
    m, k = a.m, a.k
    order = np.arange(m, dtype=np.int64) if order is None else np.asarray(order, dtype=np.int64)
    if order.shape != (m,) or (m and not np.array_equal(np.sort(order), np.arange(m))):
        raise ParamError(f"row order must be a permutation of 0..{m - 1}")
    nwin = ceil_div(m, WINDOW)
    slot_of_row = np.empty(m, dtype=np.int64)
    slot_of_row[order] = np.arange(m)
    lengths = np.diff(np.asarray(a.indptr, dtype=np.int64))
    rows = np.repeat(np.arange(m, dtype=np.int64), lengths)
    slot = slot_of_row[rows]
    win = slot // WINDOW
    cols64 = np.asarray(a.indices, dtype=np.int64)
    ukeys, inverse = np.unique(win * max(k, 1) + cols64, return_inverse=True)  # (window, column), sorted
    uwin = ukeys // max(k, 1)
    per_win = np.bincount(uwin, minlength=nwin) if ukeys.size else np.zeros(nwin, dtype=np.int64)
    kblocks = -(-per_win // KB)
    kb_ptr = np.zeros(nwin + 1, dtype=np.int64)
    np.cumsum(kblocks, out=kb_ptr[1:])
    total = int(kb_ptr[-1])
    if total * TILE > 2**31 - 1:
        raise ResourceError(f"the windowed format needs {total * TILE} value slots; the kernel indexes at most 2^31")
    first_u = np.zeros(nwin + 1, dtype=np.int64)
    np.cumsum(per_win, out=first_u[1:])
    pos = np.arange(ukeys.size, dtype=np.int64) - first_u[uwin]  # condensed column of each unique pair
    cslot = kb_ptr[uwin] * KB + pos  # global condensed-column index
    cols = np.zeros(total * KB, dtype=np.int32)
    cols[cslot] = (ukeys % max(k, 1)).astype(np.int32)
    q = cslot[inverse]  # per nonzero
    where = (q // KB) * TILE + (slot % WINDOW) * KB + q % KB
    vals = np.zeros(total * TILE, dtype=dtype)
    np.add.at(vals, where, np.asarray(a.data, dtype=dtype))  # add.at: repeated (row, col) entries sum
    rowmap = np.full(nwin * WINDOW, -1, dtype=np.int32)
    rowmap[:m] = order.astype(np.int32)
    return Windows(kb_ptr.astype(np.int32), cols, vals, rowmap, int(a.nnz))


def tc_model(s, p: dict) -> Bytes:
    """Bytes requested in the sparse limit (every nonzero its own condensed column: slots = 16·nnz): the
    tiles and column indices once per panel, 8 B values per condensed column and panel column, C once.
    The real condensed count is in ``info["condensed_cols"]`` (a window's rows sharing columns lower it)."""
    width = 8 * p["warps"] * p["ntiles"]
    panels = max(1, ceil_div(s.n, width))
    ccols = min(s.nnz, ceil_div(s.m, WINDOW) * s.k)
    return Bytes((ccols * WINDOW * s.value_bytes + ccols * s.index_bytes) * panels,
                 ccols * s.n * s.value_bytes, s.m * s.n * s.value_bytes)


def _round_tf32_host(x: np.ndarray) -> np.ndarray:
    """TF32 rounding on the host, the fallback kernel's rule (Veltkamp split with 2^13+1): for tests."""
    x = np.asarray(x, dtype=np.float32)
    c = np.float32(8193.0) * x
    return c - (c - x)


@lru_cache(maxsize=None)
def kernel(warps: int, ntiles: int, engine: str, split: str, stage: bool = False):
    bind_cuda(globals())
    np_t = np.float32
    zero = np_t(0.0)
    one = np_t(1.0)
    splitter = np_t(8193.0)  # 2^13 + 1: x·s − (x·s − x) keeps the top 11 significant bits (TF32's)
    width = 8 * ntiles * warps
    stride = width + 8  # staged row pitch: lanes (g, t) read banks g + 8t, distinct when width % 32 == 0
    buf = 8 * stride  # floats of one staged k-block
    smem_size = 2 * buf if stage else 1
    nthreads = 32 * warps
    nacc = 4 * ntiles
    three = split == "3xtf32"
    use_mma = engine == "mma"
    if use_mma:
        from numba.cuda import types as t

        mma = cuda.declare_device(MMA_FUNCS[split], t.UniTuple(t.float32, 4)(*(t.float32,) * 10),
                                  link=[str(MMA_SOURCE)])
    else:
        @cuda.jit(device=True, inline=True)
        def mma(a0, a1, a2, a3, b0, b1, c0, c1, c2, c3):
            return c0, c1, c2, c3

    @cuda.jit(device=True, inline=True)
    def tf32(x):
        c = splitter * x
        return c - (c - x)

    @cuda.jit(device=True, inline=True)
    def product(x, y):
        # the tensor core's product, on FP32: TF32 inputs, or the three products of the 3xTF32 split
        xh = tf32(x)
        yh = tf32(y)
        if three:
            return xh * tf32(y - yh) + tf32(x - xh) * yh + xh * yh
        return xh * yh

    @cuda.jit(device=True, inline=True)
    def stage_kblock(sm, off, bf, cols, kb, n, panel0, tid):
        # the block's threads copy the k-block's 8 gathered B rows × the panel's columns, coalesced along
        # each row; columns past N are stored as zeros so the readers need no mask
        last = n - 1
        for e in range(tid, 8 * width, nthreads):
            kk = e // width
            c = e - kk * width
            gc = panel0 + c
            sm[off + kk * stride + c] = bf[cols[kb * 8 + kk] * n + min(gc, last)] * (one if gc < n else zero)

    # numba cannot cache a kernel that links external code (pickling its code library raises), so the mma
    # engine is compiled in each process (NVRTC + LTO link: a few seconds, in first_call_s)
    @cuda.jit(cache=not simulator() and not use_mma)
    def tc_window(kb_ptr, cols, vals, rowmap, bf, cf, n):
        sm = cuda.shared.array(smem_size, np_t)
        w = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        lane = tid % 32
        warp = tid // 32
        g = lane // 4
        tq = lane % 4
        panel0 = cuda.blockIdx.y * width
        nbase = panel0 + warp * (8 * ntiles)
        lbase = warp * (8 * ntiles)  # the warp's first column inside the staged panel
        acc = cuda.local.array(nacc, np_t)
        for i in range(nacc):
            acc[i] = zero
        last = n - 1
        kb0 = kb_ptr[w]
        kb1 = kb_ptr[w + 1]
        cur = 0
        if stage:
            if kb0 < kb1:
                stage_kblock(sm, 0, bf, cols, kb0, n, panel0, tid)
            cuda.syncthreads()
        for kb in range(kb0, kb1):
            if stage and kb + 1 < kb1:  # the next k-block's loads go out before this one's multiplies
                stage_kblock(sm, (1 - cur) * buf, bf, cols, kb + 1, n, panel0, tid)
            off = cur * buf
            base = kb * 128
            if use_mma:
                # fragments of the PTX ISA's m16n8k8 .tf32 layout (see csrc/mma_tf32.cu)
                a0 = vals[base + g * 8 + tq]
                a1 = vals[base + (g + 8) * 8 + tq]
                a2 = vals[base + g * 8 + tq + 4]
                a3 = vals[base + (g + 8) * 8 + tq + 4]
                r0 = cols[kb * 8 + tq] * n
                r1 = cols[kb * 8 + tq + 4] * n
                for q in range(ntiles):
                    if stage:
                        b0 = sm[off + tq * stride + lbase + q * 8 + g]
                        b1 = sm[off + (tq + 4) * stride + lbase + q * 8 + g]
                    else:
                        col = nbase + q * 8 + g
                        keep = one if col < n else zero  # a select, not a branch: the warp stays converged
                        cc = min(col, last)
                        b0 = bf[r0 + cc] * keep
                        b1 = bf[r1 + cc] * keep
                    d0, d1, d2, d3 = mma(a0, a1, a2, a3, b0, b1, acc[4 * q], acc[4 * q + 1], acc[4 * q + 2],
                                         acc[4 * q + 3])
                    acc[4 * q] = d0
                    acc[4 * q + 1] = d1
                    acc[4 * q + 2] = d2
                    acc[4 * q + 3] = d3
            else:
                # the same four outputs per lane (rows g and g+8, columns 2tq and 2tq+1 of each tile), each
                # lane reading the A and B values the warp's mma would have shared out
                for kk in range(8):
                    r = cols[kb * 8 + kk] * n
                    x0 = vals[base + g * 8 + kk]
                    x1 = vals[base + (g + 8) * 8 + kk]
                    for q in range(ntiles):
                        if stage:
                            y0 = sm[off + kk * stride + lbase + q * 8 + 2 * tq]
                            y1 = sm[off + kk * stride + lbase + q * 8 + 2 * tq + 1]
                        else:
                            col = nbase + q * 8 + 2 * tq
                            y0 = bf[r + min(col, last)] * (one if col < n else zero)
                            y1 = bf[r + min(col + 1, last)] * (one if col + 1 < n else zero)
                        acc[4 * q] += product(x0, y0)
                        acc[4 * q + 1] += product(x0, y1)
                        acc[4 * q + 2] += product(x1, y0)
                        acc[4 * q + 3] += product(x1, y1)
            if stage:
                cuda.syncthreads()
                cur = 1 - cur
        row0 = rowmap[w * 16 + g]
        row1 = rowmap[w * 16 + g + 8]
        for q in range(ntiles):
            col = nbase + q * 8 + 2 * tq
            if row0 >= 0:
                if col < n:
                    cf[row0 * n + col] = acc[4 * q]
                if col + 1 < n:
                    cf[row0 * n + col + 1] = acc[4 * q + 1]
            if row1 >= 0:
                if col < n:
                    cf[row1 * n + col] = acc[4 * q + 2]
                if col + 1 < n:
                    cf[row1 * n + col + 1] = acc[4 * q + 3]

    return tc_window


def kernel_signature():
    """numba types of the kernel's arguments (for compiling without a device)."""
    from numba.cuda import types as t

    a1 = lambda d: d[::1]  # noqa: E731
    return (a1(t.int32), a1(t.int32), a1(t.float32), a1(t.int32), a1(t.float32), a1(t.float32), t.int64)


def linked_ptx(warps: int = 4, ntiles: int = 2, split: str = "tf32", cc=(9, 0), stage: bool = False) -> str:
    """The PTX of the mma kernel *after* link-time optimisation with the CUDA C device functions, built
    without a GPU the way numba builds it on one: the kernel to LTO-IR (numba), ``mma_tf32.cu`` to LTO-IR
    (NVRTC), both linked by nvJitLink. What to look at: ``mma.sync`` inlined into the loop, no ``call``, no
    ``.local`` (the four-float return value of the device function must stay in registers)."""
    return link_ltoir(kernel(warps, ntiles, "mma", split, stage).py_func, kernel_signature(), MMA_SOURCE, cc)


# the mma engine runs as its FMA emulation in the simulator; several windows, k-blocks and tiles
SIM = (({"split": "tf32", "warps": 2, "ntiles": 1}, SIM_SMALL, (5,)),
       ({"split": "tf32", "warps": 2, "ntiles": 1}, ("tall",), (17,)),
       ({"split": "3xtf32", "warps": 1, "ntiles": 2, "reorder": True}, ("empty_rows", "wide", "one_dense_row"), (9,)),
       ({"split": "3xtf32", "engine": "fma", "warps": 1, "ntiles": 1}, ("random",), (3,)),
       ({"split": "tf32", "stage": True, "warps": 2, "ntiles": 1}, ("empty_rows", "n_not_multiple_of_tile"), (5, 19)))


def ptx_cases():
    """The pure-numba engine (the mma engine links CUDA C: tests/test_gpu_tc_window.py checks its linked PTX)."""
    return [(f"fma_{split}{'_staged' if stage else ''}", kernel(4, 2, "fma", split, stage), kernel_signature(), None)
            for split, stage in (("tf32", False), ("3xtf32", False), ("tf32", True))]


@variant("gpu.csr.tc_window", loop_order="(win,J)∥→warp∥→kb→mma(16×8×8)", movement=tc_model,
         params=(Param("split", "tf32", ("tf32", "3xtf32"), "tf32: one mma (TF32 tolerance); 3xtf32: hi/lo split, "
                       "three mma, fp32 accuracy", strict=True),
                 Param("engine", "mma", ("mma", "fma"), "mma: tensor cores via linked CUDA C; fma: pure numba",
                       strict=True),
                 gp.warps(4, (1, 2, 4, 8), "warps per block (each 8·ntiles columns)"),
                 Param("ntiles", 2, (1, 2, 4), "8-column tiles per warp (4 accumulators each)", minimum=1,
                       maximum=16),
                 Param("reorder", False, (False, True), "cluster rows with similar columns (MinHash) first"),
                 Param("stage", False, (False, True), "stage each k-block's gathered B rows in shared memory, "
                       "double-buffered")),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, split, engine, warps, ntiles, reorder, stage):
    """Tensor cores on 16-row windows condensed to their nonzero columns (mma.sync m16n8k8 TF32)."""
    if problem.dtype != np.float32:
        raise ParamError(f"TF32 tensor cores take float32 (got {problem.dtype})")
    if warps > 32 or ntiles > 16:
        raise ParamError(f"warps={warps} (at most 32) and ntiles={ntiles} (at most 16)")
    width = 8 * warps * ntiles
    if ceil_div(problem.n, width) > 65535:
        raise ParamError(f"N={problem.n} needs more than 65535 panels of {width} columns")
    a = problem.a
    win = condense(a, minhash_order(a) if reorder else None)
    ran = "fma (simulator: linked code cannot run there)" if engine == "mma" and simulator() else engine
    k = kernel(warps, ntiles, "fma" if ran != "mma" else "mma", split, bool(stage))
    cu = cuda_module()
    kb_ptr = cu.to_device(win.kb_ptr)
    cols = cu.to_device(win.cols if win.cols.size else np.zeros(1, np.int32))
    vals = cu.to_device(win.vals if win.vals.size else np.zeros(1, np.float32))
    rowmap = cu.to_device(win.rowmap if win.rowmap.size else np.full(1, -1, np.int32))
    b, c = device_bc(problem)
    grid = (max(win.windows, 1), ceil_div(problem.n, width))
    info = {"grid": list(grid), "block": [32 * warps], "engine": ran, "split": split, "windows": win.windows,
            "condensed_cols": int(win.cols.size), "tile_fill": round(win.fill, 4), "reordered": bool(reorder),
            "staged": bool(stage)}
    launches = [] if win.windows == 0 else [(k[grid, 32 * warps], (kb_ptr, cols, vals, rowmap, flat(b), flat(c),
                                                                   np.int64(problem.n)))]
    prepared = kernel_prepared(launches, c, info, kernels=[("", k)], keep=(kb_ptr, cols, vals, rowmap, b))
    prepared.precision = "tf32" if split == "tf32" else ""
    return prepared
