"""The Sparse DNN Graph Challenge's files: weights, inputs and categories in its TSV layout, and the network.

The challenge (MIT/IEEE/Amazon, graphchallenge.mit.edu; README of the challenge's data release) defines, for l = 1..L,
``Z = Y·W_l; Y = min(max(Z + b·[Z ≠ 0], 0), 32)`` with Y_0 the input images (rows) over the neurons
(columns), b = −0.3, −0.35, −0.4, −0.45 for 1024, 4096, 16384, 65536 neurons; the answer ("categories") is the
set of 1-based images whose final row is not all zero. Files are ``row<TAB>col<TAB>value`` with 1-based
indices, plain, ``.gz`` or ``.xz``:

* weights ``neuron{N}/n{N}-l{l}.tsv`` — row = input neuron, column = output neuron (32 nonzeros per row);
* inputs ``sparse-images-{N}.tsv`` (or ``sparse-images-{N}-<anything>.tsv``, e.g. the first-1200 subset);
* categories ``neuron{N}-l{L}-categories.tsv`` — one 1-based image index per line.

Every read is bounded (``max_bytes`` of decompressed text, refused past it before parsing) and validated:
the tab layout line by line, integral 1-based indices inside the declared shape, finite values, no duplicate
entry. A bad file is one ``SourceError`` naming the file and the first bad line.

Orientation for the SpMM ladders: C = A·B with A sparse. The challenge's ``Y·W`` is computed transposed,
``Yᵀ_{l+1} = act(W_lᵀ·Yᵀ_l + b)``: A = W_lᵀ (out × in) and B = Yᵀ (neurons × inputs), N = inputs. The
reader builds W_lᵀ directly (``read_layer``).
"""

from __future__ import annotations

import gzip
import io
import lzma
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spmm_study.errors import ResourceError, SourceError
from spmm_study.formats import CSR
from spmm_study.problem import available_memory_bytes

BIAS = {1024: -0.3, 4096: -0.35, 16384: -0.4, 65536: -0.45}
YMAX = 32.0
SUFFIXES = ("", ".xz", ".gz")
LAYER_LINES_PER_NEURON = 64  # twice the challenge's 32 nonzeros per row: room for a denser layer of the same form
CHUNK = 1 << 20


def default_max_bytes() -> int:
    """Decompressed text one file may hold: an eighth of the free memory (parsing takes about five times the
    text: the text, its str copy and the float64 table), at most 8 GiB."""
    return int(min(8 << 30, 0.125 * available_memory_bytes()))


MAX_RATIO = 200  # decompressed / compressed bytes: the challenge's .xz files are 13-27x, a bomb is 1000x
RATIO_AFTER = 16 << 20  # the ratio is judged once this much text has come out


def read_bytes(path: Path | str, max_bytes: int | None = None) -> bytes:
    """The decompressed bytes of a plain, .gz or .xz file, refused once past ``max_bytes`` (never unbounded).

    Bounded by what decompression *produces*, in 1 MiB steps: a file is refused as soon as its text passes
    ``max_bytes``, or its text passes 16 MiB at more than 200 times the compressed bytes read (a decompression
    bomb: a 47 MB .gz or a 1.5 MB .xz used to be inflated to 2 GB first). A plain file's size is known before
    reading (a 100 GB sparse file is refused at once), and only regular files are opened (``safeio``: a FIFO
    named like an inputs file hung ``infer``)."""
    from spmm_study.safeio import file_size, open_regular

    path = Path(path)
    limit = default_max_bytes() if max_bytes is None else int(max_bytes)
    raw = open_regular(path, "TSV file", SourceError)
    with raw:
        size = file_size(raw)
        if path.suffix not in (".xz", ".gz") and size > limit:
            raise SourceError(f"{path} is {size / 2**20:,.0f} MiB, past the {limit / 2**20:,.0f} MiB this file may "
                              "have here; refused before reading")
        parts, total = [], 0
        try:
            f = lzma.LZMAFile(raw, "rb") if path.suffix == ".xz" else \
                gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
            with f:
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > limit:
                        raise SourceError(f"{path}: more than {limit / 2**20:,.0f} MiB of text; refused (past the "
                                          "read limit)")
                    if f is not raw and total > RATIO_AFTER and total > MAX_RATIO * max(raw.tell(), 1):
                        raise SourceError(f"{path}: {total / 2**20:,.0f} MiB of text from {raw.tell():,} bytes "
                                          f"compressed (more than {MAX_RATIO}:1): a decompression bomb, refused")
                    parts.append(chunk)
        except (lzma.LZMAError, gzip.BadGzipFile, EOFError, zlib_error()) as exc:
            raise SourceError(f"{path}: not a valid {path.suffix[1:]} file ({exc})") from None
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    return b"".join(parts)


def zlib_error():
    import zlib

    return zlib.error


def _first_bad_line(text: str, path: Path, fields: int) -> str:
    pattern = re.compile(r"^\s*[+-]?\d+" + r"\t[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?" * (fields - 1) + r"\s*$")
    if fields == 1:
        pattern = re.compile(r"^\s*[+-]?\d+\s*$")
    for no, line in enumerate(text.split("\n"), 1):
        if not pattern.match(line):
            shown = line if len(line) <= 40 else line[:40] + "..."
            layout = "row<TAB>col<TAB>value" if fields == 3 else "one integer"
            return f"{path}: line {no} is not {layout}: {shown!r}"
    return f"{path}: malformed (expected {fields} fields per line)"


def parse_table(data: bytes, path: Path, fields: int = 3) -> np.ndarray:
    """(lines × fields) float64 from tab-separated text; any malformed line is a SourceError naming it."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise SourceError(f"{path} is not a text file (non-ASCII bytes)") from None
    text = text.replace("\r\n", "\n").strip("\n")
    if not text:
        return np.zeros((0, fields))
    if any(bad in text for bad in (" ", "\r", "\t\t", "\n\n", "\t\n", "\n\t")) or text.startswith("\t"):
        raise SourceError(_first_bad_line(text, path, fields))
    try:  # numpy's C reader checks that every line has the same number of fields
        vals = np.loadtxt(io.StringIO(text), delimiter="\t", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        raise SourceError(_first_bad_line(text, path, fields)) from None
    if vals.shape[1] != fields:
        raise SourceError(_first_bad_line(text, path, fields))
    return vals


def _indices(col: np.ndarray, limit: int, what: str, path: Path) -> np.ndarray:
    bad = (col != np.floor(col)) | (col < 1) | (col > limit)
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 1
        raise SourceError(f"{path}: line {line}: {what} {col[line - 1]:g} is not an integer in 1..{limit}")
    return col.astype(np.int64) - 1


def read_triplets(path: Path | str, shape: tuple[int | None, int], max_bytes: int | None = None):
    """(rows, cols, values), 0-based, from a challenge TSV; ``shape[0]`` None: rows bounded by int32 only."""
    path = Path(path)
    table = parse_table(read_bytes(path, max_bytes), path, 3)
    m = shape[0] if shape[0] is not None else np.iinfo(np.int32).max
    rows = _indices(table[:, 0], m, "row", path)
    cols = _indices(table[:, 1], shape[1], "column", path)
    vals = table[:, 2]
    if not np.isfinite(vals).all():
        raise SourceError(f"{path}: line {int(np.flatnonzero(~np.isfinite(vals))[0]) + 1}: value is not finite")
    return rows, cols, vals


def _csr(shape, rows, cols, vals, path: Path, dtype) -> CSR:
    try:
        if rows.size > 1:  # the challenge's weight files come in CSR order of Wᵀ already: no sort needed
            step = np.diff(rows)
            if (step >= 0).all() and ((step > 0) | (np.diff(cols) > 0)).all():
                indptr = np.zeros(shape[0] + 1, dtype=np.int32)
                np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
                return CSR(shape, indptr, cols.astype(np.int32), vals.astype(dtype)).validate()
        return CSR.from_coo_arrays(shape, rows, cols, vals.astype(dtype))
    except Exception as exc:  # FormatError (duplicates) with the file named
        raise SourceError(f"{path}: {exc}") from None


def read_layer(path: Path | str, neurons: int, dtype=np.float32, max_bytes: int | None = None) -> CSR:
    """Weight layer W (in × out, ``neurons`` square) returned as Wᵀ in CSR: A of C = A·B (see module doc)."""
    path = Path(path)
    if max_bytes is None:  # 32 nonzeros per neuron, a line of at most ~64 bytes: more is not a layer file
        max_bytes = min(default_max_bytes(), LAYER_LINES_PER_NEURON * neurons * 64 + (1 << 20))
    rows, cols, vals = read_triplets(path, (neurons, neurons), max_bytes)
    return _csr((neurons, neurons), cols, rows, vals, path, dtype)


def read_inputs(path: Path | str, neurons: int, dtype=np.float32, max_bytes: int | None = None) -> CSR:
    """Input images Y_0 (images × neurons, CSR); the image count is the largest row index."""
    from spmm_study.limits import MAX_IMAGES, check_alloc

    path = Path(path)
    rows, cols, vals = read_triplets(path, (None, neurons), max_bytes)
    m = int(rows.max()) + 1 if rows.size else 0
    if m == 0:
        raise SourceError(f"{path}: no input images in the file")
    if m > MAX_IMAGES:  # an image index of 100000000 built a 3.5 GB CSR of empty rows first
        line = int(np.argmax(rows)) + 1
        raise SourceError(f"{path}: line {line}: image {m:,} is past the {MAX_IMAGES:,} images an inputs file may "
                          "index")
    check_alloc(12 * (m + 1) + 16 * rows.size, f"{path}: the CSR of {m:,} images")  # indptr, counts, entries
    return _csr((m, neurons), rows, cols, vals, path, dtype)


def read_categories(path: Path | str, max_bytes: int | None = None) -> np.ndarray:
    """Sorted 0-based image indices (the file holds 1-based ones, one per line)."""
    path = Path(path)
    table = parse_table(read_bytes(path, max_bytes), path, 1)
    cats = _indices(table[:, 0], np.iinfo(np.int32).max, "category", path)
    if np.unique(cats).size != cats.size:
        raise SourceError(f"{path}: a category is listed twice")
    return np.sort(cats)


# ----------------------------------------------------------------------------------------------- layout


def find_file(base: Path, stem: str) -> Path | None:
    for suf in SUFFIXES:
        p = base / (stem + suf)
        if p.is_file():
            return p
    return None


def layer_path(root: Path, neurons: int, layer: int) -> Path:
    """Layer ``layer`` (1-based) of the ``neurons`` network; a missing file is a SourceError naming it."""
    p = find_file(root / f"neuron{neurons}", f"n{neurons}-l{layer}.tsv")
    if p is None:
        raise SourceError(f"missing layer file {root / f'neuron{neurons}' / f'n{neurons}-l{layer}.tsv'}[.xz|.gz]")
    return p


def count_layers(root: Path, neurons: int) -> int:
    n = 0
    while find_file(root / f"neuron{neurons}", f"n{neurons}-l{n + 1}.tsv") is not None:
        n += 1
    return n


def inputs_path(root: Path, neurons: int) -> Path:
    p = find_file(root, f"sparse-images-{neurons}.tsv")
    if p is not None:
        return p
    cands = sorted(q for q in root.glob(f"sparse-images-{neurons}-*.tsv*") if q.name.endswith(tuple(
        ".tsv" + s for s in SUFFIXES)))
    if not cands:
        raise SourceError(f"no input file sparse-images-{neurons}.tsv[.xz|.gz] (or sparse-images-{neurons}-*.tsv) in {root}")
    return cands[0]


def categories_path(root: Path, neurons: int, layers: int) -> Path | None:
    return find_file(root, f"neuron{neurons}-l{layers}-categories.tsv")


def discover(root: Path | str) -> list[int]:
    """Neuron counts with at least one layer file under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"--spdnn-root {root} is not a folder")
    out = []
    for d in sorted(root.glob("neuron*")):
        m = re.fullmatch(r"neuron(\d+)", d.name)
        if d.is_dir() and m and count_layers(root, int(m.group(1))):
            out.append(int(m.group(1)))
    return out


@dataclass
class Network:
    """L sparse layers as A_l = W_lᵀ (out × in CSR), one bias value per output neuron per layer, the
    challenge's epilogue (bias where the product is nonzero, relu clamped at ``ymax``)."""

    layers: list[CSR]
    biases: list[np.ndarray]
    name: str = ""
    rule: str = "nonzero"
    act: str = "clamp"
    ymax: float = YMAX
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.layers:
            raise SourceError("a network needs at least one layer")
        for l, (a, b) in enumerate(zip(self.layers, self.biases), 1):
            if l > 1 and a.k != self.layers[l - 2].m:
                raise SourceError(f"layer {l} takes {a.k} inputs but layer {l - 1} gives {self.layers[l - 2].m}: "
                                  "the shapes do not chain")
            if np.shape(b) != (a.m,):
                raise SourceError(f"layer {l}: bias has {np.size(b)} values for {a.m} outputs")
        if len(self.biases) != len(self.layers):
            raise SourceError(f"{len(self.layers)} layers but {len(self.biases)} biases")

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def inputs_width(self) -> int:
        return self.layers[0].k

    @property
    def edges(self) -> int:
        """Σ nnz(W_l): the challenge's edges per input."""
        return int(sum(a.nnz for a in self.layers))


def estimate_bytes(neurons_in: int, widths: list[int], nnz_total: int, batch: int, itemsize: int = 4) -> int:
    """Peak host memory of ``infer``: the weights (value + int32 index per nonzero, offsets), two Y buffers
    (largest width × batch) plus the float64 truth's (sparse: bounded by the same dense size, twice), and the
    reader's text and float64 triplets of the largest file."""
    width = max([neurons_in, *widths])
    weights = nnz_total * (itemsize + 4) + sum(w + 1 for w in widths) * 4
    y = 2 * width * batch * itemsize + 2 * width * batch * 8
    reader = (max(widths) * 32 if widths else 0) * (40 + 24 + 16)
    return weights + y + reader


def check_fits(neurons_in: int, widths: list[int], nnz_total: int, batch: int, what: str, itemsize: int = 4,
               fraction: float = 0.8) -> int:
    need = estimate_bytes(neurons_in, widths, nnz_total, batch, itemsize)
    avail = available_memory_bytes()
    if need > fraction * avail:
        raise ResourceError(f"{what} with {batch} inputs needs about {need / 2**30:.1f} GiB; "
                            f"{avail / 2**30:.1f} GiB is available")
    return need


def load_network(root: Path | str, neurons: int, layers: int | None = None, dtype=np.float32,
                 max_bytes: int | None = None, batch: int = 1) -> Network:
    """The challenge network under ``root`` (first ``layers`` layers; all that are there by default)."""
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"--spdnn-root {root} is not a folder")
    if neurons not in BIAS:
        raise SourceError(f"the challenge has networks of {', '.join(map(str, BIAS))} neurons, not {neurons}")
    have = count_layers(root, neurons)
    if have == 0:
        raise SourceError(f"no layer files {root}/neuron{neurons}/n{neurons}-l1.tsv[.xz|.gz]")
    if layers is None:
        layers = have
    if layers < 1:
        raise SourceError(f"--layers {layers} must be at least 1")
    check_fits(neurons, [neurons] * layers, 32 * neurons * layers, batch,
               f"the {neurons}-neuron network of {layers} layers", np.dtype(dtype).itemsize)
    mats = [read_layer(layer_path(root, neurons, l), neurons, dtype, max_bytes) for l in range(1, layers + 1)]
    bias = np.full(neurons, BIAS[neurons], dtype=dtype)
    return Network(mats, [bias] * layers, name=f"spdnn:{neurons}x{layers}",
                   meta={"root": str(root), "neurons": neurons, "layers_in_root": have})
