"""Machine ceilings (docs/ARCHITECTURE.md §6): measured once, stored, drawn as the roofs of the roofline.

A roofline needs two numbers per machine, both *measured* here rather than taken from a datasheet:

* **memory bandwidth** - CPU: a STREAM triad ``a[i] = b[i] + s·c[i]`` in Numba (``prange``) over float64
  arrays of 4× the last-level cache (at least 32 MiB, at most 256 MiB each: ``stream_plan``), counted as 24 bytes per element (two reads, one write; the
  write-allocate read is not counted, as in STREAM). GPU: a grid-stride copy kernel, 8 bytes per float32.
* **peak FMA rate** - CPU: each thread updates 128 independent accumulators ``acc = acc·b + c``; LLVM keeps
  them in vector registers (8 AVX-512 chains of 16 float32), enough to cover the FMA latency, so the loop
  runs at the FMA pipes' rate. GPU: each thread runs 16 independent ``cuda.fma`` chains.

Both CPU ceilings are measured with one thread (per core) and with every thread (all cores); each number is
the best of a few repeats (the machine may be shared: a ceiling is what the hardware *can* do).

Measured 2026-11-23 on the 2-core AMD EPYC (Zen 5, AVX-512) development VM: triad 38.7 GB/s (1 thread) and
37.8 GB/s (2 threads); fp32 FMA 254 GFLOP/s per core, 480 GFLOP/s on both cores. On the H100 (same day,
``data/reference/ceilings-h100.json``): copy 2.16 TB/s, fp32 FMA 50.9 TFLOP/s with 16 chains and a doubled
loop body (33.5 TFLOP/s with 8 chains and a single body: the loop counter and branch took issue slots). The
copy kernel moves 4-byte elements and stays below the 3.0 TB/s a device-to-device memcpy reaches (DESIGN §5).

Ceilings go to a small JSON file (default ``~/.cache/spmm-study/ceilings.json``, or ``--out``), keyed by
the machine label that result rows carry, so ``report --plots`` finds the roofs of each row's machine.
``gpu_ceilings()`` is a plain function, so a device script can call it on the GPU machine.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np


CACHE_ENV = "SPMM_STUDY_CEILINGS"
CEILING_KEYS = ("stream_gbps_1", "stream_gbps_all", "fma_gflops_fp32_1", "fma_gflops_fp32_all", "fma_gflops_fp64_1",
                "fma_gflops_fp64_all", "copy_gbps", "fma_gflops_fp32")
LANES = 128  # independent accumulators per CPU thread: 8 zmm registers of 16 float32


def default_path() -> Path:
    from spmm_study.files import cache_path

    return cache_path(CACHE_ENV, "ceilings.json")


# ----------------------------------------------------------------------------------------------- CPU kernels


def _kernels():
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def triad(a, b, c, s):
        for i in prange(a.size):
            a[i] = b[i] + s * c[i]

    @njit(fastmath=True, parallel=True, cache=True)
    def fma32(iters, nthreads, b, c):
        out = np.zeros(nthreads, np.float32)
        for t in prange(nthreads):
            acc = np.empty(LANES, np.float32)
            for j in range(LANES):
                acc[j] = np.float32(0.5) + np.float32(j + t) * np.float32(1e-3)
            for _ in range(iters):
                for j in range(LANES):  # vectorised over j; the iteration loop carries each lane's chain
                    acc[j] = acc[j] * b + c
            out[t] = acc.sum()
        return out

    @njit(fastmath=True, parallel=True, cache=True)
    def fma64(iters, nthreads, b, c):
        out = np.zeros(nthreads, np.float64)
        for t in prange(nthreads):
            acc = np.empty(LANES, np.float64)
            for j in range(LANES):
                acc[j] = 0.5 + (j + t) * 1e-3
            for _ in range(iters):
                for j in range(LANES):
                    acc[j] = acc[j] * b + c
            out[t] = acc.sum()
        return out

    return triad, fma32, fma64


def _spread(times: list[float]) -> float:
    """How far the median repeat is above the best one (0.05 = 5%): a quiet machine repeats itself."""
    times = sorted(times)
    return times[len(times) // 2] / times[0] - 1.0 if times and times[0] > 0 else 0.0


STREAM_CAP_BYTES = 256 << 20  # the most one triad array takes, whatever L3 the machine reports
STREAM_MIN_BYTES = 32 << 20  # and the least: 4 Mi float64


def stream_plan() -> dict:
    """The size of each of the three triad arrays: 4x the last-level cache sysfs reports (STREAM's rule, so
    the caches hold a small part of them), at least 32 MiB, capped at ``STREAM_CAP_BYTES`` and at 1/8 of the
    memory this process may still allocate (the three arrays together: 3/8). Uncapped, a VM that reported a
    480 MiB L3 peaked at 6.07 GB RSS; ``note`` says when the cap cut the arrays below 4x the L3."""
    from spmm_study.memory import available_memory_bytes
    from spmm_study.timing import llc_bytes

    llc = llc_bytes()
    want = max(4 * llc, STREAM_MIN_BYTES)
    size = max(min(want, STREAM_CAP_BYTES, available_memory_bytes() // 8), 1 << 20)
    note = ""
    if size < want:
        note = (f"note: triad arrays of {size / 2**20:.0f} MiB each, capped below 4x the {llc / 2**20:.0f} MiB "
                "last-level cache sysfs reports" + (": if the cache is that large, the bandwidth counts cache hits"
                                                    if size < 2 * llc else ""))
    return {"stream_array_bytes": int(size), "llc_bytes": llc, "note": note}


def cpu_stream_gbps(threads: int, n_elems: int | None = None, repeats: int = 5, spreads: list | None = None) -> float:
    """Best triad bandwidth (GB/s) with ``threads`` numba threads over float64 arrays of ``n_elems`` (default:
    ``stream_plan``)."""
    import numba

    triad, _, _ = _kernels()
    n = n_elems or stream_plan()["stream_array_bytes"] // 8
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        triad(a, b, c, 3.0)  # compile / load and touch the pages
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            triad(a, b, c, 3.0)
            times.append(time.perf_counter() - t0)
        best = min(times)
        if spreads is not None:
            spreads.append(_spread(times))
    finally:
        numba.set_num_threads(old)
    if not np.allclose(a[:4], 7.0):
        raise RuntimeError("triad produced a wrong result")
    return 24.0 * n / best / 1e9


def cpu_fma_gflops(threads: int, dtype: str = "float32", iters: int = 2_000_000, repeats: int = 3,
                   spreads: list | None = None) -> float:
    """Best FMA rate (GFLOP/s, 2 flops per FMA) with ``threads`` threads, each running LANES chains."""
    import numba

    _, fma32, fma64 = _kernels()
    kern, cast = (fma32, np.float32) if dtype == "float32" else (fma64, np.float64)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        kern(10, threads, cast(0.999), cast(1e-3))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = kern(iters, threads, cast(0.999), cast(1e-3))
            times.append(time.perf_counter() - t0)
        best = min(times)
        if spreads is not None:
            spreads.append(_spread(times))
    finally:
        numba.set_num_threads(old)
    if not np.isfinite(out).all():
        raise RuntimeError("FMA kernel produced a non-finite result")
    return 2.0 * LANES * iters * threads / best / 1e9


def cpu_ceilings(tiny: bool = False) -> dict:
    """Per-core and all-core triad bandwidth and fp32/fp64 FMA peaks of this CPU. ``tiny``: small sizes
    for tests (the numbers are then meaningless, only the plumbing is exercised)."""
    import numba

    from spmm_study.environment import machine_label

    all_threads = numba.config.NUMBA_NUM_THREADS
    n = (1 << 14) if tiny else None
    iters = 2_000 if tiny else 2_000_000
    reps = 2 if tiny else 5
    out = {"device": "cpu", "machine": machine_label("cpu"), "threads_all": all_threads,
           "date": time.strftime("%Y-%m-%d"), "method": "numba triad (24 B/elem) and 128-lane FMA chains"}
    spreads: list[float] = []
    out["load_avg_1min"] = round(os.getloadavg()[0], 2)  # before measuring: our own load is not counted
    out["cores"] = os.cpu_count() or 1
    if n is None:
        plan = stream_plan()
        n = plan["stream_array_bytes"] // 8
        out["stream_array_mib"] = round(plan["stream_array_bytes"] / 2**20, 1)
        if plan["note"]:
            out["note"] = plan["note"]
    out["stream_gbps_1"] = cpu_stream_gbps(1, n, reps, spreads)
    out["stream_gbps_all"] = cpu_stream_gbps(all_threads, n, reps, spreads)
    out["fma_gflops_fp32_1"] = cpu_fma_gflops(1, "float32", iters, reps, spreads)
    out["fma_gflops_fp32_all"] = cpu_fma_gflops(all_threads, "float32", iters, reps, spreads)
    out["fma_gflops_fp64_1"] = cpu_fma_gflops(1, "float64", iters, reps, spreads)
    out["fma_gflops_fp64_all"] = cpu_fma_gflops(all_threads, "float64", iters, reps, spreads)
    out["repeat_spread"] = round(max(spreads), 3)
    if tiny:
        out["tiny"] = True
    return out


BUSY_LOAD = 0.5  # load average per core above which the machine counts as busy
BUSY_SPREAD = 0.3  # median repeat this much slower than the best one: someone else had the cores
LOW_FRACTION = 0.7  # a new ceiling below this fraction of the stored one is refused without --force


def busy_reasons(entry: dict) -> list[str]:
    """Why the machine counted as busy while ``entry`` was measured (load average, spread between repeats)."""
    load, cores, spread = entry.get("load_avg_1min"), entry.get("cores") or 1, entry.get("repeat_spread")
    why = []
    if isinstance(load, (int, float)) and load > BUSY_LOAD * cores:
        why.append(f"load average {load:g} on {cores} cores")
    if isinstance(spread, (int, float)) and spread > BUSY_SPREAD:
        why.append(f"repeats spread {spread:.0%} above the best")
    return why


def busy_note(entry: dict) -> str | None:
    """A line saying the machine was busy while ``entry`` was measured, or None. Ceilings measured on a busy
    machine are low, and every roofline drawn from them too."""
    why = busy_reasons(entry)
    if not why:
        return None
    return (f"warning: the machine was busy while calibrating {entry.get('machine', '')} ({'; '.join(why)}): "
            "its ceilings are likely low; calibrate again when it is idle")


# ----------------------------------------------------------------------------------------------- GPU


def gpu_ceilings(tiny: bool = False) -> dict:
    """Copy bandwidth and fp32 FMA peak of the current CUDA device (CUDA events around the kernels).

    Copy: ``dst[i] = src[i]`` over 512 MiB float32 buffers, grid-stride, 8 bytes per element. FMA: every
    thread runs 16 independent ``cuda.fma`` chains (32 FMAs per loop trip) on a grid of 32 blocks × 256
    threads per SM; 2 flops per FMA. Each is the best of 5 launches after one warm-up."""
    # The kernels must see ``cuda`` as a module global: the CUDA simulator (tests) swaps the globals of a
    # kernel for its fake module, which a closure variable would escape.
    global cuda
    from numba import cuda

    from spmm_study.environment import machine_label

    chains = 32  # FMAs per loop trip per thread (16 chains, body written twice)

    @cuda.jit
    def copy(dst, src):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        while i < src.size:
            dst[i] = src[i]
            i += stride

    @cuda.jit
    def fma(out, iters, b, c):
        t = cuda.grid(1)
        x0 = np.float32(t) * np.float32(1e-9)
        x1 = x0 + np.float32(1)
        x2 = x0 + np.float32(2)
        x3 = x0 + np.float32(3)
        x4 = x0 + np.float32(4)
        x5 = x0 + np.float32(5)
        x6 = x0 + np.float32(6)
        x7 = x0 + np.float32(7)
        x8 = x0 + np.float32(8)
        x9 = x0 + np.float32(9)
        x10 = x0 + np.float32(10)
        x11 = x0 + np.float32(11)
        x12 = x0 + np.float32(12)
        x13 = x0 + np.float32(13)
        x14 = x0 + np.float32(14)
        x15 = x0 + np.float32(15)
        for _ in range(iters):  # 2 x 16 independent FMAs per trip: the loop counter costs ~3 of 35 issue slots
            x0 = cuda.fma(x0, b, c)
            x1 = cuda.fma(x1, b, c)
            x2 = cuda.fma(x2, b, c)
            x3 = cuda.fma(x3, b, c)
            x4 = cuda.fma(x4, b, c)
            x5 = cuda.fma(x5, b, c)
            x6 = cuda.fma(x6, b, c)
            x7 = cuda.fma(x7, b, c)
            x8 = cuda.fma(x8, b, c)
            x9 = cuda.fma(x9, b, c)
            x10 = cuda.fma(x10, b, c)
            x11 = cuda.fma(x11, b, c)
            x12 = cuda.fma(x12, b, c)
            x13 = cuda.fma(x13, b, c)
            x14 = cuda.fma(x14, b, c)
            x15 = cuda.fma(x15, b, c)
            x0 = cuda.fma(x0, b, c)
            x1 = cuda.fma(x1, b, c)
            x2 = cuda.fma(x2, b, c)
            x3 = cuda.fma(x3, b, c)
            x4 = cuda.fma(x4, b, c)
            x5 = cuda.fma(x5, b, c)
            x6 = cuda.fma(x6, b, c)
            x7 = cuda.fma(x7, b, c)
            x8 = cuda.fma(x8, b, c)
            x9 = cuda.fma(x9, b, c)
            x10 = cuda.fma(x10, b, c)
            x11 = cuda.fma(x11, b, c)
            x12 = cuda.fma(x12, b, c)
            x13 = cuda.fma(x13, b, c)
            x14 = cuda.fma(x14, b, c)
            x15 = cuda.fma(x15, b, c)
        if t < out.size:
            out[t] = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11 + x12 + x13 + x14 + x15

    dev = cuda.get_current_device()
    sms = getattr(dev, "MULTIPROCESSOR_COUNT", 1)
    n = (1 << 12) if tiny else (1 << 27)  # 512 MiB of float32 per buffer
    src = cuda.to_device(np.ones(n, np.float32))
    dst = cuda.device_array(n, np.float32)
    blocks, threads = (4, 32) if tiny else (sms * 32, 256)  # 8192 threads per SM in flight over the loop

    def best_ms(launch, repeats=5):
        launch()
        cuda.synchronize()
        best = float("inf")
        for _ in range(repeats):
            e0, e1 = cuda.event(), cuda.event()
            e0.record()
            launch()
            e1.record()
            e1.synchronize()
            best = min(best, e0.elapsed_time(e1))
        return max(best, 1e-6)  # the simulator's events measure nothing

    copy_ms = best_ms(lambda: copy[blocks, threads](dst, src))
    if not np.array_equal(dst.copy_to_host()[:16], np.ones(16, np.float32)):
        raise RuntimeError("GPU copy kernel produced a wrong result")
    iters = 16 if tiny else 4096
    fblocks, fthreads = (2, 32) if tiny else (sms * 32, 256)
    out = cuda.device_array(fblocks * fthreads, np.float32)
    fma_ms = best_ms(lambda: fma[fblocks, fthreads](out, iters, np.float32(0.999), np.float32(1e-3)))
    return {
        "device": "gpu", "machine": machine_label("gpu"), "date": time.strftime("%Y-%m-%d"),
        "method": "grid-stride copy (8 B/elem) and 16 cuda.fma chains per thread, CUDA events",
        "copy_gbps": 2 * 4 * n / (copy_ms * 1e-3) / 1e9,
        "fma_gflops_fp32": 2.0 * chains * iters * fblocks * fthreads / (fma_ms * 1e-3) / 1e9,
        "sms": sms,
    }


# ----------------------------------------------------------------------------------------------- storage


def load(path: Path | str | None = None) -> dict[str, dict]:
    """Machine label → ceilings (an empty dict when no file was written yet)."""
    from spmm_study.errors import ResultsError
    from spmm_study.files import read_json_object

    path = Path(path) if path else default_path()
    data = read_json_object(path, "ceilings file")
    for machine, entry in data.items():  # hand-edited or foreign files: refuse what a roof cannot be
        if not isinstance(entry, dict):
            raise ResultsError(f"{path}: entry {machine!r} is a JSON {type(entry).__name__}, not an object of ceilings")
        for key in CEILING_KEYS:
            val = entry.get(key)
            if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float))
                                    or not math.isfinite(val) or val <= 0):
                raise ResultsError(f"{path}: {machine} {key} = {val!r:.40}; a ceiling is a positive number")
    return data


def save(entries: list[dict], path: Path | str | None = None, force: bool = False) -> Path:
    """Merge ``entries`` (each with a ``machine``) into the ceilings file, atomically. A ceiling much lower
    (below ``LOW_FRACTION``) than the one stored for the same machine is refused without ``force``: a good
    calibration is not replaced by one taken while the machine was busy."""
    from spmm_study.errors import ResultsError
    from spmm_study.files import atomic_write_text

    path = Path(path) if path else default_path()
    data = load(path)
    for e in entries if not force else []:
        old = data.get(e["machine"], {})
        low = [k for k in CEILING_KEYS if isinstance(old.get(k), (int, float)) and isinstance(e.get(k), (int, float))
               and e[k] < LOW_FRACTION * old[k]]
        if low:
            k = min(low, key=lambda k: e[k] / old[k])
            busy = "; ".join(busy_reasons(e))
            raise ResultsError(
                f"{path}: the new {k} {e[k]:,.1f} is {e[k] / old[k]:.0%} of the {old[k]:,.1f} stored for {e['machine']}"
                f"{' on ' + str(old['date']) if old.get('date') else ''}{' (busy: ' + busy + ')' if busy else ''}; "
                "a busy machine measures low: calibrate again when it is idle, or pass --force to store it")
    for e in entries:
        data[e["machine"]] = e
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def calibrate(cpu: bool = True, gpu: bool | None = None, tiny: bool = False) -> list[dict]:
    """Measure the ceilings of this machine: CPU always (unless ``cpu=False``), GPU when one is present
    (``gpu=None``) or when asked (``gpu=True``: an error if there is none)."""
    from spmm_study.errors import DeviceUnavailable
    from spmm_study.gpu.device import gpu_unavailable_reason

    out = []
    if cpu:
        out.append(cpu_ceilings(tiny))
    if gpu is not False:
        reason = gpu_unavailable_reason()
        if reason is None:
            out.append(gpu_ceilings(tiny))
        elif gpu:
            raise DeviceUnavailable(reason)
    return out


CEILING_NAMES = {"stream_gbps_1": ("triad bandwidth, 1 thread", "GB/s"),
                 "stream_gbps_all": ("triad bandwidth, all threads", "GB/s"),
                 "fma_gflops_fp32_1": ("fp32 FMA peak, 1 thread", "GFLOP/s"),
                 "fma_gflops_fp32_all": ("fp32 FMA peak, all threads", "GFLOP/s"),
                 "fma_gflops_fp64_1": ("fp64 FMA peak, 1 thread", "GFLOP/s"),
                 "fma_gflops_fp64_all": ("fp64 FMA peak, all threads", "GFLOP/s"),
                 "copy_gbps": ("GPU copy bandwidth", "GB/s"), "fma_gflops_fp32": ("GPU fp32 FMA peak", "GFLOP/s")}


def ceilings_table(entries: list[dict], path: Path):
    """The table ``calibrate`` prints: one line per machine and ceiling measured."""
    from spmm_study.table import Table

    t = Table(title=f"Ceilings stored in {path}", columns=["machine", "ceiling", "value"])
    for e in entries:
        t.rows += [[e["machine"], label, f"{e[key]:,.1f} {unit}"] for key, (label, unit) in CEILING_NAMES.items()
                   if key in e]
    return t
