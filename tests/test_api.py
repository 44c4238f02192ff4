"""The Python API for notebooks (``import spmm_study as ss``): light to import, the same checked harness
as the CLI, every kind of A it promises, and the README's example, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import spmm_study as ss
from spmm_study.errors import SpmmError

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(threads=1, repeats=2, min_time=0.0, warmup=0.0, cache="warm")


def test_import_is_light():
    code = "import sys, spmm_study as ss; ss.__version__; print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'numpy', 'scipy')))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


def test_measure_takes_scipy_numpy_and_specs_and_returns_checked_rows():
    a = sp.random(40, 24, density=0.3, format="csr", random_state=1, dtype=np.float32)
    row = ss.measure(a, variant="rowwise", n=6, **FAST)
    assert row["status"] == "PASS" and (row["m"], row["k"], row["n"], row["nnz"]) == (40, 24, 6, a.nnz)
    assert row["matrix"] == "scipy:csr:40x24" and row["rung"] > 0 and row["loop_order"]
    b = np.random.default_rng(2).standard_normal((24, 5))
    row, c = ss.measure(a.toarray(), b=b, variant="cpu.csr.tiled", return_c=True, tile_n=16, **FAST)
    assert row["status"] == "PASS" and row["n"] == 5 and '"tile_n": 16' in row["params"]
    np.testing.assert_allclose(c, a.toarray().astype(np.float64) @ b.astype(np.float32), rtol=1e-4, atol=1e-5)
    row = ss.measure("synthetic:uniform:16x8:0.5", variant="cpu.dense.numpy", n=3, dtype="float64", **FAST)
    assert row["status"] == "PASS" and row["dtype"] == "float64"


@pytest.mark.parametrize("call, match", [
    (lambda: ss.measure(np.zeros((2, 2, 2)), **FAST), r"2-D"),
    (lambda: ss.measure(np.eye(4) * 1j, **FAST), r"dtype complex"),
    (lambda: ss.measure(np.eye(4), b=np.ones((3, 2)), **FAST), r"B must be 4xN .* got shape \(3, 2\)"),
    (lambda: ss.measure(np.eye(4), b=np.full((4, 2), np.nan), **FAST), r"NaN or Inf"),
    (lambda: ss.measure(np.eye(4), variant="nope", **FAST), r"unknown variant 'nope'"),
    (lambda: ss.measure(np.eye(4), variant="tiled", tile_x=3, **FAST), r"has no parameter tile_x"),
    (lambda: ss.measure(np.eye(4), n=0, **FAST), r"N must be positive"),
    (lambda: ss.measure(np.eye(4), repeats=0, threads=1), r"--repeats must be >= 1"),
    (lambda: ss.measure(object(), **FAST), r"A must be a matrix spec"),
])
def test_bad_input_raises_the_projects_errors(call, match):
    with pytest.raises(SpmmError, match=match):
        call()


def test_load_results_expands_params_and_info():
    pd = pytest.importorskip("pandas")
    df = ss.load_results(ROOT / "data" / "reference" / "gpu-nm24.csv")
    assert isinstance(df, pd.DataFrame) and len(df) == 12
    assert {"params.block_x", "params.vec", "info.repeatable", "rung", "loop_order"} <= set(df.columns)
    assert (df["params.vec"] == 4).any()


def test_variants_lists_the_ladder():
    vs = ss.variants(device="cpu")
    assert vs[0]["id"] == "cpu.dense.naive" and all(v["device"] == "cpu" for v in vs)
    tiled = next(v for v in vs if v["id"] == "cpu.csr.tiled")
    assert tiled["available"] and "tile_n" in {p["name"] for p in tiled["params"]} and tiled["loop_order"]


def test_readme_example_runs_as_written(monkeypatch, capsys):
    pytest.importorskip("pandas")
    text = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) == 5
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("PASS ") and "GFLOP/s" in out and "cpu.csr.tiled" in out
