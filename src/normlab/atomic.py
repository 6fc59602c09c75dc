"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

The new file gets the mode an ordinary ``open`` would give it (0666 less the umask: 0644 by default),
not ``mkstemp``'s 0600, so a cluster group can read the results.  A write that fails because the
disk is full or the folder is not writable raises :class:`WriteError`, whose message says so and
names the folder (``torch.save`` would otherwise hide ENOSPC behind an ``inline_container.cc``
error).  Kept free of heavy imports (torch, pandas), so a Snakemake script that only writes text
starts fast.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # mkstemp's ".NAME.<8 random>.tmp" beside NAME

# errno -> what to do about it
_FIXES = {
    errno.ENOSPC: "free space there or write somewhere else",
    errno.EDQUOT: "free space within your quota or write somewhere else",
    errno.EACCES: "make the folder writable or write somewhere else",
    errno.EPERM: "make the folder writable or write somewhere else",
    errno.EROFS: "write somewhere else (the file system is mounted read-only)",
}


class WriteError(OSError):
    """A file could not be written for a reason the user fixes (disk full, no permission, read-only
    file system); ``errno`` is the cause's, the message one line naming the file and folder."""

    def __init__(self, cause: OSError, path: str | Path, fix: str | None = None):
        path = Path(path)
        super().__init__(cause.errno, os.strerror(cause.errno), str(path))
        self.message = (
            f"cannot write {path.name} in {path.parent}: {os.strerror(cause.errno).lower()} "
            f"({errno.errorcode.get(cause.errno, cause.errno)}); {fix or _FIXES[cause.errno]}"
        )

    def __str__(self) -> str:
        return self.message


def is_write_problem(err: BaseException) -> bool:
    """True for an OSError that :class:`WriteError` reports (disk full, no permission, read-only)."""
    return isinstance(err, OSError) and err.errno in _FIXES


def as_write_error(err: OSError, path: str | Path, fix: str | None = None) -> OSError:
    """``err`` as a :class:`WriteError` when it is a write problem the user fixes, else itself."""
    return err if isinstance(err, WriteError) or not is_write_problem(err) else WriteError(err, path, fix)


def umask() -> int:
    """The process's umask (read without changing it where Linux reports it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _Recording:
    """A file that remembers the OSError its ``write`` raised (torch.save reports it as a RuntimeError)."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file in the same folder, then rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise as_write_error(err, path) from err
    recording = None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask())
            recording = _Recording(f)
            write(recording)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        cause = recording.error if recording is not None and recording.error is not None else err
        if is_write_problem(cause):
            raise WriteError(cause, path) from err
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def temporary_files(folder: str | Path) -> list[Path]:
    """The temporary halves :func:`atomic_write` left in ``folder`` when its process was killed mid-write."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _TMP_NAME.match(p.name) and p.is_file())
