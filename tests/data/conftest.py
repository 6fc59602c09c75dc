"""Fixtures for the data tests (the `network` skip lives in tests/conftest.py)."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from pathlib import Path

import pytest

# the format writers (datafmt.py) sit next to the tests; make them importable under rootdir import mode
sys.path.insert(0, str(Path(__file__).parent))

from datafmt import write_sword_module  # noqa: E402
from tiny import ENGLISH, SPANISH  # noqa: E402

from normlab.data import registry  # noqa: E402
from normlab.data.build import Parsed  # noqa: E402
from normlab.data.datasets import bible  # noqa: E402
from normlab.data.sources import Artifact, Lock, UrlSource  # noqa: E402


@pytest.fixture
def tiny_bible(tmp_path, monkeypatch):
    """A `tiny_bible` dataset: two SWORD modules in one .tgz served by a file:// URL, parsed by the
    real Bible parser; 40 verse pairs."""
    src = tmp_path / "src"
    write_sword_module(src / "es", {"ot": SPANISH * 5, "nt": SPANISH * 5})
    write_sword_module(src / "en", {"ot": ENGLISH * 5, "nt": ENGLISH * 5})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="mods")
    archive = tmp_path / "mods.tgz"
    archive.write_bytes(buf.getvalue())
    art = Artifact(
        key="test:tiny-bible",
        filename="mods.tgz",
        sources=(UrlSource(archive.as_uri()),),
        members=("mods/*",),
    )

    def parse(paths):
        pairs, counts = bible.bible_pairs(paths[art.key] / "mods/es", paths[art.key] / "mods/en")
        return Parsed(
            splits={"train": pairs[:30], "valid": pairs[30:35], "test": pairs[35:]}, raw_counts=counts
        )

    spec = registry.DatasetSpec(
        "tiny_bible",
        "translation",
        "tiny",
        (art,),
        parse,
        license="public domain",
        splits="first 30/5/5",
        preprocessing="joint BPE",
        stands_for="test",
        options={"bpe_vocab_size": 120},
    )
    monkeypatch.setitem(registry.DATASETS, "tiny_bible", spec)
    lock = Lock(path=tmp_path / "lock.json")
    lock.entries[art.key] = {"file": art.filename, "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
    return lock


