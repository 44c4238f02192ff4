"""The H200 run script's parts that need no device: its TOML is valid against the registry, bad input is
one line and exit 2, and the shards of the layer-0 set are disjoint and cover it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))


def test_the_committed_config_names_real_variants_and_params():
    import h200_round2

    cfg = h200_round2.read_config(ROOT / "experiments" / "configs" / "h200_round2.toml")
    ids = {c["variant"] for c in cfg["candidates"]} | {b["variant"] for b in cfg["baselines"]}
    assert {"gpu.dense.cublas", "gpu.dense.cublas_tf32", "gpu.csr.cusparse", "gpu.csr.torch",
            "gpu.csr.sputnik"} <= ids
    assert cfg["n"] == [256, 2048]


@pytest.mark.parametrize("text, match", [
    ('[[candidates]]\nvariant = "gpu.csr.nope"\n', "unknown variant"),
    ('[[candidates]]\nvariant = "gpu.csr.swizzle"\nparams = {lanes = "x"}\n', "lanes"),
    ("[[baselines]]\nparams = {}\n", "needs a variant"),
    ("this is = = not toml", "h.toml"),
])
def test_bad_configs_are_spmm_errors(tmp_path, text, match):
    import h200_round2

    from spmm_study.errors import SpmmError

    conf = tmp_path / "h.toml"
    conf.write_text(text)
    with pytest.raises(SpmmError, match=match):
        h200_round2.read_config(conf)


def test_bad_arguments_are_one_line_and_exit_2(tmp_path):
    for args, match in ((["--shard", "3/2"], "--shard"), (["--phases", "env,warp"], "unknown phase")):
        proc = subprocess.run([sys.executable, "experiments/h200_round2.py", "--out", str(tmp_path / "o"), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and match in proc.stderr, proc.stderr


def test_shards_partition_the_layer0_set(dlmc):
    import h200_round2

    root = Path(dlmc)
    sps = ["0.8", "0.9", "0.95", "0.98"]
    whole = h200_round2.layer0_specs(root, sps, (1, 1))
    parts = [h200_round2.layer0_specs(root, sps, (i, 3)) for i in (1, 2, 3)]
    assert sorted(s for p in parts for s in p) == sorted(whole) and len(whole) >= 60
    names = [{s.rsplit("/", 1)[-1] for s in p} for p in parts]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])  # a matrix in one shard


def test_tc_vs_tf32_finds_where_the_rung_starts_to_win():
    import tc_vs_tf32

    rows = []
    for sp, ratio in (("0.8", 0.5), ("0.9", 0.9), ("0.95", 1.3), ("0.98", 2.0)):
        for i in range(3):
            spec = f"dlmc:transformer/magnitude_pruning/{sp}/m{i}"
            base = {"matrix": spec, "n": "2048", "status": "PASS", "cache": "cold", "machine": "H200"}
            rows.append({**base, "variant": "gpu.dense.cublas_tf32", "params": "{}", "median_s": "1.0"})
            rows.append({**base, "variant": "gpu.csr.tc_window", "params": '{"split": "tf32"}',
                         "median_s": str(1.0 / ratio)})
    rows.append({**rows[-1], "status": "FAIL", "median_s": "1e-9"})  # a FAIL row never counts
    lines, out = tc_vs_tf32.table(rows)
    assert out["tf32 N=2048"]["wins_from"] == 0.95
    assert out["tf32 N=2048"]["by_sparsity"][0.98] == pytest.approx(2.0)
    assert "0.95: 1.30× (3/3)" in lines[0]
    with pytest.raises(ValueError, match="several machines"):
        tc_vs_tf32.table(rows + [{**rows[0], "machine": "H100"}])


def test_chooser_headline_table_from_rows():
    import gpu_tables

    rows, dispatch = [], []
    for i, n in enumerate((256, 2048) * 3):
        base = {"matrix": f"dlmc:transformer/magnitude_pruning/0.9/m{i}", "n": str(n), "status": "PASS",
                "info": "{}", "host_dispatch_s": "5e-05", "params": "{}"}
        rows += [{**base, "variant": "gpu.dense.cublas", "baseline": "True", "median_s": "2e-05"},
                 {**base, "variant": "gpu.csr.sputnik", "baseline": "True", "median_s": "1.2e-05"},
                 {**base, "variant": "gpu.csr.swizzle", "baseline": "False", "median_s": "1e-05"},
                 {**base, "variant": "gpu.csr.tc_window", "baseline": "False", "median_s": "1e-07",
                  "info": '{"precision": "tf32"}'},  # reduced precision: never the fp32 oracle
                 {**base, "variant": "gpu.csr.auto", "baseline": "False", "median_s": "1.25e-05"}]
        dispatch.append({**base, "variant": "gpu.csr.auto", "info": '{"launch": "bound (one cuLaunchKernel)"}',
                         "host_dispatch_s": "6e-06"})
    text = gpu_tables.chooser_table(rows, dispatch, {"name": "NVIDIA H200"})
    assert "| cuBLAS fp32 | 1.60 | 2.00 | 1.60 | 2.00 |" in text
    assert "| Sputnik | 0.96 | 1.20 |" in text
    assert "| 256 | 3 | 0.800 | 12.5 | 50.0 | 6.0 |" in text
    assert "cuBLAS TF32" not in text  # no rows: no line
    assert gpu_tables.chooser_table([]) == "_no gpu.csr.auto rows yet_"
