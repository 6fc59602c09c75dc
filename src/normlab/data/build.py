"""Turn parsed splits into prepared arrays + a tokenizer + the data card's statistics, per family.

Each `build_*` takes the parser's output (`Parsed`) and the dataset's options and returns
(meta, stats, arrays, tokenizer); `pipeline.prepare` adds sources/license to the card and writes.
Loops here run once per sentence at preparation time; loading never loops over tokens.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import text as T


@dataclass
class Parsed:
    """What a dataset's parse function returns.

    splits: split name -> examples, by family:
        image          (images uint8 array, labels int array)
        translation    list of (source text, target text)
        lm             list of sentences, each a list of word tokens (already normalised)
        tagging        list of (tokens, tags)
        classification list of (text, label name)
    label_names: fixed label order (images, classification, tagging); derived if empty.
    raw_counts: counts taken straight from the source files, for the card.
    """

    splits: dict[str, Any]
    label_names: tuple[str, ...] = ()
    raw_counts: dict = field(default_factory=dict)


def _distribution(ids: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts, strict=True)}


def _unk_rate(ids: np.ndarray, unk_id: int, exclude: int | None = None) -> float:
    ids = np.asarray(ids)
    if exclude is not None:
        ids = ids[ids != exclude]
    return round(float(np.mean(ids == unk_id)), 6) if ids.size else 0.0


def build_image(parsed: Parsed, opts: dict):
    arrays, stats = {}, {}
    names = parsed.label_names
    for split, (images, labels) in parsed.splits.items():
        arrays[split] = {"images": np.asarray(images, dtype=np.uint8), "labels": np.asarray(labels, np.int64)}
        stats[split] = {"examples": int(len(labels)), "label_distribution": _distribution(labels, names)}
    first = next(iter(parsed.splits.values()))[0]
    meta = {"family": "image", "label_names": list(names), "image_shape": list(first.shape[1:])}
    return meta, stats, arrays, None


def build_translation(parsed: Parsed, opts: dict):
    train = parsed.splits["train"]
    tok = T.train_bpe((s for pair in train for s in pair), opts.get("bpe_vocab_size", 8000))
    vocab = tok.get_vocab()
    unk = vocab[T.UNK]
    train_words = [Counter(w for p in train for w in p[side].split()) for side in (0, 1)]
    arrays, stats = {}, {}
    for split, pairs in parsed.splits.items():
        src_ids, src_off = T.encode_flat(tok, [p[0] for p in pairs])
        tgt_ids, tgt_off = T.encode_flat(tok, [p[1] for p in pairs])
        arrays[split] = {"tokens": src_ids, "offsets": src_off, "target": tgt_ids, "target_offsets": tgt_off}
        words = [[w for p in pairs for w in p[side].split()] for side in (0, 1)]
        stats[split] = {
            "examples": len(pairs),
            "source_words": len(words[0]),
            "target_words": len(words[1]),
            "source_subwords": int(src_ids.size),
            "target_subwords": int(tgt_ids.size),
            "pairs_at_most_50_words": sum(max(len(a.split()), len(b.split())) <= 50 for a, b in pairs),
            "targets_at_most_50_words": sum(len(b.split()) <= 50 for _, b in pairs),
            # word-level OOV: share of running words never seen in training (BPE itself has ~no <unk>)
            "source_word_oov_rate": round(
                sum(w not in train_words[0] for w in words[0]) / max(len(words[0]), 1), 6
            ),
            "target_word_oov_rate": round(
                sum(w not in train_words[1] for w in words[1]) / max(len(words[1]), 1), 6
            ),
            "subword_unk_rate": _unk_rate(np.concatenate([src_ids, tgt_ids]), unk),
        }
    meta = {
        "family": "translation",
        "vocab_size": tok.get_vocab_size(),
        "pad_id": vocab[T.PAD],
        "unk_id": unk,
        "bos_id": vocab[T.BOS],
        "eos_id": vocab[T.EOS],
        "shared_vocabulary": True,
    }
    return meta, stats, arrays, tok


def build_lm(parsed: Parsed, opts: dict):
    train = parsed.splits["train"]
    tok = T.train_word_level(
        (" ".join(s) for s in train),
        specials=T.LM_SPECIALS,
        vocab_size=opts.get("vocab_size"),
        min_frequency=opts.get("min_frequency", 1),
    )
    vocab = tok.get_vocab()
    unk, eos = vocab[T.UNK], vocab[T.EOS]
    arrays, stats = {}, {}
    for split, sentences in parsed.splits.items():
        ids, off = T.encode_flat(tok, sentences, pretokenized=True, append=eos)
        arrays[split] = {"tokens": ids, "offsets": off}
        stats[split] = {
            "sentences": len(sentences),
            "words": int(ids.size - len(sentences)),
            "tokens_with_eos": int(ids.size),
            "oov_rate": _unk_rate(ids, unk, exclude=eos),
        }
    meta = {
        "family": "lm",
        "vocab_size": tok.get_vocab_size(),
        "pad_id": vocab[T.PAD],
        "unk_id": unk,
        "eos_id": eos,
    }
    return meta, stats, arrays, tok


def build_tagging(parsed: Parsed, opts: dict):
    train = parsed.splits["train"]
    # the tag set is fixed by the annotation scheme, not learned: take it from every split
    names = parsed.label_names or tuple(
        sorted({t for rows in parsed.splits.values() for _, tags in rows for t in tags})
    )
    tok = T.train_word_level(
        (" ".join(toks) for toks, _ in train),
        specials=T.LABELLING_SPECIALS,
        vocab_size=opts.get("vocab_size"),
        min_frequency=opts.get("min_frequency", 1),
        lowercase=opts.get("lowercase", False),
    )
    vocab = tok.get_vocab()
    unk = vocab[T.UNK]
    arrays, stats = {}, {}
    for split, sentences in parsed.splits.items():
        unknown = {t for _, tags in sentences for t in tags} - set(names)
        if unknown:
            raise ValueError(f"{split} has tags outside the label set {names}: {sorted(unknown)}")
        ids, off = T.encode_flat(tok, [toks for toks, _ in sentences], pretokenized=True)
        tags = T.flat_labels([tags for _, tags in sentences], names)
        if tags.size != ids.size:  # a token the pre-tokenizer split further would misalign tags
            raise ValueError(f"{split}: {ids.size} token ids but {tags.size} tags")
        arrays[split] = {"tokens": ids, "offsets": off, "tags": tags}
        stats[split] = {
            "sentences": len(sentences),
            "tokens": int(ids.size),
            "oov_rate": _unk_rate(ids, unk),
            "label_distribution": _distribution(tags, names),
        }
    meta = {
        "family": "tagging",
        "vocab_size": tok.get_vocab_size(),
        "pad_id": vocab[T.PAD],
        "unk_id": unk,
        "label_names": list(names),
    }
    return meta, stats, arrays, tok


def build_classification(parsed: Parsed, opts: dict):
    train = parsed.splits["train"]
    names = parsed.label_names or tuple(sorted({label for _, label in train}))
    index = {n: i for i, n in enumerate(names)}
    tok = T.train_word_level(
        (t for t, _ in train),
        specials=T.LABELLING_SPECIALS,
        vocab_size=opts.get("vocab_size"),
        min_frequency=opts.get("min_frequency", 1),
        lowercase=opts.get("lowercase", True),
        split_punctuation=True,
    )
    vocab = tok.get_vocab()
    unk = vocab[T.UNK]
    arrays, stats = {}, {}
    for split, rows in parsed.splits.items():
        ids, off = T.encode_flat(tok, [t for t, _ in rows])
        labels = np.array([index[label] for _, label in rows], dtype=np.int64)
        arrays[split] = {"tokens": ids, "offsets": off, "labels": labels}
        lengths = np.diff(off)
        stats[split] = {
            "examples": len(rows),
            "tokens": int(ids.size),
            "mean_tokens": round(float(lengths.mean()), 2) if len(rows) else 0.0,
            "oov_rate": _unk_rate(ids, unk),
            "label_distribution": _distribution(labels, names),
        }
    meta = {
        "family": "classification",
        "vocab_size": tok.get_vocab_size(),
        "pad_id": vocab[T.PAD],
        "unk_id": unk,
        "label_names": list(names),
    }
    return meta, stats, arrays, tok


BUILDERS = {
    "image": build_image,
    "translation": build_translation,
    "lm": build_lm,
    "tagging": build_tagging,
    "classification": build_classification,
}
