"""The GPU ladder's device script: one call checks, times and tunes many variants (run on the H100).

    python experiments/gpu_bench.py --phases env,check,ladder,tune,bench --dlmc-root .dlmc --out $OUT

Phases (each writes ``gpu-<phase>.csv`` of harness ``Result`` rows into --out; the table at the end is short):
  env     device, versions, copy bandwidth (the byte-floor roof) and the spin/flush timing self-check
  check   every GPU variant × edge matrices × N in (1, 7, 37, 130) on the real device (correctness)
  ladder  every rung with default params on one matrix (--ladder-matrix) at --ladder-n, cold and warm L2
  tune    small parameter sweeps of the fast rungs on the ladder matrix at each N
  bench   each DLMC matrix × N: cuBLAS, cuSPARSE (cupy, torch) and the candidate configs (--candidates)
Every row is checked against float64 before and after timing (harness.measure); FAIL rows are kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmm_study import registry, sources  # noqa: E402
from spmm_study.harness import HarnessConfig, measure  # noqa: E402
from spmm_study.problem import Problem  # noqa: E402
from spmm_study.timing import TimingConfig  # noqa: E402

LADDER_MATRIX = "dlmc:transformer/magnitude_pruning/0.9/body_decoder_layer_0_ffn_conv1_fully_connected"
SPARSITIES = ("0.8", "0.9", "0.95", "0.98")

# candidate configs for the benchmark: (variant, params); the best PASS row per (matrix, N) "wins"
CANDIDATES = [
    ("gpu.csr.warp_vec", {"vec": 4, "tiles": 2, "unroll": 2, "threads": 128}),
    ("gpu.csr.warp_vec", {"vec": 4, "tiles": 1, "unroll": 2, "threads": 128}),
    ("gpu.csr.subwarp", {"lanes": 16, "vec": 4, "tiles": 1, "unroll": 2, "threads": 128}),
    ("gpu.csr.subwarp", {"lanes": 8, "vec": 4, "tiles": 2, "unroll": 2, "threads": 128}),
    ("gpu.csr.swizzle", {"lanes": 16, "vec": 4, "tiles": 1, "unroll": 2, "threads": 128}),
    ("gpu.csr.densify_tile", {"vec": 4, "warps": 8, "rows_per_warp": 4, "kt": 32}),
]
BASELINES = [("gpu.dense.cublas", {}), ("gpu.csr.cusparse", {}), ("gpu.csr.torch", {})]


def log(*a):
    print(*a, flush=True)


def write_rows(out: Path, name: str, rows: list) -> None:
    if not rows:
        return
    dicts = [asdict(r) if not isinstance(r, dict) else r for r in rows]
    keys = list(dicts[0])
    with open(out / f"gpu-{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(dicts)


def short(r) -> str:
    us = r.median_s * 1e6 if r.median_s == r.median_s else float("nan")
    disp = r.host_dispatch_s * 1e6 if r.host_dispatch_s == r.host_dispatch_s else float("nan")
    info = json.loads(r.info) if r.info else {}
    res = {k: info[k] for k in ("regs_per_thread", "local_bytes_per_thread", "smem_static_bytes") if k in info}
    return (f"{r.status:5s} {r.variant:22s} {r.params:60s} N={r.n:5d} {r.cache:4s} {us:9.1f} us "
            f"disp {disp:6.1f} us  {r.gbps_compulsory:7.0f} GB/s-floor  err {r.rel_error:.1e} {res} {r.message[:80]}")


def env_phase(out: Path) -> None:
    import subprocess

    log(subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.sm,clocks.max.sm,driver_version",
                        "--format=csv"], capture_output=True, text=True).stdout)
    import numba
    import numba_cuda
    from numba import cuda

    dev = cuda.get_current_device()
    facts = {"name": dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
             "cc": dev.compute_capability, "sms": dev.MULTIPROCESSOR_COUNT, "numba": numba.__version__,
             "numba_cuda": numba_cuda.__version__, "numpy": np.__version__}
    try:
        import cupy as cp

        facts["cupy"] = cp.__version__
        a = cp.empty(1 << 28, dtype=cp.float32)  # 1 GiB
        b = cp.empty_like(a)
        for _ in range(3):
            b[...] = a
        cp.cuda.Device().synchronize()
        e0, e1 = cp.cuda.Event(), cp.cuda.Event()
        e0.record()
        for _ in range(10):
            b[...] = a
        e1.record()
        e1.synchronize()
        t = cp.cuda.get_elapsed_time(e0, e1) / 1e3 / 10
        facts["copy_tbps_read_plus_write"] = round(2 * a.nbytes / t / 1e12, 3)
        del a, b
    except Exception as exc:  # noqa: BLE001
        facts["cupy_error"] = str(exc)[:200]
    try:
        import torch

        facts["torch"] = torch.__version__
    except Exception:  # noqa: BLE001
        pass
    from spmm_study.gpu import timing

    facts["spin_ns_per_step"] = round(timing.spin_ns_per_step(), 1)
    facts["l2_bytes"] = timing.l2_bytes()
    log("ENV", json.dumps(facts))
    (out / "gpu-env.json").write_text(json.dumps(facts, indent=1))


def edge_phase(cfg: HarnessConfig) -> list:
    from spmm_study.edge import edge_matrices, nm24_matrix

    mats = edge_matrices()
    mats["nm24"] = nm24_matrix(37, 42, 3)
    rows = []
    fails = 0
    for v in registry.select(device="gpu"):
        if v.unavailable_reason():
            log("UNAVAILABLE", v.id, v.unavailable_reason())
            continue
        for name, a in mats.items():
            if not v.accepts(a):  # e.g. the 2:4 rung on a matrix that is not 2:4
                continue
            for n in (1, 7, 37, 130):
                p = Problem.make(a, n, "float32", 0, matrix=name)
                r = measure(v, p, {}, cfg)
                rows.append(r)
                if r.status != "PASS":
                    fails += 1
                    log(short(r))
    log(f"CHECK: {len(rows)} rows, {fails} not PASS")
    return rows


def smid_phase(out: Path) -> None:
    """Where does the hardware put block b of a persistent grid? (tests rung 18's placement assumption:
    blocks b and b + #SMs on one SM)."""
    from numba import cuda

    from spmm_study.gpu._vec import smid_op

    smid = smid_op()

    @cuda.jit
    def probe(out_ids):
        if cuda.threadIdx.x == 0:
            out_ids[cuda.blockIdx.x] = smid()

    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    facts = {}
    for bps in (1, 4, 8):
        ids = cuda.device_array(sms * bps, dtype=np.int32)
        probe[sms * bps, 128](ids)
        h = ids.copy_to_host()
        same = float(np.mean([h[b] == h[b % sms] for b in range(sms * bps)]))
        per_sm = np.bincount(h, minlength=sms)
        facts[f"bps{bps}"] = {"share_sm_with_b_mod_sms": round(same, 3), "blocks_per_sm_min": int(per_sm.min()),
                              "blocks_per_sm_max": int(per_sm.max()), "first_16": h[:16].tolist()}
    log("SMID", json.dumps(facts))
    (out / "gpu-smid.json").write_text(json.dumps(facts, indent=1))


def problem_for(spec: str, n: int, root: str, cache: dict) -> Problem:
    key = (spec, n)
    if key not in cache:
        cache.clear()  # one problem at a time: references of 2048×4096 float64 are 64 MB each
        loaded = sources.load(spec, dlmc_root=root)
        cache[key] = Problem.make(loaded.a, n, "float32", 0, matrix=spec)
    return cache[key]


def device_name() -> str:
    from numba import cuda

    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", default="env,check,ladder")
    ap.add_argument("--dlmc-root", default=".dlmc")
    ap.add_argument("--out", default=os.environ.get("OUT", "results/gpu-bench"))
    ap.add_argument("--ladder-matrix", default=LADDER_MATRIX)
    ap.add_argument("--ladder-n", default="256,4096")
    ap.add_argument("--bench-n", default="256,2048,4096")
    ap.add_argument("--sparsities", default=",".join(SPARSITIES))
    ap.add_argument("--matrices", default="", help="comma list of matrix basenames (default: all layer-0)")
    ap.add_argument("--min-time", type=float, default=0.03)
    ap.add_argument("--tune-json", default="", help="JSON list of [variant, params] for the tune phase")
    ap.add_argument("--candidates-json", default="", help="JSON list of [variant, params] for the bench")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phases = args.phases.split(",")
    tcfg = TimingConfig(repeats=20, min_time_s=args.min_time, warmup_s=0.02, cache="cold")
    machine = device_name()  # the rows say which GPU measured them (the device tool may lend an H200 instead)
    cfg = HarnessConfig(timing=tcfg, machine=machine)
    cache: dict = {}
    t_start = time.time()
    if "env" in phases:
        env_phase(out)
    if "smid" in phases:
        smid_phase(out)
    if "nm24" in phases:
        rows = []
        for n in map(int, args.ladder_n.split(",")):
            loaded = sources.load("synthetic:nm:ffn1", seed=0)
            p = Problem.make(loaded.a, n, "float32", 0, matrix="synthetic:nm:ffn1")
            for vid, params in [("gpu.nm24.structured", {}), ("gpu.nm24.structured", {"vec": 4, "block_x": 32, "block_y": 4}),
                                ("gpu.csr.swizzle", {}), ("gpu.csr.swizzle", {"lanes": 32, "tiles": 1}),
                                ("gpu.dense.cublas", {}), ("gpu.csr.torch", {})]:
                r = measure(registry.get(vid), p, params, cfg)
                rows.append(r)
                log(short(r))
        write_rows(out, "nm24", rows)
    if "check" in phases:
        write_rows(out, "check", edge_phase(HarnessConfig(timing=TimingConfig(repeats=2, min_time_s=0, warmup_s=0))))
    if "ladder" in phases:
        rows = []
        for n in map(int, args.ladder_n.split(",")):
            p = problem_for(args.ladder_matrix, n, args.dlmc_root, cache)
            for v in registry.select(device="gpu"):
                if v.unavailable_reason():
                    continue
                for mode in ("cold", "warm"):
                    c = HarnessConfig(timing=TimingConfig(repeats=10, min_time_s=args.min_time, warmup_s=0.02,
                                                          cache=mode), machine=machine)
                    r = measure(v, p, {}, c)
                    rows.append(r)
                    log(short(r))
            write_rows(out, "ladder", rows)
        log(f"ladder done at {time.time() - t_start:.0f}s")
    if "tune" in phases:
        rows = []
        tune = json.loads(args.tune_json) if args.tune_json else []
        for n in map(int, args.ladder_n.split(",")):
            p = problem_for(args.ladder_matrix, n, args.dlmc_root, cache)
            for vid, params in tune + [list(b) for b in BASELINES]:
                v = registry.get(vid)
                if v.unavailable_reason():
                    continue
                r = measure(v, p, params, cfg)
                rows.append(r)
                log(short(r))
            write_rows(out, "tune", rows)
        log(f"tune done at {time.time() - t_start:.0f}s")
    if "bench" in phases:
        rows = []
        cands = json.loads(args.candidates_json) if args.candidates_json else CANDIDATES
        names = [x for x in args.matrices.split(",") if x]
        root = Path(args.dlmc_root) / "transformer" / "magnitude_pruning"
        for sp in args.sparsities.split(","):
            files = sorted((root / sp).glob("*layer_0*.smtx"))
            for f in files:
                if names and f.stem not in names:
                    continue
                spec = f"dlmc:transformer/magnitude_pruning/{sp}/{f.stem}"
                for n in map(int, args.bench_n.split(",")):
                    p = problem_for(spec, n, args.dlmc_root, cache)
                    for vid, params in [list(b) for b in BASELINES] + [list(c) for c in cands]:
                        v = registry.get(vid)
                        if v.unavailable_reason():
                            continue
                        rows.append(measure(v, p, params, cfg))
                    best = min((r for r in rows[-(len(BASELINES) + len(cands)):] if r.status == "PASS"
                                and not r.baseline), key=lambda r: r.median_s, default=None)
                    base = {r.variant: r.median_s for r in rows[-(len(BASELINES) + len(cands)):] if r.baseline}
                    if best:
                        log(f"{sp} {f.stem[:48]:48s} N={n:5d} best {best.variant}{best.params} {best.median_s*1e6:8.1f} us"
                            f" cublas {base.get('gpu.dense.cublas', float('nan'))*1e6:8.1f} cusparse "
                            f"{base.get('gpu.csr.cusparse', float('nan'))*1e6:8.1f} torch {base.get('gpu.csr.torch', float('nan'))*1e6:8.1f}")
                write_rows(out, "bench", rows)
        bad = [r for r in rows if r.status != "PASS"]
        log(f"bench done at {time.time() - t_start:.0f}s: {len(rows)} rows, {len(bad)} not PASS")
        for r in bad[:10]:
            log(short(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
