"""GPU rung 23 — 2:4 on the sparse tensor cores: ``mma.sp`` m16n8k16, fp16 or bf16 in, fp32 sums.

Rung 21 multiplies a 2:4 matrix on the FP32 pipes (CUDA cores) and keeps only the index saving. The sparse
tensor cores take the format as it is: one warp instruction
``mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32`` multiplies a 16×16 tile of A
that is 2:4 along K — given as its 16×8 kept values plus a 32-bit word of 2-bit positions (the metadata) —
by a 16×8 block of B, at the math rate of a dense 16×8×8 mma: the 2× of NVIDIA's 2:4 claim (A100: 312 vs 156
dense TFLOP/s in FP16/BF16). The metadata is the project's own 2:4 format (``formats.NM24``): its bytes, read
as 16-bit words, are per row and 16 columns the word mma.sp wants (positions distinct and ascending), so
the host only pairs rows g and g+8 of each 16-row tile into one 32-bit register per lane group.

Layout (built at ``build``, untimed): A padded to M, K multiples of 16 and compressed (``sp_tiles``):
``a32`` (M16 × K16/4, uint32: two kept halves per word, lane t of a group reading group t of its row) and
``e`` (M16/16 × K16/16 × 8, uint32: the metadata word of rows g and g+8). B is taken column-major, Bᵀ packed
two halves per word (``bt32``: N × K16/2), the .col layout of the instruction: a lane's b0 = {B[2t][g],
B[2t+1][g]} is one aligned 32-bit load. The transpose of B happens at build (setup_s) — an activation kept
K-major costs nothing; a row-major one would pay it once per call, which this rung does not time.
C is written in fp32 (the accumulator; cuSPARSELt writes the input type, 2 bytes less per entry).
Loop order: (mtiles 16-row tiles, J-panel)∥ → warp∥ (8·ntiles columns) → k-block of 16 → mma.sp per (row
tile, 8-column tile); a warp loads each B fragment once per k-block for its ``mtiles`` row tiles (B traffic
÷ mtiles) and each A fragment once for its ``ntiles`` column tiles.

Engines: ``mma`` calls the device functions of ``csrc/mma_sp.cu`` (numba cannot emit mma.sp; NVRTC compiles
them and numba links them, as rung 22 links mma.sync); ``emulate`` is the same format and fragment mapping
in pure numba — each lane decodes from the same packed words the halves and positions that the warp's
mma.sp would have shared out to produce its four outputs (rows g, g+8; columns 2t, 2t+1), products exact
in fp32, sums in fp32. The simulator cannot call linked code, so there ``mma`` runs as ``emulate``
(``info["engine"]`` says so); tests/test_gpu_mma_sp.py checks the linked PTX (mma.sp inlined, no local
memory) without a GPU.
What to look at: time against ``gpu.nm24.cusparselt`` and ``gpu.dense.torch`` in the same dtype on the same
2:4 matrix (experiments/device/half24.sh), and against rung 21 (the same format on CUDA cores, fp32).
Not done: shared-memory staging of A and B across warps, ldmatrix, cp.async, a software pipeline — the
difference between this plain rung and a library kernel.
Measured: no device time in the committed reference data (data/reference/ holds no row of this rung);
simulator, PTX and NVRTC checks only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from spmm_study.errors import FormatError, ParamError
from spmm_study.formats import CSR, NM24
from spmm_study.gpu import _params as gp
from spmm_study.gpu._kit import bind_cuda, ceil_div, cuda_module, fill, flat, kernel_prepared
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.movement import Bytes
from spmm_study.registry import Param, variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None

TILE_M = 16  # rows per tile: the M of m16n8k16
TILE_K = 16  # columns of A per k-block: the K of m16n8k16 (8 kept values per row)
SOURCE = Path(__file__).with_name("csrc") / "mma_sp.cu"
FUNCS = {"float16": "spmm_mma_sp_f16", "bfloat16": "spmm_mma_sp_bf16"}


@dataclass(frozen=True)
class SpTiles:
    a32: np.ndarray  # uint32 (M16, K16/4): kept values of a row, two halves per word (slot 2j low, 2j+1 high)
    e: np.ndarray  # uint32 (M16/16, K16/16, 8): metadata word of rows 16w+g (bits 0..15) and 16w+g+8 (16..31)
    m: int
    k: int
    nnz: int

    @property
    def kblocks(self) -> int:
        return self.e.shape[1]

    @property
    def tiles(self) -> int:
        return self.e.shape[0]


def pad_csr(a: CSR, m: int, k: int) -> CSR:
    """``a`` as an m × k matrix (m >= a.m, k >= a.k): empty rows and columns added at the end."""
    indptr = np.concatenate([np.asarray(a.indptr, np.int64), np.full(m - a.m, a.nnz, np.int64)])
    return CSR((m, k), indptr, np.asarray(a.indices, np.int64), a.data)


def meta_word(meta_bytes: np.ndarray) -> np.ndarray:
    """NM24 metadata bytes (rows × 2·k-blocks) → one 16-bit word per row and k-block (little-endian pairs)."""
    return np.ascontiguousarray(meta_bytes).view("<u2")


def sp_tiles(a: CSR, dtype, row_multiple: int = TILE_M) -> SpTiles:
    """The rung's format of a 2:4 matrix ``a`` in ``dtype`` (float16 or bfloat16), rows padded to a multiple of
    ``row_multiple`` (16 × the row tiles a warp takes); FormatError (a SKIP) if not 2:4."""
    reason = NM24.violation(a)
    if reason:
        raise FormatError(reason)
    m16, k16 = ceil_div(max(a.m, 1), row_multiple) * row_multiple, ceil_div(max(a.k, 1), TILE_K) * TILE_K
    nm = NM24.from_csr(pad_csr(a, m16, k16))  # K16 % 4 == 0: every group's two positions distinct, ascending
    vals = np.ascontiguousarray(nm.data.astype(dtype)).view(np.uint16)  # (M16, K16/2) raw halves
    a32 = np.ascontiguousarray(vals).view("<u4")  # (M16, K16/4)
    words = meta_word(nm.meta).astype(np.uint32)  # (M16, K16/16)
    tiles = words.reshape(m16 // TILE_M, 2, 8, k16 // TILE_K)  # [tile, half (rows g / g+8), g, kb]
    e = (tiles[:, 0] | (tiles[:, 1] << 16)).transpose(0, 2, 1)  # [tile, kb, g]
    return SpTiles(np.ascontiguousarray(a32), np.ascontiguousarray(e, dtype=np.uint32), a.m, a.k, a.nnz)


def pack_bt(b: np.ndarray, k16: int) -> np.ndarray:
    """B (K × N, half) → Bᵀ padded to K16 columns, two halves per uint32 word (N × K16/2)."""
    k, n = b.shape
    bt = np.zeros((n, k16), dtype=np.uint16)
    bt[:, :k] = np.ascontiguousarray(b).view(np.uint16).T
    return np.ascontiguousarray(bt).view("<u4")


def half_bits_to_float(h: int, bf16: bool) -> float:
    """The value of 16 raw bits (host version of the emulation's decoding, for tests)."""
    sign = -1.0 if (h >> 15) & 1 else 1.0
    if bf16:
        ex, man = (h >> 7) & 0xFF, h & 0x7F
        return sign * math.ldexp(man, -133) if ex == 0 else sign * math.ldexp(128 + man, ex - 134)
    ex, man = (h >> 10) & 0x1F, h & 0x3FF
    return sign * math.ldexp(man, -24) if ex == 0 else sign * math.ldexp(1024 + man, ex - 25)


def sp_model(s, p: dict) -> Bytes:
    """Bytes requested: A's kept values (2 bytes each, K/2 per row) and metadata (2 bits per value) once per
    panel, B (2 bytes) read once per warp's mtiles row tiles and panel column, C (fp32) once."""
    width = 8 * p["warps"] * p["ntiles"]
    panels = max(1, ceil_div(s.n, width))
    tiles = ceil_div(s.m, TILE_M * p["mtiles"])
    kept = tiles * TILE_M * p["mtiles"] * ceil_div(s.k, TILE_K) * 8
    return Bytes((kept * 2 + kept // 4) * panels, tiles * s.k * s.n * 2, s.m * s.n * 4)


@lru_cache(maxsize=None)
def kernel(warps: int, ntiles: int, mtiles: int, engine: str, dtype: str):
    bind_cuda(globals())
    f32 = np.float32
    zero = f32(0.0)
    one = f32(1.0)
    two = np.float64(2.0)  # 2^-133 (a bf16 subnormal's scale) is below fp32's range
    i64 = np.int64
    width = 8 * ntiles * warps
    nacc = 4 * ntiles * mtiles
    nb = 2 * ntiles
    bf16 = dtype == "bfloat16"
    use_mma = engine == "mma"
    u0 = np.uint32(0)
    if use_mma:
        from numba.cuda import types as t

        mma = cuda.declare_device(FUNCS[dtype], t.UniTuple(t.float32, 4)(*(t.uint32,) * 5, *(t.float32,) * 4),
                                  link=[str(SOURCE)])
    else:
        @cuda.jit(device=True, inline=True)
        def mma(a0, a1, b0, b1, e, c0, c1, c2, c3):
            return c0, c1, c2, c3

    @cuda.jit(device=True, inline=True)
    def decode(h):
        # 16 raw bits → their fp16/bf16 value in fp32 (finite inputs only: the problem refuses Inf/NaN);
        # man·2^(ex − bias − mantissa bits), the implicit 1 added for normal numbers; powers of two are exact
        neg = (h >> 15) & 1
        if bf16:
            ex = i64((h >> 7) & 0xFF)
            man = i64(h & 0x7F)
            v = f32(man) * two ** i64(-133) if ex == 0 else f32(128 + man) * two ** (ex - 134)
        else:
            ex = i64((h >> 10) & 0x1F)
            man = i64(h & 0x3FF)
            v = f32(man) * two ** i64(-24) if ex == 0 else f32(1024 + man) * two ** (ex - 25)
        return f32(-v) if neg else f32(v)

    # numba cannot cache a kernel that links external code, so the mma engine is compiled in each process
    @cuda.jit(cache=not simulator() and not use_mma)
    def mma_sp(a32, e, bt32, cf, m, n, kblocks):
        w0 = cuda.blockIdx.x * mtiles  # the warp's first 16-row tile
        tid = cuda.threadIdx.x
        lane = tid % 32
        warp = tid // 32
        g = lane // 4
        tq = lane % 4
        nbase = cuda.blockIdx.y * width + warp * (8 * ntiles)
        acc = cuda.local.array(nacc, np.float32)
        for i in range(nacc):
            acc[i] = zero
        bfr = cuda.local.array(nb, np.uint32)
        last = n - 1
        for kb in range(kblocks):
            if use_mma:
                # B fragments of the warp's ntiles column tiles, loaded once, used by its mtiles row tiles
                for q in range(ntiles):
                    col = nbase + q * 8 + g
                    cc = min(col, last)
                    b0 = bt32[cc, kb * 8 + tq]
                    b1 = bt32[cc, kb * 8 + tq + 4]
                    if col > last:  # past N: zeros, so the warp's mma.sp stays whole (a select, not a branch)
                        b0 = u0
                        b1 = u0
                    bfr[2 * q] = b0
                    bfr[2 * q + 1] = b1
                for mt in range(mtiles):
                    w = w0 + mt
                    ev = e[w, kb, g]
                    a0 = a32[w * 16 + g, kb * 4 + tq]
                    a1 = a32[w * 16 + g + 8, kb * 4 + tq]
                    for q in range(ntiles):
                        x = 4 * (mt * ntiles + q)
                        d0, d1, d2, d3 = mma(a0, a1, bfr[2 * q], bfr[2 * q + 1], ev, acc[x], acc[x + 1], acc[x + 2],
                                             acc[x + 3])
                        acc[x] = d0
                        acc[x + 1] = d1
                        acc[x + 2] = d2
                        acc[x + 3] = d3
            else:
                # the lane's outputs (rows g, g+8 of each row tile; columns 2t, 2t+1 of each column tile) from
                # the words the warp's mma.sp would have shared out: both rows' 8 kept values and metadata, and
                # the B values their positions name
                for mt in range(mtiles):
                    w = w0 + mt
                    ev = e[w, kb, g]
                    r0 = w * 16 + g
                    r1 = r0 + 8
                    for j in range(4):
                        p0 = a32[r0, kb * 4 + j]
                        p1 = a32[r1, kb * 4 + j]
                        for s in range(2):
                            v0 = decode((p0 >> (16 * s)) & 0xFFFF)
                            v1 = decode((p1 >> (16 * s)) & 0xFFFF)
                            k0 = kb * 16 + 4 * j + ((ev >> (4 * j + 2 * s)) & 3)
                            k1 = kb * 16 + 4 * j + ((ev >> (16 + 4 * j + 2 * s)) & 3)
                            for q in range(ntiles):
                                col = nbase + q * 8 + 2 * tq
                                c0 = min(col, last)
                                c1 = min(col + 1, last)
                                keep0 = one if col <= last else zero
                                keep1 = one if col + 1 <= last else zero
                                y00 = decode((bt32[c0, k0 // 2] >> (16 * (k0 % 2))) & 0xFFFF) * keep0
                                y01 = decode((bt32[c1, k0 // 2] >> (16 * (k0 % 2))) & 0xFFFF) * keep1
                                y10 = decode((bt32[c0, k1 // 2] >> (16 * (k1 % 2))) & 0xFFFF) * keep0
                                y11 = decode((bt32[c1, k1 // 2] >> (16 * (k1 % 2))) & 0xFFFF) * keep1
                                x = 4 * (mt * ntiles + q)
                                acc[x] += v0 * y00
                                acc[x + 1] += v0 * y01
                                acc[x + 2] += v1 * y10
                                acc[x + 3] += v1 * y11
        for mt in range(mtiles):
            r0 = (w0 + mt) * 16 + g
            r1 = r0 + 8
            for q in range(ntiles):
                col = nbase + q * 8 + 2 * tq
                x = 4 * (mt * ntiles + q)
                if r0 < m:
                    if col < n:
                        cf[r0 * n + col] = acc[x]
                    if col + 1 < n:
                        cf[r0 * n + col + 1] = acc[x + 1]
                if r1 < m:
                    if col < n:
                        cf[r1 * n + col] = acc[x + 2]
                    if col + 1 < n:
                        cf[r1 * n + col + 1] = acc[x + 3]

    return mma_sp


def kernel_signature():
    """numba types of the kernel's arguments (for compiling without a device)."""
    from numba.cuda import types as t

    return (t.uint32[:, ::1], t.uint32[:, :, ::1], t.uint32[:, ::1], t.float32[::1], t.int64, t.int64, t.int64)


def linked_ptx(warps: int = 4, ntiles: int = 2, mtiles: int = 2, dtype: str = "float16", cc=(9, 0)) -> str:
    """The PTX of the mma engine after link-time optimisation with ``csrc/mma_sp.cu``, built without a GPU
    the way numba builds it on one (the kernel to LTO-IR by numba, the .cu by NVRTC, linked by nvJitLink).
    What to look at: ``mma.sp`` inlined into the k-block loop, no ``call``, no ``.local``."""
    from spmm_study.gpu._kit import link_ltoir

    return link_ltoir(kernel(warps, ntiles, mtiles, "mma", dtype).py_func, kernel_signature(), SOURCE, cc)


# the simulator runs the emulation: several 16-row tiles, k-blocks, column tiles, N and K tails, both dtypes
SIM = (({"warps": 1, "ntiles": 2, "mtiles": 1}, ("nm24", "nm24_wide"), (5, 17), "float16"),
       ({"warps": 2, "ntiles": 1, "mtiles": 2}, ("nm24_tall",), (9,), "float16"),
       ({"warps": 2, "ntiles": 1, "mtiles": 2}, ("nm24", "nm24_tall", "all_zero", "1x1"), (9,), "bfloat16"))


def ptx_cases():
    """The pure-numba emulation at one row tile per warp (the mma engine links CUDA C: tests/test_gpu_mma_sp.py
    checks its linked PTX, mtiles 2 and 4 included). With several row tiles the emulation's loop nest is too
    deep for LLVM to unroll and its accumulators go to local memory: it is the correctness path, not a fast one."""
    return [(f"emulate_{d}", kernel(4, 2, 1, "emulate", d), kernel_signature(), None) for d in ("float16", "bfloat16")]


@variant("gpu.nm24.mma_sp", loop_order="(tiles,J)∥→warp∥→kb→mma.sp(16×8×16)", movement=sp_model,
         accepts=lambda a: NM24.violation(a) is None, dtypes=("float16", "bfloat16"),
         params=(Param("engine", "mma", ("mma", "emulate"), "mma: sparse tensor cores via linked CUDA C; "
                       "emulate: the same fragments on FP32 FMAs in pure numba", strict=True),
                 gp.warps(4, (1, 2, 4, 8), "warps per block (each 8·ntiles columns)"),
                 Param("ntiles", 2, (1, 2, 4), "8-column tiles per warp (4 accumulators each)", minimum=1,
                       maximum=16),
                 Param("mtiles", 2, (1, 2, 4), "16-row tiles per warp, sharing each B fragment", minimum=1,
                       maximum=16)),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, engine, warps, ntiles, mtiles):
    """2:4 on the sparse tensor cores: mma.sp m16n8k16 in fp16/bf16, fp32 sums, the project's 2:4 metadata."""
    if problem.dtype.name not in FUNCS:
        raise ParamError(f"mma.sp takes float16 or bfloat16 (got {problem.dtype})")
    if warps > 32 or ntiles > 8 or mtiles > 8:
        raise ParamError(f"warps={warps} (at most 32), ntiles={ntiles} and mtiles={mtiles} (at most 8)")
    width = 8 * warps * ntiles
    if ceil_div(problem.n, width) > 65535:
        raise ParamError(f"N={problem.n} needs more than 65535 panels of {width} columns")
    tiles = sp_tiles(problem.a, problem.dtype, TILE_M * mtiles)
    ran = "emulate (simulator: linked code cannot run there)" if engine == "mma" and simulator() else engine
    k = kernel(warps, ntiles, mtiles, "mma" if ran == "mma" else "emulate", problem.dtype.name)
    cu = cuda_module()
    a32, e = cu.to_device(tiles.a32), cu.to_device(tiles.e)
    bt = cu.to_device(pack_bt(problem.b, tiles.kblocks * TILE_K))
    c = cu.device_array((problem.m, problem.n), dtype=np.float32)
    fill(flat(c), np.nan)
    grid = (tiles.tiles // mtiles, ceil_div(problem.n, width))
    info = {"grid": list(grid), "block": [32 * warps], "engine": ran, "dtype": problem.dtype.name,
            "k_blocks": tiles.kblocks, "c_dtype": "float32"}
    launches = [(k[grid, 32 * warps], (a32, e, bt, flat(c), np.int64(problem.m), np.int64(problem.n),
                                       np.int64(tiles.kblocks)))]
    return kernel_prepared(launches, c, info, kernels=[("", k)], keep=(a32, e, bt))
