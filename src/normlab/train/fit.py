"""Does a run's data fit its model and its token budget?

Two checks that depend on the data and not on the config alone: a ViT's ``model.patch_size`` must
divide the image, and the token budget (``train.max_tokens``; ``eval.max_tokens`` for valid and test
when set) must hold the longest example used.  They run twice with the same message: at workflow
parse time from the dataset's data card (:func:`check_card`, when the dataset is prepared; what the
card cannot tell is skipped), and at the start of the job from the loaded data (:func:`check_task`),
before any training.
"""

from __future__ import annotations

import math

from .errors import ConfigError
from .examples import SPLITS, TaskData
from .families import get_family


def _budget(cfg: dict, split: str) -> tuple[str, int]:
    """The config key and value of the token budget that a split's batches must fit."""
    if split != "train" and cfg["eval"]["max_tokens"]:
        return "eval.max_tokens", cfg["eval"]["max_tokens"]
    return "train.max_tokens", cfg["train"]["max_tokens"]


def _dataset(cfg: dict) -> str:
    return repr(cfg["data"]["name"]) if cfg["data"]["source"] == "normlab" else "the synthetic task"


def check(cfg: dict, image_shape: tuple[int, int] | None, longest: dict[str, int | None]) -> None:
    """Raise ConfigError unless ``model.patch_size`` divides ``image_shape`` (height, width; None: no
    images) and every split's ``longest`` padded example (None: unknown) fits its token budget."""
    if image_shape is not None:
        patch, (h, w) = cfg["model"]["patch_size"], image_shape
        if h % patch or w % patch:
            divisors = [d for d in range(1, math.gcd(h, w) + 1) if math.gcd(h, w) % d == 0]
            raise ConfigError(
                f"model.patch_size={patch} does not divide the {h}x{w} images of {_dataset(cfg)}: "
                f"choose one of {', '.join(map(str, divisors))}"
            )
    family = get_family(cfg["task"])
    for split in SPLITS:
        n = longest.get(split)
        key, budget = _budget(cfg, split)
        if n is not None and n > budget:
            cut = (" or cut the examples shorter with data.options.max_len"
                   if cfg["data"]["source"] == "normlab" and "max_len" in family.data_options else "")
            raise ConfigError(
                f"{key}={budget} is below the longest {split} example of {_dataset(cfg)} ({n} tokens with "
                f"padding): raise {key} to at least {n}{cut}"
            )


Facts = tuple[tuple[int, int] | None, dict[str, int | None]]  # (image height x width, split -> longest)


def task_facts(task: TaskData) -> Facts:
    """The image size and each split's longest padded example of loaded data."""
    family = get_family(task.family)
    image = (task.image_size, task.image_size) if task.image_size is not None else None
    return image, {split: family.longest(task.splits[split]) for split in SPLITS}


def check_task(cfg: dict, task: TaskData) -> None:
    """:func:`check` on the loaded data (the job, before training)."""
    check(cfg, *task_facts(task))


def longest_in_prefix(records: list[list[int]], n: int | None) -> int:
    """The longest of the first ``n`` (None: all) examples, from the card's running-maximum records
    ``[[index, length], ...]`` (where the running maximum of the lengths rises)."""
    below = [length for index, length in records if n is None or index < n]
    return below[-1] if below else 0


def card_facts(cfg: dict, card: dict) -> Facts:
    """:func:`task_facts` of the data a run config selects, from its dataset's data card; None where the
    card cannot tell: a card written before it recorded ``image_shape`` / ``length_records``, or a
    ``data.options.length_range`` (which examples it keeps is not in the card)."""
    family, options = get_family(cfg["task"]), cfg["data"].get("options", {})
    shape = card.get("image_shape")
    image = (shape[0], shape[1]) if shape else None
    records = card.get("length_records")
    longest: dict[str, int | None] = dict.fromkeys(SPLITS)
    if records and options.get("length_range") is None:
        for split in SPLITS:
            limits = [options.get("max_examples")] + ([options.get("max_eval_examples")] if split != "train" else [])
            n = min([x for x in limits if x is not None], default=None)
            stored = {name: longest_in_prefix(r, n) for name, r in records.get(split, {}).items()}
            longest[split] = family.longest_prepared(stored, options.get("max_len")) if stored else None
    return image, longest


def check_card(cfg: dict, card: dict) -> None:
    """:func:`check` from a prepared dataset's data card (workflow parse time)."""
    check(cfg, *card_facts(cfg, card))
