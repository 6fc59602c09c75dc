"""Translation text as fairseq's preparation scripts make it, and back again for scoring.

The papers' translation data (IWSLT14 De-En, WMT16 En-De) is prepared the way the authors' data was:
each function below is one step of fairseq's ``examples/translation/prepare-*.sh`` (or of the script
that made the data fairseq's WMT16 recipe downloads), named after the tool it reproduces:

=======================  ==========================================================================
function                 reproduces
=======================  ==========================================================================
``read_lines``           ``cat FILE``: lines split on ``\\n`` only (never on other Unicode breaks)
``iwslt_train_lines``    prepare-iwslt14.sh's ``grep -v``/``sed`` filter of ``train.tags.*``
``seg_lines``            prepare-iwslt14.sh's ``grep '<seg id' | sed ...`` of the test/dev XML
``sgm_lines``            mosesdecoder ``scripts/ems/support/input-from-sgm.perl``
``moses_tokenize``       mosesdecoder ``tokenizer/tokenizer.perl -l LANG`` (through sacremoses)
``lowercase``            mosesdecoder ``tokenizer/lowercase.perl`` (Perl ``lc``)
``clean_corpus``         mosesdecoder ``training/clean-corpus-n.perl [-ratio R] CORPUS L1 L2 OUT MIN MAX``
``learn_bpe``            subword-nmt ``learn_bpe.py -s MERGES`` (the subword-nmt package itself)
``BpeCodes.apply``       subword-nmt ``apply_bpe.py -c CODES``
``joined_dictionary``    ``fairseq-preprocess --joined-dictionary [--nwordssrc N]``
``remove_bpe``           ``fairseq-generate --remove-bpe`` (``@@ `` removed)
``detokenize``           mosesdecoder ``tokenizer/detokenizer.perl -l LANG`` (sacremoses)
=======================  ==========================================================================

:class:`MosesBpeText` turns ids back into the strings BLEU is computed on: BPE tokens -> BPE removed
(the Moses-tokenised text of tokenised BLEU) -> Moses-detokenised text (for sacreBLEU).
Loops here run once per sentence, at preparation or scoring time.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ParseError

PIPELINE = "moses+subword-nmt"  # the value of a dataset's options["text"] / meta["text"]["pipeline"]
CODES_FILE = "bpe_codes.txt"  # beside tokenizer.json in a prepared folder
BPE_SYMBOL = "@@ "  # subword-nmt's separator "@@" plus the space that joins a word's pieces
UNK_ESCAPED = "<<unk>>"  # fairseq writes an unknown reference token so, so it never matches a hypothesis
PADDING_WORD = "madeupword{:04d}"  # fairseq pads a dictionary to a multiple of 8 with these


class TextError(ValueError):
    """A text file that the recipe cannot process (names the file and the line)."""


# ------------------------------------------------------------------------------------- reading files


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file as the shell tools see them: split on ``\\n`` only (``str.splitlines``
    would also split on U+2028, U+0085, form feeds ... and misalign parallel files); a final newline
    ends the last line.  ``\\r`` stays (the tokenizer removes it)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseError(path, data[: err.start].count(b"\n") + 1, f"not valid UTF-8 ({err.reason})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


_IWSLT_DROP = ("<url>", "<talkid>", "<keywords>")
_IWSLT_STRIP = ("<title>", "</title>", "<description>", "</description>")


def iwslt_train_lines(path: Path) -> list[str]:
    """``train.tags.de-en.L`` filtered as prepare-iwslt14.sh does before tokenising: lines containing
    ``<url>``, ``<talkid>`` or ``<keywords>`` are dropped; ``<title>``, ``</title>``,
    ``<description>``, ``</description>`` are deleted and the text between them kept as a sentence.
    Nothing else is touched (the script keeps every other line as it is)."""
    out = []
    for line in read_lines(path):
        if any(tag in line for tag in _IWSLT_DROP):
            continue
        for tag in _IWSLT_STRIP:
            line = line.replace(tag, "")
        out.append(line)
    return out


_SED_SPACE = "[ \t\n\r\f\v]"  # GNU sed's \s in the C locale
_SEG_OPEN = re.compile(rf'<seg id="[0-9]*">{_SED_SPACE}*')
_SEG_CLOSE = re.compile(rf"{_SED_SPACE}*</seg>{_SED_SPACE}*")


def seg_lines(path: Path) -> list[str]:
    """The test/dev XML of prepare-iwslt14.sh (and of prepare-wmt14en2de.sh's test): the lines
    containing ``<seg id``, with ``<seg id="N">`` + following spaces and spaces + ``</seg>`` + spaces
    deleted, and the right single quote ``’`` replaced by ``'``.  Entities are left as they are."""
    return [
        _SEG_CLOSE.sub("", _SEG_OPEN.sub("", line)).replace("\u2019", "'")
        for line in read_lines(path)
        if "<seg id" in line
    ]


_SGM_OPEN_ONLY = re.compile(r"<seg[^>]+>\s*$", re.IGNORECASE)
_SGM_OPEN = re.compile(r"<seg[^>]+>\s*(.*)\s*$", re.IGNORECASE)
_SGM_SEG = re.compile(r"<seg[^>]+>\s*(.*)\s*</seg>", re.IGNORECASE)


def sgm_lines(path: Path) -> list[str]:
    """input-from-sgm.perl: the text of every ``<seg ...>...</seg>`` (a segment continued on later lines
    is joined to them without a separator, as the script's ``chop`` + ``.=`` does), spaces collapsed
    and stripped.  Entities are left as they are (sacreBLEU's own SGML reader does not unescape them
    either)."""
    lines, out, i = read_lines(path), [], 0
    while i < len(lines):
        line = lines[i]
        i += 1
        while _SGM_OPEN_ONLY.search(line) and i < len(lines):
            line, i = line + lines[i], i + 1
        while _SGM_OPEN.search(line) and not _SGM_SEG.search(line) and i < len(lines):
            line, i = line + lines[i], i + 1
        m = _SGM_SEG.search(line)
        if m:
            out.append(_collapse(m.group(1)))
    return out


_PERL_SPACE = re.compile(r"[^\S\x1c-\x1f]+")  # Perl's \s on Unicode text: Python's \s minus \x1c-\x1f


def normalize_reference(line: str) -> str:
    """An untokenised reference as kept for sacreBLEU: runs of spaces collapsed, ends stripped."""
    return _collapse(line)


def _collapse(line: str) -> str:
    """Perl ``s/\\s+/ /g; s/^ //; s/ $//``."""
    line = _PERL_SPACE.sub(" ", line)
    if line.startswith(" "):
        line = line[1:]
    return line[:-1] if line.endswith(" ") else line


# ------------------------------------------------------------------------------------- text steps


def default_workers() -> int:
    """Processes for tokenising and applying BPE to large corpora (the scripts' ``-threads 8``)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus))


PARALLEL_FROM = 20_000  # fewer lines than this are processed in this process (starting workers costs ~1 s)


def _map(fn: Callable[[list[str]], list[str]], lines: list[str], workers: int) -> list[str]:
    """``fn`` over ``lines`` in order, in ``workers`` processes (1: in this one)."""
    if workers <= 1 or len(lines) < PARALLEL_FROM:
        return fn(lines)
    from multiprocessing import get_context

    size = -(-len(lines) // (workers * 8))
    chunks = [lines[i : i + size] for i in range(0, len(lines), size)]
    with get_context("spawn").Pool(workers) as pool:
        return [line for part in pool.map(fn, chunks) for line in part]


@dataclass(frozen=True)
class _Tokenize:
    lang: str
    escape: bool
    aggressive_dash_splits: bool

    def __call__(self, lines: list[str]) -> list[str]:
        tok = _moses_tokenizer(self.lang)
        return [
            tok.tokenize(line, aggressive_dash_splits=self.aggressive_dash_splits, return_str=True, escape=self.escape)
            for line in lines
        ]


@lru_cache(maxsize=8)
def _moses_tokenizer(lang: str):
    from sacremoses import MosesTokenizer

    return MosesTokenizer(lang=lang)


@lru_cache(maxsize=8)
def _moses_detokenizer(lang: str):
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=lang)


def moses_tokenize(
    lines: Sequence[str], lang: str, *, escape: bool = True, aggressive_dash_splits: bool = False, workers: int = 1
) -> list[str]:
    """tokenizer.perl ``-l LANG`` with its defaults, as the scripts call it: special characters escaped
    (``&amp; &#124; &lt; &gt; &apos; &quot; &#91; &#93;``), hyphens not split (no ``-a``), the
    language's non-breaking prefixes (``Mr.``, German ordinals ...).  Empty lines stay empty."""
    return _map(_Tokenize(lang, escape, aggressive_dash_splits), list(lines), workers)


def detokenize(text: str, lang: str) -> str:
    """detokenizer.perl ``-l LANG``: Moses-tokenised text back to plain text (entities unescaped)."""
    return _moses_detokenizer(lang).detokenize(text.split(), return_str=True, unescape=True)


def lowercase(lines: Iterable[str]) -> list[str]:
    """lowercase.perl, i.e. Perl's ``lc`` of every line: per-character lowercasing (Python's
    ``str.lower`` would turn a word-final capital sigma into ``ς``; Perl always gives ``σ``)."""
    return [line.lower() if "\u03a3" not in line else "".join(c.lower() for c in line) for line in lines]


_NOT_SPACE_OR_BAR = r"[^\s|]"


def clean_corpus(
    l1: Sequence[str],
    l2: Sequence[str],
    *,
    min_len: int,
    max_len: int,
    ratio: float = 9.0,
    max_word_length: int = 1000,
) -> tuple[list[int], list[str], list[str]]:
    """clean-corpus-n.perl: the pairs kept, and their cleaned text.

    Exactly the script's rules, in its order: ``|`` is deleted (unless the first pair contains one:
    "factored" input), runs of spaces become one space and one leading/trailing space goes; a pair
    is dropped if either side is then empty, has more than ``max_len`` or fewer than ``min_len``
    space-separated words, if the longer side has more than ``ratio`` times the words of the shorter
    (a ratio equal to ``ratio`` is kept), or if either side has a word longer than
    ``max_word_length`` characters.  Returns (0-based indices of the kept pairs, l1, l2)."""
    if len(l1) != len(l2):
        raise TextError(f"clean-corpus: the parallel sides have {len(l1)} and {len(l2)} lines")
    factored = bool(l1) and ("|" in l1[0] or "|" in l2[0])
    too_long = re.compile(f"{_NOT_SPACE_OR_BAR}{{{max_word_length + 1}}}")
    kept, out1, out2 = [], [], []
    for i, (f, e) in enumerate(zip(l1, l2, strict=True)):
        if not factored:
            f, e = f.replace("|", ""), e.replace("|", "")
        f, e = _collapse(f), _collapse(e)
        if not f or not e:
            continue
        fc, ec = len(f.split(" ")), len(e.split(" "))
        if ec > max_len or fc > max_len or ec < min_len or fc < min_len:
            continue
        if ec / fc > ratio or fc / ec > ratio:
            continue
        if too_long.search(e) or too_long.search(f):
            continue
        if re.search(r"[ |]\|", f) or re.search(r"[ |]\|", e):
            raise TextError(f"clean-corpus: a blank factor in pair {i + 1}: {f[:80]!r} / {e[:80]!r}")
        kept.append(i)
        out1.append(f)
        out2.append(e)
    return kept, out1, out2


# ------------------------------------------------------------------------------------- BPE


def learn_bpe(lines: Iterable[str], merges: int, *, min_frequency: int = 2) -> str:
    """subword-nmt ``learn_bpe.py -s MERGES`` on ``lines`` (the scripts: the concatenated tokenised
    training text of both sides).  Returns the codes file's text (``#version: 0.2`` + one merge a
    line, in the order learned).

    The words are counted here as subword-nmt counts them (split on single spaces, first-seen order)
    and handed to it as a word-count dictionary (its ``--dict-input``): the same codes, without a
    second copy of a corpus of millions of lines in memory."""
    from contextlib import redirect_stderr

    from subword_nmt.learn_bpe import learn_bpe as _learn

    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(w for w in line.strip("\r\n ").split(" ") if w)
    out = io.StringIO()
    with redirect_stderr(io.StringIO()):  # its progress bar, and "no pair has frequency >= 2. Stopping"
        _learn(io.StringIO("".join(f"{w} {c}\n" for w, c in counts.items())), out, merges,
               min_frequency=min_frequency, is_dict=True)
    return out.getvalue()


def tool_versions() -> dict[str, str]:
    """The versions of the tools that made the text (recorded in the prepared meta.json)."""
    from importlib.metadata import version

    return {name: version(name) for name in ("sacremoses", "subword-nmt")}


class BpeCodes:
    """subword-nmt ``apply_bpe.py -c CODES``: each word split into the pieces the merges give, every
    piece but a word's last marked with ``@@``."""

    def __init__(self, codes: str):
        from subword_nmt.apply_bpe import BPE

        self.codes = codes
        self._bpe = BPE(io.StringIO(codes))

    def segment(self, lines: list[str]) -> list[str]:
        return [self._bpe.process_line(line) for line in lines]

    def apply(self, lines: Sequence[str], workers: int = 1) -> list[str]:
        return _map(self.segment, list(lines), workers)


def remove_bpe(text: str, symbol: str = BPE_SYMBOL) -> str:
    """fairseq's ``--remove-bpe``: ``(text + ' ').replace('@@ ', '').rstrip()`` (so a piece marked
    ``@@`` at the very end loses its mark too)."""
    return (text + " ").replace(symbol, "").rstrip()


# ------------------------------------------------------------------------------------- dictionary


def joined_dictionary(
    texts: Iterable[str], specials: Sequence[str], *, nwords: int | None = None, threshold: int = 0,
    padding_factor: int = 8,
) -> list[str]:
    """fairseq-preprocess ``--joined-dictionary``: every token of the training text of both sides,
    most frequent first, ties in code-point order of the token (fairseq's ``Dictionary.finalize``),
    those seen fewer than ``threshold`` times dropped, at most ``nwords`` entries *counting the
    specials* (``--nwordssrc``; None: all), then padded with ``madeupword0000``... to a multiple of
    ``padding_factor``.  Returns the symbols in id order, ``specials`` first."""
    counts = Counter(tok for line in texts for tok in line.split())
    clash = sorted(set(specials) & set(counts))
    if clash:
        raise TextError(f"the training text contains the special token(s) {clash}")
    symbols = list(specials)
    limit = None if nwords is None or nwords <= 0 else nwords - len(specials)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    for token, count in ranked[:limit]:
        if count < threshold:
            break
        symbols.append(token)
    i = 0
    while padding_factor > 1 and len(symbols) % padding_factor:
        symbols.append(PADDING_WORD.format(i))
        i += 1
    return symbols


def encode(lines: Sequence[str], index: dict[str, int], unk_id: int):
    """BPE text -> one flat int32 id array + int64 offsets (fairseq-preprocess's binarisation, without
    the EOS it appends: the batches add EOS).  Tokens not in ``index`` become ``unk_id``."""
    pieces = [[index.get(tok, unk_id) for tok in line.split()] for line in lines]
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((i for p in pieces for i in p), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


@dataclass(frozen=True)
class MosesBpeVocabulary:
    """What a prepared folder keeps of the subwords: the dictionary (id order) and the BPE codes.

    ``save(path)`` writes the dictionary as a HuggingFace word-level ``tokenizer.json`` (so
    ``normlab.data.load`` gives a tokenizer that encodes BPE text and maps ids to tokens) and the
    codes as ``bpe_codes.txt`` beside it (to segment new tokenised text)."""

    symbols: tuple[str, ...]
    codes: str

    def tokenizer(self):
        from tokenizers import Tokenizer, models, pre_tokenizers

        from .text import SEQ2SEQ_SPECIALS, UNK

        tok = Tokenizer(models.WordLevel({s: i for i, s in enumerate(self.symbols)}, unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.add_special_tokens(list(SEQ2SEQ_SPECIALS))  # already in the vocabulary: only marked special
        return tok

    def save(self, path: str) -> None:
        self.tokenizer().save(str(path))
        (Path(path).parent / CODES_FILE).write_text(self.codes, encoding="utf-8")


# ------------------------------------------------------------------------------------- ids -> text


@dataclass(frozen=True)
class MosesBpeText:
    """How target ids become text, for data prepared with Moses + subword-nmt.

    ``symbols``: the dictionary (id -> token); ``skip``: ids never printed (pad, BOS, EOS);
    ``unk_id``; ``lang``: the target language (detokenisation).
    """

    symbols: tuple[str, ...]
    skip: frozenset[int]
    unk_id: int
    lang: str

    def bpe(self, ids: Iterable[int], *, escape_unk: bool = False) -> str:
        """fairseq's ``Dictionary.string``: the tokens joined by spaces, specials skipped, an unknown
        token as ``<unk>`` (or ``<<unk>>`` with ``escape_unk``: how fairseq-generate writes references)."""
        unk = UNK_ESCAPED if escape_unk else self.symbols[self.unk_id]
        return " ".join(unk if i == self.unk_id else self.symbols[i] for i in map(int, ids) if i not in self.skip)

    def tokenized(self, ids: Iterable[int], *, escape_unk: bool = False) -> str:
        """The Moses-tokenised text (BPE removed): what fairseq-generate ``--remove-bpe`` scores."""
        return remove_bpe(self.bpe(ids, escape_unk=escape_unk))

    def detokenized(self, ids: Iterable[int]) -> str:
        """Plain text (BPE removed, Moses-detokenised): what sacreBLEU scores."""
        return detokenize(self.tokenized(ids), self.lang)


def target_text(meta: dict, tokenizer) -> MosesBpeText | None:
    """The :class:`MosesBpeText` of a prepared translation dataset made with Moses + subword-nmt
    (``meta``: its meta.json, ``tokenizer``: its tokenizer.json), None for other data."""
    text = meta.get("text") or {}
    if text.get("pipeline") != PIPELINE:
        return None
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    symbols = tuple(tokenizer.id_to_token(i) for i in range(size))
    skip = frozenset(meta[k] for k in ("pad_id", "bos_id", "eos_id") if meta.get(k) is not None)
    return MosesBpeText(symbols, skip, meta["unk_id"], text["target_lang"])
