"""What the engine trains on: a ``TaskData``, built either from ``normlab.data`` or synthetically.

This file is **the adapter point** between datasets and the engine.  :func:`load_task` dispatches on
``data.source``: ``synthetic`` (small learnable tasks, offline, used by the tests and CPU smoke runs)
or ``normlab`` (the prepared datasets of ``normlab.data``, adapted in :func:`from_normlab_data`).
How a family stores its examples is said by its class in ``normlab.train.families``; the examples of
a prepared dataset stay the data layer's (memory-mapped) arrays, chosen by index arrays.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from normlab.data import DataError

from .errors import ConfigError
from .examples import N_SPECIAL, SPLITS, TaskData
from .families import SyntheticOptions, get_family


class DatasetNotPreparedError(DataError, FileNotFoundError):
    """A normlab dataset that is not prepared in the data cache the run config names."""


_COUNT = {"type": "integer", "minimum": 1}
_LIMIT = {"type": ["integer", "null"], "minimum": 1}

# Every option of a prepared (normlab.data) dataset, with the JSON schema of its value; each family
# takes those its class lists (``Family.data_options``).  The workflow schema's data_options come from here.
NORMLAB_DATA_OPTIONS: dict[str, dict] = {
    "cache": {"type": "string"},
    "max_examples": _LIMIT,
    "max_eval_examples": _LIMIT,
    "max_len": _LIMIT,
    "length_range": {"type": ["array", "null"], "items": _COUNT, "minItems": 2, "maxItems": 2},
    "source_eos": {"type": ["boolean", "null"]},  # translation: end every source in EOS (fairseq); null: the data's
    "augment": {  # image: per-image random crop of the zero-padded image and horizontal flip, training batches only
        "type": ["object", "null"],
        "properties": {"crop_padding": {"type": "integer", "minimum": 0}, "flip": {"type": "boolean"}},
        "additionalProperties": False,
    },
}
# The options of a synthetic task: its split sizes and the fields of SyntheticOptions.
SYNTHETIC_DATA_OPTIONS: dict[str, dict] = {
    **{f"n_{split}": _COUNT for split in SPLITS},
    **{f.name: _COUNT for f in fields(SyntheticOptions)},
    "vocab_size": {"type": "integer", "minimum": N_SPECIAL + 1},  # the reserved ids plus one regular id
}


def data_options(source: str, family: str) -> dict[str, dict]:
    """The data.options a run of ``family`` from ``source`` accepts, with their value schemas."""
    if source == "synthetic":
        return SYNTHETIC_DATA_OPTIONS
    accepted = get_family(family).data_options
    return {name: value for name, value in NORMLAB_DATA_OPTIONS.items() if name in accepted}


def check_data_options(source: str, family: str, options: dict) -> None:
    """Names and order of ``data.options`` (their value types: the run-config schema); ConfigError."""
    valid = data_options(source, family)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        what = "data.source 'synthetic'" if source == "synthetic" else f"task {family!r}"
        raise ConfigError(f"data.options: unknown key(s) {', '.join(unknown)} for {what}; valid: {', '.join(valid)}")
    span = options.get("length_range")
    if isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span) and span[0] > span[1]:
        raise ConfigError(f"data.options.length_range {span}: give [min, max] with min <= max")
    if source == "synthetic":
        low, high = (options.get(k, getattr(SyntheticOptions, k)) for k in ("min_len", "max_len"))
        if isinstance(low, int) and isinstance(high, int) and low > high:
            raise ConfigError(
                f"data.options.min_len={low} is above data.options.max_len={high}: give min_len <= max_len"
            )


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
    from normlab.data.selection import selected

    check_data_options("normlab", family, options)
    kind = get_family(family)
    cache = options.get("cache")
    try:
        splits = {split: data.load(name, split, cache) for split in SPLITS}
    except FileNotFoundError:
        root = data.cache_root(cache)
        raise DatasetNotPreparedError(
            f"dataset {name!r} is not prepared in the data cache {root} (data.options.cache): run "
            f"`normlab prepare {name} --cache {root}`, or point data.options.cache at the cache that has it"
        ) from None
    train = splits["train"]
    if train.family not in kind.reads():
        raise ConfigError(
            f"task: {family!r}, but dataset {name!r} is a {train.family!r} dataset: set task: {train.family}"
        )

    examples: dict[str, object] = {}
    used: dict[str, int] = {}
    for split_name, split in splits.items():
        index = selected(split, split_name, options)
        used[split_name] = len(index)
        if len(index) == 0:
            raise ConfigError(
                f"dataset {name!r}: no {split_name} examples left with data.options {options}; widen "
                "data.options.length_range or raise the example limits"
            )
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
