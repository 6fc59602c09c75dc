"""Tokenizers (HuggingFace `tokenizers`), deterministic splits, and flat id arrays.

Special tokens are the same everywhere: <pad>=0, <unk>=1, <bos>=2, <eos>=3 (LM vocabularies
have no <bos>: <pad>=0, <unk>=1, <eos>=2, so that PTB-style 10k vocabularies stay 10k).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SEQ2SEQ_SPECIALS = [PAD, UNK, BOS, EOS]
LM_SPECIALS = [PAD, UNK, EOS]
LABELLING_SPECIALS = [PAD, UNK]


def train_bpe(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2) -> Tokenizer:
    """Subword BPE in the SentencePiece style: NFKC, `▁` marks word starts, so decoding restores
    the spaces exactly and detokenised output can be scored with sacreBLEU."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SEQ2SEQ_SPECIALS,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def train_word_level(
    texts: Iterable[str],
    *,
    specials: Sequence[str],
    vocab_size: int | None = None,
    min_frequency: int = 1,
    lowercase: bool = False,
    split_punctuation: bool = False,
) -> Tokenizer:
    """Word-level vocabulary: the `vocab_size` most frequent words of the training split (ties broken
    alphabetically by the trainer), everything else -> <unk>.  `split_punctuation`: split raw text
    into runs of word characters and of punctuation (for classification); otherwise split on
    whitespace only (already tokenised corpora)."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace() if split_punctuation else pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size or 10**9,
        min_frequency=min_frequency,
        special_tokens=list(specials),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def word_level_from_symbols(symbols: Sequence[str]) -> Tokenizer:
    """A word-level tokenizer whose ids are the positions of ``symbols`` (a vocabulary built
    elsewhere, in its own order), splitting on whitespace; unknown words -> <unk> (one of them)."""
    tok = Tokenizer(models.WordLevel({s: i for i, s in enumerate(symbols)}, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([s for s in (PAD, UNK, BOS, EOS) if s in symbols])  # keeps their ids
    return tok


def encode_flat(
    tok: Tokenizer,
    texts: list[str] | list[list[str]],
    *,
    pretokenized: bool = False,
    append: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode a list of texts into one flat int32 id array plus int64 offsets (len n+1).
    `append`: an id added after every sequence (LM <eos>)."""
    encodings = tok.encode_batch(texts, is_pretokenized=pretokenized, add_special_tokens=False)
    pieces = [e.ids for e in encodings]
    if append is not None:
        pieces = [ids + [append] for ids in pieces]
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((i for p in pieces for i in p), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def flat_labels(sequences: list[list[str]], label_names: Sequence[str]) -> np.ndarray:
    """Tag sequences -> one flat int16 array of label ids (aligned with `encode_flat` tokens)."""
    index = {name: i for i, name in enumerate(label_names)}
    return np.fromiter(
        (index[t] for seq in sequences for t in seq), dtype=np.int16, count=sum(len(s) for s in sequences)
    )


# --------------------------------------------------------------------------------------------- splits


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """A seeded permutation of range(n) cut by `fractions` (summing to 1); each part sorted."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions {fractions} do not sum to 1")
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(part) for part in np.split(perm, cuts)]


def stratified_split(labels: Sequence[str], fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Like `split_indices`, but each label is cut separately so every split keeps the label mix."""
    labels_arr = np.asarray(labels)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for k, label in enumerate(sorted(set(labels_arr.tolist()))):
        members = np.flatnonzero(labels_arr == label)
        for j, sub in enumerate(split_indices(len(members), fractions, seed + k)):
            parts[j].append(members[sub])
    return [np.sort(np.concatenate(p)) for p in parts]


def holdout(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held-out) index arrays: a seeded random `size` of range(n) held out."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[size:]), np.sort(perm[:size])
