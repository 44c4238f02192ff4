"""Is there a GPU? The one place where the GPU is optional (docs/ARCHITECTURE.md §11.7).

``gpu_unavailable_reason()`` answers without importing numba.cuda when it can (no numba-cuda installed,
no driver), so ``spmm-study list`` stays fast; otherwise it asks numba.cuda once and caches the answer.
Under ``NUMBA_ENABLE_CUDASIM=1`` the simulator counts as a device (tests use it on CPU-only CI).
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.util import find_spec


def simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@lru_cache(maxsize=1)
def gpu_unavailable_reason() -> str | None:
    """None when GPU variants can run here, else one line saying why not."""
    if find_spec("numba_cuda") is None:
        return "numba-cuda is not installed (pip install 'spmm-study[gpu]')"
    if simulator():
        return None
    if not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")):
        return "no CUDA device: no NVIDIA driver device node on this machine"
    try:
        from numba import cuda

        if not cuda.is_available():
            return "no CUDA device: numba.cuda found no usable GPU"
    except Exception as exc:  # noqa: BLE001
        return f"no CUDA device: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


@lru_cache(maxsize=1)
def cupy_unavailable_reason() -> str | None:
    reason = gpu_unavailable_reason()
    if reason:
        return reason
    if simulator():
        return "cupy needs a real GPU (not the numba CUDA simulator)"
    if find_spec("cupy") is None:
        return "cupy is not installed (pip install 'spmm-study[gpu]')"
    return None


def bind_cuda(module_globals: dict) -> None:
    """Bind the kernel module's global ``cuda`` (declared ``cuda = None`` at its top, so no name is injected
    unseen) to numba.cuda, imported now. Kernels must see numba.cuda as a module global, not a closure variable:
    the simulator swaps its fake ``cuda`` module into a kernel's globals."""
    if module_globals.get("cuda") is None:
        from numba import cuda

        module_globals["cuda"] = cuda
