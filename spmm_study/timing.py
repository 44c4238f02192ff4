"""Clocks behind one signature (docs/ARCHITECTURE.md §5): ``time_calls(prepared, cfg) -> Timing``.

CPU: ``perf_counter_ns`` around each call (plus ``sync``), one sample per repeat. In ``cold`` cache mode a
buffer twice the size of the last-level cache, capped at 128 MiB (``flush_plan``), is rewritten before every
repeat, outside the timed region, so each repeat starts with A, B and C out of the caches; ``warm`` skips
that, measuring back-to-back calls.

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


MAX_SECONDS = 3600.0  # a warm-up or measuring time past an hour is a typo, not a plan


@dataclass(frozen=True)
class TimingConfig:
    """How every measurement is timed; the one place its values are checked (commands and experiment files
    only pass them on). ``rounds`` is how often each problem's variants run, interleaved (A B C A B C)."""

    repeats: int = 10
    min_time_s: float = 0.2
    warmup_s: float = 0.1
    max_repeats: int = 10_000
    cache: str = "cold"  # cold | warm
    rounds: int = 1

    def __post_init__(self):
        from spmm_study import tiny
        from spmm_study.errors import ParamError

        if tiny.active():  # SPMM_STUDY_TINY=1 (tests of the docs' commands): one quick warm repeat
            values = tiny.timing(self.repeats, self.min_time_s, self.warmup_s, self.cache, self.rounds)
            for name, value in zip(("repeats", "min_time_s", "warmup_s", "cache", "rounds"), values):
                object.__setattr__(self, name, value)
        problems = timing_problems(self.repeats, self.min_time_s, self.warmup_s, self.cache, self.rounds)
        if problems:
            raise ParamError(problems[0][1])


MAX_COUNT = 10_000  # repeats or interleaved rounds: more is a typo, and rounds multiply the task list


def timing_problems(repeats, min_time_s, warmup_s, cache, rounds=1) -> list[tuple[str, str]]:
    """(key, message) for each value that would hang (``--warmup inf``) or mean nothing; keys as in an
    experiment's ``[timing]`` table."""
    out = []
    for key, val in (("repeats", repeats), ("rounds", rounds)):
        if not (isinstance(val, (int, np.integer)) and not isinstance(val, bool) and val >= 1):
            out.append((key, f"--{key} must be >= 1, got {val!r}"))
        elif val > MAX_COUNT:  # --rounds 100000000000 built a task list until memory ran out
            out.append((key, f"--{key} {val} is past the limit of {MAX_COUNT}"))
    for key, val in (("min_time", min_time_s), ("warmup", warmup_s)):
        flag = key.replace("_", "-")
        if isinstance(val, bool) or not isinstance(val, (int, float, np.number)) or not np.isfinite(val) \
                or not 0 <= val <= MAX_SECONDS:
            out.append((key, f"--{flag} {val} must be a finite number of seconds between 0 and {MAX_SECONDS:g}"))
    if cache not in ("cold", "warm"):
        out.append(("cache", f"--cache {cache!r}: choose cold or warm"))
    return out


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
            with open(path) as f:  # closed at once: a ResourceWarning is a stray line on a command's stderr
                txt = f.read().strip().upper()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(txt[-1], 1)
            best = max(best, int(txt.rstrip("KMG")) * mult)
        except (OSError, ValueError):
            continue
    return best or (32 << 20)


FLUSH_CAP_BYTES = 128 << 20  # the most a flush buffer takes, whatever L3 the machine reports
FLUSH_MEMORY_SHARE = 8  # and at most 1/8 of the memory this process may still allocate


@lru_cache(maxsize=1)
def flush_plan() -> dict:
    """How big the cold-cache flush buffer is, and why: twice the last-level cache where that is affordable
    (an adaptive replacement policy may keep some old lines after one cache's worth of new ones), capped at
    ``FLUSH_CAP_BYTES`` and at 1/8 of the memory this process may still allocate. A VM may report a host's
    L3 (480 MiB on one EPYC guest, where the 2x buffer made every cold run peak at 1.2-1.7 GB RSS); a capped
    buffer still evicts that much of an LRU cache, and ``note`` says so (meta.json keeps the plan, and the
    measuring commands print the note)."""
    from spmm_study.memory import available_memory_bytes

    llc = llc_bytes()
    want = 2 * llc
    room = available_memory_bytes() // FLUSH_MEMORY_SHARE
    size = max(min(want, FLUSH_CAP_BYTES, room), 1 << 20)
    note = ""
    if size < want:
        why = f"the {FLUSH_CAP_BYTES >> 20} MiB cap" if size == FLUSH_CAP_BYTES else "1/8 of the free memory"
        note = (f"cold cache: the flush buffer is {size / 2**20:.0f} MiB ({why}), not twice the "
                f"{llc / 2**20:.0f} MiB last-level cache sysfs reports" +
                ("; data past that stays warm if the cache is really that large" if size < llc else ""))
    return {"llc_bytes": llc, "flush_bytes": int(size), "capped": size < want, "note": note}


_flush_buf: np.ndarray | None = None


def flush_cpu_caches() -> None:
    """Rewrite the flush buffer (``flush_plan``) so the next call starts cold."""
    global _flush_buf
    if _flush_buf is None:
        _flush_buf = np.zeros(flush_plan()["flush_bytes"] // 8, dtype=np.float64)
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
    """Time with the prepared variant's own clock (the GPU's CUDA events), else the CPU clock."""
    return (getattr(prepared, "clock", None) or time_cpu)(prepared, cfg)


def summarize(samples) -> dict:
    arr = np.asarray(samples, dtype=np.float64)
    return {
        "median_s": float(np.median(arr)),
        "p20_s": float(np.percentile(arr, 20)),
        "p80_s": float(np.percentile(arr, 80)),
        "min_s": float(arr.min()),
        "repeats": int(arr.size),
    }
