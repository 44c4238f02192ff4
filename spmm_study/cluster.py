"""Sweeps past one machine on Dask distributed: ``sweep FILE --cluster SPEC`` (also ``compare``, ``autotune``).

The engine is Dask's (scheduler, workers, retries of lost tasks, ``as_completed``); this module only decides
what a Dask task is, which worker may run it, and how its rows come back.

* **A Dask task is one problem on one device**: every measurement of one (matrix, N, dtype, seed, prune) whose
  variant runs on that device, baselines included, in grid order. So a problem and its baseline are measured
  by one worker, back to back, exactly as ``--shard`` keeps them on one machine, and every speedup is a
  same-machine ratio.
* **One measurement per device at a time.** Every worker this module starts is single-threaded and owns its
  device: ``local:N`` pins worker i to its own ``cores // N`` cores (``sched_setaffinity``, and numba/BLAS
  pools of that size); a Slurm job is one worker owning the job's cores (or its one GPU); ``local-cuda`` is one
  worker per GPU. Workers advertise Dask *resources*, ``CPU=<cores>`` or ``GPU=1``, and each task asks for
  ``{"CPU": threads}`` or ``{"GPU": 1}``, so even a worker started by hand with several threads never runs two
  measurements on one device. Tasks no worker can take are dropped with a warning (a GPU variant on CPU
  workers), never left to hang.
* **Rows stream back as they are measured**: the worker puts each row on a Dask ``Queue`` the moment it exists;
  the client appends it to the one result folder through ``results.ResultWriter`` (one fsynced JSONL line per
  row) and keeps ``as_completed`` over the tasks for their end. Killing the client, a worker or the scheduler
  loses only the measurements in flight; ``--resume`` skips every finished key whichever worker wrote it (the
  worker checks the keys again in its own environment before measuring, so a thread count resolved there
  still matches).
* **A worker that dies mid-task** (``KilledWorker``; the scheduler here is told not to re-run it itself) has the
  rest of its problem resubmitted, to any worker, at most ``retries`` times; then the measurements left get
  ERROR rows saying so (a resume measures ERROR rows again). An exception inside a task (a matrix file a worker
  cannot read) is an ERROR row at once.
* Every row records the worker's machine in ``machine`` (CPU model and cores, or GPU name) and, in ``info``,
  its host, the CPU model and the Dask worker address.

Dask is an optional extra: ``pip install 'spmm-study[cluster]'`` (``[cluster-gpu]`` adds dask-cuda).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import threading
import time
import tomllib
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from spmm_study.errors import ParamError, SpmmError

INSTALL = "pip install 'spmm-study[cluster]'"
INSTALL_GPU = "pip install 'spmm-study[cluster-gpu]'"
SLURM_KEYS = {"jobs": int, "cores": int, "memory": str, "walltime": str, "queue": str, "account": str,
              "gpus": int, "python": str, "interface": str, "local_directory": str, "log_directory": str,
              "job_extra": list, "prologue": list}
DEFAULT_TIMEOUT_S = 10.0


class ClusterError(SpmmError):
    """A cluster that cannot be had: no Dask, a bad spec, an unreachable or lost scheduler."""


# ----------------------------------------------------------------------------------------------- the spec


@dataclass
class ClusterSpec:
    kind: str  # local | tcp | slurm | local-cuda
    text: str
    workers: int = 0  # local: N; slurm: jobs
    address: str = ""  # tcp
    slurm: dict = field(default_factory=dict)

    @property
    def in_process_scheduler(self) -> bool:
        return self.kind != "tcp"


def parse_spec(text: str | None) -> ClusterSpec:
    """``local:N``, ``tcp://HOST:PORT``, ``slurm:jobs=4,cores=32,...`` or ``slurm:FILE.toml`` (its [slurm]
    table), ``local-cuda``. Anything else is a ClusterError naming the four forms."""
    forms = "local:N, tcp://HOST:PORT, slurm:KEY=VALUE,... (or slurm:FILE.toml) or local-cuda"
    if not text or not isinstance(text, str):
        raise ClusterError(f"--cluster needs a spec: {forms}")
    text = text.strip()
    if text == "local-cuda":
        return ClusterSpec("local-cuda", text)
    if text.startswith("local:"):
        raw = text[len("local:"):]
        if not raw.isdigit() or int(raw) < 1:
            raise ClusterError(f"--cluster {text}: N must be a whole number >= 1 (local:2)")
        n = int(raw)
        from spmm_study.environment import cores

        have = cores()
        if n > have:
            raise ClusterError(f"--cluster {text}: this machine has {have} cores; local:N takes at most one worker "
                               "per core, so that no two measurements share one")
        return ClusterSpec("local", text, workers=n)
    if text.startswith("tcp://"):
        host, colon, port = text[len("tcp://"):].rpartition(":")
        if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ClusterError(f"--cluster {text}: expected tcp://HOST:PORT with a port in 1..65535")
        return ClusterSpec("tcp", text, address=text)
    if text.startswith("slurm:") or text == "slurm":
        opts = _slurm_options(text, text[len("slurm:"):] if text != "slurm" else "")
        return ClusterSpec("slurm", text, workers=opts["jobs"], slurm=opts)
    raise ClusterError(f"--cluster {text!r}: not a cluster spec; use {forms}")


def _slurm_options(text: str, rest: str) -> dict:
    raw: dict[str, Any] = {}
    if rest.endswith(".toml"):
        from spmm_study.limits import EXPERIMENT_BYTES, check_depth
        from spmm_study.safeio import read_text

        path = Path(rest)
        if not path.exists():
            raise ClusterError(f"--cluster {text}: no such file {path}")
        # bounded, regular files only, strict UTF-8 (a 3 GB file was read whole: 6.2 GB resident), depth checked
        body = read_text(path, limit=EXPERIMENT_BYTES, what="cluster spec", error=ClusterError)
        check_depth(body, f"--cluster {text}: {path}", ClusterError)
        try:
            doc = tomllib.loads(body)
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            raise ClusterError(f"--cluster {text}: {path} is not valid TOML: {str(exc)[:120]}") from None
        raw = doc.get("slurm")
        if not isinstance(raw, dict):
            raise ClusterError(f"--cluster {text}: {path} has no [slurm] table")
    elif rest:
        for item in rest.split(","):
            key, eq, val = item.partition("=")
            if not eq or not key.strip() or not val.strip():
                raise ClusterError(f"--cluster {text}: {item!r} must look like key=value")
            key = key.strip()
            kind = SLURM_KEYS.get(key)
            if kind is int:
                if not val.strip().isdigit():
                    raise ClusterError(f"--cluster {text}: {key}={val} must be a whole number")
                raw[key] = int(val)
            elif kind is list:
                raw[key] = [v for v in val.split(";") if v]
            else:
                raw[key] = val.strip()
    out = {"jobs": 1, "cores": 1, "memory": "4GB", "walltime": "01:00:00", "gpus": 0}
    for key, val in raw.items():
        kind = SLURM_KEYS.get(key)
        if kind is None:
            raise ClusterError(f"--cluster {text}: unknown Slurm option {key!r} (known: {', '.join(sorted(SLURM_KEYS))})")
        if kind is list and isinstance(val, str):
            val = [val]
        if not isinstance(val, kind) or isinstance(val, bool):
            raise ClusterError(f"--cluster {text}: {key} = {val!r} must be a {kind.__name__}")
        out[key] = val
    if out["jobs"] < 1 or out["jobs"] > 10_000:
        raise ClusterError(f"--cluster {text}: jobs = {out['jobs']} must be between 1 and 10000")
    if out["cores"] < 1:
        raise ClusterError(f"--cluster {text}: cores = {out['cores']} must be >= 1")
    if out["gpus"] not in (0, 1):
        raise ClusterError(f"--cluster {text}: gpus = {out['gpus']}: one GPU per job (one worker per GPU); "
                           "ask for more jobs instead")
    return out


def require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError(f"--cluster needs Dask distributed, which is not installed: {INSTALL}") from None


# ----------------------------------------------------------------------------------------------- starting


# A worker's own housekeeping runs in the measuring process: the statistical profiler grabs the GIL every
# 10 ms to walk the measuring thread's stack, the event-loop health tick runs every 20 ms, the memory monitor
# every 100 ms. Measurements want a quiet process: no profiler, slow ticks (as config, or env for Slurm jobs).
# And the allocator as in a plain process: Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers, so
# glibc hands freed memory back at once and a kernel that allocates its output each call (scipy's csr @ dense)
# page-faults it in again every time: scipy over numpy came out at half its serial ratio on a worker.
QUIET_WORKER = {"distributed.nanny.pre-spawn-environ": {},"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "2s",
                "distributed.admin.system-monitor.gil.enabled": False,
                "distributed.worker.memory.monitor-interval": "1s"}


def _quiet_env() -> dict[str, str]:
    """QUIET_WORKER as DASK_* environment variables (for workers started by a job script)."""
    return {"DASK_" + k.upper().replace(".", "__").replace("-", "_"): str(v) for k, v in QUIET_WORKER.items()}


def _pin_env(cores: int) -> dict[str, str]:
    n = str(cores)
    return {"NUMBA_NUM_THREADS": n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def slurm_cluster(opts: dict):
    """The dask-jobqueue SLURMCluster for the options: one single-threaded worker per job, owning the job's
    cores (resource CPU=cores) or its GPU (GPU=1), with numba/BLAS pools of the job's size."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ClusterError(f"--cluster slurm needs dask-jobqueue, which is not installed: {INSTALL}") from None
    cores, gpus = opts["cores"], opts["gpus"]
    resources = f"CPU={cores}" + (",GPU=1" if gpus else "")
    env = {**_pin_env(cores), **_quiet_env()}
    prologue = [f"export {k}={shlex.quote(v)}" for k, v in env.items()] + list(opts.get("prologue", []))
    directives = list(opts.get("job_extra", [])) + (["--gres=gpu:1"] if gpus else [])
    kwargs = dict(cores=1, processes=1, memory=opts["memory"], job_cpu=cores, walltime=opts["walltime"],
                  worker_extra_args=["--resources", resources], job_script_prologue=prologue,
                  job_extra_directives=directives, name="spmm-study",
                  scheduler_options={"dashboard_address": ":0"})
    for key in ("queue", "account", "python", "interface", "local_directory", "log_directory"):
        if key in opts:
            kwargs[key] = opts[key]
    try:
        return SLURMCluster(**kwargs)
    except Exception as exc:  # noqa: BLE001 - a bad option of dask-jobqueue is one line
        raise ClusterError(f"--cluster slurm: {_oneline(exc)}") from None


def _quiet_logs() -> None:
    """Dask logs a traceback for every lost connection; the command says what happened in one line."""
    import logging

    names = [n for n in logging.root.manager.loggerDict if n.startswith(("distributed", "dask"))]
    for name in names + ["distributed", "distributed.client", "distributed.nanny", "distributed.scheduler",
                         "distributed.worker", "distributed.core", "distributed.comm", "dask_jobqueue", "bokeh",
                         "tornado", "tornado.application"]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


class Cluster:
    """A started cluster and its client; a context manager that closes what it started."""

    def __init__(self, spec: ClusterSpec, timeout_s: float = DEFAULT_TIMEOUT_S):
        require_dask()
        import dask
        from distributed import Client

        _quiet_logs()
        self.spec = spec
        self.timeout_s = timeout_s
        self._cluster = None
        self.pin_per_worker = 0  # local:N: worker i runs on cores [i·c, (i+1)·c), set on its first task
        # the scheduler must not re-run a task whose worker died: its rows already streamed back and a blind
        # re-run would measure them twice; the client resubmits what is left instead (bounded, see run_tasks)
        self._config = dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                        "distributed.comm.timeouts.connect": f"{timeout_s}s", **QUIET_WORKER})
        self._config.__enter__()
        try:
            if spec.kind == "local":
                from distributed import LocalCluster

                from spmm_study.environment import cores

                per = cores() // spec.workers
                self._cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                                             resources={"CPU": per}, dashboard_address=":0",
                                             env={**_pin_env(per), **_quiet_env()}, silence_logs=50)
                self.client = Client(self._cluster, timeout=timeout_s)
                self.pin_per_worker = per
            elif spec.kind == "local-cuda":
                self._cluster = _local_cuda_cluster()
                self.client = Client(self._cluster, timeout=timeout_s)
            elif spec.kind == "slurm":
                self._cluster = slurm_cluster(spec.slurm)
                self._cluster.scale(jobs=spec.workers)
                self.client = Client(self._cluster, timeout=timeout_s)
            else:
                try:
                    self.client = Client(spec.address, timeout=timeout_s)
                except (OSError, TimeoutError) as exc:
                    raise ClusterError(f"cannot reach the Dask scheduler at {spec.address} within {timeout_s:g} s: "
                                       f"{_oneline(exc)}") from None
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        client = getattr(self, "client", None)
        for thing in (client, self._cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing a lost cluster must not hide why it was lost
                    pass
        if getattr(self, "_config", None) is not None:
            self._config.__exit__(None, None, None)
            self._config = None

    def workers(self) -> dict[str, dict]:
        """Worker address → its resources (declared ones for Slurm jobs not started yet)."""
        if self.spec.kind == "slurm":
            res = {"CPU": self.spec.slurm["cores"], **({"GPU": 1} if self.spec.slurm["gpus"] else {})}
            return {f"job-{i}": dict(res) for i in range(self.spec.workers)}
        if self.spec.kind == "tcp":
            try:
                self.client.wait_for_workers(1, timeout=self.timeout_s)
            except (TimeoutError, OSError):
                raise ClusterError(f"the scheduler at {self.spec.address} has no worker (waited "
                                   f"{self.timeout_s:g} s); start one with: dask worker {self.spec.address} "
                                   "--nthreads 1 --resources CPU=<cores> (or GPU=1)") from None
        info = self.client.scheduler_info(n_workers=-1) if _takes_n_workers(self.client) else self.client.scheduler_info()
        return {addr: dict(w.get("resources") or {}) for addr, w in info["workers"].items()}


def _takes_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def _local_cuda_cluster():
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise ClusterError(f"--cluster local-cuda needs dask-cuda, which is not installed: {INSTALL_GPU}") from None
    from spmm_study.gpu.device import gpu_unavailable_reason

    reason = gpu_unavailable_reason()
    if reason:
        raise ClusterError(f"--cluster local-cuda: {reason}")
    return LocalCUDACluster(threads_per_worker=1, resources={"GPU": 1}, dashboard_address=":0", silence_logs=50)


# ----------------------------------------------------------------------------------------------- tasks


def requirement(task, cores: int | None = None) -> dict[str, int]:
    """The Dask resources one measurement needs: its GPU, or its CPU threads (``cores``: the whole worker)."""
    if task.variant.device == "gpu":
        return {"GPU": 1}
    return {"CPU": int(task.threads if task.threads is not None else (cores or 1))}


@dataclass
class Group:
    """One Dask task: the measurements of one problem on one device, in grid order."""

    gid: int
    tasks: list  # (index into the run's task list, runner.Task)
    resources: dict
    attempts: int = 0
    worker: str = ""


def _problem(task) -> tuple:
    return (task.matrix, task.n, task.dtype, task.seed, task.prune)


def make_groups(tasks: list, cores: int | None = None) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for i, t in enumerate(tasks):
        key = (_problem(t), t.variant.device)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(len(groups), [], {})
        g.tasks.append((i, t))
        for name, val in requirement(t, cores).items():
            g.resources[name] = max(g.resources.get(name, 0), val)
    return list(groups.values())


def fit_to_workers(tasks: list, workers: dict[str, dict]) -> tuple[list, list[str]]:
    """Tasks with ``threads=None`` (CPU: the whole worker) resolved to the workers' core count, and the tasks
    no worker can take dropped; returns (tasks, warnings). Workers offering different core counts need
    explicit threads (a row's thread count must not depend on which worker took it)."""
    if not workers:
        raise ClusterError("the cluster has no workers")
    cpu = sorted({int(r["CPU"]) for r in workers.values() if r.get("CPU")})
    gpu = any(r.get("GPU", 0) >= 1 for r in workers.values())
    if not cpu and not gpu:
        raise ClusterError("no worker declares a CPU or GPU resource, so none can promise one measurement per "
                           "device; start workers with --nthreads 1 --resources CPU=<cores> (or GPU=1)")
    out, dropped = [], {}
    for t in tasks:
        if t.variant.device == "gpu":
            if not gpu:
                dropped.setdefault("no worker offers a GPU", set()).add(t.variant.id)
                continue
        else:
            if not cpu:
                dropped.setdefault("no worker offers CPU cores (GPU workers measure GPU variants only)",
                                   set()).add(t.variant.id)
                continue
            if t.threads is None:
                if len(cpu) > 1:
                    raise ClusterError(f"the CPU workers offer different core counts ({', '.join(map(str, cpu))}): "
                                       "give threads in the experiment, so a row does not depend on its worker")
                t = replace(t, threads=cpu[0])
            elif t.threads > cpu[-1]:
                dropped.setdefault(f"threads > {cpu[-1]}, the most cores a worker offers", set()).add(t.variant.id)
                continue
        out.append(t)
    warnings = [f"skipped {', '.join(sorted(ids))}: {why}" for why, ids in dropped.items()]
    return out, warnings


def _task_payload(task) -> dict:
    return {"variant": task.variant.id, "matrix": task.matrix, "n": task.n, "params": list(task.params),
            "dtype": task.dtype, "seed": task.seed, "prune": task.prune, "threads": task.threads, "tags": task.tags}


def _timing_payload(timing) -> dict:
    return asdict(timing)


# ----------------------------------------------------------------------------------------------- on a worker


_WORKER_CONTEXTS: dict = {}


class _DoneKeys:
    """What ``runner.execute`` needs of a writer on a worker: ``has`` (the client's finished keys of this
    problem) and an ``append`` that keeps nothing (the client writes)."""

    def __init__(self, keys: Iterable[str]):
        self.done = set(keys)

    def has(self, key) -> bool:
        return (key if isinstance(key, str) else key.key()) in self.done

    def append(self, result) -> None:
        pass


def worker_facts() -> dict:
    from spmm_study.environment import cores, cpu_model

    facts = {"host": platform.node(), "cpu_model": cpu_model(), "cores": cores()}
    try:
        from distributed import get_worker

        facts["worker"] = get_worker().address
    except (ImportError, ValueError):
        pass
    return facts


def _pin(per_worker: int) -> None:
    """``local:N``: this worker (named 0..N-1) runs on its own ``per_worker`` cores from now on."""
    global _PINNED
    if _PINNED or per_worker < 1:
        return
    _PINNED = True
    try:
        from distributed import get_worker

        allowed = sorted(os.sched_getaffinity(0))
        i = int(get_worker().name)
        mine = allowed[i * per_worker:(i + 1) * per_worker]
        if mine:
            os.sched_setaffinity(0, mine)
    except (AttributeError, ValueError, TypeError, OSError):
        pass  # no affinity here: the resources still keep one measurement per worker


_PINNED = False


def run_group(queue_name: str | None, gid: int, attempt: int, items: list, timing: dict, dlmc_root: str | None,
              done_keys: list[str], pin: int = 0) -> list[tuple]:
    """Measure one group on this worker; each row is sent to the client (an event of topic ``queue_name``)
    the moment it exists. Returns the same messages (the client reconciles both: a row is written once)."""
    from spmm_study import registry, runner
    from spmm_study.timing import TimingConfig

    _pin(pin)

    tcfg = TimingConfig(**timing)
    key = (dlmc_root, tcfg)
    ctx = _WORKER_CONTEXTS.get(key)
    if ctx is None:
        _WORKER_CONTEXTS.clear()
        ctx = _WORKER_CONTEXTS[key] = runner.Context(dlmc_root=dlmc_root, timing=tcfg)
    emit = None
    if queue_name:  # the worker's batched stream to the scheduler, which forwards to the subscribed client:
        from distributed import get_worker  # no round trip on the measuring worker's path

        worker = get_worker()

        def emit(msg):
            worker.log_event(queue_name, list(msg))
    facts = worker_facts()
    if emit is not None:
        emit(("start", gid, attempt, facts))
    writer = _DoneKeys(done_keys)
    out = []
    for idx, p in items:
        task = runner.Task(registry.get(p["variant"]), p["matrix"], p["n"], tuple(tuple(x) for x in p["params"]),
                           p["dtype"], p["seed"], p["prune"], p["threads"], p["tags"])
        t0, started = time.perf_counter(), time.time()
        got = None
        for res in runner.execute([task], ctx, writer):
            got = res
        wall = time.perf_counter() - t0
        if got is None:
            msg = ("skip", gid, idx, {"wall_s": wall, "t0": started})
        else:
            row = asdict(got)
            try:
                info = json.loads(row.get("info") or "{}")
            except json.JSONDecodeError:
                info = {}
            info.update({k: v for k, v in facts.items() if k != "cores"})
            row["info"] = json.dumps(info, default=str)
            msg = ("row", gid, idx, {"row": row, "wall_s": wall, "t0": started})
        out.append(msg)
        if emit is not None:
            emit(msg)
    return out


# ----------------------------------------------------------------------------------------------- the client


@dataclass
class Outcome:
    rows: list[dict]  # rows appended by this run, in arrival order
    skipped: int  # tasks a worker found finished already
    failed: int  # FAIL and ERROR rows
    retried: int  # groups resubmitted after their worker died while measuring them
    by_index: dict = field(default_factory=dict)  # task index -> (row or None when skipped, worker seconds)
    spans: list = field(default_factory=list)  # (worker, start time.time(), seconds) of each measurement
    writer: Any = None


def _result_from_row(row: dict):
    from spmm_study.results import Result

    names = {f.name for f in fields(Result)}
    return Result(**{k: v for k, v in row.items() if k in names})


def error_row(task, ctx, message: str, machine: str = ""):
    """An ERROR row for a measurement that never finished (its worker died too often), with the key the
    task's own row would have, so that a resume measures it again."""
    from spmm_study.harness import HarnessConfig, new_row, row_threads
    from spmm_study.problem import parse_dtype

    a = ctx.matrix(task.matrix, task.prune, task.seed).a
    v = task.variant
    try:
        params = v.resolve_params(dict(task.params))
    except SpmmError:
        params = dict(task.params)
    cfg = HarnessConfig(timing=ctx.timing, machine=machine, tags=task.tags)
    return new_row(v, matrix=ctx.matrix(task.matrix, task.prune, task.seed).spec, m=a.m, k=a.k, n=task.n,
                   nnz=a.nnz, dtype=str(parse_dtype(task.dtype)), seed=task.seed, params=params,
                   threads=row_threads(v, task.threads), cfg=cfg, message=message[:300])


def _oneline(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _done_by_matrix(writer) -> dict[str, list[str]]:
    from spmm_study.results import row_key

    out: dict[str, list[str]] = {}
    if writer is None:
        return out
    for r in writer.rows:
        k = row_key(r)
        if k in writer.done:
            out.setdefault(r["matrix"], []).append(k)
    return out


MAX_REQUEUES = 20  # a group whose worker died before it began is sent again without using a retry, this often


def run_tasks(cluster: Cluster, tasks: list, ctx, writer=None, *, retries: int = 2,
              on_event: Callable[[str, dict], None] | None = None, poll_s: float = 0.02) -> Outcome:
    """Measure ``tasks`` on the cluster; rows are appended to ``writer`` as they arrive (when given).
    ``on_event(kind, info)`` sees "start" and "end" of a group on a worker, each "row" and "skip", "retry"."""
    import collections

    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    if retries < 0:
        raise ParamError(f"--retries {retries} must be >= 0")
    client = cluster.client
    by_matrix = _done_by_matrix(writer)
    canon: dict[tuple, str] = {}
    for t in tasks:
        if (t.matrix, t.prune, t.seed) not in canon:
            canon[(t.matrix, t.prune, t.seed)] = ctx.matrix(t.matrix, t.prune, t.seed).spec
    todo = [(i, t) for i, t in enumerate(tasks)
            if writer is None or not writer.has(t.key(canon[(t.matrix, t.prune, t.seed)], ctx.timing.cache))]
    outcome = Outcome([], len(tasks) - len(todo), 0, 0)
    queued = {i for i, _ in todo}
    outcome.by_index = {i: (None, 0.0) for i in range(len(tasks)) if i not in queued}
    groups = make_groups([t for _, t in todo])
    for g in groups:  # back to indices into ``tasks``
        g.tasks = [(todo[j][0], t) for j, t in g.tasks]
    if on_event and outcome.skipped:
        on_event("resumed", {"count": outcome.skipped})
    qname = f"spmm-study-{uuid.uuid4().hex}"
    inbox: collections.deque = collections.deque()
    client.subscribe_topic(qname, lambda event: inbox.append(event[1]))
    timing = _timing_payload(ctx.timing)
    received: set[tuple[int, int]] = set()
    by_gid = {g.gid: g for g in groups}
    started: set[tuple[int, int]] = set()  # (gid, attempt) that began on a worker
    requeued = [0]
    machines: dict[int, str] = {}
    pin = cluster.pin_per_worker

    def submit(g: Group):
        items = [(idx, _task_payload(t)) for idx, t in g.tasks if (g.gid, idx) not in received]
        t0 = g.tasks[0][1]
        done = by_matrix.get(canon[(t0.matrix, t0.prune, t0.seed)], [])
        key = f"spmm-study-{g.gid}-{g.attempts}-{uuid.uuid4().hex[:8]}"
        fut = client.submit(run_group, qname, g.gid, g.attempts, items, timing, ctx.dlmc_root, done, pin,
                            resources=g.resources, pure=False, key=key)
        fut.spmm_gid = g.gid
        fut.spmm_attempt = g.attempts
        return fut

    def handle(msg):
        kind, gid, idx, payload = msg
        if kind == "start":
            by_gid[gid].worker = payload.get("worker", "")
            started.add((gid, idx))  # idx carries the attempt for a start message
            if on_event:
                on_event("start", {"gid": gid, **payload})
            return
        if (gid, idx) in received:
            return
        received.add((gid, idx))
        outcome.spans.append((by_gid[gid].worker, payload.get("t0", float("nan")), payload.get("wall_s", float("nan"))))
        if kind == "skip":
            outcome.skipped += 1
            outcome.by_index[idx] = (None, payload.get("wall_s", float("nan")))
            if on_event:
                on_event("skip", {"gid": gid, "idx": idx})
            return
        row = payload["row"]
        machines[gid] = row.get("machine", "")
        res = _result_from_row(row)
        outcome.by_index[idx] = (row, payload.get("wall_s", float("nan")))
        if writer is not None:
            if writer.has(res.key()):
                return  # finished meanwhile by another run into the same folder: never a second row
            writer.append(res)
        outcome.rows.append(row)
        if row["status"] in ("FAIL", "ERROR"):
            outcome.failed += 1
        if on_event:
            on_event("row", row)

    lost_since = [None]

    def drain() -> int:
        n = 0
        while inbox:
            handle(tuple(inbox.popleft()))
            n += 1
        if client.status != "running":  # a lost scheduler: the rows so far are kept, a resume does the rest
            lost_since[0] = lost_since[0] or time.monotonic()
            if time.monotonic() - lost_since[0] > cluster.timeout_s:
                raise ClusterError(f"lost the Dask scheduler (client {client.status} for {cluster.timeout_s:g} s); "
                                   "the rows measured so far are kept: rerun with --resume")
        else:
            lost_since[0] = None
        return n

    def give_up(g: Group, why: str):
        for idx, t in g.tasks:
            if (g.gid, idx) in received:
                continue
            received.add((g.gid, idx))
            res = error_row(t, ctx, why, machines.get(g.gid, ""))
            if writer is not None:
                writer.append(res)
            row = asdict(res)
            outcome.rows.append(row)
            outcome.by_index[idx] = (row, float("nan"))
            outcome.failed += 1
            if on_event:
                on_event("row", row)

    window = max(4, 2 * max(1, len(cluster.workers())))  # groups in flight: enough to keep every worker fed
    waiting = list(reversed(groups))
    ac = as_completed([])
    in_flight = 0
    import asyncio

    from distributed.comm.core import CommClosedError

    try:
        while waiting or in_flight:
            while waiting and in_flight < window:
                ac.add(submit(waiting.pop()))
                in_flight += 1
            busy = drain()
            ready = ac.next_batch(block=False) if ac.has_ready() else []
            for fut in ready:
                in_flight -= 1
                g = by_gid[fut.spmm_gid]
                if fut.status == "finished":
                    drain()
                    for msg in fut.result():
                        handle(tuple(msg))
                    if on_event:
                        on_event("end", {"gid": g.gid})
                    continue
                if fut.status == "cancelled" or client.status != "running":
                    raise ClusterError(f"lost the Dask scheduler (client {client.status}, a task {fut.status}); "
                                       "the rows measured so far are kept: rerun with --resume")
                exc = fut.exception() if fut.status == "error" else None
                drain()  # the rows a dying worker sent before it died are kept
                if on_event:
                    on_event("end", {"gid": g.gid})
                if not [i for i, _ in g.tasks if (g.gid, i) not in received]:
                    continue
                if isinstance(exc, KilledWorker) or exc is None:
                    began = (g.gid, fut.spmm_attempt) in started
                    if not began and requeued[0] < MAX_REQUEUES:
                        requeued[0] += 1  # its worker died before it began: not this problem's fault
                        g.attempts += 1
                        waiting.append(g)
                        continue
                    g.attempts += 1
                    why = f"worker {g.worker or '?'} died while measuring this problem"
                    failures = sum(1 for a in range(g.attempts) if (g.gid, a) in started)
                    if failures <= retries:
                        outcome.retried += 1
                        if on_event:
                            on_event("retry", {"gid": g.gid, "attempt": g.attempts, "why": why})
                        waiting.append(g)
                    else:
                        give_up(g, f"{why}, {failures} times; not retried again (--retries {retries})")
                else:
                    give_up(g, f"on worker {g.worker or '?'}: {_oneline(exc)}")
            if not busy and not ready:
                time.sleep(poll_s)
        drain()
    except (CommClosedError, OSError, asyncio.CancelledError, TimeoutError) as exc:
        raise ClusterError(f"lost the Dask scheduler ({_oneline(exc)}); the rows measured so far are kept: "
                           "rerun with --resume") from None
    finally:
        try:
            client.unsubscribe_topic(qname)
        except Exception:  # noqa: BLE001 - a lost scheduler
            pass
    return outcome


# ----------------------------------------------------------------------------------------------- the command line


def prepare(spec_text: str, tasks: list, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[Cluster, list, list[str]]:
    """Parse, start/connect, fit the tasks to the workers: (cluster, tasks, warnings). The caller closes it."""
    spec = parse_spec(spec_text)
    require_dask()
    cluster = Cluster(spec, timeout_s)
    try:
        tasks, warnings = fit_to_workers(tasks, cluster.workers())
        if not tasks:
            raise ClusterError(f"no task of this grid can run on {spec.text}: " + "; ".join(warnings))
    except BaseException:
        cluster.close()
        raise
    return cluster, tasks, warnings


def run_command(spec_text: str, tasks: list, ctx, open_writer: Callable[[], Any] | None, *, retries: int = 2,
                timeout_s: float = DEFAULT_TIMEOUT_S, console=None, title: str = "sweep") -> Outcome:
    """What ``sweep/compare/autotune --cluster`` call: start or reach the cluster, drop (with a warning) the
    tasks no worker can take, open the result folder (``open_writer()``; None: keep no files), measure the
    rest behind a progress bar, close what was started. The writer is in ``Outcome.writer``."""
    cluster, fitted, warnings = prepare(spec_text, tasks, timeout_s)
    with cluster:
        writer = open_writer() if open_writer is not None else None
        for w in warnings:
            if console is not None:
                console.print(f"warning: {w}", markup=False, highlight=False)
        out = run_with_progress(cluster, fitted, ctx, writer, retries=retries, console=console, title=title)
        out.writer = writer
    if console is not None and out.skipped:
        console.print(f"[dim]resumed: {out.skipped} of {len(fitted)} measurements were done already[/]")
    return out


def dry_run(spec_text: str, tasks: list, ctx, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Estimate:
    """The task count and the time per worker, from a calibration of a few measurements on the workers."""
    cluster, fitted, warnings = prepare(spec_text, tasks, timeout_s)
    with cluster:
        samples = calibrate_on(cluster, fitted, ctx)
        est = estimate(fitted, ctx, samples, len(cluster.workers()))
    est.warnings = [f"warning: {w}" for w in warnings]
    return est


def run_with_progress(cluster: Cluster, tasks: list, ctx, writer, *, retries: int, console, title: str) -> Outcome:
    """``run_tasks`` behind a progress bar: measurements done of total, running, failed, retried, ETA."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    n_workers = len(cluster.workers())
    from rich.table import Column

    fixed = Column(no_wrap=True)  # a narrow terminal shortens the bar, never the count or the ETA
    progress = Progress(TextColumn("[bold]{task.description}", table_column=fixed), BarColumn(bar_width=12),
                        MofNCompleteColumn(table_column=fixed),
                        TextColumn("running {task.fields[running]}/{task.fields[workers]}", table_column=fixed),
                        TextColumn("failed {task.fields[failed]}{task.fields[retried]}", table_column=fixed),
                        TimeElapsedColumn(table_column=fixed), TextColumn("ETA", table_column=fixed),
                        TimeRemainingColumn(table_column=fixed), console=console, transient=False)
    running: dict[str, int] = {}  # worker -> the group it measures (a worker starting a group ended its last)
    counts = {"failed": 0, "retried": 0}
    with progress:
        bar = progress.add_task(title, total=len(tasks), running=0, workers=n_workers, failed=0, retried="")

        def on_event(kind: str, info: dict) -> None:
            advance = 0
            if kind == "start":
                running[info.get("worker", "?")] = info["gid"]
            elif kind in ("end", "retry"):
                for w in [w for w, g in running.items() if g == info["gid"]]:
                    del running[w]
                counts["retried"] += kind == "retry"
            elif kind in ("row", "skip"):
                counts["failed"] += kind == "row" and info.get("status") in ("FAIL", "ERROR")
                advance = 1
            elif kind == "resumed":
                advance = info["count"]
            progress.update(bar, advance=advance, running=len(running), failed=counts["failed"],
                            retried=f", retried {counts['retried']}" if counts["retried"] else "")

        out = run_tasks(cluster, tasks, ctx, writer, retries=retries, on_event=on_event)
        progress.update(bar, completed=len(tasks), running=0)
    return out


# ----------------------------------------------------------------------------------------------- estimates


def calibration_sample(tasks: list, ctx, per_variant: int = 2) -> list:
    """The few tasks a dry run measures: per variant, its smallest and its median problem by nnz·N."""
    by_variant: dict[str, list] = {}
    for t in tasks:
        by_variant.setdefault(t.variant.id, []).append(t)
    out = []
    for ts in by_variant.values():
        ts = sorted(ts, key=lambda t: _work(t, ctx))
        # the smallest and the median problem: the largest would make the "small" calibration run long
        pick = [ts[0]] if per_variant == 1 or len(ts) == 1 else [ts[0], ts[len(ts) // 2]]
        out += list(dict.fromkeys(pick))
    return out


def _work(task, ctx) -> float:
    a = ctx.matrix(task.matrix, task.prune, task.seed).a
    return float(max(a.nnz, 1)) * task.n + a.m * task.n


@dataclass
class Estimate:
    tasks: int
    problems: int
    workers: int
    total_s: float
    per_worker_s: float
    calibrated: int  # measurements made to calibrate
    uncalibrated: list[str]  # variants without a passing calibration row (their time is a guess from [timing])
    warnings: list[str] = field(default_factory=list)  # tasks no worker can take, dropped

    def lines(self) -> list[str]:
        out = list(self.warnings) + [f"{self.tasks} measurements over {self.problems} problems",
               f"estimated {fmt_duration(self.total_s)} of measuring in all: {fmt_duration(self.per_worker_s)} per "
               f"worker over {self.workers} worker{'s' if self.workers != 1 else ''} "
               f"(calibrated on {self.calibrated} measurement{'s' if self.calibrated != 1 else ''})"]
        if self.uncalibrated:
            out.append("not calibrated (guessed from the timing settings): " + ", ".join(self.uncalibrated))
        return out


def fmt_duration(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def estimate(tasks: list, ctx, samples: list[tuple], workers: int) -> Estimate:
    """Time per measurement modelled per variant as a + b·(nnz·N) through its calibration points (wall seconds
    on a worker minus the JIT compile, which is added once per worker and variant)."""
    t = ctx.timing
    guess = t.warmup_s + t.min_time_s + 0.05
    points: dict[str, list[tuple[float, float]]] = {}
    compile_s: dict[str, float] = {}
    for task, row, wall in samples:
        if row is None or row.get("status") != "PASS":
            continue
        first, med = row.get("first_call_s", 0.0), row.get("median_s", 0.0)
        extra = max(0.0, (first or 0.0) - (med or 0.0)) if all(map(math.isfinite, (first, med))) else 0.0
        compile_s[task.variant.id] = max(compile_s.get(task.variant.id, 0.0), extra)
        points.setdefault(task.variant.id, []).append((_work(task, ctx), max(wall - extra, 0.0)))
    total = 0.0
    uncal = set()
    for task in tasks:
        pts = sorted(points.get(task.variant.id, []))
        if not pts:
            uncal.add(task.variant.id)
            total += guess
            continue
        w = _work(task, ctx)
        if len(pts) == 1 or pts[-1][0] == pts[0][0]:
            total += pts[-1][1]
            continue
        (w1, t1), (w2, t2) = pts[0], pts[-1]
        b = max(0.0, (t2 - t1) / (w2 - w1))
        a = max(0.0, t1 - b * w1)
        total += a + b * w
    total += sum(compile_s.values()) * max(workers, 1)
    n_problems = len({_problem(x) for x in tasks})
    return Estimate(len(tasks), n_problems, workers, total, total / max(workers, 1), len(samples), sorted(uncal))


def calibrate_on(cluster: Cluster | None, tasks: list, ctx) -> list[tuple]:
    """Measure the calibration sample (on the cluster when given, else here): (task, row, wall_s) each."""
    sample = calibration_sample(tasks, ctx)
    out = []
    if cluster is None:
        from spmm_study import runner

        for task in sample:
            t0 = time.perf_counter()
            rows = list(runner.execute([task], ctx))
            out.append((task, asdict(rows[0]) if rows else None, time.perf_counter() - t0))
        return out
    res = run_tasks(cluster, sample, ctx, None, retries=0)
    return [(task, *res.by_index.get(i, (None, float("nan")))) for i, task in enumerate(sample)]
