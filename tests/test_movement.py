"""The data-movement models against bytes counted by hand on a tiny matrix, and the B copy counted only when
the kernel makes one.

The matrix (3×4, fp32 values, int32 indices, N = 5)::

    [[1, 0, 2, 0],
     [0, 0, 0, 0],
     [0, 3, 5, 0]]

nnz = 4; three distinct columns (0, 1, 2) hold a nonzero, so 3 rows of B are touched; it is also 2:4.
CSR A = 4·(4 + 4) values and indices + (3 + 1)·4 row offsets = 48 bytes; one row of B or C is 5·4 = 20 bytes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from spmm_study import movement as mv
from spmm_study import registry
from spmm_study.formats import CSR
from spmm_study.gpu import models
from spmm_study.problem import ALIGN, Problem, aligned_empty

DENSE = np.array([[1, 0, 2, 0], [0, 0, 0, 0], [0, 3, 5, 0]], dtype=np.float32)
N = 5


def problem(aligned: bool = True) -> Problem:
    base = Problem.make(CSR.from_dense(DENSE), N, "float32", seed=0)
    if aligned:
        return base
    raw = aligned_empty((base.b.nbytes + ALIGN,), np.uint8)
    b = raw[16:16 + base.b.nbytes].view(np.float32).reshape(base.b.shape)  # 16 bytes past a line: misaligned
    b[...] = base.b
    return Problem(base.a, b)


def model(vid: str, aligned: bool = True, **params) -> mv.Bytes:
    v = registry.get(vid)
    return v.movement(problem(aligned).shape, v.resolve_params(params))


def abc(b: mv.Bytes) -> tuple:
    return (b.a, b.b, b.c)


def test_the_shape_carries_the_facts_the_models_read():
    s = problem().shape
    assert (s.m, s.k, s.n, s.nnz, s.k_touched, s.rows_nonempty, s.value_bytes, s.index_bytes) == (3, 4, 5, 4, 3, 2, 4, 4)
    assert s.b_aligned and not problem(aligned=False).shape.b_aligned


def test_compulsory_and_the_plain_csr_and_dense_rungs():
    s = problem().shape
    assert abc(mv.compulsory(s)) == (48, 3 * 20, 3 * 20)  # A once, the 3 touched rows of B once, C once
    assert abc(model("cpu.csr.rowwise")) == (48, 4 * 20, 60)  # a row of B per nonzero
    assert abc(model("cpu.dense.naive")) == (3 * 5 * 4 * 4, 3 * 5 * 4 * 4, 60)  # M·N·K values of A and of B
    line = 64  # k innermost: B walked down a column, a whole line per element
    assert abc(model("cpu.dense.order", order="ijk")) == (240, 3 * 5 * 4 * line, 60)
    assert abc(model("cpu.dense.order", order="ikj")) == (3 * 4 * 4, 3 * 4 * 5 * 4, 2 * 3 * 4 * 5 * 4)
    # tiles 2×2×2: A re-read ceil(5/2)=3 times, B ceil(3/2)=2 times, C read+written ceil(4/2)=2 times
    assert abc(model("cpu.dense.tiled", tile_i=2, tile_k=2, tile_j=2)) == (48 * 3, 80 * 2, 2 * 60 * 2)
    # the row's 4·8 bytes of (value, index) re-read for each of the N columns, a line of B per multiply-add
    assert abc(model("cpu.csr.dot")) == (5 * 32 + 16, 4 * 5 * line, 60)


def test_formats():
    # COO: (row, col, value) = 12 bytes per nonzero; C zeroed once (3 rows) and read+written per nonzero
    assert abc(model("cpu.coo.scatter")) == (48, 80, (2 * 4 + 3) * 20)
    # CSC: 4·8 bytes + (K+1)·4 column offsets; B once (3 touched rows)
    assert abc(model("cpu.csc.outer")) == (32 + 5 * 4, 60, (2 * 4 + 3) * 20)
    # BSR 2×2: at most min(nnz, 2·2 blocks) = 4 blocks of 4 values + one index each, ceil(3/2)+1 block offsets
    assert abc(model("cpu.bsr.rowwise", br=2, bc=2)) == (4 * (16 + 4) + 3 * 4, 4 * 2 * 20, 60)
    # SELL C=2: values and columns, two slice words per slice (2 slices), the row permutation
    assert abc(model("cpu.sell.tiled", c=2)) == (32 + 2 * 2 * 4 + 3 * 4, 80, 60)
    # 2:4: K/2 = 2 slots per row, 4 bytes + 2 bits each; a row of B per slot (6 slots)
    assert abc(model("cpu.nm24.tiled")) == (6 * 4 + 6 / 4, 6 * 20, 60)


def test_register_blocked_csr_rereads_a_once_per_column_tile():
    assert abc(model("cpu.csr.tiled", tile_n=2)) == (3 * 32 + 16, 80, 60)  # ceil(5/2) = 3 tiles
    assert abc(model("cpu.csr.tiled", tile_n=256)) == (32 + 16, 80, 60)


@pytest.mark.parametrize("vid", ["cpu.csr.tiled", "cpu.sell.tiled", "cpu.nm24.tiled"])
def test_the_b_copy_is_counted_exactly_when_the_kernel_makes_it(vid):
    v = registry.get(vid)
    copy = 2 * 4 * N * 4  # read + write K·N values
    for aligned in (True, False):
        for pack_b in (True, False):
            p = problem(aligned)
            params = v.resolve_params({"pack_b": pack_b})
            prep = v.build(p, **params)
            made = prep.info["b_packed"]
            assert made == (pack_b and not aligned), (vid, aligned, pack_b, prep.info)
            got = v.movement(p.shape, params).b - v.movement(p.shape, dict(params, pack_b=False)).b
            assert got == (copy if made else 0), (vid, aligned, pack_b)


def test_gpu_panel_models_read_the_panel_width_from_the_params():
    s = problem().shape
    # subwarp: a panel of lanes·vec·tiles = 2·2·1 = 4 columns: ceil(5/4) = 2 panels, A read twice
    assert abc(model("gpu.csr.subwarp", lanes=2, vec=2, tiles=1)) == (2 * 48, 80, 60)
    assert abc(model("gpu.csr.row_split", vec=1)) == (48, 80, 60)  # 32 columns: one panel
    assert abc(models.csr_row_thread(s)) == (48 * 5, 80, 60)
    # COO atomics: 12 bytes per nonzero per column block; C zeroed once and read+written per (nonzero, column)
    assert abc(model("gpu.coo.atomic", block_x=2)) == (48 * 3, 80, 60 + 2 * 80)
    # densify: 2·1 rows per block → ceil(3/2) = 2 blocks each read all K rows of B in a 32-column panel
    assert abc(model("gpu.csr.densify_tile", warps=2, rows_per_warp=1, vec=1)) == (48, 2 * 4 * 20, 60)


def test_every_model_takes_its_variants_resolved_params():
    s = problem().shape
    for v in registry.all_variants():
        b = v.movement(s, v.resolve_params({}))
        assert all(math.isfinite(x) and x >= 0 for x in abc(b)), v.id
        assert b.c >= s.m * s.n * s.value_bytes, f"{v.id}: C must be written at least once"
