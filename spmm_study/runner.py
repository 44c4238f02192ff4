"""Glue between specs, problems, the harness and result files: what ``run``, ``compare`` and ``sweep`` share.

``Task`` is one measurement to make; ``execute`` loads each matrix once, builds each problem once, skips
tasks a resumed writer already holds, and appends every result the moment it exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from spmm_study import sources
from spmm_study.errors import DeviceUnavailable
from spmm_study.harness import HarnessConfig, base_row, measure, row_threads
from spmm_study.problem import Problem, parse_dtype
from spmm_study.registry import Variant
from spmm_study.results import Result, ResultWriter, resume_key
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
        """The ``resume_key`` of the row this task will write (params resolved, dtype canonical)."""
        params = json.dumps(self.variant.resolve_params(dict(self.params)), sort_keys=True)
        return resume_key(self.variant.id, canonical_spec, self.n, str(parse_dtype(self.dtype)), self.seed, params,
                          row_threads(self.variant, self.threads), cache, self.tags)


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
            if loaded.conv is not None:  # a conv: spec (docs/conv.md): N is the geometry's, batch·Ho·Wo
                from spmm_study.conv import ConvProblem

                self._problems[key] = ConvProblem.make(loaded.a, loaded.conv, task.dtype, task.seed, matrix=loaded.spec)
            else:
                self._problems[key] = Problem.make(loaded.a, task.n, task.dtype, task.seed, matrix=loaded.spec)
        return self._problems[key]


def execute(tasks: Iterable[Task], ctx: Context, writer: ResultWriter | None = None,
            on_result: Callable[[Task, Result], None] | None = None) -> Iterator[Result]:
    """Measure each task; yields results. A variant found unavailable only now (the planner drops those it
    knows of) gives an UNAVAILABLE row that says why, and the next task goes on."""
    for task in tasks:
        problem = ctx.problem(task)
        try:
            if writer is not None and writer.has(task.key(problem.matrix, ctx.timing.cache)):
                continue
            cfg = HarnessConfig(timing=ctx.timing, threads=task.threads,
                                machine=ctx.machine or _machine(task.variant.device), tags=task.tags)
            result = measure(task.variant, problem, dict(task.params), cfg)
        except DeviceUnavailable as exc:
            cfg = HarnessConfig(timing=ctx.timing, tags=task.tags)
            result = base_row(task.variant, problem, task.variant.resolve_params(dict(task.params)),
                              row_threads(task.variant, task.threads), cfg, "UNAVAILABLE", str(exc))
        if writer is not None:
            writer.append(result)
        if on_result is not None:
            on_result(task, result)
        yield result


def pending(tasks: list[Task], ctx: Context, writer: ResultWriter | None) -> list[Task]:
    """The tasks a resumed writer does not hold yet (all of them for a fresh one)."""
    if writer is None or not writer.done:
        return list(tasks)
    return [t for t in tasks if not writer.has(t.key(ctx.problem(t).matrix, ctx.timing.cache))]


def _machine(device: str) -> str:
    from spmm_study.environment import machine_label

    return machine_label(device)
