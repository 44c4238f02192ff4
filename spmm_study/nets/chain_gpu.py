"""The chain on the GPU: the project's engines and the library chains beside them.

``fused`` and ``unfused``: ``chain_resident`` — every layer enqueued at once, live inputs compacted on the
device, the host reads nothing until the end (fused: the epilogue in the SpMM's registers; unfused: the same
kernel without it, then an elementwise pass). ``cupy`` (cuSPARSE through cupyx, Y in CSR, rows = inputs)
and ``torch`` (CSR Aᵀ times a dense Yᵀ, dead inputs dropped by a boolean mask) are the library chains; both
synchronise after every layer, as a user of those libraries writing the loop would. All engines check their
categories against the truth.
"""

from __future__ import annotations

import time

import numpy as np


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
    """The project's chain, resident on the device (``chain_resident``): fused or unfused epilogue."""
    from spmm_study.nets import chain_resident
    from spmm_study.nets.batch import dense_inputs_t

    t0 = time.perf_counter()
    yt0 = dense_inputs_t(y0, src, np.float32)
    t_in = time.perf_counter() - t0
    setup, (total, rows, live) = chain_resident.run(net, yt0, prune_dead, fused)
    return setup + t_in, (total, rows, live)


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
