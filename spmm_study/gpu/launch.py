"""A low-overhead launch for prepared kernels: bind kernel, grid, block and arguments once, then each call is
one ``cuLaunchKernel`` through ctypes.

Why: a numba-cuda launch ``k[grid, block](*args)`` costs the host 40–120 µs (measured on the H100,
``host_dispatch_s``): it types every argument, looks the specialisation up, flattens every array into its
(meminfo, parent, size, itemsize, data, shape…, strides…) fields, builds a launch configuration and hands all
of it to cuda.core — on every call, although a prepared variant launches the same kernel on the same
buffers every time. At N=256 that is four times the kernel itself.

``BoundLaunch`` does all of that once, at bind: it asks the dispatcher for the compiled kernel of these
argument types, lets numba's own ``_prepare_args`` flatten the arguments (so the layout is exactly the one
the kernel was compiled for), turns the fields into ctypes values with a ``void*[]`` of their addresses,
and takes the kernel's driver handle. A call is then ``cuLaunchKernel(fn, grid, block, 0, stream 0,
params, NULL)``: one foreign call, no allocation. It launches on the legacy default stream, as numba's
launches, the timing events and the library baselines do, so ordering is unchanged.

Where the bound path cannot be taken — the simulator (no driver), a debug or cooperative kernel, an
argument that is not a device array or a scalar (a host array would need a copy back), or any surprise in
numba's private launch internals — it falls back to numba's own launch and says why in ``mode``.
It is the default: ``kernel_prepared`` (every numba rung) binds after the first call; ``SPMM_STUDY_GPU_LAUNCH=numba``
keeps numba's own launch (``info["launch"]`` records which ran). The device test
(tests/test_gpu_launch.py, ``-m gpu``) checks both give the same bits and that bound dispatches faster.
A CUDA graph of the prepared launch would cut the driver call too; it is not built (it needs a non-default
stream for capture, i.e. moving the timing onto it).
"""

from __future__ import annotations

import ctypes
import os

from spmm_study.errors import ParamError
from spmm_study.gpu.device import simulator

ENV = "SPMM_STUDY_GPU_LAUNCH"
MODES = ("numba", "bound")


def launch_mode() -> str:
    mode = os.environ.get(ENV, "bound") or "bound"
    if mode not in MODES:
        raise ParamError(f"{ENV}={mode!r}: choose {' or '.join(MODES)}")
    return mode


def to_ctypes(kernelargs) -> list:
    """numba's flattened kernel arguments as ctypes values: ctypes scalars stay, bools are C bools, Python
    ints (pointers, sizes, shapes, strides: numba passes them as intptr_t) are ``c_ssize_t``."""
    out = []
    for x in kernelargs:
        if isinstance(x, ctypes._SimpleCData):
            out.append(x)
        elif isinstance(x, bool):
            out.append(ctypes.c_bool(x))
        elif isinstance(x, int):
            out.append(ctypes.c_ssize_t(x))
        else:
            raise TypeError(f"kernel argument of type {type(x).__name__} cannot be bound")
    return out


def param_array(values: list):
    """The ``void*[]`` cuLaunchKernel reads: the address of each value (the values must outlive it)."""
    arr = (ctypes.c_void_p * max(1, len(values)))()
    for i, v in enumerate(values):
        arr[i] = ctypes.addressof(v)
    return arr


def dims(d) -> tuple[int, int, int]:
    d = (d,) if isinstance(d, int) else tuple(d)
    if not 1 <= len(d) <= 3 or not all(isinstance(x, int) and x >= 1 for x in d):
        raise ParamError(f"launch dimensions {d!r} must be 1 to 3 positive integers")
    return tuple(d) + (1,) * (3 - len(d))


_driver: dict = {}


def _cu_launch():
    if "launch" not in _driver:
        lib = ctypes.CDLL("libcuda.so.1")
        f = lib.cuLaunchKernel
        f.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
        f.restype = ctypes.c_int
        name = lib.cuGetErrorName
        name.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        name.restype = ctypes.c_int
        _driver["launch"], _driver["name"] = f, name
    return _driver["launch"]


def _error_name(code: int) -> str:
    out = ctypes.c_char_p()
    try:
        _driver["name"](code, ctypes.byref(out))
        return out.value.decode() if out.value else str(code)
    except Exception:  # noqa: BLE001
        return str(code)


class BoundLaunch:
    """``configured(*args)`` (a numba ``kernel[grid, block]``) bound once; call it to launch."""

    def __init__(self, configured, args):
        self.configured = configured
        self.args = tuple(args)  # keeps the device arrays alive as long as the launch can run
        self.mode = "numba"
        self.reason = ""
        if simulator():
            self.reason = "simulator"
            return
        try:
            self._bind()
            self.mode = "bound"
        except Exception as exc:  # noqa: BLE001 - any surprise: numba's launch, with the reason kept
            self.reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]

    def _bind(self) -> None:
        disp = self.configured.dispatcher
        if getattr(disp, "extensions", None):
            raise TypeError("kernels with argument extensions are launched by numba")
        argtypes = tuple(disp.typeof_pyval(a) for a in self.args)
        kernel = disp.compile(argtypes)
        if getattr(kernel, "debug", False) or getattr(kernel, "cooperative", False):
            raise TypeError("debug and cooperative kernels are launched by numba")
        retr: list = []
        flat: list = []
        for t, v in zip(kernel.argument_types, self.args):
            kernel._prepare_args(t, v, 0, retr, flat)
        if retr:
            raise TypeError("an argument is a host array (it would need a copy back after every launch)")
        kernel.bind()
        self._values = to_ctypes(flat)
        self._params = param_array(self._values)
        self._fn = ctypes.c_void_p(int(kernel._codelibrary.get_cufunc().handle))
        self._grid = dims(self.configured.griddim)
        self._block = dims(self.configured.blockdim)
        self._smem = int(self.configured.sharedmem or 0)
        if int(getattr(self.configured.stream, "handle", 0) or 0):
            raise TypeError("only launches on the default stream are bound")
        self._launch = _cu_launch()

    def __call__(self) -> None:
        if self.mode != "bound":
            self.configured(*self.args)
            return
        g, b = self._grid, self._block
        code = self._launch(self._fn, g[0], g[1], g[2], b[0], b[1], b[2], self._smem, None, self._params, None)
        if code:
            raise RuntimeError(f"cuLaunchKernel failed: {_error_name(code)}")

    def describe(self) -> str:
        return "bound (one cuLaunchKernel per call)" if self.mode == "bound" else f"numba ({self.reason})"
