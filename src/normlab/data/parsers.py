"""Readers for each source format.  They return plain Python/numpy data; a malformed file raises
`ParseError` naming the file and, for text formats, the 1-based line.

Formats covered (each tested on small files in the real format, see tests/data/test_parsers.py):
  IDX (MNIST/Fashion-MNIST), CIFAR-10 binary batches, SWORD zText (Bible modules), Brown `word/tag`
  files, CoNLL column files (CoNLL-2003, WNUT-16, RESUME), label/text CSV (Pang & Lee, Yelp,
  DBpedia), RFC-822 e-mails (SpamAssassin), one-sentence-per-line LM text (PTB, WikiText), IMDB's
  aclImdb folder tree.  The papers' translation files (IWSLT `train.tags.*` and `*.xml`, WMT text and
  `.sgm`) are read as fairseq's scripts read them, by `normlab.data.mt`.
"""

from __future__ import annotations

import csv
import email
import email.policy
import gzip
import html
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import ParseError

# --------------------------------------------------------------------------------------------- images


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzip): big-endian magic (0, 0, dtype 0x08=uint8, ndim), dims, data."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise ParseError(path, None, f"cannot read IDX data ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ParseError(path, None, "not an unsigned-byte IDX file (magic must be 00 00 08 NDIM)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise ParseError(
            path, None, f"IDX header says {dims} = {expected} bytes, file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


CIFAR_RECORD = 1 + 32 * 32 * 3


def read_cifar10_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32).
    Returns images as (N, 32, 32, 3) uint8 (channels last) and labels as int64."""
    path = Path(path)
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise ParseError(path, None, f"size {raw.size} is not a multiple of the {CIFAR_RECORD}-byte record")
    rec = raw.reshape(-1, CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ParseError(path, None, f"record {bad} has label {labels[bad]} (CIFAR-10 labels are 0-9)")
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    try:
        return Path(path).read_text(encoding=encoding).splitlines()
    except UnicodeDecodeError as err:
        text = Path(path).read_bytes()[: err.start]
        raise ParseError(path, text.count(b"\n") + 1, f"not valid {encoding}: {err.reason}") from err


# --------------------------------------------------------------------------------------------- SWORD


def read_sword_ztext(module_dir: Path) -> list[bytes]:
    """Every verse slot of a SWORD zText module (OT then NT), as raw (undecoded) bytes.

    `X.bzs`: 12-byte records <III (offset, compressed size, uncompressed size) of zlib blocks in
    `X.bzz`; `X.bzv`: 10-byte records <IIH (block number, offset in the unpacked block, length).
    Length 0 marks an empty slot (headings, missing verses); it is kept as b"" so that slot i of two
    modules with the same versification refers to the same verse."""
    module_dir = Path(module_dir)
    slots: list[bytes] = []
    for testament in ("ot", "nt"):
        paths = {ext: module_dir / f"{testament}.{ext}" for ext in ("bzs", "bzv", "bzz")}
        for p in paths.values():
            if not p.exists():
                raise ParseError(p, None, "missing file of the SWORD zText module")
        bzs, bzv, bzz = (paths[e].read_bytes() for e in ("bzs", "bzv", "bzz"))
        if len(bzs) % 12:
            raise ParseError(
                paths["bzs"], None, f"size {len(bzs)} is not a multiple of 12-byte block records"
            )
        if len(bzv) % 10:
            raise ParseError(
                paths["bzv"], None, f"size {len(bzv)} is not a multiple of 10-byte verse records"
            )
        blocks = list(struct.iter_unpack("<III", bzs))
        unpacked: dict[int, bytes] = {}
        for i, (block, start, length) in enumerate(struct.iter_unpack("<IIH", bzv)):
            if length == 0:
                slots.append(b"")
                continue
            if block >= len(blocks):
                raise ParseError(
                    paths["bzv"],
                    None,
                    f"verse record {i} points to block {block}; {paths['bzs'].name} has {len(blocks)} blocks",
                )
            if block not in unpacked:
                offset, csize, usize = blocks[block]
                try:
                    data = zlib.decompress(bzz[offset : offset + csize])
                except zlib.error as err:
                    raise ParseError(paths["bzz"], None, f"block {block} at byte {offset}: {err}") from err
                if len(data) != usize:
                    raise ParseError(
                        paths["bzz"], None, f"block {block} unpacks to {len(data)} bytes, index says {usize}"
                    )
                unpacked[block] = data
            data = unpacked[block]
            if start + length > len(data):
                raise ParseError(paths["bzv"], None, f"verse record {i} runs past the end of block {block}")
            slots.append(data[start : start + length])
    return slots


_OSIS_DROP = re.compile(r"<(note|title)\b[^>]*?(/>|>.*?</\1\s*>)", re.S)
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")


def clean_osis(raw: bytes) -> str:
    """Verse text from OSIS markup: drop notes and titles, then every other tag, unescape, tidy."""
    text = raw.decode("utf-8", errors="replace")
    text = _OSIS_DROP.sub(" ", text)
    text = _TAG.sub("", text)
    text = html.unescape(text).replace("\u00b6", " ")  # KJV paragraph marks
    return _SPACES.sub(" ", text).strip()


# --------------------------------------------------------------------------------------------- Brown


def read_brown_file(path: Path) -> list[list[tuple[str, str]]]:
    """One Brown file: one sentence per non-blank line, tokens `word/tag` (split on the last `/`)."""
    sentences = []
    for lineno, line in enumerate(read_lines(path), start=1):
        line = line.strip()
        if not line:
            continue
        sentence = []
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if not slash or not word or not tag:
                raise ParseError(path, lineno, f"token {token!r} is not of the form word/tag")
            sentence.append((word, tag))
        sentences.append(sentence)
    return sentences


# --------------------------------------------------------------------------------------------- CoNLL


def read_conll(
    path: Path,
    *,
    columns: int | None = None,
    sep: str | None = None,
    token_col: int = 0,
    tag_col: int = -1,
    encoding: str = "utf-8",
) -> list[tuple[list[str], list[str]]]:
    """A CoNLL-style column file: one token per line, blank line between sentences.

    `columns`: the exact number of columns every token line must have (None: at least 2).
    `-DOCSTART-` lines (CoNLL-2003 document breaks) are skipped."""
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for lineno, line in enumerate(read_lines(path, encoding), start=1):
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        cells = line.rstrip("\n").split(sep) if sep else line.split()
        if cells[0] == "-DOCSTART-":
            continue
        if (columns is not None and len(cells) != columns) or len(cells) < 2:
            want = columns if columns is not None else "at least 2"
            raise ParseError(path, lineno, f"expected {want} columns, got {len(cells)}: {line!r}")
        tokens.append(cells[token_col])
        tags.append(cells[tag_col])
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def check_bio(path: Path, sentences: list[tuple[list[str], list[str]]], scheme: str = "BIO") -> None:
    """Every tag must be `O` or PREFIX-TYPE with a prefix of the scheme (BIO, IOB1 or BMES/BIOES)."""
    prefixes = {"BIO": "BI", "IOB1": "BI", "BMES": "BMES", "BIOES": "BIES"}[scheme]
    for i, (_, tags) in enumerate(sentences):
        for t in tags:
            if t != "O" and not (len(t) > 2 and t[0] in prefixes and t[1] == "-"):
                raise ParseError(path, None, f"sentence {i + 1}: tag {t!r} is not a {scheme} tag")


def iob1_to_bio(tags: list[str]) -> list[str]:
    """CoNLL-2003's original IOB1 (B- only between two same-type entities) to BIO (IOB2)."""
    out = []
    prev = "O"
    for t in tags:
        if t.startswith("I-") and (prev == "O" or prev[2:] != t[2:]):
            t = "B-" + t[2:]
        out.append(t)
        prev = t
    return out


def bmes_to_bio(tags: list[str]) -> list[str]:
    """RESUME's BMES (S single, M middle, E end) to BIO: S,B -> B; M,E -> I."""
    return [t if t == "O" else ("B-" if t[0] in "BS" else "I-") + t[2:] for t in tags]


# --------------------------------------------------------------------------------------------- CSV and e-mail


def read_label_text_csv(
    path: Path,
    *,
    text_columns: tuple[int, ...] = (1,),
    label_column: int = 0,
    encoding: str = "utf-8-sig",
    backslash_newlines: bool = False,
) -> list[tuple[str, str]]:
    """Rows `label,text[,text...]` (Pang & Lee: `1/-1,text`; Yelp: `"1|2","text"`; DBpedia:
    `label,title,content`).  Text columns are joined with a space.  `backslash_newlines`: the
    fast.ai/Zhang et al. CSVs write line breaks as a literal backslash-n."""
    rows = []
    need = max(max(text_columns), label_column) + 1
    with open(path, newline="", encoding=encoding) as fh:
        reader = csv.reader(fh)
        try:
            for row in reader:
                if not row or not any(c.strip() for c in row):
                    continue
                if len(row) < need:
                    raise ParseError(
                        path, reader.line_num, f"expected at least {need} columns, got {len(row)}"
                    )
                text = " ".join(row[c].strip() for c in text_columns)
                if backslash_newlines:
                    text = text.replace("\\n", " ").replace('\\"', '"')
                rows.append((row[label_column].strip(), _SPACES.sub(" ", text).strip()))
        except csv.Error as err:
            raise ParseError(path, reader.line_num, f"bad CSV: {err}") from err
        except UnicodeDecodeError as err:
            raise ParseError(path, reader.line_num + 1, f"not valid {encoding}: {err.reason}") from err
    return rows


def read_email_text(path: Path) -> str:
    """Subject + the text/plain parts of an RFC-822 message (SpamAssassin corpus files)."""
    raw = Path(path).read_bytes()
    if b"\n" not in raw[:4096] or not re.match(rb"^[\w-]+:|^From ", raw[:200]):
        raise ParseError(path, 1, "does not start with an e-mail header line ('Name: value' or 'From ')")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts = [str(msg.get("Subject", "") or "")]
    for part in msg.walk():
        if part.get_content_type() != "text/plain":
            continue
        payload = part.get_payload(decode=True) or b""
        parts.append(
            payload.decode(part.get_content_charset() or "latin-1", errors="replace")
            if _known_charset(part.get_content_charset())
            else payload.decode("latin-1")
        )
    return _SPACES.sub(" ", " ".join(parts)).strip()


def _known_charset(name: str | None) -> bool:
    import codecs

    try:
        codecs.lookup(name or "latin-1")
        return True
    except LookupError:
        return False


# --------------------------------------------------------------------------------------------- LM and IMDB


def read_lm_lines(path: Path, *, skip_blank: bool = True) -> list[list[str]]:
    """PTB (`ptb.train.txt`) and WikiText (`wiki.train.tokens`): one whitespace-tokenised line per
    sentence/paragraph.  Blank lines are dropped (WikiText has one between paragraphs)."""
    out = []
    for lineno, line in enumerate(read_lines(path), start=1):
        tokens = line.split()
        if not tokens and skip_blank:
            continue
        if "\x00" in line:
            raise ParseError(path, lineno, "NUL byte in a text line (binary file?)")
        out.append(tokens)
    return out


def read_imdb_folder(split_dir: Path) -> list[tuple[str, str]]:
    """aclImdb/{train,test}/{pos,neg}/ID_RATING.txt: one review per file, label from the folder."""
    out = []
    for label in ("neg", "pos"):
        folder = Path(split_dir) / label
        if not folder.is_dir():
            raise ParseError(folder, None, "missing folder of the aclImdb layout")
        for f in sorted(folder.glob("*.txt")):
            if not re.fullmatch(r"\d+_\d+\.txt", f.name):
                raise ParseError(f, None, "file name is not ID_RATING.txt")
            text = read_lines(f)
            out.append((label, _SPACES.sub(" ", " ".join(text).replace("<br />", " ")).strip()))
    return out
