"""Every table of the docs, generated from the committed reference data (data/reference/) — one script.

    python experiments/make_docs.py            # rewrite every generated block of docs/*.md and README.md
    python experiments/make_docs.py --check    # change nothing; exit 1 naming each block that differs

A generated block is the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in its page; the prose
around it is written by hand. ``BLOCKS`` below is the whole list: the page, the block name, and the function
that renders it from reference files. Every block opens with the machine and date of its rows, taken from the
rows themselves (``machine``, ``timestamp`` columns) or, for the few files without those columns, from
``FILE_META``.

It also runs ``experiments/device_docs.py render`` (the acceptance runs at the top of docs/gpu.md, from
``data/reference/gpu-acceptance-*``; that block has its own renderer and its own test), so this one command
brings every generated table of the docs up to date.

Adding a GPU run (a new ``data/reference/gpu-bench-<device>.csv`` from a device session): add one line to
``GPU_BENCHES`` and the two marker lines ``<!-- gpu-bench-<device>:start -->`` / ``:end -->`` where the
section goes in docs/gpu.md, then run this script. tests/test_docs.py checks that the committed pages equal
what this script writes, so a table cannot drift from its data.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "data" / "reference"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

# Files whose rows carry no machine or date column: where and when they were measured (from the run's own log).
FILE_META = {
    "cpu-every-n.csv": ("Intel(R) Xeon(R) Processor, 2 cores (KVM guest, shared), L2 4 MiB (2 instances)",
                        "2026-12-02 01:02 UTC, 5 interleaved rounds, load average 0.6–1.1"),
}

# The GPU benchmark files, one docs/gpu.md section each: (block name, reference file, what the section shows).
GPU_BENCHES = [
    ("gpu-ratios", "gpu-bench.csv", "the best numba configuration of each problem against the libraries"),
    ("gpu-bench-h200", "gpu-bench-h200.csv", "the chooser as run and the best configuration against the libraries"),
]


def read_csv(name: str) -> list[dict]:
    with open(REF / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def where_when(rows: list[dict], name: str) -> str:
    """'<machine>, <date>' of a reference file's rows."""
    if name in FILE_META:
        return ", ".join(FILE_META[name])
    machines = sorted({r["machine"] for r in rows if r.get("machine")})
    stamps = sorted({(r.get("timestamp") or r.get("date") or "")[:10] for r in rows} - {""})
    when = stamps[0] if len(stamps) == 1 else f"{stamps[0]} to {stamps[-1]}" if stamps else "undated"
    return f"{'; '.join(machines) or 'machine not recorded'}, {when}"


def source_line(name: str, rows: list[dict]) -> str:
    return f"_Rows: `data/reference/{name}` — {where_when(rows, name)}._"


# ------------------------------------------------------------------------------------------------ CPU


def with_registry_facts(rows: list[dict]) -> list[dict]:
    """Rows of a small reference CSV (which keeps only the measured columns) with what the registry knows of
    each variant (device, format, rung: the ladder order) and the sparsity, as a full result row has them."""
    from spmm_study import registry

    reg = registry.load_all()
    for r in rows:
        v = reg.get(r["variant"])
        if v is not None:
            r.update(device=v.device, format=v.format, idea=v.idea, rung=v.rung, baseline=v.baseline,
                     loop_order=v.loop_order)
        if r.get("m") and r.get("k") and r.get("nnz") is not None:
            r["sparsity"] = 1.0 - r["nnz"] / (r["m"] * r["k"])
    return rows


def cpu_ladder() -> str:
    from cpu_ladder import ratio_markdown

    from spmm_study.report import ladder_tables, load_rows, to_markdown

    ladder = with_registry_facts(load_rows([REF / "cpu-ladder.csv"]))
    nm = with_registry_facts(load_rows([REF / "cpu-nm24.csv"]))
    ratios = read_csv("cpu-ratios.csv")
    for r in ratios:
        for k in ("sparsity", "tiled_ms", "tiled_gflops", "mkl_ms", "scipy_ms", "numpy_ms", "vs_mkl", "vs_scipy",
                  "vs_numpy"):
            r[k] = float(r[k])
    skipped = sorted({(r["variant"], r["message"]) for r in ladder if r["status"] == "SKIP"})
    md = [source_line("cpu-ladder.csv", read_csv("cpu-ladder.csv")), "",
          to_markdown(ladder_tables([r for r in ladder if r["status"] != "SKIP"], "cpu.dense.numpy"))]
    md += [f"`{vid}`: SKIP — {msg}\n" for vid, msg in skipped]
    md += [f"Best CSR kernel against the vendor libraries, DLMC transformer ffn_conv1 at 90% and 98%, N = 256; each "
           f"run one process, interleaved rounds, median of the round medians. {source_line('cpu-ratios.csv', ratios)}",
           "", ratio_markdown(ratios), source_line("cpu-nm24.csv", read_csv("cpu-nm24.csv")), "",
           to_markdown(ladder_tables(nm, "cpu.dense.numpy"))]
    return "\n".join(md).rstrip()


EVERY_N_TARGET = (32, 49, 64, 100, 128, 196, 256, 512, 784, 1024, 2048, 3136)


def cpu_every_n() -> str:
    rows = [r for r in read_csv("cpu-every-n.csv") if r["status"] == "PASS" and r["gflops"]]
    order = list(dict.fromkeys(r["variant"] for r in rows))
    g = {(int(r["n"]), r["variant"]): float(r["gflops"]) for r in rows}
    ns = sorted({int(r["n"]) for r in rows})
    short = {v: v.replace("cpu.csr.", "") for v in order}
    bases = [b for b in ("cpu.csr.mkl", "cpu.csr.mkl_opt", "cpu.csr.spregtiling") if b in order]

    def ratio(n, base):
        return g[(n, "cpu.csr.auto")] / g[(n, base)] if (n, base) in g and (n, "cpu.csr.auto") in g else None

    out = [source_line("cpu-every-n.csv", rows), "",
           "DLMC transformer magnitude_pruning/0.9 ffn_conv1 (2048×512, nnz 104,857), fp32, one thread, warm; useful "
           "GFLOP/s from the least CPU time of the calling thread over rounds × calls. Bold N: the batch sizes of the "
           "study's problems.", "",
           "| N | " + " | ".join(short[v] for v in order) + " | " + " | ".join(f"auto/{short[b]}" for b in bases) + " |",
           "| ---: | " + " | ".join("---:" for _ in order + bases) + " |"]
    for n in ns:
        cells = [f"{g[(n, v)]:.1f}" if (n, v) in g else "–" for v in order]
        cells += [f"{ratio(n, b):.2f}×" if ratio(n, b) else "–" for b in bases]
        mark = "**" if n in EVERY_N_TARGET else ""
        out.append(f"| {mark}{n}{mark} | " + " | ".join(cells) + " |")
    chose = [f"N={r['n']}: {r['auto_choice'].replace('cpu.csr.', '')}" for r in rows
             if r["variant"] == "cpu.csr.auto" and int(r["n"]) in EVERY_N_TARGET and r["auto_choice"]]
    out += ["", "`auto` chose: " + ", ".join(chose) + "."]
    return "\n".join(out)


def cpu_every_n_heldout() -> str:
    """The held-out layer-0 matrices and the ffn_conv1 sweep of the later run: the block the every-N script
    writes (``cpu_every_n.reference_markdown``), from its reference file alone."""
    import cpu_every_n

    rows = read_csv("cpu-every-n-heldout.csv")
    md = cpu_every_n.reference_markdown(REF / "cpu-every-n-heldout.csv", None, "cpu-every-n-epyc.png")
    return source_line("cpu-every-n-heldout.csv", rows) + "\n\n" + md.strip()


# ------------------------------------------------------------------------------------------------ study table


def _report_block(name: str, kind: str, baseline: str | None = None) -> str:
    from spmm_study.report import load_rows, tables_for, to_markdown

    rows = load_rows([REF / name])
    return source_line(name, read_csv(name)) + "\n\n" + to_markdown(tables_for(rows, kind=kind, baseline=baseline)).rstrip()


def study_table_epyc() -> str:
    return _report_block("study-table-epyc.csv", "study")


def break_even_epyc() -> str:
    return _report_block("formats-epyc.csv", "break-even")


def study_table_h100() -> str:
    return _report_block("study-table-h100.csv", "study")


# ------------------------------------------------------------------------------------------------ GPU


def _gpu_env() -> dict:
    return json.loads((REF / "gpu-env.json").read_text())


def gpu_ladder() -> str:
    import gpu_tables

    rows = read_csv("gpu-ladder.csv")
    return source_line("gpu-ladder.csv", rows) + "\n\n" + gpu_tables.ladder_table(_gpu_env())


def gpu_bench(name: str):
    def render() -> str:
        import gpu_tables

        rows = read_csv(name)
        env = {"name": where_when(rows, name).split(",")[0]}
        if name == "gpu-bench.csv":
            env = _gpu_env()  # its copy bandwidth: the roof of the byte floor
        parts = [source_line(name, rows), "", gpu_tables.ratio_table(env, name)]
        if any(r["variant"] == "gpu.csr.auto" for r in rows):
            parts += ["", gpu_tables.chooser_table(rows, (), env)]
        return "\n".join(parts)
    return render


# ------------------------------------------------------------------------------------------------ others


def infer_spdnn() -> str:
    rows = read_csv("infer-spdnn.csv")
    out = [source_line("infer-spdnn.csv", rows), "",
           "| engine | threads | median | fastest | edges/s (median) | live edges/s | × scipy (median of rounds) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['engine']} | {r['threads']} | {float(r['median_ms']):.1f} ms | {float(r['fastest_ms']):.1f} ms | "
                   f"{float(r['edges_per_s']) / 1e9:.1f} G | {float(r['live_edges_per_s']) / 1e9:.2f} G | "
                   f"{float(r['vs_scipy']):.2f}× |")
    return "\n".join(out)


def ffn_block() -> str:
    rows = read_csv("ffn-block.csv")
    out = [source_line("ffn-block.csv", rows), "",
           "| sparsity | N | sparse fused ms | dense BLAS ms | sparse tokens/s | dense tokens/s | speedup |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        s, d, n = float(r["sparse_ms"]), float(r["dense_ms"]), int(r["n"])
        out.append(f"| {r['sparsity']} | {n} | {s:.2f} | {d:.2f} | {n / s * 1e3:,.0f} | {n / d * 1e3:,.0f} | "
                   f"{d / s:.2f}x |")
    return "\n".join(out)


def readme_speed() -> str:
    """The README's only figures: the main job itself on the machine of its reference file, and the one
    machine in the reference data where MKL beat it."""
    main = {(r["threads"], r["variant"]): r for r in read_csv("cpu-tiled-main.csv")}
    one, two = main[("1", "cpu.csr.tiled")], main[("2", "cpu.csr.tiled")]
    machine = one["machine"].split(",")[0]
    every = {(r["n"], r["variant"]): float(r["gflops"]) for r in read_csv("cpu-every-n.csv") if r["gflops"]}
    tiled, mkl, auto = every[("256", "cpu.csr.tiled")], every[("256", "cpu.csr.mkl")], every[("256", "cpu.csr.auto")]
    xeon, when = FILE_META["cpu-every-n.csv"]
    return (f"The main job above (`run --variant tiled`, cold caches) on the 2-core {machine} VM, {one['date']} "
            f"(load average {one['load']}, `data/reference/cpu-tiled-main.csv`): {float(one['best_ms']):.2f} ms at one "
            f"thread, {float(one['vs_mkl']):.1f}× MKL and {float(one['vs_mkl_opt']):.1f}× MKL with its inspector step; "
            f"{float(two['best_ms']):.2f} ms at two, {float(two['vs_mkl']):.1f}× MKL. Not everywhere: on the "
            f"{xeon.split(',')[0]} VM of {when.split(' ')[0]} (the DLMC matrix the default imitates, N = 256, one "
            f"thread, warm, `data/reference/cpu-every-n.csv`) `cpu.csr.tiled` reached {tiled:.1f} GFLOP/s against "
            f"MKL's {mkl:.1f} ({tiled / mkl:.2f}×), and `cpu.csr.auto`, which picks a rung for the N, {auto:.1f} "
            f"({auto / mkl:.2f}×).")


def readme_tiny() -> str:
    """What SPMM_STUDY_TINY=1 shrinks, from the module that does it (so the README cannot drift from it)."""
    from spmm_study import tiny

    return (f"`{tiny.ENV}=1` runs every command at tiny sizes: A cut to its first {tiny.ROWS} rows and {tiny.COLS} "
            f"columns, N at most {tiny.N}, a convolution's first {tiny.ROWS} filters on an image of at most "
            f"{tiny.IMAGE}×{tiny.IMAGE} pixels, one warm repeat, the first {tiny.TASKS} measurements of a grid, {tiny.CASES} edge matrices per "
            f"`check`, the labs' tiny size, at most {tiny.BATCH} inputs and {tiny.LAYERS} layers for `infer` "
            f"(`spmm_study/tiny.py` is the one place that says what shrinks).")


BLOCKS = [
    ("README.md", "readme-speed", readme_speed),
    ("README.md", "readme-tiny", readme_tiny),
    ("docs/cpu.md", "cpu-ladder", cpu_ladder),
    ("docs/cpu.md", "cpu-every-n", cpu_every_n),
    ("docs/cpu.md", "cpu-every-n-heldout", cpu_every_n_heldout),
    ("docs/study-table.md", "study-table-epyc", study_table_epyc),
    ("docs/study-table.md", "break-even-epyc", break_even_epyc),
    ("docs/study-table.md", "study-table-h100", study_table_h100),
    ("docs/gpu.md", "gpu-ladder", gpu_ladder),
    *[("docs/gpu.md", name, gpu_bench(file)) for name, file, _ in GPU_BENCHES],
    ("docs/infer.md", "infer-spdnn", infer_spdnn),
    ("docs/infer.md", "ffn-block", ffn_block),
]


def replace_block(text: str, name: str, body: str, page: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise SystemExit(f"{page}: needs exactly one {start} and one {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body.rstrip()}\n{end}{tail}"


def render_pages() -> dict[str, str]:
    """Each page with every generated block rewritten (pages as they would be written)."""
    pages: dict[str, str] = {}
    for page, name, fn in BLOCKS:
        text = pages.get(page) or (ROOT / page).read_text(encoding="utf-8")
        pages[page] = replace_block(text, name, fn(), page)
    return pages


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page differs")
    args = ap.parse_args(argv)
    if not args.check:  # the acceptance runs' section of docs/gpu.md: its own renderer and test (device_docs.py)
        import device_docs

        device_docs.render()
    differ = []
    for page, text in render_pages().items():
        path = ROOT / page
        if path.read_text(encoding="utf-8") != text:
            differ.append(page)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and differ:
        print(f"generated blocks out of date in {', '.join(differ)}: run python experiments/make_docs.py",
              file=sys.stderr)
        return 1
    print(f"{'would rewrite' if args.check else 'rewrote'} {len(differ)} page(s)" if differ else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
