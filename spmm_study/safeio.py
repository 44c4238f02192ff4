"""Bounded reading of every file the tool takes as input (issue 10 item 1).

A path a user names may be anything: a FIFO nobody writes to (``open()`` blocks forever), ``/dev/zero`` (an
endless stream), ``/dev/urandom``, a socket, a 40 GB file, or a name that only looks like a result file. Every
reader goes through ``open_regular`` / ``read_bytes`` / ``read_text`` here, which

* open without blocking (``O_NONBLOCK``, so a FIFO's open returns at once) and refuse anything that is not
  a regular file *by its file descriptor* (``fstat`` after ``open``: no race between the check and the read);
* read at most ``limit`` bytes and refuse a file past it in one line, before any parsing;
* decode text strictly (UTF-8 or ASCII) and say where the first bad byte is, so a binary file is "not a text
  file", never a ``UnicodeDecodeError`` traceback.

The other half of "bound before allocating" is in each reader: it works out what the sizes in a header would
cost and compares that with ``memory.available_memory_bytes`` (which honours ``RLIMIT_AS`` and a cgroup's
``memory.max``) before it builds any array.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from spmm_study.errors import SpmmError

# Text inputs the tool itself writes stay far below these; a file past them is not one of ours.
TEXT_LIMIT = 256 << 20  # experiment TOML, ceilings/tuning JSON, result rows: 256 MiB
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: Path | str, what: str = "file", error: type[SpmmError] = SpmmError):
    """A binary file object on a regular file; anything else (missing, directory, FIFO, device, socket,
    unreadable) is ``error`` in one line. Never blocks: a FIFO is opened non-blocking, then refused."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"no such file: {path}") from None
    except IsADirectoryError:
        raise error(f"{path} is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"cannot open {what} {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path} is {_kind(st.st_mode)}, not a {what}: only regular files are read")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _a(what: str) -> str:
    return ("an " if what[:1] in "aeiou" else "a ") + what


def file_size(f) -> int:
    return os.fstat(f.fileno()).st_size


def read_bytes(path: Path | str, limit: int = TEXT_LIMIT, what: str = "file",
               error: type[SpmmError] = SpmmError) -> bytes:
    """The whole file, at most ``limit`` bytes (a file that grows while read is cut off there and refused)."""
    with open_regular(path, what, error) as f:
        size = file_size(f)
        if size > limit:
            raise error(f"{path} is {size / 2**20:.1f} MiB, past the {limit / 2**20:.0f} MiB {_a(what)} may have")
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path} grew past {limit / 2**20:.0f} MiB while it was read")
    return data


def decode_text(data: bytes, path: Path | str, what: str = "file", error: type[SpmmError] = SpmmError,
                encoding: str = "utf-8") -> str:
    """Strict decoding; a NUL byte counts as binary too (no text format of ours holds one)."""
    nul = data.find(b"\0")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        pos = exc.start if nul < 0 else min(exc.start, nul)
        raise error(f"{path} is not a text {what} (byte {data[pos]:#04x} at offset {pos} is not {encoding.upper()})") from None
    if nul >= 0:
        raise error(f"{path} is not a text {what} (a NUL byte at offset {nul}: a binary file)")
    return text


def read_text(path: Path | str, limit: int = TEXT_LIMIT, what: str = "file", error: type[SpmmError] = SpmmError,
              encoding: str = "utf-8") -> str:
    return decode_text(read_bytes(path, limit, what, error), path, what, error, encoding)
