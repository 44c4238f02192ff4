"""The GPU half driven as a user drives it: every command that takes GPU variants, through the command line
(``main(argv)``, the console script's entry point), in the numba CUDA simulator on tiny problems.

Every registered GPU rung goes through ``run`` once, with the small launch configuration it declares for the
simulator (``sim=``; its defaults launch hundreds of simulated threads); then ``compare``, ``sweep``,
``autotune``, ``run -v auto`` and ``infer --device gpu`` once each. The commands run in one subprocess (the
simulator must be on before numba.cuda is imported, and the CPU tests of this pytest run must not see it).
What each command wrote is read back from its result folder: a PASS row per rung, nothing silently dropped.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda")

from spmm_study import registry  # noqa: E402
from spmm_study.results import read_rows  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNGS = [v for v in registry.select(device="gpu") if not v.baseline]
TINY = ["--repeats", "1", "--min-time", "0", "--warmup", "0", "--cache", "warm"]
MATRIX = "synthetic:uniform:11x9:0.6"
NM24 = "synthetic:nm:8x16"


def rung_command(v, out: Path) -> list[str]:
    params, _names, ns, *dtype = v.sim[0]  # a half-precision rung names its dtype
    argv = ["run", "-v", v.id, "--device", "gpu", "-m", NM24 if v.format == "nm24" else MATRIX, "--n", str(ns[0])]
    argv += ["--dtype", dtype[0]] if dtype else []
    for k, val in params.items():
        argv += ["-p", f"{k}={val}"]
    return argv + TINY + ["--out", str(out / v.id)]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_gpu")
    small = ["-p", "warps=2", "-p", "vec=4", "-p", "unroll=2"]
    commands = {f"run {v.id}": rung_command(v, out) for v in RUNGS}
    commands.update({
        "compare": ["compare", "-v", "gpu.csr.row_split,gpu.csr.nnz_split", "--device", "gpu", "-m", MATRIX,
                    "--n", "5", "--rounds", "2", *TINY, "--out", str(out / "compare")],
        "sweep": ["sweep", "-v", "gpu.csr.row_split", "-p", "warps=2,3", "-p", "vec=4", "-p", "unroll=2",
                  "-m", MATRIX, "--n", "5", *TINY, "--out", str(out / "sweep")],
        "autotune": ["autotune", "-v", "gpu.csr.row_thread", "--device", "gpu", "-m", MATRIX, "--n", "5",
                     "--max-combos", "2", *TINY, "--cache-file", str(out / "tuned.json"), "--out", str(out / "tune")],
        "run --tuned": ["run", "-v", "gpu.csr.row_thread", "--device", "gpu", "-m", MATRIX, "--n", "5", "--tuned",
                        *TINY, "--out", str(out / "tuned_run")],
        "run auto": ["run", "-v", "auto", "--device", "gpu", "-m", MATRIX, "--n", "9", "-p", "table=sim", *TINY,
                     "--out", str(out / "auto")],
        "infer": ["infer", "--device", "gpu", "--net", "generated:32x3", "-e", "fused", "-e", "unfused",
                  "--batch", "6", "--repeats", "1", "--no-save"],
    })
    del small
    path = out / "commands.json"
    path.write_text(json.dumps(list(commands.values())))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(HERE.parent), COLUMNS="100",
               SPMM_STUDY_TUNED=str(out / "tuned.json"))
    proc = subprocess.run([sys.executable, str(HERE / "cli_gpu_driver.py"), str(path)], capture_output=True,
                          text=True, env=env, timeout=900, cwd=HERE.parent)
    codes = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RC "):
            _, i, code = line.split()
            codes[list(commands)[int(i)]] = int(code)
    return out, codes, proc.stdout + proc.stderr


def test_every_gpu_rung_runs_through_run(session):
    out, codes, log = session
    for v in RUNGS:
        assert codes.get(f"run {v.id}") == 0, f"{v.id}: exit {codes.get(f'run {v.id}')}\n{log[-3000:]}"
        rows = read_rows(out / v.id)
        assert [r["status"] for r in rows] == ["PASS"], (v.id, rows)
        assert rows[0]["variant"] == v.id and rows[0]["device"] == "gpu"


def test_compare_sweep_autotune_on_gpu_rungs(session):
    out, codes, log = session
    for name in ("compare", "sweep", "autotune", "run --tuned", "run auto"):
        assert codes.get(name) == 0, f"{name}: exit {codes.get(name)}\n{log[-3000:]}"
    rows = read_rows(out / "compare")
    assert sorted((r["variant"], r["status"]) for r in rows) == sorted(
        [("gpu.csr.row_split", "PASS"), ("gpu.csr.nnz_split", "PASS")] * 2)
    assert sorted(json.loads(r["params"])["warps"] if isinstance(r["params"], str) else r["params"]["warps"]
                  for r in read_rows(out / "sweep")) == [2, 3]
    tuned = json.loads((out / "tuned.json").read_text())
    assert "gpu.csr.row_thread" in json.dumps(tuned)
    auto = read_rows(out / "auto")
    assert auto[0]["status"] == "PASS" and "auto_variant" in json.dumps(auto[0].get("info", {}))


def test_infer_on_the_gpu_runs_fused_and_unfused(session):
    out, codes, log = session
    assert codes.get("infer") == 0, log[-3000:]
    section = log.split("spmm-study infer", 1)[1]
    for engine in ("fused", "unfused"):
        assert engine in section
