"""GPU rung 21 — 2:4 structured sparsity: at most two nonzeros in every group of four columns.

The format of NVIDIA's sparse tensor cores (here on plain FFMA): each row keeps exactly K/2 value slots,
two per group of four columns, plus 2 bits of position per slot (stored here as one byte). No row
pointers, no load imbalance: every row has the same length and every slot's column is
4·(slot//2) + meta. A thread owns (row i, vec consecutive columns); loop order: (i, j-vec)∥ → slot.

What changed from the CSR rungs: the index costs 1 byte instead of 4, and the loop has a fixed trip count
(K/2), so there is no imbalance and no dependent "load index, then load B" chain beyond a byte.
Empty slots hold 0.0 and are multiplied anyway (regularity over skipping).
Only for matrices that *are* 2:4 (``--prune 2:4`` or ``synthetic:nm``); others are refused (SKIP row).
Measured (H100, synthetic:nm:ffn1, 50% dense, N=4096, data/reference/gpu-nm24.csv): 1094 µs against 632 µs
for rung 15 and 183 µs for
cuBLAS: 2:4 pays on sparse tensor cores (mma.sp), which numba cannot emit; on FFMA it is a dense half.
"""

from functools import lru_cache

import numpy as np

from spmm_study.formats import NM24
from spmm_study.gpu import _params as gp
from spmm_study.gpu import models
from spmm_study.gpu._kit import (bind_cuda, ceil_div, check_vec, cuda_module, device_bc, flat, kernel_prepared, ptx_types,
                                 to_24)
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.registry import variant

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def kernel(vec: int, dtype: str):
    bind_cuda(globals())

    from spmm_study.gpu._vec import ops

    load2, load4, store2, store4 = ops()
    np_t = np.dtype(dtype).type
    zero = np_t(0)

    @cuda.jit(cache=not simulator())
    def structured24(vals, meta, bf, cf, n):
        jv, i = cuda.grid(2)
        m, slots = vals.shape
        j = jv * vec
        if i >= m or j >= n:
            return
        wide = (n % vec) == 0 and j + vec <= n
        a0 = zero
        a1 = zero
        a2 = zero
        a3 = zero
        for s in range(slots):
            v = vals[i, s]
            off = ((s >> 1) * 4 + meta[i, s]) * n + j
            if wide and vec == 4:
                x, y, z, w = load4(bf, off)
                a0 += v * x
                a1 += v * y
                a2 += v * z
                a3 += v * w
            elif wide and vec == 2:
                x, y = load2(bf, off)
                a0 += v * x
                a1 += v * y
            else:
                a0 += v * bf[off]
                if vec > 1 and j + 1 < n:
                    a1 += v * bf[off + 1]
                if vec > 2 and j + 2 < n:
                    a2 += v * bf[off + 2]
                if vec > 3 and j + 3 < n:
                    a3 += v * bf[off + 3]
        row = i * n + j
        if wide and vec == 4:
            store4(cf, row, a0, a1, a2, a3)
        elif wide and vec == 2:
            store2(cf, row, a0, a1)
        else:
            cf[row] = a0
            if vec > 1 and j + 1 < n:
                cf[row + 1] = a1
            if vec > 2 and j + 2 < n:
                cf[row + 2] = a2
            if vec > 3 and j + 3 < n:
                cf[row + 3] = a3

    return structured24


SIM = (({"vec": 4, "block_x": 2, "block_y": 4}, ("nm24", "nm24_wide"), (6, 9, 8)),
       ({"vec": 1, "block_x": 4, "block_y": 2}, ("nm24",), (5,)))


def ptx_cases():
    t = ptx_types()
    return [("structured24", kernel(4, "float32"), (t.a2(t.f32), t.a2(t.u8), t.a1(t.f32), t.a1(t.f32), t.i64), 16)]


@variant("gpu.nm24.structured", loop_order="(i,j)∥→slot", movement=models.structured24,
         accepts=lambda a: NM24.violation(a) is None,
         params=(gp.vec(help="output columns per thread (16-byte B loads at 4)"),
                 gp.block_x(64, (32, 64, 128)),
                 gp.block_y(2, (1, 2, 4), "rows per block")),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, vec, block_x, block_y):
    """2:4 structured: K/2 value slots per row with 2-bit positions, fixed trip count, no row pointers."""
    check_vec(vec, problem.dtype)
    vals_h, meta_h = to_24(problem.a)
    cu = cuda_module()
    if vals_h.shape[1] == 0:  # K = 0 cannot happen for a valid matrix; keep the kernel's arrays non-empty
        vals_h, meta_h = np.zeros((problem.m, 2), problem.dtype), np.zeros((problem.m, 2), np.uint8)
    vals, meta = cu.to_device(vals_h), cu.to_device(meta_h)
    b, c = device_bc(problem)
    k = kernel(vec, problem.dtype.name)
    grid = (ceil_div(ceil_div(problem.n, vec), block_x), ceil_div(problem.m, block_y))
    info = {"grid": list(grid), "block": [block_x, block_y], "slots_per_row": int(vals_h.shape[1])}
    return kernel_prepared([(k[grid, (block_x, block_y)], (vals, meta, flat(b), flat(c), np.int64(problem.n)))],
                           c, info, kernels=[("", k)], keep=(vals, meta, b))
