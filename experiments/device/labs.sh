#!/usr/bin/env bash
# Labs 7 and 8 (the GPU labs) at full size on the GPU, through the CLI, graded by `report --kind class`.
# Sourced by experiments/device_acceptance.sh part 2 with ACC (output root) and S (the CLI) set; runs alone as
#   ACC=/tmp/acc bash experiments/device/labs.sh
# Expected run time on an H100: about 90 s, 2 minutes at worst (lab 7 and lab 8 40-60 s each: numba-cuda
# compiles of the rungs, the measurements, up to 40 s of re-timing each for the questions on time; report ~5 s).
# Outputs under $ACC/labs/: lab7/ and lab8/ (rows.jsonl, answers.jsonl, meta.json, PNGs, the printed lab as
# lab7.log / lab8.log) and grading/ (grades.csv, class_predictions.png).
set -uo pipefail
ACC=${ACC:-/tmp/acc}
S=${S:-python3 -m spmm_study}
OUT_LABS=$ACC/labs
mkdir -p "$OUT_LABS"
export COLUMNS=${COLUMNS:-160}

$S lab 7 --student device --force --out "$OUT_LABS/lab7" \
   --predict row_thread_over_row_col=4 --predict smem_over_row_col=1 --predict vec1_over_vec4=1.5 \
   > "$OUT_LABS/lab7.log" 2>&1
echo "lab 7 rc=$?"
$S lab 8 --student device --force --out "$OUT_LABS/lab8" \
   --predict swizzle_over_subwarp=1 --predict row_split_over_subwarp=1 --predict dispatch_share_smallN=50 \
   > "$OUT_LABS/lab8.log" 2>&1
echo "lab 8 rc=$?"
$S report --kind class "$OUT_LABS/lab7" "$OUT_LABS/lab8" --plots "$OUT_LABS/grading" > "$OUT_LABS/grading.log" 2>&1
echo "report rc=$?"
tail -n 40 "$OUT_LABS/lab7.log" "$OUT_LABS/lab8.log" "$OUT_LABS/grading.log"
