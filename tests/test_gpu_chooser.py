"""The GPU chooser (gpu.csr.auto): features, the decision table on synthetic feature vectors, its file
checks, the fit and its held-out evaluation, and the packaged table (fitted on H200 rows). No GPU, no simulator
(the chooser building and passing its rungs in the simulator is in test_gpu_sim.py)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spmm_study.errors import ParamError
from spmm_study.gpu import chooser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def feats(**kw):
    base = {"m": 512.0, "k": 512.0, "n": 256.0, "sparsity": 0.9, "row_mean": 51.2, "row_cv": 0.3,
            "row_max_over_mean": 1.8, "empty_frac": 0.0}
    base.update(kw)
    return base


def table(rules, default=("gpu.csr.row_split", {})):
    return chooser.table_from_json({"schema": chooser.SCHEMA, "rules": rules,
                                    "default": {"variant": default[0], "params": default[1]}})


def test_features_of_a_known_csr():
    indptr = np.array([0, 2, 2, 8, 12])  # rows of 2, 0, 6, 4 nonzeros
    f = chooser.features(indptr, 4, 10, 64)
    assert f["m"] == 4 and f["k"] == 10 and f["n"] == 64
    assert f["row_mean"] == pytest.approx(3.0)
    assert f["row_cv"] == pytest.approx(np.std([2, 0, 6, 4]) / 3.0)
    assert f["row_max_over_mean"] == pytest.approx(2.0)
    assert f["empty_frac"] == pytest.approx(0.25)
    assert f["sparsity"] == pytest.approx(1 - 12 / 40)
    z = chooser.features(np.zeros(4, np.int64), 3, 5, 7)  # all-zero matrix: no division by zero
    assert z["row_mean"] == 0 and z["row_cv"] == 0 and z["empty_frac"] == 1.0 and z["sparsity"] == 1.0
    assert chooser.features(np.zeros(1, np.int64), 0, 0, 7)["empty_frac"] == 0.0


def test_first_matching_rule_decides_and_intervals_are_half_open():
    t = table([{"when": {"n": [None, 724]}, "variant": "gpu.csr.row_split", "params": {"warps": 8}},
               {"when": {"n": [724, None], "sparsity": [0.85, None]}, "variant": "gpu.csr.swizzle",
                "params": {"lanes": 32, "tiles": 1}},
               {"when": {"n": [724, None]}, "variant": "gpu.csr.densify_tile", "params": {}}],
              default=("gpu.csr.warp_vec", {}))
    assert t.choose(feats(n=256))[:2] == (0, "gpu.csr.row_split")
    assert t.choose(feats(n=723.999))[1] == "gpu.csr.row_split"
    assert t.choose(feats(n=724, sparsity=0.8))[1] == "gpu.csr.densify_tile"  # lo <= x < hi: 724 is not below 724
    assert t.choose(feats(n=2048, sparsity=0.85))[:2] == (1, "gpu.csr.swizzle")
    assert t.choose(feats(n=2048, sparsity=0.8))[:2] == (2, "gpu.csr.densify_tile")
    assert t.choose(feats(n=2048, sparsity=0.9))[2] == {"lanes": 32, "tiles": 1}
    empty = table([], default=("gpu.csr.warp_vec", {"vec": 2}))
    assert empty.choose(feats()) == (-1, "gpu.csr.warp_vec", {"vec": 2})
    with pytest.raises(ParamError, match="lack"):
        t.choose({"n": 5})


@pytest.mark.parametrize("data, match", [
    ([], "not a table"),
    ({"schema": "other"}, "not a table"),
    ({"schema": chooser.SCHEMA, "rules": {}, "default": {"variant": "x"}}, "list"),
    ({"schema": chooser.SCHEMA, "rules": []}, "default"),
    ({"schema": chooser.SCHEMA, "rules": [{"variant": "x", "when": {"nope": [1, 2]}}], "default": {"variant": "x"}},
     "unknown feature"),
    ({"schema": chooser.SCHEMA, "rules": [{"variant": "x", "when": {"n": [5, 5]}}], "default": {"variant": "x"}},
     "empty"),
    ({"schema": chooser.SCHEMA, "rules": [{"variant": "x", "when": {"n": [1]}}], "default": {"variant": "x"}},
     r"\[lo, hi\]"),
    ({"schema": chooser.SCHEMA, "rules": [{"variant": "x", "when": {"n": ["a", 3]}}], "default": {"variant": "x"}},
     "finite"),
    ({"schema": chooser.SCHEMA, "rules": [{"variant": "x", "when": {"n": [True, 3]}}], "default": {"variant": "x"}},
     "finite"),
    ({"schema": chooser.SCHEMA, "rules": [{"when": {}}], "default": {"variant": "x"}}, "variant"),
    ({"schema": chooser.SCHEMA, "rules": [{"variant": "x", "params": {"a": [1]}}], "default": {"variant": "x"}},
     "params"),
    ({"schema": chooser.SCHEMA, "rules": [{"variant": "x"}] * (chooser.MAX_RULES + 1), "default": {"variant": "x"}},
     "at most"),
])
def test_bad_tables_are_one_param_error(data, match):
    with pytest.raises(ParamError, match=match):
        chooser.table_from_json(data, "t.json")


def test_table_files_are_read_bounded(tmp_path):
    with pytest.raises(ParamError, match="cannot be read"):
        chooser.load_table(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ParamError, match="not JSON"):
        chooser.load_table(tmp_path / "bad.json")
    (tmp_path / "big.json").write_bytes(b" " * (chooser.MAX_TABLE_BYTES + 1))
    with pytest.raises(ParamError, match="at most"):
        chooser.load_table(tmp_path / "big.json")
    nan = {"schema": chooser.SCHEMA, "rules": [{"variant": "x", "when": {"n": [float("nan"), 1]}}],
           "default": {"variant": "x"}}
    (tmp_path / "nan.json").write_text(json.dumps(nan))  # json writes NaN, and reads it back
    with pytest.raises(ParamError, match="finite"):
        chooser.load_table(tmp_path / "nan.json")


def test_tables_must_name_rungs_of_this_project(tmp_path):
    from spmm_study.gpu import k30_csr_auto as auto

    def write(rules, default=("gpu.csr.row_split", {})):
        p = tmp_path / f"t{len(list(tmp_path.iterdir()))}.json"
        p.write_text(json.dumps({"schema": chooser.SCHEMA, "rules": rules,
                                 "default": {"variant": default[0], "params": default[1]}}))
        return str(p)

    for rules, match in [([{"variant": "gpu.dense.cublas"}], "rule 1.*not a GPU rung"),
                         ([{"variant": "cpu.csr.rowwise"}], "not a GPU rung"),
                         ([{"variant": "gpu.csr.auto"}], "not a GPU rung"),
                         ([{"variant": "gpu.csr.nope"}], "not a GPU rung"),
                         ([{"variant": "gpu.csr.swizzle", "params": {"lanes": "x"}}], "rule 1.*lanes"),
                         ([{"variant": "gpu.csr.swizzle", "params": {"bogus": 1}}], "no parameter bogus")]:
        with pytest.raises(ParamError, match=match):
            auto.table_for(write(rules))
    with pytest.raises(ParamError, match="default"):
        auto.table_for(write([], default=("gpu.csr.torch", {})))


def _problems(rng, groups=10, per_group=6):
    """Synthetic measured problems: config A wins below N=1000, B above, C never; times noisy."""
    a = chooser.config_key("gpu.csr.row_split", {"warps": 8})
    b = chooser.config_key("gpu.csr.swizzle", {"lanes": 16})
    c = chooser.config_key("gpu.csr.warp_vec", {})
    out = []
    for g in range(groups):
        m = float(rng.choice([512, 2048]))
        for i in range(per_group):
            n = float([256, 2048][i % 2])
            ta, tb = (1.0, 1.6) if n < 1000 else (1.5, 1.0)
            f = feats(n=n, m=m, sparsity=float(rng.uniform(0.7, 0.98)), row_cv=float(rng.uniform(0.1, 0.6)))
            noise = rng.uniform(0.97, 1.03, 3)
            out.append(chooser.Measured(f"g{g}/{i}@{n}", f"g{g}", f, {a: ta * noise[0], b: tb * noise[1],
                                                                       c: 2.0 * noise[2]}))
    return out, a, b


def test_fit_finds_the_split_and_picks_the_winner_per_leaf():
    probs, a, b = _problems(np.random.default_rng(1))
    t = chooser.fit(probs, max_depth=3, min_leaf=4)
    assert any("n" in r.when for r in t.rules)
    assert chooser.config_key(*t.choose(feats(n=256))[1:]) == a
    assert chooser.config_key(*t.choose(feats(n=4096))[1:]) == b
    for r in t.rules:  # the leaves partition the feature space: every training point meets exactly one rule
        assert r.stats["train_problems"] >= 4
    for p in probs:
        assert sum(r.matches(p.feats) for r in t.rules) == 1
    # noise alone is not worth a split
    assert all(set(r.when) == {"n"} for r in t.rules), [r.when for r in t.rules]
    back = chooser.table_from_json(json.loads(json.dumps(t.to_json())))
    assert [r.when for r in back.rules] == [r.when for r in t.rules]


def test_fit_never_picks_a_config_that_failed_where_another_passed():
    a, b = chooser.config_key("gpu.csr.row_split", {}), chooser.config_key("gpu.csr.swizzle", {})
    probs = [chooser.Measured(f"p{i}", f"g{i}", feats(), {a: 1.0} if i == 0 else {a: 1.0, b: 0.9}) for i in range(3)]
    t = chooser.fit(probs, min_leaf=1)
    assert chooser.config_key(*t.choose(feats())[1:]) == a  # b is 10% faster twice but missing once (100×)
    with pytest.raises(ParamError):
        chooser.fit([])


def test_cross_validation_holds_out_whole_matrices():
    probs, a, b = _problems(np.random.default_rng(2))
    folds = chooser.folds_by_group(probs, 5, seed=3)
    assert sorted(i for f in folds for i in f) == list(range(len(probs)))
    for f in folds:
        held = {probs[i].group for i in f}
        rest = {p.group for j, p in enumerate(probs) if j not in set(f)}
        assert held and not held & rest
    picks = chooser.cross_validate(probs, k=5, seed=3, min_leaf=4)
    right = sum(pk == (a if p.feats["n"] < 1000 else b) for p, pk in zip(probs, picks))
    assert right == len(probs)
    with pytest.raises(ParamError, match="folds"):
        chooser.folds_by_group(probs, 11)
    assert math.isnan(chooser.geomean([]))
    assert chooser.geomean([2.0, 8.0, None]) == pytest.approx(4.0)


def test_packaged_table_is_the_labelled_h200_one():
    from spmm_study.gpu import k30_csr_auto as auto

    assert auto.PACKAGED_TABLE.name == "chooser_h200.json"
    t = auto.table_for("")
    assert "H200" in t.meta["machine"] and "H200" in t.meta["label"]
    assert t.rules and t.meta["cv"]["all"]["misses"] == 0
    rng = np.random.default_rng(0)
    for _ in range(300):  # synthetic feature vectors over and past the fitted range: one rule each
        f = feats(n=float(rng.choice([1, 64, 256, 724, 1000, 2048, 4096, 10000])),
                  m=float(rng.choice([1, 512, 1024, 2048, 8192])), sparsity=float(rng.uniform(0, 1)),
                  row_mean=float(rng.uniform(0, 500)), row_cv=float(rng.uniform(0, 3)))
        assert sum(r.matches(f) for r in t.rules) == 1
        assert t.choose(f)[0] >= 0


def test_auto_resolves_from_the_bare_name_on_the_gpu():
    from spmm_study import registry

    assert registry.get("auto", device="gpu").id == "gpu.csr.auto"
    assert registry.get("csr.auto", device="gpu").id == "gpu.csr.auto"


def test_decide_on_edge_matrices_follows_the_features():
    from conftest import edge_matrices

    from spmm_study.gpu import k30_csr_auto as auto
    from spmm_study.problem import Problem

    t = auto.table_for("sim")
    seen = set()
    for name, a in edge_matrices().items():
        for n in (5, 9):
            v, params, info = auto.decide(Problem.make(a, n, "float32", 0, matrix=name), t)
            cv = chooser.features(a.indptr, a.m, a.k, n)["row_cv"]
            want = "gpu.csr.swizzle" if n < 8 else "gpu.csr.densify_tile" if cv >= 0.5 else "gpu.csr.row_split"
            assert v.id == want == info["auto_variant"], (name, n, cv)
            assert json.loads(info["auto_params"]) == params and info["auto_table"] == "chooser_sim.json"
            assert info["auto_model_bytes"] > 0
            seen.add(v.id)
    assert len(seen) == 3  # the simulator cases really reach all three rungs


def test_fit_script_reproduces_the_packaged_table(tmp_path, dlmc):
    out = tmp_path / "t.json"
    proc = subprocess.run([sys.executable, "experiments/fit_gpu_chooser.py", "--rows",
                           "data/reference/gpu-bench-h200.csv", "--dlmc-root", str(dlmc), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert "held out by matrix" in proc.stdout and "gpu.dense.cublas" in proc.stdout
    fresh = json.loads(out.read_text())
    packaged = json.loads((ROOT / "spmm_study/gpu/chooser_h200.json").read_text())
    assert fresh["rules"] == packaged["rules"] and fresh["default"] == packaged["default"]
    assert fresh["cv"] == packaged["cv"]
    bad = subprocess.run([sys.executable, "experiments/fit_gpu_chooser.py", "--rows", "data/reference/gpu-bench.csv",
                          "--machine", "no-such-gpu"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "one machine" in bad.stderr
