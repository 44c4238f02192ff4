# The HPEC'20 champion as an engine of `infer` (issue 20, item 3), at the challenge's size: 1024 neurons x 120
# layers, the 1200 official inputs replicated to 60000, beside the fused GPU chain in the same run (the ratio
# from one run, one GPU). Run by experiments/device_acceptance.sh (part 2) as `bash experiments/device/champion.sh`
# with $ACC set, from the repository's root, with the champion's singlegpu/ + utils/ in .champion/ and the
# challenge folder in .spdnn/ (experiments/device_prep.sh puts them there; both ignored, carried). Only
# commands a user types.
# Expected run time on an H100: about 1 minute (infer reads the 120 TSV layers, ~15 s; the champion's build
# ~10 s; 3 runs of its program, ~3 s each, mostly reading its files; the fused chain's compile and 3 runs).
# If that run fails (exit 2: a refusal or a failure, not a DIFFER), the champion runs alone (another ~40 s).
# Writes $ACC/champion/: with-fused.txt + with-fused/ (summary.json, layers.csv, live_inputs.png), and
# alone.txt + alone/ only when the fallback ran.
champion_device_section() {
    local dst="$ACC/champion" s="${S:-python3 -m spmm_study}" rc rc_alone="not run"
    mkdir -p "$dst"
    unset NUMBA_ENABLE_CUDASIM
    echo "nvcc: $(command -v nvcc || echo missing); GPU: $(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>&1 | head -1)"
    $s infer --device gpu -e fused -e champion --champion-src .champion/singlegpu --spdnn-root .spdnn \
        --batch 60000 --repeats 3 --out "$dst/with-fused" --force > "$dst/with-fused.txt" 2>&1
    rc=$?
    cat "$dst/with-fused.txt"
    local log="$dst/with-fused.txt"
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
        $s infer --device gpu -e champion --champion-src .champion/singlegpu --spdnn-root .spdnn \
            --batch 60000 --repeats 3 --out "$dst/alone" --force > "$dst/alone.txt" 2>&1
        rc_alone=$?
        cat "$dst/alone.txt"
        log="$dst/alone.txt"
    fi
    echo "champion beside fused rc=$rc, alone rc=$rc_alone |$(grep -h '^ *champion (' "$log" | head -1)"
}
champion_device_section
