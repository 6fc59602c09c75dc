"""Batches: token-budget batching for text (like fairseq ``--max-tokens``), fixed-size for images.

Text batches group sentences of similar length: the examples are sorted by length (ties broken by a
seeded shuffle) and cut into consecutive batches whose padded size, sentences × longest length,
stays within ``max_tokens``.  The batches are fixed once; each epoch visits them in a new order drawn
from ``(seed, epoch)``, so a position ``(epoch, index)`` identifies where training is, and resuming
only needs that pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .tasks import TaskData


@dataclass
class Batch:
    """Tensors of one batch plus host-side counts (known without a device sync)."""

    tensors: dict[str, torch.Tensor]
    n_targets: int  # what the task loss is averaged over (target tokens, sentences or images)
    n_tokens: int  # non-pad input tokens (or images), for throughput
    indices: np.ndarray  # example indices within the split (to find references)

    def to(self, device: torch.device) -> Batch:
        moved = {k: v.to(device, non_blocking=True) for k, v in self.tensors.items()}
        return Batch(moved, self.n_targets, self.n_tokens, self.indices)


def pad_sequences(seqs: list[np.ndarray], pad_id: int, prefix: int | None = None, suffix: int | None = None):
    """Right-pad 1-D int arrays into (B, T) int64 plus a (B, T) bool pad mask; optional BOS/EOS."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    extra = (prefix is not None) + (suffix is not None)
    total = lengths + extra
    width = int(total.max())
    out = np.full((len(seqs), width), pad_id, dtype=np.int64)
    body = np.arange(width)[None, :] - (prefix is not None)
    body_mask = (body >= 0) & (body < lengths[:, None])
    out[body_mask] = np.concatenate(seqs) if len(seqs) else []
    if prefix is not None:
        out[:, 0] = prefix
    if suffix is not None:
        out[np.arange(len(seqs)), total - 1] = suffix
    pad_mask = np.arange(width)[None, :] >= total[:, None]
    return torch.from_numpy(out), torch.from_numpy(pad_mask)


def example_length(family: str, example) -> int:
    """The padded length an example occupies (targets get BOS/EOS added)."""
    if family == "translation":
        return max(len(example[0]), len(example[1]) + 1)
    if family == "lm":
        return len(example) + 1
    return len(example[0])


def token_budget_batches(lengths: np.ndarray, max_tokens: int, seed: int, max_sentences: int | None = None):
    """Index arrays of batches of similar-length examples, each within ``max_tokens`` padded tokens."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    too_long = int(lengths.max()) if len(lengths) else 0
    if too_long > max_tokens:
        raise ValueError(
            f"an example has {too_long} tokens, more than train.max_tokens={max_tokens}; "
            "raise max_tokens or filter long examples in the data"
        )
    batches, start = [], 0
    cap = max_sentences or len(order)
    for i, idx in enumerate(order):  # sorted ascending: the last example sets the padded width
        width = lengths[idx]
        if (i + 1 - start) * width > max_tokens or i - start >= cap:
            batches.append(order[start:i])
            start = i
    if start < len(order):
        batches.append(order[start:])
    return batches


def collate(task: TaskData, split: str, indices: np.ndarray) -> Batch:
    """One batch of ``split`` made of the examples at ``indices``."""
    data = task.splits[split]
    family = task.family
    if family == "image":
        images, labels = data
        idx = torch.from_numpy(np.asarray(indices))
        return Batch({"images": images[idx], "labels": labels[idx]}, len(indices), len(indices), indices)
    examples = [data[i] for i in indices]
    pad = task.pad_id
    if family == "translation":
        src, src_pad = pad_sequences([e[0] for e in examples], pad)
        prev, prev_pad = pad_sequences([e[1] for e in examples], pad, prefix=task.bos_id)
        target, _ = pad_sequences([e[1] for e in examples], pad, suffix=task.eos_id)
        tensors = dict(src=src, src_pad=src_pad, prev=prev, prev_pad=prev_pad, target=target)
        n_targets, n_tokens = int((~prev_pad).sum()), int((~src_pad).sum() + (~prev_pad).sum())
    elif family == "lm":
        tokens, pad_mask = pad_sequences(examples, pad, prefix=task.bos_id)
        target, _ = pad_sequences(examples, pad, suffix=task.eos_id)
        tensors = dict(tokens=tokens, pad_mask=pad_mask, target=target)
        n_targets = n_tokens = int((~pad_mask).sum())
    elif family == "classification":
        tokens, pad_mask = pad_sequences([e[0] for e in examples], pad)
        labels = torch.tensor([e[1] for e in examples], dtype=torch.long)
        tensors = dict(tokens=tokens, pad_mask=pad_mask, labels=labels)
        n_targets, n_tokens = len(examples), int((~pad_mask).sum())
    else:  # tagging
        tokens, pad_mask = pad_sequences([e[0] for e in examples], pad)
        tags, _ = pad_sequences([np.asarray(e[1]) for e in examples], pad)
        tensors = dict(tokens=tokens, pad_mask=pad_mask, tags=tags)
        n_targets = n_tokens = int((~pad_mask).sum())
    return Batch(tensors, n_targets, n_tokens, np.asarray(indices))


def split_batches(
    task: TaskData, split: str, max_tokens: int, batch_size: int, seed: int, max_sentences: int | None = None
) -> list[np.ndarray]:
    """The fixed list of index batches of a split (images: consecutive chunks of ``batch_size``)."""
    data = task.splits[split]
    if task.family == "image":
        n = len(data[1])
        order = np.random.default_rng(seed).permutation(n) if split == "train" else np.arange(n)
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    lengths = np.fromiter((example_length(task.family, e) for e in data), dtype=np.int64, count=len(data))
    return token_budget_batches(lengths, max_tokens, seed, max_sentences)


class EpochStream:
    """Endless training batches: each epoch visits the fixed batches in an order drawn from (seed, epoch).

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
        self.rank, self.world_size = rank, world_size
        self.epoch, self.index = 0, 0  # position: the next batch is self._order()[self.index]
        self._order_cache: tuple[int, np.ndarray] | None = None

    def _order(self) -> np.ndarray:
        if self._order_cache is None or self._order_cache[0] != self.epoch:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.batches))
            usable = len(order) - len(order) % self.world_size
            self._order_cache = (self.epoch, order[:usable][self.rank :: self.world_size])
        return self._order_cache[1]

    def __next__(self) -> Batch:
        order = self._order()
        if self.index >= len(order):
            self.epoch, self.index = self.epoch + 1, 0
            order = self._order()
        batch = collate(self.task, "train", self.batches[order[self.index]])
        self.index += 1
        return batch

    def __iter__(self):
        return self

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
