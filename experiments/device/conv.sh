#!/usr/bin/env bash
# The course study's Table 3 on the GPU (docs/conv.md, issue 26): the eight sparse 3x3 convolutions of pruned
# ResNet-50 (real DLMC weights when $SPMM_STUDY_DLMC holds rn50/, synthetic ones of the same shapes otherwise),
# gpu.conv.im2col / im2col_fused / direct beside dense im2col + cuBLAS and torch's cuDNN conv2d (when torch
# with CUDA is installed; otherwise the sweep skips it with a warning naming why, and its column reads -),
# interleaved in 2 rounds; fused and direct at 1 and 2 pixels per thread (the table keeps the better).
# Sourced by experiments/device_acceptance.sh part 2 with ACC (output root) and S (the CLI) set; runs alone as
#   ACC=/tmp/acc bash experiments/device/conv.sh
# Expected run time on an H100: about 90 s (numba-cuda compiles of the three rungs, two pixels settings, and
# the im2col/pad kernels ~30 s; 112 measurements ~45 s; the float64 references on the host ~5 s).
# Outputs under $ACC/conv/: table3-gpu/ (rows.jsonl, results.csv, meta.json), sweep.log, table3-gpu.md.
set -uo pipefail
ACC=${ACC:-/tmp/acc}
S=${S:-python3 -m spmm_study}
OUT_CONV=$ACC/conv
mkdir -p "$OUT_CONV"
export COLUMNS=${COLUMNS:-200}
unset NUMBA_ENABLE_CUDASIM

$S sweep experiments/table3_gpu.toml --out "$OUT_CONV/table3-gpu" --force > "$OUT_CONV/sweep.log" 2>&1
echo "conv sweep rc=$?"
$S report "$OUT_CONV/table3-gpu" --kind conv --markdown > "$OUT_CONV/table3-gpu.md" 2>&1
echo "conv report rc=$?"
tail -n 30 "$OUT_CONV/sweep.log"
cat "$OUT_CONV/table3-gpu.md"
