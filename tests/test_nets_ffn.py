"""The sparse FFN block (issue 16 item 6): both paths checked against float64 before timing; a pair whose
shapes do not form an FFN is refused. Timings are a benchmark (experiments/ffn_block.py), not tested."""

import pytest

from spmm_study import sources
from spmm_study.errors import ParamError
from spmm_study.nets.ffn import run_block


def test_block_is_checked_and_timed():
    w1 = sources.load("synthetic:magnitude:64x32:0.9").a
    w2 = sources.load("synthetic:magnitude:32x64:0.9").a
    for n in (1, 37, 300):
        r = run_block(w1, w2, n, repeats=1, tile_n=16)
        assert r.sparse_err < 1e-5 and r.dense_err < 1e-5
        assert r.sparse_s > 0 and r.dense_s > 0 and r.sparse_tokens_per_s > 0


def test_not_an_ffn_pair():
    w1 = sources.load("synthetic:magnitude:64x32:0.9").a
    with pytest.raises(ParamError, match="not an FFN pair"):
        run_block(w1, w1, 8)
