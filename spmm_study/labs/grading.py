"""Grading: ``spmm-study report`` over a folder of students' lab runs (``lab N --student NAME``).

Each lab run writes its answer rows to ``answers.jsonl`` (``answers.py``): per question, the student's
prediction beside the model's, the simulator's and the measured answer, what the verdict was graded on and
the verdict. This module turns a class's answer rows into

* per lab, one line per student × question: prediction, model, simulated, measured, verdict;
* per lab and question: how many answered, how many were right, the measurement (median over the students'
  runs) and the most common wrong answers (predictions rounded to two significant digits, with counts);
* ``grades.csv`` (every answer row, the columns above and more) and ``class_predictions.png`` (per question,
  each student's prediction against the measurement, the model and the band a prediction had to fall in).

A student who ran a lab twice is graded on the latest run.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from pathlib import Path

from spmm_study.errors import ResultsError
from spmm_study.labs import answers as ans

CSV_COLUMNS = ("lab", "student", "question", "unit", "kind", "prediction", "model", "sim", "measured", "measured_lo",
               "measured_hi", "rounds", "graded_on", "verdict", "size", "load_avg_1min", "busy", "machine", "timestamp")


def latest(recs: list[dict]) -> list[dict]:
    """One record per (lab, student, question): the latest run's."""
    keep: dict[tuple, dict] = {}
    for r in recs:
        key = (r["lab"], r["student"], r["question"])
        if key not in keep or r["timestamp"] >= keep[key]["timestamp"]:
            keep[key] = r
    return sorted(keep.values(), key=lambda a: (a["lab"], a["student"], a["question"]))


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def rounded(x: float) -> str:
    return f"{x:.2g}"


def is_wrong(a: dict) -> bool:
    return _num(a.get("prediction")) is not None and a["verdict"] not in ("right", "-", ans_too_noisy()) \
        and not a["verdict"].startswith("right")


def ans_too_noisy() -> str:
    from spmm_study.labs.settle import TOO_NOISY

    return TOO_NOISY


def _cell(x):
    v = _num(x)
    return v if v is not None else "-"


def _median(xs: list[float]):
    if not xs:
        return "-"
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def tables(recs: list[dict]) -> list:
    from spmm_study.table import Table

    recs = latest(recs)
    if not recs:
        raise ResultsError("no answer rows (answers.jsonl) to grade")
    by_lab = defaultdict(list)
    for a in recs:
        by_lab[a["lab"]].append(a)
    out = []
    for lab, items in sorted(by_lab.items()):
        students = sorted({a["student"] for a in items})
        t = Table(title=f"lab {lab}: {len(students)} student{'s' * (len(students) != 1)} × question",
                  columns=["student", "question", "you", "model", "sim", "measured", "verdict"],
                  formats={c: "g3" for c in ("you", "model", "sim", "measured")},
                  caption="you: the prediction; sim: the cache simulator's answer; measured: for a question on time "
                          "the answer at the median times of interleaved rounds, else a count of the actual problem")
        for a in items:
            t.rows.append([a["student"], a["question"], _cell(a["prediction"]), _cell(a["model"]), _cell(a["sim"]),
                           _cell(a["measured"]), a["verdict"]])
        out.append(t)
        s = Table(title=f"lab {lab}: by question", columns=["question", "answered", "right", "measured",
                                                            "most common wrong answers"],
                  formats={"measured": "g3"},
                  caption="measured: the median over the students' runs; wrong answers rounded to 2 digits (count)")
        for q in sorted({a["question"] for a in items}):
            qa = [a for a in items if a["question"] == q]
            given = [a for a in qa if _num(a["prediction"]) is not None]
            right = [a for a in given if a["verdict"] == "right"]
            wrong = Counter(rounded(a["prediction"]) for a in given if is_wrong(a))
            meas = [m for m in (_num(a["measured"]) for a in qa) if m is not None]
            s.rows.append([q, len(given), len(right), _median(meas),
                           ", ".join(f"{v} (x{c})" for v, c in wrong.most_common(3)) or "-"])
        out.append(s)
    return out


def to_csv(recs: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for a in latest(recs):
        w.writerow(["" if a.get(c) is None else a.get(c) for c in CSV_COLUMNS])
    return buf.getvalue()


def plot(recs: list[dict], path: Path) -> Path:
    """Per question, the class's predictions (one dot per student) against the measurement (solid line, its
    interval shaded when re-timed), the model (dashed) and the band of a right answer (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    recs = latest(recs)
    qs = sorted({(a["lab"], a["question"]) for a in recs})
    cols = min(3, len(qs))
    rows = math.ceil(len(qs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (lab, q) in zip(axes.flat, qs):
        qa = [a for a in recs if a["lab"] == lab and a["question"] == q]
        students = sorted({a["student"] for a in qa})
        xs = {s: i for i, s in enumerate(students)}
        meas = [m for m in (_num(a["measured"]) for a in qa) if m is not None]
        model = next((_num(a["model"]) for a in qa if _num(a["model"]) is not None), None)
        kind, tol = qa[0]["kind"], _num(qa[0]["tol"]) or 0
        m = _median(meas) if meas else None
        vals = []
        for a in qa:
            p = _num(a["prediction"])
            if p is None:
                continue
            wrong = is_wrong(a)
            ax.plot([xs[a["student"]]], [p], "o", color="tab:red" if wrong else "tab:green", ms=7)
            vals.append(p)
        if m is not None:
            ax.axhline(m, color="tab:blue", lw=2)
            vals.append(m)
            if kind == "ratio" and tol > 1:
                lo, hi = m / tol, m * tol
            else:
                lo, hi = m - tol, m + tol
            ax.axhspan(lo, hi, color="tab:blue", alpha=0.1)
        if model is not None:
            ax.axhline(model, color="tab:gray", ls="--")
            vals.append(model)
        ax.set_xticks(range(len(students)), students, rotation=30, fontsize=8)
        ax.set_xlim(-0.5, len(students) - 0.5)
        ax.set_title(f"lab {lab}: {q}", fontsize=9)
        pos = [v for v in vals if v > 0]
        if kind == "ratio" and pos and len(pos) == len(vals) and max(pos) / min(pos) > 8:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        if vals:
            lo_v, hi_v = min(vals), max(vals)
            pad = (hi_v - lo_v) * 0.15 or abs(hi_v) * 0.2 or 1
            if ax.get_yscale() == "log":
                ax.set_ylim(lo_v / 1.5, hi_v * 1.5)
            else:
                ax.set_ylim(lo_v - pad, hi_v + pad)
    for ax in list(axes.flat)[len(qs):]:
        ax.axis("off")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], marker="o", ls="", color="tab:green", label="prediction: right"),
               Line2D([], [], marker="o", ls="", color="tab:red", label="prediction: wrong"),
               Line2D([], [], color="tab:blue", lw=2, label="measured (median over students)"),
               Patch(color="tab:blue", alpha=0.1, label="band of a right answer"),
               Line2D([], [], color="tab:gray", ls="--", label="model")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("the class's predictions against the measurement", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    from spmm_study.files import atomic_save

    try:  # renamed into place, never through a link
        atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return path


def write_files(recs: list[dict], folder: Path) -> list[Path]:
    from spmm_study.files import atomic_write_text

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"{folder} exists and is not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "grades.csv"
    atomic_write_text(csv_path, to_csv(recs))
    return [csv_path, plot(recs, folder / "class_predictions.png")]


def load(paths, skipped: list[str]) -> list[dict]:
    return ans.read(paths, skipped)


def report(paths, kind: str, folder: Path | None, skipped: list[str]):
    """What ``report`` shows for lab answers: (notes, tables, files written), or None when ``kind`` is auto and
    the paths hold no answer rows (they are then ordinary result files). ``--kind class`` writes grades.csv and
    class_predictions.png into ``folder`` (``--plots``; default results/grading/<timestamp>)."""
    from spmm_study.results import default_dir

    for p in map(Path, paths):
        if not p.exists():
            raise ResultsError(f"no such result file: {p}")
    bad: list[str] = []
    recs = ans.read(paths, bad)
    if not recs and kind == "auto":
        return None
    if not recs:
        raise ResultsError(f"no lab answer rows ({ans.FILE}) under {', '.join(map(str, paths))}"
                           + (f" ({len(bad)} unreadable; first: {bad[0]})" if bad else "")
                           + ": run 'spmm-study lab ID --student NAME' first")
    skipped += bad
    notes = [f"warning: skipped {len(bad)} unreadable answer row{'s' * (len(bad) != 1)} ({bad[0]}"
             f"{'; ...' if len(bad) > 1 else ''})"] if bad else []
    busy = sorted({a["busy"] for a in latest(recs) if a.get("busy")})
    if busy:
        notes.append(f"warning: {len(busy)} of these lab runs measured on a busy machine (first: {busy[0]})")
    files = []
    if kind == "class" or folder is not None:
        files = write_files(recs, folder or default_dir("grading"))
    return notes, tables(recs), files
