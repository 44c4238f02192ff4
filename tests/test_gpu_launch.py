"""The bound launch path (spmm_study/gpu/launch.py): its pure parts on the CPU, the fallback in the
simulator (every rung still passes with SPMM_STUDY_GPU_LAUNCH=bound), and — on a real GPU only
(``pytest -m gpu``) — the same bits as numba's launch at a fraction of the host dispatch."""

import ctypes
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spmm_study.errors import ParamError
from spmm_study.gpu import launch

ROOT = Path(__file__).resolve().parents[1]


def test_to_ctypes_keeps_numbas_layout():
    vals = launch.to_ctypes([0, 0, 12, 4, 0x7F0000001000, 3, 4, ctypes.c_int64(7), ctypes.c_float(1.5), True])
    assert [type(v) for v in vals] == [ctypes.c_ssize_t] * 7 + [ctypes.c_int64, ctypes.c_float, ctypes.c_bool]
    assert vals[4].value == 0x7F0000001000 and vals[7].value == 7 and vals[8].value == 1.5 and vals[9].value
    with pytest.raises(TypeError, match="cannot be bound"):
        launch.to_ctypes([1.5])
    arr = launch.param_array(vals)
    assert [arr[i] for i in range(len(vals))] == [ctypes.addressof(v) for v in vals]
    assert len(launch.param_array([])) == 1  # never a zero-length array for the driver


def test_dims_and_mode(monkeypatch):
    assert launch.dims(5) == (5, 1, 1) and launch.dims((3, 4)) == (3, 4, 1) and launch.dims((1, 2, 3)) == (1, 2, 3)
    for bad in ((0,), (1, 2, 3, 4), (2.0,), ()):
        with pytest.raises(ParamError):
            launch.dims(bad)
    monkeypatch.delenv(launch.ENV, raising=False)
    assert launch.launch_mode() == "bound"  # the default
    monkeypatch.setenv(launch.ENV, "numba")
    assert launch.launch_mode() == "numba"
    monkeypatch.setenv(launch.ENV, "graph")
    with pytest.raises(ParamError, match="choose numba or bound"):
        launch.launch_mode()


SIM = """
import json, sys
sys.path.insert(0, "tests")
from conftest import check_variant, edge_matrices
from spmm_study import registry
from spmm_study.problem import Problem
mats = edge_matrices()
for vid, params in [("gpu.csr.swizzle", {"lanes": 4, "vec": 4, "tiles": 1, "unroll": 2, "threads": 8}),
                    ("gpu.csr.nnz_split", {"chunk": 3, "vec": 2, "tiles": 1, "threads": 64}),
                    ("gpu.coo.atomic", {"block_x": 8, "block_y": 4})]:
    v = registry.get(vid)
    check_variant(v, mats["empty_rows"], 9, params, label="empty_rows")
    p = v.build(Problem.make(mats["one_dense_row"], 6, "float32", 0), **v.resolve_params(params))
    p.run(); p.sync(); p.run(); p.sync()
    print(vid, p.info["launch"])
"""


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="needs numba-cuda")
def test_bound_mode_in_the_simulator_falls_back_and_still_passes():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", SPMM_STUDY_GPU_LAUNCH="bound", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SIM], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and all(ln.endswith("numba (simulator)") for ln in lines), lines


@pytest.mark.gpu
def test_bound_launch_matches_numba_and_dispatches_faster():
    from spmm_study import registry
    from spmm_study.formats import CSR
    from spmm_study.problem import Problem

    rng = np.random.default_rng(0)
    d = rng.standard_normal((512, 512)).astype(np.float32)
    d[rng.random(d.shape) < 0.9] = 0
    a = CSR.from_dense(d)
    for vid in ("gpu.csr.swizzle", "gpu.csr.row_split", "gpu.csr.nnz_split", "gpu.coo.atomic", "gpu.csr.densify_tile"):
        v = registry.get(vid)
        out, disp = {}, {}
        for mode in ("numba", "bound"):
            os.environ[launch.ENV] = mode
            try:
                p = v.build(Problem.make(a, 256, "float32", 0), **v.resolve_params({}))
                p.poison()
                p.run()
                p.sync()
                p.poison()
                p.run()  # bound from here on in "bound" mode
                p.sync()
                out[mode] = np.array(p.fetch())
                assert p.info["launch"].startswith(mode), p.info["launch"]
                ts = []
                for _ in range(200):
                    t0 = time.perf_counter()
                    p.run()
                    ts.append(time.perf_counter() - t0)
                    p.sync()
                disp[mode] = float(np.median(ts))
                p.release()
            finally:
                os.environ.pop(launch.ENV, None)
        if v.deterministic:
            assert np.array_equal(out["numba"], out["bound"]), vid
        else:
            assert np.allclose(out["numba"], out["bound"], rtol=1e-5, atol=1e-5), vid
        print(f"{vid}: host dispatch numba {disp['numba'] * 1e6:.1f} us, bound {disp['bound'] * 1e6:.1f} us")
        assert disp["bound"] < disp["numba"], (vid, disp)
