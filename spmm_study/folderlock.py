"""One writer per result folder (issue 10 item 2): an advisory ``flock`` on ``<folder>/.lock``.

Two sweeps into one ``--out`` both used to report success and the rows file held every row twice. Now a
``ResultWriter`` takes this lock before it reads or writes a row, and a second writer is refused at once, in
one line naming the holder (pid, host, command, start time), which the holder writes into the lock file.

* **released on exit**: the kernel drops a ``flock`` when its file is closed, so a writer killed by
  SIGKILL, Ctrl-C or a crash leaves no lock behind; a normal exit also removes the file (``release``).
* **stale locks**: a lock file that is present but not locked (its holder died before it could remove it)
  is taken over, and ``stale`` says whose it was. A lock held by a process that is gone on this host (a
  forked child inherited it) is reported as such.
* within one process a newer writer on the same folder takes the lock over from the older one, which can
  no longer append (a library user or a test that opens a folder again); ``main`` releases every lock
  when a command ends (``release_all``), so commands run in one process one after another work too.
* removal races: after locking, the holder checks that the path still names the inode it locked (another
  holder may have unlinked it on release); if not, it locks again.

Advisory only: it guards spmm-study writers against each other, not against ``rm`` or an editor. ``flock``
on NFS is emulated with POSIX locks on Linux >= 2.6.12, which serves the same purpose across hosts.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path

from spmm_study.errors import ResultsError

LOCK_NAME = ".lock"
_HELD: dict[str, "FolderLock"] = {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_holder(info: dict) -> str:
    if not info:
        return "another process (it wrote no details yet)"
    cmd = info.get("command") or "?"
    cmd = cmd if len(cmd) <= 80 else cmd[:77] + "..."
    who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}"
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) and not _alive(info["pid"]):
        who += " (gone: a child process it started still holds the lock)"
    return f"{who}, '{cmd}', since {info.get('started', '?')}"


def _read_info(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096)
        info = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


class FolderLock:
    """``FolderLock(folder).acquire()`` or ``with FolderLock(folder):``; ``stale`` holds the details of a
    dead holder whose lock file this one took over (None otherwise)."""

    def __init__(self, folder: Path | str, command: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command if command is not None else " ".join(["spmm-study", *sys.argv[1:]])
        self.fd: int | None = None
        self.stale: dict | None = None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        prev = _HELD.get(key)
        if prev is not None and prev is not self and prev.fd is not None:
            # a newer writer of this same process (a library user, a test) takes the folder over from one it
            # abandoned; the older one can no longer append (ResultWriter checks ``held``)
            self.fd, prev.fd = prev.fd, None
            _HELD[key] = self
            return self
        for _ in range(20):
            try:
                # never through a link (a .lock symlink had its target truncated and the lock JSON written
                # into it), never a FIFO (O_NONBLOCK: the open returns, then fstat refuses it)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                             | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                if os.path.islink(self.path):
                    raise ResultsError(f"cannot lock {self.folder}: {self.path} is a symbolic link, not a lock "
                                       "spmm-study made") from None
                raise ResultsError(f"cannot lock {self.folder}: {exc.strerror or exc}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise ResultsError(f"cannot lock {self.folder}: {self.path} is not a regular file")
            os.set_blocking(fd, True)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_info(fd)
                os.close(fd)
                raise ResultsError(f"{self.folder} is being written by {describe_holder(info)}; one writer per "
                                   "result folder: wait for it to finish or choose another --out") from None
            except OSError as exc:
                os.close(fd)
                raise ResultsError(f"cannot lock {self.folder}: {exc.strerror or exc}") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder unlinked it between our open and our lock: try again
                os.close(fd)
                continue
            old = _read_info(fd)
            self.stale = old or None
            info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            self.fd = fd
            _HELD[key] = self
            return self
        raise ResultsError(f"cannot lock {self.folder}: the lock file keeps changing under us")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: a writer waiting on this inode re-checks and retries
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        key = str(self.path.resolve())
        if _HELD.get(key) is self:
            del _HELD[key]

    @property
    def held(self) -> bool:
        return self.fd is not None

    def __enter__(self) -> "FolderLock":
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def release_all() -> None:
    """Release every lock this process holds (the CLI calls it when a command ends)."""
    for lock in list(_HELD.values()):
        lock.release()
