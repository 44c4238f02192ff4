"""Engine ``champion`` of ``infer``: the HPEC'20 Sparse DNN Graph Challenge champion, built from the user's checkout.

The champion (Hidayetoglu et al., "At-Scale Sparse Deep Neural Network Inference With Efficient GPU
Implementation", HPEC'20) is public at github.com/merthidayetoglu/SpDNN_Challenge2020. Its repository has no
licence file, so the project holds none of its code and never downloads it: the user clones it and points
``--champion-src`` (or ``$SPMM_STUDY_CHAMPION``) at the clone or at its ``singlegpu/`` folder. This module only
drives that checkout, the way its own ``run.sh`` does: compile, write the input files, set the environment,
run, read the output.

**Build.** The four files of ``singlegpu/`` (``main.cpp``, ``kernels.cu``, ``vars.h``, ``cuda_runtime.hpp``)
are copied into a build folder of the per-user cache (``$XDG_CACHE_HOME/spmm-study/champion/``,
``$SPMM_STUDY_CHAMPION_CACHE`` moves it) and compiled there with the commands and flags of its Makefile
(``nvcc -O3 -std=c++11 -lineinfo -Xcompiler -fopenmp`` for the kernel, ``-O3 -fopenmp -std=c++11`` for the
host file, linked with ``-lgomp``), for the GPU's own architecture (``sm_XY`` read off the device: the
Makefiles of the checkout name sm_70 or sm_80 and say to change it). The folder is named by a hash of the
sources, the flags, the architecture and the compiler's path, so an edited checkout is rebuilt and an unchanged
one is not. The kernel and ``vars.h`` are compiled as they are (``OUTOFCORE`` and ``OVERLAP`` on, as shipped).

**The one change: a mechanical patch at build time, in the copy.** ``readweights()`` in ``singlegpu/main.cpp``
builds the weight file's path inside an inverted check, ``assert(sizeof(chartemp) < sprintf(chartemp, ...))``:
it holds only for paths longer than the 500-byte buffer, so it aborts for every path that fits. The ways out:

* ``-DNDEBUG`` would remove the asserts, and with them that ``sprintf`` and the ``fread`` calls that other
  asserts in the same file wrap: the program would read nothing. Refused.
* A data path longer than 500 characters would satisfy the assert by writing past the end of the buffer
  (a stack overflow, undefined behaviour). Refused.
* The authors' own ``cuSPARSE/main.cpp`` is the same file with that line commented out and a plain ``sprintf``
  after it: their fix drops the check.
* Chosen: flip the comparison, ``<`` to ``>``, in that one statement of the copy. One character; the
  ``sprintf`` still runs, and the assert now checks what it was meant to (the path fits the buffer). The patch
  is a regular expression applied to the copy, never to the user's checkout; a ``main.cpp`` without the
  inverted line is built unchanged, and one with it more than once is refused. The patched copy stays in the
  build folder for anyone to read.

**Data.** The challenge's TSV files are converted to the binary layout the checkout's own ``utils/`` converters
write and ``main.cpp`` reads, in the data folder it is given (``$DATASET``):

* ``neuron{N}.bin``: per layer, ``32·N`` int32 "rows", then ``32·N`` int32 "columns", then ``32·N`` float32
  values (1-based, native little-endian). The converter reads each TSV line ``r c v`` as ``col row val``, so
  its "row" is the TSV column (the output neuron) and its "column" the TSV row (the input neuron): the
  program's CSR rows are the rows of A = Wᵀ, exactly the project's own orientation (``spdnn``). Its reader
  assumes 32 nonzeros in every row.
* ``sparse-images-{N}.bin``: ``INPUT`` int32 "rows" (the neuron), ``INPUT`` int32 "columns" (the input), then
  the values; the batch is the official images replicated (input j is image j mod 1200), written as such.
* ``neuron{N}-l{L}-categories.tsv``: the truth of this batch (1-based, one per line), then lines ``0`` (no
  input's index) up to the batch size. The program prints no list of categories: it prints their count
  (``all categories: K``) and compares its list, in order, with the first K lines of this file
  (``CHALLENGE PASSED!`` when all are equal; it would exit before printing its times if the file had fewer
  than K lines, hence the padding). Its categories equal the truth exactly when it passes and K is the
  truth's count; that is the check made here. When they differ, only the count is known.

**Run and time.** ``NEURON``, ``LAYER``, ``BATCH``, ``INPUT``, ``BIAS`` in the environment as its ``run.sh``
sets them, with its settings ``BLOCKSIZE=256`` and ``BUFFER=24`` (KB of shared memory per block; a smaller
block for networks under 256 neurons). The time is the program's own ``INFERENCE TIME`` (host clock around the
layer loop, every layer's kernel, copies and the host-side compaction of live inputs), the edges/s the
challenge's (inputs × Σ nnz / that time); its ``KERNEL TIME`` (CUDA events around each layer's kernel, summed)
is reported beside it, and the difference as the host-side part. ``--repeats`` runs the program that many
times and keeps the median; reading the files and preprocessing (its ``I/O TIME``) are not timed. It always
drops dead inputs (that is its design), whatever ``--keep-dead`` says.

What it computes: ``Y = min(max(Y·W + b, 0), 32)`` with one bias b for every neuron of every layer, 32
nonzeros per row of Wᵀ, square layers. That is the challenge's layer when b ≤ 0 (adding b where the product
is zero leaves a zero); other networks are refused with the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spmm_study.errors import DeviceUnavailable, ParamError

REPO = "merthidayetoglu/SpDNN_Challenge2020"
ENV_SRC = "SPMM_STUDY_CHAMPION"
ENV_CACHE = "SPMM_STUDY_CHAMPION_CACHE"
SOURCES = ("main.cpp", "kernels.cu", "vars.h", "cuda_runtime.hpp")
# The Makefile's flags (singlegpu/Makefile), the architecture set per GPU; -Xptxas -v only prints.
NVCC_FLAGS = ("-lineinfo", "-O3", "-std=c++11", "-Xcompiler", "-fopenmp")
CXX_FLAGS = ("-O3", "-std=c++11", "-Xcompiler", "-fopenmp")  # g++ -O3 -fopenmp -std=c++11, through nvcc
LINK_LIBS = ("-lgomp",)
BUILD_VERSION = 1  # bump when the build recipe or the patch changes
# The inverted check of readweights(); group 1 is the sprintf. Flipping "<" to ">" is the whole patch.
INVERTED_ASSERT = re.compile(r"assert\(\s*sizeof\(chartemp\)\s*<\s*(sprintf\(chartemp,[^;]*\))\s*\)\s*;")
BLOCKSIZE, BUFFER_KB = 256, 24  # singlegpu/run.sh
DEGREE = 32  # nonzeros per row its reader assumes
RUN_TIMEOUT_S = 900.0
BUILD_TIMEOUT_S = 600.0
INT32_MAX = 2**31 - 1
PATH_LIMIT = 400  # the program's path buffer is 500 bytes; the data folder's path stays well inside it


# --------------------------------------------------------------------------------------------- the checkout


def source_dir(src: str | os.PathLike) -> Path:
    """The folder holding the single-GPU sources: ``src`` itself, or ``src/singlegpu`` for a whole clone."""
    root = Path(src).expanduser()
    for cand in (root, root / "singlegpu"):
        if all((cand / f).is_file() for f in SOURCES):
            return cand
    if not root.exists():
        raise DeviceUnavailable(f"--champion-src {root} does not exist (clone {REPO} and point at it)")
    if not root.is_dir():
        raise DeviceUnavailable(f"--champion-src {root} is not a folder (give the clone of {REPO} or its singlegpu/)")
    raise DeviceUnavailable(f"--champion-src {root} has no singlegpu/ sources ({', '.join(SOURCES)}): not a "
                            f"checkout of {REPO}")


def nvcc() -> str | None:
    from spmm_study.gpu.sputnik import nvcc as find

    return find()  # $SPMM_STUDY_NVCC, else PATH, else $CUDA_HOME/bin or /usr/local/cuda/bin


def gpu_reason() -> str | None:
    from spmm_study.gpu.device import gpu_unavailable_reason, simulator

    reason = gpu_unavailable_reason()
    if reason:
        return reason
    if simulator():
        return "the champion is CUDA C++ and needs a real GPU (not the numba CUDA simulator)"
    return None


def unavailable_reason(src) -> str | None:
    """Why the champion cannot be built and run here (checkout, nvcc, GPU, in that order), or None."""
    if not src:
        return (f"point --champion-src (or ${ENV_SRC}) at a checkout of {REPO}; its repository has no licence, "
                "so the project ships none of it (docs/champion.md)")
    try:
        source_dir(src)
    except DeviceUnavailable as exc:
        return str(exc)
    if nvcc() is None:
        return "nvcc not found (PATH, $SPMM_STUDY_NVCC, $CUDA_HOME/bin): the champion is CUDA C++ and is compiled here"
    return gpu_reason()


def gpu_arch() -> str:
    """The compute capability of the GPU the program will run on, as '90' for sm_90."""
    from numba import cuda

    major, minor = cuda.get_current_device().compute_capability
    return f"{major}{minor}"


# --------------------------------------------------------------------------------------------- build


def patch_main(text: str) -> tuple[str, str]:
    """(main.cpp to compile, what was done): the inverted assert of readweights() flipped (see module doc)."""
    hits = INVERTED_ASSERT.findall(text)
    if len(hits) > 1:
        raise DeviceUnavailable(f"main.cpp has the inverted path assert {len(hits)} times; expected once: "
                                "not the single-GPU main.cpp this build knows")
    if not hits:
        return text, "none (main.cpp has no inverted path assert)"
    fixed = INVERTED_ASSERT.sub(lambda m: f"assert(sizeof(chartemp) > {m.group(1)});", text)
    return fixed, "readweights(): assert(sizeof(chartemp) < sprintf(...)) flipped to '>'"


def cache_dir() -> Path:
    from spmm_study.files import cache_path

    return cache_path(ENV_CACHE, "champion")


def build_key(sdir: Path, cc: str, compiler: str) -> str:
    h = hashlib.sha256()
    h.update(f"v{BUILD_VERSION} sm_{cc} {compiler} {NVCC_FLAGS} {CXX_FLAGS} {LINK_LIBS} "
             f"{INVERTED_ASSERT.pattern}\n".encode())
    for name in SOURCES:
        h.update(name.encode() + b"\0" + (sdir / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _compile(cmd: list[str], cwd: Path, what: str, timeout_s: float) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DeviceUnavailable(f"building the champion ({what}) took longer than {timeout_s:.0f} s") from None
    except OSError as exc:
        raise DeviceUnavailable(f"building the champion ({what}): cannot start {cmd[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errs = [ln for ln in lines if "error" in ln.lower()]
        shown = (errs or lines or ["no output"])[0].strip()
        raise DeviceUnavailable(f"building the champion ({what}) failed (exit {proc.returncode}): {shown[:200]}")


def build(src, cc: str, timeout_s: float = BUILD_TIMEOUT_S) -> Path:
    """The program built from the checkout for sm_``cc`` (from the cache when it is there); its path."""
    if not re.fullmatch(r"\d{2,3}", str(cc)):
        raise ParamError(f"compute capability {cc!r}: expected digits such as 90")
    sdir = source_dir(src)
    compiler = nvcc()
    if compiler is None:
        raise DeviceUnavailable("nvcc not found (PATH, $SPMM_STUDY_NVCC, $CUDA_HOME/bin) to build the champion")
    cache = cache_dir()
    final = cache / f"singlegpu-sm{cc}-{build_key(sdir, cc, compiler)}"
    if (final / "inference").is_file():
        return final / "inference"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    except OSError as exc:
        raise DeviceUnavailable(f"cannot write the champion's build folder under {cache}: {exc.strerror}") from None
    try:
        for name in SOURCES:
            shutil.copyfile(sdir / name, work / name)
        text, patch = patch_main((sdir / "main.cpp").read_text(encoding="utf-8", errors="surrogateescape"))
        (work / "main.cpp").write_text(text, encoding="utf-8", errors="surrogateescape")  # own mkdtemp folder
        (work / "PATCH.txt").write_text(f"built from {sdir} for sm_{cc} by spmm-study (nets/champion.py)\n"  # own mkdtemp folder
                                        f"patch: {patch}\n", encoding="utf-8")
        arch = f"-gencode=arch=compute_{cc},code=sm_{cc}"
        _compile([compiler, *NVCC_FLAGS, arch, "-c", "kernels.cu", "-o", "kernels.o"], work, "kernels.cu", timeout_s)
        _compile([compiler, *CXX_FLAGS, "-c", "main.cpp", "-o", "main.o"], work, "main.cpp", timeout_s)
        _compile([compiler, arch, "-o", "inference", "main.o", "kernels.o", *LINK_LIBS], work, "link", timeout_s)
        try:
            os.rename(work, final)
        except OSError:  # another process built the same key meanwhile: keep theirs
            if not (final / "inference").is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return final / "inference"


# --------------------------------------------------------------------------------------------- data


def check_network(net, batch: int) -> int:
    """The layer width N when the champion computes ``net`` as the challenge's layer, else a ParamError."""
    n = net.inputs_width
    for l, a in enumerate(net.layers, 1):
        if a.shape != (n, n):
            raise ParamError(f"engine champion runs square layers of one width; layer {l} is {a.m}x{a.k}, "
                             f"the inputs have {n} neurons")
        if not np.all(np.diff(a.indptr) == DEGREE):
            raise ParamError(f"engine champion reads exactly {DEGREE} nonzeros per row of each layer (W-transposed);"
                             f" layer {l} has rows of {int(np.diff(a.indptr).min())}..{int(np.diff(a.indptr).max())}")
    if n % 32 or n > 65536:
        raise ParamError(f"engine champion needs a multiple of 32 neurons, at most 65536 (16-bit indices); got {n}")
    values = np.unique(np.concatenate([np.asarray(b, dtype=np.float64) for b in net.biases]))
    if values.size != 1:
        raise ParamError("engine champion takes one bias for every neuron of every layer; this network has "
                         f"{values.size} different values")
    b = float(values[0])
    if net.act != "clamp" or net.ymax != 32.0 or (b > 0 and net.rule != "row") or (b != 0 and net.rule == "zero"):
        raise ParamError(f"engine champion computes min(max(Z + b, 0), 32) with b <= 0 (the challenge's layer); "
                         f"this network has act={net.act}, ymax={net.ymax:g}, rule={net.rule}, bias {b:g}")
    if batch * n > INT32_MAX:
        raise ParamError(f"engine champion indexes features with 32-bit ints: inputs x neurons = {batch} x {n} "
                         f"is past 2^31")
    return n


def block_size(n: int) -> int:
    """Its run.sh's BLOCKSIZE (256), or the largest of 128, 64, 32 dividing a smaller network's width."""
    return next(s for s in (BLOCKSIZE, 128, 64, 32) if n % s == 0)


def write_dataset(folder: Path, net, y0, src: np.ndarray, truth: np.ndarray) -> int:
    """The three files the program reads from ``$DATASET`` (module doc); returns INPUT, the input nonzeros."""
    n = net.inputs_width
    with open(folder / f"neuron{n}.bin", "wb") as f:  # own mkdtemp folder
        for a in net.layers:  # per layer: rows, columns, values, 1-based; row = output neuron (row of A = W^T)
            rows = np.repeat(np.arange(1, a.m + 1, dtype="<i4"), np.diff(a.indptr))
            rows.tofile(f)
            (np.asarray(a.indices, dtype=np.int64) + 1).astype("<i4").tofile(f)
            np.asarray(a.data, dtype="<f4").tofile(f)
    sp = y0.to_scipy().tocsr()[src].tocoo()  # batch x neurons: input j is image src[j]
    order = np.lexsort((sp.col, sp.row))
    nnz = int(sp.nnz)
    if nnz > INT32_MAX:
        raise ParamError(f"engine champion counts input nonzeros in an int: {nnz} is past 2^31")
    with open(folder / f"sparse-images-{n}.bin", "wb") as f:  # own mkdtemp folder
        (sp.col[order].astype(np.int64) + 1).astype("<i4").tofile(f)  # "row": the neuron
        (sp.row[order].astype(np.int64) + 1).astype("<i4").tofile(f)  # "column": the input
        sp.data[order].astype("<f4").tofile(f)
    # the truth, then "0" (no input's index) up to the batch size: its in-order comparison always reads to the
    # end of its own list, so a run that finds more categories than the truth fails the check instead of
    # stopping at the end of the file (main.cpp exits there, before printing its times)
    cats = "".join(f"{int(c) + 1}\n" for c in np.sort(truth)) + "0\n" * (int(src.size) - int(truth.size))
    (folder / f"neuron{n}-l{net.depth}-categories.tsv").write_text(cats, encoding="ascii")  # own mkdtemp folder
    return nnz


# --------------------------------------------------------------------------------------------- output


@dataclass
class Output:
    inference_s: float
    kernel_s: float
    categories: int  # the count it printed
    passed: bool  # its own comparison with the categories file
    io_s: float = float("nan")
    gpu: str = ""


_FLOAT = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"


def parse_output(text: str) -> Output:
    """The numbers the program prints (main.cpp's printf formats); a missing one is a DeviceUnavailable."""
    def find(label: str, pattern: str, required: bool = True):
        m = re.search(pattern, text, flags=re.MULTILINE)
        if m is None:
            if required:
                raise DeviceUnavailable(f"the champion's output has no {label} line (did it finish?)")
            return None
        return m.group(1)

    inference = float(find("INFERENCE TIME", rf"^\s*INFERENCE TIME:\s*{_FLOAT} s"))
    kernel = float(find("KERNEL TIME", rf"^\s*KERNEL TIME:\s*{_FLOAT} s"))
    count = int(find("all categories", r"^all categories:\s*(\d+)\s*$"))
    io = find("I/O TIME", rf"^\s*I/O TIME:\s*{_FLOAT} s", required=False)
    gpu = find("device name", r"^Device 0 name:\s*(.+?)\s*$", required=False)
    if not (np.isfinite(inference) and inference > 0 and np.isfinite(kernel) and kernel >= 0):
        raise DeviceUnavailable(f"the champion printed INFERENCE TIME {inference} s, KERNEL TIME {kernel} s")
    return Output(inference, kernel, count, re.search(r"^CHALLENGE PASSED!\s*$", text, re.MULTILINE) is not None,
                  float(io) if io is not None else float("nan"), gpu or "")


def run_binary(binary: Path, dataset: Path, n: int, layers: int, batch: int, inputs: int, bias: float,
               timeout_s: float = RUN_TIMEOUT_S) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one run of the program on the data folder."""
    env = dict(os.environ, DATASET=str(dataset), NEURON=str(n), LAYER=str(layers), BATCH=str(batch),
               INPUT=str(inputs), BIAS=f"{bias:.9g}", BLOCKSIZE=str(block_size(n)), BUFFER=str(BUFFER_KB))
    try:
        proc = subprocess.run([str(binary)], cwd=dataset, env=env, capture_output=True, text=True,
                              errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DeviceUnavailable(f"the champion ran longer than {timeout_s:.0f} s; stopped") from None
    except OSError as exc:
        raise DeviceUnavailable(f"cannot start the champion's program {binary}: {exc.strerror}") from None
    return proc.returncode, proc.stdout, proc.stderr


def _one_run(binary, dataset, n, net, batch, inputs, bias) -> Output:
    code, stdout, stderr = run_binary(binary, dataset, n, net.depth, batch, inputs, bias)
    if code != 0:
        lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
        shown = lines[-1][:200] if lines else "no output"
        raise DeviceUnavailable(f"the champion's program exited with status {code}: {shown}")
    return parse_output(stdout)


# --------------------------------------------------------------------------------------------- the engine


def run_engine(setup, repeats: int, src) -> dict:
    """The champion on ``setup``'s batch, ``repeats`` times: one summary row of ``infer`` (see infer.run_engines)."""
    reason = unavailable_reason(src)
    if reason:
        raise DeviceUnavailable(f"engine champion is unavailable: {reason}")
    if setup.truth is None:
        raise ParamError("engine champion checks its categories against a truth; this network has none")
    net, batch = setup.net, int(setup.src.size)
    n = check_network(net, batch)
    bias = float(np.asarray(net.biases[0]).flat[0])
    t0 = time.perf_counter()
    binary = build(src, gpu_arch())
    t_build = time.perf_counter() - t0
    base = Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="spmm-study-champion-", dir=base))
    try:
        if len(str(folder)) > PATH_LIMIT:
            raise DeviceUnavailable(f"the data folder's path {str(folder)[:40]}... is over {PATH_LIMIT} characters; "
                                    "the champion's path buffer is 500 bytes: set TMPDIR to a shorter folder")
        t1 = time.perf_counter()
        inputs = write_dataset(folder, net, setup.y0, setup.src, setup.truth)
        t_write = time.perf_counter() - t1
        outs = [_one_run(binary, folder, n, net, batch, inputs, bias) for _ in range(repeats)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ok = all(o.passed and o.categories == setup.truth.size for o in outs)
    counts = {o.categories for o in outs}
    return _row(setup, binary, outs, counts.pop() if len(counts) == 1 else -1, ok, t_build, t_write)


def _row(setup, binary: Path, outs: list[Output], count: int, ok: bool, t_build: float, t_write: float) -> dict:
    net, batch = setup.net, int(setup.src.size)
    times = [o.inference_s for o in outs]
    med = statistics.median(times) if times else float("nan")
    kernel = statistics.median(o.kernel_s for o in outs) if outs else float("nan")
    edges = net.edges
    info = {"kernel_s": kernel, "host_s": med - kernel, "kernel_s_all": [o.kernel_s for o in outs],
            "kernel_edges_per_s": batch * edges / kernel if kernel > 0 else float("nan"),
            "io_s": statistics.median(o.io_s for o in outs) if outs else float("nan"),
            "gpu": outs[0].gpu if outs else "", "binary": str(binary), "build_s": t_build, "write_s": t_write,
            "patch": (binary.parent / "PATCH.txt").read_text(encoding="utf-8").splitlines()[-1]
            if (binary.parent / "PATCH.txt").is_file() else "",
            "blocksize": block_size(net.inputs_width), "buffer_kb": BUFFER_KB, "prune_dead": True}
    return {"engine": "champion", "device": "gpu", "time_s": med, "times_s": times, "bytes_model": float("nan"),
            "edges_per_s": batch * edges / med if med > 0 else float("nan"), "live_edges_per_s": float("nan"),
            "edges": edges, "batch": batch, "setup_s": t_build + t_write,
            "categories": (np.sort(setup.truth) + 1).tolist() if ok else [], "category_count": count,
            "match": bool(ok), "info": info, "layers": []}


def summary_line(row: dict) -> str:
    """The line under infer's table: its time split into kernels and host side, and the checks behind 'match'."""
    from spmm_study.table import fmt_time

    i = row["info"]
    verdict = ("its categories equal the truth (its own in-order comparison passed, same count)" if row["match"]
               else f"its categories DIFFER from the truth ({row['category_count']} found)")
    return (f"  champion ({i['gpu'] or 'GPU'}): inference {fmt_time(row['time_s'])} = {row['edges_per_s'] / 1e12:.3g} "
            f"TeraEdges/s; its kernels {fmt_time(i['kernel_s'])} = {i['kernel_edges_per_s'] / 1e12:.3g} TeraEdges/s; "
            f"host side and copies {fmt_time(i['host_s'])}; {verdict}")
