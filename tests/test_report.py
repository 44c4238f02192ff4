"""Reports from hand-made result files: speedups, merged rounds, tables (data and markdown), plots, the CLI."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict
from pathlib import Path

import pytest

from spmm_study import report
from spmm_study.errors import ResultsError
from spmm_study.results import Result, ResultWriter

CPU = "Test CPU (2 cores)"
GPU = "Test GPU"


def row(variant, t, *, matrix="synthetic:magnitude:ffn1:0.9", n=256, m=2048, k=512, sparsity=0.9, status="PASS",
        machine=CPU, params=None, tags="", threads=1, baseline=None):
    device, fmt, idea = variant.split(".", 2)
    nnz = int(round(m * k * (1 - sparsity)))
    flops = 2 * nnz * n
    comp = 1e6
    return Result(
        variant=variant, device=device, format=fmt, idea=idea,
        baseline=baseline if baseline is not None else variant in ("cpu.dense.numpy", "gpu.dense.cublas", "cpu.csr.scipy"),
        matrix=matrix, m=m, k=k, n=n, nnz=nnz, sparsity=sparsity, dtype="float32", seed=0,
        params=json.dumps(params or {}, sort_keys=True), threads=threads, status=status,
        message="first check: wrong" if status == "FAIL" else "", median_s=t, p20_s=t * 0.9, p80_s=t * 1.1, min_s=t * 0.8,
        repeats=5, gflops=flops / t / 1e9, gflops_dense=2 * m * k * n / t / 1e9, bytes_compulsory=comp,
        bytes_model=2 * comp, gbps_compulsory=comp / t / 1e9, gbps_model=2 * comp / t / 1e9,
        intensity=flops / comp, machine=machine, timestamp="2026-11-23T12:00:00", tags=tags)


def write_dir(path: Path, results) -> Path:
    w = ResultWriter(path, meta={"experiment": "test"})
    for r in results:
        w.append(r)
    return path


@pytest.fixture
def ladder_dir(tmp_path):
    return write_dir(tmp_path / "cpu", [
        row("cpu.dense.numpy", 4e-3),
        row("cpu.csr.rowwise", 2e-3),
        row("cpu.csr.rowwise", 1e-3, tags="round=1"),  # a second round of the same thing
        row("cpu.csr.rowwise", 3e-3, tags="round=2"),
        row("cpu.csr.broken", float("nan"), status="FAIL"),
        row("cpu.csr.scipy", 8e-3),
    ])


def test_speedups_merge_rounds_and_mark_failures(ladder_dir):
    rows = report.load_rows([ladder_dir])
    tables = report.ladder_tables(rows)
    assert len(tables) == 1
    rec = {r["variant"]: r for r in tables[0].records()}
    up = tables[0].columns[-1]
    assert up == "speedup vs cpu.dense.numpy"
    # rounds 2, 1 and 3 ms merge to their median, 2 ms: 4 ms / 2 ms
    assert rec["cpu.csr.rowwise"]["median time"] == pytest.approx(2e-3)
    assert rec["cpu.csr.rowwise"][up] == pytest.approx(2.0)
    assert rec["cpu.csr.scipy"][up] == pytest.approx(0.5)
    assert rec["cpu.dense.numpy"][up] == pytest.approx(1.0)
    assert rec["cpu.csr.broken"][up] == "FAIL" and rec["cpu.csr.broken"]["median time"] == "FAIL"
    md = report.to_markdown(tables)
    assert "| cpu.csr.rowwise |" in md and "2.00×" in md and "FAIL" in md and "0.50×" in md
    assert CPU in md and "2026-11-23" in md


def test_a_skipped_variant_is_blank_not_fail(tmp_path):
    """SKIP means 'not measured' (e.g. 2:4 kernel on a non-2:4 matrix), not a wrong result."""
    d = write_dir(tmp_path / "skip", [row("cpu.dense.numpy", 4e-3), row("cpu.nm24.tiled", float("nan"), status="SKIP")])
    rec = {r["variant"]: r for r in report.ladder_tables(report.load_rows([d]))[0].records()}
    assert rec["cpu.nm24.tiled"]["status"] == "SKIP"
    assert rec["cpu.nm24.tiled"]["median time"] == "-" and rec["cpu.nm24.tiled"]["GFLOP/s"] == "-"


def test_explicit_baseline_and_even_round_count(tmp_path):
    d = write_dir(tmp_path / "r", [row("cpu.csr.scipy", 6e-3), row("cpu.csr.rowwise", 2e-3, tags="round=0"),
                                   row("cpu.csr.rowwise", 4e-3, tags="round=1")])
    rows = report.speedups(report.merge_rounds(report.load_rows([d])), baseline="cpu.csr.scipy")
    rw = [r for r in rows if r["variant"] == "cpu.csr.rowwise"][0]
    assert rw["median_s"] == pytest.approx(3e-3) and rw["speedup"] == pytest.approx(2.0)
    assert rw["gflops"] == pytest.approx(2 * rw["nnz"] * 256 / 3e-3 / 1e9)  # rates follow the merged time


def test_compare_table_combines_machines_and_each_device_has_its_baseline(tmp_path, ladder_dir):
    gpu = write_dir(tmp_path / "gpu", [row("gpu.dense.cublas", 1e-4, machine=GPU, threads=0),
                                       row("gpu.csr.fast", 5e-5, machine=GPU, threads=0),
                                       row("gpu.csr.bad", 1.0, machine=GPU, status="FAIL", threads=0)])
    rows = report.load_rows([ladder_dir, gpu])
    t = report.compare_table(rows)
    assert len(t.rows) == 1  # one problem, measured on two machines: one line, CPU and GPU side by side
    (rec,) = t.records()
    assert rec["gpu.csr.fast"].speedup == pytest.approx(2.0)  # against cuBLAS, not numpy
    assert rec["gpu.csr.bad"] == "FAIL"
    assert rec["cpu.csr.rowwise"].speedup == pytest.approx(2.0)  # against numpy on the CPU machine
    assert "50 µs (2.00×)" in report.to_markdown(t)
    # the same variant on a second CPU machine gets a column per machine
    other = write_dir(tmp_path / "cpu2", [row("cpu.dense.numpy", 1e-3, machine="Other CPU"),
                                          row("cpu.csr.rowwise", 2e-3, machine="Other CPU")])
    t2 = report.compare_table(report.load_rows([ladder_dir, other]))
    rec2 = t2.records()[0]
    assert rec2[f"cpu.csr.rowwise @ {CPU}"].speedup == pytest.approx(2.0)
    assert rec2["cpu.csr.rowwise @ Other CPU"].speedup == pytest.approx(0.5)


def test_load_rows_reads_csv_jsonl_and_folders_once(tmp_path, ladder_dir):
    by_dir = report.load_rows([ladder_dir])
    by_files = report.load_rows([ladder_dir / "rows.jsonl", ladder_dir / "results.csv"])
    by_parent = report.load_rows([tmp_path])
    assert len(by_dir) == len(by_files) == len(by_parent) == 6
    with pytest.raises(ResultsError):
        report.load_rows([tmp_path / "missing"])


def study_rows():
    out = []
    for problem, (m, k, n, case, count, t4) in {1: (64, 256, 3136, "RN50", 2, 4.3), 12: (64, 32, 12544, "MbNetV1", 1, 1.4)}.items():
        tags = f"suite=study;problem={problem};use_case={case};count={count};sparsity=0.9;t4={t4}"
        kw = dict(matrix=f"synthetic:magnitude:{m}x{k}:0.9", m=m, k=k, n=n, tags=tags)
        out += [row("cpu.dense.numpy", 1e-3, **kw), row("cpu.csr.rowwise", 5e-4 if problem == 1 else 2e-3, **kw)]
    return out


def test_study_table_columns_and_published_column(tmp_path):
    rows = report.load_rows([write_dir(tmp_path / "s", study_rows())])
    t = report.study_table(rows)
    assert t.columns[:8] == ["#", "M", "K", "N", "use case", "count", "sparsity", "matrix"]
    assert t.columns[-1] == "T4 published" and "cpu.csr.rowwise" in t.columns
    recs = t.records()
    assert [r["#"] for r in recs] == [1, 12, "geomean"]
    assert recs[0]["cpu.csr.rowwise"] == pytest.approx(2.0) and recs[1]["cpu.csr.rowwise"] == pytest.approx(0.5)
    assert recs[2]["cpu.csr.rowwise"] == pytest.approx(1.0)  # geomean of 2 and 0.5
    assert recs[2]["T4 published"] == pytest.approx(math.sqrt(4.3 * 1.4))
    assert recs[1]["N"] == 12544 and recs[1]["use case"] == "MbNetV1" and recs[0]["count"] == 2
    assert report.tables_for(rows)[0].title.startswith("The study table")


def test_dlmc_summary_geomean_and_fraction(tmp_path):
    rs = []
    for i, t in enumerate([0.5e-3, 2e-3, 0.25e-3]):
        tags = f"suite=dlmc;model=transformer;method=magnitude_pruning;sparsity=0.9;layer=l{i}"
        kw = dict(matrix=f"dlmc:transformer/magnitude_pruning/0.9/l{i}", tags=tags)
        rs += [row("cpu.dense.numpy", 1e-3, **kw), row("cpu.csr.scipy", 1e-3, **kw), row("cpu.csr.tiled", t, **kw)]
    rs.append(row("cpu.csr.tiled", 1.0, status="FAIL", matrix="dlmc:x/l9", tags="suite=dlmc;model=transformer;"
                  "method=magnitude_pruning;sparsity=0.9;layer=l9"))
    t = report.dlmc_summary(report.load_rows([write_dir(tmp_path / "d", rs)]))
    (r,) = t.records()  # baselines are columns, not rows
    assert r["variant"] == "cpu.csr.tiled" and r["problems"] == 3 and r["FAIL"] == 1
    for b in ("cpu.dense.numpy", "cpu.csr.scipy"):
        assert r[f"vs {b}"] == pytest.approx((2 * 0.5 * 4) ** (1 / 3))
        assert r[f"faster than {b}"] == pytest.approx(2 / 3)
    assert t.columns.index("vs cpu.dense.numpy") < t.columns.index("vs cpu.csr.scipy")  # dense baseline first


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plots_from_result_files(tmp_path):
    rs = []
    for s, t_sparse in ((0.5, 4e-3), (0.8, 1.5e-3), (0.9, 8e-4), (0.95, 5e-4)):
        kw = dict(matrix=f"synthetic:magnitude:ffn1:{s}", sparsity=s)
        rs += [row("cpu.dense.numpy", 2e-3, **kw), row("cpu.csr.rowwise", t_sparse, **kw)]
    for tile, t in ((16, 2e-3), (32, 1e-3), (64, 1.2e-3)):
        for rpt in (16, 64):
            rs.append(row("cpu.csr.tiled", t * (1 + rpt / 640), params={"tile_n": tile, "rows_per_task": rpt}))
    d = write_dir(tmp_path / "p", rs)
    ceilings = tmp_path / "ceilings.json"
    ceilings.write_text(json.dumps({CPU: {"device": "cpu", "machine": CPU, "threads_all": 2, "stream_gbps_1": 30.0,
                                          "stream_gbps_all": 35.0, "fma_gflops_fp32_1": 200.0,
                                          "fma_gflops_fp32_all": 400.0}}))
    from spmm_study import calibrate, plots, sources

    m = sources.load("synthetic:magnitude:64x128:0.9")
    written = plots.plot_all(report.load_rows([d]), tmp_path / "plots", ceilings=calibrate.load(ceilings),
                             row_lengths=[(m.spec, m.a.row_lengths(), sources.row_stats(m.a))])
    names = sorted(p.name for p in written)
    assert names == sorted(["roofline.png", "loop_orders.png", "speedup_vs_sparsity.png", "tiles_cpu.csr.tiled.png",
                            "rows_synthetic_magnitude_64x128_0.9.png"])
    for p in written:
        w, h = png_size(p)
        assert w > 300 and h > 200 and p.stat().st_size < 200_000
    # the break-even table sees the crossing between 0.5 (0.5x) and 0.8 (1.33x)
    be = report.break_even_table(report.load_rows([d]))
    rec = [r for r in be.records() if r["variant"] == "cpu.csr.rowwise"][0]
    assert 0.5 < rec["sparse wins from"] < 0.8


def test_plot_refuses_rows_that_cannot_support_it(tmp_path):
    from spmm_study import plots

    rows = [asdict(row("cpu.csr.rowwise", 1e-3))]
    with pytest.raises(ResultsError, match="two or more sparsities"):
        plots.plot_speedup_vs_sparsity(rows, tmp_path / "x.png")
    with pytest.raises(ResultsError, match="heatmap"):
        plots.plot_tile_heatmap(rows, tmp_path / "y.png")


def test_cli_report_markdown_and_errors(tmp_path, ladder_dir):
    from typer.testing import CliRunner

    from spmm_study.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["report", str(ladder_dir), "--markdown"])
    assert res.exit_code == 0, res.output
    assert "| variant |" in res.output and "2.00×" in res.output
    res = runner.invoke(app, ["report", str(ladder_dir), "--kind", "compare", "--plots", str(tmp_path / "pl")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "pl" / "roofline.png").exists()
    merged = tmp_path / "merged.csv"
    res = runner.invoke(app, ["report", str(ladder_dir), "--save-rows", str(merged), "--markdown"])
    assert res.exit_code == 0, res.output
    back = report.load_rows([merged])
    assert len(back) == 4  # the three rounds of rowwise became one row
    assert report.to_markdown(report.ladder_tables(back)) == report.to_markdown(report.ladder_tables(
        report.load_rows([ladder_dir])))
    res = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert isinstance(res.exception, ResultsError)


def test_ceilings_match_a_shorter_machine_label():
    c = {"NVIDIA H100 80GB HBM3": {"device": "gpu", "copy_gbps": 1.0}, "AMD EPYC (2 cores)": {"device": "cpu"}}
    assert report.ceilings_for("H100", c)["copy_gbps"] == 1.0
    assert report.ceilings_for("AMD EPYC (2 cores)", c)["device"] == "cpu"
    assert report.ceilings_for("Intel Xeon", c) is None and report.ceilings_for("", c) is None


def test_ladder_shows_the_fraction_of_the_roofline_when_ceilings_exist(ladder_dir):
    rows = report.load_rows([ladder_dir])
    assert "of roofline" not in report.ladder_tables(rows)[0].columns
    c = {CPU: {"device": "cpu", "stream_gbps_1": 10.0, "fma_gflops_fp32_1": 100.0}}
    t = report.ladder_tables(rows, ceilings=c)[0]
    rec = {r["variant"]: r for r in t.records()}
    r = [x for x in rows if x["variant"] == "cpu.dense.numpy"][0]
    bound = min(100.0, 10.0 * r["intensity"])  # intensity = 2·nnz·N / 1 MB
    assert rec["cpu.dense.numpy"]["of roofline"] == pytest.approx(r["gflops"] / bound)
    assert rec["cpu.csr.broken"]["of roofline"] == "FAIL"


def test_result_table_reads_on_80_columns():
    """Issue 10 item 8: at 80 columns the variant, status, median, GFLOP/s and speedup show in full; the rest
    moves to --wide, and --explain's legend says what every column means."""
    import re

    from rich.console import Console

    from spmm_study.cli import render_table

    rows = [asdict(row(v, t, threads=2)) for v, t in (("cpu.dense.numpy", 4.37e-3), ("cpu.csr.rowwise_par", 1.234e-3),
                                                       ("cpu.csr.tiled", 6.78e-4))]
    rows.append(asdict(row("cpu.csr.broken", float("nan"), status="FAIL", threads=2)))
    t = report.results_table(rows)
    assert "p20–p80" not in t.columns and "GB/s model" not in t.columns and "thr" not in t.columns
    console = Console(width=80, record=True, color_system=None)
    console.print(render_table(t, keep=report.NARROW))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    lines = {re.split(r"\s*│\s*", ln.strip("│ "))[0]: re.split(r"\s*│\s*", ln.strip("│ "))
             for ln in text.splitlines() if ln.startswith("│ cpu.")}
    assert lines["cpu.csr.tiled"][1:] == ["256", "PASS", "678 µs", report.format_cell(rows[2]["gflops"]), "6.45×"]
    assert lines["cpu.csr.rowwise_par"][2:4] == ["PASS", "1.23 ms"] and lines["cpu.csr.broken"][2:4] == ["FAIL", "-"]
    flat = re.sub(r"\s+", " ", text)
    assert "2 CPU threads" in flat and "--wide" in flat and "--explain" in flat
    wide = report.results_table(rows, wide=True)
    assert set(report.WIDE) <= set(wide.columns)
    legend = {r[0]: r[1] for r in report.legend_table().rows}
    assert set(legend) >= {"GB/s comp", "GB/s model", "p20–p80", "setup", "1st call"}


def test_result_table_shows_no_thread_count_on_gpu_rows():
    rows = [asdict(row("cpu.csr.rowwise", 1e-3, threads=2)), asdict(row("gpu.csr.warp_vec", 1e-4, threads=16))]
    rows[1]["device"] = "gpu"
    t = report.results_table(rows, wide=True)
    recs = {r["variant"]: r for r in t.records()}
    assert recs["cpu.csr.rowwise"]["thr"] == 2 and recs["gpu.csr.warp_vec"]["thr"] == "-"


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plot functions draw, kept instead of saved."""
    from spmm_study import plots

    kept = []

    def keep(fig, path, rows=None, note=""):
        fig.canvas.draw()
        kept.append(fig)
        return Path(path)

    monkeypatch.setattr(plots, "_finish", keep)
    return kept


def _gpu(r):
    d = asdict(r)
    d.update(device="gpu", threads=16, machine=GPU)
    return d


def test_loop_order_chart_of_gpu_rows_has_y_labels_and_no_thread_count(tmp_path, figures):
    from spmm_study import plots

    rows = [_gpu(row(v, t)) for v, t in (("gpu.csr.row_thread", 2.0e-4), ("gpu.csr.warp_vec", 1.2e-4),
                                         ("gpu.dense.cublas", 1.5e-4))]  # all within one decade of GFLOP/s
    plots.plot_loop_orders(rows, tmp_path / "lo.png")
    ax = figures[-1].axes[0]
    assert "thread" not in ax.get_title() and GPU in ax.get_title()
    labels = [t.get_text() for t in ax.yaxis.get_majorticklabels() + ax.yaxis.get_minorticklabels()
              if t.get_text() and ax.get_ylim()[0] <= t.get_position()[1] <= ax.get_ylim()[1]]
    assert labels, "no y-axis labels"


def test_loop_order_chart_needs_loop_orders_and_stands_on_a_linear_axis(tmp_path, figures):
    """Issue 21: a folder of one variant and its baseline drew a loop-order chart, and its log axis made 420
    GFLOP/s look like a stub beside 760. Now such rows are refused (plot_all skips them) and the bars stand
    on a linear axis from zero, so their heights compare."""
    from spmm_study import plots
    from spmm_study.errors import ResultsError

    one = [asdict(row("cpu.csr.tiled", 1e-3)), asdict(row("cpu.dense.numpy", 2e-3))]
    with pytest.raises(ResultsError, match="no loop orders to compare"):
        plots.plot_loop_orders(one, tmp_path / "lo.png")
    assert [p.name for p in plots.plot_all(one, tmp_path / "p")] == ["roofline.png"]
    rows = [asdict(row(v, t)) for v, t in (("cpu.csr.rowwise", 2 * 104858 * 256 / 420e9),
                                           ("cpu.csr.dot", 2 * 104858 * 256 / 760e9))]
    plots.plot_loop_orders(rows, tmp_path / "lo.png")
    ax = figures[-1].axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == pytest.approx([420, 760], rel=1e-3)


def test_roofline_names_the_1_and_all_thread_roofs_apart(tmp_path, figures):
    """Issue 21: both roofs' labels were written at the same point when their peaks were close (82 and 89
    GFLOP/s here), one on top of the other. They are a legend now, one line each, clear of each other."""
    from spmm_study import plots

    ceil = {CPU: {"device": "cpu", "machine": CPU, "threads_all": 2, "stream_gbps_1": 23.1, "stream_gbps_all": 24.0,
                  "fma_gflops_fp32_1": 82.5, "fma_gflops_fp32_all": 88.8}}
    plots.plot_roofline([asdict(row("cpu.csr.rowwise", 1e-3)), asdict(row("cpu.csr.dot", 2e-3))], tmp_path / "r.png",
                        ceil)
    fig = figures[-1]
    ax = fig.axes[0]
    assert not ax.texts  # no label written on the plot itself
    legends = [c for c in ax.get_children() if type(c).__name__ == "Legend"]
    roofs = next(lg for lg in legends if lg.get_title().get_text().startswith("roofs"))
    texts = [t for t in roofs.get_texts()]
    assert [t.get_text() for t in texts] == [f"{CPU} all 2 threads: 24 GB/s, 89 GFLOP/s",
                                             f"{CPU} 1 thread: 23 GB/s, 82 GFLOP/s"]
    r = fig.canvas.get_renderer()
    a, b = (t.get_window_extent(r) for t in texts)
    assert not a.overlaps(b)
    boxes = [lg.get_window_extent(r) for lg in legends]
    assert not boxes[0].overlaps(boxes[1]) and not any(bx.overlaps(ax.get_window_extent(r)) for bx in boxes)


def test_roofline_of_one_problem_spreads_the_variants_and_colours_do_not_repeat(tmp_path, figures):
    from spmm_study import plots

    rows = []
    for i in range(12):
        r = asdict(row(f"cpu.csr.v{i:02d}", 1e-3 * (1 + i / 10)))
        r["bytes_model"] = 1e6 * (1 + i)  # each variant moves its own bytes
        rows.append(r)
    plots.plot_roofline(rows, tmp_path / "r.png")
    ax = figures[-1].axes[0]
    xs = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert len({x for x, _ in xs}) == 12  # not one column
    colours = [tuple(c.get_facecolor()[0]) for c in ax.collections]
    assert len(set(colours)) == 12
    for n in (12, 20, 25):
        assert len({str(c) for c in plots._colours(n)}) == n


def test_tile_chart_of_one_param_is_bars_not_a_strip(tmp_path, figures):
    from spmm_study import plots

    rows = [asdict(row("cpu.csr.tiled", t, params={"tile_n": tile})) for tile, t in ((16, 2e-3), (32, 1e-3), (64, 1.2e-3))]
    plots.plot_tile_heatmap(rows, tmp_path / "t.png")
    ax = figures[-1].axes[0]
    assert not ax.images and len(ax.patches) == 3 and ax.get_xlabel() == "tile_n"
    rows = [asdict(row("cpu.csr.tiled", 1e-3 * (1 + tile / 64 + rpt / 256), params={"tile_n": tile, "rows_per_task": rpt}))
            for tile in (16, 32) for rpt in (16, 64)]
    plots.plot_tile_heatmap(rows, tmp_path / "t2.png")
    assert figures[-1].axes[0].images  # two params: a real heatmap


def test_dlmc_tables_and_plot_from_suite_rows(tmp_path, figures):
    from spmm_study import plots

    rows = []
    for s, t in ((0.8, 3e-3), (0.9, 1.5e-3)):
        tags = f"suite=dlmc;model=transformer;method=magnitude_pruning;sparsity={s};layer=ffn"
        kw = dict(matrix=f"dlmc:transformer/magnitude_pruning/{s}/ffn", sparsity=s, tags=tags)
        rows += [asdict(row("cpu.dense.numpy", 2e-3, **kw)), asdict(row("cpu.csr.rowwise", t, **kw))]
    summary, wins = report.tables_for(rows, kind="dlmc")
    won = {(r["sparsity"], r["variant"]): r for r in wins.records()}
    assert len(summary.rows) == 2 and len(won) >= 2
    plots.plot_dlmc(rows, tmp_path / "d.png")
    ax = figures[-1].axes[0]
    assert ax.get_lines() and ax.get_yscale() == "log"


def test_report_renders_without_the_registry_or_numba(ladder_dir):
    """Issue 9 item 2: rows carry rung and loop_order, so a report loads no kernel (and no numba)."""
    import subprocess
    import sys

    code = ("import sys\nfrom spmm_study.cli import main\ntry:\n    main(['report', sys.argv[1], '--markdown'])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print(sorted(m for m in sys.modules if m == 'numba' or m == 'spmm_study.registry'))")
    res = subprocess.run([sys.executable, "-c", code, str(ladder_dir)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr
    assert "| variant |" in res.stdout and res.stdout.strip().splitlines()[-1] == "[]"
