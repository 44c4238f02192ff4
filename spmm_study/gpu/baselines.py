"""GPU baselines: the vendor libraries, registered as variants so they are measured in the same run.

* ``gpu.dense.cublas`` — cuBLAS SGEMM through ``cupy.matmul`` on the densified A, fp32 with TF32 off
  (cupy uses TF32 only when ``CUPY_TF32=1``; we refuse to run if it is set). Zeros multiplied.
* ``gpu.dense.cublas_tf32`` — cuBLAS on the densified A through ``torch.matmul`` with TF32 tensor cores
  allowed (``torch.backends.cuda.matmul.allow_tf32``, set around each call and restored): the dense
  tensor-core bar a sparse kernel must clear. Checked against TF32's own tolerance (``problem.PRECISIONS``).
* ``gpu.nm24.cusparselt`` — the 2:4 product on the sparse tensor cores: cuSPARSELt through torch's
  semi-structured sparse tensors (``to_sparse_semi_structured``), in float16/bfloat16 (fp32 sums), int8
  (int32 C), or float32 computed in TF32 where torch takes it: the hardware path beside rungs 21 and 23.
  Only for matrices that are 2:4 (others: SKIP), and only shapes and types cuSPARSELt takes (torch says
  which; its refusal is a SKIP with torch's reason).
* ``gpu.dense.torch`` — cuBLAS through ``torch.matmul`` in the problem's own precision (fp16/bf16 on the
  tensor cores with fp32 sums, int8 through ``torch._int_mm``): the dense bar of the half-precision rows.
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


def torch_tensor(arr: np.ndarray, dev):
    """A host array (float32/64, float16, ml_dtypes' bfloat16, int8) as a torch tensor on ``dev``."""
    import torch

    if arr.dtype.name == "bfloat16":  # torch cannot read ml_dtypes' type: the same 16 bits, reinterpreted
        return torch.from_numpy(np.ascontiguousarray(arr).view(np.uint16)).view(torch.bfloat16).to(dev)
    return torch.as_tensor(np.ascontiguousarray(arr), device=dev)


def torch_fetch(t) -> np.ndarray:
    """A torch result back on the host; bfloat16 widened to float32 (exact: numpy has no bfloat16 of torch's)."""
    import torch

    return (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy()


def first_layout_that_runs(call, b, what: str, problem):
    """``b`` as ``call`` takes it: row-major if it runs, else the same values column-major (one copy, at build);
    a ParamError (the row's SKIP) with torch's reason when neither runs."""
    from spmm_study.errors import ParamError

    reasons = []
    for bb in (b, b.t().contiguous().t()):
        try:
            call(bb)
            return bb
        except (RuntimeError, ValueError, TypeError) as exc:
            reasons.append(str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__)
    import torch

    raise ParamError(f"{what} (torch {torch.__version__}) refused {problem.m}x{problem.k}x{problem.n}: "
                     f"{' / '.join(reasons)}")


def _torch_prepared(run, out, info, precision="", integer=False) -> Prepared:
    import torch

    def poison():
        out[0].fill_(np.iinfo(np.int32).min if integer else float("nan"))

    return Prepared(run=run, fetch=lambda: torch_fetch(out[0]), poison=poison, sync=torch.cuda.synchronize,
                    clock=time_gpu, precision=precision, info=info, release=lambda: out.clear())


@variant("gpu.dense.torch", loop_order="library", movement=models.dense_library, rung=96, baseline=True,
         available=_torch_unavailable, dtypes=("float32", "float16", "bfloat16", "int8"))
def build_cublas_torch(problem):
    """cuBLAS GEMM (torch) on the densified A in the problem's own precision: the dense bar beside cuSPARSELt.

    float16/bfloat16: tensor cores, fp32 accumulation (torch's reduced-precision reductions switched off
    around each call, so no split-K partial sums in 16 bits), C in the input type. int8: ``torch._int_mm``
    (int32 C; torch asks M > 16 and K, N multiples of 8: others are a SKIP with torch's reason). float32:
    full fp32 (TF32 off), like gpu.dense.cublas."""
    import torch

    dev = torch.device("cuda")
    a = torch_tensor(problem.a.to_dense(), dev)
    b = torch_tensor(problem.b, dev)
    integer = problem.dtype.kind in "iu"
    flags = torch.backends.cuda.matmul
    out = [torch.empty((problem.m, problem.n), dtype=torch.int32 if integer else b.dtype, device=dev)]
    if integer:
        # cuBLASLt's int8 GEMM wants B column-major on some versions: row-major first, then the same B
        # column-major (a copy at build); torch's refusal of both is a SKIP with its reason
        b = first_layout_that_runs(lambda bb: torch._int_mm(a, bb), b, "torch's int8 GEMM", problem)
        layout = "column-major" if not b.is_contiguous() else "row-major"

        def run():
            out[0] = torch._int_mm(a, b)
    else:
        def run():
            saved = (flags.allow_tf32, flags.allow_fp16_reduced_precision_reduction,
                     flags.allow_bf16_reduced_precision_reduction)
            flags.allow_tf32 = False
            flags.allow_fp16_reduced_precision_reduction = False
            flags.allow_bf16_reduced_precision_reduction = False
            try:
                torch.matmul(a, b, out=out[0])
            finally:
                (flags.allow_tf32, flags.allow_fp16_reduced_precision_reduction,
                 flags.allow_bf16_reduced_precision_reduction) = saved

    info = {"library": f"torch {torch.__version__} cuBLAS", "dtype": problem.dtype.name}
    if integer:
        info["b_layout"] = layout
    return _torch_prepared(run, out, info, integer=integer)


def cusparselt_unavailable() -> str | None:
    """torch and a GPU (which types torch's cuSPARSELt path takes is asked at build: float32 was refused on the
    H200 with torch 2.11 — "not a supported dtype" — a SKIP row with torch's reason, 2026-12-02)."""
    return _torch_unavailable()


@variant("gpu.nm24.cusparselt", loop_order="library", movement=models.nm24_library, rung=95, baseline=True,
         available=cusparselt_unavailable, accepts=lambda a: NM24.violation(a) is None,
         dtypes=("float16", "bfloat16", "int8", "float32"))
def build_cusparselt(problem):
    """2:4 sparse tensor cores: cuSPARSELt through torch semi-structured sparsity (fp16/bf16/int8; fp32 as TF32).

    float16/bfloat16: fp32 accumulation, C in the input type. int8: ``torch._cslt_sparse_mm`` with an int32 C
    (torch.mm would write int8, saturated). float32: computed in TF32 (checked to TF32's tolerance) where torch
    takes it at all."""
    from spmm_study.errors import ParamError
    from spmm_study.gpu._kit import to_24

    to_24(problem.a)  # FormatError (a SKIP row) unless the matrix is 2:4: torch would silently prune it
    import torch
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    SparseSemiStructuredTensor._FORCE_CUTLASS = False  # cuSPARSELt, the library this baseline is about
    dev = torch.device("cuda")
    try:
        a = to_sparse_semi_structured(torch_tensor(problem.a.to_dense(), dev))
    except (RuntimeError, ValueError) as exc:
        raise ParamError(f"cuSPARSELt (torch {torch.__version__}) refused {problem.m}x{problem.k} "
                         f"{problem.dtype}: {str(exc).splitlines()[0][:160]}") from None
    b = torch_tensor(problem.b, dev)
    integer = problem.dtype.kind in "iu"
    if integer and not hasattr(a, "packed"):
        raise ParamError("torch's semi-structured int8 path here is not cuSPARSELt's (no int32 output)")
    out = [torch.empty((problem.m, problem.n), dtype=torch.int32 if integer else b.dtype, device=dev)]

    info = {"library": f"torch {torch.__version__} cuSPARSELt", "dtype": problem.dtype.name}
    if integer:
        b = first_layout_that_runs(lambda bb: torch._cslt_sparse_mm(a.packed, bb, out_dtype=torch.int32), b,
                                   "cuSPARSELt's int8 product", problem)
        info["b_layout"] = "column-major" if not b.is_contiguous() else "row-major"

        def run():
            out[0] = torch._cslt_sparse_mm(a.packed, b, out_dtype=torch.int32)
    else:
        def run():
            out[0] = torch.mm(a, b)

        try:
            run()
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ParamError(f"cuSPARSELt (torch {torch.__version__}) refused {problem.m}x{problem.k}x{problem.n} "
                             f"{problem.dtype}: {str(exc).splitlines()[0][:160]}") from None
    precision = "tf32" if problem.dtype == np.float32 else ""
    return _torch_prepared(run, out, info, precision=precision, integer=integer)


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
