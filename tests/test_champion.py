"""Engine ``champion`` of ``infer`` (nets/champion.py), CPU side: the conversion to the program's binary layout,
the parser of its output, the build-time patch, the refusals through the CLI, and the whole engine through the
CLI with a stand-in program (a script that reads the files as main.cpp does and prints as it prints). The real
program is compiled where nvcc is on PATH (and its checkout given in $SPMM_STUDY_CHAMPION); it runs only on a
GPU (experiments/device/champion.sh)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from spmm_study.errors import DeviceUnavailable, ParamError
from spmm_study.nets import champion, spdnn
from test_cli import cli, fails
from test_nets import write

USER_CHECKOUT = os.environ.get(champion.ENV_SRC)  # read before the fixture below clears it
INVERTED = 'assert(sizeof(chartemp) < sprintf(chartemp,"%s/neuron%d.bin",dataset,neuron));'


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv(champion.ENV_SRC, raising=False)
    monkeypatch.setenv(champion.ENV_CACHE, str(tmp_path / "cache"))


def fake_checkout(root: Path) -> Path:
    sg = root / "singlegpu"
    sg.mkdir(parents=True)
    for name in champion.SOURCES:
        (sg / name).write_text("// stand-in\n")
    return sg


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# ------------------------------------------------------------------------------------------- the conversion


def test_dataset_bytes_are_what_its_converters_write(tmp_path):
    """Layers: each TSV line 'r c v' read as col row val, so the 'row' block is the TSV column. Written here
    in CSR order of W-transposed (lines sorted by column, then row), the bytes are the converter's exactly."""
    lines1 = [(2, 1, 0.5), (1, 2, 2.0), (3, 2, 1.0), (1, 3, 0.25)]  # (TSV row, TSV col, value), sorted by col
    lines2 = [(3, 1, 4.0), (2, 3, 8.0)]
    p1 = write(tmp_path / "l1.tsv", "".join(f"{r}\t{c}\t{v}\n" for r, c, v in lines1))
    p2 = write(tmp_path / "l2.tsv", "".join(f"{r}\t{c}\t{v}\n" for r, c, v in lines2))
    net = spdnn.Network([spdnn.read_layer(p1, 3), spdnn.read_layer(p2, 3)], [np.full(3, -0.3, np.float32)] * 2)
    images = [(1, 1, 1.0), (1, 3, 1.0), (2, 2, 1.0)]  # (image, neuron, value)
    y0 = spdnn.read_inputs(write(tmp_path / "im.tsv", "".join(f"{i}\t{n}\t{v}\n" for i, n, v in images)), 3)
    src = np.array([0, 1, 0, 1, 0])  # the 2 images replicated to 5 inputs
    truth = np.array([4, 0, 2])
    out = tmp_path / "data"
    out.mkdir()
    assert champion.write_dataset(out, net, y0, src, truth) == 8

    def converted(lines):
        cols, rows, vals = ([x[k] for x in lines] for k in (1, 0, 2))  # col row val: the TSV column first
        return np.array(cols, "<i4").tobytes() + np.array(rows, "<i4").tobytes() + np.array(vals, "<f4").tobytes()

    assert (out / "neuron3.bin").read_bytes() == converted(lines1) + converted(lines2)
    # the images' TSV lines are (image, neuron, value); replicated, input j + 1 holds image src[j]'s lines
    rep = [(j + 1, n, v) for j, s in enumerate(src) for i, n, v in images if i == s + 1]
    assert (out / "sparse-images-3.bin").read_bytes() == converted(rep)
    # the truth (1-based, sorted), then "0" lines up to the batch size
    assert (out / "neuron3-l2-categories.tsv").read_text() == "1\n3\n5\n0\n0\n"


def test_network_checks_refuse_what_it_cannot_compute():
    from spmm_study.nets import generate

    net = generate.network(64, 2)
    assert champion.check_network(net, 100) == 64
    assert champion.block_size(64) == 64 and champion.block_size(1024) == 256
    bad = generate.network(64, 2)
    bad.biases = [np.full(64, 0.5, np.float32)] * 2
    with pytest.raises(ParamError, match="b <= 0"):
        champion.check_network(bad, 10)
    bad.biases = [np.full(64, -0.3, np.float32), np.full(64, -0.2, np.float32)]
    with pytest.raises(ParamError, match="one bias"):
        champion.check_network(bad, 10)
    with pytest.raises(ParamError, match="2\\^31"):
        champion.check_network(net, 2**26)
    thin = spdnn.Network([net.layers[0].__class__.from_dense(np.eye(64, dtype=np.float32))],
                         [np.full(64, -0.3, np.float32)])
    with pytest.raises(ParamError, match="32 nonzeros per row"):
        champion.check_network(thin, 10)


# ------------------------------------------------------------------------------------------- its output

# What singlegpu/main.cpp and kernels.cu print (their printf formats), for 60000 inputs on one H100.
CAPTURED = """
NUMBER OF PROCESS: 1
NUMBER OF THREADS: 16

DATASET: /tmp/spmm-study-champion-x1y2z3
NUMBER OF NEURONS: 1024
NUMBER OF LAYERS: 120
BATCH SIZE: 60000
INPUT NZ: 6135650
BIAS: -0.300000

PARTITIONING
proc 0 batch: 60000/60000 extbatch 60000

READING WEIGHTS
weights: 3932160 (0.023593 GB)
open /tmp/spmm-study-champion-x1y2z3/neuron1024.binREADING INPUT
features: 122880000 (0.491520 GB)
myid 0 mydevice 0

Device Count: 1
Device 0 name: NVIDIA H100 80GB HBM3
Computational Capabilities: 9, 0
Maximum global memory size: 85028896768
Maximum constant memory size: 65536
Maximum shared memory size per block: 49152
Maximum block dimensions: 1024x1024x64
Maximum grid dimensions: 2147483647x65535x65535
Maximum threads per block: 1024
Warp size: 32

MINIBATCH SIZE: 12
BLOCK SIZE: 256
WARP SIZE: 32
NUM BLOCKS: 4
NUMWARPS: 8
BUFFER SIZE: 6144 (24.000000 KB) PER FEATURE: 512 (2.000000 KB)

total buffers: 960 (2.000000 per block)
total map: 491520 (1024.000000 per block)
total warpnz: 39421 (41.063541 per buffer)
iefficiency: 0.320821

OUT OF CORE IS ENABLED
OVERLAPPING IS ENABLED

mapsizemax: 4096 (0.008192 KB)
weightsizemax: 2048 (0.008192 KB)

GPU 0: OTHERS: 0.000480 DISPLS: 0.000032 MAPS: 0.000016 WEIGHTS: 0.000033 FEATURES: 0.491520 TOTAL: 0.491601 GB
MAX GPU MEM: 0.491601 GB

START INFERENCE
END INFERENCE

CHECK CATEGORIES
proc 0 categories: 950
all categories: 950
CHALLENGE PASSED!

      I/O TIME: 1.734211 s
INFERENCE TIME: 0.008153 s
INFERENCE THRP: 2.893757e+13 EDGES/s (57.875147 TFLOPS)
--------------------------------------
KERNEL TIME: 5.312000e-03 s
  COPY TIME: 0.000000e+00 s
 OTHER TIME: 2.841000e-03 s
 TOTAL TIME: 8.153000e-03 s

EXECUTION TIME: 3.912345
"""


def test_parser_reads_its_times_count_and_verdict():
    o = champion.parse_output(CAPTURED)
    assert o.inference_s == pytest.approx(0.008153) and o.kernel_s == pytest.approx(5.312e-3)
    assert o.io_s == pytest.approx(1.734211)
    assert o.categories == 950 and o.passed and o.gpu == "NVIDIA H100 80GB HBM3"
    failed = champion.parse_output(CAPTURED.replace("CHALLENGE PASSED!\n", ""))
    assert not failed.passed and failed.categories == 950


@pytest.mark.parametrize("cut, what", [("INFERENCE TIME:", "INFERENCE TIME"), ("KERNEL TIME:", "KERNEL TIME"),
                                       ("all categories:", "all categories")])
def test_parser_refuses_output_without_a_number(cut, what):
    text = "\n".join(ln for ln in CAPTURED.splitlines() if cut not in ln)
    with pytest.raises(DeviceUnavailable, match=what):
        champion.parse_output(text)
    with pytest.raises(DeviceUnavailable, match="INFERENCE TIME 0.0"):
        champion.parse_output(CAPTURED.replace("INFERENCE TIME: 0.008153", "INFERENCE TIME: 0.000000"))


# ------------------------------------------------------------------------------------------- the patch


def test_patch_flips_the_inverted_assert_only():
    text = f"void readweights(){{\n  char chartemp[500];\n  {INVERTED}\n  printf(\"open %s\", chartemp);\n}}\n"
    fixed, what = champion.patch_main(text)
    assert INVERTED.replace("<", ">") in fixed and INVERTED not in fixed
    assert fixed.replace(INVERTED.replace("<", ">"), INVERTED) == text  # nothing else changed
    assert "flipped" in what
    assert champion.patch_main("int main(){}\n") == ("int main(){}\n", "none (main.cpp has no inverted path assert)")
    with pytest.raises(DeviceUnavailable, match="2 times"):
        champion.patch_main(text + text)


def test_build_refusals_are_one_line(tmp_path, monkeypatch):
    fake_checkout(tmp_path / "clone")
    monkeypatch.setenv("SPMM_STUDY_NVCC", str(executable(tmp_path / "nvcc", "#!/bin/sh\necho 'x.cu(3): error: no'\n"
                                                                            "exit 1\n")))
    with pytest.raises(ParamError, match="compute capability"):
        champion.build(tmp_path / "clone", "9x")
    with pytest.raises(DeviceUnavailable, match=r"\(kernels.cu\) failed \(exit 1\): x.cu\(3\): error: no"):
        champion.build(tmp_path / "clone", "90")
    assert not any((tmp_path / "cache").iterdir())  # a failed build leaves no folder behind
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(champion.ENV_CACHE, str(tmp_path / "file"))
    with pytest.raises(DeviceUnavailable, match="cannot write the champion's build folder"):
        champion.build(tmp_path / "clone", "90")


STAND_IN_MAIN = """
#include "vars.h"
#include <cassert>
#include <cstdio>
#include <cstdlib>
int main(){
  char *dataset = getenv("DATASET");
  int neuron = 1024;
  char chartemp[500];
  %s
  printf("open %%s\\n", chartemp);
  return kernel_count();
}
"""


def test_build_recipe_and_patch_with_nvcc(tmp_path):
    """Stand-in sources (not the champion's) through the real build: copy, patch, nvcc, cache. The stand-in
    main.cpp holds the inverted assert: unpatched it would abort; built here, it prints the path."""
    if champion.nvcc() is None:
        pytest.skip("nvcc is not here")
    sg = tmp_path / "checkout" / "singlegpu"
    sg.mkdir(parents=True)
    (sg / "main.cpp").write_text(STAND_IN_MAIN % INVERTED)
    (sg / "vars.h").write_text("int kernel_count();\n")
    (sg / "cuda_runtime.hpp").write_text("#pragma once\n")
    (sg / "kernels.cu").write_text('#include "vars.h"\n__global__ void k(float *x){ x[0] = 1; }\n'
                                   "int kernel_count(){ return 0; }\n")
    before = {p.name: p.read_bytes() for p in sg.iterdir()}
    binary = champion.build(tmp_path / "checkout", "90")
    assert {p.name: p.read_bytes() for p in sg.iterdir()} == before  # the checkout is never edited
    assert binary.parent.parent == tmp_path / "cache" and "sm90" in binary.parent.name
    assert INVERTED.replace("<", ">") in (binary.parent / "main.cpp").read_text()
    import subprocess

    run = subprocess.run([str(binary)], env=dict(os.environ, DATASET="/data"), capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "open /data/neuron1024.bin\n", run.stderr
    assert champion.build(tmp_path / "checkout", "90") == binary  # cached: same key, no rebuild
    (sg / "kernels.cu").write_text((sg / "kernels.cu").read_text() + "// edited\n")
    assert champion.build(tmp_path / "checkout", "90") != binary  # an edited checkout is rebuilt


def test_real_checkout_compiles_where_given():
    """The champion's own singlegpu/ compiled for sm_90 (no run), where nvcc is here and $SPMM_STUDY_CHAMPION
    names a checkout."""
    if not USER_CHECKOUT or champion.nvcc() is None:
        pytest.skip("set SPMM_STUDY_CHAMPION to a checkout of the champion (and have nvcc) to compile it")
    binary = champion.build(USER_CHECKOUT, "90")
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert "flipped" in (binary.parent / "PATCH.txt").read_text()


# ------------------------------------------------------------------------------------------- refusals


def test_refusals_through_the_cli(capsys, tmp_path, monkeypatch):
    base = ["infer", "--no-save", "--net", "generated:64x2", "--batch", "8", "-e", "champion"]
    fails(capsys, *base, match="champion is unavailable: point --champion-src")
    fails(capsys, *base, "--champion-src", tmp_path / "nothing", match="does not exist")
    (tmp_path / "file").write_text("x")
    fails(capsys, *base, "--champion-src", tmp_path / "file", match="not a folder")
    fails(capsys, *base, "--champion-src", tmp_path, match="no singlegpu/ sources")
    fake_checkout(tmp_path / "clone")
    monkeypatch.setenv("SPMM_STUDY_NVCC", str(tmp_path / "no-nvcc"))
    fails(capsys, *base, "--champion-src", tmp_path / "clone", match="nvcc not found")
    monkeypatch.setenv(champion.ENV_SRC, str(tmp_path / "clone" / "singlegpu"))  # the env var, and singlegpu/ itself
    fails(capsys, *base, match="nvcc not found")
    monkeypatch.setenv("SPMM_STUDY_NVCC", str(executable(tmp_path / "nvcc", "#!/bin/sh\nexit 1\n")))
    if champion.gpu_reason() is None:
        pytest.skip("this machine has a GPU: the no-GPU refusal cannot be shown here")
    fails(capsys, *base, match="CUDA device|real GPU|numba-cuda")
    # with other engines: the champion is one warning line and skipped, the others run (the one rule)
    code, out, err = cli(capsys, *base, "-e", "scipy")
    assert code == 0 and err.startswith("warning: engine champion is unavailable") and len(err.splitlines()) == 1
    assert "scipy" in out


# ------------------------------------------------------------------------------------------- the engine

# A stand-in for the program: reads $DATASET's files as main.cpp reads them (rows = the CSR rows, image
# columns = the inputs), runs the layers with its epilogue (bias on every entry, clamp to [0, 32]), drops
# dead inputs, compares with the categories file in order, and prints main.cpp's lines.
STAND_IN = '''#!{python}
import os, sys
import numpy as np
import scipy.sparse as sp
e = os.environ
d, n, layers, batch = e["DATASET"], int(e["NEURON"]), int(e["LAYER"]), int(e["BATCH"])
nin, bias = int(e["INPUT"]), float(e["BIAS"])
assert int(e["BLOCKSIZE"]) > 0 and int(e["BUFFER"]) == 24
if e.get("FAKE_CRASH"):
    print("CUDA Runtime Error 2: out of memory", file=sys.stderr)
    sys.exit(1)
raw = open(f"{{d}}/neuron{{n}}.bin", "rb").read()
nz = 32 * n
y = np.zeros((n, batch))
img = np.frombuffer(open(f"{{d}}/sparse-images-{{n}}.bin", "rb").read(), "<i4")
assert img.size == 3 * nin
row, col, val = img[:nin], img[nin:2 * nin], img[2 * nin:].view("<f4")
keep = col - 1 < batch
y[row[keep] - 1, col[keep] - 1] = val[keep]
live = np.arange(batch)
for l in range(layers):
    blk = np.frombuffer(raw, "<i4", count=3 * nz, offset=12 * nz * l)
    a = sp.csr_matrix((blk[2 * nz:].view("<f4"), (blk[:nz] - 1, blk[nz:2 * nz] - 1)), shape=(n, n))
    y = np.clip(a @ y + bias, 0, 32)
    alive = (y != 0).any(axis=0)
    y, live = y[:, alive], live[alive]
cats = list(live)
if e.get("FAKE_DROP"):
    cats = cats[:-1]
print("all categories: %d" % len(cats))
want = [int(x) for x in open(f"{{d}}/neuron{{n}}-l{{layers}}-categories.tsv").read().split()]
if all(w - 1 == c for w, c in zip(want, cats)):
    print("CHALLENGE PASSED!")
print("Device 0 name: Stand-in GPU")
print("      I/O TIME: 0.010000 s")
print("INFERENCE TIME: %f s" % 0.002)
print("KERNEL TIME: %e s" % 0.0015)
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """The engine wired to the stand-in program: a GPU, an architecture and a built program faked, nothing else."""
    sg = fake_checkout(tmp_path / "clone")
    monkeypatch.setenv("SPMM_STUDY_NVCC", str(executable(tmp_path / "nvcc", "#!/bin/sh\nexit 1\n")))
    program = executable(tmp_path / "inference", STAND_IN.format(python=sys.executable))
    monkeypatch.setattr(champion, "gpu_reason", lambda: None)
    monkeypatch.setattr(champion, "gpu_arch", lambda: "90")
    monkeypatch.setattr(champion, "build", lambda src, cc: program)
    return sg


def test_engine_through_the_cli_with_a_stand_in(capsys, tmp_path, stand_in, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out_dir = tmp_path / "run"
    code, out, err = cli(capsys, "infer", "--net", "generated:64x4", "--batch", "50", "-e", "champion", "-e", "scipy",
                         "--champion-src", stand_in, "--repeats", "2", "--out", out_dir)
    assert code == 0, err
    assert out.count("match") >= 2 and "DIFFER" not in out
    assert "champion (Stand-in GPU): inference 2 ms" in out and "its kernels 1.5 ms" in out
    assert "host side and copies 500 µs" in out
    import json

    summary = json.loads((out_dir / "summary.json").read_text())
    row = next(r for r in summary["engines"] if r["engine"] == "champion")
    scipy_row = next(r for r in summary["engines"] if r["engine"] == "scipy")
    assert row["match"] and row["categories"] == scipy_row["categories"] and row["category_count"] > 0
    assert row["time_s"] == pytest.approx(0.002) and row["info"]["kernel_s"] == pytest.approx(0.0015)
    assert row["edges_per_s"] == pytest.approx(50 * 4 * 64 * 32 / 0.002)
    assert not any(scratch.iterdir())  # its data folder is removed


def test_engine_reports_differ_and_failure(capsys, stand_in, monkeypatch):
    argv = ["infer", "--no-save", "--net", "generated:64x4", "--batch", "50", "-e", "champion",
            "--champion-src", stand_in, "--repeats", "1"]
    monkeypatch.setenv("FAKE_DROP", "1")
    code, out, err = cli(capsys, *argv)
    assert code == 1 and "DIFFER" in out and "its categories DIFFER" in out
    monkeypatch.delenv("FAKE_DROP")
    monkeypatch.setenv("FAKE_CRASH", "1")
    fails(capsys, *argv, match="exited with status 1: CUDA Runtime Error 2: out of memory")
    monkeypatch.delenv("FAKE_CRASH")
    fails(capsys, "infer", "--no-save", "-m", "synthetic:uniform:64x64:0.5", "-e", "champion",
          "--champion-src", stand_in, match="engine champion")
