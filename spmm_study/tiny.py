"""``SPMM_STUDY_TINY=1``: every command at tiny sizes, so a test can run each command the docs show in seconds.

The numbers it prints then mean nothing; what it proves is that the command, as written, parses, loads its
inputs, checks every variant against float64 and writes its files. This module is the one place that says
what shrinks; the commands call it at the few points where sizes are decided:

* every problem a measuring command builds (``Problem.make``): A cut to its first ``ROWS`` rows and ``COLS``
  columns (a multiple of 16, so 2:4 groups and BSR blocks stay whole), N capped at ``N``; a convolution
  (``ConvProblem.make``): its first ``ROWS`` filters on an ``IMAGE`` × ``IMAGE`` image;
* every grid a measuring command plans (``plan``): its first ``TASKS`` measurements; ``check``: its first
  ``CASES`` edge matrices;
* every timing (``TimingConfig``): one repeat, no minimum time, no warm-up, warm caches (no flush buffer),
  one round;
* ``lab``: the labs' own tiny size; ``calibrate``: its tiny sizes, stored even when far below the stored
  ceilings (tiny numbers mean nothing, so they are never a reason to refuse);
* ``infer`` and ``propagate``: at most ``BATCH`` inputs, the first ``LAYERS`` layers, one repeat; the parts of
  ``infer --parts`` run one after the other in the one process.

GPU commands under ``NUMBA_ENABLE_CUDASIM=1`` (the CUDA simulator) need exactly these sizes to finish.
"""

from __future__ import annotations

import os

ENV = "SPMM_STUDY_TINY"
ROWS, COLS, N = 16, 64, 8  # the CUDA simulator runs every GPU thread as a Python thread: keep the grid small
BATCH, LAYERS, REPEATS = 48, 3, 1
TASKS = 6  # measurements per command (a sweep's or autotune's grid cut to its first TASKS)
CASES = 2  # edge matrices per 'check'
IMAGE = 8  # pixels per side of a convolution's input


def active() -> bool:
    """Read at every call, so a test can switch it on for one command."""
    return os.environ.get(ENV, "") not in ("", "0")


def problem(a, n: int):
    """(A, N) of a problem: as given, or cut to the tiny size."""
    if not active():
        return a, n
    if a.m > ROWS or a.k > COLS:
        from spmm_study.formats import CSR

        a = CSR.from_scipy(a.to_scipy()[:ROWS, :COLS])
    return a, min(n, N)


def conv(a, geom):
    """(weights, geometry) of a convolution: as given, or the first ``ROWS`` filters (rows of A; the columns,
    input channels × taps, stay whole) on an image of at most ``IMAGE`` × ``IMAGE`` pixels."""
    if not active():
        return a, geom
    from dataclasses import replace

    if a.m > ROWS:
        from spmm_study.formats import CSR

        a = CSR.from_scipy(a.to_scipy()[:ROWS, :])
    return a, replace(geom, h=min(geom.h, IMAGE), w=min(geom.w, IMAGE), batch=1)


def timing(repeats: int, min_time_s: float, warmup_s: float, cache: str, rounds: int) -> tuple:
    """The timing values, or the tiny ones: one repeat, no minimum time or warm-up, warm caches, one round."""
    if not active():
        return repeats, min_time_s, warmup_s, cache, rounds
    return 1, 0.0, 0.0, "warm", 1


def tasks(tasks: list) -> list:
    """The measurements a command plans, or the first ``TASKS`` of them."""
    return tasks[:TASKS] if active() else tasks


def cases(outcomes):
    """The edge-matrix checks of ``check``, or the first ``CASES`` of them (an iterator: the rest never run)."""
    import itertools

    return itertools.islice(outcomes, CASES) if active() else outcomes


def size(size: str) -> str:
    """A lab's size (``quick``, ``full``), or ``tiny``."""
    return "tiny" if active() else size


def infer(batch: int | None, layers: int | None, repeats: int, chain: int = 0) -> tuple:
    """``infer``/``propagate``: (batch, layers, repeats), capped; ``chain``: the number of matrix specs given
    (a chain of specs keeps at most all of them)."""
    if not active():
        return batch, layers, repeats
    most = min(LAYERS, chain) if chain else LAYERS
    return min(batch or BATCH, BATCH), min(layers or most, most), REPEATS
