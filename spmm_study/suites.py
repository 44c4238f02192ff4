"""The problem suites of run documents (docs/ARCHITECTURE.md §3, the planner's ``suite =`` runs): each turns a
run's suite options into (matrix spec, N, tags) triples, or appends what is wrong to ``errors``.

* ``study``: the 20 problems of the course study's table (``spmm_study/data/study_table.csv``);
* ``dlmc``: every matrix of a DLMC folder, transformer ones at each N, RN50 ones at their layer's batch size;
* ``conv``: the eight 3×3 convolutions of the course study's Table 3 (docs/conv.md).

``check_type`` is the one type check of a document's values, which the planner (``experiment.py``) uses too.
"""

from __future__ import annotations

import csv
import fnmatch
import io
from pathlib import Path
from typing import Any

from spmm_study.errors import ParamError, SpmmError

DATA_DIR = Path(__file__).resolve().parent / "data"  # package data: a non-editable install has it too
STUDY_TABLE = DATA_DIR / "study_table.csv"
SUITES = ("study", "dlmc", "conv")
DEFAULT_DLMC_N = (256, 2048)


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_type(where: str, key: str, value: Any, kind, errors: list[str], allow_list: bool = False) -> list:
    """Type-check a value (or each element of a list); returns the values as a list ([] when wrong)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    values = as_list(value) if allow_list else [value]
    if allow_list and not values:
        errors.append(f"{where}{key} is an empty list")
        return []
    bad = [v for v in values if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds)]
    if bad:
        names = " or ".join(k.__name__ for k in kinds)
        errors.append(f"{where}{key} = {bad[0]!r} is not {'a list of ' if allow_list else 'a '}{names}")
        return []
    return values


def read_study_table(path: Path | str = STUDY_TABLE) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        hint = " (it ships inside the package: reinstall spmm-study, or give 'table = PATH')" if path == STUDY_TABLE else ""
        raise ParamError(f"no study table {path}{hint}")
    from spmm_study.safeio import read_text

    text = read_text(path, limit=4 << 20, what="study table", error=ParamError)  # bounded, regular, UTF-8
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ParamError(f"{path} is not a readable CSV: {exc}") from None
    need = {"problem", "m", "k", "n", "use_case", "count", "sparsity", "t4_speedup_vs_cublas", "dlmc", "synthetic"}
    if not rows or need - set(rows[0]):
        raise ParamError(f"{path} lacks columns {', '.join(sorted(need - set(rows[0] if rows else {})))}")
    return rows


def study_problems(where: str, run: dict, errors: list[str], dlmc_root: str | None,
                    base_dir: Path | None) -> list[tuple[str, int, str]]:
    import os

    table = run.get("table")
    path = STUDY_TABLE if table is None else (Path(table) if Path(table).is_absolute() or base_dir is None
                                              else base_dir / table)
    try:
        rows = read_study_table(path)
    except SpmmError as exc:
        errors.append(f"{where}{exc}")
        return []
    source = run.get("source", "auto")
    if source not in ("auto", "dlmc", "synthetic"):
        errors.append(f"{where}source = {source!r} must be auto, dlmc or synthetic")
        return []
    root = dlmc_root or os.environ.get("SPMM_STUDY_DLMC")
    if source == "dlmc" and not root:
        errors.append(f"{where}source = \"dlmc\" needs a DLMC root (--dlmc-root or $SPMM_STUDY_DLMC)")
    use_dlmc = source == "dlmc" or (source == "auto" and bool(root))
    sparsities = [float(s) for s in check_type(where, "sparsity", run.get("sparsity", [0.9, 0.95]), (int, float),
                                                errors, allow_list=True)]
    cases = check_type(where, "use_case", run.get("use_case", ["RN50", "NLP", "MbNetV1"]), str, errors,
                        allow_list=True)
    if "n" in run:
        errors.append(f"{where}the study suite takes N from the table; drop n")
    out = []
    for r in rows:
        if r["use_case"] not in cases or not any(abs(float(r["sparsity"]) - s) < 1e-9 for s in sparsities):
            continue
        spec = r["dlmc"] if (use_dlmc and r["dlmc"]) else r["synthetic"]
        tags = (f"suite=study;problem={r['problem']};use_case={r['use_case']};count={r['count']};"
                f"sparsity={float(r['sparsity']):g};t4={r['t4_speedup_vs_cublas']}")
        out.append((spec, int(r["n"]), tags))
    if not out:
        errors.append(f"{where}the study table filters (sparsity {sparsities}, use_case {cases}) select nothing")
    return out


def conv_problems(where: str, run: dict, errors: list[str], dlmc_root: str | None) -> list[tuple[str, int, str]]:
    """``suite = "conv"``: the eight 3×3 convolutions of the course study's Table 3 (docs/conv.md), RN50's
    ``bottleneck_2_block_group{1..4}_1_1`` at 56/28/14/7 pixels, padding 1, batch 1, as ``conv:`` specs on
    their DLMC weights when a DLMC root is given (else, or with ``source = "synthetic"``, synthetic
    magnitude-pruned weights of the same shapes). Filter: ``sparsity = [0.9, 0.95]``."""
    import os

    from spmm_study.conv import spec_n
    from spmm_study.report import CONV_TABLE3 as TABLE3

    source = run.get("source", "auto")
    if source not in ("auto", "dlmc", "synthetic"):
        errors.append(f"{where}source = {source!r} must be auto, dlmc or synthetic")
        return []
    for key in ("n", "table", "use_case", "model", "method", "layers"):
        if key in run:
            errors.append(f"{where}the conv suite takes its problems from the study's Table 3; drop {key}")
    root = dlmc_root or os.environ.get("SPMM_STUDY_DLMC")
    if source == "dlmc" and not root:
        errors.append(f"{where}source = \"dlmc\" needs a DLMC root (--dlmc-root or $SPMM_STUDY_DLMC)")
    use_dlmc = source == "dlmc" or (source == "auto" and bool(root))
    sparsities = [float(x) for x in check_type(where, "sparsity", run.get("sparsity", [0.9, 0.95]), (int, float),
                                                errors, allow_list=True)]
    with open(TABLE3, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    out = []
    for r in table:
        s = float(r["sparsity"])
        if not any(abs(s - x) < 1e-9 for x in sparsities):
            continue
        img, c = int(r["image"]), int(r["channels"])
        weights = (f"dlmc:rn50/magnitude_pruning/{s:g}/{r['layer']}" if use_dlmc
                   else f"synthetic:magnitude:{c}x{9 * c}:{s:g}")
        spec = f"conv:{img}x{img},pad=1:{weights}"
        out.append((spec, spec_n(spec), f"suite=conv;problem={r['problem']};sparsity={s:g};image={img}"))
    if not out:
        errors.append(f"{where}the conv suite's sparsity filter {sparsities} selects nothing (0.9, 0.95)")
    return out


def rn50_batch_sizes(root: Path | None) -> dict[str, int]:
    """Layer name → N (the batch size of its 1×1 convolution as a GEMM), from the DLMC root or data/."""
    for cand in ([root / "rn50_batchsizes.txt"] if root else []) + [DATA_DIR / "rn50_batchsizes.txt"]:
        if cand.is_file():
            from spmm_study.safeio import read_text

            out = {}
            text = read_text(cand, limit=4 << 20, what="batch-size list", error=ParamError)
            for i, line in enumerate(text.splitlines(), 1):
                if "," in line:
                    layer, _, n = line.partition(",")
                    if not n.strip().isdigit() or int(n) < 1:
                        raise ParamError(f"{cand}:{i}: batch size {n.strip()[:20]!r} is not a positive integer")
                    out[layer.strip()] = int(n)
            return out
    raise ParamError("no rn50_batchsizes.txt in the DLMC root or the package data")


def dlmc_problems(where: str, run: dict, errors: list[str], dlmc_root: str | None) -> list[tuple[str, int, str]]:
    from spmm_study import sources

    try:
        root = sources.dlmc_root(dlmc_root)
    except SpmmError as exc:
        errors.append(f"{where}{exc}")
        return []
    model = run.get("model", "transformer")
    method = run.get("method", "magnitude_pruning")
    if not check_type(where, "model", model, str, errors) or not check_type(where, "method", method, str, errors):
        return []
    sparsities = [str(s) for s in check_type(where, "sparsity", run.get("sparsity", ["0.9"]), (str, int, float),
                                              errors, allow_list=True)]
    layers = run.get("layers", "*")
    if not isinstance(layers, str):
        errors.append(f"{where}layers must be a glob string like \"*ffn*\"")
        return []
    ns = check_type(where, "n", run.get("n", list(DEFAULT_DLMC_N)), int, errors, allow_list=True)
    batch = None
    if model == "rn50":
        if "n" in run:
            errors.append(f"{where}RN50 matrices run at their layer's batch size (rn50_batchsizes.txt); drop n")
        try:
            batch = rn50_batch_sizes(root)
        except SpmmError as exc:
            errors.append(f"{where}{exc}")
            return []
    for key, value in [("model", model), ("method", method)] + [("sparsity", s) for s in sparsities]:
        if value in ("", ".", "..") or "/" in value or "\\" in value:  # one folder name: never a way out of the root
            errors.append(f"{where}: {key} = {value!r} must be one folder name inside the DLMC root")
            return []
    out = []
    for method, s in dlmc_folders(where, root / model, method, sparsities, errors):
        folder = root / model / method / s
        if not folder.is_dir():
            errors.append(f"{where}no DLMC folder {folder}")
            continue
        files = sorted(p for p in folder.glob("*.smtx") if fnmatch.fnmatch(p.stem, layers))
        if not files:
            errors.append(f"{where}no .smtx under {folder} matches layers = {layers!r}")
        for f in files:
            spec = f"dlmc:{model}/{method}/{s}/{f.stem}"
            tags = f"suite=dlmc;model={model};method={method};sparsity={s};layer={f.stem}"
            if batch is not None:
                if f.stem not in batch:
                    errors.append(f"{where}no batch size for RN50 layer {f.stem} in rn50_batchsizes.txt")
                    continue
                out.append((spec, batch[f.stem], tags))
            else:
                out += [(spec, n, tags) for n in ns if n > 0]
    return out


def dlmc_folders(where: str, base: Path, method: str, sparsities: list[str], errors: list[str]) -> list[tuple]:
    """(method, sparsity) folders to read: ``method`` and each sparsity may be globs ("*": every folder the
    root holds, so one experiment covers the whole collection whatever subset is installed)."""
    def globbed(text: str) -> bool:
        return any(c in text for c in "*?[")

    if globbed(method):
        methods = sorted(p.name for p in base.glob(method) if p.is_dir()) if base.is_dir() else []
        if not methods:
            errors.append(f"{where}no method folder under {base} matches method = {method!r}")
    else:
        methods = [method]
    out = []
    for m in methods:
        for s in sparsities:
            if globbed(s):
                found = sorted((p.name for p in (base / m).glob(s) if p.is_dir()), key=_as_number)
                if not found and not globbed(method):
                    errors.append(f"{where}no sparsity folder under {base / m} matches {s!r}")
                out += [(m, x) for x in found]
            else:
                out.append((m, s))
    return list(dict.fromkeys(out))


def _as_number(text: str) -> tuple:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)
