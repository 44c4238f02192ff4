#!/usr/bin/env bash
# Lay out, in git-ignored folders of the checkout, what the GPU machine needs and cannot fetch (run from the
# repo root on the CPU machine, before experiments/device_acceptance.sh is sent there):
#   .whl/      numpy 2.4 for the device's Python 3.12 (its numpy 2.5 breaks numba-cuda 0.30)
#   .dlmc/     the layer-0 transformer matrices and the RN50 3x3 layers of the DLMC subset
#   .spdnn/    the Sparse DNN challenge files (1024 neurons x 120 layers, 1200 inputs, categories)
#   .sputnik/  Sputnik built here with nvcc for sm_90 (experiments/build_sputnik.py), if its source is given
#   .champion/ the HPEC'20 champion's checkout (singlegpu/, utils/), if given: never committed (no licence)
# Environment: DLMC=/path/to/dlmc SPDNN=/path/to/spdnn SPUTNIK_SRC=/path/to/sputnik CHAMPION_SRC=/path/to/checkout
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
for d in .whl .dlmc .spdnn .sputnik .champion; do grep -qxF "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
: "${DLMC:?set DLMC to the DLMC folder}" "${SPDNN:?set SPDNN to the Sparse DNN challenge folder}"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl numpy==2.4.6
rm -rf .dlmc .spdnn && mkdir -p .dlmc
for s in 0.8 0.9 0.95 0.98; do
  mkdir -p .dlmc/transformer/magnitude_pruning/$s
  cp "$DLMC"/transformer/magnitude_pruning/$s/*layer_0*.smtx .dlmc/transformer/magnitude_pruning/$s/
done
for s in 0.9 0.95; do
  mkdir -p .dlmc/rn50/magnitude_pruning/$s
  cp "$DLMC"/rn50/magnitude_pruning/$s/bottleneck_2_block_group*_1_1.smtx .dlmc/rn50/magnitude_pruning/$s/ 2>/dev/null || true
done
cp -r "$SPDNN" .spdnn
if [ -n "${SPUTNIK_SRC:-}" ]; then
  mkdir -p .sputnik
  cp "$(SPMM_STUDY_SPUTNIK_SRC=$SPUTNIK_SRC PYTHONPATH=. ${PYTHON:-python3} experiments/build_sputnik.py build)" .sputnik/libspmm_study_sputnik-sm90.so
fi
if [ -n "${CHAMPION_SRC:-}" ]; then
  rm -rf .champion && mkdir -p .champion && cp -r "$CHAMPION_SRC"/singlegpu "$CHAMPION_SRC"/utils .champion/
fi
du -sh .whl .dlmc .spdnn .sputnik .champion 2>/dev/null || true
