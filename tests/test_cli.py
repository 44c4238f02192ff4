"""The CLI through its entry point (``spmm_study.cli.main(argv)``, what the console script runs): commands
print checked results, ``--json`` is parseable, and every bad input of issue item 9 exits 2 with exactly one
line on stderr and no traceback."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import scipy.sparse as sp

from spmm_study import movement, registry
from spmm_study.cli import DEFAULT_VARIANT, main
from spmm_study.registry import host_prepared
from spmm_study.sources import DEFAULT_SPEC

FAST = ["--repeats", "2", "--min-time", "0", "--warmup", "0", "--cache", "warm"]
FFN1 = "transformer/magnitude_pruning/0.9/body_decoder_layer_0_ffn_conv1_fully_connected"


def cli(capsys, *argv):
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys, *argv, match: str):
    import warnings

    # pytest records warnings itself, so they would not show in capsys; the real CLI prints them to stderr,
    # which would break the one-line rule: count them here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli(capsys, *argv)
    assert not caught, f"warnings for {argv}: {[str(w.message) for w in caught]}"
    assert code == 2, f"exit {code} for {argv}; stderr: {err!r}"
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr for {argv}: {err!r}"
    assert lines[0].startswith("error: ")
    assert re.search(match, lines[0]), f"{lines[0]!r} does not match {match!r}"
    return lines[0]


def run_json(capsys, *argv):
    code, out, err = cli(capsys, "run", "--no-save", "--json", *FAST, *argv)
    assert code == 0, err
    rows = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c} in --json"))
    return rows, err


# ------------------------------------------------------------------------------------------------ commands


def test_run_default_problem_json(capsys):
    rows, _ = run_json(capsys)
    assert len(rows) == 1
    r = rows[0]
    assert r["variant"] == registry.get(DEFAULT_VARIANT).id and r["status"] == "PASS"
    assert r["matrix"] == DEFAULT_SPEC and (r["m"], r["k"], r["n"]) == (2048, 512, 256)
    assert r["nnz"] == round(0.1 * 2048 * 512) and r["rel_error"] < 1e-5
    assert r["median_s"] > 0 and r["gflops"] == pytest.approx(2 * r["nnz"] * 256 / r["median_s"] / 1e9)
    assert r["first_call_s"] > 0 and r["threads"] >= 1 and r["repeats"] >= 2
    assert r["host_dispatch_s"] is None  # not NaN: --json must be strict JSON


def test_run_synthetic_writes_result_files(capsys, tmp_path):
    out_dir = tmp_path / "res"
    spec = "synthetic:uniform:64x40:0.8:seed=4"
    code, out, err = cli(capsys, "run", "--variant", "rowwise", "--variant", "cpu.dense.naive", "--matrix", spec,
                         "--n", 12, "--dtype", "float64", "--threads", 1, "--out", out_dir, *FAST)
    assert code == 0, err
    assert "cpu.csr.rowwise" in out and "PASS" in out and str(out_dir) in out.replace("\n", "")
    from spmm_study.results import read_meta, read_rows

    rows = read_rows(out_dir)
    assert [(r["variant"], r["status"], r["dtype"], r["threads"]) for r in rows] == [
        ("cpu.csr.rowwise", "PASS", "float64", 1), ("cpu.dense.naive", "PASS", "float64", 1)]
    assert rows[0]["matrix"] == spec and rows[0]["n"] == 12 and rows[0]["seed"] == 0
    meta = read_meta(out_dir)
    assert meta["experiment"] == "run" and meta["cpu_model"] and "versions" in meta and "command" in meta
    # no overwrite without --force, with one line; --force replaces
    fails(capsys, "run", "--matrix", spec, "--n", 12, "--out", out_dir, *FAST,
          match=r"already holds 2 result rows; pass --resume to continue or --force to replace")
    code, _, err = cli(capsys, "run", "--matrix", spec, "--n", 12, "--out", out_dir, "--force", *FAST)
    assert code == 0, err
    assert len(read_rows(out_dir)) == 1


def test_run_dlmc(capsys, dlmc):
    rows, _ = run_json(capsys, "--matrix", f"dlmc:{FFN1}", "--dlmc-root", dlmc, "--n", 32)
    assert rows[0]["status"] == "PASS" and (rows[0]["m"], rows[0]["k"], rows[0]["nnz"]) == (2048, 512, 104857)


def test_run_with_a_wrong_variant_exits_1_with_a_fail_row(capsys, monkeypatch):
    registry.load_all()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.variant("cpu.csr.clitestwrong", loop_order="i→p→j", movement=movement.csr_rowwise)
    def build(problem):
        """Always off by one."""
        c = problem.new_output()
        return host_prepared(lambda: c.fill(1.0), c)

    code, out, err = cli(capsys, "run", "--no-save", "--json", "--variant", "clitestwrong",
                         "--matrix", "synthetic:uniform:16x16:0.5", "--n", 4, *FAST)
    assert code == 1
    rows = json.loads(out)
    assert rows[0]["status"] == "FAIL" and rows[0]["median_s"] is None and rows[0]["gflops"] is None
    assert "FAIL cpu.csr.clitestwrong: first check:" in err


def test_list_and_json(capsys):
    code, out, err = cli(capsys, "list")
    assert code == 0 and "cpu.csr.rowwise" in out and "i→p→j" in out
    code, out, err = cli(capsys, "list", "--json")
    assert code == 0
    items = json.loads(out)
    by_id = {it["id"]: it for it in items}
    rw = by_id["cpu.csr.rowwise"]
    assert rw["available"] and rw["loop_order"] == "i→p→j" and rw["summary"] and rw["device"] == "cpu"
    assert set(rw) >= {"id", "device", "format", "idea", "rung", "params", "baseline", "deterministic"}
    code, out, _ = cli(capsys, "list", "--json", "--device", "gpu")
    assert all(it["device"] == "gpu" for it in json.loads(out))


def test_list_prints_reasons_with_brackets_verbatim(capsys, monkeypatch):
    """Rich markup once ate "[gpu]" out of "pip install 'spmm-study[gpu]'" in the unavailable reason."""
    registry.load_all()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.variant("cpu.csr.clitestbrackets", loop_order="i→[p]→j", movement=movement.csr_rowwise,
                      available=lambda: "needs extras (pip install 'spmm-study[gpu]')")
    def build(problem):
        """Summary with [brackets] kept."""
        raise AssertionError("never built")

    code, out, err = cli(capsys, "list", "--format", "csr")
    flat = re.sub(r"[\s│]+", " ", out)
    assert code == 0 and "spmm-study[gpu]" in flat and "i→[p]→j" in flat


def test_info_no_gpu(capsys):
    code, out, err = cli(capsys, "info", "--no-gpu", "--json")
    assert code == 0, err
    env = json.loads(out)
    assert env["cores"] >= 1 and env["cpu_model"] and "numba" in env["versions"] and "gpu" not in env
    assert any(p.get("library") == "numba" for p in env["thread_pools"])
    code, out, err = cli(capsys, "info", "--no-gpu")
    assert code == 0 and "cpu_model" in out and "threads: numba" in out


def test_data_info(capsys, tmp_path):
    p = tmp_path / "a.smtx"
    p.write_text("4, 5, 5\n0 0 2 2 5\n1 3 0 1 4\n")
    code, out, err = cli(capsys, "data", "info", f"smtx:{p}", "--json")
    assert code == 0, err
    st = json.loads(out)
    assert (st["rows"], st["cols"], st["nnz"], st["empty_rows"], st["row_max"]) == (4, 5, 5, 2, 3)
    assert st["sparsity"] == pytest.approx(0.75) and st["spec"] == f"smtx:{p}"
    code, out, err = cli(capsys, "data", "info", DEFAULT_SPEC)
    assert code == 0
    assert "2048 x 512" in out and "row length CV" in out and "104,858" in out and "█" in out
    code, out, err = cli(capsys, "data", "info", DEFAULT_SPEC, "--prune", "2:4", "--json")
    assert json.loads(out)["nnz"] <= 2048 * 256


def test_data_convert_round_trip_and_no_overwrite(capsys, tmp_path):
    spec = "synthetic:magnitude:40x24:0.7:seed=1"
    for suffix in ("mtx", "npz", "smtx"):
        dest = tmp_path / f"m.{suffix}"
        code, out, err = cli(capsys, "data", "convert", spec, dest)
        assert code == 0 and f"wrote {dest}" in out.replace("\n", "")
        _, a, _ = cli(capsys, "data", "info", "--json", spec)
        _, b, _ = cli(capsys, "data", "info", "--json", f"{suffix}:{dest}")
        a, b = json.loads(a), json.loads(b)
        for key in ("rows", "cols", "nnz", "row_cv", "histogram", "cols_touched"):
            assert a[key] == b[key], (suffix, key)
        before = dest.read_bytes()
        fails(capsys, "data", "convert", "synthetic:uniform:8x8:0.5", dest, match=r"exists; pass --force to overwrite")
        assert dest.read_bytes() == before
        code, _, _ = cli(capsys, "data", "convert", "synthetic:uniform:8x8:0.5", dest, "--force")
        assert code == 0 and dest.read_bytes() != before


# ------------------------------------------------------------------------------------------------ bad input

SMTX_BAD = {  # name: (file text, what the one line must say)
    "truncated": ("3, 4, 3\n0 1 2 3\n", r"is truncated: line 1 claims 3 rows and 3 nonzeros, which need at least 20 bytes"),
    "wrong_offset_count": ("3, 4, 3\n0 1 2\n0 1 2\n", r"line 2 has 3 row offsets; expected 4"),
    "wrong_index_count": ("3, 4, 3\n0 1 2 3\n0 1\n", r"line 3 has 2 column indices; expected nnz = 3"),
    "offsets_end_wrong": ("3, 4, 3\n0 1 2 2\n0 1 2\n", r"row offsets end at 2; expected nnz = 3"),
    "non_monotone": ("3, 4, 3\n0 2 1 3\n0 1 2\n", r"not monotone: row 1 has offsets 2 -> 1"),
    "out_of_range": ("3, 4, 3\n0 1 2 3\n0 1 9\n", r"column index 9 in row 2 is out of range for 4 columns"),
    "negative_index": ("3, 4, 3\n0 1 2 3\n0 -1 2\n", r"column index -1 in row 1 is out of range"),
    "huge_index": ("3, 4, 3\n0 1 2 3\n0 1 99999999999\n", r"column index 99999999999 is out of range"),
    "garbage": ("hello world\nfoo\n", r"line 1 \(rows, cols, nnz\) holds non-integer text 'hello'"),
    "garbage_offsets": ("2, 2, 1\n0 x 1\n0\n", r"line 2 \(row offsets\) holds non-integer text 'x'"),
    "header_count": ("3, 4\n0 1 2 3\n0 1 2\n", r"line 1 has 2 numbers; expected 3"),
    "negative_size": ("-3, 4, 0\n0\n", r"negative size in line 1: -3, 4, 0"),
    "nnz_too_big": ("2, 2, 5\n0 2 5\n0 1 0 1 0\n", r"nnz 5 exceeds rows x cols = 4"),
    "trailing": ("3, 4, 3\n0 1 2 3\n0 1 2\n5 6\n", r"trailing data after line 3"),
    "unsorted": ("2, 4, 4\n0 2 4\n1 0 2 3\n", r"column indices of row 0 are not sorted \(1 before 0\)"),
    "duplicate": ("2, 4, 4\n0 2 4\n1 1 2 3\n", r"duplicate entry \(0, 1\)"),
    "empty": ("", r"is empty"),
}


@pytest.mark.parametrize("name", sorted(SMTX_BAD))
def test_bad_smtx(capsys, tmp_path, name):
    text, match = SMTX_BAD[name]
    p = tmp_path / f"{name}.smtx"
    p.write_text(text)
    line = fails(capsys, "run", "--no-save", "--matrix", f"smtx:{p}", match=match)
    assert str(p) in line  # the file is named


MTX_HEAD = "%%MatrixMarket matrix coordinate real general\n"
MTX_BAD = {
    "garbage": ("hello\n", r"not a valid Matrix Market file .*banner"),
    "truncated": (MTX_HEAD + "3 4 5\n1 1 1.0\n3 4 2.0\n", r"not a valid Matrix Market file .*[Tt]runcated"),
    "out_of_range": (MTX_HEAD + "3 4 2\n1 1 1.0\n3 5 2.0\n", r"[Cc]olumn index out of bounds"),
    "zero_index": (MTX_HEAD + "3 4 2\n0 1 1.0\n3 4 2.0\n", r"[Rr]ow index out of bounds"),
    "trailing": (MTX_HEAD + "3 4 2\n1 1 1.0\n3 4 2.0\n2 2 2.0\n", r"[Tt]oo many lines"),
    "duplicate": (MTX_HEAD + "3 4 2\n1 1 1.0\n1 1 2.0\n", r"duplicate entry \(0, 0\): duplicates are rejected"),
    "nan": (MTX_HEAD + "3 4 2\n1 1 nan\n3 4 2.0\n", r"1 values are NaN or Inf"),
    "inf": (MTX_HEAD + "3 4 2\n1 1 1.0\n3 4 -inf\n", r"1 values are NaN or Inf \(first at position 1: -inf\)"),
    "complex": ("%%MatrixMarket matrix coordinate complex general\n2 2 1\n1 1 1.0 2.0\n", r"complex"),
}


@pytest.mark.parametrize("name", sorted(MTX_BAD))
def test_bad_mtx(capsys, tmp_path, name):
    text, match = MTX_BAD[name]
    p = tmp_path / f"{name}.mtx"
    p.write_text(text)
    fails(capsys, "data", "info", f"mtx:{p}", match=match)


def npz_csr(path, shape=(2, 2), indptr=(0, 1, 2), indices=(0, 1), data=(1.0, 1.0), fmt=b"csr", **extra):
    arrays = {"format": np.array(fmt), "shape": np.array(shape)}
    if fmt in (b"csr", b"csc"):
        arrays.update(indptr=np.array(indptr), indices=np.array(indices))
    arrays.update(data=np.array(data), **extra)
    np.savez(path, **arrays)


NPZ_BAD = {
    "wrong_count": (dict(shape=(3, 2)), r"indptr has 3 entries; expected 4"),
    "ends_wrong": (dict(indptr=(0, 1, 3)), r"indptr ends at 3; expected nnz = 2"),
    "non_monotone": (dict(shape=(3, 2), indptr=(0, 2, 1, 2)), r"not monotone: row 1 has offsets 2 -> 1"),
    "out_of_range": (dict(indices=(0, 5)), r"column index 5 in row 1 is out of range for 2 columns"),
    "negative": (dict(indices=(0, -1)), r"column index -1 in row 1 is out of range"),
    "duplicate": (dict(indptr=(0, 2, 2), indices=(1, 1)), r"duplicate entry \(0, 1\)"),
    "nan": (dict(data=(np.nan, 1.0)), r"1 values are NaN or Inf \(first at position 0"),
    "inf": (dict(data=(1.0, np.inf)), r"1 values are NaN or Inf \(first at position 1"),
    "float_indices": (dict(indices=(0.0, 1.5)), r"indices has dtype float64; expected integers"),
    "bad_shape": (dict(shape=(2, 2, 2)), r"shape entry \[2, 2, 2\] is not two integers"),
    "complex": (dict(data=(1.0, 1j)), r"values have dtype complex128"),
    "bsr": (dict(fmt=b"bsr"), r"sparse format 'bsr' is not supported"),
    "coo_negative": (dict(fmt=b"coo", row=np.array([0, -1]), col=np.array([1, 1])), r"row index -1 is out of range"),
    "coo_duplicate": (dict(fmt=b"coo", row=np.array([0, 0]), col=np.array([1, 1])), r"duplicate entry \(0, 1\)"),
    "coo_lengths": (dict(fmt=b"coo", row=np.array([0]), col=np.array([1, 1])), r"1 rows, 2 cols, 2 values"),
    "csc_out_of_range": (dict(fmt=b"csc", indices=(0, 2)), r"index 2 in row 1 is out of range for 2 columns"),
}


@pytest.mark.parametrize("name", sorted(NPZ_BAD))
def test_bad_npz(capsys, tmp_path, name):
    kw, match = NPZ_BAD[name]
    p = tmp_path / f"{name}.npz"
    npz_csr(p, **kw)
    fails(capsys, "run", "--no-save", "--matrix", f"npz:{p}", match=match)


def test_bad_npz_files(capsys, tmp_path):
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"garbage bytes")
    fails(capsys, "data", "info", f"npz:{garbage}", match=r"not a .npz file \(no zip header")
    good = tmp_path / "ok.npz"
    sp.save_npz(good, sp.random(20, 20, density=0.3, format="csr", random_state=0))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:60])
    fails(capsys, "data", "info", f"npz:{cut}", match=r"not a readable .npz file")
    lacking = tmp_path / "lacking.npz"
    np.savez(lacking, x=np.zeros(3))
    fails(capsys, "data", "info", f"npz:{lacking}", match=r"not a scipy.sparse npz \(needs format, shape, data; has x\)")


def test_bad_safetensors(capsys, tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "w.safetensors"
    save_file({"w": np.array([[1.0, np.inf], [0.0, 2.0]], np.float32)}, str(p))
    fails(capsys, "run", "--no-save", "--matrix", f"safetensors:{p}#w", match=r"holds NaN or Inf values")
    fails(capsys, "run", "--no-save", "--matrix", f"safetensors:{p}#nope", match=r"no tensor 'nope'; it has w")
    fails(capsys, "run", "--no-save", "--matrix", f"safetensors:{tmp_path}/missing#w", match=r"no such file")
    # a hostile or broken header: each refused before numpy or the safetensors library reads data
    for i, (header, match) in enumerate([
        ([1, 2], r"header is a JSON list, not an object"),
        ({"w": 5}, r"header entry is 5, not an object"),
        ({"w": {"dtype": "BF16", "shape": [2, 2]}}, r"data offsets None lie outside the file's 8 data bytes"),
        ({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [-8, 0]}}, r"data offsets \[-8, 0\] lie outside"),
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, r"\[0, 16\] lie outside the file's 8"),
        ({"w": {"dtype": "BF16", "shape": [-2, -2], "data_offsets": [0, 8]}}, r"malformed shape \[-2, -2\]"),
        ({"w": {"dtype": "BOOL", "shape": [2, 2], "data_offsets": [0, 4]}}, r"has dtype BOOL; expected a real dtype"),
    ]):
        f = tmp_path / f"h{i}.safetensors"
        head = json.dumps(header).encode()
        f.write_bytes(len(head).to_bytes(8, "little") + head + b"\x80\x3f" * 4)
        fails(capsys, "data", "info", f"safetensors:{f}#w", match=match)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "--variant", "nope"], r"unknown variant 'nope' on cpu"),
        (["run", "--variant", "rowwis"], r"unknown variant 'rowwis' on cpu; did you mean .*rowwise"),
        (["run", "--variant", "rowwise", "--device", "tpu"], r"unknown device 'tpu'"),
        (["run", "--param", "foo=1"], r"variant cpu\.\w+\.\w+ has no parameter foo"),
        (["run", "--param", "foo"], r"--param 'foo' must look like name=value"),
        (["run", "--matrix", "foo:bar"], r"unknown matrix spec 'foo:bar'; use one of dlmc:, smtx:"),
        (["run", "--matrix", "bar"], r"unknown matrix spec 'bar'"),
        (["run", "--matrix", "smtx:"], r"names nothing after 'smtx:'"),
        (["run", "--matrix", "smtx:/nonexistent/a.smtx"], r"no such file: /nonexistent/a.smtx"),
        (["run", "--matrix", "mtx:/nonexistent/a.mtx"], r"no such file: /nonexistent/a.mtx"),
        (["run", "--matrix", "npz:/nonexistent/a.npz"], r"no such file: /nonexistent/a.npz"),
        (["run", "--matrix", "dlmc:x/y", "--dlmc-root", "/nonexistent"], r"DLMC root /nonexistent is not a directory"),
        (["run", "--n", "0"], r"N must be positive, got 0"),
        (["run", "--n", "-5"], r"N must be positive, got -5"),
        (["run", "--n", "100000000000"], r"N = 100000000000 is past the limit of 16777216"),
        (["run", "--n", "abc"], r"Invalid value for '--n'"),
        (["run", "--matrix", "synthetic:uniform:64x64:1.5"], r"sparsity 1.5 is outside \[0, 1\)"),
        (["run", "--matrix", "synthetic:uniform:64x64:1"], r"sparsity 1 is outside \[0, 1\)"),
        (["run", "--matrix", "synthetic:uniform:64x64:-0.1"], r"sparsity -0.1 is outside \[0, 1\)"),
        (["run", "--matrix", "synthetic:uniform:64x64:nan"], r"sparsity nan is outside \[0, 1\)"),
        (["run", "--matrix", "synthetic:uniform:64x64:abc"], r"sparsity 'abc' is not a number"),
        (["run", "--prune", "magnitude:1.0"], r"prune sparsity 1.0 is outside \[0, 1\)"),
        (["run", "--prune", "bogus"], r"unknown prune spec 'bogus'"),
        (["run", "--prune", "5:4"], r"N:M pattern 5:4 needs 1 <= N <= M <= 64"),
        (["run", "--matrix", "synthetic:weird:8x8"], r"unknown synthetic kind 'weird'"),
        (["run", "--matrix", "synthetic:uniform:8y8"], r"shape '8y8' must be MxK or one of attention, ffn1, ffn2"),
        (["run", "--matrix", "synthetic:uniform:0x8"], r"at least one row and one column"),
        (["run", "--matrix", "synthetic:uniform:8x8:0.5:foo=1"], r"unknown synthetic option foo"),
        (["run", "--matrix", "synthetic:uniform:8x8:0.5:seed=x"], r"seed 'x' is not an integer"),
        (["run", "--matrix", "synthetic:block:10x10:0.5:block=3x3"], r"multiple of block 3x3"),
        (["run", "--matrix", "synthetic:nm:8x8:0.3"], r"nm=2:4 has sparsity 0.5, not 0.3"),
        (["run", "--matrix", "synthetic:uniform:3000000000x4:0.9"], r"shape 3000000000x4 is past int32"),
        (["run", "--matrix", "synthetic:uniform:100000x100000:0.5"], r"needs about \d+\.\d GiB; too large here"),
        (["run", "--matrix", "synthetic:magnitude:300000x300000:0.9"], r"needs a dense copy of \d+\.\d GiB"),
        (["run", "--n", "10000000", "--matrix", "synthetic:uniform:ffn1:0.9"],
         r"M=2048 K=512 N=10000000 nnz=104858 needs about \d+\.\d GiB; [\d.]+ GiB is available"),
        (["run", "--dtype", "float8"], r"unknown dtype 'float8'; choose one of float32, float64, float16"),
        (["run", "--threads", "0"], r"--threads 0 is outside 1\.\.\d+"),
        (["run", "--threads", "100000"], r"--threads 100000 is outside 1\.\.\d+"),
        (["run", "--threads", "x"], r"Invalid value for '--threads'"),
        (["run", "--cache", "lukewarm"], r"--cache 'lukewarm': choose cold or warm"),
        (["run", "--repeats", "0"], r"--repeats must be >= 1"),
        (["run", "--warmup", "inf"], r"--warmup inf must be a finite number of seconds"),  # used to hang
        (["run", "--min-time", "nan"], r"--min-time nan must be a finite number"),
        (["run", "--seed", "-1"], r"seed -1 must be a non-negative integer"),
        (["run", "--matrix", "synthetic:uniform:8x8:0.5:seed=-2"], r"seed -2 must be a non-negative integer"),
        (["run", "--bogus-option"], r"No such option: --bogus-option"),
        (["bogus-command"], r"No such command 'bogus-command'"),
        (["data", "info"], r"(?i)Missing argument 'SPEC'"),
        (["data", "convert", "synthetic:uniform:8x8:0.5", "/tmp/out.txt"], r"must end in .mtx, .npz or .smtx"),
        (["list", "--device", "tpu", "--json"], r"unknown device 'tpu'"),
    ],
)
def test_bad_arguments_one_line_exit_2(capsys, argv, match):
    if argv[0] == "run":  # the argument under test goes last: a repeated option's last value wins
        argv = ["run", "--no-save", *FAST, *argv[1:]]
    fails(capsys, *argv, match=match)


def test_unwritable_paths_are_one_line(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    fails(capsys, "data", "convert", "synthetic:uniform:8x8:0.5", blocker / "m.mtx", match=r"a_file")
    fails(capsys, "run", "--matrix", "synthetic:uniform:8x8:0.5", "--out", blocker / "run", *FAST, match=r"a_file")


def test_index_past_int64_is_named(capsys, tmp_path):
    p = tmp_path / "big.smtx"
    p.write_text("2, 2, 1\n0 1 1\n99999999999999999999\n")
    fails(capsys, "data", "info", f"smtx:{p}", match=r"line 3 \(column indices\) holds 99999999999999999999, past int64")


def test_kernel_needing_int32_refuses_int64_matrix(capsys, tmp_path, monkeypatch):
    """A matrix past int32 (here K = 3e9 with one nonzero) loads with int64 indices; a variant whose kernel
    needs int32 refuses it in build with the numbers (a SKIP row in sweeps, one line and exit 2 for run of
    one variant through the memory estimate: B alone would be K·N·4 bytes)."""
    p = tmp_path / "wide.smtx"
    p.write_text("1, 3000000000, 1\n0 1\n2999999999\n")
    code, out, err = cli(capsys, "data", "info", "--json", f"smtx:{p}")
    assert code == 0 and json.loads(out)["index_dtype"] == "int64"
    fails(capsys, "run", "--no-save", "--matrix", f"smtx:{p}", "--n", 1, *FAST, match=r"K=3000000000 .*GiB")


def test_typer_runner_drives_the_same_app():
    """Issue item 11 asks for CLI tests through Typer's runner too: the app object works there as well (the
    one-line error mapping lives in main(), which the tests above drive)."""
    from typer.testing import CliRunner

    from spmm_study.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0, res.output
    assert "cpu.csr.rowwise" in {it["id"] for it in json.loads(res.stdout)}
    res = runner.invoke(app, ["run", "--no-save", "--json", *FAST, "--matrix", "synthetic:uniform:32x24:0.7",
                              "--n", "5"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["status"] == "PASS"
    res = runner.invoke(app, ["run", "--no-such-option"])
    assert res.exit_code == 2


def test_gpu_variant_without_a_gpu_is_one_line(capsys):
    gpu = [v for v in registry.select(device="gpu") if v.unavailable_reason()]
    if not gpu:
        pytest.skip("every GPU variant is available here")
    v = gpu[0]
    fails(capsys, "run", "--no-save", "--variant", v.id, *FAST, match=rf"nothing left to measure: skipped {re.escape(v.id)}: ")
    code, out, _ = cli(capsys, "list", "--json", "--device", "gpu")
    row = next(it for it in json.loads(out) if it["id"] == v.id)
    assert row["available"] is False and row["unavailable_reason"] == v.unavailable_reason()


def test_real_process_prints_one_line(tmp_path):
    """The same through a real interpreter, as a user runs it: no warning, banner or traceback beside it."""
    import subprocess
    import sys

    bad = tmp_path / "bad.smtx"
    bad.write_text("3, 4, 3\n0 2 1 3\n0 1 2\n")
    for argv, match in ((["run", "--matrix", f"smtx:{bad}"], r"not monotone: row 1 has offsets 2 -> 1"),
                        (["run", "--n", "0"], r"N must be positive, got 0")):
        res = subprocess.run([sys.executable, "-m", "spmm_study", *argv], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.splitlines()) == 1 and re.search(match, res.stderr), res.stderr
        assert res.stdout == ""


def test_run_where_every_variant_refuses_exits_2_with_one_line(capsys, monkeypatch):
    from spmm_study.errors import ResourceError

    registry.load_all()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.variant("cpu.csr.clitestint32", loop_order="i→p→j", movement=movement.csr_rowwise)
    def build(problem):
        """Needs int32 indices."""
        raise ResourceError(f"K = {problem.k} is past int32 for this kernel")

    code, out, err = cli(capsys, "run", "--no-save", "--variant", "clitestint32",
                         "--matrix", "synthetic:uniform:16x16:0.5", "--n", 4, *FAST)
    assert code == 2 and "SKIP" in out
    assert err.splitlines() == ["error: nothing was measured: cpu.csr.clitestint32: K = 16 is past int32 for this kernel"]


def test_bare_command_prints_help_and_no_error_line(capsys):
    for argv in ([], ["data"]):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and "Usage: spmm-study" in out and err == ""
    code, out, err = cli(capsys, "--help")
    assert code == 0 and "run" in out and "list" in out and err == ""
