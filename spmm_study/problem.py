"""The problem C = A·B: a sparse A (M×K, CSR), a seeded dense B (K×N), a dtype, and a float64 reference.

One truth per fact (docs/ARCHITECTURE.md §11.10): the tolerances, the check of N and the memory estimate live here; the
seeding of A's values and of B lives in ``seeding.py``.

Correctness criterion (``check``), for a result C against the float64 reference R = A·B computed with
sparse semantics (zeros of A contribute nothing, so an all-zero row must give exact zeros):

* every entry of C is finite (outputs are poisoned with NaN before each run, so an unwritten entry fails);
* the relative Frobenius error ‖C−R‖/‖R‖ is at most ``TOLERANCES[dtype name].rel_fro``;
* every entry satisfies |C−R| ≤ ``elem``·(|A|·|B|)ᵢⱼ (+ the dtype's smallest normal number where that
  scale is not zero, for products that underflow), the classic bound scale of a floating-point dot product,
  so a single wrong entry fails even in a large matrix, and an entry whose every term is zero (an empty row
  of A, an all-zero column of B) must be exactly 0: 1e-31 left in an empty row is a FAIL.

float32 sums of a few hundred terms land near 1e-7 relative; ``rel_fro`` = 1e-4 leaves room for any
summation order yet fails TF32 (≈3e-4) and any wrong or missing entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from spmm_study import dtypes
from spmm_study.errors import ParamError, ResourceError
from spmm_study.formats import CSR
from spmm_study.memory import ALIGN, aligned_empty, aligned_full, available_memory_bytes  # noqa: F401  (cpu/_simd imports the allocator from here)
from spmm_study.seeding import check_seed, seeded_b


@dataclass(frozen=True)
class Tolerance:
    rel_fro: float
    elem: float


TOLERANCES = {  # by dtype name (bfloat16's numpy dtype comes from ml_dtypes)
    "float32": Tolerance(rel_fro=1e-4, elem=1e-3),
    "float64": Tolerance(rel_fro=1e-12, elem=1e-10),
    # Half precision, as tensor cores compute it: the inputs *are* the problem (the float64 reference is built
    # from the fp16/bf16 values themselves, so their rounding costs nothing here); products are exact in fp32,
    # sums are fp32 (K terms: ~K·2^-24, 1.2e-4 at K = 2048), and C is rounded once to the input type: half an
    # ulp, 2^-11 = 4.9e-4 of |C| for fp16 and 2^-8 = 3.9e-3 for bf16, |C| ≤ (|A|·|B|). The bounds are 4×
    # that rounding: a C written in fp32 passes with room, a bf16-rounded C fails the fp16 bound, and one
    # dropped or doubled product fails wherever it is not tiny against its row's others.
    "float16": Tolerance(rel_fro=2e-3, elem=2e-3),
    "bfloat16": Tolerance(rel_fro=1.6e-2, elem=1.6e-2),
    # int8 inputs (quantized, dtypes.quantize_int8) with int32 sums and C: exact, every entry equal
    "int8": Tolerance(rel_fro=0.0, elem=0.0),
}
# Tensor-core TF32 (10-bit mantissa): A and B are each rounded to 2^-11 relative (4.9e-4), so one product is
# off by up to ~2^-10; accumulation stays fp32. A variant that computes in TF32 says so (Prepared.precision)
# and is checked against this instead of fp32's tolerance; the 3×TF32 split is held to fp32's.
PRECISIONS = {"tf32": Tolerance(rel_fro=2e-3, elem=4e-3)}
MAX_N = 1 << 24
# an integer C cannot hold NaN: it is poisoned with int32's minimum, which no int8 product reaches
# (|sum| ≤ 127·127·K < 2^31 for K < 133,000), and an entry still holding it is unwritten
INT_POISON = np.iinfo(np.int32).min


def parse_dtype(name) -> np.dtype:
    """float32, float64, float16, bfloat16 or int8 (aliases fp32, fp16, half, bf16...): ``dtypes.parse``."""
    return dtypes.parse(name)


def tolerance_of(dtype) -> Tolerance:
    """The documented tolerance of a problem whose inputs are ``dtype`` (the one table, above)."""
    return TOLERANCES[np.dtype(dtype).name]


@dataclass(frozen=True)
class Shape:
    """The facts of a problem that the movement models and metrics need; plain numbers only."""

    m: int
    k: int
    n: int
    nnz: int
    k_touched: int  # distinct columns of A that hold a nonzero: rows of B that must be read
    rows_nonempty: int
    value_bytes: int
    index_bytes: int
    b_aligned: bool = True  # B starts on a 64-byte boundary (Problem.make's B does; a B from elsewhere may not)

    @property
    def flops(self) -> int:
        """Useful flops: one multiply and one add per nonzero per output column."""
        return 2 * self.nnz * self.n

    @property
    def dense_flops(self) -> int:
        return 2 * self.m * self.k * self.n

    @property
    def sparsity(self) -> float:
        cells = self.m * self.k
        return 1.0 - self.nnz / cells if cells else 0.0


def estimate_bytes(m: int, k: int, n: int, nnz: int, dtype) -> int:
    """Host memory a run needs at its peak, the check after timing: B and its float64 copy (K·N); per output
    entry the variant's C and the harness's copy of the first result (2 values), the float64 reference and
    bound, and check's float64 view of C, difference and allowance (5 x 8 bytes); A with float64 copies."""
    isz = np.dtype(dtype).itemsize
    return k * n * (isz + 8) + m * n * (2 * isz + 40) + nnz * (isz + 8 + 16)


def check_n(n: int) -> int:
    """The one check of N (the columns of B): a positive integer up to ``MAX_N``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ParamError(f"N must be an integer, got {n!r}")
    if n <= 0:
        raise ParamError(f"N must be positive, got {n}")
    if n > MAX_N:
        raise ParamError(f"N = {n} is past the limit of {MAX_N}")
    return int(n)


def check_size(m: int, k: int, n: int, nnz: int, dtype, fraction: float = 0.8) -> None:
    """Refuse before allocating: N out of range, or the problem past this machine's free memory."""
    check_n(n)
    need = estimate_bytes(m, k, n, nnz, dtype)
    avail = available_memory_bytes()
    if need > fraction * avail:
        raise ResourceError(
            f"problem M={m} K={k} N={n} nnz={nnz} needs about {need / 2**30:.1f} GiB; "
            f"{avail / 2**30:.1f} GiB is available"
        )


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    rel_error: float
    message: str = ""


@dataclass(eq=False)
class Problem:
    """A (CSR, values in ``dtype``), B (K×N, C-contiguous, ``dtype``), and what is derived from them."""

    a: CSR
    b: np.ndarray
    seed: int = 0
    matrix: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.b.ndim != 2 or self.b.shape[0] != self.a.k:
            raise ParamError(f"shape mismatch: A is {self.a.m}x{self.a.k} but B is {'x'.join(map(str, self.b.shape))}")
        if self.b.dtype != self.a.dtype:
            raise ParamError(f"dtype mismatch: A is {self.a.dtype}, B is {self.b.dtype}")
        if not self.b.flags.c_contiguous:
            self.b = np.ascontiguousarray(self.b)
        if not np.isfinite(self.b).all():
            raise ParamError("B holds NaN or Inf values")

    @classmethod
    def make(cls, a: CSR, n: int, dtype="float32", seed: int = 0, matrix: str = "") -> "Problem":
        from spmm_study import tiny

        a, n = tiny.problem(a, n)  # as given, or cut to the tiny size under SPMM_STUDY_TINY=1
        dtype = parse_dtype(dtype)
        seed = check_seed(seed)
        check_size(a.m, a.k, n, a.nnz, dtype)
        if dtypes.is_integer(dtype):  # int8: quantized (dtypes.quantize_int8), A and B each on its own scale
            a = CSR(a.shape, a.indptr, a.indices, dtypes.quantize_int8(a.data))
        elif a.nnz and dtype.itemsize < a.dtype.itemsize:
            # a finite float64 value past 3.4e38 is Inf in float32 (past 65504 in float16): a user mistake,
            # not a kernel's FAIL (checked before the cast, which would also print numpy's overflow warning)
            big = float(np.abs(a.data.astype(np.float64)).max())
            if big > dtypes.finfo_max(dtype):  # a Python float: NEP 50 would compare in float32
                wider = "float64" if dtype == np.float32 else "float32"
                raise ParamError(f"a value of magnitude {big:.3g} does not fit {dtype}; use --dtype {wider}")
        return cls(a.astype(dtype), seeded_b(a.k, n, seed, dtype), seed=seed, matrix=matrix)

    @property
    def dtype(self) -> np.dtype:
        return self.a.dtype

    @property
    def m(self) -> int:
        return self.a.m

    @property
    def k(self) -> int:
        return self.a.k

    @property
    def n(self) -> int:
        return self.b.shape[1]

    @cached_property
    def shape(self) -> Shape:
        k_touched = int(np.unique(self.a.indices).size) if self.a.nnz else 0
        return Shape(
            m=self.m, k=self.k, n=self.n, nnz=self.a.nnz, k_touched=k_touched,
            rows_nonempty=int(np.count_nonzero(np.diff(self.a.indptr))),
            value_bytes=self.dtype.itemsize, index_bytes=self.a.indices.dtype.itemsize,
            b_aligned=int(self.b.ctypes.data) % ALIGN == 0,
        )

    @property
    def out_dtype(self) -> np.dtype:
        """The type of C: int32 for int8 inputs, else the input type (a variant may return fp32 for half
        inputs: the check reads C in float64)."""
        return dtypes.out_dtype(self.dtype)

    @property
    def tolerance(self) -> Tolerance:
        return tolerance_of(self.dtype)

    def tolerance_for(self, precision: str = "") -> Tolerance:
        """The dtype's tolerance, or a looser one for a variant that computes in ``precision`` ('tf32')."""
        if not precision:
            return self.tolerance
        try:
            return PRECISIONS[precision]
        except KeyError:
            raise ParamError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}") from None

    def _dense_a64(self, absolute: bool = False) -> np.ndarray | None:
        """A as a dense float64 array when that is the faster way to the reference: at least 5% dense and at
        most 1 GiB (a 2:4 weight, a 4096² GEMM): multithreaded BLAS dgemm instead of scipy's one-threaded CSR
        product, which took minutes on the large GEMMs of the 2:4 study. The same numbers: a zero of A adds
        exact zeros (B is finite), so an empty row still gives exact 0; only float64's summation order differs."""
        cells = self.m * self.k
        if not cells or self.a.nnz < 0.05 * cells or cells * 8 > min(1 << 30, 0.1 * available_memory_bytes()):
            return None
        d = self.a.to_dense(np.float64)
        return np.abs(d, out=d) if absolute else d

    @cached_property
    def reference(self) -> np.ndarray:
        """C = A·B in float64 with sparse semantics (scipy CSR, or BLAS on a dense-enough A), computed once on first use."""
        dense = self._dense_a64()
        if dense is not None:
            return dense @ self.b.astype(np.float64)
        a64 = self.a.astype(np.float64).to_scipy()
        return np.asarray(a64 @ self.b.astype(np.float64))

    @cached_property
    def bound_scale(self) -> np.ndarray:
        """(|A|·|B|) in float64: the scale of each entry's rounding error."""
        dense = self._dense_a64(absolute=True)
        if dense is not None:
            return dense @ np.abs(self.b.astype(np.float64))
        a = self.a.astype(np.float64).to_scipy()
        a.data = np.abs(a.data)
        return np.asarray(a @ np.abs(self.b.astype(np.float64)))

    def new_output(self) -> np.ndarray:
        """A 64-byte-aligned C buffer poisoned with NaN (docs/ARCHITECTURE.md §5: an unwritten entry must fail the check)."""
        if dtypes.is_integer(self.dtype):
            return aligned_full((self.m, self.n), INT_POISON, self.out_dtype)
        return aligned_full((self.m, self.n), np.nan, self.dtype)

    def _nonfinite_message(self, c64: np.ndarray) -> str:
        """Name what made C non-finite. Where |A|·|B| (the bound scale, which holds every partial sum) is past
        the dtype's largest number, the inputs were finite but the product is not: an overflow, reported with
        the first such entry; nobody's kernel is to blame. Elsewhere a NaN or Inf is the kernel's (an entry
        left unwritten keeps the NaN poison)."""
        bad = ~np.isfinite(c64)
        n_bad = int(bad.sum())
        big = dtypes.finfo_max(self.out_dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            over = bad & ~(self.bound_scale <= big)  # NaN/Inf in the scale (float64 overflow) counts too
        if over.any():
            i, j = (int(x) for x in np.argwhere(over)[0])
            ref = self.reference[i, j]
            return (f"overflow: {int(over.sum())} of {n_bad} non-finite entries overflow {self.dtype} from finite "
                    f"inputs; first C[{i},{j}]={c64[i, j]:g} where the float64 reference is {ref:.4g} and "
                    f"|A|·|B| is {self.bound_scale[i, j]:.4g} (max {big:.4g}); scale the matrix or use --dtype float64")
        where = ", ".join(f"({i},{j})" for i, j in np.argwhere(bad)[:5])
        return f"{n_bad} entries are NaN/Inf (unwritten?), e.g. {where}"

    def check(self, c: np.ndarray, tolerance: Tolerance | None = None) -> CheckResult:
        ref = self.reference
        if c.shape != ref.shape:
            return CheckResult(False, float("inf"), f"output shape {c.shape}; expected {ref.shape}")
        c64 = np.asarray(c, dtype=np.float64)
        if np.asarray(c).dtype.kind in "iu":
            unwritten = np.asarray(c) == INT_POISON
            if unwritten.any():
                where = ", ".join(f"({i},{j})" for i, j in np.argwhere(unwritten)[:5])
                return CheckResult(False, float("nan"), f"{int(unwritten.sum())} entries still hold the poison "
                                   f"{INT_POISON} (unwritten?), e.g. {where}")
        if not np.isfinite(c64).all():
            return CheckResult(False, float("nan"), self._nonfinite_message(c64))
        # in place, and no sort unless it fails: three M×N float64 temporaries at the peak (see
        # estimate_bytes), where a full argsort cost 2 s on a 33M-entry output at every check
        diff = np.subtract(c64, ref)
        norm = float(np.linalg.norm(ref))
        err = float(np.linalg.norm(diff))
        rel = err / norm if norm > 0 else err
        tol = tolerance or self.tolerance
        scale = self.bound_scale
        allowed = np.multiply(scale, tol.elem)
        np.add(allowed, dtypes.finfo_tiny(self.dtype), out=allowed, where=scale > 0)
        excess = np.abs(diff, out=diff)
        excess -= allowed
        del allowed
        n_bad = int(np.count_nonzero(excess > 0))
        if rel <= tol.rel_fro and n_bad == 0:
            return CheckResult(True, rel)
        flat = excess.ravel()
        top = np.argpartition(flat, -3)[-3:] if flat.size > 3 else np.arange(flat.size)
        worst = top[np.argsort(flat[top])[::-1]]
        entries = "; ".join(
            f"C[{i},{j}]={c64[i, j]:.6g} ref={ref[i, j]:.6g}" for i, j in (np.unravel_index(w, c.shape) for w in worst)
        )
        return CheckResult(
            False, rel, f"rel error {rel:.3g} (tol {tol.rel_fro:g}), {n_bad} entries past bound; worst: {entries}"
        )
