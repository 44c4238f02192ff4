"""The command line (Typer). Each command parses options, calls one function, renders (DESIGN.md §11.6).

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

# ----------------------------------------------------------------------------------------------- helpers

MatrixOpt = typer.Option(None, "--matrix", "-m", help="matrix spec (repeatable); default: the embedded "
                         "synthetic transformer FFN weight, synthetic:magnitude:ffn1:0.9")
DlmcRootOpt = typer.Option(None, "--dlmc-root", envvar="SPMM_STUDY_DLMC", help="folder holding the DLMC collection")


def fmt_time(s: float) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def strict_json(rows: list[dict]) -> list[dict]:
    """Rows with NaN/Inf as null: json.dumps writes NaN, which is not JSON (jq and JavaScript reject it)."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()} for r in rows]


def fmt_num(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if x is not None and math.isfinite(x) else "-"


def parse_params(items: list[str] | None) -> dict[str, str]:
    params = {}
    for item in items or []:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ParamError(f"--param {item!r} must look like name=value")
        params[name.strip()] = value.strip()
    return params


def status_style(status: str) -> str:
    return {"PASS": "green", "FAIL": "bold red", "ERROR": "bold red", "SKIP": "yellow", "UNAVAILABLE": "dim"}.get(status, "")


def results_table(rows, title: str = "") -> Table:
    rows = [r if isinstance(r, dict) else r.__dict__ for r in rows]
    one_matrix = len({r["matrix"] for r in rows}) == 1
    if one_matrix and rows:
        r0 = rows[0]
        title = title or f"{r0['matrix']}  ({r0['m']}x{r0['k']}, nnz {r0['nnz']:,}, {r0['dtype']})"
    t = Table(title=escape(title), show_lines=False, header_style="bold")
    cols = [("variant", "left")] + ([] if one_matrix else [("matrix", "left")])
    for col, just in cols + [("N", "right"), ("status", "left"),
                      ("median", "right"), ("p20–p80", "right"), ("GFLOP/s", "right"), ("GB/s comp", "right"),
                      ("GB/s model", "right"), ("rel err", "right"), ("setup", "right"), ("1st call", "right"),
                      ("thr", "right")]:
        t.add_column(col, justify=just, no_wrap=col != "matrix")
    for r in rows:
        matrix = r["matrix"] if len(r["matrix"]) <= 48 else "…" + r["matrix"][-47:]
        status = f"[{status_style(r['status'])}]{r['status']}[/]"
        t.add_row(r["variant"], *([] if one_matrix else [escape(matrix)]), str(r["n"]), status, fmt_time(r["median_s"]),
                  f"{fmt_time(r['p20_s'])}–{fmt_time(r['p80_s'])}" if r["status"] == "PASS" else "-",
                  fmt_num(r["gflops"]), fmt_num(r["gbps_compulsory"]), fmt_num(r["gbps_model"]),
                  fmt_num(r["rel_error"], 2), fmt_time(r["setup_s"]), fmt_time(r["first_call_s"]), str(r["threads"]))
    return t


def print_messages(rows, console: Console) -> None:
    for r in rows:
        r = r if isinstance(r, dict) else r.__dict__
        if r["status"] != "PASS" and r["message"]:
            console.print(f"[{status_style(r['status'])}]{r['status']}[/] {r['variant']}: {escape(r['message'])}",
                          markup=True, highlight=False, soft_wrap=True)


def make_writer(name: str, out_dir: Optional[Path], force: bool, resume: bool, meta_extra: dict | None = None,
                save: bool = True):
    from spmm_study.environment import describe
    from spmm_study.results import ResultWriter, default_dir

    if not save:
        return None
    directory = out_dir or default_dir(name)
    meta = {"experiment": name, **describe(argv=_ARGV), **(meta_extra or {})}
    return ResultWriter(directory, meta=meta, force=force, resume=resume)


def tuned_params(v, a, n: int, given: dict) -> dict:
    """``run --tuned``: the params autotune stored for this variant, machine and shape class, overlaid
    with the ones given on the command line; a note on stderr when the class was never tuned."""
    from spmm_study import autotune
    from spmm_study.environment import machine_label

    if not v.params:
        return given
    sparsity = 1.0 - a.nnz / (a.m * a.k) if a.m * a.k else 0.0
    found = autotune.lookup(v.id, a.m, a.k, n, sparsity, machine_label(v.device))
    if found is None:
        err.print(f"[yellow]note:[/] {v.id} was never tuned for {autotune.shape_class(a.m, a.k, n, sparsity)} "
                  "on this machine: defaults used (run 'spmm-study autotune')", highlight=False)
        return given
    chosen = {**{k: str(val) for k, val in found.items() if k in {p.name for p in v.params}}, **given}
    err.print(f"[dim]{v.id}: tuned params {' '.join(f'{k}={x}' for k, x in sorted(chosen.items()))}[/]", highlight=False)
    return chosen


# ----------------------------------------------------------------------------------------------- commands


@app.command("list")
def list_cmd(
    device: Optional[str] = typer.Option(None, help="only cpu or gpu variants"),
    format: Optional[str] = typer.Option(None, "--format", help="only this format (csr, coo, dense, ...)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
):
    """List the variants in ladder order, with loop order, format, params and availability."""
    from spmm_study.registry import select

    variants = select(device=device, format=format)
    items = []
    for v in variants:
        items.append({
            "id": v.id, "device": v.device, "format": v.format, "idea": v.idea, "rung": v.rung,
            "loop_order": v.loop_order, "baseline": v.baseline, "deterministic": v.deterministic,
            "params": [{"name": p.name, "default": p.default, "choices": list(p.choices), "help": p.help}
                       for p in v.params],
            "available": v.unavailable_reason() is None, "unavailable_reason": v.unavailable_reason(),
            "summary": v.summary,
        })
    if as_json:
        print(json.dumps(items, indent=2))
        return
    t = Table(header_style="bold")
    for col in ("id", "loop order", "params (default)", "", "summary"):
        t.add_column(col, overflow="fold")
    for it in items:
        params = " ".join(f"{p['name']}={p['default']}" for p in it["params"])
        flags = ("B" if it["baseline"] else "") + ("" if it["deterministic"] else "~")
        summary = escape(it["summary"]) if it["available"] else f"unavailable: {escape(it['unavailable_reason'])}"
        style = None if it["available"] else "dim"
        t.add_row(it["id"], escape(it["loop_order"]), escape(params), flags, summary, style=style)
    out.print(t)
    out.print("[dim]B = vendor baseline, ~ = non-deterministic (atomics); run one with: spmm-study run --variant ID[/]")


@app.command()
def run(
    variant: List[str] = typer.Option([DEFAULT_VARIANT], "--variant", "-v", help="variant id or bare idea (repeatable)"),
    matrix: Optional[List[str]] = MatrixOpt,
    n: int = typer.Option(256, "--n", "-n", help="columns of B and C (the batch)"),
    dtype: str = typer.Option("float32", help="float32 or float64"),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="variant parameter name=value (repeatable)"),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads for numba and BLAS (default: all cores)"),
    repeats: int = typer.Option(10, help="timed repeats (at least)"),
    min_time: float = typer.Option(0.2, "--min-time", help="keep repeating until this much time was measured (s)"),
    warmup: float = typer.Option(0.1, help="warm-up time before measuring (s)"),
    cache: str = typer.Option("cold", help="cold: flush caches (CPU) or L2 (GPU) before each repeat; warm: don't"),
    device: str = typer.Option("cpu", help="device for bare variant names: cpu or gpu"),
    format: Optional[str] = typer.Option(None, "--format", help="format for bare variant names (default csr)"),
    prune: Optional[str] = typer.Option(None, help="prune the matrix: magnitude:0.9, random:0.9 or 2:4"),
    seed: int = typer.Option(0, help="seed of B and of pattern-only values"),
    dlmc_root: Optional[str] = DlmcRootOpt,
    as_json: bool = typer.Option(False, "--json", help="print result rows as JSON on stdout"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="result directory (default results/run/<timestamp>)"),
    force: bool = typer.Option(False, help="replace rows already in --out"),
    save: bool = typer.Option(True, "--save/--no-save", help="write result files"),
    tuned: bool = typer.Option(False, "--tuned", help="use the params 'autotune' stored for this machine and shape class"),
):
    """Measure variants on a matrix: checked against float64, timed, set beside the bytes that must move."""
    from spmm_study import registry, runner
    from spmm_study.timing import TimingConfig

    if cache not in ("cold", "warm"):
        raise ParamError(f"--cache {cache!r}: choose cold or warm")
    if repeats < 1 or min_time < 0 or warmup < 0:
        raise ParamError("--repeats must be >= 1 and --min-time/--warmup >= 0")
    if n <= 0:
        raise ParamError(f"N must be positive, got {n}")
    params = parse_params(param)
    variants = [registry.get(v, device=device, format=format) for v in variant]
    for v in variants:
        reason = v.unavailable_reason()
        if reason:
            raise SpmmError(f"{v.id} is unavailable: {reason}")
    from spmm_study.sources import DEFAULT_SPEC

    specs = matrix or [DEFAULT_SPEC]
    ctx = runner.Context(dlmc_root=dlmc_root, timing=TimingConfig(repeats=repeats, min_time_s=min_time,
                                                                   warmup_s=warmup, cache=cache))
    tasks = []
    for v in variants:
        known = {p.name for p in v.params}
        if len(variants) > 1 and params and not set(params) & known:
            continue  # in a multi-variant run a parameter applies to the variants that have it
        own = {k: val for k, val in params.items() if k in known or len(variants) == 1}
        v.resolve_params(own)  # unknown names and bad values fail here, before any measurement
        tasks += [runner.Task(v, spec, n, tuple(sorted((tuned_params(v, ctx.matrix(spec, prune, seed).a, n, own)
                                                        if tuned else own).items())), dtype, seed, prune, threads)
                  for spec in specs]
    if not tasks:
        raise ParamError(f"no variant takes the parameters {', '.join(params)}")
    for spec in specs:  # resolve every matrix before the first measurement: all input errors come first
        ctx.matrix(spec, prune, seed)
    writer = make_writer("run", out_dir, force, False, save=save)
    console = err if as_json else out
    rows = []
    with console.status("measuring…") as status:
        for res in runner.execute(tasks, ctx, writer, strict=True):
            status.update(f"measured {res.variant} on {res.matrix}")
            rows.append(res)
    if as_json:
        print(json.dumps(strict_json([r.__dict__ for r in rows]), indent=2, default=str, allow_nan=False))
    else:
        out.print(results_table(rows))
        if writer is not None:
            out.print(f"[dim]results: {writer.dir}[/]")
    print_messages(rows, err)
    if any(r.status in ("FAIL", "ERROR") for r in rows):
        raise typer.Exit(1)
    if rows and all(r.status == "SKIP" for r in rows):
        raise typer.Exit(2)  # every variant refused this input (e.g. past int32): a user mistake, nothing measured


@app.command()
def info(gpu: bool = typer.Option(True, "--gpu/--no-gpu", help="probe the GPU (imports numba.cuda)"),
         as_json: bool = typer.Option(False, "--json")):
    """Machine, caches, threads, numba and GPU status."""
    from spmm_study.environment import describe, thread_pools

    env = describe(include_gpu=gpu)
    env["thread_pools"] = thread_pools()
    if as_json:
        print(json.dumps(env, indent=2, default=str))
        return
    t = Table(show_header=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for key in ("cpu_model", "cores", "simd", "platform", "git_commit"):
        t.add_row(key, str(env[key]))
    for name, size in env["caches"].items():
        t.add_row(f"cache {name}", size)
    for name, ver in env["versions"].items():
        t.add_row(name, ver)
    for pool in env["thread_pools"]:
        t.add_row(f"threads: {pool.get('library') or pool.get('internal_api')}", str(pool.get("num_threads")))
    if gpu:
        g = env["gpu"]
        t.add_row("gpu", escape(g.get("error") and f"unavailable: {g['error']}" or ", ".join(f"{k}={v}" for k, v in g.items())))
    out.print(t)


@data_app.command("info")
def data_info(spec: str = typer.Argument(..., help="matrix spec"), prune: Optional[str] = typer.Option(None),
              seed: int = 0, dlmc_root: Optional[str] = DlmcRootOpt, as_json: bool = typer.Option(False, "--json")):
    """Shape, nnz, sparsity, row-length statistics and a histogram of row lengths."""
    from spmm_study import sources

    loaded = sources.load(spec, prune=prune, seed=seed, dlmc_root=dlmc_root)
    st = sources.row_stats(loaded.a)
    st["spec"] = loaded.spec
    if as_json:
        print(json.dumps(st, indent=2))
        return
    t = Table(show_header=False, title=loaded.spec)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("shape", f"{st['rows']} x {st['cols']}")
    t.add_row("nnz", f"{st['nnz']:,}")
    t.add_row("sparsity", f"{st['sparsity']:.4f}")
    t.add_row("row length min / mean / max", f"{st['row_min']} / {st['row_mean']:.1f} / {st['row_max']}")
    t.add_row("row length CV (std/mean)", f"{st['row_cv']:.3f}")
    t.add_row("empty rows", str(st["empty_rows"]))
    t.add_row("columns touched", f"{st['cols_touched']} of {st['cols']}")
    t.add_row("dtypes", f"{st['value_dtype']} values, {st['index_dtype']} indices")
    out.print(t)
    peak = max((b["count"] for b in st["histogram"]), default=0) or 1
    for b in st["histogram"]:
        bar = "█" * int(round(40 * b["count"] / peak))
        out.print(f"  {b['lo']:8.1f} – {b['hi']:8.1f} │{bar} {b['count']}", highlight=False)


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
    out.print(f"wrote {path}: {loaded.a.m}x{loaded.a.k}, nnz {loaded.a.nnz}{note}")


# ----------------------------------------------------------------------------------------------- reports and experiments


def render_table(table) -> Table:
    """A report.Table (data) as a rich table; FAIL cells in red."""
    from spmm_study.report import formatted_rows

    t = Table(title=escape(table.title), header_style="bold", caption=escape(table.caption) if table.caption else None)
    for i, col in enumerate(table.columns):
        numeric = any(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in table.rows) or \
            any(type(r[i]).__name__ == "Measured" for r in table.rows)
        t.add_column(col, justify="right" if numeric else "left", overflow="fold")
    for row in formatted_rows(table):
        t.add_row(*[f"[bold red]{c}[/]" if c in ("FAIL", "ERROR") else escape(str(c)) for c in row])
    return t


def split_list(items: list[str] | None) -> list[str]:
    """``--variants a,b --variants c`` → ``[a, b, c]``."""
    return [x.strip() for item in items or [] for x in item.split(",") if x.strip()]


def timing_config(repeats: int, min_time: float, warmup: float, cache: str):
    from spmm_study.timing import TimingConfig

    if cache not in ("cold", "warm"):
        raise ParamError(f"--cache {cache!r}: choose cold or warm")
    if repeats < 1 or min_time < 0 or warmup < 0:
        raise ParamError("--repeats must be >= 1 and --min-time/--warmup >= 0")
    return TimingConfig(repeats=repeats, min_time_s=min_time, warmup_s=warmup, cache=cache)


@app.command()
def compare(
    variants: List[str] = typer.Option(..., "--variants", "-v", help="comma-separated variant ids or bare ideas (repeatable)"),
    matrix: Optional[List[str]] = MatrixOpt,
    n: Optional[List[int]] = typer.Option(None, "--n", "-n", help="columns of B (repeatable; default 256)"),
    baseline: Optional[str] = typer.Option(None, help="speedups against this variant (default: the device's dense BLAS baseline)"),
    rounds: int = typer.Option(3, help="interleaved rounds A B C A B C ...; the median of the rounds is reported"),
    dtype: str = typer.Option("float32"),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads for numba and BLAS"),
    repeats: int = typer.Option(5, help="timed repeats per round (at least)"),
    min_time: float = typer.Option(0.1, "--min-time", help="timed seconds per round (at least)"),
    warmup: float = typer.Option(0.05, help="warm-up seconds per round"),
    cache: str = typer.Option("cold", help="cold or warm caches between repeats"),
    device: str = typer.Option("cpu", help="device for bare variant names"),
    prune: Optional[str] = typer.Option(None, help="prune every matrix: magnitude:0.9, random:0.9 or 2:4"),
    seed: int = typer.Option(0),
    dlmc_root: Optional[str] = DlmcRootOpt,
    markdown: bool = typer.Option(False, "--markdown", help="print the table as markdown on stdout"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON on stdout"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="result directory (default results/compare/<timestamp>)"),
    force: bool = typer.Option(False), resume: bool = typer.Option(False, help="continue an interrupted compare in --out"),
    save: bool = typer.Option(True, "--save/--no-save"),
):
    """Variants side by side on the same problems, interleaved (A B A B ...), with speedups vs a baseline."""
    from spmm_study import registry, report, runner
    from spmm_study.sources import DEFAULT_N, DEFAULT_SPEC

    if rounds < 1:
        raise ParamError("--rounds must be >= 1")
    ns = n or [DEFAULT_N]
    if any(x <= 0 for x in ns):
        raise ParamError(f"N must be positive, got {min(ns)}")
    tcfg = timing_config(repeats, min_time, warmup, cache)
    chosen = [registry.get(v, device=device) for v in split_list(variants)]
    if baseline:
        base = registry.get(baseline, device=device)
        baseline = base.id
        if base not in chosen:
            chosen.append(base)
    else:  # measure the device's dense baseline too, when it is registered and runs here
        for dev in sorted({v.device for v in chosen}):
            bid = report.DENSE_BASELINES.get(dev)
            reg = registry.load_all()
            if bid in reg and reg[bid] not in chosen and reg[bid].unavailable_reason() is None:
                chosen.append(reg[bid])
    chosen = list(dict.fromkeys(chosen))
    specs = matrix or [DEFAULT_SPEC]
    ctx = runner.Context(dlmc_root=dlmc_root, timing=tcfg)
    for spec in specs:  # every input error before the first measurement
        ctx.matrix(spec, prune, seed)
    tasks = [runner.Task(v, spec, nn, (), dtype, seed, prune, threads, f"round={r}")
             for spec in specs for nn in ns for r in range(rounds) for v in chosen]
    writer = make_writer("compare", out_dir, force, resume, save=save)
    console = err if (as_json or markdown) else out
    rows = []
    with console.status("measuring…") as status:
        for i, res in enumerate(runner.execute(tasks, ctx, writer), 1):
            status.update(f"[{i}/{len(tasks)}] {res.variant} on {res.matrix} N={res.n}")
            rows.append(res.__dict__)
    if writer is not None:
        rows = list(writer.rows)  # a resumed compare reports the earlier rounds too
    table = report.compare_table(rows, [v.id for v in chosen], baseline)
    if as_json:
        print(json.dumps(strict_json(rows), indent=2, default=str, allow_nan=False))
    elif markdown:
        print(report.to_markdown(table))
    else:
        out.print(render_table(table))
        if writer is not None:
            out.print(f"[dim]results: {writer.dir}[/]")
    print_messages([r for r in rows if r["status"] in ("FAIL", "ERROR")], err)


def latest_run_dir(name: str, suffix: str = "", root: Path = Path("results")) -> Optional[Path]:
    """The newest results/<name>/<timestamp><suffix> directory holding rows (what --resume continues)."""
    base = root / name
    if not base.is_dir():
        return None
    dirs = sorted(p for p in base.iterdir() if p.is_dir() and p.name.endswith(suffix) and (p / "rows.jsonl").exists())
    if suffix == "":
        dirs = [p for p in dirs if "-shard" not in p.name]
    return dirs[-1] if dirs else None


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
    force: bool = typer.Option(False, help="replace rows already in --out"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and list the grid, measure nothing"),
    markdown: bool = typer.Option(False, "--markdown", help="print the report tables as markdown at the end"),
    repeats: Optional[int] = typer.Option(None, help="override the file's timing.repeats"),
    min_time: Optional[float] = typer.Option(None, "--min-time", help="override timing.min_time (s)"),
    warmup: Optional[float] = typer.Option(None, help="override timing.warmup (s)"),
    rounds: Optional[int] = typer.Option(None, help="override timing.rounds (interleaved repetitions)"),
):
    """Run an experiment grid: validated first (all errors at once), progress with ETA, resumable, shardable."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from spmm_study import experiment as ex
    from spmm_study import report, runner

    grid = ex.parse_param_grid(param)
    ctx = runner.Context(dlmc_root=dlmc_root)
    timing = {k: v for k, v in (("repeats", repeats), ("min_time", min_time), ("warmup", warmup),
                                ("rounds", rounds)) if v is not None}
    if experiment is not None:
        if variants or matrix or n or threads:
            raise ParamError("give either an experiment file or --variants/--matrix/--n/--threads, not both")
        exp = ex.load(experiment, dlmc_root=dlmc_root, extra_params=grid, ctx=ctx, timing=timing)
    else:
        if not variants:
            raise ParamError("give an experiment file or --variants")
        run_doc = {"variants": split_list(variants)}
        if matrix:
            run_doc["matrices"] = list(matrix)
        if n:
            run_doc["n"] = list(n)
        if threads:
            run_doc["threads"] = list(threads)
        if grid:
            run_doc["params"] = grid
        exp = ex.parse({"name": "sweep", "runs": [run_doc], "timing": timing}, source="command line",
                       dlmc_root=dlmc_root, ctx=ctx)
    ctx.timing = exp.timing
    for w in exp.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    tasks = exp.tasks
    suffix = ""
    if shard:
        i, k = ex.parse_shard(shard)
        tasks = ex.shard(tasks, i, k)
        suffix = f"-shard{i}of{k}"
    if dry_run:
        for t in tasks:
            out.print(f"{t.variant.id}  {t.matrix}  N={t.n}  {dict(t.params) or ''}  threads={t.threads or '-'}  "
                      f"{t.tags}", highlight=False)
        out.print(f"[dim]{len(tasks)} runs over {len({ex.problem_of(t) for t in tasks})} problems[/]")
        return
    if resume and out_dir is None:
        out_dir = latest_run_dir(exp.name, suffix)
        if out_dir is None:
            raise ParamError(f"--resume: no earlier results/{exp.name}/*{suffix} run with rows; pass --out")
    if out_dir is None:
        from spmm_study.results import default_dir

        out_dir = default_dir(exp.name).with_name(default_dir(exp.name).name + suffix)
    writer = make_writer(exp.name, out_dir, force, resume, meta_extra={
        "experiment_file": exp.source, "experiment_text": exp.text, "description": exp.description,
        "shard": shard or "", "baseline": exp.baseline or ""})
    todo = ex.pending(tasks, ctx, writer)
    if len(todo) < len(tasks):
        err.print(f"[dim]resuming {writer.dir}: {len(tasks) - len(todo)} of {len(tasks)} runs already done[/]")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
                        console=err, transient=False)
    failures = []
    with progress:
        bar = progress.add_task(exp.name, total=len(todo), last="")
        for res in runner.execute(todo, ctx, writer):
            if res.status in ("FAIL", "ERROR"):
                failures.append(res)
            label = f"{res.variant} {res.matrix.rsplit('/', 1)[-1][:40]} N={res.n} {res.status}"
            progress.update(bar, advance=1, last=label)
    rows = list(writer.rows)
    err.print(f"[dim]results: {writer.dir} ({len(rows)} rows)[/]")
    print_messages(failures, err)
    if rows:
        tables = report.tables_for(rows, baseline=exp.baseline)
        if markdown:
            print(report.to_markdown(tables))
        else:
            for t in tables:
                out.print(render_table(t))


@app.command()
def calibrate(
    out_path: Optional[Path] = typer.Option(None, "--out", help="ceilings JSON (default ~/.cache/spmm-study/ceilings.json or $SPMM_STUDY_CEILINGS)"),
    gpu: Optional[bool] = typer.Option(None, "--gpu/--no-gpu", help="measure the GPU too (default: when one is present)"),
    tiny: bool = typer.Option(False, hidden=True, help="tiny sizes (tests): meaningless numbers"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Measure this machine's ceilings once (stream bandwidth, FMA peak; GPU copy and FMA) for rooflines."""
    from spmm_study import calibrate as cal

    with (err if as_json else out).status("measuring ceilings…"):
        entries = cal.calibrate(gpu=gpu, tiny=tiny)
    path = cal.save(entries, out_path)
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    t = Table(title=f"Ceilings stored in {path}", header_style="bold")
    for col in ("machine", "ceiling", "value"):
        t.add_column(col, justify="right" if col == "value" else "left")
    names = {"stream_gbps_1": ("triad bandwidth, 1 thread", "GB/s"),
             "stream_gbps_all": ("triad bandwidth, all threads", "GB/s"),
             "fma_gflops_fp32_1": ("fp32 FMA peak, 1 thread", "GFLOP/s"),
             "fma_gflops_fp32_all": ("fp32 FMA peak, all threads", "GFLOP/s"),
             "fma_gflops_fp64_1": ("fp64 FMA peak, 1 thread", "GFLOP/s"),
             "fma_gflops_fp64_all": ("fp64 FMA peak, all threads", "GFLOP/s"),
             "copy_gbps": ("GPU copy bandwidth", "GB/s"), "fma_gflops_fp32": ("GPU fp32 FMA peak", "GFLOP/s")}
    for e in entries:
        for key, (label, unit) in names.items():
            if key in e:
                t.add_row(e["machine"], label, f"{e[key]:,.1f} {unit}")
    out.print(t)


@app.command()
def autotune(
    variants: Optional[List[str]] = typer.Option(None, "--variants", "-v", help="comma-separated variants (default: every available variant of --device that has params)"),
    matrix: Optional[List[str]] = MatrixOpt,
    n: Optional[List[int]] = typer.Option(None, "--n", "-n", help="columns of B (repeatable; default 256)"),
    device: str = typer.Option("cpu", help="device for bare names and for the default variant set"),
    threads: Optional[int] = typer.Option(None, "--threads", "-t"),
    max_combos: int = typer.Option(64, "--max-combos", help="at most this many param combinations per variant"),
    repeats: int = typer.Option(5), min_time: float = typer.Option(0.05, "--min-time"),
    warmup: float = typer.Option(0.02), cache: str = typer.Option("cold"),
    dlmc_root: Optional[str] = DlmcRootOpt,
    cache_file: Optional[Path] = typer.Option(None, "--cache-file", help="tuning cache (default ~/.cache/spmm-study/tuned.json or $SPMM_STUDY_TUNED)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="result directory for every candidate measured"),
    resume: bool = typer.Option(False), force: bool = typer.Option(False),
):
    """Find the best Params per (variant, shape class) by measuring each Param's choices; 'run --tuned' uses them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from spmm_study import autotune as at
    from spmm_study import registry, runner
    from spmm_study.sources import DEFAULT_N, DEFAULT_SPEC

    if max_combos < 1:
        raise ParamError("--max-combos must be >= 1")
    ns = n or [DEFAULT_N]
    if any(x <= 0 for x in ns):
        raise ParamError(f"N must be positive, got {min(ns)}")
    if variants:
        chosen = [registry.get(v, device=device) for v in split_list(variants)]
        for v in chosen:
            if v.unavailable_reason():
                raise SpmmError(f"{v.id} is unavailable: {v.unavailable_reason()}")
    else:
        chosen = [v for v in registry.select(device=device) if v.params and v.unavailable_reason() is None]
    chosen = [v for v in chosen if v.params]
    if not chosen:
        raise ParamError("no variant with params to tune")
    specs = matrix or [DEFAULT_SPEC]
    ctx = runner.Context(dlmc_root=dlmc_root, timing=timing_config(repeats, min_time, warmup, cache))
    for spec in specs:
        ctx.matrix(spec, None, 0)
    tasks = [runner.Task(v, spec, nn, combo, "float32", 0, None, threads, "autotune=1")
             for spec in specs for nn in ns for v in chosen for combo in at.candidates(v, max_combos)]
    writer = make_writer("autotune", out_dir, force, resume)
    from spmm_study.experiment import pending

    todo = pending(tasks, ctx, writer)
    with Progress(TextColumn("[bold]autotune"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), TextColumn("{task.fields[last]}"), console=err) as progress:
        bar = progress.add_task("autotune", total=len(todo), last="")
        for res in runner.execute(todo, ctx, writer):
            progress.update(bar, advance=1, last=f"{res.variant} {json.loads(res.params)} {res.status}")
    rows = list(writer.rows)
    winners = at.best(rows)
    path = at.save(winners, cache_file)
    defaults = {}
    for r in rows:
        v = registry.load_all().get(r["variant"])
        if r["status"] == "PASS" and v and json.loads(r["params"]) == v.resolve_params({}):
            defaults[(r["machine"], r["variant"], at.shape_class(r["m"], r["k"], r["n"], r["sparsity"]))] = r
    t = Table(title=f"Best params per shape class (stored in {path})", header_style="bold")
    for col in ("variant", "shape class", "best params", "median", "defaults", "gain"):
        t.add_column(col, justify="right" if col in ("median", "defaults", "gain") else "left")
    for key, r in sorted(winners.items()):
        d = defaults.get(key)
        gain = f"{d['median_s'] / r['median_s']:.2f}×" if d else "-"
        t.add_row(key[1], key[2], json.dumps(json.loads(r["params"])), fmt_time(r["median_s"]),
                  fmt_time(d["median_s"]) if d else "-", gain)
    out.print(t)
    out.print(f"[dim]all candidates: {writer.dir}[/]")


@app.command("report")
def report_cmd(
    results: List[Path] = typer.Argument(..., help="result files or folders: rows.jsonl, results.csv, run directories"),
    baseline: Optional[str] = typer.Option(None, help="speedups against this variant id (default: each device's dense BLAS baseline)"),
    markdown: bool = typer.Option(False, "--markdown", help="print markdown tables on stdout (for the README)"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="write PNG plots into this folder"),
    kind: str = typer.Option("auto", "--kind", help="table kind: auto, ladder, compare, study, dlmc, break-even"),
    ceilings: Optional[Path] = typer.Option(None, "--ceilings", help="ceilings JSON from 'calibrate' for the roofline"),
    row_hist: Optional[List[str]] = typer.Option(None, "--row-hist", help="also plot the row-length histogram of this matrix spec"),
    dlmc_root: Optional[str] = DlmcRootOpt,
    save_rows: Optional[Path] = typer.Option(None, "--save-rows", help="also write the rows, rounds merged, to this CSV (small reference files)"),
):
    """Tables (rich or markdown) and PNG plots from result files only; several machines' files combine."""
    from spmm_study import report

    rows = report.load_rows(results)
    if save_rows is not None:
        from spmm_study.results import atomic_write_text, rows_to_csv

        if save_rows.suffix != ".csv":
            raise ParamError(f"--save-rows {save_rows}: the file must end in .csv")
        atomic_write_text(save_rows, rows_to_csv(report.merge_rounds(rows)))
        err.print(f"[dim]wrote {save_rows}[/]")
    from spmm_study import calibrate

    tables = report.tables_for(rows, kind=kind, baseline=baseline, ceilings=calibrate.load(ceilings))
    if markdown:
        print(report.to_markdown(tables))
    else:
        for t in tables:
            out.print(render_table(t))
    if plots is not None:
        written = report.plot_all(rows, plots, baseline=baseline, ceilings_path=ceilings,
                                  row_hist_specs=row_hist or [], dlmc_root=dlmc_root)
        for p in written:
            err.print(f"[dim]wrote {p}[/]")



# ----------------------------------------------------------------------------------------------- entry


_ARGV: list[str] | None = None


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the Typer app, turning every user mistake into one line and exit code 2."""
    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)  # recorded in meta.json as the command line
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
