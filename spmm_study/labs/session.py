"""One lab session, as ``spmm-study lab ID`` runs it: question and model → predictions → measure → tables →
explanation → result files and plots. The CLI parses options and calls ``run``; everything else is here."""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spmm_study.errors import ParamError
from spmm_study.labs import answers, catalog, common, settle


def listing() -> list[dict]:
    return [{"id": lab.id, "title": lab.title, "device": lab.device, "quick_minutes": lab.quick_minutes,
             "questions": [q.key for q in lab.questions]} for lab in catalog.all_labs()]


def list_table() -> Table:
    t = Table(header_style="bold", box=box.SIMPLE_HEAD)
    for col, just in (("id", "right"), ("title", "left"), ("device", "left"), ("quick", "right"), ("questions", "left")):
        t.add_column(col, justify=just, overflow="fold")
    for it in listing():
        t.add_row(str(it["id"]), it["title"], it["device"], f"{it['quick_minutes']:g} min", str(len(it["questions"])))
    return t


def student_name(given: str | None) -> str:
    name = given if given is not None else (os.environ.get("SPMM_STUDY_STUDENT") or _user())
    name = name.strip()
    if not name or not re.fullmatch(r"[\w.@+-]{1,64}", name):
        raise ParamError(f"--student {given!r}: use 1-64 letters, digits or . _ @ + -")
    return name


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "student"


def gather_predictions(lab, predict: list[str] | None, predictions: Path | None, no_predict: bool,
                       interactive: bool, ask: Callable[[str], str] | None = None) -> dict[str, float]:
    """``--predict``/``--predictions`` (both may be given: --predict wins), else a prompt on a terminal."""
    if no_predict and (predict or predictions):
        raise ParamError("--no-predict cannot be combined with --predict or --predictions")
    preds = {}
    if predictions is not None:
        preds.update(common.read_predictions(lab, predictions))
    preds.update(common.parse_predict(lab, predict))
    if preds or no_predict or not interactive:
        return preds
    ask = ask or input
    for q in lab.questions:
        while True:
            try:
                text = ask(f"predict {q.key} — {q.text}{' [' + q.unit + ']' if q.unit and q.unit != 'x' else ''} "
                           "(Enter to skip): ").strip()
            except EOFError:
                return preds
            if not text:
                break
            try:
                preds[q.key] = common.parse_number(q.key, text, "prediction")
                break
            except ParamError as exc:
                print(f"  {exc}; try again", file=sys.stderr)
    return preds


def runs_table(out: common.Outcome) -> Table:
    t = Table(title=f"lab {out.lab.id}: runs", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    cols = common.RUN_COLUMNS if out.sims else [c for c in common.RUN_COLUMNS if not c.startswith("sim")]
    for c in cols:
        t.add_column(c, justify="left" if c == "run" else "right", no_wrap=True)
    for row in common.run_rows(out):
        if not out.sims:
            row = [row[0], row[1], row[5], row[6]]
        t.add_row(*map(escape, row))
    return t


def questions_table(out: common.Outcome, qrows: list[dict]) -> Table:
    t = Table(title=f"lab {out.lab.id}: your predictions", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    cols = common.QUESTION_COLUMNS if out.sims else [c for c in common.QUESTION_COLUMNS if c != "sim"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("question", "verdict") else "right",
                     no_wrap=c not in ("question", "verdict", "measured [90%]"), overflow="fold")
    for row in common.question_table_rows(qrows):
        if not out.sims:
            row = row[:3] + row[4:]
        style = "green" if row[-1] == "right" else ("" if row[-1] == "-" else "yellow")
        t.add_row(*map(escape, row[:-1]), f"[{style}]{escape(row[-1])}[/]" if style else escape(row[-1]))
    return t


def run(lab_id: str, size: str, predict: list[str] | None, predictions: Path | None, no_predict: bool,
        student: str | None, out_dir: Path | None, force: bool, console: Console, err: Console,
        interactive: bool | None = None, save: bool = True) -> dict:
    """Run one lab end to end; returns a summary (result folder, files, rows) for the caller and tests."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from spmm_study.environment import describe, machine_label
    from spmm_study.results import ResultWriter

    lab = catalog.get(lab_id)
    who = student_name(student)
    if interactive is None:
        interactive = sys.stdin.isatty()
    # every input error before any work: predictions, student, result folder
    preds_early = None
    if not interactive or predict or predictions or no_predict:
        preds_early = gather_predictions(lab, predict, predictions, no_predict, False)
    directory = common.check_out_dir(out_dir, lab, force) if save else None
    t_start = time.perf_counter()

    console.rule(f"lab {lab.id}: {lab.title} ({size})")
    reason = common.gpu_reason(lab)
    out = common.prepare(lab, size)
    out.measured_here = reason is None
    console.print(escape(_question_line(lab)), highlight=False)
    for line in lab.intro(out):
        console.print(escape(line), highlight=False, soft_wrap=False)
    if reason:
        console.print(f"[yellow]no GPU here ({escape(reason)}): running the models and predictions only[/]",
                      highlight=False)

    preds = preds_early if preds_early is not None else gather_predictions(lab, predict, predictions, no_predict,
                                                                            interactive)
    if preds:
        console.print("[dim]predictions: " + escape(" ".join(f"{k}={v:g}" for k, v in preds.items())) + "[/]")

    tags = f"lab={lab.id};student={who};size={size}"
    steps = (len(out.runs) if reason is None else 0) + sum(1 for r in out.runs if r.sim and lab.device == "cpu")
    from rich.table import Column

    fixed = Column(no_wrap=True)  # on a narrow terminal the step's text gives way, never the count
    with Progress(TextColumn("[bold]{task.description}", table_column=fixed), BarColumn(bar_width=16),
                  MofNCompleteColumn(table_column=fixed), TimeElapsedColumn(table_column=fixed),
                  TextColumn("{task.fields[now]}", table_column=Column(no_wrap=True, overflow="ellipsis",
                                                                       max_width=max(err.width - 44, 8))),
                  console=err, transient=True) as progress:
        bar = progress.add_task(f"lab {lab.id}", total=max(1, steps), now="")

        def step(text: str) -> None:
            if text:
                progress.update(bar, now=text)
            else:
                progress.advance(bar)

        if reason is None:
            out.load = settle.machine_load()  # before measuring: our own load is not counted
            common.measure_runs(out, step, tags)
        if lab.device == "cpu":
            def sim_step(text: str) -> None:
                progress.update(bar, now=text, advance=1)

            common.simulate_runs(out, sim_step)
        lab.after_measure(out)
        if reason is None:
            settle.settle(out, preds, lambda text: progress.update(bar, now=text))
    qrows = common.question_rows(out, preds)
    busy = settle.busy_reasons(out.load, out.results) if reason is None else None

    console.print(runs_table(out))
    if busy:
        console.print(f"[yellow]{escape(settle.busy_warning(busy))}[/]", highlight=False)
    elif reason is None and out.load:
        console.print(f"[dim]load average {out.load['load_avg_1min']:g} on {out.load['cores']} cores before "
                      "measuring; spread of the runs' repeats under 30%[/]", highlight=False)
    console.print(questions_table(out, qrows))
    for note in out.notes:
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
    console.print("[bold]What happened[/]")
    for line in lab.explain(out):
        console.print("  " + escape(line), highlight=False)

    summary = {"lab": lab.id, "student": who, "size": size, "questions": qrows, "seconds": None, "dir": None, "files": []}
    if directory is not None:
        meta = {"experiment": f"lab{lab.id}", "lab": lab.id, "title": lab.title, "student": who, "size": size,
                "predictions": preds, "notes": out.notes, **describe()}
        writer = ResultWriter(directory, meta=meta, force=force)
        for r in out.runs:
            res = out.results.get(r.key)
            if res is not None:
                sim = out.sims.get(r.key)
                if sim is not None:
                    info = json.loads(res.info or "{}")
                    info["sim"] = sim.as_dict()
                    res.info = json.dumps(info, default=str)
                writer.append(res)
        machine = machine_label(lab.device) if reason is None else f"{machine_label('cpu')} (no GPU)"
        files = [answers.write(writer.dir, answers.records(out, qrows, who, machine, busy))]
        if (writer.dir / "rows.jsonl").exists():
            files.insert(0, writer.dir / "rows.jsonl")
        try:
            files += lab.plot(out, writer.dir)
        except Exception as exc:  # noqa: BLE001 - a plot must not lose the measurements written above
            console.print(f"[yellow]plot not written: {escape(str(exc))}[/]")
        summary["dir"], summary["files"] = str(writer.dir), [str(f) for f in files]
        console.print(f"[dim]results and plots: {escape(str(writer.dir))}[/]", highlight=False)
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    console.print(f"[dim]lab {lab.id} took {summary['seconds']:.1f} s on {escape(machine_label('cpu'))}[/]",
                  highlight=False)
    return summary


def _question_line(lab) -> str:
    doc = (sys.modules[type(lab).__module__].__doc__ or "").strip()
    return doc.split("\n\n")[0].replace("\n", " ") if doc else f"Lab {lab.id}: {lab.title}"
