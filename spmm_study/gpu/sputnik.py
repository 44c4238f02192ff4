"""Baseline ``gpu.csr.sputnik`` — Sputnik's fp32 CSR SpMM (Gale et al., SC'20), built from the user's tree.

Sputnik (google-research/sputnik, Apache-2.0) is the published GPU SpMM the ladder is measured against. The
project never copies its sources: point ``SPMM_STUDY_SPUTNIK_SRC`` at a checkout (the directory holding
``sputnik/spmm/cuda_spmm.cu.cc``). On first use this module compiles, with plain nvcc, Sputnik's SpMM
source together with the project's own 20-line ``extern "C"`` wrapper (``csrc/sputnik_wrapper.cu``) into one
shared library, cached in ``$XDG_CACHE_HOME/spmm-study/sputnik/`` under a hash of every input (wrapper,
Sputnik's SpMM source and headers, target architecture, flags), so an edited tree is rebuilt and an
unchanged one is not. ``SPMM_STUDY_SPUTNIK_LIB`` may instead name a library built elsewhere (for a GPU
machine without nvcc: ``python experiments/build_sputnik.py build`` prints the path of the one built here).
cudart is linked statically, so the library needs only the driver.

The call goes through ctypes with the device pointers of numba-cuda arrays (``__cuda_array_interface__``),
on the legacy default stream like every other GPU variant. Sputnik takes a row order (its "row swizzle",
the longest rows first) as an array; it is computed at build, as rung 15 does.
Listed unavailable, with the reason, where there is no GPU (or only the simulator), no source tree, or
neither a cached library nor nvcc to build one.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from spmm_study.errors import DeviceUnavailable, ParamError, ResourceError
from spmm_study.gpu import models
from spmm_study.gpu.device import gpu_unavailable_reason, simulator
from spmm_study.gpu.timing import time_gpu
from spmm_study.registry import Prepared, variant

WRAPPER = Path(__file__).with_name("csrc") / "sputnik_wrapper.cu"
SPMM_SOURCE = Path("sputnik") / "spmm" / "cuda_spmm.cu.cc"
ABI = 1
ENV_SRC, ENV_LIB, ENV_NVCC, ENV_ARCH = ("SPMM_STUDY_SPUTNIK_SRC", "SPMM_STUDY_SPUTNIK_LIB", "SPMM_STUDY_NVCC",
                                        "SPMM_STUDY_SPUTNIK_ARCH")
FLAGS = ("-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-cudart", "static")
INT_MAX = 2**31 - 1


def arch() -> str:
    """The compute capability to build for ('90' = sm_90, the H100/H200); SPMM_STUDY_SPUTNIK_ARCH overrides."""
    value = os.environ.get(ENV_ARCH, "90")
    if not value.isdigit() or not 50 <= int(value) <= 199:
        raise ParamError(f"{ENV_ARCH}={value!r}: give a compute capability such as 90")
    return value


def source_tree() -> Path | None:
    src = os.environ.get(ENV_SRC)
    return Path(src).expanduser() if src else None


def nvcc() -> str | None:
    """nvcc from SPMM_STUDY_NVCC, else PATH, else $CUDA_HOME/bin or /usr/local/cuda/bin."""
    given = os.environ.get(ENV_NVCC)
    if given:
        return given if os.access(given, os.X_OK) and Path(given).is_file() else None
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if home and os.access(Path(home) / "bin" / "nvcc", os.X_OK):
            return str(Path(home) / "bin" / "nvcc")
    return None


def _inputs(src: Path) -> list[Path]:
    """Every file the build reads from the tree: the SpMM source and all Sputnik headers."""
    return [src / SPMM_SOURCE] + sorted((src / "sputnik").rglob("*.h"))


def tree_problem(src: Path) -> str | None:
    if not (src / SPMM_SOURCE).is_file() or not (src / "sputnik" / "spmm" / "cuda_spmm.h").is_file():
        return f"{src} is not a Sputnik source tree (no {SPMM_SOURCE} and sputnik/spmm/cuda_spmm.h)"
    return None


def build_key(src: Path, cc: str) -> str:
    h = hashlib.sha256()
    h.update(f"abi{ABI} sm_{cc} {' '.join(FLAGS)}\n".encode())
    h.update(WRAPPER.read_bytes())
    for f in _inputs(src):
        h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    from spmm_study.files import cache_path

    return cache_path("SPMM_STUDY_SPUTNIK_CACHE", "sputnik")


def cached_library(src: Path, cc: str) -> Path:
    return cache_dir() / f"libspmm_study_sputnik-sm{cc}-{build_key(src, cc)}.so"


def library_unavailable_reason() -> str | None:
    """Why no Sputnik library can be had here (GPU aside), or None."""
    lib = os.environ.get(ENV_LIB)
    if lib:
        return None if Path(lib).is_file() else f"{ENV_LIB}={lib} does not exist"
    src = source_tree()
    if src is None:
        return (f"set {ENV_SRC} to a Sputnik source tree (github.com/google-research/sputnik; the project "
                "builds it, never ships it)")
    problem = tree_problem(src)
    if problem:
        return problem
    try:
        if cached_library(src, arch()).is_file():
            return None
    except (OSError, ParamError) as exc:
        return str(exc)
    if nvcc() is None:
        return f"nvcc not found (PATH, {ENV_NVCC}, $CUDA_HOME/bin) to build Sputnik from {src}"
    return None


def unavailable_reason() -> str | None:
    reason = gpu_unavailable_reason()
    if reason:
        return reason
    if simulator():
        return "Sputnik needs a real GPU (not the numba CUDA simulator)"
    return library_unavailable_reason()


def build_library(src: Path, cc: str | None = None, out: Path | None = None, timeout_s: float = 900) -> Path:
    """Compile Sputnik's SpMM + the wrapper into ``out`` (default: the cache path); atomic; returns the path."""
    cc = cc or arch()
    problem = tree_problem(src)
    if problem:
        raise DeviceUnavailable(problem)
    compiler = nvcc()
    if compiler is None:
        raise DeviceUnavailable(f"nvcc not found (PATH, {ENV_NVCC}, $CUDA_HOME/bin) to build Sputnik")
    out = out or cached_library(src, cc)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    cmd = [compiler, *FLAGS, f"-gencode=arch=compute_{cc},code=[sm_{cc},compute_{cc}]", f"-I{src}",
           "-x", "cu", str(src / SPMM_SOURCE), str(WRAPPER), "-o", tmp]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            raise DeviceUnavailable(f"building Sputnik failed (nvcc exit {proc.returncode}): "
                                    f"{lines[-1] if lines else 'no output'}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    except subprocess.TimeoutExpired:
        raise DeviceUnavailable(f"building Sputnik took longer than {timeout_s:.0f} s") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load_library(path: Path) -> ctypes.CDLL:
    """Open the library and check that it is this wrapper at this ABI; typed entry points."""
    try:
        lib = ctypes.CDLL(str(path))
        abi = lib.spmm_study_sputnik_abi
        spmm = lib.spmm_study_sputnik_spmm
        err = lib.spmm_study_sputnik_error
    except (OSError, AttributeError) as exc:
        raise DeviceUnavailable(f"{path} is not a Sputnik library built by spmm-study: {exc}") from None
    abi.restype = ctypes.c_int
    if abi() != ABI:
        raise DeviceUnavailable(f"{path} has wrapper ABI {abi()}, expected {ABI}: rebuild it")
    p = ctypes.c_void_p
    spmm.argtypes = [ctypes.c_int] * 4 + [p] * 7
    spmm.restype = ctypes.c_int
    err.argtypes = [ctypes.c_int]
    err.restype = ctypes.c_char_p
    return lib


@lru_cache(maxsize=4)
def _library_at(path: str) -> ctypes.CDLL:
    return load_library(Path(path))


def library() -> ctypes.CDLL:
    """The loaded library: SPMM_STUDY_SPUTNIK_LIB, else the cached build (built now if missing)."""
    reason = library_unavailable_reason()
    if reason:
        raise DeviceUnavailable(reason)
    lib = os.environ.get(ENV_LIB)
    if lib:
        return _library_at(str(Path(lib).resolve()))
    src = source_tree()
    path = cached_library(src, arch())
    if not path.is_file():
        build_library(src, out=path)
    return _library_at(str(path))


def _pointer(dev_array) -> int:
    return int(dev_array.__cuda_array_interface__["data"][0])


@variant("gpu.csr.sputnik", loop_order="library", movement=models.sparse_library, rung=93, baseline=True,
         available=unavailable_reason)
def build(problem):
    """Sputnik's fp32 CSR SpMM (built from SPMM_STUDY_SPUTNIK_SRC with nvcc, called through ctypes)."""
    from spmm_study.gpu._kit import cuda_module, device_bc, fill, flat, longest_first
    from spmm_study.gpu.baselines import check_csr_for_library

    if problem.dtype != np.float32:
        raise ParamError(f"Sputnik's SpMM is fp32 only (got {problem.dtype})")
    a = check_csr_for_library(problem.a)
    m, k, n, nnz = a.m, a.k, problem.n, a.nnz
    if m * n > INT_MAX or k * n > INT_MAX:
        raise ResourceError(f"{m}×{n} or {k}×{n} elements do not fit Sputnik's int indexing")
    lib = library()
    cu = cuda_module()
    pad = np.zeros(64, np.int32)  # Sputnik's vector loads of the last row's tile stay inside the arrays
    indptr = cu.to_device(np.ascontiguousarray(a.indptr, dtype=np.int32))
    indices = cu.to_device(np.concatenate([np.asarray(a.indices, np.int32), pad]))
    data = cu.to_device(np.concatenate([np.asarray(a.data, np.float32), pad.astype(np.float32)]))
    order = cu.to_device(longest_first(a.indptr) if m else np.zeros(1, np.int32))
    b, c = device_bc(problem)
    args = (m, k, n, nnz, _pointer(order), _pointer(data), _pointer(indptr), _pointer(indices), _pointer(b),
            _pointer(c), None)
    call = lib.spmm_study_sputnik_spmm
    c_flat = flat(c)

    def run():
        if m == 0 or n == 0:
            return
        code = call(*args)
        if code:
            raise RuntimeError(f"Sputnik: {lib.spmm_study_sputnik_error(code).decode()} (cudaError {code})")

    keep = [indptr, indices, data, order, b, c]
    return Prepared(run=run, fetch=lambda: c.copy_to_host(), poison=lambda: fill(c_flat, np.nan),
                    sync=cu.synchronize, clock=time_gpu, info={"library": f"Sputnik sm_{arch()} via ctypes"},
                    release=keep.clear)


def main(argv: list[str]) -> int:
    """``python experiments/build_sputnik.py build``: build (or find) the cached library, print its path."""
    if argv[:1] != ["build"]:
        print("usage: python experiments/build_sputnik.py build", file=sys.stderr)
        return 2
    try:
        src = source_tree()
        if src is None:
            raise DeviceUnavailable(library_unavailable_reason() or f"set {ENV_SRC}")
        path = cached_library(src, arch())
        if not path.is_file():
            build_library(src, out=path)
        load_library(path)
    except (DeviceUnavailable, ParamError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0

