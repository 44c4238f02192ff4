"""Every GPU kernel compiles to PTX for sm_90 (the simulator never type-checks), and the wide-load rungs
really emit 16-byte loads with no local memory (register arrays spilled to memory would show as .local).

Needs numba-cuda with NVVM, no GPU. Skipped under the simulator (compile_ptx is the real compiler)."""

import os

import pytest

pytest.importorskip("numba_cuda")
pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"),
                                reason="PTX needs the real compiler, not the simulator")


def _cases():
    from numba.cuda import types as t

    f32, i32, i64, u8, i8 = t.float32, t.int32, t.int64, t.uint8, t.int8
    a1 = lambda d: d[::1]  # noqa: E731
    a2 = lambda d: d[:, ::1]  # noqa: E731
    csr = (a1(i32), a1(i32), a1(f32))
    from spmm_study.gpu import (_rowvec, k01_dense_naive, k02_dense_tiled, k10_csr_row_thread, k11_csr_row_col,
                                k12_csr_block_smem, k16_csr_nnz_split, k17_csr_densify_tile, k18_csr_l1_panel, k19_csr_row_split, k20_coo_atomic,
                                k21_structured24, timing)

    from spmm_study.gpu import k50_csr_row_split_fused, k51_csr_swizzle_fused

    zk, nk = k16_csr_nnz_split.kernels(4, 2, "float32")
    epi = (a1(f32), i64, i64, f32)  # bias, rule, act, ymax
    spin, scribble = timing._kernels()
    return {
        "dense_naive": (k01_dense_naive.kernel("float32"), (a2(f32), a2(f32), a2(f32)), None),
        "dense_tiled": (k02_dense_tiled.kernel(16, "float32"), (a2(f32), a2(f32), a2(f32)), None),
        "row_thread": (k10_csr_row_thread.kernel("float32"), (*csr, a2(f32), a2(f32)), None),
        "row_col": (k11_csr_row_col.kernel("float32"), (*csr, a2(f32), a2(f32)), None),
        "block_smem": (k12_csr_block_smem.kernel(128, "float32", "int32"), (*csr, a2(f32), a2(f32)), None),
        "warp_vec": (_rowvec.kernel(32, 4, 2, 2, False, "float32"), (*csr, a1(f32), a1(f32), i64, a1(i32)), 16),
        "warp_vec_u4": (_rowvec.kernel(32, 4, 1, 4, False, "float32"), (*csr, a1(f32), a1(f32), i64, a1(i32)), 16),
        "swizzle_u8": (_rowvec.kernel(16, 4, 2, 8, True, "float32"), (*csr, a1(f32), a1(f32), i64, a1(i32)), 16),
        "subwarp_v2": (_rowvec.kernel(8, 2, 1, 1, False, "float32"), (*csr, a1(f32), a1(f32), i64, a1(i32)), 8),
        "swizzle": (_rowvec.kernel(16, 4, 1, 2, True, "float32"), (*csr, a1(f32), a1(f32), i64, a1(i32)), 16),
        "rowvec_f64": (_rowvec.kernel(32, 2, 2, 2, False, "float64"),
                       (a1(i32), a1(i32), a1(t.float64), a1(t.float64), a1(t.float64), i64, a1(i32)), 16),
        "nnz_split_zero": (zk, (a1(i32), a1(f32), i64), None),
        "nnz_split": (nk, (*csr, a1(f32), a1(f32), i64, a1(i32), a1(i32), a1(i8), i64), 16),
        "densify_tile": (k17_csr_densify_tile.kernel(4, 8, 4, 32, 2, 2, "float32"), (a1(i32), *(a1(f32),) * 3, i64, i64, i64, i64), 16),
        "densify_tile_1buf": (k17_csr_densify_tile.kernel(4, 16, 2, 64, 2, 1, "float32"),
                              (a1(i32), *(a1(f32),) * 3, i64, i64, i64, i64), 16),
        "l1_panel": (k18_csr_l1_panel.kernel(16, 4, 1, 4, "float32"),
                     (*csr, a1(f32), a1(f32), i64, a1(i32), i64, i64), 16),
        "row_split": (k19_csr_row_split.kernel(4, 4, 4, "float32"), (*csr, a1(f32), a1(f32), i64), 16),
        "row_split_fused": (k50_csr_row_split_fused.kernel(4, 4, 4, "float32"), (*csr, a1(f32), a1(f32), i64, *epi), 16),
        "swizzle_fused": (k51_csr_swizzle_fused.kernel(16, 4, 2, 4, "float32"),
                          (*csr, a1(f32), a1(f32), i64, a1(i32), *epi), 16),
        "coo_atomic": (k20_coo_atomic.kernel("float32"), (a1(i32), a1(i32), a1(f32), a2(f32), a1(f32), i64), None),
        "structured24": (k21_structured24.kernel(4, "float32"), (a2(f32), a2(u8), a1(f32), a1(f32), i64), 16),
        "spin": (spin, (i64,), None),
        "scribble": (scribble, (a1(f32), f32), None),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiles_to_ptx_for_sm90(name):
    from numba import cuda

    kern, sig, width = CASES[name]
    ptx, _ = cuda.compile_ptx(kern.py_func, sig, cc=(9, 0))
    lines = ptx.splitlines()
    assert any(".entry" in ln for ln in lines)
    # register arrays must stay in registers: no local-memory traffic
    assert not any("ld.local" in ln or "st.local" in ln for ln in lines), f"{name}: local memory in PTX"
    if width == 16:
        assert any(("ld.global.v4" in ln or "ld.global.v2.f64" in ln) for ln in lines), f"{name}: no 16-byte loads"
    if width == 8:
        assert any("ld.global.v2.f32" in ln for ln in lines), f"{name}: no 8-byte loads"
