# The HPEC'20 champion as an engine of `infer` (issue 20, item 3), at the challenge's size: 1024 neurons x 120
# layers, the 1200 official inputs replicated to 60000. Run by experiments/device_acceptance.sh (part 2) as
# `bash experiments/device/champion.sh` with $ACC set, from the repository's root, with the champion's
# singlegpu/ + utils/ in .champion/ and the challenge folder in .spdnn/ (experiments/device_prep.sh puts them
# there; both ignored, carried). Commands a user types only.
# Expected run time on an H100: about 1.5 minutes of its 150 s budget (each infer reads the 120 TSV layers,
# ~15 s; the champion's first build ~10 s, cached after; 3 runs of its program ~3 s each, mostly reading its
# files; the second command puts the fused GPU chain beside it, for the ratio from one run).
# Writes $ACC/champion/: alone.txt + alone/ (summary.json, layers.csv, live_inputs.png), with-fused.txt.
champion_device_section() {
    local dst="$ACC/champion" s="${S:-python3 -m spmm_study}" rc1 rc2
    mkdir -p "$dst"
    unset NUMBA_ENABLE_CUDASIM
    echo "nvcc: $(command -v nvcc || echo missing); GPU: $(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>&1 | head -1)"
    $s infer --device gpu -e champion --champion-src .champion/singlegpu --spdnn-root .spdnn \
        --batch 60000 --repeats 3 --out "$dst/alone" --force > "$dst/alone.txt" 2>&1
    rc1=$?
    cat "$dst/alone.txt"
    $s infer --device gpu -e fused -e champion --champion-src .champion/singlegpu --spdnn-root .spdnn \
        --batch 60000 --repeats 3 --no-save > "$dst/with-fused.txt" 2>&1
    rc2=$?
    cat "$dst/with-fused.txt"
    echo "champion alone rc=$rc1, beside fused rc=$rc2 |$(grep -h '^ *champion (' "$dst/alone.txt" | head -1)"
}
champion_device_section
