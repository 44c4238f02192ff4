"""Measure the CPU ladder and the speed ratios of docs/cpu.md (issue 3), interleaved, in one process.

    python experiments/cpu_ladder.py --threads 2 --rounds 5            # measure → results/cpu-ladder/<ts>/
    python experiments/cpu_ladder.py --render results/cpu-ladder/<ts> [--ratios DIR]
    python experiments/make_docs.py                                    # the tables of docs/cpu.md

Parts, all fp32, cold caches (the harness default), each row checked against float64:

* ``ladder``: every CPU rung (and some Param choices that carry a lesson) on DLMC transformer
  magnitude_pruning/0.9 body_decoder_layer_0_ffn_conv1 (2048×512, nnz 104 857), N = 256. The slow dense
  and bad-order rungs run once with two timed repeats; the fast ones in ``rounds`` interleaved rounds
  (A B C … A B C …), reported as the median of the round medians (``report.merge_rounds``).
* ``ratios``: the best CSR kernel (``cpu.csr.tiled``) against MKL, scipy and numpy dense at 90% and 98%,
  at 1 thread and at ``threads`` threads, interleaved rounds.
* ``nm24``: the 2:4 rung against CSR and the baselines on ``synthetic:nm:ffn1`` (2048×512 at 50%).

``--render`` writes the small reference tables data/reference/cpu-ladder.csv and cpu-ratios.csv and prints
the markdown; experiments/make_docs.py writes docs/cpu.md's tables from those files (the ladder table by
``spmm_study.report.ladder_tables``, the ratio table by ``ratio_markdown`` here).
"""

from __future__ import annotations

import os

# Idle thread pools must sleep, not spin: numba (GNU OpenMP), OpenBLAS (numpy) and MKL (Intel OpenMP) each
# keep spinning workers after a parallel call (Intel's default KMP_BLOCKTIME is 200 ms), and on 2 cores a
# spinning idle pool takes a core from the next variant: in one interleaved process every 2-thread kernel
# then took 6-10 ms (one scheduler time slice) instead of 0.5 ms (notes-cpu.md). Set before numpy loads.
from spmm_study.pools import quiet_idle_pools  # noqa: E402

quiet_idle_pools()

import argparse
import csv
import sys
import time
from pathlib import Path

M90 = "dlmc:transformer/magnitude_pruning/0.9/body_decoder_layer_0_ffn_conv1_fully_connected"
M98 = "dlmc:transformer/magnitude_pruning/0.98/body_decoder_layer_0_ffn_conv1_fully_connected"
NM = "synthetic:nm:ffn1"
N = 256
SLOW = [  # (variant, params): one round, two repeats — a dense rung takes 0.1–3 s per call here, codegen compiles 50 s
    ("cpu.dense.naive", {}),
    *[("cpu.dense.order", {"order": o}) for o in ("ijk", "ikj", "jik", "jki", "kij", "kji")],
    ("cpu.dense.tiled", {}),
    ("cpu.csr.dot", {}),
    ("cpu.csr.codegen", {}),  # 50 s of compilation per build at 90%: once
]
FAST = [
    ("cpu.dense.tiled_par", {}),
    ("cpu.csr.rowwise", {}),
    *[("cpu.csr.rowwise_par", {"balance": b}) for b in ("static", "nnz", "sorted", "dynamic")],
    *[("cpu.csr.tiled", {"tile_n": t}) for t in (16, 64, 128, 256)],
    *[("cpu.csr.tiled", {"balance": b}) for b in ("static", "sorted", "dynamic")],
    ("cpu.coo.scatter", {}),
    ("cpu.coo.par", {}),
    ("cpu.csc.outer", {}),
    ("cpu.sell.tiled", {}),
    ("cpu.sell.tiled", {"c": 32, "sigma": 1}),
    ("cpu.bsr.rowwise", {}),
    ("cpu.bsr.rowwise", {"br": 1, "bc": 4}),
    ("cpu.nm24.tiled", {}),
    ("cpu.dense.numpy", {}),
    ("cpu.csr.scipy", {}),
    ("cpu.csr.mkl", {}),
]
RATIO_VARIANTS = ("cpu.csr.tiled", "cpu.csr.mkl", "cpu.csr.scipy", "cpu.dense.numpy")
NM_VARIANTS = ("cpu.nm24.tiled", "cpu.csr.tiled", "cpu.csr.mkl", "cpu.dense.numpy")


def measure(args) -> Path:
    from spmm_study import registry, runner
    from spmm_study.environment import describe
    from spmm_study.results import ResultWriter
    from spmm_study.timing import TimingConfig

    out = Path(args.out or f"results/cpu-ladder/{time.strftime('%Y%m%d-%H%M%S')}")
    env = {k: os.environ.get(k) for k in ("KMP_BLOCKTIME", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    writer = ResultWriter(out, meta={"experiment": "cpu-ladder", "command": " ".join(sys.argv), "env": env,
                                     **describe()},
                          resume=args.resume)
    slow = TimingConfig(repeats=2, min_time_s=0.0, warmup_s=0.0)
    fast = TimingConfig(repeats=5, min_time_s=0.05, warmup_s=0.02)
    ctx = runner.Context(dlmc_root=args.dlmc_root)  # one context: each matrix is loaded once

    def task(vid, params, spec, threads, tags):
        v = registry.get(vid)
        return runner.Task(v, spec, N, tuple(sorted(params.items())), "float32", 0, None, threads, tags)

    def go(timing, tasks, label):
        ctx.timing = timing
        for i, res in enumerate(runner.execute(tasks, ctx, writer), 1):
            t = f"{res.median_s * 1e3:8.3f} ms" if res.status == "PASS" else res.status
            print(f"[{label} {i}/{len(tasks)}] {res.variant:22s} {res.params:40s} thr={res.threads} {t} "
                  f"{res.matrix.split('/')[-1][:40]}", flush=True)

    if "ladder" in args.parts:
        go(slow, [task(v, p, M90, args.threads, "part=ladder") for v, p in SLOW], "ladder/slow")
        go(fast, [task(v, p, M90, args.threads, f"part=ladder;round={r}") for r in range(args.rounds)
                  for v, p in FAST], "ladder")
    if "ratios" in args.parts:
        tasks = [task(v, {}, spec, thr, f"part=ratios;round={r}") for r in range(args.rounds)
                 for thr in dict.fromkeys((1, args.threads)) for spec in (M90, M98) for v in RATIO_VARIANTS]
        go(fast, tasks, "ratios")
    if "nm24" in args.parts:
        tasks = [task(v, {}, NM, args.threads, f"part=nm24;round={r}") for r in range(args.rounds) for v in NM_VARIANTS]
        go(fast, tasks, "nm24")
    print(f"results: {out}")
    return out


# ------------------------------------------------------------------------------------------- rendering


def _part(rows, name):
    from spmm_study.report import parse_tags

    return [r for r in rows if parse_tags(r["tags"]).get("part") == name]


def ratio_rows(rows) -> list[dict]:
    """Per (matrix, threads): median times of tiled/MKL/scipy/numpy and the ratios the issue asks for."""
    from spmm_study.report import merge_rounds

    merged = merge_rounds(_part(rows, "ratios"))
    out = []
    for key in sorted({(r["sparsity"], r["threads"]) for r in merged}):
        per = {r["variant"]: r for r in merged if (r["sparsity"], r["threads"]) == key}
        if not all(v in per and per[v]["status"] == "PASS" for v in ("cpu.csr.tiled", "cpu.csr.scipy", "cpu.dense.numpy")):
            continue
        best = per["cpu.csr.tiled"]
        row = {"matrix": best["matrix"].split(":", 1)[-1], "sparsity": round(best["sparsity"], 3), "n": best["n"],
               "threads": key[1], "tiled_ms": best["median_s"] * 1e3, "tiled_gflops": best["gflops"]}
        for vid, name in (("cpu.csr.mkl", "mkl"), ("cpu.csr.scipy", "scipy"), ("cpu.dense.numpy", "numpy")):
            r = per.get(vid)
            ok = r is not None and r["status"] == "PASS"
            row[f"{name}_ms"] = r["median_s"] * 1e3 if ok else float("nan")
            row[f"{name}_gflops"] = r["gflops"] if ok else float("nan")
            row[f"vs_{name}"] = r["median_s"] / best["median_s"] if ok else float("nan")
        row["rounds"] = best.get("rounds", 1)
        row["machine"] = best["machine"]
        row["date"] = str(best["timestamp"])[:10]
        out.append(row)
    return out


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in columns})


LADDER_COLUMNS = ["variant", "params", "threads", "status", "median_s", "p20_s", "p80_s", "gflops", "bytes_model",
                  "gbps_model", "speedup_vs_numpy", "rounds", "setup_s", "info", "message", "matrix", "m", "k", "n",
                  "nnz", "dtype", "cache", "machine", "timestamp"]
RATIO_COLUMNS = ["run", "matrix", "sparsity", "n", "threads", "tiled_ms", "tiled_gflops", "mkl_ms", "mkl_gflops", "scipy_ms",
                 "scipy_gflops", "numpy_ms", "numpy_gflops", "vs_mkl", "vs_scipy", "vs_numpy", "rounds", "machine", "date"]


def ratio_markdown(rows: list[dict]) -> str:
    head = ("| run | matrix | threads | cpu.csr.tiled | GFLOP/s | MKL | scipy | numpy dense | tiled vs MKL | vs scipy | vs dense |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    body = ""
    for r in rows:
        name = r["matrix"].split("/")[-3] + "/" + r["matrix"].split("/")[-2] if "/" in r["matrix"] else r["matrix"]
        body += (f"| {r['run']} ({r['rounds']} rounds) | ffn_conv1 {r['sparsity']:.2f} ({name}) | {r['threads']} | {r['tiled_ms']:.3f} ms | {r['tiled_gflops']:.0f} | "
                 f"{r['mkl_ms']:.3f} ms | {r['scipy_ms']:.3f} ms | {r['numpy_ms']:.3f} ms | {r['vs_mkl']:.1f}× | "
                 f"{r['vs_scipy']:.1f}× | {r['vs_numpy']:.1f}× |\n")
    return head + body


def render(args) -> str:
    from spmm_study.report import ladder_tables, load_rows, merge_rounds, speedups, to_markdown

    rows = load_rows([args.render])
    ratio_runs = {Path(args.render).name: rows}
    if args.ratios:  # the ratio and 2:4 parts from other runs (each one process, interleaved), one table row each
        ratio_runs = {Path(d).name: load_rows([d]) for d in args.ratios}
    ladder = _part(rows, "ladder")
    merged = speedups(merge_rounds(ladder), "cpu.dense.numpy")
    for r in merged:
        r["speedup_vs_numpy"] = r["speedup"]
        r.setdefault("rounds", 1)
    ref = Path(args.reference)
    write_csv(ref / "cpu-ladder.csv", merged, LADDER_COLUMNS)
    ratios = []
    for run, run_rows in ratio_runs.items():
        for r in ratio_rows(run_rows):
            ratios.append(dict(r, run=run))
    write_csv(ref / "cpu-ratios.csv", ratios, RATIO_COLUMNS)
    nm = _part(rows, "nm24") or _part(list(ratio_runs.values())[0], "nm24")
    if nm:
        nm_merged = speedups(merge_rounds(nm), "cpu.dense.numpy")
        for r in nm_merged:
            r["speedup_vs_numpy"] = r["speedup"]
            r.setdefault("rounds", 1)
        write_csv(ref / "cpu-nm24.csv", nm_merged, LADDER_COLUMNS)
    # report.ladder_tables prints a SKIP row's time as FAIL; a refusal is not a failure, so it is listed below
    skipped = {(r["variant"], r["message"]) for r in ladder if r["status"] == "SKIP"}
    md = [to_markdown(ladder_tables([r for r in ladder if r["status"] != "SKIP"], "cpu.dense.numpy"))]
    md += [f"`{vid}`: SKIP — {msg}\n" for vid, msg in sorted(skipped)]
    md.append(f"Best CSR kernel against the vendor libraries, DLMC transformer ffn_conv1 at 90% and 98%, N = 256; "
              f"each run one process, interleaved rounds, median of the round medians "
              f"({ratios[0]['machine'] if ratios else ''}, {ratios[0]['date'] if ratios else ''}):\n")
    md.append(ratio_markdown(ratios))
    if nm:
        md.append(to_markdown(ladder_tables(nm, "cpu.dense.numpy")))
    text = "\n".join(md)
    if args.readme:
        readme = Path(args.readme)
        src = readme.read_text()
        start, end = "<!-- cpu-ladder:start -->", "<!-- cpu-ladder:end -->"
        if start not in src or end not in src:
            raise SystemExit(f"{readme} has no {start} … {end} markers")
        before, rest = src.split(start, 1)
        _, after = rest.split(end, 1)
        readme.write_text(f"{before}{start}\n{text}\n{end}{after}")
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--parts", default="ladder,ratios,nm24")
    ap.add_argument("--dlmc-root", default="/work/shared/dlmc")
    ap.add_argument("--out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--render", help="render this result directory instead of measuring")
    ap.add_argument("--ratios", nargs="+", help="take the ratios (and, from the first, the nm24) part from these "
                    "result directories instead, one table row per run")
    ap.add_argument("--reference", default="data/reference")
    ap.add_argument("--readme")
    args = ap.parse_args()
    if args.render:
        print(render(args))
    else:
        measure(args)


if __name__ == "__main__":
    main()
