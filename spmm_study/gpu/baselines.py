"""GPU baselines: the vendor libraries, registered as variants so they are measured in the same run.

* ``gpu.dense.cublas`` — cuBLAS SGEMM through ``cupy.matmul`` on the densified A, fp32 with TF32 off
  (cupy uses TF32 only when ``CUPY_TF32=1``; we refuse to run if it is set). Zeros multiplied.
* ``gpu.dense.cublas_tf32`` — cuBLAS on the densified A through ``torch.matmul`` with TF32 tensor cores
  allowed (``torch.backends.cuda.matmul.allow_tf32``, set around each call and restored): the dense
  tensor-core bar a sparse kernel must clear. Checked against TF32's own tolerance (``problem.PRECISIONS``).
* ``gpu.nm24.cusparselt`` — the 2:4 product on the sparse tensor cores: cuSPARSELt through torch's
  semi-structured sparse tensors (``to_sparse_semi_structured``), fp32 operands computed in TF32 (checked to
  TF32's tolerance): the hardware path beside rung 21. Only for matrices that are 2:4 (others: SKIP), and
  only shapes cuSPARSELt takes (torch says which; its refusal is a SKIP with torch's reason).
* ``gpu.csr.cusparse`` — cuSPARSE CSR × dense through ``cupyx.scipy.sparse.csr_matrix @ B``.
* ``gpu.csr.torch`` — cuSPARSE through ``torch.sparse.mm`` on a CSR tensor (only when torch is installed);
  torch calls cusparseSpMM with its own algorithm choice and layout, which measured 3× faster than cupy's
  path on the H100 (2026-11-23, ffn_conv1 90%, N=4096: 215 vs 727 µs).

The CSR is validated once more here (offsets monotone from 0 to nnz, column indices inside 0..K-1, sorted
within rows) before it reaches cuSPARSE, which does not check and can read out of bounds on bad input.
All run on the legacy default stream, as the numba kernels and the timing events do.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.util import find_spec

import numpy as np

from spmm_study.errors import DeviceUnavailable
from spmm_study.formats import NM24
from spmm_study.gpu import models
from spmm_study.gpu.device import cupy_unavailable_reason
from spmm_study.gpu.timing import time_gpu
from spmm_study.registry import Prepared, variant


def check_csr_for_library(a, index_dtype=np.int32):
    """Validate A again, right before a vendor library sees it, and return it with the library's index type.

    cuSPARSE trusts its arrays: an out-of-range or unsorted index can crash it or return garbage, so the
    full O(nnz) ``CSR.validate`` runs here too, not only when the matrix was loaded; ``with_index_dtype``
    refuses (ResourceError, with the numbers) a matrix whose indices would wrap around in int32.
    """
    return a.validate().with_index_dtype(index_dtype)


def _torch_unavailable() -> str | None:
    reason = cupy_unavailable_reason()
    if reason:
        return reason
    if find_spec("torch") is None:
        return "torch is not installed"
    return None


def _cupy_prepared(cp, run, out_ref, info) -> Prepared:
    def poison():
        out_ref[0].fill(np.nan)

    return Prepared(run=run, fetch=lambda: cp.asnumpy(out_ref[0]), poison=poison,
                    sync=lambda: cp.cuda.Device().synchronize(), clock=time_gpu, info=info,
                    release=lambda: out_ref.clear())


@variant("gpu.dense.cublas", loop_order="library", movement=models.dense_library, rung=90, baseline=True,
         available=cupy_unavailable_reason)
def build_cublas(problem):
    """cuBLAS SGEMM (cupy.matmul) on the densified A, fp32, TF32 off: the dense baseline."""
    import cupy as cp

    if os.environ.get("CUPY_TF32", "0") != "0":
        raise DeviceUnavailable("CUPY_TF32 is set: the cuBLAS baseline must run in full fp32")
    a = cp.asarray(problem.a.to_dense())
    b = cp.asarray(problem.b)
    out = [cp.empty((problem.m, problem.n), dtype=problem.dtype)]

    def run():
        cp.matmul(a, b, out=out[0])

    return _cupy_prepared(cp, run, out, {"library": f"cupy {cp.__version__} cuBLAS", "tf32": False})


@variant("gpu.dense.cublas_tf32", loop_order="library", movement=models.dense_library, rung=94, baseline=True,
         available=_torch_unavailable)
def build_cublas_tf32(problem):
    """cuBLAS GEMM on the densified A with TF32 tensor cores (torch.matmul, allow_tf32): the dense TF32 bar."""
    from spmm_study.errors import ParamError

    if problem.dtype != np.float32:
        raise ParamError(f"TF32 is a float32 mode (got {problem.dtype})")
    import torch

    dev = torch.device("cuda")
    a = torch.as_tensor(problem.a.to_dense(), device=dev)
    b = torch.as_tensor(problem.b, device=dev)
    out = [torch.full((problem.m, problem.n), float("nan"), dtype=b.dtype, device=dev)]
    flags = torch.backends.cuda.matmul

    def run():
        before = flags.allow_tf32
        flags.allow_tf32 = True
        try:
            torch.matmul(a, b, out=out[0])
        finally:
            flags.allow_tf32 = before

    return Prepared(run=run, fetch=lambda: out[0].cpu().numpy(), poison=lambda: out[0].fill_(float("nan")),
                    sync=torch.cuda.synchronize, clock=time_gpu, precision="tf32",
                    info={"library": f"torch {torch.__version__} cuBLAS", "tf32": True}, release=lambda: out.clear())


@lru_cache(maxsize=1)
def _cusparselt_unavailable() -> str | None:
    """torch, and a torch whose cuSPARSELt path takes float32: probed once on a 64×64 2:4 matrix (torch 2.11
    on the H200 refused float32 — "not a supported dtype" — for every matrix, 2026-12-02)."""
    reason = _torch_unavailable()
    if reason:
        return reason
    import torch
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    SparseSemiStructuredTensor._FORCE_CUTLASS = False
    probe = torch.tensor([[1.0, 0.0, 1.0, 0.0]], device="cuda").repeat(64, 16)
    try:
        to_sparse_semi_structured(probe)
    except (RuntimeError, ValueError) as exc:
        return f"torch {torch.__version__}'s cuSPARSELt path refuses float32: {str(exc).splitlines()[0][:120]}"
    return None


@variant("gpu.nm24.cusparselt", loop_order="library", movement=models.nm24_library, rung=95, baseline=True,
         available=_cusparselt_unavailable, accepts=lambda a: NM24.violation(a) is None)
def build_cusparselt(problem):
    """2:4 sparse tensor cores: cuSPARSELt through torch semi-structured sparsity (fp32 in, TF32 compute)."""
    from spmm_study.errors import ParamError
    from spmm_study.gpu.k21_structured24 import to_24

    if problem.dtype != np.float32:
        raise ParamError(f"the cuSPARSELt baseline runs float32 (TF32 compute), got {problem.dtype}")
    to_24(problem.a)  # FormatError (a SKIP row) unless the matrix is 2:4: torch would silently prune it
    import torch
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    SparseSemiStructuredTensor._FORCE_CUTLASS = False  # cuSPARSELt, the library this baseline is about
    dev = torch.device("cuda")
    try:
        a = to_sparse_semi_structured(torch.as_tensor(problem.a.to_dense(), device=dev))
    except (RuntimeError, ValueError) as exc:
        raise ParamError(f"cuSPARSELt refused {problem.m}x{problem.k}: {str(exc).splitlines()[0]}") from None
    b = torch.as_tensor(problem.b, device=dev)
    out = [torch.full((problem.m, problem.n), float("nan"), dtype=b.dtype, device=dev)]

    def run():
        out[0] = torch.mm(a, b)

    return Prepared(run=run, fetch=lambda: out[0].cpu().numpy(), poison=lambda: out[0].fill_(float("nan")),
                    sync=torch.cuda.synchronize, clock=time_gpu, precision="tf32",
                    info={"library": f"torch {torch.__version__} cuSPARSELt"}, release=lambda: out.clear())


@variant("gpu.csr.cusparse", loop_order="library", movement=models.sparse_library, rung=91, baseline=True,
         available=cupy_unavailable_reason)
def build_cusparse(problem):
    """cuSPARSE CSR SpMM through cupyx.scipy.sparse (csr_matrix @ dense)."""
    import cupy as cp
    from cupyx.scipy import sparse as cps

    a = check_csr_for_library(problem.a)
    mat = cps.csr_matrix((cp.asarray(a.data), cp.asarray(a.indices), cp.asarray(a.indptr)), shape=(a.m, a.k))
    mat.has_canonical_format = True
    b = cp.asarray(problem.b)
    out = [cp.full((problem.m, problem.n), np.nan, dtype=problem.dtype)]

    def run():
        out[0] = mat @ b  # cupy allocates the result from its pool: no cudaMalloc after the first call

    return _cupy_prepared(cp, run, out, {"library": f"cupy {cp.__version__} cuSPARSE"})


@variant("gpu.csr.torch", loop_order="library", movement=models.sparse_library, rung=92, baseline=True,
         available=_torch_unavailable)
def build_torch(problem):
    """cuSPARSE CSR SpMM through torch.sparse.mm on a sparse CSR tensor."""
    import torch

    a = check_csr_for_library(problem.a, np.int64)
    dev = torch.device("cuda")
    mat = torch.sparse_csr_tensor(torch.as_tensor(a.indptr, device=dev), torch.as_tensor(a.indices, device=dev),
                                  torch.as_tensor(a.data, device=dev), size=(a.m, a.k))
    b = torch.as_tensor(problem.b, device=dev)
    out = [torch.full((problem.m, problem.n), float("nan"), dtype=b.dtype, device=dev)]

    def run():
        out[0] = torch.sparse.mm(mat, b)

    return Prepared(run=run, fetch=lambda: out[0].cpu().numpy(), poison=lambda: out[0].fill_(float("nan")),
                    sync=torch.cuda.synchronize, clock=time_gpu, info={"library": f"torch {torch.__version__}"},
                    release=lambda: out.clear())
