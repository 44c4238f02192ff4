"""Benchmark (issue 16 item 4, CPU): the fused chain against the scipy chain (and the unfused one: the
project's SpMM then a numpy epilogue) on the official 1024-neuron, 120-layer Sparse DNN network, dead inputs
dropped, one thread and two, engines interleaved in every round so a busy machine slows them alike.

    SPMM_STUDY_SPDNN=../shared/spdnn PYTHONPATH=. python experiments/infer_bench.py [--rounds 7] [--batch 1200]

Prints a markdown table: median and fastest time per engine, edges/s in the challenge's definition
(inputs × Σ nnz(W_l) / median time), and the speedup over scipy as the median of the per-round ratios.
Every run's categories are checked against the official ones (a mismatch stops the benchmark).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmm_study.pools import quiet_idle_pools  # noqa: E402

quiet_idle_pools()  # before numpy/numba start their pools: idle workers must sleep, not spin (pools.py)

import numpy as np  # noqa: E402

from spmm_study import environment  # noqa: E402
from spmm_study.harness import apply_threads  # noqa: E402
from spmm_study.nets import chain, infer  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--engines", nargs="*", default=["fused", "unfused", "scipy"])
    args = ap.parse_args()
    t0 = time.perf_counter()
    setup = infer.build_setup(None, None, None, None, args.batch, 0.0, "nonzero", "relu", 32.0)
    print(f"machine: {environment.machine_label('cpu')}; {setup.label}, {setup.src.size} inputs, truth "
          f"{setup.truth_kind} ({setup.truth.size} categories); read in {time.perf_counter() - t0:.1f} s\n")
    print("| engine | threads | median | fastest | edges/s (median) | live edges/s | × scipy (median of rounds) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for threads in args.threads:
        apply_threads(threads)
        times = {e: [] for e in args.engines}
        live = {}
        for e in args.engines:  # warm: compile or load every kernel, outside the rounds
            chain.run_chain(setup.net, setup.y0, setup.src, e, prune_dead=True)
        for _ in range(args.rounds):
            for e in args.engines:
                r = chain.run_chain(setup.net, setup.y0, setup.src, e, prune_dead=True)
                if not np.array_equal(r.categories, setup.truth):
                    sys.exit(f"{e}: categories differ from the truth")
                times[e].append(r.time_s)
                live[e] = r.live_edges
        edges = setup.src.size * setup.net.edges
        for e in args.engines:
            t = np.array(times[e])
            ratio = np.median(np.array(times["scipy"]) / t) if "scipy" in times else float("nan")
            print(f"| {e} | {threads} | {np.median(t) * 1e3:.1f} ms | {t.min() * 1e3:.1f} ms | "
                  f"{edges / np.median(t) / 1e9:.1f} G | {live[e] / np.median(t) / 1e9:.2f} G | {ratio:.2f}× |", flush=True)
