"""Plumbing shared by the GPU rungs: lazy ``numba.cuda``, device buffers, a ``Prepared`` for kernels.

Nothing here imports ``numba.cuda`` at module import: every entry point imports it on first call, so the
registry can list GPU variants on machines without numba-cuda (docs/ARCHITECTURE.md §11.7).

``kernel_prepared`` turns a list of (configured kernel, args) launches into a ``Prepared``: ``run()`` only
enqueues (asynchronous; by default through ``launch.BoundLaunch`` after the first
call, ``info["launch"]`` says which path ran), ``sync()`` waits, ``fetch()`` copies C to the host, ``poison()`` fills C with NaN on
the device. After the first launch it adds each kernel's resource report (registers per thread, static
shared memory per block, local memory per thread = spills or register arrays gone to memory) to ``info``;
the simulator has no such report, so the keys are left out there.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from spmm_study.errors import FormatError, ParamError
from spmm_study.formats import NM24
from spmm_study.gpu.device import bind_cuda, simulator  # noqa: F401  (bind_cuda: the kernel files take it from here)
from spmm_study.gpu.timing import time_gpu
from spmm_study.registry import Prepared

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None


def cuda_module():
    from numba import cuda

    return cuda


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@lru_cache(maxsize=1)
def _fill_kernel():
    bind_cuda(globals())

    @cuda.jit(cache=not simulator())
    def fill(a, value):
        # grid-stride loop: one launch of a few thousand threads fills any size
        start, stride = cuda.grid(1), cuda.gridsize(1)
        for i in range(start, a.size, stride):
            a[i] = value

    return fill


def fill(dev_flat, value: float) -> None:
    """Fill a 1-D device array with ``value`` (asynchronously)."""
    if dev_flat.size == 0:
        return
    threads = 128 if not simulator() else 32
    blocks = min(ceil_div(dev_flat.size, threads), 1024 if not simulator() else 2)
    _fill_kernel()[blocks, threads](dev_flat, dev_flat.dtype.type(value))


def flat(dev2d):
    """A 1-D view of a C-contiguous device array (shares memory)."""
    return dev2d.reshape(dev2d.size)


def resources(kernel) -> dict:
    """The compiler's resource report for a kernel that has been compiled once (empty in the simulator)."""
    if simulator():
        return {}
    out = {}
    for key, fn in (("regs_per_thread", "get_regs_per_thread"), ("smem_static_bytes", "get_shared_mem_per_block"),
                    ("local_bytes_per_thread", "get_local_mem_per_thread")):
        try:
            val = getattr(kernel, fn)()
            if isinstance(val, dict):  # one entry per compiled signature; a rung compiles one
                val = max(val.values()) if val else None
            if val is not None:
                out[key] = int(val)
        except Exception:  # noqa: BLE001 - a report we cannot read is left out, never invented
            pass
    return out


def device_bc(problem):
    """B and C on the device; C poisoned (for rungs that bring A in their own format)."""
    cu = cuda_module()
    b = cu.to_device(problem.b)
    c = cu.device_array((problem.m, problem.n), dtype=problem.dtype)
    fill(flat(c), np.nan)
    return b, c


def device_csr(a):
    """A CSR's (indptr, indices, data) on the device; an empty matrix's arrays hold one unread element."""
    cu = cuda_module()
    indptr = cu.to_device(np.ascontiguousarray(a.indptr))
    indices = cu.to_device(np.ascontiguousarray(a.indices) if a.nnz else np.zeros(1, a.indices.dtype))
    data = cu.to_device(np.ascontiguousarray(a.data) if a.nnz else np.zeros(1, a.dtype))
    return indptr, indices, data


def device_arrays(problem):
    """A (CSR), B and C on the device; C poisoned."""
    return (*device_csr(problem.a), *device_bc(problem))


def check_vec(vec: int, dtype) -> None:
    if vec not in (1, 2, 4):
        raise ParamError(f"vec={vec}: choose 1, 2 or 4")
    if vec * np.dtype(dtype).itemsize > 16:
        raise ParamError(f"vec={vec} with {np.dtype(dtype).name} is a {vec * np.dtype(dtype).itemsize}-byte load; "
                         "the widest is 16 bytes (use vec<=2 for float64)")


def kernel_prepared(launches, c_dev, info: dict, kernels=(), keep=(), before=()) -> Prepared:
    """Prepared for numba kernels. ``launches``: [(kernel[grid, block], args)], run in order;
    ``before``: callables run first (e.g. zeroing C for an atomic kernel)."""
    from spmm_study.gpu.launch import BoundLaunch, launch_mode

    cu = cuda_module()
    c_flat = flat(c_dev)
    state = {"reported": False, "bound": None}
    info = dict(info)
    mode = launch_mode()
    info["launch"] = "numba"

    def run():
        for fn in before:
            fn()
        if state["bound"] is not None:
            for bound in state["bound"]:
                bound()
        else:
            for launch, args in launches:
                launch(*args)
        if not state["reported"]:
            state["reported"] = True
            for name, k in kernels:
                for key, val in resources(k).items():
                    info[f"{name}{key}" if name else key] = val
            if mode == "bound":  # after the first call: the kernels are compiled for these arguments now
                state["bound"] = [BoundLaunch(launch, args) for launch, args in launches]
                info["launch"] = "; ".join(sorted({b.describe() for b in state["bound"]}))

    def release():
        keep_refs.clear()
        state["bound"] = None

    keep_refs = [c_dev, *keep]
    return Prepared(
        run=run,
        fetch=lambda: c_dev.copy_to_host(),
        poison=lambda: fill(c_flat, np.nan),
        sync=cu.synchronize,
        clock=time_gpu,
        info=info,
        release=release,
    )


def grid_for(total: int, per_block: int, cap: int | None = None) -> int:
    g = max(1, ceil_div(total, per_block))
    return min(g, cap) if cap else g


def log2(x: int) -> int:
    return int(math.log2(x))


def ptx_types():
    """The numba types a rung's ``ptx=`` function writes its kernel signatures with (imports numba.cuda, so
    call it only inside that function): ``t.f32``, ``t.i64``..., ``t.a1(t.f32)`` a 1-D C-contiguous array,
    ``t.a2(...)`` a 2-D one, ``t.csr`` the (indptr, indices, data) of an int32/fp32 CSR."""
    from types import SimpleNamespace

    from numba.cuda import types as t

    def a1(d):
        return d[::1]

    def a2(d):
        return d[:, ::1]

    return SimpleNamespace(f32=t.float32, f64=t.float64, i32=t.int32, i64=t.int64, u8=t.uint8, u16=t.uint16, i8=t.int8,
                           a1=a1,
                           a2=a2, csr=(a1(t.int32), a1(t.int32), a1(t.float32)))


# ----------------------------------------------------------------------------------------------- host-side helpers rungs share


def longest_first(indptr: np.ndarray) -> np.ndarray:
    """Row order by decreasing length (stable, so equal rows keep their order)."""
    lengths = np.diff(np.asarray(indptr, dtype=np.int64))
    return np.argsort(-lengths, kind="stable").astype(np.int32)


def to_24(a):
    """CSR → (values M×S, meta M×S uint8) with S = 2·ceil(K/4); FormatError if a group holds > 2 nonzeros."""
    reason = NM24.violation(a)  # the one 2:4 test of the project (also what ``accepts`` asks)
    if reason:
        raise FormatError(reason)
    groups = -(-a.k // 4)
    vals = np.zeros((a.m, 2 * groups), dtype=a.dtype)
    meta = np.zeros((a.m, 2 * groups), dtype=np.uint8)
    rows = np.repeat(np.arange(a.m), np.diff(a.indptr))
    cols = np.asarray(a.indices, dtype=np.int64)
    g = cols // 4
    key = rows.astype(np.int64) * groups + g
    # position of each nonzero inside its (row, group): 0, 1, 2... (columns are sorted within rows)
    order = np.lexsort((cols, key))
    key_s = key[order]
    start = np.r_[0, np.flatnonzero(np.diff(key_s)) + 1] if key_s.size else np.zeros(0, np.int64)
    rank = np.arange(key_s.size) - np.repeat(start, np.diff(np.r_[start, key_s.size]))
    slot = 2 * g[order] + rank
    vals[rows[order], slot] = a.data[order]
    meta[rows[order], slot] = (cols[order] % 4).astype(np.uint8)
    return vals, meta


def link_ltoir(py_func, signature, source: Path, cc=(9, 0)) -> str:
    """A numba kernel (LTO-IR, numba's ABI) linked with a CUDA C file (LTO-IR by NVRTC) by nvJitLink into PTX:
    what numba does on a device with ``cuda.declare_device(..., link=[source])``, done without one."""
    from cuda.bindings import nvjitlink, nvrtc
    from numba import cuda

    ltoir, _ = cuda.compile(py_func, signature, device=False, cc=cc, output="ltoir", abi="numba")
    err, prog = nvrtc.nvrtcCreateProgram(source.read_bytes(), source.name.encode(), 0, [], [])
    opts = [f"--gpu-architecture=compute_{cc[0]}{cc[1]}".encode(), b"-rdc=true", b"-dlto"]
    (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        raise RuntimeError(f"NVRTC: {log.decode(errors='replace').strip()}")
    _, size = nvrtc.nvrtcGetLTOIRSize(prog)
    cu_ltoir = b" " * size
    nvrtc.nvrtcGetLTOIR(prog, cu_ltoir)
    nvrtc.nvrtcDestroyProgram(prog)
    handle = nvjitlink.create(3, [f"-arch=sm_{cc[0]}{cc[1]}", "-lto", "-ptx"])
    try:
        nvjitlink.add_data(handle, nvjitlink.InputType.LTOIR, ltoir, len(ltoir), "kernel")
        nvjitlink.add_data(handle, nvjitlink.InputType.LTOIR, cu_ltoir, len(cu_ltoir), source.name)
        nvjitlink.complete(handle)
        out = bytearray(nvjitlink.get_linked_ptx_size(handle))
        nvjitlink.get_linked_ptx(handle, out)
    finally:
        nvjitlink.destroy(handle)
    return bytes(out).rstrip(b"\0").decode(errors="replace")
