"""Glue between specs, problems, the harness and result files: what ``run``, ``compare`` and ``sweep`` share.

``Task`` is one measurement to make; ``execute`` loads each matrix once, builds each problem once, skips
tasks a resumed writer already holds, and appends every result the moment it exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from spmm_study import sources
from spmm_study.errors import DeviceUnavailable, SpmmError
from spmm_study.harness import HarnessConfig, current_threads, default_threads, measure
from spmm_study.problem import Problem, parse_dtype
from spmm_study.registry import Variant
from spmm_study.results import Result, ResultWriter
from spmm_study.timing import TimingConfig


@dataclass(frozen=True)
class Task:
    variant: Variant
    matrix: str  # spec as typed
    n: int
    params: tuple = ()  # sorted (name, value) pairs given by the user (defaults are added by the harness)
    dtype: str = "float32"
    seed: int = 0
    prune: str | None = None
    threads: int | None = None
    tags: str = ""

    def key(self, canonical_spec: str, cache: str) -> str:
        resolved = self.variant.resolve_params(dict(self.params))
        if self.variant.device != "cpu":
            threads = current_threads()
        else:
            threads = self.threads if self.threads is not None else default_threads()
        # the row records the dtype's canonical name (float32), the user may have typed an alias (fp32)
        dtype = str(parse_dtype(self.dtype))
        return "|".join(map(str, (self.variant.id, canonical_spec, self.n, dtype, self.seed,
                                  json.dumps(resolved, sort_keys=True), threads, cache, self.tags)))


@dataclass
class Context:
    dlmc_root: str | None = None
    timing: TimingConfig = field(default_factory=TimingConfig)
    machine: str = ""
    _matrices: dict = field(default_factory=dict)
    _problems: dict = field(default_factory=dict)

    def matrix(self, spec: str, prune: str | None, seed: int) -> sources.Loaded:
        key = (spec, prune, seed)
        if key not in self._matrices:
            self._matrices[key] = sources.load(spec, prune=prune, seed=seed, dlmc_root=self.dlmc_root)
        return self._matrices[key]

    def problem(self, task: Task) -> Problem:
        key = (task.matrix, task.prune, task.seed, task.n, task.dtype)
        if key not in self._problems:
            if len(self._problems) > 4:  # keep memory bounded in long sweeps (references are M×N float64)
                self._problems.pop(next(iter(self._problems)))
            loaded = self.matrix(task.matrix, task.prune, task.seed)
            self._problems[key] = Problem.make(loaded.a, task.n, task.dtype, task.seed, matrix=loaded.spec)
        return self._problems[key]


def skipped_row(task: Task, problem: Problem | None, status: str, message: str, cfg: HarnessConfig) -> Result:
    s = problem.shape if problem else None
    return Result(
        variant=task.variant.id, device=task.variant.device, format=task.variant.format, idea=task.variant.idea,
        baseline=task.variant.baseline, matrix=problem.matrix if problem else task.matrix,
        m=s.m if s else 0, k=s.k if s else 0, n=task.n, nnz=s.nnz if s else 0,
        sparsity=round(s.sparsity, 6) if s else float("nan"), dtype=str(parse_dtype(task.dtype)), seed=task.seed,
        params=json.dumps(dict(task.params), sort_keys=True), threads=task.threads or 0, status=status,
        message=message, cache=cfg.timing.cache, machine=cfg.machine, tags=task.tags,
    )


def execute(tasks: Iterable[Task], ctx: Context, writer: ResultWriter | None = None,
            on_result: Callable[[Task, Result], None] | None = None,
            strict: bool = False) -> Iterator[Result]:
    """Measure each task; yields results. Unavailable variants give UNAVAILABLE rows unless ``strict``,
    when the first user error is raised (``run`` of a single variant wants the one-line exit)."""
    for task in tasks:
        problem = None
        try:
            problem = ctx.problem(task)
            if writer is not None and writer.has(task.key(problem.matrix, ctx.timing.cache)):
                continue
            cfg = HarnessConfig(timing=ctx.timing, threads=task.threads,
                                machine=ctx.machine or _machine(task.variant.device), tags=task.tags)
            result = measure(task.variant, problem, dict(task.params), cfg)
        except DeviceUnavailable as exc:
            if strict:
                raise
            result = skipped_row(task, problem, "UNAVAILABLE", str(exc), HarnessConfig(timing=ctx.timing))
        except SpmmError:
            raise
        if writer is not None:
            writer.append(result)
        if on_result is not None:
            on_result(task, result)
        yield result


def _machine(device: str) -> str:
    from spmm_study.environment import machine_label

    return machine_label(device)
