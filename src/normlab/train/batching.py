"""Batches: the fixed index batches of a split, and the endless stream of training batches.

Text batches group sentences of similar length under a token budget (like fairseq ``--max-tokens``;
``examples.token_budget_batches``), images come in fixed-size chunks; the family decides
(``Family.index_batches``) and makes the tensors (``Family.collate``).  The batches are fixed once;
each epoch visits them in a new order drawn from ``(seed, epoch)`` (``Family.epoch_order``; a token
stream keeps its segments in order), so a position ``(epoch, index)`` identifies where training is,
and resuming only needs that pair.
"""

from __future__ import annotations

import numpy as np

from .examples import Batch, TaskData
from .families import get_family


def collate(task: TaskData, split: str, indices: np.ndarray) -> Batch:
    """One batch of ``split`` made of the examples at ``indices``."""
    return get_family(task.family).collate(task, split, indices)


def split_batches(
    task: TaskData, split: str, max_tokens: int, batch_size: int, seed: int, max_sentences: int | None = None
) -> list[np.ndarray]:
    """The fixed list of index batches of a split (images: consecutive chunks of ``batch_size``)."""
    family = get_family(task.family)
    return family.index_batches(task.splits[split], split, max_tokens, batch_size, seed, max_sentences)


class EpochStream:
    """Endless training batches: each epoch visits the fixed batches in the family's order for (seed, epoch).

    With ``world_size`` > 1, rank r takes every world_size-th batch of the epoch's order, and the epoch
    is cut to a multiple of world_size so every rank makes the same number of steps.
    """

    def __init__(
        self, task: TaskData, batches: list[np.ndarray], seed: int, rank: int = 0, world_size: int = 1
    ):
        if len(batches) < world_size:
            raise ValueError(
                f"the training split makes {len(batches)} batches, fewer than {world_size} processes"
            )
        self.task, self.batches, self.seed = task, batches, seed
        self.family = get_family(task.family)
        self.rank, self.world_size = rank, world_size
        self.epoch, self.index = 0, 0  # position: the next batch is self._order()[self.index]
        self._order_cache: tuple[int, np.ndarray] | None = None

    def _order(self) -> np.ndarray:
        if self._order_cache is None or self._order_cache[0] != self.epoch:
            order = self.family.epoch_order(len(self.batches), self.seed, self.epoch)
            usable = len(order) - len(order) % self.world_size
            self._order_cache = (self.epoch, order[:usable][self.rank :: self.world_size])
        return self._order_cache[1]

    def __next__(self) -> Batch:
        order = self._order()
        if self.index >= len(order):
            self.epoch, self.index = self.epoch + 1, 0
            order = self._order()
        batch = self.family.collate(self.task, "train", self.batches[order[self.index]])
        self.index += 1
        return batch

    def __iter__(self):
        return self

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
