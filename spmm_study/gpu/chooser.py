"""The GPU chooser's decision table: cheap matrix features → (rung, params), fitted from measured rows.

No numba here: features are numpy over the CSR offsets, the table is JSON, the fit is a few sums.

**Features** (``features``) cost O(M) and need no pass over the nonzeros: the shape (M, K, N), sparsity and
the row-length statistics — mean, coefficient of variation, max/mean and the fraction of empty rows.

**The table** is an ordered list of rules; a rule holds half-open intervals ``[lo, hi)`` on some features
(``null`` = unbounded) and the configuration to build. The first rule whose intervals all contain the
problem's features decides; no rule matching means ``default``. Rules come from the leaves of a small
regression tree, so in a fitted table exactly one rule matches every point; the order only matters for
hand-written tables.

**The fit** (``fit``) grows that tree on measured problems (each: features + the device time of every
candidate configuration): a leaf picks the configuration with the smallest geometric-mean slowdown against
the per-problem oracle (the fastest candidate measured on that problem), a split is the feature threshold
that cuts the summed log-slowdown most. Depth and leaf size are bounded so the table stays a dozen rules a
student can read. ``cross_validate`` holds out whole matrices (all sparsities and N of one weight matrix at
once), so every problem is predicted by a table that never saw that matrix: that — not the oracle — is the
number a user gets.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spmm_study.errors import ParamError

SCHEMA = "spmm-study gpu chooser v1"
FEATURES = ("m", "k", "n", "sparsity", "row_mean", "row_cv", "row_max_over_mean", "empty_frac")
MAX_TABLE_BYTES = 1 << 20
MAX_RULES = 256
MISSING_PENALTY = math.log(100.0)  # a config that did not PASS on a problem counts as 100× the oracle


def features(indptr, m: int, k: int, n: int) -> dict[str, float]:
    """The chooser's features of an M×K CSR (its ``indptr``) times a K×N dense B."""
    lengths = np.diff(np.asarray(indptr, dtype=np.int64)).astype(np.float64)
    nnz = float(lengths.sum()) if lengths.size else 0.0
    mean = nnz / m if m else 0.0
    cv = float(lengths.std() / mean) if mean > 0 else 0.0
    mx = float(lengths.max() / mean) if mean > 0 else 0.0
    cells = m * k
    return {"m": float(m), "k": float(k), "n": float(n), "sparsity": 1.0 - nnz / cells if cells else 0.0,
            "row_mean": mean, "row_cv": cv, "row_max_over_mean": mx,
            "empty_frac": float(np.count_nonzero(lengths == 0) / m) if m else 0.0}


@dataclass(frozen=True)
class Rule:
    when: dict  # feature -> (lo or None, hi or None): lo <= x < hi
    variant: str
    params: dict
    stats: dict = field(default_factory=dict)

    def matches(self, feats: dict) -> bool:
        for name, (lo, hi) in self.when.items():
            x = feats[name]
            if (lo is not None and x < lo) or (hi is not None and x >= hi):
                return False
        return True

    def describe(self) -> str:
        parts = []
        for name, (lo, hi) in self.when.items():
            if lo is not None and hi is not None:
                parts.append(f"{lo:g} <= {name} < {hi:g}")
            elif lo is not None:
                parts.append(f"{name} >= {lo:g}")
            elif hi is not None:
                parts.append(f"{name} < {hi:g}")
        return " and ".join(parts) or "always"


@dataclass(frozen=True)
class Table:
    rules: tuple[Rule, ...]
    default: tuple[str, dict]
    meta: dict
    source: str = ""

    def choose(self, feats: dict) -> tuple[int, str, dict]:
        """(index of the deciding rule or -1 for the default, variant id, params)."""
        missing = [f for f in FEATURES if f not in feats]
        if missing:
            raise ParamError(f"chooser features lack {', '.join(missing)}")
        for i, rule in enumerate(self.rules):
            if rule.matches(feats):
                return i, rule.variant, dict(rule.params)
        return -1, self.default[0], dict(self.default[1])

    def to_json(self) -> dict:
        return {**self.meta, "schema": SCHEMA,
                "rules": [{"when": {k: list(v) for k, v in r.when.items()}, "variant": r.variant,
                           "params": r.params, **({"stats": r.stats} if r.stats else {})} for r in self.rules],
                "default": {"variant": self.default[0], "params": self.default[1]}}


def _bad(where: str, what: str) -> ParamError:
    return ParamError(f"chooser table {where}: {what}")


def _config(obj, where: str) -> tuple[str, dict]:
    if not isinstance(obj, dict) or not isinstance(obj.get("variant"), str) or not obj["variant"]:
        raise _bad(where, "needs a 'variant' string")
    params = obj.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, (int, float, str, bool)) for v in params.values()):
        raise _bad(where, "'params' must be an object of numbers, strings or booleans")
    return obj["variant"], params


def _bound(x, where: str):
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise _bad(where, f"bound {x!r} is not a finite number or null")
    return float(x)


def table_from_json(data, source: str = "") -> Table:
    """Validate a decoded table (every field checked; one ParamError naming the place otherwise)."""
    name = source or "(inline)"
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise _bad(name, f"not a table (expected a JSON object with \"schema\": \"{SCHEMA}\")")
    rules_in = data.get("rules")
    if not isinstance(rules_in, list) or len(rules_in) > MAX_RULES:
        raise _bad(name, f"'rules' must be a list of at most {MAX_RULES} rules")
    rules = []
    for i, r in enumerate(rules_in):
        where = f"{name} rule {i + 1}"
        vid, params = _config(r, where)
        when_in = r.get("when", {})
        if not isinstance(when_in, dict):
            raise _bad(where, "'when' must be an object of feature: [lo, hi]")
        when = {}
        for feat, iv in when_in.items():
            if feat not in FEATURES:
                raise _bad(where, f"unknown feature {feat!r} (features: {', '.join(FEATURES)})")
            if not isinstance(iv, list) or len(iv) != 2:
                raise _bad(where, f"{feat} must be [lo, hi] (null for unbounded)")
            lo, hi = _bound(iv[0], where), _bound(iv[1], where)
            if lo is not None and hi is not None and not lo < hi:
                raise _bad(where, f"{feat} interval [{lo:g}, {hi:g}) is empty")
            when[feat] = (lo, hi)
        stats = r.get("stats", {})
        rules.append(Rule(when, vid, params, stats if isinstance(stats, dict) else {}))
    if "default" not in data:
        raise _bad(name, "needs a 'default' configuration")
    default = _config(data["default"], f"{name} default")
    meta = {k: v for k, v in data.items() if k not in ("schema", "rules", "default")}
    return Table(tuple(rules), default, meta, source)


def load_table(path: Path) -> Table:
    """Read and validate a table file (bounded: at most 1 MiB)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TABLE_BYTES:
            raise _bad(str(path), f"{size} bytes; a decision table is at most {MAX_TABLE_BYTES}")
        from spmm_study.limits import check_depth
        from spmm_study.safeio import read_text

        text = read_text(path, limit=MAX_TABLE_BYTES, what="decision table", error=ParamError)
        check_depth(text, str(path), ParamError)
        data = json.loads(text)
    except OSError as exc:
        raise _bad(str(path), f"cannot be read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad(str(path), f"is not JSON ({str(exc)[:80] or 'nested too deep'})") from None
    return table_from_json(data, str(path))


# ---------------------------------------------------------------------------------------------- the fit


@dataclass
class Measured:
    """One problem (a matrix at one N): its features, the device time of each candidate config that
    passed (config key -> seconds), and its group (the weight matrix it came from, for held-out tests)."""

    key: str
    group: str
    feats: dict
    times: dict


def _regret(problems: list[Measured], configs: list[str]) -> np.ndarray:
    """log(t / oracle) per (problem, config); missing (did not PASS) → MISSING_PENALTY."""
    r = np.full((len(problems), len(configs)), MISSING_PENALTY)
    for i, p in enumerate(problems):
        best = min(p.times.values())
        for j, c in enumerate(configs):
            t = p.times.get(c)
            if t is not None:
                r[i, j] = math.log(t / best)
    return r


def _threshold(a: float, b: float, feat: str) -> float:
    """Between two neighbouring feature values: the geometric mean for the size features (N=256 and 2048
    split at 724, not 1152), the arithmetic one for the fractions and ratios."""
    if feat in ("m", "k", "n", "row_mean") and a > 0 and b > 0:
        return float(round(math.sqrt(a * b), 6))
    return float(round((a + b) / 2, 6))


def fit(problems: list[Measured], max_depth: int = 3, min_leaf: int = 6, min_gain: float = 0.005,
        feature_names: tuple[str, ...] = FEATURES) -> Table:
    """Grow the tree on ``problems`` and flatten its leaves into a table (see the module docstring).

    ``min_gain``: a split must cut the mean log-slowdown of its node by at least this (0.005 ≈ 0.5%)."""
    if not problems:
        raise ParamError("the chooser needs at least one measured problem to fit")
    configs = sorted({c for p in problems for c in p.times})
    reg = _regret(problems, configs)
    feats = {f: np.array([p.feats[f] for p in problems]) for f in feature_names}
    rules: list[Rule] = []

    def leaf(idx: np.ndarray) -> tuple[int, float]:
        sums = reg[idx].sum(axis=0)
        j = int(np.argmin(sums))
        return j, float(sums[j])

    def grow(idx: np.ndarray, when: dict, depth: int) -> None:
        j, cost = leaf(idx)
        best = None
        if depth < max_depth and idx.size >= 2 * min_leaf:
            for f in feature_names:
                x = feats[f][idx]
                order = np.argsort(x, kind="stable")
                xs, rs = x[order], reg[idx][order]
                cum = np.cumsum(rs, axis=0)
                total = cum[-1]
                for cut in range(min_leaf, idx.size - min_leaf + 1):
                    if xs[cut - 1] == xs[cut]:
                        continue
                    c = float(cum[cut - 1].min() + (total - cum[cut - 1]).min())
                    if best is None or c < best[0] - 1e-12:
                        best = (c, f, _threshold(float(xs[cut - 1]), float(xs[cut]), f))
        if best is None or (cost - best[0]) / idx.size < min_gain:
            stats = {"train_problems": int(idx.size), "train_geomean_vs_oracle": round(math.exp(cost / idx.size), 4)}
            vid, params = json.loads(configs[j])
            rules.append(Rule(dict(when), vid, params, stats))
            return
        _, f, thr = best
        lo, hi = when.get(f, (None, None))
        left = idx[feats[f][idx] < thr]
        right = idx[feats[f][idx] >= thr]
        grow(left, {**when, f: (lo, thr)}, depth + 1)
        grow(right, {**when, f: (thr, hi)}, depth + 1)

    grow(np.arange(len(problems)), {}, 0)
    j, _ = leaf(np.arange(len(problems)))
    default = tuple(json.loads(configs[j]))
    meta = {"fit": {"problems": len(problems), "groups": len({p.group for p in problems}), "configs": len(configs),
                    "max_depth": max_depth, "min_leaf": min_leaf, "min_gain": min_gain}}
    return Table(tuple(rules), (default[0], default[1]), meta)


def config_key(variant: str, params: dict) -> str:
    """The canonical key of a configuration: JSON of [variant, params] with sorted keys."""
    return json.dumps([variant, params], sort_keys=True)


def folds_by_group(problems: list[Measured], k: int, seed: int = 0) -> list[list[int]]:
    """Problem indices of k folds; every group (weight matrix) lies wholly inside one fold."""
    groups = sorted({p.group for p in problems})
    if k < 2 or k > len(groups):
        raise ParamError(f"{k} folds need between 2 and {len(groups)} (the number of matrices) folds")
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    fold_of = {g: i % k for i, g in enumerate(groups)}
    return [[i for i, p in enumerate(problems) if fold_of[p.group] == f] for f in range(k)]


def cross_validate(problems: list[Measured], k: int = 5, seed: int = 0, **fit_args) -> list[str | None]:
    """For each problem, the config a table fitted *without its matrix* picks (None: the pick did not PASS
    there, counted as a miss by the caller)."""
    picks: list[str | None] = [None] * len(problems)
    for fold in folds_by_group(problems, k, seed):
        held = set(fold)
        table = fit([p for i, p in enumerate(problems) if i not in held], **fit_args)
        for i in fold:
            _, vid, params = table.choose(problems[i].feats)
            key = config_key(vid, params)
            picks[i] = key if key in problems[i].times else None
    return picks


def geomean(xs) -> float:
    xs = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    return float(math.exp(sum(math.log(x) for x in xs) / len(xs))) if xs else float("nan")
