"""The lab runner shared by every lab: question → model → predictions → measure → side by side → explain → files.

A lab (one module per lab in this package) is a ``Lab``: its runs (variant, matrix, N, params), its
questions (each answered three ways: by the movement model, by the cache simulator, by the measurement),
its explanation (sentences chosen by what was measured) and its plot. ``session.run`` does the rest:

1. the question and what runs (sizes; for most labs the model's bytes per run) are printed first, never the
   value of a quantity the lab is about to ask for (tests/test_labs.py checks every lab);
2. predictions come from the caller (the CLI prompts on a terminal, or reads ``--predict``/``--predictions``);
3. each run is measured by the harness (checked against float64, poisoned, timed) behind a progress bar;
4. each CPU run with a trace (``Lab.trace``, ``cpu/traces.py``) is replayed through the cache simulator
   configured from this machine's caches; in quick mode the simulated problem is the measured one;
5. the runs a question on time reads are re-timed in interleaved rounds until its verdict is decided or
   the time bound says "too noisy to call here" (``settle.py``); counts are graded on the count;
6. a table of runs (model bytes, simulated bytes per level, time ± spread) and a table of questions
   (prediction, model, simulation, measurement with its interval, what it was graded on, prediction ÷ answer,
   verdict), a load warning when the machine was busy, and the explanation;
7. the measurements go to the lab's result folder (rows.jsonl) with the plot, and one answer row per question
   (the prediction beside the answers: ``answers.py``) to answers.jsonl; ``report`` over a folder of such
   folders grades a class (``grading.py``).

Sizes: ``tiny`` (tests: meaningless numbers, seconds), ``quick`` (class: each lab under a minute on the
2-core VM), ``full`` (real numbers).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from spmm_study.errors import ParamError, ResultsError, SpmmError

SIZES = ("tiny", "quick", "full")
SIM_BUDGET = 12_000_000  # accesses: about 1-3 s of simulation on the 2-core VM


@dataclass
class Run:
    key: str  # short label shown in tables ("ijk")
    variant: str
    matrix: str  # label of a matrix the lab built (``Lab.matrices``)
    n: int
    params: dict = field(default_factory=dict)
    threads: int | None = 1
    sim: bool = True  # replay its trace through the simulator (when it has one)


@dataclass
class Question:
    key: str
    text: str
    unit: str = "x"
    kind: str = "ratio"  # ratio: right within a factor tol; exact: equal; absolute: |pred - answer| <= tol
    tol: float = 1.5
    answer: Callable[["Outcome", str], float | None] | None = None  # (outcome, "model"|"sim"|"measured")
    # what the verdict is graded on: "time" (the measured answer, re-timed until its interval decides: settle.py),
    # "count" (a deterministic count of the actual problem, in the measured column), "model" or "sim"
    basis: str = "time"
    # the range the measurement covers (lab 3's sweep of sparsities): an answer at its end means "at or beyond
    # it", and a prediction beyond that end is right
    measured_range: Callable[["Outcome"], tuple[float, float]] | None = None

    def judge(self, out: "Outcome | None", pred: float | None, truth: float | None) -> tuple[str, float]:
        """``verdict``, except where the answer sits at an end of the measured range (one-sided there)."""
        if self.measured_range is not None and out is not None and pred is not None and truth is not None:
            lo, hi = self.measured_range(out)
            if truth <= lo + 1e-9:
                return ("right" if pred <= lo + self.tol else "high", pred - truth)
            if truth >= hi - 1e-9:
                return ("right" if pred >= hi - self.tol else "low", pred - truth)
        return self.verdict(pred, truth)

    def verdict(self, pred: float | None, truth: float | None) -> tuple[str, float]:
        """(verdict, error): error is pred/truth for ratios, pred - truth otherwise."""
        if pred is None or truth is None or not _finite(truth):
            return ("-", float("nan"))
        if self.kind == "ratio":
            if pred <= 0 or truth <= 0:
                return ("off", float("nan"))
            err = pred / truth
            f = max(err, 1 / err)
            if f <= self.tol:
                return ("right", err)
            return (f"{'high' if err > 1 else 'low'} {f:.1f}x", err)
        err = pred - truth
        if self.kind == "exact":
            return ("right" if round(pred) == round(truth) else ("high" if err > 0 else "low"), err)
        return ("right" if abs(err) <= self.tol else ("high" if err > 0 else "low"), err)


@dataclass
class Outcome:
    """Everything a lab's answers, explanation and plot may read."""

    lab: "Lab"
    size: str
    runs: list[Run]
    matrices: dict
    shapes: dict = field(default_factory=dict)  # run key -> Shape (measured problem)
    models: dict = field(default_factory=dict)  # run key -> movement.Bytes at the measured size
    results: dict = field(default_factory=dict)  # run key -> Result (None when not measured)
    sims: dict = field(default_factory=dict)  # run key -> SimStats at the simulated size
    sim_shapes: dict = field(default_factory=dict)
    sim_models: dict = field(default_factory=dict)  # model bytes at the simulated size
    notes: list[str] = field(default_factory=list)
    measured_here: bool = True
    levels: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    rounds: dict = field(default_factory=dict)  # question key -> its measured answer per re-timed round (settle.py)
    load: dict = field(default_factory=dict)  # load average and cores before measuring
    retimed: dict = field(default_factory=dict)  # run key -> (median, p20, p80) over the re-timed rounds (settle.py)
    _times: dict | None = None  # run key -> time of one re-timed round, read instead of the median (settle.py)
    _seen: set | None = None  # records which runs' times an answer reads (settle.py)

    def time(self, key: str) -> float | None:
        if self._seen is not None:
            self._seen.add(key)
        if self._times is not None and key in self._times:
            return self._times[key]
        if key in self.retimed:  # one set of numbers for tables, explanations and plots: the rounds' median
            return self.retimed[key][0]
        r = self.results.get(key)
        return r.median_s if r is not None and r.status == "PASS" and _finite(r.median_s) else None

    def spread(self, key: str) -> tuple[float | None, float | None]:
        """(p20, p80) of the run's time: over the re-timed rounds where there were rounds."""
        if key in self.retimed:
            return self.retimed[key][1:]
        r = self.results.get(key)
        return (r.p20_s, r.p80_s) if r is not None and r.status == "PASS" else (None, None)

    def ratio_time(self, a: str, b: str) -> float | None:
        ta, tb = self.time(a), self.time(b)
        return ta / tb if ta and tb else None

    def model_total(self, key: str) -> float | None:
        m = self.models.get(key)
        return m.total if m is not None else None

    def ratio_model(self, a: str, b: str) -> float | None:
        ma, mb = self.model_total(a), self.model_total(b)
        return ma / mb if ma and mb else None

    def sim_traffic(self, key: str, level: int = 0) -> float | None:
        s = self.sims.get(key)
        return float(s.traffic(level)) if s is not None else None

    def ratio_sim(self, a: str, b: str, level: int = 0) -> float | None:
        sa, sb = self.sim_traffic(a, level), self.sim_traffic(b, level)
        return sa / sb if sa and sb else None

    def ratio(self, source: str, a: str, b: str, level: int = 0) -> float | None:
        """t(a)/t(b) measured, bytes(a)/bytes(b) modelled, or simulated traffic below level ``level``."""
        if source == "measured":
            return self.ratio_time(a, b)
        if source == "model":
            return self.ratio_model(a, b)
        return self.ratio_sim(a, b, level)


class Lab:
    """Base class: a lab overrides the attributes and the methods it needs."""

    id: int = 0
    title: str = ""
    device: str = "cpu"
    quick_minutes: float = 1.0
    questions: list[Question] = []
    sim_level_name: str = "L1"  # which boundary the question's "sim" answers use

    @property
    def handout_name(self) -> str:
        return f"lab{self.id}.md"

    def matrices(self, size: str) -> dict:
        """label -> CSR used by the runs at this size."""
        raise NotImplementedError

    def runs(self, size: str) -> list[Run]:
        raise NotImplementedError

    def sim_matrices(self, size: str) -> dict | None:
        """label -> (CSR, N) simulated instead of the measured problem (None: simulate the measured one)."""
        return None

    def intro(self, out: Outcome) -> list[str]:
        return []

    def explain(self, out: Outcome) -> list[str]:
        return []

    def plot(self, out: Outcome, folder: Path) -> list[Path]:
        return [plot_runs(out, folder)]

    def after_measure(self, out: Outcome) -> None:
        """Hook for labs that derive extra facts (ceilings, per-thread work) once measurements exist."""

    # How a run's matrix becomes a problem, a shape and a trace: A·B with a seeded B by default; a lab on
    # another kind of problem (lab 9's convolutions) overrides the three together.
    def problem(self, label: str, a, n: int):
        from spmm_study.problem import Problem

        return Problem.make(a, n, "float32", 0, matrix=label)

    def shape(self, label: str, a, n: int):
        return shape_of(a, n)

    def trace(self, label: str, variant_id: str, a, n: int, params: dict):
        from spmm_study.cpu import traces

        return traces.for_variant(variant_id, a, n, params, 4) if variant_id in traces.TRACED else None


# ------------------------------------------------------------------------------------------- predictions


MAX_PREDICTIONS_BYTES = 64 * 1024


def parse_number(key: str, text: str, where: str) -> float:
    try:
        val = float(str(text).strip().rstrip("x%"))
    except ValueError:
        raise ParamError(f"{where}: prediction {key}={text!r} is not a number") from None
    if not math.isfinite(val):
        raise ParamError(f"{where}: prediction {key}={text!r} is not a finite number")
    return val


def check_keys(lab: Lab, preds: dict[str, Any], where: str) -> None:
    known = [q.key for q in lab.questions]
    unknown = sorted(set(preds) - set(known))
    if unknown:
        raise ParamError(f"{where}: lab {lab.id} has no question {', '.join(unknown)} (its questions: {', '.join(known)})")


def parse_predict(lab: Lab, items: list[str] | None) -> dict[str, float]:
    """``--predict KEY=VALUE`` items."""
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ParamError(f"--predict {item!r} must look like KEY=VALUE")
        out[key.strip()] = value
    check_keys(lab, out, "--predict")
    return {k: parse_number(k, v, "--predict") for k, v in out.items()}


def read_predictions(lab: Lab, path: Path) -> dict[str, float]:
    """A predictions file: ``KEY=VALUE`` lines (``#`` comments) or one JSON object."""
    path = Path(path)
    where = f"--predictions {path}"
    from spmm_study.limits import check_depth
    from spmm_study.safeio import read_bytes, decode_text

    if not path.exists():
        raise ParamError(f"{where}: no such file")
    if not path.is_file():
        raise ParamError(f"{where}: not a file")
    # regular, bounded (the size is checked on the open file), strict UTF-8
    data = read_bytes(path, limit=MAX_PREDICTIONS_BYTES, what="predictions file", error=ParamError)
    text = decode_text(data, where, "predictions file", ParamError)
    raw: dict[str, Any] = {}
    if text.lstrip().startswith("{"):
        check_depth(text, where)  # a JSON nested thousands deep: one line, not a RecursionError
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ParamError(f"{where}: not valid JSON ({getattr(exc, 'msg', 'nested too deep')} at line "
                             f"{getattr(exc, 'lineno', '?')})") from None
        if not isinstance(data, dict):
            raise ParamError(f"{where}: expected a JSON object of KEY: number")
        raw = {str(k): v for k, v in data.items()}
        bad = [k for k, v in raw.items() if isinstance(v, bool) or not isinstance(v, (int, float, str))]
        if bad:
            raise ParamError(f"{where}: prediction {bad[0]}={raw[bad[0]]!r} is not a number")
    else:
        for no, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                raise ParamError(f"{where}:{no}: {line!r} must look like KEY=VALUE")
            raw[key.strip()] = value
    check_keys(lab, raw, where)
    return {k: parse_number(k, v, where) for k, v in raw.items()}


# ---------------------------------------------------------------------------------------------- running


def timing_for(size: str):
    from spmm_study.timing import TimingConfig

    if size == "tiny":
        return TimingConfig(repeats=1, min_time_s=0.0, warmup_s=0.0, cache="warm")
    if size == "quick":
        return TimingConfig(repeats=3, min_time_s=0.05, warmup_s=0.02, cache="cold")
    return TimingConfig(repeats=10, min_time_s=0.3, warmup_s=0.1, cache="cold")


def gpu_reason(lab: Lab) -> str | None:
    if lab.device != "gpu":
        return None
    from spmm_study.gpu.device import gpu_unavailable_reason

    return gpu_unavailable_reason()


def shape_of(a, n: int, dtype=np.float32):
    from spmm_study.problem import Shape

    k_touched = int(np.unique(a.indices).size) if a.nnz else 0
    rows_nonempty = int(np.count_nonzero(np.diff(a.indptr)))
    return Shape(a.m, a.k, n, a.nnz, k_touched, rows_nonempty, np.dtype(dtype).itemsize, a.indices.itemsize)


def prepare(lab: Lab, size: str) -> Outcome:
    """The runs and the models (no measurement): enough for the intro and for GPU labs without a GPU."""
    from spmm_study import registry

    if size not in SIZES:
        raise ParamError(f"size {size!r}: choose one of {', '.join(SIZES)}")
    mats = lab.matrices(size)
    runs = [r for r in lab.runs(size) if r.matrix in mats]  # a lab drops runs on a matrix not here (DLMC)
    out = Outcome(lab=lab, size=size, runs=runs, matrices=mats)
    small = lab.device == "gpu" and size == "tiny" and _cudasim()
    for r in runs:
        v = registry.get(r.variant)
        if small:  # the rung's own small launch for the simulator (its defaults launch hundreds of threads)
            r.params = simulator_params(v, r.params)
        s = lab.shape(r.matrix, mats[r.matrix], r.n)
        out.shapes[r.key] = s
        out.models[r.key] = v.movement(s, v.resolve_params(r.params))
    return out


def _cudasim() -> bool:
    import os

    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def simulator_params(v, params: dict) -> dict:
    """The variant's simulator configuration (``sim=``) that agrees with ``params`` on the names they share
    (else its first), with ``params`` on top."""
    configs = [c[0] for c in v.sim] or [{}]
    match = next((c for c in configs if all(c.get(k, val) == val for k, val in params.items())), configs[0])
    return {**match, **params}


def simulate_runs(out: Outcome, on_step: Callable[[str], None] = lambda s: None) -> None:
    from spmm_study import cachesim, registry

    levels, source = cachesim.machine_levels()
    out.levels = levels
    sim_mats = out.lab.sim_matrices(out.size) or {}
    for r in out.runs:
        if not r.sim:
            continue
        a, n = sim_mats.get(r.matrix, (out.matrices[r.matrix], r.n))
        if r.matrix in sim_mats and n != r.n:
            n = sim_mats[r.matrix][1]
        v = registry.get(r.variant)
        params = v.resolve_params(r.params)
        on_step(f"simulating {r.key}")
        try:
            trace = out.lab.trace(r.matrix, r.variant, a, n, params)
        except SpmmError as exc:
            out.notes.append(f"{r.key}: not simulated ({exc})")
            continue
        if trace is None:
            continue
        out.sims[r.key] = cachesim.simulate(trace[0], trace[1], levels)
        s = out.lab.shape(r.matrix, a, n)
        out.sim_shapes[r.key] = s
        out.sim_models[r.key] = v.movement(s, params)
    if out.sims:
        out.notes.append(f"simulated caches ({source}): {cachesim.describe_levels(levels)}; LRU, no prefetcher")
        diff = [k for k in out.sims if out.sim_shapes[k] != out.shapes[k]]
        if diff:
            s = out.sim_shapes[diff[0]]
            out.notes.append(f"simulated at a smaller size than measured (e.g. {s.m}x{s.k}, N={s.n}): compare "
                             "ratios between runs, not bytes with the model")


def measure_runs(out: Outcome, on_step: Callable[[str], None] = lambda s: None, tags: str = "") -> None:
    from spmm_study import registry
    from spmm_study.environment import machine_label
    from spmm_study.harness import HarnessConfig, measure

    timing = timing_for(out.size)
    problems: dict = {}
    for r in out.runs:
        on_step(f"measuring {r.key} ({r.variant})")
        v = registry.get(r.variant)
        reason = v.unavailable_reason()
        if reason:
            out.results[r.key] = None
            out.notes.append(f"{r.key}: {v.id} unavailable here ({reason})")
            continue
        key = (r.matrix, r.n)
        if key not in problems:
            if len(problems) > 2:
                problems.pop(next(iter(problems)))
            problems[key] = out.lab.problem(r.matrix, out.matrices[r.matrix], r.n)
        cfg = HarnessConfig(timing=timing, threads=r.threads, machine=machine_label(v.device),
                            tags=";".join(t for t in (tags, f"run={r.key}") if t))
        res = measure(v, problems[key], dict(r.params), cfg)
        out.results[r.key] = res
        if res.status != "PASS":
            out.notes.append(f"{r.key}: {res.status} {res.message}")
        on_step("")


# -------------------------------------------------------------------------------------------- the tables


def fmt_bytes(x: float | None) -> str:
    """Compact (``279M``, no unit): the runs table has seven columns to fit in 80 (table.fmt_bytes is wider)."""
    if x is None or not _finite(x):
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def fmt_time(s: float | None) -> str:
    if s is None or not _finite(s):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g}{unit}"
    return f"{s / 1e-9:.3g}ns"


def fmt_val(x: float | None, unit: str = "") -> str:
    if x is None or not _finite(x):
        return "-"
    if unit == "%":
        return f"{x:.3g}%"
    return f"{x:.3g}"


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def run_rows(out: Outcome, ref: str | None = None) -> list[list[str]]:
    """run | model bytes | sim L1 | sim L2 | sim mem | time ± half its p20–p80 range | vs ref (strings)."""
    ref = ref or (out.runs[0].key if out.runs else None)
    rows = []
    for r in out.runs:
        sim = out.sims.get(r.key)
        lv = [fmt_bytes(sim.traffic(i)) if sim and i < len(sim.levels) else "-" for i in range(2)]
        mem = fmt_bytes(sim.memory_bytes) if sim else "-"
        t = out.time(r.key)
        rel = out.ratio_time(r.key, ref) if ref else None
        res = out.results.get(r.key)
        status = "" if res is None or res.status == "PASS" else res.status
        spread = ""
        p20, p80 = out.spread(r.key)
        if t and _finite(p20) and _finite(p80):
            spread = f" ±{(p80 - p20) / (2 * t):.0%}"  # half the p20-p80 range, of the median
        rows.append([r.key, fmt_bytes(out.model_total(r.key)), *lv, mem, status or (fmt_time(t) + spread),
                     f"{rel:.2f}" if rel else "-"])
    return rows


RUN_COLUMNS = ["run", "model B", "sim L1↔L2", "sim L2↔L3", "sim mem", "time ±p20–p80", "t/t(ref)"]
QUESTION_COLUMNS = ["question", "you", "model", "sim", "measured [90%]", "graded", "you÷ans (×)", "verdict"]


def question_rows(out: Outcome, preds: dict[str, float]) -> list[dict]:
    """One dict per question: the prediction, the three answers, what the verdict was graded on and the verdict.
    A time question re-timed in rounds (settle.py) shows the answer at the rounds' median times and the 90% interval of
    the rounds' answers, and
    is "too noisy to call here" when that interval spans two verdicts."""
    from spmm_study.labs import settle

    rows = []
    for q in out.lab.questions:
        ans = {src: _safe(q, out, src) for src in ("model", "sim", "measured")}
        pred = preds.get(q.key)
        lo = hi = None
        vals = out.rounds.get(q.key) or []
        if q.basis == "time" and vals and ans["measured"] is not None:
            # the answer at the rounds' median times (what the runs table and the explanation show), inside
            # the interval the rounds give
            lo, hi = settle.interval(out, vals, q.kind)
            lo, hi = min(lo, ans["measured"]), max(hi, ans["measured"])
        if not out.measured_here:  # nothing measured here (a GPU lab without a GPU): judged against the model
            graded_on = "model"
        else:
            graded_on = {"time": "measured", "count": "measured"}.get(q.basis, q.basis)
        truth = ans[graded_on]
        verdict, err = q.judge(out if graded_on == "measured" else None, pred, truth)
        if graded_on == "model" and not out.measured_here and verdict != "-":
            verdict = f"{verdict} (model)"
        if lo is not None and pred is not None and truth is not None and not settle.decided(q, pred, lo, hi, out):
            verdict = settle.TOO_NOISY
        rows.append({"key": q.key, "text": q.text, "unit": q.unit, "kind": q.kind, "tol": q.tol, "basis": q.basis,
                     "prediction": pred, **ans, "measured_lo": lo, "measured_hi": hi, "rounds": len(vals),
                     "graded_on": graded_on if q.basis != "count" else "count", "truth": truth,
                     "verdict": verdict, "error": err})
    return rows


def _safe(q: Question, out: Outcome, src: str) -> float | None:
    if q.answer is None:
        return None
    try:
        val = q.answer(out, src)
    except (KeyError, ZeroDivisionError, TypeError, ValueError):
        return None
    return float(val) if val is not None and _finite(val) else None


def fmt_interval(lo: float | None, hi: float | None) -> str:
    return f"[{lo:.3g}–{hi:.3g}]" if lo is not None and hi is not None else ""


def question_table_rows(qrows: list[dict]) -> list[list[str]]:
    """question | you | model | sim | measured [interval] | graded (time, count, model, sim) | you÷ans | verdict:
    one column kind, the ratio of the prediction to the answer the verdict was graded on."""
    rows = []
    for q in qrows:
        pred, truth = q["prediction"], q["truth"]
        rel = f"{pred / truth:.2f}" if pred is not None and truth and pred / truth > 0 else "-"
        meas = fmt_val(q["measured"], q["unit"])
        if q.get("measured_lo") is not None:
            meas += " " + fmt_interval(q["measured_lo"], q["measured_hi"])
        rows.append([q["key"], fmt_val(pred, q["unit"]), fmt_val(q["model"], q["unit"]), fmt_val(q["sim"], q["unit"]),
                     meas, {"measured": "time"}.get(q["graded_on"], q["graded_on"]), rel, q["verdict"]])
    return rows


# -------------------------------------------------------------------------------------------- explaining


def ranking_sentence(out: Outcome, keys: list[str], assumption: str, tie: float = 1.05) -> list[str]:
    """Compare the measured ranking of ``keys`` (fastest first) with the model's (fewest bytes first);
    when they contradict each other (a run faster although the model gives it clearly more bytes: more than
    ``tie`` times), name the model's assumption that failed, and say what the simulator thought."""
    keys = [k for k in keys if out.time(k) is not None and out.model_total(k) is not None]
    if len(keys) < 2:
        return []
    meas = sorted(keys, key=lambda k: out.time(k))
    model = sorted(keys, key=lambda k: out.model_total(k))
    clash = next(((a, b) for i, a in enumerate(meas) for b in meas[i + 1:]
                  if out.model_total(a) > tie * out.model_total(b)), None)
    if clash is None:
        return [f"Measured ranking (fastest first) {' < '.join(meas)} follows the model's bytes"
                + (" (runs with equal bytes aside)" if meas != model else "")
                + ": the loads the loop nest issues explain the order of the times here."]
    a, b = clash
    lines = [f"Measured ranking {' < '.join(meas)} differs from the model's {' < '.join(model)}.",
             f"{a} ran faster than {b} ({fmt_time(out.time(a))} vs {fmt_time(out.time(b))}) although the model gives "
             f"it {fmt_bytes(out.model_total(a))} bytes against {fmt_bytes(out.model_total(b))}: {assumption}"]
    sa, sb = out.sim_traffic(a), out.sim_traffic(b)
    if sa is not None and sb is not None:
        if max(sa, sb) <= 1.3 * min(sa, sb):
            lines.append(f"The simulator, which keeps what the caches keep, sees about the same traffic for both "
                         f"({fmt_bytes(sa)} vs {fmt_bytes(sb)} bytes between L1 and L2): the difference is not in the "
                         "caches but in the instructions (vectors, dependency chains).")
        elif sa < sb:
            lines.append(f"The simulator, which keeps what the caches keep, agrees with the measurement: "
                         f"{fmt_bytes(sa)} vs {fmt_bytes(sb)} bytes between L1 and L2.")
        else:
            lines.append(f"The simulator sides with the model ({fmt_bytes(sa)} vs {fmt_bytes(sb)} bytes between L1 "
                         "and L2): what it leaves out (prefetcher, vectors, out-of-order overlap) decided it.")
    return lines


# ------------------------------------------------------------------------------------------------ plots


def log_axis(ax, values, axis: str = "y") -> None:
    """A log axis that reads plainly (1, 2, 5, 10, 20 ... not 4×10^0) and shows every positive value: the
    limits reach past the smallest and the largest."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    vals = [v for v in values if v is not None and _finite(v) and v > 0]
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    target = ax.yaxis if axis == "y" else ax.xaxis
    if hi / lo < 20:  # a narrow range reads better on a linear axis from zero: every bar its true height
        getattr(ax, f"set_{axis}lim")(0, hi * 1.15)
        target.set_major_formatter(FuncFormatter(lambda v, _: plain(v)))
        return
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}lim")(lo / 1.6, hi * 1.6)
    subs = (1.0, 2.0, 5.0) if hi / lo < 1e4 else (1.0,)
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(FuncFormatter(lambda v, _: plain(v)))
    target.set_minor_formatter(NullFormatter())


def plain(v: float) -> str:
    """A tick label: 0.05, 2, 500, 20k, 3M."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


def plot_runs(out: Outcome, folder: Path) -> Path:
    """Measured time per run beside model bytes and simulated traffic (log scales, plain ticks, legends below
    the data; the simulated size named where it is not the measured one; a GPU lab without a GPU says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spmm_study.environment import machine_label

    keys = [r.key for r in out.runs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.6))
    x = np.arange(len(keys))
    times = [out.time(k) for k in keys]
    if any(times):
        unit, scale = ("ms", 1e3) if max(t for t in times if t) >= 1e-3 else ("µs", 1e6)
        ax1.bar(x, [t * scale if t else 0 for t in times], color="tab:blue")
        lo = [out.spread(k)[0] * scale if out.time(k) else 0 for k in keys]
        hi = [out.spread(k)[1] * scale if out.time(k) else 0 for k in keys]
        mid = [t * scale if t else 0 for t in times]
        ax1.errorbar(x, mid, yerr=[np.maximum(0, np.subtract(mid, lo)), np.maximum(0, np.subtract(hi, mid))],
                     fmt="none", ecolor="k", capsize=3, lw=1)
        log_axis(ax1, [v for v in lo + hi + mid if v])
        ax1.set_ylabel(f"median time ({unit}), whiskers p20–p80")
        ax1.set_title("measured")
        ax1.set_xticks(x, keys)
    else:
        ax1.set_xticks([])
        ax1.set_yticks([])
        why = "no GPU: models only" if not out.measured_here else "nothing measured"
        ax1.text(0.5, 0.5, why, ha="center", va="center", transform=ax1.transAxes, fontsize=13, color="tab:gray")
        ax1.set_title("measured")
    model = [out.model_total(k) for k in keys]
    w = 0.4 if out.sims else 0.6
    ax2.bar(x - (0.2 if out.sims else 0), [m or 0 for m in model], w, label="model bytes (measured size)",
            color="tab:gray")
    shown = list(model)
    if out.sims:
        sim = [out.sim_traffic(k) for k in keys]
        shown += sim
        s = next(iter(out.sim_shapes.values()))
        same = all(out.sim_shapes[k] == out.shapes[k] for k in out.sims)
        size = "the measured size" if same else f"simulated at {s.m}x{s.k}, N={s.n}"
        ax2.bar(x + 0.2, [v or 0 for v in sim], 0.4, label=f"simulated L1↔L2 bytes ({size})", color="tab:orange")
    ax2.set_xticks(x, keys)
    log_axis(ax2, shown)
    ax2.set_ylabel("bytes")
    ax2.set_title("model and simulation")
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False)
    for ax in (ax1, ax2):
        for label in ax.get_xticklabels():
            label.set_rotation(40)
            label.set_ha("right")
    where = machine_label(out.lab.device) if out.measured_here else f"{machine_label('cpu')}, no GPU"
    fig.suptitle(f"lab {out.lab.id}: {out.lab.title} — {where}, {time.strftime('%Y-%m-%d')}", fontsize=10)
    fig.tight_layout()
    path = folder / f"lab{out.lab.id}.png"
    save_png(fig, path)
    return path


# ---------------------------------------------------------------------------------------------- results


def save_png(fig, path: Path) -> None:
    """A lab's PNG, atomically and never through a link (``files.atomic_save``); the figure is closed."""
    import matplotlib.pyplot as plt

    from spmm_study.files import atomic_save

    try:
        atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


def check_out_dir(out_dir: Path | None, lab: Lab, force: bool) -> Path:
    from spmm_study.results import default_dir

    directory = out_dir or default_dir(f"lab{lab.id}")
    if directory.exists() and not directory.is_dir():
        raise ResultsError(f"{directory} exists and is not a directory")
    from spmm_study.files import ForeignFileError, is_own_folder

    if os.path.lexists(directory / "answers.jsonl") and not is_own_folder(directory):
        # the ResultWriter refuses a foreign folder holding its own names; answers.jsonl is the lab's
        raise ForeignFileError(f"{directory} holds answers.jsonl but no .spmm-study marker: spmm-study did not make "
                               "this lab folder, so it replaces nothing in it, even with --force; choose another --out")
    if ((directory / "rows.jsonl").exists() or (directory / "answers.jsonl").exists()) and not force:
        raise ResultsError(f"{directory} already holds lab results; pass --force to replace them")
    return directory
