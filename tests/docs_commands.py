"""The commands the docs show, found and run (tests/test_docs.py): every ``spmm-study …`` line of a code block in
README.md, docs/*.md and the lab handouts (fenced blocks, or lines indented four spaces), continuation lines
joined, ``NAME=value`` lines of the same block substituted into the lines after them.

They run under ``SPMM_STUDY_TINY=1`` (spmm_study/tiny.py), in the order the pages show them, in one process
under ``NUMBA_ENABLE_CUDASIM=1`` (GPU commands need the simulator; CPU ones do not notice it), in a scratch
folder that sees the repository's ``experiments/``, ``data/`` and ``docs/``. The values of ``--dlmc-root`` and ``--spdnn-root`` are replaced by where those data
live on this machine (they are the reader's own paths); a command that needs what this machine lacks (the DLMC
collection, the challenge files, a Slurm cluster, a Dask scheduler, a package of an extra) is skipped, saying
which. Run as a script with a JSON list of commands, it runs them and prints one JSON result per line.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shlex
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "spmm_study" / "labs" / "handouts").glob("*.md"))]


@dataclass
class Command:
    file: str  # relative to the repository
    line: int
    text: str  # as shown (continuations joined)
    argv: list[str]  # after the spmm-study word, variables substituted
    setup: tuple = ()  # the block's file-writing lines before it (printf/echo ... > FILE), run first
    env: tuple = ()  # (NAME, value) pairs the line sets before the command (NUMBA_ENABLE_CUDASIM=1 spmm-study ...)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


ASSIGN = re.compile(r"^([A-Z_][A-Z0-9_]*)=(\S+)$")
PREFIX = re.compile(r"^((?:[A-Z_][A-Z0-9_]*=\S+\s+)*)spmm-study\s+")  # env settings, then the command
WRITE = re.compile(r"^(printf|echo) .*>\s*[\w.-]+\s*(#.*)?$")  # a line that writes a file the next commands read
VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def code_blocks(text: str) -> list[list[tuple[int, str]]]:
    """Code blocks as (line number, line): fenced shell-like blocks, and lines indented four spaces outside any
    fence (Markdown's indented code). Python and other fenced blocks are not commands."""
    lines = text.splitlines()
    blocks: list[list[tuple[int, str]]] = []
    cur: list | None = None
    fence = None
    shell = False
    indented: list[tuple[int, str]] = []
    for i, line in enumerate(lines, 1):
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith(fence) and stripped.strip("`~") == "":
                if shell and cur:
                    blocks.append(cur)
                fence, cur = None, None
            elif shell:
                cur.append((i, line))
            continue
        if stripped.startswith(("```", "~~~")):
            if indented:
                blocks.append(indented)
                indented = []
            fence = stripped[:3]
            shell = stripped[3:].strip() in ("", "bash", "sh", "shell", "console", "text")
            cur = []
            continue
        if line.startswith("    ") and stripped:
            indented.append((i, line))
        elif stripped and indented:
            blocks.append(indented)
            indented = []
    if indented:
        blocks.append(indented)
    return blocks


def commands_in(path: Path) -> list[Command]:
    rel = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    out: list[Command] = []
    for block in code_blocks(path.read_text(encoding="utf-8")):
        env: dict[str, str] = {}
        setup: list[str] = []
        pending, start = "", 0
        for i, raw in block:
            line = raw.strip()
            if line.startswith("$ "):
                line = line[2:]
            if pending:
                line, pending = pending + " " + line, ""
            if line.endswith("\\"):
                pending, start = line[:-1].rstrip(), start or i
                continue
            first = start or i
            start = 0
            m = ASSIGN.match(line)
            if m:
                env[m.group(1)] = m.group(2)
                continue
            if WRITE.match(line):
                setup.append(line)
                continue
            prefix = PREFIX.match(line)
            if not prefix:
                continue
            expanded = VAR.sub(lambda v: env.get(v.group(1) or v.group(2), v.group(0)), line[prefix.end():])
            argv = shlex.split(expanded, comments=True)
            sets = tuple(tuple(a.split("=", 1)) for a in prefix.group(1).split())
            out.append(Command(rel, first, line, argv, tuple(setup), sets))
    return out


def all_commands() -> list[Command]:
    return [c for f in doc_files() for c in commands_in(f)]


# ------------------------------------------------------------------------------------------------ what a command needs


def _data_root(env_var: str, shared_name: str) -> Path | None:
    """The folder ``$env_var`` names, else ``../shared/<shared_name>``: the first that exists."""
    env = os.environ.get(env_var)
    for cand in (Path(env) if env else None, SHARED / shared_name):
        if cand is not None and cand.is_dir():
            return cand
    return None


def dlmc_root() -> Path | None:
    return _data_root("SPMM_STUDY_DLMC", "dlmc")


def spdnn_root() -> Path | None:
    return _data_root("SPMM_STUDY_SPDNN", "spdnn")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _toml_text(argv: list[str]) -> str:
    return "".join((ROOT / a).read_text() for a in argv if a.endswith(".toml") and (ROOT / a).is_file())


def is_gpu(argv: list[str]) -> bool:
    """A GPU command (``--device gpu``, a ``gpu.`` variant, an experiment file naming one): needs numba-cuda."""
    joined = " ".join(argv)
    return ("--device gpu" in joined or "--device=gpu" in joined or re.search(r"(^|[\s,=])gpu\.", joined) is not None
            or '"gpu.' in _toml_text(argv))


def needs(argv: list[str]) -> str | None:
    """Why this machine cannot run the command as written (None: it can)."""
    joined = " ".join(argv)
    cluster = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--cluster"), None)
    if cluster is not None:
        if cluster.startswith("slurm:"):
            return "needs a Slurm cluster"
        if cluster.startswith("tcp://"):
            return "needs a running Dask scheduler at " + cluster
        if cluster.startswith("local-cuda"):
            return "needs GPUs and the cluster-gpu extra (dask-cuda)"
        if not _has("distributed"):
            return "needs the cluster extra (pip install '.[cluster]')"
    if "--champion-src" in argv:
        return "needs a checkout of the HPEC'20 champion code"
    uses_dlmc = "dlmc:" in joined or "dlmc" in _toml_text(argv) or any("dlmc" in a for a in argv if a.endswith(".toml"))
    if uses_dlmc and dlmc_root() is None:
        return "needs the DLMC collection (--dlmc-root or $SPMM_STUDY_DLMC)"
    if argv and argv[0] in ("infer", "propagate"):
        net = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--net"), None)
        chain = "-m" in argv or "--matrix" in argv
        if not chain and (net is None or net.startswith("spdnn")) and spdnn_root() is None:
            return "needs the Sparse DNN challenge files (--spdnn-root or $SPMM_STUDY_SPDNN)"
    if is_gpu(argv) and not _has("numba_cuda"):
        return "needs numba-cuda (pip install '.[gpu]'; the simulator comes with it)"
    return None


def localise(argv: list[str], scratch: Path) -> list[str]:
    """The reader's own paths made this machine's: --dlmc-root/--spdnn-root values, and /tmp/ files into the
    scratch folder (so a second run does not find the first one's file)."""
    # the docs' /tmp/ files first, then the data roots: a checkout under /tmp (CI clones there) must keep its
    # own ../shared paths as they are
    out = [a.replace("/tmp/", f"{scratch}/") for a in argv]
    for flag, root in (("--dlmc-root", dlmc_root()), ("--spdnn-root", spdnn_root())):
        for i, a in enumerate(out[:-1]):
            if a == flag and root is not None:
                out[i + 1] = str(root)
    return out


def scratch_folder(path: Path) -> Path:
    """A working folder that sees the repository's experiment files, reference data and docs."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("experiments", "data", "docs"):
        link = path / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    return path


def environment(scratch: Path) -> dict[str, str]:
    env = {"SPMM_STUDY_TINY": "1", "SPMM_STUDY_CEILINGS": str(scratch / "ceilings.json"),
           "SPMM_STUDY_TUNED": str(scratch / "tuned.json"), "SPMM_STUDY_STUDENT": "docs-test"}
    if dlmc_root() is not None:
        env["SPMM_STUDY_DLMC"] = str(dlmc_root())
    if spdnn_root() is not None:
        env["SPMM_STUDY_SPDNN"] = str(spdnn_root())
    return env


def run_in_process(argv: list[str]) -> dict:
    """One command through the CLI's entry point in this process: exit code, output, seconds."""
    from spmm_study.cli import main

    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return {"code": code, "stdout": out.getvalue()[-4000:], "stderr": err.getvalue()[-4000:],
            "seconds": round(time.perf_counter() - t0, 2)}


if __name__ == "__main__":  # python tests/docs_commands.py SCRATCH < commands.json (a JSON list of argv)
    os.chdir(sys.argv[1])
    for item in json.load(sys.stdin):  # [argv, {NAME: value}] per command
        argv, sets = item
        before = {k: os.environ.get(k) for k in sets}
        os.environ.update(sets)
        print(json.dumps(run_in_process(argv)), flush=True)
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
