"""The inspector of ``cpu.csr.auto``: time the fitted rule's top candidates on the user's own matrix and N, keep
the winner in a per-user cache keyed by the matrix's structure, N, dtype, threads and machine.

Why: a rule fitted on some matrices of some machine picks the best rung about 40% of the time and is
within 5% of the best on average — but its worst cases are 0.6–0.8× (the issue 24 table), and MKL's own
inspector (``mkl_sparse_optimize``, ``cpu.csr.mkl_opt``) closes exactly that gap by looking at the matrix
before the calls. This does the same, with a bound: at most ``CANDIDATES`` builds, each called once untimed
(compile or cache load), then interleaved rounds (A B C A B C …: every candidate sees the same disturbances
of a shared machine) of one timed call each, until ``calls`` rounds or until ``budget_s`` seconds have gone
into the builds and timed calls (at least one round always runs; a candidate not yet built when the budget
is gone is not built, and then the winner is not cached). The first call of each candidate — the JIT
compile the first time on a machine — is outside the budget (it is bounded by the number of candidates). One thread: the calling thread's CPU time of a call (the one-thread kernels run in it, and a
descheduled thread's CPU clock stops); more threads: wall time. The least time of each wins.

The cache (``$SPMM_STUDY_AUTO_CACHE``, else ``~/.cache/spmm-study/auto-inspect.json``) is one JSON object,
written atomically; an unreadable or malformed file is ignored with one warning line on stderr (and replaced
by the next winner written). The time the inspection took is in the result's ``info`` (``inspect_s``),
apart from the timed calls, as ``cpu.csr.mkl_opt``'s optimize step is: both happen at build, inside
``setup_s``, never inside the median.
"""

from __future__ import annotations

import hashlib
import sys
import time

import numpy as np

CACHE_ENV = "SPMM_STUDY_AUTO_CACHE"
CANDIDATES = 3  # the rule's top candidates that are timed
MAX_ENTRIES = 2048  # past this the oldest entries are dropped: the file stays small
_warned: set[str] = set()


def cache_file():
    from spmm_study.files import cache_path

    return cache_path(CACHE_ENV, "auto-inspect.json")


def fingerprint(a) -> str:
    """Shape, nnz and a hash of the structure (indptr and indices; values do not change a kernel's time)."""
    h = hashlib.blake2b(digest_size=12)
    for arr in (a.indptr, a.indices):  # hashed in place (no copy: the indices of a large matrix are large)
        arr = np.ascontiguousarray(arr)
        h.update(arr.dtype.str.encode())
        h.update(memoryview(arr).cast("B"))
    return f"{a.m}x{a.k}:{a.nnz}:{h.hexdigest()}"


def cache_key(a, n: int, dtype, threads: int, race: str = "") -> str:
    """``race`` names what the inspection would race (the chooser's digest of its rule and candidates): a refit
    rule or a new candidate makes every remembered winner stale, which the package version alone would not say."""
    from spmm_study.environment import cpu_model, cores
    from spmm_study.version import __version__

    return (f"{fingerprint(a)}|n={int(n)}|{np.dtype(dtype).name}|t={int(threads)}|{cpu_model()} ({cores()} cores)"
            f"|{__version__}" + (f"|race={race}" if race else ""))


def _warn_once(path, why: str) -> None:
    """One line on stderr, once per file and process: a bad cache costs an inspection, never the run."""
    if str(path) not in _warned:
        _warned.add(str(path))
        print(f"warning: {why}", file=sys.stderr)


def load(path=None) -> dict:
    """The cache's entries ({} when the file is missing, unreadable or malformed: the last two warn once)."""
    from spmm_study.errors import ResultsError
    from spmm_study.files import read_json_object

    path = path or cache_file()
    try:
        data = read_json_object(path, "cache of auto's inspections")
    except (ResultsError, OSError) as exc:
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        _warn_once(path, f"{why}; ignoring it (auto inspects again and rewrites it)")
        return {}
    entries = data.get("entries", {}) if data else {}
    if not isinstance(entries, dict) or not all(isinstance(e, dict) and isinstance(e.get("choice"), str)
                                                for e in entries.values()):
        _warn_once(path, f"{path} is not a cache of auto's inspections (expected {{\"entries\": {{key: "
                         f"{{\"choice\": ...}}}}}}); ignoring it (auto inspects again and rewrites it)")
        return {}
    return entries


def store(key: str, entry: dict, path=None) -> None:
    """Add one winner (atomic replace of the whole file; concurrent writers: the last one's file wins)."""
    import json

    from spmm_study.files import atomic_write_text

    path = path or cache_file()
    entries = load(path)
    entries.pop(key, None)
    entries[key] = entry
    while len(entries) > MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    try:
        atomic_write_text(path, json.dumps({"entries": entries}, indent=0))
    except OSError as exc:  # a read-only home: the choice still holds for this build
        _warn_once(path, f"{path} cannot be written ({exc.strerror or exc}); auto's choice is not remembered")


def race(builders: list, calls: int, budget_s: float, threads: int):
    """Build and time candidates: ``builders`` is a list of (label, build()) in rank order. Returns (index of the
    winner, the winner's Prepared, {label: least time in s}, kernel calls made, whether every candidate was
    timed). ``budget_s`` bounds the timed calls and the builds after the first; the first call of each
    candidate (a JIT compile the first time on a machine, seconds) is outside it — bounded by their number."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    spent = 0.0  # seconds counted against the budget
    preps, labels, calls_made = [], [], 0
    for rank, (lab, build) in enumerate(builders):
        if rank and spent >= budget_s:
            break  # the budget is gone: the rest are not built (the rule's first choice always is)
        t0 = time.perf_counter()
        prep = build()
        spent += time.perf_counter() - t0 if rank else 0.0
        prep.run()  # first call: compile or cache load, untimed
        calls_made += 1
        preps.append(prep)
        labels.append(lab)
    best = [float("inf")] * len(preps)
    for rnd in range(max(int(calls), 1)):
        if rnd and spent >= budget_s:
            break
        t_round = time.perf_counter()
        for i, prep in enumerate(preps):
            t0 = clock()
            prep.run()
            best[i] = min(best[i], clock() - t0)
            calls_made += 1
        spent += time.perf_counter() - t_round
    win = int(np.argmin(best)) if len(preps) > 1 else 0
    for i, prep in enumerate(preps):
        if i != win:
            prep.release()
    return win, preps[win], dict(zip(labels, best)), calls_made, len(preps) == len(builders)
