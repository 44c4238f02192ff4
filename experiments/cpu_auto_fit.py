"""Fit the rule behind ``cpu.csr.auto`` on the layer-0 DLMC matrices (issue 12) and write it as a small module.

    python experiments/cpu_auto_fit.py [--matrices 40] [--reps 9] [--out spmm_study/cpu/_auto_rule.py]

For every layer-0 matrix of ``$SPMM_STUDY_DLMC`` (80 in the shared subset: transformer, magnitude pruning at
0.8/0.9/0.95/0.98 and random pruning at 0.9), every other matrix of each shape (512×512, 2048×512,
512×2048), sorted by path, is in the fitting set and the others are held out. Each candidate (rung, params) is timed on each matrix at each N of
``FIT_N``: one thread, warm caches, the least CPU time of ``reps`` calls (the machine is shared: the minimum is the
least disturbed call), every candidate of one (matrix, N) interleaved in one process, each result checked
against float64 once.

The rule is a table: N buckets (upper bounds at the midpoints between the fitted N), and per bucket the
candidate with the best geometric mean of (best time / candidate time) over the fitting matrices, optionally
split at a mean row length, a mean column length or K when that gains more than 3% on the fitting set. The held-out matrices give the
rule's score (geometric mean of best/chosen) and how often it picks the per-matrix best; both are written
into the module's docstring. Rebuild this file and commit it with the rule it produced.
"""

from __future__ import annotations

from spmm_study.pools import quiet_idle_pools

quiet_idle_pools()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

FIT_N = (16, 17, 32, 33, 49, 64, 65, 100, 128, 129, 196, 256, 257, 512, 1024, 2048, 4096)  # with tails: buckets end halfway
CANDIDATES = (
    ("cpu.csr.vec", {"max_vectors": 16}),
    ("cpu.csr.vec", {"max_vectors": 8}),
    ("cpu.csr.rowblock", {"rows": 0}),
    ("cpu.csr.rowblock", {"rows": 2}),
    ("cpu.csr.panel", {"max_vectors": 4}),
    ("cpu.csr.panel", {"max_vectors": 8}),
    ("cpu.csr.panel", {"max_vectors": 2}),
)


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        name = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except (OSError, subprocess.SubprocessError):
        name = ""
    return f"{name or platform.processor()} ({os.cpu_count()} cores)"


def layer0(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*layer_0*.smtx"))


def features(a) -> dict:
    lengths = a.row_lengths().astype(np.float64)
    mean = float(lengths.mean()) if lengths.size else 0.0
    return {"m": a.m, "k": a.k, "nnz": a.nnz, "row_mean": mean, "col_mean": a.nnz / a.k if a.k else 0.0,
            "row_cv": float(lengths.std() / mean) if mean > 0 else 0.0}


def time_min(prep, reps: int, threads: int = 1) -> float:
    """Least CPU time of the calling thread over ``reps`` calls at one thread (one-thread kernels run in it:
    on a shared machine the wall time of a call also holds other jobs' time slices, its CPU time does not);
    least wall time at more threads (the calling thread's CPU time would miss the others')."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    prep.run()
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        prep.run()
        best = min(best, clock() - t0)
    return best


def measure(paths, reps: int, threads: int = 1) -> list[dict]:
    import numba

    from spmm_study import registry, sources
    from spmm_study.harness import apply_threads
    from spmm_study.problem import Problem

    apply_threads(threads)
    numba.set_num_threads(threads)  # before the builds: the rungs partition the rows for this many threads
    rows = []
    for path in paths:
        a = sources.read_smtx(path)
        feats = features(a)
        for n in FIT_N:
            problem = Problem.make(a, n)
            times = {}
            for vid, params in CANDIDATES:
                v = registry.get(vid)
                prep = v.build(problem, **v.resolve_params(params))
                prep.poison()
                prep.run()
                if not problem.check(prep.fetch()).ok:
                    raise SystemExit(f"{vid} {params} FAILED on {path} N={n}")
                times[label(vid, params)] = time_min(prep, reps, threads)
            rows.append({"matrix": str(path), "n": n, **feats, "times": times})
            print(f"{path.parent.name}/{path.stem[:40]:40s} N={n:5d} " +
                  " ".join(f"{k}={t * 1e3:.3f}ms" for k, t in times.items()), flush=True)
    return rows


def read_raw(path: Path):
    """The rows an earlier run wrote with --raw, checked (a list of objects with the features and a dict of
    positive finite times, the same candidates in every row), or one line saying what is wrong."""
    from spmm_study.errors import SpmmError
    from spmm_study.safeio import read_text

    try:
        rows = json.loads(read_text(path, 64 << 20, what="raw timing file"))
    except (SpmmError, OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{path}: not a raw timing file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    need = ("matrix", "n", "m", "k", "nnz", "row_mean", "times")
    if not isinstance(rows, list) or not rows:
        return f"{path}: expected a non-empty JSON list of rows"
    labels = None
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or any(key not in r for key in need) or not isinstance(r["times"], dict):
            return f"{path}: row {i} lacks one of {', '.join(need)}"
        ok = all(isinstance(t, (int, float)) and 0 < t < float("inf") for t in r["times"].values())
        if not ok or not r["times"] or (labels is not None and set(r["times"]) != labels):
            return f"{path}: row {i} has missing, non-positive or different candidate times"
        labels = set(r["times"])
        if not all(isinstance(r[key], (int, float)) for key in ("n", "m", "k", "nnz", "row_mean")):
            return f"{path}: row {i} has a non-numeric feature"
        r.setdefault("col_mean", r["nnz"] / r["k"] if r["k"] else 0.0)
    return rows


def split_by_shape(rows) -> set[str]:
    """The fitting set: within each shape (M × K), sorted by path, every other matrix. (Alternating over all
    paths put every 512×2048 ffn_conv2 matrix in the held-out half, next to its ffn_conv1 sibling.)"""
    shapes: dict[tuple, list[str]] = {}
    for r in rows:
        names = shapes.setdefault((r["m"], r["k"]), [])
        if r["matrix"] not in names:
            names.append(r["matrix"])
    return {name for names in shapes.values() for name in sorted(names)[0::2]}


def label(vid: str, params: dict) -> str:
    return vid.split(".")[-1] + "".join(f" {k}={v}" for k, v in params.items())


def score(rows, pick) -> tuple[float, float]:
    """(geometric mean of best/chosen, fraction where the chosen is the best)."""
    ratios, hits = [], 0
    for r in rows:
        best = min(r["times"].values())
        chosen = r["times"][pick(r)]
        ratios.append(best / chosen)
        hits += chosen == best
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else 1.0, hits / max(len(rows), 1)


from spmm_study.cpu.k16_csr_auto import SPLIT_FEATURES as FEATURES  # noqa: E402


def ranking(rows, labels) -> list[str]:
    """Every candidate by its geometric mean of best/candidate over ``rows``, best first: ``auto``'s inspector
    times the best-ranked one of each rung (``k16_csr_auto.ranked``)."""
    return sorted(labels, key=lambda lb: -score(rows, lambda r: lb)[0])


def fit(rows) -> list[dict]:
    labels = list(rows[0]["times"])
    table = []
    fit_n = sorted({int(r["n"]) for r in rows})  # the N measured (FIT_N, unless raw timings of another run)
    bounds = [(fit_n[i] + fit_n[i + 1]) / 2 for i in range(len(fit_n) - 1)] + [float("inf")]
    lo = 0.0
    for n_fit, hi in zip(fit_n, bounds):
        sub = [r for r in rows if r["n"] == n_fit]
        best_label = max(labels, key=lambda lb: score(sub, lambda r: lb)[0])
        base = score(sub, lambda r: best_label)[0]
        entry = {"n_max": hi, "choice": best_label, "ranked": ranking(sub, labels)}
        # one optional split: on the mean row length (nonzeros per row of A) or on the mean column length
        # (nnz / K: how often a row of B is used, what a per-call copy of B is paid back by)
        best_split = None
        for feat in FEATURES:
            cuts = sorted({round(r[feat], 1) for r in sub})
            for cut in cuts[1:]:
                short = [r for r in sub if r[feat] < cut]
                long_ = [r for r in sub if r[feat] >= cut]
                ls = max(labels, key=lambda lb: score(short, lambda r: lb)[0])
                ll = max(labels, key=lambda lb: score(long_, lambda r: lb)[0])
                s = score(sub, lambda r: ls if r[feat] < cut else ll)[0]
                if s > base * 1.03 and (best_split is None or s > best_split[0]):
                    best_split = (s, feat, cut, ls, ll)
        if best_split:
            feat, cut = best_split[1], best_split[2]
            entry.update({f"{feat}_below": cut, "choice_short": best_split[3], "choice": best_split[4],
                          "ranked": ranking([r for r in sub if r[feat] >= cut], labels),
                          "ranked_short": ranking([r for r in sub if r[feat] < cut], labels)})
        table.append(entry)
        lo = hi
    del lo
    return table


def write_rule(table, fit_rows, held_rows, out: Path, meta: dict) -> None:
    from spmm_study.cpu._inspect import CANDIDATES
    from spmm_study.cpu.k16_csr_auto import pick_label, ranked

    fit_s, fit_hit = score(fit_rows, lambda r: pick_label(table, r))
    held_s, held_hit = score(held_rows, lambda r: pick_label(table, r))
    # auto with inspection: the fastest of the rule's top candidates (as timed here) is kept
    insp_s, insp_hit = score(held_rows, lambda r: min([lb for lb in ranked(table, r, CANDIDATES) if lb in r["times"]],
                                                      key=lambda lb: r["times"][lb]))
    always = {lb: score(held_rows, lambda r, lb=lb: lb)[0] for lb in held_rows[0]["times"]}
    threads = int(meta.get("threads", 1))
    who = "one thread, least CPU time" if threads == 1 else f"{threads} threads, least wall time"
    doc = (f'"""The rule ``cpu.csr.auto`` follows at {threads} thread{"s" if threads > 1 else ""}, written by '
           f"experiments/cpu_auto_fit.py — do not edit by hand.\n\n"
           f"Fitted {meta['date']} on {meta['machine']}, {who}, warm, min of {meta['reps']} calls, on "
           f"{meta['fit']} layer-0 DLMC matrices\n({meta.get('subset', '')}every other one of each shape, by path; N "
           f"{', '.join(str(n) for n in sorted({int(r['n']) for r in fit_rows}))}); held out: {meta['held']} (the others) "
           f"— whole matrices{' (' + meta['load'] + ')' if meta.get('load') else ''}.\n"
           f"Score = geometric mean over (matrix, N) of best candidate time / chosen candidate time:\n"
           f"fitting set {fit_s:.3f} (best picked {fit_hit:.0%}), held out {held_s:.3f} (best picked {held_hit:.0%});\n"
           f"held out with inspection (the fastest of the rule's top {CANDIDATES} kept): {insp_s:.3f} "
           f"(best picked {insp_hit:.0%});\n"
           f"always one candidate, held out: " + ", ".join(f"{k} {v:.3f}" for k, v in always.items()) + '.\n"""\n')
    body = "RULE = " + json.dumps(table, indent=4).replace("Infinity", 'float("inf")') + "\n"
    out.write_text(doc + "\n" + body)
    print(doc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrices", type=int, default=80, help="how many layer-0 matrices (sorted by path) to use")
    ap.add_argument("--stride", type=int, default=1, help="every S-th layer-0 matrix (sorted by path): a subset "
                    "that still spans every sparsity and shape")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1, help="fit the rule for this many threads")
    ap.add_argument("--out", default="", help="default: spmm_study/cpu/_auto_rule.py (1 thread), "
                    "_auto_rule_<T>t.py (T threads)")
    ap.add_argument("--raw", default="", help="also write the raw timings (JSON) here")
    ap.add_argument("--from-raw", default="", help="fit on the raw timings of an earlier run (no measuring)")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.reps < 1:
        print(f"--threads and --reps must be at least 1 (got {args.threads}, {args.reps})", file=sys.stderr)
        return 2
    if not args.out:
        args.out = "spmm_study/cpu/_auto_rule.py" if args.threads == 1 else f"spmm_study/cpu/_auto_rule_{args.threads}t.py"
    if args.from_raw:
        rows = read_raw(Path(args.from_raw))
        if isinstance(rows, str):
            print(rows, file=sys.stderr)
            return 2
        paths = sorted({Path(r["matrix"]) for r in rows})
        meta = {}
        if Path(args.from_raw + ".meta").exists():
            try:
                meta = json.loads(Path(args.from_raw + ".meta").read_text(encoding="utf-8"))
                assert isinstance(meta, dict)
            except (OSError, ValueError, AssertionError):
                print(f"{args.from_raw}.meta: not a JSON object (the run's date, machine, reps)", file=sys.stderr)
                return 2
    else:
        root = Path(os.environ.get("SPMM_STUDY_DLMC", "../shared/dlmc"))
        paths = layer0(root)[:: max(args.stride, 1)][: args.matrices]
        if not paths:
            print(f"no layer-0 matrices under {root}", file=sys.stderr)
            return 2
        rows = measure(paths, args.reps, args.threads)
        meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "reps": args.reps, "threads": args.threads,
                "subset": f"every {args.stride}th of {len(layer0(root))} by path, " if args.stride > 1 else "",
                "load": f"load average {os.getloadavg()[0]:.1f} at the end"}
    fit_paths = split_by_shape(rows)
    fit_rows = [r for r in rows if r["matrix"] in fit_paths]
    held_rows = [r for r in rows if r["matrix"] not in fit_paths]
    if args.raw:
        Path(args.raw).write_text(json.dumps(rows))
        Path(args.raw + ".meta").write_text(json.dumps(meta))
    table = fit(fit_rows)
    write_rule(table, fit_rows, held_rows or fit_rows, Path(args.out),
               {"date": "?", "machine": "?", "reps": "?", **meta,
                "fit": len(fit_paths), "held": len(paths) - len(fit_paths)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
