"""The house keeps its floors (docs/ARCHITECTURE.md §3): read from the code's own imports with ``ast``.

* every module of ``spmm_study/`` stands on a floor of §3's list, and imports only modules on lower floors
  (or, inside a package such as ``cpu/``, modules of the same package): no arrow runs back up, so there is no
  circle; imports inside functions count too;
* no rung file (``cpu/kNN_*.py``, ``gpu/kNN_*.py``) imports another rung file: what two rungs share lives in
  the package's kit files (``cpu/_simd.py``, ``cpu/_vec.py``, ``gpu/_kit.py`` ...);
* no module imports a private (underscore) module or name of another package, the scripts in experiments/
  included.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "spmm_study"
RUNG = re.compile(r"^k\d\d_\w+$")
TOP = {"spmm_study", "spmm_study.__main__"}  # the package's front door and `python -m`: above every floor


def floors() -> dict[str, int]:
    """§3's list, from the ground up: ``name.py`` or ``package/`` → its floor (entries on one line share one)."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    section = text[text.index("## 3. Layout"):text.index("## 4.")]
    block = section[section.index("```") + 3:]
    block = block[block.index("\n") + 1:block.index("```")]
    out: dict[str, int] = {}
    for n, line in enumerate(ln for ln in block.splitlines() if ln and not ln[0].isspace()):
        names = re.split(r"\s{2,}", line, maxsplit=1)[0]
        for name in names.split(","):
            out[name.strip()] = n
    return out


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def is_package(mod: str) -> bool:
    return (ROOT / mod.replace(".", "/") / "__init__.py").exists()


@lru_cache(maxsize=None)
def imports(path: Path) -> list[tuple[str, str, int]]:
    """(module imported, name taken from it or "", line) for each import of spmm_study in the file; ``from
    spmm_study.cpu import k13_csr_tiled`` names the module ``spmm_study.cpu.k13_csr_tiled``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "spmm_study"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "spmm_study":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if (ROOT / (sub.replace(".", "/") + ".py")).exists() or is_package(sub):
                    out.append((sub, "", node.lineno))
                else:
                    out.append((node.module, a.name, node.lineno))
    return out


def floor_of(mod: str, table: dict[str, int]) -> tuple[str, int | None]:
    """The §3 entry a module stands under (its own file, else its top package) and that entry's floor."""
    parts = mod.split(".")[1:]
    if not parts:
        return "spmm_study", None
    entry = parts[0] + "/" if is_package(f"spmm_study.{parts[0]}") else parts[0] + ".py"
    return entry, table.get(entry)


def sources() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_stands_on_a_floor_of_the_architecture():
    table = floors()
    assert len(table) > 30 and table["errors.py"] == 0 and max(table.values()) == table["cli.py"]
    missing = sorted({floor_of(module_name(p), table)[0] for p in sources()
                      if module_name(p) not in TOP and floor_of(module_name(p), table)[1] is None})
    assert not missing, f"modules not in docs/ARCHITECTURE.md §3: {missing}"
    gone = sorted(e for e in table if not (PKG / e).exists())
    assert not gone, f"§3 lists what does not exist: {gone}"


def test_no_module_imports_one_on_a_higher_floor():
    table = floors()
    up = []
    for p in sources():
        me = module_name(p)
        if me in TOP:
            continue
        entry, mine = floor_of(me, table)
        for mod, _, line in imports(p):
            their_entry, theirs = floor_of(mod, table)
            if their_entry == entry:
                continue  # the same module or package
            if mine is None or theirs is None or theirs >= mine:
                up.append(f"{p.relative_to(ROOT)}:{line} ({entry}, floor {mine}) imports {mod} "
                          f"({their_entry}, floor {theirs})")
    assert not up, "arrows that run back up or sideways:\n" + "\n".join(sorted(set(up)))


def test_no_rung_file_imports_another_rung_file():
    found = []
    for p in sources():
        if not RUNG.match(p.stem):
            continue
        found += [f"{p.relative_to(ROOT)}:{line} imports {mod}" for mod, _, line in imports(p)
                  if RUNG.match(mod.rsplit(".", 1)[-1])]
    assert not found, "rung files share through kit files, not each other:\n" + "\n".join(sorted(set(found)))


def _private(mod: str, name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in mod.split(".")) or \
        (name.startswith("_") and not name.startswith("__"))


# scripts that probe what no public name offers, and say so here
PROBES = {"experiments/gpu_bench.py": "gpu._vec.smid_op: which SM a block ran on, for the placement experiment",
          "experiments/cpu_auto_fit.py": "cpu._inspect.CANDIDATES: how many candidates the chooser times, to refit it"}


def test_no_private_import_across_packages():
    files = sources() + sorted(p for p in (ROOT / "experiments").rglob("*.py") if str(p.relative_to(ROOT)) not in PROBES)
    found = []
    for p in files:
        me = module_name(p) if PKG in p.parents else "experiments." + p.stem
        mine = me if p.name == "__init__.py" else me.rsplit(".", 1)[0]
        for mod, name, line in imports(p):
            owner = mod if is_package(mod) else mod.rsplit(".", 1)[0]
            if _private(mod, name) and owner != mine:
                found.append(f"{p.relative_to(ROOT)}:{line} takes {mod}{'.' + name if name else ''}")
    assert not found, "private names used outside their package:\n" + "\n".join(sorted(set(found)))


@pytest.mark.parametrize("mod,name,expect", [("spmm_study.cpu._vec", "lanes", True),
                                             ("spmm_study.gpu.baselines", "_torch_fetch", True),
                                             ("spmm_study.version", "__version__", False),
                                             ("spmm_study.cpu.balance", "partition", False)])
def test_what_counts_as_private(mod, name, expect):
    assert _private(mod, name) is expect
