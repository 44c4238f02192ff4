"""Small file helpers every writer shares: atomic replacement with a shareable mode, per-user cache paths,
and one JSON object read with a clear error.

Result files (``results.py``), ceilings (``calibrate.py``), tuned params (``autotune.py``) and converted
matrices (``sources.py``) all go through ``atomic_write_text`` or ``publish_mode``: a file is either the old
one or the whole new one, never half of each.
"""

from __future__ import annotations

import json
import os
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


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        publish_mode(fd)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    text = read_text(path, limit=64 << 20, what=what, error=ResultsError)  # bounded, regular, UTF-8
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ResultsError(f"{path} is not a {what}: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} is not a {what} (expected a JSON object)")
    return data
