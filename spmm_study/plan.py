"""From a command's options to tasks and a result folder: what ``run``, ``compare``, ``sweep`` and ``autotune``
share, so that each command only parses its options, calls ``plan`` and renders.

Every command that measures builds the same *run document* an experiment file holds (one ``[[runs]]``
table plus ``[timing]``) and hands it to the one planner, ``experiment.parse``: variants resolve, params
spread over the variants that take them, N, threads, dtype, prune, seed and timing are checked by their own
owners (``Problem``, ``TimingConfig``, ``harness.check_threads``), and every matrix is loaded, all before
the first measurement. The commands differ only in their document and in how they render the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from spmm_study import experiment as ex
from spmm_study import tiny
from spmm_study.errors import ParamError
from spmm_study.runner import Context, Task
from spmm_study.timing import flush_plan

# Each command's timing when its options do not say: run measures one thing well (TimingConfig's own
# defaults); compare interleaves three rounds of shorter measurements; autotune measures many candidates
# briefly. A sweep takes its file's [timing] (TimingConfig's defaults for what the file leaves out).
TIMING_DEFAULTS = {
    "run": {},
    "compare": {"repeats": 5, "min_time": 0.1, "warmup": 0.05, "rounds": 3},
    "autotune": {"repeats": 5, "min_time": 0.05, "warmup": 0.02},
    "sweep": {},
}


def timing_doc(command: str, **given) -> dict:
    """The ``[timing]`` table of a command: its defaults, overlaid with the options given (None: not given)."""
    return {**TIMING_DEFAULTS[command], **{k: v for k, v in given.items() if v is not None}}


def split_list(items: list[str] | None) -> list[str]:
    """``--variants a,b --variants c`` → ``[a, b, c]``."""
    return [x.strip() for item in items or [] for x in item.split(",") if x.strip()]


def run_doc(variants: list[str] | None = None, **keys) -> dict:
    """One ``[[runs]]`` table from command options; options not given (None, empty) are left out."""
    doc = {"variants": split_list(variants)} if variants is not None else {}
    doc.update({k: v for k, v in keys.items() if v is not None and v != [] and v != {}})
    return doc


def plan(runs: list[dict], *, name: str, timing: dict, dlmc_root: str | None = None, baseline: str | None = None,
         extra_params: dict | None = None,
         keep_unavailable: bool = False) -> tuple[ex.Experiment, Context]:
    """Plan command-line runs: the Experiment (tasks in measuring order, warnings) and the Context that
    loaded its matrices. Every input error is raised here, in one line."""
    ctx = Context(dlmc_root=dlmc_root)
    doc = {"name": name, "runs": runs, "timing": timing, **({"baseline": baseline} if baseline else {})}
    exp = ex.parse(doc, source=ex.COMMAND_LINE, dlmc_root=dlmc_root, ctx=ctx,
                   extra_params=extra_params, keep_unavailable=keep_unavailable)
    ctx.timing = exp.timing
    exp.tasks = tiny.tasks(exp.tasks)  # the first few only under SPMM_STUDY_TINY=1
    return exp, ctx


def plan_file(path: Path, *, timing: dict, dlmc_root: str | None = None, extra_params: dict | None = None,
              keep_unavailable: bool = False) -> tuple[ex.Experiment, Context]:
    """Plan an experiment file (``sweep FILE``); ``timing`` overrides keys of its [timing] table.
    ``keep_unavailable``: keep the variants this machine cannot run (``--cluster`` on other machines)."""
    ctx = Context(dlmc_root=dlmc_root)
    exp = ex.load(path, dlmc_root=dlmc_root, extra_params=extra_params, ctx=ctx, timing=timing,
                  keep_unavailable=keep_unavailable)
    ctx.timing = exp.timing
    exp.tasks = tiny.tasks(exp.tasks)
    return exp, ctx


def plan_sweep(path: Path | None, *, variants: list[str] | None, matrices: list[str] | None, n: list[int] | None,
               threads: list[int] | None, params: dict, timing: dict, dlmc_root: str | None = None,
               keep_unavailable: bool = False) -> tuple[ex.Experiment, Context]:
    """``sweep``: an experiment file, or a grid given by options, never both."""
    if path is not None and (variants or matrices or n or threads):
        raise ParamError("give either an experiment file or --variants/--matrix/--n/--threads, not both")
    if path is not None:
        return plan_file(path, timing=timing, dlmc_root=dlmc_root, extra_params=params,
                         keep_unavailable=keep_unavailable)
    if not variants:
        raise ParamError("give an experiment file or --variants")
    return plan([run_doc(variants, matrices=matrices, n=n, threads=threads, params=params)], name="sweep",
                timing=timing, dlmc_root=dlmc_root, keep_unavailable=keep_unavailable)


def dry_run_lines(tasks: list[Task]) -> list[str]:
    """``sweep --dry-run``: one line per task, then how many runs over how many problems."""
    lines = [f"{t.variant.id}  {t.matrix}  N={t.n}  {dict(t.params) or ''}  threads={t.threads or '-'}  {t.tags}"
             for t in tasks]
    return lines + [f"{len(tasks)} runs over {len({ex.problem_of(t) for t in tasks})} problems"]


def compare_variants(names: list[str], baseline: str | None, device: str) -> tuple[list[str], str | None]:
    """The variants ``compare`` measures: the ones named, then the baseline (given, or the dense BLAS
    baseline of each device named when it runs here); and the baseline id."""
    from spmm_study import registry
    from spmm_study.report import CONV_BASELINES, DENSE_BASELINES

    chosen = [registry.get(v, device=device).id for v in split_list(names)]
    if baseline:
        baseline = registry.get(baseline, device=device).id
        extra = [baseline]
    else:
        reg = registry.load_all()
        # convolutions (docs/conv.md) are compared with dense im2col + GEMM, SpMM with the dense GEMM
        bases = CONV_BASELINES if chosen and all(reg[v].format == "conv" for v in chosen) else DENSE_BASELINES
        extra = [bases[d] for d in sorted({v.split(".")[0] for v in chosen})
                 if bases.get(d) in reg and reg[bases[d]].unavailable_reason() is None]
    return list(dict.fromkeys(chosen + extra)), baseline


@dataclass
class Grid:
    """The param combinations ``autotune`` measures for one variant: ``combos`` of ``total``."""

    variant: str
    combos: list[dict]
    total: int

    @property
    def cut(self) -> bool:
        return len(self.combos) < self.total


def tuning_grids(variants: list[str] | None, device: str, max_combos: int, seed: int = 0) -> list[Grid]:
    """Each variant to tune with its candidates (``autotune.candidates``): the ones named, or every variant
    of ``device`` that runs here and has params."""
    from spmm_study import autotune, registry

    if max_combos < 1:
        raise ParamError("--max-combos must be >= 1")
    if variants:
        chosen = [registry.get(v, device=device) for v in split_list(variants)]
    else:
        chosen = [v for v in registry.select(device=device) if v.params and v.unavailable_reason() is None]
    chosen = [v for v in chosen if v.params]
    if not chosen:
        raise ParamError("no variant with params to tune")
    return [Grid(v.id, [dict(c) for c in autotune.candidates(v, max_combos, seed)], autotune.grid_size(v))
            for v in chosen]


def open_writer(name: str, out_dir: Path | None, *, force: bool = False, resume: bool = False, save: bool = True,
                suffix: str = "", meta: dict | None = None, argv: list[str] | None = None, timing=None):
    """The ResultWriter of a command: ``out_dir``, or with ``resume`` the newest ``results/<name>/*<suffix>``
    folder holding rows, or a fresh ``results/<name>/<timestamp><suffix>``; None with ``save=False``.
    ``timing`` (the TimingConfig) goes into meta.json; a resume under other settings is refused."""
    from dataclasses import asdict, is_dataclass

    from spmm_study.environment import describe
    from spmm_study.results import ResultWriter, default_dir

    if not save:
        return None
    if resume and out_dir is None:
        out_dir = latest_run_dir(name, suffix)
        if out_dir is None:
            raise ParamError(f"--resume: no earlier results/{name}/*{suffix} run with rows; pass --out")
    if out_dir is None:
        fresh = default_dir(name)
        out_dir = fresh.with_name(fresh.name + suffix)
    if timing is not None and is_dataclass(timing):
        timing = asdict(timing)
    flush = {"cache_flush": flush_plan()} if (timing or {}).get("cache") == "cold" else {}
    return ResultWriter(out_dir, meta={"experiment": name, **describe(argv=argv), **flush, **(meta or {})},
                        force=force, resume=resume, timing=timing)


def flush_notes(timing) -> list[str]:
    """The note a cold-cache measurement prints when its flush buffer is smaller than twice the L3 sysfs
    reports (``timing.flush_plan``); none for warm caches or an uncapped buffer."""
    note = flush_plan()["note"] if getattr(timing, "cache", None) == "cold" else ""
    return [f"note: {note}"] if note else []


def latest_run_dir(name: str, suffix: str = "", root: Path = Path("results")) -> Path | None:
    """The newest results/<name>/<timestamp><suffix> directory holding rows (what --resume continues)."""
    base = root / name
    if not base.is_dir():
        return None
    dirs = sorted(p for p in base.iterdir() if p.is_dir() and p.name.endswith(suffix) and (p / "rows.jsonl").exists())
    if suffix == "":
        dirs = [p for p in dirs if "-shard" not in p.name]
    return dirs[-1] if dirs else None


def shard_tasks(tasks: list[Task], shard: str | None) -> tuple[list[Task], str]:
    """The tasks of ``--shard i/n`` and the folder suffix ``-shardIofN`` (all tasks and "" without one)."""
    if not shard:
        return tasks, ""
    i, k = ex.parse_shard(shard)
    return ex.shard(tasks, i, k), f"-shard{i}of{k}"


def with_tuned(tasks: list[Task], ctx: Context) -> tuple[list[Task], list[str]]:
    """``run --tuned``: each task with the params autotune stored for its variant, machine and shape class,
    overlaid with the ones given; and one note per task saying which params (or that it was never tuned)."""
    from spmm_study import autotune
    from spmm_study.environment import machine_label

    out, notes = [], []
    for t in tasks:
        v = t.variant
        if not v.params:
            out.append(t)
            continue
        a = ctx.matrix(t.matrix, t.prune, t.seed).a
        sparsity = 1.0 - a.nnz / (a.m * a.k) if a.m * a.k else 0.0
        found = autotune.lookup(v.id, a.m, a.k, t.n, sparsity, machine_label(v.device))
        if found is None:
            notes.append(f"note: {v.id} was never tuned for {autotune.shape_class(a.m, a.k, t.n, sparsity)} "
                         "on this machine: defaults used (run 'spmm-study autotune')")
            out.append(t)
            continue
        names = {p.name for p in v.params}
        chosen = {**{k: val for k, val in found.items() if k in names}, **dict(t.params)}
        notes.append(f"{v.id}: tuned params {' '.join(f'{k}={x}' for k, x in sorted(chosen.items()))}")
        out.append(replace(t, params=tuple(sorted(chosen.items()))))
    return out, notes



def nothing_measured(rows: list[dict]) -> str | None:
    """Why a command measured nothing (every row a SKIP or UNAVAILABLE: the variants refused this input or
    cannot run here), or None when something was measured. The one rule of every measuring command: what
    cannot run is warned about and skipped; only when nothing is left is it an error (exit code 2)."""
    if not rows or any(r["status"] not in ("SKIP", "UNAVAILABLE") for r in rows):
        return None
    why = dict.fromkeys(f"{r['variant']}: {r['message']}" for r in rows)
    return f"nothing was measured: {'; '.join(why)}"
