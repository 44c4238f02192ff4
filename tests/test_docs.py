"""Docs that cannot go stale.

* Every ``spmm-study …`` command shown in README.md, docs/*.md and the lab handouts runs through the CLI, at tiny
  sizes (``SPMM_STUDY_TINY=1``), GPU commands in the CUDA simulator; one that needs what this machine lacks is
  skipped with the reason (``pytest -ra`` prints it). A command the docs show failing on purpose says so at the
  end of its line: ``# exits 2``. How the commands are found and run: tests/docs_commands.py.
* Every file path the docs and the docstrings name exists.
* A figure a rung's docstring quotes as measured names a committed reference file (data/reference/), and the
  number is in that file.
* The tables between the generated markers of docs/*.md are what experiments/make_docs.py makes from
  data/reference/ now.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import docs_commands as dc

ROOT = dc.ROOT
COMMANDS = dc.all_commands()
EXPECT = re.compile(r"#\s*exits (\d+)")
# the one line of a command whose every variant needs what this machine lacks (the rule of every measuring command)
MISSING = re.compile(r"nothing left to measure: skipped [^\n]*(not installed|needs a real GPU|no CUDA device)[^\n]*")


def expected_code(cmd: dc.Command) -> int:
    m = EXPECT.search(cmd.text)
    return int(m.group(1)) if m else 0


def test_the_docs_show_commands_and_every_page_is_read(tmp_path):
    files = {c.file for c in COMMANDS}
    assert "README.md" in files and any(f.startswith("docs/") for f in files)
    assert any(f.startswith("spmm_study/labs/handouts/") for f in files)
    assert len(COMMANDS) >= 40, len(COMMANDS)
    assert any(dc.is_gpu(c.argv) for c in COMMANDS)
    # the extractor itself: continuation lines, variables, comments, indented blocks, python blocks left out
    text = ("x\n\n```\nF=dlmc:a/b\nspmm-study run -v tiled \\\n    -m ${F}1   # a comment\nls -l\n```\n\n"
            "```python\nspmm-study run\n```\n\n    spmm-study lab 1 --quick\n")
    blocks = dc.code_blocks(text)
    assert [[n for n, _ in b] for b in blocks] == [[4, 5, 6, 7], [14]]
    path = tmp_path / "page.md"
    path.write_text(text + "\n```\nNUMBA_ENABLE_CUDASIM=1 spmm-study check -v x\n```\n")
    got = dc.commands_in(path)
    assert [(c.line, c.argv) for c in got] == [(5, ["run", "-v", "tiled", "-m", "dlmc:a/b1"]), (14, ["lab", "1", "--quick"]),
                                               (17, ["check", "-v", "x"])]
    assert got[2].env == (("NUMBA_ENABLE_CUDASIM", "1"),)


def _prepare(cmd: dc.Command, scratch: Path) -> list[str]:
    """The command's argv for this machine, after the file-writing lines its block shows before it; a
    --predictions file a handout asks the reader to write is made (empty: no predictions) when the page
    does not make it."""
    argv = dc.localise(cmd.argv, scratch)
    for line in cmd.setup:
        subprocess.run(["bash", "-c", line], cwd=scratch, check=True)
    for i, a in enumerate(argv[:-1]):
        if a == "--predictions" and not (scratch / argv[i + 1]).exists():
            (scratch / argv[i + 1]).write_text("{}\n")
    return argv


def test_commands_show_where_their_data_comes_from():
    """A reader copies a command: one that reads the DLMC shows --dlmc-root, one that reads the challenge files
    shows --spdnn-root (or the environment variable instead), rather than failing on a machine without it set."""
    bare = []
    for c in COMMANDS:
        joined, sets = " ".join(c.argv), dict(c.env)
        if ("dlmc:" in joined or "dlmc" in dc._toml_text(c.argv)) and "--dlmc-root" not in joined \
                and "SPMM_STUDY_DLMC" not in sets:
            bare.append(f"{c.id}: {c.text}")
        on_challenge = c.argv[0] in ("infer", "propagate") and "--net" not in c.argv and "-m" not in c.argv \
            and "--matrix" not in c.argv or "spdnn" in next((c.argv[i + 1] for i, a in enumerate(c.argv[:-1])
                                                               if a == "--net"), "")
        if on_challenge and "--spdnn-root" not in joined and "SPMM_STUDY_SPDNN" not in sets:
            bare.append(f"{c.id}: {c.text}")
    assert not bare, "commands that need --dlmc-root or --spdnn-root but do not show it:\n" + "\n".join(bare)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every command that can run here, in the order the pages show them (a report reads what the sweep
    before it wrote), in one process under the CUDA simulator: CPU commands are unaffected by it, GPU ones
    need it, and one process pays the imports and the kernels' compilation once."""
    scratch = dc.scratch_folder(tmp_path_factory.mktemp("docs"))
    # a command shown on several pages runs once (the first time it is shown); every page's copy gets its result
    first: dict[tuple, dc.Command] = {}
    for c in COMMANDS:
        if not dc.needs(c.argv):
            first.setdefault((tuple(c.argv), c.env, c.setup), c)
    todo = list(first.values())
    batch = []
    for c in todo:
        batch.append([_prepare(c, scratch), dict(c.env)])
    env = {**os.environ, **dc.environment(scratch), "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(Path(dc.__file__).resolve()), str(scratch)], input=json.dumps(batch),
                          capture_output=True, text=True, env=env, timeout=900)
    got = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(got) == len(todo), f"the command process stopped after {len(got)} of {len(todo)}: {proc.stderr[-3000:]}"
    by_key = {(tuple(c.argv), c.env, c.setup): r for c, r in zip(todo, got)}
    return {c.id: by_key[(tuple(c.argv), c.env, c.setup)] for c in COMMANDS if not dc.needs(c.argv)}


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_command_runs_as_written(cmd, results):
    why = dc.needs(cmd.argv)
    if why:
        pytest.skip(f"{cmd.text!r}: {why}")
    res = results[cmd.id]
    want = expected_code(cmd)
    missing = MISSING.search(res["stderr"]) if res["code"] == 2 and want != 2 else None
    if missing:  # the tool itself says that what the command needs is not here (a package, a real GPU)
        pytest.skip(f"{cmd.text!r}: {missing.group(0)}")
    assert res["code"] == want, (f"{cmd.id}: exit {res['code']} (expected {want}) for\n  {cmd.text}\n"
                                 f"stderr: {res['stderr'][-1500:]}\nstdout: {res['stdout'][-800:]}")
    assert "Traceback" not in res["stderr"], f"{cmd.id}: {res['stderr'][-1500:]}"


def test_tiny_mode_shrinks_what_it_says(capsys, monkeypatch, tmp_path):
    """SPMM_STUDY_TINY=1 through the CLI: the problem cut, N capped, one warm repeat; without it, untouched."""
    from spmm_study import tiny
    from test_cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tiny.ENV, "1")
    code, out, err = cli(capsys, "run", "-v", "rowwise", "--json", "--no-save", "-n", "300")
    assert code == 0, err
    row = json.loads(out)[0]
    assert (row["m"], row["k"], row["n"], row["repeats"], row["cache"]) == (tiny.ROWS, tiny.COLS, tiny.N, 1, "warm")
    assert row["status"] == "PASS"
    monkeypatch.setenv(tiny.ENV, "0")
    code, out, err = cli(capsys, "run", "-v", "rowwise", "--json", "--no-save", "-n", "24", "--cache", "warm",
                         "--repeats", "2", "--min-time", "0", "--warmup", "0")
    row = json.loads(out)[0]
    assert code == 0 and (row["m"], row["k"], row["n"]) == (2048, 512, 24) and row["repeats"] >= 2


# ------------------------------------------------------------------------------------------------ paths


PATH = re.compile(r"(?<![\w./-])((?:spmm_study|experiments|tests|data|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_])")


def _named_paths(text: str) -> set[str]:
    found = set()
    for m in PATH.finditer(text):
        p = m.group(1)
        tail = re.match(r"[\w./*<>{}-]*", text[m.end():]).group(0)
        if any(ch in tail for ch in "*<{") or p.endswith("_"):  # a pattern (gpu-*.csv, _auto_rule_<T>t.py)
            continue
        found.add(p)
    return found


def _docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                parts.append(doc)
    return "\n".join(parts)


def test_every_path_the_docs_and_docstrings_name_exists():
    missing = []
    for f in dc.doc_files():
        text = f.read_text(encoding="utf-8")
        for p in _named_paths(text):
            if not (ROOT / p).exists():
                missing.append(f"{f.relative_to(ROOT)}: {p}")
        for link in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):  # markdown links and images, page-relative
            if "://" not in link and not link.startswith("mailto:") and not (f.parent / link).exists():
                missing.append(f"{f.relative_to(ROOT)}: link {link}")
    for f in sorted([*ROOT.glob("spmm_study/**/*.py"), *ROOT.glob("experiments/*.py"), *ROOT.glob("tests/*.py")]):
        for p in _named_paths(_docstrings(f)):
            if not (ROOT / p).exists():
                missing.append(f"{f.relative_to(ROOT)}: {p}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


# ------------------------------------------------------------------------------------------------ quoted figures

FIGURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?(ns|µs|us|ms|s|GFLOP/s)(?![\w/])")
SCALE = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "GFLOP/s": 1.0}
REF = re.compile(r"data/reference/([\w.-]+\.(?:csv|json))")


def _numbers(path: Path) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", path.read_text())]


def _in_file(value: str, unit: str, numbers: list[float]) -> bool:
    x = float(value)
    half = 0.5 * 10 ** -(len(value.split(".")[1]) if "." in value else 0)
    # a time may be stored in seconds, or in the unit shown (a *_ms column)
    for scale in {SCALE[unit], 1.0}:
        lo, hi = (x - half) * scale, (x + half) * scale
        if any(lo - 1e-12 <= v <= hi + 1e-12 for v in numbers):
            return True
    return False


def measured_paragraphs(doc: str) -> list[str]:
    """The paragraphs of a docstring that quote measurements: from a 'Measured' to the next blank line."""
    out = []
    for para in re.split(r"\n\s*\n", doc):
        i = para.find("Measured")
        if i >= 0:
            out.append(para[i:])
    return out


def test_figures_in_rung_docstrings_come_from_reference_files():
    problems = []
    rungs = sorted([*ROOT.glob("spmm_study/cpu/k*.py"), *ROOT.glob("spmm_study/gpu/k*.py")])
    assert len(rungs) > 30
    for f in rungs:
        doc = ast.get_docstring(ast.parse(f.read_text(encoding="utf-8"))) or ""
        for para in measured_paragraphs(doc):
            figures = FIGURE.findall(para)
            if not figures:
                continue
            refs = REF.findall(para)
            name = f.relative_to(ROOT)
            if not refs:
                problems.append(f"{name}: quotes {len(figures)} measured figures but names no data/reference file")
                continue
            files = [ROOT / "data" / "reference" / r for r in refs]
            for p in files:
                if not p.exists():
                    problems.append(f"{name}: names {p.relative_to(ROOT)}, which does not exist")
            numbers = [x for p in files if p.exists() for x in _numbers(p)]
            for value, unit in figures:
                if not _in_file(value, unit, numbers):
                    problems.append(f"{name}: {value} {unit} is in none of {', '.join(refs)}")
    assert not problems, "\n".join(problems)


def test_no_stale_session_prose():
    """Prose written in a session without a device goes stale once one is lent: say what the reference data
    holds instead."""
    stale = []
    for f in sorted(ROOT.glob("spmm_study/**/*.py")):
        if re.search(r"no GPU (was lent )?this session|no GPU was lent", _docstrings(f)):
            stale.append(str(f.relative_to(ROOT)))
    assert not stale, stale


# ------------------------------------------------------------------------------------------------ generated tables


def test_generated_tables_are_what_make_docs_writes_from_the_reference_data():
    sys.path.insert(0, str(ROOT / "experiments"))
    import make_docs

    stale = [page for page, text in make_docs.render_pages().items()
             if (ROOT / page).read_text(encoding="utf-8") != text]
    assert not stale, f"generated blocks differ from data/reference/ in {stale}: run python experiments/make_docs.py"
    # every block says where and when its rows were measured
    for page, name, fn in make_docs.BLOCKS:
        if not name.startswith("readme-"):
            assert fn().startswith("_Rows: `data/reference/"), name
    # table-driven: a GPU reference file becomes a docs/gpu.md section by one entry in GPU_BENCHES
    gpu_blocks = {name for page, name, _ in make_docs.BLOCKS if page == "docs/gpu.md"}
    assert {name for name, _, _ in make_docs.GPU_BENCHES} <= gpu_blocks
