"""The Sparse DNN chain on the GPU with no host round trip: every layer enqueued at once, the live inputs
compacted on the device, the host reads the counts and the answer once, at the end.

Why: the first GPU chain copied the n live flags to the host after every layer to size the next launch and
compact Yᵀ. On the H100 (2026-12-07, 60000 inputs, 1024 × 120) that chain took 109 ms, 0.6–0.9 ms per
layer once ~1000 inputs were left — kernels of a few µs each, waiting on launches and copies — while torch's
chain took 24.9 ms and the HPEC'20 champion 8.15 ms on an H200. Here the host only enqueues.

Per layer l (A = Wᵀ, m × k CSR): its input is ``n = cnt[l]`` live columns of the previous layer's output
(row stride ``cnt[l - 1]``), named by ``keep`` (their indices there; the identity for the first layer):

1. ``layer``: C = act(A·Yᵀ + bias) over the n live columns, written tight (row stride n) — a warp per (row,
   128-column tile), rows innermost so the warps running together read the same columns of Yᵀ (they stay in
   L2); four accumulators per lane at lane + 32·u, each lane's four ``keep`` entries loaded once and reused
   over the row's nonzeros; the epilogue applied in registers; a lane that stores a nonzero sets
   ``flags[col]`` (a benign race: every writer stores 1). n is read from device memory, so the grid is fixed
   (sized for the first layer) and loops over the work that exists. Unfused: the same kernel with the
   epilogue off, then ``epilogue_pass`` reads C back, applies it and sets the flags — one more read and write
   of C per layer, what fusion saves.
2. ``scan`` (one block): the prefix sum of the flags lists the surviving columns (``keep`` for the next
   layer), their count goes to ``cnt[l + 1]``, the surviving input ids are compacted beside them, and the
   flags are cleared for the next layer.

No copy compacts Yᵀ: the next layer reads the survivors where they are, through ``keep`` (nearly coalesced
while most survive; a handful of scattered columns once few do). Two launches a layer (three unfused),
each a bound ``cuLaunchKernel`` (``gpu/launch.py``, about 6 µs of host time on the H100), no
synchronisation until the end; CUDA events between layers give each layer's device time. With
``--keep-dead`` every column stays (``keep`` the identity throughout) and the scan only counts.

Weights: values in fp32, column indices in 16 bits where the layer is at most 65536 wide (``narrow_indices``).
Traffic per layer: the live columns of Yᵀ read from L2 about nnz/m times per row tile it is not cached for,
C written once. Checked in the simulator against the float64 truth
(tests/test_cli_gpu.py, tests/nets_gpu_sim_case.py) with small launch shapes.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from spmm_study.gpu.device import bind_cuda
from spmm_study.gpu.device import simulator

# numba.cuda, bound by bind_cuda() when a kernel is first built: kernels need it as a module global
cuda = None

VEC = 4  # accumulators per lane: a warp covers 32·VEC = 128 columns of a row
TILE = 32 * VEC


@lru_cache(maxsize=None)
def kernels(dtype: str, scan_threads: int):
    """The chain's kernels for ``dtype`` and a scan block of ``scan_threads`` (a power of two)."""
    bind_cuda(globals())
    from spmm_study.gpu.epilogue import epilogue

    epi = epilogue(dtype)
    zero = np.dtype(dtype).type(0)
    T = scan_threads
    cache = not simulator()

    @cuda.jit(cache=cache)
    def layer(indptr, indices, data, m, b, c, cnt, l, keep, bias, rule, act, ymax, fuse, flags):
        n = cnt[l + 1]  # live columns into this layer (cnt[0] is the batch: the first layer's input stride)
        stride = cnt[l]  # the row stride of b, the previous layer's output (or the inputs)
        tiles = (n + TILE - 1) // TILE
        lane = cuda.threadIdx.x & 31
        warp = cuda.grid(1) >> 5
        nwarps = cuda.gridsize(1) >> 5
        for w in range(warp, m * tiles, nwarps):
            tile = w // m
            i = w - tile * m
            c0 = tile * TILE + lane
            c1 = c0 + 32
            c2 = c0 + 64
            c3 = c0 + 96
            k0 = keep[c0] if c0 < n else 0
            k1 = keep[c1] if c1 < n else 0
            k2 = keep[c2] if c2 < n else 0
            k3 = keep[c3] if c3 < n else 0
            a0 = zero
            a1 = zero
            a2 = zero
            a3 = zero
            full = c3 < n
            for p in range(indptr[i], indptr[i + 1]):
                row = indices[p] * stride
                v = data[p]
                if full:
                    a0 += v * b[row + k0]
                    a1 += v * b[row + k1]
                    a2 += v * b[row + k2]
                    a3 += v * b[row + k3]
                else:
                    if c0 < n:
                        a0 += v * b[row + k0]
                    if c1 < n:
                        a1 += v * b[row + k1]
                    if c2 < n:
                        a2 += v * b[row + k2]
            out = i * n
            bi = bias[i]
            if fuse != 0:
                a0 = epi(a0, bi, rule, act, ymax)
                a1 = epi(a1, bi, rule, act, ymax)
                a2 = epi(a2, bi, rule, act, ymax)
                a3 = epi(a3, bi, rule, act, ymax)
            if c0 < n:
                c[out + c0] = a0
                if fuse != 0 and a0 != zero:
                    flags[c0] = 1
            if c1 < n:
                c[out + c1] = a1
                if fuse != 0 and a1 != zero:
                    flags[c1] = 1
            if c2 < n:
                c[out + c2] = a2
                if fuse != 0 and a2 != zero:
                    flags[c2] = 1
            if c3 < n:
                c[out + c3] = a3
                if fuse != 0 and a3 != zero:
                    flags[c3] = 1

    @cuda.jit(cache=cache)
    def epilogue_pass(c, m, cnt, l, bias, rule, act, ymax, flags):
        n = cnt[l + 1]
        for e in range(cuda.grid(1), m * n, cuda.gridsize(1)):
            i = e // n
            x = epi(c[e], bias[i], rule, act, ymax)
            c[e] = x
            if x != zero:
                flags[e - i * n] = 1

    @cuda.jit(cache=cache)
    def scan(flags, cnt, l, prune, keep, ids_in, ids_out, live):
        """Over the n = cnt[l + 1] columns of layer l's output: the survivors counted into live[l], their input
        ids compacted; pruned, they are listed in ``keep`` and only they go on (cnt[l + 2]); kept, ``keep``
        stays the identity and every column goes on."""
        sh = cuda.shared.array(T, np.int32)
        t = cuda.threadIdx.x
        n = cnt[l + 1]
        chunk = (n + T - 1) // T
        lo = min(t * chunk, n)
        hi = min(lo + chunk, n)
        s = 0
        for j in range(lo, hi):
            s += flags[j]
        sh[t] = s
        cuda.syncthreads()
        off = 1
        while off < T:  # Hillis–Steele inclusive scan over the T partial sums
            v = sh[t - off] if t >= off else 0
            cuda.syncthreads()
            sh[t] += v
            cuda.syncthreads()
            off *= 2
        start = sh[t] - s
        for j in range(lo, hi):
            if flags[j] != 0:
                ids_out[start] = ids_in[j]
                if prune != 0:
                    keep[start] = j
                start += 1
            flags[j] = 0
        if t == T - 1:
            cnt[l + 2] = sh[T - 1] if prune != 0 else n
            live[l] = sh[T - 1]

    return layer, epilogue_pass, scan


def narrow_indices(a) -> np.ndarray:
    """Column indices in 16 bits where the layer is at most 65536 wide (the challenge's 1024-neuron network: its
    120 layers' values and indices take 23.6 MB instead of 31.5, well inside an H100's 50 MB of L2)."""
    return a.indices.astype(np.uint16) if a.k <= 65536 else a.indices


def launch_shapes(work_warps: int, elems: int) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(layer grid, block), (elementwise grid, block) and the scan block for the first layer's work."""
    if simulator():  # every simulated thread is a Python thread
        return (min(2, max(1, -(-work_warps // 2))), 64), (2, 32), 32
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    return (max(1, min(-(-work_warps * 32 // 256), sms * 8)), 256), \
        (max(1, min(-(-elems // 256), sms * 8)), 256), 1024


def run(net, yt0: np.ndarray, prune_dead: bool, fused: bool = True):
    """Run ``net`` on Yᵀ₀ (neurons × inputs, float32). Returns (setup_s, (total_s, layer rows, live ids))."""
    from spmm_study.epilogue import ACT_CODE, RULE_CODE
    from spmm_study.gpu.launch import BoundLaunch
    from spmm_study.nets.batch import LayerRow

    t0 = time.perf_counter()
    bind_cuda(globals())
    n0 = int(yt0.shape[1])
    L = len(net.layers)
    width = max([yt0.shape[0], *(a.m for a in net.layers)])
    f32 = np.float32
    p = cuda.device_array(max(width * n0, 1), dtype=f32)
    q = cuda.device_array(max(width * n0, 1), dtype=f32)
    if yt0.size:
        p[: yt0.size].copy_to_device(np.ascontiguousarray(yt0, dtype=f32).ravel())
    # cnt[l + 1]: columns live into layer l; cnt[l]: the row stride of its input (cnt[0] = the batch)
    cnt = cuda.to_device(np.full(L + 2, n0, np.int64))
    live = cuda.to_device(np.zeros(max(L, 1), np.int64))  # inputs alive after each layer, pruned or not
    flags = cuda.to_device(np.zeros(max(n0, 1), np.int32))
    keep = cuda.to_device(np.arange(max(n0, 1), dtype=np.int64))
    ids = [cuda.to_device(np.arange(max(n0, 1), dtype=np.int32)), cuda.device_array(max(n0, 1), dtype=np.int32)]
    layers = [(cuda.to_device(np.ascontiguousarray(a.indptr)),
               cuda.to_device(np.ascontiguousarray(narrow_indices(a)) if a.nnz else np.zeros(1, np.uint16)),
               cuda.to_device(np.ascontiguousarray(a.data, dtype=f32) if a.nnz else np.zeros(1, f32)),
               cuda.to_device(np.ascontiguousarray(b, dtype=f32))) for a, b in zip(net.layers, net.biases)]
    (lg, lb), (eg, eb), scan_t = launch_shapes(width * -(-n0 // TILE), width * n0)
    layer_k, epi_k, scan_k = kernels("float32", scan_t)
    codes = (np.int64(RULE_CODE[net.rule]), np.int64(ACT_CODE[net.act]), f32(net.ymax))
    prune = np.int64(1 if prune_dead else 0)
    steps = []  # per layer: the bound launches, in order
    src, dst = p, q
    for l, (a, (indptr, indices, data, bias)) in enumerate(zip(net.layers, layers)):
        li, m = np.int64(l), np.int64(a.m)
        launches = [BoundLaunch(layer_k[lg, lb], (indptr, indices, data, m, src, dst, cnt, li, keep, bias, *codes,
                                                  np.int64(1 if fused else 0), flags))]
        if not fused:
            launches.append(BoundLaunch(epi_k[eg, eb], (dst, m, cnt, li, bias, *codes, flags)))
        # pruned: the ids compact along with the columns; kept: the columns never move, the ids stay the identity
        ids_in, ids_out = (ids[l % 2], ids[(l + 1) % 2]) if prune_dead else (ids[0], ids[1])
        launches.append(BoundLaunch(scan_k[1, scan_t], (flags, cnt, li, prune, keep, ids_in, ids_out, live)))
        steps.append(launches)
        src, dst = dst, src
    events = [cuda.event() for _ in range(L + 1)]
    # every kernel was compiled and bound above (BoundLaunch compiles for the arguments it binds; in the
    # simulator nothing compiles): the timed chain below runs no compiler
    cuda.synchronize()
    setup = time.perf_counter() - t0
    t_start = time.perf_counter()
    events[0].record()
    for l, launches in enumerate(steps):
        for launch in launches:
            launch()
        events[l + 1].record()
    cuda.synchronize()
    total = time.perf_counter() - t_start
    counts = cnt.copy_to_host()
    alive = live.copy_to_host()
    last = ids[L % 2 if prune_dead else 1].copy_to_host()[: int(alive[L - 1])] if L else np.zeros(0, np.int32)
    rows = []
    for l, a in enumerate(net.layers):
        dt = events[l].elapsed_time(events[l + 1]) / 1e3
        rows.append(LayerRow(l + 1, int(counts[l + 1]), int(alive[l]), a.nnz, dt))
    return setup, (total, rows, np.sort(last.astype(np.int64)))
