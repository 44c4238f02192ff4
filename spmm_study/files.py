"""Small file helpers every writer shares: atomic replacement with a shareable mode, appends and folders that
never follow a link they did not make, per-user cache paths, and one JSON object read with a clear error.

Result files (``results.py``), ceilings (``calibrate.py``), tuned params (``autotune.py``), converted matrices
(``sources.py``), infer outputs and PNGs (``plots.py``, the labs) all go through ``atomic_write_text`` /
``atomic_save`` or ``publish_mode``: a file is either the old one or the whole new one, never half of each,
and it is written to a temporary file made here, then renamed over the name. A name that is a symbolic link
or not a regular file is refused, so nothing is ever written *through* a link (issue 23 item 1).

**Which folders are the tool's own.** A folder spmm-study writes results into carries a marker file,
``.spmm-study``, written when it first claims the folder (``claim_folder``). Only in a marked folder may a
command replace files, and only its own names (``rows.jsonl``, ``results.csv``...), and only with the flag
that says so (``--force`` / ``--resume``). A folder without the marker that already holds one of those names
is someone else's: it is refused even with ``--force`` (``run --out`` used to delete a user's ``results.csv``).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from spmm_study.errors import ResultsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_mode(fd_or_path) -> None:
    """Give a mkstemp file (mode 0600) the mode a plain open() would: result files are meant to be shared."""
    mode = 0o666 & ~_umask()
    if isinstance(fd_or_path, int):
        os.fchmod(fd_or_path, mode)
    else:
        os.chmod(fd_or_path, mode)


class ForeignFileError(ResultsError):
    """A path spmm-study would write is a link, a device or in a folder it did not make: never written."""


MARKER = ".spmm-study"  # the file that says "spmm-study made this folder" (see the module docstring)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _refuse_foreign_name(path: Path) -> None:
    """A name we are about to replace must be absent or a regular file: never a link (it would be replaced
    or, by a plain open(), written through) nor a FIFO or device."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise ForeignFileError(f"{path} is a symbolic link: spmm-study writes only files it made, never through a "
                           "link; remove it or choose another path")
    if not stat.S_ISREG(st.st_mode):
        raise ForeignFileError(f"{path} exists and is not a regular file: spmm-study will not replace it")


def atomic_save(path: Path, write, suffix: str = ".tmp") -> None:
    """``write(tmp_path)`` fills a temporary file made next to ``path`` (mode 0600, then the shareable mode),
    which is then fsynced and renamed over ``path``: readers see the old file or the whole new one, and a link
    at ``path`` is refused rather than followed. ``write`` may be ``fig.savefig`` or any writer of a path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_foreign_name(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        publish_mode(fd)
        os.close(fd)
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # our own mkstemp file: no link can be at this name
            f.write(data)

    atomic_save(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def open_append(path: Path, encoding: str | None = "utf-8"):
    """A file opened for appending that is never a link (O_NOFOLLOW) nor a FIFO or device (checked on the
    open descriptor): appends to rows.jsonl and results.csv."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        _refuse_foreign_name(path)  # a link, or a FIFO with no reader (ENXIO): said as such
        raise ResultsError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ForeignFileError(f"{path} exists and is not a regular file: spmm-study appends only to files it made")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a", encoding=encoding, newline="") if encoding else os.fdopen(fd, "ab")


def is_own_folder(folder: Path) -> bool:
    """Whether ``folder`` carries the marker spmm-study writes into the folders it makes (a regular file)."""
    try:
        return stat.S_ISREG(os.lstat(Path(folder) / MARKER).st_mode)
    except OSError:
        return False


def claim_folder(folder: Path, names, what: str = "result folder") -> list[str]:
    """Make ``folder`` ours before writing ``names`` into it, and return those of ``names`` already there.

    A new or marker-less folder gets the marker, unless it already holds one of ``names`` (or a lock): then
    it is someone else's (a user's CSV, a run from another tool) and it is refused, whatever the flags. A
    name that is a link or not a regular file is refused everywhere. The caller decides, from what is
    returned, whether its flags (``--force``, ``--resume``) allow replacing its own files."""
    from spmm_study.folderlock import LOCK_NAME

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"{folder} exists and is not a directory")
    present = [n for n in (*names, LOCK_NAME) if os.path.lexists(folder / n)]
    for n in present:
        _refuse_foreign_name(folder / n)
    if not is_own_folder(folder):
        if os.path.lexists(folder / MARKER):
            raise ResultsError(f"{folder / MARKER} is not a regular file: {folder} is not a {what} spmm-study made")
        if present:
            raise ForeignFileError(f"{folder} holds {', '.join(present)} but no {MARKER} marker: spmm-study did not "
                               f"make this {what}, so it replaces nothing in it, even with --force; choose "
                               "another --out")
        folder.mkdir(parents=True, exist_ok=True)
        from spmm_study.version import __version__

        atomic_write_text(folder / MARKER, json.dumps({"spmm_study": what, "version": __version__}) + "\n")
    return [n for n in present if n != LOCK_NAME]


def cache_path(env_var: str, filename: str) -> Path:
    """A small per-user cache file (ceilings, tuned params): ``$env_var``, else $XDG_CACHE_HOME/spmm-study/."""
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spmm-study" / filename


def read_json_object(path: Path, what: str) -> dict:
    """A JSON object from ``path`` ({} when the file does not exist yet); anything else is a ResultsError."""
    from spmm_study.safeio import read_text

    if not path.exists():
        return {}
    from spmm_study.limits import check_depth

    text = read_text(path, limit=64 << 20, what=what, error=ResultsError)  # bounded, regular, UTF-8
    check_depth(text, str(path), ResultsError)
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ResultsError(f"{path} is not a {what}: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} is not a {what} (expected a JSON object)")
    return data
