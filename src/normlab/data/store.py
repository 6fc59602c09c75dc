"""The prepared on-disk format and the objects `normlab.data.load` returns.

Layout of `CACHE/prepared/NAME/`:
    meta.json                  family, splits, vocabulary sizes, special ids, label names, input checksums
    card.json                  the data card (see cards.py)
    tokenizer.json             HuggingFace tokenizer (text datasets; translation: shared source/target)
    SPLIT/FIELD.npy            arrays, loaded memory-mapped:
        tokens.npy, offsets.npy       flat int32 ids + int64 offsets (n+1) of each sequence
        target.npy, target_offsets.npy  translation target side
        tags.npy                      int16 label id per token (sequence labelling), aligned with tokens
        labels.npy                    int64 label per example (classification, images)
        images.npy                    uint8 (N, H, W) or (N, H, W, C)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .sources import UnknownNameError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TokenSequences:
    """Variable-length id sequences stored flat: sequence i is `ids[offsets[i]:offsets[i+1]]`."""

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def padded(self, indices: np.ndarray, pad_id: int, max_len: int | None = None) -> np.ndarray:
        """A (len(indices), L) int64 batch, right-padded with `pad_id` (truncated to `max_len`).
        Vectorised: one gather, no Python loop over tokens."""
        indices = np.asarray(indices)
        starts = self.offsets[indices]
        lengths = self.offsets[indices + 1] - starts
        width = int(lengths.max(initial=0)) if max_len is None else max_len
        width = max(width, 1)
        cols = np.arange(width)
        valid = cols[None, :] < lengths[:, None]
        gather = np.where(valid, starts[:, None] + cols[None, :], 0)
        out = np.where(valid, self.ids[gather] if len(self.ids) else 0, pad_id)
        return out.astype(np.int64)


@dataclass
class DatasetSplit:
    """One split of a prepared dataset.  Which fields are set depends on `family`:

    image:          images (N,H,W[,C]) uint8, labels (N,) int64
    translation:    tokens (source), target (TokenSequences), tokenizer shared by both sides
    lm:             tokens (one sequence per sentence, each ending in <eos>; `tokens.ids` is the stream)
    tagging:        tokens, tags (TokenSequences of label ids, same offsets as tokens)
    classification: tokens, labels (N,) int64
    """

    name: str
    split: str
    family: str
    vocab_size: int = 0
    pad_id: int = 0
    unk_id: int | None = None
    bos_id: int | None = None
    eos_id: int | None = None
    label_names: tuple[str, ...] = ()
    tokens: TokenSequences | None = None
    target: TokenSequences | None = None
    tags: TokenSequences | None = None
    labels: np.ndarray | None = None
    images: np.ndarray | None = None
    tokenizer: Tokenizer | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        if self.images is not None:
            return len(self.images)
        return len(self.tokens) if self.tokens is not None else 0

    def decode(self, ids) -> str:
        """Detokenise ids (specials skipped): BPE pieces are merged back into words."""
        if self.tokenizer is None:
            raise ValueError(f"{self.name} has no tokenizer (family {self.family})")
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)


def write_prepared(
    folder: Path,
    meta: dict,
    card: dict,
    arrays: dict[str, dict[str, np.ndarray]],
    tokenizer: Tokenizer | None,
) -> None:
    """Write everything to a temporary sibling folder, then swap it in (never half-written)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-"))
    try:
        for split, fields in arrays.items():
            (tmp / split).mkdir()
            for name, arr in fields.items():
                np.save(tmp / split / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        if tokenizer is not None:
            tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        # meta.json last: its presence marks a complete folder
        (tmp / "meta.json").write_text(json.dumps({**meta, "format": FORMAT_VERSION}, indent=2) + "\n")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_meta(folder: Path) -> dict | None:
    path = folder / "meta.json"
    if not path.exists():
        return None
    meta = json.loads(path.read_text())
    return meta if meta.get("format") == FORMAT_VERSION else None


def load_split(folder: Path, name: str, split: str, *, mmap: bool = True) -> DatasetSplit:
    meta = read_meta(folder)
    if meta is None:
        raise FileNotFoundError(f"{folder} holds no prepared dataset; run `normlab prepare {name}`")
    if split not in meta["splits"]:
        raise UnknownNameError(f"{name} has splits {meta['splits']}, not {split!r}")
    mode = "r" if mmap else None

    def arr(field_name: str) -> np.ndarray | None:
        path = folder / split / f"{field_name}.npy"
        return np.load(path, mmap_mode=mode, allow_pickle=False) if path.exists() else None

    tokens = arr("tokens")
    offsets = arr("offsets")
    target = arr("target")
    tags = arr("tags")
    tok_path = folder / "tokenizer.json"
    return DatasetSplit(
        name=name,
        split=split,
        family=meta["family"],
        vocab_size=meta.get("vocab_size", 0),
        pad_id=meta.get("pad_id", 0),
        unk_id=meta.get("unk_id"),
        bos_id=meta.get("bos_id"),
        eos_id=meta.get("eos_id"),
        label_names=tuple(meta.get("label_names", ())),
        tokens=TokenSequences(tokens, offsets) if tokens is not None else None,
        target=TokenSequences(target, arr("target_offsets")) if target is not None else None,
        tags=TokenSequences(tags, offsets) if tags is not None else None,
        labels=arr("labels"),
        images=arr("images"),
        tokenizer=Tokenizer.from_file(str(tok_path)) if tok_path.exists() else None,
        meta=meta,
    )
