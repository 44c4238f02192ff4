# 2:4 on the sparse tensor cores and half precision (issue 27), beside dense cuBLAS in the same precision, and
# the transformer FFN block end to end. Run by experiments/device_acceptance.sh (part 2) as
# `bash experiments/device/half24.sh` with $ACC set, from the repository's root, $SPMM_STUDY_DLMC holding the
# layer-0 transformer matrices (.dlmc). Only commands a user types.
# Expected run time on an H100: about 2 minutes — four compare runs (~15-25 s each: torch import, the mma.sp
# rung's NVRTC + LTO link, float64 references by BLAS) and two ffn runs at N = 256, 2048, 8192 (~10 s each).
# Writes $ACC/half24/: compare-{fp16,bf16,int8,fp32}/ (result folders) and .txt tables, ffn-{float32,float16}.json
# (rows) and .err; the last lines printed are one summary line per step.
half24_device_section() {
    local dst="$ACC/half24" s="${S:-python3 -m spmm_study}" rc summary=""
    mkdir -p "$dst"
    unset NUMBA_ENABLE_CUDASIM
    local l0=dlmc:transformer/magnitude_pruning/0.8/body_encoder_layer_0_ffn_conv
    # the FFN shapes pruned 2:4 (2048x512 and 512x2048) and a GEMM where the math dominates (4096x4096 at 2:4),
    # all at N = 8192 (the largest FFN GEMM of the target)
    local ffn="-m ${l0}1_fully_connected -m ${l0}2_fully_connected"
    local fast="--rounds 1 --repeats 5 --min-time 0.02 --warmup 0.02"
    for dt in fp16 bf16 int8; do
        timeout 60 $s compare -v gpu.nm24.cusparselt,gpu.nm24.mma_sp,gpu.dense.torch --baseline gpu.dense.torch \
            --device gpu --dtype $dt \
            --prune 2:4 $ffn -m synthetic:nm:4096x4096 -n 8192 $fast --out "$dst/compare-$dt" --force \
            > "$dst/compare-$dt.txt" 2>&1
        rc=$?
        cat "$dst/compare-$dt.txt"
        summary="$summary
compare $dt rc=$rc"
    done
    # float32 for the record: cuSPARSELt as TF32 (torch refused float32 on the H200: then a SKIP row), rung 21
    # (2:4 on CUDA cores) and cuBLAS TF32 on the first FFN shape
    timeout 45 $s compare -v gpu.nm24.cusparselt,gpu.nm24.structured,gpu.dense.cublas_tf32 \
        --baseline gpu.dense.cublas_tf32 --device gpu \
        --prune 2:4 -m ${l0}1_fully_connected -n 2048 $fast --out "$dst/compare-fp32" --force > "$dst/compare-fp32.txt" 2>&1
    rc=$?
    cat "$dst/compare-fp32.txt"
    summary="$summary
compare fp32 rc=$rc"
    # the FFN block, DLMC encoder layer 0 at 90%: fused sparse rungs (fp32) against dense fp32, then 2:4 on the
    # sparse tensor cores (cuSPARSELt) against dense cuBLAS in fp16
    for dt in float32 float16; do
        timeout 60 $s ffn --device gpu --dtype $dt --sparsity 0.9 -n 256 -n 2048 -n 8192 --repeats 10 --json \
            > "$dst/ffn-$dt.json" 2> "$dst/ffn-$dt.err"
        rc=$?
        cat "$dst/ffn-$dt.json" "$dst/ffn-$dt.err"
        summary="$summary
ffn $dt rc=$rc"
    done
    echo "$summary"
}
half24_device_section
