"""The Sputnik baseline without a GPU: its refusal paths (one reason each), the build recipe (nvcc on a
tiny stand-in tree written here, so the test owns every line it compiles), the cache key, and the ctypes
entry points called with host memory through the stand-in. The build of the real Sputnik tree runs when
SPMM_STUDY_SPUTNIK_SRC is set (it takes ~25 s of nvcc)."""

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spmm_study.errors import DeviceUnavailable, ParamError
from spmm_study.gpu import sputnik

ROOT = Path(__file__).resolve().parents[1]
ENVS = (sputnik.ENV_SRC, sputnik.ENV_LIB, sputnik.ENV_NVCC, sputnik.ENV_ARCH, "SPMM_STUDY_SPUTNIK_CACHE")

HEADER = """#pragma once
#include <cuda_runtime.h>
namespace sputnik {
cudaError_t CudaSpmm(int m, int k, int n, int nonzeros, const int* row_indices, const float* values,
                     const int* row_offsets, const int* column_indices, const float* dense_matrix,
                     float* output_matrix, cudaStream_t stream);
}
"""
# a stand-in that records its arguments into "C" (host memory in this test) instead of launching a kernel
SOURCE = """#include "sputnik/spmm/cuda_spmm.h"
namespace sputnik {
cudaError_t CudaSpmm(int m, int k, int n, int nonzeros, const int* row_indices, const float* values,
                     const int* row_offsets, const int* column_indices, const float* dense_matrix,
                     float* output_matrix, cudaStream_t stream) {
  output_matrix[0] = m; output_matrix[1] = k; output_matrix[2] = n; output_matrix[3] = nonzeros;
  output_matrix[4] = row_indices[1]; output_matrix[5] = values[1]; output_matrix[6] = row_offsets[1];
  output_matrix[7] = column_indices[1]; output_matrix[8] = dense_matrix[1];
  output_matrix[9] = stream == nullptr ? 1.0f : 0.0f;
  return cudaSuccess;
}
}
"""


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPMM_STUDY_SPUTNIK_CACHE", str(tmp_path / "cache"))
    return monkeypatch


def stand_in(root: Path) -> Path:
    (root / "sputnik" / "spmm").mkdir(parents=True)
    (root / "sputnik" / "spmm" / "cuda_spmm.h").write_text(HEADER)
    (root / sputnik.SPMM_SOURCE).write_text(SOURCE)
    return root


def test_refusals_name_the_missing_piece(env, tmp_path):
    assert sputnik.ENV_SRC in sputnik.library_unavailable_reason()
    env.setenv(sputnik.ENV_SRC, str(tmp_path / "nowhere"))
    assert "not a Sputnik source tree" in sputnik.library_unavailable_reason()
    tree = stand_in(tmp_path / "tree")
    env.setenv(sputnik.ENV_SRC, str(tree))
    env.setenv(sputnik.ENV_NVCC, str(tmp_path / "no-nvcc"))
    assert "nvcc not found" in sputnik.library_unavailable_reason()
    with pytest.raises(DeviceUnavailable, match="nvcc not found"):
        sputnik.build_library(tree)
    env.setenv(sputnik.ENV_ARCH, "sm90")
    assert "compute capability" in sputnik.library_unavailable_reason()
    env.delenv(sputnik.ENV_ARCH)
    env.setenv(sputnik.ENV_LIB, str(tmp_path / "missing.so"))
    assert "does not exist" in sputnik.library_unavailable_reason()
    (tmp_path / "junk.so").write_bytes(b"not an ELF")
    with pytest.raises(DeviceUnavailable, match="not a Sputnik library"):
        sputnik.load_library(tmp_path / "junk.so")


def test_unavailable_without_a_gpu_or_in_the_simulator(env):
    from spmm_study.gpu.device import gpu_unavailable_reason

    reason = sputnik.unavailable_reason()
    assert reason  # this machine has no GPU (or the test runs in the simulator): never available here
    if gpu_unavailable_reason():
        assert reason == gpu_unavailable_reason()
    from spmm_study import registry

    v = registry.get("gpu.csr.sputnik")
    assert v.baseline and v.unavailable_reason() == reason


def test_the_cache_key_follows_every_input(env, tmp_path):
    tree = stand_in(tmp_path / "tree")
    k1 = sputnik.build_key(tree, "90")
    assert sputnik.build_key(tree, "90") == k1 and sputnik.build_key(tree, "100") != k1
    (tree / "sputnik" / "extra.h").write_text("// a header Sputnik's SpMM may include\n")
    assert sputnik.build_key(tree, "90") != k1
    assert sputnik.cached_library(tree, "90").parent == tmp_path / "cache"


@pytest.mark.skipif(sputnik.nvcc() is None, reason="needs nvcc (no GPU needed)")
def test_build_recipe_and_ctypes_entry_points_on_a_stand_in(env, tmp_path):
    tree = stand_in(tmp_path / "tree")
    env.setenv(sputnik.ENV_SRC, str(tree))
    assert sputnik.library_unavailable_reason() is None  # nvcc can build it
    path = sputnik.build_library(tree)
    assert path == sputnik.cached_library(tree, "90") and path.is_file()
    assert not list(path.parent.glob("*.tmp"))
    nm = shutil.which("nm")
    if nm:
        syms = subprocess.run([nm, "-D", "--defined-only", str(path)], capture_output=True, text=True).stdout
        for s in ("spmm_study_sputnik_abi", "spmm_study_sputnik_spmm", "spmm_study_sputnik_error"):
            assert f" T {s}" in syms
    lib = sputnik.load_library(path)
    assert sputnik.library_unavailable_reason() is None  # cached now: needs no nvcc
    env.setenv(sputnik.ENV_NVCC, str(tmp_path / "gone"))
    assert sputnik.library_unavailable_reason() is None
    ints = lambda *v: (ctypes.c_int * len(v))(*v)  # noqa: E731
    flts = lambda *v: (ctypes.c_float * len(v))(*v)  # noqa: E731
    out = flts(*[0.0] * 10)
    code = lib.spmm_study_sputnik_spmm(3, 4, 5, 6, ctypes.cast(ints(9, 2), ctypes.c_void_p),
                                       ctypes.cast(flts(0, 1.5), ctypes.c_void_p),
                                       ctypes.cast(ints(0, 7), ctypes.c_void_p),
                                       ctypes.cast(ints(0, 3), ctypes.c_void_p),
                                       ctypes.cast(flts(0, 2.5), ctypes.c_void_p), ctypes.cast(out, ctypes.c_void_p),
                                       None)
    assert list(out) == [3, 4, 5, 6, 2, 1.5, 7, 3, 2.5, 1.0]  # every argument arrives in its place
    assert isinstance(code, int)  # 0, or the runtime's "no device" from cudaGetLastError on this machine
    assert lib.spmm_study_sputnik_error(code)  # a message for every code
    env.setenv(sputnik.ENV_LIB, str(path))
    assert sputnik.library() is sputnik.library()


@pytest.mark.skipif(sputnik.nvcc() is None, reason="needs nvcc")
def test_a_broken_tree_fails_to_build_in_one_line(env, tmp_path):
    tree = stand_in(tmp_path / "tree")
    (tree / sputnik.SPMM_SOURCE).write_text("this is not C++\n")
    with pytest.raises(DeviceUnavailable, match="building Sputnik failed") as exc:
        sputnik.build_library(tree)
    assert "\n" not in str(exc.value)
    assert not list((tmp_path / "cache").glob("*"))  # nothing half-written left in the cache


def test_build_command_refuses_without_a_tree(env):
    proc = subprocess.run([sys.executable, "experiments/build_sputnik.py", "build"], cwd=ROOT, capture_output=True,
                          text=True, env={**{k: v for k, v in os.environ.items() if k not in ENVS}, "PYTHONPATH": str(ROOT)},
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and sputnik.ENV_SRC in proc.stderr


@pytest.mark.skipif(not os.environ.get(sputnik.ENV_SRC) or sputnik.nvcc() is None,
                    reason="set SPMM_STUDY_SPUTNIK_SRC (and have nvcc) to build the real Sputnik")
def test_the_real_sputnik_tree_builds_for_sm90(tmp_path, monkeypatch):
    monkeypatch.setenv("SPMM_STUDY_SPUTNIK_CACHE", str(tmp_path))
    path = sputnik.build_library(Path(os.environ[sputnik.ENV_SRC]), "90")
    lib = sputnik.load_library(path)
    assert lib.spmm_study_sputnik_abi() == sputnik.ABI
    cuobjdump = shutil.which("cuobjdump")
    if cuobjdump:
        elf = subprocess.run([cuobjdump, "--list-elf", str(path)], capture_output=True, text=True).stdout
        assert "sm_90" in elf


def test_refuses_float64_before_building(env):
    from spmm_study.formats import CSR
    from spmm_study.problem import Problem

    p = Problem.make(CSR.from_dense(np.eye(3, dtype=np.float32)), 4, "float64", 0)
    with pytest.raises(ParamError, match="fp32 only"):
        sputnik.build(p)
