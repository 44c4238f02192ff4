"""GPU rung 18 — SM-affine panels: a persistent grid that keeps each SM on one column panel of B, so the
B rows its warps re-read come from its own L1 instead of L2.

The row kernel of rungs 13–15 re-reads one B row segment per nonzero; on the H100 those loads ran at
~10 TB/s (ffn_conv1 90%, N=4096: 1.7 GB in 160 µs), i.e. from L2: with rows fast in the grid, every SM
holds blocks of several panels and its L1 (≤256 KB, shared with shared memory) cannot keep any panel.
Here the grid is persistent (``blocks_per_sm`` blocks per SM, all resident at once) and block b, which the
hardware places on SM slot b mod #SMs in the first and only wave, works only on panel
p = slot·P / #SMs (several SMs share a panel when P < #SMs; an SM walks its panels one after another when
P > #SMs). The panel is ``lanes``·vec·tiles columns wide: K·width·4 bytes of B should fit in L1 — 64 columns
(lanes 16, vec 4) are 128 KB for K = 512. Rows are visited longest first (the swizzle order of rung 15),
strided over the blocks that share the panel.
Loop order: persistent block → its panel(s) → rows (strided) → p → (tile, vec).

What changed from rung 15: only the mapping of work to blocks — same loads, same registers — so any gain
is L1 hit rate. If the placement assumption fails (blocks not spread round-robin) the result stays
correct, only slower. Expect up to ~2× at large N (the L1 pipe is ~3× L2 bandwidth), nothing at N=256.
Measured (H100, ffn_conv1 90%, 2026-11-23, data/reference/gpu-ladder.csv): 255 µs at N=4096 (worse than rung
15's 161 µs); a %smid probe showed
blocks b and b+132 share an SM for only 64% of blocks at 4 per SM (35% at 8): the assumption fails.
With 8 lanes and unroll 8 it wins some N=256 problems (more loads in flight, not L1).
The row loop is rung 15's own (``_rowvec.row_parts``), run for each (panel, row) the grid hands a group; the
fewer than ``unroll`` nonzeros left at a row's end take the scalar path (``scalar_tail``), as this rung was
measured.
"""

from functools import lru_cache

import numpy as np

from spmm_study.edge import SIM_SMALL
from spmm_study.errors import ParamError
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import (
    bind_cuda, check_vec, cuda_module, device_arrays, flat, kernel_prepared, longest_first, ptx_types,
)
from spmm_study.gpu._rowvec import row_parts
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import Param, variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(lanes: int, vec: int, tiles: int, unroll: int, dtype: str):
    bind_cuda(globals())
    # rung 15's row loop (gpu/_rowvec.py), its leftover nonzeros on the scalar path as rung 51's
    _, accumulate, store = row_parts(lanes, vec, tiles, unroll, dtype, scalar_tail=True)
    np_t = np.dtype(dtype).type
    nacc = tiles * vec
    width = lanes * vec * tiles

    @cuda.jit(cache=not simulator())
    def l1_panel(indptr, indices, data, bf, cf, n, order, slots, bps):
        tid = cuda.threadIdx.x
        groups = cuda.blockDim.x // lanes
        g_local = tid // lanes
        lane = tid % lanes
        b = cuda.blockIdx.x
        slot = b % slots
        rnd = b // slots
        m = indptr.size - 1
        npanels = (n + width - 1) // width
        wide = (n % vec) == 0
        if npanels <= slots:
            p_first = (slot * npanels) // slots
            p_last = p_first + 1
            p_step = 1
            first_slot = (p_first * slots + npanels - 1) // npanels
            next_slot = ((p_first + 1) * slots + npanels - 1) // npanels
            q = slot - first_slot
            nq = next_slot - first_slot
        else:
            p_first = slot
            p_last = npanels
            p_step = slots
            q = 0
            nq = 1
        acc = cuda.local.array(nacc, np_t)
        row_stride = nq * bps * groups
        for panel in range(p_first, p_last, p_step):
            j0 = panel * width + lane * vec
            for rr in range((q * bps + rnd) * groups + g_local, m, row_stride):
                i = order[rr]
                accumulate(indptr, indices, data, bf, n, i, j0, wide, acc)
                store(cf, n, i, j0, wide, acc)

    return l1_panel


def sm_count() -> int:
    if simulator():
        return 2
    return int(cuda_module().get_current_device().MULTIPROCESSOR_COUNT)


SIM = (({"lanes": 4, "vec": 4, "tiles": 1, "unroll": 2, "threads": 8, "blocks_per_sm": 2, "slots": 3}, SIM_SMALL,
        (5, 16, 37)),
       ({"lanes": 2, "vec": 2, "tiles": 2, "unroll": 4, "threads": 4, "blocks_per_sm": 1, "slots": 5},
        ("n_not_multiple_of_tile", "one_dense_row"), (3, 30)),
       # more panels than SM slots: each slot walks several panels
       ({"lanes": 4, "vec": 4, "tiles": 1, "unroll": 4, "threads": 8, "blocks_per_sm": 2, "slots": 1},
        ("empty_rows", "one_dense_row"), (37,)))


def ptx_cases():
    t = ptx_types()
    return [("l1_panel", kernel(16, 4, 1, 4, "float32"),
             (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64, t.a1(t.i32), t.i64, t.i64), 16)]


@variant("gpu.csr.l1_panel", loop_order="block→panel→rows(strided)→p→(t,v)",
         movement=models.csr_panel(lambda p: p["lanes"] * p["vec"] * p["tiles"]),
         params=(gp.lanes(16, (8, 16, 32), "threads per row = panel width / (vec·tiles)"),
                 gp.vec(),
                 gp.tiles(1, (1, 2)),
                 gp.unroll(),
                 gp.threads(128, (128, 256)),
                 Param("blocks_per_sm", 4, (2, 4, 8), "resident blocks per SM (persistent grid)", minimum=1,
                       maximum=32),
                 Param("slots", 0, (0,), "SM slots the grid is laid out for (0: this GPU's SM count)", minimum=0,
                       maximum=4096)),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, lanes, vec, tiles, unroll, threads, blocks_per_sm, slots):
    """SM-affine column panels: a persistent grid keeps each SM on one B panel so re-reads hit L1."""
    check_vec(vec, problem.dtype)
    if lanes not in (1, 2, 4, 8, 16, 32) or threads % lanes or threads > 1024:
        raise ParamError(f"lanes={lanes} must be a power of two ≤ 32 dividing threads={threads} (≤ 1024)")
    if unroll not in (1, 2, 4, 8):
        raise ParamError(f"unroll={unroll}: choose 1, 2, 4 or 8")
    cu = cuda_module()
    slots = slots or sm_count()
    indptr, indices, data, b, c = device_arrays(problem)
    order = cu.to_device(longest_first(problem.a.indptr) if problem.m else np.zeros(1, np.int32))
    k = kernel(lanes, vec, tiles, unroll, problem.dtype.name)
    grid = slots * blocks_per_sm
    width = lanes * vec * tiles
    info = {"grid": [grid], "block": [threads], "panel_cols": width, "slots": slots,
            "panel_b_bytes": problem.k * width * problem.dtype.itemsize}
    args = (indptr, indices, data, flat(b), flat(c), np.int64(problem.n), order, np.int64(slots),
            np.int64(blocks_per_sm))
    return kernel_prepared([(k[grid, threads], args)], c, info, kernels=[("", k)],
                           keep=(indptr, indices, data, b, order))
