"""A tiny generated network through the GPU chain in the CUDA simulator (run by test_nets.py in a subprocess
with NUMBA_ENABLE_CUDASIM=1): fused engine, with and without dropping dead inputs, against float64 truth.
Prints one line per case and exits 1 on any mismatch."""

import sys

import numpy as np

from spmm_study.nets import chain, chain_gpu, generate

chain_gpu.SPLIT_N = 16  # the swizzle kernel while more than 16 inputs live, then the row-split one
chain_gpu.ROW_SPLIT = {"warps": 2, "vec": 2, "unroll": 2}  # few simulated threads: the simulator is slow
chain_gpu.SWIZZLE = {"lanes": 4, "vec": 2, "tiles": 1, "unroll": 2, "threads": 8}
net = generate.network(32, 3, seed=1)
y0 = generate.inputs(32, 40, seed=2)
src = chain.replicate(y0, 40)
truth = chain.reference_categories(net, y0, src)
bad = 0
results = {}
for prune in (True, False):
    r = chain.run_chain(net, y0, src, "fused", device="gpu", prune_dead=prune)
    ok = np.array_equal(r.categories, truth) and r.device == "gpu"
    bad += not ok
    results[prune] = [x.live_out for x in r.layers]
    print(f"prune={prune}: {'ok' if ok else 'MISMATCH'} {r.categories.size} of {truth.size}",
          [x.live_out for x in r.layers], flush=True)
same_live = results[True] == results[False]  # the live count per layer, dropped or not
print("live counts agree" if same_live else "LIVE COUNTS DIFFER")
sys.exit(1 if bad or truth.size == 0 or not same_live else 0)
