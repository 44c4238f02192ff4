"""``cpu.csr.auto``'s inspector (issue 24), through the CLI: the rule's top candidates timed once per matrix
structure and N, the winner cached per user, the time reported apart from the timed calls, the budget kept.
(Correctness of ``auto`` on every edge matrix, with and without inspection, is the registry's grid in
tests/test_cpu_variants.py.)"""

from __future__ import annotations

import json

import pytest

from spmm_study.cli import main
from spmm_study.cpu import _inspect
from spmm_study.cpu import k16_csr_auto as auto

FAST = ["--repeats", "2", "--min-time", "0", "--warmup", "0", "--cache", "warm", "--threads", "1"]
MAT = "synthetic:uniform:48x40:0.2"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "auto-inspect.json"
    monkeypatch.setenv(_inspect.CACHE_ENV, str(path))
    _inspect._warned.clear()
    return path


def run_auto(capsys, *argv):
    try:
        main(["run", "--no-save", "--json", "-v", "auto", *FAST, *map(str, argv)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["status"] == "PASS", row
    return row, json.loads(row["info"]), err


def test_second_call_inspects_nothing_and_a_new_matrix_or_n_inspects_again(cache, capsys):
    row, info, err = run_auto(capsys, "-m", MAT, "-n", 37)
    assert info["auto_inspect"] == "measured" and not err
    # the rule's top candidates, and (N = 37: rung 14 would copy B into padded rows) its best vec setting unpacked
    assert len(info["inspect_ms"]) == _inspect.CANDIDATES + 1 and info["inspect_calls"] > _inspect.CANDIDATES
    # the time reported apart: inside setup (the build), never in the timed calls
    assert 0 < info["inspect_s"] <= row["setup_s"] and row["median_s"] < info["inspect_s"]
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == 1 and next(iter(entries.values()))["choice"] in info["inspect_ms"]
    row2, info2, _ = run_auto(capsys, "-m", MAT, "-n", 37)
    assert info2["auto_inspect"] == "cached" and info2["inspect_calls"] == 0
    assert info2["auto_choice"] == info["auto_choice"]
    _, info3, _ = run_auto(capsys, "-m", MAT, "-n", 7)  # another N (N of the edge grid: kernels compiled once)
    _, info4, _ = run_auto(capsys, "-m", MAT + ":seed=5", "-n", 37)  # same shape and nnz, other structure
    assert info3["auto_inspect"] == info4["auto_inspect"] == "measured"
    assert len(json.loads(cache.read_text())["entries"]) == 3


def test_corrupt_cache_is_ignored_with_one_warning(cache, capsys):
    cache.write_text("{not json")
    _, info, err = run_auto(capsys, "-m", MAT, "-n", 37)
    assert info["auto_inspect"] == "measured"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and str(cache) in lines[0]
    assert json.loads(cache.read_text())["entries"]  # rewritten with the new winner
    cache.write_text('{"entries": {"k": 3}}')  # JSON, but not entries
    _inspect._warned.clear()
    _, info, err = run_auto(capsys, "-m", MAT, "-n", 37)
    assert info["auto_inspect"] == "measured" and len(err.splitlines()) == 1 and "not a cache" in err


def test_budget_bounds_the_inspection(cache, capsys):
    _, info, _ = run_auto(capsys, "-m", MAT, "-n", 7, "-p", "inspect_calls=2")
    assert info["inspect_calls"] <= (_inspect.CANDIDATES + 1) * (1 + 2)  # a first call + 2 timed calls each
    cache.unlink()
    _, info, _ = run_auto(capsys, "-m", MAT, "-n", 7, "-p", "inspect_budget_s=0")
    # nothing left after the rule's own choice: it alone is built, called once untimed and timed once,
    # and a race cut short is not remembered
    assert list(info["inspect_ms"]) == [info["auto_rule_choice"]] and info["inspect_calls"] == 2
    assert "not cached" in info["auto_inspect"] and not cache.exists()
    _, info, _ = run_auto(capsys, "-m", MAT, "-n", 7, "-p", "inspect=false")
    assert info["auto_inspect"] == "off" and "inspect_s" not in info and not cache.exists()


def test_the_copy_of_b_is_inspected_only_where_it_happens(cache, capsys):
    """Rung 14 copies B into padded rows in every call when N mod 16 != 0; whether that pays is the matrix's
    business, so the race then holds the unpacked twin of its best vec candidate too — and only then."""
    _, info, _ = run_auto(capsys, "-m", MAT, "-n", 37)
    twins = [lab for lab in info["inspect_ms"] if lab.endswith(" pack_b=False")]
    assert len(twins) == 1 and twins[0] in auto.TWINS
    assert twins[0].removesuffix(" pack_b=False") in info["inspect_ms"]  # beside its packed self
    _, info, _ = run_auto(capsys, "-m", MAT, "-n", 32)  # aligned rows: nothing copied, no twin
    assert not any("pack_b" in lab for lab in info["inspect_ms"])


def test_a_cached_unpacked_choice_runs_and_is_checked(cache, capsys):
    """A twin remembered in the cache is rebuilt from it (not ignored as an unknown label), checked against
    float64 by the harness (run_auto asserts PASS) and named in auto_choice."""
    from spmm_study import sources

    key = _inspect.cache_key(sources.load(MAT).a, 37, "float32", 1, auto.race_digest(1))
    for twin in auto.TWINS:
        cache.write_text(json.dumps({"entries": {key: {"choice": twin}}}))
        _, info, err = run_auto(capsys, "-m", MAT, "-n", 37)
        assert info["auto_inspect"] == "cached" and not err
        assert info["auto_choice"].endswith("pack_b=False") and info["b_packed"] is False


def test_race_picks_the_fastest_and_releases_the_others():
    import time

    released = []

    class Fake:
        def __init__(self, name, delay):
            self.name, self.delay, self.calls = name, delay, 0

        def run(self):
            self.calls += 1
            t0 = time.thread_time()
            while time.thread_time() - t0 < self.delay:
                pass

        def release(self):
            released.append(self.name)

    fakes = [Fake("a", 0.002), Fake("b", 0.0005), Fake("c", 0.003)]
    win, prep, times, calls, complete = _inspect.race([(f.name, lambda f=f: f) for f in fakes], 3, 10.0, 1)
    assert (win, prep.name, complete, calls) == (1, "b", True, 12) and sorted(released) == ["a", "c"]
    assert times["b"] < times["a"] < times["c"]


def test_ranked_candidates_start_with_the_rule_choice_then_one_per_rung():
    table = [{"n_max": 64, "choice": "vec max_vectors=8",
              "ranked": ["vec max_vectors=8", "vec max_vectors=16", "panel max_vectors=4", "rowblock rows=2"],
              "row_mean_below": 8.0, "choice_short": "rowblock rows=2", "ranked_short": ["rowblock rows=2"]},
             {"n_max": float("inf"), "choice": "panel max_vectors=4"}]
    # the second vec setting waits until each rung has had its best-ranked one
    assert auto.ranked(table, {"n": 32, "row_mean": 20.0}) == ["vec max_vectors=8", "panel max_vectors=4",
                                                              "rowblock rows=2"]
    assert auto.ranked(table, {"n": 32, "row_mean": 20.0}, top=4)[3] == "vec max_vectors=16"
    assert auto.ranked(table, {"n": 32, "row_mean": 2.0}) == ["rowblock rows=2", "vec max_vectors=16",
                                                             "panel max_vectors=8"]
    assert auto.ranked(table, {"n": 999, "row_mean": 2.0}, top=2) == ["panel max_vectors=4", "vec max_vectors=16"]


def test_cache_key_names_structure_n_dtype_threads_and_machine():
    from spmm_study import sources

    a = sources.load(MAT).a
    key = _inspect.cache_key(a, 37, "float32", 1)
    assert key == _inspect.cache_key(sources.load(MAT).a, 37, "float32", 1)  # same structure, same key
    others = {_inspect.cache_key(a, 38, "float32", 1), _inspect.cache_key(a, 37, "float64", 1),
              _inspect.cache_key(a, 37, "float32", 2), _inspect.cache_key(sources.load(MAT + ":seed=5").a, 37, "float32", 1)}
    assert key not in others and len(others) == 4
    from spmm_study.environment import cpu_model

    assert cpu_model() in key


def test_a_refit_rule_or_new_candidates_make_the_cached_winners_stale(cache, capsys, monkeypatch):
    """The key holds a digest of what the race was among: the same problem after a refit inspects again."""
    _, info, _ = run_auto(capsys, "-m", MAT, "-n", 37)
    assert info["auto_inspect"] == "measured"
    assert run_auto(capsys, "-m", MAT, "-n", 37)[1]["auto_inspect"] == "cached"
    before = auto.race_digest(1)
    refit = [dict(e, choice="rowblock rows=0") for e in auto.rule(1)]
    monkeypatch.setattr(auto, "rule", lambda threads=1: refit)
    assert auto.race_digest(1) != before
    assert run_auto(capsys, "-m", MAT, "-n", 37)[1]["auto_inspect"] == "measured"
    monkeypatch.undo()
    monkeypatch.setenv(_inspect.CACHE_ENV, str(cache))
    monkeypatch.setattr(_inspect, "CANDIDATES", _inspect.CANDIDATES + 1)
    assert run_auto(capsys, "-m", MAT, "-n", 37)[1]["auto_inspect"] == "measured"
