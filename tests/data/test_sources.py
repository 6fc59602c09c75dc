"""Fetching: checksums against the lock, corrupt files moved aside and refetched, atomic
downloads, missing clients, unpacking (.deb built here in the real ar + tar format)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
from datafmt import tar_bytes, write_deb

from normlab.data.sources import (
    Artifact,
    ChecksumError,
    FetchError,
    Lock,
    NpmSource,
    UrlSource,
    cache_root,
    fetch_artifact,
    unpack,
)

PAYLOAD = b"real bytes of some dataset file\n" * 100


@pytest.fixture
def origin(tmp_path) -> Path:
    p = tmp_path / "origin" / "data.bin"
    p.parent.mkdir()
    p.write_bytes(PAYLOAD)
    return p


def artifact_for(path: Path, *extra_sources) -> Artifact:
    return Artifact(key="test:data", filename="data.bin", sources=(*extra_sources, UrlSource(path.as_uri())))


def pinned_lock(tmp_path, sha=None) -> Lock:
    lock = Lock(path=tmp_path / "lock.json")
    lock.entries["test:data"] = {"file": "data.bin", "sha256": sha or hashlib.sha256(PAYLOAD).hexdigest()}
    return lock


def test_fetch_verifies_and_reuses(tmp_path, origin):
    cache, lock = tmp_path / "cache", pinned_lock(tmp_path)
    got = fetch_artifact(artifact_for(origin), cache, lock)
    assert got == cache / "raw" / "data.bin" and got.read_bytes() == PAYLOAD
    origin.unlink()  # a second call must not download again
    assert fetch_artifact(artifact_for(origin), cache, lock).read_bytes() == PAYLOAD


def test_corrupt_cached_file_is_moved_aside_then_refetched(tmp_path, origin):
    cache, lock = tmp_path / "cache", pinned_lock(tmp_path)
    got = fetch_artifact(artifact_for(origin), cache, lock)
    got.write_bytes(PAYLOAD[:100])  # truncated
    with pytest.raises(ChecksumError) as err:
        fetch_artifact(artifact_for(origin), cache, lock)
    msg = str(err.value)
    assert "checksum mismatch for test:data" in msg and "moved aside" in msg and "run the same command" in msg
    assert not got.exists()
    assert (cache / "raw" / "data.bin.corrupt").read_bytes() == PAYLOAD[:100]
    assert fetch_artifact(artifact_for(origin), cache, lock).read_bytes() == PAYLOAD  # next call: fresh


def test_download_with_wrong_checksum_never_lands(tmp_path, origin):
    cache, lock = tmp_path / "cache", pinned_lock(tmp_path, sha="0" * 64)
    with pytest.raises(FetchError, match="does not match the lock"):
        fetch_artifact(artifact_for(origin), cache, lock)
    assert not (cache / "raw" / "data.bin").exists()
    assert [p.name for p in (cache / "raw").iterdir()] == ["data.bin.source0.corrupt"]


def test_unpinned_artifact_is_recorded_on_first_fetch_only_when_allowed(tmp_path, origin, capsys):
    cache, lock = tmp_path / "cache", Lock(path=tmp_path / "lock.json")
    with pytest.raises(ChecksumError, match="no sha256"):
        fetch_artifact(artifact_for(origin), cache, lock, record_new=False)
    fetch_artifact(artifact_for(origin), cache, lock)
    assert (
        Lock.load(tmp_path / "lock.json").entries["test:data"]["sha256"]
        == hashlib.sha256(PAYLOAD).hexdigest()
    )
    assert "commit the lock file" in capsys.readouterr().err


class _CutOffHandler(http.server.BaseHTTPRequestHandler):
    """Promises 10,000 bytes, sends 500, then hangs up: an interrupted download."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "10000")
        self.end_headers()
        self.wfile.write(b"x" * 500)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_interrupted_http_download_leaves_no_file_that_looks_complete(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _CutOffHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/data.bin"
        art = Artifact(key="test:data", filename="data.bin", sources=(UrlSource(url),))
        with pytest.raises(FetchError, match="every source failed"):
            fetch_artifact(art, tmp_path / "cache", pinned_lock(tmp_path))
    finally:
        server.shutdown()
    assert list((tmp_path / "cache" / "raw").iterdir()) == []  # no partial file, no temp folder


def test_missing_client_names_next_source_and_how_to_install(tmp_path, origin, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no npm anywhere
    art = artifact_for(origin, NpmSource("some-package", "1.0.0"))
    got = fetch_artifact(art, tmp_path / "cache", pinned_lock(tmp_path))
    assert got.read_bytes() == PAYLOAD
    err = capsys.readouterr().err
    assert "`npm` client is not installed" in err and "install Node.js" in err
    assert f"trying the next source: URL {origin.as_uri()}" in err

    only_npm = Artifact(key="test:data", filename="other.bin", sources=(NpmSource("some-package", "1.0.0"),))
    with pytest.raises(FetchError, match="npm` client is not installed.*no source left"):
        fetch_artifact(only_npm, tmp_path / "cache2", pinned_lock(tmp_path))


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMLAB_DATA", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("NORMLAB_DATA")
    monkeypatch.chdir(tmp_path)
    assert cache_root() == tmp_path / "data_cache"


def test_unpack_deb_extracts_only_the_members_asked_for(tmp_path):
    deb = tmp_path / "pkg_1.0_all.deb"
    write_deb(deb, {"./usr/share/datasets/x/a.gz": b"A", "./usr/share/doc/x/copyright": b"C"})
    art = Artifact(key="deb:pkg=1.0", filename=deb.name, sources=(), members=("usr/share/datasets/x/*",))
    out = unpack(art, deb, tmp_path / "cache")
    assert (out / "usr/share/datasets/x/a.gz").read_bytes() == b"A"
    assert not (out / "usr/share/doc").exists()


def test_unpack_tgz_with_no_matching_member_fails_clearly(tmp_path):
    tgz = tmp_path / "pkg.tgz"
    tgz.write_bytes(tar_bytes({"package/readme": b"r"}, mode="w:gz"))
    art = Artifact(key="npm:pkg@1", filename=tgz.name, sources=(), members=("package/data/*",))
    with pytest.raises(Exception, match="no member matches"):
        unpack(art, tgz, tmp_path / "cache")
    assert not (tmp_path / "cache" / "unpacked" / "npm_pkg@1").exists()


def test_committed_lock_pins_every_default_corpus_artifact():
    from normlab.data.registry import DATASETS

    lock = Lock.load()
    for spec in DATASETS.values():
        if spec.default:
            for art in spec.artifacts:
                entry = lock.entries[art.key]
                assert len(entry["sha256"]) == 64 and entry["file"] == art.filename
