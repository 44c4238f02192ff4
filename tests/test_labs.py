"""spmm-study lab / show / report grading: every lab end to end on tiny sizes with predictions from a file,
every command a handout quotes parses, bad predictions input is one line and exit 2."""

from __future__ import annotations

import json
import re

import pytest

from spmm_study.cli import app, main
from spmm_study.labs import catalog, grading

from test_cli import cli, fails

LABS = catalog.all_labs()


def predictions_file(tmp_path, lab, scale=2.0):
    lines = [f"# predictions for lab {lab.id}"] + [f"{q.key} = {scale if q.kind == 'ratio' else 1}" for q in lab.questions]
    path = tmp_path / f"lab{lab.id}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("lab", LABS, ids=lambda l: f"lab{l.id}")
def test_every_lab_runs_end_to_end_on_tiny_sizes(capsys, tmp_path, lab):
    out_dir = tmp_path / "res"
    code, out, err = cli(capsys, "lab", lab.id, "--tiny", "--predictions", predictions_file(tmp_path, lab),
                         "--student", "ada", "--out", out_dir)
    assert code == 0, err
    assert "your predictions" in out and "What happened" in out
    if lab.device == "gpu" and "no GPU here" in out:
        assert out.count("no GPU here") == 1
    rows = [json.loads(line) for line in (out_dir / "rows.jsonl").read_text().splitlines()]
    q_rows = [r for r in rows if r["device"] == "lab"]
    assert {r["idea"] for r in q_rows} == {q.key for q in lab.questions}
    for r in q_rows:
        info = json.loads(r["info"])
        assert info["student"] == "ada" and info["lab"] == lab.id
        assert info["prediction"] == (2.0 if info["kind"] == "ratio" else 1.0)
        assert "lab=%d" % lab.id in r["tags"]
    measured = [r for r in rows if r["device"] != "lab"]
    if lab.device == "cpu":
        assert measured and all(r["status"] == "PASS" for r in measured), [r["message"] for r in measured]
        assert any(json.loads(q["info"])["measured"] is not None for q in q_rows)
    assert (out_dir / f"lab{lab.id}.png").stat().st_size > 1000
    # the same folder again needs --force
    fails(capsys, "lab", lab.id, "--tiny", "--no-predict", "--out", out_dir, match="already holds lab results")


def test_list_handout_and_show(capsys):
    code, out, err = cli(capsys, "lab")
    assert code == 0
    for lab in LABS:
        assert re.search(rf"\b{lab.id}\b.*{re.escape(lab.title)}", out)
    assert max(len(line) for line in out.splitlines()) <= 80
    code, out, _ = cli(capsys, "lab", "1", "--handout")
    assert code == 0 and out.startswith("# Lab 1")
    code, out, _ = cli(capsys, "show", "cpu.csr.tiled")
    assert code == 0 and "loop order" in out and "register" in out.lower()
    fails(capsys, "show", "nosuchvariant", match="unknown variant")
    fails(capsys, "lab", "9", match="unknown lab '9'")


def handout_commands():
    cmds = []
    for lab in LABS:
        for line in catalog.handout(lab).splitlines():
            if line.startswith("    spmm-study "):  # a code block
                cmds.append((lab.id, line.strip()))
            cmds += [(lab.id, c) for c in re.findall(r"`(spmm-study [^`]+)`", line)]  # inline code
    return cmds


def test_every_handout_has_the_sections_and_its_commands_parse():
    import shlex

    import click
    import typer

    cmd = typer.main.get_command(app)
    seen = set()
    for lab in LABS:
        text = catalog.handout(lab)
        for section in ("## The question", "## Background", "## The model's numbers", "## Predict", "## Run",
                        "## What to look for", "## Questions"):
            assert section in text, f"lab {lab.id} handout lacks {section}"
        for q in lab.questions:
            assert q.key in text, f"lab {lab.id} handout does not name question {q.key}"
    for lab_id, line in handout_commands():
        args = shlex.split(line)[1:]
        root = click.Context(cmd, info_name="spmm-study")
        sub = cmd.get_command(root, args[0])
        assert sub is not None, f"lab {lab_id} handout: unknown command in {line!r}"
        with sub.make_context(args[0], args[1:], parent=root) as sub_ctx:  # raises on a bad option or value
            assert sub_ctx.params, line
        seen.add(lab_id)
    assert seen == {lab.id for lab in LABS}, "every handout quotes at least one command"
    root = click.Context(cmd, info_name="spmm-study")
    with pytest.raises(Exception, match="quik"):  # the check above can fail: a typo is refused
        cmd.get_command(root, "lab").make_context("lab", ["1", "--quik"], parent=root)


def test_bad_predictions_are_one_line_and_exit_2(capsys, tmp_path):
    fails(capsys, "lab", "1", "--tiny", "--predict", "nosuch=2", "--predict", "ijk_over_ikj=3",
          match="lab 1 has no question nosuch")
    fails(capsys, "lab", "1", "--tiny", "--predict", "ijk_over_ikj=fast", match=r"ijk_over_ikj='fast' is not a number")
    fails(capsys, "lab", "1", "--tiny", "--predict", "ijk_over_ikj", match="must look like KEY=VALUE")
    fails(capsys, "lab", "1", "--tiny", "--predict", "ijk_over_ikj=nan", match="not a finite number")
    fails(capsys, "lab", "1", "--tiny", "--predictions", tmp_path / "missing.txt", match="no such file")
    bad = tmp_path / "bad.txt"
    bad.write_text("ijk_over_ikj=2\njki_over_ikj 3\n")
    fails(capsys, "lab", "1", "--tiny", "--predictions", bad, match=r"bad.txt:2: .* must look like KEY=VALUE")
    bad.write_text('{"ijk_over_ikj": true}')
    fails(capsys, "lab", "1", "--tiny", "--predictions", bad, match="is not a number")
    bad.write_text('{"ijk_over_ikj": [1}')
    fails(capsys, "lab", "1", "--tiny", "--predictions", bad, match="not valid JSON")
    bad.write_text('{"other": 1}')
    fails(capsys, "lab", "1", "--tiny", "--predictions", bad, match="has no question other")
    bad.write_bytes(b"x" * 70_000)
    fails(capsys, "lab", "1", "--tiny", "--predictions", bad, match="past the")
    fails(capsys, "lab", "1", "--tiny", "--predictions", tmp_path, match="not a file")
    fails(capsys, "lab", "1", "--tiny", "--no-predict", "--predict", "ijk_over_ikj=2", match="cannot be combined")
    fails(capsys, "lab", "1", "--tiny", "--no-predict", "--student", "a b", match="--student")
    fails(capsys, "lab", "--predict", "x=1", match="give a lab ID")
    fails(capsys, "lab", "12", "--handout", match="unknown lab '12'")
    fails(capsys, "lab", "5", "--tiny", "--no-predict", "--dlmc-root", tmp_path / "nodlmc", match="--dlmc-root .*not a directory")
    afile = tmp_path / "afile"
    afile.write_text("x")
    fails(capsys, "lab", "1", "--tiny", "--no-predict", "--out", afile, match="is not a directory")


def test_prompt_reasks_on_a_non_number_and_skips_on_enter():
    from spmm_study.labs import session

    lab = catalog.get(1)
    answers = iter(["lots", "4", "", "2.5"])
    preds = session.gather_predictions(lab, None, None, False, True, ask=lambda prompt: next(answers))
    assert preds == {"ijk_over_ikj": 4.0, "dot_over_rowwise": 2.5}


def test_verdicts():
    from spmm_study.labs.common import Question

    q = Question("r", "ratio", tol=1.5)
    assert q.verdict(3.0, 2.5)[0] == "right" and q.verdict(10.0, 2.0)[0] == "high 5.0x"
    assert q.verdict(1.0, 4.0)[0] == "low 4.0x" and q.verdict(None, 2.0)[0] == "-"
    e = Question("e", "count", kind="exact")
    assert e.verdict(3, 3.0)[0] == "right" and e.verdict(2, 3)[0] == "low"
    a = Question("a", "sparsity", kind="absolute", tol=0.05)
    assert a.verdict(0.9, 0.93)[0] == "right" and a.verdict(0.5, 0.93) == ("low", pytest.approx(-0.43))


def test_report_grades_a_class(capsys, tmp_path):
    lab = catalog.get(7)  # models only on a machine without a GPU: fast; grading reads what was stored
    for who, guess in (("ann", 3), ("bob", 9), ("cy", 9)):
        code, _, err = cli(capsys, "lab", "7", "--tiny", "--student", who, "--predict", f"row_thread_over_row_col={guess}",
                           "--out", tmp_path / who)
        assert code == 0, err
    rows = []
    from spmm_study.report import load_rows

    rows = load_rows([tmp_path])
    assert grading.is_lab_rows(rows)
    # a class on a GPU machine: fill in a measurement as a GPU run would have stored it
    for r in rows:
        if r["device"] == "lab":
            info = json.loads(r["info"])
            if info["question"] == "row_thread_over_row_col":
                info["measured"] = 3.2
                info["verdict"] = "right" if info["prediction"] == 3 else "high 2.8x"
                r["info"] = json.dumps(info)
    tables = grading.tables(rows)
    per_student, by_question = tables[0], tables[1]
    assert {r[0] for r in per_student.rows} == {"ann", "bob", "cy"}
    row = next(r for r in by_question.rows if r[0] == "row_thread_over_row_col")
    assert row[1] == 3 and row[2] == 1 and row[3] == pytest.approx(3.2) and row[5] == "9 (x2)"
    code, out, err = cli(capsys, "report", tmp_path)
    assert code == 0, err
    assert "lab 7: predictions of 3 students" in out and "most common wrong answers" in out
