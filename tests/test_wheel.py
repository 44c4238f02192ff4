"""A wheel of the project, installed apart from the source tree, runs what reads package data: the lab
handouts, the study table, the GPU chooser's tables (``check -v gpu.csr.auto`` once read one from tests/), the
CUDA/C++ sources the baselines and rungs 22-23 compile, the convolution table. Built with ``pip wheel`` (build
isolation, as ``pip install .`` builds), installed by unpacking it into a temporary folder, run from another
working directory so the checkout cannot be imported by accident."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECKS = r"""
import json, sys
from pathlib import Path
import spmm_study
site = Path(sys.argv[1]).resolve()
assert Path(spmm_study.__file__).resolve().is_relative_to(site), spmm_study.__file__
from spmm_study import report, suites
from spmm_study.gpu import k30_csr_auto, k22_csr_tc_window, k23_nm24_mma_sp, sputnik
from spmm_study.cpu import spregtiling
for name in ("", "h200", "sim"):
    k30_csr_auto.table_for(name)
for path in (k22_csr_tc_window.MMA_SOURCE, k23_nm24_mma_sp.SOURCE, sputnik.WRAPPER, spregtiling.ENTRY, report.CONV_TABLE3,
             suites.DATA_DIR / "study_table.csv", suites.DATA_DIR / "rn50_batchsizes.txt"):
    assert Path(path).is_file(), path
    assert Path(path).resolve().is_relative_to(site), path
print("package data ok")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    # with build isolation, as `pip install .` builds: a fresh venv's own setuptools (65 on Python 3.11) cannot
    # build a wheel without the 'wheel' package, and the project asks for setuptools>=68 anyway
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "No module named pip" in proc.stderr:
        pytest.skip("pip is not in this interpreter")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("spmm_study-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp / "site")  # a wheel is a zip laid out as site-packages: what pip --target does
    return tmp / "site"


def run(site: Path, args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PYTHONPATH=str(site), **env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=environ, timeout=600)


def test_wheel_carries_its_package_data(site, tmp_path):
    proc = run(site, ["-c", CHECKS, str(site)], tmp_path)
    assert proc.returncode == 0 and "package data ok" in proc.stdout, proc.stdout + proc.stderr
    proc = run(site, ["-m", "spmm_study", "lab", "1", "--handout"], tmp_path)
    assert proc.returncode == 0 and "Lab 1" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_wheel_runs_the_gpu_chooser_in_the_simulator(site, tmp_path):
    pytest.importorskip("numba_cuda")
    proc = run(site, ["-m", "spmm_study", "run", "-v", "auto", "--device", "gpu", "-p", "table=sim", "-m",
                      "synthetic:uniform:11x9:0.6", "--n", "9", "--repeats", "1", "--min-time", "0", "--warmup", "0",
                      "--cache", "warm", "--no-save"], tmp_path, NUMBA_ENABLE_CUDASIM="1")
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
