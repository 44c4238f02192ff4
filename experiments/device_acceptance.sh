#!/usr/bin/env bash
# The GPU acceptance run: only commands a user types (spmm-study through `python3 -m spmm_study`, pytest),
# in three parts that each fit one 10-minute call on the GPU machine. Each step has its own time budget; a
# step that fails or runs out of time is recorded and the next one runs. Everything lands in $ACC (logs,
# result folders) and is packed into $OUT/acceptance-partN.tgz; the summary (one line per step) is printed
# last and saved as $OUT/summary-partN.txt. experiments/device_docs.py turns the result folders into the
# GPU docs page and data/reference/ files.
#
# Before the call, on the CPU machine:   bash experiments/device_prep.sh
# The call (carry .whl .dlmc .spdnn .sputnik .champion):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && \
#   export PYTHONPATH=$PWD:/tmp/site && bash experiments/device_acceptance.sh 1
#
# Part 1: environment, pytest -m gpu, check on every GPU rung, the chooser against every GPU baseline on the
#         ladder matrix (N = 256, 2048), infer --device gpu with every engine at 60000 inputs.
# Part 2: infer with every engine (the resident chain, torch, cupy, the champion), labs 7 and 8 in full, the
#         sparse convolution and 2:4 / half-precision sections, the chooser over a layer-0 slice, the docs' GPU
#         commands. Part 3: the champion beside the fused chain, ncu profiles, any other section.
set -uo pipefail
PART=${1:-1}
ACC=${ACC:-/tmp/acc}
OUT=${OUT:-/tmp/out}
mkdir -p "$ACC" "$OUT"
ROOT=$PWD
export SPMM_STUDY_DLMC=$ROOT/.dlmc SPMM_STUDY_SPDNN=$ROOT/.spdnn SPMM_STUDY_CHAMPION=$ROOT/.champion
[ -f "$ROOT/.sputnik/libspmm_study_sputnik-sm90.so" ] && export SPMM_STUDY_SPUTNIK_LIB=$ROOT/.sputnik/libspmm_study_sputnik-sm90.so
export PYTHONUNBUFFERED=1 COLUMNS=160
SUMMARY=$ACC/summary-part$PART.txt
: > "$SUMMARY"
S="python3 -m spmm_study"
LADDER=dlmc:transformer/magnitude_pruning/0.9/body_decoder_layer_0_ffn_conv1_fully_connected

DEADLINE=$(( $(date +%s) + ${CALL_BUDGET_S:-550} ))  # the whole part ends here, packed, inside the 600 s call

step() {  # step NAME BUDGET_S command...: run, log to $ACC/NAME.log, one summary line
  local name=$1 budget=$2; shift 2
  local t0; t0=$(date +%s)
  local left=$(( DEADLINE - t0 ))
  if [ "$left" -lt 15 ]; then echo "$name skipped: no time left in this call" | tee -a "$SUMMARY"; return; fi
  [ "$budget" -gt "$left" ] && budget=$left
  timeout "$budget" "$@" > "$ACC/$name.log" 2>&1
  local rc=$?
  local tail; tail=$(grep -v '^\s*$' "$ACC/$name.log" | tail -1 | cut -c1-150)
  echo "$name rc=$rc $(( $(date +%s) - t0 ))s | $tail" | tee -a "$SUMMARY"
}

section() {  # section NAME BUDGET: experiments/device/NAME.sh, by the feature's owner (CLI commands only)
  local f=experiments/device/$1.sh
  [ -e "$f" ] || { echo "section-$1 missing: $f" | tee -a "$SUMMARY"; return; }
  mkdir -p "$ACC/$1"
  step "section-$1" "${2:-100}" env ACC="$ACC" S="$S" bash "$f"
}

finish() {
  tar czf "$OUT/acceptance-part$PART.tgz" -C "$ACC" . 2>/dev/null
  cp "$SUMMARY" "$OUT/"
  echo "=== summary part $PART"; cat "$SUMMARY"
}
trap finish EXIT

if [ "$PART" = 1 ]; then
  step env 60 bash -c "nvidia-smi; $S info --json"
  step pytest-gpu 230 python3 -m pytest -m gpu -q -rfE -p no:cacheprovider tests/
  grep -E "passed|failed" "$ACC/pytest-gpu.log" | tail -1 > "$ACC/pytest-gpu-summary.txt"
  rungs=$($S list --device gpu --json | python3 -c 'import json,sys; print(" ".join(v["id"] for v in json.load(sys.stdin) if not v["baseline"]))')
  step check-rungs 100 bash -c "printf '%s\n' $rungs | xargs -P 4 -I{} sh -c '$S check -v {} > $ACC/check-{}.log 2>&1; echo {} rc=\$? \$(tail -1 $ACC/check-{}.log)'"
  step compare-ladder 90 $S compare -v gpu.csr.auto,gpu.dense.cublas,gpu.dense.cublas_tf32,gpu.csr.cusparse,gpu.csr.torch,gpu.csr.sputnik \
       --device gpu -m $LADDER -n 256 -n 2048 --rounds 3 --out "$ACC/compare-ladder"
  step run-ladder 60 $S run -v auto -v gpu.csr.row_split -v gpu.csr.tc_window --device gpu -m $LADDER -n 2048 --wide --out "$ACC/run-ladder"
  step infer-ours 120 $S infer --device gpu -e fused -e unfused --batch 60000 --repeats 3 --out "$ACC/infer-ours"
  step infer-libs 100 $S infer --device gpu -e torch -e cupy --batch 60000 --repeats 3 --out "$ACC/infer-libs"
elif [ "$PART" = 2 ]; then  # in order of what waits most on it; each budget is cut to what is left
  step infer-all 100 $S infer --device gpu -e fused -e unfused -e torch -e champion --batch 60000 --repeats 3 \
       --out "$ACC/infer-all"
  section labs 90
  section half24 100
  section conv 80
  step compare-layer0 100 $S compare -v gpu.csr.auto,gpu.csr.sputnik,gpu.dense.cublas,gpu.dense.cublas_tf32,gpu.csr.tc_window \
       --device gpu $(python3 experiments/device_docs.py layer0-specs) -n 256 -n 2048 --rounds 1 --repeats 5 \
       --min-time 0.01 --warmup 0.01 --out "$ACC/compare-layer0"
  step docs-gpu-commands 60 python3 experiments/device_docs.py run-commands --log-dir "$ACC/docs"
  step infer-cupy 40 $S infer --device gpu -e cupy --batch 60000 --repeats 2 --out "$ACC/infer-cupy"
else  # part 3: what part 2 left, and the profiles
  section champion 120
  step ncu-chain 60 ncu --clock-control none -k regex:layer --launch-skip 2 --launch-count 2 --section SpeedOfLight \
       --section MemoryWorkloadAnalysis $S infer --device gpu -e fused --batch 60000 --layers 4 --repeats 1 --no-save
  step ncu-auto-2048 60 ncu --clock-control none -k regex:. --launch-skip 3 --launch-count 1 --section SpeedOfLight \
       --section MemoryWorkloadAnalysis $S run -v auto --device gpu -m $LADDER -n 2048 --repeats 3 --min-time 0 \
       --warmup 0 --no-save
  for f in experiments/device/*.sh; do
    name=$(basename "$f" .sh)
    case " champion labs conv half24 " in *" $name "*) continue ;; esac
    section "$name" 100
  done
fi
