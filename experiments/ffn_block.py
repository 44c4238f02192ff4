"""Benchmark (issue 16 item 6): the sparse transformer FFN block y = W2·relu(W1·x + b1) + b2 on the DLMC
encoder layer-0 ffn_conv1/ffn_conv2 pair at 80–98% magnitude pruning, tokens N ∈ {256, 2048, 8192}:
tokens/s of the fused sparse CPU path against dense numpy BLAS, one thread, one interleaved run.

    SPMM_STUDY_DLMC=../shared/dlmc PYTHONPATH=. python experiments/ffn_block.py [--threads 1] [--repeats 5]

Prints a markdown table (docs/infer.md's sparse FFN block table is built from it).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmm_study.pools import quiet_idle_pools  # noqa: E402

quiet_idle_pools()  # before numpy/numba start their pools: idle workers must sleep, not spin (pools.py)

from spmm_study import environment, sources  # noqa: E402
from spmm_study.harness import apply_threads  # noqa: E402
from spmm_study.nets.ffn import run_block  # noqa: E402

BASE = "dlmc:transformer/magnitude_pruning/{s}/body_encoder_layer_0_ffn_conv{i}_fully_connected"

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sparsity", nargs="*", default=["0.8", "0.9", "0.95", "0.98"])
    ap.add_argument("--tokens", nargs="*", type=int, default=[256, 2048, 8192])
    args = ap.parse_args()
    used = apply_threads(args.threads)
    print(f"machine: {environment.machine_label('cpu')}, {used} thread(s), median of {args.repeats} interleaved runs\n")
    print("| sparsity | N | sparse fused ms | dense BLAS ms | sparse tokens/s | dense tokens/s | speedup |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in args.sparsity:
        w1 = sources.load(BASE.format(s=s, i=1)).a
        w2 = sources.load(BASE.format(s=s, i=2)).a
        for n in args.tokens:
            r = run_block(w1, w2, n, args.repeats)
            print(f"| {s} | {n} | {r.sparse_s * 1e3:.2f} | {r.dense_s * 1e3:.2f} | {r.sparse_tokens_per_s:,.0f} | "
                  f"{r.dense_tokens_per_s:,.0f} | {r.speedup:.2f}x |", flush=True)
