"""Recompute the model columns of the reference tables after a movement-model fix, without re-measuring.

    python experiments/remodel_reference.py            # rewrite data/reference/*.csv, then the docs' tables
    python experiments/remodel_reference.py --check    # only say what would change (exit 1 if anything)

A model is a pure function of the row's own facts (M, K, N, nnz, dtype, params and, for the B copy, whether
B was aligned: ``b_offset_bytes`` in the row's info), so ``bytes_model`` and ``gbps_model`` =
bytes_model / median_s can be recomputed from the rows; the measured times stay as they were.

The fix of 2026-12-01: the register-blocked CPU rungs (``cpu.csr.tiled``, ``cpu.sell.tiled``,
``cpu.nm24.tiled``) charged a copy of B (2·K·N values) whenever ``pack_b`` was on, although the copy happens
only when B is misaligned and ``Problem.make`` aligns it. For each such row this script first recomputes the
*old* model and demands that it reproduces the stored ``bytes_model`` and ``gbps_model`` (so the row's facts
are read correctly), then writes the new ones; a row whose stored model already is the new one (measured
before the copy term entered that model, as some SELL and 2:4 rows were) is left as it is. The docs' tables are then written again from the rewritten files by
experiments/make_docs.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spmm_study import registry  # noqa: E402
from spmm_study.problem import Shape  # noqa: E402
from spmm_study.report import params_label  # noqa: E402

FIXED = ("cpu.csr.tiled", "cpu.sell.tiled", "cpu.nm24.tiled")
TABLES = ("cpu-ladder.csv", "cpu-nm24.csv", "study-table-epyc.csv", "formats-epyc.csv")


def _shape(r: dict, aligned: bool) -> Shape:
    vb = {"float32": 4, "float64": 8}[r["dtype"]]
    # k_touched and rows_nonempty are not read by the models of FIXED (only by compulsory and CSC)
    return Shape(m=int(r["m"]), k=int(r["k"]), n=int(r["n"]), nnz=int(r["nnz"]), k_touched=-1, rows_nonempty=-1,
                 value_bytes=vb, index_bytes=4, b_aligned=aligned)


def remodel(r: dict) -> tuple[float, float, float, float] | None:
    """(old bytes, old GB/s, new bytes, new GB/s) for a row of a FIXED variant, or None."""
    if r["variant"] not in FIXED:
        return None
    v = registry.get(r["variant"])
    params = v.resolve_params(json.loads(r["params"] or "{}"))
    info = json.loads(r["info"] or "{}")
    t = float(r["median_s"]) if r["median_s"] not in ("", "nan") else float("nan")
    s = _shape(r, aligned=True)
    old = v.movement(replace(s, b_aligned=False), params).total  # the old model: a copy whenever pack_b
    new = v.movement(s, params).total
    stored = float(r["bytes_model"])
    if math.isclose(new, stored, rel_tol=1e-5):  # measured before the copy entered this model: nothing to fix
        return new, new / t / 1e9, new, new / t / 1e9
    if not math.isclose(old, stored, rel_tol=1e-5):
        raise SystemExit(f"{r['variant']} {r['params']}: old model {old:.6g} != stored {stored:.6g}: not this fix")
    if info.get("b_packed"):
        raise SystemExit(f"{r['variant']}: this row did copy B; its model is unchanged")
    if "b_offset_bytes" not in info and r["status"] == "PASS":
        raise SystemExit(f"{r['variant']} {r['params']}: info does not say whether B was aligned")
    return old, old / t / 1e9, new, new / t / 1e9


def fix_csv(path: Path, write: bool) -> dict:
    """Rewrite bytes_model/gbps_model of FIXED rows; return {(variant, params label, threads, matrix, n): new}."""
    with open(path, newline="") as f:
        eol = "\r\n" if f.readline().endswith("\r\n") else "\n"  # keep the file's own line ends
        f.seek(0)
        rows = list(csv.DictReader(f))
        columns = list(rows[0]) if rows else []
    changed = {}
    for r in rows:
        got = remodel(r)
        if got is None:
            continue
        old, old_gbps, new, new_gbps = got
        if r["gbps_model"] not in ("", "nan") and not math.isclose(old_gbps, float(r["gbps_model"]), rel_tol=1e-4):
            raise SystemExit(f"{path.name} {r['variant']}: old GB/s {old_gbps:.6g} != stored {r['gbps_model']}")
        key = (r["variant"], params_label(r), int(r["threads"]), r["matrix"], int(r["n"]))
        changed[key] = (old, old_gbps, new, new_gbps)
        r["bytes_model"] = f"{new:.6g}" if path.name.startswith("cpu-") else repr(float(new))
        if r["gbps_model"] not in ("", "nan"):
            r["gbps_model"] = f"{new_gbps:.6g}" if path.name.startswith("cpu-") else repr(new_gbps)
    if write and changed:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, lineterminator=eol)
            w.writeheader()
            w.writerows(rows)
    return changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=str(ROOT / "data" / "reference"))
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything would change")
    args = ap.parse_args()
    changed = {}
    for name in TABLES:
        got = fix_csv(Path(args.reference) / name, write=not args.check)
        moved = sum(1 for o, _, nw, _ in got.values() if o != nw)
        print(f"{name}: {len(got)} rows of {', '.join(FIXED)}, {moved} with a new model")
        if name.startswith("cpu-"):
            changed.update(got)
    moved = any(o != nw for o, _, nw, _ in changed.values())
    if not args.check:
        sys.path.insert(0, str(ROOT / "experiments"))
        import make_docs

        make_docs.main([])
    return 1 if args.check and moved else 0


if __name__ == "__main__":
    sys.exit(main())
