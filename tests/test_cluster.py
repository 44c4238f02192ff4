"""Sweeps on Dask (spmm_study/cluster.py): same rows as a serial sweep, nothing lost or doubled when a worker
or the client dies, resources keep measurements apart, bad specs and missing pieces are one line and exit 2.

Tiny problems and the baselines that need no JIT (numpy, scipy), so that a worker's first task is quick;
one LocalCluster (``local:2``) is shared by the tests that need one. The two end-to-end tests through the
command line (a killed client; a real tcp:// scheduler killed) are marked slow and run in CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spmm_study import cluster as cl
from spmm_study.errors import SpmmError

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["cpu.dense.numpy", "cpu.csr.scipy"]
MATRICES = ["synthetic:uniform:48x40:0.9", "synthetic:uniform:64x48:0.8", "synthetic:uniform:40x40:0.7"]


def tasks_for(variants=VARIANTS, matrices=MATRICES, ns=(8, 16), threads=1, rounds=1):
    from spmm_study import registry, runner

    return [runner.Task(registry.get(v), m, n, (), "float32", 0, None, threads, f"round={r}" if rounds > 1 else "")
            for m in matrices for n in ns for r in range(rounds) for v in variants]


def context(min_time=0.0):
    from spmm_study import runner
    from spmm_study.timing import TimingConfig

    return runner.Context(timing=TimingConfig(repeats=2, min_time_s=min_time, warmup_s=0.0, cache="warm"))


def keys_of(folder) -> list[str]:
    from spmm_study.results import read_rows, row_key

    return [row_key(r) for r in read_rows(folder)]


def cli(*args, env_extra=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "spmm_study", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


# ----------------------------------------------------------------------------------------------- no Dask needed


@pytest.mark.parametrize("spec", ["", "local", "local:0", "local:x", "local:-1", "local:100000", "tcp://host",
                                  "tcp://:80", "tcp://h:99999", "udp://h:1", "slurm:jobs=x", "slurm:bogus=1",
                                  "slurm:gpus=2", "slurm:cores", "slurm:/no/such.toml", "kubernetes"])
def test_malformed_cluster_specs_are_one_error(spec):
    with pytest.raises(cl.ClusterError):
        cl.parse_spec(spec)


def test_slurm_options_from_flags_and_from_a_toml_section(tmp_path):
    spec = cl.parse_spec("slurm:jobs=4,cores=16,memory=32GB,walltime=02:00:00,queue=cpu")
    assert (spec.kind, spec.workers, spec.slurm["cores"], spec.slurm["queue"]) == ("slurm", 4, 16, "cpu")
    f = tmp_path / "slurm.toml"
    f.write_text('[slurm]\njobs = 2\ncores = 8\ngpus = 1\njob_extra = ["--constraint=h100"]\n')
    spec = cl.parse_spec(f"slurm:{f}")
    assert (spec.workers, spec.slurm["gpus"], spec.slurm["job_extra"]) == (2, 1, ["--constraint=h100"])
    f.write_text('[slurm]\njobs = "two"\n')
    with pytest.raises(cl.ClusterError, match="jobs"):
        cl.parse_spec(f"slurm:{f}")
    f.write_text('[other]\n')
    with pytest.raises(cl.ClusterError, match=r"\[slurm\]"):
        cl.parse_spec(f"slurm:{f}")


def test_resources_and_groups_keep_a_problem_and_its_baseline_together():
    from spmm_study import registry, runner

    gpu = registry.get("gpu.csr.row_thread")
    ts = tasks_for(ns=(8,)) + [runner.Task(gpu, MATRICES[0], 8), runner.Task(registry.get("gpu.dense.cublas"), MATRICES[0], 8)]
    groups = cl.make_groups(ts)
    # one group per (problem, device): 3 CPU problems with both variants, one GPU problem with its baseline
    assert sorted(len(g.tasks) for g in groups) == [2, 2, 2, 2]
    assert [g.resources for g in groups if g.tasks[0][1].variant.device == "gpu"] == [{"GPU": 1}]
    assert all(g.resources == {"CPU": 1} for g in groups if g.tasks[0][1].variant.device == "cpu")
    # GPU tasks are dropped (with the reason) where no worker offers a GPU; CPU threads resolve to the cores
    kept, warnings = cl.fit_to_workers([replace_threads(t, None) for t in ts], {"w1": {"CPU": 4}, "w2": {"CPU": 4}})
    assert {t.variant.device for t in kept} == {"cpu"} and {t.threads for t in kept} == {4}
    assert any("no worker offers a GPU" in w for w in warnings)
    with pytest.raises(cl.ClusterError, match="different core counts"):
        cl.fit_to_workers([replace_threads(ts[0], None)], {"a": {"CPU": 1}, "b": {"CPU": 2}})
    with pytest.raises(cl.ClusterError, match="resource"):
        cl.fit_to_workers(ts, {"a": {}})
    kept, warnings = cl.fit_to_workers([replace_threads(ts[0], 8)], {"a": {"CPU": 2}, "g": {"GPU": 1}})
    assert kept == [] and "threads > 2" in warnings[0]


def replace_threads(task, threads):
    from dataclasses import replace

    return replace(task, threads=threads)


def test_estimate_scales_each_variant_between_its_calibration_points():
    ts = tasks_for(ns=(8, 16, 32), threads=1)
    ctx = context()
    small, big = min(ts, key=lambda t: cl._work(t, ctx)), max(ts, key=lambda t: cl._work(t, ctx))
    row = {"status": "PASS", "first_call_s": 0.001, "median_s": 0.001}
    samples = [(t, row, 0.1 + 0.4 * (cl._work(t, ctx) - cl._work(small, ctx)) / (cl._work(big, ctx) - cl._work(small, ctx)))
               for t in (small, big) if t.variant.id == small.variant.id]
    est = cl.estimate(ts, ctx, samples, workers=2)
    n_cal = sum(t.variant.id == small.variant.id for t in ts)
    assert est.tasks == len(ts) and est.workers == 2
    assert est.uncalibrated == sorted({t.variant.id for t in ts} - {small.variant.id})
    assert est.per_worker_s == pytest.approx(est.total_s / 2)
    assert 0.1 * n_cal < est.total_s < 0.5 * n_cal + (len(ts) - n_cal) * 1.0
    assert "per worker over 2 workers" in est.lines()[1]


def test_missing_extra_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    from spmm_study.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "-v", "cpu.dense.numpy", "--cluster", "local:1"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert "pip install 'spmm-study[cluster]'" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("command", [["sweep", "-v", "cpu.dense.numpy"], ["compare", "-v", "cpu.csr.scipy"],
                                     ["autotune", "-v", "cpu.csr.tiled"]])
@pytest.mark.parametrize("args, match", [
    (["--cluster", "local:zero"], "whole number"),
    (["--cluster", "nonsense"], "not a cluster spec"),
    (["--cluster", "local:1", "--retries", "-1"], "retries"),
    (["--cluster", "local:1", "--connect-timeout", "0"], "connect-timeout"),
])
def test_bad_cluster_options_are_one_line_and_exit_2(command, args, match, capsys, tmp_path, monkeypatch):
    from spmm_study.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([*command, *args])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and match in err


# ----------------------------------------------------------------------------------------------- with Dask


needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="Dask distributed is not installed (the 'cluster' extra)")


@needs_dask
def test_unreachable_scheduler_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch):
    from spmm_study.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "-v", "cpu.dense.numpy", "--cluster", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1, err
    assert "cannot reach the Dask scheduler" in err
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "results").exists()  # nothing is written before the cluster is reached


@needs_dask
def test_slurm_job_script_gives_one_single_threaded_worker_owning_the_job():
    pytest.importorskip("dask_jobqueue")
    c = cl.slurm_cluster(cl.parse_spec("slurm:jobs=2,cores=16,memory=32GB,queue=cpu,gpus=1").slurm)
    try:
        script = c.job_script()
    finally:
        c.close()
    assert "#SBATCH --cpus-per-task=16" in script and "#SBATCH -p cpu" in script
    assert "--gres=gpu:1" in script and "--nthreads 1" in script and "CPU=16,GPU=1" in script
    assert "export NUMBA_NUM_THREADS=16" in script


@pytest.fixture(scope="module")
def local2():
    c = cl.Cluster(cl.parse_spec("local:2"))
    yield c
    c.close()


@needs_dask
def test_local_cluster_gives_exactly_the_rows_of_a_serial_sweep(local2, tmp_path):
    from spmm_study import runner
    from spmm_study.results import ResultWriter, read_rows

    ts = tasks_for()
    with ResultWriter(tmp_path / "serial", meta={}) as serial:
        list(runner.execute(ts, context(), serial))
    with ResultWriter(tmp_path / "cluster", meta={}) as writer:
        out = cl.run_tasks(local2, ts, context(), writer)
    assert sorted(keys_of(tmp_path / "cluster")) == sorted(keys_of(tmp_path / "serial"))
    assert len(set(keys_of(tmp_path / "cluster"))) == len(ts) == len(out.rows)
    rows = read_rows(tmp_path / "cluster")
    assert {r["status"] for r in rows} == {"PASS"}
    # every row says which worker machine measured it; a problem and its baseline share one worker
    info = [json.loads(r["info"]) for r in rows]
    assert all(i["host"] and i["cpu_model"] and i["worker"].startswith("tcp://") for i in info)
    by_problem = {}
    for r, i in zip(rows, info):
        by_problem.setdefault((r["matrix"], r["n"]), set()).add(i["worker"])
    assert all(len(w) == 1 for w in by_problem.values())
    # a resumed run over the same folder measures nothing again, whichever worker did it
    with ResultWriter(tmp_path / "cluster", meta={}, resume=True) as writer:
        again = cl.run_tasks(local2, ts, context(), writer)
    assert again.rows == [] and again.skipped == len(ts)
    assert len(keys_of(tmp_path / "cluster")) == len(ts)


@needs_dask
def test_dry_run_calibrates_on_the_workers_and_estimates_per_worker(local2):
    ts = tasks_for(ns=(8, 16, 32))
    ctx = context(min_time=0.01)
    samples = cl.calibrate_on(local2, ts, ctx)
    assert len(samples) == 2 * len(VARIANTS)  # the smallest and the median problem of each variant
    assert all(row is not None and row["status"] == "PASS" and wall > 0 for _, row, wall in samples)
    est = cl.estimate(ts, ctx, samples, len(local2.workers()))
    assert est.workers == 2 and est.tasks == len(ts) and not est.uncalibrated
    assert 0 < est.per_worker_s < 60


def _worker_pids(cluster) -> dict[str, int]:
    return cluster.client.run(os.getpid)


@needs_dask
def test_killed_worker_is_retried_then_an_error_row_and_a_resume_completes(local2, tmp_path):
    """A worker killed mid-problem: with retries the problem finishes elsewhere; without, its measurements
    left are ERROR rows; --resume then measures those and nothing twice."""
    from spmm_study.results import ResultWriter, read_rows

    # 2 problems of 8 measurements, each >= 0.15 s: the kill at the first row back lands mid-problem even when
    # that row's event is late on a loaded machine
    ts = tasks_for(matrices=MATRICES[:1], ns=(8, 16), rounds=4)
    ctx = context(min_time=0.15)

    def kill_first_started(retries: int, folder: Path):
        killed = threading.Event()

        def on_event(kind, info):  # the first row back: its worker is measuring the next one of the problem
            if kind == "row" and not killed.is_set():
                killed.set()
                pid = _worker_pids(local2)[json.loads(info["info"])["worker"]]
                os.kill(pid, signal.SIGKILL)

        with ResultWriter(folder, meta={}) as writer:
            out = cl.run_tasks(local2, ts, ctx, writer, retries=retries, on_event=on_event)
        assert killed.is_set()
        local2.client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
        return out

    out = kill_first_started(retries=2, folder=tmp_path / "retried")
    rows = read_rows(tmp_path / "retried")
    assert out.retried >= 1 and {r["status"] for r in rows} == {"PASS"}
    assert sorted(keys_of(tmp_path / "retried")) == sorted(set(keys_of(tmp_path / "retried")))
    assert len(rows) == len(ts)

    out = kill_first_started(retries=0, folder=tmp_path / "noretry")
    rows = read_rows(tmp_path / "noretry")
    errors = [r for r in rows if r["status"] == "ERROR"]
    assert errors and all("died while measuring" in r["message"] for r in errors)
    assert len(rows) == len(ts) and len(set(keys_of(tmp_path / "noretry"))) == len(ts)
    with ResultWriter(tmp_path / "noretry", meta={}, resume=True) as writer:
        resumed = cl.run_tasks(local2, ts, ctx, writer)
    assert len(resumed.rows) == len(errors)
    rows = read_rows(tmp_path / "noretry")
    assert {r["status"] for r in rows} == {"PASS"} and len(rows) == len(ts)
    assert sorted(keys_of(tmp_path / "noretry")) == sorted(keys_of(tmp_path / "retried"))


@needs_dask
def test_gpu_resource_keeps_two_gpu_measurements_off_one_worker():
    """Fake resources on CPU workers: a 2-thread worker with GPU=1 never runs two GPU tasks at once, and a
    worker without the resource never gets one (without the tags the two threads do overlap)."""
    from distributed import Client, LocalCluster

    from spmm_study import registry, runner

    need = cl.requirement(runner.Task(registry.get("gpu.csr.row_thread"), MATRICES[0], 8))
    assert need == {"GPU": 1}
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, resources={"GPU": 1},
                      dashboard_address=":0") as gpu_box, Client(gpu_box) as client:
        spans = _spans(client, need, 6)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # one at a time
        free = _spans(client, {}, 6)
        assert any(a[1] > b[0] for a, b in zip(free, free[1:])), free  # the control: untagged ones overlap
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, resources={"CPU": 2},
                      dashboard_address=":0") as cpu_box, Client(cpu_box) as client:
        fut = client.submit(time.sleep, 0, resources=need, pure=False)
        time.sleep(0.5)
        assert fut.status == "pending"  # no worker offers a GPU: it would wait forever; fit_to_workers drops it
        kept, warnings = cl.fit_to_workers([runner.Task(registry.get("gpu.csr.row_thread"), MATRICES[0], 8)],
                                           {"w": {"CPU": 2}})
        assert kept == [] and warnings


def _busy(seconds: float) -> tuple[float, float]:
    t0 = time.perf_counter()
    time.sleep(seconds)
    return t0, time.perf_counter()


def _spans(client, resources: dict, n: int) -> list[tuple[float, float]]:
    futs = [client.submit(_busy, 0.15, resources=resources, pure=False) for _ in range(n)]
    return sorted(f.result() for f in futs)


@needs_dask
@pytest.mark.slow  # subprocesses and two clusters: the longest tests here; CI runs them (-m "not gpu")
def test_cli_sweep_killed_client_then_resume_loses_and_doubles_nothing(tmp_path):
    """The client (the sweep command) killed with SIGKILL mid-sweep; --resume on the folder finishes it."""
    out = tmp_path / "run"
    args = ["sweep", "-v", ",".join(VARIANTS), *sum((["-m", m] for m in MATRICES), []), "-n", "8", "-n", "16",
            "-n", "24", "-t", "1", "--min-time", "0.08", "--warmup", "0", "--repeats", "2", "--cluster", "local:2",
            "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "spmm_study", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            rows = out / "rows.jsonl"
            if rows.exists() and len(rows.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the cluster sweep wrote no rows in 90 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and the workers it started
        proc.wait()
    before = keys_of(out)
    assert 3 <= len(before) < 18 and len(set(before)) == len(before)
    res = subprocess.run([sys.executable, "-m", "spmm_study", *args, "--resume"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    after = keys_of(out)
    assert len(after) == len(set(after)) == 18 and set(before) <= set(after)
    # and two clusters' folders combine in one report: each machine's rows against its own baseline only
    from spmm_study import report
    from spmm_study.results import ResultWriter, read_rows

    other = tmp_path / "other"
    theirs = [r for r in read_rows(out) if r["n"] == 8]
    with ResultWriter(other, meta={}) as w:
        for r in theirs:
            w.append(cl._result_from_row(dict(r, machine="Other machine (4 cores)", median_s=r["median_s"] * 3)))
    rows = report.load_rows([out, other])
    assert len(rows) == 18 + len(theirs)
    ups = {(r["machine"], r["matrix"], r["n"], r["variant"]): r["speedup"] for r in report.speedups(rows)}
    mine = {k: v for k, v in ups.items() if k[0] != "Other machine (4 cores)" and k[2] == 8}
    for (m, matrix, n, v), up in ups.items():
        if m == "Other machine (4 cores)":  # 3x slower on both variants: the same ratio, never a cross-machine one
            assert up == pytest.approx(mine[(next(iter(mine))[0], matrix, n, v)])
    res = cli("report", str(out), str(other), "--kind", "compare")
    assert res.returncode == 0 and "Other machine" in res.stdout


@needs_dask
def test_local_cuda_is_refused_in_one_line_without_dask_cuda_or_without_a_gpu(monkeypatch, capsys, tmp_path):
    import types

    from spmm_study.cli import main
    from spmm_study.gpu.device import gpu_unavailable_reason

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # not installed
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "-v", "cpu.dense.numpy", "--cluster", "local-cuda"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "pip install 'spmm-study[cluster-gpu]'" in err
    if gpu_unavailable_reason() is None:
        return  # a GPU is here: the second refusal cannot happen
    fake = types.ModuleType("dask_cuda")
    fake.LocalCUDACluster = lambda **kw: pytest.fail("must not start without a GPU")
    monkeypatch.setitem(sys.modules, "dask_cuda", fake)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "-v", "cpu.dense.numpy", "--cluster", "local-cuda"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "local-cuda" in err and "CUDA" in err
    assert not (tmp_path / "results").exists()


@needs_dask
@pytest.mark.slow  # subprocesses and two clusters: the longest tests here; CI runs them (-m "not gpu")
def test_tcp_scheduler_sweep_then_the_scheduler_dies_then_resume_elsewhere(tmp_path):
    """An existing scheduler and worker (started as a user would); the scheduler killed mid-sweep: one line,
    exit 2, the rows so far kept; --resume on a LocalCluster finishes without a duplicate."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **cl._quiet_env()}
    address = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--dashboard-address", ":0"], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                               "--resources", "CPU=1", "--death-timeout", "30"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    out = tmp_path / "run"
    grid = ["-v", ",".join(VARIANTS), *sum((["-m", m] for m in MATRICES[:2]), []), "-n", "8", "-n", "16", "-n", "24",
            "-t", "1", "--min-time", "0.1", "--warmup", "0", "--repeats", "2", "--out", str(out)]
    try:
        sweep = subprocess.Popen([sys.executable, "-m", "spmm_study", "sweep", *grid, "--cluster", address,
                                  "--connect-timeout", "30"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and sweep.poll() is None:
            rows = out / "rows.jsonl"
            if rows.exists() and len(rows.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert sweep.poll() is None, sweep.stderr.read()[-2000:]
        os.killpg(sched.pid, signal.SIGKILL)
        _, err = sweep.communicate(timeout=120)
    finally:
        for p in (sched, worker):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    assert sweep.returncode == 2, err[-2000:]
    assert "lost the Dask scheduler" in err and "--resume" in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]  # Dask's own logging of the lost connection is silenced
    before = keys_of(out)
    assert 2 <= len(before) < 12 and len(set(before)) == len(before)
    res = cli("sweep", *grid, "--cluster", "local:2", "--resume", timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    after = keys_of(out)
    assert len(after) == len(set(after)) == 12 and set(before) <= set(after)
