"""Reduced-precision variants (TF32) are checked against their own documented tolerance, and only they:
a Prepared that says precision='tf32' passes at TF32's error and is recorded so; the same output from an
fp32 variant fails; an error past TF32's bound fails either way."""

import json

import numpy as np
import pytest

from spmm_study import movement
from spmm_study.errors import ParamError
from spmm_study.formats import CSR
from spmm_study.harness import HarnessConfig, measure
from spmm_study.problem import PRECISIONS, Problem, parse_dtype
from spmm_study.registry import Variant, host_prepared
from spmm_study.timing import TimingConfig

CFG = HarnessConfig(timing=TimingConfig(repeats=2, min_time_s=0, warmup_s=0), threads=1)


def tf32_round(x: np.ndarray) -> np.ndarray:
    """Round float32 to TF32 (10 mantissa bits, round to nearest even) as the tensor cores do on input."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0xFFF + ((u >> 13) & 1)) & 0xFFFFE000
    return u.astype(np.uint32).view(np.float32)


def variant_with(output, precision):
    def build(problem):
        c = problem.new_output()
        p = host_prepared(lambda: np.copyto(c, output(problem)), c)
        p.precision = precision
        return p

    return Variant(id="cpu.csr.fake_tf32", build=build, loop_order="-", params=(), movement=movement.csr_rowwise)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((40, 64)).astype(np.float32)
    d[rng.random(d.shape) < 0.7] = 0
    return Problem.make(CSR.from_dense(d), 24, "float32", 0)


def tf32_product(problem):
    a = tf32_round(problem.a.to_dense()).astype(np.float64)
    return (a @ tf32_round(problem.b).astype(np.float64)).astype(np.float32)


def test_tf32_output_passes_only_as_tf32(problem):
    row = measure(variant_with(tf32_product, "tf32"), problem, {}, CFG)
    assert row.status == "PASS", row.message
    assert 1e-5 < row.rel_error < PRECISIONS["tf32"].rel_fro  # really TF32-sized, really within its bound
    assert row.tolerance == PRECISIONS["tf32"].rel_fro and json.loads(row.info)["precision"] == "tf32"
    row = measure(variant_with(tf32_product, ""), problem, {}, CFG)
    assert row.status == "FAIL" and row.tolerance == problem.tolerance.rel_fro


def test_an_error_past_tf32s_bound_fails(problem):
    bad = lambda p: tf32_product(p) * np.float32(1.01)  # noqa: E731 - 1% off: ten times TF32's bound
    assert measure(variant_with(bad, "tf32"), problem, {}, CFG).status == "FAIL"


def test_unknown_precision_is_a_param_error(problem):
    with pytest.raises(ParamError, match="unknown precision"):
        problem.tolerance_for("fp8")
    assert problem.tolerance_for("") == problem.tolerance


def test_tf32_baselines_refuse_what_they_cannot_do_before_touching_a_gpu():
    from spmm_study.errors import FormatError
    from spmm_study.gpu import baselines

    p64 = Problem.make(CSR.from_dense(np.eye(4, dtype=np.float32)), 3, "float64", 0)
    with pytest.raises(ParamError, match="float32"):
        baselines.build_cublas_tf32(p64)
    from spmm_study import registry

    lt = registry.get("gpu.nm24.cusparselt")  # its types are declared: float64 is the harness's SKIP, before build
    assert lt.dtype_refusal(np.float64) == "gpu.nm24.cusparselt takes float16, bfloat16, int8, float32, not float64"
    assert all(lt.dtype_refusal(parse_dtype(d)) is None for d in ("float16", "bfloat16", "int8"))
    dense = Problem.make(CSR.from_dense(np.ones((4, 8), np.float32)), 3, "float32", 0)  # 4 of 4: not 2:4
    with pytest.raises(FormatError, match="not 2:4"):
        baselines.build_cusparselt(dense)
