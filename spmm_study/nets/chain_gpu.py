"""The chain on the GPU: the same host loop as ``chain`` (dense Yᵀ, dead inputs dropped between layers),
with the fused GPU rungs, and the library chains (cupy's cuSPARSE, torch's CSR) as baselines.

Fused engine: per layer, ``gpu.csr.row_split_fused`` while few inputs are live (N ≤ ``SPLIT_N``: the N = 256
winner on the H100) and ``gpu.csr.swizzle_fused`` above (the large-N winner). Unfused engine: the same kernels
with the epilogue off, then ``epilogue_pass`` reads C back and writes act(C + bias): one more read and write
of C per layer, the traffic fusion saves. Dead inputs: a flag kernel marks the columns of C holding a nonzero
(a benign race: every writer stores 1), the host reads the n flags, and when some died a gather kernel
compacts Yᵀ into the other buffer. That host round trip per layer is the same design as the HPEC'20
champion's.

Runs in the numba CUDA simulator on tiny networks through ``spmm-study infer --device gpu``
(tests/test_cli_gpu.py, with the simulator's small launch shapes). The torch and cupy chains need a real
device and the package.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from spmm_study.gpu._kit import bind_cuda, ceil_div
from spmm_study.gpu.device import simulator

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None

SPLIT_N = 256
ROW_SPLIT = {"warps": 4, "vec": 4, "unroll": 4}  # the H100 table's N = 256 winner (README)
SWIZZLE = {"lanes": 16, "vec": 4, "tiles": 2, "unroll": 4, "threads": 128}  # its N = 4096 winner
# in the simulator every thread is a Python thread: the rungs' own small simulator configurations
ROW_SPLIT_SIM = {"warps": 2, "vec": 4, "unroll": 2}
SWIZZLE_SIM = {"lanes": 4, "vec": 4, "tiles": 1, "unroll": 2, "threads": 8}


@lru_cache(maxsize=None)
def _helpers(dtype: str):
    bind_cuda(globals())
    zero = np.dtype(dtype).type(0)

    @cuda.jit(cache=not simulator())
    def col_flags(cf, rows, n, flags):
        start, stride = cuda.grid(1), cuda.gridsize(1)
        for e in range(start, rows * n, stride):
            if cf[e] != zero:
                flags[e % n] = 1

    @cuda.jit(cache=not simulator())
    def gather_cols(cf, rows, n, keep, count, out):
        start, stride = cuda.grid(1), cuda.gridsize(1)
        for e in range(start, rows * count, stride):
            i = e // count
            t = e % count
            out[e] = cf[i * n + keep[t]]

    from spmm_study.gpu._epi import epilogue

    epi = epilogue(dtype)

    @cuda.jit(cache=not simulator())
    def epilogue_pass(c, rows, n, bias, rule, act, ymax):
        """The unfused engine's second pass: C read back, act(C + bias) written, one entry per thread."""
        start, stride = cuda.grid(1), cuda.gridsize(1)
        for e in range(start, rows * n, stride):
            c[e] = epi(c[e], bias[e // n], rule, act, ymax)

    return col_flags, gather_cols, epilogue_pass


def _launch(n_items: int):
    threads = 32 if simulator() else 256
    blocks = max(1, min(ceil_div(n_items, threads), 4 if simulator() else 4096))
    return blocks, threads


def run(net, y0, src, engine: str, prune_dead: bool):
    if engine in ("fused", "unfused"):
        return _fused(net, y0, src, prune_dead, fused=engine == "fused")
    if engine == "cupy":
        return _cupy(net, y0, src, prune_dead)
    if engine == "torch":
        return _torch(net, y0, src, prune_dead)
    from spmm_study.errors import ParamError

    raise ParamError(f"engine {engine} has no GPU path (choose fused, unfused, cupy, torch or champion with --device gpu)")


def _fused(net, y0, src, prune_dead, fused: bool = True):
    """The project's kernels layer by layer. ``fused``: the epilogue (bias, activation) is applied in registers
    before C is stored; unfused: the same kernels with the epilogue off (no bias, no activation), then a
    second pass reads C back and writes act(C + bias) — the traffic fusion saves, on the GPU."""
    from numba import cuda

    from spmm_study.gpu.k50_csr_row_split_fused import FusedRowSplit
    from spmm_study.gpu.k51_csr_swizzle_fused import FusedSwizzle
    from spmm_study.epilogue import ACT_CODE, RULE_CODE
    from spmm_study.nets.batch import LayerRow, dense_inputs_t

    t0 = time.perf_counter()
    yt0 = dense_inputs_t(y0, src, np.float32)
    act, rule = (net.act, net.rule) if fused else ("none", "zero")
    sim = simulator()
    small = [FusedRowSplit(a, b, act, rule, net.ymax, **(ROW_SPLIT_SIM if sim else ROW_SPLIT))
             for a, b in zip(net.layers, net.biases)]
    large = [FusedSwizzle(a, b, act, rule, net.ymax, **(SWIZZLE_SIM if sim else SWIZZLE))
             for a, b in zip(net.layers, net.biases)]
    col_flags, gather_cols, epilogue_pass = _helpers("float32")
    codes = (np.int64(RULE_CODE[net.rule]), np.int64(ACT_CODE[net.act]), np.float32(net.ymax))
    width = max([yt0.shape[0], *(a.m for a in net.layers)])
    n = yt0.shape[1]
    p = cuda.device_array(width * n, dtype=np.float32)
    q = cuda.device_array(width * n, dtype=np.float32)
    p[: yt0.size].copy_to_device(np.ascontiguousarray(yt0).ravel())
    flags = cuda.device_array(max(n, 1), dtype=np.uint8)
    keep_dev = cuda.device_array(max(n, 1), dtype=np.int64)
    ids = np.arange(n, dtype=np.int64)
    cuda.synchronize()
    setup = time.perf_counter() - t0
    rows_out = []
    paused = 0.0
    live_prev = int(np.count_nonzero((yt0 != 0).any(axis=0)))
    t_start = time.perf_counter()
    for l, a in enumerate(net.layers):
        t1 = time.perf_counter()
        live_in = n
        if n:
            layer = small[l] if n <= SPLIT_N else large[l]
            layer(p, q, n)
            if not fused:
                epilogue_pass[_launch(a.m * n)](q, np.int64(a.m), np.int64(n), layer.bias, *codes)
            if prune_dead:
                flags[:n].copy_to_device(np.zeros(n, np.uint8))
                col_flags[_launch(a.m * n)](q, np.int64(a.m), np.int64(n), flags)
                host_flags = flags[:n].copy_to_host()
                count = int(host_flags.sum())
                if count < n:
                    keep = np.flatnonzero(host_flags).astype(np.int64)
                    if count:
                        keep_dev[:count].copy_to_device(keep)
                        gather_cols[_launch(a.m * count)](q, np.int64(a.m), np.int64(n), keep_dev, np.int64(count), p)
                    ids = ids[keep]
                    n = count
                else:
                    p, q = q, p
            else:
                p, q = q, p
        cuda.synchronize()
        dt = time.perf_counter() - t1
        live_out = n
        if not prune_dead and n:  # nothing dropped: count the live inputs for the report, outside the timing
            t2 = time.perf_counter()
            flags[:n].copy_to_device(np.zeros(n, np.uint8))
            col_flags[_launch(a.m * n)](p, np.int64(a.m), np.int64(n), flags)
            live_out = int(flags[:n].copy_to_host().sum())
            paused += time.perf_counter() - t2
        rows_out.append(LayerRow(l + 1, live_in if prune_dead else live_prev, live_out, a.nnz, dt))
        live_prev = live_out
    total = time.perf_counter() - t_start - paused
    last = p[: net.layers[-1].m * n].copy_to_host().reshape(net.layers[-1].m, n) if n else np.zeros((0, 0))
    alive = (last != 0).any(axis=0) if n else np.zeros(0, bool)
    return setup, (total, rows_out, np.sort(ids[alive]))


def _cupy(net, y0, src, prune_dead):  # pragma: no cover - needs a GPU and cupy
    import cupy as cp
    import cupyx.scipy.sparse as csp

    from spmm_study.nets.batch import LayerRow

    t0 = time.perf_counter()
    ws = [csp.csr_matrix(a.to_scipy().T.tocsr()) for a in net.layers]
    bias = [cp.asarray(b) for b in net.biases]
    y = csp.csr_matrix(y0.to_scipy().tocsr()[src].astype(np.float32))
    ids = np.arange(src.size, dtype=np.int64)
    cp.cuda.Device().synchronize()
    setup = time.perf_counter() - t0
    rows_out = []
    t_start = time.perf_counter()
    for l, w in enumerate(ws):
        t1 = time.perf_counter()
        live_in = y.shape[0]
        z = y @ w
        if net.rule == "nonzero":
            z.data += bias[l][z.indices]
        elif net.rule == "row":
            z = csp.csr_matrix(z.toarray() + bias[l][None, :])
        if net.act != "none":
            cp.maximum(z.data, 0, out=z.data)
        if net.act == "clamp":
            cp.minimum(z.data, net.ymax, out=z.data)
        z.eliminate_zeros()
        if prune_dead:
            live = cp.flatnonzero(cp.diff(z.indptr)).get()
            if live.size < z.shape[0]:
                z = z[live]
                ids = ids[live]
        y = z
        cp.cuda.Device().synchronize()
        rows_out.append(LayerRow(l + 1, live_in, y.shape[0], net.layers[l].nnz, time.perf_counter() - t1))
    total = time.perf_counter() - t_start
    alive = (cp.diff(y.indptr) > 0).get()
    return setup, (total, rows_out, np.sort(ids[alive]))


def _torch(net, y0, src, prune_dead):  # pragma: no cover - needs a GPU and torch
    import torch

    from spmm_study.nets.batch import LayerRow, dense_inputs_t

    dev = torch.device("cuda")
    t0 = time.perf_counter()
    ws = []
    for a in net.layers:  # A = Wᵀ in CSR: the transposed form, Yᵀ_{l+1} = act(A·Yᵀ_l + b)
        ws.append(torch.sparse_csr_tensor(torch.from_numpy(a.indptr.astype(np.int64)),
                                          torch.from_numpy(a.indices.astype(np.int64)),
                                          torch.from_numpy(a.data), size=a.shape, device=dev))
    bias = [torch.from_numpy(np.asarray(b)).to(dev)[:, None] for b in net.biases]
    yt = torch.from_numpy(np.ascontiguousarray(dense_inputs_t(y0, src, np.float32))).to(dev)
    ids = torch.arange(src.size, device=dev)
    torch.cuda.synchronize()
    setup = time.perf_counter() - t0
    rows_out = []
    t_start = time.perf_counter()
    for l, w in enumerate(ws):
        t1 = time.perf_counter()
        live_in = yt.shape[1]
        z = w @ yt
        if net.rule == "row":
            z = z + bias[l]
        elif net.rule == "nonzero":
            z = torch.where(z != 0, z + bias[l], z)
        if net.act != "none":
            z = torch.clamp(z, min=0, max=net.ymax if net.act == "clamp" else None)
        if prune_dead:
            live = (z != 0).any(dim=0)
            if int(live.sum()) < z.shape[1]:
                z = z[:, live].contiguous()
                ids = ids[live]
        yt = z
        torch.cuda.synchronize()
        rows_out.append(LayerRow(l + 1, live_in, yt.shape[1], net.layers[l].nnz, time.perf_counter() - t1))
    total = time.perf_counter() - t_start
    alive = (yt != 0).any(dim=0)
    return setup, (total, rows_out, np.sort(ids[alive].cpu().numpy()))
