"""The GPU ladder's tables, generated from result files only (docs/ARCHITECTURE.md §11.8).

experiments/make_docs.py calls ``ladder_table``, ``ratio_table`` and ``chooser_table`` for docs/gpu.md (a
library of that script: run ``python experiments/make_docs.py``).

Reads data/reference/gpu-ladder.csv (every rung on one matrix), data/reference/gpu-bench.csv (every DLMC
layer-0 matrix × N: baselines and candidate configs measured in the same run) and gpu-env.json (device,
copy bandwidth: the roof of the byte floor).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "data" / "reference"


def rows(name):
    path = REF / name
    return list(csv.DictReader(open(path))) if path.exists() else []


def f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def geomean(xs):
    xs = [x for x in xs if x == x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def short_matrix(spec):
    m = re.search(r"/(0\.\d+)/body_(\w+?)_layer_0_(.*)_fully_connected", spec)
    if not m:
        return spec
    part = m.group(3).replace("self_attention_multihead_attention_", "self_").replace(
        "encdec_attention_multihead_attention_", "encdec_").replace("output_transform", "out")
    return f"{m.group(2)[:3]}.{part}"


def params_short(p):
    d = json.loads(p or "{}")
    return " ".join(f"{k}={v}" for k, v in sorted(d.items()))


def info(r):
    return json.loads(r.get("info") or "{}")


def ladder_table(env):
    data = rows("gpu-ladder.csv")
    if not data:
        return "_no ladder results yet_"
    roof = env.get("copy_tbps_read_plus_write", 3.0) * 1e12
    out = []
    by_n = defaultdict(list)
    for r in data:
        by_n[int(r["n"])].append(r)
    m0 = data[0]
    out.append(f"Matrix `{m0['matrix'].split(':', 1)[-1]}` (M={m0['m']}, K={m0['k']}, nnz={m0['nnz']}), fp32, "
               f"device: {env.get('name', 'GPU')}; time = median device time (CUDA events, launches hidden behind "
               f"a spin kernel), cold L2 unless noted; floor = compulsory bytes at {roof / 1e12:.1f} TB/s.")
    for n in sorted(by_n):
        rs = by_n[n]
        cub = next((f(r["median_s"]) for r in rs if r["variant"] == "gpu.dense.cublas" and r["cache"] == "cold"), float("nan"))
        out.append("")
        out.append(f"**N = {n}**")
        out.append("")
        out.append("| rung | variant | params | cold µs | warm µs | host dispatch µs | vs cuBLAS | % of byte floor | regs | smem B | local B |")
        out.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        seen = {}
        for r in rs:
            seen.setdefault((r["variant"], r["params"]), {})[r["cache"]] = r
        for (vid, p), modes in seen.items():
            c = modes.get("cold") or modes.get("warm")
            w = modes.get("warm")
            if c["status"] != "PASS":
                out.append(f"| | `{vid}` | {params_short(p)} | {c['status']}: {c['message'][:60]} | | | | | | | |")
                continue
            t = f(c["median_s"])
            floor = f(c["bytes_compulsory"]) / roof
            i = info(c)
            note = " (†)" if "timing" in i else ""
            wnote = " (†)" if w and "timing" in info(w) else ""
            out.append(f"| {vid.split('.')[-1]} | `{vid}` | {params_short(p)} | {t * 1e6:.1f}{note} | "
                       f"{f(w['median_s']) * 1e6 if w else float('nan'):.1f}{wnote} | {f(c['host_dispatch_s']) * 1e6:.0f} | "
                       f"{cub / t:.2f}× | {100 * floor / t:.0f}% | {i.get('regs_per_thread', '')} | "
                       f"{i.get('smem_static_bytes', '')} | {i.get('local_bytes_per_thread', '')} |")
    nm = rows("gpu-nm24.csv")
    if nm:
        out.append("")
        out.append(f"**2:4 rung** (not 2:4, the DLMC matrix above gives a SKIP row): on `synthetic:nm:ffn1` "
                   f"(M={nm[0]['m']}, K={nm[0]['k']}, nnz={nm[0]['nnz']}, exactly 2 of every 4), cold L2:")
        out.append("")
        out.append("| variant | params | N | µs | vs cuBLAS |")
        out.append("| --- | --- | ---: | ---: | ---: |")
        for n in sorted({int(r["n"]) for r in nm}):
            rs = [r for r in nm if int(r["n"]) == n and r["status"] == "PASS"]
            cub = next((f(r["median_s"]) for r in rs if r["variant"] == "gpu.dense.cublas"), float("nan"))
            for r in rs:
                mark = " (†)" if "timing" in info(r) else ""
                out.append(f"| `{r['variant']}` | {params_short(r['params'])} | {n} | {f(r['median_s']) * 1e6:.1f}{mark} | "
                           f"{cub / f(r['median_s']):.2f}× |")
    out.append("")
    out.append("(†) the library synchronises inside the call, so no spin can hide its launch: its time is the sum "
               "of its kernels' durations from CUPTI (torch.profiler). Host dispatch is the host time of one "
               "`run()` (enqueue only); when it exceeds the device time, a real program is launch-bound.")
    return "\n".join(out)


def ratio_table(env, name="gpu-bench.csv"):
    data = rows(name)
    if not data:
        return "_no benchmark results yet_"
    roof = env.get("copy_tbps_read_plus_write", 3.0) * 1e12
    groups = defaultdict(list)
    for r in data:
        groups[(r["matrix"], int(r["n"]))].append(r)
    out = [f"Device: {env.get('name', 'GPU')}, fp32, cold L2, same run for all columns. `best` = fastest of the "
           "candidate configs measured on that problem (all correct against float64). Ratios > 1 mean the numba "
           "kernel is faster. Floor = compulsory bytes at the measured copy bandwidth.", ""]
    out.append("| sparsity | matrix | M×K | N | best µs | winner | cuBLAS µs | cuSPARSE (cupy) µs | cuSPARSE (torch) µs | ×cuBLAS | ×cupy | ×torch | % floor |")
    out.append("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    agg = defaultdict(lambda: defaultdict(list))
    fails = 0
    for (spec, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][0].split("/")[2], kv[0][0], kv[0][1])):
        fails += sum(r["status"] != "PASS" for r in rs)
        ok = [r for r in rs if r["status"] == "PASS"]
        base = {r["variant"]: f(r["median_s"]) for r in ok if r["baseline"] == "True"}
        cands = [r for r in ok if is_candidate(r)]
        if not cands:
            continue
        best = min(cands, key=lambda r: f(r["median_s"]))
        t = f(best["median_s"])
        sp = spec.split("/")[2]
        rc = base.get("gpu.dense.cublas", float("nan")) / t
        rs_ = base.get("gpu.csr.cusparse", float("nan")) / t
        rt = base.get("gpu.csr.torch", float("nan")) / t
        floor = f(best["bytes_compulsory"]) / roof
        for key in (("N", n), ("sparsity N", (sp, n))):
            agg[key]["cublas"].append(rc)
            agg[key]["cupy"].append(rs_)
            agg[key]["torch"].append(rt)
            agg[key]["floor"].append(floor / t)
        out.append(f"| {sp} | {short_matrix(spec)} | {best['m']}×{best['k']} | {n} | {t * 1e6:.1f} | "
                   f"{best['variant'].split('.')[-1]} {params_short(best['params'])} | "
                   f"{base.get('gpu.dense.cublas', float('nan')) * 1e6:.1f} | {base.get('gpu.csr.cusparse', float('nan')) * 1e6:.1f} | "
                   f"{base.get('gpu.csr.torch', float('nan')) * 1e6:.1f} | {rc:.2f} | {rs_:.2f} | {rt:.2f} | {100 * floor / t:.0f}% |")
    summary = ["", "**Geometric means** (best numba kernel vs each library; higher is better):", "",
               "| group | problems | ×cuBLAS | ×cuSPARSE (cupy) | ×cuSPARSE (torch) | mean % of byte floor |",
               "| --- | ---: | ---: | ---: | ---: | ---: |"]
    def order(k):
        return (k[0], k[1]) if k[0] == "N" else (k[0], float(k[1][0]), k[1][1])

    for key in sorted(agg, key=order):
        a = agg[key]
        label = f"N = {key[1]}" if key[0] == "N" else f"{key[1][0]}, N = {key[1][1]}"
        summary.append(f"| {label} | {len(a['cublas'])} | {geomean(a['cublas']):.2f} | {geomean(a['cupy']):.2f} | "
                       f"{geomean(a['torch']):.2f} | {100 * sum(a['floor']) / len(a['floor']):.0f}% |")
    summary.append("")
    summary.append(f"Rows that did not PASS in the benchmark file: {fails}.")
    return "\n".join(summary[1:] + ["", "<details><summary>Every matrix</summary>", ""] + out + ["", "</details>"])


def is_candidate(r) -> bool:
    """A row of the oracle's pool: the project's own fp32 configurations (not a library, not the chooser,
    not reduced precision such as plain TF32)."""
    return (r["baseline"] != "True" and r["variant"] != "gpu.csr.auto"
            and not info(r).get("precision"))


BASELINE_NAMES = {"gpu.dense.cublas": "cuBLAS fp32", "gpu.dense.cublas_tf32": "cuBLAS TF32",
                  "gpu.csr.cusparse": "cuSPARSE (cupy)", "gpu.csr.torch": "cuSPARSE (torch)",
                  "gpu.csr.sputnik": "Sputnik"}


def chooser_table(data, dispatch=(), env=None) -> str:
    """The issue-13 headline: the chooser as run (gpu.csr.auto rows) and the oracle beside it, against every
    library, per N; kernel time and host dispatch apart (numba's launch and the bound one)."""
    env = env or {}
    groups = defaultdict(list)
    for r in data:
        if r["status"] == "PASS":
            groups[(r["matrix"], int(r["n"]))].append(r)
    per_n = defaultdict(lambda: defaultdict(list))
    kernel_us, disp_us = defaultdict(list), defaultdict(list)
    for (spec, n), rs in groups.items():
        auto = [r for r in rs if r["variant"] == "gpu.csr.auto"]
        cands = [r for r in rs if is_candidate(r)]
        if not auto or not cands:
            continue
        ta, to = f(auto[0]["median_s"]), min(f(r["median_s"]) for r in cands)
        kernel_us[n].append(ta * 1e6)
        disp_us[n].append(f(auto[0]["host_dispatch_s"]) * 1e6)
        per_n[n]["oracle/chooser"].append(to / ta)
        for r in rs:
            if r["baseline"] == "True" and r["variant"] in BASELINE_NAMES:
                per_n[n][(r["variant"], "chooser")].append(f(r["median_s"]) / ta)
                per_n[n][(r["variant"], "oracle")].append(f(r["median_s"]) / to)
    if not per_n:
        return "_no gpu.csr.auto rows yet_"
    bound = defaultdict(list)
    for r in dispatch:
        if r["status"] == "PASS" and "bound" in info(r).get("launch", "")[:5]:
            bound[int(r["n"])].append(f(r["host_dispatch_s"]) * 1e6)
    median = lambda xs: sorted(xs)[len(xs) // 2] if xs else float("nan")  # noqa: E731
    ns = sorted(per_n)
    out = [f"Device: {env.get('name', 'GPU')}, fp32 (TF32 where named), cold L2, one run. Chooser = "
           "`gpu.csr.auto` as run; oracle = fastest fp32 configuration measured on the problem itself. "
           "Geometric means of library time / our time (> 1: ours is faster).", "",
           "| against | " + " | ".join(f"N={n} chooser | N={n} oracle" for n in ns) + " |",
           "| --- | " + " | ".join("---: | ---:" for _ in ns) + " |"]
    for vid, name in BASELINE_NAMES.items():
        if not any(per_n[n][(vid, "chooser")] for n in ns):
            continue
        cells = [f"{geomean(per_n[n][(vid, 'chooser')]):.2f} | {geomean(per_n[n][(vid, 'oracle')]):.2f}" for n in ns]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "| N | problems | chooser / oracle | median kernel µs | median host dispatch µs (numba) | "
                "(bound launch) |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in ns:
        out.append(f"| {n} | {len(kernel_us[n])} | {geomean(per_n[n]['oracle/chooser']):.3f} | "
                   f"{median(kernel_us[n]):.1f} | {median(disp_us[n]):.1f} | {median(bound[n]):.1f} |")
    return "\n".join(out)
