"""The element types a problem can have, and the few facts about each that the rest of the code asks.

* ``float32``, ``float64``: what every rung computes in (CPU and GPU ladders).
* ``float16``, ``bfloat16``: half precision as tensor cores take it — inputs in 16 bits, products exact in
  fp32 (11×11 and 8×8 significant bits fit in fp32's 24), sums accumulated in fp32, C written in the input
  type (as torch and cuBLAS write it) or in fp32 (the accumulator). numpy has float16; bfloat16 comes from
  the ``ml_dtypes`` package (the numpy extension types of JAX and TensorFlow).
* ``int8``: quantized inputs, int32 accumulation and an int32 C; exact, so checked exactly.

Which variant takes which type is declared by the variant (``@variant(dtypes=...)``); a variant given a type it
cannot take gives a SKIP row that says so, never a wrong or truncated C. The tolerances live in ``problem.py``.
"""

from __future__ import annotations

import numpy as np

from spmm_study.errors import ParamError

FLOATS = ("float32", "float64")  # what a variant takes unless it declares more
HALVES = ("float16", "bfloat16")
INTEGERS = ("int8",)
ALL = FLOATS + HALVES + INTEGERS
ALIASES = {"fp32": "float32", "f32": "float32", "fp64": "float64", "f64": "float64", "double": "float64",
           "fp16": "float16", "half": "float16", "f16": "float16", "bf16": "bfloat16", "i8": "int8"}


def bfloat16() -> np.dtype:
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - a dependency; a broken install still gets one line
        raise ParamError("bfloat16 needs the ml_dtypes package (pip install ml_dtypes)") from None
    return np.dtype(ml_dtypes.bfloat16)


def parse(name) -> np.dtype:
    """A dtype name (or alias, or numpy dtype) → the numpy dtype; unknown names are one ParamError."""
    if isinstance(name, np.dtype) or isinstance(name, type):
        try:
            dt = np.dtype(name)
        except TypeError:
            dt = None
        if dt is not None and dt.name in ALL:
            return dt
        raise ParamError(f"unknown dtype {name!r}; choose one of {', '.join(ALL)}")
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key == "bfloat16":
        return bfloat16()
    if key in ALL:
        return np.dtype(key)
    raise ParamError(f"unknown dtype {name!r}; choose one of {', '.join(ALL)}")


def is_integer(dtype) -> bool:
    return np.dtype(dtype).kind in "iu"


def out_dtype(dtype) -> np.dtype:
    """The type C is held in for inputs of ``dtype``: int32 for int8 (the accumulator), else the input type."""
    return np.dtype(np.int32) if is_integer(dtype) else np.dtype(dtype)


def finfo_max(dtype) -> float:
    """The largest finite value of a float type (bfloat16 included), or of an integer type."""
    dt = np.dtype(dtype)
    if is_integer(dt):
        return float(np.iinfo(dt).max)
    if dt.name == "bfloat16":
        import ml_dtypes

        return float(ml_dtypes.finfo(dt).max)
    return float(np.finfo(dt).max)


def finfo_tiny(dtype) -> float:
    """The smallest normal number of a float type (0 for integers): the absolute slack of a product that underflows."""
    dt = np.dtype(dtype)
    if is_integer(dt):
        return 0.0
    if dt.name == "bfloat16":
        import ml_dtypes

        return float(ml_dtypes.finfo(dt).tiny)
    return float(np.finfo(dt).tiny)


def quantize_int8(x: np.ndarray) -> np.ndarray:
    """Symmetric per-tensor int8 quantization, the common one for weights: round(x · 127 / max|x|). The problem
    is then the integer product itself (checked exactly); the scale is not carried, as nothing here dequantizes."""
    x = np.asarray(x, dtype=np.float64)
    big = float(np.abs(x).max()) if x.size else 0.0
    if big == 0.0:
        return np.zeros(x.shape, np.int8)
    return np.clip(np.rint(x * (127.0 / big)), -127, 127).astype(np.int8)


def cast(x: np.ndarray, dtype) -> np.ndarray:
    """``x`` in ``dtype``: a plain cast (round to nearest) for floats, ``quantize_int8`` for int8."""
    dt = np.dtype(dtype)
    if is_integer(dt) and np.asarray(x).dtype.kind == "f":
        return quantize_int8(x)
    return np.asarray(x).astype(dt)
