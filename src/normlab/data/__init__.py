"""normlab.data: datasets, fetched through checksum-locked sources and prepared into compact arrays.

Commands
    normlab fetch [NAME...]           download + verify sources (default: the default corpora)
    normlab prepare [NAME...]         fetch if needed, tokenise, split, write arrays + data card
    normlab prepare --verify [NAME...]  also hash every unpacked source member (prepared files always)
    normlab prepare --force NAME      unpack and rebuild from the verified downloads
    normlab prepare --cards           gather the cards into paper_tables/datasets.md
    normlab fetch --list              every registered dataset
The cache folder is `--cache`, else $NORMLAB_DATA, else ./data_cache (git-ignored):
    raw/ (verified downloads)  unpacked/ (archive members)  prepared/NAME/ (arrays, card, tokenizer).

Python API (what the training engine calls)

    from normlab.data import load, prepare
    prepare("bible_es_en")                    # once; no-op when up to date
    train = load("bible_es_en", "train")      # -> DatasetSplit, arrays memory-mapped
    valid = load("bible_es_en", "valid", cache="/scratch/normlab_data")

`load(name, split="train", cache=None, *, mmap=True, verify=False) -> DatasetSplit` with fields
    family        "image" | "translation" | "lm" | "lm_stream" | "tagging" | "classification"
    tokens        TokenSequences: flat int32 `ids` + int64 `offsets` (n+1); `tokens[i]` is sequence i,
                  `tokens.lengths` (n,), `len(tokens)`
                  translation: the source side; lm, lm_stream: sentences each ending in <eos>
                  (`tokens.ids` is the running stream for BPTT); tagging / classification: the words
    target        TokenSequences, translation target side (same shared vocabulary as the source)
    tags          TokenSequences of label ids aligned with `tokens` (tagging)
    chars         TokenSequences of every token's characters (code points; offsets per token),
                  for datasets prepared with them (conll2003, wnut16), else None
    labels        (N,) int64 (classification, image)
    images        (N, H, W) or (N, H, W, C) uint8 (image)
    vocab_size, pad_id, unk_id, bos_id, eos_id   special ids (bos/eos None where unused)
    label_names   tuple of class / tag names, index = label id
    tokenizer     tokenizers.Tokenizer (text families); `split.decode(ids)` detokenises, e.g.
                  hypotheses for sacreBLEU
    references    the papers' translation data (Moses + subword-nmt, normlab.data.mt): the
                  untokenised targets of valid/test (`split.reference(i)`), and `split.target_text()`
                  ids -> BPE tokens -> Moses-tokenised text -> detokenised text
    meta          meta.json (translation: `source_eos`; the papers' data: `text`, the recipe)
Sequences are stored without <bos>/<eos> except LM (which has <eos>); the trainer adds them.
Special ids: translation <pad>=0 <unk>=1 <bos>=2 <eos>=3; LM <pad>=0 <unk>=1 <eos>=2; tagging and
classification <pad>=0 <unk>=1.

Every load checks the size of the split's files against meta.json; the first load of a prepared
folder (and `verify=True`) checks the sha256 of all its files.  A damaged file raises
`CorruptDataError` naming it and `normlab prepare NAME --force --cache DIR`; a folder never
prepared (or prepared in an older format) raises FileNotFoundError naming what to run.

Other entry points: `fetch(name, cache=None) -> {artifact: path}`, `card(name, cache=None) -> dict`,
`DATASETS` / `DEFAULT_DATASETS` (the registry), `cache_root(cache=None)`, and the errors
`DataError` (base), `ChecksumError`, `CorruptDataError`, `FetchError`, `MissingClientError`,
`ParseError`.
"""

from .integrity import CorruptDataError
from .pipeline import card, fetch, load, prepare, prepared_dir
from .registry import DATASETS, DEFAULT_DATASETS, DatasetSpec
from .sources import ChecksumError, DataError, FetchError, MissingClientError, ParseError, cache_root
from .store import DatasetSplit, TokenSequences

__all__ = [
    "DATASETS",
    "DEFAULT_DATASETS",
    "ChecksumError",
    "CorruptDataError",
    "DataError",
    "DatasetSpec",
    "DatasetSplit",
    "FetchError",
    "MissingClientError",
    "ParseError",
    "TokenSequences",
    "cache_root",
    "card",
    "fetch",
    "load",
    "prepare",
    "prepared_dir",
]
