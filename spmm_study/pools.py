"""Idle thread pools must sleep, not spin — set before numpy, numba or MKL load their runtimes.

numba (GNU OpenMP or TBB), OpenBLAS (numpy) and MKL (Intel OpenMP) each start a pool; after a parallel call
their workers keep spinning (Intel's default KMP_BLOCKTIME is 200 ms). On a 2-core machine a spinning idle
pool takes a core from the next variant: in one interleaved process every 2-thread kernel took 6-10 ms (a
scheduler time slice) instead of 0.5 ms (measured 2026-11-23, experiments/notes-cpu.md). The user's own
settings win (``setdefault``); the values in force are recorded in meta.json by ``environment.describe``.
"""

import os

QUIET_POOLS = (("KMP_BLOCKTIME", "0"), ("OMP_WAIT_POLICY", "PASSIVE"), ("OPENBLAS_THREAD_TIMEOUT", "4"))


def quiet_idle_pools() -> None:
    for key, val in QUIET_POOLS:
        os.environ.setdefault(key, val)
