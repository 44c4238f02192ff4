"""Rung 23 (gpu.nm24.mma_sp) without a GPU: the 2:4 metadata of the project's format against hand-worked
examples, the rung's packed layout read back by the PTX ISA's fragment mapping of sparse m16n8k16 (as the
warp's mma.sp would assemble its tiles) against float64, the half-precision decoding of the emulation, and
the mma engine linked offline (numba LTO-IR + NVRTC + nvJitLink) with mma.sp inlined and no local memory.
The kernel itself (emulation engine) runs in the simulator through ``spmm-study check`` in test_gpu_sim.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spmm_study import dtypes, registry
from spmm_study.edge import nm24_matrix
from spmm_study.errors import FormatError
from spmm_study.formats import CSR, NM24
from spmm_study.gpu import k23_nm24_mma_sp as sp


def test_nm24_metadata_hand_worked():
    """Row 0: group 0 keeps columns 1 and 3 (positions 1, 3), group 1 a lone entry at position 0 (then a padding
    zero at 1). Row 1: group 0 a lone entry at position 3: a padding zero at 0 first, so the pair is ascending;
    group 1 empty (zeros at 0 and 1). Slot s's position sits in bits 2(s%4)..2(s%4)+1 of byte s//4:
    row 0: positions 1, 3, 0, 1 → 0b01_00_11_01 = 77;  row 1: positions 0, 3, 0, 1 → 0b01_00_11_00 = 76."""
    a = CSR.from_dense(np.array([[0, 5, 0, 7, 1, 0, 0, 0],
                                 [0, 0, 0, 2, 0, 0, 0, 0]], np.float32))
    nm = NM24.from_csr(a)
    assert nm.data.tolist() == [[5, 7, 1, 0], [0, 2, 0, 0]]
    assert nm.meta.tolist() == [[77], [76]]
    # the same bytes as mma.sp's 16-bit metadata word of a row (16 columns: two bytes, little-endian)
    wide = CSR.from_dense(np.pad(a.to_dense(), ((0, 0), (0, 8))))
    assert sp.meta_word(NM24.from_csr(wide).meta).tolist() == [[77 | (0b01_00_01_00 << 8)], [76 | (0b01_00_01_00 << 8)]]


def test_mma_sp_register_pairs_rows_g_and_g_plus_8():
    """A 16×16 tile whose row r keeps columns (r % 4, 4 + (r+1) % 4 ...): the lane group g's metadata register
    holds row g in bits 0..15 and row g+8 in bits 16..31."""
    d = np.zeros((16, 16), np.float32)
    d[3, [1, 2]] = [1, 2]  # row 3, group 0: positions 1, 2 → 0b10_01 = 9; groups 1..3 empty: 0b01_00 = 4 each
    d[11, [12, 15]] = [3, 4]  # row 11, group 3: positions 0, 3 → 0b11_00 = 12; groups 0..2 empty
    t = sp.sp_tiles(CSR.from_dense(d).astype(np.float16), np.float16)
    row3 = 9 | 4 << 4 | 4 << 8 | 4 << 12
    row11 = 4 | 4 << 4 | 4 << 8 | 12 << 12
    assert t.e.shape == (1, 1, 8) and int(t.e[0, 0, 3]) == row3 | (row11 << 16)
    empty = 4 | 4 << 4 | 4 << 8 | 4 << 12
    assert int(t.e[0, 0, 0]) == empty | (empty << 16)
    halves = t.a32.view(np.uint16).view(np.float16)
    assert halves[3, :2].tolist() == [1, 2] and halves[11, 6:8].tolist() == [3, 4]


@pytest.mark.parametrize("m, k, seed", [(7, 12, 1), (33, 40, 2), (16, 16, 3), (5, 64, 4)])
def test_positions_distinct_ascending_and_rebuild_a(m, k, seed):
    a = nm24_matrix(m, k, seed)
    a = CSR.from_dense(np.where(np.random.default_rng(seed).random((m, k)) < 0.3, 0, a.to_dense()))  # lone entries
    nm = NM24.from_csr(a)
    pos = (nm.meta[:, :, None] >> np.array([0, 2, 4, 6], np.uint8)) & 3
    pos = pos.reshape(m, -1)[:, :nm.data.shape[1]]
    assert np.all(pos[:, 0::2] < pos[:, 1::2])  # what mma.sp's ordered metadata needs
    rebuilt = np.zeros((m, k), np.float32)
    cols = 4 * (np.arange(nm.data.shape[1]) // 2)[None, :] + pos
    np.add.at(rebuilt, (np.repeat(np.arange(m), nm.data.shape[1]), cols.ravel()), nm.data.ravel())
    assert np.array_equal(rebuilt, a.to_dense())


def ptx_fragment_product(t: sp.SpTiles, bt32: np.ndarray, n: int, dtype) -> np.ndarray:
    """C = A·B as the warp's mma.sp sees it: each lane's registers read with the kernel's own indexing
    (a32[16w+g, 4kb+t], a32[16w+g+8, 4kb+t], bt32[col, 8kb+t], bt32[col, 8kb+t+4], e[w, kb, g]), and the tiles
    assembled from them by the PTX ISA's fragment layout of sparse m16n8k16 .f16/.bf16."""
    halves = lambda word: np.array([word & 0xFFFF, word >> 16], np.uint16).view(dtype).astype(np.float64)  # noqa: E731
    m16 = t.a32.shape[0]
    c = np.zeros((m16, -(-n // 8) * 8))
    for w in range(t.tiles):
        for kb in range(t.kblocks):
            for c0 in range(0, c.shape[1], 8):
                a = np.zeros((16, 16))
                b = np.zeros((16, 8))
                for lane in range(32):
                    g, tq = lane // 4, lane % 4
                    col = min(c0 + g, n - 1)
                    keep = 1.0 if c0 + g < n else 0.0
                    b[[2 * tq, 2 * tq + 1], g] = halves(int(bt32[col, 8 * kb + tq])) * keep
                    b[[2 * tq + 8, 2 * tq + 9], g] = halves(int(bt32[col, 8 * kb + tq + 4])) * keep
                    e = int(t.e[w, kb, g])  # selector 0: the first lane of the group supplies it
                    for half, row in ((0, g), (1, g + 8)):
                        vals = halves(int(t.a32[16 * w + row, 4 * kb + tq]))  # compressed columns 2t, 2t+1
                        word = (e >> (16 * half)) & 0xFFFF
                        for s in range(2):  # group tq of the row: its positions in bits 4tq..4tq+3
                            a[row, 4 * tq + ((word >> (4 * tq + 2 * s)) & 3)] += vals[s]
                c[16 * w:16 * w + 16, c0:c0 + 8] += a @ b
    return c[:, :n]


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
@pytest.mark.parametrize("m, k, n", [(7, 10, 5), (37, 20, 9), (20, 35, 17)])
def test_fragment_mapping_reproduces_the_product(dt, m, k, n):
    from spmm_study.problem import Problem

    p = Problem.make(nm24_matrix(m, k, m + k), n, dt, seed=1)
    t = sp.sp_tiles(p.a, p.dtype)
    bt = sp.pack_bt(p.b, t.kblocks * sp.TILE_K)
    c = ptx_fragment_product(t, bt, n, p.dtype)[:m]
    assert p.check(c.astype(np.float32)).ok
    swapped = sp.SpTiles(t.a32, ((t.e >> 16) | (t.e << 16)).astype(np.uint32), t.m, t.k, t.nnz)
    assert not p.check(ptx_fragment_product(swapped, bt, n, p.dtype)[:m].astype(np.float32)).ok


def test_sp_tiles_refuses_what_is_not_2_4():
    with pytest.raises(FormatError, match="not 2:4"):
        sp.sp_tiles(CSR.from_dense(np.ones((4, 8), np.float16)), np.float16)


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
def test_half_decoding_matches_numpy_for_every_finite_pattern(dt):
    dtype = dtypes.parse(dt)
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore"):  # the NaN patterns
        vals = bits.view(dtype).astype(np.float64)
    finite = np.isfinite(vals)
    got = np.array([sp.half_bits_to_float(int(h), dt == "bfloat16") for h in bits[finite][::37]])
    assert np.array_equal(got, vals[finite][::37])


def test_only_half_types_are_taken():
    v = registry.get("gpu.nm24.mma_sp")
    assert v.dtype_refusal(np.float32) == "gpu.nm24.mma_sp takes float16, bfloat16, not float32"
    assert v.dtype_refusal(np.float16) is None and v.dtype_refusal(dtypes.bfloat16()) is None


needs_toolchain = pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0") or
    not all(__import__("importlib").util.find_spec(m) for m in ("numba_cuda", "cuda.bindings")),
    reason="needs numba-cuda's compiler, NVRTC and nvJitLink (not the simulator)")


@needs_toolchain
@pytest.mark.parametrize("dt, ntiles, mtiles", [("float16", 2, 2), ("bfloat16", 1, 4)])
def test_mma_sp_kernel_links_with_mma_sp_inlined_and_no_local_memory(dt, ntiles, mtiles):
    ptx = sp.linked_ptx(warps=4, ntiles=ntiles, mtiles=mtiles, dtype=dt)
    lines = ptx.splitlines()
    start = next(i for i, ln in enumerate(lines) if ".entry" in ln)
    body = lines[start:]
    body = body[:next(i for i, ln in enumerate(body) if ln.startswith("}")) + 1]
    kind = "f16" if dt == "float16" else "bf16"
    sparse = [ln for ln in body if f"mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.{kind}.{kind}.f32" in ln]
    assert sparse and len(sparse) % (ntiles * mtiles) == 0  # per k-block one per (row tile, column tile)
    assert all(ln.rstrip().endswith("0x0;") for ln in sparse)  # sparsity selector 0
    assert not any(ln.strip().startswith("call") for ln in body), "the device function was not inlined"
    assert not any("ld.local" in ln or "st.local" in ln for ln in body), "fragments went to local memory"


def test_cli_in_simulator_runs_2_4_and_skips_the_rest():
    """Through the CLI in the simulator: a 2:4 matrix PASSes in fp16; one that is not 2:4 is a SKIP row."""
    pytest.importorskip("numba_cuda")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(root))
    argv = [sys.executable, "-m", "spmm_study", "run", "--no-save", "--json", "--device", "gpu", "-v", "mma_sp",
            "-p", "warps=1", "-p", "ntiles=1", "-m", "synthetic:nm:20x16", "-m", "synthetic:uniform:8x8:0.2",
            "-n", "6", "--dtype", "fp16", "--repeats", "1", "--min-time", "0", "--warmup", "0", "--cache", "warm"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["matrix"].split(":")[1]: r for r in json.loads(proc.stdout)}
    assert rows["nm"]["status"] == "PASS" and rows["nm"]["dtype"] == "float16", rows["nm"]
    assert json.loads(rows["nm"]["info"])["engine"].startswith("emulate")
    assert rows["uniform"]["status"] == "SKIP" and "not 2:4" in rows["uniform"]["message"]
