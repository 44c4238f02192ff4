"""Helpers of the GPU acceptance run (experiments/device_acceptance.sh) that are easier in Python than bash.

    python3 experiments/device_docs.py run-commands --log-dir DIR   # the docs' GPU commands, as written
    python3 experiments/device_docs.py layer0-specs                 # -m dlmc:... for every layer-0 matrix

``run-commands`` takes every ``spmm-study …`` line of the fenced code blocks of README.md and docs/*.md that
runs on the GPU (``--device gpu`` or a ``gpu.`` variant id) and runs it as written (``spmm-study`` is
``python3 -m spmm_study`` there), one log per command, a summary line each; it exits 1 if any failed.
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
                pending = text[:-1] + " "
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rc = sub.add_parser("run-commands")
    rc.add_argument("--log-dir", type=Path, required=True)
    ls = sub.add_parser("layer0-specs")
    ls.add_argument("--whole", action="store_true", help="all 64 matrices (default: 4 shapes per sparsity)")
    args = ap.parse_args(argv)
    if args.cmd == "run-commands":
        return run_commands(args.log_dir)
    print(shlex.join(layer0_specs(args.whole)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
