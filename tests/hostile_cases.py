"""Hostile input for every reader and command (issue 10): helpers other test files reuse, and a worker that runs
the CLI's ``main(argv)`` on many inputs in a subprocess under a memory limit.

* ``cli(argv)`` / ``expect_error(argv, match)``: one command in this process; an error must be exactly one line
  ``error: ...`` on stderr, exit 2, no traceback, no Python warning.
* ``BAD_OPTIONS``: per command, ``(argv, regex)`` bad-input cases (``lab`` adds its own; ``test_hostile`` runs
  them all through ``expect_error``).
* ``valid_files(folder)``: one valid file of every matrix and result format, and the argv that reads it.
* ``run_worker(...)``: ``python tests/hostile_cases.py`` in a subprocess under ``RLIMIT_AS``; it runs a
  hypothesis property (random bytes, truncations, bit flips of the valid files) or a list of argvs, and prints
  one JSON line of facts (outcomes, peak RSS) back.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_AS = 1536 << 20  # 1.5 GiB of address space: numpy, scipy and the CLI map about 0.35 GiB


def cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: (exit code, stdout, stderr); Python warnings count as stderr lines."""
    import gc

    from spmm_study.cli import main

    gc.collect()  # garbage of earlier commands or tests (a ResourceWarning at GC) is not this command's stderr
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - what the console script would print as a traceback
            import traceback

            code = 1
            err.write(traceback.format_exc())
    text = err.getvalue() + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    return code, out.getvalue(), text


def one_line_error(code: int, err: str, allow_list: bool = False) -> str | None:
    """Why (code, stderr) is not "one line, exit 2", or None when it is. ``allow_list``: an experiment file's
    errors come all at once, as one head line and one ``  - `` line per mistake (ExperimentError)."""
    lines = [line for line in err.splitlines() if line.strip()]
    if allow_list and lines and lines[0].startswith("error: ") and all(l.startswith("  - ") for l in lines[1:]):
        lines = lines[:1]
    if code != 2:
        return f"exit {code}, expected 2"
    if "Traceback" in err:
        return "a traceback"
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr"
    if not lines[0].startswith("error: "):
        return f"the line does not start with 'error: ': {lines[0][:80]!r}"
    if lines[0] == "error: out of memory":
        return "MemoryError: an allocation was tried instead of refused by a size check"
    return None


def expect_error(argv: list[str], match: str | None = None) -> str:
    code, _, err = cli(argv)
    why = one_line_error(code, err)
    assert why is None, f"{argv}: {why}; stderr: {err[:600]!r}"
    line = err.strip()
    assert match is None or re.search(match, line), f"{line!r} does not match {match!r}"
    return line


FAST = ["--repeats", "1", "--min-time", "0", "--warmup", "0", "--cache", "warm"]
TINY = "synthetic:uniform:16x16:0.5"

# Bad input of every command but 'run' (test_cli holds run's): (argv, what the one line must say).
BAD_OPTIONS: dict[str, list[tuple[list[str], str]]] = {
    "compare": [
        (["compare", "-v", "nosuch", "-m", TINY, "--no-save"], r"unknown variant 'nosuch'"),
        (["compare", "-v", "rowwise", "-m", TINY, "--rounds", "0", "--no-save"], r"rounds"),
        (["compare", "-v", "rowwise", "-m", TINY, "--rounds", "100000000000", "--no-save"], r"past the limit"),
        (["compare", "-v", "rowwise", "-m", TINY, "-n", "0", "--no-save"], r"N must be positive|positive"),
        (["compare", "-v", "rowwise", "-m", TINY, "--cache", "lukewarm", "--no-save"], r"cache"),
        (["compare", "-v", "rowwise", "-m", "nosuch:x", "--no-save"], r"unknown matrix spec"),
        (["compare", "-v", "rowwise", "-m", TINY, "--dtype", "float8", "--no-save"], r"dtype"),
        (["compare", "-v", "rowwise", "-m", TINY, "--baseline", "nosuch", "--no-save"], r"unknown variant 'nosuch'"),
        (["compare", "-v", "rowwise", "-m", TINY, "--min-time", "inf", "--no-save"], r"min-time|min_time"),
        (["compare", "-v", "rowwise", "-m", "smtx:/dev/zero", "--no-save"], r"character device"),
    ],
    "sweep": [
        (["sweep"], r"experiment file or --variants"),
        (["sweep", "/nonexistent/x.toml"], r"no experiment file"),
        (["sweep", "-v", "nosuch", "--dry-run"], r"nosuch"),
        (["sweep", "-v", "tiled", "-p", "nosuch=1", "--dry-run"], r"nosuch"),
        (["sweep", "-v", "tiled", "--shard", "3/2", "--dry-run"], r"shard"),
        (["sweep", "-v", "tiled", "-m", "dlmc:../../etc/passwd", "--dlmc-root", str(ROOT), "--dry-run"],
         r"inside the DLMC root"),
        (["sweep", "-v", "tiled", "--repeats", "0", "--dry-run"], r"repeats"),
    ],
    "autotune": [
        (["autotune", "-v", "nosuch"], r"unknown variant 'nosuch'"),
        (["autotune", "-v", "tiled", "--max-combos", "0"], r"max-combos"),
        (["autotune", "-v", "tiled", "-n", "-4"], r"positive"),
        (["autotune", "-v", "tiled", "-m", "mtx:/dev/zero"], r"character device"),
    ],
    "report": [
        ([], r"no such result file"),  # filled in by the test with tmp paths (see test_hostile)
    ],
    "calibrate": [
        (["calibrate", "--tiny", "--out", "/dev/null/x.json"], r"."),
    ],
}


# ----------------------------------------------------------------------------------------------- valid files


def result_row(i: int, **kw):
    from spmm_study.results import Result

    base = dict(variant="cpu.csr.rowwise" if i % 2 else "cpu.dense.numpy", device="cpu", format="csr", idea="rowwise",
                baseline=not i % 2, matrix="synthetic:uniform:16x16:0.5", m=16, k=16, n=4, nnz=128, sparsity=0.5,
                dtype="float32", seed=0, params="{}", threads=1, status="PASS", median_s=1e-5 * (i + 1),
                p20_s=0.9e-5 * (i + 1), p80_s=1.1e-5 * (i + 1), min_s=0.8e-5 * (i + 1), repeats=3, cache="warm",
                gflops=0.1 / (i + 1), machine="hostile-test", timestamp=f"2026-12-01T00:00:0{i}")
    base.update(kw)
    return Result(**base)


def write_rows(folder: Path, rows) -> Path:
    from spmm_study.results import ResultWriter

    with ResultWriter(folder) as w:
        for r in rows:
            w.append(r)
    return folder


def valid_files(folder: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (a valid file, the argv that reads it through the CLI, exit 0 when the file is intact)."""
    import numpy as np
    import scipy.io
    import scipy.sparse as sp
    from safetensors.numpy import save_file

    from spmm_study.sources import write_smtx
    from spmm_study.formats import CSR

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    dense = np.where(rng.random((6, 5)) < 0.4, rng.standard_normal((6, 5)), 0.0)
    dense[0, 0] = 1.5
    a = CSR.from_dense(dense)
    files: dict[str, tuple[Path, list[str]]] = {}

    def matrix(name: str, path: Path, scheme: str, suffix: str = ""):
        files[name] = (path, ["data", "info", f"{scheme}:{path}{suffix}"])

    write_smtx(a, folder / "a.smtx")
    matrix("smtx", folder / "a.smtx", "smtx")
    scipy.io.mmwrite(str(folder / "a.mtx"), sp.coo_matrix(dense))
    matrix("mtx", folder / "a.mtx", "mtx")
    sym = (folder / "sym.mtx")
    sym.write_text("%%MatrixMarket matrix coordinate pattern symmetric\n% a comment\n4 4 3\n1 1\n3 1\n4 2\n")
    matrix("mtx_pattern_symmetric", sym, "mtx")
    scipy.io.mmwrite(str(folder / "dense.mtx"), dense)
    matrix("mtx_array", folder / "dense.mtx", "mtx")
    import gzip

    (folder / "a.mtx.gz").write_bytes(gzip.compress((folder / "a.mtx").read_bytes(), mtime=0))
    matrix("mtx_gz", folder / "a.mtx.gz", "mtx")
    for fmt in ("csr", "csc", "coo"):
        p = folder / f"a_{fmt}.npz"
        sp.save_npz(p, getattr(sp, f"{fmt}_matrix")(dense), compressed=fmt != "coo")
        matrix(f"npz_{fmt}", p, "npz")
    save_file({"w": dense.astype(np.float32), "b": np.ones(3, np.float32)}, str(folder / "w.safetensors"))
    matrix("safetensors_f32", folder / "w.safetensors", "safetensors", "#w")
    bf = (dense.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    head = json.dumps({"w": {"dtype": "BF16", "shape": list(dense.shape), "data_offsets": [0, bf.nbytes]}}).encode()
    (folder / "bf.safetensors").write_bytes(len(head).to_bytes(8, "little") + head + bf.tobytes())
    matrix("safetensors_bf16", folder / "bf.safetensors", "safetensors", "#w")

    run = write_rows(folder / "run", [result_row(i) for i in range(4)])
    files["rows_jsonl"] = (run / "rows.jsonl", ["report", str(run / "rows.jsonl")])
    files["results_csv"] = (run / "results.csv", ["report", str(run / "results.csv")])
    ceil = folder / "ceilings.json"
    ceil.write_text(json.dumps({"hostile-test": {"machine": "hostile-test", "device": "cpu", "stream_gbps_1": 20.0,
                                                 "stream_gbps_all": 30.0, "fma_gflops_fp32_1": 100.0,
                                                 "fma_gflops_fp32_all": 200.0}}))
    files["ceilings"] = (ceil, ["report", str(run / "rows.jsonl"), "--ceilings", str(ceil)])
    exp = folder / "exp.toml"
    exp.write_text('name = "hostile"\n\n[timing]\nrepeats = 2\n\n[[runs]]\nvariants = ["cpu.csr.rowwise"]\n'
                   f'matrices = ["{TINY}"]\nn = [4]\n')
    files["experiment"] = (exp, ["sweep", str(exp), "--dry-run"])
    return files


# ----------------------------------------------------------------------------------------------- the worker


def _mutate(data: bytes, kind: str, blob: bytes, where: float, flips: list[int]) -> bytes:
    if kind == "random":
        return blob
    if kind == "truncate":
        return data[: int(where * len(data))]
    if kind == "flip":
        b = bytearray(data)
        for f in flips:
            if b:
                pos = f % (8 * len(b))
                b[pos // 8] ^= 1 << (pos % 8)
        return bytes(b)
    if kind == "splice":  # random bytes written over the middle
        at = int(where * len(data))
        return data[:at] + blob + data[at + len(blob):]
    if kind == "huge_number":  # a digit run grown past int64 / float range
        text = data.decode("latin-1")
        digits = [m.start() for m in re.finditer(r"\d", text)]
        if not digits:
            return data
        at = digits[int(where * (len(digits) - 1))]
        return (text[:at] + "9" * (20 + len(blob)) + text[at:]).encode("latin-1")
    raise ValueError(kind)


def _check_outcome(argv, code: int, err: str) -> str | None:
    if code == 0:
        return "a traceback on exit 0" if "Traceback" in err else None
    return one_line_error(code, err, allow_list=argv[0] == "sweep")


def worker(spec: dict) -> dict:
    """Run in the subprocess. ``spec``: {"folder", "examples", "seed"} for the property, or {"argvs": [...]}
    for plain cases; returns outcomes, failures and the peak RSS."""
    import signal

    def alarm(signum, frame):
        raise TimeoutError("the case ran past its time limit")

    signal.signal(signal.SIGALRM, alarm)
    per_case_s = spec.get("per_case_s", 20)
    report: dict = {"failures": [], "cases": 0, "codes": {}, "slowest_s": 0.0}

    def one(argv) -> tuple[int, str]:
        t0 = time.perf_counter()
        signal.alarm(per_case_s)
        try:
            code, _, err = cli(argv)
        except TimeoutError:
            code, err = -1, "timeout"
        finally:
            signal.alarm(0)
        report["slowest_s"] = max(report["slowest_s"], time.perf_counter() - t0)
        report.setdefault("times", []).append(round(time.perf_counter() - t0, 3))
        report["cases"] += 1
        report["codes"][str(code)] = report["codes"].get(str(code), 0) + 1
        return code, err

    if spec.get("fake_llc"):  # sysfs faked to report this last-level cache (a VM that reports the host's)
        from spmm_study import timing

        timing.llc_bytes = lambda: int(spec["fake_llc"])
        if hasattr(timing, "flush_plan"):  # decided once per process; older code sized the buffer on each flush
            timing.flush_plan.cache_clear()
    if spec.get("warm"):  # imports (numba, the registry) paid before the first timed case
        cli(["list", "--json"])
    if "argvs" in spec:
        for argv in spec["argvs"]:
            code, err = one(argv)
            why = _check_outcome(argv, code, err) if code != -1 else "timeout"
            if spec.get("must_fail") and code == 0:
                why = "exit 0 on hostile input"
            if why:
                report["failures"].append({"argv": argv, "why": why, "stderr": err[-400:]})
    else:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        folder = Path(spec["folder"])
        files = valid_files(folder / "valid")
        originals = {name: p.read_bytes() for name, (p, _) in files.items()}
        for name, (p, argv) in files.items():  # the intact files read cleanly
            code, err = one(argv)
            if code != 0:
                report["failures"].append({"argv": argv, "why": f"valid file refused: exit {code}", "stderr": err[-400:]})

        @settings(max_examples=spec["examples"], deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), print_blob=False)
        @given(name=st.sampled_from(sorted(files)),
               kind=st.sampled_from(["random", "truncate", "flip", "splice", "huge_number"]),
               blob=st.binary(min_size=0, max_size=96), where=st.floats(0, 1),
               flips=st.lists(st.integers(0, 1 << 20), min_size=1, max_size=6))
        def prop(name, kind, blob, where, flips):
            path, argv = files[name]
            data = _mutate(originals[name], kind, blob, where, flips)
            if spec.get("log"):  # the last entry names the case that killed the worker (a crash in C)
                with open(spec["log"], "a") as log:
                    log.write(json.dumps({"name": name, "argv": argv, "data": data.hex()}) + "\n")
            try:
                path.write_bytes(data)
                if name == "rows_jsonl":  # the csv twin would be read instead of a missing/renamed jsonl
                    pass
                code, err = one(argv)
            finally:
                path.write_bytes(originals[name])
            why = _check_outcome(argv, code, err) if code != -1 else "timeout"
            if why:
                report["failures"].append({"argv": argv, "name": name, "kind": kind, "why": why,
                                           "stderr": err[-400:], "input": data[:200].hex()})
            assert why is None, why

        try:
            prop()
        except AssertionError:
            pass  # recorded above, with the shrunk example last
    report["maxrss_mib"] = peak_rss_mib()
    return report


def peak_rss_mib() -> float:
    """This process's peak resident memory since its exec, in MiB. ``ru_maxrss`` is kept across fork+exec, so
    a worker started from a pytest process that has grown to 1 GiB reports at least 1 GiB whatever it did
    itself; the kernel's VmHWM belongs to the new image alone. Falls back to ru_maxrss off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(spec: dict, limit_as: int = LIMIT_AS, timeout: float = 240) -> dict:
    """``worker(spec)`` in a fresh interpreter under RLIMIT_AS = ``limit_as``; its report as a dict."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "100"}
    code = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({int(limit_as)}, {int(limit_as)}))\n"
            f"import json, sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
            "import hostile_cases as h\n"
            "print('HOSTILE ' + json.dumps(h.worker(json.loads(sys.argv[1]))))\n")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=spec.get("cwd", str(ROOT)))
    line = next((l for l in proc.stdout.splitlines() if l.startswith("HOSTILE ")), None)
    last = ""
    if line is None and spec.get("log") and Path(spec["log"]).exists():
        logged = Path(spec["log"]).read_text().splitlines()
        last = f"; last case started: {logged[-1][:600] if logged else '-'}"
    assert line is not None, f"worker died (exit {proc.returncode}){last}: {proc.stderr[-1500:]}"
    return json.loads(line[len("HOSTILE "):])


def peak_rss_of(argv: list[str], limit_as: int = LIMIT_AS, cwd: str | None = None) -> dict:
    """One argv in its own interpreter: exit code, stderr, seconds and peak resident memory (MiB) of that process."""
    return run_worker({"argvs": [argv], "cwd": cwd or str(ROOT)}, limit_as)
