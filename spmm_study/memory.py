"""Host memory: how much is free (for the size checks before any allocation) and 64-byte-aligned arrays."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import numpy as np


def system_available_bytes() -> int:
    """MemAvailable of /proc/meminfo (free pages elsewhere): the whole machine's free memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2); None when unlimited or unknown."""
    try:
        with open("/proc/self/cgroup") as f:
            rel = next((line.split(":", 2)[2].strip() for line in f if line.startswith("0::")), None)
        if rel is None:
            return None
        base = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def available_memory_bytes() -> int:
    """Bytes this process may still allocate: the machine's free memory, within RLIMIT_AS (``ulimit -v``,
    less the address space already mapped) and the cgroup's memory.max. A run under a limit is then refused in
    one line by the size checks, instead of dying in a MemoryError or the kernel's OOM killer."""
    room = system_available_bytes()
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        room = min(room, max(soft - (_proc_status_bytes("VmSize") or 0), 0))
    cg = _cgroup_room()
    if cg is not None:
        room = min(room, max(cg, 0))
    return room


ALIGN = 64  # one cache line and one AVX-512 vector: numpy's default 16-byte alignment splits vector loads


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose first element sits on a 64-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_full(shape: tuple[int, int], fill: float, dtype) -> np.ndarray:
    """``aligned_empty`` filled with ``fill``."""
    arr = aligned_empty(shape, dtype)
    arr.fill(fill)
    return arr
