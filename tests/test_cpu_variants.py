"""Registry-driven correctness of the CPU ladder: every CPU variant × every edge matrix × N in EDGE_N × each
Param choice (one Param varied at a time from the defaults, so the cases grow as a sum, not a product),
checked against the float64 reference with C poisoned before each run, and the same bits twice for the
deterministic variants (``conftest.check_variant``). Small tile choices (16, 32, 64) against N = 37 make
every tiled kernel run both its register-tile path and its tail.

Variants whose format refuses a matrix (2:4 on a matrix that is not 2:4; codegen past its nnz limit) must
refuse with a ``SpmmError`` — the harness turns that into a SKIP row — and never produce a wrong C.
"""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EDGE_N, check_variant, edge_matrices
from spmm_study import registry, sources
from spmm_study.errors import SpmmError
from spmm_study.formats import CSR
from spmm_study.harness import HarnessConfig, measure
from spmm_study.problem import Problem
from spmm_study.timing import TimingConfig

CPU = [v for v in registry.all_variants() if v.device == "cpu"]
AVAILABLE = [v for v in CPU if v.unavailable_reason() is None]
EDGES = edge_matrices()
# the code-specialised variant compiles one kernel per matrix and N: one N keeps the suite fast
N_FOR = {"cpu.csr.codegen": (37,)}


def param_cases(v) -> list[dict]:
    """The defaults, then each Param's every choice with the others at their defaults."""
    cases = [{}]
    for p in v.params:
        for choice in p.choices:
            if choice != p.default:
                cases.append({p.name: choice})
    return cases


CASES = [pytest.param(v, params, id=f"{v.id}-{'-'.join(f'{k}={val}' for k, val in params.items()) or 'defaults'}")
         for v in AVAILABLE for params in param_cases(v)]


def is_nm24(a: CSR) -> bool:
    """Counted here independently of ``NM24.violation`` (what the 2:4 rung's ``accepts`` asks)."""
    rows = np.repeat(np.arange(a.m), a.row_lengths())
    groups = -(-a.k // 4)
    if a.nnz == 0:
        return True
    return np.bincount(rows * groups + a.indices // 4, minlength=a.m * groups).max() <= 2


def run_case(v, a: CSR, n: int, params: dict, label: str) -> None:
    """check_variant runs an accepted matrix and demands a SpmmError for one the variant does not accept."""
    refused = check_variant(v, a, n, params, label=label)
    if v.id == "cpu.nm24.tiled":
        assert bool(refused) != is_nm24(a) and (not refused or "not 2:4" in refused), (label, refused)


def test_short_names_resolve_to_the_cpu_rungs():
    assert registry.get("tiled").id == "cpu.csr.tiled"  # `spmm-study run --variant tiled`
    assert registry.get("naive").id == "cpu.dense.naive" and registry.get("nm24.tiled").id == "cpu.nm24.tiled"
    for v in CPU:
        assert registry.get(v.id) is v and v.summary and v.loop_order, v.id


@pytest.mark.parametrize("v, params", CASES)
def test_variant_on_edge_matrices(v, params):
    for name, a in EDGES.items():
        for n in N_FOR.get(v.id, EDGE_N):
            run_case(v, a, n, params, name)


@pytest.mark.parametrize("v", [v for v in AVAILABLE if v.id != "cpu.csr.codegen"], ids=lambda v: v.id)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 40), k=st.integers(1, 40), n=st.integers(1, 70), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**16))
def test_variant_on_drawn_matrices(v, m, k, n, density, seed):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((m, k)) < density, rng.standard_normal((m, k)), 0.0).astype(np.float32)
    run_case(v, CSR.from_dense(dense), n, {}, f"drawn {m}x{k} d={density:.2f} seed={seed}")


def test_float64_is_supported_by_the_sparse_rungs():
    a = EDGES["random"]
    for vid in ("cpu.csr.rowwise", "cpu.csr.rowwise_par", "cpu.csr.tiled", "cpu.coo.par", "cpu.sell.tiled"):
        check_variant(registry.get(vid), a, 37, {"tile_n": 16} if "tile_n" in {p.name for p in registry.get(vid).params} else {},
                      dtype="float64", label="random fp64")


def test_2_4_variant_runs_on_2_4_matrices_and_skips_others():
    v = registry.get("cpu.nm24.tiled")
    for spec in ("synthetic:nm:16x24", "synthetic:nm:9x11", "synthetic:nm:5x1", "synthetic:nm:7x6"):
        a = sources.load(spec).a
        assert is_nm24(a)
        for tile_n in (16, 256):
            check_variant(v, a, 37, {"tile_n": tile_n}, label=spec)
    pruned = sources.load("synthetic:magnitude:12x20:0.5", prune="2:4").a
    check_variant(v, pruned, 19, {"tile_n": 16}, label="magnitude pruned 2:4")
    # a matrix that is not 2:4 gives a SKIP row through the harness, with the offending group named
    problem = Problem.make(sources.load("synthetic:uniform:16x32:0.2").a, 8)
    row = measure(v, problem, {}, HarnessConfig(TimingConfig(repeats=1, min_time_s=0, warmup_s=0)))
    assert row.status == "SKIP" and "not 2:4" in row.message


def test_codegen_refuses_past_its_limit_with_a_skip_row():
    v = registry.get("cpu.csr.codegen")
    problem = Problem.make(EDGES["random"], 8)
    with pytest.raises(SpmmError, match="max_nnz"):
        v.build(problem, **v.resolve_params({"max_nnz": 10}))
    row = measure(v, problem, {"max_nnz": 10}, HarnessConfig(TimingConfig(repeats=1, min_time_s=0, warmup_s=0)))
    assert row.status == "SKIP" and "max_nnz" in row.message


def test_parallel_variants_give_the_same_bits_at_any_thread_count():
    """No reassociation and no shared rows: one thread and all threads must agree bit for bit."""
    a = sources.load("synthetic:magnitude:96x64:0.8").a
    before = numba.get_num_threads()
    try:
        for vid, params in (("cpu.csr.tiled", {"tile_n": 16}), ("cpu.csr.rowwise_par", {}), ("cpu.coo.par", {}),
                            ("cpu.csr.panel", {"panel_kib": 1}),
                            ("cpu.dense.tiled_par", {"tile_i": 8})):
            v = registry.get(vid)
            outs = []
            for threads in (1, numba.config.NUMBA_NUM_THREADS):
                numba.set_num_threads(threads)
                problem = Problem.make(a, 40)
                prep = v.build(problem, **v.resolve_params(params))
                prep.poison()
                prep.run()
                outs.append(np.array(prep.fetch(), copy=True))
                assert problem.check(outs[-1]).ok
            assert np.array_equal(outs[0], outs[1]), vid
    finally:
        numba.set_num_threads(before)


def test_unavailable_baselines_say_why():
    for v in CPU:
        reason = v.unavailable_reason()
        if reason is not None:
            assert v.baseline and len(reason) > 10, v.id


def test_tiled_packs_a_misaligned_b_and_uses_an_aligned_one_as_is():
    from spmm_study.cpu._simd import ALIGN, aligned_empty

    a = EDGES["n_not_multiple_of_tile"]
    v = registry.get("cpu.csr.tiled")
    base = Problem.make(a, 37)
    for offset in (0, 16):
        raw = aligned_empty((base.b.size * 4 + ALIGN,), np.uint8)
        b = raw[offset:offset + base.b.nbytes].view(np.float32).reshape(base.b.shape)
        b[...] = base.b
        problem = Problem(base.a, b)
        prep = v.build(problem, **v.resolve_params({"tile_n": 16}))
        assert prep.info["b_offset_bytes"] == offset and prep.info["b_packed"] == (offset != 0)
        prep.poison()
        prep.run()
        assert problem.check(prep.fetch()).ok
        b *= 2.0  # B changes between calls: a packed copy must follow
        prep.run()
        assert np.allclose(prep.fetch(), 2.0 * problem.reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("vid", ["cpu.csr.tiled", "cpu.csr.rowwise_par"])
@pytest.mark.parametrize("rows_per_task", [1, 3])
def test_dynamic_balance_with_many_small_tasks(vid, rows_per_task):
    params = {"balance": "dynamic", "rows_per_task": rows_per_task}
    if vid == "cpu.csr.tiled":
        params["tile_n"] = 16
    for name in ("tall", "empty_rows", "one_dense_row"):
        check_variant(registry.get(vid), EDGES[name], 37, params, label=name)


@pytest.mark.parametrize("how, chunk", [("dynamic", 1), ("nnz", 0), ("static", 0)])
def test_dynamic_balance_runs_under_a_chunk_size_of_one(how, chunk):
    from spmm_study.cpu.balance import scheduled

    seen = []
    scheduled(lambda: seen.append(numba.get_parallel_chunksize()), how)()
    assert seen == [chunk] and numba.get_parallel_chunksize() == 0


# Every N tail of a 16-lane vector (issue 12): below, at and past 16, 32, 48, 64 and 96 columns.
TAIL_N = (1, 15, 17, 31, 33, 49, 63, 65, 100)


@pytest.mark.parametrize("v", [v for v in AVAILABLE if v.id != "cpu.csr.codegen"], ids=lambda v: v.id)
def test_variant_on_every_n_tail(v):
    for name in ("n_not_multiple_of_tile", "empty_rows"):
        for n in TAIL_N:
            run_case(v, EDGES[name], n, {}, f"{name} N={n}")


@pytest.mark.parametrize("vid, params", [("cpu.csr.vec", {"max_vectors": 4}), ("cpu.csr.vec", {"pack_b": False}),
                                         ("cpu.csr.rowblock", {"rows": 8}),
                                         ("cpu.csr.panel", {"panel_kib": 1}), ("cpu.csr.panel", {"max_vectors": 2})])
def test_vector_rungs_across_tiles_and_tails(vid, params):
    """N past one register tile (several column tiles, then a masked tail) on a matrix whose row count is not
    a multiple of the row-block size (few distinct kernels: each tile plan is a compile)."""
    a = sources.load("synthetic:uniform:29x40:0.3").a
    for n in ((100, 300) if params.get("pack_b", True) else (100,)):
        check_variant(registry.get(vid), a, n, params, label=f"29x40 N={n}")


def test_vec_tile_plan_cuts_n_into_equal_tiles():
    from spmm_study.cpu.k14_csr_vec import tile_plan

    assert tile_plan(256, 16, 16) == (16, 16, 0, False)
    assert tile_plan(300, 16, 16) == (10, 9, 160, True)  # 160 + 140 columns, not 256 + 44
    assert tile_plan(49, 16, 16) == (4, 4, 0, True)
    assert tile_plan(4096, 16, 16) == (16, 16, 3840, False)
    assert tile_plan(17, 16, 1) == (1, 1, 16, True)


def test_panel_blocks_list_each_row_once_per_block_it_touches():
    """The blocked copy of A: every nonzero once, in block order within its row; one entry per (part, block,
    row) with nonzeros, the first of each row flagged; empty rows listed for zeroing; offsets inside a panel.
    And the rung's bits equal rung 14's (same sums in the same order, C round-trips exactly)."""
    from spmm_study.cpu.balance import partition
    from spmm_study.cpu.k17_csr_panel import column_blocks

    dense = np.array([[0, 1, 0, 2, 3, 0], [0, 0, 0, 0, 0, 0], [4, 0, 0, 0, 0, 5], [0, 0, 6, 7, 0, 0]], np.float32)
    a = CSR.from_dense(dense)
    rows, bounds = partition(a.row_lengths(), 2, "nnz")
    blk = column_blocks(a.indptr, a.indices, a.data, rows, bounds, 2, 16)  # blocks of 2 columns: 3 blocks
    assert blk["nb"] == 3 and sorted(blk["vals"].tolist()) == [1, 2, 3, 4, 5, 6, 7]
    entries = []
    for t in range(2):
        for b in range(3):
            for e in range(blk["seg"][t * 3 + b], blk["seg"][t * 3 + b + 1]):
                vals = blk["vals"][blk["start"][e]:blk["start"][e + 1]].tolist()
                offs = blk["offs"][blk["start"][e]:blk["start"][e + 1]].tolist()
                entries.append((int(blk["erow"][e]), b, vals, offs, int(blk["first"][e])))
    assert sorted(entries) == [(0, 0, [1.0], [16], 1), (0, 1, [2.0], [16], 0), (0, 2, [3.0], [0], 0),
                               (2, 0, [4.0], [0], 1), (2, 2, [5.0], [16], 0),
                               (3, 1, [6.0, 7.0], [0, 16], 1)]
    assert blk["empty"].tolist() == [1]
    a2 = sources.load("synthetic:uniform:53x300:0.1").a
    problem = Problem.make(a2, 70)
    outs = []
    for vid, params in (("cpu.csr.vec", {}), ("cpu.csr.panel", {"panel_kib": 1, "max_vectors": 2})):
        v = registry.get(vid)
        prep = v.build(problem, **v.resolve_params(params))
        prep.poison()
        prep.run()
        outs.append(np.array(prep.fetch(), copy=True))
    assert problem.check(outs[1]).ok and np.array_equal(outs[0], outs[1])


def test_rowblock_groups_sorted_rows_and_pads_the_last_group():
    from spmm_study.cpu.k15_csr_rowblock import group_partition

    lengths = np.array([3, 9, 1, 7, 7, 2, 5], dtype=np.int32)
    order, bounds, info = group_partition(lengths, 3, 2)
    assert list(order[:7]) == [1, 3, 4, 6, 0, 5, 2]  # longest first, stable
    assert order.size == 9 and list(order[7:]) == [2, 2]  # last group padded with its last row
    assert bounds[0] == 0 and bounds[-1] == 9 and all(bd % 3 == 0 for bd in bounds)
    assert info["rows"] == 3 and sum(info["work_nnz_per_thread"]) == lengths.sum()


def test_spregtiling_is_unavailable_without_its_entry_point(monkeypatch, tmp_path):
    """The artifact is never shipped: without $SPMM_STUDY_SPREGTILING, or pointing at something that is not its
    built entry point, the baseline is listed unavailable with the reason and measuring it is a clear error."""
    from spmm_study.errors import DeviceUnavailable

    v = registry.get("cpu.csr.spregtiling")
    problem = Problem.make(EDGES["random"], 8)
    monkeypatch.delenv("SPMM_STUDY_SPREGTILING", raising=False)
    assert "SPMM_STUDY_SPREGTILING is not set" in v.unavailable_reason()
    monkeypatch.setenv("SPMM_STUDY_SPREGTILING", str(tmp_path / "missing.so"))
    assert "is not a file" in v.unavailable_reason()
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not a shared library")
    monkeypatch.setenv("SPMM_STUDY_SPREGTILING", str(junk))
    assert "could not be loaded" in v.unavailable_reason()
    with pytest.raises(DeviceUnavailable, match="unavailable"):
        measure(v, problem, {}, HarnessConfig(TimingConfig(repeats=1, min_time_s=0, warmup_s=0)))
    import ctypes.util

    libm = ctypes.util.find_library("m")  # a real library without the entry point's functions
    if libm:
        monkeypatch.setenv("SPMM_STUDY_SPREGTILING", libm if os.path.isabs(libm) else _which_lib(libm))
        reason = v.unavailable_reason()
        assert reason and ("does not export srt_create" in reason or "not a file" in reason)


_SRT_REASON = registry.get("cpu.csr.spregtiling").unavailable_reason()


@pytest.mark.skipif(_SRT_REASON is not None, reason=f"no built entry point: {_SRT_REASON}")
def test_spregtiling_runs_the_built_library():
    """With $SPMM_STUDY_SPREGTILING naming a library built by experiments/build_spregtiling.py (CI has none:
    skipped), the artifact against float64 with C poisoned: N with and without a tail of 16 and past the
    N its heuristic lists, a B changed in place between calls, the two edges the entry point handles around
    the artifact (one nonzero: its miscount of the last nonzero; no nonzero), and the chosen method in info.
    The registry grid above runs it on every edge and drawn matrix too when the library is there."""
    v = registry.get("cpu.csr.spregtiling")
    a = sources.load("synthetic:uniform:300x256:0.9").a
    for n in (32, 49, 100, 257, 1024):
        check_variant(v, a, n, {}, label=f"300x256 N={n}")
    for name in ("single_nonzero", "all_zero"):
        check_variant(v, EDGES[name], 7, {}, label=name)
    problem = Problem.make(a, 40)
    prep = v.build(problem, **v.resolve_params({}))
    try:
        assert prep.info["config"].startswith("NANO_M"), prep.info
        prep.poison()
        prep.run()
        assert problem.check(prep.fetch()).ok
        problem.b *= 2.0  # B is read where it is: a changed B is what the next call multiplies
        prep.poison()
        prep.run()
        assert np.allclose(prep.fetch(), 2.0 * problem.reference, rtol=1e-4, atol=1e-4)
    finally:
        prep.release()


def _fake_srt_clone(root, nano=True, generated=True):
    """A directory shaped like the artifact's clone (no code of it: empty files and made-up tables)."""
    (root / "tools" / "paper").mkdir(parents=True)
    table = {"(0.0, 0.7]": {"32": ["NANO_M8N2_NKM_alt", "NANO_M4N4_KNM_orig"],
                            "256": ["NANO_M4N4_NKM_LB_TLB128_SA_identity"]},
             "(0.7, 1.0]": {"32": ["NANO_M4N4_KNM_LB_SA_orig"]}}
    import json

    for kind in ("single", "multi"):
        (root / "tools" / f"empirical_heuristic_{kind}_threaded.json").write_text(json.dumps(table))
    (root / "tools" / "paper" / "configs.py").write_text(
        'schedules = {"KNM": 0, "NKM": 1}\n'
        "def nano(size, mapping):\n"
        '    return {4: {"identity": "aaaaa", "orig": "bbbbb"}, 8: {"alt": "ccccc"}}.get(size, {}).get(mapping)\n')
    if nano:
        n = root / "spmm_nano_kernels"
        for d in ("include", "src", "mappings", "third_party/version2/vectorclass", "third_party/rte"):
            (n / d).mkdir(parents=True)
        (n / "include" / "MatMulSpecialized.h").write_text("")
        if generated:
            (n / "generated" / "AVX512" / "factories").mkdir(parents=True)
            (n / "generated" / "mapping_to_executor.cpp").write_text("")


def test_spregtiling_build_refuses_in_one_line(tmp_path, capsys):
    """experiments/build_spregtiling.py: a missing or wrong clone, no submodule, no codegen output, a bad
    --jobs: one line on stderr and exit 2, before any compiler runs."""
    from spmm_study.cpu import spregtiling as srt

    def refused(argv, words):
        assert srt.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and words in err, err

    refused(["build", str(tmp_path / "nowhere")], "is not a directory")
    (tmp_path / "empty").mkdir()
    refused(["build", str(tmp_path / "empty")], "is not a sparse-register-tiling clone")
    _fake_srt_clone(tmp_path / "nosub", nano=False)
    refused(["build", str(tmp_path / "nosub")], "git submodule update --init")
    refused(["build", str(tmp_path / "nosub"), "--nano", str(tmp_path / "empty")], "spmm-nano-kernels")
    _fake_srt_clone(tmp_path / "nogen", generated=False)
    refused(["build", str(tmp_path / "nogen")], "run the artifact's codegen first")
    refused(["build", str(tmp_path / "nogen"), "--jobs", "0"], "--jobs")
    refused(["frobnicate"], "invalid choice")
    refused(["build"], "required")


def test_spregtiling_heuristic_table_takes_the_first_ranked_method(tmp_path):
    """The generated srt_heuristic.h: one row per bucket and N, the first-ranked name decoded (tile shape,
    schedule, load balance, TLB entries, sparse A, mapping id); names it cannot run are refused."""
    from spmm_study.cpu import spregtiling as srt

    _fake_srt_clone(tmp_path)
    header = srt.heuristic_header(tmp_path)
    rows = [ln.strip() for ln in header.splitlines() if ln.startswith("  {")]
    assert len(rows) == 6  # 3 entries x single/multi
    assert '{false, 0.0, 0.7, 32, "NANO_M8N2_NKM_alt", 8, 2, "ccccc", 1, 0, 0, 0, 10},' in rows
    assert '{false, 0.0, 0.7, 256, "NANO_M4N4_NKM_LB_TLB128_SA_identity", 4, 4, "aaaaa", 1, 1, 128, 1, 10},' in rows
    assert '{true, 0.7, 1.0, 32, "NANO_M4N4_KNM_LB_SA_orig", 4, 4, "bbbbb", 0, 1, 0, 1, 10},' in rows
    assert "NANO_M4N4_KNM_orig" not in header  # second-ranked: not used
    mappings, schedules = srt.name_tables(tmp_path)
    for bad in ("NANO_M4N4_NKM_packed_identity", "NANO_M4N4_XYZ_identity", "CSB_x"):
        with pytest.raises(srt.BuildError):
            srt.decode(bad, mappings, schedules)


def _which_lib(name: str) -> str:
    import glob

    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"):
        hits = glob.glob(os.path.join(d, name + "*"))
        if hits:
            return hits[0]
    return name


def test_auto_rule_on_feature_vectors():
    """The fitted rule is a pure function of (N, mean row length): a table of N buckets, every choice a known
    rung; small N goes where the table says, and a split on row length is honoured."""
    from spmm_study.cpu import k16_csr_auto as auto

    table = auto.rule()
    assert table and all(e["choice"] in auto.LABELS for e in table)
    assert [e["n_max"] for e in table] == sorted(e["n_max"] for e in table) and table[-1]["n_max"] == float("inf")
    for n in (1, 16, 32, 49, 64, 100, 128, 196, 256, 512, 784, 1024, 2048, 3136, 10**6):
        for row_mean in (0.0, 2.5, 10.0, 51.2, 400.0):
            vid, params, feats = auto.choose(n, 1000, int(row_mean * 1000), table, k=2048)
            assert vid in ("cpu.csr.vec", "cpu.csr.rowblock", "cpu.csr.panel") and feats["n"] == n
            registry.get(vid).resolve_params(params)  # every choice is a legal parameter set
    for threads in (2, 3, 64):  # a rule of its own from 2 threads up, each choice a known rung
        t2 = auto.rule(threads)
        assert t2 is not table and t2[-1]["n_max"] == float("inf")
        assert all(e["choice"] in auto.LABELS and e.get("choice_short", e["choice"]) in auto.LABELS for e in t2)
        assert auto.choose(256, 2048, 104857, k=512, threads=threads)[2]["threads"] == threads
    fake = [{"n_max": 64, "choice": "rowblock rows=2", "row_mean_below": 8.0, "choice_short": "rowblock rows=4"},
            {"n_max": float("inf"), "choice": "vec max_vectors=16"}]
    assert auto.choose(32, 100, 300, fake)[:2] == ("cpu.csr.rowblock", {"rows": 4})  # 3 per row: short
    assert auto.choose(32, 100, 3000, fake)[:2] == ("cpu.csr.rowblock", {"rows": 2})
    assert auto.choose(65, 100, 3000, fake)[:2] == ("cpu.csr.vec", {"max_vectors": 16})
    assert auto.choose(65, 0, 0, fake)[2]["row_mean"] == 0.0  # no rows: no division by zero
    by_k = [{"n_max": float("inf"), "choice": "panel max_vectors=4", "k_below": 1024.0,
             "choice_short": "vec max_vectors=8"}]
    assert auto.choose(512, 512, 5000, by_k, k=512)[:2] == ("cpu.csr.vec", {"max_vectors": 8})
    assert auto.choose(512, 512, 5000, by_k, k=2048)[:2] == ("cpu.csr.panel", {"max_vectors": 4})
    assert auto.choose(512, 512, 5000, by_k, k=2048)[2]["col_mean"] == round(5000 / 2048, 2)


def test_auto_prints_its_choice_in_info():
    v = registry.get("auto")
    assert v.id == "cpu.csr.auto"
    problem = Problem.make(EDGES["random"], 37)
    prep = v.build(problem, **v.resolve_params({}))
    assert prep.info["auto_choice"].startswith(("cpu.csr.vec", "cpu.csr.rowblock", "cpu.csr.panel"))
    assert prep.info["auto_features"]["n"] == 37


def test_tiled_default_tile_comes_from_n_and_the_l2():
    """Issue 24: ``cpu.csr.tiled``'s default tile is chosen from the machine: no wider than N (a wider tile
    leaves every column to the row-wise tail) and with its K × tile_n panel of B inside the L2."""
    from spmm_study import movement
    from spmm_study.cpu import k13_csr_tiled as k13

    mib = 1 << 20
    assert k13.machine_tile_n(256, 512, 4, mib) == 256  # the README's main job: B (512 KiB) fits a 1 MiB L2
    assert k13.machine_tile_n(256, 2048, 4, mib) == 128  # ffn_conv2: a 2 MiB panel would not
    assert k13.machine_tile_n(1024, 2048, 4, 2 * mib) == 256
    assert k13.machine_tile_n(100, 512, 4, mib) == 64 and k13.machine_tile_n(20, 512, 4, mib) == 64
    assert k13.machine_tile_n(4096, 1 << 14, 4, mib) == 64  # nothing fits: the narrowest vector-friendly tile
    v = registry.get("cpu.csr.tiled")
    problem = Problem.make(EDGES["random"], 37)
    prep = v.build(problem, **v.resolve_params({}))
    assert prep.info["tile_n"] == 64 and prep.info["tile_n_from"].startswith("machine")
    shape = problem.shape
    assert v.movement(shape, v.resolve_params({})) == movement.csr_tiled(shape, {**v.resolve_params({}), "tile_n": 64})
