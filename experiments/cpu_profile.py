"""Where the time of the best CSR kernel goes, without hardware counters (the VM has none): the same kernel
on variations of the problem that remove one cost at a time. One thread, fp32, N = 256, DLMC ffn_conv1 90%.

    python experiments/cpu_profile.py [--threads 1] [--reps 200]

1. ``cold``   — the harness's setting: caches flushed before each call (A, B, C from memory);
2. ``warm``   — back-to-back calls: A (0.8 MiB) and B (0.5 MiB) stay in L2/L3, C (2 MiB) in L3;
3. ``L1 B``   — the same row lengths, but every column index folded into the first 32 rows of B (32 KiB,
   L1-resident): what is left is the instruction stream (one B vector load + one FMA per 16 outputs);
4. ``sgemm``  — numpy dense sgemm on the same shapes, the machine's practical FMA rate per core.

Prints useful GFLOP/s for each; experiments/notes-cpu.md section 5 reads them.
"""

import argparse
import os

from spmm_study.pools import quiet_idle_pools  # noqa: E402

quiet_idle_pools()

import time  # noqa: E402

import numpy as np  # noqa: E402

M90 = "dlmc:transformer/magnitude_pruning/0.9/body_decoder_layer_0_ffn_conv1_fully_connected"


def clock(fn, reps, flush=None):
    fn()
    ts = []
    for _ in range(reps):
        if flush:
            flush()
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--dlmc-root", default="/work/shared/dlmc")
    ap.add_argument("--matrix", default=M90)
    args = ap.parse_args()

    from spmm_study import registry, sources
    from spmm_study.formats import CSR
    from spmm_study.harness import apply_threads
    from spmm_study.problem import Problem
    from spmm_study.timing import flush_cpu_caches

    apply_threads(args.threads)
    a = sources.load(args.matrix, dlmc_root=args.dlmc_root).a
    flops = 2 * a.nnz * 256
    tiled = registry.get("cpu.csr.tiled")
    res = {}

    p = Problem.make(a, 256)
    prep = tiled.build(p, **tiled.resolve_params({}))
    res["cold"] = clock(prep.run, args.reps, flush_cpu_caches)
    res["warm"] = clock(prep.run, args.reps)

    # fold every column index into the first 32 rows of B (column mod 32); repeats inside a row are dropped
    # (a CSR row holds each column once), so the time is scaled back to the full nonzero count
    rows = np.repeat(np.arange(a.m), a.row_lengths())
    folded = a.indices % 32
    key = rows * 32 + folded
    _, first = np.unique(key, return_index=True)
    first.sort()
    a32 = CSR.from_coo_arrays(a.shape, rows[first], folded[first], a.data[first])
    p32 = Problem.make(a32, 256)
    prep32 = tiled.build(p32, **tiled.resolve_params({}))
    t32 = clock(prep32.run, args.reps)
    res["L1 B"] = t32 * a.nnz / a32.nnz  # scaled to the full nonzero count

    dense = a.to_dense()
    c = np.empty((a.m, 256), np.float32)
    res["sgemm"] = clock(lambda: np.matmul(dense, p.b, out=c), max(20, args.reps // 10))

    print(f"{args.matrix.split('/')[-2]}  threads={args.threads}  nnz={a.nnz}  (L1-B matrix: {a32.nnz} nonzeros, "
          f"time scaled)  B offset {prep.info['b_offset_bytes']} B, packed: {prep.info['b_packed']}")
    for name, t in res.items():
        if name == "sgemm":
            print(f"  {name:6s} {t * 1e3:8.3f} ms  {2 * a.m * a.k * 256 / t / 1e9:6.1f} GFLOP/s (dense flops)")
        else:
            print(f"  {name:6s} {t * 1e3:8.3f} ms  {flops / t / 1e9:6.1f} GFLOP/s useful")


if __name__ == "__main__":
    main()
