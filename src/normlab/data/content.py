"""Digests of what a parser reads, independent of the container it came in.

A Debian package may recompress a publisher's `.gz` files or rebuild a SWORD module; the bytes
of the files differ, the data the parser reads does not.  The lock pins, per artifact, the content
digest of each path its parser reads (`content` in the lock entry), computed from the pinned
artifact; a publisher's own files are accepted in its place only when they give the same digests.

Kinds:
    bytes        sha256 of the file
    gunzip       sha256 of the decompressed bytes of a .gz file
    sword-ztext  sha256 over the verse slots of a SWORD zText module folder (each slot's bytes,
                 length-prefixed), which is what `parsers.read_sword_ztext` returns
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

from . import parsers as P
from .errors import ParseError
from .integrity import sha256_of


def _gunzip(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError, zlib.error) as err:
        raise ParseError(path, None, f"cannot be decompressed ({err})") from err
    return digest.hexdigest()


def _sword_ztext(folder: Path) -> str:
    digest = hashlib.sha256()
    for slot in P.read_sword_ztext(folder):
        digest.update(len(slot).to_bytes(4, "little"))
        digest.update(slot)
    return digest.hexdigest()


KINDS = {"bytes": sha256_of, "gunzip": _gunzip, "sword-ztext": _sword_ztext}


def content_digests(tree: Path, content: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """relative path -> digest, for the `(path, kind)` pairs of an artifact's `content`.  A missing
    path or a file that does not decode raises ParseError."""
    out = {}
    for rel, kind in content:
        path = tree / rel
        if not path.exists():
            raise ParseError(path, None, "is missing")
        out[rel] = KINDS[kind](path)
    return out
