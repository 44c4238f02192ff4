"""``spmm-study ffn`` (issue 27 item 4): the FFN block y = W2·relu(W1·x + b1) + b2 through the CLI, paths sparse
(fused rungs), nm24 (re-pruned 2:4) and dense, each checked against its float64 block before timing; on the CPU,
and on the GPU in the simulator (a subprocess: the simulator must be on before numba.cuda loads). Bad input is
one line and exit 2; a path that cannot run (no torch, a dtype it does not take) is a SKIP row that says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spmm_study import sources
from spmm_study.nets.ffn import prune24, run_ffn

from test_cli import cli, fails

W1 = "synthetic:magnitude:64x32:0.8"
W2 = "synthetic:magnitude:32x64:0.8"
TINY = ["--w1", W1, "--w2", W2, "--repeats", "1", "--tile-n", "16"]


def test_ffn_cpu_all_paths_pass_through_the_cli(capsys):
    code, out, err = cli(capsys, "ffn", *TINY, "-n", "7", "-n", "40", "--json", "-t", "1")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["n"], r["path"]) for r in rows] == [(n, p) for n in (7, 40) for p in ("sparse", "nm24", "dense")]
    for r in rows:
        assert r["status"] == "PASS" and r["device"] == "cpu", r
        assert 0 <= r["rel_error"] <= r["tolerance"] == 2e-4
        assert r["tokens_per_s"] == pytest.approx(r["n"] / r["median_s"])
    w1 = sources.load(W1).a
    nm = [r for r in rows if r["path"] == "nm24"][0]
    assert nm["nnz_w1"] == prune24(w1).nnz < w1.nnz  # the 2:4 path ran its own re-pruned weights


def test_ffn_table_and_half_on_cpu_is_a_warned_skip(capsys):
    code, out, err = cli(capsys, "ffn", *TINY, "-n", "5", "--dtype", "fp16", "-p", "sparse,dense")
    assert code == 0, err
    assert out.count("SKIP") == 2 and "SKIP sparse N=5: on the CPU the block runs float32" in " ".join(err.split())
    code, out, err = cli(capsys, "ffn", *TINY, "-n", "5", "-p", "dense")
    assert code == 0 and "tokens/s" in out and "PASS" in out and "1.00×" in out


def test_a_wrong_block_fails_the_check(monkeypatch):
    from spmm_study.nets import ffn

    real = ffn._cpu_path

    def broken(path, *args):
        p = real(path, *args)
        inner = p.run
        p.run = lambda: (inner(), p.fetch().__setitem__((0, 0), 1e3))
        return p

    monkeypatch.setattr(ffn, "_cpu_path", broken)
    rows = run_ffn(sources.load(W1).a, sources.load(W2).a, [4], ["dense"], repeats=1, tile_n=16)
    assert rows[0].status == "FAIL" and "rel error" in rows[0].message


@pytest.mark.parametrize("argv, match", [
    (["--w1", W1], "give both --w1 and --w2"),
    (["--w1", W1, "--w2", W1], "not an FFN pair"),
    (["--w1", W1, "--w2", W2, "-p", "sparse,bogus"], "unknown path 'bogus'"),
    (["--w1", W1, "--w2", W2, "--dtype", "int8"], "runs float32, float16 or bfloat16, not int8"),
    (["--w1", W1, "--w2", W2, "--dtype", "fp8"], "unknown dtype"),
    (["--w1", W1, "--w2", W2, "-n", "0"], "N must be positive"),
    (["--w1", W1, "--w2", W2, "--repeats", "0"], "at least 1"),
    (["--w1", W1, "--w2", W2, "--device", "tpu"], "choose cpu or gpu"),
    (["--w1", W1, "--w2", W2, "--repeats", "100000000000"], "--repeats"),
    (["--w1", W1, "--w2", W2, "--tile-n", "2100000"], "choose 16, 64 or 256"),
    (["--w1", "synthetic:magnitude:ffn1:0.9", "--w2", "synthetic:magnitude:ffn2:0.9", "-n", "16000000"],
     r"N=16000000 needs|GiB"),
    (["--sparsity", "0.5", "--dlmc-root", "/nonexistent"], "."),
])
def test_ffn_bad_input_is_one_line(capsys, argv, match):
    fails(capsys, "ffn", *argv, match=match)


def test_ffn_default_layer_is_dlmc_encoder_layer_0(capsys, dlmc):
    code, out, err = cli(capsys, "ffn", "--dlmc-root", str(dlmc), "-n", "3", "-p", "dense", "--repeats", "1", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["status"] == "PASS" and row["nnz_w1"] == 104857 and row["nnz_w2"] == 104857


def test_ffn_gpu_in_the_simulator():
    """sparse runs the fused GPU rungs (simulator sizes); nm24 and dense need torch on a real GPU: SKIP rows."""
    pytest.importorskip("numba_cuda")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-m", "spmm_study", "ffn", "--device", "gpu", "--w1",
                           "synthetic:magnitude:24x8:0.5", "--w2", "synthetic:magnitude:8x24:0.5", "-n", "5",
                           "--repeats", "1", "--json"], capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["path"]: r for r in json.loads(proc.stdout)}
    assert rows["sparse"]["status"] == "PASS" and rows["sparse"]["device"] == "gpu"
    assert np.isfinite(rows["sparse"]["rel_error"]) and rows["sparse"]["rel_error"] <= 2e-4
    assert "gpu.csr.row_split_fused" in rows["sparse"]["engine"]
    for p in ("nm24", "dense"):
        assert rows[p]["status"] == "SKIP" and "torch" in rows[p]["message"]
