"""Autotuning: the best Params of a variant per matrix *shape class*, kept in a small cache file.

A tile size that is best for a 2048×512 matrix at N=256 is usually best for a 2048×640 one too, and wrong
for a 64×32 one at N=12544. So tuning results are keyed by a coarse shape class - M, K and N rounded to a
power of two, sparsity to 0.05 - and by the machine (a tile that suits a 32 MiB L3 need not suit a GPU):

    {machine: {variant: {shape class: {"params": {...}, "median_s": ..., "matrix": ..., "n": ..., "date": ...}}}}

``autotune`` measures the product of each variant's Param ``choices`` through the ordinary planner, harness
and runner, so every candidate is checked before it can win. A product larger than ``max_combos`` (default
64; the tiled CSR rung has 120) is *sampled*, seeded, with the defaults always in, and the command says so:
a prefix of the product would never try the last values of the first Param (``tile_n`` 64 and 128 were
never tried that way); ``best``
picks the fastest passing row per (variant, shape class) and ``save`` merges it into the file (default
``~/.cache/spmm-study/tuned.json``, ``$SPMM_STUDY_TUNED`` or ``--cache-file``). ``spmm-study run --tuned``
looks the problem's class up and runs with those params (explicit ``--param`` values still win).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from pathlib import Path


CACHE_ENV = "SPMM_STUDY_TUNED"


def default_path() -> Path:
    from spmm_study.files import cache_path

    return cache_path(CACHE_ENV, "tuned.json")


def _pow2(x: int) -> int:
    return 1 << max(0, round(math.log2(max(int(x), 1))))


def shape_class(m: int, k: int, n: int, sparsity: float) -> str:
    """``m2048-k512-n256-s0.90``: dimensions to the nearest power of two, sparsity to the nearest 0.05."""
    return f"m{_pow2(m)}-k{_pow2(k)}-n{_pow2(n)}-s{round(sparsity * 20) / 20:.2f}"


def _product(variant) -> list[tuple]:
    axes = [[(p.name, v) for v in dict.fromkeys([p.default, *p.choices])] for p in variant.params]
    return [tuple(sorted(c)) for c in itertools.product(*axes)] if axes else [()]


def grid_size(variant) -> int:
    """How many combinations the product of the variant's Param choices holds."""
    return len(_product(variant))


def candidates(variant, max_combos: int = 64, seed: int = 0) -> list[tuple]:
    """Sorted (name, value) tuples over the product of the variant's Param choices, defaults first; past
    ``max_combos`` the defaults and a seeded sample of the rest, in grid order."""
    combos = _product(variant)
    if len(combos) <= max_combos:
        return combos
    rest = combos[1:]
    keep = sorted(random.Random(seed).sample(range(len(rest)), max_combos - 1))
    return [combos[0]] + [rest[i] for i in keep]


def best(rows: list[dict]) -> dict[tuple, dict]:
    """(machine, variant, shape class) → the fastest passing row."""
    out: dict[tuple, dict] = {}
    for r in rows:
        if r["status"] != "PASS":
            continue
        key = (r["machine"], r["variant"], shape_class(r["m"], r["k"], r["n"], r["sparsity"]))
        if key not in out or r["median_s"] < out[key]["median_s"]:
            out[key] = r
    return out


def load(path: Path | str | None = None) -> dict:
    from spmm_study.files import read_json_object

    return read_json_object(Path(path) if path else default_path(), "tuning cache")


def save(winners: dict[tuple, dict], path: Path | str | None = None) -> Path:
    """Merge the winners of ``best`` into the cache file (atomically); a new tuning replaces an old one."""
    from spmm_study.files import atomic_write_text

    path = Path(path) if path else default_path()
    data = load(path)
    for (machine, variant, cls), r in winners.items():
        data.setdefault(machine, {}).setdefault(variant, {})[cls] = {
            "params": json.loads(r["params"]), "median_s": r["median_s"], "gflops": r["gflops"],
            "matrix": r["matrix"], "n": r["n"], "threads": r["threads"],
            "date": str(r.get("timestamp") or time.strftime("%Y-%m-%dT%H:%M:%S")),
        }
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def lookup(variant_id: str, m: int, k: int, n: int, sparsity: float, machine: str,
           path: Path | str | None = None) -> dict | None:
    """The tuned params for this variant and problem class on this machine, or None if never tuned."""
    entry = load(path).get(machine, {}).get(variant_id, {}).get(shape_class(m, k, n, sparsity))
    return dict(entry["params"]) if entry else None


def summary(rows: list[dict], winners: dict[tuple, dict], path: Path):
    """The table ``autotune`` prints: per (variant, shape class) the best params, their median time, the
    defaults' time on the same problem and the gain."""
    from spmm_study import registry
    from spmm_study.table import Table

    reg = registry.load_all()
    defaults = {}
    for r in rows:
        v = reg.get(r["variant"])
        if r["status"] == "PASS" and v and json.loads(r["params"]) == v.resolve_params({}):
            defaults[(r["machine"], r["variant"], shape_class(r["m"], r["k"], r["n"], r["sparsity"]))] = r
    t = Table(title=f"Best params per shape class (stored in {path})",
              columns=["variant", "shape class", "best params", "median", "defaults", "gain"],
              formats={"median": "time", "defaults": "time", "gain": "x"})
    for key, r in sorted(winners.items()):
        d = defaults.get(key)
        t.rows.append([key[1], key[2], json.dumps(json.loads(r["params"])), r["median_s"],
                       d["median_s"] if d else "-", d["median_s"] / r["median_s"] if d else "-"])
    return t
