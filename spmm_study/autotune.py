"""Autotuning: the best Params of a variant per matrix *shape class*, kept in a small cache file.

A tile size that is best for a 2048×512 matrix at N=256 is usually best for a 2048×640 one too, and wrong
for a 64×32 one at N=12544. So tuning results are keyed by a coarse shape class - M, K and N rounded to a
power of two, sparsity to 0.05 - and by the machine (a tile that suits a 32 MiB L3 need not suit a GPU):

    {machine: {variant: {shape class: {"params": {...}, "median_s": ..., "matrix": ..., "n": ..., "date": ...}}}}

``tune`` measures the product of each variant's Param ``choices`` (capped at ``max_combos``, default values
first) through the ordinary harness and runner, so every candidate is checked before it can win; ``best``
picks the fastest passing row per (variant, shape class) and ``save`` merges it into the file (default
``~/.cache/spmm-study/tuned.json``, ``$SPMM_STUDY_TUNED`` or ``--cache-file``). ``spmm-study run --tuned``
looks the problem's class up and runs with those params (explicit ``--param`` values still win).
"""

from __future__ import annotations

import itertools
import json
import math
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


def candidates(variant, max_combos: int = 64) -> list[tuple]:
    """Sorted (name, value) tuples over the product of the variant's Param choices; defaults first."""
    axes = []
    for p in variant.params:
        values = list(dict.fromkeys([p.default, *p.choices]))
        axes.append([(p.name, v) for v in values])
    combos = [tuple(sorted(c)) for c in itertools.product(*axes)] if axes else [()]
    return combos[:max_combos]


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
