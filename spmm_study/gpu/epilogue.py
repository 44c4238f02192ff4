"""The fused layer epilogue on the GPU: ``act(x + bias)`` applied in registers just before C is stored.

``rule``: 0 bias on every entry (Sputnik's per-row bias), 1 only where the product is nonzero (the Sparse
DNN challenge), 2 no bias. ``act``: 0 none, 1 relu, 2 relu clamped at ``ymax``. Both are kernel arguments,
uniform across the grid (no divergence); the codes are ``spmm_study.epilogue.RULE_CODE`` / ``ACT_CODE``.
Imported only from inside kernel factories (it imports numba.cuda).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmm_study.gpu._kit import bind_cuda

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


@lru_cache(maxsize=None)
def epilogue(dtype: str):
    bind_cuda(globals())
    zero = np.dtype(dtype).type(0)

    @cuda.jit(device=True, inline=True)
    def epi(x, b, rule, act, ymax):
        if rule == 0:
            x += b
        elif rule == 1:
            if x != zero:
                x += b
        if act >= 1:
            x = max(x, zero)
        if act == 2:
            x = min(x, ymax)
        return x

    return epi
