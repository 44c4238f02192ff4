"""A question's answer row: its own kind of row, in its own file (``answers.jsonl`` beside a lab's rows.jsonl).

A timing row (``results.Result``) says how long a variant took; an answer row says what a student predicted
for one question of one lab, and what the model, the cache simulator and the measurement answered. The two
never share a file: ``report`` reads timing rows from rows.jsonl/results.csv and answer rows from
answers.jsonl, and grading (``grading.py``) needs nothing else.

One JSON object per line, every field always present (``None`` where there is no value):

=================  =================================================================================
schema             ``spmm-study.lab-answer/1``
lab, title         the lab's id and title
student, size      ``--student`` and tiny/quick/full
question, text     the question's key and text; ``unit`` and ``kind`` (ratio, exact, absolute), ``tol``
prediction         the student's number (None: not answered)
model, sim         the movement model's and the cache simulator's answer
measured           the measured answer (for a time question: at the median times of the re-timed rounds)
measured_lo/_hi    the 90% interval of that median, at least ±10% (±25% busy); None if not re-timed
rounds             how many rounds were timed (0: not re-timed)
graded_on          measured (time), count (deterministic, of the actual problem), model or sim
verdict            right, high/low (by how much), ``too noisy to call here``, or ``-`` (nothing to grade)
load_avg_1min      the machine's load before measuring; ``cores``; ``busy``: the warning, or None
machine, timestamp where and when (ISO seconds)
=================  =================================================================================
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Iterable

from spmm_study.errors import ResultsError

SCHEMA = "spmm-study.lab-answer/1"
FILE = "answers.jsonl"
MAX_FILE_BYTES = 8 << 20  # a lab writes a few kB; a file past this is not one spmm-study wrote
NUMBERS = ("prediction", "model", "sim", "measured", "measured_lo", "measured_hi", "tol", "load_avg_1min")
STRINGS = ("title", "student", "size", "question", "text", "unit", "kind", "graded_on", "verdict", "machine",
           "timestamp")
FIELDS = ("schema", "lab", "title", "student", "size", "question", "text", "unit", "kind", "tol", "prediction",
          "model", "sim", "measured", "measured_lo", "measured_hi", "rounds", "graded_on", "verdict",
          "load_avg_1min", "cores", "busy", "machine", "timestamp")


def records(out, qrows: list[dict], student: str, machine: str, busy: str | None) -> list[dict]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    recs = []
    for q in qrows:
        rec = {"schema": SCHEMA, "lab": out.lab.id, "title": out.lab.title, "student": student, "size": out.size,
               "question": q["key"], "text": q["text"], "unit": q["unit"], "kind": q["kind"], "tol": q["tol"],
               "prediction": q["prediction"], "model": q["model"], "sim": q["sim"], "measured": q["measured"],
               "measured_lo": q["measured_lo"], "measured_hi": q["measured_hi"], "rounds": q["rounds"],
               "graded_on": q["graded_on"], "verdict": q["verdict"],
               "load_avg_1min": out.load.get("load_avg_1min"), "cores": out.load.get("cores"), "busy": busy,
               "machine": machine, "timestamp": stamp}
        recs.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()})
    return recs


def write(directory: Path, recs: list[dict]) -> Path:
    from spmm_study.files import atomic_write_text

    path = Path(directory) / FILE
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=False) + "\n" for r in recs))
    return path


def check(rec) -> str | None:
    """What is wrong with a record read back, or None."""
    if not isinstance(rec, dict):
        return "is not a JSON object"
    if rec.get("schema") != SCHEMA:
        return f"has schema {rec.get('schema')!r}, not {SCHEMA}"
    missing = [f for f in FIELDS if f not in rec]
    if missing:
        return f"lacks {', '.join(missing)}"
    if isinstance(rec["lab"], bool) or not isinstance(rec["lab"], int) or rec["lab"] < 1:
        return f"has lab={rec['lab']!r}"
    for f in NUMBERS:
        v = rec[f]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            return f"has {f}={v!r}, not a finite number"
    for f in STRINGS:
        if not isinstance(rec[f], str):
            return f"has {f}={rec[f]!r}, not a string"
    if not re.fullmatch(r"[\w.@+-]{1,64}", rec["student"]):
        return f"has student={rec['student']!r}"
    return None


def find(paths: Iterable[Path | str]) -> list[Path]:
    """Every answers.jsonl at or under the given paths (a file named directly counts too)."""
    found = []
    for p in map(Path, paths):
        if p.is_file() and p.name == FILE:
            found.append(p)
        elif p.is_dir():
            found += sorted(p.rglob(FILE))
    return found


def read(paths: Iterable[Path | str], skipped: list[str] | None = None) -> list[dict]:
    """The answer records of every answers.jsonl found; a bad line is left out and described in ``skipped``
    (without a list, the first is a ResultsError)."""
    from spmm_study.errors import SpmmError
    from spmm_study.safeio import read_text

    recs, bad = [], []
    for f in find(paths):
        try:
            text = read_text(f, MAX_FILE_BYTES, what="answers file")
        except SpmmError as exc:
            bad.append(f"{f}: {exc}")
            continue
        for no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, RecursionError):  # a line nested thousands deep is a bad line too
                bad.append(f"{f}:{no} is not a JSON line")
                continue
            why = check(rec)
            if why:
                bad.append(f"{f}:{no} {why}")
                continue
            recs.append(rec)
    if bad and skipped is None:
        raise ResultsError(f"{len(bad)} unreadable answer row{'s' * (len(bad) != 1)} (first: {bad[0]})")
    if skipped is not None:
        skipped += bad
    return recs
