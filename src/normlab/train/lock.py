"""One writer per run folder: ``OUT/.lock``, held with ``flock`` for the whole run.

The lock file holds the holder's PID and host, so a second writer is refused with a message naming
them.  The kernel drops the lock when the holder exits, however it exits (kill -9 included), so a
stale lock never blocks a rerun.  The file itself stays: deleting it on exit would let a process
that had opened it before the deletion lock the deleted file while a newcomer locks a new one.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path

from normlab.atomic import as_write_error

from .errors import RunLockedError

LOCK_NAME = ".lock"


def _describe_holder(fd: int) -> str:
    text = os.pread(fd, 256, 0).decode(errors="replace").split()
    return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "a process that has not written its pid yet"


def locked_error(out: Path, holder: str) -> RunLockedError:
    """The refusal of a second writer on ``out`` while ``holder`` ("pid N on HOST") holds its lock."""
    return RunLockedError(
        f"{out} is being written by another normlab train ({holder}; see {out / LOCK_NAME}): wait for it to "
        "finish or stop it, then rerun (two writers would mix their files)"
    )


def lock_holder(out: Path) -> str | None:
    """Who holds ``out``'s lock now ("pid N on HOST"), or None when nobody does; creates nothing."""
    try:
        fd = os.open(out / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe_holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


class RunLock:
    """``with RunLock(out):`` -- creates ``out`` if needed and holds its lock; raises RunLockedError when
    another process holds it, and WriteError when ``out`` cannot be written (checked before any data loads)."""

    def __init__(self, out: Path):
        self.out, self.path, self.fd = Path(out), Path(out) / LOCK_NAME, None

    def __enter__(self) -> RunLock:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise as_write_error(err, self.path, "choose a writable --out or fix the folder's permissions") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise locked_error(self.out, holder) from None
        except OSError as err:  # a file system without flock (some network mounts): run unguarded, say so
            print(f"normlab train: warning: cannot lock {self.path} ({err.strerror}); nothing stops a second "
                  "writer on this folder", file=sys.stderr)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError as err:  # a full disk shows here, before any data loads
            os.close(fd)
            raise as_write_error(err, self.path) from err
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None
