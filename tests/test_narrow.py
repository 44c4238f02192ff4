"""Every table at 80 columns (issue 21 item 4): through the CLI, with the commands' consoles 80 columns wide.

At 80 columns ``run --wide`` emptied its seven extra columns, ``list`` broke ids and params mid-word
(``cpu.csr.tiled_fu``/``sed``), ``compare`` and ``sweep`` broke ids, the sweep's progress bar lost its count and
ETA, and ``report`` over mixed folders cropped DLMC specs. Now a table too wide moves its columns to a further
table repeating the key columns (or lays out vertically), and no id, param or number is ever broken.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from spmm_study import cli, registry

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 80
ID = re.compile(r"(?<![\w.])(?:cpu|gpu)\.[a-z0-9_]+\.[a-z0-9_]+")
FAST = ["--repeats", "2", "--min-time", "0", "--warmup", "0"]
M = "synthetic:uniform:96x64:0.9"


@pytest.fixture
def narrow(monkeypatch, tmp_path):
    """``run(argv)``: the CLI with its stdout and stderr consoles 80 columns wide; (exit code, text)."""
    monkeypatch.chdir(tmp_path)

    def run(argv):
        out = Console(width=WIDTH, record=True, color_system=None, file=open("/dev/null", "w"))
        err = Console(width=WIDTH, record=True, color_system=None, file=open("/dev/null", "w"))
        monkeypatch.setattr(cli, "out", out)
        monkeypatch.setattr(cli, "err", err)
        try:
            cli.main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code
        return code, out.export_text() + err.export_text()

    return run


def known_ids() -> set[str]:
    return {v.id for v in registry.select()}


def check_fits(text: str, ids=None) -> None:
    """Every line within 80 columns; every variant-like token a whole registered id (a broken one is not)."""
    long = [ln for ln in text.splitlines() if len(ln) > WIDTH]
    assert not long, long[:3]
    found = set(ID.findall(text))
    assert found <= known_ids(), sorted(found - known_ids())
    assert set(ids or ()) <= found, sorted(set(ids or ()) - found)


def table_rows(text: str, first: str = "cpu.") -> list[list[str]]:
    """The cells of each table line that starts a row (its first cell begins with ``first``)."""
    rows = []
    for ln in text.splitlines():
        if ln.startswith("│"):
            cells = [c.strip() for c in ln.strip().strip("│").split("│")]
            if cells[0].startswith(first):
                rows.append(cells)
    return rows


def test_run_wide_at_80_columns_keeps_every_column(narrow):
    code, text = narrow(["run", "--wide", "--no-save", "-v", "rowwise_par", "-v", "numpy", "-m", M, "-n", 32, *FAST])
    assert code == 0, text
    check_fits(text, {"cpu.csr.rowwise_par", "cpu.dense.numpy"})
    for col in ("p20–p80", "GB/s", "comp", "model", "rel err", "setup", "1st call", "thr", "speedup", "GFLOP/s"):
        assert col in text, col  # every header shown (a long one may wrap between its words)
    rows = table_rows(text)
    assert len(rows) >= 4  # each variant in the first table and again beside the columns moved on
    assert all(all(cells) for cells in rows), rows  # no cell left empty
    assert re.search(r"\d+(\.\d+)? [µm]?s–\d", text)  # the spread whole, not cut into 2-character pieces
    assert "continued (2/" in text


def test_list_at_80_columns_breaks_no_id_and_no_param(narrow):
    code, text = narrow(["list"])
    assert code == 0
    check_fits(text, known_ids())
    words = set(text.split())
    for v in registry.select():
        for p in v.describe()["params"]:
            assert f"{p['name']}={p['default']}" in words, (v.id, p["name"])  # never cut mid-word


def test_compare_and_sweep_at_80_columns(narrow, tmp_path):
    ids = {"cpu.csr.rowwise_par", "cpu.csr.tiled_fused", "cpu.dense.numpy"}
    code, text = narrow(["compare", "-v", ",".join(sorted(ids)), "-m", M, "-m", "synthetic:uniform:64x96:0.8",
                         "-n", 32, "--rounds", "1", "--out", tmp_path / "c", *FAST])
    assert code == 0, text
    check_fits(text, ids)
    exp = tmp_path / "tiny.toml"
    exp.write_text('name = "tiny"\n[timing]\nrepeats = 2\nmin_time = 0\nwarmup = 0\n[[runs]]\n'
                   f'variants = {json.dumps(sorted(ids))}\nmatrices = ["{M}"]\nn = [32]\n')
    code, text = narrow(["sweep", exp, "--out", tmp_path / "s"])
    assert code == 0, text
    check_fits(text, ids)
    bar = next(ln for ln in text.splitlines() if ln.startswith("tiny "))
    assert re.search(r" 3/3 \d+:\d\d:\d\d ETA \d+:\d\d:\d\d ", bar), bar  # the count and the ETA whole
    rows = table_rows(text)
    assert len(rows) == 2 * len(ids) and all(cells[-1] for cells in rows)  # continued, nothing emptied


def test_report_over_mixed_folders_at_80_columns(narrow, tmp_path):
    """CPU and GPU ladders, the formats and study tables and a fresh sweep in one report."""
    ref = ROOT / "data" / "reference"
    sources = [ref / f for f in ("cpu-ladder.csv", "gpu-ladder.csv", "formats-epyc.csv", "study-table-epyc.csv")]
    code, text = narrow(["report", *sources])
    assert code == 0, text
    check_fits(text)
    boxed = [ln for ln in text.splitlines() if ln[:1] in "│┃"]
    assert boxed and all(ln.rstrip()[-1] in "│┃" for ln in boxed)  # no line cropped at the right border
    flat = re.sub(r"[│┃\s]+", "", text)
    for f in sources[:2]:  # the ladders' DLMC specs whole, broken at most after a "/" in a vertical layout
        specs = {r["matrix"] for r in csv.DictReader(f.open())}
        assert specs and all(spec in flat for spec in specs), sorted(s for s in specs if s not in flat)[:3]
