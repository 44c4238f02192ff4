"""The registry: Param parsing, the decorator's own checks, name resolution, and what every variant declares.

Test variants are registered into a copy of the registry (monkeypatched), so nothing leaks into other tests.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spmm_study import movement, registry
from spmm_study.errors import ParamError
from spmm_study.registry import Param


@pytest.fixture
def scratch(monkeypatch):
    """A private copy of the registry for variants defined in a test."""
    registry.load_all()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry._REGISTRY


def test_param_parse():
    tile = Param("tile", 32, (16, 32, 64), minimum=1)
    assert tile.parse("64") == 64 and tile.parse(" +48 ") == 48 and tile.parse(7) == 7
    for bad in ("3.5", "x", "1e3", ""):
        with pytest.raises(ParamError, match=rf"parameter tile={bad!r} is not a valid int"):
            tile.parse(bad)
    with pytest.raises(ParamError, match=r"tile=0 must be >= 1"):
        tile.parse("0")
    order = Param("order", "ijk", ("ijk", "ikj"), strict=True)
    assert order.parse("ikj") == "ikj"
    with pytest.raises(ParamError, match=r"order='kji' is not one of ijk, ikj"):
        order.parse("kji")
    flag = Param("unroll", False)
    assert flag.parse("yes") is True and flag.parse("0") is False and flag.parse("TRUE") is True
    with pytest.raises(ParamError, match=r"unroll='maybe' is not a valid bool"):
        flag.parse("maybe")
    alpha = Param("alpha", 0.5, minimum=0.0)
    assert alpha.parse("0.25") == 0.25
    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(ParamError, match=rf"alpha={bad!r} is not a valid float"):
            alpha.parse(bad)


def test_decorator_checks_and_registration(scratch):
    with pytest.raises(ValueError, match=r"must be device.format.idea"):
        registry.variant("tpu.csr.x", loop_order="i", movement=movement.compulsory)
    with pytest.raises(ValueError, match=r"must be device.format.idea"):
        registry.variant("cpu.csr", loop_order="i", movement=movement.compulsory)

    @registry.variant("cpu.testfmt.probe", loop_order="i→p→j", movement=movement.compulsory, rung=99,
                      params=(Param("tile", 4, (2, 4)),))
    def build(problem, tile=4):
        """Probe variant: the summary line.

        More lesson text."""

    v = registry.get("cpu.testfmt.probe")
    assert (v.device, v.format, v.idea, v.rung, v.loop_order) == ("cpu", "testfmt", "probe", 99, "i→p→j")
    assert v.summary == "Probe variant: the summary line."
    assert v.resolve_params({}) == {"tile": 4} and v.resolve_params({"tile": "2"}) == {"tile": 2}
    assert registry.get("probe") is v and registry.get("testfmt.probe") is v
    assert registry.select("cpu.testfmt.*") == [v] and registry.select(format="testfmt") == [v]
    with pytest.raises(ValueError, match=r"registered twice"):
        registry.variant("cpu.testfmt.probe", loop_order="i", movement=movement.compulsory)(build)
    with pytest.raises(ValueError, match=r"build\(\) lacks parameters \['tile'\]"):
        registry.variant("cpu.testfmt.other", loop_order="i", movement=movement.compulsory,
                         params=(Param("tile", 4),))(lambda problem: None)


def test_get_resolves_and_explains(scratch):
    for fmt in ("csr", "coo"):
        registry.variant(f"cpu.{fmt}.twin", loop_order="i", movement=movement.compulsory)(lambda problem: None)
    registry.variant("cpu.coo.lonely", loop_order="i", movement=movement.compulsory)(lambda problem: None)
    assert registry.get("twin").id == "cpu.csr.twin"  # a bare idea prefers csr
    assert registry.get("twin", format="coo").id == "cpu.coo.twin"
    assert registry.get("lonely").id == "cpu.coo.lonely"
    with pytest.raises(ParamError, match=r"unknown variant 'twin' on gpu"):
        registry.get("twin", device="gpu")
    with pytest.raises(ParamError, match=r"unknown variant 'twn' on cpu; did you mean .*twin"):
        registry.get("twn")
    with pytest.raises(ParamError, match=r"unknown variant 'zzzzzz' on cpu; see 'spmm-study list'"):
        registry.get("zzzzzz")
    with pytest.raises(ParamError, match=r"unknown device 'tpu'; choose one of cpu, gpu"):
        registry.get("twin", device="tpu")
    registry.variant("cpu.ell.dup", loop_order="i", movement=movement.compulsory)(lambda problem: None)
    registry.variant("cpu.bsr.dup", loop_order="i", movement=movement.compulsory)(lambda problem: None)
    with pytest.raises(ParamError, match=r"'dup' is ambiguous: cpu.bsr.dup, cpu.ell.dup"):
        registry.get("dup")


def test_every_registered_variant_declares_itself():
    variants = registry.all_variants()
    ids = [v.id for v in variants]
    assert "cpu.csr.rowwise" in ids and len(ids) == len(set(ids))
    for v in variants:
        assert v.summary, f"{v.id} has no docstring summary"
        assert v.loop_order, f"{v.id} declares no loop order"
        assert callable(v.movement)
        reason = v.unavailable_reason()
        assert reason is None or (isinstance(reason, str) and reason), v.id
        for p in v.params:
            assert p.parse(p.default) == p.default, f"{v.id}: default of {p.name} does not parse"
            for choice in p.choices:
                assert p.parse(choice) == choice, f"{v.id}: choice {choice!r} of {p.name} does not parse"
        # one home per default: build() must not carry a default of its own for a Param (it could disagree)
        sig = inspect.signature(v.build)
        own = [p.name for p in v.params if sig.parameters[p.name].default is not inspect.Parameter.empty]
        assert not own, f"{v.id}: build() repeats the defaults of {own}; the Param holds them"


LADDER_DIRS = {"cpu": Path(registry.__file__).parent / "cpu", "gpu": Path(registry.__file__).parent / "gpu"}


@pytest.mark.parametrize("device", sorted(LADDER_DIRS))
def test_every_ladder_file_registers_its_rung(device):
    """A rung file not imported by the package's __init__ would never be listed, tested or compiled; the rung
    number comes from the file name, so two files with one number would be two rungs in one place."""
    variants = [v for v in registry.all_variants() if v.device == device and not v.baseline]
    by_rung: dict[int, list[str]] = {}
    for v in variants:
        by_rung.setdefault(v.rung, []).append(v.id)
    files = sorted(LADDER_DIRS[device].glob("k[0-9]*_*.py"))
    assert files
    for f in files:
        number = registry.rung_of_module(f.stem)
        assert number in by_rung, f"{f.name} registers no variant (missing from {device}/__init__.py?)"
    numbers = [registry.rung_of_module(f.stem) for f in files]
    assert len(numbers) == len(set(numbers)), f"two {device} files share a rung number: {numbers}"
    assert set(by_rung) == set(numbers), "a ladder variant whose rung is not a file's number"
    for v in variants:  # the lesson's own first line names the same rung
        head = (sys.modules[v.build.__module__].__doc__ or "").strip().splitlines()[0]
        assert re.match(rf"(GPU )?[Rr]ung {v.rung}\b", head), f"{v.id} (rung {v.rung}): docstring says {head!r}"


@pytest.mark.parametrize("device", sorted(LADDER_DIRS))
def test_no_ladder_file_repeats_its_rung_number(device):
    for f in sorted(LADDER_DIRS[device].glob("k[0-9]*_*.py")):
        assert not re.search(r"\brung=\d", f.read_text()), f"{f.name}: the file name gives the rung; drop rung="


def test_a_rung_number_is_given_once(scratch):
    def build(problem):
        """Probe."""

    build.__module__ = "spmm_study.cpu.k77_probe"
    with pytest.raises(ValueError, match=r"rung is 77 from its file name, not rung=5"):
        registry.variant("cpu.csr.probe77", loop_order="i", movement=movement.compulsory, rung=5)(build)
    registry.variant("cpu.csr.probe77", loop_order="i", movement=movement.compulsory)(build)
    assert registry.get("cpu.csr.probe77").rung == 77


def test_importing_the_package_compiles_nothing():
    code = ("import sys, spmm_study, spmm_study.cli, spmm_study.registry; "
            "print(sorted(m for m in ('numba', 'numba.cuda', 'scipy', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = ("import gc, spmm_study.registry as r; r.load_all(); from numba.core.dispatcher import Dispatcher; "
            "print(sum(1 for o in gc.get_objects() if isinstance(o, Dispatcher) and o.signatures))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0"  # loading every variant file compiles no kernel


def test_neighbouring_rungs_compare_like_with_like():
    """Rung 15 is rung 14 with the rows visited longest first: at their defaults nothing else may differ."""
    assert registry.get("gpu.csr.subwarp").resolve_params({}) == registry.get("gpu.csr.swizzle").resolve_params({})
