"""Verdicts that hold on a busy machine: time questions measured until their interval decides, or "too noisy".

A question about time (``Question.basis == "time"``) is not graded on one median. The runs its answer reads
are timed again in interleaved rounds (a, b, a, b, ...: a burst of other work slows both sides of the ratio,
not one), each round giving one value of the answer. After each round the 90% interval of the median of those
values (order statistics: no assumption on the noise's shape; for a ratio widened to at least ±10% of the
median, ±25% on a busy machine, for the drift between runs minutes apart) is compared with the prediction's verdict band
(within a factor ``tol`` for ratios, within ``tol`` for absolute questions): when the whole interval gives the
same verdict, the question is decided; when the time bound runs out first, the verdict is ``too noisy to call
here`` and the interval is shown, so the student sees why.

Questions on a count (``basis == "count"``: bytes per nonzero of the actual matrix, nonzeros per thread of
the actual partition) and on the model or the simulator are deterministic: graded at once, never re-timed.

The machine's load is read before measuring (like ``calibrate``): a load average past half the cores, or
runs whose repeats spread more than 30%, put a warning above the table.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable

import numpy as np

# seconds of re-timing, for all of a lab's time questions together
BOUNDS = {"tiny": 0.5, "quick": 15.0, "full": 40.0}
MIN_ROUNDS = {"tiny": 2, "quick": 5, "full": 7}
MAX_ROUNDS = 60
TOO_NOISY = "too noisy to call here"


def median_interval(values: list[float], z: float = 1.645) -> tuple[float, float]:
    """The 90% interval of the median of ``values`` by order statistics (1-based ranks ⌊n/2 − z·√n/2⌋ and
    ⌈1 + n/2 + z·√n/2⌉, the normal approximation of the binomial), clamped to the sample: with 5 values it is
    their range, with 30 the 10th to the 21st."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return (float("nan"), float("nan"))
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(1 + n / 2 + half) - 1)
    return (xs[lo], xs[max(lo, hi)])


DRIFT = 0.10  # the interval is at least ±10% of the median: runs minutes apart drift more than rounds seconds apart
DRIFT_BUSY = 0.25  # ±25% on a busy machine (lab 1's ratios moved ±30% between runs at load 8-14 on 2 cores)


def drift(out) -> float:
    load = (out.load or {}).get("load_avg_1min")
    cores = (out.load or {}).get("cores") or 1
    from spmm_study.calibrate import BUSY_LOAD

    return DRIFT_BUSY if isinstance(load, (int, float)) and load > BUSY_LOAD * cores else DRIFT


def interval(out, values: list[float], kind: str = "ratio") -> tuple[float, float]:
    """The median's 90% interval; for a ratio, widened to at least ±``drift(out)`` of the median: within a run
    the rounds see seconds of the machine, and a verdict must hold for the next student minutes later. (An
    absolute answer — a sparsity, a percentage — has its own scale, and lab 3's break-even sits at an end of
    the swept range when it lies beyond it: no relative widening there.)"""
    lo, hi = median_interval(values)
    if kind != "ratio":
        return lo, hi
    m = float(np.median(values))
    f = drift(out)
    return (min(lo, m / (1 + f)) if m > 0 else lo, max(hi, m * (1 + f)) if m > 0 else hi)


def category(verdict: str) -> str:
    """right / high / low / '-' : what must agree at both ends of the interval."""
    return verdict.split()[0] if verdict else "-"


def decided(q, pred: float | None, lo: float, hi: float, out=None) -> bool:
    if pred is None:
        return True
    return category(q.judge(out, pred, lo)[0]) == category(q.judge(out, pred, hi)[0])


def machine_load() -> dict:
    """Load average (1 min) and cores, read before a lab measures (our own load is not counted yet)."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = float("nan")
    return {"load_avg_1min": load, "cores": os.cpu_count() or 1}


def run_spread(res) -> float | None:
    """How far a run's p80 lies above its p20 (0.3 = 30%)."""
    if res is None or res.status != "PASS":
        return None
    p20, p80 = res.p20_s, res.p80_s
    return p80 / p20 - 1 if p20 and p20 > 0 and math.isfinite(p80) else None


def busy_reasons(load: dict, results: dict) -> str | None:
    """Why the machine counted as busy while the lab measured (load average, the runs' spread), as
    ``calibrate`` judges it; None when it did not."""
    from spmm_study.calibrate import busy_reasons as reasons

    spreads = [s for s in (run_spread(r) for r in results.values()) if s is not None]
    why = reasons({**load, "repeat_spread": max(spreads) if spreads else None})
    return "; ".join(why) if why else None


def busy_warning(reasons: str) -> str:
    return (f"warning: the machine was busy while this lab measured ({reasons}): times are blurred; questions on "
            "time were re-timed in interleaved rounds and are called only where their interval allows")


def involved_runs(out, q) -> list[str]:
    """The runs whose time ``q``'s measured answer reads (recorded by calling it once)."""
    seen: set[str] = set()
    out._seen = seen
    try:
        q.answer(out, "measured")
    except (KeyError, ZeroDivisionError, TypeError, ValueError):
        pass
    finally:
        out._seen = None
    return [r.key for r in out.runs if r.key in seen]


def settle(out, preds: dict[str, float], on_step: Callable[[str], None] = lambda s: None) -> None:
    """Re-time every measured run in interleaved rounds (once any question is on time); store each question's
    values in ``out.rounds[q.key]`` (one answer per round). Stops when every predicted question is decided and the
    minimum of rounds is reached, or at the size's time bound."""
    from spmm_study import registry
    from spmm_study.harness import apply_threads
    from spmm_study.timing import TimingConfig, time_calls

    if out.lab.device == "gpu" and _cudasim():
        out.notes.append("questions on time: not re-timed under the CUDA simulator (its times mean nothing)")
        return
    qs = [q for q in out.lab.questions if q.basis == "time" and q.answer is not None]
    need = {q.key: involved_runs(out, q) for q in qs}
    need = {k: v for k, v in need.items() if v and all(out.time(r) for r in v)}
    if not need:
        return
    runs = {r.key: r for r in out.runs}
    # every measured run, not only the questions' runs: the tables, the ranking sentences and the plot then
    # read times of one period of the machine (on a shared machine a run timed a minute earlier is another one)
    keys = [k for k in runs if out.time(k) is not None]
    problems, prepared = {}, {}
    cache = "warm" if out.size == "tiny" else "cold"
    cfg = TimingConfig(repeats=3 if out.size != "tiny" else 1, min_time_s=0.0, warmup_s=0.0, cache=cache)
    try:
        for k in keys:
            r = runs[k]
            v = registry.get(r.variant)
            pk = (r.matrix, r.n)
            if pk not in problems:
                problems[pk] = out.lab.problem(r.matrix, out.matrices[r.matrix], r.n)
            params = v.resolve_params(r.params)
            prepared[k] = (v.build(v.problem(problems[pk], params), **params), r.threads, v.device)
            if v.device == "cpu":
                apply_threads(r.threads)
            prepared[k][0].run()  # compile is cached by now; this loads it and touches the pages
            prepared[k][0].sync()
        times: dict[str, list[float]] = {k: [] for k in keys}
        t_end = time.perf_counter() + BOUNDS[out.size]
        rounds = 0
        while rounds < MAX_ROUNDS:
            on_step(f"re-timing round {rounds + 1} ({len(need)} questions on time)")
            for k in keys:
                p, threads, device = prepared[k]
                if device == "cpu":
                    apply_threads(threads)
                times[k].append(float(np.median(time_calls(p, cfg).samples_s)))
            rounds += 1
            out.rounds = {q: _values(out, next(x for x in qs if x.key == q), times, rounds) for q in need}
            if rounds < MIN_ROUNDS[out.size]:
                continue
            open_qs = [q for q in qs if q.key in need and not decided(q, preds.get(q.key),
                                                                         *interval(out, out.rounds[q.key], q.kind), out)]
            if not open_qs or time.perf_counter() > t_end:
                break
        for k in keys:  # the re-timed builds computed the right thing too
            p = prepared[k][0]
            r = runs[k]
            prob = problems[(r.matrix, r.n)]
            chk = registry.get(r.variant).problem(prob, registry.get(r.variant).resolve_params(r.params)).check(
                np.asarray(p.fetch()), prob.tolerance_for(p.precision))
            if not chk.ok:
                out.rounds = {}
                out.notes.append(f"{k}: the re-timed build failed its check ({chk.message}); time questions graded "
                                 "on the first measurement")
                return
        out.retimed = {k: (float(np.median(v)), float(np.percentile(v, 20)), float(np.percentile(v, 80)))
                       for k, v in times.items() if v}
        out.notes.append(f"questions on time: {rounds} interleaved rounds of {', '.join(keys)}; their times in the "
                         "tables, the explanation and the plot are the rounds' medians (the result rows keep the "
                         "first measurement); measured [90%]: the answer at those times [the 90% interval of the "
                         f"median of the rounds' answers, at least ±{drift(out):.0%}]")
    finally:
        for p, _, _ in prepared.values():
            try:
                p.release()
            except Exception:  # noqa: BLE001
                pass
        out._times = None


def _cudasim() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _values(out, q, times: dict[str, list[float]], rounds: int) -> list[float]:
    vals = []
    for i in range(rounds):
        out._times = {k: v[i] for k, v in times.items()}
        try:
            val = q.answer(out, "measured")
        except (KeyError, ZeroDivisionError, TypeError, ValueError):
            val = None
        if val is not None and math.isfinite(val):
            vals.append(float(val))
    out._times = None
    return vals
