"""Result files: atomic writes, no overwrite without force, resume that skips finished rows and survives a
torn last line; CSV and JSONL say the same thing."""

from __future__ import annotations

import json
from dataclasses import asdict
import math
import os

import numpy as np
import pytest

from spmm_study import results, runner
from spmm_study.errors import ResultsError
from spmm_study.registry import Variant, host_prepared
from spmm_study.results import Result, ResultWriter, atomic_write_text, read_meta, read_rows
from spmm_study.timing import TimingConfig


def make_row(i: int, status: str = "PASS", **kw) -> Result:
    base = dict(variant=f"cpu.csr.v{i}", device="cpu", format="csr", idea=f"v{i}", baseline=False,
                matrix="synthetic:uniform:8x8:0.5", m=8, k=8, n=4, nnz=32, sparsity=0.5, dtype="float32",
                seed=0, params='{"tile": 4}', threads=1, status=status, median_s=1e-3 * (i + 1),
                gflops=0.25 / (i + 1), message="a, \"quoted\" message" if i == 1 else "")
    base.update(kw)
    return Result(**base)


def same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    p = tmp_path / "meta.json"
    atomic_write_text(p, "old contents\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "replace", boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(p, "new contents that never land\n")
    assert p.read_text() == "old contents\n"
    assert [q.name for q in tmp_path.iterdir()] == ["meta.json"]  # the temporary file was removed
    monkeypatch.undo()
    atomic_write_text(p, "new\n")
    assert p.read_text() == "new\n"


def test_writer_writes_jsonl_csv_and_meta_that_agree(tmp_path):
    d = tmp_path / "run"
    w = ResultWriter(d, meta={"experiment": "t", "argv": ["spmm-study", "run"]})
    rows = [make_row(0), make_row(1, "FAIL"), make_row(2, "ERROR")]
    for r in rows:
        w.append(r)
    assert sorted(p.name for p in d.iterdir()) == [".lock", ".spmm-study", "meta.json", "results.csv", "rows.jsonl"]
    w.close()  # the folder's lock (one writer per folder) goes with the writer
    assert sorted(p.name for p in d.iterdir()) == [".spmm-study", "meta.json", "results.csv", "rows.jsonl"]
    from_jsonl = read_rows(d / "rows.jsonl")
    from_csv = read_rows(d / "results.csv")
    assert read_rows(d) == from_jsonl or len(read_rows(d)) == 3
    assert len(from_jsonl) == len(from_csv) == 3
    for r, j, c in zip(rows, from_jsonl, from_csv):
        for name in results.FIELDS:
            want = getattr(r, name)
            assert same(j[name], want), (name, j[name], want)
            assert same(c[name], want), (name, c[name], want)
    assert read_meta(d) == {"experiment": "t", "argv": ["spmm-study", "run"]}
    assert (d / "rows.jsonl").read_text().count("\n") == 3


def test_no_overwrite_without_force(tmp_path):
    d = tmp_path / "run"
    w = ResultWriter(d, meta={"a": 1})
    w.append(make_row(0))
    w.append(make_row(1))
    before = (d / "rows.jsonl").read_bytes()
    with pytest.raises(ResultsError, match=r"already holds 2 result rows; pass --resume to continue or --force"):
        ResultWriter(d, meta={"a": 2})
    assert (d / "rows.jsonl").read_bytes() == before and read_meta(d) == {"a": 1}
    forced = ResultWriter(d, meta={"a": 3}, force=True)
    assert forced.rows == [] and not (d / "rows.jsonl").exists()
    forced.append(make_row(5))
    assert [r["variant"] for r in read_rows(d)] == ["cpu.csr.v5"] and read_meta(d) == {"a": 3}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultsError, match=r"exists and is not a directory"):
        ResultWriter(tmp_path / "file")


def test_force_replaces_even_a_corrupt_file(tmp_path):
    d = tmp_path / "run"
    ResultWriter(d).close()  # a folder spmm-study made (its marker), whose rows file was then damaged
    good = json.dumps(asdict(make_row(0)))
    (d / "rows.jsonl").write_text(f'{good}\nnot json\n{good}\n')
    with pytest.raises(ResultsError, match=r"rows.jsonl:2 is not a JSON row"):
        read_rows(d)
    w = ResultWriter(d, force=True)
    w.append(make_row(0))
    assert len(read_rows(d)) == 1


def test_resume_skips_finished_rows_and_ignores_a_torn_last_line(tmp_path):
    d = tmp_path / "run"
    w = ResultWriter(d, meta={"n": 1})
    ok, err = make_row(0), make_row(1, "ERROR")
    w.append(ok)
    w.append(err)
    with open(d / "rows.jsonl", "a") as f:  # power cut in the middle of the third row
        f.write(json.dumps(results.asdict(make_row(2)))[:57])
    assert [r["variant"] for r in read_rows(d)] == ["cpu.csr.v0", "cpu.csr.v1"]
    r = ResultWriter(d, meta={"n": 2}, resume=True)
    assert r.has(ok) and r.has(ok.key())
    assert not r.has(err)  # an ERROR row is measured again on resume
    assert not r.has(make_row(2))
    r.append(make_row(2))
    r.append(make_row(1))  # the ERROR row measured again
    lines = (d / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(x) for x in lines)  # the torn line and the old ERROR are gone
    assert [(x["variant"], x["status"]) for x in read_rows(d / "results.csv")] == [
        ("cpu.csr.v0", "PASS"), ("cpu.csr.v2", "PASS"), ("cpu.csr.v1", "PASS")]
    assert read_meta(d) == {"n": 1, "resumed": [{"n": 2}]}


def test_read_rows_errors(tmp_path):
    with pytest.raises(ResultsError, match=r"no such result file"):
        read_rows(tmp_path / "missing.csv")
    with pytest.raises(ResultsError, match=r"holds no rows.jsonl or results.csv"):
        read_rows(tmp_path)
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match=r"has no 'variant' column"):
        read_rows(bad)
    txt = tmp_path / "x.txt"
    txt.write_text("")
    with pytest.raises(ResultsError, match=r"expected a run directory"):
        read_rows(txt)


# ------------------------------------------------------------------------------------------------ runner resume


def counting_variant(calls):
    def build(problem):
        c = problem.new_output()
        ab = (problem.a.to_scipy() @ problem.b).astype(problem.dtype)

        def run():
            calls.append(1)
            c[:] = ab

        return host_prepared(run, c)

    from spmm_study import movement

    return Variant(id="cpu.csr.counting", build=build, loop_order="i→p→j", params=(), movement=movement.csr_rowwise)


@pytest.mark.parametrize("dtype", ["float32", "fp32"])
def test_execute_resumes_without_measuring_again(tmp_path, dtype):
    calls = []
    v = counting_variant(calls)
    timing = TimingConfig(repeats=2, min_time_s=0.0, warmup_s=0.0, cache="warm")
    tasks = [runner.Task(v, "synthetic:uniform:20x16:0.5", n, dtype=dtype, threads=1) for n in (3, 5)]
    w = ResultWriter(tmp_path / "r")
    out = list(runner.execute(tasks, runner.Context(timing=timing), w))
    assert [r.status for r in out] == ["PASS", "PASS"] and [r.n for r in out] == [3, 5]
    assert out[0].dtype == "float32"
    first_calls = len(calls)
    assert first_calls > 0
    w2 = ResultWriter(tmp_path / "r", resume=True)
    again = list(runner.execute(tasks, runner.Context(timing=timing), w2))
    assert again == [] and len(calls) == first_calls  # both rows were finished: nothing measured
    assert len(read_rows(tmp_path / "r")) == 2
    more = tasks + [runner.Task(v, "synthetic:uniform:20x16:0.5", 7, dtype=dtype, threads=1)]
    w3 = ResultWriter(tmp_path / "r", resume=True)
    assert [r.n for r in runner.execute(more, runner.Context(timing=timing), w3)] == [7]
    np.testing.assert_array_equal([r["n"] for r in read_rows(tmp_path / "r")], [3, 5, 7])
    w3.close()
    assert not any(name.startswith(".") and name != ".spmm-study" for name in os.listdir(tmp_path / "r"))


def test_default_dir_never_collides(tmp_path, monkeypatch):
    monkeypatch.setattr(results.time, "strftime", lambda fmt: "20261123-120000")
    first = results.default_dir("run", tmp_path)
    assert first == tmp_path / "run" / "20261123-120000"
    ResultWriter(first).append(make_row(0))
    second = results.default_dir("run", tmp_path)
    assert second == tmp_path / "run" / "20261123-120000-2"
    ResultWriter(second).append(make_row(1))  # no 'already holds rows' for a second run in the same second
    assert results.default_dir("run", tmp_path).name == "20261123-120000-3"


def test_csv_is_appended_and_rebuilt_from_jsonl_on_open(tmp_path):
    d = tmp_path / "run"
    w = ResultWriter(d)
    for i in range(3):
        w.append(make_row(i))
    text = (d / "results.csv").read_text()
    assert text.count("\n") == 4 and text.startswith("variant,")  # one header, three rows
    with open(d / "results.csv", "a") as f:
        f.write("cpu.csr.v9,cpu,cs")  # interrupted in the middle of a CSV line
    ResultWriter(d, resume=True)
    assert (d / "results.csv").read_text() == text  # rebuilt from rows.jsonl
    (d / "rows.jsonl").unlink()  # rows deleted by hand: the CSV is kept unless --force says to start again
    with pytest.raises(ResultsError, match=r"already holds results.csv of an earlier run; pass --force"):
        ResultWriter(d)
    with pytest.raises(ResultsError, match=r"rows.jsonl is gone: nothing to resume from"):
        ResultWriter(d, resume=True)
    w = ResultWriter(d, force=True)  # and then the CSV does not keep the old rows with a second header
    w.append(make_row(7))
    assert [r["variant"] for r in read_rows(d / "results.csv")] == ["cpu.csr.v7"]


def test_result_files_get_the_mode_a_plain_open_would(tmp_path):
    """mkstemp makes 0600 files; result files and converted matrices are meant to be read by others."""
    import os
    import stat

    from spmm_study.results import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.json", "{}")
        assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644
    finally:
        os.umask(old)
