"""Sequence tagging: one label per token (NER, POS); entity F1 (seqeval) for IOB2 tags, else accuracy.

Stored example: ``Examples(tokens=Sequences, tags=Sequences)`` (same lengths).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager

import numpy as np
import torch

from normlab import metrics
from normlab.models import SequenceTagger

from ..examples import N_SPECIAL, Batch, Examples, Sequences, TaskData
from .base import SyntheticOptions, TextFamily, token_targets

IOB2_NAME = re.compile(r"^(O|[BI]-.+)$")
SYNTHETIC_TAGS = ["O", "B-ENT", "I-ENT"]


class Tagging(TextFamily):
    name = "tagging"
    model_class = SequenceTagger
    data_options = (*TextFamily.data_options, "max_len")

    def select(self, split, index: np.ndarray, max_len: int | None) -> Examples:
        return Examples(tokens=Sequences.select(split.tokens, index, max_len=max_len),
                        tags=Sequences.select(split.tags, index, max_len=max_len))

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        task = super().task_data(train, splits, info)
        task.label_names = list(train.label_names)
        task.tag_scheme = "iob2" if all(IOB2_NAME.match(t) for t in train.label_names) else "tags"
        return task

    def synthetic_examples(self, rng, seqs: list[np.ndarray], options: SyntheticOptions) -> Examples:
        """IOB2 entities are runs of ids from the upper half of the vocabulary."""
        upper = N_SPECIAL + (options.vocab_size - N_SPECIAL) // 2
        return Examples(tokens=Sequences.from_list(seqs),
                        tags=Sequences.from_list([iob2_tags(s >= upper) for s in seqs]))

    def synthetic_task_data(self, splits: dict[str, object], options: SyntheticOptions) -> TaskData:
        return TaskData(self.name, splits, vocab_size=options.vocab_size, label_names=list(SYNTHETIC_TAGS),
                        tag_scheme="iob2")

    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        examples = task.splits[split]
        tokens, pad_mask, n = self.padded_tokens(examples, indices, task.pad_id)
        tags, _ = examples.fields["tags"].padded(indices, task.pad_id)
        return Batch(dict(tokens=tokens, pad_mask=pad_mask, tags=tags), n, n, np.asarray(indices))

    def model_sizes(self, task: TaskData) -> dict:
        return dict(vocab_size=task.vocab_size, pad_id=task.pad_id, n_labels=len(task.label_names))

    def targets(self, batch: Batch) -> torch.Tensor:
        return token_targets(batch.tensors["tags"], batch.tensors["pad_mask"])

    def evaluation_extras(self, task: TaskData, split: str, eval_cfg: dict, decode: bool) -> list:
        return [EntityF1(task.label_names)] if task.tag_scheme == "iob2" else []

    def primary_metric(self, tag_scheme: str = "tags") -> str:
        return "f1" if tag_scheme == "iob2" else "accuracy"


class EntityF1:
    """Entity-level F1 of the predicted IOB2 tags (seqeval, strict), over a split's sentences."""

    def __init__(self, label_names: list[str]):
        self.names = label_names
        self.true: list[list[str]] = []
        self.predicted: list[list[str]] = []

    def add(self, model, batch: Batch, logits: torch.Tensor, targets: torch.Tensor,
            autocast: AbstractContextManager) -> None:
        names = self.names
        lengths = (~batch.tensors["pad_mask"]).sum(1).tolist()
        for row_true, row_pred, n in zip(targets.tolist(), logits.argmax(-1).tolist(), lengths, strict=True):
            self.true.append([names[i] for i in row_true[:n]])
            self.predicted.append([names[i] for i in row_pred[:n]])

    def result(self) -> dict:
        return {"f1": metrics.entity_f1(self.true, self.predicted)} if self.true else {}


def iob2_tags(entity: np.ndarray) -> np.ndarray:
    """0 = O, 1 = B-ENT (an entity token after a non-entity one), 2 = I-ENT."""
    continues = np.concatenate([[False], entity[:-1]]) & entity
    return np.where(entity, np.where(continues, 2, 1), 0)
