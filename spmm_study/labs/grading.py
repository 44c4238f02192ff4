"""Grading: ``spmm-study report`` over a folder of students' lab results (issue 11, item 4).

Each lab run writes one result row per question (``device == "lab"``) whose ``info`` holds the student's
prediction beside the model's, the simulator's and the measured answer. This module turns a class's rows into
tables: per lab, every student's prediction, the measurement, the error and the verdict; and per question,
how many answered, how many were right, and the most common wrong answers (predictions rounded to two
significant digits). A student who ran a lab twice is graded on the latest run.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict

from spmm_study.errors import ResultsError


def is_lab_rows(rows: list[dict]) -> bool:
    """True when every row came from ``spmm-study lab`` (measurements and questions carry a ``lab=`` tag)."""
    from spmm_study.report import parse_tags

    return bool(rows) and any(r.get("device") == "lab" for r in rows) and all(
        "lab" in parse_tags(r.get("tags", "")) for r in rows)


def answers(rows: list[dict]) -> list[dict]:
    """The question rows, decoded, latest run per (lab, student, question)."""
    latest: dict[tuple, dict] = {}
    for r in rows:
        if r.get("device") != "lab":
            continue
        try:
            info = json.loads(r.get("info") or "{}")
        except json.JSONDecodeError:
            raise ResultsError(f"lab row {r.get('variant')}: its info is not JSON") from None
        if not isinstance(info, dict) or "question" not in info or "lab" not in info:
            raise ResultsError(f"lab row {r.get('variant')}: its info lacks the question or the lab")
        key = (info["lab"], info.get("student", ""), info["question"])
        rec = {**info, "timestamp": r.get("timestamp", ""), "machine": r.get("machine", "")}
        if key not in latest or rec["timestamp"] >= latest[key]["timestamp"]:
            latest[key] = rec
    return sorted(latest.values(), key=lambda a: (a["lab"], a["question"], a.get("student", "")))


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def error_of(a: dict) -> float | None:
    pred, meas = _num(a.get("prediction")), _num(a.get("measured"))
    if pred is None or meas is None:
        return None
    if a.get("kind") == "ratio":
        return pred / meas if meas > 0 and pred > 0 else None
    return pred - meas


def rounded(x: float) -> str:
    return f"{x:.2g}"


def tables(rows: list[dict]) -> list:
    from spmm_study.report import Table

    recs = answers(rows)
    if not recs:
        raise ResultsError("these lab results hold no question rows (runs made with --no-predict still write them)")
    by_lab = defaultdict(list)
    for a in recs:
        by_lab[a["lab"]].append(a)
    out = []
    for lab, items in sorted(by_lab.items()):
        students = sorted({a.get("student", "") for a in items})
        t = Table(title=f"lab {lab}: predictions of {len(students)} student{'s' * (len(students) != 1)}",
                  columns=["student", "question", "prediction", "measured", "error", "verdict"],
                  formats={"prediction": "g3", "measured": "g3", "error": "g3"},
                  caption="error: prediction/measured for ratios, prediction - measured otherwise")
        for a in items:
            err = error_of(a)
            t.rows.append([a.get("student", ""), a["question"], _cell(a.get("prediction")), _cell(a.get("measured")),
                           _cell(err), a.get("verdict") or "-"])
        out.append(t)
        s = Table(title=f"lab {lab}: by question", columns=["question", "answered", "right", "measured",
                                                            "median error", "most common wrong answers"],
                  formats={"measured": "g3", "median error": "g3"},
                  caption="measured: the median over the students' runs; wrong answers rounded to 2 digits (count)")
        for q in sorted({a["question"] for a in items}):
            qa = [a for a in items if a["question"] == q]
            given = [a for a in qa if _num(a.get("prediction")) is not None]
            right = [a for a in given if a.get("verdict") == "right"]  # judged against a measurement
            wrong = Counter(rounded(a["prediction"]) for a in given
                            if _num(a.get("measured")) is not None and a.get("verdict") not in ("right", "-", None))
            meas = sorted(m for m in (_num(a.get("measured")) for a in qa) if m is not None)
            errs = sorted(e for e in (error_of(a) for a in given) if e is not None)
            s.rows.append([q, len(given), len(right), _median(meas), _median(errs),
                           ", ".join(f"{v} (x{c})" for v, c in wrong.most_common(3)) or "-"])
        out.append(s)
    return out


def _median(xs: list[float]):
    if not xs:
        return "-"
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _cell(x):
    v = _num(x)
    return v if v is not None else "-"
