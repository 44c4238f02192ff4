"""The GPU ladder (numba-cuda): one file per kernel idea, plus cuBLAS/cuSPARSE baselines through cupy.

Kernel files must import ``numba.cuda`` lazily (inside a cached factory), so that registering and listing
GPU variants works, fast, on machines without numba-cuda or a GPU.
"""

from spmm_study.gpu import (  # noqa: F401,E402  (imported for registration)
    baselines,
    baselines_conv,
    k01_dense_naive,
    k02_dense_tiled,
    k10_csr_row_thread,
    k11_csr_row_col,
    k12_csr_block_smem,
    k13_csr_warp_vec,
    k14_csr_subwarp,
    k15_csr_swizzle,
    k16_csr_nnz_split,
    k17_csr_densify_tile,
    k18_csr_l1_panel,
    k19_csr_row_split,
    k20_coo_atomic,
    k21_structured24,
    k22_csr_tc_window,
    k23_nm24_mma_sp,
    k30_csr_auto,
    k50_csr_row_split_fused,
    k51_csr_swizzle_fused,
    k60_conv_im2col,
    k61_conv_im2col_fused,
    k62_conv_direct,
    sputnik,
)
