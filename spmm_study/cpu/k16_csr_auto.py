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

Loop order, traffic, what to look at: those of the chosen rung; compare ``auto`` with ``vec`` and
``rowblock`` and ``panel`` at their defaults in ``experiments/cpu_every_n.py``. Measured (DLMC ffn_conv1 90%,
one thread, warm, Intel Xeon KVM guest with 2 cores, quiet, 2026-12-02, the README's every-N run): N = 32
48.8 GFLOP/s (it picked rung 17 with 2 vectors), N = 100 46.0 (rung 14), N = 2048 38.4 (rung 17); 1.5×, 1.8×
and 2.2× the plain MKL call, 1.0×, 1.5× and 2.2× MKL with its inspector step done once.
"""

from __future__ import annotations

import numpy as np

from spmm_study import registry
from spmm_study.cpu.k14_csr_vec import traffic
from spmm_study.registry import variant

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


@variant("cpu.csr.auto", loop_order="(chosen rung's)", movement=traffic)
def build(problem):
    """CSR, rung and params picked from N and the row statistics by a rule fitted on DLMC layer 0."""
    import numba

    vid, params, feats = choose(problem.n, problem.m, problem.a.nnz, k=problem.k, threads=numba.get_num_threads())
    chosen = registry.get(vid)
    prep = chosen.build(problem, **chosen.resolve_params(params))
    prep.info = {"auto_choice": vid + "".join(f" {k}={v}" for k, v in params.items()), "auto_features": feats,
                 **prep.info}
    return prep


__all__ = ["build", "choose", "pick_label", "rule", "LABELS", "np"]
