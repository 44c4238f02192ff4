"""A tiny generated network through the GPU chain in the CUDA simulator (run by test_nets.py in a subprocess
with NUMBA_ENABLE_CUDASIM=1): the device-resident chain (chain_resident), fused and unfused, with and without
dropping dead inputs, against the float64 truth and against the CPU chain's live count per layer (the device
compaction against the host's). Prints one line per case and exits 1 on any mismatch."""

import sys

import numpy as np

from spmm_study.nets import chain, generate

net = generate.network(32, 3, seed=1)
y0 = generate.inputs(32, 40, seed=2)
src = chain.replicate(y0, 40)
truth = chain.reference_categories(net, y0, src)
cpu = [x.live_out for x in chain.run_chain(net, y0, src, "fused", device="cpu", prune_dead=True).layers]
bad = 0
for engine in ("fused", "unfused"):
    for prune in (True, False):
        r = chain.run_chain(net, y0, src, engine, device="gpu", prune_dead=prune)
        live = [x.live_out for x in r.layers]
        ok = np.array_equal(r.categories, truth) and r.device == "gpu" and live == cpu
        bad += not ok
        print(f"{engine} prune={prune}: {'ok' if ok else 'MISMATCH'} {r.categories.size} of {truth.size}", live,
              "cpu", cpu, flush=True)
# more than one 128-column tile, whole tiles (every lane's four columns inside) and a partial one
src2 = chain.replicate(y0, 160)
truth2 = chain.reference_categories(net, y0, src2)
r = chain.run_chain(net, y0, src2, "fused", device="gpu", prune_dead=True)
ok = np.array_equal(r.categories, truth2) and truth2.size > 0
bad += not ok
print(f"fused 160 inputs: {'ok' if ok else 'MISMATCH'} {r.categories.size} of {truth2.size}", flush=True)
# the case must exercise compaction: some inputs die on the way, some survive
print("cpu live per layer", cpu)
sys.exit(1 if bad or truth.size == 0 or cpu[-1] == 40 else 0)
