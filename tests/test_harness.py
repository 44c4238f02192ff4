"""The harness with fake variants (built as Variant objects here, never registered): the first call stays out
of the statistics, the re-check after timing catches an accumulating kernel, wrong results never get a speed,
crashes and refusals become rows, and the metrics are exact arithmetic on the timer's samples."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from spmm_study import harness, movement, timing
from spmm_study.errors import DeviceUnavailable, ParamError, ResourceError
from spmm_study.formats import CSR
from spmm_study.harness import HarnessConfig, measure
from spmm_study.problem import Problem
from spmm_study.registry import Param, Variant, host_prepared
from spmm_study.timing import Timing, TimingConfig

QUICK = HarnessConfig(timing=TimingConfig(repeats=5, min_time_s=0.0, warmup_s=0.0, cache="warm"))


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    d = np.where(rng.random((60, 40)) < 0.2, rng.standard_normal((60, 40)), 0.0).astype(np.float32)
    return Problem.make(CSR.from_dense(d), 8, "float32", seed=3, matrix="test:60x40")


def fake(build, idea="fake", params=(), model=movement.csr_rowwise, available=None, deterministic=True):
    return Variant(id=f"cpu.csr.{idea}", build=build, loop_order="i→p→j", params=tuple(params), movement=model,
                   deterministic=deterministic, available=available or (lambda: None), doc=f"{idea} test kernel")


def product(problem):
    return (problem.a.to_scipy() @ problem.b).astype(problem.dtype)


def correct_build(problem, calls=None):
    c = problem.new_output()
    ab = product(problem)

    def run():
        if calls is not None:
            calls.append(time.perf_counter())
        c[:] = ab

    return host_prepared(run, c, info={"tile": 4})


# ------------------------------------------------------------------------------------------------ rows


def test_correct_kernel_passes_with_all_fields(problem):
    calls = []
    row = measure(fake(lambda p: correct_build(p, calls)), problem, {}, QUICK)
    assert row.status == "PASS", row.message
    assert row.variant == "cpu.csr.fake" and (row.device, row.format, row.idea) == ("cpu", "csr", "fake")
    assert (row.m, row.k, row.n, row.nnz) == (60, 40, 8, problem.a.nnz)
    assert row.matrix == "test:60x40" and row.seed == 3 and row.dtype == "float32" and row.cache == "warm"
    assert row.repeats == 5 and len(calls) == 1 + 1 + 5 + 1  # first, one warm-up, 5 timed, the poisoned re-run
    assert row.min_s <= row.p20_s <= row.median_s <= row.p80_s
    assert row.setup_s >= 0 and row.first_call_s >= 0 and row.rel_error < 1e-6
    assert row.tolerance == problem.tolerance.rel_fro
    info = json.loads(row.info)
    assert info == {"tile": 4, "repeatable": True}


def test_first_call_is_excluded_from_statistics(problem):
    def build(p):
        prepared = correct_build(p)
        inner = prepared.run
        state = {"first": True}

        def run():
            if state["first"]:  # JIT compile stand-in: only the first call is slow
                state["first"] = False
                time.sleep(0.2)
            inner()

        prepared.run = run
        return prepared

    row = measure(fake(build), problem, {}, QUICK)
    assert row.status == "PASS"
    assert row.first_call_s >= 0.2
    assert row.median_s < 0.05 and max(row.p80_s, row.min_s) < 0.05


def test_accumulating_kernel_is_caught_after_timing(problem):
    def build(p):
        c = p.new_output()
        ab = product(p)
        state = {"first": True}

        def run():
            if state["first"]:  # zeroes C only once, then accumulates: right after one call, wrong after two
                c[:] = 0.0
                state["first"] = False
            c[:] += ab

        return host_prepared(run, c)

    row = measure(fake(build), problem, {}, QUICK)
    assert row.status == "FAIL"
    assert row.message.startswith("check after timing:")
    assert np.isnan(row.gflops) and np.isnan(row.gbps_compulsory) and np.isnan(row.median_s)
    assert row.rel_error > 1.0
    assert json.loads(row.info)["repeatable"] is False


def test_kernel_that_works_only_once_is_caught(problem):
    def build(p):
        c = p.new_output()
        ab = product(p)
        state = {"done": False}

        def run():  # "caches" its answer: later calls return at once and leave C as it is
            if not state["done"]:
                c[:] = ab
                state["done"] = True

        return host_prepared(run, c)

    row = measure(fake(build), problem, {}, QUICK)
    assert row.status == "FAIL" and row.message.startswith("re-run after poisoning:") and "NaN/Inf" in row.message
    assert np.isnan(row.median_s) and np.isnan(row.gflops)


def test_kernel_going_nan_after_first_call_reports_nan_error(problem):
    def build(p):
        c = p.new_output()
        ab = product(p)
        calls = []

        def run():
            calls.append(1)
            c[:] = ab if len(calls) == 1 else np.nan

        return host_prepared(run, c)

    row = measure(fake(build), problem, {}, QUICK)
    assert row.status == "FAIL" and "NaN/Inf" in row.message
    assert np.isnan(row.rel_error)  # not the first call's 1e-8


def test_wrong_kernel_fails_with_no_speed(problem):
    def build(p):
        c = p.new_output()
        wrong = product(p)
        wrong[7, 3] += 1.0
        return host_prepared(lambda: c.__setitem__(slice(None), wrong), c)

    row = measure(fake(build), problem, {}, QUICK)
    assert row.status == "FAIL" and row.message.startswith("first check:") and "C[7,3]" in row.message
    for metric in (row.median_s, row.gflops, row.gbps_compulsory, row.gbps_model):
        assert np.isnan(metric)
    assert row.repeats == 0


def test_unwritten_entries_fail_through_the_poison(problem):
    def build(p):
        c = p.new_output()
        ab = product(p)

        def run():
            c[:-1] = ab[:-1]  # forgets the last row: the NaN poison must show through

        return host_prepared(run, c)

    row = measure(fake(build), problem, {}, QUICK)
    assert row.status == "FAIL" and "NaN/Inf" in row.message


def test_crashing_kernel_is_an_error_row(problem):
    def build(p):
        def run():
            raise RuntimeError("segfault stand-in\nsecond line")

        return host_prepared(run, p.new_output())

    row = measure(fake(build), problem, {}, QUICK)
    assert row.status == "ERROR" and row.message == "run: RuntimeError: segfault stand-in"
    assert np.isnan(row.median_s)

    def bad_build(p):
        raise KeyError("oops")

    row = measure(fake(bad_build), problem, {}, QUICK)
    assert row.status == "ERROR" and row.message.startswith("build: KeyError")


def test_build_refusing_with_spmm_error_is_skip(problem):
    def build(p):
        raise ResourceError("needs int32 indices; K = 3000000000")

    row = measure(fake(build), problem, {}, QUICK)
    assert row.status == "SKIP" and row.message == "needs int32 indices; K = 3000000000"


def test_release_is_called_even_on_failure(problem):
    released = []

    def build(p):
        prepared = host_prepared(lambda: None, p.new_output())  # never writes C: FAIL
        prepared.release = lambda: released.append(True)
        return prepared

    assert measure(fake(build), problem, {}, QUICK).status == "FAIL"
    assert released == [True]


def test_params_and_availability(problem):
    def build(p, tile=8):
        return correct_build(p)

    v = fake(build, params=(Param("tile", 8, (4, 8, 16), minimum=1),))
    row = measure(v, problem, {"tile": "16"}, QUICK)
    assert json.loads(row.params) == {"tile": 16}
    with pytest.raises(ParamError, match=r"has no parameter bogus \(its parameters: tile\)"):
        measure(v, problem, {"bogus": 1}, QUICK)
    with pytest.raises(ParamError, match=r"tile='x' is not a valid int"):
        measure(v, problem, {"tile": "x"}, QUICK)
    with pytest.raises(ParamError, match=r"tile=0 must be >= 1"):
        measure(v, problem, {"tile": 0}, QUICK)
    off = fake(correct_build, available=lambda: "no CUDA device: test")
    with pytest.raises(DeviceUnavailable, match=r"cpu.csr.fake is unavailable: no CUDA device: test"):
        measure(off, problem, {}, QUICK)


# ------------------------------------------------------------------------------------------------ metrics


def test_metrics_arithmetic_against_a_fake_timer(problem, monkeypatch):
    samples = [4e-3, 1e-3, 5e-3, 2e-3, 3e-3]
    monkeypatch.setattr(harness, "time_calls", lambda prepared, cfg: Timing(list(samples), host_dispatch_s=7e-6))

    def model(s, params):
        return movement.Bytes(1e6, 2e6, 3e6)

    row = measure(fake(correct_build, model=model), problem, {}, QUICK)
    assert row.status == "PASS"
    s = problem.shape
    comp = movement.compulsory(s, {})
    nnz, n = problem.a.nnz, 8
    assert row.median_s == 3e-3 and row.min_s == 1e-3 and row.repeats == 5
    assert row.p20_s == pytest.approx(1.8e-3) and row.p80_s == pytest.approx(4.2e-3)
    assert row.gflops == pytest.approx(2 * nnz * n / 3e-3 / 1e9, rel=1e-12)
    assert row.gflops_dense == pytest.approx(2 * 60 * 40 * n / 3e-3 / 1e9, rel=1e-12)
    assert row.bytes_model == 6e6 and row.gbps_model == pytest.approx(2.0, rel=1e-12)
    assert row.bytes_compulsory == comp.total
    assert row.gbps_compulsory == pytest.approx(comp.total / 3e-3 / 1e9, rel=1e-12)
    assert row.intensity == pytest.approx(2 * nnz * n / comp.total, rel=1e-12)
    assert row.host_dispatch_s == 7e-6
    # the compulsory floor by hand: values+indices per nonzero, M+1 offsets, touched rows of B, C once
    touched = len(set(problem.a.indices.tolist()))
    assert comp.total == nnz * 8 + 61 * 4 + touched * n * 4 + 60 * n * 4


def test_threads_applied_and_recorded(problem):
    import numba

    before = numba.get_num_threads()
    try:
        cfg = HarnessConfig(timing=QUICK.timing, threads=1)
        row = measure(fake(correct_build), problem, {}, cfg)
        assert row.threads == 1 and numba.get_num_threads() == 1
        limit = numba.config.NUMBA_NUM_THREADS
        with pytest.raises(ParamError, match=rf"--threads {limit + 1} is outside 1\.\.{limit}"):
            measure(fake(correct_build), problem, {}, HarnessConfig(timing=QUICK.timing, threads=limit + 1))
        with pytest.raises(ParamError, match=r"--threads 0 is outside"):
            harness.apply_threads(0)
        # threads=None: every core numba may use, applied to numba and BLAS alike, not "whatever was left"
        row = measure(fake(correct_build), problem, {}, QUICK)
        assert row.threads == limit and numba.get_num_threads() == limit
        from threadpoolctl import threadpool_info

        assert all(p["num_threads"] == limit for p in threadpool_info())
    finally:
        harness.apply_threads(before)


# ------------------------------------------------------------------------------------------------ timing


class Counter:
    def __init__(self, sleep_s=0.0):
        self.calls, self.sleep_s, self.timer = 0, sleep_s, "cpu"

    def run(self):
        self.calls += 1
        if self.sleep_s:
            time.sleep(self.sleep_s)

    def sync(self):
        pass


def test_time_cpu_warms_up_by_time_and_repeats_until_min_time(monkeypatch):
    flushes = []
    monkeypatch.setattr(timing, "flush_cpu_caches", lambda: flushes.append(1))
    k = Counter(sleep_s=0.005)
    t0 = time.perf_counter()
    t = timing.time_calls(k, TimingConfig(repeats=3, min_time_s=0.05, warmup_s=0.02, cache="cold"))
    wall = time.perf_counter() - t0
    n = len(t.samples_s)
    assert n >= 3 and min(t.samples_s) >= 0.005
    assert sum(t.samples_s[:-1]) < 0.05 <= wall - 0.02  # stopped at the first repeat past min_time (> 3 x 5 ms)
    assert len(flushes) == n  # one flush per timed repeat, none during warm-up
    assert k.calls >= n + 3  # the warm-up ran for ~0.02 s first
    capped = timing.time_calls(Counter(), TimingConfig(repeats=1, min_time_s=10.0, warmup_s=0.0, max_repeats=50,
                                                       cache="warm"))
    assert len(capped.samples_s) == 50


def test_cold_flushes_count_against_min_time(monkeypatch):
    """A 0 s kernel behind 2 ms flushes: min_time bounds the loop's wall time, flushes included."""
    monkeypatch.setattr(timing, "flush_cpu_caches", lambda: time.sleep(0.002))
    t0 = time.perf_counter()
    t = timing.time_calls(Counter(), TimingConfig(repeats=5, min_time_s=0.05, warmup_s=0.0, cache="cold"))
    assert time.perf_counter() - t0 < 0.5  # counting only the timed calls ran all 10,000 repeats: 20+ s
    assert 5 <= len(t.samples_s) <= 30


def test_summarize_percentiles():
    st = timing.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert st == {"median_s": 3.0, "p20_s": pytest.approx(1.8), "p80_s": pytest.approx(4.2), "min_s": 1.0,
                  "repeats": 5}
