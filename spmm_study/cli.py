"""The command line (Typer). Each command parses its options, calls one function, renders (docs/ARCHITECTURE.md §11.6).

The commands that measure (``run``, ``compare``, ``sweep``, ``autotune``) build one run document and hand
it to the planner (``plan.py``); they share one set of timing options and one way of showing progress.
Every user mistake (``SpmmError``, a bad option) is one line on stderr and exit code 2, never a traceback.
``--json`` output goes to stdout; progress and tables go to stderr when ``--json`` is given.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import List, Optional

from spmm_study.pools import quiet_idle_pools

quiet_idle_pools()  # before anything loads numpy, numba or MKL

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402  (reasons and specs hold brackets: "pip install 'spmm-study[gpu]'")
from rich.table import Table  # noqa: E402

from spmm_study.errors import ParamError, SpmmError  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="spmm-study: a laboratory for sparse x dense matrix multiplication (SpMM) on CPU and GPU.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and convert matrices.")
app.add_typer(data_app, name="data")


def _console(stderr: bool = False) -> Console:
    """Rich assumes 80 columns when not on a terminal; results tables need more to stay readable in logs."""
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, width=None if probe.is_terminal else 160)


out = _console()
err = _console(stderr=True)

DEFAULT_VARIANT = "tiled"

# ----------------------------------------------------------------------------------------------- shared options

MatrixOpt = typer.Option(None, "--matrix", "-m", help="matrix spec (repeatable); default: the embedded "
                         "synthetic transformer FFN weight, synthetic:magnitude:ffn1:0.9")
DlmcRootOpt = typer.Option(None, "--dlmc-root", envvar="SPMM_STUDY_DLMC", help="folder holding the DLMC collection")
NsOpt = typer.Option(None, "--n", "-n", help="columns of B (repeatable; default 256)")
DeviceOpt = typer.Option("cpu", help="device for bare variant names: cpu or gpu")
PruneOpt = typer.Option(None, help="prune every matrix: magnitude:0.9, random:0.9 or 2:4")
SeedOpt = typer.Option(0, help="seed of B and of pattern-only values")
DtypeOpt = typer.Option("float32", help="float32, float64, float16, bfloat16 or int8 (half: fp32 sums; int8: int32); a "
                        "variant that cannot take it gives a SKIP row saying so")
OutOpt = typer.Option(None, "--out", help="result directory (default results/<command>/<timestamp>)")
ForceOpt = typer.Option(False, help="replace rows already in --out")
ResumeOpt = typer.Option(False, help="continue an interrupted measurement in --out (or the newest one)")
SaveOpt = typer.Option(True, "--save/--no-save", help="write result files")
JsonOpt = typer.Option(False, "--json", help="print the result rows as JSON on stdout")
# one set of timing options; not given, each command has its own defaults (plan.TIMING_DEFAULTS) and a sweep
# its file's [timing] (the options override it)
RepeatsOpt = typer.Option(None, help="timed repeats, at least (default: run 10, compare and autotune 5, sweep the file's)")
MinTimeOpt = typer.Option(None, "--min-time", help="repeat until this much time was measured, s (run 0.2)")
WarmupOpt = typer.Option(None, help="warm-up time before measuring, s (run 0.1)")
CacheOpt = typer.Option(None, help="cold: flush caches (CPU) or L2 (GPU) before each repeat (default); warm: don't")
RoundsOpt = typer.Option(None, help="interleaved rounds A B C A B C ...; reports take the median (compare: 3)")
ClusterOpt = typer.Option(None, "--cluster", help="measure on Dask workers: local:N, tcp://HOST:PORT, "
                          "slurm:jobs=J,cores=C,... (or slurm:FILE.toml), local-cuda (the 'cluster' extra)")
RetriesOpt = typer.Option(2, "--retries", help="with --cluster: resubmit a problem whose worker died this many times")
ConnectTimeoutOpt = typer.Option(10.0, "--connect-timeout", help="with --cluster: seconds to reach the scheduler")


# ----------------------------------------------------------------------------------------------- rendering


def strict_json(rows: list[dict]) -> list[dict]:
    """Rows with NaN/Inf as null: json.dumps writes NaN, which is not JSON (jq and JavaScript reject it)."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()} for r in rows]


def print_json(rows: list[dict]) -> None:
    print(json.dumps(strict_json(rows), indent=2, default=str, allow_nan=False))


STATUS_STYLE = {"PASS": "green", "FAIL": "bold red", "ERROR": "bold red", "SKIP": "yellow", "UNAVAILABLE": "dim"}


def render_table(table, keep: tuple = (), width: int | None = None) -> Table:
    """A table.Table (data) as a rich table: statuses coloured, FAIL cells in red. No cell of an atomic
    column (ids, params, numbers; ``table.column_fits``) is ever broken, prose columns wrap between words, and
    headers wrap between words where the table is wider than ``width`` (default: the console's).
    ``print_tables`` first splits a table too wide for the terminal (``table.fit_to_width``). ``keep``:
    columns that stay atomic whatever they hold."""
    from rich.cells import cell_len
    from rich.text import Text

    from spmm_study.table import Measured, column_fits, formatted_rows, table_width

    t = Table(title=escape(table.title), header_style="bold", caption=escape(table.caption) if table.caption else None,
              show_header=table.header)
    cells = formatted_rows(table)
    fits = column_fits(table, cell_len)
    tight = table_width(fits) > (width or out.width)
    for i, (col, fit) in enumerate(zip(table.columns, fits)):
        numeric = any(isinstance(r[i], (int, float, Measured)) and not isinstance(r[i], bool) for r in table.rows)
        if fit.wraps and col not in keep:
            t.add_column(col, justify="right" if numeric else "left", overflow="fold", min_width=fit.width)
            continue
        w = max([fit.tight if tight else fit.width] + [cell_len(c[i]) for c in cells])
        t.add_column(Text(col, no_wrap=False, overflow="fold"), justify="right" if numeric else "left", no_wrap=True,
                     overflow="fold", min_width=w, max_width=w)
    for row in cells:
        t.add_row(*[f"[{STATUS_STYLE[c]}]{c}[/]" if c in STATUS_STYLE else escape(str(c)) for c in row])
    return t


def print_messages(rows, console: Console) -> None:
    for r in rows:
        r = r if isinstance(r, dict) else r.__dict__
        if r["status"] != "PASS" and r["message"]:
            console.print(f"[{STATUS_STYLE.get(r['status'], '')}]{r['status']}[/] {r['variant']}: "
                          f"{escape(r['message'])}", markup=True, highlight=False, soft_wrap=True)


def print_notes(lines: list[str], style: str = "yellow") -> None:
    """Warnings and notes on stderr; their text is never markup (``pip install 'spmm-study[baselines]'``)."""
    for line in lines:
        head, sep, rest = line.partition(": ") if line.startswith(("note: ", "warning: ")) else ("", "", line)
        err.print(f"[{style}]{escape(head + sep)}[/]{escape(rest)}" if head else f"[dim]{escape(line)}[/]",
                  highlight=False, soft_wrap=True)


def measure(tasks, ctx, writer, console: Console, label: str, bar: bool = False) -> list[dict]:
    """Measure ``tasks`` (those a resumed writer holds are skipped) under a spinner, or a bar with ETA for
    the long commands; every row as a dict, in the order measured."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Column

    from spmm_study import plan, runner

    todo = runner.pending(tasks, ctx, writer)
    if any(t.variant.device == "cpu" for t in todo):
        print_notes(plan.flush_notes(ctx.timing))
    if len(todo) < len(tasks):
        err.print(f"[dim]resuming {escape(str(writer.dir))}: {len(tasks) - len(todo)} of {len(tasks)} runs already done[/]")
    rows = []
    if not bar:
        with console.status("measuring…") as status:
            for i, res in enumerate(runner.execute(todo, ctx, writer), 1):
                status.update(f"[{i}/{len(todo)}] {escape(res.variant)} on {escape(res.matrix)} N={res.n}")
                rows.append(res.__dict__)
        return rows
    # the count, elapsed time and ETA keep their width; the name of the row just measured gets what is left
    count = 2 * len(str(len(todo))) + 1
    used = len(label) + 16 + count + 7 + 3 + 7 + 6  # the columns before it, one space between each
    fixed = Column(no_wrap=True)
    progress = Progress(TextColumn("[bold]{task.description}", table_column=fixed), BarColumn(bar_width=16),
                        MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=count)),
                        TimeElapsedColumn(table_column=fixed), TextColumn("ETA", table_column=fixed),
                        TimeRemainingColumn(table_column=fixed),
                        TextColumn("{task.fields[last]}", table_column=Column(
                            no_wrap=True, overflow="ellipsis", max_width=max(err.width - used - 1, 8))),
                        console=err)
    with progress:
        task = progress.add_task(escape(label), total=len(todo), last="")
        for res in runner.execute(todo, ctx, writer):
            rows.append(res.__dict__)
            short = f"{res.status} {res.variant} N={res.n} {res.matrix.rsplit('/', 1)[-1][:40]}"
            progress.update(task, advance=1, last=escape(short))
    return rows


def cluster_check(spec: str | None, retries: int, connect_timeout: float) -> bool:
    """``--cluster``: the spec parsed and Dask present before anything is loaded or written (one line, exit 2
    otherwise). True when the workers may be other machines, which may run variants this one cannot."""
    if retries < 0:
        raise ParamError(f"--retries {retries} must be >= 0")
    if not (0 < connect_timeout <= 3600):
        raise ParamError(f"--connect-timeout {connect_timeout} must be between 0 and 3600 seconds")
    if not spec:
        return False
    from spmm_study import cluster as cl

    parsed = cl.parse_spec(spec)
    cl.require_dask()
    return parsed.kind != "local"


def measure_on(cluster: str | None, retries: int, connect_timeout: float, tasks, ctx, open_writer, console: Console,
               label: str, bar: bool = False) -> tuple:
    """``measure`` here, or with ``--cluster`` on Dask workers (spmm_study/cluster.py), where the result
    folder is opened only once the cluster is reached; (writer, rows)."""
    if not cluster:
        writer = open_writer()
        return writer, measure(tasks, ctx, writer, console, label, bar=bar)
    from spmm_study import cluster as cl

    done = cl.run_command(cluster, tasks, ctx, open_writer, retries=retries, timeout_s=connect_timeout, console=err,
                          title=label)
    return done.writer, done.rows


def nothing_left(rows: list[dict]) -> None:
    """Exit code 2 with one line saying why when every row is a SKIP or UNAVAILABLE (nothing was measured);
    the rule of every measuring command (``plan.nothing_measured``)."""
    from spmm_study.plan import nothing_measured

    why = nothing_measured(rows)
    if why:
        err.print(f"error: {why}", markup=False, highlight=False, soft_wrap=True, emoji=False)
        raise typer.Exit(2)


def print_tables(tables, markdown: bool, keep: tuple = ()) -> None:
    from spmm_study.table import to_markdown

    if markdown:
        print(to_markdown(tables))
        return
    from rich.cells import cell_len

    from spmm_study.table import fit_to_width

    for t in tables if isinstance(tables, list) else [tables]:
        for part in fit_to_width(t, out.width, cell_len):  # too wide: the columns that do not fit move on
            out.print(render_table(part, keep))


# ----------------------------------------------------------------------------------------------- commands


@app.command("list")
def list_cmd(
    device: Optional[str] = typer.Option(None, help="only cpu or gpu variants"),
    format: Optional[str] = typer.Option(None, "--format", help="only this format (csr, coo, dense, ...)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
):
    """List the variants in ladder order, with loop order, format, params and availability."""
    from spmm_study.registry import list_table, select

    items = [v.describe() for v in select(device=device, format=format)]
    if as_json:
        print(json.dumps(items, indent=2))
        return
    print_tables(list_table(items), False)


@app.command()
def run(
    variant: List[str] = typer.Option([DEFAULT_VARIANT], "--variant", "-v", help="variant id or bare idea (repeatable)"),
    matrix: Optional[List[str]] = MatrixOpt,
    n: int = typer.Option(256, "--n", "-n", help="columns of B and C (the batch)"),
    dtype: str = DtypeOpt,
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="variant parameter name=value (repeatable)"),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads for numba and BLAS (default: all cores)"),
    repeats: Optional[int] = RepeatsOpt, min_time: Optional[float] = MinTimeOpt, warmup: Optional[float] = WarmupOpt,
    cache: Optional[str] = CacheOpt, rounds: Optional[int] = RoundsOpt,
    device: str = DeviceOpt,
    format: Optional[str] = typer.Option(None, "--format", help="format for bare variant names (default csr)"),
    prune: Optional[str] = PruneOpt, seed: int = SeedOpt, dlmc_root: Optional[str] = DlmcRootOpt,
    as_json: bool = JsonOpt, out_dir: Optional[Path] = OutOpt, force: bool = ForceOpt, save: bool = SaveOpt,
    tuned: bool = typer.Option(False, "--tuned", help="use the params 'autotune' stored for this machine and shape class"),
    wide: bool = typer.Option(False, "--wide", help="all columns: spread, bandwidths, error, setup, first call, threads"),
    explain: bool = typer.Option(False, "--explain", help="say what each column of the table means"),
):
    """Measure variants on a matrix: checked against float64, timed, set beside the bytes that must move."""
    from spmm_study import experiment, plan, report

    doc = plan.run_doc(variant, matrices=matrix, n=n, dtype=dtype, threads=None if threads is None else [threads], seed=seed,
                       prune=prune, device=device, format=format, params=experiment.parse_param_grid(param))
    exp, ctx = plan.plan([doc], name="run", dlmc_root=dlmc_root, timing=plan.timing_doc(
        "run", repeats=repeats, min_time=min_time, warmup=warmup, cache=cache, rounds=rounds))
    print_notes([f"warning: {w}" for w in exp.warnings])
    tasks = exp.tasks
    if tuned:
        tasks, notes = plan.with_tuned(tasks, ctx)
        print_notes(notes)
    writer = plan.open_writer("run", out_dir, force=force, save=save, argv=_ARGV, timing=ctx.timing)
    rows = measure(tasks, ctx, writer, err if as_json else out, "run")
    if as_json:
        print_json(rows)
    else:
        print_tables(report.results_table(report.merge_rounds(rows), wide=wide), False, keep=report.NARROW)
        if explain:
            print_tables(report.legend_table(), False)
        if writer is not None:
            out.print(f"[dim]results: {escape(str(writer.dir))}[/]")
    nothing_left(rows)  # before the SKIP lines: the one error line names each reason
    print_messages(rows, err)
    if any(r["status"] in ("FAIL", "ERROR") for r in rows):
        raise typer.Exit(1)


@app.command()
def info(gpu: bool = typer.Option(True, "--gpu/--no-gpu", help="probe the GPU (imports numba.cuda)"),
         as_json: bool = typer.Option(False, "--json")):
    """Machine, caches, threads, numba and GPU status."""
    from spmm_study.environment import describe, info_table, thread_pools

    env = {**describe(include_gpu=gpu), "thread_pools": thread_pools()}
    if as_json:
        print(json.dumps(env, indent=2, default=str))
        return
    print_tables(info_table(env), False)


@data_app.command("info")
def data_info(spec: str = typer.Argument(..., help="matrix spec"), prune: Optional[str] = typer.Option(None),
              seed: int = 0, dlmc_root: Optional[str] = DlmcRootOpt, as_json: bool = typer.Option(False, "--json")):
    """Shape, nnz, sparsity, row-length statistics and a histogram of row lengths."""
    from spmm_study import sources

    loaded = sources.load(spec, prune=prune, seed=seed, dlmc_root=dlmc_root)
    st = {**sources.row_stats(loaded.a), "spec": loaded.spec}
    if as_json:
        print(json.dumps(st, indent=2))
        return
    print_tables(sources.stats_table(st), False)
    for line in sources.histogram_lines(st):
        out.print(escape(line), highlight=False)


@data_app.command("convert")
def data_convert(spec: str = typer.Argument(..., help="matrix spec"),
                 dest: Path = typer.Argument(..., help="output file: .mtx, .npz or .smtx (pattern only)"),
                 prune: Optional[str] = typer.Option(None), seed: int = 0,
                 dlmc_root: Optional[str] = DlmcRootOpt, force: bool = typer.Option(False, help="overwrite")):
    """Convert a matrix spec to a file (.mtx and .npz keep values; .smtx keeps the pattern only)."""
    from spmm_study import sources

    loaded = sources.load(spec, prune=prune, seed=seed, dlmc_root=dlmc_root)
    path = sources.convert(loaded.a, dest, force=force)
    note = " (pattern only: values dropped)" if path.suffix == ".smtx" else ""
    out.print(escape(f"wrote {path}: {loaded.a.m}x{loaded.a.k}, nnz {loaded.a.nnz}{note}"))


@app.command()
def compare(
    variants: List[str] = typer.Option(..., "--variants", "-v", help="comma-separated variant ids or bare ideas (repeatable)"),
    matrix: Optional[List[str]] = MatrixOpt,
    n: Optional[List[int]] = NsOpt,
    baseline: Optional[str] = typer.Option(None, help="speedups against this variant (default: the device's dense BLAS baseline)"),
    rounds: Optional[int] = RoundsOpt,
    dtype: str = DtypeOpt,
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads for numba and BLAS"),
    repeats: Optional[int] = RepeatsOpt, min_time: Optional[float] = MinTimeOpt, warmup: Optional[float] = WarmupOpt,
    cache: Optional[str] = CacheOpt,
    device: str = DeviceOpt, prune: Optional[str] = PruneOpt, seed: int = SeedOpt,
    dlmc_root: Optional[str] = DlmcRootOpt,
    markdown: bool = typer.Option(False, "--markdown", help="print the table as markdown on stdout"),
    as_json: bool = JsonOpt, out_dir: Optional[Path] = OutOpt, force: bool = ForceOpt, resume: bool = ResumeOpt,
    save: bool = SaveOpt,
    cluster: Optional[str] = ClusterOpt, retries: int = RetriesOpt, connect_timeout: float = ConnectTimeoutOpt,
):
    """Variants side by side on the same problems, interleaved (A B A B ...), with speedups vs a baseline."""
    from spmm_study import plan, report

    cluster_check(cluster, retries, connect_timeout)
    ids, baseline = plan.compare_variants(variants, baseline, device)
    doc = plan.run_doc(ids, matrices=matrix, n=n, dtype=dtype, threads=None if threads is None else [threads], seed=seed, prune=prune)
    exp, ctx = plan.plan([doc], name="compare", baseline=baseline, dlmc_root=dlmc_root, timing=plan.timing_doc(
        "compare", repeats=repeats, min_time=min_time, warmup=warmup, cache=cache, rounds=rounds))
    print_notes([f"warning: {w}" for w in exp.warnings])
    writer, rows = measure_on(cluster, retries, connect_timeout, exp.tasks, ctx, lambda: plan.open_writer(
        "compare", out_dir, force=force, resume=resume, save=save, argv=_ARGV, timing=ctx.timing),
        err if (as_json or markdown) else out, "compare")
    rows = list(writer.rows) if writer is not None else rows  # a resumed compare reports the earlier rounds too
    if as_json:
        print_json(rows)
    else:
        print_tables(report.compare_table(rows, ids, baseline), markdown)
        if writer is not None and not markdown:
            out.print(f"[dim]results: {escape(str(writer.dir))}[/]")
    print_messages([r for r in rows if r["status"] in ("FAIL", "ERROR")], err)
    nothing_left(rows)


@app.command()
def sweep(
    experiment: Optional[Path] = typer.Argument(None, help="experiment TOML file (see experiments/); or give --variants"),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="grid: name=v1,v2,... or name=choices (repeatable; added to every run)"),
    variants: Optional[List[str]] = typer.Option(None, "--variants", "-v", help="without a file: comma-separated variants"),
    matrix: Optional[List[str]] = MatrixOpt,
    n: Optional[List[int]] = typer.Option(None, "--n", "-n", help="without a file: columns of B (repeatable)"),
    threads: Optional[List[int]] = typer.Option(None, "--threads", "-t", help="without a file: thread counts (repeatable)"),
    shard: Optional[str] = typer.Option(None, help="run only shard i of n (i/n, 1-based); shards' results concatenate"),
    dlmc_root: Optional[str] = DlmcRootOpt,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="result directory (default results/<name>/<timestamp>)"),
    resume: bool = typer.Option(False, help="continue an interrupted sweep (in --out, or the newest results/<name>/ run)"),
    force: bool = ForceOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and list the grid, measure nothing"),
    markdown: bool = typer.Option(False, "--markdown", help="print the report tables as markdown at the end"),
    repeats: Optional[int] = RepeatsOpt, min_time: Optional[float] = MinTimeOpt, warmup: Optional[float] = WarmupOpt,
    cache: Optional[str] = CacheOpt, rounds: Optional[int] = RoundsOpt,
    cluster: Optional[str] = ClusterOpt, retries: int = RetriesOpt, connect_timeout: float = ConnectTimeoutOpt,
):
    """Run an experiment grid: validated first (all errors at once), progress with ETA, resumable, shardable;
    on Dask workers with --cluster (one measurement per device, rows streamed into one folder)."""
    from spmm_study import experiment as ex
    from spmm_study import plan, report

    timing = plan.timing_doc("sweep", repeats=repeats, min_time=min_time, warmup=warmup, cache=cache, rounds=rounds)
    remote = cluster_check(cluster, retries, connect_timeout)  # other machines' workers: keep what this one lacks
    exp, ctx = plan.plan_sweep(experiment, variants=variants, matrices=matrix, n=n, threads=threads,
                               params=ex.parse_param_grid(param), timing=timing, dlmc_root=dlmc_root,
                               keep_unavailable=remote)
    print_notes([f"warning: {w}" for w in exp.warnings])
    tasks, suffix = plan.shard_tasks(exp.tasks, shard)
    if dry_run and cluster:  # the task count and the time per worker, from a few measurements on the workers
        from spmm_study import cluster as cl

        print_notes(cl.dry_run(cluster, tasks, ctx, timeout_s=connect_timeout).lines())
        return
    if dry_run:
        for line in plan.dry_run_lines(tasks):
            out.print(escape(line), highlight=False)
        return
    writer, rows = measure_on(cluster, retries, connect_timeout, tasks, ctx, lambda: plan.open_writer(
        exp.name, out_dir, force=force, resume=resume, suffix=suffix, argv=_ARGV, meta={
            "experiment_file": exp.source, "experiment_text": exp.text, "description": exp.description,
            "shard": shard or "", "baseline": exp.baseline or "", "cluster": cluster or ""}, timing=ctx.timing),
        err, exp.name, bar=True)
    failures = [r for r in rows if r["status"] in ("FAIL", "ERROR")]
    err.print(f"[dim]results: {escape(str(writer.dir))} ({len(writer.rows)} rows)[/]")
    print_messages(failures, err)
    if writer.rows:
        print_tables(report.tables_for(list(writer.rows), baseline=exp.baseline), markdown)
    nothing_left(rows)


@app.command()
def calibrate(
    out_path: Optional[Path] = typer.Option(None, "--out", help="ceilings JSON (default ~/.cache/spmm-study/ceilings.json or $SPMM_STUDY_CEILINGS)"),
    gpu: Optional[bool] = typer.Option(None, "--gpu/--no-gpu", help="measure the GPU too (default: when one is present)"),
    tiny: bool = typer.Option(False, hidden=True, help="tiny sizes (tests): meaningless numbers"),
    as_json: bool = typer.Option(False, "--json"),
    force: bool = typer.Option(False, help="store the new ceilings even when much lower than the stored ones"),
):
    """Measure this machine's ceilings once (stream bandwidth, FMA peak; GPU copy and FMA) for rooflines."""
    from spmm_study import calibrate as cal
    from spmm_study import tiny as tiny_sizes

    cal.load(out_path)  # a broken or foreign ceilings file is refused before minutes of measuring
    with (err if as_json else out).status("measuring ceilings…"):
        entries = cal.calibrate(gpu=gpu, tiny=tiny or tiny_sizes.active())
    path = cal.save(entries, out_path, force=force or tiny_sizes.active())  # refused (one line, naming why) before any warning
    print_notes([e["note"] for e in entries if e.get("note")] + [note for note in map(cal.busy_note, entries) if note])
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    print_tables(cal.ceilings_table(entries, path), False)


@app.command()
def autotune(
    variants: Optional[List[str]] = typer.Option(None, "--variants", "-v", help="comma-separated variants (default: every available variant of --device that has params)"),
    matrix: Optional[List[str]] = MatrixOpt,
    n: Optional[List[int]] = NsOpt,
    device: str = typer.Option("cpu", help="device for bare names and for the default variant set"),
    threads: Optional[int] = typer.Option(None, "--threads", "-t"),
    max_combos: int = typer.Option(64, "--max-combos", help="at most this many param combinations per variant (a larger grid is sampled)"),
    repeats: Optional[int] = RepeatsOpt, min_time: Optional[float] = MinTimeOpt, warmup: Optional[float] = WarmupOpt,
    cache: Optional[str] = CacheOpt, rounds: Optional[int] = RoundsOpt,
    dlmc_root: Optional[str] = DlmcRootOpt,
    cache_file: Optional[Path] = typer.Option(None, "--cache-file", help="tuning cache (default ~/.cache/spmm-study/tuned.json or $SPMM_STUDY_TUNED)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="result directory for every candidate measured"),
    resume: bool = ResumeOpt, force: bool = ForceOpt,
    cluster: Optional[str] = ClusterOpt, retries: int = RetriesOpt, connect_timeout: float = ConnectTimeoutOpt,
):
    """Find the best Params per (variant, shape class) by measuring each Param's choices; 'run --tuned' uses them.
    With --cluster the grid is a sweep on Dask workers (each problem's candidates on one worker)."""
    from spmm_study import autotune as at
    from spmm_study import plan

    cluster_check(cluster, retries, connect_timeout)

    grids = plan.tuning_grids(variants, device, max_combos)
    docs = [plan.run_doc([g.variant], matrices=matrix, n=n, threads=None if threads is None else [threads], params=g.combos,
                         tags="autotune=1") for g in grids]
    exp, ctx = plan.plan(docs, name="autotune", dlmc_root=dlmc_root, timing=plan.timing_doc(
        "autotune", repeats=repeats, min_time=min_time, warmup=warmup, cache=cache, rounds=rounds))
    # after the plan: a bad option is then the only line on stderr, not the second after this note
    print_notes([f"warning: {w}" for w in exp.warnings])
    planned = {t.variant.id for t in exp.tasks}
    print_notes([f"note: {g.variant}: {g.total} param combinations, {len(g.combos)} measured (the defaults and a "
                 f"seeded sample; raise --max-combos to try them all)" for g in grids if g.cut and g.variant in planned])
    writer, _ = measure_on(cluster, retries, connect_timeout, exp.tasks, ctx, lambda: plan.open_writer(
        "autotune", out_dir, force=force, resume=resume, argv=_ARGV, timing=ctx.timing), err, "autotune", bar=True)
    rows = list(writer.rows)
    winners = at.best(rows)
    path = at.save(winners, cache_file)
    print_tables(at.summary(rows, winners, path), False)
    out.print(f"[dim]all candidates: {escape(str(writer.dir))}[/]")
    nothing_left(rows)


@app.command("report")
def report_cmd(
    results: List[Path] = typer.Argument(..., help="result files or folders: rows.jsonl, results.csv, run directories"),
    baseline: Optional[str] = typer.Option(None, help="speedups against this variant id (default: each device's dense BLAS baseline)"),
    markdown: bool = typer.Option(False, "--markdown", help="print markdown tables on stdout (for the README)"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="write PNG plots into this folder"),
    kind: str = typer.Option("auto", "--kind", help="table kind: auto, ladder, compare, study, dlmc, break-even, "
                             "class (a folder of 'lab N --student NAME' runs: grades, grades.csv, class_predictions.png)"),
    ceilings: Optional[Path] = typer.Option(None, "--ceilings", help="ceilings JSON from 'calibrate' for the roofline"),
    row_hist: Optional[List[str]] = typer.Option(None, "--row-hist", help="also plot the row-length histogram of this matrix spec"),
    dlmc_root: Optional[str] = DlmcRootOpt,
    save_rows: Optional[Path] = typer.Option(None, "--save-rows", help="also write the rows, rounds merged, to this CSV (small reference files)"),
):
    """Tables (rich or markdown) and PNG plots from result files only; several machines' files combine."""
    from spmm_study import calibrate, report
    from spmm_study.labs import grading

    skipped: list[str] = []
    if kind in ("auto", "class"):  # students' lab runs: their answer rows (answers.jsonl) are graded
        graded = grading.report(results, kind, plots, skipped)
        if graded is not None:
            print_notes(graded[0])
            print_tables(graded[1], markdown)
            for p in graded[2]:
                err.print(f"[dim]wrote {escape(str(p))}[/]")
            return
    rows = report.load_rows(results, skipped=skipped)
    if skipped:  # result files are input too: a bad row is left out, and said so
        print_notes([f"warning: skipped {len(skipped)} unreadable row{'s' if len(skipped) > 1 else ''} "
                     f"({skipped[0]}{'; ...' if len(skipped) > 1 else ''})"])
    from spmm_study.errors import ParamError

    measured = sorted({r["variant"] for r in rows})
    if baseline is not None and baseline not in measured:  # speedups against nothing would be blank columns
        raise ParamError(f"--baseline {baseline}: no row of that variant; the rows hold {', '.join(measured[:8])}"
                         f"{' ...' if len(measured) > 8 else ''}")
    if save_rows is not None:
        report.save_rows(rows, save_rows)
        err.print(f"[dim]wrote {escape(str(save_rows))}[/]")
    roofs = calibrate.load(ceilings)
    if roofs:  # say where the roofs come from: a stale or foreign calibration otherwise goes unnoticed
        print_notes([f"roofs from {ceilings or calibrate.default_path()} ({', '.join(sorted(roofs))})"])
    print_tables(report.tables_for(rows, kind=kind, baseline=baseline, ceilings=roofs), markdown)
    if plots is not None:
        from spmm_study import plots as charts
        from spmm_study.sources import row_lengths

        hists = row_lengths(row_hist or [], dlmc_root)
        for p in charts.plot_all(rows, plots, baseline=baseline, ceilings=roofs, row_lengths=hists):
            err.print(f"[dim]wrote {escape(str(p))}[/]")


@app.command()
def infer(
    net: Optional[str] = typer.Option(None, "--net", help="spdnn[:1024] (the challenge files under --spdnn-root) "
                                      "or generated:NEURONSxLAYERS[:seed=S]; default spdnn:1024"),
    matrix: Optional[List[str]] = typer.Option(None, "--matrix", "-m", help="a chain of matrix specs instead "
                                               "(each A = W-transposed, out x in; repeatable, in order)"),
    spdnn_root: Optional[str] = typer.Option(None, "--spdnn-root", envvar="SPMM_STUDY_SPDNN",
                                             help="folder of the Sparse DNN challenge files (neuron1024/, sparse-images-1024.tsv, ...)"),
    engine: List[str] = typer.Option(["fused", "scipy"], "--engine", "-e", help="fused, unfused, scipy, torch, "
                                     "cupy or champion (repeatable: baselines in the same run)"),
    device: str = typer.Option("cpu", help="cpu or gpu (fused and unfused engines)"),
    batch: Optional[int] = typer.Option(None, help="inputs (default all in the file; more repeat the images)"),
    layers: Optional[int] = typer.Option(None, help="the first LAYERS layers only"),
    prune_dead: bool = typer.Option(True, "--prune-dead/--keep-dead", help="drop inputs whose row became all zero"),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads (default: all cores)"),
    repeats: int = typer.Option(3, help="chains timed per engine (the median is reported)"),
    tile_n: int = typer.Option(256, "--tile-n", help="register tile of the CPU kernels (16, 64 or 256)"),
    parts: int = typer.Option(1, "--parts", help="split the inputs into PARTS nnz-balanced parts, one CPU process each"),
    bias: float = typer.Option(0.0, help="bias of every neuron, for --matrix chains"),
    rule: str = typer.Option("nonzero", help="bias rule for --matrix chains: row, nonzero or zero"),
    act: str = typer.Option("relu", help="activation for --matrix chains: none, relu or clamp"),
    ymax: float = typer.Option(32.0, help="upper clamp for --act clamp"),
    seed: int = typer.Option(0, help="seed of generated inputs and pattern-only values"),
    champion_src: Optional[str] = typer.Option(None, "--champion-src", envvar="SPMM_STUDY_CHAMPION",
                                               help="checkout of the HPEC'20 champion (engine champion)"),
    dlmc_root: Optional[str] = DlmcRootOpt,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder (default results/infer/<timestamp>)"),
    force: bool = typer.Option(False, help="replace an infer run already in --out"),
    save: bool = typer.Option(True, "--save/--no-save", help="write layers.csv, summary.json, live_inputs.png"),
):
    """Run a sparse network layer by layer (fused SpMM+bias+ReLU), engines side by side, against its truth."""
    from spmm_study import environment
    from spmm_study.harness import apply_threads
    from spmm_study.nets import infer as nets_infer
    from spmm_study.results import default_dir

    from spmm_study import tiny

    engine, warnings = nets_infer.check_options(engine, device, tile_n, repeats, bias, ymax, parts, seed,
                                                champion_src)  # unavailable engines: a warning each, skipped
    batch, layers, repeats = tiny.infer(batch, layers, repeats, len(matrix or []))  # capped under SPMM_STUDY_TINY=1
    used = apply_threads(threads)
    setup = nets_infer.build_setup(net, matrix, spdnn_root, layers, batch, bias, rule, act, ymax, seed, dlmc_root)
    print_notes(warnings)
    rows = nets_infer.run_engines(setup, engine, device, prune_dead, repeats, tile_n, champion_src, parts,
                                  warnings=(late := []))
    print_notes(late)
    machine = environment.machine_label(device)
    out.print(nets_infer.summary_table(setup, rows, threads or used, machine))
    for line in nets_infer.summary_lines(setup, rows):
        out.print(line, soft_wrap=True)
    if save:
        folder = out_dir or default_dir("infer")
        meta = {"machine": machine, "threads": used, "device": device, "prune_dead": prune_dead,
                "repeats": repeats, "argv": _ARGV}
        for p in nets_infer.write_outputs(folder, setup, rows, meta, force):
            err.print(f"[dim]wrote {p}[/]")
    if not all(r["match"] for r in rows):
        raise typer.Exit(1)


@app.command()
def ffn(
    w1: Optional[str] = typer.Option(None, "--w1", help="W1 (hidden x model) spec; with --w2 (default: DLMC "
                                     "transformer encoder layer 0 ffn_conv1/ffn_conv2 at --sparsity)"),
    w2: Optional[str] = typer.Option(None, "--w2", help="W2 (model x hidden) spec"),
    sparsity: str = typer.Option("0.9", help="DLMC magnitude-pruning level of the default layer: 0.8, 0.9, 0.95 or 0.98"),
    tokens: Optional[List[int]] = typer.Option(None, "--tokens", "-n", help="tokens N, the columns of x "
                                               "(repeatable; default 256, 2048 and 8192)"),
    path: List[str] = typer.Option(list(("sparse", "nm24", "dense")), "--path", "-p",
                                   help="sparse (fused rungs), nm24 (weights re-pruned 2:4; GPU: cuSPARSELt), "
                                   "dense (BLAS); repeatable or comma-separated"),
    device: str = typer.Option("cpu", help="cpu or gpu"),
    dtype: str = typer.Option("float32", help="float32; on the GPU also float16 or bfloat16 (the nm24 and dense "
                              "paths; the fused sparse rungs compute float32)"),
    repeats: int = typer.Option(5, help="timed runs of each path, interleaved; the median is reported"),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads (default: all cores)"),
    tile_n: int = typer.Option(256, "--tile-n", help="register tile of the CPU kernels (16, 64 or 256)"),
    seed: int = SeedOpt,
    dlmc_root: Optional[str] = DlmcRootOpt,
    json_out: bool = JsonOpt,
):
    """The transformer FFN block y = W2·relu(W1·x + b1) + b2: sparse, 2:4 and dense paths, tokens/s, checked."""
    from spmm_study import environment
    from spmm_study.harness import apply_threads
    from spmm_study.nets import ffn as block

    paths = block.check_paths(path, device, tokens or [256, 2048, 8192], repeats, tile_n)
    used = apply_threads(threads)
    a1, a2, specs = block.layer_weights(w1, w2, sparsity, dlmc_root, seed)
    rows = block.run_ffn(a1, a2, tokens or [256, 2048, 8192], paths, device, dtype, repeats, seed, tile_n)
    if json_out:
        print_json([r.as_dict() for r in rows])
    else:
        machine = environment.machine_label(device)
        where = f"{machine}, {used} thread(s)" if device == "cpu" else machine
        title = f"FFN block {a1.k}->{a1.m}->{a2.m}: W1 {specs[0]} ({a1.nnz} nnz), W2 {specs[1]} ({a2.nnz} nnz); {where}"
        print_tables([block.block_table(rows, title)], False)
        print_notes([f"SKIP {r.path} N={r.n}: {r.message}" for r in rows if r.status == "SKIP"])
        print_notes([f"FAIL {r.path} N={r.n}: {r.message}" for r in rows if r.status == "FAIL"], style="red")
    if any(r.status == "FAIL" for r in rows):
        raise typer.Exit(1)


@app.command("lab")
def lab_cmd(
    lab_id: Optional[str] = typer.Argument(None, metavar="[ID]", help="the lab to run (no ID: list the labs)"),
    handout: bool = typer.Option(False, "--handout", help="print the lab's handout (Markdown) and stop"),
    answers: bool = typer.Option(False, "--answers", help="with --handout: the instructor's copy, with the figures measured when the lab was written"),
    quick: bool = typer.Option(False, "--quick", help="class sizes: each lab under a minute on a 2-core VM"),
    predict: Optional[List[str]] = typer.Option(None, "--predict", help="a prediction KEY=VALUE (repeatable)"),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="predictions file: KEY=VALUE lines or a JSON object"),
    no_predict: bool = typer.Option(False, "--no-predict", help="skip the predictions"),
    student: Optional[str] = typer.Option(None, "--student", help="name stored with the predictions (default $SPMM_STUDY_STUDENT or the login)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="result folder (default results/lab<ID>/<timestamp>)"),
    force: bool = typer.Option(False, help="replace results already in --out"),
    dlmc_root: Optional[str] = DlmcRootOpt,
    tiny: bool = typer.Option(False, hidden=True, help="tiny sizes (tests): meaningless numbers"),
):
    """Teaching labs on data movement: predict, measure, and see model, simulated caches and time side by side."""
    from spmm_study.labs import catalog, session

    if lab_id is None:
        if handout or answers or predict or predictions or no_predict:
            raise SpmmError("give a lab ID (see 'spmm-study lab')")
        out.print(session.list_table())
        out.print("[dim]run one: spmm-study lab ID --quick; its handout: spmm-study lab ID --handout[/]")
        return
    lab = catalog.get(lab_id)
    if answers and not handout:
        raise SpmmError("--answers goes with --handout (the instructor's copy of the handout)")
    if handout:
        print(catalog.handout(lab, answers), end="")
        return
    from spmm_study import tiny as tiny_sizes

    size = "tiny" if tiny else tiny_sizes.size("quick" if quick else "full")
    if dlmc_root is not None:  # given (flag or $SPMM_STUDY_DLMC): a typo must not read as "no DLMC here"
        from spmm_study.labs import matrices

        if not Path(dlmc_root).is_dir():
            raise SpmmError(f"--dlmc-root {dlmc_root}: not a directory")
        matrices.DLMC_ROOT = dlmc_root
    session.run(lab_id, size, predict, predictions, no_predict, student, out_dir, force, out, err)


@app.command("show")
def show_cmd(variant: str = typer.Argument(..., help="variant id or bare idea (cpu.csr.tiled, tiled)"),
             device: str = typer.Option("cpu", help="device for bare names: cpu or gpu")):
    """Print a variant's lesson: its module docstring (what changed, loop order, expected traffic, what to look at)."""
    from spmm_study.lessons import lesson

    print(lesson(variant, device))


@app.command()
def propagate(
    matrix: Optional[List[str]] = typer.Option(None, "--matrix", "-m", help="the chain's matrix specs in order "
                                               "(A = W-transposed, out x in), e.g. a DLMC ffn_conv1 then ffn_conv2"),
    net: Optional[str] = typer.Option(None, "--net", help="spdnn[:1024] or generated:NxL instead of --matrix"),
    spdnn_root: Optional[str] = typer.Option(None, "--spdnn-root", envvar="SPMM_STUDY_SPDNN", help="challenge folder"),
    layers: Optional[int] = typer.Option(None, help="the first LAYERS layers of --net"),
    n: int = typer.Option(256, "--n", "-n", help="columns of the activations (tokens or inputs) for FLOPs and time"),
    bias: float = typer.Option(0.0, help="bias of every hidden neuron for --matrix chains (relu, row rule)"),
    last_act: str = typer.Option("none", "--last-act", help="activation of the last --matrix layer: none or relu"),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads (default: all cores)"),
    repeats: int = typer.Option(11, help="interleaved timed runs of each chain (the fastest is reported)"),
    dlmc_root: Optional[str] = DlmcRootOpt,
):
    """Sparsity propagation (SparTA's rules): dead rows and columns found across layers, removed, timed."""
    from spmm_study.errors import ParamError
    from spmm_study.harness import apply_threads
    from spmm_study.nets import propagate as prop

    from spmm_study.limits import MAX_LAYERS, MAX_N, MAX_REPEATS, check_count

    check_count(n, "--n", MAX_N)
    check_count(repeats, "--repeats", MAX_REPEATS)
    if layers is not None:
        check_count(layers, "--layers", MAX_LAYERS)
    if last_act not in ("none", "relu"):
        raise ParamError(f"--last-act {last_act!r}: choose none or relu")
    if not math.isfinite(bias):
        raise ParamError("--bias must be a finite number")
    from spmm_study import tiny

    _, layers, repeats = tiny.infer(None, layers, repeats, len(matrix or []))  # capped under SPMM_STUDY_TINY=1
    n = min(n, tiny.N) if tiny.active() else n
    used = apply_threads(threads)
    chain_layers, label = prop.layers_for(matrix, net, spdnn_root, layers, bias, last_act, dlmc_root)
    r = prop.report(chain_layers, prop.propagate(chain_layers), n, repeats)
    t = Table(title=f"{escape(label)}: N = {n}, {used} thread(s)", header_style="bold")
    for col in ("rows", "cols", "nnz removed", "MFLOP", "KiB", "full", "shrunk", "speedup", "outputs"):
        t.add_column(col, justify="right")
    same = "same" if r["identical"] else f"{r['max_rel_diff']:.0e}"
    t.add_row(str(r["rows"]), str(r["cols"]), f"{r['nnz']}/{r['nnz_before']}", f"{r['flops_removed'] / 1e6:.3g}",
              f"{r['bytes_removed'] / 1024:.4g}", fmt_time_s(r["time_full_s"]), fmt_time_s(r["time_shrunk_s"]),
              f"{r['speedup']:.2f}x", same)
    out.print(t)
    out.print(f"[dim]{r['rounds']} round(s) to the fixed point, {r['folded']} constant(s) folded into a bias; "
              "outputs: the shrunk chain against the full one in float64 (same = bit for bit); times: fused "
              "CPU kernel, float32, fastest of interleaved runs[/]")


def fmt_time_s(s: float) -> str:
    from spmm_study.report import fmt_time

    return fmt_time(s)




@app.command("check")
def check_cmd(
    variant: str = typer.Option(..., "--variant", "-v", help="variant id or bare idea"),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="variant parameter name=value (repeatable); "
                                              "default: a GPU rung's declared small configurations, else the defaults"),
    device: str = typer.Option("cpu", help="device for bare variant names: cpu or gpu"),
):
    """Run a variant over the edge matrices (for students writing a rung): one line per case, exit 1 on a FAIL.

    Every case poisons C, runs twice, checks against float64 and (if deterministic) compares the bits. GPU rungs
    run on a CUDA device, or in the simulator with NUMBA_ENABLE_CUDASIM=1 (slow: use their small configurations)."""
    from spmm_study import edge, registry

    v = registry.get(variant, device=device)
    reason = v.unavailable_reason()
    if reason:
        from spmm_study.errors import DeviceUnavailable

        raise DeviceUnavailable(f"{v.id} is unavailable: {reason}")
    from spmm_study import tiny

    failed = total = 0
    for o in tiny.cases(edge.run_checks(v, edge.parse_params(param) if param else None)):
        total += 1
        failed += o.status != "PASS"
        print(f"{o.status:5} {v.id} {o.case.label()} ({o.seconds:.2f} s){': ' + o.message if o.message else ''}",
              flush=True)
    print(f"{v.id}: {total - failed} of {total} cases pass")
    if failed:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------------------- entry


_ARGV: list[str] | None = None
RESUMABLE = ("sweep", "compare", "autotune")  # commands with --resume ('run' has none)


class Interrupted(BaseException):
    """Ctrl-C, raised by our SIGINT handler: click turns a KeyboardInterrupt into Abort after echoing a
    blank line, so the one line that says what was kept could not be the only one."""


def _on_sigint(signum, frame):
    raise Interrupted()


def interrupted_message(argv: list[str], writer) -> str:
    """One line: what an interrupted command kept, and (only where the command has --resume) how to go on."""
    import shlex

    command = next((a for a in argv if not a.startswith("-")), "")
    if writer is None:
        return "interrupted: nothing was saved"
    n = len(writer.rows)
    kept = f"interrupted: {n} row{'s' if n != 1 else ''} kept in {writer.dir} (the measurement under way was dropped)"
    if command not in RESUMABLE:
        return kept
    again = list(argv) + ([] if "--resume" in argv else ["--resume"])
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        again += ["--out", str(writer.dir)]
    return f"{kept}; continue with: spmm-study {shlex.join(again)}"


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the Typer app, turning every user mistake into one line and exit code 2, Ctrl-C into
    one line saying what was kept (exit 130). Result-folder locks are released when the command ends."""
    global _ARGV
    import signal
    import threading

    from spmm_study import results
    from spmm_study.folderlock import release_all

    _ARGV = list(sys.argv[1:] if argv is None else argv)  # recorded in meta.json as the command line
    results.CURRENT_WRITER = None
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, _on_sigint)
    try:
        _main(argv)
    except Interrupted:
        err.print(interrupted_message(_ARGV, results.CURRENT_WRITER), markup=False, highlight=False,
                  soft_wrap=True, emoji=False)
        sys.exit(130)
    finally:
        release_all()  # the result folder's lock (the kernel drops it anyway when the process ends)
        results.CURRENT_WRITER = None
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)


def _main(argv: list[str] | None) -> None:
    try:
        code = app(args=argv, standalone_mode=False, prog_name="spmm-study")
    except SpmmError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True, emoji=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted", markup=False)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if msg:  # empty for a bare 'spmm-study' or 'spmm-study data': the help was printed, no "error: " line
            err.print(f"error: {msg}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
    except MemoryError:
        err.print("error: out of memory", markup=False)
        sys.exit(2)
    except BrokenPipeError:
        os._exit(0)
    except OSError as exc:  # a path the user gave cannot be written or read: /proc/x, a read-only disk, ...
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"error: {exc.strerror or exc}{where}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    # Without standalone mode click *returns* the code of a typer.Exit raised inside a command instead of
    # raising it, so `run` with a FAIL row used to exit 0; pass it on.
    if isinstance(code, int) and code:
        sys.exit(code)
