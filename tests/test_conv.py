"""Sparse convolutions (docs/conv.md): the problem and its float64 reference, every conv variant on the edge
convolutions, the conv: spec and the conv suite through the CLI, and bad input (one line, exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spmm_study import conv, registry
from spmm_study.cli import main
from spmm_study.edge import check_on
from spmm_study.errors import ParamError, SpmmError
from spmm_study.formats import CSR

CONV_CPU = [v for v in registry.select(device="cpu", format="conv") if v.unavailable_reason() is None]
EDGES = conv.edge_convolutions()


def naive_conv(w: np.ndarray, x: np.ndarray, g: conv.Geometry) -> np.ndarray:
    """Seven nested loops in float64, nothing shared with the reference's tensordots."""
    m = w.shape[0]
    out = np.zeros((m, g.batch, g.ho, g.wo))
    for o in range(m):
        for b in range(g.batch):
            for oh in range(g.ho):
                for ow in range(g.wo):
                    s = 0.0
                    for c in range(g.c):
                        for r in range(g.kh):
                            for q in range(g.kw):
                                ih, iw = oh * g.stride + r - g.pad, ow * g.stride + q - g.pad
                                if 0 <= ih < g.h and 0 <= iw < g.w:
                                    s += w[o, (c * g.kh + r) * g.kw + q] * float(x[b, c, ih, iw])
                    out[o, b, oh, ow] = s
    return out.reshape(m, -1)


@pytest.mark.parametrize("name", ["odd_pad0_stride2", "pad1_stride2_batch2", "kernel_3x1_stride2"])
def test_reference_is_the_convolution(name):
    p = conv.edge_problem(name)
    want = naive_conv(p.a.astype(np.float64).to_dense(), p.x, p.geom)
    assert p.reference.shape == (p.m, p.geom.n) == want.shape
    np.testing.assert_allclose(p.reference, want, rtol=1e-12, atol=1e-12)
    assert np.all(p.bound_scale >= np.abs(p.reference) - 1e-12)


def test_torch_agrees_with_the_reference_when_installed():
    torch = pytest.importorskip("torch")
    p = conv.edge_problem("pad1_stride2_batch2")
    g = p.geom
    w = torch.from_numpy(p.a.astype(np.float64).to_dense().reshape(p.m, g.c, g.kh, g.kw))
    y = torch.nn.functional.conv2d(torch.from_numpy(p.x.astype(np.float64)), w, stride=g.stride, padding=g.pad)
    np.testing.assert_allclose(y.numpy().transpose(1, 0, 2, 3).reshape(p.m, -1), p.reference, rtol=1e-12, atol=1e-12)


def test_geometry_facts():
    g = conv.parse_geometry("56x56,pad=1")
    assert (g.ho, g.wo, g.n, g.kh, g.stride, g.batch) == (56, 56, 3136, 3, 1, 1)
    g = conv.with_channels(g, CSR.from_dense(np.ones((2, 576), np.float32)))
    assert g.c == 64 and g.inflation() == pytest.approx(9.0)
    g2 = conv.parse_geometry("9x7,pad=0,stride=2,batch=3,kernel=3x3")
    assert (g2.ho, g2.wo, g2.n) == (4, 3, 36)
    assert conv.split_spec("conv:28:dlmc:x/y")[1] == "dlmc:x/y"


def test_a_poisoned_or_wrong_output_fails_the_check():
    p = conv.edge_problem("odd_pad1")
    c = p.reference.astype(np.float32)
    assert p.check(c).ok
    bad = c.copy()
    bad[1, 3] = np.nan
    assert not p.check(bad).ok
    bad = c.copy()
    bad[0, 0] += 1e-2 * (abs(bad[0, 0]) + 1)
    assert not p.check(bad).ok
    z = conv.edge_problem("empty_filters")
    out = z.reference.astype(np.float32)
    out[0, 0] = 1e-30  # an empty filter must give exact zeros
    assert not z.check(out).ok


def _cases():
    for v in CONV_CPU:
        params = [{}] + [{p.name: c} for p in v.params for c in p.choices if c != p.default and c <= 16]
        for pr in params:
            yield pytest.param(v, pr, id=f"{v.id}-{'-'.join(f'{k}={x}' for k, x in pr.items()) or 'defaults'}")


@pytest.mark.parametrize("v, params", list(_cases()))
def test_conv_variant_on_edge_convolutions(v, params):
    resolved = v.resolve_params(params)
    for name in EDGES:
        p = conv.edge_problem(name)
        assert check_on(v, p, resolved, f"{v.id} {params} on {name}") == ""


def test_an_spmm_variant_refuses_a_conv_problem():
    from spmm_study.harness import HarnessConfig, measure
    from spmm_study.timing import TimingConfig

    row = measure(registry.get("cpu.csr.tiled"), conv.edge_problem("odd_pad1"), {},
                  HarnessConfig(timing=TimingConfig(repeats=1, min_time_s=0.0, warmup_s=0.0)))
    assert row.status == "SKIP" and "convolution problem" in row.message


def test_shapes_that_do_not_chain_are_refused():
    a, g = EDGES["odd_pad1"]
    p = conv.edge_problem("odd_pad1")
    with pytest.raises(ParamError, match="expected 1x3x7x5"):
        conv.ConvProblem(p.a, conv.NO_B, x=np.zeros((1, 2, 7, 5), np.float32), geom=p.geom)
    with pytest.raises(SpmmError, match="not a multiple of the 3x3"):
        conv.with_channels(g, CSR.from_dense(np.ones((2, 10), np.float32)))


# ------------------------------------------------------------------------------------------------ the CLI


def _run(capsys, argv):
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_a_conv_spec_through_the_cli(capsys, tmp_path):
    spec = "conv:9x7,pad=1,stride=2,batch=2:synthetic:uniform:6x27:0.6"
    code, out, err = _run(capsys, ["run", "-v", "cpu.conv.direct_tiled", "-v", "cpu.conv.dense_gemm", "--matrix", spec,
                                   "--repeats", "1", "--min-time", "0", "--warmup", "0", "--out", str(tmp_path / "r"),
                                   "--json"])
    assert code == 0, err
    rows = json.loads(out)
    assert [r["status"] for r in rows] == ["PASS", "PASS"]
    assert rows[0]["n"] == 2 * 5 * 4 and rows[0]["k"] == 27 and rows[0]["matrix"].startswith("conv:9x7,kernel=3x3")
    info = json.loads(rows[0]["info"])
    assert info["inflation"] == pytest.approx(27 * 40 / (2 * 3 * 9 * 7), rel=1e-3)
    assert rows[0]["bytes_compulsory"] < rows[1]["bytes_model"]  # the patch matrix is not compulsory
    code, out, err = _run(capsys, ["report", str(tmp_path / "r"), "--kind", "conv", "--markdown"])
    assert code == 0 and "9×7" in out and "direct_tiled" in out, out + err


@pytest.mark.parametrize("argv, words", [
    (["--matrix", "conv:8x8:synthetic:uniform:6x40:0.5"], "not a multiple of the 3x3"),
    (["--matrix", "conv:2x2,pad=0:synthetic:uniform:4x18:0.5"], "does not fit"),
    (["--matrix", "conv:8x8,foo=1:synthetic:uniform:4x18:0.5"], "unknown option"),
    (["--matrix", "conv:8x8,pad=3:synthetic:uniform:4x18:0.5"], "pad = 3"),
    (["--matrix", "conv:0x8:synthetic:uniform:4x18:0.5"], "outside 1.."),
    (["--matrix", "conv:8x8"], "must be conv:"),
    (["--matrix", "conv:30000x30000,batch=64:synthetic:uniform:4x18:0.5"], "past the limit"),
    (["--matrix", "conv:4000x4000:synthetic:uniform:512x4608:0.9"], "GiB"),
    (["-v", "cpu.csr.tiled", "--matrix", "conv:8x8:synthetic:uniform:4x18:0.5"], "takes no convolution problem"),
])
def test_bad_conv_input_is_one_line_exit_2(capsys, argv, words):
    if "-v" not in argv:
        argv = ["-v", "cpu.conv.direct"] + argv
    code, out, err = _run(capsys, ["run", *argv, "--no-save", "--repeats", "1", "--min-time", "0"])
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and words in lines[0], (code, out, err)


def test_conv_suite_plans_the_eight_table3_problems(capsys, tmp_path):
    f = tmp_path / "t3.toml"
    f.write_text('name = "t3"\n[[runs]]\nsuite = "conv"\nsource = "synthetic"\nvariants = ["cpu.*"]\n')
    code, out, err = _run(capsys, ["sweep", str(f), "--dry-run"])
    assert code == 0, err
    assert "8 problems" in out and "conv:56x56,pad=1:synthetic:magnitude:64x576:0.9" in out
    assert "cpu.csr." not in out and "cpu.conv.direct_tiled" in out  # the glob keeps to the conv variants


# ------------------------------------------------------------------------------------------------ the GPU


def test_gpu_conv_rungs_in_the_simulator_through_the_cli():
    """The gpu.conv.* rungs on 3×3 convolutions (stride 2 with two images and padding; no padding at odd
    sizes; one input channel with empty filters; fully dense filters on a wide image) in the CUDA simulator, through `run` as a user types it.
    (test_gpu_sim.py runs their declared 1×1 cases through `check`; test_gpu_ptx.py compiles them.)"""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("numba_cuda")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(root))
    specs = ["conv:7x5,pad=1,stride=2,batch=2:synthetic:uniform:3x18:0.5",
             "conv:6x9,pad=0:synthetic:uniform:2x27:0.6",
             "conv:5x4:synthetic:uniform:4x9:0.8",  # one input channel, empty filters
             "conv:3x40,pad=1:synthetic:uniform:2x18:0"]  # fully dense filters, a wide image
    argv = [sys.executable, "-m", "spmm_study", "run", "--device", "gpu", "-v", "gpu.conv.im2col", "-v",
            "gpu.conv.im2col_fused", "-v", "gpu.conv.direct", "-p", "threads=32", "-p", "warps=2", "--no-save",
            "--repeats", "1", "--min-time", "0", "--warmup", "0", "--json"]
    for s in specs:
        argv += ["--matrix", s]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(proc.stdout)
    assert len(rows) == 12 and all(r["status"] == "PASS" for r in rows), [(r["variant"], r["message"]) for r in rows]


# --------------------------------------------------------------------------------------- cache-sim traces


@pytest.mark.parametrize("vid", ["cpu.conv.im2col", "cpu.conv.im2col_fused", "cpu.conv.direct", "cpu.conv.direct_tiled"])
@pytest.mark.parametrize("name", ["pad1_stride2_batch2", "odd_pad1"])
def test_conv_traces_write_every_output_and_read_only_inside_the_arrays(vid, name):
    from spmm_study.cpu import conv_traces

    a, g = EDGES[name]
    g = conv.with_channels(g, a)
    addrs, writes = conv_traces.for_variant(vid, a, g, {"tile_n": 16})
    lay = conv_traces.layout(a, g)
    c0 = lay.b("c")
    c_writes = addrs[(writes == 1) & (addrs >= c0)]
    assert np.array_equal(np.unique(c_writes), c0 + 4 * np.arange(a.m * g.n))  # every output entry written
    if vid in ("cpu.conv.im2col_fused", "cpu.conv.direct_tiled"):  # register tiles: each entry written once
        assert c_writes.size == a.m * g.n
    ends = {k: lay.b(k) + -(-max(1, n) * s // 4096) * 4096 for k, (n, s) in {
        "x": (g.input_values(), 4), "xpad": (g.batch * g.c * g.hp * g.wp, 4), "b": (g.k * g.n, 4),
        "c": (a.m * g.n, 4)}.items()}
    for key in ("x", "xpad", "b", "c"):
        inside = (addrs >= lay.b(key)) & (addrs < lay.b(key) + 4096 * 1024)
        assert np.all(addrs[inside & (addrs < ends[key] + 4096)] < ends[key])


def test_lab9_counts_are_the_geometry():
    from spmm_study.labs import catalog
    from spmm_study.labs.common import prepare

    lab = catalog.get(9)
    out = prepare(lab, "quick")
    q = {x.key: x for x in lab.questions}
    assert q["inflation"].answer(out, "measured") == pytest.approx(9.0)
    a = out.matrices["small90"]
    assert q["patch_over_weights_small"].answer(out, "measured") == pytest.approx(4608 * 49 * 4 / (a.nnz * 8 + 513 * 4))
    assert out.shapes["tiled_big90"].n == 3136 and out.models["im2col_big90"].total > out.models["tiled_big90"].total


def test_the_python_api_measures_a_conv_spec():
    import spmm_study as ss

    spec = "conv:6x5,stride=2:synthetic:uniform:3x18:0.5"
    row = ss.measure(spec, variant="cpu.conv.direct_tiled", repeats=1, min_time=0, warmup=0)
    row = row if isinstance(row, dict) else row.__dict__
    assert row["status"] == "PASS" and row["n"] == 3 * 3 and row["matrix"].startswith("conv:6x5,kernel=3x3")
    with pytest.raises(SpmmError, match="give no B"):
        ss.measure(spec, np.ones((18, 4), np.float32), variant="cpu.conv.direct")


def test_check_runs_a_cpu_conv_rung_on_the_edge_convolutions_too(capsys):
    code, out, err = _run(capsys, ["check", "-v", "cpu.conv.direct"])
    assert code == 0, err
    edges = [ln for ln in out.splitlines() if "conv-edge:" in ln]
    assert len(edges) == len(EDGES) and all(ln.startswith("PASS") for ln in edges), out[-2000:]
