"""Result rows and result files (docs/ARCHITECTURE.md §8).

``Result`` is the flat row the harness returns: the only thing that crosses into files and reports.

A run directory (``results/<name>/<timestamp>/`` by default) holds:

* ``rows.jsonl`` — appended one complete line per result, flushed and fsynced, so an interrupted sweep
  loses at most the row it was measuring; a torn last line (power cut) is ignored when read back;
* ``results.csv`` — the same rows as CSV: one line appended (flushed) per row, and the whole file rewritten
  atomically from ``rows.jsonl`` whenever a writer opens the directory, so a torn CSV line does not outlive
  a resume. (Rewriting it after every row cost O(rows²): 19 s of a 2000-row sweep went to writing files.)
* ``meta.json`` — environment, command line, experiment text; written atomically.

Nothing is overwritten: opening an existing directory that holds rows needs ``resume`` (append, skip
finished keys; ERROR and UNAVAILABLE rows are dropped, since they are measured again) or ``force`` (start again).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

from spmm_study.errors import ResultsError
from spmm_study.files import atomic_write_text, claim_folder, open_append


@dataclass
class Result:
    variant: str
    device: str
    format: str
    idea: str
    baseline: bool
    matrix: str
    m: int
    k: int
    n: int
    nnz: int
    sparsity: float
    dtype: str
    seed: int
    params: str  # JSON of the resolved params, sorted keys
    threads: int
    status: str  # PASS | FAIL | ERROR | SKIP | UNAVAILABLE
    message: str = ""
    rel_error: float = float("nan")
    tolerance: float = float("nan")
    setup_s: float = float("nan")
    first_call_s: float = float("nan")
    median_s: float = float("nan")
    p20_s: float = float("nan")
    p80_s: float = float("nan")
    min_s: float = float("nan")
    repeats: int = 0
    cache: str = ""
    gflops: float = float("nan")  # useful: 2·nnz·N / median_s
    gflops_dense: float = float("nan")  # dense-equivalent: 2·M·K·N / median_s
    bytes_compulsory: float = float("nan")
    bytes_model: float = float("nan")
    gbps_compulsory: float = float("nan")
    gbps_model: float = float("nan")
    intensity: float = float("nan")  # useful flops per compulsory byte
    host_dispatch_s: float = float("nan")
    deterministic: bool = True
    info: str = "{}"  # JSON of extra facts (launch config, registers, thread work spread...)
    machine: str = ""
    timestamp: str = ""
    tags: str = ""  # experiment-level labels, e.g. "suite=study;problem=9"
    rung: int = 100  # the variant's place on its ladder (reports sort by it without importing any kernel)
    loop_order: str = ""  # the variant's loop order, e.g. "i→p→j" (charts label bars with it)

    def key(self) -> str:
        """What identifies a measurement for resume (see ``resume_key``)."""
        return row_key(asdict(self))

    @property
    def ok(self) -> bool:
        return self.status == "PASS"


FIELDS = [f.name for f in fields(Result)]
_TYPES = {f.name: f.type for f in fields(Result)}
_DEFAULTS = {"rung": 100, "loop_order": ""}  # the fields added after result files were first written


UNFINISHED = ("ERROR", "UNAVAILABLE")  # rows a resume measures again (a crash; a device that was not there)
KEY_FIELDS = ("variant", "matrix", "n", "dtype", "seed", "params", "threads", "cache", "tags")


def resume_key(variant: str, matrix: str, n: int, dtype: str, seed: int, params: str, threads: int, cache: str,
               tags: str) -> str:
    """What identifies a measurement for resume, the one definition: a finished row with this key is not
    measured again. ``params`` is the JSON of the resolved params with sorted keys, ``dtype`` its canonical
    name, ``matrix`` the canonical spec."""
    return "|".join(map(str, (variant, matrix, n, dtype, seed, params, threads, cache, tags)))


def row_key(row: dict) -> str:
    """``resume_key`` of a result row (a dict read from a file, or ``asdict(Result)``)."""
    return resume_key(*(row.get(k, "") for k in KEY_FIELDS))


def _coerce(row: dict) -> dict:
    """A row read back with each field in its type; a field that files of an older schema lack (``rung``,
    ``loop_order``) takes its default."""
    out = {}
    for name in FIELDS:
        if name in _DEFAULTS and row.get(name, "") in ("", None):
            out[name] = _DEFAULTS[name]
            continue
        val = row.get(name, "")
        t = _TYPES[name]
        try:
            if t in ("int", int):
                val = int(float(val)) if val != "" else 0
            elif t in ("float", float):
                val = float(val) if val not in ("", None) else float("nan")
            elif t in ("bool", bool):
                val = val if isinstance(val, bool) else str(val).lower() in ("true", "1")
        except (TypeError, ValueError, OverflowError):
            raise ResultsError(f"field {name}={str(val)[:40]!r}, not a {getattr(t, '__name__', t)}") from None
        if t in ("str", str) and not isinstance(val, str):
            raise ResultsError(f"field {name}={str(val)[:40]!r}, not a string")
        out[name] = val
    return out


def rows_to_csv(rows: Iterable[dict], header: bool = True) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    if header:
        w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def default_dir(name: str, root: Path | str = "results") -> Path:
    """``results/<name>/<timestamp>``, with ``-2``, ``-3``... when a run of the same second holds it already
    (two quick runs in one second otherwise collided: the second refused to overwrite the first)."""
    base = Path(root) / name / time.strftime("%Y%m%d-%H%M%S")
    out, i = base, 1
    while out.exists():
        i += 1
        out = base.with_name(f"{base.name}-{i}")
    return out


OWN_FILES = ("rows.jsonl", "results.csv", "meta.json")  # what a ResultWriter writes (and may replace with --force)
CURRENT_WRITER = None  # the newest ResultWriter of this process (set when it opens)


class ResultWriter:
    """Appends rows to a run directory; see the module docstring for the layout and the rules."""

    def __init__(self, directory: Path | str, meta: dict | None = None, force: bool = False, resume: bool = False,
                 timing: dict | None = None):
        from spmm_study.folderlock import FolderLock

        self.dir = Path(directory)
        self.jsonl = self.dir / "rows.jsonl"
        self.csv = self.dir / "results.csv"
        self.meta_path = self.dir / "meta.json"
        # the folder must be ours (marked) or new, and no name we write may be a link (files.claim_folder)
        present = claim_folder(self.dir, OWN_FILES)
        # one writer per folder, taken before any row is read: a second sweep into this --out is refused
        self.lock = FolderLock(self.dir).acquire()
        try:
            self._open(meta, force, resume, timing, present)
        except BaseException:
            self.lock.release()
            raise
        global CURRENT_WRITER
        CURRENT_WRITER = self  # what the CLI's Ctrl-C line reports as kept

    def close(self) -> None:
        """Release the folder (also done when the process exits, however it exits)."""
        self.lock.release()

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, meta: dict | None, force: bool, resume: bool, timing: dict | None, present: list[str]) -> None:
        # --force alone replaces the rows unread: a corrupt file must not block starting again
        existing = read_rows(self.dir) if self.jsonl.exists() and (resume or not force) else []
        if existing and not (force or resume):
            raise ResultsError(
                f"{self.dir} already holds {len(existing)} result rows; pass --resume to continue or --force to replace"
            )
        if present and not (force or resume):  # an earlier run's files without rows: still nothing overwritten
            raise ResultsError(f"{self.dir} already holds {', '.join(present)} of an earlier run; pass --force to "
                               "replace them or choose another --out")
        if resume and not self.jsonl.exists() and self.csv.exists():
            raise ResultsError(f"{self.dir} holds results.csv but its rows.jsonl is gone: nothing to resume from "
                               "(the CSV is kept); pass --force to start again or choose another --out")
        self.dir.mkdir(parents=True, exist_ok=True)
        if force and not resume:
            existing = []
            for p in (self.jsonl, self.csv):
                if p.exists():
                    p.unlink()
        if resume:  # an ERROR or UNAVAILABLE row is not finished: it is measured again, so keep one row per key
            existing = [r for r in existing if r.get("status") not in UNFINISHED]
        old = {}
        if resume and self.meta_path.is_file():
            try:
                old = json.loads(_read_meta_text(self.meta_path))
            except (OSError, ValueError, RecursionError, ResultsError):
                old = {}
            old = old if isinstance(old, dict) else {}
        if timing is not None:
            timing = {k: timing[k] for k in sorted(timing)}
            resumed = old.get("resumed") if isinstance(old.get("resumed"), list) and old.get("resumed") else [old]
            before = resumed[-1].get("timing") if old and isinstance(resumed[-1], dict) else None
            if resume and existing and isinstance(before, dict) and before != timing:
                diff = ", ".join(f"{k} {before.get(k)} -> {timing.get(k)}" for k in sorted(set(before) | set(timing))
                                 if before.get(k) != timing.get(k))
                raise ResultsError(f"{self.dir}: its {len(existing)} rows were measured under other timing settings "
                                   f"({diff}); resume with the same settings, or --force to start again")
            if meta is not None:
                meta = {**meta, "timing": timing}
        self.rows: list[dict] = existing
        if existing or resume and self.jsonl.exists():  # drop a torn last line for good before appending after it; the CSV follows the JSONL
            atomic_write_text(self.jsonl, "".join(json.dumps(r, allow_nan=True) + "\n" for r in existing))
            atomic_write_text(self.csv, rows_to_csv(existing))
        elif self.csv.exists():
            self.csv.unlink()  # a CSV without a JSONL twin (rows.jsonl deleted by hand) would get a second header
        self.done = {row_key(r) for r in existing if r.get("status") not in UNFINISHED}
        if meta is not None:
            if old:
                meta = {**old, "resumed": (old["resumed"] if isinstance(old.get("resumed"), list) else []) + [meta]}
            atomic_write_text(self.meta_path, json.dumps(meta, indent=2, default=str) + "\n")

    def has(self, result_or_key: Result | str) -> bool:
        key = result_or_key.key() if isinstance(result_or_key, Result) else result_or_key
        return key in self.done

    def append(self, result: Result) -> None:
        """One row to both files; Ctrl-C waits until the row is in both and in ``rows``, so what the interrupt
        line says was kept is what the files hold."""
        import signal

        if not self.lock.held:
            raise ResultsError(f"{self.dir}: this writer was closed or another writer took the folder over")
        import threading

        if threading.current_thread() is not threading.main_thread():
            self._append(result)
            return
        # Not pthread_sigmask: the kernel would hand SIGINT to another thread (rich's refresh, numba's pool),
        # whose C handler makes the main thread run the Python handler at once anyway. A recording handler
        # defers it instead, and the real one runs once the row is written.
        caught = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
        try:
            self._append(result)
        finally:
            signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])
        elif caught and previous == signal.default_int_handler:
            raise KeyboardInterrupt

    def _append(self, result: Result) -> None:
        row = asdict(result)
        line = json.dumps(row, allow_nan=True) + "\n"
        with open_append(self.jsonl) as f:  # O_NOFOLLOW: never through a link
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)
        if result.status not in UNFINISHED:
            self.done.add(result.key())
        new = not self.csv.exists()
        with open_append(self.csv) as f:
            f.write(rows_to_csv([row], header=new))
            f.flush()


STATUSES = ("PASS", "FAIL", "ERROR", "SKIP", "UNAVAILABLE")
RESULT_FILE_LIMIT = 1 << 30  # 1 GiB of rows: ~1M rows; a file past it is not one spmm-study wrote
_TIMES = ("median_s", "p20_s", "p80_s", "min_s")


def check_row(row: dict) -> str | None:
    """What is impossible about a row read back (hand-edited, or from another tool), or None: a PASS row
    needs positive finite times (a zero median was divided by, a negative one printed as a figure); counts
    are non-negative; rates are never negative."""
    if row["status"] not in STATUSES:
        return f"has status {row['status']!r}, not one of {', '.join(STATUSES)}"
    if not row["variant"]:
        return "has no variant"
    for name in ("m", "k", "n", "nnz", "repeats", "threads"):
        if row[name] < 0:
            return f"has {name}={row[name]}, a negative count"
    if row["status"] == "PASS":
        for name in _TIMES:
            t = row[name]
            if name == "median_s" and not (math.isfinite(t) and t > 0):
                return f"is a PASS row with median_s={t!r} (a time must be positive and finite)"
            if not math.isnan(t) and not (math.isfinite(t) and t > 0):
                return f"has {name}={t!r} (a time must be positive and finite)"
    for name in ("gflops", "gflops_dense", "gbps_compulsory", "gbps_model", "setup_s", "first_call_s"):
        if row[name] < 0 or row[name] == float("inf"):
            return f"has {name}={row[name]!r}, an impossible rate or time"
    return None


def _resolve_result_file(path: Path) -> Path:
    if path.is_dir():
        if (path / "rows.jsonl").exists():
            return path / "rows.jsonl"
        if (path / "results.csv").exists():
            return path / "results.csv"
        raise ResultsError(f"{path} holds no rows.jsonl or results.csv")
    if not path.exists():
        raise ResultsError(f"no such result file: {path}")
    if path.suffix not in (".jsonl", ".csv"):
        raise ResultsError(f"{path}: expected a run directory, rows.jsonl or results.csv")
    return path


def parse_rows(path: Path | str) -> tuple[list[dict], list[str]]:
    """Every row of a result file that reads back whole and possible, and one note per row that did not
    (``"rows.jsonl:7 is not a JSON row"``). A torn final JSONL line (the row being written when interrupted) is neither."""
    from spmm_study.safeio import read_text

    path = _resolve_result_file(Path(path))
    text = read_text(path, limit=RESULT_FILE_LIMIT, what="result file", error=ResultsError)
    rows, bad = [], []

    def take(raw, where: str) -> None:
        if not isinstance(raw, dict):
            bad.append(f"{where} is a JSON {type(raw).__name__}, not a row")
            return
        try:
            row = _coerce(raw)
        except ResultsError as exc:
            bad.append(f"{where} has {exc}")
            return
        problem = check_row(row)
        if problem:
            bad.append(f"{where} {problem}")
        else:
            rows.append(row)

    if path.suffix == ".jsonl":
        lines = text.split("\n")
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                if i == last and not text.endswith("\n"):  # torn final line: no newline was written after it
                    continue
                bad.append(f"{path}:{i + 1} is not a JSON row")
                continue
            take(raw, f"{path}:{i + 1}")
    else:
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            if not reader.fieldnames or "variant" not in reader.fieldnames:
                raise ResultsError(f"{path} has no 'variant' column: not a result file")
            for i, raw in enumerate(reader, 2):
                if None in raw or None in raw.values():
                    bad.append(f"{path}:{i} does not have the header's {len(reader.fieldnames)} fields")
                    continue
                take(raw, f"{path}:{i}")
        except csv.Error as exc:
            raise ResultsError(f"{path} is not a readable CSV: {exc}") from None
    return rows, bad


def read_rows(path: Path | str, skip_bad: bool = False) -> list[dict]:
    """Rows from a run directory, a rows.jsonl or a results.csv (a torn final JSONL line is skipped). A bad
    row is a ResultsError naming the first one, unless ``skip_bad`` (then ``parse_rows`` says which)."""
    rows, bad = parse_rows(path)
    if bad and not skip_bad:
        raise ResultsError(bad[0] + (f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""))
    return rows


def _read_meta_text(path: Path) -> str:
    from spmm_study.safeio import read_text

    return read_text(path, limit=64 << 20, what="meta file", error=ResultsError)  # regular, bounded, UTF-8


def read_meta(path: Path | str) -> dict:
    path = Path(path)
    meta = (path if path.is_dir() else path.parent) / "meta.json"
    try:
        data = json.loads(_read_meta_text(meta)) if meta.is_file() else {}
    except (OSError, ValueError, RecursionError, ResultsError):  # ValueError: JSON and UTF-8 errors; meta.json is advisory
        return {}
    return data if isinstance(data, dict) else {}
