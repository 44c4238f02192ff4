"""One rule for a variant that cannot run here, in every measuring command: one warning line, skipped, the rest
measured; exit code 2 only when nothing is left to measure, with one line saying why. Through the CLI.

A variant is made unavailable by patching its reason (as a missing extra reads: ``run -v tiled -v mkl`` without
``.[baselines]``), so the tests do not depend on what this machine has installed.
"""

from __future__ import annotations

import pytest

from spmm_study import registry
from test_cli import cli, fails

MISSING = "cpu.csr.rowwise_par"
REASON = "fakepkg is not installed (pip install 'spmm-study[fake]')"
FAST = ["--repeats", "1", "--min-time", "0", "--warmup", "0", "--cache", "warm"]
SMALL = ["-m", "synthetic:uniform:48x40:0.8", "-n", "8"]


@pytest.fixture
def missing(monkeypatch, tmp_path):
    real = registry.Variant.unavailable_reason
    monkeypatch.setattr(registry.Variant, "unavailable_reason",
                        lambda self: REASON if self.id == MISSING else real(self))
    monkeypatch.chdir(tmp_path)  # result folders land here


def warned_once(err: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and f"skipped {MISSING}: {REASON}" in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["run", "--no-save", "-v", "rowwise", "-v", "rowwise_par", *SMALL, *FAST],
    ["compare", "--no-save", "-v", "rowwise,rowwise_par", *SMALL, *FAST, "--rounds", "1"],
    ["sweep", "-v", "rowwise,rowwise_par", *SMALL, *FAST],
    ["autotune", "-v", "tiled,rowwise_par", "--max-combos", "1", "--cache-file", "tuned.json", *SMALL, *FAST],
], ids=["run", "compare", "sweep", "autotune"])
def test_an_unavailable_variant_is_warned_about_and_the_rest_measured(capsys, missing, argv):
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    warned_once(err)
    measured = "cpu.csr.tiled" if argv[0] == "autotune" else "cpu.csr.rowwise"
    assert measured in out and MISSING not in out


@pytest.mark.parametrize("argv", [
    ["run", "--no-save", "-v", "rowwise_par", *SMALL, *FAST],
    ["sweep", "-v", "rowwise_par", *SMALL, *FAST],
    ["autotune", "-v", "rowwise_par", "--cache-file", "tuned.json", *SMALL, *FAST],
], ids=["run", "sweep", "autotune"])
def test_nothing_left_to_measure_is_one_line_and_exit_2(capsys, missing, argv):
    fails(capsys, *argv, match=rf"nothing left to measure: skipped {MISSING}: fakepkg is not installed")


def test_check_of_an_unavailable_variant_says_why(capsys, missing):
    fails(capsys, "check", "-v", MISSING, match=rf"{MISSING} is unavailable: fakepkg is not installed")


def test_a_variant_found_unavailable_while_measuring_gives_a_row_and_the_rest_go_on(capsys, monkeypatch, tmp_path):
    """The planner drops what it knows cannot run; a device lost mid-run (DeviceUnavailable from the harness)
    is an UNAVAILABLE row saying why, the next variant is measured, and only if nothing was is it exit 2."""
    from spmm_study import runner
    from spmm_study.errors import DeviceUnavailable

    real = runner.measure

    def flaky(variant, problem, params, cfg):
        if variant.id == "cpu.csr.rowwise_par":
            raise DeviceUnavailable("the device went away")
        return real(variant, problem, params, cfg)

    monkeypatch.setattr(runner, "measure", flaky)
    code, out, err = cli(capsys, "run", "--no-save", "-v", "rowwise", "-v", "rowwise_par", *SMALL, *FAST)
    assert code == 0, err
    assert "UNAVAILABLE cpu.csr.rowwise_par: the device went away" in err and "PASS" in out
    code, out, err = cli(capsys, "run", "--no-save", "-v", "rowwise_par", *SMALL, *FAST)
    assert code == 2 and err.splitlines()[-1] == "error: nothing was measured: cpu.csr.rowwise_par: the device went away"
