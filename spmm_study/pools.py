"""Idle thread pools must sleep, not spin — set before numpy, numba or MKL load their runtimes.

numba (GNU OpenMP or TBB), OpenBLAS (numpy) and MKL (Intel OpenMP) each start a pool; after a parallel call
their workers keep spinning (Intel's default KMP_BLOCKTIME is 200 ms). On a 2-core machine a spinning idle
pool takes a core from the next variant: in one interleaved process every 2-thread kernel took 6-10 ms (a
scheduler time slice) instead of 0.5 ms (measured 2026-11-23, experiments/notes-cpu.md). The user's own
settings win (``setdefault``); the values in force are recorded in meta.json by ``environment.describe``.

numba's libgomp pool gets a bounded spin, not a passive wait: with ``OMP_WAIT_POLICY=PASSIVE`` every parallel
call wakes its workers through the kernel (futex), and an empty 2-thread ``prange`` call cost 22–33 µs
(median) against 3.9–4.5 µs with ``GOMP_SPINCOUNT=3000`` — a tenth of a 0.2 ms kernel. 3000 spins last about
85 µs here (the CPU a worker burns after the last call of a run: 0.31 ms with 3000, 0.22 ms passive, 9.1 ms
with libgomp's default of 300 000), so a spinning worker can take a core from another pool for at most
that long (measured 2026-12-02, Intel Xeon KVM guest, 2 cores, ``experiments/notes-cpu.md`` §3).
"""

import os

QUIET_POOLS = (("KMP_BLOCKTIME", "0"), ("GOMP_SPINCOUNT", "3000"), ("OPENBLAS_THREAD_TIMEOUT", "4"))


def quiet_idle_pools() -> None:
    for key, val in QUIET_POOLS:
        os.environ.setdefault(key, val)
