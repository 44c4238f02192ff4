"""experiments/cpu_auto_fit.py: refitting from raw timings, and its bad input (one line, exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fit(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "experiments/cpu_auto_fit.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def _rows():
    rows = []
    for i, (m, k) in enumerate([(512, 512)] * 4 + [(2048, 512)] * 2):
        for n in (16, 32, 64, 2048):
            fast = "vec max_vectors=16" if n < 1000 else "panel max_vectors=4"
            rows.append({"matrix": f"m{i}.smtx", "n": n, "m": m, "k": k, "nnz": m * 50, "row_mean": 50.0,
                         "times": {"vec max_vectors=16": 1.0 if fast.startswith("vec") else 2.0,
                                   "panel max_vectors=4": 1.0 if fast.startswith("panel") else 2.0}})
    return rows


def test_refit_from_raw_writes_a_rule_that_follows_the_timings(tmp_path):
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps(_rows()))
    out = tmp_path / "rule.py"
    proc = _fit("--from-raw", str(raw), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    ns: dict = {}
    exec(out.read_text(), ns)  # noqa: S102 (our own generated module)
    from spmm_study.cpu.k16_csr_auto import pick_label

    assert pick_label(ns["RULE"], {"n": 32, "row_mean": 50.0}) == "vec max_vectors=16"
    assert pick_label(ns["RULE"], {"n": 4096, "row_mean": 50.0}) == "panel max_vectors=4"
    assert "held out 1.000" in out.read_text()


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    bad_rows = _rows()
    bad_rows[3]["times"]["vec max_vectors=16"] = -1.0
    cases = {"missing.json": None, "junk.json": "{not json", "empty.json": "[]",
             "short.json": json.dumps([{"matrix": "a", "n": 1}]), "negative.json": json.dumps(bad_rows)}
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        proc = _fit("--from-raw", str(path), "--out", str(tmp_path / "r.py"))
        assert proc.returncode == 2, (name, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert not (tmp_path / "r.py").exists()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_rows()))
    (tmp_path / "good.json.meta").write_text("[1, 2]")
    proc = _fit("--from-raw", str(good), "--out", str(tmp_path / "r.py"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and ".meta" in proc.stderr
    for opt in (["--threads", "0"], ["--reps", "0"]):
        proc = _fit(*opt, "--from-raw", str(tmp_path / "missing.json"))
        assert proc.returncode == 2 and "at least 1" in proc.stderr
