"""CPU convolution baselines (docs/conv.md), measured in the same run as the sparse convolution ladder.

* ``cpu.conv.dense_gemm`` — the course study's "comparable im2col + GeMM": the same parallel im2col as rung
  60 (``_conv.im2col``), then numpy's BLAS sgemm of the *dense* weights (zeros included) by the patch
  matrix. The speedups of the conv table are against this.
* ``cpu.conv.torch`` — the convolution people actually call: ``torch.nn.functional.conv2d`` on the dense
  weights (oneDNN on x86, which picks its own algorithm: direct, implicit GEMM or Winograd), only when torch
  is installed. Its NCHW output is copied into C (for batch 1 a plain copy; for more images a transpose to C's
  channel-major layout), inside the timed call.
"""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np

from spmm_study import movement
from spmm_study.conv import conv_info, conv_view
from spmm_study.cpu._conv import im2col
from spmm_study.cpu.baselines import _same_threads_everywhere
from spmm_study.memory import aligned_empty
from spmm_study.registry import host_prepared, variant


@variant("cpu.conv.dense_gemm", loop_order="im2col; BLAS", movement=movement.conv_dense_gemm, rung=910,
         baseline=True)
def build_dense_gemm(problem):
    """Dense im2col + BLAS GEMM (numpy sgemm on the dense weights): the convolution sparsity must beat."""
    g, x = conv_view(problem)
    w = problem.a.to_dense()
    patches = aligned_empty((g.k, g.n), problem.dtype)
    c = problem.new_output()
    geo = (np.int64(g.kh), np.int64(g.kw), np.int64(g.pad), np.int64(g.stride), np.int64(g.ho), np.int64(g.wo))
    info = conv_info(g, problem.dtype.itemsize)
    info["threads"] = _same_threads_everywhere()

    def run():
        im2col(x, patches, *geo)
        np.matmul(w, patches, out=c)

    return host_prepared(run, c, info)


def torch_unavailable() -> str | None:
    if find_spec("torch") is None:
        return "torch is not installed (optional: pip install torch; used when present)"
    return None


@variant("cpu.conv.torch", loop_order="oneDNN conv2d", movement=movement.conv_library, rung=911, baseline=True,
         available=torch_unavailable)
def build_torch(problem):
    """torch conv2d on the dense weights (oneDNN): the library convolution, when torch is installed."""
    import torch

    g, x = conv_view(problem)
    threads = _same_threads_everywhere()
    torch.set_num_threads(threads)
    w = torch.from_numpy(np.ascontiguousarray(problem.a.to_dense().reshape(problem.m, g.c, g.kh, g.kw)))
    xt = torch.from_numpy(x)
    c = problem.new_output()
    ct = torch.from_numpy(c).view(problem.m, g.batch, g.ho, g.wo)
    info = conv_info(g, problem.dtype.itemsize)
    info.update(threads=threads, torch=torch.__version__)

    def run():
        with torch.no_grad():
            y = torch.nn.functional.conv2d(xt, w, stride=g.stride, padding=g.pad)  # batch × out × Ho × Wo
            ct.copy_(y.transpose(0, 1))

    return host_prepared(run, c, info)
