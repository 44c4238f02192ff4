"""Half precision and int8 problems (issue 27 item 1): each dtype checked against float64 at its own documented
tolerance (problem.TOLERANCES), on the edges that separate a right answer from a wrong one; the CLI's
``--dtype`` and what a variant that cannot take a type does (a SKIP row that says so)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spmm_study import dtypes
from spmm_study.errors import ParamError
from spmm_study.formats import CSR
from spmm_study.problem import INT_POISON, TOLERANCES, Problem, parse_dtype, tolerance_of

from test_cli import FAST, cli, fails


def problem(dtype, m=24, k=40, n=16, seed=3, empty_row=5):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((m, k))
    d[rng.random((m, k)) < 0.6] = 0
    d[empty_row] = 0
    return Problem.make(CSR.from_dense(d.astype(np.float32)), n, dtype, seed=seed)


def fp32_sums(p: Problem) -> np.ndarray:
    """C as tensor cores make it: the half inputs widened (products exact in fp32), fp32 sums."""
    return p.a.to_dense(np.float32) @ p.b.astype(np.float32)


@pytest.mark.parametrize("name, canonical", [("fp16", "float16"), ("half", "float16"), ("bf16", "bfloat16"),
                                             ("BFloat16", "bfloat16"), ("i8", "int8"), ("fp32", "float32")])
def test_dtype_names(name, canonical):
    assert parse_dtype(name).name == canonical
    assert parse_dtype(parse_dtype(name)).name == canonical
    assert tolerance_of(canonical) is TOLERANCES[canonical]


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
def test_half_accepts_fp32_sums_and_a_c_rounded_to_its_type(dt):
    p = problem(dt)
    assert p.a.dtype.name == dt and p.b.dtype.name == dt and p.out_dtype.name == dt
    c = fp32_sums(p)
    assert p.check(c).ok, p.check(c).message
    assert p.check(c.astype(p.dtype)).ok  # the output rounded once to the input type
    assert np.all(c[5] == 0) and p.check(c).ok  # the empty row is exactly zero


def test_fp16_bound_is_tighter_than_bf16_rounding():
    p = problem("float16")
    c = fp32_sums(p)
    as_bf16 = c.astype(dtypes.bfloat16()).astype(np.float32)  # 8 significant bits: 8x fp16's rounding
    res = p.check(as_bf16)
    assert not res.ok and "past bound" in res.message
    assert problem("bfloat16").check(fp32_sums(problem("bfloat16")).astype(dtypes.bfloat16())).ok


@pytest.mark.parametrize("dt", ["float16", "bfloat16", "int8"])
def test_one_dropped_product_fails(dt):
    p = problem(dt)
    a = p.a.to_dense(np.float64)
    i, kk = np.argwhere(np.abs(a) == np.abs(a).max())[0]  # the largest weight: its product dominates its terms
    c = fp32_sums(p).astype(np.float64) if dt != "int8" else (a @ p.b.astype(np.float64))
    c[i, :] -= a[i, kk] * p.b[kk, :].astype(np.float64)
    assert not p.check(c.astype(p.out_dtype)).ok


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
def test_half_empty_row_must_be_exactly_zero(dt):
    p = problem(dt)
    c = fp32_sums(p)
    c[5, 3] = 1e-7  # far below any rounding of the other rows, but the row has no terms at all
    res = p.check(c)
    assert not res.ok and "C[5,3]" in res.message


def test_int8_is_exact_and_poison_is_unwritten():
    p = problem("int8")
    assert p.a.dtype == np.int8 and p.b.dtype == np.int8 and p.out_dtype == np.int32
    assert np.abs(p.a.data.astype(int)).max() == 127 and np.abs(p.b.astype(int)).max() == 127  # per-tensor scale
    exact = (p.a.to_dense(np.int64) @ p.b.astype(np.int64)).astype(np.int32)
    assert p.check(exact).ok and p.check(exact).rel_error == 0
    off = exact.copy()
    off[2, 2] += 1
    assert not p.check(off).ok
    c = p.new_output()
    assert c.dtype == np.int32 and np.all(c == INT_POISON)
    c[:] = exact
    c[0, 0] = INT_POISON
    res = p.check(c)
    assert not res.ok and "poison" in res.message and "(0,0)" in res.message


def test_quantize_int8():
    assert dtypes.quantize_int8(np.array([0.5, -1.0, 0.25, 0.0])).tolist() == [64, -127, 32, 0]
    assert dtypes.quantize_int8(np.zeros(3)).tolist() == [0, 0, 0]


def test_a_value_past_fp16_is_refused():
    a = CSR.from_dense(np.array([[1e5, 0], [0, 1.0]], np.float32))
    with pytest.raises(ParamError, match="does not fit float16"):
        Problem.make(a, 4, "float16")
    Problem.make(a, 4, "bfloat16")  # bf16 has fp32's range


def test_fp16_overflow_in_the_product_is_named():
    a = CSR.from_dense(np.full((2, 8), 60000.0, np.float32))
    p = Problem.make(a, 4, "float16")
    c = np.full((2, 4), np.inf, np.float16)
    res = p.check(c)
    assert not res.ok and res.message.startswith("overflow")


def test_cli_dtype_dense_passes_and_a_variant_that_cannot_take_it_skips(capsys):
    code, out, err = cli(capsys, "run", "--no-save", "--json", *FAST, "--variant", "cpu.dense.numpy,cpu.csr.rowwise",
                         "-n", "8", "--dtype", "bf16", "--matrix", "synthetic:uniform:48x64:0.8")
    assert code == 0, err
    rows = {r["variant"]: r for r in json.loads(out)}
    assert rows["cpu.dense.numpy"]["status"] == "PASS" and rows["cpu.dense.numpy"]["dtype"] == "bfloat16"
    assert rows["cpu.csr.rowwise"]["status"] == "SKIP"
    assert rows["cpu.csr.rowwise"]["message"] == "cpu.csr.rowwise takes float32, float64, not bfloat16"


def test_cli_int8_dense(capsys):
    code, out, err = cli(capsys, "run", "--no-save", "--json", *FAST, "--variant", "cpu.dense.numpy", "-n", "8",
                         "--dtype", "int8", "--matrix", "synthetic:uniform:48x64:0.8")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["status"] == "PASS" and row["dtype"] == "int8" and row["rel_error"] == 0


def test_cli_unknown_dtype_is_one_line(capsys):
    fails(capsys, "run", "--no-save", "--dtype", "float8", match="unknown dtype 'float8'; choose one of")


def test_int8_library_paths_try_row_then_column_major_b(monkeypatch):
    """cuBLASLt / cuSPARSELt int8 may take only a column-major B: the baselines try row-major, then the same B
    column-major, and a refusal of both is a SKIP naming both reasons (a stand-in tensor: no torch here)."""
    import sys
    import types

    from spmm_study.gpu.baselines import first_layout_that_runs

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="9.9"))

    class B:  # layout only: which matrix it stands for (B or its transpose) and whether memory is column-major
        def __init__(self, transposed=False, col=False):
            self.transposed, self.col = transposed, col

        def t(self):
            return B(not self.transposed, not self.col)

        def contiguous(self):
            return B(self.transposed, False)

    p = problem("int8")
    seen = []

    def wants_column_major(bb):
        seen.append(bb.col)
        if not bb.col:
            raise RuntimeError("mat2 must be column major\ndetails")

    got = first_layout_that_runs(wants_column_major, B(), "int8 GEMM", p)
    assert got.col and not got.transposed and seen == [False, True]

    def refuses(bb):
        raise RuntimeError("not supported" if bb.col else "bad layout")

    with pytest.raises(ParamError, match=r"int8 GEMM \(torch 9.9\) refused 24x40x16: bad layout / not supported"):
        first_layout_that_runs(refuses, B(), "int8 GEMM", p)
