"""Rung 22 (gpu.csr.tc_window) without a GPU: the windowed format built on the host (thoroughly: it is
where an index slip would hide), the MinHash row order, the TF32 rounding rule of the fallback, and the
mma kernel linked offline (numba LTO-IR + NVRTC + nvJitLink) with mma.sync inlined and no local memory.
The kernel itself runs in the simulator in test_gpu_sim.py."""

import os

import numpy as np
import pytest

from spmm_study.errors import ParamError
from spmm_study.formats import CSR
from spmm_study.gpu import k22_csr_tc_window as tc


def random_csr(m, k, density, seed, empty_rows=()):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((m, k)).astype(np.float32)
    d[rng.random((m, k)) >= density] = 0
    for i in empty_rows:
        d[i] = 0
    return CSR.from_dense(d), d


def expand(w: tc.Windows, m: int, k: int) -> np.ndarray:
    """A rebuilt from the windowed format, by the kernel's own indexing (rowmap, kb_ptr, cols, 16×8 tiles)."""
    out = np.zeros((m, k), dtype=np.float64)
    for win in range(w.windows):
        for kb in range(w.kb_ptr[win], w.kb_ptr[win + 1]):
            tile = w.vals[kb * tc.TILE:(kb + 1) * tc.TILE].reshape(tc.WINDOW, tc.KB)
            for r in range(tc.WINDOW):
                row = w.rowmap[win * tc.WINDOW + r]
                for c in range(tc.KB):
                    if row < 0:
                        assert tile[r, c] == 0  # padding rows hold nothing
                        continue
                    out[row, w.cols[kb * tc.KB + c]] += tile[r, c]
    return out


@pytest.mark.parametrize("m, k, density, seed", [(1, 1, 1.0, 0), (16, 8, 0.5, 1), (17, 9, 0.3, 2), (40, 33, 0.1, 3),
                                                 (64, 200, 0.02, 4), (5, 67, 0.3, 5), (67, 5, 0.5, 6)])
@pytest.mark.parametrize("reorder", [False, True])
def test_condense_rebuilds_a_exactly(m, k, density, seed, reorder):
    a, d = random_csr(m, k, density, seed, empty_rows=(0,) if m > 2 else ())
    order = tc.minhash_order(a) if reorder else None
    w = tc.condense(a, order)
    assert np.array_equal(expand(w, m, k), d.astype(np.float64))
    assert w.windows == -(-m // 16) and w.kb_ptr[0] == 0 and np.all(np.diff(w.kb_ptr) >= 0)
    assert w.cols.size == w.kb_ptr[-1] * 8 and w.vals.size == w.kb_ptr[-1] * 128
    assert w.cols.min(initial=0) >= 0 and w.cols.max(initial=0) < k
    assert sorted(w.rowmap[w.rowmap >= 0].tolist()) == list(range(m)) and np.all(w.rowmap[m:] == -1)
    for win in range(w.windows):  # each window's columns: the sorted union of its rows' columns, then padding
        rows = [r for r in w.rowmap[win * 16:(win + 1) * 16] if r >= 0]
        union = sorted({int(c) for r in rows for c in a.indices[a.indptr[r]:a.indptr[r + 1]]})
        got = w.cols[w.kb_ptr[win] * 8:w.kb_ptr[win + 1] * 8].tolist()
        assert got[:len(union)] == union and len(got) == 8 * -(-len(union) // 8)
    assert 0 < w.fill <= 1 or a.nnz == 0


def test_condense_edges():
    empty = CSR.from_dense(np.zeros((0, 4), np.float32))
    w = tc.condense(empty)
    assert w.windows == 0 and w.slots == 0 and w.fill == 1.0
    zero = tc.condense(CSR.from_dense(np.zeros((20, 7), np.float32)))
    assert zero.windows == 2 and zero.kb_ptr.tolist() == [0, 0, 0] and zero.rowmap[:20].tolist() == list(range(20))
    dense = tc.condense(CSR.from_dense(np.ones((16, 8), np.float32)))
    assert dense.fill == 1.0 and dense.kb_ptr.tolist() == [0, 1]
    a, _ = random_csr(10, 10, 0.5, 0)
    for bad in (np.arange(9), np.zeros(10, int), np.arange(1, 11)):
        with pytest.raises(ParamError, match="permutation"):
            tc.condense(a, bad)


def test_minhash_clusters_rows_that_share_columns():
    d = np.zeros((64, 256), np.float32)
    rng = np.random.default_rng(0)
    for i in range(64):  # even rows use columns 0..15, odd rows 200..215: interleaved, every window mixes both
        base = 0 if i % 2 == 0 else 200
        d[i, base + rng.choice(16, 6, replace=False)] = 1.0 + i
    a = CSR.from_dense(d)
    plain, clustered = tc.condense(a), tc.condense(a, tc.minhash_order(a))
    assert plain.cols.size == 4 * 32  # 4 windows × (16 + 16 columns)
    assert clustered.cols.size < plain.cols.size and clustered.fill > plain.fill
    order = tc.minhash_order(a)
    assert sorted(order.tolist()) == list(range(64))
    assert tc.minhash_order(CSR.from_dense(np.zeros((3, 3), np.float32))).tolist() == [0, 1, 2]


def rne_tf32(x):
    """Bit-exact round-to-nearest-even to 10 mantissa bits."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0xFFF + ((u >> 13) & 1)) & 0xFFFFE000
    return u.astype(np.uint32).view(np.float32)


def test_fallback_rounding_is_tf32():
    x = np.random.default_rng(0).standard_normal(100000).astype(np.float32) * np.float32(1e3)
    r = tc._round_tf32_host(x)
    assert np.all(np.abs(r.astype(np.float64) - x) <= np.abs(x) * 2.0**-11)  # half an ulp of TF32
    mant = r.view(np.uint32) & 0x1FFF
    assert not mant.any()  # 10 explicit mantissa bits left
    assert np.mean(r == rne_tf32(x)) > 0.999  # the same as round-to-nearest-even except exact ties
    assert tc._round_tf32_host(np.float32(0)) == 0


def test_model_counts_the_sparse_limit():
    from spmm_study.problem import Problem

    a, _ = random_csr(32, 40, 0.2, 1)
    s = Problem.make(a, 64, "float32", 0).shape
    b = tc.tc_model(s, {"warps": 4, "ntiles": 2})
    assert b.b == min(s.nnz, 2 * 40) * 64 * 4 and b.c == 32 * 64 * 4 and b.a > 0


needs_toolchain = pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0") or
    not all(__import__("importlib").util.find_spec(m) for m in ("numba_cuda", "cuda.bindings")),
    reason="needs numba-cuda's compiler, NVRTC and nvJitLink (not the simulator)")


@needs_toolchain
@pytest.mark.parametrize("split, mmas, stage", [("tf32", 1, False), ("3xtf32", 3, False), ("tf32", 1, True)])
def test_mma_kernel_links_with_the_mma_inlined_and_no_local_memory(split, mmas, stage):
    ptx = tc.linked_ptx(warps=4, ntiles=2, split=split, stage=stage)
    start = next(i for i, ln in enumerate(ptx.splitlines()) if ".entry" in ln)
    lines = ptx.splitlines()[start:]
    lines = lines[:next(i for i, ln in enumerate(lines) if ln.startswith("}")) + 1]  # the kernel's body only
    count = sum("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in ln for ln in lines)
    assert count >= 2 * mmas and count % (2 * mmas) == 0  # per k-block: 2 tiles × mmas (the loop may be unrolled)
    assert any("cvt.rna.tf32.f32" in ln for ln in lines)
    assert not any(ln.strip().startswith("call") for ln in lines), "the device function was not inlined"
    assert not any("ld.local" in ln or "st.local" in ln for ln in lines), "fragments went to local memory"
    assert any("ld.shared" in ln for ln in lines) == stage and any("bar.sync" in ln for ln in lines) == stage


@needs_toolchain
def test_fma_kernel_compiles_without_local_memory():
    from numba import cuda

    for split, stage in (("tf32", False), ("3xtf32", False), ("tf32", True)):
        ptx, _ = cuda.compile_ptx(tc.kernel(4, 2, "fma", split, stage).py_func, tc.kernel_signature(), cc=(9, 0))
        lines = ptx.splitlines()
        assert any(".entry" in ln for ln in lines) and any("fma.rn.f32" in ln for ln in lines)
        assert not any("ld.local" in ln or "st.local" in ln for ln in lines)


@needs_toolchain
def test_only_the_fma_engine_is_cached():
    """numba raises 'Cannot pickle CUDACodeLibrary with linking files' when it saves a kernel with linked code
    to its cache: the mma kernel must not ask for caching (the error would come only on the GPU)."""
    assert type(tc.kernel(2, 1, "mma", "tf32")._cache).__name__ == "NullCache"
    assert type(tc.kernel(2, 1, "fma", "tf32")._cache).__name__ != "NullCache"
