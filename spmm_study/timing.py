"""Clocks behind one signature (DESIGN.md §5): ``time_calls(prepared, cfg) -> Timing``.

CPU: ``perf_counter_ns`` around each call (plus ``sync``), one sample per repeat. In ``cold`` cache mode a
buffer twice the size of the last-level cache is rewritten before every repeat, outside the timed region,
so each repeat starts with A, B and C out of the caches; ``warm`` skips that, measuring back-to-back calls.

GPU: device time from CUDA events, with the Python launch overhead hidden (see ``spmm_study.gpu.timing``);
the host dispatch time is reported beside it.

Warm-up is by time, not by count: a kernel runs until ``warmup_s`` has passed (at least once), so a
1 µs kernel and a 100 ms kernel both reach a steady state. Repeats run until both ``repeats`` samples are
collected and ``min_time_s`` of wall time has passed in the repeat loop (capped at ``max_repeats``). The wall
time counts the cache flushes: counting only the timed calls made a cold run of a 12 µs kernel take 10,000
repeats behind 2.6 ms flushes each, 34 s for a 64x48 matrix (2-core EPYC, 32 MiB L3); it now takes 0.2 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class TimingConfig:
    repeats: int = 10
    min_time_s: float = 0.2
    warmup_s: float = 0.1
    max_repeats: int = 10_000
    cache: str = "cold"  # cold | warm

    def __post_init__(self):
        # every command builds one of these: refuse here what would hang (--warmup inf) or mean nothing
        from spmm_study.errors import ParamError

        if not (isinstance(self.repeats, int) and self.repeats >= 1):
            raise ParamError(f"repeats must be >= 1, got {self.repeats}")
        for name, val in (("min-time", self.min_time_s), ("warmup", self.warmup_s)):
            if not (np.isfinite(val) and val >= 0):
                raise ParamError(f"--{name} {val} must be a finite number of seconds >= 0")
        if self.cache not in ("cold", "warm"):
            raise ParamError(f"--cache {self.cache!r}: choose cold or warm")


@dataclass
class Timing:
    samples_s: list
    host_dispatch_s: float = float("nan")


@lru_cache(maxsize=1)
def llc_bytes() -> int:
    """Size of the largest cache of cpu0 from sysfs (32 MiB if unknown)."""
    import glob

    best = 0
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            txt = open(path).read().strip().upper()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(txt[-1], 1)
            best = max(best, int(txt.rstrip("KMG")) * mult)
        except (OSError, ValueError):
            continue
    return best or (32 << 20)


_flush_buf: np.ndarray | None = None


def flush_cpu_caches() -> None:
    """Rewrite a buffer of twice the last-level cache so the next call starts cold."""
    global _flush_buf
    if _flush_buf is None:
        _flush_buf = np.zeros(2 * llc_bytes() // 8, dtype=np.float64)
    _flush_buf += 1.0


def warm_up(call, seconds: float) -> int:
    calls = 0
    end = time.perf_counter() + seconds
    while True:
        call()
        calls += 1
        if time.perf_counter() >= end:
            return calls


def time_cpu(prepared, cfg: TimingConfig) -> Timing:
    def call():
        prepared.run()
        prepared.sync()

    warm_up(call, cfg.warmup_s)
    samples = []
    clock = time.perf_counter_ns
    stop_ns = clock() + int(cfg.min_time_s * 1e9)
    while len(samples) < cfg.max_repeats and (len(samples) < cfg.repeats or clock() < stop_ns):
        if cfg.cache == "cold":
            flush_cpu_caches()
        t0 = clock()
        prepared.run()
        prepared.sync()
        samples.append((clock() - t0) * 1e-9)
    return Timing(samples)


def time_calls(prepared, cfg: TimingConfig) -> Timing:
    if prepared.timer == "gpu":
        from spmm_study.gpu.timing import time_gpu

        return time_gpu(prepared, cfg)
    return time_cpu(prepared, cfg)


def summarize(samples) -> dict:
    arr = np.asarray(samples, dtype=np.float64)
    return {
        "median_s": float(np.median(arr)),
        "p20_s": float(np.percentile(arr, 20)),
        "p80_s": float(np.percentile(arr, 80)),
        "min_s": float(arr.min()),
        "repeats": int(arr.size),
    }
