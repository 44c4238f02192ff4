"""Build the entry point of ``cpu.csr.spregtiling`` from the user's clone of the Sparse Register Tiling artifact.

The artifact (Wilkinson, Cheshmi, Mehri Dehnavi, PLDI'23; github.com/SpRegTiling/sparse-register-tiling with
its ``spmm_nano_kernels`` submodule) has no licence file: nothing of it is copied into the project and the
project never downloads it. Its own test bed (``cpp_testbed``) fetches libraries while it builds, so it is not
used; instead this module compiles, with the system C++ compiler and the flags of the artifact's CMakeLists
(``-std=c++20 -O3 -march=native -fopenmp -ffast-math ...``, ``-DENABLE_AVX512``), the parts of the clone
that one fp32 SpMM needs:

* ``spmm_nano_kernels/src/*.cpp`` and ``generated/mapping_to_executor.cpp``;
* the AVX-512 executor and packer factories its codegen wrote for fp32 with the data transform (the
  ``KD_Intel`` and ``KD_IntelLoadBalanced`` executors, ``generated/AVX512/factories/*/``), found from the
  ``factory_desc`` line each of those files carries;
* two files generated here from the clone: ``srt_registry.cpp`` (registers exactly those factories, which the
  codegen's own registration files would do for every scalar type and transform), and ``srt_heuristic.h``
  (the first-ranked method of ``tools/empirical_heuristic_{single,multi}_threaded.json`` per sparsity bucket
  and N, with the names decoded as ``tools/paper/configs.py`` decodes them);
* the project's own entry point ``csrc/spregtiling_entry.cpp`` (srt_create / srt_run / srt_destroy).

Objects are cached per source under ``$XDG_CACHE_HOME/spmm-study/spregtiling/`` (``$SPMM_STUDY_SPREGTILING_CACHE``
moves it), keyed by the compiler, the flags, the source and every header, so a rebuild after an edit
recompiles only what changed. The library is written atomically, then checked in a child process (the
artifact exits on what it cannot run) against float64 on a small random matrix, and its path printed::

    cd spmm_nano_kernels && python -m codegen.generate_ukernels   # the artifact's codegen, once
    python experiments/build_spregtiling.py build /path/to/sparse-register-tiling
    export SPMM_STUDY_SPREGTILING=...                             # the line it prints

The fp32 kernels only, AVX-512 only (what the artifact's x86 results use); the link leaves ``-ffast-math``
out, so that GCC < 13 does not link ``crtfastmath.o`` into the library (it would set flush-to-zero for the
whole Python process that loads it).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spmm_study.errors import DeviceUnavailable, SpmmError

ENV_LIB = "SPMM_STUDY_SPREGTILING"
ENV_CACHE = "SPMM_STUDY_SPREGTILING_CACHE"
ENTRY = Path(__file__).with_name("csrc") / "spregtiling_entry.cpp"
ABI = 1
# From the artifact's CMakeLists (top level, cpp_testbed/ and spmm_nano_kernels/): C++20, -march=native
# -fopenmp -ffast-math, -mprefer-vector-width=512 on Intel, -funroll-loops on its demo targets, Release -O3,
# and the SOP_CXX_FLAGS its kernels need with AVX-512 on.
FLAGS = ("-std=c++20", "-O3", "-DNDEBUG", "-march=native", "-mprefer-vector-width=512", "-fopenmp",
         "-ffast-math", "-ftree-vectorize", "-funroll-loops", "-fPIC", "-DENABLE_AVX512", "-DRTE_MEMCPY_AVX512",
         "-DRTE_CACHE_LINE_SIZE=64", "-w")
GNU_FLAGS = ("-fconcepts", "-mtune=intel")  # the CMakeLists adds these for GCC only
LINK = ("-shared", "-fopenmp", "-Wl,-z,defs")
LIBS = ("-lstdc++fs",)
KERNEL_DESCS = ("KD_Intel", "KD_IntelLoadBalanced")
HEURISTICS = (("single", "tools/empirical_heuristic_single_threaded.json"),
              ("multi", "tools/empirical_heuristic_multi_threaded.json"))
CONFIGS_PY = "tools/paper/configs.py"
_NAME = re.compile(r"^NANO_M(\d)N(\d)_([A-Z]+)((?:_[A-Za-z0-9]+)*)$")
_WORD = re.compile(r"^\w+$")


class BuildError(DeviceUnavailable):
    """The clone, the compiler or the machine cannot give a working entry point (one line, exit 2)."""


# --- the clone --------------------------------------------------------------------------------------------


def nano_tree(root: Path, nano: Path | None) -> Path:
    return nano if nano is not None else root / "spmm_nano_kernels"


def tree_problem(root: Path, nano: Path) -> str | None:
    """Why ``root`` (the artifact's clone) and ``nano`` (its spmm_nano_kernels) cannot be built, or None."""
    if not root.is_dir():
        return f"{root} is not a directory (expected a clone of SpRegTiling/sparse-register-tiling)"
    for _, rel in HEURISTICS:
        if not (root / rel).is_file():
            return f"{root} is not a sparse-register-tiling clone (no {rel})"
    if not (root / CONFIGS_PY).is_file():
        return f"{root} is not a sparse-register-tiling clone (no {CONFIGS_PY})"
    if not (nano / "include" / "MatMulSpecialized.h").is_file():
        hint = ("run `git submodule update --init` in the clone, or give --nano" if nano == root / "spmm_nano_kernels"
                else "expected a clone of the spmm-nano-kernels submodule")
        return f"{nano} has no include/MatMulSpecialized.h ({hint})"
    for rel in ("src", "mappings", "third_party/version2/vectorclass", "third_party/rte"):
        if not (nano / rel).is_dir():
            return f"{nano} has no {rel}/ (an incomplete spmm-nano-kernels tree)"
    if not (nano / "generated" / "mapping_to_executor.cpp").is_file() or not (
            nano / "generated" / "AVX512" / "factories").is_dir():
        return (f"{nano}/generated has no AVX-512 kernels: run the artifact's codegen first "
                f"(cd {nano} && python -m codegen.generate_ukernels)")
    return None


def cpu_problem() -> str | None:
    """The kernels wired up here are the artifact's AVX-512 ones."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        return "cannot read /proc/cpuinfo to check for AVX-512 (this build is for Linux x86-64)"
    if " avx512f" not in flags:
        return "this CPU has no AVX-512 (avx512f); the entry point uses the artifact's AVX-512 kernels only"
    return None


def factory_files(nano: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], list[Path]]:
    """(executors [(kernel_desc, id, func)], packers [(id, func)], their sources): fp32, data transform on."""
    executors, packers, sources = [], [], []
    for path in sorted((nano / "generated" / "AVX512" / "factories").glob("*/*.cpp")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            if not line.startswith("// factory_desc |"):
                continue
            try:
                desc = json.loads(line.split("|", 1)[1])
            except ValueError:
                raise BuildError(f"{path}: unreadable factory_desc line") from None
            if not isinstance(desc, dict) or desc.get("scalar") != "float" or desc.get("arch") != "AVX512":
                continue
            ident, func = str(desc.get("id", "")), str(desc.get("func", ""))
            if not (_WORD.match(ident) and _WORD.match(func)):
                raise BuildError(f"{path}: factory_desc with a bad id or func")
            if func.startswith("executor_factory_"):
                if desc.get("datatransform") == "true" and desc.get("kernel_desc") in KERNEL_DESCS:
                    executors.append((desc["kernel_desc"], ident, func))
                    sources.append(path)
            elif func.startswith("packer_factory_"):
                packers.append((ident, func))
                sources.append(path)
    ids = {i for _, i, _ in executors}
    if not executors or not ids <= {i for i, _ in packers}:
        raise BuildError(f"{nano}/generated/AVX512 lacks the fp32 executors or packers (rerun the artifact's "
                         "codegen: python -m codegen.generate_ukernels)")
    return executors, packers, sources


def registry_source(executors, packers) -> str:
    out = ["// Generated by spmm_study/cpu/spregtiling.py from the artifact's factory_desc lines: registers",
           "// the fp32, data-transform executors and packers compiled into this library.",
           '#include "KernelDesc.h"', '#include "ExecutorFactory.h"', '#include "MicroKernelPackerFactory.h"',
           "namespace sop {"]
    out += [f"extern ExecutorFactory<{kd}<float>, true>* {func}();" for kd, _, func in executors]
    out += [f"extern MicroKernelPackerFactory<float>* {func}();" for _, func in packers]
    out += ["}", "namespace {", "struct SrtRegistry {", "  SrtRegistry() {"]
    out += [f'    sop::ExecutorFactory<sop::{kd}<float>, true>::register_factory("{i}", sop::{func}());'
            for kd, i, func in executors]
    out += [f'    sop::MicroKernelPackerFactory<float>::register_factory("{i}", sop::{func}());'
            for i, func in packers]
    out += ["  }", "} srt_registry;", "}", ""]
    return "\n".join(out)


def _literal(tree: ast.AST, want, what: str, path: Path):
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            try:
                value = ast.literal_eval(node)
            except ValueError:
                continue
            if want(value):
                return value
    raise BuildError(f"{path}: cannot find {what} (a changed tools/paper/configs.py?)")


def name_tables(root: Path) -> tuple[dict, dict]:
    """(mapping names per M_r -> mapping ids, schedule name -> number), read from tools/paper/configs.py."""
    path = root / CONFIGS_PY
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise BuildError(f"{path}: {exc}") from None

    def is_mappings(v):
        return (isinstance(v, dict) and v and all(isinstance(k, int) and isinstance(d, dict) for k, d in v.items())
                and all(isinstance(a, str) and isinstance(b, str) for d in v.values() for a, b in d.items()))

    def is_schedules(v):
        return isinstance(v, dict) and "NKM" in v and all(isinstance(k, str) and isinstance(n, int)
                                                           for k, n in v.items())

    return (_literal(tree, is_mappings, "the mapping-name table", path),
            _literal(tree, is_schedules, "the schedule table", path))


def decode(name: str, mappings: dict, schedules: dict) -> dict:
    """A heuristic method name (NANO_M4N4_NKM_LB_TLB128_SA_identity) as tools/paper/configs.py reads it."""
    m = _NAME.match(name)
    if not m or "packed" in name or "tuned" in name:
        raise BuildError(f"heuristic method {name!r} is not one this entry point can run")
    m_r, n_r, sched = int(m.group(1)), int(m.group(2)), m.group(3)
    mapping_name = name.split("_")[-1]
    mapping = mappings.get(m_r, {}).get(mapping_name, mapping_name)
    tlb = re.search(r"TLB(\d+)", name)
    beta = re.search(r"_B(\d+)", name)
    if sched not in schedules or not _WORD.match(mapping):
        raise BuildError(f"heuristic method {name!r}: unknown schedule or mapping")
    return {"name": name, "m_r": m_r, "n_r": n_r, "mapping": mapping, "schedule": schedules[sched],
            "load_balance": int("LB" in name), "tlb": int(tlb.group(1)) if tlb else 0,
            "sparse_a": int("SA" in name), "beta_10x": int(beta.group(1)) if beta else 10}


def heuristic_header(root: Path) -> str:
    """srt_heuristic.h: one row per (threads, sparsity bucket, N) with the first-ranked method decoded."""
    from spmm_study.safeio import read_text

    mappings, schedules = name_tables(root)
    rows = []
    for kind, rel in HEURISTICS:
        path = root / rel
        try:
            table = json.loads(read_text(path, limit=1 << 20, what="heuristic", error=BuildError))
        except ValueError as exc:
            raise BuildError(f"{path}: not JSON ({exc})") from None
        if not isinstance(table, dict) or not table:
            raise BuildError(f"{path}: expected an object of sparsity buckets")
        for bucket, per_n in table.items():
            b = re.match(r"^\(\s*([0-9.]+)\s*,\s*([0-9.]+)\s*\]$", str(bucket))
            if not b or not isinstance(per_n, dict):
                raise BuildError(f"{path}: bad bucket {bucket!r}")
            for n, methods in per_n.items():
                if not str(n).isdigit() or not isinstance(methods, list) or not methods:
                    raise BuildError(f"{path}: bad entry {bucket} / {n!r}")
                d = decode(str(methods[0]), mappings, schedules)
                rows.append((int(kind == "multi"), float(b.group(1)), float(b.group(2)), int(n), d))
    lines = ["// Generated by spmm_study/cpu/spregtiling.py from the artifact's tools/empirical_heuristic_*.json",
             "// (first-ranked method per bucket and N) and tools/paper/configs.py (what a name means).",
             "#pragma once", "struct SrtChoice {", "  bool multi_threaded; double lo, hi; int bcols;",
             "  const char* name; int m_r, n_r; const char* mapping; int schedule;",
             "  int load_balance, tlb_entries, sparse_a, beta_10x;", "};",
             "static const SrtChoice srt_choices[] = {"]
    for multi, lo, hi, n, d in rows:
        lines.append(f'  {{{"true" if multi else "false"}, {lo!r}, {hi!r}, {n}, "{d["name"]}", {d["m_r"]}, '
                     f'{d["n_r"]}, "{d["mapping"]}", {d["schedule"]}, {d["load_balance"]}, {d["tlb"]}, '
                     f'{d["sparse_a"]}, {d["beta_10x"]}}},')
    lines += ["};", ""]
    return "\n".join(lines)


# --- compiling --------------------------------------------------------------------------------------------


def compiler(cxx: str | None = None) -> tuple[str, str, bool]:
    """(path, version line, is GCC) of $CXX / --cxx, else g++, else clang++."""
    given = cxx or os.environ.get("CXX")
    found = shutil.which(given) if given else (shutil.which("g++") or shutil.which("clang++"))
    if not found:
        raise BuildError(f"no C++ compiler{f' {given!r}' if given else ' (g++ or clang++)'} found "
                         "(Debian: apt-get install g++)")
    try:
        proc = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{found} --version failed: {exc}") from None
    version = (proc.stdout or "").splitlines()[0] if proc.stdout else found
    return found, version, "clang" not in version.lower() and ("g++" in version or "GCC" in version)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little") + p)
    return h.hexdigest()[:16]


def _headers_digest(dirs: list[Path]) -> bytes:
    h = hashlib.sha256()
    for d in dirs:
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.suffix in (".h", ".hpp", ".inc"):
                h.update(str(f).encode() + b"\0" + f.read_bytes())
    return h.digest()


def _run(cmd: list[str], what: str, timeout_s: float) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what} took longer than {timeout_s:.0f} s") from None
    except OSError as exc:
        raise BuildError(f"{what}: {exc}") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if "error" in ln.lower()] or \
            [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise BuildError(f"{what} failed (exit {proc.returncode}): {lines[0] if lines else 'no output'}")


def cache_dir() -> Path:
    from spmm_study.files import cache_path

    return cache_path(ENV_CACHE, "spregtiling")


def build(root: Path, nano: Path | None = None, out: Path | None = None, jobs: int = 1, cxx: str | None = None,
          log=None, timeout_s: float = 1800) -> Path:
    """Compile the entry point against the clone into one .so (cached); returns its path."""
    from spmm_study import files

    root = root.expanduser().resolve()
    nano = nano_tree(root, nano.expanduser().resolve() if nano else None)
    problem = tree_problem(root, nano) or cpu_problem()
    if problem:
        raise BuildError(problem)
    if any(ch in str(nano) for ch in '"\\\n'):
        raise BuildError(f"{nano}: a path with quotes or backslashes cannot be compiled in")
    cc, version, gnu = compiler(cxx)
    executors, packers, factory_sources = factory_files(nano)
    includes = [nano / "include", nano / "third_party" / "version2" / "vectorclass", nano / "third_party" / "rte",
                nano / "generated", nano / "generated" / "AVX512" / "include"]
    flags = [*FLAGS, *(GNU_FLAGS if gnu else ())]
    gen_text = {"srt_registry.cpp": registry_source(executors, packers), "srt_heuristic.h": heuristic_header(root)}
    key = _digest(f"abi{ABI} {cc} {version} {' '.join(flags)} {' '.join(LINK)}".encode(), ENTRY.read_bytes(),
                  *(t.encode() for t in gen_text.values()), str(nano).encode(),
                  *(p.read_bytes() for p in factory_sources))
    cache = cache_dir()
    gen = cache / f"gen-{_digest(str(nano).encode())}"  # one per clone: its files change only with the clone
    gen.mkdir(parents=True, exist_ok=True)
    for name, text in gen_text.items():
        if not (gen / name).is_file() or (gen / name).read_text() != text:
            files.atomic_write_text(gen / name, text)  # renamed into place: never written through a link
    headers = _headers_digest(includes)  # the clone's headers (the generated header is keyed with the entry)
    sources = sorted((nano / "src").glob("*.cpp")) + sorted((nano / "src").glob("*/*.cpp"))
    sources += [nano / "generated" / "mapping_to_executor.cpp", *factory_sources, gen / "srt_registry.cpp", ENTRY]
    common = [cc, *flags, *(f"-I{d}" for d in includes)]
    entry_extra = [f"-I{gen}", f'-DSRT_MAPPINGS_DIR="{nano}/mappings/"']
    objdir = cache / "obj"
    objdir.mkdir(parents=True, exist_ok=True)
    out = (out or cache / f"libspmm_study_spregtiling-{_digest(key.encode(), headers)}.so").expanduser()
    if out.is_file():
        return out

    def compile_one(src: Path) -> Path:
        cmd = [*common, *(entry_extra if src == ENTRY else ())]
        extra = gen_text["srt_heuristic.h"].encode() if src == ENTRY else b""
        obj = objdir / f"{src.stem[:40]}-{_digest(' '.join(cmd).encode(), headers, src.read_bytes(), extra)}.o"
        if not obj.is_file():
            fd, tmp = tempfile.mkstemp(prefix=obj.name + ".", suffix=".tmp", dir=objdir)
            os.close(fd)
            try:
                t0 = time.monotonic()
                _run([*cmd, "-c", str(src), "-o", tmp], f"compiling {src.name}", timeout_s)
                os.replace(tmp, obj)
                if log:
                    log(f"compiled {src.relative_to(nano) if src.is_relative_to(nano) else src.name} "
                        f"({time.monotonic() - t0:.0f} s)")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return obj

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        objects = list(pool.map(compile_one, sources))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        _run([cc, *LINK, *map(str, objects), "-o", tmp, *LIBS], "linking the entry point", timeout_s)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


# --- checking the built library ---------------------------------------------------------------------------


def selftest(path: Path) -> str:
    """Run the library on small random matrices against float64, in this process; returns its chosen config.

    Called in a child process by ``check`` (the artifact exits instead of failing on what it cannot run)."""
    import ctypes

    import numpy as np
    import scipy.sparse as sp

    lib = ctypes.CDLL(str(path))
    lib.srt_create.restype = ctypes.c_void_p
    lib.srt_create.argtypes = [ctypes.c_int] * 3 + [ctypes.c_void_p] * 3 + [ctypes.c_int]
    lib.srt_run.argtypes = [ctypes.c_void_p] * 3
    lib.srt_config.restype = ctypes.c_char_p
    lib.srt_config.argtypes = [ctypes.c_void_p]
    lib.srt_destroy.argtypes = [ctypes.c_void_p]
    rng = np.random.default_rng(12)
    configs = []
    for m, k, n, density in ((96, 80, 40, 0.1), (61, 300, 17, 0.3), (128, 512, 64, 0.05)):
        a = sp.random(m, k, density=density, format="csr", random_state=rng, dtype=np.float32)
        a.sort_indices()
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.full((m + 64, n), np.nan, np.float32)
        indptr, indices = a.indptr.astype(np.int32), a.indices.astype(np.int32)
        values = a.data.astype(np.float32)
        h = lib.srt_create(m, k, n, indptr.ctypes.data, indices.ctypes.data, values.ctypes.data, 1)
        if not h:
            raise BuildError(f"self-test: srt_create refused a {m}x{k} matrix at N={n}")
        try:
            if lib.srt_run(h, b.ctypes.data, c.ctypes.data) != 0:
                raise BuildError("self-test: srt_run failed")
            configs.append(lib.srt_config(h).decode())
        finally:
            lib.srt_destroy(h)
        want = a.astype(np.float64) @ b.astype(np.float64)
        err = np.abs(c[:m] - want).max() / max(1.0, np.abs(want).max())
        if not np.isfinite(c[:m]).all() or err > 1e-4:
            raise BuildError(f"self-test: wrong product for {m}x{k}, N={n} (relative error {err:.2g})")
    return configs[-1]


def check(path: Path, timeout_s: float = 300) -> str:
    """The self-test in a child process; one line on failure."""
    cmd = [sys.executable, "-m", "spmm_study.cpu.spregtiling", "selftest", str(path)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(f"self-test of {path} took longer than {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise BuildError(f"self-test of {path} failed (exit {proc.returncode}): "
                         f"{lines[-1] if lines else 'no output'}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage too)
        raise BuildError(f"{self.prog}: {message} (--help for usage)")


def main(argv: list[str]) -> int:
    """``python experiments/build_spregtiling.py build CLONE [--nano DIR] [--out FILE] [--jobs N] [--cxx CXX]``."""
    parser = _Parser(prog="build_spregtiling.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the entry point against a clone, check it, print the export line")
    b.add_argument("clone", type=Path, help="the sparse-register-tiling clone")
    b.add_argument("--nano", type=Path, default=None, help="its spmm_nano_kernels (default: CLONE/spmm_nano_kernels)")
    b.add_argument("--out", type=Path, default=None, help="where to write the .so (default: the cache)")
    b.add_argument("--jobs", type=int, default=1, help="compilers run at once (default 1)")
    b.add_argument("--cxx", default=None, help="the C++ compiler (default $CXX, else g++, else clang++)")
    t = sub.add_parser("selftest", help=argparse.SUPPRESS)
    t.add_argument("lib", type=Path)
    try:
        args = parser.parse_args(argv)
        if args.cmd == "selftest":
            print(selftest(args.lib))
            return 0
        if not 1 <= args.jobs <= 256:
            raise BuildError(f"--jobs {args.jobs}: give 1 to 256")
        t0 = time.monotonic()
        path = build(args.clone, args.nano, args.out, args.jobs, args.cxx,
                     log=lambda s: print(s, file=sys.stderr, flush=True))
        config = check(path)
        print(f"built and checked in {time.monotonic() - t0:.0f} s; on the self-test's last matrix it chose "
              f"{config}", file=sys.stderr)
    except SpmmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"export {ENV_LIB}={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
