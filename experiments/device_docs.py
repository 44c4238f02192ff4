"""Helpers of the GPU acceptance run (experiments/device_acceptance.sh) that are easier in Python than bash.

    python3 experiments/device_docs.py run-commands --log-dir DIR   # the docs' GPU commands, as written
    python3 experiments/device_docs.py layer0-specs                 # -m dlmc:... for every layer-0 matrix
    python3 experiments/device_docs.py collect ACC... --label h100-2026-12-07   # → data/reference/gpu-acceptance-*
    python3 experiments/device_docs.py render                       # → docs/gpu.md's acceptance section

``run-commands`` takes every ``spmm-study …`` line of the fenced code blocks of README.md and docs/*.md that
runs on the GPU (``--device gpu`` or a ``gpu.`` variant id) and runs it as written (``spmm-study`` is
``python3 -m spmm_study`` there), one log per command, a summary line each; it exits 1 if any failed.
``collect`` reads the unpacked acceptance folders (one per call) and writes the committed reference files:
``gpu-acceptance-LABEL.csv`` (every result row of compare/run: variant, problem, status, device median, host
time per call…), ``gpu-infer-LABEL.csv`` (one row per infer engine at 60000 inputs) and
``gpu-acceptance-LABEL.json`` (GPU, driver, date, each step's summary line). ``render`` turns the newest of
those into the generated section of docs/gpu.md (between ``<!-- device-acceptance:start/end -->``); a test
checks the committed page equals what ``render`` writes.
``layer0-specs`` lists layer-0 transformer matrices under $SPMM_STUDY_DLMC (magnitude pruning, every sparsity
present): by default four shapes per sparsity (both FFN layers, two attention projections), ``--whole`` the 64
that data/reference/gpu-bench-h200.csv was measured on.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def doc_commands(paths: list[Path]) -> list[str]:
    """The ``spmm-study`` command lines of the fenced code blocks of ``paths`` (comments after # dropped,
    backslash continuations joined)."""
    out = []
    for path in paths:
        inside = False
        pending = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("```"):
                inside = not inside
                continue
            if not inside:
                continue
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1].rstrip() + " "
                continue
            pending = ""
            text = re.sub(r"\s+#\s.*$", "", text).strip()
            if text.startswith("spmm-study "):
                out.append(text)
    return out


def is_gpu(command: str) -> bool:
    return "--device gpu" in command or re.search(r"\bgpu\.[a-z0-9]+\.", command) is not None


def run_commands(log_dir: Path) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    commands = [c for c in dict.fromkeys(doc_commands(paths)) if is_gpu(c)]
    failed = 0
    for i, command in enumerate(commands):
        argv = [sys.executable, "-m", "spmm_study", *shlex.split(command)[1:]]
        t0 = time.perf_counter()
        with open(log_dir / f"cmd{i:02d}.log", "w", encoding="utf-8") as log:
            log.write(f"$ {command}\n")
            log.flush()
            rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, timeout=300).returncode
        failed += rc != 0
        print(f"rc={rc} {time.perf_counter() - t0:6.1f}s  {command}", flush=True)
    print(f"{len(commands) - failed} of {len(commands)} GPU commands of the docs ran")
    return 1 if failed else 0


# a slice of the layer-0 set that fits one call: per sparsity both FFN shapes and two attention projections
SLICE = ("decoder_layer_0_ffn_conv1", "decoder_layer_0_ffn_conv2", "encoder_layer_0_self_attention_multihead_attention_q",
         "decoder_layer_0_encdec_attention_multihead_attention_k")


def layer0_specs(whole: bool = False) -> list[str]:
    root = Path(os.environ.get("SPMM_STUDY_DLMC", ROOT / ".dlmc")) / "transformer" / "magnitude_pruning"
    specs = []
    for path in sorted(root.glob("*/*layer_0*.smtx")):
        if not whole and not any(key in path.name for key in SLICE):
            continue
        specs += ["-m", f"dlmc:{path.relative_to(root.parent.parent).with_suffix('').as_posix()}"]
    return specs


REF = ROOT / "data" / "reference"
ROW_KEYS = ("variant", "matrix", "m", "k", "n", "nnz", "sparsity", "dtype", "params", "status", "rel_error", "median_s",
            "p20_s", "p80_s", "host_dispatch_s", "gflops", "machine", "timestamp", "tags")
INFER_KEYS = ("engine", "device", "batch", "edges", "time_s", "edges_per_s", "categories", "match", "kernel_s",
              "host_s", "setup_s")


def collect(accs: list[Path], label: str) -> list[Path]:
    import csv
    import json

    rows, infer, steps, env = [], [], [], {}
    for acc in accs:
        for res in sorted(acc.glob("*/results.csv")) + sorted(acc.glob("*/*/results.csv")):
            step = res.parent.relative_to(acc).as_posix()
            with open(res, newline="", encoding="utf-8") as f:
                rows += [{"step": step, **{k: r.get(k, "") for k in ROW_KEYS}} for r in csv.DictReader(f)]
        for summ in sorted(acc.glob("*/summary.json")) + sorted(acc.glob("*/*/summary.json")):
            d = json.loads(summ.read_text(encoding="utf-8"))
            for e in d.get("engines", []):
                info = e.get("info") or {}
                infer.append({"step": summ.parent.relative_to(acc).as_posix(), "machine": d.get("machine", ""),
                              **{k: e.get(k, "") for k in INFER_KEYS if k not in ("categories", "kernel_s", "host_s")},
                              "categories": len(e.get("categories", [])), "kernel_s": info.get("kernel_s", ""),
                              "host_s": info.get("host_s", "")})
        for summ in sorted(acc.glob("summary-part*.txt")):
            steps += [ln for ln in summ.read_text(encoding="utf-8").splitlines() if ln.strip()]
        envlog = acc / "env.log"
        if envlog.is_file():
            text = envlog.read_text(encoding="utf-8", errors="replace")
            m = re.search(r"Driver Version: (\S+)\s+CUDA Version: (\S+)", text)
            g = re.search(r'"gpu_name":\s*"([^"]+)"', text) or re.search(r"\|\s+\d+\s+(NVIDIA [^|]+?)\s{2,}", text)
            env.update({"driver": m.group(1), "cuda": m.group(2)} if m else {})
            env.update({"gpu": g.group(1).strip()} if g else {})
        pyt = acc / "pytest-gpu-summary.txt"
        if pyt.is_file():
            env["pytest_gpu"] = pyt.read_text(encoding="utf-8").strip()
    if not rows and not infer:
        raise SystemExit(f"no result rows or infer summaries under {', '.join(map(str, accs))}")
    out = []
    for name, data, keys in ((f"gpu-acceptance-{label}.csv", rows, ("step", *ROW_KEYS)),
                             (f"gpu-infer-{label}.csv", infer, ("step", "machine", *INFER_KEYS))):
        path = REF / name
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
            w.writeheader()
            w.writerows(data)
        out.append(path)
    path = REF / f"gpu-acceptance-{label}.json"
    path.write_text(json.dumps({"label": label, **env, "steps": steps}, indent=1) + "\n", encoding="utf-8")
    return out + [path]


def _fmt_t(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if x >= 1e-3 else f"{x * 1e6:.3g} µs"


def _geo(xs: list[float]) -> float:
    import math

    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def _section(label: str) -> list[str]:
    import csv
    import json
    from collections import defaultdict

    meta = json.loads((REF / f"gpu-acceptance-{label}.json").read_text(encoding="utf-8"))
    with open(REF / f"gpu-acceptance-{label}.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "PASS"]
    infer_path = REF / f"gpu-infer-{label}.csv"
    with open(infer_path, newline="", encoding="utf-8") as f:
        infer = list(csv.DictReader(f))
    gpu = meta.get("gpu", "?")
    out = [f"### {gpu}, {label.rsplit('-', 3)[-3:] and '-'.join(label.split('-')[-3:])}", "",
           f"Driver {meta.get('driver', '?')}, CUDA {meta.get('cuda', '?')}; rows in `data/reference/gpu-acceptance-"
           f"{label}.csv` and `gpu-infer-{label}.csv`, made by `experiments/device_acceptance.sh` (only CLI "
           "commands). Device time (CUDA events, cold L2 unless said), host time per call apart.", ""]
    if meta.get("note"):
        out += [meta["note"], ""]
    if meta.get("pytest_gpu"):
        out += [f"`pytest -m gpu` on this GPU: {meta['pytest_gpu'].split(' in ')[0]}.", ""]
    # the chooser against every baseline on the ladder matrix
    ladder = [r for r in rows if r["step"] == "compare-ladder"]
    if ladder:
        out += ["The chooser against every GPU baseline, ladder matrix (DLMC transformer ffn_conv1, 2048×512, 90%):",
                "", "| N | variant | device time | host per call | vs cuBLAS fp32 | vs Sputnik |", "|---|---|---|---|---|---|"]
        for n in sorted({int(r["n"]) for r in ladder}):
            by = {r["variant"]: r for r in ladder if int(r["n"]) == n}
            med = {v: _med([float(x["median_s"]) for x in ladder if int(x["n"]) == n and x["variant"] == v]) for v in by}
            for v in sorted(by, key=lambda v: med[v]):
                host = _med([float(x["host_dispatch_s"]) for x in ladder if int(x["n"]) == n and x["variant"] == v])
                ratio = lambda b: f"{med[b] / med[v]:.2f}×" if b in med else "-"  # noqa: E731
                out.append(f"| {n} | `{v}` | {_fmt_t(med[v])} | {_fmt_t(host)} | {ratio('gpu.dense.cublas')} | "
                           f"{ratio('gpu.csr.sputnik')} |")
        out.append("")
    # the chooser over the layer-0 slice
    l0 = [r for r in rows if r["step"] == "compare-layer0"]
    if l0:
        cell = defaultdict(dict)
        for r in l0:
            cell[(r["matrix"], int(r["n"]))][r["variant"]] = float(r["median_s"])
        out += ["The chooser over a slice of the layer-0 DLMC set (4 shapes × 4 sparsities, magnitude pruning), "
                "geometric mean (worst) of the other's time over `gpu.csr.auto`'s:", "",
                "| N | problems | vs Sputnik | vs cuBLAS fp32 | vs cuBLAS TF32 |", "|---|---|---|---|---|"]
        for n in sorted({k[1] for k in cell}):
            per = [c for (m, nn), c in cell.items() if nn == n and "gpu.csr.auto" in c]
            parts = []
            for b in ("gpu.csr.sputnik", "gpu.dense.cublas", "gpu.dense.cublas_tf32"):
                xs = [c[b] / c["gpu.csr.auto"] for c in per if b in c]
                parts.append(f"{_geo(xs):.2f}× ({min(xs):.2f}×)" if xs else "-")
            out.append(f"| {n} | {len(per)} | " + " | ".join(parts) + " |")
        out += ["", "Tensor cores on pruned weights (`gpu.csr.tc_window`, TF32) against dense cuBLAS TF32, "
                "by sparsity (geometric mean of TF32 time / rung 22 time):", "", "| N | sparsity | rung 22 vs TF32 |",
                "|---|---|---|"]
        for n in sorted({k[1] for k in cell}):
            for sp in sorted({m.split("/")[2] for (m, nn) in cell if nn == n}):
                xs = [c["gpu.dense.cublas_tf32"] / c["gpu.csr.tc_window"] for (m, nn), c in cell.items()
                      if nn == n and m.split("/")[2] == sp and "gpu.csr.tc_window" in c and "gpu.dense.cublas_tf32" in c]
                if xs:
                    out.append(f"| {n} | {sp} | {_geo(xs):.2f}× |")
        out.append("")
    if infer:
        best = {}
        for r in infer:  # one row per engine: the last step that ran it
            best[r["engine"]] = r
        champ = float(best["champion"]["time_s"]) if "champion" in best else None
        torch_t = float(best["torch"]["time_s"]) if "torch" in best else None
        out += [f"`infer --device gpu`, the Sparse DNN challenge network (1024 neurons × 120 layers) at "
                f"{best[next(iter(best))]['batch']} inputs (the 1200 official ones × 50), median of 3 chains:", "",
                "| engine | time | TeraEdges/s | categories | truth | vs champion | vs torch |",
                "|---|---|---|---|---|---|---|"]
        for eng, r in sorted(best.items(), key=lambda kv: float(kv[1]["time_s"])):
            t = float(r["time_s"])
            out.append(f"| {eng} | {_fmt_t(t)} | {float(r['edges_per_s']) / 1e12:.3g} | {r['categories']} | "
                       f"{'match' if r['match'] == 'True' else 'DIFFER'} | "
                       f"{f'{champ / t:.2f}×' if champ else '-'} | {f'{torch_t / t:.2f}×' if torch_t else '-'} |")
        if "champion" in best and best["champion"].get("kernel_s"):
            k = float(best["champion"]["kernel_s"])
            out += ["", f"The champion's own KERNEL TIME: {_fmt_t(k)} of its {_fmt_t(champ)} (the rest is its host "
                    "loop: copies and the compaction of live inputs between layers)."]
        out.append("")
    out += ["Steps of the run (exit code, seconds, last line):", "", "```"] + meta.get("steps", []) + ["```", ""]
    return out


def _med(xs: list[float]) -> float:
    import statistics

    return statistics.median(xs)


def render(page: Path | None = None) -> Path:
    labels = sorted(p.name[len("gpu-acceptance-"):-len(".json")] for p in REF.glob("gpu-acceptance-*.json"))
    body = ["<!-- device-acceptance:start -->",
            "<!-- generated by experiments/device_docs.py render from data/reference/gpu-acceptance-*; do not edit -->",
            ""]
    for label in labels:
        body += _section(label)
    body.append("<!-- device-acceptance:end -->")
    page = page or ROOT / "docs" / "gpu.md"
    text = page.read_text(encoding="utf-8") if page.is_file() else "# The GPU\n\n## Acceptance runs\n\n"
    start, end = "<!-- device-acceptance:start -->", "<!-- device-acceptance:end -->"
    if start in text and end in text:
        text = text[:text.index(start)] + "\n".join(body) + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
    page.write_text(text, encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rc = sub.add_parser("run-commands")
    rc.add_argument("--log-dir", type=Path, required=True)
    ls = sub.add_parser("layer0-specs")
    ls.add_argument("--whole", action="store_true", help="all 64 matrices (default: 4 shapes per sparsity)")
    co = sub.add_parser("collect")
    co.add_argument("acc", nargs="+", type=Path, help="unpacked acceptance-partN.tgz folders")
    co.add_argument("--label", required=True, help="gpu-date, e.g. h100-2026-12-07")
    sub.add_parser("render")
    args = ap.parse_args(argv)
    if args.cmd == "run-commands":
        return run_commands(args.log_dir)
    if args.cmd == "collect":
        for p in collect(args.acc, args.label):
            print(f"wrote {p.relative_to(ROOT)}")
        return 0
    if args.cmd == "render":
        print(f"wrote {render().relative_to(ROOT)}")
        return 0
    print(shlex.join(layer0_specs(args.whole)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
