"""Ceilings: the measuring functions on tiny sizes (plumbing, not speed), the cache file, the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from spmm_study import calibrate as cal
from spmm_study.errors import ResultsError


def test_cpu_ceilings_tiny_are_positive_and_finite():
    c = cal.cpu_ceilings(tiny=True)
    for key in ("stream_gbps_1", "stream_gbps_all", "fma_gflops_fp32_1", "fma_gflops_fp32_all",
                "fma_gflops_fp64_1", "fma_gflops_fp64_all"):
        assert math.isfinite(c[key]) and c[key] > 0, key
    assert c["device"] == "cpu" and c["machine"] and c["threads_all"] >= 1


def test_save_merges_by_machine_and_load_rejects_garbage(tmp_path):
    path = tmp_path / "c" / "ceilings.json"
    cal.save([{"machine": "A", "stream_gbps_1": 1.0}], path)
    cal.save([{"machine": "B", "copy_gbps": 2.0}, {"machine": "A", "stream_gbps_1": 3.0}], path)
    data = cal.load(path)
    assert data == {"A": {"machine": "A", "stream_gbps_1": 3.0}, "B": {"machine": "B", "copy_gbps": 2.0}}
    assert cal.load(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(ResultsError):
        cal.load(tmp_path / "bad.json")


def test_gpu_ceilings_run_in_the_simulator(tmp_path):
    """The GPU kernels run (tiny) under NUMBA_ENABLE_CUDASIM; the numbers mean nothing there."""
    pytest.importorskip("numba_cuda")
    code = "import json; from spmm_study.calibrate import gpu_ceilings; print(json.dumps(gpu_ceilings(tiny=True)))"
    res = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["device"] == "gpu" and out["copy_gbps"] > 0 and out["fma_gflops_fp32"] > 0


def test_cli_calibrate_writes_the_cache(tmp_path):
    from typer.testing import CliRunner

    from spmm_study.cli import app

    path = tmp_path / "ceilings.json"
    res = CliRunner().invoke(app, ["calibrate", "--tiny", "--no-gpu", "--out", str(path)])
    assert res.exit_code == 0, res.output
    data = json.loads(path.read_text())
    (entry,) = data.values()
    assert entry["fma_gflops_fp32_all"] > 0 and "triad bandwidth" in res.output
