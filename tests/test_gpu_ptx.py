"""Every GPU kernel compiles to PTX for sm_90 (the simulator never type-checks), and the wide-load rungs
really emit 16-byte loads with no local memory (register arrays spilled to memory would show as .local).

The kernels and their signatures come from the registry: each GPU rung declares ``ptx=`` next to its Params
(the registry refuses a rung without it), so a new kernel cannot go uncompiled. The timing and fill kernels,
which are no rung, are listed here. Needs numba-cuda with NVVM, no GPU. Skipped under the simulator
(compile_ptx is the real compiler)."""

import os

import pytest

pytest.importorskip("numba_cuda")
pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"),
                                reason="PTX needs the real compiler, not the simulator")


def _cases():
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return {}
    from spmm_study import registry
    from spmm_study.gpu import _kit, timing

    t = _kit.ptx_types()
    spin, scribble = timing._kernels()
    cases = {
        "timing.spin": (spin, (t.i64,), None),
        "timing.scribble": (scribble, (t.a1(t.f32), t.f32), None),
        "kit.fill": (_kit._fill_kernel(), (t.a1(t.f32), t.f32), None),
    }
    from spmm_study.nets import chain_resident

    layer, epi_pass, scan = chain_resident.kernels("float32", 1024)
    f32, i64, i32, a1 = t.f32, t.i64, t.i32, t.a1
    epi = (a1(f32), i64, i64, f32)  # bias, rule, act, ymax
    cases.update({  # the Sparse DNN chain's kernels (no rung: nets/chain_resident.py)
        "chain.layer": (layer, (*t.csr, i64, a1(f32), a1(f32), a1(i64), i64, a1(i64), *epi, i64, a1(i32)), None),
        "chain.layer16": (layer, (t.csr[0], a1(t.u16), t.csr[2], i64, a1(f32), a1(f32), a1(i64), i64, a1(i64), *epi, i64,
                                  a1(i32)), None),
        "chain.epilogue_pass": (epi_pass, (a1(f32), i64, a1(i64), i64, *epi, a1(i32)), None),
        "chain.scan": (scan, (a1(i32), a1(i64), i64, i64, a1(i64), a1(i32), a1(i32), a1(i64)), None),
    })
    for v in registry.select(device="gpu"):
        if v.baseline:
            continue
        for name, kern, sig, width in v.ptx():
            cases[f"{v.id}:{name}"] = (kern, sig, width)
    return cases


CASES = _cases()


def test_a_rung_without_ptx_cases_has_no_kernel_of_its_own():
    import inspect
    import sys

    from spmm_study import registry

    compiled = {name.split(":")[0] for name in CASES if ":" in name}
    for v in registry.select(device="gpu"):
        if not v.baseline and v.id not in compiled:
            src = inspect.getsource(sys.modules[v.build.__module__])
            assert "cuda.jit" not in src, f"{v.id} defines a kernel but declares no PTX case for it"


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiles_to_ptx_for_sm90(name):
    from numba import cuda

    kern, sig, width = CASES[name]
    ptx, _ = cuda.compile_ptx(kern.py_func, sig, cc=(9, 0))
    lines = ptx.splitlines()
    assert any(".entry" in ln for ln in lines)
    # register arrays must stay in registers: no local-memory traffic
    assert not any("ld.local" in ln or "st.local" in ln for ln in lines), f"{name}: local memory in PTX"
    if width == 16:
        assert any(("ld.global.v4" in ln or "ld.global.v2.f64" in ln) for ln in lines), f"{name}: no 16-byte loads"
    if width == 8:
        assert any("ld.global.v2.f32" in ln for ln in lines), f"{name}: no 8-byte loads"


def _ops(k, sig):
    """How many times each PTX instruction (sm_90) stands in kernel ``k`` compiled for ``sig``."""
    import collections

    from numba import cuda

    ptx, _ = cuda.compile_ptx(k.py_func, sig, cc=(9, 0))
    return collections.Counter(ln.split()[0] for ln in map(str.strip, ptx.splitlines())
                               if ln and not ln.startswith(("//", ".", "{", "}")) and not ln.endswith(":"))


def test_rung_50_is_rung_19_with_the_epilogue_switched_on():
    """One row loop (gpu/_row_split.py): rung 19's PTX carries no epilogue instruction, rung 50's carries every
    instruction of rung 19's plus the epilogue's (max/min for relu and the clamp, the bias load and add)."""
    from spmm_study.gpu import _kit, _row_split

    t = _kit.ptx_types()
    base = (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64)
    plain = _ops(_row_split.kernel(4, 4, 4, "float32"), base)
    fused = _ops(_row_split.fused_kernel(4, 4, 4, "float32"), (*base, t.a1(t.f32), t.i64, t.i64, t.f32))
    assert not any(op.startswith(("max.f32", "min.f32")) for op in plain)
    assert any(op.startswith("max.f32") for op in fused)
    # the row loop is the same: the same FMAs, loads of A and B, shared-memory traffic, barrier
    for op in ("fma.rn.f32", "ld.global.nc.v4.f32", "ld.global.nc.f32", "st.shared.f32", "bar.sync"):
        assert plain[op] == fused[op], (op, plain[op], fused[op])


def test_rung_51_is_rung_15s_row_loop_with_the_epilogue_switched_on():
    """One row loop (gpu/_rowvec.py): rung 15's PTX carries no epilogue instruction, rung 51's does; both store C
    the same way (16-byte stores, 4-byte ones at an N tail). Rung 51's leftover nonzeros take the scalar path
    (scalar_tail), so of rung 15's 16-byte B loads it lacks exactly the tail's one per tile."""
    from spmm_study.gpu import _kit, _rowvec

    t = _kit.ptx_types()
    base = (*t.csr, t.a1(t.f32), t.a1(t.f32), t.i64, t.a1(t.i32))
    lanes, vec, tiles, unroll = 16, 4, 2, 4  # rung 51's defaults
    plain = _ops(_rowvec.kernel(lanes, vec, tiles, unroll, True, "float32"), base)
    fused = _ops(_rowvec.fused_kernel(lanes, vec, tiles, unroll, "float32"), (*base, t.a1(t.f32), t.i64, t.i64, t.f32))
    assert not any(op.startswith(("max.f32", "min.f32")) for op in plain)
    assert fused["max.f32"] and fused["min.f32"]
    for op in ("st.global.v4.f32", "st.global.f32"):
        assert plain[op] == fused[op] > 0, (op, plain[op], fused[op])
    assert plain["ld.global.v4.f32"] - fused["ld.global.v4.f32"] == tiles, (plain["ld.global.v4.f32"],
                                                                             fused["ld.global.v4.f32"])
