"""The Python API, for notebooks: ``import spmm_study as ss``.

    import spmm_study as ss
    row = ss.measure("synthetic:magnitude:ffn1:0.9", variant="tiled", n=256, threads=1, tile_n=64)
    row, c = ss.measure(scipy_matrix, b=my_b, variant="rowwise", return_c=True)
    ss.variants(device="cpu")                    # what measure() can run: ids, loop orders, params
    df = ss.load_results("results/run/")         # every row of a result folder, as a pandas DataFrame

``measure`` goes through the same harness as ``spmm-study run``: the output is checked against float64 (a
wrong result is a FAIL row, never a speed), timed without compile noise, set beside the modelled bytes. It
returns the flat result row as a dict (the fields of ``results.Result``). Bad input raises the project's
``SpmmError`` subclasses, with the same one-line messages the CLI prints.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from spmm_study.errors import FormatError, ParamError


def variants(device: str | None = None, format: str | None = None) -> list[dict]:
    """Every variant in ladder order (CPU then GPU), as ``spmm-study list --json`` shows it."""
    from spmm_study import registry

    return [v.describe() for v in registry.select(device=device, format=format)]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "layout")


# torch dtypes numpy lacks, and the numpy dtype that holds them exactly (bfloat16 is float32's top half)
_WIDEN = {"torch.bfloat16": "float32", "torch.float16": "float16"}
_SPARSE = ("torch.sparse_coo", "torch.sparse_csr", "torch.sparse_csc", "torch.sparse_bsr", "torch.sparse_bsc")


def _from_torch(t: Any, what: str, sparse_ok: bool = True):
    """A torch tensor as a numpy array (dense) or a scipy.sparse matrix (sparse layouts, converted from their
    index arrays: a 30000² tensor of 3 nonzeros stays 3 nonzeros, it used to be made dense, 3.7 GB). bfloat16
    values are widened to float32 (exact); complex, quantized and other dtypes numpy cannot hold are refused
    in one line, as are batched or hybrid sparse tensors."""
    import torch

    from spmm_study.limits import check_alloc

    t = t.detach()
    layout, dtype = str(t.layout), str(t.dtype)
    if t.dim() != 2:
        raise FormatError(f"{what} must be a 2-D tensor, got {t.dim()}-D of shape {tuple(t.shape)}")
    if t.is_complex() or t.is_quantized or dtype in ("torch.bool",) or not (t.is_floating_point() or dtype in (
            "torch.int8", "torch.uint8", "torch.int16", "torch.int32", "torch.int64")):
        raise FormatError(f"{what} has torch dtype {dtype}; expected real numbers (float32, float64, bfloat16, "
                          "float16 or an integer type)")
    target = getattr(torch, _WIDEN.get(dtype, dtype.split(".")[1]))
    if layout == "torch.strided":
        check_alloc(t.numel() * max(t.element_size(), torch.tensor([], dtype=target).element_size()) * 2,
                    f"{what} as a numpy array ({tuple(t.shape)})")
        return t.cpu().to(target).numpy()
    if layout not in _SPARSE:
        raise FormatError(f"{what} has torch layout {layout}; expected a dense (strided) or sparse tensor")
    if not sparse_ok:
        raise FormatError(f"{what} must be dense; got a {layout} tensor (pass B.to_dense() if it fits)")
    import scipy.sparse as sp

    if t.dense_dim() != 0 and layout not in ("torch.sparse_bsr", "torch.sparse_bsc"):
        raise FormatError(f"{what} is a hybrid sparse tensor ({t.dense_dim()} dense dimensions); expected plain 2-D")
    t = t.cpu()
    if layout != "torch.sparse_coo":
        t = t.to_sparse_coo()  # csr/csc/bsr/bsc → coo through their index arrays (no dense step)
    t = t.coalesce()
    idx = t.indices().numpy()
    vals = t.values().to(target).numpy()
    if layout in ("torch.sparse_bsr", "torch.sparse_bsc"):  # a block's padding zeros are not nonzeros of A
        keep = vals != 0
        idx, vals = idx[:, keep], vals[keep]
    check_alloc(idx.nbytes * 3 + vals.nbytes * 3, f"{what} as a scipy matrix ({vals.size:,} nonzeros)")
    return sp.coo_matrix((vals, (idx[0], idx[1])), shape=tuple(t.shape)).tocsr()


def _as_csr(a: Any):
    """A spec string, a scipy.sparse matrix, or a dense numpy array or torch tensor → (CSR, label)."""
    from spmm_study.formats import CSR

    if isinstance(a, str):
        from spmm_study import sources

        loaded = sources.load(a)
        return loaded.a, loaded.spec
    kind = "numpy"
    if _is_torch(a):  # a torch tensor, dense or sparse, on any device: numpy or scipy, never densified
        a = _from_torch(a, "A")
        kind = "torch"
    try:
        import scipy.sparse as sp

        if sp.issparse(a):
            csr = CSR.from_scipy(a)
            return csr, f"scipy:{a.format}:{csr.m}x{csr.k}"
    except ImportError:  # pragma: no cover - scipy is a dependency
        pass
    if not isinstance(a, np.ndarray):
        raise FormatError(f"A must be a matrix spec, a scipy.sparse matrix or a 2-D array, got {type(a).__name__}")
    if a.dtype.kind not in "fiub":
        raise FormatError(f"A has dtype {a.dtype}; expected real numbers")
    csr = CSR.from_dense(a).validate()
    return csr, f"{kind}:{csr.m}x{csr.k}"


def _as_b(b: Any, k: int, dtype) -> np.ndarray:
    """The user's dense B (numpy or torch), checked against A and copied into the aligned allocator."""
    from spmm_study.memory import aligned_empty

    if _is_torch(b):
        b = _from_torch(b, "B", sparse_ok=False)
    b = np.asarray(b)
    if b.ndim != 2 or b.shape[0] != k:
        raise ParamError(f"B must be {k}xN for A with {k} columns, got shape {b.shape}")
    if b.dtype.kind not in "fiub":
        raise ParamError(f"B has dtype {b.dtype}; expected real numbers")
    out = aligned_empty(b.shape, dtype)
    out[...] = b
    return out


def problem_for(a: Any, b: Any = None, n: int = 256, dtype: str = "float32", seed: int = 0):
    """The Problem ``measure`` runs: A as given; B as given (its columns are N) or seeded K×N."""
    from spmm_study.problem import Problem, check_size, parse_dtype

    dtype = parse_dtype(dtype)
    if isinstance(a, str) and a.startswith("conv:"):  # a convolution (docs/conv.md): its input is seeded, N its own
        from spmm_study import sources
        from spmm_study.conv import ConvProblem

        if b is not None:
            raise ParamError("a conv: spec seeds its own input images; give no B")
        loaded = sources.load(a, seed=seed)
        return ConvProblem.make(loaded.a, loaded.conv, dtype, seed, matrix=loaded.spec)
    csr, label = _as_csr(a)
    if b is None:
        return Problem.make(csr, n, dtype, seed, matrix=label)
    n = int(np.shape(b)[1]) if np.ndim(b) == 2 else 0
    check_size(csr.m, csr.k, n, csr.nnz, dtype)
    return Problem(csr.astype(dtype), _as_b(b, csr.k, dtype), seed=seed, matrix=label)


def measure(a: Any, b: Any = None, variant: str = "tiled", n: int = 256, *, device: str = "cpu",
            dtype: str = "float32", seed: int = 0, threads: int | None = None, repeats: int = 10,
            min_time: float = 0.2, warmup: float = 0.1, cache: str = "cold", return_c: bool = False,
            **params) -> dict | tuple[dict, np.ndarray]:
    """Measure ``variant`` on C = A·B and return its result row (a dict; ``status`` says PASS or FAIL).

    ``a``: a matrix spec (``"dlmc:..."``, ``"synthetic:magnitude:ffn1:0.9"``, ``"mtx:FILE"``), a scipy.sparse
    matrix, or a dense numpy array / torch tensor (its zeros are dropped). ``b``: a dense K×N array (its
    columns set N), or None for the seeded B of ``n`` columns. ``params``: the variant's Params
    (``tile_n=64``; see ``variants()``). ``return_c``: also return C as computed (after the last check)."""
    from spmm_study import registry
    from spmm_study.environment import machine_label
    from spmm_study.errors import DeviceUnavailable
    from spmm_study.harness import HarnessConfig
    from spmm_study.harness import measure as harness_measure
    from spmm_study.timing import TimingConfig

    v = registry.get(variant, device=device)
    reason = v.unavailable_reason()
    if reason:
        raise DeviceUnavailable(f"{v.id} is unavailable: {reason}")
    timing = TimingConfig(repeats=repeats, min_time_s=min_time, warmup_s=warmup, cache=cache)
    problem = problem_for(a, b, n, dtype, seed)
    cfg = HarnessConfig(timing=timing, threads=threads, machine=machine_label(v.device))
    kept: list[np.ndarray] = []
    row = asdict(harness_measure(v, problem, params, cfg, keep_output=kept.append))
    if return_c:
        return row, (kept[0] if kept else None)
    return row


def load_results(path: str | Path, expand: bool = True):
    """Every row of a result file or folder (``rows.jsonl``, ``results.csv``, run directories, searched
    recursively). With pandas installed, a DataFrame whose ``params`` and ``info`` JSON are also expanded
    into ``params.<name>`` and ``info.<name>`` columns; without it, the list of row dicts."""
    from spmm_study import report

    rows = report.load_rows([path])
    try:
        import pandas as pd
    except ImportError:
        return rows
    if expand:
        for r in rows:
            for field in ("params", "info"):
                try:
                    extra = json.loads(r.get(field) or "{}")
                except (TypeError, json.JSONDecodeError):
                    extra = {}
                if isinstance(extra, dict):
                    r.update({f"{field}.{k}": v for k, v in extra.items()})
    return pd.DataFrame(rows)
