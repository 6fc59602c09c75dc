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

from . import mt
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
    references: translation data whose pairs are tokenised text: split -> the untokenised target of
        each pair (what sacreBLEU scores against), stored beside the ids.
    """

    splits: dict[str, Any]
    label_names: tuple[str, ...] = ()
    raw_counts: dict = field(default_factory=dict)
    references: dict[str, list[str]] = field(default_factory=dict)


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


def _hf_bpe_text(parsed: Parsed, opts: dict):
    """The default corpus's subwords: HF SentencePiece-style BPE learned on the raw training text."""
    tok = T.train_bpe((s for pair in parsed.splits["train"] for s in pair), opts.get("bpe_vocab_size", 8000))
    vocab = tok.get_vocab()
    specials = {"pad_id": vocab[T.PAD], "unk_id": vocab[T.UNK], "bos_id": vocab[T.BOS], "eos_id": vocab[T.EOS]}
    return tok, lambda split, side, texts: T.encode_flat(tok, texts), tok.get_vocab_size(), specials, {}


def _moses_bpe_text(parsed: Parsed, opts: dict):
    """The papers' subwords, as fairseq's scripts make them from the Moses-tokenised text that the
    parse step returns: joint subword-nmt BPE learned on the training text of both sides
    (concatenated in ``bpe_learn_order``), applied to every split; a joined dictionary as
    fairseq-preprocess ``--joined-dictionary [--nwordssrc nwords]`` builds it."""
    workers = mt.default_workers()
    train = parsed.splits["train"]
    sides = {"source": 0, "target": 1}
    codes = mt.learn_bpe(
        (pair[sides[side]] for side in opts["bpe_learn_order"] for pair in train), opts["bpe_merges"]
    )
    bpe = mt.BpeCodes(codes)
    pieces = {
        (split, side): bpe.apply([p[sides[side]] for p in pairs], workers)
        for split, pairs in parsed.splits.items()
        for side in sides
    }
    symbols = mt.joined_dictionary(
        (line for side in sides for line in pieces["train", side]), T.SEQ2SEQ_SPECIALS, nwords=opts.get("nwords")
    )
    vocabulary = mt.MosesBpeVocabulary(tuple(symbols), codes)
    index = {s: i for i, s in enumerate(symbols)}
    specials = {f"{name}_id": index[tok] for name, tok in zip(("pad", "unk", "bos", "eos"), T.SEQ2SEQ_SPECIALS,
                                                                   strict=True)}
    text = {
        "pipeline": mt.PIPELINE,
        "source_lang": opts["source_lang"],
        "target_lang": opts["target_lang"],
        "lowercase": bool(opts.get("lowercase", False)),
        "compound_split": bool(opts.get("compound_split", False)),
        "bpe_merges": opts["bpe_merges"],
        "bpe_symbol": mt.BPE_SYMBOL,
        "tools": mt.tool_versions(),
    }

    def encode(split, side, texts):
        return mt.encode(pieces[split, side], index, specials["unk_id"])

    return vocabulary, encode, len(symbols), specials, {"text": text}


def _text_array(lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings -> their UTF-8 bytes flat (uint8) + int64 offsets (n+1), the prepared-array form of text."""
    encoded = [line.encode("utf-8") for line in lines]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def build_translation(parsed: Parsed, opts: dict):
    """Subwords by ``opts["text"]``: ``"moses+subword-nmt"`` (the papers' datasets: Moses-tokenised
    text from the parse step, subword-nmt BPE, a fairseq joined dictionary, and the untokenised
    references of ``parsed.references`` kept for sacreBLEU) or the HF BPE of the default corpus."""
    moses = opts.get("text") == mt.PIPELINE
    tok, encode, vocab_size, specials, extra = (_moses_bpe_text if moses else _hf_bpe_text)(parsed, opts)
    train = parsed.splits["train"]
    unk = specials["unk_id"]
    train_words = [Counter(w for p in train for w in p[side].split()) for side in (0, 1)]
    arrays, stats = {}, {}
    for split, pairs in parsed.splits.items():
        src_ids, src_off = encode(split, "source", [p[0] for p in pairs])
        tgt_ids, tgt_off = encode(split, "target", [p[1] for p in pairs])
        arrays[split] = {"tokens": src_ids, "offsets": src_off, "target": tgt_ids, "target_offsets": tgt_off}
        if split in parsed.references:
            if len(parsed.references[split]) != len(pairs):
                raise ValueError(f"{split}: {len(parsed.references[split])} references for {len(pairs)} pairs")
            arrays[split]["reference_text"], arrays[split]["reference_offsets"] = _text_array(parsed.references[split])
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
        "vocab_size": vocab_size,
        **specials,
        "shared_vocabulary": True,
        "source_eos": bool(opts.get("source_eos", False)),
        **extra,
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
    return _lm_arrays(parsed, tok, "lm")


def build_lm_stream(parsed: Parsed, opts: dict):
    """LM data read as one stream (PTB, WikiText-103 as the Transformer-XL scripts read them), with the
    scripts' vocabulary: ``<eos>`` first, then every word by falling count (ties in order of first
    appearance, as ``Counter.most_common``) over the splits ``opts["count_splits"]`` (the scripts count
    PTB's three files, WikiText-103's training file), ``<unk>`` where its count puts it (both corpora
    have it in the text) and ``<pad>`` last, where the adaptive softmax's last cluster holds it
    unused (the stream family leaves it out of the model's vocabulary)."""
    counts: Counter = Counter()
    for split in opts.get("count_splits", ("train",)):
        for sentence in parsed.splits[split]:
            counts.update(sentence)
    symbols = [T.EOS, *(w for w, _ in counts.most_common() if w not in (T.EOS, T.PAD))]
    if T.UNK not in counts:
        symbols.append(T.UNK)
    tok = T.word_level_from_symbols([*symbols, T.PAD])
    return _lm_arrays(parsed, tok, "lm_stream")


def _lm_arrays(parsed: Parsed, tok, family: str):
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
        "family": family,
        "vocab_size": tok.get_vocab_size(),
        "pad_id": vocab[T.PAD],
        "unk_id": unk,
        "eos_id": eos,
    }
    return meta, stats, arrays, tok


def _token_chars(sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The characters of every token, flat (int32 Unicode code points), and int64 offsets (tokens + 1)."""
    words = [w for sentence in sentences for w in sentence]
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum([len(w) for w in words], out=offsets[1:])
    codes = np.fromiter((ord(c) for w in words for c in w), dtype=np.int32, count=int(offsets[-1]))
    return codes, offsets


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
        if opts.get("chars"):  # for a character CNN (normlab.models.crf_tagger), OOV words included
            arrays[split]["chars"], arrays[split]["char_offsets"] = _token_chars([toks for toks, _ in sentences])
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
    "lm_stream": build_lm_stream,
    "tagging": build_tagging,
    "classification": build_classification,
}
