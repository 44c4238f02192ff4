"""Vendor baselines on the CPU: numpy dense matmul (BLAS), scipy CSR @ dense, MKL sparse, torch.sparse.

They are variants like any other (marked ``baseline``), measured by the same harness at the same thread
count. Thread pools: numba, OpenBLAS (numpy/scipy), MKL and its Intel OpenMP runtime each keep their own
threads; on a 2-core machine two busy pools make a 1 ms product take 8 ms. The harness sets numba and every
pool threadpoolctl can see *at that moment*; MKL is loaded lazily by its ``build``, after that, so the MKL
and torch builds set their pools again to numba's count (``info['threads']`` records it).

* ``cpu.dense.numpy`` — A expanded to dense, ``np.matmul`` into a preallocated C (OpenBLAS sgemm):
  the "just use dense" answer every sparse kernel must beat.
* ``cpu.csr.scipy`` — ``scipy.sparse.csr_matrix @ B``: scipy's single-threaded C++ csr_matvecs. It
  allocates its output, so ``run`` copies it into C (the copy is part of the measured time).
* ``cpu.csr.mkl`` — MKL's inspector-executor SpMM (``mkl_sparse_s_mm``) through ``sparse_dot_mkl``, with
  ``out=C`` and ``out_scalar=0`` (beta = 0: C is overwritten, never read). ``sparse_dot_mkl`` creates the
  MKL matrix handle on every call, as a Python user calling it would; that cost is in the time. Optional
  (the ``baselines`` extra: ``pip install 'spmm-study[baselines]'``): listed as unavailable when absent.
* ``cpu.csr.torch`` — ``torch.sparse.mm`` on a CSR tensor; only when torch is already installed (the project
  never installs it).
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import sys
from functools import lru_cache
from importlib.util import find_spec

import numpy as np

from spmm_study import movement
from spmm_study.dtypes import ALL as ALL_DTYPES
from spmm_study.errors import DeviceUnavailable
from spmm_study.problem import INT_POISON
from spmm_study.registry import host_prepared, variant


def _same_threads_everywhere() -> int:
    """Set every BLAS/OpenMP pool loaded *now* to numba's thread count (the harness's choice); return it."""
    import numba
    from threadpoolctl import threadpool_limits

    threads = numba.get_num_threads()
    threadpool_limits(limits=threads)
    return threads


@variant("cpu.dense.numpy", loop_order="BLAS", movement=movement.dense_blas, rung=900, baseline=True,
         dtypes=ALL_DTYPES)
def build_numpy(problem):
    """numpy dense matmul (BLAS sgemm/dgemm) on A expanded to dense.

    Half and int8 problems (no BLAS takes them): A widened once at build (fp16/bf16 → fp32, exact; int8 →
    fp64, whose sums stay exact below 2^53), B widened on every call (the activations arrive in 16 or 8 bits:
    the conversion is in the time), the GEMM in the wide type, C rounded back (int8: int32)."""
    b = problem.b
    c = problem.new_output()
    threads = {"threads": _same_threads_everywhere()}
    if problem.dtype in (np.float32, np.float64):
        a = problem.a.to_dense()
        return host_prepared(lambda: np.matmul(a, b, out=c), c, threads)
    wide = np.float64 if problem.dtype.kind in "iu" else np.float32
    a = problem.a.to_dense(wide)

    def run():
        c[...] = np.matmul(a, b.astype(wide))

    prepared = host_prepared(run, c, {**threads, "computed_in": np.dtype(wide).name})
    if problem.dtype.kind in "iu":
        prepared.poison = lambda: c.fill(INT_POISON)
    return prepared


@variant("cpu.csr.scipy", loop_order="i→p→j (C++)", movement=movement.csr_rowwise, rung=901, baseline=True)
def build_scipy(problem):
    """scipy.sparse CSR @ dense (single-threaded csr_matvecs)."""
    a = problem.a.to_scipy()
    b = problem.b
    c = problem.new_output()

    def run():
        c[...] = a @ b

    return host_prepared(run, c, {"threads": 1})


@lru_cache(maxsize=1)
def _mkl_rt_path() -> str | None:
    """libmkl_rt: $MKL_RT, the loader's search path, or the ``mkl`` wheel's copy in <prefix>/lib (which the
    loader does not search, so ``sparse_dot_mkl`` alone would not find it)."""
    if os.environ.get("MKL_RT") and os.path.exists(os.environ["MKL_RT"]):
        return os.environ["MKL_RT"]
    found = ctypes.util.find_library("mkl_rt")
    if found:
        return found
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        hits = sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")))
        if hits:
            return hits[-1]
    return None


def mkl_unavailable() -> str | None:
    if find_spec("sparse_dot_mkl") is None:
        return "sparse_dot_mkl is not installed (pip install 'spmm-study[baselines]')"
    if _mkl_rt_path() is None:
        return "libmkl_rt was not found (pip install mkl, or set MKL_RT to libmkl_rt.so)"
    return None


@variant("cpu.csr.mkl", loop_order="MKL (inspector-executor)", movement=movement.csr_rowwise, rung=902,
         baseline=True, available=mkl_unavailable)
def build_mkl(problem):
    """Intel MKL sparse CSR @ dense (mkl_sparse_s_mm via sparse_dot_mkl), beta = 0 into C."""
    # Intel OpenMP keeps idle workers spinning for KMP_BLOCKTIME (200 ms by default): on 2 cores that steals a
    # core from the next kernel measured in this process. Only effective before libiomp5 loads (here).
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    path = _mkl_rt_path()
    if path and "MKL_RT" not in os.environ and os.path.isabs(path):
        os.environ["MKL_RT"] = path
    try:
        from sparse_dot_mkl import dot_product_mkl
    except ImportError as exc:
        raise DeviceUnavailable(f"MKL could not be loaded: {exc}") from None
    threads = _same_threads_everywhere()  # MKL and libiomp5 were just loaded: set their pools now
    a = problem.a.to_scipy()
    b = problem.b
    c = problem.new_output()
    return host_prepared(lambda: dot_product_mkl(a, b, out=c, out_scalar=0.0), c, {"threads": threads})


def torch_unavailable() -> str | None:
    if find_spec("torch") is None:
        return "torch is not installed (the project does not install it; used when present)"
    return None


@variant("cpu.csr.torch", loop_order="torch.sparse", movement=movement.csr_rowwise, rung=903, baseline=True,
         available=torch_unavailable)
def build_torch(problem):
    """torch.sparse.mm on a CSR tensor (only when torch is already installed)."""
    import torch

    threads = _same_threads_everywhere()
    torch.set_num_threads(threads)
    a = problem.a
    at = torch.sparse_csr_tensor(torch.from_numpy(a.indptr.astype(np.int64)), torch.from_numpy(a.indices.astype(np.int64)),
                                 torch.from_numpy(a.data), size=a.shape)
    bt = torch.from_numpy(problem.b)
    c = problem.new_output()
    ct = torch.from_numpy(c)

    def run():
        ct.copy_(torch.sparse.mm(at, bt))

    return host_prepared(run, c, {"threads": threads})
