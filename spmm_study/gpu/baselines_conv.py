"""GPU convolution baselines (docs/conv.md), measured in the same run as the gpu.conv.* ladder.

* ``gpu.conv.dense_gemm`` — the course study's "comparable im2col + GeMM" on the GPU: the im2col kernel of
  rung 60, then cuBLAS SGEMM (``cupy.matmul``, TF32 off) of the dense weights by the patch matrix.
* ``gpu.conv.torch`` — torch conv2d on the dense weights: cuDNN, with ``cudnn.benchmark`` on (it times its
  algorithms on the first, untimed call and keeps the fastest: Winograd or FFT where they win, as the study
  notes) and TF32 off (``cudnn.allow_tf32``: a full fp32 convolution, checked to fp32's tolerance). Its
  NCHW output is copied into C's channel-major layout inside the timed call.
"""

from __future__ import annotations

import os
from importlib.util import find_spec

import numpy as np

from spmm_study import movement
from spmm_study.conv import conv_info, conv_view
from spmm_study.errors import DeviceUnavailable
from spmm_study.gpu.device import cupy_unavailable_reason
from spmm_study.gpu.timing import time_gpu
from spmm_study.registry import Prepared, variant


@variant("gpu.conv.dense_gemm", loop_order="im2col; cuBLAS", movement=movement.conv_dense_gemm, rung=98,
         baseline=True, available=cupy_unavailable_reason)
def build_dense_gemm(problem):
    """Dense im2col + cuBLAS SGEMM (cupy, TF32 off) on the dense weights: the GPU convolution sparsity must beat."""
    import cupy as cp

    from spmm_study.gpu._conv import im2col_launch

    if os.environ.get("CUPY_TF32", "0") != "0":
        raise DeviceUnavailable("CUPY_TF32 is set: the cuBLAS baseline must run in full fp32")
    g, x = conv_view(problem)
    w = cp.asarray(problem.a.to_dense())
    x_dev = cp.asarray(np.ascontiguousarray(x).reshape(-1))
    patches = cp.empty((g.k, g.n), dtype=problem.dtype)
    out = [cp.empty((problem.m, problem.n), dtype=problem.dtype)]
    from numba import cuda as ncuda

    # numba views of the cupy buffers, taken once without a sync: handing cupy arrays to each launch would
    # synchronise their stream on every call (the CUDA array interface's import), a host wait inside the
    # timed run that time_gpu must never see
    launch, args = im2col_launch(ncuda.as_cuda_array(x_dev, sync=False), ncuda.as_cuda_array(patches, sync=False), g)

    def run():
        launch(*args)
        cp.matmul(w, patches, out=out[0])

    info = conv_info(g, problem.dtype.itemsize)
    info.update(library=f"cupy {cp.__version__} cuBLAS", tf32=False)
    return Prepared(run=run, fetch=lambda: cp.asnumpy(out[0]), poison=lambda: out[0].fill(np.nan),
                    sync=lambda: cp.cuda.Device().synchronize(), clock=time_gpu, info=info,
                    release=lambda: out.clear())


def torch_cuda_unavailable() -> str | None:
    reason = cupy_unavailable_reason()
    if reason:
        return reason
    if find_spec("torch") is None:
        return "torch is not installed (optional: pip install torch; used when present)"
    return None


@variant("gpu.conv.torch", loop_order="cuDNN conv2d", movement=movement.conv_library, rung=99, baseline=True,
         available=torch_cuda_unavailable)
def build_torch(problem):
    """torch conv2d on the dense weights: cuDNN (benchmark mode picks Winograd where it wins), TF32 off."""
    import torch

    if not torch.cuda.is_available():
        raise DeviceUnavailable("torch has no CUDA here (a CPU-only build?)")
    g, x = conv_view(problem)
    dev = torch.device("cuda")
    w = torch.as_tensor(problem.a.to_dense().reshape(problem.m, g.c, g.kh, g.kw), device=dev)
    xt = torch.as_tensor(np.ascontiguousarray(x), device=dev)
    out = [torch.full((problem.m, problem.n), float("nan"), dtype=w.dtype, device=dev)]
    flags = torch.backends.cudnn

    def run():
        saved = flags.benchmark, flags.allow_tf32
        flags.benchmark, flags.allow_tf32 = True, False
        try:
            with torch.no_grad():
                y = torch.nn.functional.conv2d(xt, w, stride=g.stride, padding=g.pad)
                out[0].view(problem.m, g.batch, g.ho, g.wo).copy_(y.transpose(0, 1))
        finally:
            flags.benchmark, flags.allow_tf32 = saved

    info = conv_info(g, problem.dtype.itemsize)
    info.update(library=f"torch {torch.__version__} cuDNN {flags.version()}", tf32=False)
    return Prepared(run=run, fetch=lambda: out[0].cpu().numpy(), poison=lambda: out[0].fill_(float("nan")),
                    sync=torch.cuda.synchronize, clock=time_gpu, info=info, release=lambda: out.clear())
