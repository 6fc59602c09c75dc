"""Writers of small files in each source's real format, for the parser tests."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def write_fashion_layout(root: Path, n_train: int = 6000, n_test: int = 50) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{stem}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


def write_sword_module(folder: Path, verses_by_testament: dict[str, list[str]], per_block: int = 2) -> None:
    """A SWORD zText module: zlib blocks (.bzz), block index (.bzs <III), verse index (.bzv <IIH)."""
    folder.mkdir(parents=True, exist_ok=True)
    for testament, verses in verses_by_testament.items():
        bzs, bzv, bzz = bytearray(), bytearray(), bytearray()
        for b in range(0, len(verses), per_block):
            chunk = [v.encode() for v in verses[b : b + per_block]]
            block_no = b // per_block
            raw, pos = b"", 0
            for v in chunk:
                bzv += struct.pack("<IIH", block_no, pos, len(v))
                raw += v
                pos += len(v)
            comp = zlib.compress(raw)
            bzs += struct.pack("<III", len(bzz), len(comp), len(raw))
            bzz += comp
        for ext, data in (("bzs", bzs), ("bzv", bzv), ("bzz", bzz)):
            (folder / f"{testament}.{ext}").write_bytes(bytes(data))


def write_cifar_bin(path: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(n, -1)  # stored as R, G, B planes
    path.write_bytes(np.concatenate([labels[:, None], planes], axis=1).tobytes())
    return images, labels


def tar_bytes(files: dict[str, bytes], mode: str = "w:xz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_deb(path: Path, files: dict[str, bytes]) -> None:
    """A Debian package in its real layout: an `ar` archive of debian-binary, control and data tars."""
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", tar_bytes({"./control": b"Package: x\n"})),
        ("data.tar.xz", tar_bytes(files)),
    ]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(bytes(out))
