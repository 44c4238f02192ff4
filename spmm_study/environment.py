"""What machine and software a result came from: CPU model, cores, caches, threads, GPU, versions, git commit.

Everything here is cheap except ``gpu_info`` (imports numba.cuda), which is only called when asked.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def simd_label() -> str:
    flags = cpu_flags()
    for name in ("avx512f", "avx2", "avx", "sse4_2", "neon"):
        if name in flags:
            return name
    return platform.machine()


def caches() -> dict[str, str]:
    out = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(base.glob("index*")):
        try:
            level = (idx / "level").read_text().strip()
            kind = (idx / "type").read_text().strip()
            size = (idx / "size").read_text().strip()
            shared = (idx / "shared_cpu_list").read_text().strip()
        except OSError:
            continue
        name = f"L{level}" + ({"Data": "d", "Instruction": "i"}.get(kind, ""))
        out[name] = f"{size} (cpus {shared})"
    return out


def cache_bytes(name: str) -> int | None:
    """Size in bytes of one data cache of cpu0 (``L1d``, ``L2``, ``L3``) from sysfs, or None where unreadable."""
    text = caches().get(name, "").split(" ", 1)[0]
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    digits = text.rstrip("KkMmGg")
    return int(digits) * scale if digits.isdigit() and int(digits) > 0 else None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def versions(names=("numpy", "scipy", "numba", "llvmlite", "numba-cuda", "cupy-cuda13x", "cupy-cuda12x",
                    "sparse_dot_mkl", "threadpoolctl", "torch")) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(path: Path | None = None) -> str:
    path = path or Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if res.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return res.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def thread_pools() -> list[dict]:
    """Every BLAS/OpenMP pool loaded in this process (threadpoolctl) and numba's."""
    pools = []
    try:
        import numba

        pools.append({"library": "numba", "threading_layer": _numba_layer(), "num_threads": numba.get_num_threads()})
    except Exception:  # noqa: BLE001
        pass
    try:
        from threadpoolctl import threadpool_info

        for p in threadpool_info():
            pools.append({k: p.get(k) for k in ("internal_api", "num_threads", "version", "architecture")})
    except Exception:  # noqa: BLE001
        pass
    return pools


def _numba_layer() -> str:
    try:
        import numba

        return numba.threading_layer()
    except Exception:  # noqa: BLE001 - only known after the first parallel call
        return "not started"


@lru_cache(maxsize=1)
def gpu_info() -> dict:
    """Name, compute capability, SMs and memory of device 0, or {'error': reason}."""
    from spmm_study.gpu.device import gpu_unavailable_reason, simulator

    reason = gpu_unavailable_reason()
    if reason:
        return {"error": reason}
    if simulator():  # the simulator's fake device has no name, SMs or memory: say what ran instead
        return {"name": "numba CUDA simulator (no GPU: its times are not GPU times)",
                "simulator": True}
    try:
        from numba import cuda

        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        info = {"name": name, "compute_capability": ".".join(map(str, dev.compute_capability)),
                "multiprocessors": dev.MULTIPROCESSOR_COUNT}
        try:
            free, total = cuda.current_context().get_memory_info()
            info["memory_gib"] = round(total / 2**30, 1)
        except Exception:  # noqa: BLE001
            pass
        return info
    except Exception as exc:  # noqa: BLE001
        return {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def machine_label(device: str = "cpu") -> str:
    if device == "gpu":
        g = gpu_info()
        return g.get("name", "no GPU")
    return f"{cpu_model()} ({cores()} cores)"


def describe(include_gpu: bool = False, argv: list[str] | None = None) -> dict:
    env = {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cores": cores(),
        "simd": simd_label(),
        "caches": caches(),
        "versions": versions(),
        "git_commit": git_commit(),
        "command": " ".join(["spmm-study"] + list(sys.argv[1:] if argv is None else argv)),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("NUMBA_", "OMP_", "KMP_", "OPENBLAS_", "MKL_", "SPMM_STUDY_", "CUDA_VISIBLE"))},
    }
    if include_gpu:
        env["gpu"] = gpu_info()
    return env


def info_table(env: dict):
    """``info``: ``describe()`` (with ``thread_pools``) as a two-column table."""
    from spmm_study.table import Table

    rows = [[key, str(env[key])] for key in ("cpu_model", "cores", "simd", "platform", "git_commit")]
    rows += [[f"cache {k}", v] for k, v in env["caches"].items()] + [[k, v] for k, v in env["versions"].items()]
    rows += [[f"threads: {p.get('library') or p.get('internal_api')}", str(p.get("num_threads"))]
             for p in env.get("thread_pools", [])]
    if "gpu" in env:
        g = env["gpu"]
        rows.append(["gpu", g.get("error") and f"unavailable: {g['error']}" or ", ".join(f"{k}={v}" for k, v in g.items())])
    return Table(title="", columns=["fact", "value"], rows=rows, header=False)
