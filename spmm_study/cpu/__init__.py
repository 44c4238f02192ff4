"""The CPU ladder (Numba): one file per loop nest, in ladder order, plus the vendor baselines.

Adding a variant is one new file and one import line here.
"""

from spmm_study.cpu import (  # noqa: F401  (imported for registration)
    baselines,
    baselines_conv,
    baselines_ext,
    k01_dense_naive,
    k02_dense_order,
    k03_dense_tiled,
    k04_dense_tiled_par,
    k10_csr_rowwise,
    k11_csr_dot,
    k12_csr_rowwise_par,
    k13_csr_tiled,
    k14_csr_vec,
    k15_csr_rowblock,
    k16_csr_auto,
    k17_csr_panel,
    k20_coo_scatter,
    k21_coo_par,
    k22_csc_outer,
    k30_sell,
    k31_bsr,
    k32_nm24,
    k40_csr_codegen,
    k50_csr_tiled_fused,
    k60_conv_im2col,
    k61_conv_im2col_fused,
    k62_conv_direct,
    k63_conv_direct_tiled,
    k64_conv_im2col_tiled,
)
