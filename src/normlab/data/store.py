"""The prepared on-disk format and the objects `normlab.data.load` returns.

Layout of `CACHE/prepared/NAME/`:
    meta.json                  family, splits, vocabulary sizes, special ids, label names, and `files`:
                               size and sha256 of every array, of tokenizer.json and of inputs.json
    inputs.json                size and sha256 of every unpacked source member it was built from
    verified.json              present once every file was hashed and matched meta.json (first load)
    card.json                  the data card (see cards.py)
    tokenizer.json             HuggingFace tokenizer (text datasets; translation: shared source/target;
                               Moses + subword-nmt data: the word-level dictionary of BPE tokens)
    bpe_codes.txt              Moses + subword-nmt data: the subword-nmt codes (normlab.data.mt)
    SPLIT/FIELD.npy            arrays, loaded memory-mapped:
        tokens.npy, offsets.npy       flat int32 ids + int64 offsets (n+1) of each sequence
        target.npy, target_offsets.npy  translation target side
        reference_text.npy, reference_offsets.npy  Moses-tokenised translation data: the untokenised
                                      target of each pair (UTF-8 bytes + offsets), for sacreBLEU
        tags.npy                      int16 label id per token (sequence labelling), aligned with tokens
        chars.npy, char_offsets.npy   int32 Unicode code points of every token + int64 offsets (tokens+1),
                                      for a character CNN (sequence labelling datasets that keep them)
        labels.npy                    int64 label per example (classification, images)
        images.npy                    uint8 (N, H, W) or (N, H, W, C)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from normlab.atomic import atomic_write_text

from .errors import UnknownNameError
from .integrity import CorruptDataError, check_files, files_under, prepare_fix, record_files, replace_dir

FORMAT_VERSION = 2  # 2: meta.json records the size and sha256 of every file
VERIFIED = "verified.json"  # written when every file matched meta.json's sha256


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


@dataclass
class DatasetSplit:
    """One split of a prepared dataset.  Which fields are set depends on `family`:

    image:          images (N,H,W[,C]) uint8, labels (N,) int64
    translation:    tokens (source), target (TokenSequences), tokenizer shared by both sides;
                    references (UTF-8 bytes of the untokenised targets) for Moses-tokenised data
    lm, lm_stream:  tokens (one sequence per sentence, each ending in <eos>; `tokens.ids` is the stream;
                    lm_stream: the Transformer-XL scripts' vocabulary order, <eos> first, <pad> last)
    tagging:        tokens, tags (TokenSequences of label ids, same offsets as tokens); chars (the
                    characters of token p are `chars.ids[chars.offsets[p]:chars.offsets[p+1]]`,
                    code points) where the dataset keeps them
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
    chars: TokenSequences | None = None
    labels: np.ndarray | None = None
    images: np.ndarray | None = None
    tokenizer: Tokenizer | None = None
    meta: dict = field(default_factory=dict)
    references: TokenSequences | None = None
    _text: object = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        if self.images is not None:
            return len(self.images)
        return len(self.tokens) if self.tokens is not None else 0

    def decode(self, ids) -> str:
        """Detokenise ids (specials skipped): BPE pieces are merged back into words (and, for data
        prepared with Moses + subword-nmt, the Moses tokenisation undone: see `target_text`)."""
        if self.tokenizer is None:
            raise ValueError(f"{self.name} has no tokenizer (family {self.family})")
        text = self.target_text()
        if text is not None:
            return text.detokenized(ids)
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def target_text(self):
        """`normlab.data.mt.MosesBpeText` for data prepared with Moses + subword-nmt (ids -> BPE
        tokens -> Moses-tokenised text -> plain text), None otherwise."""
        if self._text is None and self.tokenizer is not None:
            from .mt import target_text

            self._text = target_text(self.meta, self.tokenizer) or False
        return self._text or None

    def reference(self, i: int) -> str:
        """The untokenised target of pair i (Moses-tokenised data keeps it for sacreBLEU)."""
        if self.references is None:
            raise ValueError(f"{self.name} {self.split} keeps no untokenised references")
        return bytes(self.references[i]).decode("utf-8")


def write_prepared(
    folder: Path,
    meta: dict,
    card: dict,
    arrays: dict[str, dict[str, np.ndarray]],
    tokenizer: Tokenizer | None,
    inputs: dict[str, dict] | None = None,
) -> None:
    """Write everything to a temporary sibling folder, then swap it in (never half-written).
    `inputs` (artifact key -> record of its unpacked members) goes to inputs.json; meta.json records
    the size and sha256 of every array, of the tokenizer and of inputs.json."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-"))
    try:
        for split, fields in arrays.items():
            (tmp / split).mkdir()
            for name, arr in fields.items():
                np.save(tmp / split / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        if tokenizer is not None:
            tokenizer.save(str(tmp / "tokenizer.json"))
        if inputs:
            (tmp / "inputs.json").write_text(json.dumps(inputs, indent=1, sort_keys=True) + "\n")
        files = record_files(tmp, files_under(tmp))
        (tmp / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        # meta.json last: its presence marks a complete folder
        meta = {**meta, "format": FORMAT_VERSION, "files": files}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        replace_dir(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_meta(folder: Path) -> dict | None:
    """meta.json of a complete folder in the current format, else None (prepare rebuilds it)."""
    path = folder / "meta.json"
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
    except ValueError:
        return None
    return meta if meta.get("format") == FORMAT_VERSION else None


def _open_meta(folder: Path, name: str) -> tuple[bytes, dict]:
    """meta.json's bytes and content, or the error saying how to get a usable folder."""
    cache = folder.parent.parent
    path = folder / "meta.json"
    if not folder.exists():
        raise FileNotFoundError(
            f"{folder} holds no prepared dataset; run `normlab prepare {name}` (with `--cache {cache}`)"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (an incomplete or damaged folder); {prepare_fix(name, cache)}")
    raw = path.read_bytes()
    try:
        meta = json.loads(raw)
    except ValueError as err:
        raise CorruptDataError(path, f"is not valid JSON ({err})", prepare_fix(name, cache)) from None
    if meta.get("format") != FORMAT_VERSION:
        raise FileNotFoundError(
            f"{folder} was prepared in format {meta.get('format')}, this normlab reads format {FORMAT_VERSION}; "
            + prepare_fix(name, cache)
        )
    return raw, meta


def verify_prepared(folder: Path, name: str, *, hash: bool = True) -> int:
    """Check every file of a prepared folder against meta.json (sizes; sha256 too with `hash`);
    record a successful hash check in verified.json.  Returns the number of files checked."""
    raw, meta = _open_meta(folder, name)
    try:
        check_files(folder, meta["files"], hash=hash)
    except CorruptDataError as err:
        raise err.with_fix(prepare_fix(name, folder.parent.parent)) from None
    if hash:
        _mark_verified(folder, raw)
    return len(meta["files"])


def _verified(folder: Path, meta_raw: bytes) -> bool:
    try:
        record = json.loads((folder / VERIFIED).read_text())
    except (OSError, ValueError):
        return False
    return record.get("meta_sha256") == hashlib.sha256(meta_raw).hexdigest()


def _mark_verified(folder: Path, meta_raw: bytes) -> None:
    """Record that every file matched meta.json (atomically; later loads check sizes only).  A
    read-only cache is not an error: its loads keep hashing."""
    record = {"meta_sha256": hashlib.sha256(meta_raw).hexdigest(), "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        atomic_write_text(folder / VERIFIED, json.dumps(record) + "\n")
    except OSError:
        pass


def load_split(folder: Path, name: str, split: str, *, mmap: bool = True, verify: bool = False) -> DatasetSplit:
    """One split of a prepared folder.  Every file's size is checked against meta.json; the sha256
    of every file of the folder too on the first load (then recorded in verified.json) or when
    `verify`."""
    raw, meta = _open_meta(folder, name)
    if split not in meta["splits"]:
        raise UnknownNameError(f"{name} has splits {meta['splits']}, not {split!r}")
    if verify or not _verified(folder, raw):
        verify_prepared(folder, name, hash=True)
    else:
        mine = [rel for rel in meta["files"] if rel.startswith(f"{split}/") or "/" not in rel]
        try:
            check_files(folder, meta["files"], hash=False, only=mine)
        except CorruptDataError as err:
            raise err.with_fix(prepare_fix(name, folder.parent.parent)) from None
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
        chars=TokenSequences(arr("chars"), arr("char_offsets")) if (folder / split / "chars.npy").exists() else None,
        labels=arr("labels"),
        images=arr("images"),
        tokenizer=Tokenizer.from_file(str(tok_path)) if tok_path.exists() else None,
        meta=meta,
        references=TokenSequences(arr("reference_text"), arr("reference_offsets"))
        if (folder / split / "reference_text.npy").exists()
        else None,
    )
