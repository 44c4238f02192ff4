"""Rung 62 — direct sparse convolution: each nonzero weight adds a shifted input plane into an output plane.

The Escoin / SkimCaffe idea (Chen, "Escort"; Park et al., "Faster CNNs with direct sparse convolutions",
ICLR 2017): no patch matrix, no index map. A nonzero weight w(o, c, r, s) of filter o contributes
``w · x[c, oh·stride + r, ow·stride + s]`` to every output pixel (oh, ow) of plane o: the input plane of
channel c, shifted by (r, s). So for each filter o (in parallel) and each image, the output plane (Ho × Wo
values: 12 KB for 56×56, it stays in L1) is zeroed and then each nonzero of the filter's row adds its
shifted plane, one output row at a time; at stride 1 the innermost loop is a contiguous AXPY
(``out_row[ow] += w · in_row[ow + s]``), which vectorises without gathers.

What changed from rung 61: the inner loop reads a contiguous input row instead of gathering, but C is now
accumulated in memory (L1) instead of in registers: each nonzero loads and stores the output plane, two
memory operations per FMA where rung 61 had one gather. Which costs more depends on the plane size.

Loop order: t‖ → o → b → p → oh → ow.
Traffic (``movement.conv_direct``): nnz·N input values, the output plane read and written per nonzero
(from L1), A once, C zeroed once, the padded copy of x.
Measured (same run as rung 60's figure, data/reference/conv-table3-cpu-1t.csv):
56×56 at 90% 5.22 ms, but 7×7 at 95% 18.3 ms: a 49-pixel plane
leaves each nonzero seven 7-wide AXPYs, all loop overhead.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spmm_study import movement
from spmm_study.conv import conv_view, padded
from spmm_study.cpu._conv import split_filters
from spmm_study.registry import host_prepared, variant


@njit(parallel=True, fastmath={"contract"}, cache=True)
def conv_direct(rows, bounds, indptr, indices, data, xpad, out, kh, kw, stride):
    batch, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    taps = kh * kw
    for t in prange(bounds.size - 1):
        for q in range(bounds[t], bounds[t + 1]):
            o = rows[q]
            for b in range(batch):
                plane = out[o, b]
                plane[:, :] = 0.0
                for p in range(indptr[o], indptr[o + 1]):
                    v = data[p]
                    k = indices[p]
                    ci = k // taps
                    r = (k // kw) % kh
                    s = k % kw
                    src_plane = xpad[b, ci]
                    for oh in range(ho):
                        dst = plane[oh]
                        if stride == 1:
                            src = src_plane[oh + r, s:s + wo]
                            for ow in range(wo):
                                dst[ow] += v * src[ow]
                        else:
                            src = src_plane[oh * stride + r]
                            for ow in range(wo):
                                dst[ow] += v * src[ow * stride + s]


@variant("cpu.conv.direct", loop_order="t‖→o→b→p→oh→ow", movement=movement.conv_direct)
def build(problem):
    """Direct sparse convolution (Escoin): each nonzero weight adds its shifted input plane into the output plane."""
    g, x = conv_view(problem)
    a = problem.a
    rows, bounds, info = split_filters(problem, g)
    xp = padded(x, g)
    c = problem.new_output()
    out = c.reshape(a.m, g.batch, g.ho, g.wo)
    args = (rows, bounds, a.indptr, a.indices, a.data, xp.buf, out, np.int64(g.kh), np.int64(g.kw), np.int64(g.stride))

    def run():
        xp.refresh()
        conv_direct(*args)

    return host_prepared(run, c, info)
