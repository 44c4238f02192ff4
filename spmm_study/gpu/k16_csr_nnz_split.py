"""GPU rung 16 — nnz-split (merge-path style) load balancing: every warp gets the same number of nonzeros.

The nonzeros are cut into chunks of ``chunk`` consecutive entries of the CSR arrays, regardless of row
boundaries; warp c processes chunk c over a panel of 32·vec·tiles columns. A row inside one chunk is
stored directly; a row cut by a chunk boundary ("split row") is summed by each chunk it touches and
added to C with atomics, after a small launch has zeroed the split rows. The chunk → row ranges are
found once on the host with two binary searches (the merge-path partition of rows × nonzeros).
Loop order: (chunk, J-panel)∥ → rows of the chunk → p → (tile, vec).

What changed from rung 13/15: balance no longer depends on row lengths at all — one very long row is
shared by many warps instead of stalling one. The price: atomics on split rows (three or more partial
sums make the rounding order vary between runs: flagged non-deterministic) and a second launch.
DLMC transformer rows are fairly even, so expect no gain there; it pays on power-law rows.
Measured (H100, ffn_conv1 90%, N=4096, 2026-11-23, data/reference/gpu-ladder.csv): 293 µs against 161 µs for
rung 15 — as predicted, a loss here.
A nonzero's loads and multiply-adds are rung 13's (``nonzero`` of ``_rowvec.row_parts``: ``tiles`` 16-byte
loads, scalar where a lane's columns pass N); what is this rung's own is which nonzeros and rows a warp takes
and the store, atomic on split rows.
"""

from functools import lru_cache

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import (
    bind_cuda, ceil_div, check_vec, cuda_module, device_arrays, flat, kernel_prepared, ptx_types,
)
from spmm_study.gpu._rowvec import row_parts
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import Param, variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


def partition(indptr: np.ndarray, chunk: int):
    """Per chunk c the rows [r0[c], r1[c]) it touches, and a per-row 'split' flag (row spans chunks).
    An empty row belongs to the chunk where its offset falls; the last chunk takes rows at offset nnz."""
    indptr = np.asarray(indptr, dtype=np.int64)
    nnz = int(indptr[-1])
    nchunks = max(1, ceil_div(nnz, chunk))
    first = np.minimum(indptr[:-1] // chunk, nchunks - 1)
    last = np.minimum(np.maximum(indptr[1:] - 1, indptr[:-1]) // chunk, nchunks - 1)
    cs = np.arange(nchunks)
    r0 = np.searchsorted(last, cs, side="left").astype(np.int32)
    r1 = np.searchsorted(first, cs, side="right").astype(np.int32)
    split = (first != last)
    return r0, r1, split.astype(np.int8), np.flatnonzero(split).astype(np.int32)


@lru_cache(maxsize=None)
def kernels(vec: int, tiles: int, dtype: str):
    bind_cuda(globals())

    nonzero, _, _ = row_parts(32, vec, tiles, 1, dtype)  # one nonzero into a lane's tiles, as rungs 13-15
    np_t = np.dtype(dtype).type
    zero = np_t(0)
    nacc = vec * tiles
    step = 32 * vec  # columns between a lane's consecutive tiles
    width = 32 * vec * tiles

    @cuda.jit(cache=not simulator())
    def zero_rows(rows, cf, n):
        # x over columns, y over the split rows
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        r = cuda.blockIdx.y
        if j < n:
            cf[rows[r] * n + j] = zero

    @cuda.jit(cache=not simulator())
    def nnz_split(indptr, indices, data, bf, cf, n, r0, r1, split, chunk):
        tid = cuda.threadIdx.x
        c = cuda.blockIdx.x * (cuda.blockDim.x // 32) + tid // 32
        lane = tid % 32
        if c >= r0.size:
            return
        j0 = cuda.blockIdx.y * width + lane * vec
        wide = (n % vec) == 0
        lo = c * chunk
        hi = lo + chunk
        acc = cuda.local.array(nacc, np_t)
        for r in range(r0[c], r1[c]):
            for q in range(nacc):
                acc[q] = zero
            for p in range(max(indptr[r], lo), min(indptr[r + 1], hi)):
                nonzero(acc, indices[p] * n, data[p], bf, j0, n, wide)
            row = r * n
            for t in range(tiles):
                j = j0 + t * step
                for u in range(vec):
                    if j + u < n:
                        if split[r]:
                            cuda.atomic.add(cf, row + j + u, acc[t * vec + u])
                        else:
                            cf[row + j + u] = acc[t * vec + u]

    return zero_rows, nnz_split


SIM = (({"chunk": 3, "vec": 2, "tiles": 1, "threads": 64}, SIM_SMALL, (4, 7)),
       ({"chunk": 40, "vec": 4, "tiles": 1, "threads": 32}, ("one_dense_row",), (8,)))


def ptx_cases():
    t = ptx_types()
    zk, nk = kernels(4, 2, "float32")
    return [("nnz_split_zero", zk, (t.a1(t.i32), t.a1(t.f32), t.i64), None),
            ("nnz_split", nk, (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64, t.a1(t.i32), t.a1(t.i32), t.a1(t.i8), t.i64),
             16)]


@variant("gpu.csr.nnz_split", loop_order="(chunk,J)∥→r→p→(t,v)", deterministic=False,
         movement=models.csr_panel(lambda p: 32 * p["vec"] * p["tiles"]),
         params=(Param("chunk", 128, (32, 64, 128, 256), "nonzeros per warp", minimum=1, maximum=1 << 20),
                 gp.vec(),
                 gp.tiles(2),
                 gp.threads(help="threads per block (a warp per chunk)")),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, chunk, vec, tiles, threads):
    """CSR nnz-split (merge-path): equal nonzeros per warp, split rows summed with atomics."""
    check_vec(vec, problem.dtype)
    if threads % 32 or threads > 1024:
        raise ParamError(f"threads={threads} must be a multiple of 32 and at most 1024")
    cu = cuda_module()
    indptr, indices, data, b, c = device_arrays(problem)
    r0, r1, split, split_rows = partition(problem.a.indptr, chunk)
    d_r0, d_r1, d_split = cu.to_device(r0), cu.to_device(r1), cu.to_device(split)
    d_rows = cu.to_device(split_rows if split_rows.size else np.zeros(1, np.int32))
    zk, k = kernels(vec, tiles, problem.dtype.name)
    width = 32 * vec * tiles
    n = np.int64(problem.n)
    grid = (ceil_div(r0.size, threads // 32), ceil_div(problem.n, width))
    launches = []
    if split_rows.size:
        launches.append((zk[(ceil_div(problem.n, 128), int(split_rows.size)), 128], (d_rows, flat(c), n)))
    launches.append((k[grid, threads], (indptr, indices, data, flat(b), flat(c), n, d_r0, d_r1, d_split,
                                        np.int64(chunk))))
    info = {"grid": list(grid), "block": [threads], "chunks": int(r0.size), "split_rows": int(split_rows.size)}
    return kernel_prepared(launches, c, info, kernels=[("", k)],
                           keep=(indptr, indices, data, b, d_r0, d_r1, d_split, d_rows))
