"""What a Dask LocalCluster costs per measurement, and whether its ratios match a serial sweep's.

    PYTHONPATH=. python experiments/cluster_overhead.py [--tasks 24] [--min-time 0.2] [--out FILE.json]

1. Overhead per task: the same measurements (``min_time`` 0.2 s each, so each takes about 0.2 s) on a
   ``local:1`` cluster (one worker owning every core). Overhead = (client wall time from the first submit to
   the last row written - the workers' own wall time inside the measurements) / tasks: dispatch, the row's
   trip back through the scheduler's queue, the fsynced append. Target: under 5% of a 0.2 s measurement.
   Beside it, the plain comparison under the same load: wall time per task of the cluster run against the
   mean of the serial runs A and B before and after it (|A - B| is the noise of that comparison).
2. Ratios: speedup of each variant over ``cpu.dense.numpy`` per problem, from serial run A, the cluster
   run, serial run B (interleaved in that order, so drift hits all three). The run-to-run spread is
   |log(A/B)|; the cluster's deviation is |log(C / sqrt(A·B))|. Both as medians over the problems.

Numbers from a shared machine are noisy: the script prints the load average beside them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmm_study import cluster as cl  # noqa: E402
from spmm_study import registry, runner  # noqa: E402
from spmm_study.environment import machine_label  # noqa: E402
from spmm_study.timing import TimingConfig  # noqa: E402

MATRICES = ["synthetic:magnitude:ffn1:0.9", "synthetic:magnitude:ffn1:0.95", "synthetic:uniform:512x512:0.9",
            "synthetic:uniform:1024x512:0.8"]
VARIANTS = ["cpu.dense.numpy", "cpu.csr.scipy", "cpu.csr.rowwise"]


def tasks(n_tasks: int) -> list:
    out = []
    ns = [64, 128, 256]
    for m in MATRICES:
        for n in ns:
            for v in VARIANTS:
                out.append(runner.Task(registry.get(v), m, n, (), "float32", 0, None, 1, ""))
    return out[:n_tasks]


def ratios(rows: list[dict]) -> dict[tuple, float]:
    base = {(r["matrix"], r["n"]): r["median_s"] for r in rows if r["variant"] == "cpu.dense.numpy"}
    return {(r["matrix"], r["n"], r["variant"]): base[(r["matrix"], r["n"])] / r["median_s"]
            for r in rows if r["variant"] != "cpu.dense.numpy" and r["status"] == "PASS" and (r["matrix"], r["n"]) in base}


WALLS: list[float] = []


def serial(ts, timing) -> list[dict]:
    from dataclasses import asdict

    ctx = runner.Context(timing=timing)
    t0 = time.perf_counter()
    rows = [asdict(r) for r in runner.execute(ts, ctx)]
    WALLS.append(time.perf_counter() - t0)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    timing = TimingConfig(repeats=3, min_time_s=args.min_time, warmup_s=0.02, cache="warm")
    ts = tasks(args.tasks)
    serial(ts[:len(VARIANTS)], timing)  # compile here first, as the worker will for itself below
    load0 = os.getloadavg()[0]
    WALLS.clear()
    rows_a = serial(ts, timing)
    with cl.Cluster(cl.parse_spec("local:1")) as cluster:
        ctx = runner.Context(timing=timing)
        cl.run_tasks(cluster, ts[:len(VARIANTS)], ctx)  # the worker's compile and imports, not timed
        for t in ts:  # the CLI has loaded every matrix while planning, before any measurement
            ctx.matrix(t.matrix, t.prune, t.seed)
        t0, t0_abs = time.perf_counter(), time.time()
        out = cl.run_tasks(cluster, ts, ctx)
        client_wall, t1_abs = time.perf_counter() - t0, time.time()
    rows_b = serial(ts, timing)
    load1 = os.getloadavg()[0]
    inside = sum(w for _, w in out.by_index.values())
    spans = sorted(out.spans, key=lambda s: s[1])  # one worker: the idle gaps between its measurements
    gaps = [b[1] - (a[1] + a[2]) for a, b in zip(spans, spans[1:])]
    per_task = (client_wall - inside) / len(ts)
    ra, rc, rb = ratios(rows_a), ratios(out.rows), ratios(rows_b)
    common = sorted(set(ra) & set(rb) & set(rc))
    spread = [abs(math.log(ra[k] / rb[k])) for k in common]
    dev = [abs(math.log(rc[k] / math.sqrt(ra[k] * rb[k]))) for k in common]
    result = {
        "machine": machine_label("cpu"), "load_average": [round(load0, 2), round(load1, 2)], "tasks": len(ts),
        "min_time_s": args.min_time, "measurement_s_mean": inside / len(ts),
        "overhead_per_task_s": per_task, "overhead_pct_of_measurement": 100 * per_task / (inside / len(ts)),
        "worker_gap_s": {"median": statistics.median(gaps), "max": max(gaps), "sum": sum(gaps),
                         "first_start_after_submit": spans[0][1] - t0_abs,
                         "last_row_to_done": t1_abs - (spans[-1][1] + spans[-1][2])},
        "wall_per_task_s": {"serial_a": WALLS[0] / len(ts), "cluster": client_wall / len(ts),
                            "serial_b": WALLS[1] / len(ts)},
        "cluster_vs_serial_pct": 100 * (client_wall / ((WALLS[0] + WALLS[1]) / 2) - 1),
        "serial_a_vs_b_pct": 100 * (WALLS[0] / WALLS[1] - 1),
        "ratio_spread_serial_median_pct": 100 * (math.exp(statistics.median(spread)) - 1),
        "ratio_spread_serial_max_pct": 100 * (math.exp(max(spread)) - 1),
        "ratio_cluster_deviation_median_pct": 100 * (math.exp(statistics.median(dev)) - 1),
        "ratio_cluster_deviation_max_pct": 100 * (math.exp(max(dev)) - 1),
        "ratios": {"|".join(map(str, k)): [ra[k], rc[k], rb[k]] for k in common},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
