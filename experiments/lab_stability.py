"""Do the labs' verdicts hold on a busy machine? Run each CPU lab several times back to back through the CLI
and count, per question, how many runs gave the same verdict.

    python experiments/lab_stability.py                      # labs 1-6, quick mode, 5 runs each
    python experiments/lab_stability.py --labs 1,3 --runs 3 --out results/stability

Every run is ``python -m spmm_study lab ID --quick --predictions FILE --student stability --out DIR``, one
process per run, as a student types it. The predictions are the movement model's answers at the quick size
(``prepare`` + the lab's intro, no measurement): a student who trusts the model. Questions without a model
answer get 1. A verdict of "too noisy to call here" counts as a verdict like any other: the lab declined to
call it, which is what it should do rather than flip.

Prints one line per question (lab, question, what it is graded on, the agreement "5/5" on the verdict's kind:
right, high, low or too noisy; the factor of a high/low verdict may differ between runs) and
the load average before and after each run; writes the same as ``stability.md`` and ``stability.csv`` under
--out. Bad options: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

CPU_LABS = (1, 2, 3, 4, 5, 6)
SIZES = ("tiny", "quick")


class Bad(Exception):
    pass


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], exit_on_error=False)
    p.add_argument("--labs", default=",".join(map(str, CPU_LABS)), help="comma-separated CPU labs (1-6)")
    p.add_argument("--runs", default="5", help="runs of each lab, back to back (1-20)")
    p.add_argument("--size", default="quick", help="quick (the benchmark) or tiny (tests)")
    p.add_argument("--out", default=None, help="folder for the runs and the summary (default results/stability/<time>)")
    try:
        args, rest = p.parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise Bad(str(exc)) from None
    if rest:
        raise Bad(f"unknown argument {rest[0]!r} (options: --labs, --runs, --size, --out)")
    try:
        labs = [int(x) for x in args.labs.split(",") if x.strip()]
    except ValueError:
        raise Bad(f"--labs {args.labs!r}: give comma-separated lab numbers from {CPU_LABS}") from None
    if not labs or any(x not in CPU_LABS for x in labs):
        raise Bad(f"--labs {args.labs!r}: the CPU labs are {', '.join(map(str, CPU_LABS))}")
    try:
        runs = int(args.runs)
    except ValueError:
        raise Bad(f"--runs {args.runs!r} is not a whole number") from None
    if not 1 <= runs <= 20:
        raise Bad(f"--runs {runs}: give 1 to 20")
    if args.size not in SIZES:
        raise Bad(f"--size {args.size!r}: choose {' or '.join(SIZES)}")
    out = Path(args.out) if args.out else Path("results/stability") / time.strftime("%Y%m%d-%H%M%S")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Bad(f"--out {out}: exists and is not an empty folder")
    args.labs, args.runs, args.out = labs, runs, out
    return args


def model_predictions(lab_id: int, size: str) -> dict[str, float]:
    """The model's answer to each question at this size (no measurement), 1 where the model has none."""
    from spmm_study.labs import catalog, common

    lab = catalog.get(lab_id)
    out = common.prepare(lab, size)
    lab.intro(out)  # labs derive model facts there (lab 5's partitions, lab 6's roofs)
    preds = {}
    for q in lab.questions:
        v = common._safe(q, out, "model")
        preds[q.key] = round(v, 3) if v is not None and v > 0 else 1.0
    return preds


def category(verdict: str) -> str:
    """What must agree between runs: right, high, low, too noisy (not the factor: "high 5.9x" and "high 5.8x"
    are the same verdict)."""
    if verdict.startswith("too noisy"):
        return "too noisy"
    return verdict.split()[0] if verdict else "-"


def load_avg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def run_lab(lab_id: int, size: str, preds_file: Path, folder: Path) -> tuple[int, float]:
    cmd = [sys.executable, "-m", "spmm_study", "lab", str(lab_id), "--student", "stability",
           "--predictions", str(preds_file), "--out", str(folder)] + (["--quick"] if size == "quick" else ["--tiny"])
    t0 = time.perf_counter()
    with open(folder.with_suffix(".log"), "w", encoding="utf-8") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, COLUMNS="160")).returncode
    return rc, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except Bad as exc:
        print(f"lab_stability: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    lines, records = [], []
    loads = []
    for lab_id in args.labs:
        preds = model_predictions(lab_id, args.size)
        pf = args.out / f"lab{lab_id}-predictions.json"
        pf.write_text(json.dumps(preds))
        verdicts: dict[str, list[str]] = {}
        graded: dict[str, str] = {}
        for i in range(1, args.runs + 1):
            before = load_avg()
            rc, secs = run_lab(lab_id, args.size, pf, args.out / f"lab{lab_id}-run{i}")
            after = load_avg()
            loads.append((lab_id, i, before, after, round(secs, 1), rc))
            print(f"lab {lab_id} run {i}: exit {rc}, {secs:.0f} s, load average {before:g} -> {after:g}", flush=True)
            ans_file = args.out / f"lab{lab_id}-run{i}" / "answers.jsonl"
            got = [json.loads(x) for x in ans_file.read_text().splitlines()] if ans_file.exists() else []
            for a in got:
                verdicts.setdefault(a["question"], []).append(a["verdict"])
                graded[a["question"]] = a["graded_on"]
            for q in preds:
                if q not in {a["question"] for a in got}:
                    verdicts.setdefault(q, []).append("(no answer: the run failed)")
        for q, vs in verdicts.items():
            top, n = Counter(map(category, vs)).most_common(1)[0]
            records.append({"lab": lab_id, "question": q, "graded_on": graded.get(q, "?"), "prediction": preds[q],
                            "agreement": f"{n}/{len(vs)}", "same_verdict": top, "verdicts": " | ".join(vs)})
    md = io.StringIO()
    md.write(f"lab stability: {args.runs} runs per lab, size {args.size}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{os.cpu_count()} cores\n\n| lab | question | graded on | prediction | agreement | the verdict most runs gave |\n"
             "| ---: | --- | --- | ---: | ---: | --- |\n")
    for r in records:
        md.write(f"| {r['lab']} | {r['question']} | {r['graded_on']} | {r['prediction']:g} | {r['agreement']} | "
                 f"{r['same_verdict']} |\n")
    md.write("\n| lab | run | load before | load after | seconds | exit |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n")
    for lab_id, i, b, a, s, rc in loads:
        md.write(f"| {lab_id} | {i} | {b:g} | {a:g} | {s:g} | {rc} |\n")
    (args.out / "stability.md").write_text(md.getvalue())
    with open(args.out / "stability.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(records[0]) if records else ["lab"])
        w.writeheader()
        w.writerows(records)
    print(md.getvalue())
    return 0 if all(rc == 0 for *_, rc in loads) else 1


if __name__ == "__main__":
    sys.exit(main())
