"""Host memory: how much is free (for the size checks before any allocation) and 64-byte-aligned arrays."""

from __future__ import annotations

import os

import numpy as np


def available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


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
