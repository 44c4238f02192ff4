"""The variant registry (docs/ARCHITECTURE.md §4): one loop nest or kernel idea per file, registered once.

A variant file defines ``build(problem, **params) -> Prepared`` and decorates it with ``@variant(...)``;
the id is ``device.format.idea`` (``cpu.csr.rowwise``). ``list``, tests, sweeps and reports find it here.
If the loop nest changes it is a new variant; if a number changes it is a ``Param``.

Variant files are imported on first use (``load_all``), never when ``spmm_study`` itself is imported.
Adding a variant is one new file plus one import line in ``cpu/__init__.py`` or ``gpu/__init__.py``.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from spmm_study.errors import ParamError

DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class Param:
    """A tunable number (or choice) of a variant. ``choices`` are what sweeps try; with ``strict`` they are
    the only legal values, otherwise any value of the default's type within [``minimum``, ``maximum``] is
    accepted. Every int Param has a ``maximum`` (a test walks the registry): a number that sizes a stack array,
    a buffer, a thread block or a compile-time unrolled loop is refused here, before any compile or
    allocation (``-p tile_n=2100000`` used to overflow the stack of ``cpu.csr.tiled`` with no message)."""

    name: str
    default: Any
    choices: tuple = ()
    help: str = ""
    strict: bool = False
    minimum: float | None = None
    maximum: float | None = None

    @property
    def range(self) -> str:
        """The legal values in words ("1..4096", "one of a, b"), for ``list --json`` and error lines."""
        if self.strict and self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if isinstance(self.default, bool):
            return "true or false"
        if self.minimum is None and self.maximum is None:
            return f"any {type(self.default).__name__}"
        lo = "" if self.minimum is None else f"{self.minimum:g}"
        hi = "" if self.maximum is None else f"{self.maximum:g}"
        return f"{lo}..{hi}"

    def parse(self, value: Any) -> Any:
        kind = type(self.default)
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                out = value.lower() in ("1", "true", "yes")
            else:
                out = kind(value)
                if kind is int and isinstance(value, str) and str(out) != value.strip().lstrip("+"):
                    raise ValueError
            if kind is float and not math.isfinite(out):  # float("nan") parses, and compares false with any limit
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise ParamError(f"parameter {self.name}={value!r} is not a valid {kind.__name__}") from None
        if self.strict and self.choices and out not in self.choices:
            raise ParamError(f"parameter {self.name}={out!r} is not one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and out < self.minimum:
            raise ParamError(f"parameter {self.name}={out!r} must be >= {self.minimum}")
        if self.maximum is not None and out > self.maximum:
            raise ParamError(f"parameter {self.name}={out!r} is past its maximum {self.maximum:g} "
                             f"(range {self.range})")
        return out


@dataclass
class Prepared:
    """What ``build`` returns: closures over the converted arrays.

    ``run()`` computes C and overwrites it (never accumulates); ``fetch()`` returns C as a host array;
    ``poison()`` fills C with NaN; ``sync()`` waits for the device (GPU). ``clock(prepared, timing_cfg)``
    times it (None: the CPU clock of ``timing.py``; GPU variants pass ``gpu.timing.time_gpu``, so the
    timing module never imports the GPU code). ``info`` holds extra flat facts for the result row (launch configuration,
    registers, per-thread work spread...). ``precision`` names reduced-precision arithmetic ('tf32'), which
    the harness checks against that precision's documented tolerance (problem.PRECISIONS).
    """

    run: Callable[[], Any]
    fetch: Callable[[], Any]
    poison: Callable[[], Any]
    sync: Callable[[], Any] = lambda: None
    clock: Callable[..., Any] | None = None
    info: dict = field(default_factory=dict)
    release: Callable[[], Any] = lambda: None
    precision: str = ""  # "" = the dtype's arithmetic; "tf32" = tensor-core TF32 (checked to its own tolerance)


def host_prepared(run: Callable[[], Any], c, info: dict | None = None) -> Prepared:
    """Prepared for a CPU kernel writing into the host array ``c``."""
    return Prepared(run=run, fetch=lambda: c, poison=lambda: c.fill(float("nan")), info=info or {})


@dataclass(frozen=True, eq=False)
class Variant:
    """One registered kernel idea. A variant *is* its id: equality and hashing use the id alone, so tasks,
    resume keys and dict keys never look into the callables and simulator cases (dicts) it carries."""

    id: str
    build: Callable[..., Prepared]
    loop_order: str
    params: tuple[Param, ...]
    movement: Callable[..., Any]
    rung: int = 100
    baseline: bool = False
    deterministic: bool = True
    available: Callable[[], str | None] = lambda: None
    doc: str = ""
    # the problem this variant solves for given params (a fused layer: C = act(A·B + bias)); None: A·B itself
    problem_for: Callable[[Any, dict], Any] | None = None

    accept: Callable[[Any], bool] = lambda a: True
    # the element types it takes (spmm_study/dtypes.py); given another, the harness writes a SKIP row saying so
    dtypes: tuple[str, ...] = ("float32", "float64")
    sim: tuple = ()
    ptx: Callable[[], list] | None = None

    def __eq__(self, other) -> bool:
        return isinstance(other, Variant) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Variant", self.id))

    def problem(self, problem, params: dict):
        """``problem`` as this variant must be checked on it (the harness and the tests call this)."""
        return self.problem_for(problem, params) if self.problem_for else problem

    @property
    def device(self) -> str:
        return self.id.split(".")[0]

    @property
    def format(self) -> str:
        return self.id.split(".")[1]

    @property
    def idea(self) -> str:
        return self.id.split(".", 2)[2]

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""

    def unavailable_reason(self) -> str | None:
        return self.available()

    def describe(self) -> dict:
        """The facts ``list`` shows (and prints with ``--json``)."""
        reason = self.unavailable_reason()
        return {"id": self.id, "device": self.device, "format": self.format, "idea": self.idea, "rung": self.rung,
                "loop_order": self.loop_order, "baseline": self.baseline, "deterministic": self.deterministic,
                "params": [{"name": p.name, "default": p.default, "choices": list(p.choices), "help": p.help,
                            "range": p.range}
                           for p in self.params],
                "dtypes": list(self.dtypes), "available": reason is None, "unavailable_reason": reason,
                "summary": self.summary}

    def dtype_refusal(self, dtype) -> str | None:
        """None when the variant takes inputs of ``dtype``, else the one line its SKIP row carries."""
        import numpy as np

        name = np.dtype(dtype).name
        if name in self.dtypes:
            return None
        return f"{self.id} takes {', '.join(self.dtypes)}, not {name}"

    def accepts(self, a) -> bool:
        """Whether the variant takes matrix ``a`` (a CSR) at all; one it does not take, its build refuses with
        a ``SpmmError`` (a SKIP row), never a wrong C. E.g. the 2:4 rungs take only 2:4 matrices."""
        return bool(self.accept(a))

    def resolve_params(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``given``; unknown names and bad values are ParamErrors."""
        given = dict(given or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise ParamError(f"variant {self.id} has no parameter {', '.join(unknown)} (its parameters: {names})")
        return {name: p.parse(given[name]) if name in given else p.default for name, p in known.items()}


_REGISTRY: dict[str, Variant] = {}
_LOADED = False
PACKAGES = ("spmm_study.cpu", "spmm_study.gpu")


def rung_of_module(module: str) -> int | None:
    """13 for ``spmm_study.cpu.k13_csr_tiled``; None for a module whose name does not start ``k<digits>_``."""
    m = re.match(r"k(\d+)_", module.rsplit(".", 1)[-1])
    return int(m.group(1)) if m else None


def variant(
    id: str,
    *,
    loop_order: str,
    movement: Callable[..., Any],
    params: tuple[Param, ...] | list[Param] = (),
    rung: int | None = None,
    baseline: bool = False,
    deterministic: bool = True,
    available: Callable[[], str | None] | None = None,
    problem_for: Callable[[Any, dict], Any] | None = None,
    accepts: Callable[[Any], bool] | None = None,
    dtypes: tuple[str, ...] = ("float32", "float64"),
    sim: tuple = (),
    ptx: Callable[[], list] | None = None,
):
    """Decorator registering ``build`` as variant ``id`` (``device.format.idea``); its docstring is the lesson.

    The rung number comes from one place: a ladder file's name (``k13_csr_tiled.py`` is rung 13). Only a
    variant outside a ``kNN_`` file (the baselines) gives ``rung`` itself; a ladder file that repeats it is
    refused when the two disagree (and flagged by tests/test_registry.py when they agree).

    ``accepts(a)``: which matrices the variant takes (default: all); ``dtypes``: which element types (default
    float32 and float64; see ``spmm_study/dtypes.py``). A GPU rung also declares, next to its
    Params, ``sim``: small configurations for the CUDA simulator, ``((params, matrix names, N values[, dtype]), ...)``
    over the matrices of ``spmm_study.edge``, and ``ptx``: a function returning
    ``[(name, kernel, numba signature, expected load width in bytes or None), ...]`` that the sm_90 PTX
    check compiles. Both are required, so a new kernel cannot go untested or uncompiled."""
    parts = id.split(".")
    if len(parts) < 3 or parts[0] not in DEVICES or not all(parts):
        raise ValueError(f"variant id {id!r} must be device.format.idea with device in {DEVICES}")

    def wrap(build):
        if id in _REGISTRY:
            raise ValueError(f"variant {id} registered twice")
        from_file = rung_of_module(getattr(build, "__module__", "") or "")
        if from_file is not None and rung is not None and rung != from_file:
            raise ValueError(f"variant {id}: the rung is {from_file} from its file name, not rung={rung}")
        number = from_file if from_file is not None else (100 if rung is None else rung)
        if parts[0] == "gpu" and from_file is not None and not (sim and ptx):
            raise ValueError(f"GPU rung {id} must declare its simulator configurations (sim=) and PTX cases (ptx=)")
        names = [p.name for p in params]
        sig = inspect.signature(build)
        missing = [n for n in names if n not in sig.parameters]
        if missing:
            raise ValueError(f"variant {id}: build() lacks parameters {missing}")
        _REGISTRY[id] = Variant(
            id=id, build=build, loop_order=loop_order, params=tuple(params), movement=movement, rung=number,
            baseline=baseline, deterministic=deterministic, available=available or (lambda: None),
            doc=inspect.getdoc(build) or inspect.getdoc(inspect.getmodule(build)) or "",
            problem_for=problem_for,
            accept=accepts or (lambda a: True), dtypes=tuple(dtypes), sim=tuple(sim), ptx=ptx,
        )
        return build

    return wrap


def load_all() -> dict[str, Variant]:
    global _LOADED
    if not _LOADED:
        for pkg in PACKAGES:
            importlib.import_module(pkg)
        _LOADED = True
    return _REGISTRY


def all_variants() -> list[Variant]:
    """Every registered variant in ladder order (device, rung, id)."""
    return sorted(load_all().values(), key=lambda v: (DEVICES.index(v.device), v.rung, v.id))


def get(name: str, device: str | None = None, format: str | None = None) -> Variant:
    """Resolve a full id, ``format.idea`` or a bare idea (``tiled``) with device/format defaults."""
    reg = load_all()
    if name in reg:
        return reg[name]
    device = device or "cpu"
    if device not in DEVICES:
        raise ParamError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    parts = name.split(".")
    if len(parts) >= 2 and f"{device}.{name}" in reg:
        return reg[f"{device}.{name}"]
    cands = [v for v in reg.values() if v.device == device and v.idea == name]
    if format:
        cands = [v for v in cands if v.format == format]
    elif len(cands) > 1:
        csr = [v for v in cands if v.format == "csr"]
        cands = csr or cands
    if len(cands) == 1:
        return cands[0]
    if cands:
        raise ParamError(f"variant {name!r} is ambiguous: {', '.join(sorted(v.id for v in cands))}")
    import difflib

    close = difflib.get_close_matches(name, list(reg) + sorted({v.idea for v in reg.values()}), n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see 'spmm-study list'"
    raise ParamError(f"unknown variant {name!r} on {device}{hint}")


def select(pattern: str | None = None, device: str | None = None, format: str | None = None,
           baselines: bool | None = None) -> list[Variant]:
    """Variants whose id matches the glob ``pattern`` (and device/format/baseline filters)."""
    from fnmatch import fnmatch

    if device and device not in DEVICES:  # a typo must not read as "no variants"
        raise ParamError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    out = []
    for v in all_variants():
        if pattern and not (fnmatch(v.id, pattern) or fnmatch(v.idea, pattern)):
            continue
        if device and v.device != device:
            continue
        if format and v.format != format:
            continue
        if baselines is not None and v.baseline != baselines:
            continue
        out.append(v)
    return out


def list_table(items: list[dict]):
    """``list``: the ``describe()`` of each variant as a table (unavailable ones say why)."""
    from spmm_study.table import Table

    t = Table(title="", columns=["id", "loop order", "params (default)", "", "summary"],
              caption="B = vendor baseline, ~ = non-deterministic (atomics); run one with: spmm-study run --variant ID")
    for it in items:
        params = " ".join(f"{p['name']}={p['default']}" for p in it["params"])
        flags = ("B" if it["baseline"] else "") + ("" if it["deterministic"] else "~")
        t.rows.append([it["id"], it["loop_order"], params, flags,
                       it["summary"] if it["available"] else f"unavailable: {it['unavailable_reason']}"])
    return t
