"""The measuring harness (docs/ARCHITECTURE.md §5): ``measure(variant, problem, params, cfg) -> Result``.

Steps, each visible in the result row:

1. resolve params (unknown names and bad values are ``ParamError``);
2. ``build`` — format conversion, allocation, copies to the device: ``setup_s``;
3. poison C with NaN, first call — JIT compile or cache load: ``first_call_s``, never in the statistics;
4. **check** that output against the float64 reference (a wrong result is a FAIL row, never a speed);
5. warm up by time; 6. timed repeats, each timed on its own, caches cold by default;
7. **check again** the output the last timed repeat left, *without* re-poisoning: a kernel that
   accumulates into C, or that races, fails here; bitwise equality with step 4 is recorded as
   ``repeatable`` in ``info``; then poison once more, run once (untimed) and check: a kernel that
   computes only on its first call and returns at once afterwards would otherwise pass with a
   speed it never had;
8. median, p20/p80, min; 9. useful GFLOP/s = 2·nnz·N/t, GB/s against compulsory and modelled bytes.

The harness never prints and never writes files. User mistakes raise ``SpmmError``; a variant that
refuses a matrix in ``build`` (a ``SpmmError`` there) gives a SKIP row; a crash gives an ERROR row.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from spmm_study import movement as mv
from spmm_study.errors import DeviceUnavailable, ParamError, SpmmError
from spmm_study.problem import Problem
from spmm_study.registry import Variant
from spmm_study.results import Result
from spmm_study.timing import TimingConfig, summarize, time_calls


@dataclass(frozen=True)
class HarnessConfig:
    timing: TimingConfig = TimingConfig()
    threads: int | None = None  # None: every core numba may use, applied to every pool (recorded)
    machine: str = ""
    tags: str = ""


def default_threads() -> int:
    """The CPU thread count when none is given: every core numba may use (NUMBA_NUM_THREADS)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


def current_threads() -> int:
    import numba

    return numba.get_num_threads()


def check_threads(threads: int) -> int:
    """The one check of a CPU thread count: 1 up to the cores numba may use here."""
    limit = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= limit:
        raise ParamError(f"--threads {threads} is outside 1..{limit} (this machine's numba thread limit)")
    return threads


def apply_threads(threads: int | None) -> int:
    """Set numba's pool and every BLAS/OpenMP pool (threadpoolctl) to ``threads`` (``None``: all cores numba
    may use, ``default_threads()``); return the count in force.

    Numba, OpenBLAS and MKL each start their own threads; on a 2-core machine they compete and a 1 ms
    product can take 8 ms, so rungs and baselines are always compared at one explicit thread count, also
    when the user gave none: with the pools left as they were, numpy's sgemm for RN50 problem 1 took 13.3 ms
    instead of 1.15 ms (2026-11-23) and every sparse kernel looked 20x better than it is.
    """
    import numba
    from threadpoolctl import threadpool_limits

    threads = default_threads() if threads is None else check_threads(threads)
    numba.set_num_threads(threads)
    threadpool_limits(limits=threads)
    return numba.get_num_threads()


def base_row(variant: Variant, problem: Problem, params: dict, threads: int, cfg: HarnessConfig,
             status: str = "ERROR", message: str = "") -> Result:
    """A result row of ``variant`` on ``problem`` with no measurement yet (``measure`` fills the rest; the
    runner writes UNAVAILABLE rows with it)."""
    s = problem.shape
    return new_row(variant, matrix=problem.matrix, m=s.m, k=s.k, n=s.n, nnz=s.nnz, dtype=str(problem.dtype),
                   seed=problem.seed, params=params, threads=threads, cfg=cfg, status=status, message=message,
                   tolerance=problem.tolerance.rel_fro)


def new_row(variant: Variant, *, matrix: str, m: int, k: int, n: int, nnz: int, dtype: str, seed: int,
            params: dict, threads: int, cfg: HarnessConfig, status: str = "ERROR", message: str = "",
            tolerance: float = float("nan")) -> Result:
    """The one row builder: every fact of the variant and the problem in a row, no measurement (also for a
    row whose Problem was never built: a cluster task whose worker died)."""
    cells = m * k
    return Result(
        variant=variant.id, device=variant.device, format=variant.format, idea=variant.idea,
        baseline=variant.baseline, matrix=matrix, m=m, k=k, n=n, nnz=nnz,
        sparsity=round(1.0 - nnz / cells, 6) if cells else float("nan"), dtype=dtype, seed=seed,
        params=json.dumps(params, sort_keys=True), threads=threads, status=status, message=message,
        tolerance=tolerance, cache=cfg.timing.cache, deterministic=variant.deterministic,
        machine=cfg.machine, timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"), tags=cfg.tags,
        rung=variant.rung, loop_order=variant.loop_order,
    )


def row_threads(variant: Variant, threads: int | None) -> int:
    """The thread count a row of ``variant`` records: the CPU pool size it runs under (all cores numba may
    use when none is given); for GPU rows numba's current setting, which the GPU kernel does not use."""
    if variant.device != "cpu":
        return current_threads()
    return threads if threads is not None else default_threads()


def _oneline(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def measure(variant: Variant, problem: Problem, params: dict | None = None,
            cfg: HarnessConfig = HarnessConfig(), keep_output: Callable[[np.ndarray], Any] | None = None) -> Result:
    """One row for ``variant`` on ``problem``. numpy's floating-point warnings are silenced inside: an overflow
    (finite inputs, an Inf product) is the row's FAIL, which names it (``Problem.check``), not a warning
    printed from a baseline's np.matmul beside the table. ``keep_output`` receives a copy of C from the last
    checked call (the Python API's ``return_c``)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _measure(variant, problem, params, cfg, keep_output)


def _measure(variant: Variant, problem: Problem, params: dict | None, cfg: HarnessConfig,
             keep_output: Callable[[np.ndarray], Any] | None = None) -> Result:
    params = variant.resolve_params(params)
    reason = variant.unavailable_reason()
    if reason:
        raise DeviceUnavailable(f"{variant.id} is unavailable: {reason}")
    refusal = variant.dtype_refusal(problem.dtype)
    if refusal:  # a type the variant cannot take: a SKIP row that says so, before anything is built
        return base_row(variant, problem, params, row_threads(variant, cfg.threads), cfg, "SKIP", refusal)
    problem = variant.problem(problem, params)  # a fused layer variant is checked on act(A·B + bias)
    threads = apply_threads(cfg.threads) if variant.device == "cpu" else current_threads()
    row = base_row(variant, problem, params, threads, cfg)
    s = problem.shape
    flops = s.flops
    comp = mv.compulsory(s, params)
    model = variant.movement(s, params)
    row.bytes_compulsory = comp.total
    row.bytes_model = model.total
    row.intensity = flops / comp.total if comp.total else float("nan")

    t0 = time.perf_counter()
    try:
        prepared = variant.build(problem, **params)
    except SpmmError as exc:
        row.status, row.message = "SKIP", str(exc)
        return row
    except Exception as exc:  # noqa: BLE001 - a broken variant is a row, not a crash of the whole sweep
        row.message = "build: " + _oneline(exc)
        return row
    row.setup_s = time.perf_counter() - t0
    try:
        info = dict(prepared.info)
        tol = problem.tolerance_for(prepared.precision)
        if prepared.precision:
            row.tolerance = tol.rel_fro
            info["precision"] = prepared.precision
        prepared.poison()
        t0 = time.perf_counter()
        prepared.run()
        prepared.sync()
        row.first_call_s = time.perf_counter() - t0
        first = np.array(prepared.fetch(), copy=True)
        chk = problem.check(first, tol)
        row.rel_error = chk.rel_error
        if not chk.ok:
            row.status, row.message = "FAIL", "first check: " + chk.message
            row.info = json.dumps(info, default=str)
            return row

        timing = time_calls(prepared, cfg.timing)

        last = np.asarray(prepared.fetch())
        chk2 = problem.check(last, tol)
        # max() would drop a NaN error (NaN compares false), showing the first call's tiny error on a FAIL
        row.rel_error = row.rel_error if chk2.rel_error <= row.rel_error else chk2.rel_error
        info["repeatable"] = bool(np.array_equal(first, last))
        info.update(prepared.info)  # a variant may add facts while running (e.g. work spread)
        row.info = json.dumps(info, default=str)
        if not chk2.ok:
            row.status, row.message = "FAIL", "check after timing: " + chk2.message
            return row
        prepared.poison()
        prepared.run()
        prepared.sync()
        chk3 = problem.check(np.asarray(prepared.fetch()), tol)
        if not chk3.ok:
            row.rel_error = chk3.rel_error
            row.status, row.message = "FAIL", "re-run after poisoning: " + chk3.message
            return row
        if keep_output is not None:
            keep_output(np.array(prepared.fetch(), copy=True))
    except SpmmError as exc:
        row.status, row.message = "SKIP", str(exc)
        return row
    except Exception as exc:  # noqa: BLE001
        row.message = "run: " + _oneline(exc)
        return row
    finally:
        try:
            prepared.release()
        except Exception:  # noqa: BLE001
            pass

    stats = summarize(timing.samples_s)
    for key, val in stats.items():
        setattr(row, key, val)
    row.host_dispatch_s = timing.host_dispatch_s
    t = stats["median_s"]
    row.gflops = flops / t / 1e9
    row.gflops_dense = s.dense_flops / t / 1e9
    row.gbps_compulsory = comp.total / t / 1e9
    row.gbps_model = model.total / t / 1e9
    row.status = "PASS"
    return row
