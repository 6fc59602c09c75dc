"""Where dataset files come from, and how they are fetched, verified and unpacked.

An *artifact* is one file a dataset needs (a .deb, an npm tarball, a PyPI sdist, a .tar.gz from a
dataset host).  It lists one or more *sources* that all deliver the same bytes, tried in order; for
example a Debian package by `apt-get download`, or the same file from a mirror URL.  Each
artifact's sha256 lives in the committed lock file (`checksums.lock.json`, next to this module).

Guarantees:
  * a download goes to a temporary name inside the cache and is renamed only after its checksum
    matched, so an interrupted fetch never leaves a file that looks complete;
  * a cached file whose checksum no longer matches is moved aside to `NAME.corrupt` and the call
    fails with a `ChecksumError`; the next call fetches it again;
  * a missing client (`apt-get`, `npm`, `pip`) is reported with how to install it, and the next
    source is tried.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
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

from normlab.atomic import atomic_write_text

LOCK_PATH = Path(__file__).with_name("checksums.lock.json")
CACHE_ENV = "NORMLAB_DATA"
CLIENT_TIMEOUT_S = 600


class DataError(RuntimeError):
    """Base class of the data layer's errors; the message says what went wrong and what to do."""


class ChecksumError(DataError):
    pass


class FetchError(DataError):
    pass


class MissingClientError(FetchError):
    pass


class UnknownNameError(DataError, KeyError):
    """A dataset or split name that does not exist.  A KeyError too, for callers that look names up like
    a dict; its str() is the message itself (a KeyError's would be the message in quotes)."""

    __str__ = DataError.__str__


class ParseError(DataError):
    """A source file is not in the expected format.  The message names the file and the line."""

    def __init__(self, path: Path | str, line: int | None, problem: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


def cache_root(cache: str | os.PathLike | None = None) -> Path:
    """The cache folder: the `cache` argument, else $NORMLAB_DATA, else ./data_cache."""
    if cache is not None:
        return Path(cache).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    return (Path.cwd() / "data_cache").resolve()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Sources.  Each knows how to put its file into an (empty, temporary) folder.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
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
        _require_client(
            "apt-get", "it comes with Debian/Ubuntu's `apt`; on other systems use the next source"
        )
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
    to unpack (empty: unpack nothing, the parser reads the file itself)."""

    key: str
    filename: str
    sources: tuple[Source, ...]
    members: tuple[str, ...] = ()
    license: str = ""


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


def fetch_artifact(artifact: Artifact, cache: Path, lock: Lock, *, record_new: bool = True) -> Path:
    """Return the verified path of `artifact` in `cache/raw/`, downloading it if needed.

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
    for i, source in enumerate(artifact.sources):
        nxt = artifact.sources[i + 1].describe() if i + 1 < len(artifact.sources) else None
        with tempfile.TemporaryDirectory(dir=raw_dir, prefix=".partial-") as tmp:
            try:
                _log(f"fetching {artifact.key} from {source.describe()}")
                got = source.download_into(Path(tmp))
            except FetchError as err:
                hint = f"trying the next source: {nxt}" if nxt else "no source left"
                msg = f"{source.describe()}: {err}; {hint}"
                _log(msg)
                failures.append(msg)
                continue
            actual = sha256_of(got)
            if expected is not None and actual != expected:
                aside = final.with_name(final.name + f".source{i}.corrupt")
                os.replace(got, aside)
                msg = (
                    f"{source.describe()}: sha256 {actual} does not match the lock ({expected}); "
                    f"moved aside to {aside}"
                )
                _log(msg)
                failures.append(msg)
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
    raise FetchError(f"could not fetch {artifact.key}; every source failed:\n  - " + "\n  - ".join(failures))


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


def unpack(artifact: Artifact, archive: Path, cache: Path) -> Path:
    """Unpack the artifact's `members` into cache/unpacked/<key>/ (atomically; reused if done)."""
    dest = cache / "unpacked" / artifact.key.replace("/", "_").replace(":", "_")
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".partial-"))
    try:
        name = archive.name
        count = 0
        if name.endswith(".deb"):
            import io

            for member, data in _ar_members(archive):
                if member.startswith("data.tar"):
                    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                        count = _extract_tar(tar, artifact.members, tmp)
        elif name.endswith((".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar")):
            with tarfile.open(archive) as tar:
                count = _extract_tar(tar, artifact.members, tmp)
        elif name.endswith((".zip", ".whl")):
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if any(fnmatch.fnmatch(n, p) for p in artifact.members)]
                for n in names:
                    zf.extract(n, tmp)
                count = len(names)
        else:
            raise DataError(f"do not know how to unpack {archive}")
        if count == 0:
            raise ParseError(archive, None, f"no member matches {list(artifact.members)}")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest
