"""What the engine trains on: a ``TaskData``, built either from ``normlab.data`` or synthetically.

This file is **the adapter point** between datasets and the engine.  :func:`load_task` dispatches on
``data.source``: ``synthetic`` (small learnable tasks, offline, used by the tests and CPU smoke runs)
or ``normlab`` (the prepared datasets of ``normlab.data``, adapted in :func:`from_normlab_data`).
How a family stores its examples is said by its class in ``normlab.train.families``; the examples of
a prepared dataset stay the data layer's (memory-mapped) arrays, chosen by index arrays.
"""

from __future__ import annotations

import numpy as np

from .examples import SPLITS, TaskData
from .families import SyntheticOptions, get_family

NORMLAB_DATA_OPTIONS = ("cache", "max_examples", "max_eval_examples", "max_len", "length_range", "source_eos")


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
    many short vs few long sentences in the same token budget), and ``source_eos`` (translation: end
    every source sentence in EOS, as fairseq's binarised data does; default: what the prepared dataset
    says, true for the papers' translation datasets).  The family gets the options in ``info["options"]``.
    """
    from normlab import data

    unknown = sorted(set(options) - set(NORMLAB_DATA_OPTIONS))
    if unknown:
        raise ValueError(f"data.options: unknown key(s) {unknown}; valid: {', '.join(NORMLAB_DATA_OPTIONS)}")
    kind = get_family(family)
    cache, limit = options.get("cache"), options.get("max_examples")
    try:
        splits = {split: data.load(name, split, cache) for split in SPLITS}
    except FileNotFoundError as err:
        raise FileNotFoundError(f"dataset {name!r} is not prepared ({err}); run `normlab prepare {name}`") from err
    train = splits["train"]
    if train.family not in kind.reads():
        raise ValueError(f"dataset {name!r} is a {train.family!r} dataset, not {' or '.join(map(repr, kind.reads()))}: "
                         "set task to match")

    length_range = options.get("length_range")
    if length_range is not None and (kind.dataset_lengths(train) is None or len(length_range) != 2
                                     or length_range[0] > length_range[1]):
        raise ValueError(f"data.options.length_range {length_range!r}: give [min, max] tokens, min <= max, "
                         "for a text dataset")

    def chosen(split, split_name: str) -> np.ndarray:
        """The examples used: those in length_range, then the first max_examples (eval: max_eval_examples)."""
        index = np.arange(len(split))
        if length_range is not None:
            lengths = kind.dataset_lengths(split)
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
        examples[split_name] = kind.select(split, index, options.get("max_len"))
    return kind.task_data(train, examples, {"dataset": name, "examples": used, "options": dict(options)})


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
    """Small tasks a tiny model learns in a few hundred steps, deterministic in the seed (what each
    family's task is: its ``synthetic`` method)."""
    kind = get_family(family)
    rng = np.random.default_rng(seed + 1000)
    sizes = dict(train=n_train, valid=n_valid, test=n_test)
    return kind.synthetic(rng, sizes, SyntheticOptions(vocab_size, min_len, max_len, n_classes, image_size))


SOURCES = {
    "synthetic": lambda family, data_cfg, seed: synthetic_task(family, seed=seed, **data_cfg.get("options", {})),
    "normlab": lambda family, data_cfg, seed: from_normlab_data(family, data_cfg["name"], data_cfg.get("options", {})),
}


def load_task(family: str, data_cfg: dict, seed: int) -> TaskData:
    """The ``TaskData`` of a run config's ``task`` and ``data`` sections."""
    source = data_cfg["source"]
    if source not in SOURCES:
        raise ValueError(f"data.source {source!r} is not valid; valid values: {', '.join(SOURCES)}")
    return SOURCES[source](family, data_cfg, seed)
