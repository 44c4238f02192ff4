"""Issue 13's device run on the H200, in one or two calls of under 10 minutes each (nothing here needs nvcc).

    python experiments/h200_round2.py --config experiments/configs/h200_round2.toml --out $OUT --shard 1/2
    python experiments/h200_round2.py --config experiments/configs/h200_round2.toml --out $OUT --shard 2/2 --phases bench
    (if a call ran out of --budget-s: the same shard again with --phases bench --done <its gpu-bench.csv>)

Phases (in this order; each writes into --out as soon as it has rows, so a call cut short keeps its work):
  env       device, versions, copy bandwidth, L2 size (gpu_bench.env_phase)
  pytest    ``pytest -m gpu`` on the device (tests/test_gpu_device.py, test_gpu_launch.py): its output in
            pytest-gpu.txt, its summary line printed and kept in round2-summary.json
  dispatch  host dispatch apart: the chooser's rungs on [dispatch] problems, numba's launch against the bound
            launch (SPMM_STUDY_GPU_LAUNCH), the libraries beside them (gpu-dispatch.csv)
  ladder    every GPU variant (rungs, chooser, libraries, Sputnik, TF32) with defaults on the ladder matrix at
            each N, cold L2 (gpu-ladder.csv)
  nm24      the 2:4 rung beside the hardware path (cuSPARSELt via torch), rung 15 and cuBLAS fp32/TF32 on
            synthetic:nm:ffn1 (gpu-nm24.csv)
  bench     every layer-0 DLMC matrix × N: the [candidates] (the chooser's refit set), gpu.csr.auto and every
            baseline (cuBLAS fp32 and TF32, cuSPARSE through cupy and torch, Sputnik) (gpu-bench.csv): the
            rows experiments/fit_gpu_chooser.py refits the chooser from and the README tables come from.
            ``--shard i/k`` takes every k-th weight matrix (all its sparsities and N): the shards together
            are the whole set. The bench stops at --budget-s (total, from the start) and says what it left.
Every row is checked against float64 before and after timing (harness.measure), TF32 rows against TF32's
tolerance. Variants that are unavailable (no cupy, no torch, no Sputnik library) are logged and skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_bench  # noqa: E402

from spmm_study import registry, sources  # noqa: E402
from spmm_study.errors import SpmmError  # noqa: E402
from spmm_study.harness import HarnessConfig, measure  # noqa: E402
from spmm_study.problem import Problem  # noqa: E402
from spmm_study.timing import TimingConfig  # noqa: E402

PHASES = ("env", "pytest", "dispatch", "ladder", "nm24", "bench")


def read_config(path: Path) -> dict:
    """The TOML, checked: every variant exists and every params table resolves (one line on failure)."""
    try:
        cfg = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpmmError(f"{path}: {exc}") from None
    for key in ("candidates", "baselines"):
        for i, item in enumerate(cfg.get(key, [])):
            if not isinstance(item, dict) or "variant" not in item:
                raise SpmmError(f"{path}: [[{key}]] entry {i + 1} needs a variant")
            registry.get(item["variant"]).resolve_params(item.get("params", {}))
    return cfg


def layer0_specs(root: Path, sparsities: list[str], shard: tuple[int, int]) -> list[str]:
    """dlmc: specs of the layer-0 magnitude-pruned transformer matrices, the shard's weight matrices only."""
    names = sorted({f.stem for sp in sparsities for f in (root / "transformer" / "magnitude_pruning" / sp).glob("*layer_0*.smtx")})
    i, k = shard
    mine = set(names[i - 1::k])
    specs = []
    for sp in sparsities:
        for f in sorted((root / "transformer" / "magnitude_pruning" / sp).glob("*layer_0*.smtx")):
            if f.stem in mine:
                specs.append(f"dlmc:transformer/magnitude_pruning/{sp}/{f.stem}")
    return specs


class Rows:
    """Rows of one phase, rewritten (atomically) into --out after each problem."""

    def __init__(self, out: Path, name: str):
        self.out, self.name, self.rows = out, name, []

    def add(self, r) -> None:
        self.rows.append(r)

    def flush(self) -> None:
        if not self.rows:
            return
        dicts = [asdict(r) for r in self.rows]
        tmp = self.out / f".gpu-{self.name}.csv.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(dicts[0]))
            w.writeheader()
            w.writerows(dicts)
        os.replace(tmp, self.out / f"gpu-{self.name}.csv")


def run_one(vid: str, params: dict, p, cfg: HarnessConfig, rows: Rows, launch: str = "numba"):
    v = registry.get(vid)
    reason = v.unavailable_reason()
    if reason:
        return None, reason
    os.environ["SPMM_STUDY_GPU_LAUNCH"] = launch
    try:
        r = measure(v, p, params, cfg)
    finally:
        os.environ.pop("SPMM_STUDY_GPU_LAUNCH", None)
    rows.add(r)
    return r, None


def pytest_phase(out: Path, timeout_s: int) -> str:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_gpu_device.py",
           "tests/test_gpu_launch.py", "-s"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        text, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        text, code = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or ""), "timeout"
    (out / "pytest-gpu.txt").write_text(text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    summary = next((ln for ln in reversed(lines) if " passed" in ln or " failed" in ln or " error" in ln), "no summary")
    return f"exit {code}: {summary}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path(__file__).parent / "configs" / "h200_round2.toml")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "results/h200-round2")))
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--shard", default="1/1", help="i/k: the i-th of k interleaved parts of the matrices")
    ap.add_argument("--done", type=Path, action="append", default=[],
                    help="a gpu-bench.csv of an earlier call: its (matrix, N) problems are not measured again")
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop the bench after this many seconds in all")
    args = ap.parse_args()
    t0 = time.time()
    try:
        cfg = read_config(args.config)
        phases = [p for p in args.phases.split(",") if p]
        bad = sorted(set(phases) - set(PHASES))
        if bad:
            raise SpmmError(f"unknown phase {', '.join(bad)}; choose from {', '.join(PHASES)}")
        i, k = (int(x) for x in args.shard.split("/"))
        if not 1 <= i <= k:
            raise ValueError
    except ValueError:
        print(f"error: --shard {args.shard!r} must be i/k with 1 <= i <= k", file=sys.stderr)
        return 2
    except SpmmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cfg.get("dlmc_root", ".dlmc"))
    ns = [int(n) for n in cfg.get("n", [256, 2048])]
    t = cfg.get("timing", {})
    tcfg = TimingConfig(repeats=int(t.get("repeats", 10)), min_time_s=float(t.get("min_time_s", 0.005)),
                        warmup_s=float(t.get("warmup_s", 0.005)), cache="cold")
    from spmm_study.gpu.device import simulator

    machine = "numba CUDA simulator (dry run)" if simulator() else gpu_bench.device_name()
    hcfg = HarnessConfig(timing=tcfg, machine=machine, tags="h200_round2")
    summary = {"machine": machine, "shard": args.shard, "phases": phases}
    cache: dict = {}
    log = gpu_bench.log
    baselines = [(b["variant"], b.get("params", {})) for b in cfg.get("baselines", [])]
    cands = [(c["variant"], c.get("params", {})) for c in cfg.get("candidates", [])]

    if "env" in phases:
        gpu_bench.env_phase(out)
    if "pytest" in phases:
        summary["pytest"] = pytest_phase(out, int(cfg.get("pytest_timeout_s", 150)))
        log("PYTEST", summary["pytest"])
    if "dispatch" in phases:
        rows = Rows(out, "dispatch")
        for spec in cfg.get("dispatch", {}).get("matrices", [gpu_bench.LADDER_MATRIX]):
            for n in ns:
                p = gpu_bench.problem_for(spec, n, str(root), cache)
                for vid, params in [("gpu.csr.auto", {})] + cands[:4]:
                    for mode in ("numba", "bound"):
                        r, why = run_one(vid, params, p, hcfg, rows, launch=mode)
                        if r is not None:
                            log("DISPATCH", mode, gpu_bench.short(r), json.loads(r.info or "{}").get("launch", ""))
                for vid, params in baselines:
                    r, why = run_one(vid, params, p, hcfg, rows)
                    log("DISPATCH lib", gpu_bench.short(r) if r else f"{vid} unavailable: {why}")
                rows.flush()
        log(f"dispatch done at {time.time() - t0:.0f}s")
    if "ladder" in phases:
        rows = Rows(out, "ladder")
        for n in ns:
            p = gpu_bench.problem_for(cfg.get("ladder_matrix", gpu_bench.LADDER_MATRIX), n, str(root), cache)
            for v in registry.select(device="gpu"):
                if v.format == "nm24":
                    continue  # 2:4 matrices only: the nm24 phase
                r, why = run_one(v.id, {}, p, hcfg, rows)
                log(gpu_bench.short(r) if r else f"UNAVAILABLE {v.id}: {why}")
            rows.flush()
        log(f"ladder done at {time.time() - t0:.0f}s")
    if "nm24" in phases:
        rows = Rows(out, "nm24")
        spec = cfg.get("nm24_matrix", "synthetic:nm:ffn1")
        loaded = sources.load(spec, seed=0)
        for n in ns:
            p = Problem.make(loaded.a, n, "float32", 0, matrix=spec)
            for vid in ("gpu.nm24.structured", "gpu.nm24.cusparselt", "gpu.csr.swizzle", "gpu.dense.cublas",
                        "gpu.dense.cublas_tf32"):
                r, why = run_one(vid, {}, p, hcfg, rows)
                log("NM24", gpu_bench.short(r) if r else f"{vid} unavailable: {why}")
            rows.flush()
    if "bench" in phases:
        rows = Rows(out, "bench")
        specs = layer0_specs(root, [str(s) for s in cfg.get("sparsities", ["0.8", "0.9", "0.95", "0.98"])], (i, k))
        seen = set()
        for path in args.done:
            with open(path, newline="") as f:
                seen |= {(r["matrix"], int(r["n"])) for r in csv.DictReader(f)}
        todo = [(spec, n) for spec in specs for n in ns if (spec, n) not in seen]
        done = 0
        for spec, n in todo:
            if time.time() - t0 > args.budget_s:
                break
            p = gpu_bench.problem_for(spec, n, str(root), cache)
            got = []
            for vid, params in baselines + cands + [("gpu.csr.auto", {})]:
                r, why = run_one(vid, params, p, hcfg, rows)
                if r is not None:
                    got.append(r)
            rows.flush()
            done += 1
            best = min((r for r in got if r.status == "PASS" and not r.baseline and r.variant != "gpu.csr.auto"),
                       key=lambda r: r.median_s, default=None)
            auto = next((r for r in got if r.variant == "gpu.csr.auto"), None)
            base = {r.variant: r.median_s for r in got if r.baseline}
            us = lambda x: f"{x * 1e6:7.1f}" if x == x else "     -"  # noqa: E731
            log(f"{spec.split('/')[-2]} {spec.rsplit('/', 1)[-1][13:45]:32s} N={n:5d} oracle "
                f"{us(best.median_s) if best else '-'} auto {us(auto.median_s) if auto else '-'} cublas "
                f"{us(base.get('gpu.dense.cublas', float('nan')))} tf32 {us(base.get('gpu.dense.cublas_tf32', float('nan')))}"
                f" sputnik {us(base.get('gpu.csr.sputnik', float('nan')))}")
        bad = [r for r in rows.rows if r.status != "PASS"]
        summary["bench"] = {"problems_done": done, "problems_in_shard": len(todo), "rows": len(rows.rows),
                            "not_pass": len(bad)}
        log(f"bench: {done} of {len(todo)} problems of shard {args.shard} in {time.time() - t0:.0f}s, "
            f"{len(rows.rows)} rows, {len(bad)} not PASS" + ("" if done == len(todo) else
                                                            f"; NOT DONE: {todo[done][0]} N={todo[done][1]} onward"))
        for r in bad[:10]:
            log(gpu_bench.short(r))
    (out / "round2-summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
