"""Experiment files: validation (every error at once), grid expansion, suites, shards, resume of a killed sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from spmm_study import experiment as ex
from spmm_study import movement, registry
from spmm_study.errors import ParamError, SpmmError
from spmm_study.registry import Param, Variant, host_prepared
from spmm_study.results import read_rows

ROOT = Path(__file__).resolve().parents[1]


def _fake_build(problem, tile=4, mode="a"):
    """A correct test variant with two params (scipy does the work)."""
    a = problem.a.to_scipy()
    c = problem.new_output()

    def run():
        c[...] = a @ problem.b

    return host_prepared(run, c)


@pytest.fixture
def fake_variant(monkeypatch):
    """Register cpu.csr.fake_tiled (params tile, mode) for this test only, so grids do not depend on which
    ladder variants exist today."""
    registry.load_all()
    v = Variant(id="cpu.csr.fake_tiled", build=_fake_build, loop_order="i→p→j", movement=movement.csr_rowwise,
                params=(Param("tile", 4, (2, 4, 8)), Param("mode", "a", ("a", "b"), strict=True)), rung=9999)
    monkeypatch.setitem(registry._REGISTRY, v.id, v)
    return v


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_error_is_listed_before_any_run(tmp_path, fake_variant):
    path = write(tmp_path, """
name = "bad name"
colour = 1
[timing]
repeats = 0
cache = "tepid"
[[runs]]
variants = ["no_such_variant", "cpu.zzz.*", "fake_tiled"]
matrices = ["synthetic:magnitude:32x32:1.5", "bogus:x"]
n = [8, "a"]
threads = 0
params = { tile = ["x"], nope = [1] }
[[runs]]
suite = "study"
variants = ["rowwise"]
n = 5
""")
    with pytest.raises(ex.ExperimentError) as info:
        ex.load(path, ctx=__import__("spmm_study.runner", fromlist=["Context"]).Context())
    errors = info.value.errors
    expected = ["unknown key 'colour'", "name = 'bad name'", "cache = 'tepid'", "repeats = 0",
                "unknown variant 'no_such_variant'", "no variant matches 'cpu.zzz.*'", "n = 'a'", "threads = 0",
                "tile='x' is not a valid int", "parameter 'nope'", "takes N from the table",
                "sparsity 1.5 is outside", "unknown matrix spec 'bogus:x'"]
    for want in expected:
        assert any(want in e for e in errors), (want, errors)
    assert len(errors) == len(expected)
    assert str(info.value).count("\n  - ") == len(errors)


def test_toml_syntax_error_is_one_line(tmp_path):
    with pytest.raises(ParamError, match="not valid TOML"):
        ex.load(write(tmp_path, "name = \n"))


def test_grid_expansion_order_and_params(tmp_path, fake_variant):
    path = write(tmp_path, """
name = "grid"
[defaults]
threads = [1]
[[runs]]
variants = ["rowwise", "fake_tiled"]
matrices = ["synthetic:uniform:16x16:0.5", "synthetic:uniform:8x32:0.5"]
n = [4, 8]
params = { tile = [2, 8] }
[[runs]]
variants = ["cpu.csr.fake*"]
matrices = ["synthetic:uniform:16x16:0.5"]
n = 4
params = { mode = "choices" }
tags = "lab=1"
""")
    e = ex.load(path)
    first = [t for t in e.tasks if t.tags == ""]
    # problem by problem (matrix, then N); within a problem rowwise (no tile: defaults) then fake × tile
    assert [(t.matrix[-9:], t.n, t.variant.idea, dict(t.params)) for t in first[:3]] == [
        ("16x16:0.5", 4, "rowwise", {}), ("16x16:0.5", 4, "fake_tiled", {"tile": 2}),
        ("16x16:0.5", 4, "fake_tiled", {"tile": 8})]
    assert len(first) == 2 * 2 * 3
    second = [t for t in e.tasks if t.tags == "lab=1"]
    assert sorted(dict(t.params)["mode"] for t in second) == ["a", "b"]  # the Param's own choices
    assert all(t.threads == 1 for t in e.tasks)


def test_glob_drops_variants_without_the_params_and_inline_grid(fake_variant):
    e = ex.parse({"runs": [{"variants": ["cpu.csr.*"], "matrices": ["synthetic:uniform:8x8:0.5"], "n": 4}]},
                 extra_params={"tile": ["2", "4"]})
    assert {t.variant.id for t in e.tasks} == {"cpu.csr.fake_tiled"}
    assert sorted(dict(t.params)["tile"] for t in e.tasks) == [2, 4]


def test_study_suite_uses_the_table_and_tags(dlmc):
    e = ex.parse({"runs": [{"suite": "study", "variants": ["rowwise"]}]}, dlmc_root=str(dlmc))
    assert len(e.tasks) == 31  # the 31 lines of the study's Table 1 (problems 1-20, RN50/NLP at two sparsities)
    t1 = [t for t in e.tasks if "problem=1;" in t.tags and "sparsity=0.9;" in t.tags][0]
    assert t1.matrix == "dlmc:rn50/magnitude_pruning/0.9/bottleneck_1_block_group1_1_1" and t1.n == 3136
    t12 = [t for t in e.tasks if "problem=12;" in t.tags][0]
    assert t12.matrix == "synthetic:magnitude:64x32:0.9" and t12.n == 12544 and "t4=1.4" in t12.tags
    synthetic = ex.parse({"runs": [{"suite": "study", "variants": ["rowwise"], "source": "synthetic",
                                    "use_case": ["NLP"], "sparsity": [0.95]}]})
    assert [t.matrix for t in synthetic.tasks] == ["synthetic:magnitude:2048x512:0.95",
                                                   "synthetic:magnitude:512x2048:0.95",
                                                   "synthetic:magnitude:512x512:0.95"]


def test_dlmc_suite_transformer_and_rn50(dlmc):
    e = ex.parse({"runs": [{"suite": "dlmc", "variants": ["rowwise"], "model": "transformer",
                            "sparsity": ["0.9"], "layers": "*encoder*ffn*"}]}, dlmc_root=str(dlmc))
    assert sorted((t.matrix.rsplit("/", 1)[1], t.n) for t in e.tasks) == sorted(
        (f"body_encoder_layer_0_ffn_conv{i}_fully_connected", n) for i in (1, 2) for n in (256, 2048))
    rn = ex.parse({"runs": [{"suite": "dlmc", "variants": ["rowwise"], "model": "rn50", "sparsity": ["0.95"]}]},
                  dlmc_root=str(dlmc))
    ns = {t.matrix.rsplit("/", 1)[1]: t.n for t in rn.tasks}
    assert ns["bottleneck_1_block_group1_1_1"] == 3136 and ns["bottleneck_3_block_group4_1_1"] == 49
    with pytest.raises(ex.ExperimentError, match="no DLMC folder"):
        ex.parse({"runs": [{"suite": "dlmc", "variants": ["rowwise"], "sparsity": ["0.42"]}]}, dlmc_root=str(dlmc))


def test_shards_cover_every_task_once_and_keep_problems_together(fake_variant):
    e = ex.parse({"runs": [{"variants": ["rowwise", "fake_tiled"], "n": [4, 8, 16],
                            "matrices": [f"synthetic:uniform:8x8:0.{i}" for i in range(5, 9)],
                            "params": {"tile": [2, 4]}}]})
    keys = [(t.variant.id, t.matrix, t.n, t.params) for t in e.tasks]
    assert len(keys) == len(set(keys)) == 4 * 3 * 3
    for n in (1, 2, 3, 5, 7):
        parts = [ex.shard(e.tasks, i, n) for i in range(1, n + 1)]
        flat = [(t.variant.id, t.matrix, t.n, t.params) for part in parts for t in part]
        assert sorted(flat) == sorted(keys)  # every task exactly once
        for part in parts:  # a problem (and so its baseline) never straddles two machines
            others = [t for p in parts if p is not part for t in p]
            assert not {ex.problem_of(t) for t in part} & {ex.problem_of(t) for t in others}
    assert ex.parse_shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "x", "1/0"):
        with pytest.raises(ParamError):
            ex.parse_shard(bad)


def test_killed_sweep_resumes_without_duplicates_or_gaps(tmp_path):
    """SIGKILL a sweep subprocess mid-run, resume it, and find each task's row exactly once."""
    ns = [4, 5, 6, 7, 8, 9, 10, 11]
    path = write(tmp_path, f"""
name = "resume"
[timing]
repeats = 2
min_time = 0.08
warmup = 0.0
[[runs]]
variants = ["cpu.csr.scipy", "cpu.dense.numpy"]
matrices = ["synthetic:uniform:16x16:0.5"]
n = {ns}
threads = 1
""")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "spmm_study", "sweep", str(path), "--out", str(out)]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jsonl = out / "rows.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(read_rows(out))
    assert 3 <= done_before < 2 * len(ns), "the sweep should have been killed part-way"
    again = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "already done" in again.stderr
    rows = read_rows(out)
    keys = [(r["variant"], r["n"]) for r in rows]
    assert sorted(keys) == sorted((v, n) for v in ("cpu.csr.scipy", "cpu.dense.numpy") for n in ns)
    assert all(r["status"] == "PASS" for r in rows)
    csv_rows = read_rows(out / "results.csv")
    assert len(csv_rows) == len(rows)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["experiment"] == "resume" and len(meta["resumed"]) == 1


def test_cli_sweep_lists_all_errors_and_exits_2(tmp_path):
    path = write(tmp_path, '[[runs]]\nvariants = ["nosuch"]\nmatrices = ["bogus:x"]\nn = 0\n')
    res = subprocess.run([sys.executable, "-m", "spmm_study", "sweep", str(path)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert "3 errors" in res.stderr and "Traceback" not in res.stderr
    assert "unknown variant 'nosuch'" in res.stderr and "bogus:x" in res.stderr and "n = 0" in res.stderr


def test_cli_sweep_inline_grid_dry_run(fake_variant):
    from typer.testing import CliRunner

    from spmm_study.cli import app

    res = CliRunner().invoke(app, ["sweep", "--variants", "fake_tiled", "-m", "synthetic:uniform:8x8:0.5",
                                   "-n", "4", "--param", "tile=2,8", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "'tile': 2" in res.output and "'tile': 8" in res.output and "2 runs over 1 problems" in res.output


def test_shipped_experiments_validate(dlmc):
    """Every experiment file in experiments/ parses and expands with today's registry (no measurement)."""
    files = sorted((ROOT / "experiments").glob("*.toml"))
    assert files
    from spmm_study.gpu.device import gpu_unavailable_reason

    for f in files:
        runs = tomllib.loads(f.read_text()).get("runs", [])
        named = [v for run in runs for v in run.get("variants", [])]
        gpu_only = bool(named) and all(v.startswith("gpu.") for v in named)
        if gpu_unavailable_reason() and gpu_only:
            # a GPU-only experiment on a machine without one: one clear error, not an empty sweep
            with pytest.raises(SpmmError, match="nothing left to measure: skipped gpu"):
                ex.load(f, dlmc_root=str(dlmc))
            continue
        e = ex.load(f, dlmc_root=str(dlmc))
        assert e.tasks, f
        assert np.all([t.n > 0 for t in e.tasks])


def _wrong_build(problem):
    """Deliberately wrong (C = 2·A·B): compare must show it as FAIL, never as a speed."""
    a = problem.a.to_scipy()
    c = problem.new_output()

    def run():
        c[...] = 2 * (a @ problem.b)

    return host_prepared(run, c)


def test_cli_compare_side_by_side_with_fail(monkeypatch, tmp_path, fake_variant):
    from typer.testing import CliRunner

    from spmm_study.cli import app

    bad = Variant(id="cpu.csr.fake_wrong", build=_wrong_build, loop_order="-", movement=movement.csr_rowwise, params=(),
                  rung=9998)
    monkeypatch.setitem(registry._REGISTRY, bad.id, bad)
    res = CliRunner().invoke(app, ["compare", "-v", "fake_tiled,fake_wrong", "-m", "synthetic:uniform:16x16:0.5",
                                   "-n", "4", "-n", "8", "--rounds", "2", "--threads", "1", "--repeats", "1",
                                   "--min-time", "0", "--warmup", "0", "--markdown", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("| synthetic")]
    assert len(lines) == 2  # one line per problem (N = 4, 8), the two rounds merged
    header = [ln for ln in res.output.splitlines() if ln.startswith("| matrix")][0]
    assert "cpu.csr.fake_tiled" in header and "cpu.dense.numpy" in header  # the dense baseline joins by default
    assert all("FAIL" in ln and "(1.00×)" in ln for ln in lines)
    rows = read_rows(tmp_path / "c")
    assert len(rows) == 2 * 2 * 3 and {r["tags"] for r in rows} == {"round=0", "round=1"}


def test_cli_compare_json_is_strict_json(monkeypatch, tmp_path, fake_variant):
    """A FAIL row has no time: --json must say null, not NaN (which jq and JavaScript reject)."""
    import json

    from typer.testing import CliRunner

    from spmm_study.cli import app

    bad = Variant(id="cpu.csr.fake_wrong", build=_wrong_build, loop_order="-", movement=movement.csr_rowwise, params=(),
                  rung=9998)
    monkeypatch.setitem(registry._REGISTRY, bad.id, bad)
    res = CliRunner().invoke(app, ["compare", "-v", "fake_wrong", "-m", "synthetic:uniform:16x16:0.5", "-n", "4",
                                   "--threads", "1", "--repeats", "1", "--min-time", "0", "--warmup", "0", "--json",
                                   "--no-save"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))
    wrong = [r for r in rows if r["variant"] == "cpu.csr.fake_wrong"]
    assert wrong and wrong[0]["status"] == "FAIL" and wrong[0]["median_s"] is None


def test_cli_shards_concatenate_into_one_report(tmp_path):
    """Two shards of one sweep, run separately, hold every task once and report together."""
    from typer.testing import CliRunner

    from spmm_study import report
    from spmm_study.cli import app

    path = write(tmp_path, """
name = "sharded"
[timing]
repeats = 1
min_time = 0.0
warmup = 0.0
[[runs]]
variants = ["cpu.csr.scipy", "cpu.dense.numpy"]
matrices = ["synthetic:uniform:16x16:0.5", "synthetic:uniform:16x8:0.5", "synthetic:uniform:8x16:0.5"]
n = [4, 8]
threads = 1
""")
    runner = CliRunner()
    for i in (1, 2):
        res = runner.invoke(app, ["sweep", str(path), "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")])
        assert res.exit_code == 0, res.output
    a, b = read_rows(tmp_path / "s1"), read_rows(tmp_path / "s2")
    keys = [(r["variant"], r["matrix"], r["n"]) for r in a + b]
    assert len(keys) == len(set(keys)) == 2 * 3 * 2 and len(a) == 6 and len(b) == 6
    t = report.compare_table(report.load_rows([tmp_path / "s1", tmp_path / "s2"]))
    assert len(t.rows) == 6 and all(isinstance(r[-1], report.Measured) for r in t.rows)


def test_one_param_rule_for_every_command(fake_variant):
    """A param applies to the variants that take it; an explicitly named variant that takes none runs with
    its defaults and the plan says so (run -v tiled -v rowwise -p tile_n=64 used to drop rowwise silently)."""
    from spmm_study import plan

    exp, _ = plan.plan([plan.run_doc(["fake_tiled", "rowwise"], matrices=["synthetic:uniform:8x8:0.5"], n=[4],
                                     params={"tile": ["2"]})], name="t", timing={})
    assert [(t.variant.id, t.params) for t in exp.tasks] == [("cpu.csr.fake_tiled", (("tile", 2),)),
                                                             ("cpu.csr.rowwise", ())]
    assert any("cpu.csr.rowwise takes none of tile" in w for w in exp.warnings)
    with pytest.raises(ParamError, match=r"no selected variant takes the parameter 'nope': variant cpu.csr.rowwise "
                                         r"has no parameter nope"):
        plan.plan([plan.run_doc(["rowwise"], params={"nope": ["1"]})], name="t", timing={})


def test_sweep_warnings_print_brackets_verbatim(monkeypatch, fake_variant, capsys):
    """Issue 9 item 7: the install hint of a skipped variant lost '[baselines]' to rich markup."""
    from spmm_study.cli import main

    gone = Variant(id="cpu.csr.fake_gone", build=_fake_build, loop_order="i→p→j", movement=movement.csr_rowwise,
                   params=(), rung=9997, available=lambda: "needs MKL (pip install 'spmm-study[baselines]')")
    monkeypatch.setitem(registry._REGISTRY, gone.id, gone)
    try:
        main(["sweep", "--variants", "cpu.csr.fake_*", "-m", "synthetic:uniform:8x8:0.5", "-n", "4", "--dry-run"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    err = capsys.readouterr().err
    assert "skipped cpu.csr.fake_gone: needs MKL (pip install 'spmm-study[baselines]')" in " ".join(err.split())
