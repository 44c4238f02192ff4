"""GPU rung 30 — the chooser: pick a rung and its parameters for this matrix and N, then build that rung.

No new kernel. At build, ``chooser.features`` reads the CSR offsets once (O(M): shape, N, sparsity, the
mean, coefficient of variation and max/mean of the row lengths, the fraction of empty rows), the decision
table (``chooser_h200.json`` unless ``table`` names another file) maps them to one configuration of
one rung, and that rung's ``build`` runs with those parameters. The row's ``info`` says what was chosen:
``auto_variant``, ``auto_params``, ``auto_rule`` (which rule decided, in words) and ``auto_table``.

What changed from the rungs before: every earlier rung is a fixed kernel with fixed parameters, and the
best of them differs per problem (H100, 180 layer-0 DLMC problems: rung 19 won 58 of the 60 at N=256,
rung 15 most of N=4096, rung 17 22 problems at 80–90%). The "best of nine" in the GPU tables was an oracle
— the minimum measured on the problem itself, which no user has before running. This rung is what a user
gets: a choice made from features alone, by a table fitted once on other matrices
(``experiments/fit_gpu_chooser.py``: trained and evaluated with whole weight matrices held out).

Loop order and traffic: those of the chosen rung (the movement model below is the row-panel model at the
default 128-column panel; the chosen rung's own model bytes are in ``info["auto_model_bytes"]``).
What to look at: ``auto_rule`` next to the time; the gap to the oracle in the fit script's report.
Measured on the H200 (2026-12-02, experiments/h200_round2.py, every layer-0 magnitude-pruned DLMC
transformer matrix at N = 256 and 2048, 128 problems, cold L2, device time): ``gpu.csr.auto`` as run, with
the H100-fitted table it had then, was 1.15× cuBLAS fp32, 0.57× cuBLAS TF32, 2.69× cuSPARSE (cupy), 1.16×
cuSPARSE through torch and 0.89× Sputnik (geometric means). The packaged table is now fitted on those H200
rows (``data/reference/gpu-bench-h200.csv``): held out by weight matrix it reaches 0.964 / 0.950 of the
oracle at N = 256 / 2048, i.e. 1.24× / 1.16× cuBLAS fp32 and 1.03× / 0.85× Sputnik (replayed from those rows,
not yet run as ``auto``; the table's ``cv`` entry).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from spmm_study.edge import SIM_SMALL
from spmm_study.errors import DeviceUnavailable, ParamError
from spmm_study.gpu import chooser, models
from spmm_study.gpu.device import gpu_unavailable_reason
from spmm_study.registry import Param, variant

PACKAGED_TABLE = Path(__file__).with_name("chooser_h200.json")
# packaged tables a user names by word (`-p table=sim`); any other value is a path to a JSON table
NAMED_TABLES = {"h200": PACKAGED_TABLE, "sim": Path(__file__).with_name("chooser_sim.json")}
AUTO_ID = "gpu.csr.auto"


@lru_cache(maxsize=8)
def _table(path: str) -> chooser.Table:
    return chooser.load_table(Path(path))


def table_for(path: str = "") -> chooser.Table:
    """The decision table at ``path`` ('' or 'h200' = the packaged H200 one, 'sim' = the packaged simulator
    table, else a JSON file), checked against the registry:
    every rule names a GPU rung of this project (no baseline, not this rung) with parameters it accepts."""
    from spmm_study import registry

    named = NAMED_TABLES.get(path or "h200")
    table = _table(str(named) if named else str(Path(path).expanduser().resolve()))
    configs = [(f"rule {i + 1}", r.variant, r.params) for i, r in enumerate(table.rules)]
    configs.append(("default", *table.default))
    for where, vid, params in configs:
        reg = registry.load_all()
        v = reg.get(vid)
        if v is None or v.device != "gpu" or v.baseline or vid == AUTO_ID:
            raise ParamError(f"chooser table {table.source} {where}: {vid!r} is not a GPU rung of this project")
        try:
            v.resolve_params(params)
        except ParamError as exc:
            raise ParamError(f"chooser table {table.source} {where}: {exc}") from None
    return table


def decide(problem, table: chooser.Table):
    """(variant, resolved params, info) for ``problem``: the table's choice, without building anything."""
    from spmm_study import registry

    a = problem.a
    feats = chooser.features(a.indptr, a.m, a.k, problem.n)
    i, vid, params = table.choose(feats)
    v = registry.get(vid)
    resolved = v.resolve_params(params)
    rule = table.rules[i].describe() if i >= 0 else "default (no rule matched)"
    info = {"auto_variant": vid, "auto_params": json.dumps(resolved, sort_keys=True), "auto_rule": rule,
            "auto_table": Path(table.source).name, "auto_table_fitted_on": table.meta.get("machine", "?"),
            "auto_model_bytes": v.movement(problem.shape, resolved).total}
    return v, resolved, info


# the packaged table on tiny N picks rung 19 with its real launch shape; the simulator table (package data, small
# launch shapes) sends N<8 to rung 15, skewed rows at N>=8 to rung 17 and the rest to rung 19
SIM = (({}, ("empty_rows", "1x1"), (5,)), ({"table": "sim"}, SIM_SMALL, (5, 9)))


def ptx_cases():
    return []  # no kernel of its own: it builds one of the rungs before it, which compile their own


@variant(AUTO_ID, loop_order="chosen rung's",
         movement=models.csr_panel(lambda p: 128),
         params=(Param("table", "", (), "decision table: '' or h200 (packaged, fitted on H200 rows), sim (packaged, "
                       "small launch shapes for the simulator) or a JSON file"),),
         available=gpu_unavailable_reason, sim=SIM, ptx=ptx_cases)
def build(problem, table):
    """The chooser: features → decision table → one rung with its parameters, built (choice in info)."""
    v, params, info = decide(problem, table_for(table))
    reason = v.unavailable_reason()
    if reason:
        raise DeviceUnavailable(f"the chooser picked {v.id}, which is unavailable: {reason}")
    prepared = v.build(problem, **params)
    prepared.info.update(info)  # in place: the rung's run() adds its resource report to this same dict
    return prepared
