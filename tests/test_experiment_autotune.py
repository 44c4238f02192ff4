"""Autotune: shape classes, candidate grids, the cache file, and run --tuned reading it."""

from __future__ import annotations

import json

import pytest

from spmm_study import autotune as at
from spmm_study import movement, registry
from spmm_study.registry import Param, Variant, host_prepared


def _build(problem, tile=4, mode="a"):
    """Correct (scipy does the work); tile=8 sleeps so it can never win."""
    import time

    a = problem.a.to_scipy()
    c = problem.new_output()

    def run():
        if tile == 8:
            time.sleep(2e-3)
        c[...] = a @ problem.b

    return host_prepared(run, c)


@pytest.fixture
def fake(monkeypatch):
    registry.load_all()
    v = Variant(id="cpu.csr.fake_tune", build=_build, loop_order="i→p→j", movement=movement.csr_rowwise,
                params=(Param("tile", 4, (2, 4, 8)), Param("mode", "a", ("a", "b"))), rung=9999)
    monkeypatch.setitem(registry._REGISTRY, v.id, v)
    return v


def test_shape_class_rounds_to_powers_of_two_and_sparsity_steps():
    assert at.shape_class(2048, 512, 256, 0.9) == "m2048-k512-n256-s0.90"
    assert at.shape_class(2000, 600, 300, 0.91) == "m2048-k512-n256-s0.90"
    assert at.shape_class(64, 32, 12544, 0.95) == "m64-k32-n16384-s0.95"
    assert at.shape_class(1, 1, 1, 0.0) == "m1-k1-n1-s0.00"


def test_candidates_put_defaults_first_and_cap(fake):
    c = at.candidates(fake)
    assert c[0] == (("mode", "a"), ("tile", 4)) and len(c) == 6 and len(set(c)) == 6
    assert len(at.candidates(fake, max_combos=2)) == 2


def test_autotune_cli_stores_the_winner_and_run_tuned_uses_it(fake, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from spmm_study.cli import app

    cache = tmp_path / "tuned.json"
    monkeypatch.setenv(at.CACHE_ENV, str(cache))
    runner = CliRunner()
    res = runner.invoke(app, ["autotune", "-v", "fake_tune", "-m", "synthetic:uniform:32x32:0.9", "-n", "8",
                              "--threads", "1", "--repeats", "2", "--min-time", "0.005", "--warmup", "0",
                              "--out", str(tmp_path / "at")])
    assert res.exit_code == 0, res.output
    data = json.loads(cache.read_text())
    (machine,) = data
    entry = data[machine]["cpu.csr.fake_tune"]["m32-k32-n8-s0.90"]
    assert entry["params"]["tile"] != 8  # the slow choice never wins
    found = at.lookup("cpu.csr.fake_tune", 32, 32, 8, 0.9, machine)
    assert found == entry["params"]
    res = runner.invoke(app, ["run", "-v", "fake_tune", "-m", "synthetic:uniform:32x32:0.9", "-n", "8", "--tuned",
                              "--no-save", "--json", "--threads", "1", "--repeats", "1", "--min-time", "0",
                              "--warmup", "0"])
    assert res.exit_code == 0, res.output
    assert "tuned params" in res.output
    res = runner.invoke(app, ["run", "-v", "fake_tune", "-m", "synthetic:uniform:64x32:0.9", "-n", "8", "--tuned",
                              "--no-save", "--threads", "1", "--repeats", "1", "--min-time", "0", "--warmup", "0"])
    assert res.exit_code == 0 and "never tuned" in res.output


def test_a_grid_past_the_cap_is_sampled_not_cut_and_the_command_says_so(fake):
    """Issue 9 item 7: the cap took a prefix of the product, so the last values of the first Param (tile_n
    64 and 128 for the tiled rung) were never tried. Now: the defaults, then a seeded sample of the rest."""
    from spmm_study import plan

    full = at.candidates(fake)
    assert at.grid_size(fake) == len(full) == 6
    cut = at.candidates(fake, max_combos=4)
    assert cut[0] == full[0] and len(set(cut)) == 4 and set(cut) <= set(full)
    assert cut != full[:4] or at.candidates(fake, max_combos=4, seed=1) != full[:4]
    assert cut == at.candidates(fake, max_combos=4)  # seeded: a rerun measures the same combinations
    assert [c for c in full if c in cut] == cut  # grid order kept
    tiled = registry.get("cpu.csr.tiled")  # the case the review found: 120 combinations under a cap of 64
    (tile_n,) = [p for p in tiled.params if p.name == "tile_n"]
    assert at.grid_size(tiled) > 64
    assert {dict(c)["tile_n"] for c in at.candidates(tiled)} == set(tile_n.choices) | {tile_n.default}
    (g,) = plan.tuning_grids(["fake_tune"], "cpu", 4)
    assert g.cut and g.total == 6 and len(g.combos) == 4
