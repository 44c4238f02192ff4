"""GPU rung 17 — densify and tile: a dense B tile in shared memory, several sparse rows streamed against it.

After Algorithms 2–3 of the course study (SparseRT-style "densify and tile", seeds/001): a block owns
``warps``·``rows_per_warp`` rows and a panel of 32·vec columns. For each K-chunk of ``kt`` rows of B it
copies the dense B tile (kt × 32·vec, 16-byte loads) into shared memory once, synchronises, and each
warp advances its rows' nonzeros whose column falls in the chunk (CSR columns are sorted, so a pointer
per row moves forward), reading B from shared memory; accumulators for all its rows stay in registers.
Loop order: (I-block, J-panel)∥ → K-chunk → row r → p in chunk → (vec).

What changed from rung 13: B reaches the SM once per block of rows (models.csr_densify: ceil(M/rows)·K·N
bytes) instead of once per nonzero (nnz·N): at 90% with 32 rows per block that is 3.2× fewer B bytes
from L2; the price is a dense tile copy (also of B rows no nonzero of the block needs) and two barriers
per chunk. It pays when rows·density > 1 (80–90%) and loses at 98% (0.6 tiles used per copy).
What to look at: registers (acc = rows_per_warp·vec) and smem per block; local bytes must be 0.
Measured (H100, ffn_conv1 90%, N=4096): 378 µs (kt 64: 339 µs) against 161 µs for rung 15 — the
prediction was wrong: each nonzero still costs a dependent global load of its column index (the loop
decides from it whether the K-tile is done) and each tile copy is exposed between two barriers. Next
step: stage the block's (col, val) pairs in shared memory and double-buffer the B tile.
"""

from functools import lru_cache

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.gpu import models
from spmm_study.gpu._kit import bind_cuda, ceil_div, check_vec, cuda_module, device_arrays, flat, kernel_prepared
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import Param, variant


@lru_cache(maxsize=None)
def kernel(vec: int, warps: int, rpw: int, kt: int, dtype: str):
    bind_cuda(globals())

    from spmm_study.gpu._vec import ops

    load2, load4, store2, store4 = ops()
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    width = 32 * vec
    rows = warps * rpw
    nthreads = 32 * warps
    vecs_per_row = width // vec
    tile_vecs = kt * vecs_per_row
    nacc = rpw * vec
    tile_elems = kt * width  # a plain int here: shared.array needs a compile-time size

    @cuda.jit(cache=not simulator())
    def densify_tile(indptr, indices, data, bf, cf, n, k):
        bs = cuda.shared.array(tile_elems, np_t)
        tid = cuda.threadIdx.x
        warp = tid // 32
        lane = tid % 32
        m = indptr.size - 1
        jp = cuda.blockIdx.y * width
        j0 = jp + lane * vec
        row_base = cuda.blockIdx.x * rows + warp * rpw
        wide = (n % vec) == 0
        ptr = cuda.local.array(rpw, np.int64)
        endp = cuda.local.array(rpw, np.int64)
        acc = cuda.local.array(nacc, np_t)
        for r in range(rpw):
            i = row_base + r
            if i < m:
                ptr[r] = indptr[i]
                endp[r] = indptr[i + 1]
            else:
                ptr[r] = 0
                endp[r] = 0
            for u in range(vec):
                acc[r * vec + u] = zero
        for k0 in range(0, k, kt):
            # 1. the dense tile B[k0:k0+kt, jp:jp+width] into shared memory (zeros past K or N)
            for e in range(tid, tile_vecs, nthreads):
                kr = e // vecs_per_row
                cv = (e % vecs_per_row) * vec
                gk = k0 + kr
                gj = jp + cv
                if gk < k and wide and gj + vec <= n:
                    if vec == 4:
                        x, y, z, w = load4(bf, gk * n + gj)
                        store4(bs, kr * width + cv, x, y, z, w)
                    elif vec == 2:
                        x, y = load2(bf, gk * n + gj)
                        store2(bs, kr * width + cv, x, y)
                    else:
                        bs[kr * width + cv] = bf[gk * n + gj]
                else:
                    for u in range(vec):
                        bs[kr * width + cv + u] = bf[gk * n + gj + u] if gk < k and gj + u < n else zero
            cuda.syncthreads()
            # 2. every row of this warp consumes its nonzeros with columns in [k0, k0+kt)
            kend = k0 + kt
            for r in range(rpw):
                p = ptr[r]
                e_ = endp[r]
                while p < e_:
                    col = indices[p]
                    if col >= kend:
                        break
                    v = data[p]
                    base = (col - k0) * width + lane * vec
                    if vec == 4:
                        x, y, z, w = load4(bs, base)
                        acc[r * 4] += v * x
                        acc[r * 4 + 1] += v * y
                        acc[r * 4 + 2] += v * z
                        acc[r * 4 + 3] += v * w
                    elif vec == 2:
                        x, y = load2(bs, base)
                        acc[r * 2] += v * x
                        acc[r * 2 + 1] += v * y
                    else:
                        acc[r] += v * bs[base]
                    p += 1
                ptr[r] = p
            cuda.syncthreads()
        for r in range(rpw):
            i = row_base + r
            if i < m:
                row = i * n
                if wide and j0 + vec <= n:
                    if vec == 4:
                        store4(cf, row + j0, acc[r * 4], acc[r * 4 + 1], acc[r * 4 + 2], acc[r * 4 + 3])
                    elif vec == 2:
                        store2(cf, row + j0, acc[r * 2], acc[r * 2 + 1])
                    else:
                        cf[row + j0] = acc[r]
                else:
                    for u in range(vec):
                        if j0 + u < n:
                            cf[row + j0 + u] = acc[r * vec + u]

    return densify_tile


@variant("gpu.csr.densify_tile", loop_order="(I,J)∥→K0→r→p→v", rung=17, movement=models.csr_densify,
         params=(Param("vec", 4, (1, 2, 4), "B values per load; panel = 32·vec columns"),
                 Param("warps", 8, (2, 4, 8), "warps per block"),
                 Param("rows_per_warp", 4, (1, 2, 4), "rows per warp (accumulators = rows_per_warp·vec)"),
                 Param("kt", 32, (8, 16, 32, 64), "rows of B per shared-memory tile")),
         available=gpu_unavailable_reason)
def build(problem, vec, warps, rows_per_warp, kt):
    """Densify-and-tile: a dense B tile in shared memory, a block of sparse rows streamed against it."""
    check_vec(vec, problem.dtype)
    smem = kt * 32 * vec * problem.dtype.itemsize
    if smem > 48 * 1024:
        raise ParamError(f"kt={kt}, vec={vec}: the B tile needs {smem} bytes of shared memory; 48 KiB is the static limit")
    if warps * 32 > 1024 or warps < 1 or rows_per_warp < 1:
        raise ParamError("warps must be 1..32 and rows_per_warp >= 1")
    indptr, indices, data, b, c = device_arrays(problem)
    k = kernel(vec, warps, rows_per_warp, kt, problem.dtype.name)
    rows = warps * rows_per_warp
    grid = (ceil_div(max(problem.m, 1), rows), ceil_div(problem.n, 32 * vec))
    info = {"grid": list(grid), "block": [32 * warps], "smem_tile_bytes": smem}
    args = (indptr, indices, data, flat(b), flat(c), np.int64(problem.n), np.int64(problem.k))
    return kernel_prepared([(k[grid, 32 * warps], args)], c, info, kernels=[("", k)], keep=(indptr, indices, data, b))
