"""Sources are tried in order: when Debian's apt is missing (RHEL, macOS) or a source fails, the
next one is used; a publisher's own files in another container are accepted when what the parser
reads is the same as in the pinned artifact.  Everything is served from files the tests write (a
local HTTP server on 127.0.0.1, file:// URLs)."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from datafmt import write_deb, write_idx, write_sword_module

from normlab.data import parsers as P
from normlab.data import prepare, registry
from normlab.data.content import content_digests
from normlab.data.datasets import bible
from normlab.data.sources import (
    Artifact,
    DebianSource,
    FetchError,
    Lock,
    PublisherFile,
    PublisherSource,
    UrlSource,
    obtain,
    read_members_record,
    unpack,
)
from normlab.data.store import load_split

IDX = "usr/share/datasets/x"
NAMES = ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _gz(data: bytes, level: int, mtime: int) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=level, mtime=mtime) as fh:
        fh.write(data)
    return buf.getvalue()


def _labels(tmp: Path, n: int, seed: int) -> bytes:
    """The bytes of an (uncompressed) IDX label file."""
    write_idx(tmp / "labels-idx1-ubyte", np.random.default_rng(seed).integers(0, 10, n).astype(np.uint8))
    return (tmp / "labels-idx1-ubyte").read_bytes()


@pytest.fixture
def deb_and_publisher(tmp_path, served):
    """A 'Debian package' holding two .gz IDX files, and the publisher's own .gz files of the same
    data compressed differently (other bytes), served over HTTP.  Returns (artifact maker, lock)."""
    www, base = served
    data = {name: _labels(tmp_path, 50 + 10 * i, i) for i, name in enumerate(NAMES)}
    deb = tmp_path / "pkg_1_all.deb"
    write_deb(deb, {f"./{IDX}/{n}": _gz(d, 9, 0) for n, d in data.items()})
    for n, d in data.items():
        (www / n).write_bytes(_gz(d, 1, 1234567))
        assert (www / n).read_bytes() != _gz(d, 9, 0)  # a different container of the same data

    def artifact(*container_sources, files=NAMES, url=base):
        pub_files = tuple(PublisherFile(f"pub:{n}", f"{url}/{n}", f"{IDX}/{n}") for n in files)
        publisher = PublisherSource("The publisher", pub_files)
        return Artifact(
            key="deb:pkg=1",
            filename=deb.name,
            sources=(*container_sources, publisher),
            members=(f"{IDX}/*.gz",),
            content=tuple((f"{IDX}/{n}", "gunzip") for n in NAMES),
        )

    lock = Lock(path=tmp_path / "lock.json")
    pinned = artifact()
    reference = unpack(pinned, deb, tmp_path / "reference")  # the pinned artifact's members
    lock.entries[pinned.key] = {
        "file": deb.name,
        "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
        "content": content_digests(reference, pinned.content),
    }
    return artifact, lock, deb, www, reference


def test_without_apt_the_publishers_files_are_used(tmp_path, deb_and_publisher, monkeypatch, capsys):
    artifact, lock, _, _, reference = deb_and_publisher
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no apt-get: RHEL, macOS
    art = artifact(DebianSource("pkg", "1"))
    tree = obtain(art, tmp_path / "cache", lock)
    err = capsys.readouterr().err
    assert "the `apt-get` client is not installed" in err and "trying the next source: The publisher: http" in err
    assert "use the next source" not in err
    for n in NAMES:  # the parser reads the same data as from the Debian package
        assert np.array_equal(P.read_idx(tree / IDX / n), P.read_idx(reference / IDX / n))
        assert (tree / IDX / n).read_bytes() != (reference / IDX / n).read_bytes()
    record = read_members_record(tree)
    assert record["publisher"] and record["from"].startswith("The publisher: http://127.0.0.1")
    assert sorted(record["members"]) == sorted(f"{IDX}/{n}" for n in NAMES)
    assert sorted(p.name for p in (tmp_path / "cache" / "raw").iterdir()) == sorted(f"pub_{n}" for n in NAMES)


def test_a_publisher_tree_is_reused_and_reassembled_offline(tmp_path, deb_and_publisher, served):
    artifact, lock, _, www, _ = deb_and_publisher
    art = artifact(UrlSource((tmp_path / "gone.deb").as_uri()))
    cache = tmp_path / "cache"
    first = obtain(art, cache, lock)
    for n in NAMES:
        (www / n).unlink()  # the publisher is unreachable from now on
    assert obtain(art, cache, lock) == first  # reused, its members size-checked
    (first / IDX / NAMES[0]).write_bytes(b"cut")
    with pytest.raises(Exception, match="has 3 bytes"):
        obtain(art, cache, lock)
    again = obtain(art, cache, lock, fresh=True)  # `prepare --force`: from the copies kept in raw/
    assert P.read_idx(again / IDX / NAMES[0]).shape == (50,)


def test_publisher_files_with_other_content_are_refused(tmp_path, deb_and_publisher):
    artifact, lock, _, www, _ = deb_and_publisher
    (www / NAMES[1]).write_bytes(_gz(_labels(tmp_path, 60, 99), 1, 0))  # a newer version: other labels
    art = artifact(UrlSource((tmp_path / "gone.deb").as_uri()))
    with pytest.raises(FetchError) as err:
        obtain(art, tmp_path / "cache", lock)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("could not fetch deb:pkg=1; every source failed: [1] URL file://")
    assert "[2] The publisher: http://127.0.0.1" in msg and f"{IDX}/{NAMES[1]}: its content (gunzip) has sha256" in msg
    assert "the publisher may now serve another version" in msg and msg.endswith("; no source left")
    assert not (tmp_path / "cache" / "raw" / f"pub_{NAMES[1]}").exists()  # unpinned copy moved aside
    assert (tmp_path / "cache" / "raw" / f"pub_{NAMES[1]}.corrupt").exists()
    assert not (tmp_path / "cache" / "unpacked" / "deb_pkg=1").exists()


def test_a_publisher_file_is_checked_against_its_own_pin(tmp_path, deb_and_publisher):
    artifact, lock, _, www, _ = deb_and_publisher
    lock.entries[f"pub:{NAMES[0]}"] = {"md5": "0" * 32}
    expected = rf"{NAMES[0]} has md5 [0-9a-f]{{32}}, the lock \(pub:{NAMES[0]}\) expects 0{{32}}"
    with pytest.raises(FetchError, match=expected):
        obtain(artifact(), tmp_path / "cache", lock)
    lock.entries[f"pub:{NAMES[0]}"] = {"md5": hashlib.md5((www / NAMES[0]).read_bytes()).hexdigest()}
    assert obtain(artifact(), tmp_path / "cache", lock).is_dir()


def test_the_container_comes_first_and_a_publisher_needs_content_pins(tmp_path, deb_and_publisher):
    artifact, lock, deb, _, _ = deb_and_publisher
    art = artifact(UrlSource(deb.as_uri()))
    tree = obtain(art, tmp_path / "cache", lock)
    assert not read_members_record(tree)["publisher"] and (tmp_path / "cache" / "raw" / deb.name).exists()
    del lock.entries[art.key]["content"]
    with pytest.raises(FetchError, match="pins no content digests for deb:pkg=1"):
        obtain(artifact(), tmp_path / "other", lock)


def _zip(path: Path, files: dict[str, Path | bytes]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data if isinstance(data, bytes) else data.read_bytes())
    return path.as_uri()


@pytest.mark.parametrize("module_artifact", [bible.KJV_DEB, bible.SPARV_DEB], ids=lambda a: a.key)
def test_the_bible_modules_come_from_the_sword_zips_without_apt(tmp_path, monkeypatch, module_artifact):
    """The Bible's artifacts as declared (layout, content kind), their eBible zip URL replaced by a
    file:// one: a zip whose zlib blocks differ from the package's gives the same verse slots."""
    (data,) = {m.rsplit("/", 1)[0] for m in module_artifact.members}  # usr/share/sword/modules/...
    module = data.rsplit("/", 1)[1]
    verses = {"ot": ["", "In the beginning", "And the earth"], "nt": ["Jesus wept.", ""]}
    write_sword_module(tmp_path / "deb_src", verses, per_block=1)
    deb = tmp_path / module_artifact.filename
    write_deb(deb, {f"./{data}/{f.name}": f.read_bytes() for f in (tmp_path / "deb_src").iterdir()})
    write_sword_module(tmp_path / "zip_src", verses, per_block=3)
    zip_files = {f"modules/texts/ztext/{module}/{f.name}": f for f in (tmp_path / "zip_src").iterdir()}
    zip_files[f"mods.d/{module.lower()}.conf"] = f"[{module}]\n".encode()
    uri = _zip(tmp_path / "www" / f"{module}.zip", zip_files)
    (debian, publisher) = module_artifact.sources
    (pub_file,) = publisher.files
    art = dataclasses.replace(
        module_artifact,
        sources=(debian, dataclasses.replace(publisher, files=(dataclasses.replace(pub_file, url=uri),))),
    )
    lock = Lock(path=tmp_path / "lock.json")
    reference = unpack(art, deb, tmp_path / "reference")
    lock.entries[art.key] = {"sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
                             "content": content_digests(reference, art.content)}
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    tree = obtain(art, tmp_path / "cache", lock)
    assert read_members_record(tree)["publisher"]
    slots = [v.encode() for t in verses.values() for v in t]
    assert P.read_sword_ztext(tree / data) == P.read_sword_ztext(reference / data) == slots
    assert (tree / data / "ot.bzs").read_bytes() != (reference / data / "ot.bzs").read_bytes()
    assert not (tree / "usr/share/sword/mods.d").exists()  # only the module's data is taken


def test_prepared_arrays_from_a_publishers_zip_equal_those_from_the_pinned_artifact(tmp_path, monkeypatch, tiny_bible):
    """End to end, with tiny_bible: its modules from one zip (file:// URL) whose zlib blocks differ
    from the pinned .tgz's; `prepare` accepts it on its verse slots and writes the same arrays."""
    from tiny import ENGLISH, SPANISH

    pinned = registry.DATASETS["tiny_bible"]
    (art,) = pinned.artifacts
    via_container = prepare("tiny_bible", tmp_path / "c1", lock=tiny_bible, quiet=True)
    files = {}
    for side, verses in (("es", SPANISH), ("en", ENGLISH)):
        write_sword_module(tmp_path / "zip_src" / side, {"ot": verses * 5, "nt": verses * 5}, per_block=3)
        files |= {f"{side}/{f.name}": f for f in (tmp_path / "zip_src" / side).iterdir()}
    uri = _zip(tmp_path / "www" / "mods.zip", files)
    content = (("mods/es", "sword-ztext"), ("mods/en", "sword-ztext"))
    publisher = PublisherSource("The Bible society", (PublisherFile("pub:mods.zip", uri, "mods", "*/*"),))
    gone = UrlSource((tmp_path / "gone.tgz").as_uri())
    via = dataclasses.replace(art, sources=(gone, publisher), content=content)
    tiny_bible.entries[art.key]["content"] = content_digests(tmp_path / "c1" / "unpacked" / "test_tiny-bible", content)
    monkeypatch.setitem(registry.DATASETS, "tiny_bible", dataclasses.replace(pinned, artifacts=(via,)))
    via_publisher = prepare("tiny_bible", tmp_path / "c2", lock=tiny_bible, quiet=True)
    assert read_members_record(tmp_path / "c2" / "unpacked" / "test_tiny-bible")["publisher"]
    for split in ("train", "valid", "test"):
        a = load_split(via_container, "tiny_bible", split)
        b = load_split(via_publisher, "tiny_bible", split)
        assert np.array_equal(a.tokens.ids, b.tokens.ids) and np.array_equal(a.target.ids, b.target.ids)
        assert np.array_equal(a.tokens.offsets, b.tokens.offsets)
