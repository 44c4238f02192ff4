"""Address traces of the CPU convolution rungs (docs/conv.md) for the cache simulator, as ``traces.py`` does
for the SpMM rungs: the same loops in the same order as the ``@njit`` kernels, one thread, every array
element read or written recorded as a byte address (1 in ``w`` for a store), with ``traces.py``'s recording
steps. Numba's cache checks only this file: after editing those steps, touch this file too.

Simplifications, stated: the padded-input refresh of rungs 61–63 is traced as a read of x and a write of
the buffer's interior in order; register accumulators are no memory; rung 60's SpMM is ``traces.csr_tiled``
on the patch matrix (its B), after the im2col trace that writes it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spmm_study.cpu import traces
from spmm_study.cpu.traces import Layout, _alloc, _read2, _rec, _update, _zero

TRACED = ("cpu.conv.im2col", "cpu.conv.im2col_fused", "cpu.conv.direct", "cpu.conv.direct_tiled",
          "cpu.conv.dense_gemm")


def layout(a, g, itemsize: int = 4) -> Layout:
    """Every array a conv rung touches, page-aligned one page apart."""
    return Layout.synthetic({
        "x": (g.input_values(), itemsize), "xpad": (g.batch * g.c * g.hp * g.wp, itemsize),
        "b": (g.k * g.n, itemsize),  # the patch matrix (rung 60's B)
        "indptr": (a.indptr.size, a.indptr.itemsize), "indices": (a.indices.size, a.indices.itemsize),
        "data": (a.data.size, itemsize), "rows": (a.m, 4), "delta": (g.k, 8), "pix": (g.n, 8),
        "c": (a.m * g.n, itemsize)})


@njit(cache=True)
def _im2col(batch, c, h, w, kh, kw, pad, stride, ho, wo, bx, bp, va, out, wr):
    t = 0
    n = batch * ho * wo
    for k in range(c * kh * kw):
        ci = k // (kh * kw)
        r = (k // kw) % kh
        s = k % kw
        for b in range(batch):
            for oh in range(ho):
                ih = oh * stride + r - pad
                base = (b * ho + oh) * wo
                for ow in range(wo):
                    iw = ow * stride + s - pad
                    if 0 <= ih < h and 0 <= iw < w:
                        t = _rec(out, wr, t, bx + (((b * c + ci) * h + ih) * w + iw) * va, 0)
                    t = _rec(out, wr, t, bp + (k * n + base + ow) * va, 1)
    return t


def im2col_trace(g, lay: Layout, itemsize: int = 4):
    ho, wo = g.ho, g.wo
    inside = 0  # reads of x: taps that land inside the image
    for r in range(g.kh):
        rows = sum(1 for oh in range(ho) if 0 <= oh * g.stride + r - g.pad < g.h)
        for s in range(g.kw):
            cols = sum(1 for ow in range(wo) if 0 <= ow * g.stride + s - g.pad < g.w)
            inside += rows * cols
    count = g.k * g.n + g.c * g.batch * inside
    out, w = _alloc(count)
    got = _im2col(g.batch, g.c, g.h, g.w, g.kh, g.kw, g.pad, g.stride, ho, wo, lay.b("x"), lay.b("b"), itemsize, out, w)
    assert got == count
    return out, w


@njit(cache=True)
def _pad(batch, c, h, w, pad, bx, bxp, va, out, wr):
    t = 0
    hp, wp = h + 2 * pad, w + 2 * pad
    for plane in range(batch * c):
        for ih in range(h):
            for iw in range(w):
                t = _rec(out, wr, t, bx + ((plane * h + ih) * w + iw) * va, 0)
                t = _rec(out, wr, t, bxp + ((plane * hp + ih + pad) * wp + iw + pad) * va, 1)
    return t


def pad_trace(g, lay: Layout, itemsize: int = 4):
    count = 2 * g.input_values()
    out, w = _alloc(count)
    got = _pad(g.batch, g.c, g.h, g.w, g.pad, lay.b("x"), lay.b("xpad"), itemsize, out, w)
    assert got == count
    return out, w


@njit(cache=True)
def _fused(indptr, indices, delta, pix, n, tn, bp, sp, bi, si, bd, bdl, bpx, bxp, bc, va, out, wr):
    t = 0
    m = indptr.size - 1
    n_full = n - n % tn
    for i in range(m):
        for j0 in range(0, n, tn):
            width = min(tn, n - j0)
            for p in range(indptr[i], indptr[i + 1]):
                t = _read2(out, wr, t, bd + p * va, bi + p * si)
                t = _rec(out, wr, t, bdl + indices[p] * 8, 0)  # delta[indices[p]]
                d = delta[indices[p]]
                for j in range(tn):  # a whole tile: the index map is padded to whole tiles
                    t = _read2(out, wr, t, bpx + (j0 + j) * 8, bxp + (pix[j0 + j] + d) * va)
            for j in range(width):
                t = _rec(out, wr, t, bc + (i * n + j0 + j) * va, 1)
    return t


@njit(cache=True)
def _direct(indptr, indices, batch, c, hp, wp, kh, kw, ho, wo, stride, bd, bi, si, bxp, bc, va, out, wr):
    t = 0
    m = indptr.size - 1
    for o in range(m):
        for b in range(batch):
            col0 = b * ho * wo
            t = _zero(out, wr, t, bc + (o * batch * ho * wo + col0) * va, ho * wo, va)  # the output plane
            for p in range(indptr[o], indptr[o + 1]):
                t = _read2(out, wr, t, bd + p * va, bi + p * si)
                k = indices[p]
                ci = k // (kh * kw)
                r = (k // kw) % kh
                s = k % kw
                for oh in range(ho):
                    for ow in range(wo):
                        t = _update(out, wr, t, bc + (o * batch * ho * wo + col0 + oh * wo + ow) * va,
                                    bxp + (((b * c + ci) * hp + oh * stride + r) * wp + ow * stride + s) * va)
    return t


@njit(cache=True)
def _direct_tiled(indptr, indices, delta, batch, image, ho, wo, wp, stride, tn, bd, bi, si, bdl, bxp, bc, va, out, wr):
    t = 0
    m = indptr.size - 1
    nq = (ho - 1) * wp + wo
    for i in range(m):
        for b in range(batch):
            for q0 in range(0, nq, tn):
                width = min(tn, nq - q0)
                for p in range(indptr[i], indptr[i + 1]):
                    t = _read2(out, wr, t, bd + p * va, bi + p * si)
                    t = _rec(out, wr, t, bdl + indices[p] * 8, 0)  # delta[indices[p]]
                    off = b * image + delta[indices[p]] + stride * q0
                    for j in range(tn if stride == 1 else width):  # stride 1: a whole tile (zero slack after)
                        t = _rec(out, wr, t, bxp + (off + stride * j) * va, 0)
                for j in range(width):
                    q = q0 + j
                    oh = q // wp
                    ow = q - oh * wp
                    if ow < wo:
                        t = _rec(out, wr, t, bc + (i * batch * ho * wo + b * ho * wo + oh * wo + ow) * va, 1)
    return t


def for_variant(variant_id: str, a, g, params: dict, itemsize: int = 4):
    """The trace of a conv rung on weights ``a`` (CSR) and geometry ``g`` (channels set), or None."""
    from spmm_study.cpu._conv import tap_deltas, tiled_pixel_offsets

    if variant_id not in TRACED:
        return None
    lay = layout(a, g, itemsize)
    parts = []
    if variant_id in ("cpu.conv.im2col", "cpu.conv.dense_gemm"):
        parts.append(im2col_trace(g, lay, itemsize))
        if variant_id == "cpu.conv.im2col":
            parts.append(traces.csr_tiled(a, g.n, params.get("tile_n", 64), itemsize, layout=lay))
        else:  # the GEMM: BLAS's blocking is not ours to trace; each operand once stands in
            return None
    else:
        parts.append(pad_trace(g, lay, itemsize))
        delta = tap_deltas(g, (g.hp, g.wp)).astype(np.int64)
        si = a.indices.itemsize
        if variant_id == "cpu.conv.im2col_fused":
            tn = params.get("tile_n", 64)
            pix = tiled_pixel_offsets(g, tn).astype(np.int64)
            count = sum(a.nnz * (3 + 2 * tn) + min(tn, g.n - j0) * a.m for j0 in range(0, g.n, tn))
            out, w = _alloc(count)
            got = _fused(a.indptr, a.indices, delta, pix, g.n, tn, lay.b("indptr"), lay.s("indptr"), lay.b("indices"),
                         si, lay.b("data"), lay.b("delta"), lay.b("pix"), lay.b("xpad"), lay.b("c"), itemsize, out, w)
        elif variant_id == "cpu.conv.direct":
            count = a.m * g.batch * g.ho * g.wo + g.batch * a.nnz * (2 + 3 * g.ho * g.wo)
            out, w = _alloc(count)
            got = _direct(a.indptr, a.indices, g.batch, g.c, g.hp, g.wp, g.kh, g.kw, g.ho, g.wo, g.stride,
                          lay.b("data"), lay.b("indices"), si, lay.b("xpad"), lay.b("c"), itemsize, out, w)
        else:
            tn = params.get("tile_n", 64)
            nq = (g.ho - 1) * g.wp + g.wo
            count = g.batch * sum(a.nnz * (3 + (tn if g.stride == 1 else min(tn, nq - q0)))
                                  for q0 in range(0, nq, tn)) + a.m * g.n
            out, w = _alloc(count)
            got = _direct_tiled(a.indptr, a.indices, delta, g.batch, g.c * g.hp * g.wp, g.ho, g.wo, g.wp, g.stride, tn,
                                lay.b("data"), lay.b("indices"), si, lay.b("delta"), lay.b("xpad"), lay.b("c"),
                                itemsize, out, w)
        assert got == count, (variant_id, got, count)
        parts.append((out, w))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
