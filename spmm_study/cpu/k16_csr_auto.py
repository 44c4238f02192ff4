"""Rung 16 — ``cpu.csr.auto``: the rung and params for this N and this matrix, picked by a fitted rule.

What changed from rungs 14, 15 and 17: nothing in the loops. Rung 14 (``cpu.csr.vec``, one row in up to
``max_vectors`` vectors), rung 15 (``cpu.csr.rowblock``, R rows at once) and rung 17 (``cpu.csr.panel``, B
packed into contiguous column tiles) each win somewhere, and which
one wins depends on N (how many vectors a row of C needs) and on the rows (how long, how even). A user who
names no params should get the fast path at every N, so ``auto`` looks up the choice in a table fitted
offline on the layer-0 DLMC matrices (``experiments/cpu_auto_fit.py`` writes ``_auto_rule.py``; its
docstring has the machine, the fitting and held-out sets and the rule's score) and builds that rung.

The rule reads only features known before the call: N, the mean row length (nnz / M), the mean column
length (nnz / K: how often each row of B is used, which is what pays back rung 17's per-call copy of B) and
K (with N, the size of B); the table is a list of N buckets, each with a choice and optionally a split at one
of the other features. There is one table per fitted thread count (``_auto_rule.py`` at one thread,
``_auto_rule_2t.py`` from two up): the rungs scale differently (at two threads rung 17's packed tiles kept
0.85–0.95 of linear where rung 14 kept 0.55–0.78 at N = 64–256), so the best choice moves with the threads. The choice is in the
result's ``info`` (``auto_choice``, ``auto_features``), beside the chosen rung's own info.

Then it inspects (``inspect=true``, the default), as MKL's ``mkl_sparse_optimize`` does for
``cpu.csr.mkl_opt``: a rule scored on other matrices is within about 5% of the best on average but 0.6–0.8× in
its worst cases, and only the user's own matrix says which case this is. ``CANDIDATES`` of the rule's
candidates (its choice, then the best-ranked setting of each other rung by the fitted ranking of this N
bucket, ``ranked``) are built and timed on this matrix and N in interleaved rounds, a bounded
number of calls (``inspect_calls`` rounds, ``inspect_budget_s`` seconds; ``spmm_study.cpu._inspect``), the
fastest is kept and remembered in a per-user cache keyed by the matrix's structure (shape, nnz, a hash of
indptr and indices), N, dtype, threads and machine, so a second build of the same problem inspects nothing.
The inspection happens at build, like MKL's optimize step: its time is in ``info`` (``inspect_s``,
``inspect_calls``, ``inspect_ms`` per candidate; ``auto_inspect`` says measured, cached or off) and inside
``setup_s``, never in the median. ``inspect=false`` is the fitted rule alone (``auto_rule_choice``).

Loop order, traffic, what to look at: those of the chosen rung; compare ``auto`` with ``vec`` and
``rowblock`` and ``panel`` at their defaults in ``experiments/cpu_every_n.py``. Measured (that script's run of
2026-12-08 00:42 UTC, data/reference/cpu-every-n-heldout.csv: warm, AMD EPYC Zen 4 KVM guest with 2 cores,
load average 1.6–1.9, inspection on): DLMC ffn_conv1 90%, one thread, N = 32 67.33 GFLOP/s (it kept rung 17
with 8 vectors), N = 100 50.16 (rung 14), N = 2048 49.41 (rung 17); 3.0×, 2.4× and 2.4× the plain MKL call,
2.6×, 2.3× and 2.4× MKL with its inspector step once. On the 8 layer-0 matrices held out from the fit, at 12 N
from 16 to 4096: at least 1.45× MKL-opt on every (matrix, N) at one thread, 2.3× in geometric mean; at two
threads (the two-thread rule, wall time) at least 1.47×, 2.3× in geometric mean.
"""

from __future__ import annotations

import time

import numpy as np

from spmm_study import registry
from spmm_study.cpu._vec import lanes, rows_misaligned, traffic
from spmm_study.registry import Param, variant

LABELS = {  # what the fitted table names → (variant, params)
    "vec max_vectors=16": ("cpu.csr.vec", {"max_vectors": 16}),
    "vec max_vectors=8": ("cpu.csr.vec", {"max_vectors": 8}),
    "rowblock rows=0": ("cpu.csr.rowblock", {"rows": 0}),
    "rowblock rows=2": ("cpu.csr.rowblock", {"rows": 2}),
    "rowblock rows=4": ("cpu.csr.rowblock", {"rows": 4}),
    "panel max_vectors=4": ("cpu.csr.panel", {"max_vectors": 4}),
    "panel max_vectors=8": ("cpu.csr.panel", {"max_vectors": 8}),
    "panel max_vectors=2": ("cpu.csr.panel", {"max_vectors": 2}),
}
FALLBACK = "vec max_vectors=16"
# rung 14 copies B into padded, aligned rows in every call when N mod 16 != 0 (``pack_b``); on a very sparse
# matrix each row of B is used a few times only and the copy costs more than the split loads it saves
# (512×512 at 98%, N = 196: 62.5 µs packed, 53.0 µs not, one thread; 56 against 29 µs at two). Which one pays
# is a property of this matrix, so the inspection decides it: when B would be copied, the best-ranked rung-14
# candidate's unpacked twin runs in the race too.
TWINS = {f"{lab} pack_b=False": (vid, {**params, "pack_b": False})
         for lab, (vid, params) in LABELS.items() if vid == "cpu.csr.vec"}
CHOICES = {**LABELS, **TWINS}  # every name an inspection may keep (and the cache may hold)


SPLIT_FEATURES = ("row_mean", "col_mean", "k")


def pick_label(table: list[dict], feats: dict) -> str:
    """The table's choice for a problem's features: ``n`` (columns of B), ``row_mean`` / ``col_mean`` (mean
    nonzeros per row / per column of A) and ``k`` (rows of B). An entry covers N up to ``n_max`` and splits on
    at most one other feature (``<feature>_below``: below the cut, ``choice_short``)."""
    for entry in table:
        if feats["n"] <= entry["n_max"]:
            for feat in SPLIT_FEATURES:
                cut = entry.get(f"{feat}_below")
                if cut is not None and feats.get(feat, 0.0) < cut:
                    return entry["choice_short"]
            return entry["choice"]
    return table[-1]["choice"] if table else FALLBACK


FITTED_THREADS = (2,)  # besides 1: thread counts with a rule of their own (``_auto_rule_<T>t.py``)


def rule(threads: int = 1) -> list[dict]:
    """The table for this many threads: the one fitted at the largest thread count not above it."""
    import importlib

    fitted = [t for t in FITTED_THREADS if t <= threads]
    if fitted:
        return importlib.import_module(f"spmm_study.cpu._auto_rule_{max(fitted)}t").RULE
    from spmm_study.cpu._auto_rule import RULE

    return RULE


def choose(n: int, m: int, nnz: int, table: list[dict] | None = None, k: int = 0,
           threads: int = 1) -> tuple[str, dict, dict]:
    """(variant id, params, features) for a problem of N columns and an M×K A with ``nnz`` nonzeros, run on
    ``threads`` threads."""
    feats = {"n": int(n), "row_mean": round(float(nnz) / m, 2) if m else 0.0,
             "col_mean": round(float(nnz) / k, 2) if k else 0.0, "k": int(k), "threads": int(threads)}
    lab = pick_label(rule(threads) if table is None else table, feats)
    vid, params = LABELS.get(lab, LABELS[FALLBACK])
    return vid, dict(params), feats


INSPECT_PARAMS = (
    Param("inspect", True, (True, False), "time the rule's top candidates on this matrix and N once (cached "
          "per matrix structure, N, dtype, threads and machine); false: the fitted rule alone"),
    Param("inspect_calls", 5, (), "timed calls per candidate during inspection (interleaved rounds)", minimum=1,
          maximum=1000),
    Param("inspect_budget_s", 1.0, (), "seconds the inspection may take before it stops timing and building",
          minimum=0.0, maximum=3600.0),
)


def ranked(table: list[dict], feats: dict, top: int = 3) -> list[str]:
    """The candidates the inspector times, best first: the entry's choice, then its fitted ranking (``ranked``,
    or ``ranked_short`` below its split; a table fitted without rankings adds ``RUNNERS_UP``), taking the
    best-ranked candidate of each rung (vec, rowblock, panel) before a second one of any rung: two settings of
    one rung differ by a few percent, the rungs by up to 2× (ffn_conv1, N = 1024: panel 4.7 ms, vec 5.4 ms,
    where the top three by score were two vec settings and a panel one that lost; experiments/notes-cpu.md §8)."""
    first = pick_label(table, feats)
    entry = next((e for e in table if feats["n"] <= e["n_max"]), table[-1] if table else {})
    short = any(entry.get(f"{f}_below") is not None and feats.get(f, 0.0) < entry[f"{f}_below"]
                for f in SPLIT_FEATURES)
    order = [lab for lab in dict.fromkeys([first, *entry.get("ranked_short" if short else "ranked", ()),
                                           *RUNNERS_UP, *LABELS]) if lab in LABELS]
    rungs: dict[str, str] = {}
    for lab in order:
        rungs.setdefault(LABELS[lab][0], lab)
    return list(dict.fromkeys([*rungs.values(), *order]))[:top]


RUNNERS_UP = ("vec max_vectors=16", "panel max_vectors=8", "rowblock rows=0")


def _builder(problem, lab):
    vid, params = CHOICES[lab]
    chosen = registry.get(vid)
    return lambda: chosen.build(problem, **chosen.resolve_params(params))


@variant("cpu.csr.auto", loop_order="(chosen rung's)", movement=traffic, params=INSPECT_PARAMS)
def build(problem, inspect, inspect_calls, inspect_budget_s):
    """CSR, rung and params picked by a rule fitted on DLMC layer 0, then (inspect) timed on this matrix and cached."""
    import numba

    from spmm_study.cpu import _inspect

    threads = numba.get_num_threads()
    vid, params, feats = choose(problem.n, problem.m, problem.a.nnz, k=problem.k, threads=threads)
    rule_label = label_of(vid, params)
    info = {"auto_rule_choice": rule_label, "auto_features": feats}
    if not inspect:
        prep = _builder(problem, rule_label)()
        info["auto_inspect"] = "off"
        lab = rule_label
    else:
        t0 = time.perf_counter()
        key = _inspect.cache_key(problem.a, problem.n, problem.dtype, threads, race_digest(threads))
        hit = _inspect.load().get(key)
        if hit is not None and hit["choice"] in CHOICES:
            lab = hit["choice"]
            prep = _builder(problem, lab)()
            info.update(auto_inspect="cached", inspect_s=round(time.perf_counter() - t0, 6), inspect_calls=0)
        else:
            cands = ranked(rule(threads), feats, _inspect.CANDIDATES)
            if rows_misaligned(problem.b, lanes(problem.dtype)):  # rung 14 would copy B in every call
                cands += [t for t in (f"{c} pack_b=False" for c in cands) if t in TWINS][:1]
            win, prep, times, calls, complete = _inspect.race([(c, _builder(problem, c)) for c in cands],
                                                              inspect_calls, inspect_budget_s, threads)
            lab = list(times)[win]
            if complete:  # a race cut short by the budget is not remembered: the next build inspects again
                _inspect.store(key, {"choice": lab, "times_ms": {k: round(v * 1e3, 5) for k, v in times.items()},
                                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
            info.update(auto_inspect="measured" if complete else "measured (budget cut, not cached)",
                        inspect_s=round(time.perf_counter() - t0, 6), inspect_calls=calls,
                        inspect_ms={k: round(v * 1e3, 4) for k, v in times.items()})
    vid, params = CHOICES[lab]
    prep.info = {"auto_choice": vid + "".join(f" {k}={v}" for k, v in params.items()), **info, **prep.info}
    return prep


def race_digest(threads: int) -> str:
    """A short hash of what an inspection at ``threads`` races: the rule in force, the candidates and how many
    are timed. Part of the cache key, so a refit or a new candidate inspects again instead of trusting a winner
    picked among other candidates."""
    import hashlib
    import json

    from spmm_study.cpu import _inspect

    what = json.dumps([rule(threads), LABELS, TWINS, _inspect.CANDIDATES], sort_keys=True, default=str)
    return hashlib.blake2b(what.encode(), digest_size=4).hexdigest()


def label_of(vid: str, params: dict) -> str:
    """The table's name of (variant, params): the inverse of ``LABELS``."""
    return next((lab for lab, (v, p) in LABELS.items() if v == vid and p == params), FALLBACK)


__all__ = ["build", "choose", "pick_label", "ranked", "rule", "LABELS", "TWINS", "CHOICES", "np"]
