"""``spmm-study check -v ID``: a variant over the edge matrices, one line per case, exit 1 when a case fails,
exit 2 (one line on stderr) for bad input. Also the edge checker itself catches what it must catch."""

from __future__ import annotations

import os

import numpy as np
import pytest

from spmm_study import edge, movement, registry
from spmm_study.registry import host_prepared
from test_cli import cli, fails


@pytest.fixture
def scratch(monkeypatch):
    registry.load_all()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def register(vid: str, kernel, deterministic: bool = True, accepts=None):
    def build(problem):
        """A test variant."""
        c = problem.new_output()
        a = problem.a.to_dense()
        return host_prepared(lambda: kernel(a, problem.b, c), c)

    registry.variant(vid, loop_order="i", movement=movement.compulsory, deterministic=deterministic,
                     accepts=accepts)(build)


def test_a_correct_variant_passes_every_case(capsys):
    code, out, err = cli(capsys, "check", "-v", "cpu.csr.rowwise")
    lines = out.strip().splitlines()
    cases = edge.cases_for(registry.get("cpu.csr.rowwise"))
    assert code == 0, out + err
    assert len(lines) == len(cases) + 1 and all(ln.startswith("PASS  cpu.csr.rowwise ") for ln in lines[:-1])
    assert lines[-1] == f"cpu.csr.rowwise: {len(cases)} of {len(cases)} cases pass"
    assert {c.matrix for c in cases} == set(edge.all_matrices()) and {c.n for c in cases} == set(edge.EDGE_N)


def test_a_wrong_variant_fails_with_the_error_and_exit_1(capsys, scratch):
    def forgets_the_last_row(a, b, c):
        c[:, :] = a @ b
        c[-1, :] = 0.0

    register("cpu.csr.lastrow", forgets_the_last_row)
    code, out, _ = cli(capsys, "check", "-v", "cpu.csr.lastrow")
    assert code == 1
    lines = out.strip().splitlines()
    fail = [ln for ln in lines if ln.startswith("FAIL")]
    # a zero last row is right only where A's last row is empty (all_zero, empty_rows; the 1x1 holds 1.5)
    assert fail and any("1x1" in ln for ln in fail)
    assert all("cpu.csr.lastrow" in ln and "run 1" in ln for ln in fail), fail[:2]
    assert any(ln.startswith("PASS") and "all_zero" in ln for ln in lines)


def test_a_crash_is_an_error_line_and_nondeterminism_is_caught(capsys, scratch):
    def crashes(a, b, c):
        raise RuntimeError("kernel fell over")

    calls = {"n": 0}

    def wobbles(a, b, c):
        calls["n"] += 1
        c[:, :] = a @ b
        c[0, 0] = np.nextafter(c[0, 0], np.float32(np.inf)) if calls["n"] % 2 else c[0, 0]

    register("cpu.csr.crashes", crashes)
    register("cpu.csr.wobbles", wobbles)
    code, out, _ = cli(capsys, "check", "-v", "cpu.csr.crashes")
    assert code == 1 and "ERROR cpu.csr.crashes 1x1 N=1" in out and "RuntimeError: kernel fell over" in out
    code, out, _ = cli(capsys, "check", "-v", "cpu.csr.wobbles")
    assert code == 1 and "bits differ between runs" in out


def test_a_variant_must_refuse_what_it_does_not_accept(capsys, scratch):
    register("cpu.csr.picky", lambda a, b, c: c.__setitem__(slice(None), a @ b), accepts=lambda a: a.m == 1)
    code, out, _ = cli(capsys, "check", "-v", "cpu.csr.picky")
    assert code == 1 and "built for a matrix it declares it does not accept" in out
    refusing = registry.get("cpu.nm24.tiled")
    assert edge.check_variant(refusing, edge.edge_matrices()["random"], 7).startswith("matrix is not 2:4")


def test_bad_input_is_one_line_and_exit_2(capsys):
    fails(capsys, "check", "-v", "nosuchrung", match=r"unknown variant 'nosuchrung'")
    fails(capsys, "check", "-v", "tiled", "--param", "tile_n=abc", match=r"tile_n='abc' is not a valid int")
    fails(capsys, "check", "-v", "tiled", "--param", "nosuch=3", match=r"has no parameter nosuch")
    fails(capsys, "check", "-v", "tiled", "--param", "tile_n", match=r"must look like name=value")
    fails(capsys, "check", "-v", "tiled", "--param", "tile_n=16,32", match=r"must look like name=value \(one value\)")
    fails(capsys, "check", "-v", "tiled", "--device", "tpu", match=r"unknown device 'tpu'")
    fails(capsys, "check", match=r"Missing option")


def test_a_gpu_rung_without_a_gpu_is_unavailable(capsys):
    from spmm_study.gpu.device import gpu_unavailable_reason

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0") or gpu_unavailable_reason() is None:
        pytest.skip("this machine has a GPU (or the simulator)")
    fails(capsys, "check", "-v", "swizzle", "--device", "gpu", match=r"gpu.csr.swizzle is unavailable")
