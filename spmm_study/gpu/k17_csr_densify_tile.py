"""GPU rung 17 — densify and tile: a dense B tile in shared memory, a block of sparse rows streamed against it.

After Algorithms 2–3 of the course study (SparseRT-style "densify and tile", seeds/001) and the adaptive
tiling of ASpT (Hong et al., PPoPP'19): a block owns R = ``warps``·``rows_per_warp`` rows and a panel of
32·vec columns. For each K-tile of ``kt`` rows of B it copies the dense tile (kt × 32·vec, 16-byte loads)
into shared memory once, and every warp streams its rows' nonzeros of that K-tile against it, reading
B from shared memory; the accumulators of all its rows stay in registers across the K-tiles.
Loop order: (I-block, J-panel)∥ → K-tile → row r → p in tile → (vec).

What changed from rung 13: B reaches the SM once per block of rows (models.csr_densify: ceil(M/R)·K·N
bytes) instead of once per nonzero (nnz·N): at 90% and R=32 that is 3.2× fewer B bytes from L2, and the
re-reads come from shared memory, which has the L1's bandwidth but no misses. It pays when R·density > 1
(80–95%) and loses at 98% with small R (the copy moves B rows no nonzero of the block needs).

The format is prepared on the host, once, like the CSR itself (docs/ARCHITECTURE.md §4: preprocessing is part of a
format, not of the timed multiply):
* ``tptr[i, t]``: where row i's nonzeros of K-tile t start (columns are sorted, so each (row, tile) is a
  contiguous run of the CSR): the inner loop knows its trip count without reading a column first;
* ``pairs``: (shared-memory offset of the nonzero's B row, value) side by side in one array of the value
  type, so one 8-byte broadcast load gives both (the offset, (col mod kt)·32·vec < 2^24, is exact
  in float32).
The global loads of tile t+1 are issued into registers before the nonzeros of tile t are consumed, so
the L2 latency of the copy hides behind the multiply-adds; with ``buffers``=2 they are stored to the other
buffer afterwards (one barrier per tile), with ``buffers``=1 after a second barrier, which lets kt double
in the same 32 KB.

Measured (ffn_conv1 90%, N=4096, fp32, cold L2; same-run ratios):
* H100, 16 warps × 2 rows, kt 32, two buffers: 257 µs against 161 µs for rung 15 (swizzle) and 182 µs for
  cuBLAS; it wins where B re-reads dominate: ffn_conv2 at 80% (512×2048: 325 µs against swizzle's 409) and
  22 of the 180 DLMC benchmark problems (data/reference/gpu-bench.csv), all at 80–90%.
* H200 (the device tool lent one; same SMs as the H100), one buffer and kt 64 — the defaults: 191 µs
  against 262 µs for kt 32 with two buffers and 160 µs for swizzle; on ffn_conv2 80%, 282 against 332 µs.
  Half the K-tiles halve the per-(row, tile) overhead, which is what this kernel is bound by:
* ncu (H100): issue-bound, not memory-bound — 0.65 instructions issued per cycle per scheduler, about 51
  warp instructions per (nonzero, 128-column panel) where the inner loop needs ~10; the rest is the
  per-(row, tile) setup (64-bit index arithmetic, loop prologues) with only ~3 nonzeros per row per
  32-row K-tile at 90%, and the tile copy. 78 registers (37% occupancy) in that profile.
History: the first version (2026-11-23) walked the plain CSR and broke out of the row loop on the first
column past the tile, so every nonzero paid a dependent global load before its B load, and the tile copy
sat exposed between two barriers: 378 µs on the H100 against 161 µs for rung 15.
What to look at: registers (acc = rows_per_warp·vec, prefetch = kt/warps·vec) and smem per block
(``buffers`` tiles of kt·32·vec values); local bytes must be 0.
"""

from functools import lru_cache

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import bind_cuda, ceil_div, check_vec, cuda_module, device_bc, flat, kernel_prepared, ptx_types
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import Param, variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


def tile_format(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, m: int, k: int, kt: int, width: int):
    """(tptr, pairs) for K-tiles of ``kt`` columns; tptr is (m, ntiles+1) int32 flattened, pairs 2·nnz values."""
    ntiles = max(1, ceil_div(k, kt))
    indptr = np.asarray(indptr, dtype=np.int64)
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(m, dtype=np.int64), lengths)
    cols = np.asarray(indices, dtype=np.int64)
    counts = np.bincount(rows * ntiles + cols // kt, minlength=m * ntiles).reshape(m, ntiles)
    tptr = np.empty((m, ntiles + 1), dtype=np.int64)
    tptr[:, 0] = indptr[:-1]
    np.cumsum(counts, axis=1, out=tptr[:, 1:])
    tptr[:, 1:] += indptr[:-1, None]
    pairs = np.empty(2 * cols.size, dtype=data.dtype)
    pairs[0::2] = (cols % kt) * width
    pairs[1::2] = data
    return tptr.astype(np.int32).reshape(-1), pairs, ntiles


@lru_cache(maxsize=None)
def kernel(vec: int, warps: int, rpw: int, kt: int, unroll: int, nbuf: int, dtype: str):
    bind_cuda(globals())

    from spmm_study.gpu._vec import ops, vec_ops

    load2 = ops()[0]  # the (offset, value) pair of a nonzero: one 8-byte load
    fma_vec, load_vec, store_vec = vec_ops(vec)
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    width = 32 * vec
    rows = warps * rpw
    nthreads = 32 * warps
    per_thread = kt // warps  # vec-groups of the tile each thread copies: kt·32 groups over 32·warps threads
    nacc = rpw * vec
    npre = per_thread * vec
    tile_elems = kt * width
    smem_elems = nbuf * tile_elems  # a plain int here: shared.array needs a compile-time size
    align = None if simulator() else 16  # 16-byte vector loads from shared memory; the simulator takes no alignment

    @cuda.jit(cache=align is not None)
    def densify_tile(tptr, pairs, bf, cf, n, k, m, ntiles):
        bs = cuda.shared.array(smem_elems, np_t, alignment=align)
        tid = cuda.threadIdx.x
        warp = tid // 32
        lane = tid % 32
        jp = cuda.blockIdx.y * width
        j0 = jp + lane * vec
        row_base = cuda.blockIdx.x * rows + warp * rpw
        wide = (n % vec) == 0
        stride = ntiles + 1
        acc = cuda.local.array(nacc, np_t)
        pre = cuda.local.array(npre, np_t)
        ptr = cuda.local.array(rpw, np.int64)  # where each row's next tile starts: the end of its last one
        for q in range(nacc):
            acc[q] = zero
        for r in range(rpw):
            ptr[r] = tptr[(row_base + r) * stride] if row_base + r < m else 0
        # the copy: thread tid moves vec-groups e = tid + q·nthreads of the tile, i.e. warp w copies tile
        # rows w, w+warps, ...: 32 lanes × vec contiguous values of one B row, a 512-byte coalesced load
        cv = lane * vec
        gj = jp + cv
        for t in range(ntiles + 1):
            # 1. issue the global loads of tile t into registers (none after the last tile)
            if t < ntiles:
                for q in range(per_thread):
                    gk = t * kt + warp + q * warps
                    if gk < k and wide and gj + vec <= n:
                        load_vec(pre, q * vec, bf, gk * n + gj)
                    else:
                        for u in range(vec):
                            pre[q * vec + u] = bf[gk * n + gj + u] if gk < k and gj + u < n else zero
            # 2. consume tile t-1 from shared memory while those loads are in flight
            if t > 0:
                buf = ((t - 1) % nbuf) * tile_elems + cv
                for r in range(rpw):
                    i = row_base + r
                    if i < m:
                        p = ptr[r]
                        end = tptr[i * stride + t]
                        ptr[r] = end
                        while p + unroll <= end:
                            for u in range(unroll):
                                off, v = load2(pairs, 2 * (p + u))
                                fma_vec(acc, r * vec, v, bs, buf + int(off))
                            p += unroll
                        while p < end:
                            off, v = load2(pairs, 2 * p)
                            fma_vec(acc, r * vec, v, bs, buf + int(off))
                            p += 1
            # 3. the registers of tile t into the other buffer (its readers finished before the last barrier);
            # with one buffer, wait until every warp has finished reading it
            if nbuf == 1 and t > 0 and t < ntiles:
                cuda.syncthreads()
            if t < ntiles:
                sb = (t % nbuf) * tile_elems + cv
                for q in range(per_thread):
                    kr = warp + q * warps
                    store_vec(bs, sb + kr * width, pre, q * vec)
            cuda.syncthreads()
        for r in range(rpw):
            i = row_base + r
            if i < m:
                row = i * n
                if wide and j0 + vec <= n:
                    store_vec(cf, row + j0, acc, r * vec)
                else:
                    for u in range(vec):
                        if j0 + u < n:
                            cf[row + j0 + u] = acc[r * vec + u]

    return densify_tile


# every edge matrix at N = 6 (one partial panel); N = 67 (a full 64-column panel and a partial one) on two of them
# only: the simulator runs a thread per Python thread, and the other three at N = 67 took 10 of the 48 s
SIM = (({"vec": 2, "warps": 2, "rows_per_warp": 2, "kt": 4, "unroll": 2}, SIM_SMALL, (6,)),
       ({"vec": 2, "warps": 2, "rows_per_warp": 2, "kt": 4, "unroll": 2}, ("1x1", "n_not_multiple_of_tile"), (67,)),
       ({"vec": 4, "warps": 1, "rows_per_warp": 3, "kt": 8, "unroll": 4, "buffers": 1}, ("one_dense_row", "empty_rows"),
        (5, 8)),
       ({"vec": 1, "warps": 2, "rows_per_warp": 1, "kt": 4, "unroll": 1}, ("n_not_multiple_of_tile",), (3,)))


def ptx_cases():
    t = ptx_types()
    sig = (t.a1(t.i32), *(t.a1(t.f32),) * 3, t.i64, t.i64, t.i64, t.i64)
    return [("densify_tile", kernel(4, 8, 4, 32, 2, 2, "float32"), sig, 16),
            ("densify_tile_1buf", kernel(4, 16, 2, 64, 2, 1, "float32"), sig, 16)]


@variant("gpu.csr.densify_tile", loop_order="(I,J)∥→K-tile→r→p→v", movement=models.csr_densify,
         params=(gp.vec(help="B values per load; panel = 32·vec columns"),
                 gp.warps(16, (4, 8, 16), "warps per block"),
                 Param("rows_per_warp", 2, (1, 2, 4, 8), "rows per warp (accumulators = rows_per_warp·vec)",
                       minimum=1, maximum=32),
                 Param("kt", 64, (16, 32, 64), "rows of B per shared-memory tile (a multiple of warps)",
                       minimum=1, maximum=1024),
                 gp.unroll(2, (1, 2, 4), "nonzeros per inner iteration (shared-memory loads in flight)"),
                 Param("buffers", 1, (1, 2), "B tiles in shared memory: 2 = double-buffered (one barrier per tile), "
                       "1 = twice the kt in the same space (two barriers per tile)", strict=True, maximum=2)),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, vec, warps, rows_per_warp, kt, unroll, buffers):
    """Densify-and-tile: a double-buffered dense B tile in shared memory, a block of sparse rows against it."""
    check_vec(vec, problem.dtype)
    if warps < 1 or warps > 32 or rows_per_warp < 1 or unroll < 1:
        raise ParamError("warps must be 1..32, rows_per_warp and unroll >= 1")
    if kt % warps:
        raise ParamError(f"kt={kt} must be a multiple of warps={warps} (each warp copies kt/warps rows of the tile)")
    smem = buffers * kt * 32 * vec * problem.dtype.itemsize
    if smem > 48 * 1024:
        raise ParamError(f"kt={kt}, vec={vec}, buffers={buffers}: the B tiles need {smem} bytes of shared memory; 48 KiB is the static limit")
    cu = cuda_module()
    a = problem.a
    width = 32 * vec
    tptr, pairs, ntiles = tile_format(a.indptr, a.indices, a.data, problem.m, problem.k, kt, width)
    if pairs.size == 0:
        pairs = np.zeros(2, problem.dtype)
    tptr_dev, pairs_dev = cu.to_device(tptr), cu.to_device(pairs)
    b, c = device_bc(problem)  # the CSR itself stays on the host: the kernel reads tptr and pairs
    kern = kernel(vec, warps, rows_per_warp, kt, unroll, buffers, problem.dtype.name)
    rows = warps * rows_per_warp
    grid = (ceil_div(max(problem.m, 1), rows), ceil_div(max(problem.n, 1), width))
    info = {"grid": list(grid), "block": [32 * warps], "smem_tile_bytes": smem, "k_tiles": ntiles}
    args = (tptr_dev, pairs_dev, flat(b), flat(c), np.int64(problem.n), np.int64(problem.k), np.int64(problem.m),
            np.int64(ntiles))
    return kernel_prepared([(kern[grid, 32 * warps], args)], c, info, kernels=[("", kern)],
                           keep=(tptr_dev, pairs_dev, b))
