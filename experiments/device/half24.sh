# 2:4 on the sparse tensor cores and half precision (issue 27), beside dense cuBLAS in the same precision, and
# the transformer FFN block end to end. Run by experiments/device_acceptance.sh (part 2) as
# `bash experiments/device/half24.sh` with $ACC set, from the repository's root, $SPMM_STUDY_DLMC holding the
# layer-0 transformer matrices (.dlmc). Only commands a user types.
# Expected run time on an H100: about 2 minutes — four compare runs (~20-30 s each: torch import, the mma.sp
# rung's NVRTC + LTO link, float64 references by BLAS, checks of 4096x8192 outputs) and two ffn runs at
# N = 256, 2048, 8192 (~10-15 s each); in order of importance, so a cut-short run keeps fp16 and the FFN block.
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
    compare_dt() {  # cuSPARSELt, rung 23 and cuBLAS in one precision, speedups against cuBLAS
        timeout 60 $s compare -v gpu.nm24.cusparselt,gpu.nm24.mma_sp,gpu.dense.torch --baseline gpu.dense.torch \
            --device gpu --dtype "$1" --prune 2:4 $ffn -m synthetic:nm:4096x4096 -n 8192 $fast \
            --out "$dst/compare-$1" --force > "$dst/compare-$1.txt" 2>&1
        rc=$?
        cat "$dst/compare-$1.txt"
        summary="$summary
compare $1 rc=$rc"
    }
    # in order of what matters most, so that a run cut short by its time budget keeps the first ones:
    # fp16 (cuSPARSELt, rung 23, cuBLAS), the FFN block in fp16 and fp32, then bf16, int8, fp32
    compare_dt fp16
    for dt in float16 float32; do
        # the FFN block, DLMC encoder layer 0 at 90%: 2:4 on the sparse tensor cores (cuSPARSELt) against dense
        # cuBLAS in fp16; the fused sparse rungs against dense in fp32
        timeout 60 $s ffn --device gpu --dtype $dt --sparsity 0.9 -n 256 -n 2048 -n 8192 --repeats 10 --json \
            > "$dst/ffn-$dt.json" 2> "$dst/ffn-$dt.err"
        rc=$?
        cat "$dst/ffn-$dt.json" "$dst/ffn-$dt.err"
        summary="$summary
ffn $dt rc=$rc"
    done
    compare_dt bf16
    compare_dt int8
    # float32 for the record: cuSPARSELt as TF32 (torch refused float32 on the H200: then a SKIP row), rung 21
    # (2:4 on CUDA cores) and cuBLAS TF32 on the first FFN shape
    timeout 45 $s compare -v gpu.nm24.cusparselt,gpu.nm24.structured,gpu.dense.cublas_tf32 \
        --baseline gpu.dense.cublas_tf32 --device gpu \
        --prune 2:4 -m ${l0}1_fully_connected -n 8192 $fast --out "$dst/compare-fp32" --force > "$dst/compare-fp32.txt" 2>&1
    rc=$?
    cat "$dst/compare-fp32.txt"
    summary="$summary
compare fp32 rc=$rc"
    echo "$summary"
}
half24_device_section
