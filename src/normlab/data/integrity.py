"""Sizes and sha256 of the files the data layer derives (unpacked archive members, prepared arrays),
recorded when they are written and checked when they are used.

A record is `{relative path: {"size": bytes, "sha256": hex}}`.  Checking the sizes costs one `stat`
per file and runs on every use; hashing reads every byte and runs when asked (`normlab prepare`,
`--verify`, the first load of a prepared folder).  A mismatch raises `CorruptDataError`, one line
naming the file and, once the caller knows the dataset, the command that rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .errors import DataError


class CorruptDataError(DataError):
    """A derived file (unpacked member, prepared array, its record) is missing, cut or changed."""

    def __init__(self, path: Path | str, problem: str, fix: str = ""):
        super().__init__(f"{path}: {problem}" + (f"; {fix}" if fix else ""))
        self.path, self.problem, self.fix = str(path), problem, fix

    def with_fix(self, fix: str) -> CorruptDataError:
        return CorruptDataError(self.path, self.problem, fix)


def prepare_fix(name: str, cache: Path) -> str:
    """The one command that rebuilds a dataset's unpacked and prepared files from its verified downloads."""
    return f"run `normlab prepare {name} --force --cache {cache}`"


def file_digest(path: Path, algo: str = "sha256") -> str:
    digest = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    return file_digest(path, "sha256")


def record_files(root: Path, relpaths) -> dict[str, dict]:
    """The record of the files `relpaths` under `root` (sorted by path)."""
    return {
        rel: {"size": (root / rel).stat().st_size, "sha256": sha256_of(root / rel)} for rel in sorted(relpaths)
    }


def files_under(root: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Every regular file under `root`, as a posix path relative to it (names in `skip` left out)."""
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name not in skip]


def check_files(root: Path, record: dict[str, dict], *, hash: bool, only=None) -> None:
    """Check the files of `record` (or the subset `only`) under `root`: present, of their recorded
    size, and with hash=True, of their recorded sha256.  Raises CorruptDataError at the first bad one."""
    rels = record if only is None else [r for r in record if r in only]
    for rel in rels:
        path, want = root / rel, record[rel]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise CorruptDataError(path, "is missing") from None
        if size != want["size"]:
            raise CorruptDataError(path, f"has {size:,} bytes, {want['size']:,} were recorded when it was written")
    if hash:
        for rel in rels:
            path, want = root / rel, record[rel]
            got = sha256_of(path)
            if got != want["sha256"]:
                raise CorruptDataError(
                    path, f"sha256 {got[:16]}… differs from the {want['sha256'][:16]}… recorded when it was written"
                )


def replace_dir(new: Path, dest: Path) -> None:
    """Move folder `new` to `dest`, replacing any folder there; readers see the old or the new one."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(new, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, dest)
