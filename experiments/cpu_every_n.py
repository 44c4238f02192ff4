"""The CPU kernel at every N (issues 12 and 24): ``auto`` and the new rungs against the vendor libraries, one process.

    python experiments/cpu_every_n.py [--rounds 3] [--repeats 3] [--out results/cpu-every-n/<ts>]   # measure
    python experiments/cpu_every_n.py --render results/cpu-every-n/<ts> [--readme docs/cpu.md]

The run of data/reference/cpu-every-n-heldout.csv: ``--parts main,heldout,sweep,threads --rounds 3 --repeats 3
--sweep-n 16,32,49,63,64,65,100,128,196,255,256,257,512,1024,2048,4096``, 4 min 20 s of wall time, 47 s of
CPU, on the shared 2-core AMD EPYC guest (2026-12-07).

Parts (fp32, one thread unless said, warm caches — B, A and C stay in cache between calls, as in a layer run
over a batch; every row checked against float64 by the harness):

* ``sweep``: DLMC transformer magnitude_pruning/0.9 body_decoder_layer_0_ffn_conv1 (2048×512, nnz 104 857),
  N from 16 to 4096 (the targets' N plus the tails 255/257 and others), variants ``SWEEP`` interleaved:
  everything built and checked first, then each of ``rounds`` rounds times every variant at every N (so a
  tail and its multiple of 64 are measured under the same conditions). GFLOP/s = useful flops / the least
  disturbed call (minimum over all timed calls of all rounds: the machine is shared with other jobs, whose
  time slices only ever add time); the spread (median / min) is kept in the CSV.
* ``threads``: ``cpu.csr.auto`` at 1 and 2 threads, same matrix, N in ``THREAD_N``; efficiency t1 / (2·t2).
* ``overhead``: what a parallel call costs beyond its work: an empty 2-part ``prange`` kernel at 1 and 2
  threads, and the partition ``cpu.csr.vec`` builds once per matrix (what it would add per call if it were
  done per call, as before rung 13).

* ``heldout`` (issue 24's targets): the layer-0 matrices of ``$SPMM_STUDY_DLMC`` that the rule behind
  ``cpu.csr.auto`` was *not* fitted on (``--stride S``: the fit's subset, every S-th matrix by path; the
  fit's own split by shape says which are held out, whole matrices), at every N of ``HELD_N``, ``auto`` with
  its inspection (a fresh inspection cache in the output folder, so every (matrix, N) is inspected once in
  this run and its time, ``inspect_s``, is reported apart) against ``HELD_VARIANTS``; per matrix everything
  is built and checked, then ``rounds`` interleaved rounds of ``repeats`` calls each; least CPU time of the
  calling thread, one thread.
* ``tiles``: ``cpu.csr.tiled`` at its default tile (from N and the L2) against each fixed width on
  ``TILE_PROBLEMS`` (data/reference/cpu-tiled-tiles.csv).
* ``main``: the README's main job (``run --variant tiled`` at its defaults: the embedded synthetic FFN weight,
  N = 256, cold caches) against MKL and MKL-opt, interleaved: least CPU time at one thread, least wall time
  at all cores.

``--render`` writes data/reference/cpu-every-n-heldout.csv (one row per matrix × N × variant of the sweep and
the held-out set, each with its machine and date), data/reference/cpu-tiled-main.csv (the main part),
docs/cpu-every-n-epyc.png (GFLOP/s against N of the sweep) and the markdown block between the
``cpu-every-n-heldout`` markers of ``--readme`` (docs/cpu.md). data/reference/cpu-every-n.csv is the sweep of
2026-12-02 on the Intel Xeon guest (issue 12; rung 17's docstring quotes it), rendered by experiments/make_docs.py.
"""

from __future__ import annotations

from spmm_study.pools import quiet_idle_pools

quiet_idle_pools()

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

MATRIX = "dlmc:transformer/magnitude_pruning/0.9/body_decoder_layer_0_ffn_conv1_fully_connected"
TARGET_N = (32, 49, 64, 100, 128, 196, 256, 512, 784, 1024, 2048, 3136)
SWEEP_N = tuple(sorted(set(TARGET_N) | {16, 17, 24, 31, 33, 40, 48, 56, 63, 65, 80, 112, 160, 224, 255, 257, 300,
                                          384, 640, 1000, 1536, 4000, 4096}))
SWEEP = (
    ("cpu.csr.auto", {}),
    ("cpu.csr.vec", {}),
    ("cpu.csr.rowblock", {}),
    ("cpu.csr.panel", {}),
    ("cpu.csr.tiled", {}),
    ("cpu.csr.mkl", {}),
    ("cpu.csr.mkl_opt", {}),
    ("cpu.csr.scipy", {}),
    ("cpu.csr.spregtiling", {}),
)
THREAD_N = (32, 64, 128, 256, 512, 1024)
HELD_N = (16, 32, 49, 64, 100, 128, 196, 256, 512, 1024, 2048, 4096)  # issue 24's target N
HELD_VARIANTS = ("cpu.csr.auto", "cpu.csr.mkl", "cpu.csr.mkl_opt", "cpu.csr.scipy", "cpu.csr.spregtiling")
MAIN_SPEC, MAIN_N = "synthetic:magnitude:ffn1:0.9", 256  # the README's main job
MAIN_VARIANTS = ("cpu.csr.tiled", "cpu.csr.mkl", "cpu.csr.mkl_opt")
def fma_peak() -> tuple[float, str]:
    """The nominal one-core fp32 FMA peak of this machine (GFLOP/s) and how it was reckoned: the clock /proc/cpuinfo
    reports × fp32 flops per cycle (AMD family 25, Zen 4: two 256-bit FMA pipes, 32; another AVX-512 CPU: two
    512-bit ports, 64; else two 256-bit ports, 32). Nominal: a VM's reported clock is not its boost clock."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return float("nan"), "unknown clock"
    get = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip() for ln in info.splitlines()[:30] if ":" in ln}
    mhz = float(get.get("cpu MHz", "nan"))
    amd_zen4 = get.get("vendor_id") == "AuthenticAMD" and get.get("cpu family") == "25"
    per_cycle = 32 if amd_zen4 or "avx512f" not in get.get("flags", "") else 64
    return mhz * per_cycle / 1e3, f"{mhz / 1e3:.2f} GHz × {per_cycle} fp32 flops per cycle"


FMA_PEAK_GFLOPS, FMA_PEAK_HOW = fma_peak()
CSV_FIELDS = ("n", "variant", "params", "status", "min_ms", "median_ms", "gflops", "spread", "info")
HELD_FIELDS = ("matrix", "n", "variant", "threads", "status", "min_ms", "median_ms", "gflops", "spread", "inspect_s",
               "auto_choice", "auto_rule_choice")
# min_ms: least wall time; median_ms (name kept for the reader): least CPU time of the calling thread, which
# gflops is computed from; spread: wall / CPU (how much other jobs added to the best call)


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown CPU"
    get = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip() for ln in out.splitlines() if ":" in ln}
    return f"{get.get('Model name', '?')}, {get.get('CPU(s)', '?')} cores (KVM guest, shared), L2 {get.get('L2 cache', '?')}"


def timing(repeats: int):
    from spmm_study.harness import HarnessConfig
    from spmm_study.timing import TimingConfig

    return lambda threads: HarnessConfig(TimingConfig(repeats=repeats, min_time_s=0.02, warmup_s=0.02, cache="warm"),
                                         threads=threads)


def timed(prep, calls: int) -> tuple[float, float]:
    """(min wall time, min CPU time of this thread) over ``calls`` back-to-back calls. On a machine shared with
    other jobs a call longer than a scheduler slice is almost never run uninterrupted, so the wall minimum
    of a 10 ms kernel still holds other jobs' slices; the calling thread's CPU time does not (it stops while
    the thread is descheduled). One-thread kernels run in the calling thread, so CPU time is their run time
    (caches shared with the other jobs still cost what they cost)."""
    wall = cpu = float("inf")
    for _ in range(calls):
        c0, t0 = time.thread_time(), time.perf_counter()
        prep.run()
        t1, c1 = time.perf_counter(), time.thread_time()
        wall, cpu = min(wall, t1 - t0), min(cpu, c1 - c0)
    return wall, cpu


def sweep(args, out: Path) -> None:
    """Every (N, variant) is built and checked first; then each round times every variant at every N, so an N
    and the multiple of 64 it is compared with are measured minutes apart at most, not a whole sweep apart."""
    import numba

    from spmm_study import registry, sources
    from spmm_study.harness import apply_threads
    from spmm_study.problem import Problem

    apply_threads(1)
    numba.set_num_threads(1)
    a = sources.load(MATRIX).a
    ns = args.sweep_n or args.n or SWEEP_N
    problems, preps, status, info, best = {}, {}, {}, {}, {}
    for n in ns:
        problem = problems[n] = Problem.make(a, n, matrix=MATRIX)
        for vid, params in SWEEP:
            v = registry.get(vid)
            if v.unavailable_reason():
                status[n, vid] = "UNAVAILABLE"
                continue
            prep = v.build(problem, **v.resolve_params(params))
            prep.poison()
            prep.run()
            chk = problem.check(np.asarray(prep.fetch()))
            status[n, vid] = "PASS" if chk.ok else "FAIL"
            info[n, vid] = json.dumps(prep.info, default=str)
            if chk.ok:
                preps[n, vid] = prep
        print(f"built N={n}", flush=True)
    for rnd in range(args.rounds):  # interleaved: every variant at every N once per round
        for (n, vid), prep in preps.items():
            w, c = timed(prep, args.repeats)
            bw, bc = best.get((n, vid), (float("inf"), float("inf")))
            best[n, vid] = (min(bw, w), min(bc, c))
        print(f"round {rnd + 1} of {args.rounds} done", flush=True)
    rows = []
    for n in ns:
        for vid, _ in SWEEP:
            prep = preps.get((n, vid))
            if prep is not None:  # still right after all the timed calls
                if not problems[n].check(np.asarray(prep.fetch())).ok:
                    status[n, vid] = "FAIL"
                prep.release()
            row = {"n": n, "variant": vid, "params": "", "status": status.get((n, vid), "?"),
                   "info": info.get((n, vid), "")}
            if (n, vid) in best and status[n, vid] == "PASS":
                w, c = best[n, vid]
                row.update(min_ms=round(w * 1e3, 5), median_ms=round(c * 1e3, 5),
                           gflops=round(2 * a.nnz * n / c / 1e9, 2), spread=round(w / c, 3))
            rows.append(row)
        print(f"N={n:5d} " + " ".join(f"{r['variant'].split('.')[-1]}={r.get('gflops', r['status'])}"
                                      for r in rows[-len(SWEEP):]), flush=True)
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)


def threads_part(args, out: Path) -> None:
    from spmm_study import registry, sources
    from spmm_study.harness import measure
    from spmm_study.problem import Problem

    a = sources.load(MATRIX).a
    cfg = timing(args.repeats)
    v = registry.get("cpu.csr.auto")
    rows = []
    for n in THREAD_N:
        problem = Problem.make(a, n, matrix=MATRIX)
        t = {1: [], 2: []}
        for _ in range(args.rounds):
            for th in (1, 2):
                r = measure(v, problem, {}, cfg(th))
                if r.status == "PASS":
                    t[th].append(r.min_s)
        if t[1] and t[2]:
            t1, t2 = min(t[1]), min(t[2])
            rows.append({"n": n, "t1_ms": round(t1 * 1e3, 4), "t2_ms": round(t2 * 1e3, 4),
                         "efficiency": round(t1 / (2 * t2), 3)})
            print("threads", rows[-1], flush=True)
    (out / "threads.json").write_text(json.dumps(rows, indent=1))


def overhead_part(args, out: Path) -> None:
    import numba
    from numba import njit, prange

    from spmm_study import sources
    from spmm_study.cpu.balance import partition

    @njit(parallel=True)
    def empty(parts):
        for t in prange(parts.size):
            parts[t] += 1.0

    parts = np.zeros(2)
    res = {}
    for th in (1, 2):
        numba.set_num_threads(th)
        empty(parts)
        ts = []
        for _ in range(2000):
            t0 = time.perf_counter()
            empty(parts)
            ts.append(time.perf_counter() - t0)
        res[f"empty_prange_{th}t_us"] = {"min": round(min(ts) * 1e6, 2), "median": round(float(np.median(ts)) * 1e6, 2)}
    a = sources.load(MATRIX).a
    ts = []
    for _ in range(200):
        t0 = time.perf_counter()
        partition(a.row_lengths(), 2, "nnz")
        ts.append(time.perf_counter() - t0)
    res["partition_nnz_2_us"] = {"min": round(min(ts) * 1e6, 2), "median": round(float(np.median(ts)) * 1e6, 2)}
    res["env"] = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    res["threading_layer"] = numba.threading_layer()
    print("overhead", res, flush=True)
    (out / "overhead.json").write_text(json.dumps(res, indent=1))


def heldout_paths(root: Path, stride: int) -> list[Path]:
    """The layer-0 matrices of the fit's subset (every ``stride``-th by path) that its split by shape held out."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cpu_auto_fit

    from spmm_study import sources

    paths = cpu_auto_fit.layer0(root)[::max(stride, 1)]
    rows = []
    for p in paths:
        a = sources.read_smtx(p)
        rows.append({"matrix": str(p), "m": a.m, "k": a.k})
    fitted = cpu_auto_fit.split_by_shape(rows)
    return [p for p in paths if str(p) not in fitted]


def heldout_part(args, out: Path, threads: int = 1) -> None:
    """Per held-out matrix: build and check every (N, variant) (auto inspects here, once per (matrix, N), into
    a fresh cache), then ``rounds`` rounds of ``repeats`` calls of each, interleaved; release; next matrix.

    At one thread the clock is the calling thread's CPU time (``median_ms``; other jobs' slices do not count);
    at more threads the work is in numba's and MKL's pool threads, which the calling thread's CPU time does not
    see, so ``median_ms`` is the least wall time there too (the machine must be quiet: the load is recorded)."""
    import numba

    from spmm_study import registry, sources
    from spmm_study.harness import apply_threads
    from spmm_study.problem import Problem

    apply_threads(threads)
    numba.set_num_threads(threads)
    root = Path(os.environ.get("SPMM_STUDY_DLMC", "../shared/dlmc"))
    paths = heldout_paths(root, args.stride)[: args.matrices or None]
    ns = args.n or HELD_N
    rows = []
    for path in paths:
        a = sources.read_smtx(path)
        name = f"{path.parent.parent.name}/{path.parent.name}/{path.stem}"
        preps, status, info, best = {}, {}, {}, {}
        for n in ns:
            problem = Problem.make(a, n)
            for vid in HELD_VARIANTS:
                v = registry.get(vid)
                if v.unavailable_reason():
                    status[n, vid] = "UNAVAILABLE"
                    continue
                prep = v.build(problem, **v.resolve_params({}))
                prep.poison()
                prep.run()
                ok = problem.check(np.asarray(prep.fetch())).ok
                status[n, vid] = "PASS" if ok else "FAIL"
                info[n, vid] = dict(prep.info)
                if ok:
                    preps[n, vid] = (prep, problem)
        for _ in range(args.rounds):
            for key, (prep, _) in preps.items():
                w, c = timed(prep, args.repeats)
                c = c if threads == 1 else w
                bw, bc = best.get(key, (float("inf"), float("inf")))
                best[key] = (min(bw, w), min(bc, c))
        for (n, vid) in status:
            row = {"matrix": name, "n": n, "variant": vid, "threads": threads, "status": status[n, vid]}
            if (n, vid) in preps:
                prep, problem = preps[n, vid]
                if not problem.check(np.asarray(prep.fetch())).ok:  # still right after the timed calls
                    row["status"] = "FAIL"
                prep.release()
            if (n, vid) in best and row["status"] == "PASS":
                w, c = best[n, vid]
                row.update(min_ms=round(w * 1e3, 5), median_ms=round(c * 1e3, 5),
                           gflops=round(2 * a.nnz * n / c / 1e9, 2), spread=round(w / c, 3))
            inf = info.get((n, vid), {})
            row.update(inspect_s=inf.get("inspect_s", ""), auto_choice=inf.get("auto_choice", ""),
                       auto_rule_choice=inf.get("auto_rule_choice", ""))
            rows.append(row)
        del preps
        print(f"{name}: " + " ".join(f"N={r['n']}:{r['variant'].split('.')[-1]}={r.get('gflops', r['status'])}"
                                     for r in rows if r["matrix"] == name and r["variant"] == "cpu.csr.auto"), flush=True)
    apply_threads(1)
    numba.set_num_threads(1)
    with open(out / ("heldout.csv" if threads == 1 else f"heldout-{threads}t.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HELD_FIELDS)
        w.writeheader()
        w.writerows(rows)


def main_part(args, out: Path) -> None:
    """The README's main job: tiled at its defaults against MKL and MKL-opt, cold caches (as ``run`` times it),
    interleaved rounds; one thread (least CPU time of the calling thread) and all cores (least wall time)."""
    import numba

    from spmm_study import registry, sources
    from spmm_study.environment import cores
    from spmm_study.harness import apply_threads
    from spmm_study.problem import Problem
    from spmm_study.timing import flush_cpu_caches

    problem = Problem.make(sources.load(MAIN_SPEC).a, MAIN_N, matrix=MAIN_SPEC)
    rows = []
    for threads in sorted({1, cores()}):
        apply_threads(threads)
        numba.set_num_threads(threads)
        preps, best = {}, {}
        for vid in MAIN_VARIANTS:
            v = registry.get(vid)
            if v.unavailable_reason():
                continue
            prep = v.build(problem, **v.resolve_params({}))
            prep.poison()
            prep.run()
            if problem.check(np.asarray(prep.fetch())).ok:
                preps[vid] = prep
        for _ in range(args.rounds * 3):
            for vid, prep in preps.items():
                for _ in range(args.repeats):
                    flush_cpu_caches()
                    c0, t0 = time.thread_time(), time.perf_counter()
                    prep.run()
                    t1, c1 = time.perf_counter(), time.thread_time()
                    t = (c1 - c0) if threads == 1 else (t1 - t0)
                    best[vid] = min(best.get(vid, float("inf")), t)
        for vid, prep in preps.items():
            rows.append({"matrix": MAIN_SPEC, "n": MAIN_N, "threads": threads, "variant": vid,
                         "params": " ".join(f"{k}={v}" for k, v in sorted(prep.info.items()) if k == "tile_n"),
                         "best_ms": round(best[vid] * 1e3, 5),
                         "clock": "thread CPU time" if threads == 1 else "wall time",
                         "gflops": round(2 * problem.a.nnz * MAIN_N / best[vid] / 1e9, 2)})
            prep.release()
        print("main", [(r["variant"], r["threads"], r["best_ms"]) for r in rows if r["threads"] == threads], flush=True)
    apply_threads(1)
    numba.set_num_threads(1)
    (out / "main.json").write_text(json.dumps(rows, indent=1))


TILE_PROBLEMS = (("synthetic:magnitude:ffn1:0.9", 100), ("synthetic:magnitude:ffn1:0.9", 256),
                 ("synthetic:magnitude:ffn2:0.9", 256), ("synthetic:magnitude:ffn2:0.9", 1024))


def tiles_part(args, out: Path) -> None:
    """``cpu.csr.tiled`` at its default (tile_n = 0: from N and the L2) against each fixed tile width, one thread,
    warm, interleaved rounds, least CPU time of the calling thread: does the machine's choice hold?"""
    import numba

    from spmm_study import registry, sources
    from spmm_study.harness import apply_threads
    from spmm_study.problem import Problem

    apply_threads(1)
    numba.set_num_threads(1)
    v = registry.get("cpu.csr.tiled")
    preps, best, rows = {}, {}, []
    for spec, n in TILE_PROBLEMS:
        problem = Problem.make(sources.load(spec).a, n, matrix=spec)
        for tile in (0, 64, 128, 256):
            prep = v.build(problem, **v.resolve_params({"tile_n": tile}))
            prep.poison()
            prep.run()
            if problem.check(np.asarray(prep.fetch())).ok:
                preps[spec, n, tile] = (prep, prep.info["tile_n"], problem)
    for _ in range(args.rounds * 2):
        for key, (prep, _, _) in preps.items():
            best[key] = min(best.get(key, float("inf")), timed(prep, args.repeats)[1])
    for (spec, n, tile), (prep, used, problem) in preps.items():
        rows.append({"matrix": spec, "m": problem.m, "k": problem.k, "n": n, "tile_n": tile, "tile_n_used": used,
                     "best_ms": round(best[spec, n, tile] * 1e3, 5),
                     "gflops": round(2 * problem.a.nnz * n / best[spec, n, tile] / 1e9, 2)})
        prep.release()
    print("tiles", [(r["matrix"][-8:], r["n"], r["tile_n"], r["tile_n_used"], r["best_ms"]) for r in rows], flush=True)
    (out / "tiles.json").write_text(json.dumps(rows, indent=1))


def measure_all(args) -> Path:
    out = Path(args.out or f"results/cpu-every-n/{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=False)
    import numba

    os.environ["SPMM_STUDY_AUTO_CACHE"] = str(out / "auto-inspect.json")  # auto inspects afresh, in this run
    meta = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join(sys.argv), "numba": numba.__version__, "rounds": args.rounds,
            "repeats": args.repeats, "loadavg_start": os.getloadavg()}
    parts = args.parts.split(",")
    if "overhead" in parts:
        overhead_part(args, out)
    if "main" in parts:
        main_part(args, out)
    if "tiles" in parts:
        tiles_part(args, out)
    if "heldout" in parts:
        heldout_part(args, out)
    if "heldout2t" in parts:
        heldout_part(args, out, threads=2)
    if "sweep" in parts:
        sweep(args, out)
    if "threads" in parts:
        threads_part(args, out)
    meta["loadavg_end"] = os.getloadavg()
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {out}")
    return out


REF_FIELDS = ("matrix", "n", "variant", "threads", "params", "status", "min_ms", "median_ms", "gflops", "spread", "inspect_s",
              "auto_choice", "auto_rule_choice", "machine", "date", "rounds", "repeats", "load")
REFERENCE = Path("data/reference/cpu-every-n-heldout.csv")
PLOT = Path("docs/cpu-every-n-epyc.png")
MARKERS = ("<!-- cpu-every-n-heldout:start -->", "<!-- cpu-every-n-heldout:end -->")


def render(args) -> None:
    """Results folder → data/reference/cpu-every-n-heldout.csv (+ cpu-tiled-main.csv, the plot), then the
    markdown block from that reference file alone (``reference_markdown``: what a docs generator calls)."""
    src = Path(args.render)
    meta = json.loads((src / "meta.json").read_text())
    rows = list(csv.DictReader(open(src / "sweep.csv"))) if (src / "sweep.csv").exists() else []
    held = [row for f in ("heldout.csv", "heldout-2t.csv") if (src / f).exists()
            for row in csv.DictReader(open(src / f))]
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    load = f"{meta['loadavg_start'][0]:.1f}-{meta['loadavg_end'][0]:.1f}"
    stamp = {"machine": meta["machine"], "date": meta["date"], "rounds": meta["rounds"], "repeats": meta["repeats"],
             "load": load}
    if rows or held:  # a run of other parts leaves the every-N reference as it is
        write_reference(rows, held, stamp)
    _write_side_files(src, meta, load)
    if rows:
        variants = [v for v, _ in SWEEP if any(r["variant"] == v and r.get("gflops") for r in rows)]
        g = {(int(r["n"]), r["variant"]): float(r["gflops"]) for r in rows if r.get("gflops")}
        plot(sorted({int(r["n"]) for r in rows}), variants, g, meta, PLOT)
    image = os.path.relpath(PLOT, Path(args.readme).parent) if args.readme else str(PLOT)
    md = reference_markdown(REFERENCE, src, image)
    if args.readme:
        text = Path(args.readme).read_text()
        start, end = MARKERS
        if start not in text:
            raise SystemExit(f"{args.readme} has no {start} marker")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        Path(args.readme).write_text(head + start + "\n" + md + "\n" + end + tail)
    else:
        print(md)


def write_reference(rows, held, stamp) -> None:
    with open(REFERENCE, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=REF_FIELDS)
        w.writeheader()
        for r in rows:
            inf = json.loads(r["info"]) if r["variant"] == "cpu.csr.auto" and r["info"] else {}
            w.writerow({**{k: r.get(k, "") for k in CSV_FIELDS if k != "info"}, "matrix": MATRIX.split(":", 1)[1], "threads": 1,
                        "inspect_s": inf.get("inspect_s", ""), "auto_choice": inf.get("auto_choice", ""),
                        "auto_rule_choice": inf.get("auto_rule_choice", ""), **stamp})
        for r in held:
            w.writerow({**{k: r.get(k, "") for k in REF_FIELDS}, **stamp})


def _write_side_files(src: Path, meta: dict, load: str) -> None:
    """The main and tiles parts' reference files, where the run has them."""
    if (src / "main.json").exists():
        main_rows = json.loads((src / "main.json").read_text())
        with open(REFERENCE.parent / "cpu-tiled-main.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[*main_rows[0], "vs_mkl", "vs_mkl_opt", "machine", "date", "load"])
            w.writeheader()
            for r in main_rows:
                base = {b["variant"]: b["best_ms"] for b in main_rows if b["threads"] == r["threads"]}
                w.writerow({**r, "vs_mkl": round(base["cpu.csr.mkl"] / r["best_ms"], 3) if "cpu.csr.mkl" in base else "",
                            "vs_mkl_opt": round(base["cpu.csr.mkl_opt"] / r["best_ms"], 3) if "cpu.csr.mkl_opt" in base else "",
                            "machine": meta["machine"], "date": meta["date"], "load": load})
    if (src / "tiles.json").exists():
        tile_rows = json.loads((src / "tiles.json").read_text())
        with open(REFERENCE.parent / "cpu-tiled-tiles.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[*tile_rows[0], "clock", "machine", "date", "load"])
            w.writeheader()
            for r in tile_rows:
                w.writerow({**r, "clock": "thread CPU time, 1 thread, warm", "machine": meta["machine"],
                            "date": meta["date"], "load": load})


def reference_markdown(ref: Path = REFERENCE, src: Path | None = None, image: str = PLOT.name) -> str:
    """The docs block from the reference file alone: the held-out table (issue 24's targets), then the sweep on
    ffn_conv1; ``src`` (the results folder) adds the two-thread and overhead lines where it still exists."""
    rows = list(csv.DictReader(open(ref, newline="")))
    if not rows:
        return ""
    r0 = rows[0]
    lo, _, hi = r0.get("load", "").partition("-")
    meta = {"machine": r0["machine"], "date": r0["date"], "rounds": r0.get("rounds", "?"),
            "repeats": r0.get("repeats", "?"), "loadavg_start": [float(lo or "nan")], "loadavg_end": [float(hi or "nan")]}
    sweep_name = MATRIX.split(":", 1)[1]
    sweep = [r for r in rows if r["matrix"] == sweep_name]
    held = [r for r in rows if r["matrix"] != sweep_name and r.get("threads", "1") in ("", "1")]
    held2 = [r for r in rows if r["matrix"] != sweep_name and r.get("threads", "1") == "2"]
    md = heldout_markdown(held, meta) if held else ""
    if held2:
        md += ("\n\n" if md else "") + heldout_markdown(held2, meta, threads=2, one_thread=held)
    if sweep:
        variants = [v for v, _ in SWEEP if any(r["variant"] == v and r.get("gflops") for r in sweep)]
        g = {(int(r["n"]), r["variant"]): float(r["gflops"]) for r in sweep if r.get("gflops")}
        ns = sorted({int(r["n"]) for r in sweep})
        md += ("\n\n" if md else "") + markdown(ns, variants, g, sweep, meta, src, image)
    return md


def _gm(xs) -> float:
    return float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")


def heldout_markdown(held, meta, threads: int = 1, one_thread=()) -> str:
    """Per N: auto's GFLOP/s (geometric mean over the held-out matrices) and its ratio to each baseline
    (baseline time / auto's time: geometric mean and worst matrix), the inspection's time, then the targets.
    At ``threads`` > 1 (least wall time; scipy stays one-threaded) also auto's two-thread efficiency against
    ``one_thread``'s rows of the same run: its least wall time at one thread / (threads × at ``threads``)."""
    t = {(r["matrix"], int(r["n"]), r["variant"]): float(r["median_ms"]) for r in held
         if r["status"] == "PASS" and r.get("median_ms")}
    insp = {(r["matrix"], int(r["n"])): float(r["inspect_s"]) for r in held
            if r["variant"] == "cpu.csr.auto" and r.get("inspect_s")}
    gf = {(r["matrix"], int(r["n"])): float(r["gflops"]) for r in held
          if r["variant"] == "cpu.csr.auto" and r.get("gflops")}
    mats = sorted({r["matrix"] for r in held})
    ns = sorted({int(r["n"]) for r in held})
    bases = [b for b in HELD_VARIANTS[1:] if any(k[2] == b for k in t)]

    def ratios(n, base):
        return [(m, t[m, n, base] / t[m, n, "cpu.csr.auto"]) for m in mats
                if (m, n, base) in t and (m, n, "cpu.csr.auto") in t]

    wall1 = {(r["matrix"], int(r["n"])): float(r["min_ms"]) for r in one_thread
             if r["variant"] == "cpu.csr.auto" and r["status"] == "PASS" and r.get("min_ms")}
    wall = {(r["matrix"], int(r["n"])): float(r["min_ms"]) for r in held
            if r["variant"] == "cpu.csr.auto" and r["status"] == "PASS" and r.get("min_ms")}

    def efficiency(n):
        es = [wall1[m, n] / (threads * wall[m, n]) for m in mats if (m, n) in wall1 and (m, n) in wall]
        return (_gm(es), min(es)) if es else None

    how = ("one thread, warm; least CPU time of the calling thread" if threads == 1 else
           f"{threads} threads (scipy: one), warm; least wall time")
    lines = [f"**`auto` (with its inspection) on the {len(mats)} layer-0 DLMC matrices held out from its fit, fp32, "
             f"{how} over {meta['rounds']} interleaved rounds × "
             f"{meta['repeats']} calls — {meta['machine']}, {meta['date']}, load average "
             f"{meta['loadavg_start'][0]:.1f}–{meta['loadavg_end'][0]:.1f}**", "",
             "ratio = baseline time / auto's time: geometric mean over the matrices (worst matrix)"
             + ("; efficiency = auto's least wall time at one thread (the table above) / "
                f"({threads} × at {threads} threads)" if threads > 1 else ""), "",
             "| N | auto GFLOP/s | " + " | ".join(f"vs {short(b)}" for b in bases) + " | inspection (median) |"
             + (" efficiency (worst) |" if threads > 1 else ""),
             "| ---: | ---: | " + " | ".join("---:" for _ in bases) + " | ---: |" + (" ---: |" if threads > 1 else "")]
    for n in ns:
        cells = []
        for b in bases:
            rs = [r for _, r in ratios(n, b)]
            cells.append(f"{_gm(rs):.2f}× ({min(rs):.2f})" if rs else "–")
        gs = [gf[m, n] for m in mats if (m, n) in gf]
        ins = [insp[m, n] for m in mats if (m, n) in insp]
        spent = f"{float(np.median(ins)) * 1e3:.0f} ms" if ins else "–"
        eff = ""
        if threads > 1:
            e = efficiency(n)
            eff = f" {e[0]:.2f} ({e[1]:.2f}) |" if e else " – |"
        lines.append(f"| {n} | {_gm(gs):.1f} | " + " | ".join(cells) + f" | {spent} |" + eff)
    lines.append("")
    every = {b: [r for n in ns for _, r in ratios(n, b)] for b in bases}
    goals = []
    if every.get("cpu.csr.mkl_opt"):
        rs = every["cpu.csr.mkl_opt"]
        lose = [(m, n, r) for n in ns for m, r in ratios(n, "cpu.csr.mkl_opt") if r < 1.0]
        goals.append(f"≥ 1.0× MKL-opt on every (matrix, N): {len(rs) - len(lose)} of {len(rs)}"
                     + (f" (below: {', '.join(f'{m.split(chr(47))[-1][:28]} N={n} {r:.2f}' for m, n, r in lose[:6])}"
                        f"{', …' if len(lose) > 6 else ''})" if lose else "") + " — "
                     + ("met" if not lose else "missed"))
        goals.append(f"≥ 1.3× MKL-opt in geometric mean: {_gm(rs):.2f}× — {'met' if _gm(rs) >= 1.3 else 'missed'}")
    for b, goal in (("cpu.csr.mkl", 2.0), ("cpu.csr.scipy", 3.0)):
        if every.get(b):
            goals.append(f"≥ {goal:g}× {short(b)} in geometric mean: {_gm(every[b]):.2f}× — "
                         f"{'met' if _gm(every[b]) >= goal else 'missed'}")
    if threads > 1:
        es = [wall1[m, n] / (threads * wall[m, n]) for m in mats for n in ns if (m, n) in wall1 and (m, n) in wall]
        if es:  # a call of a few µs cannot gain a second thread's worth: a fork and join alone is ~1.4 µs
            big = [wall1[m, n] / (threads * wall[m, n]) for m in mats for n in ns
                   if (m, n) in wall1 and (m, n) in wall and wall1[m, n] >= 0.1]
            goals.append(f"{threads}-thread efficiency ≥ 0.85 on products of at least 0.1 ms at one thread: "
                         + (f"geometric mean {_gm(big):.2f} (worst {min(big):.2f}) over {len(big)} (matrix, N) — "
                            f"{'met' if _gm(big) >= 0.85 else 'missed'}" if big else "none that long")
                         + f"; over every (matrix, N) {_gm(es):.2f}")
    if goals:
        lines += [f"Against issue 24's targets at {'one thread' if threads == 1 else f'{threads} threads'} "
                  f"(over every held-out matrix and N of this run): " + "; ".join(goals) + ".", ""]
    picked = [r for r in held if r["variant"] == "cpu.csr.auto" and r.get("auto_choice")]
    differs = sum(r["auto_choice"].replace("cpu.csr.", "") != r["auto_rule_choice"] for r in picked)
    lines.append(f"The inspection kept another candidate than the rule's first choice on {differs} of {len(picked)} "
                 f"(matrix, N); its time is reported apart (`inspect_s` in the row's info, inside setup), as "
                 f"MKL-opt's optimize step is, and a second build of the same problem inspects nothing (cached). "
                 f"Held-out matrices: " + ", ".join(f"`{m}`" for m in mats) + ".")
    return "\n".join(lines)


def plot(ns, variants, g, meta, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for v in variants:
        xs = [n for n in ns if (n, v) in g]
        ax.plot(xs, [g[(n, v)] for n in xs], marker="o", ms=3, label=v, lw=2.2 if v == "cpu.csr.auto" else 1.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (columns of B and C)")
    ax.set_ylabel("useful GFLOP/s (1 thread, warm)")
    ax.set_title(f"DLMC ffn_conv1 2048×512 at 90%, fp32\n{meta['machine']}, {meta['date']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def short(v: str) -> str:
    return v.replace("cpu.csr.", "")


def markdown(ns, variants, g, rows, meta, src: Path | None, image: str = PLOT.name) -> str:
    lines = [f"**DLMC transformer magnitude_pruning/0.9 ffn_conv1 (2048×512, nnz 104,857), fp32, one thread, "
             f"warm; useful GFLOP/s from the least CPU time of the calling thread over rounds × calls — "
             f"{meta['machine']}, {meta['date']}, "
             f"{meta['rounds']} interleaved rounds, load average {meta['loadavg_start'][0]:.1f}–"
             f"{meta['loadavg_end'][0]:.1f} (shared)**", ""]
    cols = [v for v in variants]
    bases = [b for b in ("cpu.csr.mkl", "cpu.csr.mkl_opt", "cpu.csr.spregtiling") if b in variants]
    lines.append("| N | " + " | ".join(short(v) for v in cols) + " | " + " | ".join(f"auto/{short(b)}" for b in bases)
                 + " |")
    lines.append("| ---: | " + " | ".join("---:" for _ in cols + bases) + " |")

    def ratio(n, base):
        return g[(n, "cpu.csr.auto")] / g[(n, base)] if (n, base) in g and (n, "cpu.csr.auto") in g else None

    for n in ns:
        cells = [f"{g[(n, v)]:.1f}" if (n, v) in g else "–" for v in cols]
        cells += [f"{ratio(n, b):.2f}×" if ratio(n, b) else "–" for b in bases]
        mark = "**" if n in TARGET_N else ""
        lines.append(f"| {mark}{n}{mark} | " + " | ".join(cells) + " |")
    lines.append("")
    goals = []  # the speed targets, counted over its target N from this run
    for base, goal in (("cpu.csr.mkl", 2.0), ("cpu.csr.spregtiling", 1.1)):
        rs = [(n, ratio(n, base)) for n in TARGET_N if ratio(n, base)]
        if rs:
            goals.append(f"`auto` ≥ {goal}× {short(base)} at {sum(r >= goal for _, r in rs)} of {len(rs)} target N "
                         f"(range {min(r for _, r in rs):.2f}–{max(r for _, r in rs):.2f}×)")
    if ratio(256, "cpu.csr.scipy"):
        goals.append(f"{ratio(256, 'cpu.csr.scipy'):.1f}× scipy at N = 256 (target 3×)")
    if (256, "cpu.csr.auto") in g:
        goals.append(f"{g[(256, 'cpu.csr.auto')] / FMA_PEAK_GFLOPS:.0%} of the one-core FMA peak at N = 256 "
                     f"(nominal {FMA_PEAK_GFLOPS:.0f} GFLOP/s: {FMA_PEAK_HOW}; target 40%)")
    if goals:
        lines += ["Against the issue's targets: " + "; ".join(goals) + ".", ""]
    tails = []
    for n in ns:
        if n % 64 and (n, "cpu.csr.auto") in g:
            mults = [m for m in ns if m % 64 == 0 and (m, "cpu.csr.auto") in g]
            if mults:
                near = min(mults, key=lambda m: (abs(m - n), m))
                tails.append((n, near, g[(n, "cpu.csr.auto")] / g[(near, "cpu.csr.auto")]))
    low = [t for t in tails if t[2] < 0.8]
    lines.append(f"Tails (`auto` at N not a multiple of 64 against the nearest measured multiple): {len(tails) - len(low)}"
                 f" of {len(tails)} at ≥ 80%; below: " + (", ".join(f"N={n} {r:.0%} of N={m}" for n, m, r in low) or "none") + ".")
    lines.append("")
    lines.append("Bold N: the issue's target batch sizes. `auto` chose: " + ", ".join(
        f"N={r['n']}: {r['auto_choice'].replace('cpu.csr.', '')}"
        for r in rows if r["variant"] == "cpu.csr.auto" and r.get("auto_choice") and int(r["n"]) in TARGET_N) + ".")
    if src is not None and (src / "threads.json").exists():
        th = json.loads((src / "threads.json").read_text())
        lines += ["", "Two threads (`auto`, same matrix, least wall time of the harness's calls): " + "; ".join(
            f"N={r['n']}: {r['t1_ms']:.3f} → {r['t2_ms']:.3f} ms, efficiency {r['efficiency']:.2f}" for r in th) + "."]
    if src is not None and (src / "overhead.json").exists():
        oh = json.loads((src / "overhead.json").read_text())
        lines += ["", f"Overheads (min / median): an empty 2-part `prange` call {oh['empty_prange_1t_us']['min']} / "
                  f"{oh['empty_prange_1t_us']['median']} µs at 1 thread, {oh['empty_prange_2t_us']['min']} / "
                  f"{oh['empty_prange_2t_us']['median']} µs at 2 ({oh['threading_layer']}, "
                  + ", ".join(f"{k}={v}" for k, v in oh["env"].items() if v) + "); the nnz partition, built once per matrix: "
                  f"{oh['partition_nnz_2_us']['min']} / {oh['partition_nnz_2_us']['median']} µs."]
    lines += ["", f"![GFLOP/s against N]({image})"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--parts", default="overhead,main,heldout,sweep,threads")
    ap.add_argument("--stride", type=int, default=5, help="heldout: the fit's subset, every S-th layer-0 matrix")
    ap.add_argument("--matrices", type=int, default=0, help="heldout: at most this many held-out matrices")
    ap.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=None)
    ap.add_argument("--sweep-n", type=lambda s: [int(x) for x in s.split(",")], default=None,
                    help="sweep: these N (default: --n, else SWEEP_N)")
    ap.add_argument("--out", default="")
    ap.add_argument("--render", default="")
    ap.add_argument("--readme", default="")
    args = ap.parse_args(argv)
    if args.render:
        render(args)
    else:
        measure_all(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
