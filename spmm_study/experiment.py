"""Experiment files (TOML) → a validated grid of runs (docs/ARCHITECTURE.md §8). Every error is listed before the first run.

An experiment file asks one question; an instructor hands it out, students run ``spmm-study sweep FILE``
and hand back comparable result files. The format::

    name = "loop-orders"                       # results go to results/<name>/<timestamp>/
    description = "Does reordering the loops pay?"
    baseline = "cpu.dense.numpy"               # optional: speedups in reports are against this variant

    [timing]                                   # optional: repeats, min_time, warmup (seconds), cache,
    repeats = 10                               # rounds: each problem's variants run A B C A B C ... this
    rounds = 2                                 # many times; reports take the median of the rounds

    [defaults]                                 # optional: keys every [[runs]] entry inherits
    n = [256]
    threads = [1]

    [[runs]]                                   # one or more grids; each is a cartesian product
    variants = ["cpu.dense.*", "rowwise"]      # ids, bare ideas, or globs over ids
    matrices = ["synthetic:magnitude:ffn1:0.9"]
    n = [64, 256]                              # int or list
    threads = [1, 2]                           # int or list (CPU variants)
    dtype = "float32"                          # str or list
    seed = 0
    prune = "magnitude:0.9"                    # optional, applied to every matrix of this run
    params = { tile_n = [16, 32, 64] }         # a list, one value, or "choices" (the Param's own choices)
    tags = "lab=1"

Suites generate the (matrix, N) pairs instead of ``matrices``/``n`` (``suites.py``):

* ``suite = "study"``: the 20-problem table of the course study (``spmm_study/data/study_table.csv``; ``table =`` to
  use another). RN50 and transformer problems use their DLMC matrices when a DLMC root is given, otherwise
  (or with ``source = "synthetic"``) synthetic magnitude-pruned matrices of the same shapes; MobileNetV1 is
  always synthetic. Filters: ``sparsity = [0.9]``, ``use_case = ["NLP"]``.
* ``suite = "dlmc"``: every matrix under ``<root>/<model>/<method>/<sparsity>/`` (``model``, ``method``,
  ``sparsity = ["0.9", ...]``, ``layers = "*ffn*"`` glob). Transformer matrices run at each ``n`` (default
  256 and 2048); RN50 matrices at their layer's batch size from ``rn50_batchsizes.txt``.

Rules: a variant matched only by a glob is dropped when it takes none of the ``params`` named; a variant
named explicitly runs with the params it has (defaults for the rest). A param no selected variant takes is
an error. Variants unavailable here (a GPU variant without a GPU) are dropped with a warning.

``shard(tasks, i, n)`` splits a grid deterministically for several machines: problems (matrix, N, dtype,
seed, prune) are numbered in grid order and problem p goes to shard p mod n, so every variant of one
problem - and its baseline - is measured on the same machine, and speedups stay same-machine ratios.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spmm_study.conv import is_conv_spec
from spmm_study.errors import ParamError, SpmmError
from spmm_study.limits import EXPERIMENT_BYTES, MAX_TASKS, check_depth
from spmm_study.runner import Context, Task
from spmm_study.suites import SUITES, as_list, check_type, conv_problems, dlmc_problems, study_problems
from spmm_study.timing import TimingConfig

TOP_KEYS = {"name", "description", "baseline", "timing", "defaults", "runs"}
RUN_KEYS = {"variants", "matrices", "n", "threads", "dtype", "seed", "prune", "params", "tags", "suite",
            "device", "format",  # how bare variant names resolve (default cpu, csr)
            # suite options
            "table", "source", "sparsity", "use_case", "model", "method", "layers"}
TIMING_KEYS = {"repeats": int, "min_time": (int, float), "warmup": (int, float), "cache": str, "rounds": int}
COMMAND_LINE = "command line"  # the source of the documents run, compare, sweep and autotune build from options


class ExperimentError(ParamError):
    """An experiment file with one or more mistakes; the message lists them all."""

    def __init__(self, source: str, errors: list[str]):
        self.errors = errors
        if source == COMMAND_LINE:  # bad options are one line, as every command prints bad input
            super().__init__("; ".join(errors))
            return
        if len(errors) == 1:
            super().__init__(f"{source}: {errors[0]}")
            return
        head = f"{source}: {len(errors)} errors in the experiment"
        super().__init__(head + "\n" + "\n".join(f"  - {e}" for e in errors))


@dataclass
class Experiment:
    name: str
    description: str
    source: str  # file path or "inline"
    text: str  # the TOML text (recorded in meta.json)
    timing: TimingConfig
    baseline: str | None
    tasks: list[Task]
    warnings: list[str] = field(default_factory=list)

    def problems(self) -> list[tuple]:
        return list(dict.fromkeys(problem_of(t) for t in self.tasks))


def problem_of(task: Task) -> tuple:
    return (task.matrix, task.n, task.dtype, task.seed, task.prune)


# ----------------------------------------------------------------------------------------------- parsing


def read_experiment_text(path: Path | str) -> tuple[dict, str]:
    from spmm_study.safeio import read_text

    path = Path(path)
    if not path.exists():
        raise ParamError(f"no experiment file {path}")
    # bounded, regular files only, strict UTF-8: a binary or Latin-1 file is one line, not a traceback
    text = read_text(path, limit=EXPERIMENT_BYTES, what="experiment file", error=ParamError)
    check_depth(text, str(path))  # before the recursive parser: a file nested thousands deep is one line
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ParamError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ParamError(f"{path}: nested too deep to read") from None


def load(path: Path | str, *, dlmc_root: str | None = None, extra_params: dict[str, list] | None = None,
         ctx: Context | None = None, timing: dict | None = None, keep_unavailable: bool = False) -> Experiment:
    """Read and validate an experiment file; raises ExperimentError listing every mistake. ``timing``
    overrides keys of the file's [timing] (the command line's --repeats, --min-time, ...)."""
    doc, text = read_experiment_text(path)
    if timing:
        base = doc.get("timing", {})
        doc["timing"] = {**(base if isinstance(base, dict) else {}), **timing}
    return parse(doc, source=str(path), text=text, dlmc_root=dlmc_root, extra_params=extra_params, ctx=ctx,
                 base_dir=Path(path).resolve().parent, keep_unavailable=keep_unavailable)


def parse(doc: dict, *, source: str = "inline", text: str = "", dlmc_root: str | None = None,
          extra_params: dict[str, list] | None = None, ctx: Context | None = None,
          base_dir: Path | None = None, keep_unavailable: bool = False) -> Experiment:
    """The planner: validate an experiment document and expand its grid into tasks. Every command that
    measures builds such a document (``sweep`` reads it from a file). ``extra_params`` (from ``--param``)
    are added to every run. ``ctx`` (when given) loads every matrix now, so bad specs are errors here.
    A variant that cannot run here (no GPU, an extra not installed) is dropped with one warning, in every
    command alike; only a grid with nothing left to measure is an error, which names why.
    ``keep_unavailable`` keeps the variants this machine cannot run (a sweep on other machines' workers)."""
    from spmm_study import registry

    errors: list[str] = []
    warnings: list[str] = []
    for key in sorted(set(doc) - TOP_KEYS):
        errors.append(f"unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS))})")
    name = doc.get("name", Path(source).stem if source != "inline" else "sweep")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        errors.append(f"name = {name!r} must be a non-empty string without spaces or slashes")
        name = "sweep"
    description = doc.get("description", "")
    if not isinstance(description, str):
        errors.append("description must be a string")
        description = ""

    timing = _parse_timing(doc.get("timing", {}), errors, bare=source == COMMAND_LINE)
    baseline = doc.get("baseline")
    if baseline is not None:
        if not isinstance(baseline, str):
            errors.append(f"baseline = {baseline!r} must be a variant id")
            baseline = None
        else:
            try:
                baseline = registry.get(baseline).id
            except SpmmError as exc:
                errors.append(f"baseline: {exc}")
                baseline = None

    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        errors.append("[defaults] must be a table")
        defaults = {}
    for key in sorted(set(defaults) - RUN_KEYS):
        errors.append(f"[defaults]: unknown key {key!r}")
    runs = doc.get("runs")
    if runs is None:
        errors.append("no [[runs]]: an experiment needs at least one grid")
        runs = []
    elif not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        errors.append("runs must be an array of tables ([[runs]])")
        runs = []

    tasks: list[Task] = []
    matrices: list[tuple] = []  # (spec, prune, seed) of every run, checked even when a run has other errors
    # measurements the runs may still plan: counted before each product is expanded (a 28 KB file with a
    # 3000 x 3000 grid and 10000 rounds was expanded to 3 GB before anything said it was too big)
    budget = Budget(MAX_TASKS, max(timing.rounds, 1))
    for i, run in enumerate(runs, 1):
        merged = {**{k: v for k, v in defaults.items() if k in RUN_KEYS}, **run}
        if extra_params:
            given = merged.get("params", {})
            merged["params"] = {**(given if isinstance(given, dict) else {}), **extra_params}
        where = "" if source == COMMAND_LINE and len(runs) == 1 else f"[[runs]] #{i}: "
        tasks += _expand_run(where, merged, errors, warnings, dlmc_root, base_dir, matrices, keep_unavailable,
                             budget)

    if ctx is not None:  # resolve every matrix once, now: bad specs and files are errors here too
        for spec, prune, seed in dict.fromkeys(matrices):
            try:
                ctx.matrix(spec, prune, seed)
            except SpmmError as exc:
                errors.append(str(exc) if source == COMMAND_LINE else f"matrix {spec}: {exc}")
    skipped: dict[str, list[str]] = {}
    for vid, reason in warnings:
        skipped.setdefault(reason, [])
        if vid not in skipped[reason]:
            skipped[reason].append(vid)
    warnings = [f"skipped {', '.join(ids)}: {reason}" if ids[0] else reason for reason, ids in skipped.items()]
    if not errors and not tasks:  # say why: 'compare --device gpu' without a GPU names the missing device
        why = [w for w in warnings if w.startswith("skipped ")]
        errors.append(f"nothing left to measure: {'; '.join(why)}" if why else
                      "the grid is empty: no variant is available here for these runs")
    if errors:
        raise ExperimentError(source, errors)
    # the same task twice (two runs overlapping) is measured once
    tasks = interleave(list(dict.fromkeys(tasks)), timing.rounds)
    return Experiment(name, description, source, text, timing, baseline, tasks, warnings)


def _parse_timing(section: Any, errors: list[str], bare: bool = False) -> TimingConfig:
    """The [timing] table: types checked here, values by TimingConfig's own rules (``timing_problems``)."""
    from spmm_study.timing import timing_problems

    if not isinstance(section, dict):
        errors.append("[timing] must be a table")
        return TimingConfig()
    vals = {}
    for key, value in section.items():
        if key not in TIMING_KEYS:
            errors.append(f"[timing]: unknown key {key!r} (known: {', '.join(TIMING_KEYS)})")
            continue
        if check_type("[timing]: ", key, value, TIMING_KEYS[key], errors):
            vals[key] = value
    default = TimingConfig()
    kw = dict(repeats=vals.get("repeats", default.repeats), min_time_s=float(vals.get("min_time", default.min_time_s)),
              warmup_s=float(vals.get("warmup", default.warmup_s)), cache=vals.get("cache", default.cache),
              rounds=vals.get("rounds", default.rounds))
    for key, message in timing_problems(**kw):
        errors.append(message if bare else f"[timing]: {key} = {vals[key]!r}: {message}")
    return TimingConfig(**kw) if not timing_problems(**kw) else default


def _select_variants(where: str, names: list[str], errors: list[str], device: str | None = None,
                     format: str | None = None) -> list[tuple[Any, bool]]:
    """(Variant, named explicitly) for each name or glob, in order, without repeats; bare names resolve on
    ``device`` and ``format`` (default cpu, csr)."""
    from spmm_study import registry

    out: dict[str, tuple[Any, bool]] = {}
    for name in names:
        if any(c in name for c in "*?["):
            try:
                matched = registry.select(pattern=name, device=device, format=format)
            except SpmmError as exc:
                errors.append(f"{where}{exc}")
                continue
            if not matched:
                errors.append(f"{where}no variant matches {name!r}")
            for v in matched:
                out.setdefault(v.id, (v, False))
        else:
            try:
                v = registry.get(name, device=device, format=format)
            except SpmmError as exc:
                errors.append(f"{where}{exc}")
                continue
            out[v.id] = (v, True)
    return list(out.values())


def _param_names(params: dict | list) -> list[str]:
    names = params if isinstance(params, dict) else [k for combo in params for k in combo]
    return list(dict.fromkeys(names))


def _param_grid(where: str, variant, params: dict | list, explicit: bool, errors: list[str]) -> list[tuple] | None:
    """The sorted (name, value) tuples to run for one variant, or None to drop it (glob, no param applies).

    ``params`` is a table of axes (``{tile_n = [16, 32], balance = "choices"}``: their product) or a list of
    tables, each one combination (what ``autotune`` plans). The one rule for every command: a param applies
    to the variants that take it; a variant named explicitly runs with the params it has, defaults for the
    rest; one matched only by a glob is dropped when it takes none of them."""
    known = {p.name: p for p in variant.params}

    def parse(name, val):
        try:
            return known[name].parse(val)
        except SpmmError as exc:
            errors.append(f"{where}{variant.id}: {exc}")
            return None

    if isinstance(params, list):
        mine = [c for c in params if set(c) <= set(known)]
        if params and not mine:
            return [()] if explicit else None
        combos = [tuple(sorted((k, parse(k, v)) for k, v in c.items())) for c in mine]
        return list(dict.fromkeys(combos)) or [()]
    mine = {k: v for k, v in params.items() if k in known}
    if params and not mine and not explicit:
        return None
    axes = []
    for name, value in mine.items():
        p = known[name]
        values = (list(p.choices) or [p.default]) if value == "choices" else as_list(value)
        parsed = [parse(name, val) for val in values]
        axes.append([(name, v) for v in dict.fromkeys(parsed)])
    size = math.prod(len(ax) for ax in axes)
    if size > MAX_TASKS:  # counted before the product is built
        errors.append(f"{where}{variant.id}: the params grid is {size:,} combinations, past the {MAX_TASKS:,} one "
                      "experiment may plan")
        return [()]  # the error stops the run before its tasks are built
    return [tuple(sorted(combo)) for combo in itertools.product(*axes)] if axes else [()]


def _named(where: str, key: str, value: Any, exc: Exception) -> str:
    """An error of one value: in a file ``[[runs]] #1: n = 0: N must be positive...``; on the command line
    (no ``where``) the message alone, which names the option already."""
    return f"{where}{key} = {value!r}: {exc}" if where else str(exc)


class Budget:
    """How many more measurements (tasks × rounds) a document may plan; ``take`` refuses a grid before it is
    expanded, with its size in the message."""

    def __init__(self, limit: int, rounds: int):
        self.limit, self.rounds, self.left = limit, rounds, limit

    def take(self, count: int, where: str, what: str, errors: list[str]) -> bool:
        if count * self.rounds > self.left:
            rounds = f" x {self.rounds} rounds" if self.rounds > 1 else ""
            errors.append(f"{where}{what} is {count:,} measurements{rounds}, past the {self.limit:,} one experiment "
                          "may plan (split it into several files, or shard it)")
            self.left = -1  # one message is enough: later runs are not expanded either
            return False
        self.left -= count * self.rounds
        return True


def _expand_run(where: str, run: dict, errors: list[str], warnings: list[str], dlmc_root: str | None,
                base_dir: Path | None, matrices: list[tuple], keep_unavailable: bool = False,
                budget: Budget | None = None) -> list[Task]:
    from spmm_study.harness import check_threads
    from spmm_study.problem import check_n, parse_dtype
    from spmm_study.sources import parse_prune

    n_err = len(errors)
    for key in sorted(set(run) - RUN_KEYS):
        errors.append(f"{where}unknown key {key!r} (known: {', '.join(sorted(RUN_KEYS))})")
    names = check_type(where, "variants", run.get("variants", []), str, errors, allow_list=True)
    if "variants" not in run:
        errors.append(f"{where}no variants")
    device, format = run.get("device"), run.get("format")
    for key, value in (("device", device), ("format", format)):
        if value is not None and not check_type(where, key, value, str, errors):
            device, format = None, None
    selected = _select_variants(where, names, errors, device, format)

    suite = run.get("suite")
    problems: list[tuple[str, int, str]] = []  # (matrix spec, n, tags)
    if suite is not None:
        if suite not in SUITES:
            errors.append(f"{where}suite = {suite!r} is not one of {', '.join(SUITES)}")
        elif "matrices" in run:
            errors.append(f"{where}give either suite or matrices, not both")
        elif suite == "study":
            problems = study_problems(where, run, errors, dlmc_root, base_dir)
        elif suite == "conv":
            problems = conv_problems(where, run, errors, dlmc_root)
        else:
            problems = dlmc_problems(where, run, errors, dlmc_root)
    else:
        for key in ("table", "source", "use_case", "model", "method", "layers", "sparsity"):
            if key in run:
                errors.append(f"{where}{key} is a suite option, but no suite is given")
        specs = check_type(where, "matrices", run.get("matrices", ["synthetic:magnitude:ffn1:0.9"]), str, errors,
                            allow_list=True)
        ns = []
        for n in check_type(where, "n", run.get("n", 256), int, errors, allow_list=True):
            try:
                ns.append(check_n(n))
            except SpmmError as exc:
                errors.append(_named(where, "n", n, exc))
        budget = budget or Budget(MAX_TASKS, 1)
        if budget.left < 0 or not budget.take(len(specs) * len(ns), where, "the grid of matrices x n", errors):
            return []
        budget.left += len(specs) * len(ns) * budget.rounds  # taken again below, with the variants
        problems = []
        for s in specs:  # a conv: spec has its own N (batch·Ho·Wo of its geometry, docs/conv.md); n is not used
            problems += _conv_problem(where, s, errors) if is_conv_spec(s) else [(s, n, "") for n in ns]
    problem_specs = list(dict.fromkeys(specs if suite is None else [p[0] for p in problems]))

    threads = check_type(where, "threads", run.get("threads", []), int, errors, allow_list=True) \
        if "threads" in run else [None]
    for t in threads:
        if t is not None:
            try:
                check_threads(t)
            except SpmmError as exc:
                errors.append(_named(where, "threads", t, exc))
    dtypes = check_type(where, "dtype", run.get("dtype", "float32"), str, errors, allow_list=True)
    for d in dtypes:
        try:
            parse_dtype(d)
        except SpmmError as exc:
            errors.append(f"{where}{exc}")
    seed = run.get("seed", 0)
    if not check_type(where, "seed", seed, int, errors):
        seed = 0
    prune = run.get("prune")
    if prune is not None:
        if check_type(where, "prune", prune, str, errors):
            try:
                parse_prune(prune)
                matrices.extend((spec, prune, seed) for spec in problem_specs)
            except SpmmError as exc:
                errors.append(f"{where}{exc}")
    else:
        matrices.extend((spec, None, seed) for spec in problem_specs)
    tags = run.get("tags", "")
    if not isinstance(tags, str):
        errors.append(f"{where}tags must be a string like \"lab=1;group=a\"")
        tags = ""
    params = run.get("params", {})
    if not (isinstance(params, dict) or isinstance(params, list) and all(isinstance(c, dict) for c in params)):
        errors.append(f"{where}params must be a table like {{ tile_n = [16, 32] }} or a list of such tables")
        params = {}
    names = _param_names(params)

    plan = []
    for v, explicit in selected:
        grid = _param_grid(where, v, params, explicit, errors)
        if grid is None:
            continue
        reason = None if keep_unavailable else v.unavailable_reason()
        if reason:  # warn, skip, go on: the same rule in every command
            warnings.append((v.id, reason))
            continue
        if names and explicit and not {p.name for p in v.params} & set(names):
            warnings.append(("", f"{v.id} takes none of {', '.join(names)}: it runs with its defaults"))
        plan.append((v, grid))
    used = {p.name for v, _ in plan for p in v.params if p.name in names}
    unavailable_params = {p.name for v, _ in selected for p in v.params if v.unavailable_reason()}
    for name in [x for x in names if x not in used | unavailable_params]:
        one = f": variant {plan[0][0].id} has no parameter {name} (its parameters: " \
              f"{', '.join(p.name for p in plan[0][0].params) or 'none'})" if len(plan) == 1 else ""
        errors.append(f"{where}no selected variant takes the parameter {name!r}{one}")
    if len(errors) > n_err:
        return []
    count = len(problems) * len(dtypes) * len(threads) * sum(len(grid) for _, grid in plan)
    budget = budget or Budget(MAX_TASKS, 1)
    if budget.left < 0 or not budget.take(count, where, "the grid", errors):
        return []
    tasks = []
    explicit_ids = {v.id for v, explicit in selected if explicit}
    # grid order: problem by problem, so a problem's variants run back to back (interleaved, cached problem)
    for (spec, n, ptags), dtype, t in itertools.product(problems, dtypes, threads):
        for v, grid in plan:
            if not _takes(v, spec, explicit_ids, warnings):
                continue
            for combo in grid:
                all_tags = ";".join(x for x in (ptags, tags) if x)
                tasks.append(Task(v, spec, n, combo, dtype, seed, prune, t if v.device == "cpu" else None, all_tags))
    return tasks


def _conv_problem(where: str, spec: str, errors: list[str]) -> list[tuple[str, int, str]]:
    from spmm_study.conv import spec_n

    try:
        return [(spec, spec_n(spec), "")]
    except SpmmError as exc:
        errors.append(f"{where}{exc}")
        return []


def _takes(v, spec: str, explicit: set[str], warnings: list) -> bool:
    """Convolution problems (``conv:`` specs) go to the conv variants only, which also take a plain matrix
    as the 1×1 convolution it is, but only when named (a ``cpu.*`` glob over SpMM problems leaves them out)."""
    conv_variant, conv_problem = v.format == "conv", is_conv_spec(spec)
    if conv_variant == conv_problem:
        return True
    if conv_problem and v.id in explicit:
        warnings.append((v.id, "an SpMM variant takes no convolution problem (conv: spec); run a cpu.conv.* or "
                               "gpu.conv.* variant"))
    return conv_variant and v.id in explicit


def interleave(tasks: list[Task], rounds: int) -> list[Task]:
    """Each problem's tasks repeated ``rounds`` times back to back (A B C A B C), tagged ``round=r``, so a
    noisy shared machine disturbs every variant alike; reports merge the rounds (median)."""
    if rounds <= 1:
        return tasks
    from dataclasses import replace

    groups: dict[tuple, list[Task]] = {}
    for t in tasks:
        groups.setdefault(problem_of(t), []).append(t)
    out = []
    for group in groups.values():
        for r in range(rounds):
            out += [replace(t, tags=";".join(x for x in (t.tags, f"round={r}") if x)) for t in group]
    return out


# ----------------------------------------------------------------------------------------------- sharding


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/3"`` → (2, 3): the second of three shards (1-based)."""
    if not text:
        return None
    i, slash, n = text.partition("/")
    try:
        i, n = int(i), int(n)
    except ValueError:
        raise ParamError(f"--shard {text!r} must look like i/n, e.g. 1/2") from None
    if not slash or n < 1 or not 1 <= i <= n:
        raise ParamError(f"--shard {text}: need 1 <= i <= n")
    return i, n


def shard(tasks: list[Task], i: int, n: int) -> list[Task]:
    """Shard i of n (1-based): problems numbered in grid order, problem p to shard (p mod n) + 1."""
    order = {p: idx for idx, p in enumerate(dict.fromkeys(problem_of(t) for t in tasks))}
    return [t for t in tasks if order[problem_of(t)] % n == i - 1]


def parse_param_grid(items: list[str] | None) -> dict[str, list]:
    """``--param tile_n=16,32,64`` (repeatable) → ``{"tile_n": ["16", "32", "64"]}`` (or ``"choices"``)."""
    out: dict[str, list | str] = {}
    for item in items or []:
        name, eq, values = item.partition("=")
        if not eq or not name.strip() or not values.strip():
            raise ParamError(f"--param {item!r} must look like name=value (or name=v1,v2,... or name=choices)")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        out[name.strip()] = "choices" if vals == ["choices"] else vals
    return out
