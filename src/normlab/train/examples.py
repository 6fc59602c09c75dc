"""How the engine holds examples and batches, whatever the task family.

A split's examples stay arrays: :class:`Sequences` are views of flat id arrays (the memory-mapped
``normlab.data.TokenSequences`` of a prepared dataset, or the arrays of a synthetic task) through a
start and a length per example, so choosing examples is indexing and batching is one gather.  The
family (``normlab.train.families``) decides which fields an example has and how they become a
:class:`Batch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

SPLITS = ("train", "valid", "test")
PAD, BOS, EOS = 0, 1, 2  # reserved ids of the synthetic vocabularies
N_SPECIAL = 3


@dataclass(frozen=True)
class Sequences:
    """Variable-length id sequences: sequence i is ``ids[starts[i] : starts[i] + lengths[i]]``."""

    ids: np.ndarray  # flat ids (may be memory-mapped)
    starts: np.ndarray  # int64 (n,)
    lengths: np.ndarray  # int64 (n,)

    @classmethod
    def select(cls, tokens, index: np.ndarray, drop_last: int = 0, max_len: int | None = None) -> Sequences:
        """Sequences ``index`` of a ``TokenSequences`` (flat ``ids`` + ``offsets``) without copying ids:
        each without its last ``drop_last`` ids, then cut to its first ``max_len``."""
        index = np.asarray(index, dtype=np.int64)
        offsets = np.asarray(tokens.offsets)
        starts = offsets[index]
        lengths = offsets[index + 1] - starts - drop_last
        if max_len:
            lengths = np.minimum(lengths, max_len)
        return cls(tokens.ids, starts, lengths)

    @classmethod
    def from_list(cls, seqs: list[np.ndarray]) -> Sequences:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        ids = np.concatenate(seqs) if len(seqs) else np.zeros(0, dtype=np.int64)
        return cls(ids, np.cumsum(lengths) - lengths, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = self.starts[i]
        return np.asarray(self.ids[start : start + self.lengths[i]])

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def padded(
        self, rows: np.ndarray, pad_id: int, prefix: int | None = None, suffix: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequences ``rows`` right-padded into (B, T) int64 plus a (B, T) bool pad mask (True at
        padding); ``prefix`` / ``suffix`` (BOS / EOS) are added around every sequence.  One gather."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.starts[rows], self.lengths[rows]
        front = int(prefix is not None)
        total = lengths + front + (suffix is not None)
        width = int(total.max())
        cols = np.arange(width)[None, :]
        body = cols - front
        inside = (body >= 0) & (body < lengths[:, None])
        out = np.full((len(rows), width), pad_id, dtype=np.int64)
        out[inside] = self.ids[(starts[:, None] + body)[inside]]
        if prefix is not None:
            out[:, 0] = prefix
        if suffix is not None:
            out[np.arange(len(rows)), total - 1] = suffix
        return torch.from_numpy(out), torch.from_numpy(cols >= total[:, None])


def pad_sequences(seqs: list[np.ndarray], pad_id: int, prefix: int | None = None, suffix: int | None = None):
    """Right-pad a list of 1-D int arrays into (B, T) int64 plus a (B, T) bool pad mask; optional BOS/EOS."""
    return Sequences.from_list(seqs).padded(np.arange(len(seqs)), pad_id, prefix, suffix)


class Examples:
    """The examples of a split as named per-example fields of equal length (:class:`Sequences` or 1-D
    arrays); example i is the tuple of every field's i-th entry, in the order given."""

    def __init__(self, **fields):
        sizes = {len(f) for f in fields.values()}
        if len(sizes) != 1:
            raise ValueError(f"Examples: fields of different lengths {({k: len(f) for k, f in fields.items()})}")
        self.fields = fields

    def __getitem__(self, i: int) -> tuple:
        return tuple(f[i] for f in self.fields.values())

    def __len__(self) -> int:
        return len(next(iter(self.fields.values())))

    def __iter__(self) -> Iterator[tuple]:
        return (self[i] for i in range(len(self)))


@dataclass
class TaskData:
    """What the engine trains on: the family's name and, per split, its examples in the family's stored
    form (see the family's class in ``normlab.train.families``), plus what the model and metrics need."""

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
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"TaskData for {self.family!r} lacks split(s) {missing}; needs {SPLITS}")


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


def token_budget_batches(lengths: np.ndarray, max_tokens: int, seed: int, max_sentences: int | None = None):
    """Index arrays of batches of similar-length examples, each within ``max_tokens`` padded tokens.

    The examples are sorted by length (ties broken by a seeded shuffle) and cut into consecutive
    batches whose padded size, sentences × longest length, stays within ``max_tokens`` (fairseq's
    ``--max-tokens``).
    """
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
