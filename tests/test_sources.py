"""Sources: every scheme loads the matrix it names, pruning is exact and deterministic, files round-trip.

The broken-file cases (issue item 9) are driven through the CLI entry point in ``test_cli.py``; here each
scheme is checked against an independent construction of the expected matrix.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from spmm_study import sources
from spmm_study.errors import SourceError
from spmm_study.formats import CSR
from spmm_study.seeding import seeded_values

FFN1 = "transformer/magnitude_pruning/0.9/body_decoder_layer_0_ffn_conv1_fully_connected"


def dense_of(spec, **kw):
    return sources.load(spec, **kw).a.to_dense()


def example_dense(m=7, k=9, density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((m, k)) < density, rng.standard_normal((m, k)), 0.0)


# ---------------------------------------------------------------------------------------------- dlmc


def test_dlmc_matches_its_csv_row(dlmc, monkeypatch):
    loaded = sources.load(f"dlmc:{FFN1}", dlmc_root=str(dlmc))
    a = loaded.a
    row = next(line.split(",") for line in (dlmc / "dlmc.csv").read_text().splitlines() if f"/{FFN1}.smtx" in line)
    assert (a.m, a.k, a.nnz) == (int(row[4]), int(row[5]), int(float(row[6])))
    lengths = a.row_lengths()
    assert lengths.mean() == pytest.approx(float(row[7]), rel=1e-6)
    assert lengths.std() == pytest.approx(float(row[8]), rel=1e-4)
    assert a.indices.dtype == np.int32 and a.dtype == np.float32
    # values are seeded: same seed, same values; the explicit .smtx suffix and the env root name the same file
    monkeypatch.setenv(sources.DLMC_ENV, str(dlmc))
    again = sources.load(f"dlmc:{FFN1}.smtx")
    np.testing.assert_array_equal(again.a.data, a.data)
    np.testing.assert_array_equal(again.a.indices, a.indices)
    other = sources.load(f"dlmc:{FFN1}", seed=1).a
    assert not np.array_equal(other.data, a.data)
    np.testing.assert_array_equal(other.indptr, a.indptr)


def test_every_dlmc_file_in_the_subset_loads_and_matches_the_csv(dlmc):
    """All files of the subset (96 here, about 1 s): validated, and shaped as dlmc.csv says."""
    import csv

    table = {r["path"].removeprefix("dlmc/").removesuffix(".smtx"): r for r in csv.DictReader(open(dlmc / "dlmc.csv"))}
    files = sorted(dlmc.rglob("*.smtx"))
    assert files
    for path in files:
        rel = str(path.relative_to(dlmc))[: -len(".smtx")]
        a = sources.load(f"dlmc:{rel}", dlmc_root=str(dlmc)).a
        r = table[rel]
        assert (a.m, a.k, a.nnz) == (int(r["nrows"]), int(r["ncols"]), int(float(r["nnz"]))), rel


def test_dlmc_missing_root_or_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.DLMC_ENV, raising=False)
    with pytest.raises(SourceError, match=r"no DLMC root: get the Deep Learning Matrix Collection \(dlmc\.tar\.gz"):
        sources.load(f"dlmc:{FFN1}")
    with pytest.raises(SourceError, match=r"is not a directory: get the"):
        sources.load(f"dlmc:{FFN1}", dlmc_root=str(tmp_path / "nope"))
    with pytest.raises(SourceError, match=r"no DLMC matrix 'x/y' under .*dlmc\.tar\.gz"):
        sources.load("dlmc:x/y", dlmc_root=str(tmp_path))


# ---------------------------------------------------------------------------------------------- smtx


def test_smtx_pattern_gets_seeded_values(tmp_path):
    p = tmp_path / "a.smtx"
    p.write_text("3, 5, 4\n0 2 2 4\n1 3 0 4\n")
    a = sources.load(f"smtx:{p}", seed=7).a
    assert a.shape == (3, 5) and a.nnz == 4
    assert a.indptr.tolist() == [0, 2, 2, 4] and a.indices.tolist() == [1, 3, 0, 4]
    np.testing.assert_array_equal(a.data, seeded_values(4, 7, np.float32))
    # the empty-matrix corner: two lines are enough when nnz = 0
    p0 = tmp_path / "z.smtx"
    p0.write_text("2, 3, 0\n0 0 0\n")
    z = sources.load(f"smtx:{p0}").a
    assert z.shape == (2, 3) and z.nnz == 0


# ---------------------------------------------------------------------------------------------- mtx


def test_mtx_coordinate_pattern_array_and_symmetric(tmp_path):
    d = example_dense()
    p = tmp_path / "a.mtx"
    scipy.io.mmwrite(str(p), sp.coo_matrix(d))
    np.testing.assert_array_equal(dense_of(f"mtx:{p}"), d)

    pat = tmp_path / "p.mtx"
    pat.write_text("%%MatrixMarket matrix coordinate pattern general\n3 4 3\n1 1\n3 4\n2 2\n")
    a = sources.load(f"mtx:{pat}", seed=3).a
    assert a.indptr.tolist() == [0, 1, 2, 3] and a.indices.tolist() == [0, 1, 3]
    np.testing.assert_array_equal(a.data, seeded_values(3, 3, np.float64))  # seeded, not all ones
    assert not np.array_equal(sources.load(f"mtx:{pat}", seed=4).a.data, a.data)

    arr = tmp_path / "arr.mtx"  # dense 'array' files: column-major values, zeros become structural zeros
    arr.write_text("%%MatrixMarket matrix array real general\n2 3\n1.0\n0\n0\n2.5\n-1\n0\n")
    np.testing.assert_array_equal(dense_of(f"mtx:{arr}"), [[1.0, 0, -1], [0, 2.5, 0]])

    utf8 = tmp_path / "u.mtx"  # UTF-8 in a comment is legal Matrix Market
    utf8.write_text("%%MatrixMarket matrix coordinate real general\n% auteur: Zoë Müller\n2 2 1\n2 1 3.5\n",
                    encoding="utf-8")
    np.testing.assert_array_equal(dense_of(f"mtx:{utf8}"), [[0, 0], [3.5, 0]])
    import gzip

    gz = tmp_path / "a.mtx.gz"  # scipy reads compressed files; the source must not refuse them first
    gz.write_bytes(gzip.compress(p.read_bytes()))
    np.testing.assert_array_equal(dense_of(f"mtx:{gz}"), d)

    sym = tmp_path / "s.mtx"
    sym.write_text("%%MatrixMarket matrix coordinate real symmetric\n3 3 2\n2 1 4.0\n3 3 1.0\n")
    np.testing.assert_array_equal(dense_of(f"mtx:{sym}"), [[0, 4, 0], [4, 0, 0], [0, 0, 1]])


# ---------------------------------------------------------------------------------------------- npz


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_npz_each_scipy_format(tmp_path, fmt):
    d = example_dense(11, 6, 0.35, seed=2)
    p = tmp_path / f"a_{fmt}.npz"
    sp.save_npz(p, sp.csr_matrix(d).asformat(fmt))
    a = sources.load(f"npz:{p}").a
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a.to_dense(), d)
    a.validate()  # canonical: sorted, no duplicates


def test_npz_float32_values_kept(tmp_path):
    d = example_dense(5, 5, 0.5, seed=3).astype(np.float32)
    p = tmp_path / "f.npz"
    sp.save_npz(p, sp.csr_matrix(d))
    a = sources.load(f"npz:{p}").a
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a.to_dense(), d)


# ---------------------------------------------------------------------------------------------- safetensors


def write_bf16(path, name, values_f32):
    """A safetensors file written by hand: numpy has no bf16, so store the high 16 bits of float32."""
    bits = (np.ascontiguousarray(values_f32, np.float32).view(np.uint32) >> 16).astype("<u2")
    header = {name: {"dtype": "BF16", "shape": list(values_f32.shape), "data_offsets": [0, bits.nbytes]},
              "__metadata__": {"format": "pt"}}
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + bits.tobytes())


def test_safetensors_f32_f16_bf16(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(5)
    w32 = rng.standard_normal((6, 10)).astype(np.float32)
    w16 = rng.standard_normal((4, 8)).astype(np.float16)
    w64 = rng.standard_normal((3, 3))
    p = tmp_path / "m.safetensors"
    save_file({"layer.w32": w32, "layer.w16": w16, "layer.w64": w64}, str(p))
    a = sources.load(f"safetensors:{p}#layer.w32").a
    assert a.dtype == np.float32 and a.nnz == w32.size
    np.testing.assert_array_equal(a.to_dense(), w32)
    b = sources.load(f"safetensors:{p}#layer.w16").a
    assert b.dtype == np.float32
    np.testing.assert_array_equal(b.to_dense(), w16.astype(np.float32))  # f16 -> f32 is exact
    c = sources.load(f"safetensors:{p}#layer.w64").a
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c.to_dense(), w64)

    # bf16: values with zero low halves are exactly representable; widening must reproduce them bit for bit
    w = (rng.standard_normal((5, 12)).astype(np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)
    w[1, 3] = 0.0  # a zero weight becomes a structural zero
    pb = tmp_path / "bf.safetensors"
    write_bf16(pb, "w", w)
    a = sources.load(f"safetensors:{pb}#w").a
    assert a.dtype == np.float32 and a.nnz == w.size - 1
    np.testing.assert_array_equal(a.to_dense(), w)
    # with pruning, as for real weights
    pruned = sources.load(f"safetensors:{pb}#w", prune="magnitude:0.5")
    assert pruned.a.nnz == 30 and pruned.spec.endswith("@magnitude:0.5")


def test_safetensors_errors(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "m.safetensors"
    save_file({"w": np.ones((2, 2), np.float32), "v": np.ones(3, np.float32)}, str(p))
    with pytest.raises(SourceError, match=r"no tensor 'x'; it has w, v|no tensor 'x'; it has v, w"):
        sources.load(f"safetensors:{p}#x")
    with pytest.raises(SourceError, match=r"has shape \[3\]; SpMM needs a 2-D weight"):
        sources.load(f"safetensors:{p}#v")
    with pytest.raises(SourceError, match=r"must be safetensors:<file>#<tensor>"):
        sources.load(f"safetensors:{p}")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    with pytest.raises(SourceError, match=r"not a safetensors file"):
        sources.load(f"safetensors:{bad}#w")
    nan = tmp_path / "nan.safetensors"
    save_file({"w": np.array([[1.0, np.nan]], np.float32)}, str(nan))
    with pytest.raises(SourceError, match=r"NaN or Inf"):
        sources.load(f"safetensors:{nan}#w")
    tb = tmp_path / "trunc_bf16.safetensors"
    write_bf16(tb, "w", np.ones((4, 4), np.float32))
    tb.write_bytes(tb.read_bytes()[:-6])
    with pytest.raises(SourceError, match=r"data offsets \[0, 32\] lie outside the file's 26 data bytes"):
        sources.load(f"safetensors:{tb}#w")


# ---------------------------------------------------------------------------------------------- synthetic


def test_synthetic_uniform_exact_count_and_seeded():
    a = sources.load("synthetic:uniform:64x48:0.75").a
    assert a.shape == (64, 48) and a.nnz == 768  # round(0.25 * 64 * 48)
    a.validate()
    same = sources.load("synthetic:uniform:64x48:0.75").a
    np.testing.assert_array_equal(same.indices, a.indices)
    np.testing.assert_array_equal(same.data, a.data)
    s3 = sources.load("synthetic:uniform:64x48:0.75:seed=3")
    assert s3.seed == 3 and s3.a.nnz == 768
    assert not np.array_equal(s3.a.indices, a.indices)


@pytest.mark.parametrize("name, shape", [("attention", (512, 512)), ("ffn1", (2048, 512)), ("ffn2", (512, 2048))])
def test_synthetic_layer_shapes(name, shape):
    a = sources.load(f"synthetic:uniform:{name}:0.99").a
    assert a.shape == shape and a.nnz == round(0.01 * shape[0] * shape[1])


def test_synthetic_magnitude_is_dlmc_like_and_default():
    a = sources.load(sources.DEFAULT_SPEC).a
    assert a.shape == (2048, 512) and a.nnz == round(0.1 * 2048 * 512)
    st = sources.row_stats(a)
    assert 0.2 < st["row_cv"] < 0.3  # DLMC body_decoder_layer_0_ffn_conv1 at 90%: row CV 0.251
    # without a sparsity it defaults to 0.9
    assert sources.load("synthetic:magnitude:64x64").a.nnz == round(0.1 * 64 * 64)


@pytest.mark.parametrize("spec, keep, group", [("synthetic:nm:attention", 2, 4), ("synthetic:nm:32x24:nm=1:4", 1, 4),
                                               ("synthetic:nm:16x24:0.75:nm=2:8", 2, 8)])
def test_synthetic_nm_every_group_holds_exactly_n(spec, keep, group):
    d = dense_of(spec)
    counts = (d != 0).reshape(d.shape[0], -1, group).sum(axis=2)
    assert (counts == keep).all()


def test_synthetic_block_pattern():
    a = sources.load("synthetic:block:ffn2:0.9:block=8x16").a
    assert a.shape == (512, 2048)
    blocks = (a.to_dense() != 0).reshape(64, 8, 128, 16)
    per_block = blocks.sum(axis=(1, 3))
    assert set(np.unique(per_block)) <= {0, 128}  # a block is all kept or all dropped
    assert (per_block == 128).sum() == round(0.1 * 64 * 128)
    assert sources.load("synthetic:block:32x32").a.nnz % 16 == 0  # default block 4x4


# ---------------------------------------------------------------------------------------------- pruning


def write_npz(path, dense):
    sp.save_npz(path, sp.csr_matrix(np.asarray(dense, dtype=np.float64)))
    return f"npz:{path}"


def test_magnitude_prune_exact_count_and_deterministic_ties(tmp_path):
    d = example_dense(20, 30, 1.0, seed=9)
    spec = write_npz(tmp_path / "d.npz", d)
    a = sources.load(spec, prune="magnitude:0.9").a
    assert a.nnz == 60
    kept = np.abs(a.data)
    dropped = np.sort(np.abs(d[a.to_dense() == 0]))
    assert kept.min() >= dropped.max()  # the 60 largest magnitudes
    # ties: all |w| equal (signs differ); the first positions in row-major order win, every time
    ties = np.ones((4, 5))
    ties[::2, ::2] = -1.0
    tspec = write_npz(tmp_path / "t.npz", ties)
    t = sources.load(tspec, prune="magnitude:0.7").a
    assert t.nnz == 6
    assert list(zip(*np.nonzero(t.to_dense()))) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)]
    np.testing.assert_array_equal(sources.load(tspec, prune="magnitude:0.7").a.to_dense(), t.to_dense())


def test_magnitude_prune_agrees_with_the_dense_rule_and_refuses_too_few(tmp_path, dlmc):
    spec = f"dlmc:{FFN1}"
    a = sources.load(spec, dlmc_root=str(dlmc)).a
    pruned = sources.load(spec, dlmc_root=str(dlmc), prune="magnitude:0.95").a
    assert pruned.nnz == round(0.05 * a.m * a.k)
    mask = sources.magnitude_mask_dense(a.to_dense(), 0.95)
    np.testing.assert_array_equal(pruned.to_dense() != 0, mask)
    with pytest.raises(SourceError, match=r"magnitude:0.8 keeps 209715 entries but the matrix has only 104857 "
                                          r"nonzeros \(it is 0.9 sparse already\)"):
        sources.load(spec, dlmc_root=str(dlmc), prune="magnitude:0.8")


def test_random_prune_seeded_subset(tmp_path):
    d = example_dense(30, 30, 0.5, seed=1)
    spec = write_npz(tmp_path / "r.npz", d)
    a = sources.load(spec, prune="random:0.9", seed=1).a
    assert a.nnz == 90
    kept = a.to_dense()
    np.testing.assert_array_equal(kept[kept != 0], d[kept != 0])  # a subset, values untouched
    again = sources.load(spec, prune="random:0.9", seed=1).a
    np.testing.assert_array_equal(again.indices, a.indices)
    other = sources.load(spec, prune="random:0.9", seed=2).a
    assert other.nnz == 90 and not np.array_equal(other.to_dense() != 0, kept != 0)
    with pytest.raises(SourceError, match=r"keeps 810 entries but the matrix has only"):
        sources.load(spec, prune="random:0.1")


def test_two_four_prune_keeps_two_largest_of_each_four(tmp_path):
    d = example_dense(8, 16, 1.0, seed=4)
    spec = write_npz(tmp_path / "n.npz", d)
    loaded = sources.load(spec, prune="2:4")
    assert loaded.spec == f"{spec}@2:4"
    p = loaded.a.to_dense().reshape(8, 4, 4)
    g = np.abs(d).reshape(8, 4, 4)
    assert ((p != 0).sum(axis=2) == 2).all()
    two_largest = np.sort(g, axis=2)[:, :, 2:]
    np.testing.assert_array_equal(np.sort(np.abs(p), axis=2)[:, :, 2:], two_largest)


@pytest.mark.parametrize("text, pattern", [("magnitude:1.0", r"outside \[0, 1\)"), ("magnitude:-0.1", r"outside"),
                                           ("random:x", r"not a number"), ("3:2", r"1 <= N <= M"),
                                           ("topk:0.5", r"unknown prune spec")])
def test_bad_prune_specs(text, pattern):
    with pytest.raises(SourceError, match=pattern):
        sources.parse_prune(text)


# ---------------------------------------------------------------------------------------------- info, convert


def test_row_stats_numbers():
    a = CSR((4, 5), np.array([0, 0, 2, 2, 5], np.int32), np.array([1, 3, 0, 1, 4], np.int32),
            np.ones(5, np.float32))
    st = sources.row_stats(a, bins=3)
    assert (st["rows"], st["cols"], st["nnz"]) == (4, 5, 5)
    assert st["sparsity"] == pytest.approx(0.75)
    assert (st["row_min"], st["row_max"], st["empty_rows"], st["cols_touched"]) == (0, 3, 2, 4)
    assert st["row_mean"] == pytest.approx(1.25)
    assert st["row_cv"] == pytest.approx(np.sqrt(1.6875) / 1.25)
    assert [b["count"] for b in st["histogram"]] == [2, 0, 2]  # bins [0,1) [1,2) [2,3] of lengths 0,2,0,3
    assert st["histogram"][0]["lo"] == 0.0 and st["histogram"][-1]["hi"] == 3.0


@pytest.mark.parametrize("suffix", [".mtx", ".npz", ".smtx"])
def test_convert_round_trip_and_no_overwrite(tmp_path, suffix):
    orig = sources.load("synthetic:magnitude:48x40:0.8:seed=2").a
    out = tmp_path / f"m{suffix}"
    assert sources.convert(orig, out) == out
    back = sources.load(f"{suffix[1:]}:{out}").a
    np.testing.assert_array_equal(back.indptr, orig.indptr)
    np.testing.assert_array_equal(back.indices, orig.indices)
    if suffix != ".smtx":  # .smtx keeps the pattern only
        np.testing.assert_array_equal(back.data.astype(np.float32), orig.data)
    before = out.read_bytes()
    other = sources.load("synthetic:uniform:8x8:0.5").a
    with pytest.raises(SourceError, match=r"exists; pass --force"):
        sources.convert(other, out)
    assert out.read_bytes() == before
    sources.convert(other, out, force=True)
    assert sources.load(f"{suffix[1:]}:{out}").a.shape == (8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary files left behind
    with pytest.raises(SourceError, match=r"must end in .mtx, .npz or .smtx"):
        sources.convert(other, tmp_path / "m.txt")


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 20), k=st.integers(1, 20), density=st.floats(0, 1), seed=st.integers(0, 2**16),
       suffix=st.sampled_from([".mtx", ".npz", ".smtx"]), f64=st.booleans())
def test_property_files_round_trip(tmp_path, m, k, density, seed, suffix, f64):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((m, k)) < density, rng.standard_normal((m, k)), 0.0)
    dense = dense.astype(np.float64 if f64 else np.float32)
    a = CSR.from_dense(dense)
    out = tmp_path / f"p{seed}_{m}x{k}{suffix}"
    sources.convert(a, out, force=True)
    back = sources.load(f"{suffix[1:]}:{out}").a
    assert back.shape == (m, k)
    np.testing.assert_array_equal(back.indptr, a.indptr)
    np.testing.assert_array_equal(back.indices, a.indices)
    if suffix != ".smtx":
        np.testing.assert_array_equal(back.data.astype(dense.dtype), a.data)  # exact, float64 included
