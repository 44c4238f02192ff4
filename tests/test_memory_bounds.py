"""Bounded memory whatever L3 the machine reports (issue 21 item 5).

A VM reported a 480 MiB L3: the cold-cache flush buffer (2x the L3) made every cold ``run`` peak at 1.2 GB
RSS for a matrix of a few MB, and ``calibrate`` (three triad arrays of 4x the L3) at 6.07 GB. The buffer and
the triad arrays are now capped (``timing.flush_plan``, ``calibrate.stream_plan``) and the cap is said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spmm_study import calibrate, timing

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
FAKE_LLC = 480 * MiB  # what the EPYC guest's sysfs said


@pytest.fixture
def fake_llc(monkeypatch):
    """sysfs says ``size``; the process may allocate 8 GiB; the flush plan is decided afresh."""
    import spmm_study.memory as memory

    def set_llc(size):
        monkeypatch.setattr(timing, "llc_bytes", lambda: size)
        monkeypatch.setattr(memory, "available_memory_bytes", lambda: 8 << 30)
        timing.flush_plan.cache_clear()

    yield set_llc
    timing.flush_plan.cache_clear()


def test_flush_buffer_is_twice_a_small_l3_and_capped_for_a_large_one(fake_llc):
    fake_llc(32 * MiB)
    small = timing.flush_plan()
    assert small == {"llc_bytes": 32 * MiB, "flush_bytes": 64 * MiB, "capped": False, "note": ""}
    fake_llc(FAKE_LLC)
    big = timing.flush_plan()
    assert big["flush_bytes"] == timing.FLUSH_CAP_BYTES == 128 * MiB and big["capped"]
    assert "128 MiB" in big["note"] and "480 MiB" in big["note"]


def test_triad_arrays_are_4x_a_small_l3_and_capped_for_a_large_one(fake_llc):
    fake_llc(32 * MiB)
    assert calibrate.stream_plan() == {"stream_array_bytes": 128 * MiB, "llc_bytes": 32 * MiB, "note": ""}
    fake_llc(FAKE_LLC)
    big = calibrate.stream_plan()
    assert big["stream_array_bytes"] == calibrate.STREAM_CAP_BYTES == 256 * MiB
    assert 3 * big["stream_array_bytes"] < 1 << 30 and "480 MiB" in big["note"]


WORKER = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from spmm_study import timing
timing.llc_bytes = lambda: {llc}
from spmm_study.cli import main
code = 0
try:
    main(json.loads(sys.argv[2]))
except SystemExit as e:
    code = e.code
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print("PEAK " + json.dumps({{"code": code, "hwm_mb": int(status["VmHWM"].split()[0]) * 1024 / 1e6,
                            "flush": timing.flush_plan()}}))
"""


def run_capped(argv: list[str], limit_as: int, cwd: Path) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-c", WORKER.format(llc=FAKE_LLC), str(limit_as), json.dumps(argv)],
                          capture_output=True, text=True, timeout=240, env=env, cwd=cwd)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PEAK ")), None)
    assert line is not None, f"worker died (exit {proc.returncode}): {proc.stderr[-1500:]}"
    return json.loads(line[5:]), proc.stderr


def test_cold_run_on_the_default_problem_fits_1_gib_of_address_space_with_a_480_mib_l3(tmp_path):
    """The default ``run`` (cold caches) in a fresh interpreter under RLIMIT_AS = 1 GiB, with sysfs faked to
    say 480 MiB of L3: it measures (exit 0) and peaks under 400 MB RSS. Before the cap its 960 MiB buffer
    alone did not fit (MemoryError; VmPeak 1.5 GiB, VmHWM 1.2 GB without the limit)."""
    rep, err = run_capped(["run", "--out", str(tmp_path / "r"), "--repeats", "2", "--min-time", "0",
                           "--warmup", "0"], 1 << 30, tmp_path)
    assert rep["code"] == 0, err[-1500:]
    assert rep["hwm_mb"] < 400, rep
    assert rep["flush"]["capped"] and rep["flush"]["flush_bytes"] <= timing.FLUSH_CAP_BYTES
    assert "note: cold cache: the flush buffer is" in err  # said on stderr ...
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["cache_flush"] == rep["flush"]  # ... and kept beside the rows
