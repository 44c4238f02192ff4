"""report --kind dlmc (report.wins_table, plots.plot_dlmc): wins per variant, the plot, and never a ratio of two machines."""

from __future__ import annotations

import json

import pytest

from spmm_study import report
from spmm_study.plots import plot_dlmc
from spmm_study.report import speedup_points, wins_table
from spmm_study.results import FIELDS

CPU, OTHER = "Intel(R) Xeon(R) Processor (2 cores)", "AMD EPYC 7B13 (2 cores)"


def row(variant, median, *, matrix, sparsity, machine=CPU, model="transformer", method="magnitude_pruning", n=256,
        status="PASS", host=""):
    base = {f: "" for f in FIELDS}
    base.update(variant=variant, device="cpu", format=variant.split(".")[1], idea=variant.split(".")[2],
                baseline=variant in ("cpu.dense.numpy", "cpu.csr.scipy"), matrix=matrix, m=512, k=512, n=n, nnz=100,
                sparsity=float(sparsity), dtype="float32", seed=0, params="{}", threads=1, status=status,
                median_s=median, p20_s=median, p80_s=median, min_s=median, repeats=5, cache="cold", machine=machine,
                timestamp="2026-12-01T22:00:00", info=json.dumps({"host": host} if host else {}),
                tags=f"suite=dlmc;model={model};method={method};sparsity={sparsity};layer={matrix[-2:]}")
    return base


def collection(machine=CPU, slow=1.0, host=""):
    """Two sparsities, three matrices each; rowwise wins on 0.9 two times of three, always on 0.98."""
    rows = []
    for sp, times in (("0.9", [(1.0, 0.5, 2.0), (1.0, 0.8, 0.7), (1.0, 0.4, 3.0)]),
                      ("0.98", [(1.0, 0.1, 0.5), (1.0, 0.2, 0.6), (1.0, 0.1, 0.9)])):
        for i, (dense, rowwise, scipy) in enumerate(times):
            m = f"dlmc:transformer/magnitude_pruning/{sp}/l{i}"
            rows += [row("cpu.dense.numpy", dense * slow, matrix=m, sparsity=sp, machine=machine, host=host),
                     row("cpu.csr.rowwise", rowwise * slow, matrix=m, sparsity=sp, machine=machine, host=host),
                     row("cpu.csr.scipy", scipy * slow, matrix=m, sparsity=sp, machine=machine, host=host)]
    return rows


def test_wins_table_counts_the_fastest_variant_per_problem():
    t = wins_table(collection())
    rec = {(r[2], r[4]): (r[5], r[6]) for r in t.rows}  # (sparsity, variant) -> (problems, wins)
    assert rec[("0.9", "cpu.csr.rowwise")] == (3, pytest.approx(2 / 3))
    assert rec[("0.9", "cpu.csr.scipy")] == (3, pytest.approx(1 / 3))
    assert rec[("0.9", "cpu.dense.numpy")] == (3, 0.0)
    assert rec[("0.98", "cpu.csr.rowwise")] == (3, 1.0)
    assert "machine" not in t.columns


def test_dlmc_kind_gives_the_summary_and_the_wins_and_the_plot(tmp_path):
    tables = report.tables_for(collection(), kind="dlmc")
    assert [t.title.split(":")[0] for t in tables] == ["DLMC sweep", "DLMC"]
    pts = speedup_points(collection())
    (key,) = pts
    assert pts[key]["cpu.csr.rowwise"][0.98] == pytest.approx((10 * 5 * 10) ** (1 / 3))
    path = plot_dlmc(collection(), tmp_path / "dlmc.png")
    assert path.stat().st_size > 10_000


def test_two_machines_combine_but_never_divide_each_others_times():
    """A second machine 3x slower on everything: its speedups equal the first's; and a variant whose only
    baseline row is on the other machine gets no speedup at all (not a cross-machine ratio)."""
    both = collection() + collection(machine=OTHER, slow=3.0)
    pts = speedup_points(both)
    mine = {k[3]: v for k, v in pts.items()}
    assert mine[CPU]["cpu.csr.rowwise"] == pytest.approx(mine[OTHER]["cpu.csr.rowwise"])
    t = wins_table(both)
    assert "machine" in t.columns and len(t.rows) == 2 * 2 * 3
    lone = [r for r in collection(machine=OTHER) if r["variant"] != "cpu.dense.numpy"]
    ups = report.speedups(collection() + lone)
    assert all(not report.finite(u["speedup"]) for u in ups if u["machine"] == OTHER)
    # on one machine label, the baseline of the same host is preferred (cluster rows say their host)
    a, b = collection(host="node1"), collection(host="node2", slow=2.0)
    rows = a + [r for r in b if r["variant"] == "cpu.dense.numpy"]
    idx = report.baseline_index(rows)
    r0 = a[1]
    assert report._host(report.find_baseline_row(r0, "cpu.dense.numpy", idx)) == "node1"


def test_no_dlmc_rows_is_one_error():
    from spmm_study.errors import ResultsError

    plain = [dict(r, tags="") for r in collection()]
    with pytest.raises(ResultsError, match="suite=dlmc"):
        wins_table(plain)
    with pytest.raises(ResultsError):
        plot_dlmc(plain, "/tmp/never.png")
