"""What the engine trains on: ``TaskData``, built either from ``normlab.data`` or synthetically.

This file is **the adapter point** between datasets and the engine.  A ``TaskData`` holds, per split,
a list of examples whose form depends on the task family (token ids are 1-D integer numpy arrays):

=================  ==============================================================================
family             one example
=================  ==============================================================================
``translation``    ``(src_ids, tgt_ids)`` (no BOS/EOS: the batcher adds them)
``lm``             ``ids`` (the batcher adds BOS in front of the input and EOS after the target)
``classification`` ``(ids, label)``
``tagging``        ``(ids, tag_ids)`` (same length)
``image``          the split is a pair ``(images float32 (N, C, H, W), labels int64 (N,))``
=================  ==============================================================================

:func:`load_task` dispatches on ``data.source``: ``synthetic`` (small learnable tasks, offline,
used by the tests and CPU smoke runs) or ``normlab`` (the prepared datasets of ``normlab.data``,
adapted in :func:`from_normlab_data`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

FAMILIES = ("translation", "lm", "classification", "tagging", "image")
SPLITS = ("train", "valid", "test")
PAD, BOS, EOS = 0, 1, 2  # reserved ids of the synthetic vocabularies
N_SPECIAL = 3


@dataclass
class TaskData:
    family: str
    splits: dict[str, object]
    vocab_size: int | None = None
    pad_id: int = PAD
    bos_id: int = BOS
    eos_id: int = EOS
    n_classes: int | None = None  # classification, image
    label_names: list[str] | None = None  # tagging: tag names; IOB2 names enable entity F1
    tag_scheme: str = "tags"  # tagging: "iob2" (entity F1 with seqeval) or "tags" (token accuracy)
    detokenize: Callable[[list[int]], str] | None = None  # translation: ids -> text for sacreBLEU
    image_size: int | None = None
    channels: int | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown task family {self.family!r}; valid: {', '.join(FAMILIES)}")
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"TaskData for {self.family!r} lacks split(s) {missing}; needs {SPLITS}")

    def model_sizes(self) -> dict:
        """The family's model constructor arguments that the data decides."""
        if self.family == "image":
            return dict(image_size=self.image_size, channels=self.channels, n_classes=self.n_classes)
        sizes = dict(vocab_size=self.vocab_size, pad_id=self.pad_id)
        if self.family == "translation":
            sizes.update(bos_id=self.bos_id, eos_id=self.eos_id)
        elif self.family == "classification":
            sizes["n_classes"] = self.n_classes
        elif self.family == "tagging":
            sizes["n_labels"] = len(self.label_names)
        return sizes


def load_task(family: str, data_cfg: dict, seed: int) -> TaskData:
    source = data_cfg["source"]
    if source == "synthetic":
        return synthetic_task(family, seed=seed, **data_cfg.get("options", {}))
    if source == "normlab":
        return from_normlab_data(family, data_cfg["name"], data_cfg.get("options", {}))
    raise ValueError(f"data.source {source!r} is not valid; valid values: synthetic, normlab")


NORMLAB_DATA_OPTIONS = ("cache", "max_examples", "max_eval_examples", "max_len", "length_range")
_IOB2_NAME = re.compile(r"^(O|[BI]-.+)$")


def from_normlab_data(family: str, name: str, options: dict) -> TaskData:
    """A prepared ``normlab.data`` dataset as a ``TaskData`` (run ``normlab prepare NAME`` first).

    ``options``: ``cache`` (the data cache folder; default as ``normlab.data``), ``max_examples``
    (the first N examples of each split, for small runs; the data layer's splits are already shuffled),
    ``max_eval_examples`` (the first N of valid and test only: a fixed evaluation subset where a full
    pass costs more than the run, e.g. a 10k-way softmax on CPU) and ``max_len`` (truncate
    classification, tagging and LM sequences to that many tokens; long
    documents such as e-mails would otherwise exceed a token budget), and ``length_range`` ([min, max]:
    keep only the examples of that many tokens -- the source of a translation pair, an LM sentence
    without its ``<eos>`` -- in every split, before the limits; the scale study's batch composition:
    many short vs few long sentences in the same token budget).
    The LM data end every sentence in ``<eos>``; the batcher adds BOS/EOS itself, so the stored
    ``<eos>`` is dropped here and ``<eos>`` also serves as the BOS (as fairseq's LMs do).
    """
    from normlab import data

    unknown = sorted(set(options) - set(NORMLAB_DATA_OPTIONS))
    if unknown:
        raise ValueError(f"data.options: unknown key(s) {unknown}; valid: {', '.join(NORMLAB_DATA_OPTIONS)}")
    cache, limit = options.get("cache"), options.get("max_examples")
    cut = slice(0, options["max_len"]) if options.get("max_len") else slice(None)
    try:
        splits = {split: data.load(name, split, cache) for split in SPLITS}
    except FileNotFoundError as err:
        raise FileNotFoundError(f"dataset {name!r} is not prepared ({err}); run `normlab prepare {name}`") from err
    train = splits["train"]
    if train.family != family:
        raise ValueError(f"dataset {name!r} is a {train.family!r} dataset, not {family!r}: set task.family to match")

    length_range = options.get("length_range")
    if length_range is not None and (family == "image" or len(length_range) != 2 or length_range[0] > length_range[1]):
        raise ValueError(f"data.options.length_range {length_range!r}: give [min, max] tokens, min <= max, "
                         "for a text dataset")

    def chosen(split, split_name: str) -> np.ndarray:
        """The examples used: those in length_range, then the first max_examples (eval: max_eval_examples)."""
        if family == "image":
            index = np.arange(len(split.labels))
        else:
            index = np.arange(len(split.tokens))
            if length_range is not None:
                lengths = np.asarray(split.tokens.lengths) - (1 if family == "lm" else 0)
                index = index[(lengths >= length_range[0]) & (lengths <= length_range[1])]
        limits = [limit] + ([options.get("max_eval_examples")] if split_name != "train" else [])
        return index[: min([len(index)] + [int(x) for x in limits if x is not None])]

    examples: dict[str, object] = {}
    used: dict[str, int] = {}
    for split_name, split in splits.items():
        index = chosen(split, split_name)
        used[split_name] = len(index)
        if len(index) == 0:
            raise ValueError(f"dataset {name!r}: no {split_name} examples left with data.options {options}")
        if family == "image":
            n = len(index)  # images: the first n (no length_range)
            images = np.asarray(split.images[:n], dtype=np.float32) / 255.0
            images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
            examples[split_name] = (torch.from_numpy(np.ascontiguousarray(images)),
                                    torch.from_numpy(np.asarray(split.labels[:n], dtype=np.int64)))
        elif family == "translation":
            examples[split_name] = [(split.tokens[i], split.target[i]) for i in index]
        elif family == "lm":
            examples[split_name] = [split.tokens[i][:-1][cut] for i in index]  # drop the stored <eos>
        elif family == "classification":
            examples[split_name] = [(split.tokens[i][cut], int(split.labels[i])) for i in index]
        else:
            examples[split_name] = [(split.tokens[i][cut], split.tags[i][cut]) for i in index]

    info = {"dataset": name, "examples": used}
    if family == "image":
        images = examples["train"][0]
        return TaskData(family, examples, n_classes=len(train.label_names), label_names=list(train.label_names),
                        image_size=images.shape[-1], channels=images.shape[1], info=info)
    eos = train.eos_id if train.eos_id is not None else EOS
    task = TaskData(family, examples, vocab_size=train.vocab_size, pad_id=train.pad_id,
                    bos_id=train.bos_id if train.bos_id is not None else eos, eos_id=eos, info=info)
    if family == "translation":
        task.detokenize = train.decode
    elif family == "classification":
        task.n_classes = len(train.label_names)
        task.label_names = list(train.label_names)
    elif family == "tagging":
        task.label_names = list(train.label_names)
        task.tag_scheme = "iob2" if all(_IOB2_NAME.match(t) for t in train.label_names) else "tags"
    return task


# --- synthetic tasks: tiny, learnable, deterministic in the seed --------------------------------


def _lengths(rng, n, min_len, max_len):
    return rng.integers(min_len, max_len + 1, size=n)


def _random_sequences(rng, n, vocab, min_len, max_len):
    return [rng.integers(N_SPECIAL, vocab, size=k) for k in _lengths(rng, n, min_len, max_len)]


def synthetic_task(
    family: str,
    seed: int = 0,
    n_train: int = 512,
    n_valid: int = 64,
    n_test: int = 64,
    vocab_size: int = 32,
    min_len: int = 3,
    max_len: int = 12,
    n_classes: int = 4,
    image_size: int = 8,
) -> TaskData:
    """Small tasks a tiny model learns in a few hundred steps.

    translation: the target is the source reversed with every id shifted by one (a joined vocab);
    lm: arithmetic progressions mod the vocabulary (step 1 or 2); classification: the class is the
    most frequent id bucket; tagging: IOB2 entities are runs of ids from the upper half of the
    vocabulary; image: noisy class prototypes.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; valid: {', '.join(FAMILIES)}")
    rng = np.random.default_rng(seed + 1000)
    sizes = dict(train=n_train, valid=n_valid, test=n_test)
    n_regular = vocab_size - N_SPECIAL

    def shift(ids):
        return (ids - N_SPECIAL + 1) % n_regular + N_SPECIAL

    if family == "image":
        prototypes = rng.normal(size=(n_classes, 1, image_size, image_size)).astype(np.float32)
        splits = {}
        for split, n in sizes.items():
            labels = rng.integers(0, n_classes, size=n)
            noise = rng.normal(scale=0.8, size=(n, 1, image_size, image_size)).astype(np.float32)
            splits[split] = (torch.from_numpy(prototypes[labels] + noise), torch.from_numpy(labels))
        return TaskData("image", splits, n_classes=n_classes, image_size=image_size, channels=1)

    splits = {}
    for split, n in sizes.items():
        seqs = _random_sequences(rng, n, vocab_size, min_len, max_len)
        if family == "translation":
            splits[split] = [(s, shift(s[::-1]).copy()) for s in seqs]
        elif family == "lm":
            steps = rng.integers(1, 3, size=n)
            splits[split] = [
                (s[0] - N_SPECIAL + step * np.arange(len(s))) % n_regular + N_SPECIAL
                for s, step in zip(seqs, steps, strict=True)
            ]
        elif family == "classification":
            buckets = [(s - N_SPECIAL) * n_classes // n_regular for s in seqs]
            splits[split] = [
                (s, int(np.bincount(b, minlength=n_classes).argmax()))
                for s, b in zip(seqs, buckets, strict=True)
            ]
        else:  # tagging, IOB2
            splits[split] = [(s, _iob2_tags(s >= N_SPECIAL + n_regular // 2)) for s in seqs]
    if family == "translation":
        return TaskData(family, splits, vocab_size=vocab_size, detokenize=_synthetic_detokenize)
    if family == "lm":
        return TaskData(family, splits, vocab_size=vocab_size)
    if family == "classification":
        return TaskData(family, splits, vocab_size=vocab_size, n_classes=n_classes)
    return TaskData(
        family, splits, vocab_size=vocab_size, label_names=["O", "B-ENT", "I-ENT"], tag_scheme="iob2"
    )


def _iob2_tags(entity: np.ndarray) -> np.ndarray:
    """0 = O, 1 = B-ENT (an entity token after a non-entity one), 2 = I-ENT."""
    continues = np.concatenate([[False], entity[:-1]]) & entity
    return np.where(entity, np.where(continues, 2, 1), 0)


def _synthetic_detokenize(ids: list[int]) -> str:
    return " ".join(f"w{i}" for i in ids)
