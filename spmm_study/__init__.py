"""spmm-study: a command-line laboratory for sparse x dense matrix multiplication (SpMM).

Importing the package compiles nothing and imports no numba: kernels live in ``spmm_study.cpu`` and
``spmm_study.gpu`` and are loaded by the registry when first asked for.
"""

__version__ = "0.1.0"
