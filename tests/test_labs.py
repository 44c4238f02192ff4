"""spmm-study lab / show / report grading: every lab end to end on tiny sizes with predictions from a file,
every command a handout quotes parses, bad predictions input is one line and exit 2."""

from __future__ import annotations

import json
import re

import pytest

from spmm_study.cli import app, main
from spmm_study.labs import catalog, common, grading

from test_cli import cli, fails

LABS = catalog.all_labs()


def predictions_file(tmp_path, lab, scale=2.0):
    lines = [f"# predictions for lab {lab.id}"] + [f"{q.key} = {scale if q.kind == 'ratio' else 1}" for q in lab.questions]
    path = tmp_path / f"lab{lab.id}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def leaked(text: str, value) -> str | None:
    """How ``value`` shows in ``text`` as the labs format numbers (.2f, .3g; .1f from 10 up), or None. Forms of fewer
    than three characters or two significant digits ("1", "68", "0.5") are too common in any text to count."""
    if value is None:
        return None
    for form in (f"{value:.2f}", f"{value:.3g}", *([f"{value:.1f}"] if abs(value) >= 10 else [])):
        if significant(form) and re.search(rf"(?<![\d.]){re.escape(form)}(?![\d])", text):
            return form
    return None


def significant(form: str) -> bool:
    return len(form) >= 3 and len(form.lstrip("-").replace(".", "").lstrip("0")) >= 2


def test_leaked_finds_a_value_and_ignores_other_numbers():
    assert leaked("Bytes stored per nonzero: csr 8.04, coo 12.00", 8.0393) == "8.04"
    assert leaked("bsr 34.72", 34.7219) == "34.72"
    assert leaked("A: 1024x1024, nnz 104,858", 8.04) is None and leaked("x 18.04 y", 8.04) is None
    assert leaked("anything", None) is None and leaked("N=1, 0.5", 0.5) is None


@pytest.mark.parametrize("lab", LABS, ids=lambda l: f"lab{l.id}")
def test_every_lab_runs_end_to_end_on_tiny_sizes(capsys, tmp_path, lab):
    out_dir = tmp_path / "res"
    code, out, err = cli(capsys, "lab", lab.id, "--tiny", "--predictions", predictions_file(tmp_path, lab),
                         "--student", "ada", "--out", out_dir)
    assert code == 0, err
    assert "your predictions" in out and "What happened" in out
    if lab.device == "gpu" and "no GPU here" in out:
        assert out.count("no GPU here") == 1
    answers = [json.loads(line) for line in (out_dir / "answers.jsonl").read_text().splitlines()]
    assert [a["question"] for a in answers] == [q.key for q in lab.questions]
    for a in answers:
        assert a["schema"] == "spmm-study.lab-answer/1" and a["student"] == "ada" and a["lab"] == lab.id
        assert a["prediction"] == (2.0 if a["kind"] == "ratio" else 1.0)
        truth = a["measured"] if a["graded_on"] in ("measured", "count") else a[a["graded_on"]]
        assert (a["verdict"] == "-") == (truth is None), a  # graded wherever there is an answer to grade on
    # nothing the student is asked appears before the predictions are taken (the line that echoes them)
    head = out.split("predictions: ", 1)[0]
    assert head != out
    for a in answers:
        for src in ("model", "sim", "measured"):
            shown = leaked(head, a[src])
            assert not shown, f"lab {lab.id}: {a['question']}'s {src} answer {a[src]} is printed as {shown!r} before the prompt"
    timing = tmp_path / "res" / "rows.jsonl"
    rows = [json.loads(line) for line in timing.read_text().splitlines()] if timing.exists() else []
    assert all(r["device"] == lab.device for r in rows)  # timing rows only: answers live in answers.jsonl
    if lab.device == "cpu":
        assert rows and all(r["status"] == "PASS" for r in rows), [r["message"] for r in rows]
        assert any(a["measured"] is not None for a in answers)
        assert all(a["rounds"] >= 2 for a in answers if a["graded_on"] == "measured" and a["measured"] is not None)
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
    fails(capsys, "lab", "10", match="unknown lab '10'")


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


def test_the_students_handout_holds_no_answer_the_instructors_does(capsys):
    for lab in LABS:
        code, student, _ = cli(capsys, "lab", lab.id, "--handout")
        assert code == 0 and "## Answers (instructor)" not in student and "## Questions" in student
        code, teacher, _ = cli(capsys, "lab", lab.id, "--handout", "--answers")
        assert code == 0 and teacher.startswith(student.rstrip("\n")) and "## Answers (instructor)" in teacher
        # the quick-size model answers are not quoted in the student's copy (lab 6's need this machine's roofs)
        if lab.id != 6:
            out = common.prepare(lab, "quick")
            lab.intro(out)
            for q in lab.questions:
                v = common._safe(q, out, "model")
                if v is not None:
                    for form in (f"{v:.2g}", f"{v:.2f}", f"{v:.3g}"):
                        assert not significant(form) or not re.search(rf"(?<![\d.]){re.escape(form)}(?![\d])", student), \
                            f"lab {lab.id} handout quotes {q.key}'s model answer {form}"
    fails(capsys, "lab", "1", "--answers", match="--answers goes with --handout")


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


# ------------------------------------------------------------------------------------- grading a class

CLASS = {  # student -> predictions; cy's csr_bytes_per_nnz is wrong on purpose (a count: graded "high" on any machine)
    "ann": {1: {"ijk_over_ikj": 3, "dot_over_rowwise": 2}, 3: {"csr_bytes_per_nnz": 9.3, "bsr_bytes_per_nnz": 35}},
    "bob": {1: {"ijk_over_ikj": 1.2}, 3: {"csr_bytes_per_nnz": 9.3, "bsr_bytes_per_nnz": 30, "coo_over_csr": 1}},
    "cy": {1: {"ijk_over_ikj": 1.2, "jki_over_ikj": 20}, 3: {"csr_bytes_per_nnz": 12, "bsr_bytes_per_nnz": 70}},
}


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    """Three students × labs 1 and 3 at tiny sizes, predictions given non-interactively (--predict)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("class")
    for who, labs in CLASS.items():
        for lab_id, preds in labs.items():
            argv = ["lab", str(lab_id), "--tiny", "--student", who, "--out", str(root / f"lab{lab_id}-{who}")]
            for k, v in preds.items():
                argv += ["--predict", f"{k}={v}"]
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    main(argv)
                except SystemExit as exc:
                    assert exc.code in (0, None), argv
    return root


def markdown_tables(text: str) -> dict[str, list[dict]]:
    tables, title, cols = {}, None, None
    for line in text.splitlines():
        if line.startswith("**") and line.endswith("**"):
            title, cols = line.strip("*"), None
            tables[title] = []
        elif line.startswith("| ") and title is not None:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cols is None:
                cols = cells
            elif not set(cells[0]) <= set("-: "):
                tables[title].append(dict(zip(cols, cells)))
    return tables


def test_report_grades_a_class_cell_by_cell(capsys, tmp_path, class_folder):
    from spmm_study.table import format_cell as fmt_value

    out_dir = tmp_path / "grades"
    code, out, err = cli(capsys, "report", "--kind", "class", class_folder, "--plots", out_dir, "--markdown")
    assert code == 0, err
    tables = markdown_tables(out)
    stored = {(a["lab"], a["student"], a["question"]): a for f in class_folder.rglob("answers.jsonl")
              for a in map(json.loads, f.read_text().splitlines())}
    for lab_id, lab_qs in ((1, catalog.get(1).questions), (3, catalog.get(3).questions)):
        rows = tables[f"lab {lab_id}: 3 students × question"]
        assert len(rows) == 3 * len(lab_qs)
        for row in rows:
            a = stored[(lab_id, row["student"], row["question"])]
            pred = CLASS[row["student"]][lab_id].get(row["question"])
            assert row["you"] == ("-" if pred is None else fmt_value(float(pred), "g3"))
            for col, field in (("model", "model"), ("sim", "sim"), ("measured", "measured")):
                assert row[col] == ("-" if a[field] is None else fmt_value(a[field], "g3")), (row, col)
            assert row["verdict"] == a["verdict"]
            if pred is None:
                assert row["verdict"] == "-"
            if row["question"] in ("ijk_over_ikj", "coo_over_csr", "jki_over_ikj", "dot_over_rowwise"):
                assert a["graded_on"] == "measured" and a["rounds"] >= 2 and a["measured_lo"] <= a["measured_hi"]
    # the deterministic questions: the same verdict on any machine, however busy
    by = {(r["student"], r["question"]): r for r in tables["lab 3: 3 students × question"]}
    assert by[("cy", "csr_bytes_per_nnz")]["verdict"] == "high"
    assert by[("ann", "csr_bytes_per_nnz")]["verdict"] == by[("bob", "csr_bytes_per_nnz")]["verdict"] == "right"
    assert by[("ann", "csr_bytes_per_nnz")]["measured"] == "9.29"  # (1,021 nnz · 8 B + 33 · 4 B) / nnz, 32x32 at 0.9
    assert by[("cy", "bsr_bytes_per_nnz")]["model"] == "68"
    q3 = {r["question"]: r for r in tables["lab 3: by question"]}
    assert q3["csr_bytes_per_nnz"]["answered"] == "3" and q3["csr_bytes_per_nnz"]["right"] == "2"
    assert q3["csr_bytes_per_nnz"]["most common wrong answers"] == "12 (x1)"
    assert q3["break_even"]["answered"] == "0" and q3["break_even"]["most common wrong answers"] == "-"
    q1 = {r["question"]: r for r in tables["lab 1: by question"]}
    assert q1["ijk_over_ikj"]["answered"] == "3" and q1["jki_over_ikj"]["answered"] == "1"
    # the CSV: one line per student x question, the same values
    import csv

    lines = list(csv.DictReader((out_dir / "grades.csv").open()))
    assert len(lines) == 3 * (len(catalog.get(1).questions) + len(catalog.get(3).questions))
    cy = next(r for r in lines if r["student"] == "cy" and r["question"] == "csr_bytes_per_nnz")
    assert float(cy["prediction"]) == 12 and cy["verdict"] == "high" and cy["graded_on"] == "count"
    assert (out_dir / "class_predictions.png").stat().st_size > 10_000
    # auto over the same folder: the grading tables too, no file written, no row skipped as unreadable
    code, out, err = cli(capsys, "report", class_folder)
    assert code == 0 and "lab 3: by question" in out and "unreadable" not in err


def test_answer_rows_bad_input(capsys, tmp_path, class_folder):
    import shutil

    fails(capsys, "report", "--kind", "class", tmp_path, match="no lab answer rows")
    fails(capsys, "report", "--kind", "class", tmp_path / "nothere", match="no such result file")
    bad = tmp_path / "one"
    shutil.copytree(class_folder / "lab3-cy", bad)
    lines = (bad / "answers.jsonl").read_text().splitlines()
    broken = json.loads(lines[0])
    broken["prediction"] = "lots"
    (bad / "answers.jsonl").write_text("\n".join([json.dumps(broken), "{not json", *lines[1:]]) + "\n")
    code, out, err = cli(capsys, "report", "--kind", "class", bad, "--plots", tmp_path / "g")
    assert code == 0 and "skipped 2 unreadable answer rows" in err and "prediction='lots'" in err
    (bad / "answers.jsonl").write_text("{not json\n")
    fails(capsys, "report", "--kind", "class", bad, match="no lab answer rows .*1 unreadable")


def test_gpu_labs_run_in_the_simulator_through_the_cli(tmp_path):
    """Labs 7 and 8 measure (in the CUDA simulator, with each rung's small simulator launch) through main(argv),
    in one subprocess: the simulator must be on before numba.cuda is imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("numba_cuda")
    here = Path(__file__).resolve().parent
    commands = [["lab", "7", "--tiny", "--student", "sim", "--predict", "row_thread_over_row_col=4",
                 "--out", str(tmp_path / "lab7")],
                ["lab", "8", "--tiny", "--student", "sim", "--predict", "swizzle_over_subwarp=1",
                 "--out", str(tmp_path / "lab8")]]
    (tmp_path / "commands.json").write_text(json.dumps(commands))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(here.parent), COLUMNS="160")
    proc = subprocess.run([sys.executable, str(here / "cli_gpu_driver.py"), str(tmp_path / "commands.json")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert "RC 0 0" in proc.stdout and "RC 1 0" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no GPU here" not in proc.stdout
    for lab_id, asked in ((7, "row_thread_over_row_col"), (8, "swizzle_over_subwarp")):
        rows = [json.loads(line) for line in (tmp_path / f"lab{lab_id}" / "rows.jsonl").read_text().splitlines()]
        assert len(rows) == len(catalog.get(lab_id).runs("tiny")) and all(r["status"] == "PASS" for r in rows), rows
        answers = {a["question"]: a for a in map(json.loads, (tmp_path / f"lab{lab_id}" / "answers.jsonl")
                                                  .read_text().splitlines())}
        a = answers[asked]
        assert a["measured"] is not None and a["graded_on"] == "measured" and a["verdict"] not in ("-", "")
        assert "(model)" not in a["verdict"] and a["machine"]


@pytest.mark.parametrize("args,match", [(["--runs", "0"], "--runs 0: give 1 to 20"),
                                        (["--labs", "7"], "the CPU labs are 1, 2, 3, 4, 5, 6"),
                                        (["--size", "huge"], "choose tiny or quick"),
                                        (["--nope"], "unknown argument '--nope'")])
def test_lab_stability_bad_input_is_one_line_and_exit_2(tmp_path, args, match):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "experiments" / "lab_stability.py"
    proc = subprocess.run([sys.executable, str(script), *args, "--out", str(tmp_path / "s")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and match in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()


def test_plot_axes_read_plainly_and_show_every_bar():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    common.log_axis(a, [0.004, 4, 400])
    fig.canvas.draw()
    labels = [t.get_text() for t in a.get_yticklabels() if t.get_text()]
    assert labels and not any("10^" in t or "times" in t or "$" in t for t in labels), labels
    assert a.get_ylim()[0] < 0.004 and a.get_ylim()[1] > 400  # every bar's top inside the axis
    common.log_axis(b, [9000, 20000])  # a narrow range: linear from zero
    assert b.get_yscale() == "linear" and b.get_ylim()[0] == 0
    assert common.plain(20000) == "20k" and common.plain(0.05) == "0.05"
    plt.close(fig)


def test_time_verdicts_wait_for_an_interval_that_decides():
    from types import SimpleNamespace

    from spmm_study.labs import settle
    from spmm_study.labs.common import Question

    assert settle.median_interval([5, 1, 4, 2, 3]) == (1, 5)  # 5 values: their range
    lo, hi = settle.median_interval(list(range(1, 31)))
    assert (lo, hi) == (10, 21)  # 30 values: the 10th to the 21st
    quiet = SimpleNamespace(load={"load_avg_1min": 0.1, "cores": 2})
    busy = SimpleNamespace(load={"load_avg_1min": 9.0, "cores": 2})
    assert settle.interval(quiet, [10.0] * 6) == pytest.approx((10 / 1.1, 11.0))
    assert settle.interval(busy, [10.0] * 6) == pytest.approx((10 / 1.25, 12.5))
    assert settle.interval(busy, [0.5] * 6, "absolute") == (0.5, 0.5)  # a sparsity: no relative widening
    q = Question("r", "ratio", tol=1.5)
    assert settle.decided(q, 3.0, 2.5, 3.5) and settle.decided(q, 30.0, 2.5, 3.5)  # right / high at both ends
    assert not settle.decided(q, 3.0, 1.5, 3.5)  # 1.5 is "low 2.0x", 3.5 "right": too noisy to call
    assert settle.decided(q, None, 1.0, 9.0)  # nothing predicted: nothing to decide
