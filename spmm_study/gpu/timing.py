"""GPU timing (docs/ARCHITECTURE.md §5): device time from CUDA events, launch overhead hidden, dispatch shown apart.

Launching a numba-cuda kernel costs the host tens of microseconds (argument marshalling, the driver call);
a 20 µs kernel timed from the host would measure Python. So each batch of timed launches is queued
*behind a spinning kernel*: the GPU sleeps in ``spin`` while the host enqueues
``[start_i, run_i, stop_i, (flush)]`` for every repeat, and only then reaches them, back to back. Each
sample is ``elapsed(start_i, stop_i)``: the device time of one call, with no host in it.

The host time of each ``run()`` call (enqueue only, no sync) is the *host dispatch* time, reported next to
the device time (``host_dispatch_s``): when it exceeds the device time, the kernel is launch-bound in a
real program unless launches are batched (graphs, streams).

If the spin ends before the host has queued the batch (checked with an event query), the batch is
discarded, the spin doubled, and the batch redone, so a sample never includes a launch gap.

Cache modes: ``cold`` writes a buffer of twice the L2 (2×50 MB on an H100) between repeats, inside the
stream but outside the events, so each call starts with A, B and C out of L2; ``warm`` measures back-to-back
calls. First-call (JIT) time is taken by the harness before this runs and is never in the samples.
Under the simulator the events are not real: host clocks around run+sync stand in (numbers meaningless).
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from spmm_study.gpu.device import bind_cuda
from spmm_study.gpu.device import simulator
from spmm_study.timing import Timing, TimingConfig, warm_up

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None

SPIN_STEP_NS = 2000  # one nanosleep; the spin's length is calibrated with events, nanosleep is approximate


@lru_cache(maxsize=1)
def _kernels():
    bind_cuda(globals())

    @cuda.jit(cache=True)
    def spin(steps):
        for _ in range(steps):
            cuda.nanosleep(SPIN_STEP_NS)

    @cuda.jit(cache=True)
    def scribble(buf, value):
        start, stride = cuda.grid(1), cuda.gridsize(1)
        for i in range(start, buf.size, stride):
            buf[i] = value

    return spin, scribble


_state: dict = {}


def l2_bytes() -> int:
    bind_cuda(globals())

    dev = cuda.get_current_device()
    try:
        return int(dev.L2_CACHE_SIZE)
    except Exception:  # noqa: BLE001
        return 50 << 20


def _flusher():
    """A callable that enqueues a write of 2×L2 bytes (evicting A, B, C from L2)."""
    if "flush" not in _state:
        bind_cuda(globals())

        _, scribble = _kernels()
        buf = cuda.device_array(2 * l2_bytes() // 4, dtype=np.float32)
        launch = scribble[1024, 256]
        _state["flush"] = lambda: launch(buf, np.float32(1.0))
        _state["flush_buf"] = buf
    return _state["flush"]


def spin_ns_per_step() -> float:
    """Calibrate the spin kernel once: device ns per step, from events."""
    if "ns_per_step" not in _state:
        bind_cuda(globals())

        spin, _ = _kernels()
        spin[1, 1](np.int64(10))
        cuda.synchronize()
        e0, e1 = cuda.event(), cuda.event()
        steps = 500
        e0.record()
        spin[1, 1](np.int64(steps))
        e1.record()
        e1.synchronize()
        _state["ns_per_step"] = max(cuda.event_elapsed_time(e0, e1) * 1e6 / steps, 100.0)
    return _state["ns_per_step"]


def _batch(prepared, count: int, spin_s: float, cold: bool, dispatch: list):
    """Queue ``count`` timed calls behind a spin of ``spin_s``; return samples or None if the spin ran out."""
    bind_cuda(globals())

    spin, _ = _kernels()
    flush = _flusher() if cold else None
    events = [(cuda.event(), cuda.event()) for _ in range(count)]
    spun = cuda.event()
    cuda.synchronize()
    spin[1, 1](np.int64(max(1, int(spin_s * 1e9 / spin_ns_per_step()))))
    spun.record()
    clock = time.perf_counter_ns
    local = []
    for e0, e1 in events:
        if flush is not None:
            flush()
        e0.record()
        t0 = clock()
        prepared.run()
        local.append((clock() - t0) * 1e-9)
        e1.record()
    late = spun.query()  # the spin already finished: the GPU may have waited for the host
    cuda.synchronize()
    if late:
        return None
    dispatch.extend(local)
    return [cuda.event_elapsed_time(e0, e1) * 1e-3 for e0, e1 in events]


def time_gpu(prepared, cfg: TimingConfig) -> Timing:
    if simulator():
        return _time_simulated(prepared, cfg)
    bind_cuda(globals())

    def call():
        prepared.run()
        prepared.sync()

    warm_up(call, cfg.warmup_s)
    cuda.synchronize()
    # estimate one call's device time and host dispatch to size the batches
    t0 = time.perf_counter()
    prepared.run()
    dispatch_guess = time.perf_counter() - t0
    prepared.sync()
    samples: list = []
    dispatch: list = []
    batch = max(1, min(cfg.repeats, 50))
    spin_s = 0.002 + 3.0 * batch * (dispatch_guess + 20e-6 + (150e-6 if cfg.cache == "cold" else 0.0))
    total = 0.0
    while len(samples) < cfg.max_repeats and (len(samples) < cfg.repeats or total < cfg.min_time_s):
        got = _batch(prepared, batch, spin_s, cfg.cache == "cold", dispatch)
        if got is None:
            spin_s *= 2.0
            if spin_s > 0.5:
                # no spin covers a call that synchronises inside (seen: cuSPARSE through cupy and torch
                # at N=256 on the H100); time it serialised and say so in the row
                try:
                    timing = _time_profiled(prepared, cfg)
                    prepared.info["timing"] = ("profiler: the call synchronises inside, so each sample is the "
                                               "sum of its kernels' device times (CUPTI via torch.profiler)")
                    return timing
                except Exception:  # noqa: BLE001 - no torch profiler: serial events, said so in the row
                    prepared.info["timing"] = "serial: the call synchronises, samples include its host work"
                    return _time_serial(prepared, cfg)
            continue
        samples += got
        total += sum(got)
        if total < cfg.min_time_s and samples:  # grow batches toward the time budget, within the spin
            per = total / len(samples)
            want = int((cfg.min_time_s - total) / max(per, 1e-7)) + 1
            batch = max(1, min(200, want, cfg.max_repeats - len(samples)))
            spin_s = 0.002 + 3.0 * batch * (float(np.median(dispatch)) + 20e-6 + (150e-6 if cfg.cache == "cold" else 0.0))
    return Timing(samples, host_dispatch_s=float(np.median(dispatch)) if dispatch else float("nan"))


def _time_profiled(prepared, cfg: TimingConfig, group: int = 5) -> Timing:
    """Device time of calls that synchronise inside (vendor libraries): CUPTI kernel durations.

    Each sample is the summed duration of the kernels (and memsets/copies) that ``group`` calls launched,
    divided by ``group``; the L2 flush kernel of cold mode is excluded by name."""
    from torch.profiler import ProfilerActivity, profile

    flush = _flusher() if cfg.cache == "cold" else None
    samples, dispatch = [], []
    rounds = max(2, min(8, cfg.repeats // group + 1))
    for _ in range(rounds):
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(group):
                if flush is not None:
                    flush()
                prepared.sync()
                t0 = time.perf_counter()
                prepared.run()
                dispatch.append(time.perf_counter() - t0)
            prepared.sync()
        total_us = 0.0
        for ev in prof.key_averages():
            if "scribble" in ev.key:
                continue
            total_us += float(getattr(ev, "self_device_time_total", 0.0) or 0.0)
        if total_us <= 0:
            raise RuntimeError("the profiler saw no device work")
        samples.append(total_us * 1e-6 / group)
    return Timing(samples, host_dispatch_s=float(np.median(dispatch)))


def _time_serial(prepared, cfg: TimingConfig) -> Timing:
    """Events around each call after a full sync (the fallback for calls that synchronise inside)."""
    bind_cuda(globals())
    flush = _flusher() if cfg.cache == "cold" else None
    samples, dispatch, total = [], [], 0.0
    while len(samples) < cfg.max_repeats and (len(samples) < cfg.repeats or total < cfg.min_time_s):
        if flush is not None:
            flush()
        e0, e1 = cuda.event(), cuda.event()
        cuda.synchronize()
        e0.record()
        t0 = time.perf_counter()
        prepared.run()
        dispatch.append(time.perf_counter() - t0)
        e1.record()
        e1.synchronize()
        samples.append(cuda.event_elapsed_time(e0, e1) * 1e-3)
        total += samples[-1]
    return Timing(samples, host_dispatch_s=float(np.median(dispatch)))


def _time_simulated(prepared, cfg: TimingConfig) -> Timing:
    samples = []
    for _ in range(max(1, min(cfg.repeats, 3))):
        t0 = time.perf_counter()
        prepared.run()
        prepared.sync()
        samples.append(time.perf_counter() - t0)
    return Timing(samples)
