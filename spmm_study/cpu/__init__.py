"""The CPU ladder (Numba): one file per loop nest, in ladder order, plus the vendor baselines.

Adding a variant is one new file and one import line here.
"""

from spmm_study.cpu import (  # noqa: F401  (imported for registration)
    baselines,
    k01_dense_naive,
    k10_csr_rowwise,
)
