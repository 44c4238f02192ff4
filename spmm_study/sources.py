"""Matrix specs → validated canonical CSR (docs/ARCHITECTURE.md §7). One syntax for every source: ``scheme:rest``.

=============================================  =========================================================
``dlmc:<path inside the DLMC root>``           a DLMC ``.smtx`` (pattern only), root from ``--dlmc-root``
                                               or ``$SPMM_STUDY_DLMC``; ``.smtx`` may be omitted
``smtx:<file>``                                one DLMC-format file
``mtx:<file>``                                 Matrix Market (scipy.io); pattern files get values
``npz:<file>``                                 scipy.sparse ``save_npz`` (csr, csc or coo)
``safetensors:<file>#<tensor>``                a 2-D weight of a real model (bf16/fp16/fp32/fp64)
``synthetic:<kind>:<shape>[:<sparsity>][:key=value...]``
                                               project-made, seeded: kinds ``uniform``, ``magnitude``
                                               (Gaussian, DLMC-like row-length spread), ``nm`` (N:M,
                                               default 2:4), ``block`` (``block=4x4``); shapes ``MxK`` or
                                               ``attention`` (512x512), ``ffn1`` (2048x512), ``ffn2``
                                               (512x2048); options ``seed=``, ``block=``, ``nm=2:4``
=============================================  =========================================================

Any source takes a pruning spec (``--prune``): ``magnitude:0.9`` keeps exactly round(0.1·cells) largest
magnitudes (ties broken by position, so it is deterministic), ``random:0.9`` a seeded random subset of the
nonzeros, ``2:4`` (or any ``N:M``) the N largest of each M consecutive entries along a row.

Pattern-only files get standard-normal values from the matrix seed. Everything read from a file is fully
validated (``CSR.validate``) before any kernel or scipy routine sees it: scipy does not check indices.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spmm_study import safeio
from spmm_study.errors import FormatError, SourceError, SpmmError
from spmm_study.formats import CSR, INT32_MAX, index_dtype_for
from spmm_study.memory import available_memory_bytes
from spmm_study.seeding import check_seed, seeded_values

DEFAULT_SPEC = "synthetic:magnitude:ffn1:0.9"
DEFAULT_N = 256
DLMC_ENV = "SPMM_STUDY_DLMC"
DLMC_HELP = ("get the Deep Learning Matrix Collection (dlmc.tar.gz of the SC'20 paper 'Sparse GPU Kernels for "
             "Deep Learning', google-research/sgk) and point --dlmc-root or $SPMM_STUDY_DLMC at its dlmc/ folder")
LAYER_SHAPES = {"attention": (512, 512), "ffn1": (2048, 512), "ffn2": (512, 2048)}
SCHEMES = ("dlmc", "smtx", "mtx", "npz", "safetensors", "synthetic", "conv")


@dataclass(frozen=True)
class Prune:
    method: str  # magnitude | random | nm
    sparsity: float = 0.0
    n: int = 0
    m: int = 0

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.method == "nm" else f"{self.method}:{self.sparsity:g}"


def parse_sparsity(text: str, what: str = "sparsity") -> float:
    try:
        s = float(text)
    except ValueError:
        raise SourceError(f"{what} {text!r} is not a number") from None
    if not (0.0 <= s < 1.0) or not np.isfinite(s):
        raise SourceError(f"{what} {text} is outside [0, 1)")
    return s


def parse_nm(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if not m:
        raise SourceError(f"N:M pattern {text!r} must look like 2:4")
    n_keep, group = int(m.group(1)), int(m.group(2))
    if not (1 <= n_keep <= group) or group > 64:
        raise SourceError(f"N:M pattern {text} needs 1 <= N <= M <= 64")
    return n_keep, group


def parse_prune(text: str | None) -> Prune | None:
    if not text:
        return None
    text = text.strip()
    if re.fullmatch(r"\d+:\d+", text):
        n_keep, group = parse_nm(text)
        return Prune("nm", 1.0 - n_keep / group, n_keep, group)
    method, _, amount = text.partition(":")
    if method not in ("magnitude", "random") or not amount:
        raise SourceError(f"unknown prune spec {text!r}; use magnitude:0.9, random:0.9 or 2:4")
    return Prune(method, parse_sparsity(amount, "prune sparsity"))


# --------------------------------------------------------------------------------------------- pruning


def magnitude_mask_dense(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep exactly round((1-s)·cells) largest |w|; ties go to the lower flat position (deterministic)."""
    flat = np.abs(w).ravel()
    keep = int(round((1.0 - sparsity) * flat.size))
    mask = np.zeros(flat.size, dtype=bool)
    if keep > 0:
        order = np.lexsort((np.arange(flat.size), -flat))  # by |w| descending, then position ascending
        mask[order[:keep]] = True
    return mask.reshape(w.shape)


def nm_mask_dense(w: np.ndarray, n_keep: int, group: int) -> np.ndarray:
    """Keep the n_keep largest |w| of each ``group`` consecutive entries along each row (ties: lower index).
    A last partial group keeps min(n_keep, its length) entries."""
    m, k = w.shape
    pad = (-k) % group
    a = np.abs(np.pad(w, ((0, 0), (0, pad)), constant_values=0.0)).reshape(m, -1, group)
    valid = np.pad(np.ones((m, k), bool), ((0, 0), (0, pad))).reshape(m, -1, group)
    score = np.where(valid, a, -1.0)
    # stable argsort of -score: larger first, lower index first among ties
    order = np.argsort(-score, axis=2, kind="stable")[:, :, :n_keep]
    mask = np.zeros_like(valid)
    np.put_along_axis(mask, order, True, axis=2)
    mask &= valid
    return mask.reshape(m, -1)[:, :k]


def prune_csr(a: CSR, prune: Prune, seed: int) -> CSR:
    if prune.method == "random":
        keep = int(round((1.0 - prune.sparsity) * a.m * a.k))
        if keep > a.nnz:
            raise SourceError(f"random:{prune.sparsity:g} keeps {keep} entries but the matrix has only {a.nnz}")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9]))
        pos = np.sort(rng.choice(a.nnz, size=keep, replace=False))
        rows = np.repeat(np.arange(a.m), a.row_lengths())[pos]
        return CSR.from_coo_arrays(a.shape, rows, a.indices[pos], a.data[pos])
    if prune.method == "magnitude":
        # On the stored entries, not a dense copy: zeros are the smallest magnitudes, and CSR order is
        # row-major order, so "ties go to the lower flat position" is the same rule as magnitude_mask_dense.
        keep = int(round((1.0 - prune.sparsity) * a.m * a.k))
        live = int(np.count_nonzero(a.data))
        if keep > live:  # silently keeping fewer would break "exactly round((1-s)·cells)"
            raise SourceError(f"magnitude:{prune.sparsity:g} keeps {keep} entries but the matrix has only {live} "
                              f"nonzeros (it is {1 - live / (a.m * a.k):.3g} sparse already)")
        order = np.lexsort((np.arange(a.nnz), -np.abs(a.data)))
        pos = np.sort(order[:keep])
        rows = np.repeat(np.arange(a.m), a.row_lengths())[pos]
        return CSR.from_coo_arrays(a.shape, rows, a.indices[pos], a.data[pos])
    _check_dense_fits(a.m, a.k, "pruning")
    dense = a.to_dense()
    mask = nm_mask_dense(dense, prune.n, prune.m)
    mask &= dense != 0
    return CSR.from_dense(np.where(mask, dense, 0).astype(a.dtype))


def _check_dense_fits(m: int, k: int, what: str) -> None:
    need = m * k * 8 * 3
    if need > 0.5 * available_memory_bytes():
        raise SourceError(f"{what} a {m}x{k} matrix needs a dense copy of {need / 2**30:.1f} GiB; too large here")


# ------------------------------------------------------------------------------------------------ files


INT64_MAX = int(np.iinfo(np.int64).max)
HEADER_LIMIT = 1 << 20  # bytes of banner, comments and size line a matrix file may have before its data
# Bytes of working memory per stored entry and per row while a file becomes a validated CSR (measured with
# tracemalloc on 1M-entry files, rounded up): smtx parses Python ints from text (a str and a list slot per
# token); Matrix Market goes through scipy's COO, a lexsort and validate; both keep a few M+1 offset arrays.
SMTX_BYTES_PER_TOKEN, MTX_BYTES_PER_ENTRY, BYTES_PER_ROW = 96, 112, 40


def _check_file(path: Path) -> None:
    with safeio.open_regular(path, "matrix file", SourceError):
        pass


def check_fits(need: int, what: str) -> None:
    """Refuse, before allocating, work that would take more than half of what this process may still use."""
    room = available_memory_bytes()
    if need > 0.5 * room:
        raise SourceError(f"{what} needs about {need / 2**30:.1f} GiB to read; {room / 2**30:.1f} GiB is available")


def _check_counts(path: Path, m: int, k: int, nnz: int | None, where: str) -> None:
    """Sizes from a header, before anything is built from them: non-negative, within int64, nnz <= M*K."""
    sizes = [x for x in (m, k, nnz) if x is not None]
    if min(sizes) < 0:
        raise SourceError(f"{path}: negative size in {where}: {', '.join(map(str, sizes))}")
    for name, x in (("rows", m), ("cols", k), ("nnz", nnz)):
        if x is None:
            continue
        if x >= INT64_MAX:
            raise SourceError(f"{path}: {name} {x} in {where} is past int64")
    if nnz is not None and nnz > m * k:
        raise SourceError(f"{path}: nnz {nnz} exceeds rows x cols = {m * k} ({where})")


def _ints(line: str, what: str, path: Path) -> np.ndarray:
    try:
        return np.array(line.replace(",", " ").split(), dtype=np.int64)
    except (ValueError, OverflowError):
        tokens = line.replace(",", " ").split()
        bad = next((t for t in tokens if not re.fullmatch(r"[+-]?\d+", t)), None)
        if bad is None:  # every token is an integer: one of them is past int64
            big = max(tokens, key=lambda t: len(t.lstrip("+-")))
            raise SourceError(f"{path}: {what} holds {big[:24]}, past int64") from None
        raise SourceError(f"{path}: {what} holds non-integer text {bad[:20]!r}") from None


def _header_ints(raw: bytes, what: str, path: Path) -> list[int]:
    text = safeio.decode_text(raw, path, "matrix file", SourceError, encoding="ascii")
    tokens = text.replace(",", " ").split()
    bad = next((t for t in tokens if not re.fullmatch(r"[+-]?\d{1,40}", t)), None)
    if bad is not None:
        raise SourceError(f"{path}: {what} holds non-integer text {bad[:20]!r}")
    return [int(t) for t in tokens]


def read_smtx(path: Path | str, seed: int = 0, dtype=np.float32) -> CSR:
    """DLMC format: line 1 ``rows, cols, nnz``; line 2 the M+1 row offsets; line 3 the nnz column indices.

    Bounded: line 1 is read alone and checked (sizes, int64, nnz <= M*K, the bytes its counts need against
    the file's size, the memory parsing them would take) before the rest of the file is read."""
    path = Path(path)
    with safeio.open_regular(path, "matrix file", SourceError) as f:
        size = safeio.file_size(f)
        first = f.readline(257)
        if not first.strip() and size <= len(first):
            raise SourceError(f"{path} is empty")
        if len(first) > 256 and not first.endswith(b"\n"):
            raise SourceError(f"{path}: line 1 is longer than 256 bytes; expected 'rows, cols, nnz'")
        if not first.strip():
            raise SourceError(f"{path}: line 1 is blank where the header should be")
        head = _header_ints(first, "line 1 (rows, cols, nnz)", path)
        if len(head) != 3:
            raise SourceError(f"{path}: line 1 has {len(head)} numbers; expected 3 (rows, cols, nnz)")
        m, k, nnz = head
        _check_counts(path, m, k, nnz, "line 1")
        # every offset and index takes at least one digit and one separator
        least = len(first) + 2 * (m + 1) - 1 + (2 * nnz - 1 if nnz else 0)
        if size < least:
            raise SourceError(f"{path} is truncated: line 1 claims {m} rows and {nnz} nonzeros, which need at "
                              f"least {least} bytes; the file has {size}")
        check_fits(2 * size + SMTX_BYTES_PER_TOKEN * (m + 1 + nnz) + BYTES_PER_ROW * (m + 1),
                   f"{path} ({m}x{k}, nnz {nnz})")
        rest = f.read(size - len(first) + 1)
    text = safeio.decode_text(rest, path, "matrix file", SourceError, encoding="ascii")
    lines = [first.decode("ascii").rstrip("\r\n")] + text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    blank = next((i for i, line in enumerate(lines) if not line.strip()), None)
    if blank is not None:
        what = ("the row offsets", "the column indices")[min(blank - 1, 1)] if blank else "the header"
        raise SourceError(f"{path}: line {blank + 1} is blank where {what} should be")
    expected_lines = 3 if nnz else 2
    if len(lines) < expected_lines:
        raise SourceError(f"{path} is truncated: {len(lines)} lines; expected {expected_lines}")
    if len(lines) > 3 or (len(lines) == 3 and not nnz and lines[2].strip()):
        raise SourceError(f"{path} has trailing data after line 3")
    indptr = _ints(lines[1], "line 2 (row offsets)", path)
    if indptr.size != m + 1:
        raise SourceError(f"{path}: line 2 has {indptr.size} row offsets; expected {m + 1} (rows + 1)")
    indices = _ints(lines[2], "line 3 (column indices)", path) if nnz else np.zeros(0, np.int64)
    if indices.size != nnz:
        raise SourceError(f"{path}: line 3 has {indices.size} column indices; expected nnz = {nnz}")
    if indptr[-1] != nnz:
        raise SourceError(f"{path}: row offsets end at {int(indptr[-1])}; expected nnz = {nnz}")
    it = index_dtype_for(m, k, nnz)
    if it == np.int32:
        # range-check before narrowing so a huge index cannot wrap around into range
        for name, arr in (("row offset", indptr), ("column index", indices)):
            if arr.size and (arr.max() > INT32_MAX or arr.min() < -INT32_MAX):
                bad = arr.max() if arr.max() > INT32_MAX else arr.min()
                raise SourceError(f"{path}: {name} {int(bad)} is out of range")
    try:
        return CSR((m, k), indptr.astype(it), indices.astype(it), seeded_values(nnz, seed, dtype)).validate()
    except FormatError as exc:
        raise SourceError(f"{path}: {exc}") from None


def write_smtx(a: CSR, path: Path | str) -> None:
    from spmm_study.files import atomic_write_text

    lines = [f"{a.m}, {a.k}, {a.nnz}", " ".join(map(str, a.indptr.tolist())), " ".join(map(str, a.indices.tolist()))]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


_MM_FORMATS, _MM_FIELDS = ("coordinate", "array"), ("real", "double", "integer", "pattern", "complex")
_MM_SYMMETRY = ("general", "symmetric", "skew-symmetric", "hermitian")


def mtx_header(path: Path) -> dict:
    """Banner and size line of a Matrix Market file (plain, .gz or .bz2), read alone: at most
    ``HEADER_LIMIT`` bytes (decompressed), so sizes are checked before scipy allocates anything."""
    import bz2
    import gzip
    import zlib

    with safeio.open_regular(path, "matrix file", SourceError) as raw:
        size = safeio.file_size(raw)
        magic = raw.read(3)
        raw.seek(0)
        compressed = magic[:2] == b"\x1f\x8b" or magic == b"BZh"
        f = gzip.GzipFile(fileobj=raw) if magic[:2] == b"\x1f\x8b" else bz2.BZ2File(raw) if magic == b"BZh" else raw
        try:
            used, banner, sizes, lineno = 0, None, None, 0
            while sizes is None:
                line = f.readline(HEADER_LIMIT - used + 1)
                lineno += 1
                used += len(line)
                if not line:
                    what = "the %%MatrixMarket banner" if banner is None else "the size line"
                    raise SourceError(f"{path}: not a valid Matrix Market file (ends before {what})")
                if used > HEADER_LIMIT:
                    raise SourceError(f"{path}: not a valid Matrix Market file (no size line in the first "
                                      f"{HEADER_LIMIT >> 20} MiB)")
                if banner is None:
                    text = line.decode("latin-1").strip().lower().split()
                    if len(text) != 5 or text[0] != "%%matrixmarket" or text[1] != "matrix" or \
                            text[2] not in _MM_FORMATS or text[3] not in _MM_FIELDS or text[4] not in _MM_SYMMETRY:
                        raise SourceError(f"{path}: not a valid Matrix Market file (line 1 is not the banner "
                                          "'%%MatrixMarket matrix <coordinate|array> <field> <symmetry>')")
                    banner = text
                    continue
                if line.startswith(b"%") or not line.strip():
                    continue
                sizes = _header_ints(line, f"line {lineno} (the size line)", path)
        except (OSError, EOFError, ValueError, zlib.error) as exc:  # a broken .gz / .bz2 stream
            raise SourceError(f"{path}: not a valid Matrix Market file ({type(exc).__name__}: {str(exc)[:60]})") from None
    fmt, field, symmetry = banner[2], banner[3], banner[4]
    want = 3 if fmt == "coordinate" else 2
    if len(sizes) != want:
        raise SourceError(f"{path}: the size line has {len(sizes)} numbers; a {fmt} file needs {want}")
    m, k = sizes[0], sizes[1]
    _check_counts(path, m, k, sizes[2] if fmt == "coordinate" else None, "the size line")
    if symmetry != "general" and m != k:
        raise SourceError(f"{path}: a {symmetry} matrix must be square, the size line says {m}x{k}")
    if fmt == "coordinate":
        stored = sizes[2]
    else:
        stored = m * (m + 1) // 2 if symmetry in ("symmetric", "hermitian") else \
            m * (m - 1) // 2 if symmetry == "skew-symmetric" else m * k
    return {"format": fmt, "field": field, "symmetry": symmetry, "m": m, "k": k, "stored": stored,
            "header_bytes": used, "size": size, "compressed": compressed}


def read_mtx(path: Path | str, seed: int = 0) -> CSR:
    """Matrix Market through scipy, after ``mtx_header``: sizes within int64, the entries the size line
    claims present in the file (plain files) and within memory, complex refused, all before scipy reads
    (and before scipy.io is even imported: a refusal costs no second of imports)."""
    path = Path(path)
    h = mtx_header(path)
    if h["field"] == "complex":
        raise SourceError(f"{path}: complex Matrix Market files are not supported")
    m, k, stored = h["m"], h["k"], h["stored"]
    if not h["compressed"]:
        per_entry = (4 if h["field"] == "pattern" else 6) if h["format"] == "coordinate" else 2
        least = h["header_bytes"] + per_entry * stored
        if h["size"] < least:
            raise SourceError(f"{path}: not a valid Matrix Market file (truncated: its size line claims {stored} "
                              f"entries of a {m}x{k} matrix, which need at least {least} bytes; the file has "
                              f"{h['size']})")
    entries = stored * (1 if h["symmetry"] == "general" else 2)
    need = (entries * MTX_BYTES_PER_ENTRY if h["format"] == "coordinate" else 40 * m * k) + BYTES_PER_ROW * (m + 1)
    check_fits(need, f"{path} ({m}x{k}, {stored} stored entries)")
    import scipy.io

    try:
        mat = scipy.io.mmread(str(path))
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for broken files
        msg = str(exc).strip().splitlines()
        raise SourceError(f"{path}: not a valid Matrix Market file ({msg[0][:120] if msg else type(exc).__name__})") from None
    try:
        a = CSR.from_dense(np.asarray(mat)) if isinstance(mat, np.ndarray) else CSR.from_scipy(mat)
        if h["field"] == "pattern":
            a = CSR(a.shape, a.indptr, a.indices, seeded_values(a.nnz, seed, np.float64))
        return a.validate()
    except FormatError as exc:
        raise SourceError(f"{path}: {exc}") from None


NPZ_MEMBERS = ("format", "shape", "data", "indptr", "indices", "row", "col", "offsets")


def _check_npz_members(path: Path, f) -> None:
    """Bound a .npz before numpy reads it: each member's .npy header (dtype, shape) is read alone and its
    bytes checked against the member's stored size (np.load allocates from the header, then reads), the
    total against memory. A zip's sizes are the ones zipfile enforces while decompressing, so a zip bomb
    stops at its declared size."""
    import zipfile

    from numpy.lib import format as npformat

    with zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        if len(infos) > 16:
            raise SourceError(f"{path}: a scipy.sparse npz holds at most 8 arrays; this one has {len(infos)}")
        total = 0
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with zf.open(info) as member:
                try:
                    version = npformat.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = npformat.read_array_header_1_0(member)
                    else:
                        shape, _, dtype = npformat.read_array_header_2_0(member)
                except ValueError as exc:
                    raise SourceError(f"{path}: member {name!r} is not a .npy array ({str(exc)[:60]})") from None
            if dtype.hasobject:
                raise SourceError(f"{path}: member {name!r} holds Python objects; only plain arrays are read")
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if nbytes > info.file_size:
                raise SourceError(f"{path}: member {name!r} claims shape {tuple(shape)} of {dtype} "
                                  f"({nbytes} bytes) but stores {info.file_size} bytes")
            total += info.file_size
        check_fits(3 * total, f"{path} ({total} bytes of arrays)")


def read_npz(path: Path | str) -> CSR:
    """A scipy.sparse ``save_npz`` file, read with numpy (no pickle) and validated before scipy sees it."""
    path = Path(path)
    with safeio.open_regular(path, "matrix file", SourceError) as f:
        magic = f.read(4)
        if magic[:2] != b"PK":  # np.load would take anything else for a pickle or a bare .npy and say so, confusingly
            raise SourceError(f"{path}: not a .npz file (no zip header; starts with {magic!r})")
        f.seek(0)
        try:
            _check_npz_members(path, f)
            f.seek(0)
            # our own file object: np.load leaks its handle when the zip is broken (a ResourceWarning)
            with np.load(f, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
        except SpmmError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile, pickle and format errors
            raise SourceError(f"{path}: not a readable .npz file ({type(exc).__name__}: {str(exc)[:80]})") from None
    fmt = arrays.get("format")
    fmt = fmt.item().decode() if isinstance(fmt, np.ndarray) and fmt.dtype.kind == "S" else (
        str(fmt.item()) if isinstance(fmt, np.ndarray) else None)
    if fmt is None or "shape" not in arrays or "data" not in arrays:
        raise SourceError(f"{path}: not a scipy.sparse npz (needs format, shape, data; has {', '.join(arrays)})")
    shape = arrays["shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu":
        raise SourceError(f"{path}: shape entry {shape.tolist()} is not two integers")
    m, k = (int(x) for x in shape)
    _check_counts(path, m, k, None, "its shape entry")
    data = arrays["data"]
    check_fits(BYTES_PER_ROW * (m + k + 2) + MTX_BYTES_PER_ENTRY * data.size, f"{path} ({m}x{k}, nnz {data.size})")
    try:
        if fmt == "coo":
            rows, cols = arrays.get("row"), arrays.get("col")
            if rows is None or cols is None:
                raise SourceError(f"{path}: coo npz lacks row/col arrays")
            return CSR.from_coo_arrays((m, k), rows, cols, data).validate()
        if fmt not in ("csr", "csc"):
            raise SourceError(f"{path}: sparse format {fmt!r} is not supported (csr, csc, coo)")
        indptr, indices = arrays.get("indptr"), arrays.get("indices")
        if indptr is None or indices is None:
            raise SourceError(f"{path}: {fmt} npz lacks indptr/indices arrays")
        if data.dtype.kind not in "fiub":
            raise SourceError(f"{path}: values have dtype {data.dtype}; expected real numbers")
        for name, arr in (("indptr", indptr), ("indices", indices)):
            if arr.dtype.kind not in "iu":  # astype(int64) below would truncate 1.5 to 1 silently
                raise SourceError(f"{path}: {name} has dtype {arr.dtype}; expected integers")
        data = data.astype(np.float64) if data.dtype.kind != "f" or data.dtype.itemsize not in (4, 8) else data
        outer, inner = (m, k) if fmt == "csr" else (k, m)
        it = index_dtype_for(m, k, indices.size)
        # full validation as CSR of the stored orientation (CSC is the CSR of the transpose)
        stored = CSR((outer, inner), indptr.astype(np.int64), indices.astype(np.int64), data).validate(canonicalize=True)
        if fmt == "csc":
            return CSR.from_scipy(stored.to_scipy().T)
        return CSR((m, k), stored.indptr.astype(it), stored.indices.astype(it), stored.data)
    except FormatError as exc:
        raise SourceError(f"{path}: {exc}") from None


_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bf16",
              "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8}


def read_safetensors_tensor(path: Path, tensor: str) -> np.ndarray:
    """One 2-D tensor as float32/float64. bf16 (which numpy lacks) is widened exactly to float32 by
    shifting its 16 bits into the high half of a float32; other dtypes go through safetensors' numpy API."""
    with safeio.open_regular(path, "safetensors file", SourceError) as f:
        file_bytes = safeio.file_size(f)
        try:
            head_len = int.from_bytes(f.read(8), "little")
            if head_len <= 0 or head_len > min(100 << 20, file_bytes - 8):
                raise SourceError(f"{path}: not a safetensors file (header length {head_len})")
            header = json.loads(f.read(head_len))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise SourceError(f"{path}: not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise SourceError(f"{path}: not a safetensors file (header is a JSON {type(header).__name__}, not an object)")
    names = [n for n in header if n != "__metadata__"]
    if tensor not in header or tensor == "__metadata__":
        raise SourceError(f"{path}: no tensor {tensor!r}; it has {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
    entry = header[tensor]
    if not isinstance(entry, dict):
        raise SourceError(f"{path}#{tensor}: header entry is {entry!r:.40}, not an object")
    shape, dtype, offsets = entry.get("shape", []), entry.get("dtype"), entry.get("data_offsets")

    def is_count(x):
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    # the header is untrusted: check it before numpy or the safetensors library acts on it (a negative
    # offset made the bf16 path read the header's own bytes as weights)
    if not (isinstance(shape, list) and all(is_count(d) for d in shape)):
        raise SourceError(f"{path}#{tensor} has a malformed shape {shape!r:.40}")
    data_bytes = file_bytes - 8 - head_len
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_count(o) for o in offsets)
            and offsets[0] <= offsets[1] <= data_bytes):
        raise SourceError(f"{path}#{tensor}: data offsets {offsets!r:.40} lie outside the file's {data_bytes} data bytes")
    if len(shape) != 2:
        raise SourceError(f"{path}#{tensor} has shape {shape}; SpMM needs a 2-D weight")
    if dtype not in _ST_DTYPES:
        raise SourceError(f"{path}#{tensor} has dtype {dtype}; expected a real dtype")
    start, end = offsets
    count = shape[0] * shape[1]
    itemsize = 2 if dtype == "BF16" else np.dtype(_ST_DTYPES[dtype]).itemsize
    if end - start != itemsize * count:
        raise SourceError(f"{path}#{tensor}: {end - start} data bytes for {count} {dtype} values of shape {shape}")
    _check_dense_fits(shape[0], shape[1], f"{path}#{tensor}: densifying")
    if dtype == "BF16":
        raw = np.fromfile(path, dtype="<u2", count=count, offset=8 + head_len + start)
        if raw.size != count:
            raise SourceError(f"{path}#{tensor} is truncated: {raw.size} of {count} values")
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            arr = f.get_tensor(tensor)
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"{path}#{tensor}: cannot read ({str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__})") from None
    return arr.astype(np.float64 if arr.dtype == np.float64 else np.float32)


# ---------------------------------------------------------------------------------------------- synthetic


def parse_shape(text: str) -> tuple[int, int]:
    if text in LAYER_SHAPES:
        return LAYER_SHAPES[text]
    m = re.fullmatch(r"(\d+)[xX](\d+)", text)
    if not m:
        raise SourceError(f"shape {text!r} must be MxK or one of {', '.join(LAYER_SHAPES)}")
    rows, cols = int(m.group(1)), int(m.group(2))
    if rows < 1 or cols < 1:
        raise SourceError(f"shape {text} must have at least one row and one column")
    if rows > INT32_MAX or cols > INT32_MAX:
        raise SourceError(f"shape {text} is past int32 ({INT32_MAX})")
    return rows, cols


def synthetic(kind: str, shape: tuple[int, int], sparsity: float | None = None, seed: int = 0,
              block: tuple[int, int] = (4, 4), nm: tuple[int, int] = (2, 4)) -> CSR:
    """Project-made matrices, seeded. See the module docstring for the kinds."""
    m, k = shape
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5]))
    if kind == "uniform":
        s = 0.9 if sparsity is None else sparsity
        keep = int(round((1.0 - s) * m * k))
        # estimate before allocating: Generator.choice without replacement shuffles a full arange(M·K) of
        # int64 once more than 1/50 of the cells are kept (Floyd's algorithm below that), and the triplets
        # plus their sort cost about 48 bytes per kept entry.
        need = (8 * m * k if keep > m * k // 50 else 16 * keep) + 48 * keep
        if need > 0.5 * available_memory_bytes():
            raise SourceError(f"synthetic:uniform {m}x{k} keeping {keep} entries needs about "
                              f"{need / 2**30:.1f} GiB; too large here")
        pos = rng.choice(m * k, size=keep, replace=False) if keep < m * k else np.arange(m * k)
        rows, cols = np.divmod(np.sort(pos), k)
        return CSR.from_coo_arrays((m, k), rows, cols, rng.standard_normal(keep).astype(np.float32))
    _check_dense_fits(m, k, f"synthetic:{kind} of")
    w = rng.standard_normal((m, k)).astype(np.float32)
    if kind == "magnitude":
        # Trained weights are not i.i.d.: some rows carry more energy, so magnitude pruning leaves rows of
        # unequal length. A log-normal row scale with sigma 0.065 gives row-length coefficients of variation
        # 0.17 / 0.25 / 0.35 at 80 / 90 / 95% on ffn1 (2048x512), against 0.15 / 0.25 / 0.39 in DLMC's
        # body_decoder_layer_0_ffn_conv1 (dlmc.csv). DLMC's column counts there spread no more than binomial
        # noise (CV 0.064 at 90%), so there is no column scale: the earlier sigma 0.18 on both rows and
        # columns gave row CV 0.55 at 90%, twice DLMC's.
        w *= np.exp(0.065 * rng.standard_normal((m, 1))).astype(np.float32)
        mask = magnitude_mask_dense(w, 0.9 if sparsity is None else sparsity)
    elif kind == "nm":
        if sparsity is not None and abs(sparsity - (1 - nm[0] / nm[1])) > 1e-9:
            raise SourceError(f"synthetic:nm with nm={nm[0]}:{nm[1]} has sparsity {1 - nm[0] / nm[1]:g}, not {sparsity:g}")
        mask = nm_mask_dense(w, *nm)
    elif kind == "block":
        bm, bk = block
        if m % bm or k % bk:
            raise SourceError(f"synthetic:block needs the shape {m}x{k} to be a multiple of block {bm}x{bk}")
        norms = np.sqrt((w.reshape(m // bm, bm, k // bk, bk) ** 2).sum(axis=(1, 3)))
        bmask = magnitude_mask_dense(norms, 0.9 if sparsity is None else sparsity)
        mask = np.repeat(np.repeat(bmask, bm, axis=0), bk, axis=1)
    else:
        raise SourceError(f"unknown synthetic kind {kind!r}; choose uniform, magnitude, nm or block")
    return CSR.from_dense(np.where(mask, w, np.float32(0)))


def _parse_synthetic(rest: str) -> tuple[CSR, int]:
    parts = rest.split(":")
    # "nm" takes its pattern as an option (nm=2:4), which contains a colon: glue it back
    merged: list[str] = []
    for p in parts:
        if merged and re.fullmatch(r"\d+", p) and re.fullmatch(r"nm=\d+", merged[-1]):
            merged[-1] += ":" + p
        else:
            merged.append(p)
    positional = [p for p in merged if "=" not in p]
    options = dict(p.split("=", 1) for p in merged if "=" in p)
    if len(positional) < 2 or len(positional) > 3:
        raise SourceError(f"synthetic spec {rest!r} must be KIND:SHAPE[:SPARSITY][:key=value...]")
    kind, shape_text = positional[0], positional[1]
    sparsity = parse_sparsity(positional[2]) if len(positional) == 3 else None
    unknown = set(options) - {"seed", "block", "nm"}
    if unknown:
        raise SourceError(f"unknown synthetic option {', '.join(sorted(unknown))} (known: seed, block, nm)")
    try:
        seed = int(options.get("seed", 0))
    except ValueError:
        raise SourceError(f"seed {options['seed']!r} is not an integer") from None
    check_seed(seed)
    block = parse_shape(options.get("block", "4x4"))
    nm = parse_nm(options.get("nm", "2:4"))
    return synthetic(kind, parse_shape(shape_text), sparsity, seed, block, nm), seed


# ------------------------------------------------------------------------------------------------- specs


def dlmc_root(root: str | Path | None = None) -> Path:
    root = root or os.environ.get(DLMC_ENV)
    if not root:
        raise SourceError(f"no DLMC root: {DLMC_HELP}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise SourceError(f"DLMC root {root} is not a directory: {DLMC_HELP}")
    return root


def resolve_dlmc(path: str, root: str | Path | None = None) -> Path:
    base = dlmc_root(root)
    # a spec names a file inside the collection, never outside it: dlmc:../../etc/passwd, dlmc:/etc/x
    parts = Path(path).parts
    if Path(path).is_absolute() or path.startswith("~") or ".." in parts or "\\" in path:
        raise SourceError(f"DLMC spec {path!r} must be a relative path inside the DLMC root (no '..', no "
                          "absolute or home paths)")
    p = base / path
    if p.suffix != ".smtx":
        p = p.with_name(p.name + ".smtx")
    if not p.exists():
        raise SourceError(f"no DLMC matrix {path!r} under {base}: {DLMC_HELP}")
    return p


@dataclass
class Loaded:
    a: CSR
    spec: str  # canonical spec, with the prune appended (recorded in results)
    seed: int
    conv: object = None  # a conv: spec's Geometry (spmm_study.conv), channels known; None for a matrix


def _load_conv(spec: str, prune: str | None, seed: int, dlmc_root: str | None) -> Loaded:
    """``conv:GEOMETRY:WEIGHTS``: the weights loaded as any spec (pruned as asked), the geometry checked against
    them (columns a multiple of kh·kw) and against free memory before the input is ever allocated."""
    from spmm_study import conv

    geom, weights = conv.split_spec(spec)
    inner = load(weights, prune=prune, seed=seed, dlmc_root=dlmc_root)
    g = conv.with_channels(geom, inner.a)
    conv.check_size(g, inner.a.m, inner.a.nnz, np.float32)
    return Loaded(inner.a, f"conv:{g.text()}:{inner.spec}", inner.seed, conv=g)


def load(spec: str | None = None, *, prune: str | None = None, seed: int = 0, dlmc_root: str | None = None) -> Loaded:
    """Resolve a spec to a validated CSR (float32 or float64 values as stored; the problem casts)."""
    spec = spec or DEFAULT_SPEC
    seed = check_seed(seed)
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        raise SourceError(f"unknown matrix spec {spec!r}; use one of {', '.join(s + ':' for s in SCHEMES)}")
    if not rest:
        raise SourceError(f"matrix spec {spec!r} names nothing after '{scheme}:'")
    if scheme == "conv":
        return _load_conv(spec, prune, seed, dlmc_root)
    try:
        if scheme == "dlmc":
            a = read_smtx(resolve_dlmc(rest, dlmc_root), seed=seed)
        elif scheme == "smtx":
            a = read_smtx(Path(rest), seed=seed)
        elif scheme == "mtx":
            a = read_mtx(Path(rest), seed=seed)
        elif scheme == "npz":
            a = read_npz(Path(rest))
        elif scheme == "safetensors":
            file, hash_, tensor = rest.partition("#")
            if not hash_ or not tensor:
                raise SourceError(f"safetensors spec {spec!r} must be safetensors:<file>#<tensor>")
            w = read_safetensors_tensor(Path(file), tensor)
            if not np.isfinite(w).all():
                raise SourceError(f"{file}#{tensor} holds NaN or Inf values")
            a = CSR.from_dense(w)
        else:
            a, seed = _parse_synthetic(rest)
        p = parse_prune(prune)
        if p is not None:
            a = prune_csr(a, p, seed)
            spec = f"{spec}@{p}"
    except SpmmError:
        raise
    except MemoryError:
        raise SourceError(f"{spec}: out of memory while loading") from None
    return Loaded(a, spec, seed)


def row_stats(a: CSR, bins: int = 10) -> dict:
    """Shape, nnz, sparsity and row-length statistics of a matrix (for ``data info``)."""
    lengths = a.row_lengths()
    mean = float(lengths.mean()) if lengths.size else 0.0
    std = float(lengths.std()) if lengths.size else 0.0
    hist, edges = np.histogram(lengths, bins=bins) if lengths.size else (np.zeros(0), np.zeros(1))
    return {
        "rows": a.m, "cols": a.k, "nnz": a.nnz,
        "sparsity": 1.0 - a.nnz / (a.m * a.k) if a.m * a.k else 0.0,
        "row_min": int(lengths.min()) if lengths.size else 0,
        "row_mean": mean,
        "row_max": int(lengths.max()) if lengths.size else 0,
        "row_cv": std / mean if mean else 0.0,
        "empty_rows": int((lengths == 0).sum()),
        "cols_touched": int(np.unique(a.indices).size),
        "index_dtype": str(a.indices.dtype),
        "value_dtype": str(a.dtype),
        "histogram": [{"lo": float(edges[i]), "hi": float(edges[i + 1]), "count": int(hist[i])} for i in range(len(hist))],
    }


def convert(a: CSR, out: Path | str, force: bool = False) -> Path:
    """Write ``a`` as .mtx, .npz or .smtx (pattern only), atomically, never over a file without ``force``."""
    import scipy.io
    import scipy.sparse as sp

    from spmm_study.files import atomic_save

    out = Path(out)
    if out.suffix not in (".mtx", ".npz", ".smtx"):
        raise SourceError(f"output {out} must end in .mtx, .npz or .smtx")
    if os.path.lexists(out) and not force:
        raise SourceError(f"{out} exists; pass --force to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".smtx":
        write_smtx(a, out)
        return out
    if out.suffix == ".mtx":  # the temporary keeps the suffix: mmwrite and save_npz would append one
        atomic_save(out, lambda tmp: scipy.io.mmwrite(tmp, a.to_scipy()), suffix=".mtx")
    else:
        atomic_save(out, lambda tmp: sp.save_npz(tmp, sp.csr_matrix(a.to_scipy()), compressed=True), suffix=".npz")
    return out


def stats_table(st: dict):
    """``data info``: the facts of ``row_stats`` (with ``spec``) as a two-column table."""
    from spmm_study.table import Table

    return Table(title=st["spec"], columns=["fact", "value"], header=False, rows=[
        ["shape", f"{st['rows']} x {st['cols']}"], ["nnz", f"{st['nnz']:,}"], ["sparsity", f"{st['sparsity']:.4f}"],
        ["row length min / mean / max", f"{st['row_min']} / {st['row_mean']:.1f} / {st['row_max']}"],
        ["row length CV (std/mean)", f"{st['row_cv']:.3f}"], ["empty rows", str(st["empty_rows"])],
        ["columns touched", f"{st['cols_touched']} of {st['cols']}"],
        ["dtypes", f"{st['value_dtype']} values, {st['index_dtype']} indices"]])


def histogram_lines(st: dict, width: int = 40) -> list[str]:
    """The row-length histogram of ``row_stats`` as text bars."""
    peak = max((b["count"] for b in st["histogram"]), default=0) or 1
    return [f"  {b['lo']:8.1f} – {b['hi']:8.1f} │{'█' * int(round(width * b['count'] / peak))} {b['count']}"
            for b in st["histogram"]]


def row_lengths(specs: list[str], dlmc_root: str | None = None) -> list[tuple]:
    """(canonical spec, row lengths, ``row_stats``) of each matrix spec: what a row-length histogram needs."""
    loaded = [load(spec, dlmc_root=dlmc_root) for spec in specs]
    return [(m.spec, m.a.row_lengths(), row_stats(m.a)) for m in loaded]
