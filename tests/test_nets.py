"""Issue 16: the Sparse DNN challenge reader, the fused layer kernels' epilogues, the chain engines, the
generator, and ``infer``'s bad input (one line, exit 2). The official-categories test reads ../shared/spdnn
(or $SPMM_STUDY_SPDNN) and skips cleanly without it."""

from __future__ import annotations

import gzip
import lzma
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import EDGE_N, check_variant, edge_matrices
from spmm_study import registry
from spmm_study.errors import ParamError, ResourceError, SourceError
from spmm_study.nets import chain, generate, spdnn
from spmm_study.epilogue import Epilogue, LayerProblem, layer_problem
from spmm_study.problem import Problem
from test_cli import cli, fails

SHARED_SPDNN = Path(__file__).resolve().parents[2] / "shared" / "spdnn"


def spdnn_root() -> Path | None:
    env = os.environ.get("SPMM_STUDY_SPDNN")
    for cand in (Path(env) if env else None, SHARED_SPDNN):
        if cand is not None and (cand / "neuron1024").is_dir():
            return cand
    return None


# ------------------------------------------------------------------------------------------- the reader


def write(path: Path, text: str) -> Path:
    opener = {".xz": lzma.open, ".gz": gzip.open}.get(path.suffix, open)
    with opener(path, "wt") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz"])
def test_layer_reads_plain_gz_xz_as_w_transposed(tmp_path, suffix):
    # W (in x out): W[0,1] = 0.5, W[2,1] = 1, W[1,0] = 2  ->  A = W^T: A[1,0] = 0.5, A[1,2] = 1, A[0,1] = 2
    p = write(tmp_path / f"w.tsv{suffix}", "1\t2\t0.5\n3\t2\t1\n2\t1\t2.0\n")
    a = spdnn.read_layer(p, 3)
    expect = np.zeros((3, 3), np.float32)
    expect[1, 0], expect[1, 2], expect[0, 1] = 0.5, 1, 2
    assert np.array_equal(a.to_dense(), expect)


@pytest.mark.parametrize("text, match", [
    ("1\t2\t0.5\n3\t2\n", "line 2"),
    ("1\t2\t0.5\n3 2 1\n", "line 2"),
    ("1\t2\tx\n", "line 1"),
    ("1.5\t2\t1\n", "not an integer"),
    ("0\t2\t1\n", "not an integer in 1..3"),
    ("4\t2\t1\n", "not an integer in 1..3"),
    ("1\t2\t1\n1\t2\t3\n", "duplicate"),
    ("1\t2\tnan\n", "not finite"),
    ("1\t\t2\t1\n", "line 1"),
])
def test_malformed_tsv_is_one_source_error(tmp_path, text, match):
    p = write(tmp_path / "w.tsv", text)
    with pytest.raises(SourceError, match=match):
        spdnn.read_layer(p, 3)


def test_reads_are_bounded_and_broken_archives_refused(tmp_path):
    p = write(tmp_path / "w.tsv.xz", "1\t1\t1\n" * 1000)
    with pytest.raises(SourceError, match="read limit"):
        spdnn.read_layer(p, 3, max_bytes=100)
    bad = tmp_path / "b.tsv.xz"
    bad.write_bytes(b"not xz at all")
    with pytest.raises(SourceError, match="not a valid xz"):
        spdnn.read_layer(bad, 3)
    with pytest.raises(SourceError, match="no such file"):
        spdnn.read_layer(tmp_path / "missing.tsv", 3)


def test_inputs_and_categories(tmp_path):
    y = spdnn.read_inputs(write(tmp_path / "i.tsv", "2\t3\t1\n1\t1\t1\n"), 4)
    assert y.shape == (2, 4) and y.to_dense()[1, 2] == 1 and y.to_dense()[0, 0] == 1
    cats = spdnn.read_categories(write(tmp_path / "c.tsv", "5\n2\n"))
    assert cats.tolist() == [1, 4]
    with pytest.raises(SourceError, match="twice"):
        spdnn.read_categories(write(tmp_path / "d.tsv", "5\n5\n"))
    with pytest.raises(SourceError, match="line 2"):
        spdnn.read_categories(write(tmp_path / "e.tsv", "5\n5\t1\n"))


# ------------------------------------------------------------------------------------------- fused kernels


FUSED = [v for v in registry.all_variants() if v.problem_for is not None and v.device == "cpu"]


def test_fused_variants_are_registered_and_solve_the_layer_problem():
    assert {"cpu.csr.tiled_fused"} <= {v.id for v in FUSED}
    v = registry.get("cpu.csr.tiled_fused")
    p = v.problem(Problem.make(edge_matrices()["random"], 7), v.resolve_params({}))
    assert isinstance(p, LayerProblem) and p.epilogue.act == "relu" and p.epilogue.rule == "row"


@pytest.mark.parametrize("v", FUSED, ids=lambda v: v.id)
@pytest.mark.parametrize("act", ["none", "relu", "clamp"])
@pytest.mark.parametrize("rule", ["row", "nonzero", "zero"])
def test_fused_epilogue_grid(v, act, rule):
    for name, a in edge_matrices().items():
        for n in EDGE_N:
            for tile_n in (16,):  # 256 with each rule/act: the registry grid (one compiled kernel per tile)
                check_variant(v, a, n, {"act": act, "bias": rule, "ymax": 1.0, "tile_n": tile_n},
                              label=f"{name} {act} {rule}")


def test_layer_check_catches_a_wrong_epilogue():
    """A kernel that forgets the bias, or applies it under the wrong rule, must FAIL the layer check."""
    a = edge_matrices()["empty_rows"]
    base = Problem.make(a, 7)
    for rule in ("row", "nonzero"):
        p = layer_problem(base, {"act": "relu", "bias": rule, "ymax": 32.0})
        z = p.product.astype(np.float32)
        assert not p.check(np.maximum(z, 0)).ok  # bias forgotten
        other = Epilogue("relu", "nonzero" if rule == "row" else "row", 32.0, p.bias)
        assert not p.check(other.apply(z, p.bias).astype(np.float32)).ok
        assert p.check(p.epilogue.apply(z, p.bias).astype(np.float32)).ok


# ------------------------------------------------------------------------------------------- generator


@pytest.mark.parametrize("n", [64, 1024])
def test_generator_structure(n):
    net = generate.network(n, 3, seed=4)
    seen = set()
    for a in net.layers:
        d = a.to_dense()
        assert ((d != 0).sum(axis=0) == 32).all() and ((d != 0).sum(axis=1) == 32).all()
        assert set(np.unique(d[d != 0]).tolist()) == {1 / 16}
        # a permuted butterfly stage: the rows sharing an input form groups of exactly 32 (K_32,32 blocks)
        pat = a.to_scipy().astype(bool).astype(np.int32)
        reach = (pat @ pat.T).tocsr()
        assert (np.diff(reach.indptr) == 32).all()
        seen.add(a.indices.tobytes())
    assert len(seen) == 3  # fresh permutations: every layer differs
    assert float(net.biases[0][0]) == pytest.approx(spdnn.BIAS[1024] if n >= 1024 else -0.3)
    y = generate.inputs(n, 400, seed=1)
    assert y.nnz / y.m == pytest.approx(106 / 1024 * n, rel=0.15)


def test_generated_network_truth_and_engines_agree():
    net = generate.network(64, 20, seed=1)
    y0 = generate.inputs(64, 300, seed=2)
    src = chain.replicate(y0, None)
    truth = chain.reference_categories(net, y0, src)
    assert 0 < truth.size < 300  # some inputs live, some die: the truth is not trivial
    results = {}
    for eng in ("fused", "unfused", "scipy"):
        for prune in (True, False):
            r = chain.run_chain(net, y0, src, eng, prune_dead=prune, tile_n=16)
            assert np.array_equal(r.categories, truth), (eng, prune)
            results[eng, prune] = [x.live_out for x in r.layers]
    assert len({tuple(v) for v in results.values()}) == 1  # the same live inputs per layer everywhere


def test_replicated_batch_truth():
    cats = np.array([2, 5])
    src = chain.replicate(generate.inputs(64, 6, seed=0), 14)
    assert chain.truth_for(cats, 6, src).tolist() == [2, 5, 8, 11]


def test_prune_dead_refused_where_a_dead_input_would_come_back():
    a = generate.network(64, 1).layers[0]
    net = spdnn.Network([a], [np.full(64, 0.5, np.float32)], rule="row", act="relu")
    with pytest.raises(ParamError, match="prune-dead"):
        chain.run_chain(net, generate.inputs(64, 3), np.arange(3), "fused", prune_dead=True)


def test_network_too_large_is_refused_before_building():
    with pytest.raises(ResourceError, match="GiB"):
        generate.network(65536, 1920, batch=60000)


def test_shapes_must_chain():
    a = generate.network(64, 1).layers[0]
    b = generate.network(128, 1).layers[0]
    with pytest.raises(SourceError, match="do not chain"):
        spdnn.Network([a, b], [np.zeros(64, np.float32), np.zeros(128, np.float32)])


# ------------------------------------------------------------------------------------------- the challenge


def test_official_categories_on_cpu():
    root = spdnn_root()
    if root is None:
        pytest.skip("Sparse DNN challenge files not found (set SPMM_STUDY_SPDNN or place them at ../shared/spdnn)")
    net = spdnn.load_network(root, 1024)
    assert net.depth == 120 and net.edges == 120 * 32 * 1024
    y0 = spdnn.read_inputs(spdnn.inputs_path(root, 1024), 1024)
    cats = spdnn.read_categories(spdnn.categories_path(root, 1024, 120))
    src = chain.replicate(y0, None)
    truth = chain.truth_for(cats, y0.m, src)
    assert truth.size == 19
    r = chain.run_chain(net, y0, src, "fused", prune_dead=True)
    assert np.array_equal(r.categories, truth)
    assert r.layers[-1].live_out == 19 and r.layers[0].live_in == 1200


# ------------------------------------------------------------------------------------------- the command


def test_infer_on_a_generated_network_writes_rows_and_plot(capsys, tmp_path):
    out = tmp_path / "inf"
    code, stdout, err = cli(capsys, "infer", "--net", "generated:64x12:seed=3", "--batch", "200", "-e", "fused",
                            "-e", "scipy", "--repeats", "1", "--tile-n", "16", "--out", out)
    assert code == 0, err
    assert "match" in stdout and "DIFFER" not in stdout and "categories (" in stdout
    lines = (out / "layers.csv").read_text().splitlines()
    assert lines[0] == "engine,layer,live_in,live_out,nnz,time_s" and len(lines) == 1 + 2 * 12
    assert (out / "live_inputs.png").stat().st_size > 1000 and (out / "summary.json").exists()
    fails(capsys, "infer", "--net", "generated:64x12:seed=3", "--batch", "200", "--out", out, match="--force")


def test_infer_on_a_chain_of_specs(capsys):
    code, stdout, err = cli(capsys, "infer", "-m", "synthetic:uniform:96x64:0.8", "-m", "synthetic:uniform:64x96:0.8",
                            "--bias", "-0.1", "--rule", "row", "--batch", "40", "--repeats", "1", "--tile-n", "16",
                            "--no-save")
    assert code == 0, err
    assert stdout.count("match") == 2


@pytest.mark.parametrize("argv, match", [
    (["--net", "bogus"], "expected spdnn"),
    (["--net", "generated:100x3"], "multiple of 32"),
    (["--net", "generated:64x3", "--batch", "0"], "at least 1"),
    (["--net", "generated:64x3", "--layers", "0"], "at least 1"),
    (["--net", "generated:64x3", "--tile-n", "7"], "tile-n"),
    (["--net", "generated:64x3", "--engine", "nope"], "unknown engine"),
    (["--net", "generated:64x3", "--device", "tpu"], "cpu or gpu"),
    (["--net", "generated:64x3", "--repeats", "0"], "repeats"),
    (["--net", "generated:64x3", "--ymax", "-1"], "ymax"),
    (["--net", "generated:65536x1920", "--batch", "60000"], "GiB"),
    (["--net", "generated:64x3", "-e", "champion"], "champion-src"),
    (["--net", "generated:64x3", "-e", "champion", "--champion-src", "/nonexistent"], "does not exist"),
    (["--spdnn-root", "/nonexistent/spdnn"], "not a folder"),
    (["-m", "synthetic:uniform:64x32:0.9", "-m", "synthetic:uniform:64x32:0.9", "--no-save"], "do not chain"),
    (["-m", "synthetic:uniform:64x32:0.9", "--bias", "0.5", "--rule", "row"], "prune-dead"),
    (["-m", "synthetic:uniform:64x32:0.9", "--rule", "sideways"], "rule"),
])
def test_infer_bad_input_is_one_line(capsys, argv, match):
    fails(capsys, "infer", "--no-save", "--repeats", "1", *argv, match=match)


def test_infer_missing_layer_file_and_bad_tsv(capsys, tmp_path):
    root = tmp_path / "spdnn"
    (root / "neuron1024").mkdir(parents=True)
    write(root / "neuron1024" / "n1024-l1.tsv", "1\t1\t0.0625\n")
    write(root / "sparse-images-1024.tsv", "1\t1\t1\n")
    fails(capsys, "infer", "--spdnn-root", root, "--layers", "2", "--no-save", match="missing layer file")
    write(root / "neuron1024" / "n1024-l1.tsv", "1\t1\n")
    fails(capsys, "infer", "--spdnn-root", root, "--no-save", match="line 1")


def test_gpu_chain_in_the_simulator():
    """The device-resident GPU chain (fused and unfused, device compaction or all inputs kept) on a tiny network."""
    pytest.importorskip("numba_cuda")
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(here.parent))
    proc = subprocess.run([sys.executable, str(here / "nets_gpu_sim_case.py")], capture_output=True, text=True,
                          env=env, timeout=600, cwd=here.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count(": ok") == 5


def test_gpu_engines_refused_without_a_gpu(capsys):
    from spmm_study.gpu.device import gpu_unavailable_reason

    if gpu_unavailable_reason() is None:
        pytest.skip("this machine has a GPU (or the simulator): the refusal cannot be shown here")
    fails(capsys, "infer", "--no-save", "--net", "generated:64x3", "--device", "gpu", "-e", "fused",
          match="unavailable")
    fails(capsys, "infer", "--no-save", "--net", "generated:64x3", "-e", "torch", match="torch on the GPU is unavailable")
    fails(capsys, "infer", "--no-save", "--net", "generated:64x3", "-e", "torch", "-e", "cupy", "--device", "gpu",
          match="no engine can run here")


def test_an_unavailable_engine_is_warned_and_skipped_the_rest_run(capsys):
    """One rule with run/compare/sweep: an engine that cannot run here is one warning line, the others run."""
    from spmm_study.cli import main
    from spmm_study.gpu.device import gpu_unavailable_reason

    if gpu_unavailable_reason() is None:
        pytest.skip("this machine has a GPU (or the simulator): the skip cannot be shown here")
    try:
        main(["infer", "--no-save", "--net", "generated:64x3", "--batch", "20", "--device", "gpu", "-e", "fused",
              "-e", "scipy"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [ln for ln in err.splitlines() if ln.strip()] == [
        ln for ln in err.splitlines() if ln.startswith("warning: engine fused on the GPU is unavailable")]
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1
    assert "scipy" in out and "fused" not in out.split("scipy")[0].split("engine")[-1]


def test_champion_refusal_names_what_is_missing(capsys, tmp_path):
    (tmp_path / "singlegpu").mkdir()  # an empty singlegpu/: not a checkout (more refusals: test_champion.py)
    fails(capsys, "infer", "--no-save", "--net", "generated:64x3", "-e", "champion", "--champion-src", tmp_path,
          match="champion is unavailable: .* has no singlegpu/ sources")


def test_modelled_bytes_count_the_unfused_pass():
    from spmm_study.nets.infer import modelled_bytes

    net = generate.network(64, 2, seed=0)
    rows = [chain.LayerRow(1, 10, 8, 2048, 0.1), chain.LayerRow(2, 8, 8, 2048, 0.1)]
    fused = modelled_bytes(net, rows, "fused")
    assert fused == sum(2048 * 8 + 65 * 4 + 64 * 4 + 128 * live * 4 for live in (10, 8))
    assert modelled_bytes(net, rows, "unfused") - fused == 4 * 64 * (10 + 8) * 4
    assert np.isnan(modelled_bytes(net, rows, "scipy"))


def test_fused_cpu_in_float64_with_packed_panels():
    v = registry.get("cpu.csr.tiled_fused")
    for n in (16, 37, 300):  # one panel (no packing), several panels with a tail, several full panels
        for tile_n in (16, 256):
            check_variant(v, edge_matrices()["random"], n, {"tile_n": tile_n, "act": "clamp", "bias": "nonzero",
                                                            "ymax": 1.0}, dtype="float64", label="random fp64")
