"""Baselines a performance engineer would pick instead of ours: MKL with its inspector step done once, and the
Sparse Register Tiling artifact (PLDI'23) built from a source tree the user points to.

* ``cpu.csr.mkl_opt`` — MKL's inspector-executor used as its manual says: the matrix handle is created once,
  ``mkl_sparse_set_mm_hint`` (row-major B of N columns, many calls expected) and ``mkl_sparse_optimize``
  run once at build time (untimed, like our rungs' partitions), and each call is one ``mkl_sparse_s_mm``
  with beta = 0 into C. ``cpu.csr.mkl`` beside it is the plain call through ``sparse_dot_mkl``, which
  creates the handle on every call as a Python user calling it would. Same extra: ``pip install
  'spmm-study[baselines]'``.
* ``cpu.csr.spregtiling`` — see ``spmm_study.cpu.spregtiling``: available only when
  ``$SPMM_STUDY_SPREGTILING`` names a built entry point (the artifact has no licence file: it is never
  copied into the project, and the project never downloads it).
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from spmm_study import movement
from spmm_study.cpu.baselines import _mkl_rt_path, _same_threads_everywhere, mkl_unavailable
from spmm_study.errors import DeviceUnavailable, SpmmError
from spmm_study.registry import Prepared, variant

# mkl_spblas.h enums
_NON_TRANSPOSE = 10
_MATRIX_GENERAL = 20
_ROW_MAJOR = 101
_INDEX_ZERO = 0


class _Descr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("mode", ctypes.c_int), ("diag", ctypes.c_int)]


class MklError(SpmmError):
    """An MKL sparse call returned a status other than SPARSE_STATUS_SUCCESS."""


def _load_mkl():
    """(libmkl_rt as loaded by sparse_dot_mkl, its MKL_INT numpy dtype): one library, one interface layer."""
    os.environ.setdefault("KMP_BLOCKTIME", "0")  # see baselines.build_mkl
    path = _mkl_rt_path()
    if path and "MKL_RT" not in os.environ and os.path.isabs(path):
        os.environ["MKL_RT"] = path
    try:
        from sparse_dot_mkl._mkl_interface import MKL
        from sparse_dot_mkl._mkl_interface._cfunctions import _libmkl
    except ImportError as exc:
        raise DeviceUnavailable(f"MKL could not be loaded: {exc}") from None
    # a CDLL of our own on the same library: its function objects carry our argtypes, not sparse_dot_mkl's
    return ctypes.CDLL(_libmkl._name), np.dtype(MKL.MKL_INT_NUMPY)


def _check(status: int, what: str) -> None:
    if status != 0:
        raise MklError(f"MKL {what} returned sparse status {status}")


@variant("cpu.csr.mkl_opt", loop_order="MKL (hint + optimize once)", movement=movement.csr_rowwise, rung=904,
         baseline=True, available=mkl_unavailable)
def build_mkl_opt(problem):
    """Intel MKL sparse CSR @ dense with the inspector step once (mm hint + optimize, untimed), then mkl_sparse_?_mm."""
    lib, mkl_int = _load_mkl()
    threads = _same_threads_everywhere()
    a, b = problem.a, problem.b
    if problem.dtype == np.float32:
        create, mm, real = lib.mkl_sparse_s_create_csr, lib.mkl_sparse_s_mm, ctypes.c_float
    elif problem.dtype == np.float64:
        create, mm, real = lib.mkl_sparse_d_create_csr, lib.mkl_sparse_d_mm, ctypes.c_double
    else:
        raise SpmmError(f"MKL sparse has no {problem.dtype} kernel")
    if max(a.m, a.k, problem.n, a.nnz) > np.iinfo(mkl_int).max:
        raise SpmmError(f"matrix too large for MKL_INT {mkl_int}")
    indptr = np.ascontiguousarray(a.indptr, dtype=mkl_int)
    indices = np.ascontiguousarray(a.indices, dtype=mkl_int)
    values = np.ascontiguousarray(a.data)
    keep = (indptr, indices, values)  # MKL keeps pointers into these: they must outlive the handle
    handle = ctypes.c_void_p()
    ptr = lambda arr, t: arr.ctypes.data_as(ctypes.POINTER(t))  # noqa: E731
    cint = np.ctypeslib.as_ctypes_type(mkl_int)
    descr = _Descr(_MATRIX_GENERAL, 0, 0)
    create.restype = lib.mkl_sparse_set_mm_hint.restype = lib.mkl_sparse_optimize.restype = ctypes.c_int
    mm.restype = lib.mkl_sparse_destroy.restype = ctypes.c_int
    _check(create(ctypes.byref(handle), _INDEX_ZERO, cint(a.m), cint(a.k), ptr(indptr, cint),
                  ptr(indptr[1:], cint), ptr(indices, cint), ptr(values, real)), "create_csr")
    released = []

    def release():
        if not released:
            released.append(True)
            lib.mkl_sparse_destroy(handle)

    try:
        lib.mkl_sparse_set_mm_hint.argtypes = [ctypes.c_void_p, ctypes.c_int, _Descr, ctypes.c_int, cint, cint]
        _check(lib.mkl_sparse_set_mm_hint(handle, _NON_TRANSPOSE, descr, _ROW_MAJOR, cint(problem.n),
                                          cint(1_000_000)), "set_mm_hint")
        _check(lib.mkl_sparse_optimize(handle), "optimize")
    except Exception:
        release()
        raise
    c = problem.new_output()
    n = problem.n
    mm.argtypes = [ctypes.c_int, real, ctypes.c_void_p, _Descr, ctypes.c_int, ctypes.c_void_p, cint, cint, real,
                   ctypes.c_void_p, cint]
    bptr, cptr = b.ctypes.data, c.ctypes.data

    def run():
        _check(mm(_NON_TRANSPOSE, 1.0, handle, descr, _ROW_MAJOR, bptr, n, n, 0.0, cptr, n), "mm")

    def fetch():
        return c

    prep = Prepared(run=run, fetch=fetch, poison=lambda: c.fill(np.nan), info={"threads": threads})
    prep.release = release
    prep._keep = keep  # noqa: SLF001 (lifetime of the arrays MKL points into)
    return prep


# ---------------------------------------------------------------------------------------------------------
# Sparse Register Tiling (Wilkinson, Cheshmi, Mehri Dehnavi, PLDI'23): github.com/SpRegTiling/sparse-register-tiling
# with its spmm-nano-kernels submodule. The repository has no licence file, so nothing of it is copied here
# and the project never downloads it: the user clones it, generates its AVX-512 kernels with its own codegen
# (``cd spmm_nano_kernels && python -m codegen.generate_ukernels``), then builds the project's own entry point
# (``csrc/spregtiling_entry.cpp``) against it with ``python experiments/build_spregtiling.py build CLONE``
# (spmm_study/cpu/spregtiling.py: the artifact's fp32 AVX-512 kernels + the entry point into one cached .so,
# checked against float64; 9 minutes of one core here with g++ 12) and points ``$SPMM_STUDY_SPREGTILING``
# at the library it prints. The entry point exports
#
#   void* srt_create(int m, int k, int n, const int* indptr, const int* indices, const float* values, int threads);
#   int   srt_run(void* handle, const float* b, float* c);        /* C = A·B, row-major, 0 on success */
#   void  srt_destroy(void* handle);
#   const char* srt_config(void* handle);                         /* optional: the method it chose */
#
# srt_create does the artifact's inspector once (untimed): the method is the first-ranked one of the artifact's
# empirical heuristic for the matrix's sparsity and N, then its packing and tile sizes; srt_run is the executor
# call. C is handed over with 64 rows of slack past its end (the artifact pads M to a multiple of its M_r and
# writes those rows: without the slack it corrupted the heap, issue 12); only the first M rows are the result.
# B is passed as it is: with a PROT_NONE page right after B the artifact never read past its end (N = 1 to
# 3136, tails of 16 included), so it is not copied.

SPREGTILING_ENV = "SPMM_STUDY_SPREGTILING"
SLACK_ROWS = 64


def spregtiling_unavailable() -> str | None:
    path = os.environ.get(SPREGTILING_ENV, "")
    if not path:
        return (f"${SPREGTILING_ENV} is not set (point it at a shared library built from your own clone of "
                "SpRegTiling/sparse-register-tiling with experiments/build_spregtiling.py)")
    if not os.path.isfile(path):
        return f"${SPREGTILING_ENV}={path} is not a file (expected the built shared library)"
    try:
        lib = ctypes.CDLL(os.path.abspath(path))
    except OSError as exc:
        return f"${SPREGTILING_ENV}={path} could not be loaded: {exc}"
    missing = [f for f in ("srt_create", "srt_run", "srt_destroy") if not hasattr(lib, f)]
    if missing:
        return f"${SPREGTILING_ENV}={path} does not export {', '.join(missing)}"
    return None


@variant("cpu.csr.spregtiling", loop_order="SpRegTiling (nano-kernels)", movement=movement.csr_rowwise, rung=905,
         baseline=True, available=spregtiling_unavailable)
def build_spregtiling(problem):
    """Sparse Register Tiling artifact (PLDI'23) through a user-built entry point ($SPMM_STUDY_SPREGTILING)."""
    reason = spregtiling_unavailable()
    if reason:
        raise DeviceUnavailable(f"cpu.csr.spregtiling is unavailable: {reason}")
    if problem.dtype != np.float32:
        raise SpmmError("the Sparse Register Tiling entry point is float32 only")
    import numba

    lib = ctypes.CDLL(os.path.abspath(os.environ[SPREGTILING_ENV]))
    lib.srt_create.restype = ctypes.c_void_p
    lib.srt_create.argtypes = [ctypes.c_int] * 3 + [ctypes.c_void_p] * 3 + [ctypes.c_int]
    lib.srt_run.restype = ctypes.c_int
    lib.srt_run.argtypes = [ctypes.c_void_p] * 3
    lib.srt_destroy.argtypes = [ctypes.c_void_p]
    a = problem.a
    indptr = np.ascontiguousarray(a.indptr, dtype=np.int32)
    indices = np.ascontiguousarray(a.indices, dtype=np.int32)
    values = np.ascontiguousarray(a.data, dtype=np.float32)
    threads = numba.get_num_threads()
    handle = lib.srt_create(a.m, a.k, problem.n, indptr.ctypes.data, indices.ctypes.data, values.ctypes.data,
                            threads)
    if not handle:
        raise SpmmError("the Sparse Register Tiling entry point refused this matrix (srt_create returned NULL)")
    config = ""
    if hasattr(lib, "srt_config"):
        lib.srt_config.restype = ctypes.c_char_p
        lib.srt_config.argtypes = [ctypes.c_void_p]
        config = (lib.srt_config(handle) or b"").decode(errors="replace")
    c_slack = np.full((problem.m + SLACK_ROWS, problem.n), np.nan, np.float32)
    c = c_slack[: problem.m]

    def run():
        b = np.ascontiguousarray(problem.b)  # read where it is (a copy only for a non-contiguous B)
        if lib.srt_run(handle, b.ctypes.data, c_slack.ctypes.data) != 0:
            raise SpmmError("the Sparse Register Tiling entry point failed (srt_run != 0)")

    done = []

    def release():
        if not done:
            done.append(True)
            lib.srt_destroy(handle)

    info = {"threads": threads, **({"config": config} if config else {})}
    prep = Prepared(run=run, fetch=lambda: c, poison=lambda: c.fill(np.nan), info=info)
    prep.release = release
    prep._keep = (indptr, indices, values, c_slack)  # noqa: SLF001
    return prep
