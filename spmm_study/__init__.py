"""spmm-study: a command-line laboratory for sparse x dense matrix multiplication (SpMM).

Importing the package compiles nothing and imports no numba: kernels live in ``spmm_study.cpu`` and
``spmm_study.gpu`` and are loaded by the registry when first asked for. The notebook API (``measure``,
``variants``, ``load_results``; see ``spmm_study.api``) loads on first use too::

    import spmm_study as ss
    row = ss.measure("synthetic:magnitude:ffn1:0.9", variant="tiled", n=256)
"""

from spmm_study.version import __version__

__all__ = ["measure", "variants", "load_results", "__version__"]


def __getattr__(name: str):
    if name in ("measure", "variants", "load_results"):
        from spmm_study import api

        return getattr(api, name)
    raise AttributeError(f"module 'spmm_study' has no attribute {name!r}")
